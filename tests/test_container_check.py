"""The signature check's MPEG-TS rule: a real transport stream (188-byte packets, each starting with the
sync byte 0x47) passes; a file whose only resemblance is a 0x47 first byte does not."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from apclip_core.data import container_check


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _mpeg_ts(path, frames: int = 4) -> None:
    """A real MPEG-TS video: a few frames encoded by PyAV (milliseconds)."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def test_a_real_transport_stream_passes_the_signature_and_header_checks(cache):
    video = cache / "clip.ts"
    _mpeg_ts(video)
    head = video.read_bytes()
    assert len(head) > 376 and head[0] == head[188] == head[376] == 0x47  # what the rule relies on
    assert container_check.unreadable([video]) == {}
    assert container_check.unreadable([video], level="header") == {}


@pytest.mark.parametrize("content, why", [
    (b"\x47" + b"garbage " * 60, "the next 188-byte packets do not start with it"),  # one 0x47 byte, long file
    (b"\x47" + b"\x00" * 150, "shorter than two 188-byte packets"),                  # < 189 bytes: no video
    (b"\x47" + b"\x00" * 187 + b"\x47" + b"\x00" * 250, "the next 188-byte packets"),  # third packet wrong
])
def test_a_lone_sync_byte_is_not_a_transport_stream(cache, content, why):
    fake = cache / "fake.ts"
    fake.write_bytes(content)
    assert why in container_check.unreadable([fake])[str(fake)]


def test_two_packets_suffice_when_the_file_is_shorter_than_three(cache):
    short = cache / "short.ts"
    short.write_bytes(b"\x47" + b"\x00" * 187 + b"\x47" + b"\x00" * 100)  # 289 bytes: 0 and 188 sync
    assert container_check.unreadable([short]) == {}


def test_answers_cached_under_the_old_lax_rule_are_checked_again(cache):
    fake = cache / "fake.ts"
    fake.write_bytes(b"\x47" + b"garbage " * 60)
    st = fake.stat()
    container_check.cache_path().parent.mkdir(parents=True, exist_ok=True)
    container_check.cache_path().write_text(json.dumps({str(fake): [st.st_size, st.st_mtime_ns, 0, None]}))
    assert str(fake) in container_check.unreadable([fake])  # the lax rule's "fine" is not trusted
