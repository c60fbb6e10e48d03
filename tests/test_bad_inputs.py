"""Every command under bad input: one message that names the file (and line) and says what to do,
exit 1 (2 for usage errors), and never a traceback. One row per case; the README's reliability
matrix lists the same rows."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from apclip_core.__main__ import main
from apclip_core.paths import PROJECT_ROOT

BENCH_PROMPTS = PROJECT_ROOT / "prompts" / "apclip_bench.json"
HMDB_PROMPTS = PROJECT_ROOT / "prompts" / "hmdb51.json"


@pytest.fixture(scope="module")
def files(tmp_path_factory, bench_root):
    """The bad inputs, made once: labels files, checkpoints and videos that are wrong in one way each."""
    from apclip_core.model.video_clip import create_model, save_checkpoint

    d = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    good_ckpt = save_checkpoint(create_model("apclip-tiny", None), d / "good.pt")
    data = good_ckpt.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    (d / "empty.pt").write_bytes(b"")
    (d / "text.pt").write_text("not a checkpoint\n")
    (d / "folder.pt").mkdir()
    (d / "dup_labels.csv").write_text("id,name\n0,run\n1,jump\n2,run\n")
    (d / "no_labels.csv").write_text("id,name\n")
    video = sorted((bench_root / "videos" / "chorving_slowly").glob("*.mp4"))[0]
    (d / "cut.mp4").write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    run = d / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(data[:1000])
    return {"dir": d, "good": good_ckpt, "video": video, "run": run}


def _evaluate(ckpt, *extra):
    return ["evaluate", "--checkpoint", str(ckpt), "--protocol", "bench_base_to_novel", "--frames", "2",
            "--temporal-views", "1", "--spatial-crops", "1", *extra]


# (case, argv from the fixture's files, what the message must say, the file it must name, exit status)
CASES = [
    ("labels CSV with a duplicate class", lambda f: ["validate-prompts", str(BENCH_PROMPTS), "--labels",
                                                     str(f["dir"] / "dup_labels.csv")],
     r"line 4: duplicate class name 'run'", "dup_labels.csv", 1),
    ("labels CSV with no class", lambda f: ["validate-prompts", str(BENCH_PROMPTS), "--labels",
                                            str(f["dir"] / "no_labels.csv")], "no classes listed", "no_labels.csv", 1),
    ("prompts: labels CSV with a duplicate", lambda f: ["prompts", "--dataset", "x", "--labels",
                                                        str(f["dir"] / "dup_labels.csv")],
     "duplicate class name", "dup_labels.csv", 1),
    ("classify: a cut video", lambda f: ["classify", str(f["dir"] / "cut.mp4"), "--actions", "chorving slowly", "blorping upward",
                                         "--checkpoint", str(f["good"]), "--no-generate", "--frames", "2"],
     r"cannot decode .*data check", "cut.mp4", 1),
    ("classify: a blank action", lambda f: ["classify", str(f["video"]), "--actions", " ", "juggling",
                                            "--checkpoint", str(f["good"]), "--no-generate"],
     "must not be blank", None, 1),
    ("evaluate: missing checkpoint", lambda f: _evaluate(f["dir"] / "nope.pt"), "not found", "nope.pt", 1),
    ("evaluate: a folder as checkpoint", lambda f: _evaluate(f["dir"] / "folder.pt"), "is a directory",
     "folder.pt", 1),
    ("evaluate: empty checkpoint", lambda f: _evaluate(f["dir"] / "empty.pt"), r"is empty \(0 bytes\)",
     "empty.pt", 1),
    ("evaluate: truncated checkpoint", lambda f: _evaluate(f["dir"] / "truncated.pt"),
     "not a readable checkpoint", "truncated.pt", 1),
    ("evaluate: a text file as checkpoint", lambda f: _evaluate(f["dir"] / "text.pt"),
     "not a readable checkpoint", "text.pt", 1),
    ("evaluate: prompt file missing the classes", lambda f: _evaluate(f["good"], "--prompts", str(HMDB_PROMPTS)),
     r"classes missing: .*make prompts", "hmdb51.json", 1),
    ("train --resume: a corrupt training state", lambda f: ["train", "--config", "bench_base2novel", "--resume",
                                                            "--set", "pretrained=null", f"output_dir={f['run']}"],
     "not a readable training state", "last.pt", 1),
    ("train: unknown preset", lambda f: ["train", "--config", "no_such_preset"], "presets:", None, 2),
]


@pytest.mark.parametrize("case, argv, says, names, status", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_message_and_no_traceback(case, argv, says, names, status, files, capsys):
    code = main(argv(files))
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err and "weights_only=False" not in err
    message = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(message) == 1, err
    import re

    assert re.search(says, message[0]), message[0]
    if names:
        assert names in message[0], message[0]


def test_debug_lets_the_traceback_through(files):
    from apclip_core.errors import CheckpointError

    with pytest.raises(CheckpointError):
        main(_evaluate(files["dir"] / "nope.pt") + ["--debug"])


def test_a_real_process_exits_1_with_the_message_only(files):
    done = subprocess.run([sys.executable, "-m", "apclip_core", *_evaluate(files["dir"] / "empty.pt")],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "empty.pt is empty (0 bytes)" in done.stderr
