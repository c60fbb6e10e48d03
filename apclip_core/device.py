"""Which torch device a command runs on: "auto" is the GPU when one is visible, else the CPU; any other
name ("cpu", "cuda", "cuda:1") is taken as given. One rule for evaluate, the zoo and the throughput measure."""
from __future__ import annotations


def pick(name="auto"):
    """torch.device for `name` (a str or a torch.device). torch is imported here, not at module import, so
    importing a module that uses this stays light (the zoo, the notebooks' imports)."""
    import torch

    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
