"""Is a gain real? Paired intervals and verdicts for the gains the paper claims.

Two methods evaluated on the same videos are compared video by video (paired), which is far more
sensitive than comparing two accuracies: most videos are right (or wrong) under both, and only the videos
on which they disagree carry the difference. With several training seeds, a gain varies for two reasons,
the videos that happen to be in the evaluation list and the seed a run trained with; the interval covers
both with a two-level bootstrap:

    for each of B replicates: draw the seeds with replacement (paired: a seed is a seed of both methods),
    draw each split's videos with replacement (the same draw for every seed and both methods), and
    recompute the gain = mean over the drawn seeds of statistic(method) - statistic(baseline)

Drawn videos are independent only when a model's answers vary from video to video; where they hardly vary
within a class (the embedded benchmark's classes are mostly all right or all wrong), the tables draw whole
CLASSES instead (`clusters`), so an interval rests on as many units as there really are.

The 95% interval is the 2.5 and 97.5 percentiles of the replicates; the point estimate is the gain on all
videos and seeds. The verdict on a claim "method beats baseline" is:

    holds         the whole interval is above 0
    contradicts   the whole interval is below 0
    inconclusive  the interval contains 0 (this instrument cannot tell at this size)

`mcnemar` is the exact paired test for one seed (two-sided binomial test on the discordant videos), and
`detectable_difference` is the smallest gain a split of n videos detects (5% two-sided, 80% power) when the
two methods disagree on a fraction `discordant` of the videos: the figure that sizes the benchmark.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

VERDICTS = ("holds", "contradicts", "inconclusive")
BOOTSTRAP_REPLICATES = 2000

# One method's per-video results: seed -> split -> bool array (True: top-1 right), the same videos in the same
# order for every seed and method of a comparison.
Correct = Mapping[object, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Gain:
    """A claimed gain as measured: points (x100), its 95% interval, the verdict, and what it rests on."""
    gain: float
    low: float
    high: float
    verdict: str
    seeds: int
    videos: int

    def to_json(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        return f"{self.gain:+.1f} [{self.low:+.1f}, {self.high:+.1f}] {self.verdict}"


def correct(predicted: Sequence, labels: Sequence) -> np.ndarray:
    """Per video: was its top-1 prediction its label (a video that failed to decode, predicted None, was not)."""
    return np.array([p is not None and p == y for p, y in zip(predicted, labels)], dtype=bool)


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "holds"
    if high < 0:
        return "contradicts"
    return "inconclusive"


def top1(split: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """Statistic: top-1 accuracy (percent) on one split; arrays may carry leading replicate axes."""
    return lambda acc: acc[split]


def harmonic(base: str, novel: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """Statistic: the harmonic mean of two splits' top-1 (percent), 0 where both are 0."""
    def hm(acc):
        b, n = acc[base], acc[novel]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b + n > 0, 2 * b * n / np.maximum(b + n, 1e-12), 0.0)
    return hm


def mean_of(splits: Sequence[str]) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """Statistic: the mean top-1 over several splits (Table 1's mean over a dataset's val splits)."""
    return lambda acc: sum(acc[s] for s in splits) / len(splits)


def _stack(correct: Correct, seeds: Sequence, split: str) -> np.ndarray:
    rows = [np.asarray(correct[s][split], dtype=bool) for s in seeds]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"split {split!r}: the seeds were evaluated on different numbers of videos "
                         f"({sorted({len(r) for r in rows})}); a paired comparison needs the same videos")
    return np.stack(rows).astype(np.float32)       # [S, N]


def paired_gain(method: Correct, baseline: Correct, statistic, *, splits: Sequence[str],
                clusters: Optional[Mapping[str, np.ndarray]] = None,
                replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> Gain:
    """The gain statistic(method) - statistic(baseline), mean over the seeds both have, with its two-level
    bootstrap interval and verdict (module docstring). `splits` are the splits the statistic reads.

    clusters: per split, each video's class (its label). Given, the bootstrap draws CLASSES with replacement and
    keeps every video of a drawn class: the honest unit when a model's answers hardly vary within a class (the
    embedded benchmark: most classes are all right or all wrong), where drawing videos would count one class's
    32 near-identical videos as 32 independent observations."""
    seeds = [s for s in method if s in baseline]
    if not seeds:
        raise ValueError("no seed was run for both methods: nothing to compare")
    rng = np.random.default_rng(seed)
    m = {sp: _stack(method, seeds, sp) for sp in splits}
    b = {sp: _stack(baseline, seeds, sp) for sp in splits}
    for sp in splits:
        if m[sp].shape != b[sp].shape:
            raise ValueError(f"split {sp!r}: the two methods were evaluated on different videos "
                             f"({m[sp].shape[1]} vs {b[sp].shape[1]})")
    point = float(np.mean(statistic({sp: 100 * m[sp].mean(1) for sp in splits}) -
                          statistic({sp: 100 * b[sp].mean(1) for sp in splits})))
    n_seeds = len(seeds)
    seed_draw = rng.integers(0, n_seeds, size=(replicates, n_seeds))            # [B, S]
    acc_m, acc_b = {}, {}
    for sp in splits:
        n = m[sp].shape[1]
        # draws as counts: acc[b, s] = sum_v counts[b, v] * correct[s, v] / sum_v counts[b, v] (one matrix product)
        if clusters is not None:
            groups, index = np.unique(np.asarray(clusters[sp]), return_inverse=True)
            drawn = np.zeros((replicates, len(groups)), np.float32)
            np.add.at(drawn, (np.arange(replicates)[:, None],
                              rng.integers(0, len(groups), size=(replicates, len(groups)))), 1.0)
            counts = drawn[:, index]                                             # a class's videos come together
        else:
            counts = np.zeros((replicates, n), np.float32)
            np.add.at(counts, (np.arange(replicates)[:, None], rng.integers(0, n, size=(replicates, n))), 1.0)
        total = counts.sum(1, keepdims=True)
        per_seed_m, per_seed_b = 100 * counts @ m[sp].T / total, 100 * counts @ b[sp].T / total   # [B, S]
        acc_m[sp] = np.take_along_axis(per_seed_m, seed_draw, axis=1)
        acc_b[sp] = np.take_along_axis(per_seed_b, seed_draw, axis=1)
    gains = (statistic(acc_m) - statistic(acc_b)).mean(axis=1)
    low, high = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
    return Gain(gain=point, low=low, high=high, verdict=verdict(low, high), seeds=n_seeds,
                videos=sum(m[sp].shape[1] for sp in splits))


def mcnemar(method: np.ndarray, baseline: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of two methods' per-video correctness on the same videos."""
    method, baseline = np.asarray(method, bool), np.asarray(baseline, bool)
    wins, losses = int((method & ~baseline).sum()), int((~method & baseline).sum())
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def detectable_difference(n_videos: int, discordant: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest paired gain (points) detectable on n videos when the methods disagree on a fraction
    `discordant` of them (normal approximation of McNemar's test)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return 100 * z * math.sqrt(discordant / n_videos)
