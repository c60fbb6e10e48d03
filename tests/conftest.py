"""Shared fixtures. Tests never write into the committed figures/ and never show progress bars."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("APCLIP_PROGRESS", "0")
# Tables and figures that notebooks/tests render go to a scratch folder, not the committed figures/;
# removed when the session ends (one was left in /tmp per test run).
if "APCLIP_FIGURES" not in os.environ:
    os.environ["APCLIP_FIGURES"] = _scratch_figures = tempfile.mkdtemp(prefix="apclip-figures-")
    atexit.register(shutil.rmtree, _scratch_figures, ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
SHARED_SPLITS = REPO.parent / "shared" / "vifi_clip_splits"


@pytest.fixture(scope="session")
def splits_root() -> Path:
    """The real ViFi-CLIP protocol lists from ../shared (read only); skip cleanly when absent."""
    root = Path(os.environ.get("APCLIP_SPLITS", SHARED_SPLITS))
    if not (root / "labels").is_dir():
        pytest.skip(f"real protocol lists not found at {root} (set APCLIP_SPLITS)")
    return root


@pytest.fixture(scope="session")
def bench_root() -> Path:
    """The embedded benchmark, rendered once per machine into the data folder (idempotent)."""
    from apclip_core.embedded.benchmark import render_benchmark

    return render_benchmark().root


SECRET = "sk-apclip-test-secret-never-logged"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, bench_root) -> Path:
    """A real fine-tuned run, the smallest (test_reliability's TINY_RUN: one optimizer step, two evaluated videos
    per split), with the benchmark's prompt file and TensorBoard tracking, trained while a key is in the
    environment (no file of the run may contain it). Shared by the export and tracking tests: trained once."""
    from test_reliability import TINY_RUN

    from apclip_core.engine.config import load_config
    from apclip_core.engine.train import train

    before = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = SECRET
    try:
        return train(load_config("bench_base2novel", **{**TINY_RUN, "prompt_strategy": "action_conditioned"},
                                 prompts_per_class_per_step=2, tracker="tensorboard",
                                 output_dir=str(tmp_path_factory.mktemp("runs") / "tiny")))
    finally:
        if before is None:
            os.environ.pop("OPENAI_API_KEY")
        else:
            os.environ["OPENAI_API_KEY"] = before
