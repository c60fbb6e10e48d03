"""VideoDataset + its training and evaluation loaders over real files, with broken ones among them, in worker processes."""
from __future__ import annotations

import pytest
import torch

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.datasets import TrainLoader, VideoDataset, build_eval_loader
from apclip_core.data.views import ViewSpec
from apclip_core.data.transforms import build_video_transform
from test_video_io import make_broken, make_video

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    good = [make_video(root / f"good/v{i}{'.mp4' if i % 2 else '.avi'}", frames=12 + i) for i in range(6)]
    broken = make_broken(root / "bad")
    records, bad_idx = [], set()
    for i, p in enumerate(good):
        records.append(VideoRecord(str(p.relative_to(root)), i % 3))
        if i < len(broken):
            bad = list(broken.values())[i]
            bad_idx.add(len(records))
            records.append(VideoRecord(str(bad.relative_to(root)), 0))
    return root, records, bad_idx


def test_eval_loader_with_workers_reports_every_broken_video(video_list):
    root, records, bad_idx = video_list
    t = build_video_transform(32, MEAN, STD, train=False, num_spatial_crops=2)
    ds = VideoDataset(records, root, view=ViewSpec(4, 2, 2), train=False, transform=t)
    seen, failed = [], {}
    for batch in build_eval_loader(ds, batch_size=3, num_workers=2):
        assert batch["video"].shape[1:] == (4, 4, 3, 32, 32)
        for j, idx in enumerate(batch["index"].tolist()):
            seen.append(idx)
            if not batch["ok"][j]:
                failed[idx] = batch["error"][j]
                assert torch.count_nonzero(batch["video"][j]) == 0
    assert sorted(seen) == list(range(len(records)))        # nothing dropped, no drop_last
    assert set(failed) == bad_idx and all(failed.values())  # every broken one, with a reason


def test_training_replaces_bad_samples_deterministically(video_list):
    root, records, bad_idx = video_list
    t = build_video_transform(32, MEAN, STD, train=True)

    def run():
        ds = VideoDataset(records, root, view=ViewSpec(4), train=True, transform=t, seed=7)
        out = []
        for batch in TrainLoader(ds, batch_size=2, num_workers=2, seed=1).epoch(0):
            assert batch["ok"].all() and batch["video"].shape[1:] == (1, 4, 3, 32, 32)
            out.append(batch)
        return out

    a, b = run(), run()
    assert sum(len(x["index"]) for x in a) == (len(records) // 2) * 2    # drop_last only in training
    replaced = [(r, i, e) for x in a for r, i, e in zip(x["replaced"], x["index"].tolist(), x["error"]) if r is not None]
    requested = {r for r, _, _ in replaced} | {i for x in a for i, r in zip(x["index"].tolist(), x["replaced"]) if r is None}
    assert {r for r, _, _ in replaced} == bad_idx & requested
    assert all(i not in bad_idx and e for _, i, e in replaced)
    for x, y in zip(a, b):                                                # same seed, same batches
        assert x["index"].tolist() == y["index"].tolist() and x["replaced"] == y["replaced"]
        torch.testing.assert_close(x["video"], y["video"])


def test_replacement_is_a_fixed_function_of_seed_and_index(video_list):
    root, records, _ = video_list
    t = build_video_transform(32, MEAN, STD, train=True)
    ds1 = VideoDataset(records, root, view=ViewSpec(4), train=True, transform=t, seed=3)
    ds2 = VideoDataset(records, root, view=ViewSpec(4), train=True, transform=t, seed=3)
    assert [ds1.replacement_index(5, k) for k in range(1, 6)] == [ds2.replacement_index(5, k) for k in range(1, 6)]


def test_all_bad_training_list_fails_loudly(tmp_path):
    broken = make_broken(tmp_path)
    recs = [VideoRecord(p.name, 0) for p in broken.values()]
    ds = VideoDataset(recs, tmp_path, view=ViewSpec(4), train=True,
                      transform=build_video_transform(32, MEAN, STD, train=True), max_replacements=3)
    with pytest.raises(RuntimeError, match="data check"):
        ds[0]
    assert len(ds.failures) == 4


def test_pyav_backend_and_argument_errors(video_list):
    root, records, _ = video_list
    t = build_video_transform(32, MEAN, STD, train=False)
    ds = VideoDataset(records[:1], root, view=ViewSpec(4, backend="pyav"), train=False, transform=t)
    assert ds[0]["ok"] and ds[0]["video"].shape == (1, 4, 3, 32, 32)
    with pytest.raises(ValueError, match="decord, pyav"):
        VideoDataset(records, root, view=ViewSpec(4, backend="cv2"), train=False, transform=t)
    with pytest.raises(ValueError, match="temporal_views must be 1"):
        VideoDataset(records, root, view=ViewSpec(4, 2), train=True, transform=t)
