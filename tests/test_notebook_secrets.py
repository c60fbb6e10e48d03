"""An API key in the environment never reaches an executed notebook or anything it writes.

The prompt-generation notebook is executed by papermill against a real OpenAI-compatible server on
127.0.0.1 that only answers requests carrying the sentinel key, so the key demonstrably travelled
(from the environment to the HTTP header) and the test then looks for it everywhere it must not be.
"""
from __future__ import annotations

import papermill

from apclip_core.paths import PROJECT_ROOT
from fake_openai_server import FakeOpenAIServer

SENTINEL = "sk-apclip-SENTINEL-7f3a9c0e5b1d"


def test_executed_prompt_notebook_and_its_outputs_hold_no_api_key(tmp_path, monkeypatch):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,name\n0,zorbing downhill\n1,juggling fire\n")
    out_dir = tmp_path / "generated"
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    executed = tmp_path / "02_executed.ipynb"
    with FakeOpenAIServer(api_key=SENTINEL) as server:
        papermill.execute_notebook(
            str(PROJECT_ROOT / "notebooks" / "02_prompt_generation.ipynb"), str(executed),
            parameters={"labels": str(labels), "base_url": server.base_url, "model": "local-test-model",
                        "dataset": "secret_check", "out_dir": str(out_dir)},
            kernel_name="python3", cwd=str(PROJECT_ROOT / "notebooks"), progress_bar=False)
        assert server.count() == 6  # 2 classes x 3 LLM-prompts, each authorised with the key
    text = executed.read_text()
    assert "2 of 2 classes written" in text
    written = [executed, *sorted(p for p in tmp_path.rglob("*") if p.is_file())]
    assert (out_dir / "secret_check.json").exists()
    for path in written:
        assert SENTINEL.encode() not in path.read_bytes(), f"API key leaked into {path}"
