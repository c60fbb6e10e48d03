"""Author a prompt file in slices of classes, then merge: `python -m apclip_core.prompts.slices`.

A prompt set for hundreds of classes is written (by an LLM, online or offline) a slice of classes
at a time, each slice in its own file, so that a slice can be checked, redone or reviewed alone.
A slice is one JSON object, compact to write and read:

    {"<class name>": {"describe":    [12 sentences],   # LLM-prompt 0, attributes in graph order
                      "distinguish": [12 sentences],   # LLM-prompt 1
                      "observe":     [12 sentences],   # LLM-prompt 2
                      "customized":  [6 sentences],    # optional: CuPL-style answers
                      "llm_direct":  [8 sentences]}}   # optional: free descriptions, no graph

`check` holds a slice to what `validate-prompts` holds the merged file to, plus the per-class
rules of a shipped set: every text post-processed unchanged (<= 30 CLIP tokens, one sentence end),
no two texts of one class near-duplicates, no text containing its own class name verbatim.
`merge` turns the slices into the prompt-file schema, writes it with a manifest, and validates it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date
from pathlib import Path

from apclip_core import atomic
from apclip_core.data.annotations import read_label_files
from apclip_core.errors import BadFile, run_command
from apclip_core.prompts.graph import ATTRIBUTE_KEYS
from apclip_core.prompts.postprocess import clean_description
from apclip_core.prompts.quality import measure, near_duplicate_within
from apclip_core.prompts.schema import ActionConditioned, ClassPrompts, Manifest, PromptFile
from apclip_core.prompts.validate import duplicate_pairs, report, validate_prompt_file
from apclip_core.user_files import read_json

LLM_PROMPT_NAMES = ("describe", "distinguish", "observe")  # ids 0, 1, 2 of prompts/llm_prompts.json
EXTRA_COUNTS = {"customized": 6, "llm_direct": 8}


def class_problems(name: str, entry: dict, *, extras: bool) -> list[str]:
    """What is wrong with one class of a slice (empty = fine)."""
    problems = []
    wanted = set(LLM_PROMPT_NAMES) | (set(EXTRA_COUNTS) if extras else set())
    if set(entry) != wanted:
        problems.append(f"keys {sorted(entry)}, expected {sorted(wanted)}")
    texts: list[tuple[str, str]] = []
    for key in LLM_PROMPT_NAMES:
        answer = entry.get(key, [])
        if len(answer) != len(ATTRIBUTE_KEYS):
            problems.append(f"{key}: {len(answer)} sentences, expected {len(ATTRIBUTE_KEYS)}")
        texts += [(f"{key}[{ATTRIBUTE_KEYS[i] if i < len(ATTRIBUTE_KEYS) else i}]", t) for i, t in enumerate(answer)]
    for key, count in EXTRA_COUNTS.items():
        if key in entry:
            if len(entry[key]) != count:
                problems.append(f"{key}: {len(entry[key])} sentences, expected {count}")
            texts += [(f"{key}[{i}]", t) for i, t in enumerate(entry[key])]
    for where, text in texts:
        if not isinstance(text, str):
            problems.append(f"{where}: not a string")
            continue
        if clean_description(text) != text:
            problems.append(f"{where}: post-processing changes it (too long, no sentence end, or odd "
                            f"punctuation): {text!r} -> {clean_description(text)!r}")
        if re.search(rf"\b{re.escape(name.lower())}\b", text.lower()):
            problems.append(f"{where}: contains the class name {name!r}: {text!r}")
    strings = [t for _, t in texts if isinstance(t, str)]
    for i, j in near_duplicate_within(strings, name):
        problems.append(f"near-duplicate texts in one class: {texts[i][0]} {strings[i]!r} ~ {texts[j][0]} {strings[j]!r}")
    return problems


def to_class_prompts(entry: dict) -> ClassPrompts:
    action_conditioned = [ActionConditioned(llm_prompt=k, attribute=ATTRIBUTE_KEYS[i], text=text)
                          for k, key in enumerate(LLM_PROMPT_NAMES) for i, text in enumerate(entry[key])]
    return ClassPrompts(action_conditioned=action_conditioned, customized=entry.get("customized"),
                        llm_direct=entry.get("llm_direct"))


def load_slices(paths: list[Path]) -> dict[str, dict]:
    """The classes of every slice file; BadFile naming the file (and line, or class) of one that is not a slice."""
    merged: dict[str, dict] = {}
    for path in paths:
        data = read_json(path, "JSON slice ({\"<class name>\": {\"describe\": [...], ...}})")
        for name, entry in data.items():
            if not isinstance(entry, dict) or not all(isinstance(v, list) for v in entry.values()):
                raise BadFile(f"{path}: class {name!r} must map each prompt kind to a list of sentences "
                              f"({{\"describe\": [...], \"distinguish\": [...], \"observe\": [...]}}), got "
                              f"{json.dumps(entry)[:80]}")
            if name in merged:
                raise BadFile(f"{path}: class {name!r} is also in an earlier slice; keep it in one slice only")
            merged[name] = entry
    return merged


def check(paths: list[Path], *, extras: bool, labels: list[str] | None = None) -> list[str]:
    """Every problem of the slices, as lines (empty = the slices are ready to merge)."""
    classes = load_slices(paths)
    lines = [f"[{name}] {p}" for name, entry in classes.items() for p in class_problems(name, entry, extras=extras)]
    if labels is not None:
        lines += [f"[{name}] not a label of the labels file" for name in classes if name not in set(labels)]
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, entry in classes.items():
        for key in LLM_PROMPT_NAMES:
            for i, text in enumerate(entry.get(key, [])[:len(ATTRIBUTE_KEYS)]):
                groups.setdefault(ATTRIBUTE_KEYS[i], []).append((name, text))
        for key in EXTRA_COUNTS:
            groups.setdefault(key, []).extend((name, t) for t in entry.get(key, []))
    for group, items in groups.items():
        lines += [f"[{items[i][0]}] {kind} ({group}) with class {items[j][0]!r}: {items[i][1]!r} ~ {items[j][1]!r}"
                  for i, j, kind, _ in duplicate_pairs(items)]
    return lines


def merge(paths: list[Path], labels: list[str], out: Path, *, dataset: str, generator_model: str,
          notes: str, created: str | None = None, references: list[Path] = ()) -> PromptFile:
    """The slices as one prompt file, classes in label order, written to `out`, with its measured
    quality (prompts.quality) beside that of the `references` prompt files."""
    classes = load_slices(paths)
    for name, entry in classes.items():
        if lacking := [k for k in LLM_PROMPT_NAMES if k not in entry]:
            raise BadFile(f"class {name!r} of the slices has no {', '.join(lacking)}; see every problem with "
                          f"`python -m apclip_core.prompts.slices check {' '.join(map(str, paths))}`")
    missing = [c for c in labels if c not in classes]
    if missing:
        raise SystemExit(f"{len(missing)} labels have no slice yet, e.g. {missing[:5]}")
    ordered = {c: to_class_prompts(classes[c]) for c in labels}
    prompt_file = PromptFile(manifest=Manifest(dataset=dataset, source="llm-offline", generator_model=generator_model,
                                               created=created or date.today().isoformat(), template_version="1.0",
                                               graph_version="1.0", num_classes=len(ordered), counts={}, notes=notes),
                             classes=ordered)
    prompt_file.manifest.counts = prompt_file.counts()
    prompt_file.manifest.quality = {"this_set": measure(prompt_file), "reference": {
        ref.stem: measure(PromptFile.read(ref)) for ref in references}}
    prompt_file.write(out)
    return prompt_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core.prompts.slices", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check slices before merging")
    c.add_argument("slices", nargs="+", type=Path)
    c.add_argument("--no-extras", action="store_true", help="the slices hold action-conditioned prompts only")
    c.add_argument("--labels", type=Path, action="append", help="labels CSV: every class must be one of its names "
                   "(repeat --labels for several files)")
    m = sub.add_parser("merge", help="merge slices into a prompt file and validate it")
    m.add_argument("slices", nargs="+", type=Path)
    m.add_argument("--labels", type=Path, required=True, action="append",
                   help="labels CSV; classes in its order (repeat --labels for several files: their union)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--dataset", required=True)
    m.add_argument("--generator-model", required=True)
    m.add_argument("--notes", default="")
    m.add_argument("--reference", type=Path, nargs="*", default=[], help="prompt files whose quality is recorded beside")
    args = parser.parse_args(argv)
    if args.command == "check":
        lines = check(args.slices, extras=not args.no_extras,
                      labels=read_label_files(args.labels) if args.labels else None)
        print("\n".join(lines) if lines else f"OK: {len(load_slices(args.slices))} classes ready to merge")
        return 1 if lines else 0
    atomic.writable_folder(args.out.parent)  # before the slices are checked and merged
    labels = read_label_files(args.labels)
    merge(args.slices, labels, args.out, dataset=args.dataset, generator_model=args.generator_model, notes=args.notes,
          references=args.reference)
    violations = validate_prompt_file(args.out, labels)
    print(f"{args.out}: " + report(violations))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]))
