"""Bad input, third pass: one row per command for each way a user gets it wrong (an output folder that is
read-only, an output path that is a file, an input file that is not what it claims, an unknown key, a value
out of range), plus damaged checkpoints and a full disk under every run writer.

Every row is run in-process through the command's own entry point (main(argv) under errors.run_command)
and must end with exit status 1 or 2, no traceback, no "bug in apclip" wording, the offending path or key
named, and nothing half-written (no temporary left, no output file made)."""
from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from apclip_core import atomic
from apclip_core.__main__ import main as apclip_main
from apclip_core.errors import message_for, run_command
from apclip_core.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

TABLE2 = PROJECT_ROOT / "notebooks" / "12_table2_base_to_novel.ipynb"
ZOO = PROJECT_ROOT / "notebooks" / "18_table1_zoo.ipynb"
BENCH_PROMPTS = PROJECT_ROOT / "prompts" / "apclip_bench.json"


def damage_a_record(src: Path, dst: Path) -> str:
    """Copy `src` (a torch zip archive) to `dst` with one byte flipped in the middle of its largest record's
    data, as a broken download leaves it: the archive still opens and unpickles. Returns the record's name."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0x5A
    dst.write_bytes(bytes(data))
    return info.filename


def _read_only_folder(path: Path):
    """A folder nothing can be written into: chmod for a user, a read-only tmpfs for root (chmod does not stop
    root); None where neither can be had."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        return path, lambda: path.chmod(0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        return None, lambda: None
    return path, lambda: subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def f(tmp_path_factory, bench_root):
    """The bad inputs, made once: a read-only folder, a file where folders go, damaged and odd checkpoints,
    files that are not what their names say, PARAMS files with typos and nonsense."""
    import argparse

    from apclip_core.embedded import peer_files
    from apclip_core.model.video_clip import create_model, save_checkpoint

    d = tmp_path_factory.mktemp("matrix")
    ro, release = _read_only_folder(d / "ro")
    (d / "afile").write_text("a file, not a folder\n")
    torch.manual_seed(0)
    model = create_model("apclip-tiny", None)
    good = save_checkpoint(model, d / "good.pt")   # a .safetensors file: no zip records to damage
    torch.save({"state_dict": model.state_dict()}, d / "good_torch.pt")   # what older runs and peers ship
    record = damage_a_record(d / "good_torch.pt", d / "damaged.pt")
    peers = peer_files.write_standins(model.clip.state_dict(), d / "peers")
    damaged_peers = {fmt: d / f"damaged_{p.name}" for fmt, p in peers.items()}
    for fmt, p in peers.items():
        damage_a_record(p, damaged_peers[fmt])
    torch.save({"state_dict": model.clip.state_dict(), "args": argparse.Namespace(lr=1)}, d / "not_plain.pt")
    run = d / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((d / "damaged.pt").read_bytes())
    (d / "nb.ipynb").write_text('{"cells": [')
    (d / "notnb.ipynb").write_text('{"metadata": {}}\n')
    (d / "bad.yaml").write_text("seeds: [1, 2\n")
    (d / "list.yaml").write_text("- config: base2novel\n")
    (d / "top.yaml").write_text("overides: {epochs: 1}\n")
    (d / "ov.yaml").write_text("overrides:\n  epoch: 1\n")
    (d / "neg.yaml").write_text("overrides:\n  epochs: -1\n")
    (d / "kind.yaml").write_text("seeds: three\n")
    (d / "slice_list.json").write_text('["a slice is an object"]\n')
    (d / "slice_cut.json").write_text('{"run": {"describe": ["a')
    (d / "slice_key.json").write_text('{"run": {"describ": [], "distinguish": [], "observe": []}}\n')
    (d / "empty").mkdir()
    yield {"d": d, "ro": ro, "afile": d / "afile", "good": good, "damaged": d / "damaged.pt", "record": record,
           "peers": peers, "damaged_peers": damaged_peers, "run": run, "video_dir": bench_root / "videos"}
    release()


EVAL_SIZES = ["--protocol", "bench_base_to_novel", "--frames", "2", "--temporal-views", "1", "--spatial-crops", "1",
              "--max-videos", "2"]


def _evaluate(checkpoint, *extra):
    return ["evaluate", "--checkpoint", str(checkpoint), *EVAL_SIZES, *extra]


def _convert(src, dst, fmt="openai"):
    """convert, told the tiny CLIP's heads and activation (what the shapes cannot say)."""
    from apclip_core.paper.zoo import tiny_clip_convention

    convention = tiny_clip_convention()
    return ["convert", "--from", fmt, str(src), str(dst), "--heads", ",".join(map(str, convention["heads"])),
            "--quick-gelu" if convention["quick_gelu"] else "--no-quick-gelu"]


def _slices(*argv):
    from apclip_core.prompts import slices

    return ("slices", slices.main, list(argv))


def _gpu_check(*argv):
    import gpu_check

    return ("gpu_check", gpu_check.main, list(argv))


RO, FILE = "ro", "afile"
# (case, argv from the fixture (a list for `apclip`, or (name, main, argv)), what the message must name, the
# output that must not appear (a key of f joined with a name, or None), needs the read-only folder)
CASES = [
    # ---- output folder read-only ----
    ("plan --slurm: read-only", lambda f: ["plan", str(TABLE2), "--profile", "paper", "--slurm", str(f[RO] / "jobs")],
     "{ro}/jobs", (RO, "jobs")),
    ("notebook: output in a read-only folder", lambda f: ["notebook", str(TABLE2), str(f[RO] / "out.ipynb")],
     "{ro}", (RO, "out.ipynb")),
    ("data reencode --dst: read-only", lambda f: ["data", "reencode", "--src", str(f["video_dir"] / "chorving_slowly"),
                                                  "--dst", str(f[RO] / "videos")], "{ro}/videos", (RO, "videos")),
    ("convert: DST in a read-only folder", lambda f: _convert(f["peers"]["openai"], f[RO] / "x.pt"), "{ro}",
     (RO, "x.pt")),
    ("evaluate --out: read-only", lambda f: _evaluate(f["good"], "--out", str(f[RO] / "e.json")), "{ro}", (RO, "e.json")),
    ("train output_dir: read-only", lambda f: ["train", "--config", "bench_base2novel", "--set", "pretrained=null",
                                               f"output_dir={f[RO] / 'run'}"], "{ro}/run", (RO, "run")),
    ("prompts --out: read-only", lambda f: ["prompts", "--from-benchmark", "--out", str(f[RO] / "p.json")], "{ro}",
     (RO, "p.json")),
    ("slices merge --out: read-only", lambda f: _slices("merge", str(f["d"] / "slice_key.json"), "--labels",
                                                        str(f["d"] / "labels.csv"), "--out", str(f[RO] / "m.json"),
                                                        "--dataset", "x", "--generator-model", "y"), "{ro}",
     (RO, "m.json")),
    ("gpu_check --dry-run --out: read-only", lambda f: _gpu_check("--dry-run", "--out", str(f[RO] / "gpu")),
     "{ro}/gpu", (RO, "gpu")),
    # ---- output path is a file ----
    ("plan --slurm: a file", lambda f: ["plan", str(TABLE2), "--profile", "paper", "--slurm", str(f[FILE])],
     "{afile}", None),
    ("notebook: output under a file", lambda f: ["notebook", str(TABLE2), str(f[FILE] / "out.ipynb")], "{afile}",
     None),
    ("notebook: output is a folder", lambda f: ["notebook", str(TABLE2), str(f["d"] / "empty")], "empty", None),
    ("data reencode --dst: a file", lambda f: ["data", "reencode", "--src", str(f["video_dir"] / "chorving_slowly"),
                                               "--dst", str(f[FILE])], "{afile}", None),
    ("convert: DST under a file", lambda f: _convert(f["peers"]["openai"], f[FILE] / "x.pt"), "{afile}", None),
    ("evaluate --out: under a file", lambda f: _evaluate(f["good"], "--out", str(f[FILE] / "e.json")), "{afile}", None),
    ("train output_dir: a file", lambda f: ["train", "--config", "bench_base2novel", "--set", "pretrained=null",
                                            f"output_dir={f[FILE]}"], "{afile}", None),
    ("prompts --out: under a file", lambda f: ["prompts", "--from-benchmark", "--out", str(f[FILE] / "p.json")],
     "{afile}", None),
    ("gpu_check --dry-run --out: a file", lambda f: _gpu_check("--dry-run", "--out", str(f[FILE])), "{afile}", None),
    # ---- input file not what it claims ----
    ("plan: a notebook cut short", lambda f: ["plan", str(f["d"] / "nb.ipynb")], "nb.ipynb, line 1", None),
    ("preflight: JSON that is no notebook", lambda f: ["preflight", str(f["d"] / "notnb.ipynb")], "notnb.ipynb", None),
    ("notebook: a notebook cut short", lambda f: ["notebook", str(f["d"] / "nb.ipynb"), str(f["d"] / "o.ipynb")],
     "nb.ipynb, line 1", ("d", "o.ipynb")),
    ("report --notebook: not JSON", lambda f: ["report", "--table", "x", "--notebook", str(f["d"] / "nb.ipynb")],
     "nb.ipynb", None),
    ("plan --params: not YAML", lambda f: ["plan", str(TABLE2), "--params", str(f["d"] / "bad.yaml")],
     "bad.yaml, line 2", None),
    ("preflight --params: a YAML list", lambda f: ["preflight", str(ZOO), "--params", str(f["d"] / "list.yaml")],
     "list.yaml", None),
    ("data reencode --src: missing", lambda f: ["data", "reencode", "--src", str(f["d"] / "nope"), "--dst",
                                                str(f["d"] / "re")], "nope", ("d", "re")),
    ("data reencode --src: no video in it", lambda f: ["data", "reencode", "--src", str(f["d"] / "empty"), "--dst",
                                                       str(f["d"] / "re")], "empty", ("d", "re")),
    ("evaluate: a damaged checkpoint", lambda f: _evaluate(f["damaged"]),
     "damaged.pt is damaged: its record {record}", None),
    ("evaluate --pretrained: not plain weights", lambda f: ["evaluate", "--model", "apclip-tiny", "--pretrained",
                                                            str(f["d"] / "not_plain.pt"), "--no-quick-gelu",
                                                            *EVAL_SIZES], "not_plain.pt", None),
    ("train --resume: a damaged last.pt", lambda f: ["train", "--config", "bench_base2novel", "--resume", "--set",
                                                     "pretrained=null", f"output_dir={f['run']}"],
     "last.pt is damaged", None),
    ("slices check: a JSON list", lambda f: _slices("check", str(f["d"] / "slice_list.json")), "slice_list.json", None),
    ("slices check: cut short", lambda f: _slices("check", str(f["d"] / "slice_cut.json")), "slice_cut.json, line 1",
     None),
    ("validate-prompts: a folder", lambda f: ["validate-prompts", str(f["d"] / "empty"), "--labels",
                                              str(f["d"] / "labels.csv")], "empty", None),
    # ---- unknown key ----
    ("plan --params: misspelt top-level key", lambda f: ["plan", str(TABLE2), "--params", str(f["d"] / "top.yaml")],
     "'overides' (did you mean 'overrides'?)", None),
    ("preflight --params: misspelt override", lambda f: ["preflight", str(TABLE2), "--params", str(f["d"] / "ov.yaml")],
     "'epoch' (did you mean 'epochs'?)", None),
    ("notebook -f: misspelt key, before the kernel", lambda f: ["notebook", str(TABLE2), str(f["d"] / "o.ipynb"),
                                                                "-f", str(f["d"] / "top.yaml")], "overides",
     ("d", "o.ipynb")),
    ("train --set: misspelt key", lambda f: ["train", "--config", "bench_base2novel", "--set", "epoch=1"],
     "'epoch' (did you mean 'epochs'?)", None),
    ("evaluate --protocol-arg: misspelt key", lambda f: _evaluate(f["good"], "--protocol-arg", "sed=2"),
     "'sed' (did you mean 'seed'?)", None),
    # ---- value out of range ----
    ("pretrain --batch-size 0", lambda f: ["pretrain", "--batch-size", "0"], "--batch-size", None),
    ("pretrain --steps -5", lambda f: ["pretrain", "--steps", "-5"], "--steps", None),
    ("plan --gpus 1000000000", lambda f: ["plan", str(TABLE2), "--gpus", "1000000000"], "--gpus", None),
    ("preflight --params: epochs -1", lambda f: ["preflight", str(TABLE2), "--params", str(f["d"] / "neg.yaml")],
     "neg.yaml: overrides: epochs must be >= 1", None),
    ("preflight --params: a value of the wrong kind", lambda f: ["preflight", str(TABLE2), "--params",
                                                                 str(f["d"] / "kind.yaml")], "kind.yaml: seeds", None),
    ("train --set epochs=0", lambda f: ["train", "--config", "bench_base2novel", "--set", "epochs=0"], "epochs", None),
    ("evaluate --frames 0", lambda f: _evaluate(f["good"], "--frames", "0"), "--frames", None),
    ("evaluate --device cuda without a GPU", lambda f: _evaluate(f["good"], "--device", "cuda"), "'cuda'", None),
    ("data reencode --short-side 0", lambda f: ["data", "reencode", "--src", str(f["d"]), "--dst", str(f["d"] / "re"),
                                                "--short-side", "0"], "--short-side", ("d", "re")),
    ("convert --frames 1", lambda f: ["convert", "--from", "openvclip", str(f["peers"]["openvclip"]),
                                      str(f["d"] / "c.pt"), "--frames", "1"], "--frames", ("d", "c.pt")),
    ("prompts --temperature 9", lambda f: ["prompts", "--dataset", "x", "--labels", "y.csv", "--temperature", "9"],
     "--temperature", None),
]
CASES += [(f"convert --from {fmt}: a damaged file", lambda f, fmt=fmt: _convert(f["damaged_peers"][fmt],
                                                                                 f["d"] / f"{fmt}.pt", fmt),
           f"damaged_{fmt}.{'pt' if fmt == 'openai' else 'pth'} is damaged: its record", ("d", f"{fmt}.pt"))
          for fmt in ("openai", "vificlip", "ost", "openvclip", "froster")]
CASES += [("convert --base: a damaged file", lambda f: _convert(f["peers"]["ost"], f["d"] / "b.pt", "ost")
           + ["--base", str(f["damaged_peers"]["openai"])], "--base {d}/damaged_openai.pt is damaged", ("d", "b.pt"))]


def _run(command, capsys) -> tuple[int, str]:
    name, entry, argv = command if isinstance(command, tuple) else ("apclip", None, command)
    try:
        code = apclip_main(argv) if entry is None else run_command(entry, argv)
    except SystemExit as exc:  # argparse's usage errors (2), or a message given to SystemExit (1)
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.mark.parametrize("case, argv, names, output", CASES, ids=[c[0] for c in CASES])
def test_each_command_refuses_bad_input_with_one_message(case, argv, names, output, f, capsys):
    if RO in (output or ()) and f[RO] is None:
        pytest.skip("no read-only folder here (root, and no tmpfs mount)")
    if "without a GPU" in case and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    (f["d"] / "labels.csv").write_text("id,name\n0,run\n")
    code, said = _run(argv(f), capsys)
    assert code in (1, 2), said
    assert "Traceback" not in said and "bug in apclip" not in said and "weights_only=False" not in said, said
    expected = names.format(ro=f[RO], afile=f[FILE], record=f["record"], d=f["d"])
    assert expected in said, said
    if output:
        assert not (f[output[0]] / output[1]).exists(), f"{case}: {output[1]} was written"
    assert not [p for p in f["d"].rglob("*.tmp-*")], "a temporary was left behind"


@pytest.mark.slow
def test_a_real_process_says_a_damaged_checkpoint_in_one_line(f):
    done = subprocess.run([sys.executable, "-m", "apclip_core", *_evaluate(f["damaged"])], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{f['damaged']} is damaged: its record {f['record']} fails its CRC-32 check" in done.stderr


def test_the_crc_check_passes_every_good_file_and_keeps_pickles_refused(f):
    """Good files of every layout pass the check and load; a pickle that would run code is still refused."""
    from apclip_core.errors import CheckpointError
    from apclip_core.model import convert
    from apclip_core.model.integrity import verify_checkpoint_archive
    from apclip_core.model.video_clip import load_checkpoint, read_torch_file

    for path in [f["good"], *f["peers"].values()]:
        verify_checkpoint_archive(path)
    assert load_checkpoint(f["good"]) is not None

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo ran > " + str(f["d"] / "ran"),))

    torch.save({"state_dict": {}, "x": Boom()}, f["d"] / "evil.pt")
    with pytest.raises(CheckpointError):
        read_torch_file(f["d"] / "evil.pt")
    with pytest.raises(convert.ConvertError, match="refused to unpickle"):
        convert.read_file(f["d"] / "evil.pt")
    assert not (f["d"] / "ran").exists()


# ---- disk full: every run writer keeps the previous good file -------------------------------------
class FullDisk(io.FileIO):
    """A file on a disk that fills up after `room` bytes: the write that crosses it writes what fits, then
    fails with ENOSPC, as a real full disk does."""
    room = 10

    def write(self, data):
        fits = max(0, FullDisk.room - self.tell())
        if len(data) > fits:
            super().write(bytes(data)[:fits])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _writers(f, tmp_path):
    """{writer: (the file it writes, a call that (re)writes it with `version`)} for the run's files."""
    import pandas as pd

    from apclip_core.engine.config import load_config
    from apclip_core.engine.distributed import Dist
    from apclip_core.engine.train import LoopState, save_loop_state, write_metrics
    from apclip_core.model.video_clip import load_checkpoint, save_checkpoint
    from apclip_core.paper.tables import save_table
    from apclip_core.prompts.schema import PromptFile

    model = load_checkpoint(f["good"])
    cfg = load_config("bench_base2novel", pretrained=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    prompts = PromptFile.read(BENCH_PROMPTS)

    def checkpoint(v):
        with torch.no_grad():
            model.logit_scale.fill_(float(v))
        save_checkpoint(model, tmp_path / "checkpoint.pt", epoch=v)

    def last(v):
        save_loop_state(tmp_path / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                        state=LoopState(epoch=v), cfg=cfg, d=Dist())

    def table(v):
        save_table(pd.DataFrame({"method": ["AP-CLIP"], "value": [float(v)]}), "table_x", title="x",
                   results={"v": v}, figures=tmp_path)

    def prompt_file(v):
        prompts.manifest.notes = f"version {v}"
        prompts.write(tmp_path / "prompts.json")

    return {"checkpoint": (tmp_path / "checkpoint.pt", checkpoint), "last.pt": (tmp_path / "last.pt", last),
            "metrics": (tmp_path / "metrics.json", lambda v: write_metrics(tmp_path, cfg, [{"epoch": v}])),
            "table files": (tmp_path / "table_x.csv", table), "prompt files": (tmp_path / "prompts.json", prompt_file)}


@pytest.mark.parametrize("writer", ["checkpoint", "last.pt", "metrics", "table files", "prompt files"])
def test_a_full_disk_names_the_file_and_the_previous_good_file_survives(writer, f, tmp_path, monkeypatch):
    path, write = _writers(f, tmp_path)[writer]
    write(1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    monkeypatch.setattr(atomic, "open", lambda p, mode: io.BufferedWriter(FullDisk(p, mode)), raising=False)

    with pytest.raises(OSError) as raised:
        write(2)
    assert raised.value.errno == errno.ENOSPC
    said = message_for(raised.value)
    assert said.startswith(f"{path.parent}/") and "no space left on the device" in said, said
    assert run_command(lambda argv: write(2), []) == 1  # a command ends in that message, exit 1
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before, f"{writer}: a file changed or appeared on the full disk"
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_torch_saves_full_disk_error_is_said_as_one_naming_the_file(tmp_path, monkeypatch):
    """torch.save turns the disk's ENOSPC into RuntimeError('unexpected pos ...'); the writer says the disk."""
    monkeypatch.setattr(atomic, "open", lambda p, mode: io.BufferedWriter(FullDisk(p, mode)), raising=False)
    with pytest.raises(OSError) as raised:
        atomic.torch_save({"w": torch.zeros(100_000)}, tmp_path / "w.pt")
    assert raised.value.filename == str(tmp_path / "w.pt")
    assert message_for(RuntimeError("unexpected pos 1940864 vs 1940752")) is None  # a bare RuntimeError: a bug
