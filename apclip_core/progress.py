"""Progress bars that can be switched off.

APCLIP_PROGRESS=0 silences them (the Makefile and the test suite set it, because tqdm writes a
line per update into captured output and breaks papermill/nbval outputs); =1 forces them on;
unset means on only in an interactive terminal or an interactive Jupyter front-end.
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


def progress(iterable: Optional[Iterable[T]] = None, *, desc: str = "", total: Optional[int] = None,
             enabled: Optional[bool] = None, **kwargs) -> "tqdm[T]":
    """tqdm with apclip's on/off rule; use like tqdm (iterate, or call .update())."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enabled),
                dynamic_ncols=True, leave=False, **kwargs)
