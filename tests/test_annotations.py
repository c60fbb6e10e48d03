"""Video lists and labels CSVs: round trips, every error path, and the real ViFi-CLIP lists."""
from __future__ import annotations

import pytest

from apclip_core.data.annotations import (AnnotationError, UnknownClassError, VideoRecord, class_index,
                                     read_labels, read_video_list, write_labels, write_video_list)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_video_list_round_trip_keeps_spaces_in_paths(tmp_path):
    records = [VideoRecord("a/b c.avi", 3), VideoRecord("x.mp4", 0)]
    path = tmp_path / "sub" / "list.txt"
    write_video_list(path, records)
    assert path.read_text() == "a/b c.avi 3\nx.mp4 0\n"
    assert read_video_list(path, num_classes=4) == records


def test_video_list_skips_blank_lines_and_tolerates_tabs(tmp_path):
    path = _write(tmp_path, "l.txt", "a.avi\t1\n\n  b.avi 2  \n")
    assert read_video_list(path) == [VideoRecord("a.avi", 1), VideoRecord("b.avi", 2)]


def _assert_error_at(read, path, line, words):
    """`read()` raises an AnnotationError that names the file, the line and what is wrong."""
    with pytest.raises(AnnotationError) as info:
        read()
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and words in message
    assert info.value.line == line


@pytest.mark.parametrize("content, line, words", [
    ("a.avi 0\nb.avi\n", 2, "no label"),
    ("a.avi 0\nb.avi 1\nc.avi x1\n", 3, "not an integer"),
    ("a.avi -1\n", 1, "negative"),
    ("a.avi 0\n\nb.avi 5\n", 3, "out of range"),
])
def test_video_list_errors_name_file_and_line(tmp_path, content, line, words):
    path = _write(tmp_path, "bad.txt", content)
    _assert_error_at(lambda: read_video_list(path, num_classes=5), path, line, words)


def test_video_list_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="file not found"):
        read_video_list(tmp_path / "nope.txt")


def test_write_video_list_refuses_unreadable_paths(tmp_path):
    with pytest.raises(ValueError):
        write_video_list(tmp_path / "l.txt", [VideoRecord(" lead.avi", 0)])


def test_labels_round_trip_with_quotes_and_any_row_order(tmp_path):
    names = ["brush hair", "Approaching something, with camera", "x"]
    path = tmp_path / "labels.csv"
    write_labels(path, names)
    assert read_labels(path) == names
    shuffled = _write(tmp_path, "s.csv", 'id,name\n2,c\n0,a\n1,"b, d"\n')
    assert read_labels(shuffled) == ["a", "b, d", "c"]


@pytest.mark.parametrize("content, line, words", [
    ("idx,name\n0,a\n", 1, "header"),
    ("id,name\n0,a\n0,b\n", 3, "duplicate id 0"),
    ("id,name\n0,a\n2,b\n", 3, "contiguous"),
    ("id,name\n1,a\n2,b\n", 3, "missing [0]"),
    ("id,name\n0,a\nx,b\n", 3, "not an integer"),
    ("id,name\n0,a\n1,a\n", 3, "duplicate class name"),
    ("id,name\n0,a,extra\n", 2, "2 columns"),
])
def test_labels_errors_name_file_and_line(tmp_path, content, line, words):
    path = _write(tmp_path, "labels.csv", content)
    _assert_error_at(lambda: read_labels(path), path, line, words)


def test_labels_empty_file(tmp_path):
    with pytest.raises(AnnotationError, match="header"):
        read_labels(_write(tmp_path, "e.csv", ""))
    with pytest.raises(AnnotationError, match="no classes"):
        read_labels(_write(tmp_path, "h.csv", "id,name\n"))


def test_class_index_and_suggestions():
    names = ["brush hair", "cartwheel", "catch", "chew", "clap"]
    assert class_index(names, "catch") == 2
    with pytest.raises(UnknownClassError) as info:
        class_index(names, "brushing hair")
    assert info.value.suggestions[0] == "brush hair"
    assert "brush hair" in str(info.value) and "brushing hair" in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownClassError) as info:
        class_index(names, "zzzzzzzz")
    assert info.value.suggestions == []


def test_real_hmdb_lists(splits_root):
    names = read_labels(splits_root / "labels" / "hmdb_51_labels.csv")
    assert len(names) == 51 and names[0] == "brush hair"
    records = read_video_list(splits_root / "datasets_splits" / "hmdb_splits" / "val1.txt", num_classes=len(names))
    assert len(records) == 1530
    assert sorted({r.label for r in records}) == list(range(51))
    assert all(r.path.endswith(".avi") for r in records)


def test_real_base_to_novel_and_ssv2_lists(splits_root):
    labels = splits_root / "labels"
    base = read_labels(labels / "hmdb_51_base_labels.csv")
    novel = read_labels(labels / "hmdb_51_novel_labels.csv")
    assert (len(base), len(novel)) == (26, 25)
    b2n = splits_root / "datasets_splits" / "base2novel_splits" / "hmdb_splits"
    fs = read_video_list(b2n / "fs_base_s1_train.txt", num_classes=len(base))
    assert len(fs) == 416 and {r.label for r in fs} == set(range(26))
    assert len(read_video_list(b2n / "novel_val.txt", num_classes=len(novel))) == 750
    ssv2 = read_labels(labels / "ssv2_labels.csv")  # quoted names
    assert len(ssv2) == 174 and ssv2[0] == "Approaching something with your camera"
    # a list checked against the wrong label file fails loudly, naming the line
    with pytest.raises(AnnotationError, match="out of range"):
        read_video_list(splits_root / "datasets_splits" / "hmdb_splits" / "val1.txt", num_classes=10)
