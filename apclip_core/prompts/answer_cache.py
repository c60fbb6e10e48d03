"""On-disk cache of validated LLM answers: one JSON file per (class, llm_prompt).

Why: generation is slow and paid. A run killed at any point and restarted must never ask again
for an answer it already has, and a change of model, template, graph or sampling settings must
never reuse an answer made under other settings. So:
  * the folder is keyed by a hash of (model, template version, graph version, sampling settings);
  * the file name is keyed by the class name (slug + hash, so any name is a safe file name) and
    the llm_prompt index;
  * files are written atomically (temp file + fsync + os.replace), so a SIGKILL leaves either
    the whole answer or nothing;
  * only answers that passed validation are written, and they are validated again when read.
Raw answers are cached (not post-processed text), so post-processing can change without re-asking.
The cache never holds credentials: the key has no base_url and no headers.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ValidationError

from apclip_core import atomic
from apclip_core.prompts.schema import AttributeDescriptions




def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes an answer, except the class and the llm_prompt index."""

    model: str
    template_version: str
    graph_version: str
    sampling: tuple[tuple[str, object], ...]  # sorted (name, value) pairs: temperature, top_p, ...

    def digest(self) -> str:
        return _digest(asdict(self))[:16]


class AnswerCache:
    def __init__(self, root: str | Path, key: CacheKey):
        self.key = key
        self.dir = Path(root) / key.digest()

    def path(self, classname: str, llm_prompt: int) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", classname).strip("_")[:40] or "class"
        return self.dir / f"{slug}-{_digest(classname)[:10]}-p{llm_prompt}.json"

    def get(self, classname: str, llm_prompt: int) -> dict[str, str] | None:
        """The cached, re-validated answer, or None if absent (or not a valid answer)."""
        path = self.path(classname, llm_prompt)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["class"] != classname or record["llm_prompt"] != llm_prompt:
                return None
            return AttributeDescriptions.model_validate(record["answer"]).model_dump(by_alias=True)
        except (OSError, ValueError, KeyError, ValidationError):
            return None

    def put(self, classname: str, llm_prompt: int, answer: dict[str, str]) -> Path:
        if not self.dir.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic.write_text(self.dir / "key.json", json.dumps(asdict(self.key), indent=1))
        path = self.path(classname, llm_prompt)
        record = {"class": classname, "llm_prompt": llm_prompt, "answer": answer}
        atomic.write_text(path, json.dumps(record, indent=1, ensure_ascii=False))
        return path
