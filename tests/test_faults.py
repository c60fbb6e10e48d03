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


def test_each_injected_fault_is_a_significant_drop(measured):
    print("\n" + faults.faults_markdown(measured))
    assert list(measured["fault"]) == list(faults.FAULTS)
    for row in measured.itertuples():
        assert row.detected and row.low > 0, f"{row.fault}: drop {row.drop:.1f} [{row.low:.1f}, {row.high:.1f}]"
        assert row.seeds == 3
    assert np.all(measured["videos"] >= 12 * 32)
