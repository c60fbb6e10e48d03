"""Post-processing of generated descriptions, as in the paper (sec. 3.2.2).

"We constrain each prompt to a maximum of 30 tokens, truncating at the end of a sentence ...
elimination of superfluous spaces and standardization of punctuation."

Tokens are counted with CLIP's BPE tokenizer (open_clip's SimpleTokenizer), without the
start/end-of-text tokens, because that is what the text encoder sees. Rules, in order:
  1. text repair and punctuation: ftfy fixes mojibake and turns curly quotes into straight ones;
     an ellipsis becomes a comma, a run of punctuation keeps its first mark ("!!" -> "!",
     "?!" -> "?", ",." -> ","), spaces before punctuation and repeated spaces are removed and
     a space follows , ; : ! ? before a word;
  2. truncation: whole sentences are kept while the total stays <= max_tokens. If the first
     sentence alone is longer, it is cut at the last word boundary that fits (period included);
  3. the result ends with exactly one sentence-final mark (a period unless it ends in ! or ?).
"""
from __future__ import annotations

import re
from functools import lru_cache

import ftfy

MAX_TOKENS = 30

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ELLIPSIS = re.compile(r"\s*(?:\.{2,}|\u2026)\s*")
_REPEATED_PUNCT = re.compile(r"([.,;:!?])(?:\s*[.,;:!?])+")
_NO_SPACE_AFTER = re.compile(r"([,;:!?])(?=[^\W\d_])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_TRAILING_JUNK = re.compile(r"[\s,;:\-\u2013\u2014]+$")


@lru_cache(maxsize=1)
def _tokenizer():
    from open_clip.tokenizer import SimpleTokenizer  # imports torch: only when first needed

    return SimpleTokenizer()


def count_tokens(text: str) -> int:
    """CLIP BPE tokens of `text`, excluding start/end-of-text."""
    return len(_tokenizer().encode(text))


def normalize_text(text: str) -> str:
    """Repair text, standardise quotes/punctuation, collapse whitespace (no truncation)."""
    text = ftfy.fix_text(text, uncurl_quotes=True, normalization="NFKC")
    text = " ".join(text.split())
    text = _ELLIPSIS.sub(", ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = _NO_SPACE_AFTER.sub(r"\1 ", text)
    text = text.strip().strip('"').strip()
    return text


def _end_sentence(text: str) -> str:
    text = _TRAILING_JUNK.sub("", text)
    if not text.endswith((".", "!", "?")):
        text = text.rstrip(".!?") + "."
    return text


def _cut_at_word(sentence: str, max_tokens: int) -> str:
    """Longest prefix ending at a word boundary that fits, with its closing period."""
    words = sentence.split()
    while words:
        candidate = _end_sentence(" ".join(words))
        if count_tokens(candidate) <= max_tokens:
            return candidate
        words.pop()
    return ""


def truncate(text: str, max_tokens: int = MAX_TOKENS) -> str:
    """Keep whole sentences within max_tokens; cut an over-long first sentence at a word."""
    sentences = [_end_sentence(s) for s in _SENTENCE_END.split(text) if _TRAILING_JUNK.sub("", s)]
    kept: list[str] = []
    for sentence in sentences:
        candidate = " ".join(kept + [sentence])
        if count_tokens(candidate) <= max_tokens:
            kept.append(sentence)
        else:
            break
    if not kept and sentences:
        return _cut_at_word(sentences[0], max_tokens)
    return " ".join(kept)


def clean_description(text: str, max_tokens: int = MAX_TOKENS) -> str:
    """The full post-processing of one description (what goes into a prompt file)."""
    return truncate(normalize_text(text), max_tokens)
