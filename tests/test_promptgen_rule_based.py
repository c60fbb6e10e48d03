"""Rule-based backend: same shape as the LLM answers, three phrasings, valid prompt files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apclip_core.promptgen import ATTRIBUTE_KEYS, count_tokens, validate_prompt_file
from apclip_core.promptgen import rule_based
from apclip_core.promptgen.schema import PromptFile

REPO = Path(__file__).resolve().parent.parent
PHRASES = {  # per class: distinct phrases for most keys; setting and lighting shared on purpose
    "wave_hand": ["a grassy park", "green grass and trees", "no objects", "bright daylight", "a young adult",
                  "a red t-shirt", "a slim figure", "standing upright", "one arm swinging above the head",
                  "left and right", "moderately fast", "periodic and repeated"],
    "jump": ["a grassy park", "a flat lawn", "a jump rope", "bright daylight", "a child", "blue shorts",
             "a small figure", "knees bent before take-off", "both legs pushing off the ground",
             "straight up and down", "fast", "a bouncing rhythm"],
    "walk": ["a city street", "a paved sidewalk", "a shoulder bag", "bright daylight", "an office worker",
             "a grey coat", "a tall figure", "upright with arms at the sides", "legs stepping alternately",
             "forward across the frame", "slow and steady", "a steady gait cycle"],
}


def write_classes(path: Path) -> Path:
    classes = [{"name": n, "split": "base", "attributes": dict(zip(ATTRIBUTE_KEYS, p)), "render": {"seed": 1}}
               for n, p in PHRASES.items()]
    path.write_text(json.dumps(classes))
    return path


def write_labels(path: Path, names) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    return path


def test_shape_and_phrasings(tmp_path):
    prompt_file = rule_based.build_prompt_file(rule_based.load_classes(write_classes(tmp_path / "classes.json")))
    assert set(prompt_file.classes) == set(PHRASES)
    assert prompt_file.manifest.source == "rule-based"
    assert prompt_file.manifest.counts == {"action_conditioned": 108, "customized": 15, "llm_direct": 12}
    walk = prompt_file.classes["walk"]
    assert sorted((e.llm_prompt, e.attribute) for e in walk.action_conditioned) == sorted(
        (k, a) for k in range(3) for a in ATTRIBUTE_KEYS)
    for attribute in ATTRIBUTE_KEYS:  # three different phrasings, each carrying the class's phrase
        texts = [e.text for e in walk.action_conditioned if e.attribute == attribute]
        assert len(set(texts)) == 3
        phrase = PHRASES["walk"][ATTRIBUTE_KEYS.index(attribute)]
        assert all(phrase in t for t in texts), texts
    # a phrase two classes share is tied to the class's distinctive trait; a unique one is not
    setting = [e.text for e in walk.action_conditioned if e.attribute == "scene.lighting"][0]
    assert "with" in setting and setting != [e.text for e in prompt_file.classes["jump"].action_conditioned
                                             if e.attribute == "scene.lighting"][0]
    assert all(count_tokens(t) <= 30 for c in prompt_file.classes.values()
               for t in [e.text for e in c.action_conditioned] + c.customized + c.llm_direct)


def test_strategies_for_table6(tmp_path):
    prompt_file = rule_based.build_prompt_file(rule_based.load_classes(write_classes(tmp_path / "classes.json")))
    jump = prompt_file.classes["jump"]
    # customized mixes 2-3 attributes per sentence; llm_direct covers only some attributes
    for sentence in jump.customized:
        assert sum(p in sentence for p in PHRASES["jump"]) >= 2, sentence
    used = {p for p in PHRASES["jump"] if any(p in s for s in jump.llm_direct)}
    assert 0 < len(used) < 12
    assert "customized" in prompt_file.manifest.notes and "llm_direct" in prompt_file.manifest.notes


def test_written_file_validates(tmp_path):
    out = tmp_path / "bench.json"
    rule_based.build_prompt_file(rule_based.load_classes(write_classes(tmp_path / "classes.json"))).write(out)
    PromptFile.model_validate_json(out.read_text())
    assert validate_prompt_file(out, list(PHRASES)) == []


def test_missing_attribute_is_a_clear_error(tmp_path):
    path = write_classes(tmp_path / "classes.json")
    data = json.loads(path.read_text())
    del data[1]["attributes"]["body.move_speed"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="body.move_speed"):
        rule_based.load_classes(path)


def test_cli_classes_json_then_validate(tmp_path):
    out, labels = tmp_path / "p.json", write_labels(tmp_path / "labels.csv", PHRASES)
    run = [sys.executable, "-m", "apclip_core"]
    made = subprocess.run(run + ["prompts", "--classes-json", str(write_classes(tmp_path / "c.json")), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    checked = subprocess.run(run + ["validate-prompts", str(out), "--labels", str(labels)],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr


def test_shipped_bench_prompts_match_the_benchmark(bench_root):
    """prompts/apclip_bench.json covers the benchmark's labels and passes every check."""
    from apclip_core.annotations import read_labels

    shipped = REPO / "prompts" / "apclip_bench.json"
    assert shipped.exists(), "run: python -m apclip_core prompts --from-benchmark"
    labels = read_labels(bench_root / "labels.csv")
    assert validate_prompt_file(shipped, labels) == []
    regenerated = rule_based.build_prompt_file(rule_based.load_classes(bench_root / "classes.json"))
    committed = PromptFile.model_validate_json(shipped.read_text())
    assert regenerated.classes == committed.classes, "prompts/apclip_bench.json is stale: regenerate it"
