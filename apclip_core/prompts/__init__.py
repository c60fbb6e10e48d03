"""Action-conditioned prompt generation (paper sec. 3.2): attribute graph, LLM-prompts, an openai
generator (OpenAI API or any OpenAI-compatible server), a rule-based backend for the embedded
benchmark, post-processing and a prompt-file validator.

    # notebooks: one call, parameters model and base_url (the key only from OPENAI_API_KEY)
    report = generate_prompt_file("hmdb51", classnames, "prompts/hmdb51.json", model="gpt-4o", base_url=None)
    # step by step
    from apclip_core.prompts import GeneratorConfig, PromptGenerator, build_prompt_file
    gen = PromptGenerator(GeneratorConfig(model="gpt-4o"), cache_root)   # key from OPENAI_API_KEY
    report = gen.generate(classnames)
    prompt_file, failed = build_prompt_file("hmdb51", report, source="openai-api", generator_model="gpt-4o",
                                            graph=gen.graph, templates=gen.templates)
"""
from apclip_core.prompts.generator import (GenerationError, GenerationReport, GeneratorConfig, PromptGenerator,
                                             build_prompt_file, generate_prompt_file)
from apclip_core.prompts.graph import ATTRIBUTE_KEYS, AttributeGraph, LLMPrompts, load_graph, load_llm_prompts
from apclip_core.prompts.postprocess import clean_description, count_tokens
from apclip_core.prompts.schema import PromptFile
from apclip_core.prompts.validate import validate_prompt_file

__all__ = ["ATTRIBUTE_KEYS", "AttributeGraph", "GenerationError", "GenerationReport", "GeneratorConfig",
           "LLMPrompts", "PromptFile", "PromptGenerator", "build_prompt_file",
           "generate_prompt_file", "clean_description", "count_tokens",
           "load_graph", "load_llm_prompts", "validate_prompt_file"]
