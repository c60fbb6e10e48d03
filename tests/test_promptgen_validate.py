"""validate-prompts: one test per violation kind, on a valid file made by the rule-based backend."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from apclip_core.prompts import ATTRIBUTE_KEYS, rule_based
from apclip_core.prompts.validate import main, validate_prompt_file

NAMES = ["brush_hair", "cartwheel", "climb"]


@pytest.fixture
def valid(tmp_path) -> tuple[dict, Path]:
    """A valid prompt file (dict) and its labels CSV."""
    words = ["amber", "birch", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo", "jade", "kelp", "lilac"]
    classes = [{"name": n, "split": "base",
                "attributes": {k: f"{words[(i * 5 + j) % 12]} {words[(i * 7 + j + 3) % 12]} {k.split('.')[1]}"
                               for j, k in enumerate(ATTRIBUTE_KEYS)}} for i, n in enumerate(NAMES)]
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    data = json.loads(rule_based.build_prompt_file(rule_based.load_classes(tmp_path / "classes.json"))
                      .model_dump_json(exclude_none=True))
    labels = tmp_path / "labels.csv"
    labels.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(NAMES)))
    return data, labels


def kinds(data: dict, labels_path: Path, tmp_path: Path) -> set[str]:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(data))
    names = [line.split(",", 1)[1] for line in labels_path.read_text().splitlines()[1:]]
    return {v.kind for v in validate_prompt_file(path, names)}


def test_valid_file_passes_and_cli_exit_codes(valid, tmp_path, capsys):
    data, labels = valid
    assert kinds(data, labels, tmp_path) == set()
    assert main([str(tmp_path / "prompts.json"), "--labels", str(labels)]) == 0
    data["classes"]["climb"]["customized"][0] = "???"
    assert kinds(data, labels, tmp_path) == {"garbled"}
    assert main([str(tmp_path / "prompts.json"), "--labels", str(labels)]) == 1
    assert "garbled" in capsys.readouterr().out


def test_missing_and_unknown_classes(valid, tmp_path):
    data, labels = valid
    data["classes"]["Climb"] = data["classes"].pop("climb")
    assert kinds(data, labels, tmp_path) == {"missing_class", "unknown_class"}


def test_structure_counts_per_llm_prompt_and_attribute(valid, tmp_path):
    data, labels = valid
    entries = data["classes"]["cartwheel"]["action_conditioned"]
    entries[5] = dict(entries[4], text="A different sentence about the cartwheel props here.")  # (k, attr) repeated
    assert "structure" in kinds(data, labels, tmp_path)
    del entries[5]
    data["manifest"]["counts"]["action_conditioned"] -= 1
    assert kinds(data, labels, tmp_path) == {"structure"}


def test_manifest_counts_must_match(valid, tmp_path):
    data, labels = valid
    data["manifest"]["num_classes"] = 4
    assert kinds(data, labels, tmp_path) == {"manifest"}


def test_schema_violation(valid, tmp_path):
    data, labels = valid
    data["classes"]["climb"]["action_conditioned"][0]["attribute"] = "scene.weather"
    assert kinds(data, labels, tmp_path) == {"schema"}


def test_token_limit(valid, tmp_path):
    data, labels = valid
    data["classes"]["climb"]["llm_direct"][0] = "The climber " + "slowly " * 30 + "reaches the top."
    assert kinds(data, labels, tmp_path) == {"tokens"}


@pytest.mark.parametrize("text", ["", "   ", "1234 5678 90", "Rope\x00 on the wall.", "ok"])
def test_garbled(valid, tmp_path, text):
    data, labels = valid
    data["classes"]["climb"]["action_conditioned"][3]["text"] = text
    assert kinds(data, labels, tmp_path) == {"garbled"}


def test_exact_and_near_duplicates_across_classes(valid, tmp_path):
    data, labels = valid
    a, b = data["classes"]["brush_hair"]["llm_direct"], data["classes"]["climb"]["llm_direct"]
    a[0] = b[0] = "The person stands in a bright room with a mirror."
    assert kinds(data, labels, tmp_path) == {"duplicate"}
    a[0], b[0] = "brush_hair: The person stands in a bright room!", "Climb -- the person stands in a bright room."
    assert kinds(data, labels, tmp_path) == {"near_duplicate"}  # equal once class name and punctuation go
    a[0] = "The tall person stands quietly in a bright white room with a large round mirror and a wooden chair nearby."
    b[0] = "The tall person stands quietly in a bright white room with a large round mirror and a wooden stool nearby."
    assert kinds(data, labels, tmp_path) == {"near_duplicate"}  # difflib ratio > 0.9 on content words
    b[0] = "The person grips a rope on a tall rock wall outdoors."
    assert kinds(data, labels, tmp_path) == set()
