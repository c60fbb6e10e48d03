"""Whether a checkpoint's bytes are the ones that were written. The zip archives torch.save (and
torch.jit.save) write store a CRC-32 per record; a file damaged in the middle of a tensor (a broken
download or cloud-drive copy) still unpickles and gives silently wrong weights, so every checkpoint
read is checked record by record first. A file that is not a zip (torch's legacy format) has no CRC to
check and passes; what else is wrong with it is the loader's to say."""
from __future__ import annotations

import zipfile
from pathlib import Path

from apclip_core.errors import CheckpointError


def verify_checkpoint_archive(path: str | Path, what: str = "checkpoint") -> None:
    """Read every record of `path` once and compare its CRC-32; CheckpointError naming the damaged record."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        damaged, reason = None, str(exc)
    else:
        reason = None
    if damaged is None and reason is None:
        return
    said = f"its record {damaged} fails its CRC-32 check" if damaged else f"its zip structure is damaged ({reason})"
    raise CheckpointError(f"{path} is damaged: {said}, so its weights are not the ones that were saved (a broken "
                          f"download or copy); copy or download the {what} again")
