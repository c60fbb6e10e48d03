"""A real OpenAI-compatible HTTP server for tests (the 3.x openai client cannot be mocked by respx).

ThreadingHTTPServer on 127.0.0.1 with a random port, speaking
  POST /v1/chat/completions                 structured answers, per-class programmable behaviours
  POST /v1/files, GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}
                                            the minimal Batch API (a batch completes on its 2nd poll)
Behaviours, programmed per class (the action name is read from the quoted name in the query):
  good        a valid answer with one sentence per key of the request's JSON schema
  malformed   invalid JSON text               truncated   cut text, finish_reason "length"
  off_schema  valid JSON missing one key      slow        sleeps `slow_seconds`, then answers well
  429         status 429 with Retry-After     500         status 500
`program(action, "429", "500")` queues behaviours consumed one per request for that class; once
the queue is empty the class gets `default` answers ("good" unless changed by `always`).
Every request is recorded (path, action, behaviour, time, user message) so tests count them;
`max_in_flight` is the most chat requests answered at once.
Use as a context manager (`with FakeOpenAIServer() as server:`) or the `fake_openai` fixture.
"""
from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

BEHAVIOURS = ("good", "malformed", "truncated", "off_schema", "slow", "429", "500")
_ACTION = re.compile(r"'(.*)'")


@dataclass
class Request:
    path: str
    action: str | None
    behaviour: str
    time: float
    user_message: str = ""
    headers: dict = field(default_factory=dict)


def _answer_text(action: str, keys: list[str], user_message: str) -> dict[str, str]:
    variant = sum(map(ord, user_message)) % 997
    return {k: f"In a clip of {action}, the {k.split('.')[1].replace('_', ' ')} is clearly visible, "
               f"case {variant}." for k in keys}


class FakeOpenAIServer:
    def __init__(self, *, api_key: str | None = None, retry_after: str = "1", slow_seconds: float = 2.0,
                 delay: float = 0.0):
        self.api_key = api_key
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.delay = delay  # added to every chat request (makes a run last long enough to kill)
        self.requests: list[Request] = []
        self._queues: dict[str, deque] = defaultdict(deque)
        self._default: dict[str, str] = {}
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.in_flight = 0  # chat requests being answered now
        self.max_in_flight = 0  # the most at once (checks a client's concurrency cap)
        self._httpd: ThreadingHTTPServer | None = None

    # ---- programming ----
    def program(self, action: str, *behaviours: str) -> None:
        for b in behaviours:
            if b not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {b!r}; valid: {BEHAVIOURS}")
        self._queues[action].extend(behaviours)

    def always(self, action: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; valid: {BEHAVIOURS}")
        self._default[action] = behaviour

    def _next_behaviour(self, action: str | None) -> str:
        with self._lock:
            queue = self._queues.get(action)
            if queue:
                return queue.popleft()
            return self._default.get(action, "good")

    def count(self, action: str | None = None, path: str = "/v1/chat/completions") -> int:
        return sum(1 for r in self.requests if r.path == path and (action is None or r.action == action))

    # ---- life cycle ----
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeOpenAIServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- responses ----
    def chat_response(self, body: dict, behaviour: str, action: str | None) -> tuple[int, dict, dict]:
        """(status, extra headers, JSON body) for one chat request under one behaviour."""
        if behaviour == "429":
            return 429, {"Retry-After": self.retry_after}, {"error": {"message": "rate limited", "type": "rate_limit"}}
        if behaviour == "500":
            return 500, {}, {"error": {"message": "internal error", "type": "server_error"}}
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        keys = list(schema.get("properties", {}))
        user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
        answer = _answer_text(action or "unknown", keys, user)
        finish = "stop"
        if behaviour == "malformed":
            content = "Sure! Here are the descriptions: {" + json.dumps(answer)[1:-1]
        elif behaviour == "truncated":
            content, finish = json.dumps(answer)[: len(json.dumps(answer)) // 2], "length"
        elif behaviour == "off_schema":
            answer.pop(keys[-1], None)
            content = json.dumps(answer)
        else:
            content = json.dumps(answer)
        return 200, {}, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # client timed out and left
            pass

    def _authorised(self) -> bool:
        if self.fake.api_key is None or self.headers.get("Authorization") == f"Bearer {self.fake.api_key}":
            return True
        self.fake.requests.append(Request(self.path, None, "401", time.time()))
        self._send(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        raw = self._body()
        if not self._authorised():
            return
        fake = self.fake
        if self.path == "/v1/chat/completions":
            body = json.loads(raw)
            user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
            match = _ACTION.search(user.splitlines()[0] if user else "")
            action = match.group(1) if match else None
            behaviour = fake._next_behaviour(action)
            fake.requests.append(Request(self.path, action, behaviour, time.time(), user, dict(self.headers)))
            with fake._lock:
                fake.in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            try:
                time.sleep(fake.delay + (fake.slow_seconds if behaviour == "slow" else 0.0))
                status, headers, payload = fake.chat_response(body, behaviour, action)
            finally:
                with fake._lock:
                    fake.in_flight -= 1
            self._send(status, payload, headers)
        elif self.path == "/v1/files":
            message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            part = next(p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file")
            file_id = f"file-{next(fake._ids)}"
            fake._files[file_id] = part.get_payload(decode=True)
            fake.requests.append(Request(self.path, None, "upload", time.time()))
            self._send(200, {"id": file_id, "object": "file", "bytes": len(fake._files[file_id]),
                             "created_at": int(time.time()), "filename": part.get_filename() or "batch.jsonl",
                             "purpose": "batch", "status": "processed"})
        elif self.path == "/v1/batches":
            body = json.loads(raw)
            batch_id = f"batch_{next(fake._ids)}"
            batch = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                     "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                     "status": "validating", "created_at": int(time.time()), "polls": 0}
            fake._batches[batch_id] = batch
            fake.requests.append(Request(self.path, None, "batch", time.time()))
            self._send(200, {k: v for k, v in batch.items() if k != "polls"})
        else:
            self._send(404, {"error": {"message": f"no route POST {self.path}"}})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        fake = self.fake
        if match := re.fullmatch(r"/v1/batches/([\w-]+)", self.path):
            batch = fake._batches[match.group(1)]
            batch["polls"] += 1
            fake.requests.append(Request(self.path, None, "poll", time.time()))
            if batch["polls"] >= 2 and batch["status"] != "completed":
                self._run_batch(batch)
            elif batch["polls"] < 2:
                batch["status"] = "in_progress"
            self._send(200, {k: v for k, v in batch.items() if k != "polls"})
        elif match := re.fullmatch(r"/v1/files/([\w-]+)/content", self.path):
            self._send(200, fake._files[match.group(1)])
        else:
            self._send(404, {"error": {"message": f"no route GET {self.path}"}})

    def _run_batch(self, batch: dict) -> None:
        """Answer every line of the input file with the class's programmed behaviour."""
        fake = self.fake
        lines = []
        for line in fake._files[batch["input_file_id"]].decode().splitlines():
            item = json.loads(line)
            user = next(m["content"] for m in item["body"]["messages"] if m["role"] == "user")
            match = _ACTION.search(user.splitlines()[0])
            action = match.group(1) if match else None
            behaviour = fake._next_behaviour(action)
            fake.requests.append(Request("batch-item", action, behaviour, time.time(), user))
            status, _, payload = fake.chat_response(item["body"], behaviour, action)
            lines.append(json.dumps({"id": f"resp_{next(fake._ids)}", "custom_id": item["custom_id"],
                                     "response": {"status_code": status, "body": payload}, "error": None}))
        out_id = f"file-{next(fake._ids)}"
        fake._files[out_id] = ("\n".join(lines) + "\n").encode()
        batch.update(status="completed", output_file_id=out_id,
                     request_counts={"total": len(lines), "completed": len(lines), "failed": 0})


@pytest.fixture
def fake_openai():
    """A fresh fake server per test; `fake_openai.base_url` goes into the client's base_url."""
    with FakeOpenAIServer() as server:
        yield server
