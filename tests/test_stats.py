"""Paired intervals and verdicts (paper.stats), and the tables' use of them: a gain on the same videos is judged
video by video over the seeds, and the README's claims table is the tables' verdicts, never typed."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from apclip_core.paper import reproduce, stats
from apclip_core.paper import report


def _methods(n=800, seeds=(1, 2, 3), wins=0.0, losses=0.0, base_rate=0.5, seed=0):
    """Two methods on the same n videos: the baseline right on `base_rate` of them; the method flips a fraction
    `wins` of the baseline's wrong videos to right and `losses` of its right videos to wrong (per seed)."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(size=n) < base_rate
    base, method = {}, {}
    for s in seeds:
        b = truth ^ (rng.uniform(size=n) < 0.05)             # seeds differ a little, as trainings do
        m = b.copy()
        m[~b & (rng.uniform(size=n) < wins)] = True
        m[b & (rng.uniform(size=n) < losses)] = False
        base[s], method[s] = {"novel": b}, {"novel": m}
    return method, base


def test_a_real_gain_holds_and_its_reverse_contradicts():
    method, base = _methods(wins=0.12)
    g = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    assert g.verdict == "holds" and g.low > 0 and g.low <= g.gain <= g.high
    assert g.seeds == 3 and g.videos == 800
    expected = np.mean([100 * (method[s]["novel"].mean() - base[s]["novel"].mean()) for s in base])
    assert g.gain == pytest.approx(expected)
    back = stats.paired_gain(base, method, stats.top1("novel"), splits=["novel"])
    assert back.verdict == "contradicts" and back.gain == pytest.approx(-g.gain)


def test_no_gain_is_inconclusive_and_the_interval_is_paired():
    method, base = _methods(wins=0.02, losses=0.02)
    g = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    assert g.verdict == "inconclusive" and g.low < 0 < g.high
    # paired: far narrower than the unpaired spread of one accuracy on 800 videos (about +-3.5 points)
    assert g.high - g.low < 3.5


def test_two_points_are_detectable_at_the_benchmarks_size():
    """The benchmark's sizing rule: a 2-point paired gain on 768 novel videos when the methods disagree on 5%."""
    assert stats.detectable_difference(768, 0.05) < 2.3
    method, base = _methods(n=768, wins=0.05, losses=0.01, base_rate=0.6, seed=3)
    g = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    assert 1.0 < g.gain < 3.5 and g.verdict == "holds"


def test_harmonic_mean_gain_uses_both_splits():
    method, base = _methods(wins=0.1)
    both_m = {s: {"base": v["novel"], "novel": v["novel"]} for s, v in method.items()}
    both_b = {s: {"base": v["novel"], "novel": v["novel"]} for s, v in base.items()}
    hm = stats.paired_gain(both_m, both_b, stats.harmonic("base", "novel"), splits=["base", "novel"])
    top = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    assert hm.gain == pytest.approx(top.gain) and hm.videos == 1600


def test_mismatched_videos_are_refused():
    method, base = _methods()
    base[1] = {"novel": base[1]["novel"][:-1]}
    with pytest.raises(ValueError, match="different"):
        stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    with pytest.raises(ValueError, match="no seed"):
        stats.paired_gain({9: method[1]}, base, stats.top1("novel"), splits=["novel"])


def test_mcnemar_exact():
    a = np.array([True] * 10 + [False] * 90)
    b = np.zeros(100, bool)
    assert stats.mcnemar(a, b) == pytest.approx(2 / 2 ** 10)   # 10 wins, 0 losses
    assert stats.mcnemar(a, a) == 1.0
    c = np.array([True, False] * 5 + [False] * 90)
    d = np.array([False, True] * 5 + [False] * 90)
    assert stats.mcnemar(c, d) == 1.0


def _fake_run(tmp_path, name, correct: dict[str, np.ndarray]):
    """A finished run folder with eval_<split>.json holding per-video predictions (label 0; right -> 0)."""
    run = tmp_path / name
    run.mkdir()
    for split, ok in correct.items():
        (run / f"eval_{split}.json").write_text(json.dumps({
            "split": split, "top1": 100 * ok.mean(), "top5": 100.0,
            "predicted": [0 if v else 1 for v in ok.tolist()], "labels": [0] * len(ok)}))
    return str(run)


def test_intervals_and_verdicts_from_run_folders(tmp_path):
    method, base = _methods(n=400, wins=0.2)
    rows = []
    for name, results in (("AP-CLIP", method), ("ViFi-CLIP", base)):
        for s, r in results.items():
            both = {"bench_base_val": r["novel"], "bench_novel_val": r["novel"]}
            run = _fake_run(tmp_path, f"{name}-{s}", both)
            for split, ok in both.items():
                rows.append({"method": name, "dataset": "apclip_bench", "seed": s, "run_dir": run,
                             "metric": split.split("_")[1], "value": 100 * ok.mean()})
    found = reproduce.intervals(pd.DataFrame(rows), [("AP-CLIP", "ViFi-CLIP")])
    assert list(found["metric"]) == ["base", "novel", "hm"] and set(found["verdict"]) == {"holds"}
    claims = reproduce.claim_verdicts(found, {"novel": [("AP-CLIP - ViFi-CLIP", "novel")],
                                              "absent": [("AP-CLIP - Other", "novel")]})
    assert claims == {"novel": "holds", "absent": "not measured"}


def test_readme_claims_table_is_generated(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "table2_base_to_novel.json").write_text(json.dumps({
        "gains": [{"comparison": "AP-CLIP - ViFi-CLIP", "metric": "novel", "ours": 3.0, "paper": 3.0}],
        "intervals": [{"comparison": "AP-CLIP - ViFi-CLIP", "metric": "novel", "gain": 3.0, "low": 1.0,
                       "high": 5.0, "verdict": "holds", "seeds": 3, "videos": 768}]}))
    text = report.claims_table(figures)
    assert "+3.0 [+1.0, +5.0]" in text and "holds" in text and "3 x 768" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.CLAIMS_BEGIN}\nold\n{report.CLAIMS_END}\nrest\n")
    assert report.write_claims_into(readme, figures) is True
    assert report.write_claims_into(readme, figures) is False
    assert readme.read_text().startswith("intro\n") and "\nold\n" not in readme.read_text()


def test_readme_claims_table_matches_the_tracked_tables():
    """The README's claims table is what `report --claims --readme` makes of the committed figures/*.json."""
    readme = (reproduce.paths.PROJECT_ROOT / "README.md").read_text()
    block = readme.split(report.CLAIMS_BEGIN, 1)[1].split(report.CLAIMS_END, 1)[0].strip()
    assert block == report.claims_table(reproduce.paths.PROJECT_ROOT / "figures").strip()
    assert not math.isnan(len(block))


def test_classes_are_the_unit_when_answers_do_not_vary_within_a_class():
    """24 classes of 32 videos, each class all right or all wrong: drawing videos would see 768 observations,
    drawing classes sees 24, and its interval is the wider, honest one."""
    labels = np.repeat(np.arange(24), 32)
    rng = np.random.default_rng(0)
    base, method = {}, {}
    right = rng.uniform(size=24) < 0.4
    flip = rng.uniform(size=24)
    better = np.where(right, flip > 0.1, flip < 0.3)         # wins on some classes, losses on others
    for s in (1, 2, 3):                                      # every seed the same: only the sampling is left
        base[s], method[s] = {"novel": right[labels]}, {"novel": better[labels]}
    by_video = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"])
    by_class = stats.paired_gain(method, base, stats.top1("novel"), splits=["novel"], clusters={"novel": labels})
    assert by_class.gain == pytest.approx(by_video.gain)
    assert (by_class.high - by_class.low) > 2 * (by_video.high - by_video.low)
