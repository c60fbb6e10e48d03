"""Action-conditioned prompt generation with an LLM through the openai client (paper sec. 3.2.2).

For every class and every LLM-prompt (query template) one chat request asks for one description
per attribute of the graph, as a strict structured output (the JSON schema of
`schema.AttributeDescriptions`). Works with the OpenAI API and any OpenAI-compatible server
(vLLM, Ollama, llama.cpp server) through `base_url`.

Robustness, and who does it:
  * transport: 429, 5xx, timeouts and connection errors are retried by the openai client itself
    (`max_retries`, exponential backoff with jitter, Retry-After honoured up to 2 minutes);
  * content: an answer that is malformed JSON, truncated (finish_reason "length"), refused or
    off-schema is re-asked up to `reasks` times, then the class is reported as failed;
  * resumability: every valid answer is cached at once (cache.AnswerCache), so a killed run
    restarted with the same settings asks only for what is missing;
  * concurrency: at most `concurrency` requests in flight (a thread pool of that size);
  * the API key is read by the client from OPENAI_API_KEY and is never a parameter, never logged,
    never written (the cache key and the manifest hold no credentials and no base_url).
Batch mode (`batch=True`) sends all missing requests as one OpenAI Batch API job first; its
answers go through the same validation, and whatever it does not deliver is asked live.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import openai
from pydantic import ValidationError

from apclip_core.progress import progress
from apclip_core import atomic
from apclip_core.prompts.answer_cache import AnswerCache, CacheKey
from apclip_core.prompts.graph import AttributeGraph, LLMPrompts, load_graph, load_llm_prompts
from apclip_core.prompts.postprocess import clean_description
from apclip_core.prompts.schema import ActionConditioned, ClassPrompts, Manifest, PromptFile, parse_answer, response_format

log = logging.getLogger(__name__)

BATCH_DONE = ("completed", "failed", "expired", "cancelled")


class GenerationError(RuntimeError):
    """A problem no re-ask can fix (bad credentials, unknown model): the run stops."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Which LLM and how to sample it; everything that changes an answer is in the cache key."""

    model: str = "gpt-4o"
    base_url: str | None = None  # None: the OpenAI API; else any OpenAI-compatible server
    temperature: float | None = 0.7
    top_p: float | None = None
    max_tokens: int = 1500
    seed: int | None = 0
    timeout: float = 60.0  # seconds per HTTP request
    max_retries: int = 5  # transport retries by the openai client (429, 5xx, timeouts)
    reasks: int = 2  # extra asks after an invalid answer, per (class, llm_prompt)
    concurrency: int = 4

    def sampling(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "seed": self.seed}

    def source(self) -> str:
        return "openai-api" if self.base_url is None else "openai-compatible"


@dataclass
class GenerationReport:
    """What a run produced and what it cost."""

    answers: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)  # class -> k -> raw answer
    failed: dict[str, list[str]] = field(default_factory=dict)  # class -> problems (last one per prompt)
    requests: int = 0  # HTTP requests sent to the chat endpoint, retries included
    asks: int = 0  # chat calls (one per ask, before transport retries)
    reasks: int = 0  # asks repeated after an invalid answer
    cached: int = 0  # (class, llm_prompt) answers found in the cache
    batch_requests: int = 0  # answers requested through the Batch API

    @property
    def retries(self) -> int:
        """Transport retries done by the client (429, 5xx, timeouts)."""
        return self.requests - self.asks

    def summary(self) -> str:
        return (f"{len(self.answers) - len(self.failed)} classes complete, {len(self.failed)} failed; "
                f"{self.requests} requests ({self.retries} transport retries, {self.reasks} re-asks), "
                f"{self.cached} answers from cache, {self.batch_requests} via batch")


class _RequestCounter:
    """httpx event hook: counts every HTTP request to the chat endpoint, retries included."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, request) -> None:
        if request.url.path.endswith("/chat/completions"):
            with self._lock:
                self.count += 1


def make_client(config: GeneratorConfig, counter: _RequestCounter | None = None) -> openai.OpenAI:
    """An openai client for config.base_url; the key comes from OPENAI_API_KEY only.

    Local OpenAI-compatible servers usually need no key: with a base_url and no OPENAI_API_KEY a
    placeholder is sent. The OpenAI API without OPENAI_API_KEY is an error."""
    if config.base_url is None and not os.environ.get("OPENAI_API_KEY"):
        raise GenerationError("OPENAI_API_KEY is not set; export it (never pass it as a parameter), "
                              "or use --base-url for an OpenAI-compatible server")
    hooks = {"request": [counter]} if counter else {}
    return openai.OpenAI(
        api_key=None if os.environ.get("OPENAI_API_KEY") else "no-key-needed",
        base_url=config.base_url, timeout=config.timeout, max_retries=config.max_retries,
        http_client=openai.DefaultHttpxClient(timeout=config.timeout, event_hooks=hooks))


def request_body(config: GeneratorConfig, query: str, templates: LLMPrompts) -> dict:
    """The chat-completions body of one ask (also one line of a Batch API file)."""
    body = {"model": config.model,
            "messages": [{"role": "system", "content": templates.system}, {"role": "user", "content": query}],
            "response_format": response_format()}
    # The OpenAI API wants max_completion_tokens (reasoning models reject max_tokens);
    # vLLM / Ollama / llama.cpp understand max_tokens.
    body["max_completion_tokens" if config.base_url is None else "max_tokens"] = config.max_tokens
    for name in ("temperature", "top_p", "seed"):
        if getattr(config, name) is not None:
            body[name] = getattr(config, name)
    return body


def check_choice(finish_reason: str | None, content: str | None, refusal: str | None = None) -> tuple[dict | None, str | None]:
    """(answer, None) for a valid answer, else (None, what was wrong). Live and batch answers both go here."""
    if refusal:
        return None, f"refused: {refusal[:80]}"
    if finish_reason == "length":
        return None, "truncated answer (finish_reason 'length')"
    if not content:
        return None, f"empty answer (finish_reason {finish_reason!r})"
    try:
        return parse_answer(content), None
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            return None, "malformed JSON"
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in err.errors()[:3])
        return None, f"off-schema answer: {problems}"


def _check_completion_dict(body: dict) -> tuple[dict | None, str | None]:
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        return None, "response without choices"
    return check_choice(choice.get("finish_reason"), message.get("content"), message.get("refusal"))


class PromptGenerator:
    """Generates (or loads from cache) the raw answers of every (class, llm_prompt)."""

    def __init__(self, config: GeneratorConfig, cache_root: str | Path, *, graph: AttributeGraph | None = None,
                 templates: LLMPrompts | None = None):
        self.config = config
        self.graph = graph or load_graph()
        self.templates = templates or load_llm_prompts()
        key = CacheKey(model=config.model, template_version=self.templates.version,
                       graph_version=self.graph.version, sampling=tuple(sorted(config.sampling().items())))
        self.cache = AnswerCache(Path(cache_root), key)
        self._counter = _RequestCounter()
        self._client: openai.OpenAI | None = None

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = make_client(self.config, self._counter)
        return self._client

    def query(self, classname: str, k: int) -> str:
        return self.templates.render(k, classname, self.graph)

    # ---- one ask ----
    def _ask(self, classname: str, k: int) -> tuple[dict | None, str | None]:
        body = request_body(self.config, self.query(classname, k), self.templates)
        try:
            completion = self.client.chat.completions.create(**body)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as err:
            raise GenerationError(f"{type(err).__name__} (HTTP {err.status_code}) from "
                                  f"{self.config.base_url or 'the OpenAI API'} for model {self.config.model!r}: "
                                  "check OPENAI_API_KEY, --model and --base-url") from None
        except openai.APITimeoutError:
            return None, f"timed out after {self.config.max_retries} retries"
        except openai.APIStatusError as err:
            return None, f"HTTP {err.status_code} after retries"
        except openai.APIConnectionError:
            return None, f"cannot connect to {self.config.base_url or 'the OpenAI API'}"
        if not completion.choices:
            return None, "response without choices"
        choice = completion.choices[0]
        return check_choice(choice.finish_reason, choice.message.content, getattr(choice.message, "refusal", None))

    def _job(self, classname: str, k: int, report: GenerationReport, lock: threading.Lock) -> tuple[dict | None, str | None]:
        problem = None
        for attempt in range(self.config.reasks + 1):
            with lock:
                report.asks += 1
                report.reasks += attempt > 0
            answer, problem = self._ask(classname, k)
            if answer is not None:
                self.cache.put(classname, k, answer)
                return answer, None
            log.warning("class %r, llm_prompt %d, attempt %d: %s", classname, k, attempt + 1, problem)
        return None, problem

    # ---- a whole label set ----
    def generate(self, classnames: list[str], *, batch: bool = False, batch_poll_s: float = 30.0) -> GenerationReport:
        report = GenerationReport(answers={c: {} for c in classnames})
        requests_before = self._counter.count
        ks = range(len(self.templates.templates))
        todo: list[tuple[str, int]] = []
        for c in classnames:
            for k in ks:
                if (answer := self.cache.get(c, k)) is not None:
                    report.answers[c][k] = answer
                    report.cached += 1
                else:
                    todo.append((c, k))
        if batch and todo:
            todo = self._run_batch(todo, report, poll_s=batch_poll_s)

        remaining = {c: sum(1 for t in todo if t[0] == c) for c in classnames}
        problems: dict[str, list[str]] = {}
        bar = progress(total=len(classnames), desc="prompts (classes)", unit="class")
        bar.update(sum(1 for n in remaining.values() if n == 0))
        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            futures = {pool.submit(self._job, c, k, report, lock): (c, k) for c, k in todo}
            try:
                for future in as_completed(futures):
                    c, k = futures[future]
                    answer, problem = future.result()
                    if answer is not None:
                        report.answers[c][k] = answer
                    else:
                        problems.setdefault(c, []).append(f"llm_prompt {k}: {problem}")
                    remaining[c] -= 1
                    if remaining[c] == 0:
                        bar.update(1)
                    bar.set_postfix(requests=self._counter.count - requests_before, failed=len(problems))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            finally:
                bar.close()
        report.requests = self._counter.count - requests_before
        report.failed = problems
        log.info("prompt generation: %s", report.summary())
        return report

    # ---- Batch API ----
    def batch_lines(self, todo: list[tuple[str, int]]) -> tuple[list[dict], dict[str, tuple[str, int]]]:
        """JSONL lines of a Batch API input file and custom_id -> (class, llm_prompt)."""
        lines, ids = [], {}
        for i, (c, k) in enumerate(todo):
            custom_id = f"req-{i}-p{k}"
            ids[custom_id] = (c, k)
            lines.append({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                          "body": request_body(self.config, self.query(c, k), self.templates)})
        return lines, ids

    def parse_batch_output(self, text: str, ids: dict[str, tuple[str, int]]) -> dict[tuple[str, int], tuple[dict | None, str | None]]:
        """Batch output JSONL -> {(class, k): (answer, problem)}, through the live validation path."""
        results = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("custom_id") not in ids:
                continue
            response = item.get("response") or {}
            if item.get("error") or response.get("status_code") != 200:
                results[ids[item["custom_id"]]] = (None, f"batch item error: {item.get('error') or response.get('status_code')}")
            else:
                results[ids[item["custom_id"]]] = _check_completion_dict(response.get("body") or {})
        return results

    def _run_batch(self, todo: list[tuple[str, int]], report: GenerationReport, *, poll_s: float) -> list[tuple[str, int]]:
        """Submit (or resume) one batch job for `todo`; cache what is valid, return what is left."""
        lines, ids = self.batch_lines(todo)
        state_path = self.cache.dir / "batch_state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        if state.get("ids") != {i: list(v) for i, v in ids.items()}:
            input_path = self.cache.dir / "batch_input.jsonl"
            atomic.write_text(input_path, "".join(json.dumps(line) + "\n" for line in lines))
            with input_path.open("rb") as f:
                uploaded = self.client.files.create(file=f, purpose="batch")
            batch = self.client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                               completion_window="24h")
            state = {"batch_id": batch.id, "ids": {i: list(v) for i, v in ids.items()}}
            atomic.write_text(state_path, json.dumps(state))
            log.info("submitted batch %s with %d requests", batch.id, len(lines))
        batch = self.client.batches.retrieve(state["batch_id"])
        while batch.status not in BATCH_DONE:
            time.sleep(poll_s)
            batch = self.client.batches.retrieve(state["batch_id"])
        state_path.unlink(missing_ok=True)
        report.batch_requests += len(lines)
        if batch.status != "completed" or not batch.output_file_id:
            log.warning("batch %s ended with status %s; asking live instead", batch.id, batch.status)
            return todo
        text = self.client.files.content(batch.output_file_id).text
        left = []
        for (c, k), (answer, problem) in ((t, self.parse_batch_output(text, ids).get(t, (None, "missing in batch output")))
                                          for t in todo):
            if answer is not None:
                self.cache.put(c, k, answer)
                report.answers[c][k] = answer
            else:
                log.warning("class %r, llm_prompt %d from batch: %s; asking live", c, k, problem)
                left.append((c, k))
        return left


def build_prompt_file(dataset: str, report: GenerationReport, *, source: str, generator_model: str,
                      graph: AttributeGraph, templates: LLMPrompts, notes: str = "") -> tuple[PromptFile, dict[str, list[str]]]:
    """Post-process the answers into a prompt file; only classes with all 3 x 12 valid are written.

    Returns the file and the failed classes (generation failures plus any description that
    post-processing leaves empty)."""
    failed = {c: list(p) for c, p in report.failed.items()}
    classes: dict[str, ClassPrompts] = {}
    n_prompts = len(templates.templates)
    for c, by_prompt in report.answers.items():
        if c in failed:
            continue
        if sorted(by_prompt) != list(range(n_prompts)):
            failed[c] = [f"missing answers for llm_prompts {sorted(set(range(n_prompts)) - set(by_prompt))}"]
            continue
        entries = [ActionConditioned(llm_prompt=k, attribute=a, text=clean_description(by_prompt[k][a]))
                   for k in range(n_prompts) for a in graph.keys]
        if empty := [f"llm_prompt {e.llm_prompt} {e.attribute}" for e in entries if not e.text]:
            failed[c] = [f"empty after post-processing: {', '.join(empty)}"]
            continue
        classes[c] = ClassPrompts(action_conditioned=entries)
    manifest = Manifest(dataset=dataset, source=source, generator_model=generator_model,
                        created=date.today().isoformat(), template_version=templates.version,
                        graph_version=graph.version, num_classes=len(classes), counts={}, notes=notes)
    prompt_file = PromptFile(manifest=manifest, classes=classes)
    prompt_file.manifest.counts = prompt_file.counts()
    return prompt_file, failed


def generate_prompt_file(dataset: str, classnames: list[str], out: str | Path, *, model: str = GeneratorConfig.model,
                         base_url: str | None = None, cache_root: str | Path | None = None, batch: bool = False,
                         **settings) -> GenerationReport:
    """One call for notebooks: generate, post-process and write `out` (complete classes only).

    Notebook parameters are `model` and `base_url`; the key is read from OPENAI_API_KEY by the
    client, so it never becomes a parameter stored in an output notebook. `settings` are other
    GeneratorConfig fields (temperature, concurrency, ...). Check `report.failed` afterwards."""
    from apclip_core.paths import cache_dir

    config = GeneratorConfig(model=model, base_url=base_url, **settings)
    generator = PromptGenerator(config, cache_root or cache_dir() / "promptgen")
    report = generator.generate(classnames, batch=batch)
    prompt_file, report.failed = build_prompt_file(dataset, report, source=config.source(), generator_model=model,
                                                   graph=generator.graph, templates=generator.templates,
                                                   notes=f"sampling {config.sampling()}")
    if prompt_file.classes:
        prompt_file.write(out)
    return report
