"""Files: content hashes, and the one way every output is written (beside its final name, then moved into place).

:func:`replacing` is the atomic write: readers see the old file or the new one, never a partial one, and an
interrupted run never leaves a half-written file where the last good one was.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it atomically replaces ``path``.

    Temporary files of ``path`` that a killed run left (``.<name>.<random>.tmp``) are removed first: one run
    writes a warehouse's outputs at a time (the run lock), so none of them can still be in use.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.unlink(temporary)  # DuckDB's COPY wants to create the file itself
    try:
        yield Path(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files :func:`replacing` left beside ``path`` when its run was killed; returns them."""
    leftovers = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for leftover in leftovers:
        if leftover.is_dir():  # DuckDB's COPY into a folder of partitions
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return leftovers


def publish_atomically(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`; on any error the old file is left as it was."""
    path = Path(path)
    with replacing(path) as temporary:
        temporary.write_bytes(text.encode("utf-8"))
        os.chmod(temporary, 0o644)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX); best effort elsewhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
