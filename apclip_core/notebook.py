"""`python -m apclip_core notebook IN OUT [-f params.yaml ...]`: run a notebook with papermill the way
`make` does, and talk while it runs.

Says which stage starts and how long it is expected to take; the notebook's own progress bars and
"reused from cache" lines reach the user's terminal (APCLIP_TERMINAL, see progress.py) and never the
stored notebook. The kernel is the project's (`apclip`, recorded in the output's metadata), started
over IPC rather than TCP: nothing listens on a port, and ipykernel has no reason to warn about
unencrypted TCP.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

KERNEL = "apclip"

# What each notebook does and how long it took cold on 2 CPU cores (README, "make demo"); a cached
# rerun reuses the benchmark, the pretrained tiny CLIP and finished runs and takes seconds.
STAGES = {
    "00_embedded_benchmark": "render the embedded benchmark and pretrain the tiny CLIP (cold: about 3 min)",
    "12_table2_base_to_novel": "fine-tune and evaluate ViFi-CLIP and AP-CLIP, base-to-novel (cold: about 1 min)",
}


def stage_line(notebook: Path, index: int = 0, total: int = 0) -> str:
    what = STAGES.get(notebook.stem, "runs what it needs (finished runs are reused)")
    step = f"[{index}/{total}] " if total else ""
    return f"{step}{notebook.stem}: {what}; cached parts take seconds"


def merge_parameters(base: dict, overlay: dict) -> dict:
    """`overlay` on top of `base`; dict values (a profile's `overrides`) are merged key by key, so a PARAMS
    file that sets `overrides: {pretrained: ...}` adds to the profile's overrides instead of replacing them."""
    out = dict(base)
    for key, value in overlay.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge_parameters(out[key], value) if both_dicts else value
    return out


def notebook_defaults(notebook: Path) -> dict:
    """The values of the notebook's `parameters` cell: the names a PARAMS file may set, and their types."""
    from apclip_core.user_files import read_notebook

    values: dict = {}
    for cell in read_notebook(notebook)["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            exec("".join(cell["source"]), {}, values)  # the cell holds plain literals only
    return values


def _same_kind(value, default) -> bool:
    """Whether a PARAMS value can stand where the notebook's default stands (an int where a float is, too)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


# Parameters whose default is None (the profile decides, e.g. the tables' seeds) still have a kind.
NONE_DEFAULT_KINDS = {"seeds": list}


def check_parameters(values: dict, defaults: dict, path: Path) -> None:
    """Refuse keys the notebook has no parameter for (the closest named) and values of another kind, and
    `overrides:` keys that are no training-config field: a typo must not silently run the default."""
    from apclip_core.errors import BadValue
    from apclip_core.user_files import refuse_unknown_keys

    refuse_unknown_keys(values, defaults, f"{path} (parameters of the notebook)")
    for key, value in values.items():
        kind = NONE_DEFAULT_KINDS.get(key) if defaults[key] is None else None
        if kind is not None and value is not None and not isinstance(value, kind):
            raise BadValue(f"{path}: {key}: {value!r} is {type(value).__name__}, but the notebook's {key} is a "
                           f"{kind.__name__} (default None: the profile's own)")
        if not _same_kind(value, defaults[key]):
            raise BadValue(f"{path}: {key}: {value!r} is {type(value).__name__}, but the notebook's {key} is "
                           f"{type(defaults[key]).__name__} (default {defaults[key]!r})")
    if isinstance(values.get("overrides"), dict):
        import dataclasses

        from apclip_core.engine.config import TrainConfig, value_problem

        refuse_unknown_keys(values["overrides"], [f.name for f in dataclasses.fields(TrainConfig)],
                            f"{path}: overrides (training config)")
        for key, value in values["overrides"].items():
            if problem := value_problem(key, value):
                raise BadValue(f"{path}: overrides: {problem}")


def read_parameters(files: Sequence[Path], defaults: dict | None = None) -> dict:
    """The parameters of YAML files, each on top of the ones before (the profile, then `make ... PARAMS=`);
    each checked against the notebook's `defaults` when given."""
    from apclip_core.user_files import read_yaml

    parameters: dict = {}
    for path in files:
        values = read_yaml(path, "parameters file (PARAMS)", empty={})
        if defaults is not None:
            check_parameters(values, defaults, Path(path))
        parameters = merge_parameters(parameters, values)
    return parameters


def run(notebook: Path, output: Path, *, parameters_files: Sequence[Path] = (), cwd: Path | None = None,
        kernel: str = KERNEL, partial: bool = False) -> Path:
    """partial: the notebook parameter `partial_data: true` (`make ... PARTIAL=1`): a table runs on the videos
    present, skipping the missing ones, and says so."""
    import nbformat
    import papermill
    from jupyter_client.manager import KernelManager

    from apclip_core import atomic
    from apclip_core.errors import BadValue

    parameters = read_parameters(parameters_files, notebook_defaults(notebook))
    if partial:
        parameters["partial_data"] = True
    if output.is_dir():
        raise BadValue(f"{output} is a folder; give the executed notebook's file name (e.g. {output / notebook.name})")
    atomic.writable_folder(output.parent)  # before the kernel starts, not after the notebook ran
    nb = nbformat.read(notebook, as_version=4)
    # recorded in the output, so a system Jupyter or VS Code reopens it on the project's environment
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": f"{kernel} (.venv)", "language": "python"}
    with tempfile.TemporaryDirectory(prefix="apclip-kernel-") as sockets:
        km = KernelManager(kernel_name=kernel, transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            papermill.execute_notebook(nb, str(output), parameters=parameters, kernel_name=kernel,
                                       language="python", km=km, cwd=str(cwd or notebook.parent), progress_bar=False)
        finally:
            # a kernel manager passed in is not papermill's to stop
            if km.has_kernel:
                km.shutdown_kernel(now=False)
    return output


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("-f", "--parameters-file", type=Path, action="append", default=[],
                        help="YAML of parameters (the paper profile); repeated, each on top of the ones before")
    parser.add_argument("--stage", default="", help="'i/n': this notebook's place in a longer job")
    parser.add_argument("--kernel", default=KERNEL, help="Jupyter kernel (default: %(default)s)")
    parser.add_argument("--partial", action="store_true",
                        help="notebook parameter partial_data=True: run on the videos present (missing ones skipped "
                             "and counted; the table lists what deviates from the paper's protocol)")
    args = parser.parse_args(argv)
    index, _, total = args.stage.partition("/")
    files = ", ".join(map(str, args.parameters_file))
    profile = f" [parameters: {files}]" if files else ""
    profile += " [partial data]" if args.partial else ""
    print(">> " + stage_line(args.notebook, int(index or 0), int(total or 0)) + profile, flush=True)
    if not os.environ.get("APCLIP_TERMINAL"):
        print("   (no live progress: not run from a terminal)", flush=True)
    start = time.monotonic()
    run(args.notebook, args.output, parameters_files=args.parameters_file, kernel=args.kernel, partial=args.partial)
    print(f">> {args.notebook.stem}: done in {time.monotonic() - start:.0f} s -> {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
