"""Prompt-bank encoding: the on-disk feature cache and the trimmed text length (issue figure 2).

A dataset's action-conditioned prompts (36 per class) go through the text tower once per set of
weights: PromptBank.encode caches the features under APCLIP_CACHE (here a fresh folder inside
the run's work directory, so the first encode really encodes). Figures:

* first encode / cached repeat, in the same process (text-tower fingerprint memoised), and as a
  new process would see it (fingerprint recomputed: sha256 of the text tower's weights, a fixed
  cost per model that a small bank makes look large; the note models the whole dataset).
* fixed 77 tokens / trimmed: the same prompts, same batches, tokenized to CLIP's 77 tokens and
  encoded with open_clip's layout, against VideoCLIP.tokenize (trimmed to the longest prompt of
  each length-sorted batch). Trimming is exact (causal mask + EOT pooling): max |difference| is
  recorded and checked by the tests.

Full run: ViT-B-16 (real architecture, random weights: no download). The cache is timed on the
whole dataset's prompts (HMDB-51: 51 classes x 36 = 1836), as a repeat evaluation meets them; the
77-token comparison on the first 8 classes (288 prompts), since the 77-token pass is 3x slower.
--quick: apclip-tiny on 3 classes for both.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from common import PROJECT_ROOT, fmt_s, ratio, row, timeit

FULL = dict(model="ViT-B-16", classes=8, cache_classes=None, repeats=1, batch_size=256)   # None: all classes
QUICK = dict(model="apclip-tiny", classes=3, cache_classes=3, repeats=1, batch_size=256)


def prompt_file() -> Path:
    """HMDB-51's prompts when shipped (51 classes, the paper's smallest dataset), else UCF-101's."""
    for name in ("hmdb51.json", "ucf101.json"):
        path = PROJECT_ROOT / "prompts" / name
        if path.is_file():
            return path
    raise FileNotFoundError("no prompts/hmdb51.json or prompts/ucf101.json to benchmark prompt encoding on")


def encode_fixed_77(model, texts: list[str], batch_size: int) -> torch.Tensor:
    """open_clip's way: every prompt tokenized to the full context length (77), batches in file order."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = model.tokenizer(texts[start:start + batch_size])         # [n, 77]
        out.append(model.encode_text(tokens))
    return torch.cat(out)


def run(*, quick: bool, threads: int, workdir: Path) -> dict:
    import json

    from apclip_core.model.video_clip import create_model
    from apclip_core.prompts.bank import PromptBank

    s = QUICK if quick else FULL
    path = prompt_file()
    all_classes = list(json.loads(path.read_text(encoding="utf-8"))["classes"])
    bank = PromptBank.from_prompt_file(path, all_classes[:s["classes"]], "action_conditioned")
    dataset_bank = PromptBank.from_prompt_file(path, all_classes[:s["cache_classes"]], "action_conditioned")
    texts = bank.flat_prompts
    torch.manual_seed(0)
    model = create_model(s["model"], pretrained=None).eval()
    lengths = model.tokenizer(texts).ne(0).sum(dim=1).float()

    old_cache = os.environ.get("APCLIP_CACHE")
    os.environ["APCLIP_CACHE"] = str(workdir / "prompt_cache")
    try:
        with torch.no_grad():
            model._fingerprint = None
            first = timeit(lambda: dataset_bank.encode(model, batch_size=s["batch_size"], cache=True),
                           repeats=1, warmup=0)
            cached = dataset_bank.encode(model, cache=True)
            repeat_memo = timeit(lambda: dataset_bank.encode(model, cache=True), repeats=3)

            def cold_repeat():
                model._fingerprint = None      # what a new process pays: hash the text tower again
                return dataset_bank.encode(model, cache=True)

            repeat_cold = timeit(cold_repeat, repeats=3)
            # the first encode warmed everything up: no extra warm-up for these (ViT-B text is slow on CPU)
            kept_trim, kept_77 = [], []
            trimmed = timeit(lambda: bank.encode(model, batch_size=s["batch_size"], cache=False),
                             repeats=s["repeats"], warmup=0, keep=kept_trim)
            fixed = timeit(lambda: encode_fixed_77(model, texts, s["batch_size"]), repeats=s["repeats"], warmup=0,
                           keep=kept_77)
            fresh, full77 = kept_trim[0], kept_77[0]
    finally:
        if old_cache is None:
            os.environ.pop("APCLIP_CACHE", None)
        else:
            os.environ["APCLIP_CACHE"] = old_cache
    feats77, _ = bank.pad(full77)
    trim_diff = float((fresh.feats - feats77).abs().max())
    # the subset's classes come first in the dataset bank: cached features must equal fresh ones
    cache_diff = float((cached.feats[:len(bank.classnames)] - fresh.feats).abs().max())
    n = len(texts)
    hash_s = max(repeat_cold["median_s"] - repeat_memo["median_s"], 0.0)
    total_prompts = len(dataset_bank.flat_prompts)
    what = f"{s['model']}, {len(dataset_bank.classnames)} classes = {total_prompts} prompts ({path.name})"
    rows = [
        row(f"first encode / cached repeat, same process ({what})",
            ratio(first["median_s"], repeat_memo["median_s"]), target=">= 50x",
            ok=(ratio(first["median_s"], repeat_memo["median_s"]) or 0) >= 50,
            measured=f"{fmt_s(first['median_s'])} vs {fmt_s(repeat_memo['median_s'])}",
            note=f"cached features equal fresh ones (max diff {cache_diff:.1e})"),
        row("first encode / cached repeat, new process (weights hashed again)",
            ratio(first["median_s"], repeat_cold["median_s"]), target=">= 50x",
            ok=(ratio(first["median_s"], repeat_cold["median_s"]) or 0) >= 50,
            measured=f"{fmt_s(first['median_s'])} vs {fmt_s(repeat_cold['median_s'])} "
                     f"(of which hashing {fmt_s(hash_s)})",
            note="the cache key hashes the text tower's weights once per process"),
        row(f"fixed 77 tokens / trimmed to the longest prompt: encode time ({len(bank.classnames)} classes = {n} prompts)", ratio(fixed["median_s"], trimmed["median_s"]),
            target="> 1x (the saving)", ok=(ratio(fixed["median_s"], trimmed["median_s"]) or 0) > 1,
            measured=f"77: {fmt_s(fixed['median_s'])} vs trimmed: {fmt_s(trimmed['median_s'])}",
            note=f"prompt lengths mean {lengths.mean():.1f}, max {lengths.max():.0f} tokens; "
                 f"max |trimmed - 77| = {trim_diff:.1e}"),
    ]
    return {"rows": rows,
            "details": {"model": s["model"], "prompt_file": str(path.relative_to(PROJECT_ROOT)), "classes": bank.classnames,
                        "prompts": n, "token_length_mean": float(lengths.mean()), "token_length_max": int(lengths.max()),
                        "first_encode": first, "repeat_same_process": repeat_memo, "repeat_new_process": repeat_cold,
                        "trimmed": trimmed, "fixed_77": fixed, "max_abs_diff_trimmed_vs_77": trim_diff,
                        "max_abs_diff_cached_vs_fresh": cache_diff, "dataset_prompts": total_prompts}}
