"""Measured quality of a prompt set, recorded in its manifest and held by tests.

Per strategy: how many texts, their mean length in words, the distinct-word-bigram ratio (distinct
bigrams / all bigrams over the whole set: low when descriptions repeat each other's phrasing; it
falls as a set grows, so it is also given on samples of 1,000 texts, comparable across sets), the
pairs of one class's texts that are near duplicates, and the texts that contain their own class
name verbatim (a description should describe, not name).
"""
from __future__ import annotations

import difflib
import random
import re
from collections import Counter
from itertools import combinations

from apclip_core.prompts.schema import PromptFile
from apclip_core.prompts.validate import NEAR_DUPLICATE_RATIO, normalise

_WORD = re.compile(r"[a-z0-9']+")


SAMPLE = 1000  # texts per sample for the size-independent bigram ratio (mean of 5 seeded samples)


def _bigram_ratio(words: list[list[str]]) -> float:
    bigrams = Counter(b for w in words for b in zip(w, w[1:]))
    return len(bigrams) / max(1, sum(bigrams.values()))


def _texts(prompt_file: PromptFile, strategy: str) -> dict[str, list[str]]:
    if strategy == "action_conditioned":
        return {c: [e.text for e in p.action_conditioned] for c, p in prompt_file.classes.items()}
    return {c: list(getattr(p, strategy) or []) for c, p in prompt_file.classes.items()}


def near_duplicate_within(texts: list[str], classname: str, ratio: float = NEAR_DUPLICATE_RATIO) -> list[tuple[int, int]]:
    """Index pairs of one class's texts that are equal or near-equal once normalised."""
    norm = [normalise(t, classname).split() for t in texts]
    return [(i, j) for i, j in combinations(range(len(texts)), 2)
            if norm[i] == norm[j] or difflib.SequenceMatcher(None, norm[i], norm[j], autojunk=False).ratio() > ratio]


def names_itself(text: str, classname: str) -> bool:
    return re.search(rf"\b{re.escape(classname.lower())}\b", text.lower()) is not None


def measure(prompt_file: PromptFile) -> dict:
    """{strategy: {texts, mean_words, distinct_bigram_ratio, near_duplicate_pairs_within_class,
    texts_naming_their_class}} for every strategy the file holds."""
    out = {}
    for strategy in ("action_conditioned", "customized", "llm_direct"):
        by_class = {c: t for c, t in _texts(prompt_file, strategy).items() if t}
        if not by_class:
            continue
        all_texts = [t for texts in by_class.values() for t in texts]
        words = [_WORD.findall(t.lower()) for t in all_texts]
        bigrams = Counter(b for w in words for b in zip(w, w[1:]))
        sampled = [_bigram_ratio(random.Random(seed).sample(words, SAMPLE)) for seed in range(5)] \
            if len(words) > SAMPLE else [_bigram_ratio(words)]
        out[strategy] = {
            "texts": len(all_texts),
            "mean_words": round(sum(map(len, words)) / len(words), 2),
            "distinct_bigram_ratio": round(len(bigrams) / max(1, sum(bigrams.values())), 4),
            f"distinct_bigram_ratio_{SAMPLE}": round(sum(sampled) / len(sampled), 4),
            "near_duplicate_pairs_within_class": sum(len(near_duplicate_within(t, c)) for c, t in by_class.items()),
            "texts_naming_their_class": sum(names_itself(t, c) for c, texts in by_class.items() for t in texts),
        }
    return out
