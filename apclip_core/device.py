"""Which torch device a command runs on: "auto" is the GPU when one is visible, else the CPU; any other
name ("cpu", "cuda", "cuda:1") is taken as given. One rule for evaluate, the zoo and the throughput measure."""
from __future__ import annotations


def pick(name="auto"):
    """torch.device for `name` (a str or a torch.device). torch is imported here, not at module import, so
    importing a module that uses this stays light (the zoo, the notebooks' imports)."""
    import torch

    from apclip_core.errors import BadValue

    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise BadValue(f"device {name!r} is not a device; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BadValue(f"device {name!r}: no CUDA GPU is visible here (torch {torch.__version__}"
                           f"{', a CPU-only build' if torch.version.cuda is None else ''}); use --device cpu (or auto), "
                           f"or run on a machine with a GPU")
        if device.index is not None and device.index >= count:
            raise BadValue(f"device {name!r}: only {count} GPU(s) visible (cuda:0 to cuda:{count - 1})")
    elif device.type != "cpu":
        raise BadValue(f"device {name!r} is not supported; valid: auto, cpu, cuda, cuda:N")
    return device
