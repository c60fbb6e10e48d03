import math

import numpy as np
import pytest
import torch

from apclip_core.engine.metrics import format_mean_std, harmonic_mean, mean_std, per_class_accuracy, topk_accuracy


def test_topk_accuracy_counts_hits_within_k():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([0, 1, 1, 0])
    acc = topk_accuracy(logits, labels, ks=(1, 2, 5))
    assert acc[1] == pytest.approx(25.0)   # only the first is right at top-1
    assert acc[2] == pytest.approx(75.0)   # 2nd and 3rd: the label is second best; 4th misses
    assert acc[5] == pytest.approx(100.0)  # k >= C: every class is in the top-k


def test_topk_accuracy_rejects_shape_mismatch_and_empty_is_nan():
    with pytest.raises(ValueError, match="expected logits"):
        topk_accuracy(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    assert math.isnan(topk_accuracy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))[1])


def test_per_class_accuracy_with_missing_class():
    preds = torch.tensor([0, 0, 1, 2])
    labels = torch.tensor([0, 1, 1, 2])
    acc = per_class_accuracy(preds, labels, num_classes=4)
    assert acc[:3] == [100.0, 50.0, 100.0] and math.isnan(acc[3])


def test_harmonic_mean_matches_table2_values():
    # AP-CLIP K-400 row of Table 2: base 77.2, novel 64.1 -> HM 70.0
    assert round(harmonic_mean(77.2, 64.1), 1) == 70.0
    assert harmonic_mean(0.0, 50.0) == 0.0
    assert harmonic_mean(40.0, 40.0) == pytest.approx(40.0)
    assert math.isnan(harmonic_mean(math.nan, 3.0))
    with pytest.raises(ValueError):
        harmonic_mean(-1.0, 3.0)


def test_mean_std_agrees_with_numpy():
    vals = [55.0, 56.1, 54.9]
    m, s = mean_std(vals)
    assert m == pytest.approx(np.mean(vals)) and s == pytest.approx(np.std(vals, ddof=1))
    assert mean_std(vals, ddof=0)[1] == pytest.approx(np.std(vals))
    assert mean_std([3.0]) == (3.0, 0.0)
    assert format_mean_std([1.0, 2.0, 3.0]) == "2.0 ± 1.0"
    with pytest.raises(ValueError):
        mean_std([])
