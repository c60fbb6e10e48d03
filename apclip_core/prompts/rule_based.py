"""Rule-based prompt backend: the embedded benchmark's prompts without an LLM.

The embedded benchmark (apclip_core.embedded.benchmark) defines every class by one short English phrase
per graph attribute (`classes.json`). This backend writes those facts as sentences, in the same
shape as the LLM generator's answers (3 LLM-prompt perspectives x 12 attributes), so the whole
pipeline (prompt bank, MAKA, Table 6 ablations) runs offline and deterministically.

  action_conditioned  per attribute, one sentence per perspective: 0 "describe" states the fact,
                      1 "distinguish" contrasts it, 2 "observe" words it as what a viewer sees.
                      Where a sentence would (nearly) repeat another class's sentence for that
                      attribute (shared or similar phrases), it also names the class's traits that
                      set it apart from that class (often its movement), as an LLM asked to
                      describe that action would, until the validator's duplicate test
                      (validate.duplicate_pairs) finds no clash.
  customized          CuPL-style: a few sentences answering generic questions about the action,
                      each mixing 2-3 attributes freely, no graph structure.
  llm_direct          a flat description list drawn without the graph: only some attributes
                      (the visible scene, the actor and the movement), no per-attribute structure.
Phrases are used as written. The frames fit the benchmark's phrases, which are modifiers that
follow a subject ("on a grass-green backdrop", "dressed in purple", "moving upward", "at a slow
pace"), a noun phrase for actor.appearance ("a large round figure") and a clause for
body.part_movement ("one arm swings").
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from apclip_core.prompts.graph import ATTRIBUTE_KEYS, AttributeGraph, LLMPrompts, load_graph, load_llm_prompts
from apclip_core.prompts.postprocess import clean_description
from apclip_core.prompts.schema import ActionConditioned, ClassPrompts, Manifest, PromptFile
from apclip_core.prompts.validate import clash

# (describe, distinguish, observe) per attribute; {p} is the class's phrase for the attribute.
FRAMES: dict[str, tuple[str, str, str]] = {
    "scene.setting": ("The action is performed {p}.", "It is set {p}, unlike similar actions.",
                      "You would see the actor {p}."),
    "scene.elements": ("The scene is shown {p}.", "The background is a cue: a scene {p}.",
                       "You would see a frame {p}."),
    "scene.props": ("The actor is {p}.", "A telling cue is a figure {p}.", "You would see the figure {p}."),
    "scene.lighting": ("The scene is {p}.", "The clip is filmed {p}.", "You would see everything {p}."),
    "actor.role": ("The actor is a figure {p}.", "The performer is recognisable as a figure {p}.",
                   "You would see a figure {p}."),
    "actor.clothing": ("The actor is {p}.", "The outfit sets it apart: {p}.", "You would see someone {p}."),
    "actor.appearance": ("The actor is {p}.", "The silhouette is {p}.", "You would see {p} on screen."),
    "actor.posture": ("The actor is {p}.", "The typical pose: the body {p}.", "You would see the actor {p}."),
    "body.part_movement": ("In this action, {p}.", "The key movement is that {p}.", "You would see that {p}."),
    "body.move_direction": ("The actor keeps {p}.", "The trajectory: the figure is {p}.",
                            "You would see the figure {p}."),
    "body.move_speed": ("The movement happens {p}.", "The tempo is distinctive: it moves {p}.",
                        "You would see the actor move {p}."),
    "body.motion_pattern": ("The motion goes {p}.", "The rhythm is distinctive: it moves {p}.",
                            "Over the clip, the actor moves {p}."),
}
# CuPL-style answers: (the generic question, an answer mixing 2-3 attributes; {scene_setting} = scene.setting)
CUSTOMIZED = (
    ("What does a video of this action look like?", "A figure {actor_role}, {actor_posture}, {scene_setting}."),
    ("How can you identify this action?", "Look for a figure {scene_props}, moving {body_move_speed}."),
    ("Describe the person doing this action.", "Someone {actor_clothing}; {actor_appearance}."),
    ("Where does this action happen?", "It happens {scene_setting}, {scene_elements}, {scene_lighting}."),
    ("How does someone move when doing this action?", "Here {body_part_movement}, {body_move_direction}, "
                                                      "{body_motion_pattern}."),
)
# Descriptions "drawn directly", without the graph: only what a plain request tends to cover.
LLM_DIRECT = {"scene.setting": "It happens {p}.", "scene.props": "It involves a figure {p}.",
              "actor.role": "It is done by a figure {p}.", "body.part_movement": "In it, {p}."}


def _fields(cls: "BenchClass") -> dict[str, str]:
    """Attribute phrases under format-friendly names: scene.setting -> scene_setting."""
    return {k.replace(".", "_"): v for k, v in cls.attributes.items()}


class BenchClass(BaseModel):
    """One entry of the benchmark's classes.json (extra keys such as "render" are ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    split: str = ""
    attributes: dict[str, str]

    @field_validator("attributes")
    @classmethod
    def _all_graph_keys(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [k for k in ATTRIBUTE_KEYS if not value.get(k, "").strip()]
        if missing:
            raise ValueError(f"missing attribute phrases for {missing}; classes.json needs all of {list(ATTRIBUTE_KEYS)}")
        return value


def load_classes(path: str | Path) -> list[BenchClass]:
    return [BenchClass.model_validate(c) for c in json.loads(Path(path).read_text(encoding="utf-8"))]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _separating_traits(cls: BenchClass, others: list[BenchClass], counts: Counter,
                       own_keys: tuple[str, ...]) -> tuple[list[str], str]:
    """The class's other phrases that tell it apart from `others`, closest classes first (greedy
    cover: for the most similar class not yet told apart, the phrase that tells apart the most
    remaining classes, the rarer on ties), and the closest class's phrase for the first one."""
    keys = [k for k in ATTRIBUTE_KEYS if k not in own_keys]
    differs = {k: {o.name for o in others if o.attributes[k] != cls.attributes[k]} for k in keys}
    closeness = {o.name: sum(o.attributes[k] == cls.attributes[k] for k in ATTRIBUTE_KEYS) for o in others}
    left, chosen, contrast = set(closeness), [], ""
    while left and len(chosen) < 3:
        closest = max(left, key=lambda n: (closeness[n], n))
        options = [k for k in keys if closest in differs[k] and k not in chosen]
        if not options:
            left.discard(closest)
            continue
        best = max(options, key=lambda k: (len(differs[k] & left), -counts[(k, cls.attributes[k])]))
        if not chosen:
            contrast = next(o for o in others if o.name == closest).attributes[best]
        chosen.append(best)
        left -= differs[best]
    return [cls.attributes[k] for k in chosen], contrast


def _distinct(items: list[tuple[BenchClass, str]], counts: Counter, own_keys: tuple[str, ...]) -> list[str]:
    """items: (class, sentence), compared as the validator compares them (one strategy, or one
    attribute of action_conditioned). A sentence that (nearly) duplicates another class's
    (validate.clash) is extended with the class's phrases that tell it apart from the other
    classes, trying 1, 2, 3 phrases, each plain and then with the first one contrasted with the
    closest class ("at a slow pace, not at a fast pace": classes that differ in one attribute
    only would otherwise get sentences one word apart). The first variant that clashes with no
    other sentence is kept, so an accepted sentence stays clash-free."""
    texts = [clean_description(text) for _, text in items]
    classes = list({c.name: c for c, _ in items}.values())
    for i, (cls, _) in enumerate(items):
        def clashes(text: str) -> bool:
            return any(clash(cls.name, text, items[j][0].name, texts[j]) for j in range(len(items)) if j != i)

        if not clashes(texts[i]):
            continue
        traits, contrast = _separating_traits(cls, [c for c in classes if c.name != cls.name], counts, own_keys)
        for n in range(1, len(traits) + 1):
            for with_contrast in (False, True):
                extra = [f"{traits[0]}, not {contrast}" if with_contrast else traits[0]] + traits[1:n]
                candidate = clean_description(f"{texts[i][:-1]}, {', '.join(extra)}.")
                if not clashes(candidate):
                    texts[i] = candidate
                    break
            else:
                continue
            break
    return texts


def build_prompt_file(classes: list[BenchClass], *, dataset: str = "apclip_bench", graph: AttributeGraph | None = None,
                      templates: LLMPrompts | None = None) -> PromptFile:
    graph = graph or load_graph()
    templates = templates or load_llm_prompts()
    counts = Counter((k, c.attributes[k]) for c in classes for k in ATTRIBUTE_KEYS)
    out = {c.name: {"action_conditioned": [], "customized": [], "llm_direct": []} for c in classes}
    ks = range(len(templates.templates))
    for key in ATTRIBUTE_KEYS:  # all perspectives of one attribute together, as the validator compares them
        items = [(c, FRAMES[key][k].format(p=c.attributes[key])) for k in ks for c in classes]
        for (c, _), text, k in zip(items, _distinct(items, counts, (key,)), [k for k in ks for _ in classes]):
            out[c.name]["action_conditioned"].append(ActionConditioned(llm_prompt=k, attribute=key, text=text))
    for _question, answer in CUSTOMIZED:
        keys = tuple(k for k in ATTRIBUTE_KEYS if "{" + k.replace(".", "_") + "}" in answer)
        items = [(c, _capitalise(answer.format(**_fields(c)))) for c in classes]
        for c, text in zip(classes, _distinct(items, counts, keys)):
            out[c.name]["customized"].append(text)
    for key, frame in LLM_DIRECT.items():
        items = [(c, frame.format(p=c.attributes[key])) for c in classes]
        for c, text in zip(classes, _distinct(items, counts, (key,))):
            out[c.name]["llm_direct"].append(text)
    for strategies in out.values():  # contract order: llm_prompt, then graph order
        strategies["action_conditioned"].sort(key=lambda e: (e.llm_prompt, ATTRIBUTE_KEYS.index(e.attribute)))
    prompts = {name: ClassPrompts(**strategies) for name, strategies in out.items()}
    notes = ("Rule-based prompts written from the benchmark's attribute definitions (classes.json), no LLM. "
             "action_conditioned: 3 phrasings (describe / distinguish / observe, the LLM-prompt perspectives) x 12 "
             "graph attributes. customized: rule-based analogue of CuPL customized prompts (Table 6): sentences "
             "answering generic questions, each mixing 2-3 attributes, no graph structure. llm_direct: rule-based "
             f"analogue of descriptions drawn directly without the graph (Table 6): only {list(LLM_DIRECT)}.")
    manifest = Manifest(dataset=dataset, source="rule-based", generator_model="rule-based",
                        created=date.today().isoformat(), template_version=templates.version,
                        graph_version=graph.version, num_classes=len(prompts), counts={}, notes=notes)
    prompt_file = PromptFile(manifest=manifest, classes=prompts)
    prompt_file.manifest.counts = prompt_file.counts()
    return prompt_file
