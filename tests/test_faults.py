"""The smoke profile is an instrument: known faults injected into the correct pipeline must each show as a
significant drop (paper.faults). The runs are the smoke tables' own (AP-CLIP and Ours+TM, seeds 1-3), trained
once and shared with notebooks 12 and 15."""
from __future__ import annotations

import numpy as np
import pytest

from apclip_core.paper import faults
from apclip_core.prompts.bank import PromptBank


def test_swapped_bank_rotates_a_quarter_of_the_classes():
    bank = PromptBank([f"c{i}" for i in range(8)], [[f"p{i}a", f"p{i}b"] for i in range(8)], "action_conditioned",
                      [["k", "k"] for _ in range(8)])
    out = faults.swapped(bank, seed=0)
    moved = [i for i in range(8) if out.prompts[i] != bank.prompts[i]]
    assert len(moved) == 2 and sorted(map(tuple, (out.prompts[i] for i in moved))) == \
        sorted(map(tuple, (bank.prompts[i] for i in moved)))
    assert out.classnames == bank.classnames


def test_motion_only_subset_keeps_the_groups(bench_root):
    from apclip_core.data.protocols import bench_base_to_novel

    novel = bench_base_to_novel(bench_root).eval[1]
    subset = faults.motion_only_split(novel)
    classes = {subset.classnames[r.label] for r in subset.records}
    assert len(classes) == 12 and len(subset.records) == 12 * 32
    assert subset.classnames == novel.classnames
    stems = {c.split()[0] for c in classes}
    assert len(stems) == 4, "four groups of three, one stem each"


@pytest.fixture(scope="module")
def measured():
    return faults.measure_faults()


def test_faults_are_injected_and_measured_paired_over_seeds_and_classes(measured):
    print("\n" + faults.faults_markdown(measured))
    assert list(measured["fault"]) == list(faults.FAULTS)
    assert set(measured["seeds"]) == {3}
    assert list(measured["videos"]) == [24 * 32] * 3 + [12 * 32]
    for row in measured.itertuples():
        assert row.low <= row.drop <= row.high
    swap = measured.set_index("fault").loc["swapped_prompts"]
    assert swap["drop"] > 0, "giving a quarter of the classes another class's prompts must cost something"


# The benchmark's verdict on each fault, as measured (figures/faults.md): with 24 novel classes as the unit, none of
# the four drops is significant yet. MAKA to mean and the swapped prompts cost points in the mean but not beyond the
# classes' spread; the smoke runs learn nothing from the Body prompts (Table 5: without them is better) and their
# temporal module stays at its zero initialisation in 2 epochs, so neither of those faults can show. strict: when a
# change of the benchmark makes a fault detectable, this test fails and the marker has to go.
UNDETECTED = {
    "maka_to_mean": "MAKA's gain on the smoke runs is within the classes' spread (Table 7: inconclusive)",
    "swapped_prompts": "the drop is about 2 of 24 classes, at the edge of what 24 classes can show",
    "no_body_prompts": "the smoke runs do not use the Body prompts (Table 5: w/o Body scores higher)",
    "shuffled_motion_frames": "the smoke temporal module stays at its zero initialisation (Table 5: Ours+TM = Ours)",
}


@pytest.mark.parametrize("fault", list(faults.FAULTS))
def test_the_smoke_profile_detects_each_fault(measured, fault, request):
    if fault in UNDETECTED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=UNDETECTED[fault]))
    row = measured.set_index("fault").loc[fault]
    assert row["detected"] and row["low"] > 0, f"{fault}: drop {row['drop']:.1f} [{row['low']:.1f}, {row['high']:.1f}]"
