"""Which pretrained weights a model started from, told by their content rather than by their name.

A run records the content fingerprint of the weights it was built from (before any training): a sha256 over
a few fixed tensors of the open_clip state dict (FINGERPRINT_TENSORS), each rounded to float16 first, so
OpenAI's release (float16) and a float32 copy of it fingerprint alike. `known_weights.json`, shipped beside this
module, maps fingerprints to what they are ("OpenAI ViT-B/16"); the paper profile calls a run's model the
paper's only when its fingerprint is OpenAI's ViT-B/16 (deviations.model_is_papers), so a random-init, LAION or
fine-tuned file named ViT-B-16 is "not identified as OpenAI's", whatever its name or activation.

The shipped list is EMPTY: OpenAI's weights cannot be downloaded where apclip is developed, and a fingerprint
written from memory would vouch for nothing. Until a maintainer records the real ones (once, on a machine that
has the weights):

    python -m apclip_core fingerprint openai --model ViT-B-16 --record "OpenAI ViT-B/16"
    python -m apclip_core fingerprint openai --model ViT-L-14 --record "OpenAI ViT-L/14"
    python -m apclip_core fingerprint /path/ViT-B-16.pt --model ViT-B-16 --record "OpenAI ViT-B/16"

every local weights file is "not identified as OpenAI's"; open_clip's `openai` tag is taken at its word while
no fingerprint is recorded for its model (open_clip fetches that tag from its pinned hub repository), and must
match the recorded one once there is.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Mapping, Optional


REGISTRY = Path(__file__).with_name("known_weights.json")
SCHEME = 1  # bumped whenever FINGERPRINT_TENSORS or the hashing changes: older fingerprints then match nothing
# Small tensors every open_clip ViT CLIP has, spread over both towers: a few MB at most, hashed in milliseconds.
FINGERPRINT_TENSORS = ("positional_embedding", "text_projection", "logit_scale", "visual.class_embedding",
                       "visual.positional_embedding", "visual.proj", "visual.conv1.weight")
OPENAI = {"ViT-B-16": "OpenAI ViT-B/16", "ViT-L-14": "OpenAI ViT-L/14"}  # labels `--record` is expected to use


def architecture(model_name: Optional[str]) -> Optional[str]:
    """The architecture a model name builds: ViT-B-16-quickgelu and ViT-B-16 are the same tensors."""
    return model_name.removesuffix("-quickgelu") if isinstance(model_name, str) else None


def fingerprint(state_dict: Mapping[str, "torch.Tensor"]) -> Optional[str]:
    """`scheme:sha256` over FINGERPRINT_TENSORS (name, shape, float16 bytes); None when the state dict lacks
    one of them (not an open_clip ViT CLIP: nothing to identify)."""
    if any(name not in state_dict for name in FINGERPRINT_TENSORS):
        return None
    h = hashlib.sha256()
    for name in FINGERPRINT_TENSORS:
        import torch  # here, not at the top: `fingerprint --help` imports no torch

        tensor = state_dict[name].detach().to("cpu", torch.float16).contiguous()
        h.update(f"{name}:{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{SCHEME}:{h.hexdigest()}"


def registry(path: Optional[Path] = None) -> dict:
    """fingerprint -> {"label", "model_name", "recorded_from"} of the weights known by content."""
    data = json.loads(Path(path or REGISTRY).read_text())
    return dict(data.get("weights") or {})


def identify(fingerprint_: Optional[str], path: Optional[Path] = None) -> Optional[dict]:
    """What the weights with this fingerprint are ({"label", "model_name", ...}), or None when unknown."""
    return registry(path).get(fingerprint_) if fingerprint_ else None


def recorded_for(model_name: str, path: Optional[Path] = None) -> list[str]:
    """The fingerprints recorded for an architecture (empty while nobody has recorded its weights)."""
    arch = architecture(model_name)
    return [fp for fp, entry in registry(path).items() if architecture(entry.get("model_name")) == arch]


def record(fingerprint_: str, label: str, model_name: str, source: str, path: Optional[Path] = None) -> None:
    from apclip_core import atomic

    path = Path(path or REGISTRY)
    data = json.loads(path.read_text())
    data.setdefault("weights", {})[fingerprint_] = {"label": label, "model_name": architecture(model_name),
                                                    "recorded_from": source}
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def of_model(model) -> Optional[str]:
    """The fingerprint of the weights a VideoCLIP was just built from (None: built without weights). Training
    records it before its first step (metrics.json: pretrained_fingerprint)."""
    return fingerprint(model.clip.state_dict()) if model.config.get("pretrained") else None


def of_weights(model_name: str, pretrained: str, *, quick_gelu: bool = True) -> Optional[str]:
    """The fingerprint of a weights file or tag, read as training reads it (create_model: one loading path)."""
    from apclip_core.model.video_clip import create_model

    return of_model(create_model(model_name, pretrained, quick_gelu=quick_gelu))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apclip_core fingerprint",
        description="Print the content fingerprint of pretrained weights (a local file or an open_clip tag); "
                    "--record adds it to the weights the paper profile identifies (apclip_core/model/known_weights.json).")
    parser.add_argument("weights", help="a weights file, or an open_clip pretrained tag such as openai")
    parser.add_argument("--model", default="ViT-B-16", help="the open_clip architecture (default ViT-B-16)")
    parser.add_argument("--record", metavar="LABEL",
                        help=f"record it under LABEL; use {' / '.join(repr(v) for v in OPENAI.values())} for OpenAI's")
    parser.add_argument("--registry", type=Path, default=REGISTRY, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    found = of_weights(args.model, args.weights)
    if found is None:
        from apclip_core.errors import UserError

        raise UserError(f"{args.weights} ({args.model}) has none of the tensors fingerprinted "
                        f"({', '.join(FINGERPRINT_TENSORS)}): not an open_clip ViT CLIP")
    known = identify(found, args.registry)
    print(f"{found}  {args.weights} ({args.model}): " + (f"known as {known['label']}" if known else "not known"))
    if args.record:
        record(found, args.record, args.model, str(args.weights), args.registry)
        print(f"recorded as {args.record!r} in {args.registry}")
    return 0
