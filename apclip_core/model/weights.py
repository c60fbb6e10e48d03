"""Where a pretrained tag's weights come from, and one message for when they cannot be had.

open_clip fetches a tag's weights (e.g. ViT-B-16 / openai -> timm/vit_base_patch16_clip_224.openai) from
the Hugging Face hub into $HF_HOME/hub. Without a network it retries for about 50 s and ends in a long
chained traceback that never says where the cache is or how to fill it. Before open_clip is asked,
`ensure_available` looks in the cache (no network), and when the weights are not there checks in a few
seconds whether the hub can be reached at all (HF_HUB_OFFLINE=1: it is not asked). If it cannot, it
raises `WeightsUnavailable` with `unavailable_message`, the one wording that preflight, train, evaluate
and classify all show.
"""
from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from typing import Optional

PROBE_SECONDS = 5.0  # the whole reachability check, DNS included
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


from apclip_core.errors import UserError


class WeightsUnavailable(UserError, RuntimeError):
    """The pretrained weights are neither cached nor downloadable from here; str() says what to do."""


def hub_id(model_name: str, pretrained: Optional[str]) -> Optional[str]:
    """The Hugging Face repository open_clip fetches `pretrained` from; None for a file, None or no hub."""
    if not pretrained or os.path.isfile(pretrained):
        return None
    from open_clip.pretrained import get_pretrained_cfg

    return (get_pretrained_cfg(model_name, pretrained) or {}).get("hf_hub", "").rstrip("/") or None


def hub_cache() -> str:
    """The folder the hub caches into: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, name), str) for name in WEIGHT_FILES)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the hub answers at all (any HTTP status counts), within `timeout` seconds in all: the
    request runs in a thread, so a hanging DNS lookup cannot hold the caller. Proxies from the
    environment are used, as the hub client uses them."""
    from huggingface_hub import constants

    answered = threading.Event()

    def probe():
        try:
            urllib.request.urlopen(constants.ENDPOINT, timeout=timeout)
            answered.set()
        except urllib.error.HTTPError:
            answered.set()
        except Exception:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


def unavailable_message(model_name: str, pretrained: str, reason: str) -> str:
    """Which weights, where they would be cached, and the three ways to get going."""
    repo = hub_id(model_name, pretrained) or "?"
    return (f"the pretrained weights {model_name} / {pretrained!r} (Hugging Face: {repo}) are not in the cache "
            f"{hub_cache()} and cannot be downloaded: {reason}.\n"
            "  - fetch them once on a machine with internet, into a cache this one reads (HF_HOME on a shared disk):\n"
            f"      HF_HOME=/shared/hf python -c \"from apclip_core.model.video_clip import create_model; "
            f"create_model('{model_name}', '{pretrained}')\"\n"
            "    then run here with HF_HOME=/shared/hf HF_HUB_OFFLINE=1 (nothing is fetched again);\n"
            "  - or give a local weights file: pretrained=/path/to/weights.pt with quick_gelu stated "
            "(True for OpenAI's CLIP), `--pretrained FILE --quick-gelu` for evaluate and classify.")


def problem(model_name: str, pretrained: Optional[str]) -> Optional[str]:
    """None when the weights can be had (a file, no weights, cached, or a hub that answers); else the message."""
    repo = hub_id(model_name, pretrained)
    if repo is None or is_cached(repo):
        return None
    if offline():
        return unavailable_message(model_name, pretrained, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        return unavailable_message(model_name, pretrained,
                                   f"the hub ({_endpoint()}) could not be reached (checked for up to {PROBE_SECONDS:.0f} s)")
    return None


def ensure_available(model_name: str, pretrained: Optional[str]) -> None:
    """Raise WeightsUnavailable (the message above) within seconds instead of open_clip's retries."""
    message = problem(model_name, pretrained)
    if message:
        raise WeightsUnavailable(message)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT
