"""User errors: what went wrong with something the user gave, said in one message that names the
file (and line) and what to do, never a raw traceback.

Every command goes through `run_command`: a user error prints `error: <message>` on stderr and
exits 1 (argparse's usage errors exit 2, as they always do); `--debug` or APCLIP_DEBUG=1 lets the
traceback through for a bug report. Library callers get the exceptions themselves: `UserError`
and the readers' own errors (AnnotationError, VideoDecodeError) carry the same messages.

What is the user's to fix is said as such, and only a real bug is called one: a value or a name out of
its range or choices (BadValue, UnknownName, refused where it is read), a file that is not what it claims
(BadFile: user_files reads YAML, JSON and notebooks naming the file and line), a damaged or foreign
checkpoint (CheckpointError), and a file-system condition on a path the user gave or configured (a full
disk, a read-only folder, permissions, a file where a folder goes: OS_ADVICE, said with the path, also
when torch.save hides it behind a RuntimeError).
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem with a file or an argument the user gave; str() is the whole message."""


class CheckpointError(UserError, ValueError):
    """A file that is not a readable apclip checkpoint (missing, a folder, truncated, another format)."""


class ActivationUnstated(UserError, ValueError):
    """A local weights file whose activation (QuickGELU or GELU) neither its name nor a flag states."""


class UnknownName(UserError, KeyError):
    """A name (a method, a paper table) that is none of the valid ones, which the message lists."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingPromptsError(UnknownName):
    """A prompt file without some of the classes asked for."""


class BadValue(UserError, ValueError):
    """A value the user gave (a flag, a config or PARAMS entry) outside its range or not one of its choices."""


class BadFile(UserError, ValueError):
    """A file the user gave that is not what it claims: not valid YAML or JSON, not a notebook, the wrong shape."""


def debug_enabled(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("APCLIP_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


MAKE_ROOM = "free some space there or write to another disk"
# what each condition of the file system means for the user; the path comes first (OSError.filename)
OS_ADVICE = {
    errno.ENOSPC: f"no space left on the device: {MAKE_ROOM}",
    errno.EDQUOT: f"disk quota exceeded: {MAKE_ROOM}",
    errno.EROFS: "is on a read-only file system: choose a folder you can write to",
    errno.EACCES: "permission denied: check its permissions (and its folder's), or choose a folder you can write to",
    errno.EPERM: "operation not permitted: check its permissions, or choose another folder",
    errno.ENOTDIR: "a part of this path is a file where a folder is expected: give a folder, or remove the file",
    errno.EEXIST: "exists and is a file where a folder is expected: give a folder, or remove the file",
    errno.EISDIR: "is a directory, not a file: give the file inside it",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENAMETOOLONG: "the name is too long for the file system",
    errno.ELOOP: "too many symbolic links: a link points back to itself",
    errno.EIO: "input/output error: the disk or the network file system failed; check it and try again",
}


def os_error_message(exc: OSError) -> str | None:
    """`path: what it means and what to do` for a file-system condition the user can fix; None otherwise."""
    advice = OS_ADVICE.get(exc.errno)
    if advice is None:  # apclip's own FileNotFoundError("no config ...") says it all; an errno we cannot explain: None
        return str(exc) if exc.errno is None and isinstance(exc, FileNotFoundError) and exc.args else None
    path = exc.filename2 or exc.filename  # a rename's destination (the user's) rather than its temporary
    return f"{path}: {advice}" if path else advice[0].upper() + advice[1:]


def message_for(exc: BaseException) -> str | None:
    """The one-line message of a user error, or None when `exc` is not one (a bug)."""
    from apclip_core.atomic import os_error_in
    from apclip_core.data.annotations import AnnotationError
    from apclip_core.data.video_io import VideoDecodeError

    if isinstance(exc, (UserError, AnnotationError)):
        return str(exc)
    if isinstance(exc, VideoDecodeError):
        return (f"{exc}. Check the file with `python -m apclip_core data check` (or play it), or re-encode it "
                f"with `python -m apclip_core data reencode`")
    cause = os_error_in(exc)
    return None if cause is None else os_error_message(cause)


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
