"""Pydantic schemas: one LLM answer (12 descriptions) and the prompt file of the team contract.

The answer model is the single source of truth for both ends of a request: its JSON schema is
sent as the strict structured-output `response_format`, and every answer (live, cached or from a
batch) is validated against the same model before it is kept.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from apclip_core.prompts.graph import ATTRIBUTE_KEYS

MIN_DESCRIPTION_CHARS = 8
_LETTER = re.compile(r"[^\W\d_]")


def _field_name(key: str) -> str:
    return key.replace(".", "__")


def _description_is_text(cls, value: str) -> str:
    value = value.strip()
    if len(value) < MIN_DESCRIPTION_CHARS:
        raise ValueError(f"description too short ({len(value)} chars): {value!r}")
    if not _LETTER.search(value):
        raise ValueError(f"description has no letters: {value!r}")
    if not value.isprintable():
        raise ValueError(f"description has non-printable characters: {value!r}")
    return value


def _answer_model() -> type[BaseModel]:
    """A model with one required string field per graph key (aliases keep the dotted keys)."""
    fields = {_field_name(k): (str, Field(alias=k)) for k in ATTRIBUTE_KEYS}
    return create_model(
        "AttributeDescriptions",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        __validators__={"_text": field_validator("*")(_description_is_text)},
        **fields,
    )


AttributeDescriptions = _answer_model()


def answer_json_schema() -> dict:
    """The strict JSON schema sent as response_format (all keys required, no extra keys)."""
    schema = AttributeDescriptions.model_json_schema(by_alias=True)
    for prop in schema["properties"].values():
        prop.pop("title", None)
    return schema


def response_format() -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": "attribute_descriptions", "strict": True, "schema": answer_json_schema()}}


def parse_answer(content: str) -> dict[str, str]:
    """Validate one answer's JSON text; raises pydantic.ValidationError (malformed or off-schema)."""
    return AttributeDescriptions.model_validate_json(content).model_dump(by_alias=True)


# ---- prompt file (contract: prompts/<dataset>.json) ----

Source = Literal["llm-offline", "rule-based", "openai-api", "openai-compatible"]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    source: Source
    generator_model: str
    created: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    template_version: str
    graph_version: str
    num_classes: int = Field(ge=0)
    counts: dict[str, int]
    notes: str = ""
    quality: Optional[dict] = None   # prompts.quality.measure() of this file, and of reference sets


class ActionConditioned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm_prompt: int = Field(ge=0)
    attribute: Literal[ATTRIBUTE_KEYS]  # type: ignore[valid-type]
    text: str


class ClassPrompts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_conditioned: list[ActionConditioned] = Field(default_factory=list)
    customized: list[str] | None = None
    llm_direct: list[str] | None = None


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: Manifest
    classes: dict[str, ClassPrompts]

    def counts(self) -> dict[str, int]:
        """Number of strings per strategy (the manifest's `counts`)."""
        totals = {"action_conditioned": 0, "customized": 0, "llm_direct": 0}
        for prompts in self.classes.values():
            totals["action_conditioned"] += len(prompts.action_conditioned)
            totals["customized"] += len(prompts.customized or [])
            totals["llm_direct"] += len(prompts.llm_direct or [])
        return {k: v for k, v in totals.items() if v}

    @classmethod
    def read(cls, path) -> "PromptFile":
        """The prompt file at `path`; a file that is missing or off-schema raises ValueError naming it."""
        from pydantic import ValidationError

        from apclip_core.errors import BadFile

        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise BadFile(f"cannot read prompt file {path}: {err}") from None
        except ValidationError as err:
            first = err.errors()[0]
            raise BadFile(f"{path} is not a valid prompt file ({err.error_count()} problems; first: "
                             f"{'.'.join(map(str, first['loc']))}: {first['msg']}); check it with "
                             f"`python -m apclip_core validate-prompts {path} --labels LABELS.csv`") from None

    def write(self, path) -> None:
        """Write atomically (a crash never leaves half a prompt file)."""
        from apclip_core import atomic

        atomic.write_text(path, self.model_dump_json(indent=1, exclude_none=True) + "\n")
