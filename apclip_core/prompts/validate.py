"""Check a prompt file against a label list: `python -m apclip_core validate-prompts FILE --labels CSV`.

Violations (any one makes the exit status 1):
  schema          the file does not follow the contract's prompt-file schema
  manifest        num_classes / counts disagree with the file's content
  missing_class   a label has no prompts;   unknown_class   a prompt class is not a label
  structure       action_conditioned is not exactly one description per (llm_prompt, attribute),
                  3 LLM-prompts x 12 attributes
  tokens          a description is longer than 30 CLIP BPE tokens
  garbled         empty, non-printable characters, no letters, or shorter than 2 words / 8 chars
  duplicate       the same text for two classes
  near_duplicate  two classes' texts equal after normalising (lower case; the class name,
                  punctuation and function words removed) or difflib ratio > 0.9 between their
                  normalised word sequences (words, not characters: "a slim figure" and "a small
                  figure" differ in one of two content words)
Duplicates are looked for per strategy, and for action_conditioned per attribute (a description
of the setting is compared with the settings of the other classes), which keeps the quadratic
comparison affordable for hundreds of classes.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path

from pydantic import ValidationError

from apclip_core.data.annotations import read_label_files
from apclip_core.prompts.graph import ATTRIBUTE_KEYS
from apclip_core.prompts.postprocess import MAX_TOKENS, count_tokens
from apclip_core.prompts.schema import PromptFile

NUM_LLM_PROMPTS = 3
NEAR_DUPLICATE_RATIO = 0.9
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# Function words carry no description: "in dim light, at a slow pace" vs "... fast pace" differ in
# 1 of 4 content words, not 1 of 7 words.
FUNCTION_WORDS = frozenset(
    "a an the and or but nor so yet of in on at to from by for with without into onto over under near "
    "next as than then this that these those it its is are was were be been being has have had do does "
    "did can could would should will may might must you your they their them he his she her we our who "
    "which what while when where there here very".split())


@dataclass(frozen=True)
class Violation:
    kind: str
    classname: str | None
    detail: str

    def __str__(self) -> str:
        where = f"[{self.classname}] " if self.classname else ""
        return f"{self.kind:<15} {where}{self.detail}"


@lru_cache(maxsize=1 << 16)
def normalise(text: str, classname: str) -> str:
    """The content words, lower case: no class name (as written or with _ as spaces), no
    punctuation, no function words."""
    text = text.lower()
    for name in {classname.lower(), classname.lower().replace("_", " ")}:
        text = text.replace(name, " ")
    return " ".join(w for w in _NOT_WORD.sub(" ", text).split() if w not in FUNCTION_WORDS)


def garbled_reason(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "empty"
    if not stripped.isprintable():
        return "non-printable characters"
    if not re.search(r"[^\W\d_]", stripped):
        return "no letters"
    if len(stripped) < 8 or len(stripped.split()) < 2:
        return "too short"
    return None


def clash(c1: str, t1: str, c2: str, t2: str, ratio: float = NEAR_DUPLICATE_RATIO) -> tuple[str, str] | None:
    """(kind, why) when the texts of two different classes are duplicates or near duplicates."""
    if c1 == c2:
        return None
    if t1.strip() == t2.strip():
        return "duplicate", "same text"
    n1, n2 = normalise(t1, c1).split(), normalise(t2, c2).split()
    if n1 == n2:
        return "near_duplicate", "equal once normalised"
    if 2 * min(len(n1), len(n2)) <= ratio * (len(n1) + len(n2)):  # lengths alone rule it out
        return None
    matcher = difflib.SequenceMatcher(None, n1, n2, autojunk=False)
    if matcher.real_quick_ratio() > ratio and matcher.quick_ratio() > ratio and matcher.ratio() > ratio:
        return "near_duplicate", f"similarity {matcher.ratio():.2f}"
    return None


def duplicate_pairs(items: list[tuple[str, str]], ratio: float = NEAR_DUPLICATE_RATIO) -> list[tuple[int, int, str, str]]:
    """items: (class, text). Pairs (i, j, kind, why) of texts of different classes that are
    duplicates ("duplicate": same text) or near duplicates ("near_duplicate")."""
    return [(i, j, *found) for i, j in candidate_pairs(items, ratio)
            if (found := clash(*items[i], *items[j], ratio))]


def candidate_pairs(items: list[tuple[str, str]], ratio: float = NEAR_DUPLICATE_RATIO) -> list[tuple[int, int]]:
    """The pairs that can clash, found with matrix products instead of difflib on every pair.

    difflib's ratio is 2M/(n1+n2), M the words in matching blocks, and M is at most the multiset
    intersection of the two word lists, which is at most sum over the words of text 2 of their
    counts in text 1 (a product of a count matrix and a presence matrix). A pair whose bound is not
    above `ratio` cannot be a near duplicate; equal texts have bound 1. So the filter drops only
    pairs that `clash` would reject, and a set of 400 classes is checked in seconds.
    """
    import numpy as np

    if len(items) < 2:
        return []
    words = [normalise(t, c).split() for c, t in items]
    vocab = {w: k for k, w in enumerate(sorted({w for ws in words for w in ws}))}
    counts = np.zeros((len(items), max(1, len(vocab))), dtype=np.float32)
    for i, ws in enumerate(words):
        for w in ws:
            counts[i, vocab[w]] += 1
    present = (counts > 0).astype(np.float32)
    bound = counts @ present.T                       # bound[i, j]: words of i found in j, with i's counts
    bound = np.minimum(bound, bound.T)
    lengths = counts.sum(1)
    total = lengths[:, None] + lengths[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        possible = np.where(total > 0, 2 * bound / total > ratio, True)
    raw = [t.strip() for _, t in items]
    same_class = np.array([c for c, _ in items], dtype=object)
    i_idx, j_idx = np.nonzero(np.triu(possible, k=1))
    pairs = {(int(i), int(j)) for i, j in zip(i_idx, j_idx) if same_class[i] != same_class[j]}
    by_text: dict[str, list[int]] = defaultdict(list)  # identical raw texts always clash
    for k, t in enumerate(raw):
        by_text[t].append(k)
    pairs |= {(a, b) for ks in by_text.values() for a, b in combinations(ks, 2) if items[a][0] != items[b][0]}
    return sorted(pairs)


def _duplicates(items: list[tuple[str, str]], label: str, ratio: float) -> list[Violation]:
    return [Violation(kind, items[i][0], f"{label}: {why} with class {items[j][0]!r}: {items[i][1]!r} ~ {items[j][1]!r}")
            for i, j, kind, why in duplicate_pairs(items, ratio)]


def validate_prompt_file(path: str | Path, labels: list[str], *, max_tokens: int = MAX_TOKENS,
                         near_ratio: float = NEAR_DUPLICATE_RATIO) -> list[Violation]:
    """All violations of the prompt file at `path` for the class names `labels` (empty = valid)."""
    try:
        prompt_file = PromptFile.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except ValidationError as err:
        return [Violation("schema", None, f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in err.errors()]
    except (OSError, UnicodeDecodeError) as err:
        return [Violation("schema", None, f"cannot read {path}: {err}")]

    violations: list[Violation] = []
    classes = prompt_file.classes
    manifest = prompt_file.manifest
    if manifest.num_classes != len(classes):
        violations.append(Violation("manifest", None, f"num_classes {manifest.num_classes} but {len(classes)} classes"))
    if manifest.counts != prompt_file.counts():
        violations.append(Violation("manifest", None, f"counts {manifest.counts} but the file holds {prompt_file.counts()}"))
    violations += [Violation("missing_class", c, "no prompts for this label") for c in labels if c not in classes]
    label_set = set(labels)
    violations += [Violation("unknown_class", c, "not in the labels") for c in classes if c not in label_set]

    expected = {(k, a) for k in range(NUM_LLM_PROMPTS) for a in ATTRIBUTE_KEYS}
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for c, prompts in classes.items():
        pairs = [(e.llm_prompt, e.attribute) for e in prompts.action_conditioned]
        if sorted(pairs) != sorted(expected):
            missing = sorted(expected - set(pairs))
            extra = sorted(set(pairs) - expected) + sorted({p for p in pairs if pairs.count(p) > 1})
            violations.append(Violation("structure", c, f"action_conditioned has {len(pairs)} entries, expected "
                                        f"{len(expected)}; missing {missing[:4]}{'...' if len(missing) > 4 else ''}"
                                        f"{f', unexpected or repeated {extra[:4]}' if extra else ''}"))
        texts = [(f"action_conditioned[{e.llm_prompt}][{e.attribute}]", e.text) for e in prompts.action_conditioned]
        for e in prompts.action_conditioned:
            by_group[f"action_conditioned {e.attribute}"].append((c, e.text))
        for strategy in ("customized", "llm_direct"):
            for i, text in enumerate(getattr(prompts, strategy) or []):
                texts.append((f"{strategy}[{i}]", text))
                by_group[strategy].append((c, text))
        for where, text in texts:
            if reason := garbled_reason(text):
                violations.append(Violation("garbled", c, f"{where}: {reason}: {text!r}"))
            elif (n := count_tokens(text)) > max_tokens:
                violations.append(Violation("tokens", c, f"{where}: {n} tokens > {max_tokens}: {text!r}"))
    for group, items in by_group.items():
        violations += _duplicates(items, group, near_ratio)
    return violations


def report(violations: list[Violation], *, limit: int = 20) -> str:
    if not violations:
        return "OK: no violations"
    kinds = defaultdict(int)
    for v in violations:
        kinds[v.kind] += 1
    lines = [f"{len(violations)} violations: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))]
    lines += [f"  {v}" for v in violations[:limit]]
    if len(violations) > limit:
        lines.append(f"  ... and {len(violations) - limit} more (--limit to see them)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core validate-prompts",
                                     description="Check a prompt file against a labels CSV (id,name).")
    parser.add_argument("prompt_file", type=Path)
    parser.add_argument("--labels", type=Path, nargs="+", required=True,
                        help="labels CSV(s) with header id,name (several: their union)")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--near-ratio", type=float, default=NEAR_DUPLICATE_RATIO,
                        help="difflib ratio above which two classes' texts are near duplicates")
    parser.add_argument("--limit", type=int, default=20, help="violations to print")
    parser.add_argument("--json", action="store_true", help="print the violations as JSON")
    args = parser.parse_args(argv)
    violations = validate_prompt_file(args.prompt_file, read_label_files(args.labels), max_tokens=args.max_tokens,
                                      near_ratio=args.near_ratio)
    if args.json:
        print(json.dumps([v.__dict__ for v in violations], indent=1))
    else:
        print(f"{args.prompt_file}: " + report(violations, limit=args.limit))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
