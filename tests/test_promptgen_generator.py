"""The openai generator against a real local HTTP server (tests/fake_openai_server.py)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apclip_core.prompts import GeneratorConfig, PromptGenerator, build_prompt_file, load_graph, load_llm_prompts
from apclip_core.prompts.cli import main as prompts_main
from apclip_core.prompts.schema import PromptFile
from fake_openai_server import FakeOpenAIServer, fake_openai  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
TEMPLATES, GRAPH = load_llm_prompts(), load_graph()


def config(server, **kw) -> GeneratorConfig:
    return GeneratorConfig(**{"model": "fake-model", "base_url": server.base_url, "timeout": 0.5, "max_retries": 2,
                              "reasks": 2, "concurrency": 4, **kw})


def write_labels(path: Path, names) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    return path


def test_every_faulty_behaviour_is_recovered(fake_openai, tmp_path):
    for name, behaviour in [("malformed", "malformed"), ("truncated", "truncated"), ("off schema", "off_schema"),
                            ("five hundred", "500"), ("rate limited", "429"), ("slow", "slow")]:
        fake_openai.program(name, behaviour)
    fake_openai.slow_seconds = 1.5
    names = ["malformed", "truncated", "off schema", "five hundred", "rate limited", "slow", "fine"]
    report = PromptGenerator(config(fake_openai), tmp_path).generate(names)
    assert report.failed == {}
    assert all(sorted(report.answers[n]) == [0, 1, 2] for n in names)
    assert {n: fake_openai.count(n) for n in names} == {**{n: 4 for n in names[:6]}, "fine": 3}
    assert (report.requests, report.reasks, report.retries) == (27, 3, 3)  # 21 + 3 re-asks + 3 transport retries
    # the 429 said Retry-After: 1, and the client waited that long before asking again
    first = next(r for r in fake_openai.requests if r.behaviour == "429")
    again = next(r for r in fake_openai.requests if r.user_message == first.user_message and r.time > first.time)
    assert again.time - first.time >= 1.0
    prompt_file, failed = build_prompt_file("t", report, source="openai-compatible", generator_model="fake-model",
                                            graph=GRAPH, templates=TEMPLATES)
    assert failed == {} and prompt_file.manifest.counts == {"action_conditioned": 36 * len(names)}


def test_a_class_that_never_answers_well_is_reported_and_left_out(fake_openai, tmp_path, capsys):
    fake_openai.always("hopeless", "off_schema")
    fake_openai.program("late", "malformed", "malformed")  # two bad answers, then fine: within 2 re-asks
    out = tmp_path / "p.json"
    rc = prompts_main(["--dataset", "t", "--labels", str(write_labels(tmp_path / "l.csv", ["hopeless", "late", "ok"])),
                       "--model", "fake-model", "--base-url", fake_openai.base_url, "--reasks", "2",
                       "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 1
    assert "hopeless" in capsys.readouterr().err
    assert not out.exists()  # an incomplete set never takes the complete set's name
    written = PromptFile.model_validate_json((tmp_path / "p.partial.json").read_text())
    assert sorted(written.classes) == ["late", "ok"] and written.manifest.num_classes == 2
    assert fake_openai.count("hopeless") == 3 * 3  # 3 LLM-prompts x (1 ask + 2 re-asks)
    assert not any("hopeless" in p.read_text() for p in (tmp_path / "cache").rglob("*-p*.json"))


def test_concurrency_is_capped(fake_openai, tmp_path):
    fake_openai.delay = 0.15
    PromptGenerator(config(fake_openai, concurrency=2), tmp_path).generate(["a", "b", "c", "d"])
    assert fake_openai.max_in_flight == 2


def test_cache_is_reused_only_under_the_same_settings(fake_openai, tmp_path):
    names = ["wave", "clap"]
    PromptGenerator(config(fake_openai), tmp_path).generate(names)
    assert fake_openai.count() == 6
    again = PromptGenerator(config(fake_openai), tmp_path).generate(names)
    assert fake_openai.count() == 6 and again.cached == 6 and again.requests == 0
    PromptGenerator(config(fake_openai, temperature=0.2), tmp_path).generate(names)
    assert fake_openai.count() == 12
    PromptGenerator(config(fake_openai, model="other-model"), tmp_path).generate(names)
    assert fake_openai.count() == 18


def test_batch_mode_uses_the_same_validation(fake_openai, tmp_path):
    fake_openai.program("sit", "malformed")  # the batch answer for one of sit's prompts is bad
    generator = PromptGenerator(config(fake_openai), tmp_path)
    report = generator.generate(["walk", "sit"], batch=True, batch_poll_s=0.05)
    assert report.failed == {} and report.batch_requests == 6
    paths = [r.path for r in fake_openai.requests]
    assert paths.count("/v1/files") == 1 and paths.count("/v1/batches") == 1
    assert fake_openai.count("sit", path="batch-item") == 3 and fake_openai.count() == 1  # one live re-ask
    lines = [json.loads(x) for x in (generator.cache.dir / "batch_input.jsonl").read_text().splitlines()]
    assert len({x["custom_id"] for x in lines}) == 6 and {x["url"] for x in lines} == {"/v1/chat/completions"}
    assert all(x["body"]["response_format"]["json_schema"]["strict"] for x in lines)


def test_api_key_never_leaves_the_process(tmp_path, monkeypatch, caplog, capsys):
    sentinel = "sk-SENTINEL-7f3a9c-do-not-leak"
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    monkeypatch.setenv("APCLIP_PROGRESS", "1")
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(api_key=sentinel) as server:
        server.program("jump", "429", "malformed")
        server.retry_after = "0"
        out, cache = tmp_path / "out" / "p.json", tmp_path / "cache"
        argv = ["--dataset", "t", "--labels", str(write_labels(tmp_path / "l.csv", ["jump", "run"])), "--model", "m",
                "--base-url", server.base_url, "--cache-dir", str(cache), "--out", str(out), "-v"]
        assert prompts_main(argv) == 0
        assert server.count(path="/v1/chat/completions") == 8 and not any(r.behaviour == "401" for r in server.requests)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
        assert prompts_main(argv[:-5] + ["--cache-dir", str(tmp_path / "other"), "--out", str(tmp_path / "x.json")]) == 2
    captured = capsys.readouterr()
    assert "prompts (classes)" in captured.err and "requests=" in captured.err  # progress: classes and requests
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert out in written and len(list(cache.rglob("*-p*.json"))) == 6
    for text in [p.read_text(errors="replace") for p in written] + [captured.out, captured.err, caplog.text]:
        assert sentinel not in text and "sk-wrong" not in text


@pytest.mark.slow  # two real CLI subprocesses (the second imports torch for the CLIP tokenizer)
def test_killed_run_resumes_without_asking_again(fake_openai, tmp_path):
    """A real subprocess is SIGKILLed mid-run; the rerun never asks for an answer already cached."""
    names = [f"action {i}" for i in range(6)]
    labels, cache, out = write_labels(tmp_path / "l.csv", names), tmp_path / "cache", tmp_path / "p.json"
    fake_openai.delay = 0.15
    cmd = [sys.executable, "-m", "apclip_core", "prompts", "--dataset", "t", "--labels", str(labels),
           "--model", "m", "--base-url", fake_openai.base_url, "--concurrency", "1", "--cache-dir", str(cache),
           "--out", str(out)]
    env = {**os.environ, "OPENAI_API_KEY": "", "APCLIP_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while len(list(cache.rglob("*-p*.json"))) < 5 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cached = {(r["class"], r["llm_prompt"]) for r in (json.loads(p.read_text()) for p in cache.rglob("*-p*.json"))}
    assert 5 <= len(cached) < 18 and not out.exists()
    asked_before = len(fake_openai.requests)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    queries = {TEMPLATES.render(k, c, GRAPH): (c, k) for c in names for k in range(3)}
    asked_after = [queries[r.user_message] for r in fake_openai.requests[asked_before:]]
    assert not set(asked_after) & cached
    assert sorted(asked_after) == sorted(set(queries.values()) - cached)
    assert PromptFile.model_validate_json(out.read_text()).manifest.counts == {"action_conditioned": 6 * 36}


def test_notebook_entry_point(fake_openai, tmp_path):
    from apclip_core.prompts import generate_prompt_file

    fake_openai.always("broken", "truncated")
    report = generate_prompt_file("t", ["ok", "broken"], tmp_path / "p.json", model="m", base_url=fake_openai.base_url,
                                  cache_root=tmp_path / "cache", reasks=0, concurrency=2)
    assert list(report.failed) == ["broken"]
    assert list(PromptFile.model_validate_json((tmp_path / "p.json").read_text()).classes) == ["ok"]
