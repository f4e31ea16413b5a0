"""Format detection for ``convert`` / ``run`` without ``--format`` (or ``--format auto``).

Each input file is probed (its CSV header, the JSON object in a raw API table's ``data`` column, a JSON
document's keys and its first record's, a JSON-lines file's first record, an mbox's ``From`` line) and matched
against the layouts every format declares in :data:`compliance.adapters.FORMATS`; the layout with the most keys
wins (a tie, the format registered first). All files must be of one format. A file no layout matches is one line
naming the closest layout and the keys it lacks; with a ``--mapping`` file that names a ``source`` and whose
columns the file has, the file is in the ``mapping`` format.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

from compliance.adapters import FORMATS
from compliance.adapters.base import ConversionError, LayoutSignature, normalised_header
from compliance.adapters.value_overrides import read_mapping_document

_HEAD_BYTES = 1 << 16  # enough for a header and a first record of a CSV


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str  # csv | json | jsonl | mbox
    keys: frozenset[str]  # headers or JSON keys, lower case
    data_keys: frozenset[str] = frozenset()  # a CSV's `data` column: keys of its first JSON (or Python) object

    @property
    def loose_keys(self) -> frozenset[str]:
        return frozenset(normalised_header(key) for key in self.keys)


@dataclass(frozen=True)
class Detection:
    format: str
    variants: tuple[str, ...]  # the layout recognised in each file, in input order

    def summary(self) -> str:
        return f"{self.format} ({', '.join(sorted(set(self.variants)))})"


def probe(path: Path) -> Probe:
    """What detection looks at in one file; a file that cannot be read raises ConversionError (one line)."""
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as packed:
                head = packed.read(_HEAD_BYTES)
        else:
            with path.open("rb") as file:
                head = file.read(_HEAD_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ConversionError(f"{path.name}: cannot be read: {error}") from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if text.startswith("From ") or ".mbox" in suffixes:
        return Probe(path.name, "mbox", frozenset())
    if ".jsonl" in suffixes or ".ndjson" in suffixes:
        first = text.split("\n", 1)[0]
        return Probe(path.name, "jsonl", _object_keys(_loaded(first)))
    if ".json" in suffixes:
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
        except (OSError, json.JSONDecodeError):
            raise ConversionError(f"{path.name}: not a JSON document") from None
        return Probe(path.name, "json", _document_keys(document))
    rows = list(csv.reader(io.StringIO(text)))[:2]
    header = [name.strip() for name in rows[0]] if rows else []
    data_keys: frozenset[str] = frozenset()
    if "data" in header and len(rows) > 1 and len(rows[1]) > header.index("data"):
        data_keys = _object_keys(_loaded(rows[1][header.index("data")]))
    return Probe(path.name, "csv", frozenset(name.lower() for name in header), data_keys)


def _loaded(text: str) -> object:
    """A JSON value, else a Python literal (a nested value pandas wrote with str()); None when neither."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None


def _object_keys(value: object) -> frozenset[str]:
    return frozenset(str(key).strip().lower() for key in value) if isinstance(value, dict) else frozenset()


def _document_keys(document: object) -> frozenset[str]:
    """A document's keys, the keys of objects directly under them, and of the first record of its lists."""
    keys: set[str] = set()
    values = list(document.values()) if isinstance(document, dict) else [document]
    keys |= _object_keys(document)
    for value in values:
        if isinstance(value, list) and value:
            keys |= _object_keys(value[0])
        elif isinstance(value, dict):
            keys |= _object_keys(value)
    return frozenset(keys)


def _spellings(key: str | tuple[str, ...], loose: bool) -> set[str]:
    names = (key,) if isinstance(key, str) else key
    return {normalised_header(name) if loose else name.lower() for name in names}


def _present(signature: LayoutSignature, found: Probe) -> tuple[int, list[str]]:
    """(keys present, the keys missing, each by its first spelling) of ``signature`` in ``found``."""
    keys = found.data_keys if signature.kind == "data" else found.loose_keys if signature.loose else found.keys
    missing = [
        key if isinstance(key, str) else key[0] for key in signature.keys if not _spellings(key, signature.loose) & keys
    ]
    return len(signature.keys) - len(missing), missing


def _kind_fits(signature: LayoutSignature, found: Probe) -> bool:
    return signature.kind == found.kind or (signature.kind == "data" and found.kind == "csv")


def _stem(name: str) -> str:
    return name.split(".", 1)[0]


def recognise(found: Probe) -> tuple[str, LayoutSignature] | None:
    """The format and layout ``found`` matches best, else None."""
    best: tuple[int, str, LayoutSignature] | None = None
    for format_name, registered in FORMATS.items():
        for signature in registered.signature:
            if not _kind_fits(signature, found):
                continue
            if signature.stems and _stem(found.name) not in signature.stems:
                continue
            present, missing = _present(signature, found)
            if missing or (signature.kind == "data" and not found.data_keys):
                continue
            # keys inside a raw table's JSON say more than the table's own generic headers (id, data, created_at)
            # a file named as a known table is that table
            weight = present + (100 if signature.kind == "data" else 0) + (1000 if signature.stems else 0)
            if best is None or weight > best[0]:
                best = (weight, format_name, signature)
    return (best[1], best[2]) if best else None


def closest(found: Probe) -> str:
    """One clause naming the layout closest to ``found`` and what it lacks."""
    ranked = []
    for format_name, registered in FORMATS.items():
        for signature in registered.signature:
            if _kind_fits(signature, found) and signature.keys:
                present, missing = _present(signature, found)
                ranked.append((present / len(signature.keys), present, format_name, signature, missing))
    ranked = [entry for entry in ranked if entry[1] > 0]
    if not ranked:
        return "no known layout shares a column with it; --format mapping with a --mapping FILE.yaml reads any CSV"
    _, _, format_name, signature, missing = max(ranked, key=lambda entry: (entry[0], entry[1]))
    return f"closest: {format_name} {signature.variant} (missing {', '.join(map(repr, missing))})"


def _mapping_fits(found: Probe, mapping: Path | None) -> bool:
    """A --mapping file with a ``source`` whose mapped columns are all in ``found``'s header."""
    if mapping is None or found.kind != "csv":
        return False
    document = read_mapping_document(mapping)
    columns = document.get("columns")
    if not document.get("source") or not isinstance(columns, dict):
        return False
    for headers in columns.values():
        listed = headers if isinstance(headers, list) else [headers]
        if not any(str(header).strip().lower() in found.keys for header in listed):
            return False
    return True


def detect_format(paths: list[Path], mapping: Path | None = None) -> Detection:
    """The one format of ``paths``; ConversionError (one line) for an unknown file or a mix of formats."""
    formats: list[tuple[str, str, str]] = []  # (file, format, variant)
    for path in paths:
        found = probe(path)
        match = recognise(found)
        if match:
            formats.append((path.name, match[0], match[1].variant))
        elif _mapping_fits(found, mapping):
            formats.append((path.name, "mapping", f"csv via {mapping.name}"))
        else:
            raise ConversionError(f"{path.name}: not a layout any format knows; {closest(found)}")
    names = sorted({name for _, name, _ in formats})
    if len(names) > 1:
        by_format = "; ".join(f"{name}: {', '.join(file for file, n, _ in formats if n == name)}" for name in names)
        raise ConversionError(f"the inputs hold several formats ({by_format}); convert them one format at a time")
    return Detection(names[0], tuple(variant for _, _, variant in formats))
