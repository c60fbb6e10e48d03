"""apclip_bench: real files (PyAV-written, decord-read), splits in the ViFi-CLIP formats, boxes that
really frame the actor, a class design that keeps the benchmark fair, and the pretraining sampler."""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import av
import decord
import numpy as np
import pytest

from apclip_core.embedded import benchmark as bm
from apclip_core.data.annotations import read_labels, read_video_list


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A render into an empty folder, timed (the shared data folder may already hold one)."""
    root = tmp_path_factory.mktemp("bench") / "apclip_bench"
    start = time.perf_counter()
    info = bm.render_benchmark(root, seed=0)
    return info, time.perf_counter() - start


def _lists(root: Path) -> dict[str, Path]:
    return {p.relative_to(root / "splits").as_posix(): p for p in (root / "splits").rglob("*.txt")}


def test_render_time_and_idempotence(fresh):
    info, seconds = fresh
    assert seconds < 60, f"rendering took {seconds:.1f} s (budget 30 s on 2 cores)"
    start = time.perf_counter()
    again = bm.render_benchmark(info.root, seed=0)
    assert time.perf_counter() - start < 1.0
    assert again == info
    manifest = json.loads((info.root / "manifest.json").read_text())
    assert manifest["spec_hash"] == bm.spec_hash(0) != bm.spec_hash(1)
    assert manifest["frame_size"] == [80, 64] and manifest["fps"] == 8
    assert manifest["counts"]["videos"] == 48 * (20 + 32)


def test_labels_and_lists_match_the_vifi_clip_shapes(fresh):
    info, _ = fresh
    root = info.root
    names = read_labels(root / "labels.csv")
    base, novel = read_labels(root / "base_labels.csv"), read_labels(root / "novel_labels.csv")
    assert names == info.classnames and base == info.base_classes and novel == info.novel_classes
    assert (len(names), len(base), len(novel)) == (48, 24, 24)
    assert sorted(base + novel) == sorted(names) and not set(base) & set(novel)
    assert set(_lists(root)) == {
        "train.txt", "val.txt", *(f"train{s}_few_shot_{k}.txt" for s in (1, 2, 3) for k in (2, 4, 8, 16)),
        *(f"base2novel/fs_base_s{s}_train.txt" for s in (1, 2, 3)), "base2novel/base_val.txt",
        "base2novel/novel_val.txt"}

    def read(rel, n):
        return read_video_list(root / "splits" / rel, num_classes=n)

    def per_class(records):
        return Counter(r.label for r in records)

    train, val = read("train.txt", 48), read("val.txt", 48)
    assert per_class(train) == {i: 20 for i in range(48)} and per_class(val) == {i: 32 for i in range(48)}
    assert not {r.path for r in train} & {r.path for r in val}
    for rec in train + val:   # the label is the class whose folder holds the video
        assert rec.path.split("/")[1] == bm.slug(names[rec.label]) and (root / rec.path).is_file()
    draws = []
    for s in (1, 2, 3):
        previous: set = set()
        for k in (2, 4, 8, 16):
            shots = read(f"train{s}_few_shot_{k}.txt", 48)
            assert per_class(shots) == {i: k for i in range(48)}
            assert set(shots) <= set(train) and previous <= set(shots)
            previous = set(shots)
        draws.append(frozenset(previous))
    assert len(set(draws)) == 3, "each seed draws its own few-shot sample"
    seeds = [read(f"base2novel/fs_base_s{s}_train.txt", 24) for s in (1, 2, 3)]
    assert all(per_class(s) == {i: 16 for i in range(24)} for s in seeds)
    assert len({frozenset(s) for s in seeds}) == 3, "the three 16-shot base seeds must differ"
    for records in seeds:
        assert all(bm.slug(base[r.label]) == r.path.split("/")[1] for r in records)
    base_val, novel_val = read("base2novel/base_val.txt", 24), read("base2novel/novel_val.txt", 24)
    assert len(base_val) == len(novel_val) == 24 * 32
    assert all(bm.slug(novel[r.label]) == r.path.split("/")[1] for r in novel_val)
    assert {r.path for r in base_val} | {r.path for r in novel_val} == {r.path for r in val}


def test_both_containers_and_codecs_decode_with_decord(fresh):
    info, _ = fresh
    boxes = bm.load_boxes(info.root)
    paths = sorted(boxes)
    assert {p.rsplit(".", 1)[1] for p in paths} == {"mp4", "avi"}
    lengths = {len(b) for b in boxes.values()}
    assert min(lengths) >= 12 and max(lengths) <= 16 and len(lengths) > 3
    for ext, codec in (("mp4", "h264"), ("avi", "mpeg4")):
        rel = next(p for p in paths if p.endswith(ext))
        with av.open(str(info.root / rel)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == codec
            assert (stream.width, stream.height) == (80, 64)
            assert float(stream.average_rate) == pytest.approx(8.0)
        reader = decord.VideoReader(str(info.root / rel), num_threads=1)
        assert len(reader) == len(boxes[rel])
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
        assert frames.shape == (len(reader), 64, 80, 3) and frames.dtype == np.uint8


def test_boxes_frame_the_actor_in_decoded_frames(fresh):
    """For one MP4 and one AVI of every class, the actor's colour (after lighting) lies in the box."""
    info, _ = fresh
    boxes = bm.load_boxes(info.root)
    render = {c["name"]: c["render"] for c in bm.load_classes(info.root)}
    for name in info.classnames:
        colour = np.asarray(render[name]["actor_rgb"]) * render[name]["light"]
        for rel in (bm._video_relpath(name, 0), bm._video_relpath(name, 21)):
            box = boxes[rel]
            frames = decord.VideoReader(str(info.root / rel), num_threads=1).get_batch(
                list(range(len(box)))).asnumpy().astype(int)
            is_actor = np.abs(frames - colour).max(-1) < 24
            for t, (x0, y0, x1, y1) in enumerate(box):
                assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 64
                inside = is_actor[t, y0:y1, x0:x1].sum()
                outside = is_actor[t].sum() - inside
                assert inside >= 8 and inside >= 0.05 * (x1 - x0) * (y1 - y0), (rel, t)
                assert outside <= 0.15 * inside + 2, (rel, t, inside, outside)
    # and boxes follow the motion: a whole-body mover's box travels, an arm swinger's body stays
    codes = bm.class_codes()
    mover = next(n for n in info.classnames if codes[n]["body.part_movement"] == "body"
                 and codes[n]["body.move_direction"] == "up" and codes[n]["body.motion_pattern"] == "once")
    b = boxes[bm._video_relpath(mover, 0)]
    assert b[-1, 1] < b[0, 1] - 15   # moved up by more than 15 px


def test_classes_json_and_fair_design(fresh):
    info, _ = fresh
    classes = bm.load_classes(info.root)
    assert [c["name"] for c in classes] == info.classnames
    static_words = {w: (k, code) for k, words in bm.NAME_WORDS.items() for code, w in words.items()}
    motion_words = set(bm.MOTION_NAME_WORDS.values())
    codes = {c["name"]: c["codes"] for c in classes}
    for c in classes:
        assert list(c["attributes"]) == list(bm.ATTRIBUTE_KEYS)
        assert all(c["attributes"][k] in bm.PHRASES[k].values() for k in bm.ATTRIBUTE_KEYS)
        assert c["attributes"] == info.attributes[c["name"]]
        # a name is an invented stem and ONE known word that is true of the class (partial meaning)
        known = [w for w in c["name"].split() if w in static_words or w in motion_words]
        assert len(known) == 1 and len(c["name"].split()) == 2, c["name"]
        if known[0] in static_words:
            key, code = static_words[known[0]]
            assert codes[c["name"]][key] == code, c["name"]
            same_split = [n for n in codes if bm.class_split(n) == bm.class_split(c["name"])]
            # ... and never enough on its own: another class of its split shows the same value
            assert sum(codes[n][key] == code for n in same_split) >= 2, c["name"]
    assert len({tuple(v.values()) for v in codes.values()}) == 48, "every class is a distinct tuple"
    base = [n for n in codes if bm.class_split(n) == "base"]
    novel = [n for n in codes if bm.class_split(n) == "novel"]
    for key in bm.ATTRIBUTE_KEYS:   # novel classes recombine values that base classes show
        assert {codes[n][key] for n in novel} <= {codes[n][key] for n in base}, key

    def look(n):
        return tuple(codes[n][k] for k in bm.STATIC_KEYS)

    for split in (base, novel):   # the temporally hard case: 4 groups of 3 classes that differ only in motion
        groups = Counter(look(n) for n in split)
        assert sorted(groups.values()) == [1] * 12 + [3] * 4
        for a in split:
            for b in split:
                if a < b and look(a) == look(b):
                    assert a.split()[0] == b.split()[0], "a motion-only group shares its stem, like SSv2's names"
                    assert any(codes[a][k] != codes[b][k] for k in bm.MOTION_KEYS), (a, b)
    looks = sorted({look(n) for n in codes})
    assert len(looks) == 32
    assert min(sum(x != y for x, y in zip(a, b)) for i, a in enumerate(looks) for b in looks[i + 1:]) >= 3


def test_render_is_deterministic_and_seeded():
    codes = bm.render_params(bm.class_codes()[bm.CLASS_TABLE[0][0]])
    rng_a, rng_b = (np.random.default_rng([0, 0, 3]) for _ in range(2))
    a = bm.render_clip(codes, np.linspace(0, 1, 20), bm._jitter(rng_a))
    b = bm.render_clip(codes, np.linspace(0, 1, 20), bm._jitter(rng_b))
    c = bm.render_clip(codes, np.linspace(0, 1, 20), bm._jitter(np.random.default_rng([1, 0, 3])))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_refuses_foreign_folder_and_cli(tmp_path, fresh, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match="refusing"):
        bm.render_benchmark(foreign)
    assert (foreign / "thesis.tex").exists()
    info, _ = fresh
    assert bm.main(["--root", str(info.root)]) == 0
    assert "48 classes (24 base, 24 novel)" in capsys.readouterr().out


@pytest.mark.slow
def test_other_seed_replaces_render_atomically(tmp_path):
    root = tmp_path / "b"
    bm.render_benchmark(root, seed=0)
    fs0 = (root / "splits/base2novel/fs_base_s1_train.txt").read_text()
    boxes0 = bm.load_boxes(root)
    bm.render_benchmark(root, seed=1)
    assert json.loads((root / "manifest.json").read_text())["seed"] == 1
    assert (root / "splits/base2novel/fs_base_s1_train.txt").read_text() != fs0
    assert any(not np.array_equal(boxes0[p], b) for p, b in bm.load_boxes(root).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "no temporary folders left behind"


def test_pretraining_pairs_are_random_combinations_described_by_phrases():
    frames, captions, attrs = bm.sample_pretraining_pairs(300, seed=5, return_attributes=True)
    assert frames.shape == (300, 64, 80, 3) and frames.dtype == np.uint8 and len(captions) == 300
    again, captions2 = bm.sample_pretraining_pairs(300, seed=5)
    assert np.array_equal(frames, again) and captions == captions2
    assert bm.sample_pretraining_pairs(5, seed=6)[1] != captions[:5]
    names = {row[0] for row in bm.CLASS_TABLE}
    motion = {p for k in bm.MOTION_KEYS for p in bm.PHRASES[k].values()}
    for caption, codes in zip(captions, attrs):
        parts = caption.split(", ")
        own = {bm.PHRASES[k][codes[k]] for k in bm.STATIC_KEYS} | {bm.POSE_PHRASES[codes["frame.pose"]]}
        own |= {bm.NAME_WORDS[k][codes[k]] for k in bm.NAME_WORDS if codes[k] in bm.NAME_WORDS[k]}
        assert all(p in own for p in parts), caption
        assert not any(p in motion for p in parts)
        assert not any(n in caption for n in names)
    class_looks = {tuple(row[2:10]) for row in bm.CLASS_TABLE}
    sampled = {tuple(c[k] for k in bm.STATIC_KEYS) for c in attrs}
    assert len(sampled - class_looks) > 250, "pretraining must not be limited to the benchmark classes"
    for key in bm.STATIC_KEYS:   # every value occurs
        assert {c[key] for c in attrs} == set(bm.PHRASES[key])
    # captions vary in length (1..8 static phrases, sometimes a pose)
    assert min(len(c.split(", ")) for c in captions) == 1 and max(len(c.split(", ")) for c in captions) >= 8


def test_pretraining_frames_show_their_colours():
    frames, _, attrs = bm.sample_pretraining_pairs(40, seed=1, return_attributes=True)
    for frame, codes in zip(frames, attrs):
        light = bm.DIM_FACTOR if codes["scene.lighting"] == "dim" else 1.0
        actor = np.asarray(bm.ACTOR_RGB[codes["actor.clothing"]]) * light
        backdrop = np.asarray(bm.BACKDROP_RGB[codes["scene.setting"]]) * light
        assert (np.abs(frame.astype(int) - actor).max(-1) <= 1).sum() >= 20
        assert (np.abs(frame.astype(int) - backdrop).max(-1) <= 1).sum() >= 800


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".apclip_bench.tmp-{dead_pid}-abcd"
    alive = tmp_path / f".apclip_bench.tmp-{__import__('os').getppid()}-abcd"
    other = tmp_path / "keep.tmp-x"
    for p in (stale, alive, other):
        p.mkdir()
    from apclip_core.atomic import remove_stale_temporaries

    remove_stale_temporaries(tmp_path)
    assert not stale.exists() and alive.exists() and other.exists()
