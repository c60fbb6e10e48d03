"""What a user meets first at the command line: every `--help` answers at once (no torch import), and
classify refuses a wrong argument, prompt file or video before any model is loaded, in one message."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from apclip_core.__main__ import COMMANDS, main
from apclip_core.paths import PROJECT_ROOT

HELP_PROBE = """
import sys, time
from apclip_core.__main__ import main
heavy = {}
for command in sys.argv[1:]:
    start = time.perf_counter()
    try:
        main([command, "--help"])
    except SystemExit:
        pass
    heavy[command] = [m for m in ("torch", "open_clip", "decord") if m in sys.modules]
    print(command, round(time.perf_counter() - start, 3), ",".join(heavy[command]) or "-", file=sys.stderr)
print(repr(heavy))
"""


def test_every_subcommand_answers_help_at_once_without_importing_torch():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", HELP_PROBE, *COMMANDS], capture_output=True, text=True,
                         timeout=120, cwd=PROJECT_ROOT)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    heavy = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's repr
    assert heavy == {command: [] for command in COMMANDS}, out.stderr
    # every help of one process: a second or two on a quiet machine; slack for a loaded CI runner
    assert elapsed < 3 * 2 + 0.5 * len(COMMANDS), out.stderr


def test_the_light_command_lines_state_what_the_heavy_modules_define():
    from apclip_core.model import convert, convert_cli

    assert convert_cli.FORMAT_NAMES == tuple(convert.FORMATS) and convert_cli.DEFAULT_FRAMES == convert.DEFAULT_FRAMES


def test_usage_lines_name_one_program_and_say_no_default_none(capsys):
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.startswith(f"usage: python -m apclip_core {command}"), (command, text[:80])
        assert "(default: None)" not in text, command
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("apclip ")


@pytest.fixture(scope="module")
def bench(bench_root):
    """(a benchmark video, its class, the other classes): names read from the benchmark, whatever they are."""
    from apclip_core.data.annotations import read_labels, read_video_list

    names = read_labels(bench_root / "labels.csv")
    record = read_video_list(bench_root / "splits" / "val.txt")[0]
    return bench_root / record.path, names[record.label], [n for n in names if n != names[record.label]]


@pytest.fixture(scope="module")
def video(bench):
    return bench[0]


def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(name + "  "))


@pytest.fixture(scope="module")
def bad_prompt_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompt_files")
    good = (PROJECT_ROOT / "prompts" / "apclip_bench.json").read_text()
    (d / "truncated.json").write_text(good[: len(good) // 2])
    (d / "empty.json").write_text("")
    (d / "list.json").write_text(json.dumps([{"classes": {}}]))
    (d / "folder.json").mkdir()
    return d


# argv after `classify VIDEO`, what the message says: a checkpoint that does not exist proves that the
# refusal came before any model was loaded (loading it would say "not found" about the checkpoint)
CLASSIFY_CASES = [
    ("one action", ["--actions", "walking", " walking "], "at least two different action names"),
    ("missing prompt file", ["--actions", "a", "b", "--prompts", "{d}/nope.json"], "nope.json not found"),
    ("empty prompt file", ["--actions", "a", "b", "--prompts", "{d}/empty.json"], "empty.json is not valid JSON"),
    ("truncated prompt file", ["--actions", "a", "b", "--prompts", "{d}/truncated.json"],
     "truncated.json is not valid JSON (line"),
    ("list-shaped prompt file", ["--actions", "a", "b", "--prompts", "{d}/list.json"],
     "list.json is not a prompt file"),
    ("folder as prompt file", ["--actions", "a", "b", "--prompts", "{d}/folder.json"], "folder.json is a directory"),
    ("frames beyond memory", ["--actions", "a", "b", "--frames", "200000"], "200000 frames x 1 views"),
    ("views beyond memory", ["--actions", "a", "b", "--views", "1000000"], "x 1000000 views"),
]


@pytest.mark.parametrize("case,argv,message", CLASSIFY_CASES, ids=[c[0] for c in CLASSIFY_CASES])
def test_classify_refuses_bad_arguments_before_loading_a_model(case, argv, message, video, bad_prompt_files,
                                                              tmp_path, capfd):
    argv = [a.replace("{d}", str(bad_prompt_files)) for a in argv]
    status = main(["classify", str(video), *argv, "--no-generate", "--checkpoint", str(tmp_path / "never.pt")])
    err = capfd.readouterr().err
    assert status == 1, err
    assert err.startswith("error: ") and message in err and "never.pt" not in err, err
    assert "Traceback" not in err and "bug in apclip" not in err


def test_classify_says_a_non_video_file_in_one_clean_message(tmp_path, capfd):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    assert main(["classify", str(text), "--actions", "a", "b", "--no-generate",
                 "--checkpoint", str(tmp_path / "never.pt")]) == 1
    err = capfd.readouterr().err  # capfd: the decoder's C library would write to fd 2 directly
    assert err.startswith("error: cannot decode") and "not a video file" in err and "notes.mp4" in err, err
    assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as usage:
        main(["classify", str(tmp_path), "--actions", "a", "b"])
    assert usage.value.code == 2 and "is a directory" in capfd.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["classify", str(text), "--actions", "a", "b", "--prompt-set", "k4000"])
    assert usage.value.code == 2 and "k400" in capfd.readouterr().err  # the valid sets listed


def test_classify_says_each_names_prompts_and_the_near_miss_before_the_ranking(bench, tmp_path, capsys):
    import torch

    from apclip_core.model.video_clip import create_model, save_checkpoint

    video, name, others = bench
    misspelt = name[:5] + name[6:]  # one letter lost after the stem: 'blorping' -> 'blorpng'
    torch.manual_seed(0)
    checkpoint = save_checkpoint(create_model("apclip-tiny", pretrained=None), tmp_path / "checkpoint.pt")
    assert main(["classify", str(video), "--actions", others[0], misspelt, "making sushi", "--no-generate",
                 "--frames", "2", "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    ranking = out.index("  1. ")
    assert out.index(f"did you mean {name} (apclip_bench.json)") < ranking, out
    assert "single prompt" in _line(out, misspelt) and "shipped: apclip_bench.json" in _line(out, others[0])
    assert "shipped: k400.json" in _line(out, "making sushi") and out.index("making sushi") < ranking
    assert out.index("come from 2 sets (apclip_bench.json, k400.json)") < ranking     # mixed styles said
    assert main(["classify", str(video), "--actions", name, "making sushi", "--no-generate",
                 "--frames", "2", "--checkpoint", str(checkpoint), "--prompt-set", "apclip_bench"]) == 0
    out = capsys.readouterr().out
    assert "shipped: apclip_bench.json" in _line(out, name) and "single prompt" in _line(out, "making sushi")
    assert "k400.json" not in out                                                    # only the set chosen


def test_classify_says_what_it_does_within_a_second_on_a_terminal(video, tmp_path):
    """On a terminal the first stage line comes at once, not after the model has loaded (12 s before)."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "apclip_core", "classify", str(video), "--actions", "walking",
                             "running", "--no-generate", "--frames", "2", "--checkpoint", str(tmp_path / "never.pt")],
                            stdout=subprocess.DEVNULL, stderr=follower, cwd=PROJECT_ROOT,
                            env={**os.environ, "APCLIP_TERMINAL": ""})
    os.close(follower)
    seen = b""
    try:
        while b"\n" not in seen and select.select([leader], [], [], 10)[0]:
            seen += os.read(leader, 1024)
        elapsed = time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    assert seen.startswith(b">> reading ") and str(video).encode() in seen, seen
    assert elapsed < 3, elapsed  # about 0.5 s; slack for a loaded CI runner
