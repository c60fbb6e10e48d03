"""`python -m apclip_core report --table NAME`: print a rendered table and where its files are.

Used at the end of `make demo` and `make reproduce-*`, so a user sees what was computed and where
it was written without opening the output notebook.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from apclip_core import paths


def written_name(table: str, notebook: Path | None) -> str:
    """The name the executed `notebook` wrote `table`'s files under: Table 2 run on UCF-101 (the paper profile with
    overrides.protocol_args.dataset: ucf101) writes table2_base_to_novel_ucf101_paper.*, neither HMDB-51's files
    nor the smoke profile's."""
    if notebook is None or not notebook.is_file():
        return table
    params = json.loads(notebook.read_text()).get("metadata", {}).get("papermill", {}).get("parameters") or {}
    from apclip_core.paper.reproduce import SMOKE_DATASET, run_dataset, table_file_name

    return table_file_name(table, run_dataset(params.get("overrides"), params.get("dataset") or SMOKE_DATASET),
                           params.get("profile") or "smoke")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="apclip report", description=__doc__)
    parser.add_argument("--table", required=True, help="table name, e.g. table2_base_to_novel")
    parser.add_argument("--notebook", type=Path, help="the executed notebook that produced it (its parameters say "
                        "which dataset's files it wrote)")
    parser.add_argument("--figures", type=Path, default=None, help="figures folder (default: figures/)")
    args = parser.parse_args(argv)

    figures = args.figures or paths.figures_dir()
    args.table = written_name(args.table, args.notebook)
    md = figures / f"{args.table}.md"
    if not md.exists():
        available = sorted(p.stem for p in figures.glob("*.md"))
        print(f"no rendered table {args.table!r} in {figures}; available: {', '.join(available) or 'none'}")
        return 1
    print()
    print(md.read_text().rstrip())
    result = figures / f"{args.table}.json"
    if result.exists():
        prov = json.loads(result.read_text()).get("provenance", {})
        # the results file is rewritten only when its numbers change, so this is when they were made
        print(f"\nnumbers computed at commit {str(prov.get('commit'))[:12]}{' (dirty tree)' if prov.get('dirty') else ''}"
              f" on {prov.get('machine')}, {prov.get('date')}")
    print("\nwritten:")
    for path in sorted(figures.glob(f"{args.table}.*")):
        print(f"  {path}  ({path.stat().st_size:,} bytes)")
    if args.notebook:
        print(f"  {args.notebook}  (executed notebook)")
    return 0
