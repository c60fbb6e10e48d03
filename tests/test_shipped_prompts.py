"""The shipped prompt sets of the real datasets: valid against the real label files, and of the
measured quality their manifests record (beside that of hmdb51.json and ucf101.json)."""
from __future__ import annotations

from pathlib import Path

import pytest

from apclip_core.data.annotations import read_labels
from apclip_core.paths import prompts_dir
from apclip_core.prompts.quality import measure
from apclip_core.prompts.schema import PromptFile
from apclip_core.prompts.validate import validate_prompt_file

# dataset -> (labels files under the protocol lists' labels/, strategies the set holds)
SETS = {
    "hmdb51": (["hmdb_51_labels.csv"], ("action_conditioned", "customized", "llm_direct")),
    "ucf101": (["ucf_101_labels.csv"], ("action_conditioned", "customized", "llm_direct")),
    "k400": (["kinetics_400_labels.csv"], ("action_conditioned", "customized", "llm_direct")),
    "k600_zs": (["ZS_split1_K600.csv", "ZS_split2_K600.csv", "ZS_split3_K600.csv"],
                ("action_conditioned", "customized", "llm_direct")),
    "ssv2": (["ssv2_labels.csv"], ("action_conditioned",)),
}
NEW_SETS = ("k400", "k600_zs", "ssv2")


def labels_of(splits_root: Path, dataset: str) -> list[str]:
    files = SETS[dataset][0]
    return list(dict.fromkeys(name for f in files for name in read_labels(splits_root / "labels" / f)))


@pytest.mark.needs_splits
@pytest.mark.parametrize("dataset", list(SETS))
def test_shipped_set_is_valid_for_the_real_label_file(dataset, splits_root):
    labels = labels_of(splits_root, dataset)
    assert validate_prompt_file(prompts_dir() / f"{dataset}.json", labels) == []
    prompt_file = PromptFile.read(prompts_dir() / f"{dataset}.json")
    assert list(prompt_file.classes) == labels  # every class, named exactly as the label file, in its order
    assert set(prompt_file.counts()) == set(SETS[dataset][1])


@pytest.mark.parametrize("dataset", NEW_SETS)
def test_new_sets_record_their_measured_quality_and_how_they_were_made(dataset):
    prompt_file = PromptFile.read(prompts_dir() / f"{dataset}.json")
    manifest = prompt_file.manifest
    assert manifest.source == "llm-offline" and "llm_prompts.json" in manifest.notes
    quality = manifest.quality
    assert quality["this_set"] == measure(prompt_file)  # recomputed, not copied
    assert set(quality["reference"]) == {"hmdb51", "ucf101"}
    for strategy, q in quality["this_set"].items():
        assert q["near_duplicate_pairs_within_class"] == 0, strategy
        assert q["texts_naming_their_class"] == 0, strategy
        # phrasing as varied as the shipped HMDB-51 set's, on samples of equal size (the whole-set ratio falls
        # with size; HMDB-51 has fewer than 1,000 CuPL and direct texts: their ratio is over all of them); SSv2's
        # object-agnostic classes share their vocabulary (hand, object, surface): 0.7 of it
        hmdb = quality["reference"]["hmdb51"][strategy]["distinct_bigram_ratio_1000"]
        assert q["distinct_bigram_ratio_1000"] >= (0.7 if dataset == "ssv2" else 0.9) * hmdb, (strategy, q, hmdb)
    if dataset == "ssv2":
        assert "SSv2" in manifest.notes and "body." in manifest.notes  # how the 12 attributes were read


def test_a_class_named_in_its_own_description_is_counted():
    from apclip_core.prompts.quality import names_itself

    assert names_itself("Two people are moving furniture up the stairs.", "moving furniture")
    assert not names_itself("A pedestrian on a sidewalk.", "walk")


def test_the_preflight_of_every_table_finds_the_shipped_prompt_files():
    """Tables 1-7 in the paper profile name prompts/k400.json, k600_zs.json, ssv2.json, hmdb51.json, ...:
    none is reported missing (other problems - no GPU, no videos - are expected on this machine)."""
    from apclip_core.paper.preflight import NOTEBOOKS, check

    from apclip_core.engine.config import load_config

    notebooks = sorted(NOTEBOOKS.glob("1[1-7]_*.ipynb"))
    assert len(notebooks) == 7
    for notebook in notebooks:
        problems = check(notebook, "paper")
        assert not [p for p in problems if p.startswith("prompt file")], (notebook.name, problems)

    zero_shot = load_config("k400_zero_shot")
    assert zero_shot.prompt_file == "prompts/k400.json"
    assert zero_shot.eval_prompt_files["k600"] == "prompts/k600_zs.json"
