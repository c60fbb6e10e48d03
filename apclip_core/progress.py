"""Progress bars that can be switched off.

APCLIP_PROGRESS=0 silences them (the Makefile and the test suite set it, because tqdm writes a
line per update into captured output and breaks papermill/nbval outputs); =1 forces them on;
unset means on only in an interactive terminal or an interactive Jupyter front-end.

APCLIP_TERMINAL=<path of a terminal> (set by `make` when run from one, passed to the notebook kernels
by `python -m apclip_core notebook`) sends the bars and `say` lines there instead: a user watching
`make demo` sees each stage live, and the stored notebooks stay free of them.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(enabled: Optional[bool] = None) -> bool:
    if enabled is not None:
        return enabled
    setting = os.environ.get("APCLIP_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty() or "ipykernel" in sys.modules


_terminal_file = None


def terminal():
    """The user's terminal named by APCLIP_TERMINAL, opened once; None when unset or not writable."""
    global _terminal_file
    path = os.environ.get("APCLIP_TERMINAL", "").strip()
    if not path:
        return None
    if _terminal_file is None or _terminal_file.name != path:
        try:
            _terminal_file = open(path, "w", buffering=1)
        except OSError:
            return None
    return _terminal_file


def say(message: str) -> None:
    """One line for a person watching: a stage starting, a result reused from cache. Goes to
    APCLIP_TERMINAL, else to stderr in an interactive terminal; never into a notebook's outputs."""
    term = terminal()
    if term is not None:
        term.write(f">> {message}\n")
    elif sys.stderr.isatty() and "ipykernel" not in sys.modules:
        print(f">> {message}", file=sys.stderr)


def progress(iterable: Optional[Iterable[T]] = None, *, desc: str = "", total: Optional[int] = None,
             enabled: Optional[bool] = None, **kwargs) -> "tqdm[T]":
    """tqdm with apclip's on/off rule; use like tqdm (iterate, or call .update())."""
    term = terminal()
    if term is not None and enabled is None:
        from tqdm.std import tqdm as text_tqdm  # a text bar: the terminal is not a notebook front-end

        return text_tqdm(iterable, desc=desc, total=total, file=term, dynamic_ncols=True, leave=False, **kwargs)
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enabled),
                dynamic_ncols=True, leave=False, **kwargs)
