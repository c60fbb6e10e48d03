"""Every protocol on the real ViFi-CLIP lists (../shared), and the embedded-benchmark protocols."""
from __future__ import annotations

from collections import Counter

import pytest

from apclip_core.data import protocols as P
from apclip_core.data.annotations import VideoRecord, write_labels, write_video_list

# GUIDE.md's protocol counts. K-600: GUIDE's 14083/13977/14135 are `wc -l` of files whose last line
# has no newline; the lists really hold one video more each (14084/13978/14136), measured here.
B2N = {"hmdb51": (26, 25, 416, 780, 750), "ucf101": (51, 50, 816, 2088, 1695),
       "k400": (200, 200, 3200, 9944, 9933), "ssv2": (87, 87, 1392, 17562, 7215)}
ZERO_SHOT = {"hmdb51": (51, [1530, 1530, 1530]), "ucf101": (101, [3783, 3734, 3696]),
             "k600": (160, [14084, 13978, 14136])}
CLASSES = {"hmdb51": 51, "ucf101": 101, "ssv2": 174}
pytestmark = pytest.mark.needs_splits


@pytest.mark.parametrize("dataset", sorted(B2N))
def test_base_to_novel_counts(splits_root, tmp_path, dataset):
    n_base, n_novel, n_train, n_bval, n_nval = B2N[dataset]
    for seed in P.SEEDS:
        p = P.base_to_novel(dataset, seed, splits_root=splits_root, video_root=tmp_path)
        (train,), (bval, nval) = p.train, p.eval
        assert (train.num_classes, len(train), len(bval), len(nval)) == (n_base, n_train, n_bval, n_nval)
        assert bval.classnames == train.classnames and nval.num_classes == n_novel
        assert not set(train.classnames) & set(nval.classnames)              # disjoint
        assert Counter(r.label for r in train.records) == {c: 16 for c in range(n_base)}  # 16 shots
        assert {r.label for r in nval.records} == set(range(n_novel))
        assert train.root == tmp_path
    trains = [{r.path for r in P.base_to_novel(dataset, s, splits_root=splits_root).train[0].records}
              for s in P.SEEDS]
    assert trains[0] != trains[1] != trains[2]                                # three different seeds


@pytest.mark.parametrize("dataset", sorted(ZERO_SHOT))
def test_zero_shot_counts(splits_root, dataset):
    n_classes, counts = ZERO_SHOT[dataset]
    p = P.zero_shot(dataset, splits_root=splits_root)
    assert p.train == [] and [len(s) for s in p.eval] == counts
    assert all(s.num_classes == n_classes for s in p.eval)
    if dataset == "k600":  # novel w.r.t. Kinetics-400
        k400 = set(P.kinetics400(splits_root=splits_root, train_list="tiny").eval[0].classnames)
        assert all(not set(s.classnames) & k400 for s in p.eval)
        assert len({tuple(s.classnames) for s in p.eval}) == 3


@pytest.mark.parametrize("dataset", sorted(CLASSES))
def test_few_shot_counts(splits_root, dataset):
    for k in P.FEW_SHOT_K:
        p = P.few_shot(dataset, k, splits_root=splits_root)
        (train,), (ev,) = p.train, p.eval
        assert train.num_classes == CLASSES[dataset] and len(train) == k * CLASSES[dataset]
        assert Counter(r.label for r in train.records) == {c: k for c in range(CLASSES[dataset])}
        assert ev.name.endswith("val1" if dataset != "ssv2" else "validation")


def test_kinetics400(splits_root, tmp_path):
    p = P.kinetics400(splits_root=splits_root, train_list="tiny")
    assert len(p.eval[0]) == 19877 and p.eval[0].num_classes == 400 and len(p.train[0]) == 60000
    with pytest.raises(FileNotFoundError, match="build-kinetics-lists"):
        P.kinetics400(splits_root=splits_root)  # the full train list is absent upstream
    assert P.zero_shot("hmdb51", splits_root=splits_root, train_root=tmp_path,
                       train_list="tiny").train[0].root == tmp_path


def test_every_protocol_name_builds(splits_root):
    for name in P.PROTOCOL_NAMES:
        if name.startswith("bench") or name == "kinetics400/full":
            continue
        p = P.get_protocol(name, splits_root=splits_root)
        assert p.eval and all(len(s) > 0 for s in p.eval + p.train), name
        assert p.summary()["eval"]


def test_unknown_names_list_valid_choices(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        P.get_protocol("few_shot/hmdb51/k3x")
    with pytest.raises(ValueError, match="valid choices"):
        P.few_shot("hmdb51", 3, splits_root=tmp_path)
    with pytest.raises(ValueError, match="valid choices"):
        P.base_to_novel("k600", 1, splits_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="download-splits"):
        P.zero_shot("hmdb51", splits_root=tmp_path)


@pytest.fixture()
def fake_bench(tmp_path):
    """The file layout the embedded benchmark writes (contract), with 4 classes: 2 base, 2 novel."""
    names, base, novel = ["a", "b", "c", "d"], ["c", "a"], ["b", "d"]
    write_labels(tmp_path / "labels.csv", names)
    write_labels(tmp_path / "base_labels.csv", base)
    write_labels(tmp_path / "novel_labels.csv", novel)
    vid = lambda c, k: VideoRecord(f"videos/{c}/{c}_{k}.mp4", names.index(c))  # noqa: E731
    write_video_list(tmp_path / "splits/train.txt", [vid(c, k) for c in names for k in range(4)])
    write_video_list(tmp_path / "splits/val.txt", [vid(c, k) for c in names for k in range(4, 6)])
    for k in P.FEW_SHOT_K:
        write_video_list(tmp_path / f"splits/train1_few_shot_{k}.txt", [vid(c, 0) for c in names])
    for s in P.SEEDS:
        write_video_list(tmp_path / f"splits/base2novel/fs_base_s{s}_train.txt",
                         [VideoRecord(vid(c, s).path, base.index(c)) for c in base])
    write_video_list(tmp_path / "splits/base2novel/base_val.txt",
                     [VideoRecord(vid(c, 4).path, base.index(c)) for c in base])
    write_video_list(tmp_path / "splits/base2novel/novel_val.txt",
                     [VideoRecord(vid(c, 4).path, novel.index(c)) for c in novel])
    return tmp_path


def test_bench_protocols(fake_bench):
    zs = P.bench_zero_shot(fake_bench)
    (train,), (ev,) = zs.train, zs.eval
    assert train.classnames == ["c", "a"] and ev.classnames == ["b", "d"]
    assert len(train) == 8 and all(r.path.split("/")[1] == train.classnames[r.label] for r in train.records)
    b2n = P.bench_base_to_novel(fake_bench, seed=2)
    assert [len(s) for s in b2n.eval] == [2, 2] and b2n.train[0].records[0].path.endswith("_2.mp4")
    assert len(P.bench_fully_supervised(fake_bench).train[0]) == 16
    assert P.get_protocol("bench/few_shot/k8", bench_root=fake_bench).train[0].name.endswith("8")
