"""`make lab` as a user starts it: a real JupyterLab server (as root too, in containers) that serves the
project root, so figures/ and outputs/notebooks/ open, not only notebooks/."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from apclip_core import paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_project_root():
    port, token = _free_port(), "apclip-test"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token} --ServerApp.open_browser=False"
    # -o: never (re)install the environment from a test; the server must come up on the current one
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "lab", f"LAB_ARGS={args}"],
                            cwd=paths.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "JUPYTER_RUNTIME_DIR": "/tmp/apclip-lab-test"})
    try:
        listing, deadline = None, time.monotonic() + 60
        while listing is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    listing = json.load(r)
            except OSError:
                time.sleep(0.5)
        assert listing is not None, proc.stdout.read().decode() if proc.poll() is not None else "server not up in 60 s"
        names = {item["name"] for item in listing["content"]}
        assert {"notebooks", "figures"} <= names  # the root, not notebooks/
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
