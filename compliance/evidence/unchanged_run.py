"""A run that would change nothing: the last completed run of the same warehouse and out folder, given the same
exports, policy, as-of instant, settings and code, and with its published files still as its manifest records them.

A run is a function of exactly that material (the warehouse's state included: it holds the earlier versions of the
files a run loaded), so running it again writes the same evidence bytes. Such a run does not recompute them: it
checks the material and the published files, says which run stands, and leaves the out folder as it is.

The record of the last completed run is a JSON file beside the warehouse (:func:`record_path`): the key of its
material (:func:`run_key`), its run id and manifest sha256, the sha256 of the files it hashed with their identity
(:class:`FileHashes`), and the size and modification time of the warehouse file (and its write-ahead log) when the
run ended, since anything that wrote to the warehouse afterwards (a run into another out folder, a hand-made change)
can change what the next run computes. A run that starts removes the record
first and writes it when it completed: a failed or killed run leaves none, and the next run computes everything.
Everything in the record is a hash, a path, a size, a time, an inode or the run id; it holds no input value.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from compliance.core.files import file_sha256, replacing
from compliance.core.stored_keys import key_of
from compliance.evidence.verify import MANIFEST, ManifestError, check_outputs, read_manifest
from compliance.ingest.landing import CONVERSION_LOG, CONVERSION_QUARANTINE

RECORD_SUFFIX = ".last-run.json"
# Code files of the packages that a run executes; anything else in their folders (caches, bytecode) is not code.
_CODE_SUFFIXES = frozenset({".py", ".sql", ".html", ".js", ".css", ".json", ".yaml", ".yml", ".txt"})


def record_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + RECORD_SUFFIX)


def code_material(package_roots: Iterable[Path]) -> dict:
    """What the run's code is: the sha256 of each code file of the packages, the Python version, and the installed
    distributions with their versions (the names of the ``*.dist-info`` folders on ``sys.path``, which carry both;
    any upgrade of any package changes them)."""
    sources = {}
    for root in package_roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in _CODE_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
                sources[f"{root.name}/{path.relative_to(root).as_posix()}"] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    distributions = sorted(
        name
        for entry in sys.path
        if entry and os.path.isdir(entry)
        for name in os.listdir(entry)
        if name.endswith((".dist-info", ".egg-info"))
    )
    return {"python": sys.version, "sources": sources, "distributions": distributions}


def exports_material(exports_dir: Path, source_files: Mapping[str, str]) -> dict:
    """What the run reads from the exports folder: the sha256 of every source file (``source_files``: name ->
    sha256, as ingest computes them) and of an adapter's conversion log and quarantine, and the name and size of
    every other entry (which the run may name as unknown or unusable, but does not read)."""
    others: dict[str, object] = {}
    for path in sorted(exports_dir.iterdir()) if exports_dir.is_dir() else []:
        if path.name in source_files:
            continue
        if path.name in (CONVERSION_LOG, CONVERSION_QUARANTINE) and path.is_file():
            others[path.name] = file_sha256(path)
        elif path.is_file():
            others[path.name] = path.stat().st_size
        else:
            others[path.name] = "folder" if path.is_dir() else "other"
    return {"source_files": dict(source_files), "other_entries": others}


def run_key(material: Mapping[str, object]) -> str:
    """sha256 of everything a run's output is a function of; ``material`` also holds the ``CR_*`` environment."""
    environment = {name: value for name, value in os.environ.items() if name.startswith("CR_")}
    return key_of({**material, "environment": environment})


def _warehouse_state(warehouse: Path) -> dict:
    state = {}
    for path in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        try:
            stat = path.stat()
        except OSError:
            state[path.name] = None
            continue
        state[path.name] = [stat.st_size, stat.st_mtime_ns]
    return state


def forget_completed_run(warehouse: Path) -> None:
    """Remove the record before a run computes anything: until it completes, no run stands."""
    record_path(warehouse).unlink(missing_ok=True)


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


class FileHashes:
    """The sha256 of files, taken from the last completed run's record for a file still the version it hashed then:
    the same size, modification time, status-change time and inode (no tool sets a status-change time back, so a
    file changed and given its old modification time again is read anew). At ten million tickets the exports and
    the published files are gigabytes, which every unchanged run would otherwise read twice."""

    def __init__(self, warehouse: Path) -> None:
        record = _record(warehouse)
        files = record.get("files") if isinstance(record, dict) else None
        self._known: dict = files if isinstance(files, dict) else {}
        self.taken: dict[str, list] = {}

    def sha256(self, path: Path) -> str:
        name, identity = str(path.resolve()), _identity(path)
        known = self._known.get(name)
        if isinstance(known, list) and len(known) == 2 and known[0] == identity:
            sha256 = str(known[1])
        else:
            sha256 = file_sha256(path)
        self.taken[name] = [identity, sha256]
        return sha256


def _record(warehouse: Path) -> object:
    try:
        return json.loads(record_path(warehouse).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def record_completed_run(warehouse: Path, out_dir: Path, key: str, inputs: FileHashes) -> None:
    """After a completed run (the warehouse closed): its key, run id and manifest sha256, the warehouse's state, and
    the identity and sha256 of the files its key and manifest hashed (``inputs``: the exports and the policy; the
    published files with the sha256 their manifest records, written by this run while it held the warehouse)."""
    manifest_path = out_dir / MANIFEST
    manifest = read_manifest(out_dir)
    files = dict(inputs.taken)
    for entry in manifest["outputs"]:
        path = out_dir / str(entry.get("file"))
        if path.is_file():
            files[str(path.resolve())] = [_identity(path), str(entry.get("sha256"))]
    manifest_sha256 = file_sha256(manifest_path)
    files[str(manifest_path.resolve())] = [_identity(manifest_path), manifest_sha256]
    record = {
        "run_key": key,
        "run_id": manifest.get("run_id"),
        "manifest_sha256": manifest_sha256,
        "warehouse": _warehouse_state(warehouse),
        "files": files,
    }
    with replacing(record_path(warehouse)) as temporary:
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def standing_run(warehouse: Path, out_dir: Path, key: str, hashes: FileHashes) -> tuple[str, int] | None:
    """The run id and the number of published files of the last completed run, when a run of material ``key``
    would change nothing (module docstring); None when it must compute."""
    record = _record(warehouse)
    if not isinstance(record, dict) or record.get("run_key") != key:
        return None
    if record.get("warehouse") != _warehouse_state(warehouse):
        return None
    try:
        if hashes.sha256(out_dir / MANIFEST) != record.get("manifest_sha256"):
            return None
        manifest = read_manifest(out_dir)
    except (OSError, ManifestError):
        return None
    if manifest.get("run_id") != record.get("run_id") or check_outputs(out_dir, manifest, hashes.sha256):
        return None
    return str(record["run_id"]), len(manifest["outputs"])
