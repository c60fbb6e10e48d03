"""Optional tracking: a run with --set tracker=tensorboard writes per-epoch loss, lr, throughput and evaluation
metrics that TensorBoard's own event reader reads back equal to metrics.json; off by default; no secret logged."""
from __future__ import annotations

import json

import pytest

from apclip_core.engine.config import load_config
from apclip_core.engine.tracking import open_tracker
from conftest import SECRET


def test_tensorboard_events_hold_each_epochs_numbers_as_metrics_json_has_them(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tensorboard"))
    events.Reload()
    epochs = json.loads((tiny_run / "metrics.json").read_text())["epochs"]
    expected = {"train/loss": "loss", "train/lr": "lr", "train/samples_per_s": "samples_per_s",
                "train/step_time_s": "step_time_s", **{f"eval/{k}": k for k in epochs[-1]["eval"]}}
    assert set(events.Tags()["scalars"]) == set(expected)
    assert {"eval/bench_base_val", "eval/bench_novel_val", "eval/hm"} <= set(expected)
    for tag, key in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        recorded = [(e["epoch"], (e.get("eval") or {}).get(key, e.get(key))) for e in epochs]
        assert [s for s, _ in logged] == [s for s, _ in recorded], tag
        assert [v for _, v in logged] == pytest.approx([v for _, v in recorded], rel=1e-6), tag


def test_no_file_of_a_tracked_run_holds_a_secret_of_the_environment(tiny_run):
    files = [p for p in tiny_run.rglob("*") if p.is_file()]
    assert any(p.parent.name == "tensorboard" for p in files)
    assert not [p for p in files if SECRET.encode() in p.read_bytes()]


def test_tracking_is_off_by_default_and_names_its_choices(tmp_path):
    assert load_config("bench_base2novel").tracker == "none" and open_tracker("none", tmp_path) is None
    with pytest.raises(ValueError, match="tracker='mlflow' is not valid; choose one of: none, tensorboard, wandb"):
        load_config("bench_base2novel", tracker="mlflow")


def test_wandb_without_the_package_says_what_to_install(tmp_path):
    try:
        import wandb  # noqa: F401
        pytest.skip("wandb is installed: the message for its absence cannot be shown")
    except ImportError:
        pass
    with pytest.raises(SystemExit, match="tracker=wandb needs the wandb package: pip install wandb"):
        open_tracker("wandb", tmp_path)
