"""`make lab` as a user starts it: a real JupyterLab server (as root too, in containers) that serves the
project root, so figures/ and outputs/notebooks/ open, not only notebooks/."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
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


# ---- the lab leaves the tree clean --------------------------------------------------------------------
def _copy_of_the_project(dest):
    """The tracked files of this checkout (as they are in the working tree) in a fresh git repository,
    with the project's environment linked in: a tree whose `git status` the lab may not dirty."""
    import shutil
    import sys

    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=paths.PROJECT_ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = paths.PROJECT_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # gitignored, as the real one
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(git + step, cwd=dest, check=True, capture_output=True)
    return dest


def _api(port, token, path, method="GET", body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/{path}?token={token}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def test_saving_shipped_notebooks_in_the_lab_leaves_git_status_clean(tmp_path):
    """Autosave after opening, and a save after running every cell (counts, outputs, a checked cell
    whose output changed, the kernel's language_info, cell timing metadata), through a real server's
    contents API: the tree stays as committed. A notebook of the user's own is saved as sent."""
    repo = _copy_of_the_project(tmp_path / "repo")
    (repo / "outputs").mkdir()  # gitignored: where a user's own notebooks and the executed copies go
    port, token = _free_port(), "apclip-test"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token} --ServerApp.open_browser=False"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "lab", f"LAB_ARGS={args}"],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                _api(port, token, "contents")
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "server not up in 60 s")
        for name in ("03_training.ipynb", "01_tour.ipynb"):
            model = _api(port, token, f"contents/notebooks/{name}")
            nb = model["content"]
            # what JupyterLab sends: autosave after the kernel started, then a save after Run All
            nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python",
                                               "codemirror_mode": {"name": "ipython", "version": 3}}
            _api(port, token, f"contents/notebooks/{name}", "PUT", {"type": "notebook", "format": "json",
                                                                  "content": nb})
            for count, cell in enumerate((c for c in nb["cells"] if c["cell_type"] == "code"), 1):
                cell["execution_count"] = count
                cell["metadata"]["execution"] = {"iopub.status.idle": "2026-12-08T00:00:00.000Z"}
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"run {count}\n"}]
            _api(port, token, f"contents/notebooks/{name}", "PUT", {"type": "notebook", "format": "json",
                                                                  "content": nb})
        own = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "a1", "metadata": {},
                          "outputs": [{"output_type": "stream", "name": "stdout", "text": "mine\n"}],
                          "source": "print('mine')"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        _api(port, token, "contents/outputs/mine.ipynb", "PUT", {"type": "notebook", "format": "json",
                                                                 "content": own})
    except urllib.error.HTTPError as err:  # the server's log says why
        os.killpg(proc.pid, signal.SIGTERM)
        raise AssertionError(f"{err}: {proc.communicate(timeout=20)[0].decode()[-3000:]}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "", status
    saved = json.loads((repo / "outputs" / "mine.ipynb").read_text())  # gitignored, and not rewritten
    assert "".join(saved["cells"][0]["outputs"][0]["text"]) == "mine\n" and saved["cells"][0]["execution_count"] == 1


def test_shipped_notebooks_are_in_their_stored_form():
    """Counts and outputs only in the NBVAL_CHECK_OUTPUT cells (nbval's reference, which it compares
    only when counted), metadata as stored_form leaves it: what the lab's save hook writes."""
    import copy

    from apclip_core.stored_notebooks import CHECK_MARK, stored_form

    for path in sorted((paths.PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert stored_form(copy.deepcopy(nb), nb) == nb, path.name
        checked = [c for c in nb["cells"] if c["cell_type"] == "code" and CHECK_MARK in "".join(c["source"])]
        assert checked and all(c["execution_count"] and c["outputs"] for c in checked), path.name
