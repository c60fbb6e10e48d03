"""The hierarchical attribute graph (paper sec. 3.2.1) and the LLM-prompt templates (sec. 3.2.2).

Both live as versioned JSON under prompts/ so a prompt file can say exactly which graph and which
templates produced it (manifest graph_version / template_version). The 12 attribute keys are fixed
by the team contract; loading a graph with other keys is an error, because the prompt bank, MAKA
analyses and the shipped prompt files all index descriptions by these keys.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from apclip_core.paths import prompts_dir

ASPECTS = ("Scene", "Actor", "Body")
ATTRIBUTE_KEYS = (
    "scene.setting", "scene.elements", "scene.props", "scene.lighting",
    "actor.role", "actor.clothing", "actor.appearance", "actor.posture",
    "body.part_movement", "body.move_direction", "body.move_speed", "body.motion_pattern",
)


class AttributeGraph(BaseModel):
    """Aspect -> {attribute key: one-line definition}; the definitions are what the LLM reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    description: str = ""
    aspects: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _contract_keys(self) -> "AttributeGraph":
        if tuple(self.aspects) != ASPECTS:
            raise ValueError(f"aspects must be {list(ASPECTS)} in this order, got {list(self.aspects)}")
        keys = tuple(k for attrs in self.aspects.values() for k in attrs)
        if keys != ATTRIBUTE_KEYS:
            raise ValueError(f"attribute keys must be exactly {list(ATTRIBUTE_KEYS)} in this order, got {list(keys)}")
        for key, definition in self.definitions.items():
            if not definition.strip() or "\n" in definition:
                raise ValueError(f"attribute {key!r} needs a one-line definition, got {definition!r}")
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        return ATTRIBUTE_KEYS

    @cached_property
    def definitions(self) -> dict[str, str]:
        return {k: d for attrs in self.aspects.values() for k, d in attrs.items()}

    def attribute_lines(self) -> str:
        """The {attributes} block of an LLM-prompt: one 'key: definition' line per attribute."""
        return "\n".join(f"{k}: {d}" for k, d in self.definitions.items())


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0)
    name: str
    template: str

    @model_validator(mode="after")
    def _placeholders(self) -> "Template":
        for field in ("{action}", "{attributes}"):
            if field not in self.template:
                raise ValueError(f"template {self.name!r} lacks the placeholder {field}")
        return self


class LLMPrompts(BaseModel):
    """The versioned query templates: template k is the manifest's llm_prompt k."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    description: str = ""
    system: str
    templates: list[Template] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_are_positions(self) -> "LLMPrompts":
        ids = [t.id for t in self.templates]
        if ids != list(range(len(ids))):
            raise ValueError(f"template ids must be 0..{len(ids) - 1} in order, got {ids}")
        return self

    def render(self, k: int, action: str, graph: AttributeGraph) -> str:
        """The user message of LLM-prompt k for one class."""
        return self.templates[k].template.format(action=action, attributes=graph.attribute_lines())


def load_graph(path: str | Path | None = None) -> AttributeGraph:
    path = Path(path) if path else prompts_dir() / "attribute_graph.json"
    return AttributeGraph.model_validate_json(path.read_text(encoding="utf-8"))


def load_llm_prompts(path: str | Path | None = None) -> LLMPrompts:
    path = Path(path) if path else prompts_dir() / "llm_prompts.json"
    return LLMPrompts.model_validate_json(path.read_text(encoding="utf-8"))
