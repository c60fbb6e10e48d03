"""Attribute graph, LLM-prompt templates, answer schema and post-processing."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from apclip_core.prompts import ATTRIBUTE_KEYS, clean_description, count_tokens, load_graph, load_llm_prompts
from apclip_core.prompts.graph import AttributeGraph
from apclip_core.prompts.schema import answer_json_schema, parse_answer, response_format


def test_graph_has_the_contract_keys_with_one_line_definitions():
    graph = load_graph()
    assert graph.version and list(graph.aspects) == ["Scene", "Actor", "Body"]
    assert all(len(attrs) == 4 for attrs in graph.aspects.values())
    assert graph.keys == ATTRIBUTE_KEYS and list(graph.definitions) == list(ATTRIBUTE_KEYS)
    assert all(d.strip() and "\n" not in d for d in graph.definitions.values())
    bad = graph.model_dump()
    bad["aspects"]["Body"]["body.tempo"] = bad["aspects"]["Body"].pop("body.move_speed")
    with pytest.raises(ValidationError, match="attribute keys must be exactly"):
        AttributeGraph.model_validate(bad)


def test_the_three_llm_prompts():
    templates = load_llm_prompts()
    assert templates.version and [t.name for t in templates.templates] == ["describe", "distinguish", "observe"]
    query = templates.render(1, "brush hair", load_graph())
    assert query.startswith("What visual cues in a video distinguish 'brush hair' from similar actions? Write one "
                            "short sentence (under 25 words) for each attribute below.\n")
    lines = query.splitlines()[1:]
    assert [line.split(": ", 1)[0] for line in lines] == list(ATTRIBUTE_KEYS)


def test_structured_output_schema_is_strict():
    schema = answer_json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == list(ATTRIBUTE_KEYS) and list(schema["properties"]) == list(ATTRIBUTE_KEYS)
    assert response_format()["json_schema"]["strict"] is True


def test_answers_are_validated():
    good = {k: f"A clear sentence about {k}." for k in ATTRIBUTE_KEYS}
    assert parse_answer(json.dumps(good)) == good
    for bad in ({k: v for k, v in good.items() if k != "body.move_speed"},  # missing key
                {**good, "extra": "An extra key here."},  # off-schema key
                {**good, "scene.props": "..."},  # no letters / too short
                {**good, "actor.role": 42}):
        with pytest.raises(ValidationError):
            parse_answer(json.dumps(bad))
    with pytest.raises(ValidationError, match="json_invalid|Invalid JSON"):
        parse_answer(json.dumps(good)[:-20])


def test_post_processing_standardises_text():
    assert clean_description("  The actor  wears a \u201cred\u201d shirt ,and shoes!!  ") == \
        'The actor wears a "red" shirt, and shoes!'
    assert clean_description("A gym... with mats;") == "A gym, with mats."
    assert clean_description("He runs fast") == "He runs fast."
    assert clean_description("Really?!") == "Really?"


def test_truncation_keeps_whole_sentences_within_30_tokens():
    first = "The gymnast springs off both hands and lands on her feet."
    second = "Her arms stay straight while the legs pass over the head in a wide arc through the air."
    text = clean_description(f"{first} {second} Third.")
    assert text == first  # the second sentence would pass 30 tokens: cut at the sentence end
    assert count_tokens(first) + count_tokens(second) > 30
    assert clean_description(f"{first} Third one.") == f"{first} Third one."


def test_an_overlong_first_sentence_is_cut_at_a_word_and_closed_with_a_period():
    long = "The climber " + " ".join(f"reaches hold number {i}" for i in range(20)) + " and rests"
    text = clean_description(long)
    assert count_tokens(text) <= 30 and text.endswith(".") and long.startswith(text[:-1])
    assert count_tokens(text) > 25  # the cut is at the last word boundary that fits


def test_token_count_matches_open_clip_without_start_and_end():
    import open_clip

    text = "A person waves a hand above the head, slowly."
    ids = open_clip.tokenize([text])[0]
    assert count_tokens(text) == int((ids != 0).sum()) - 2
