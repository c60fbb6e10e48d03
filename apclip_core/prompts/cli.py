"""`python -m apclip_core prompts ...`: write a prompt file with an LLM or the rule-based backend.

LLM (OpenAI API; the key is read from OPENAI_API_KEY, there is deliberately no option for it):
  python -m apclip_core prompts --dataset hmdb51 --labels hmdb51_labels.csv --model gpt-4o
OpenAI-compatible server (vLLM, Ollama, llama.cpp server):
  python -m apclip_core prompts --dataset hmdb51 --labels labels.csv --model qwen2.5-7b-instruct \
      --base-url http://localhost:8000/v1
Rule-based, from the embedded benchmark (writes prompts/apclip_bench.json):
  python -m apclip_core prompts --from-benchmark
Exit status: 0 when every class got all 36 descriptions, 1 when some class failed (the file then
holds only the complete classes and the failed ones are listed), 2 for usage errors.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from apclip_core import atomic
from apclip_core.arguments import bounded, count_or_zero, positive_float, positive_int
from apclip_core.data.annotations import read_label_files
from apclip_core.paths import cache_dir, prompts_dir, user_prompts_dir
from apclip_core.prompts import rule_based
from apclip_core.prompts.generator import GenerationError, GeneratorConfig, PromptGenerator, build_prompt_file

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m apclip_core prompts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="dataset name; the output defaults to prompts/<dataset>.json")
    p.add_argument("--labels", type=Path, nargs="+", help="labels CSV(s) (id,name); the class names are used "
                   "verbatim; several files: their union (e.g. the three Kinetics-600 zero-shot splits)")
    p.add_argument("--out", type=Path, help="output prompt file (default <APCLIP_PROMPTS or outputs/prompts>/<dataset>.json; "
                   "an incomplete set is written as <name>.partial.json)")
    llm = p.add_argument_group("LLM backend (key from OPENAI_API_KEY only)")
    defaults = GeneratorConfig()
    llm.add_argument("--model", default=defaults.model)
    llm.add_argument("--base-url", default=None, help="OpenAI-compatible server, e.g. http://localhost:8000/v1")
    llm.add_argument("--temperature", type=bounded(float, 0, 2), default=defaults.temperature)
    llm.add_argument("--top-p", type=bounded(float, 0, 1), default=defaults.top_p)
    llm.add_argument("--max-tokens", type=positive_int, default=defaults.max_tokens, help="per answer")
    llm.add_argument("--seed", type=int, default=defaults.seed)
    llm.add_argument("--timeout", type=positive_float, default=defaults.timeout, help="seconds per HTTP request")
    llm.add_argument("--max-retries", type=count_or_zero, default=defaults.max_retries, help="on 429, 5xx, timeouts")
    llm.add_argument("--reasks", type=count_or_zero, default=defaults.reasks, help="re-asks after an invalid answer")
    llm.add_argument("--concurrency", type=bounded(int, 1, 256), default=defaults.concurrency, help="requests in flight")
    llm.add_argument("--batch", action="store_true", help="send the requests through the OpenAI Batch API first")
    llm.add_argument("--batch-poll", type=positive_float, default=30.0, help="seconds between batch status polls")
    llm.add_argument("--cache-dir", type=Path, help="answer cache (default <APCLIP_CACHE>/promptgen)")
    rb = p.add_argument_group("rule-based backend")
    rb.add_argument("--classes-json", type=Path, help="benchmark classes.json: write rule-based prompts from it")
    rb.add_argument("--from-benchmark", nargs="?", const="", metavar="ROOT",
                    help="render (or reuse) the embedded benchmark and write prompts/apclip_bench.json")
    p.add_argument("-v", "--verbose", action="store_true", help="log every problem and retry")
    return p


def _rule_based(args) -> int:
    if args.from_benchmark is not None:
        from apclip_core.embedded.benchmark import render_benchmark

        root = render_benchmark(Path(args.from_benchmark) if args.from_benchmark else None).root
        classes_json = root / "classes.json"
        dataset = args.dataset or "apclip_bench"
    else:
        classes_json, dataset = args.classes_json, args.dataset or "apclip_bench"
    out = args.out or prompts_dir() / f"{dataset}.json"
    prompt_file = rule_based.build_prompt_file(rule_based.load_classes(classes_json), dataset=dataset)
    prompt_file.write(out)
    print(f"wrote {out}: {prompt_file.manifest.num_classes} classes, counts {prompt_file.manifest.counts} (rule-based)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is not None:  # checked before any class is asked of an LLM or written
        if args.out.is_dir():
            parser.error(f"--out {args.out} is a folder; give the prompt file's name (e.g. {args.out / 'mine.json'})")
        atomic.writable_folder(args.out.parent)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:  # the HTTP libraries log every request at INFO; keep them at WARNING (no URLs in logs)
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.from_benchmark is not None or args.classes_json:
        return _rule_based(args)
    if not (args.dataset and args.labels):
        parser.error("--dataset and --labels are required for LLM generation "
                     "(or use --from-benchmark / --classes-json for the rule-based backend)")
    classnames = read_label_files(args.labels)
    config = GeneratorConfig(model=args.model, base_url=args.base_url, temperature=args.temperature,
                             top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed, timeout=args.timeout,
                             max_retries=args.max_retries, reasks=args.reasks, concurrency=args.concurrency)
    generator = PromptGenerator(config, args.cache_dir or cache_dir() / "promptgen")
    try:
        result = generator.generate(classnames, batch=args.batch, batch_poll_s=args.batch_poll)
    except GenerationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    prompt_file, failed = build_prompt_file(args.dataset, result, source=config.source(), generator_model=config.model,
                                            graph=generator.graph, templates=generator.templates,
                                            notes=f"sampling {config.sampling()}")
    out = args.out or user_prompts_dir() / f"{args.dataset}.json"
    if failed:  # an incomplete set never takes the complete set's name: nothing reads it by accident
        out = out.with_name(out.name.removesuffix(".json") + ".partial.json")
    if prompt_file.classes:
        prompt_file.write(out)
        print(f"wrote {out}: {prompt_file.manifest.num_classes}/{len(classnames)} classes complete; {result.summary()}")
    else:
        print(f"no class complete, nothing written; {result.summary()}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} classes failed and are NOT in the file:", file=sys.stderr)
        for c, problems in failed.items():
            print(f"  {c}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
