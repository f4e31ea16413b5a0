"""The keys of the stores that let a run reuse an earlier run's work (ticket clocks, expectation results, the secret
scan, evidence files): a key is the sha256 of everything the stored result is a function of, the code that computed
it included, so that a change to any of it computes the result again. A wrong reuse is a silent wrong verdict:
a key says too much rather than too little."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the compliance package: sources are named relative to it


def code_fingerprint(sources: Iterable[str], distributions: Iterable[str]) -> dict[str, dict[str, str]]:
    """The installed versions of ``distributions`` and the sha256 of each of ``sources`` (paths in the package)."""
    return {
        "versions": {name: installed_version(name) for name in distributions},
        "sources": {name: hashlib.sha256((PACKAGE_ROOT / name).read_bytes()).hexdigest() for name in sources},
    }


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH: the sources tell
        return "not installed"


def key_of(material: object) -> str:
    """sha256 of ``material`` written as canonical JSON (sorted keys; sets sorted; dates in ISO form)."""
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=_canonical).encode()).hexdigest()


def _canonical(value: object) -> object:
    """JSON for what ``json`` cannot write itself: sets sorted, dates and times in ISO form, mappings as dicts."""
    if isinstance(value, set | frozenset):
        return sorted(str(_canonical(item)) if not isinstance(item, str) else item for item in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "items"):
        return {str(key): item for key, item in value.items()}
    return str(value)
