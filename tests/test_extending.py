"""Extending apclip from outside the library: a new similarity, prompt strategy and dataset are
registered here, in this test file only, and an evaluation runs with each."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from apclip_core.data import protocols
from apclip_core.data.views import ViewSpec
from apclip_core.engine.config import load_config
from apclip_core.engine.evaluate import evaluate, evaluate_protocol
from apclip_core.model import similarity
from apclip_core.prompts import strategies
from apclip_core.prompts.bank import PromptBank


@pytest.fixture(scope="module")
def tiny_model():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    return create_model("apclip-tiny", None).eval()


@pytest.fixture(scope="module")
def small_split(bench_root):
    split = protocols.bench_base_to_novel(bench_root).eval[1]
    keep = [r for r in split.records if r.label < 3][:6]
    return protocols.Split("bench_novel_val", keep, split.classnames[:3], split.root)


def max_frame_similarity(video, prompts, mask):
    """Best single (frame, prompt) cosine: a similarity the library does not ship."""
    cos = torch.einsum("bnd,ctd->bcnt", video, prompts)
    if mask is not None:
        cos = cos.masked_fill(~mask[None, :, None, :], float("-inf"))
    return cos.flatten(2).max(-1).values


def test_a_new_similarity_is_accepted_by_configs_and_evaluation(tiny_model, small_split):
    similarity.register_similarity("max_frame", max_frame_similarity, replace=True)
    assert "max_frame" in similarity.similarity_names()
    bank = PromptBank.single(small_split.classnames)
    result = evaluate(tiny_model, small_split, bank, similarity="max_frame", view=ViewSpec(4))
    assert result.protocol["similarity"] == "max_frame" and result.n_evaluated == len(small_split.records)
    assert load_config("bench_base2novel", similarity="max_frame").similarity == "max_frame"
    with pytest.raises(ValueError, match="max_frame"):  # the error lists it among the valid choices
        load_config("bench_base2novel", similarity="no_such_thing")


def test_a_new_prompt_strategy_runs_an_evaluation(tiny_model, small_split):
    def two_templates(names, _file, _drop):
        return PromptBank(list(names), [[f"a clip of {n}.", f"someone is {n}."] for n in names], "two_templates")

    strategies.register_strategy("two_templates", two_templates, replace=True)
    cfg = load_config("bench_base2novel", prompt_strategy="two_templates", similarity="maka", frames=4,
                      temporal_views=1, spatial_crops=1)
    (result,) = evaluate_protocol(tiny_model, [small_split], cfg)
    assert result.protocol["prompt_strategy"] == "two_templates" and result.protocol["prompts_per_class"] == [2, 2]


def test_a_new_dataset_and_protocol_evaluate_by_name(tiny_model, small_split, tmp_path):
    # a dataset laid out in the community format: videos + one list + a labels CSV
    from apclip_core.data.annotations import write_labels, write_video_list

    for rec in small_split.records:
        (tmp_path / "videos" / rec.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(small_split.root / rec.path, tmp_path / "videos" / rec.path)
    write_video_list(tmp_path / "val.txt", small_split.records)
    write_labels(tmp_path / "labels.csv", small_split.classnames)
    protocols.register_dataset("toyset", {"video_dir": "videos", "labels": "labels.csv"}, aliases=("toy-set",))

    @protocols.register_protocol(name="toyset_eval")
    def toyset_eval(root) -> protocols.Protocol:
        root = Path(root)
        split = protocols.Split("toyset_val", protocols.read_video_list(root / "val.txt"),
                                protocols.read_labels(root / "labels.csv"), root / "videos")
        return protocols.Protocol([], [split], name="toyset/eval")

    assert "toyset_eval" in protocols.protocol_names() and "toyset" in protocols.DATASETS
    cfg = load_config("bench_base2novel", protocol="toyset_eval", protocol_args={"root": str(tmp_path)},
                      prompt_strategy="single", similarity="mean", frames=4, temporal_views=1, spatial_crops=1)
    from apclip_core.engine.config import load_protocols

    (result,) = evaluate_protocol(tiny_model, load_protocols(cfg).eval, cfg)
    assert result.split == "toyset_val" and result.protocol["dataset"] == "toyset"
    assert result.n_videos == len(small_split.records) and result.n_failed == 0
