"""The landing folder: which export files belong to which source, in load order, and their content hashes.

A source's files are ``<source>.<format>`` and ``<source>-<anything>.<format>`` / ``<source>_<anything>.<format>``
(``tickets.csv``, ``tickets-2026-11-20.csv``), loaded in name order; which version of a record wins does not
depend on that order (``compliance.ingest.staging._version_key``: the date suffix, else the newest timestamp
inside the file). Hidden files and other suffixes (``tickets.csv.part``) are ignored: copy a file in under such a
name and rename it when complete. No source name is another's name plus ``-``/``_``, so every file has one source.
"""

from __future__ import annotations

import re
from pathlib import Path

from compliance.core.files import file_sha256
from compliance.ingest.contract import FILE_FORMATS, SOURCES

# Written by ``compliance-report convert`` beside the canonical files: the adapter's declaration of the
# canonical columns it fills (``filled_columns``: source -> columns) among the conversion's records, and the
# vendor rows it could not convert.
CONVERSION_LOG = "conversion.json"
CONVERSION_QUARANTINE = "conversion_quarantine.csv"

_FORMATS = "|".join(FILE_FORMATS)


def file_pattern(source_name: str) -> str:
    """Regular expression matching the file names of one source (also usable in DuckDB's regexp_matches)."""
    return rf"^{re.escape(source_name)}([-_][^/]*)?\.({_FORMATS})$"


_PATTERNS = {name: re.compile(file_pattern(name)) for name in SOURCES}


def source_of(file_name: str) -> str | None:
    return next((name for name, pattern in _PATTERNS.items() if pattern.match(file_name)), None)


def export_files(exports_dir: Path, source_name: str) -> list[Path]:
    """The source's export files in load (name) order."""
    pattern = _PATTERNS[source_name]
    if not exports_dir.is_dir():
        return []
    return sorted(path for path in exports_dir.iterdir() if pattern.match(path.name) and path.is_file())


def not_regular_files(exports_dir: Path, source_name: str) -> list[tuple[Path, str]]:
    """Entries named like the source's exports that are no regular file (a folder ``tickets.csv``, a dangling
    link), with the problem: named as unusable rather than passed over in silence."""
    pattern = _PATTERNS[source_name]
    if not exports_dir.is_dir():
        return []
    return [
        (path, "a folder, not a file" if path.is_dir() else "not a regular file")
        for path in sorted(exports_dir.iterdir())
        if pattern.match(path.name) and not path.is_file()
    ]


def format_conflicts(files: list[Path]) -> dict[str, str]:
    """Files whose name differs only by format, with the problem: which one is meant is not knowable."""
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    problems = {}
    for group in by_stem.values():
        if len(group) > 1:
            ordered = sorted(group, key=lambda path: FILE_FORMATS.index(path.suffix.lstrip(".")))
            message = f"{' and '.join(path.name for path in ordered)} are both present; keep one file per source"
            problems.update({path.name: message for path in group})
    return problems


# Hashes by (path, size, modification time): a sensor ticking every minute reads a big unchanged file once.
_hash_cache: dict[tuple[str, int, int], str] = {}


def landing_fingerprints(exports_dir: Path) -> dict[str, str]:
    """Every export file of every source in the folder → its sha256."""
    fingerprints, seen = {}, set()
    for name in SOURCES:
        for path in export_files(exports_dir, name):
            stat = path.stat()
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            if key not in _hash_cache:
                try:
                    _hash_cache[key] = file_sha256(path)
                except OSError:  # unreadable: the ingest names it; a change of size or time still shows
                    _hash_cache[key] = f"unreadable:{stat.st_size}:{stat.st_mtime_ns}"
            fingerprints[path.name] = _hash_cache[key]
            seen.add(key)
    for key in set(_hash_cache) - seen:
        if key[0].startswith(str(exports_dir)):
            del _hash_cache[key]
    return fingerprints
