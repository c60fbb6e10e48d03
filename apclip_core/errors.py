"""User errors: what went wrong with something the user gave, said in one message that names the
file (and line) and what to do, never a raw traceback.

Every command goes through `run_command`: a user error prints `error: <message>` on stderr and
exits 1 (argparse's usage errors exit 2, as they always do); `--debug` or APCLIP_DEBUG=1 lets the
traceback through for a bug report. Library callers get the exceptions themselves: `UserError`
and the readers' own errors (AnnotationError, VideoDecodeError) carry the same messages.
"""
from __future__ import annotations

import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem with a file or an argument the user gave; str() is the whole message."""


class CheckpointError(UserError, ValueError):
    """A file that is not a readable apclip checkpoint (missing, a folder, truncated, another format)."""


class ActivationUnstated(UserError, ValueError):
    """A local weights file whose activation (QuickGELU or GELU) neither its name nor a flag states."""


class MissingPromptsError(UserError, KeyError):
    """A prompt file without some of the classes asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def debug_enabled(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("APCLIP_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def message_for(exc: BaseException) -> str | None:
    """The one-line message of a user error, or None when `exc` is not one (a bug)."""
    from apclip_core.data.annotations import AnnotationError
    from apclip_core.data.video_io import VideoDecodeError

    if isinstance(exc, (UserError, AnnotationError)):
        return str(exc)
    if isinstance(exc, VideoDecodeError):
        return (f"{exc}. Check the file with `python -m apclip_core data check` (or play it), or re-encode it "
                f"with `python -m apclip_core data reencode`")
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a directory, not a file"
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file; check the path"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied"
    return None


def run_command(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run a command's main(argv); user errors become one message and exit status 1."""
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the point is to end every failure with a message
        if debug:
            raise
        message = message_for(exc)
        if message is None:
            message = (f"unexpected {type(exc).__name__}: {exc}. This is a bug in apclip, not in your input: "
                       f"run again with --debug (or APCLIP_DEBUG=1) and report the traceback")
        print(f"error: {message}", file=sys.stderr)
        return 1
