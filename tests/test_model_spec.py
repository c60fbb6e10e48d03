"""One model spec everywhere (model_name, pretrained, quick_gelu): train's config, evaluate, classify;
a local weights file whose activation nothing states is refused with the QuickGELU explanation."""
from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from apclip_core.model import video_clip as model_lib
from apclip_core.model.video_clip import create_model

REPO = Path(__file__).resolve().parent.parent
SILENT = "apclip-test-silent"  # a config that, like open_clip's 'ViT-B-16', does not say its activation


@pytest.fixture(scope="module")
def silent_weights(tmp_path_factory) -> Path:
    """A local open_clip state-dict file for a model whose name and config say nothing of its activation."""
    folder = tmp_path_factory.mktemp("configs")
    cfg = json.loads((model_lib.MODEL_CONFIG_DIR / "apclip-tiny.json").read_text())
    del cfg["quick_gelu"]
    (folder / f"{SILENT}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    weights = folder / "weights.pt"
    torch.save(open_clip.create_model(SILENT, pretrained=None).state_dict(), weights)
    return weights


def test_a_local_weights_file_without_an_activation_is_refused_and_stating_it_builds_that(silent_weights):
    with pytest.raises(ValueError, match="QuickGELU") as err:
        create_model(SILENT, str(silent_weights))
    assert "quick_gelu=True" in str(err.value) and "--quick-gelu" in str(err.value)
    quick = create_model(SILENT, str(silent_weights), quick_gelu=True)
    assert quick.config["quick_gelu"] and any(isinstance(m, QuickGELU) for m in quick.modules())
    plain = create_model(SILENT, str(silent_weights), quick_gelu=False)
    assert not any(isinstance(m, QuickGELU) for m in plain.modules())
    # apclip's own configs say their activation, so their weights files need nothing more
    assert create_model("apclip-tiny", str(silent_weights)).config["quick_gelu"] is False


def test_train_config_takes_quick_gelu_and_run_names_of_older_runs_stay_valid():
    from apclip_core.engine.config import load_config
    from apclip_core.paper.experiments import make_config

    assert load_config("base2novel", quick_gelu=True).quick_gelu is True
    named = make_config("base2novel", "AP-CLIP").name
    # recorded at commit 46bd8fa, before quick_gelu was a config field: a run trained then is still found
    assert named == "base2novel_hmdb51_s1-3ee65cdc12"
    stated = make_config("base2novel", "AP-CLIP", pretrained="/weights/openai_vitb16.pt", quick_gelu=True).name
    assert stated != named and stated != make_config("base2novel", "AP-CLIP", pretrained="/weights/openai_vitb16.pt").name


def test_the_decoder_does_not_rename_a_run():
    # decord and PyAV decode identical frames (test_video_io): runs named with "decord", before the default
    # became "auto", keep their names whichever decoder reads the videos now
    from apclip_core.paper.experiments import make_config

    assert {make_config("base2novel", "AP-CLIP", video_backend=b).name for b in ("auto", "decord", "pyav")} == {
        "base2novel_hmdb51_s1-3ee65cdc12"}


def test_evaluate_takes_a_model_spec_and_refuses_a_silent_weights_file(silent_weights, capsys):
    from apclip_core.engine import evaluate_cli as evaluate  # the command line

    with pytest.raises(SystemExit):  # neither a checkpoint nor a model
        evaluate.main(["--protocol", "bench_base_to_novel"])
    with pytest.raises(SystemExit):  # a checkpoint carries its own activation
        evaluate.main(["--checkpoint", "x.pt", "--quick-gelu", "--protocol", "bench_base_to_novel"])
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model", SILENT, "--pretrained", str(silent_weights), "--protocol", "bench_base_to_novel"])
    assert exit_info.value.code == 2 and "QuickGELU" in capsys.readouterr().err


def test_classify_refuses_a_silent_weights_file_with_the_explanation(silent_weights, bench_root, capsys):
    from apclip_core.classify import main

    video = sorted((bench_root / "videos" / "chorving_slowly").glob("*.avi"))[0]  # checked before the model is built
    with pytest.raises(SystemExit):
        main([str(video), "--actions", "a", "b", "--model", SILENT, "--pretrained", str(silent_weights)])
    assert "QuickGELU" in capsys.readouterr().err


def test_evaluate_a_model_spec_end_to_end(silent_weights, bench_root, tmp_path, monkeypatch):
    """--model/--pretrained/--quick-gelu instead of a checkpoint: evaluated as built, the spec recorded."""
    from apclip_core.engine import evaluate_cli as evaluate  # the command line

    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path))
    assert evaluate.main(["--model", SILENT, "--pretrained", str(silent_weights), "--no-quick-gelu",
                          "--protocol", "bench_base_to_novel", "--protocol-arg", f"root={bench_root}",
                          "--prompts", "single", "--similarity", "mean", "--frames", "2", "--temporal-views", "1",
                          "--spatial-crops", "1", "--max-videos", "3", "--batch-size", "8"]) == 0
    [out] = tmp_path.glob("eval_*.json")
    assert out.name == f"eval_{SILENT}-weights_bench_bench_base_to_novel_single_mean.json"
    result = json.loads(out.read_text())["results"][0]
    assert result["n_videos"] == 3 and result["protocol"]["subset_of"] > 3
    assert result["protocol"]["model_spec"] == {"model_name": SILENT, "pretrained": str(silent_weights),
                                                "quick_gelu": False}
