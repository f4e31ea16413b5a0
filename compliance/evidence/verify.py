"""Checking a published run later (``compliance-report verify``): its files against the manifest's hashes, and its
evidence against a re-run of the same exports, policy, period and as-of time.

Each function returns one line per difference (empty: everything holds). A line names the file, relative to the
output folder, and what differs; nothing here raises on a tampered or missing file. The re-run itself is the
CLI's (``pipelines/cli.py``): this module only compares folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from compliance.core.files import file_sha256

MANIFEST = "manifest.json"


class ManifestError(Exception):
    """The output folder has no readable manifest; the message is one line naming the file."""


def read_manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (not the output folder of a run?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: not a readable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("outputs"), list):
        raise ManifestError(f"{path}: not a run manifest (no `outputs` list)")
    return manifest


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it stays inside ``root`` (a tampered manifest may name ``../..``), else None."""
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def check_outputs(out_dir: Path, manifest: dict, sha256: Callable[[Path], str] = file_sha256) -> list[str]:
    """Every output the manifest lists has the sha256 it records (read by ``sha256``); every evidence file is
    listed."""
    problems = []
    listed = set()
    for entry in manifest["outputs"]:
        name, expected = str(entry.get("file")), str(entry.get("sha256"))
        listed.add(name)
        path = _inside(out_dir, name)
        if path is None:
            problems.append(f"{name}: outside the output folder")
        elif not path.is_file():
            problems.append(f"{name}: missing (the manifest records sha256 {expected})")
        elif (actual := sha256(path)) != expected:
            problems.append(f"{name}: sha256 {actual} differs from the manifest's {expected}")
    evidence = out_dir / "evidence"
    if evidence.is_dir():  # the manifest lists every file of evidence/ (assets/publish.py::_evidence_paths)
        for path in sorted(evidence.iterdir()):
            name = path.relative_to(out_dir).as_posix()
            if path.is_file() and not path.name.startswith(".") and name not in listed:
                problems.append(f"{name}: not in the manifest")
    return problems


def check_inputs(exports_dir: Path, manifest: dict) -> list[str]:
    """Every input file the run loaded is in ``exports_dir`` with the sha256 the manifest records; of a run that
    converted a vendor export (``exports_format``), every vendor file the conversion read."""
    problems = []
    entries = manifest.get("inputs") or []
    if manifest.get("exports_format"):  # the canonical files lived in a temporary folder: the vendor files count
        entries = [{**entry, "status": "loaded"} for entry in (manifest.get("conversion") or {}).get("inputs") or []]
    for entry in entries:
        if entry.get("status") != "loaded" or not entry.get("file") or not entry.get("sha256"):
            continue
        name, expected = str(entry["file"]), str(entry["sha256"])
        path = _inside(exports_dir, name)
        if path is None or not path.is_file():
            problems.append(f"exports {name}: missing (the run read sha256 {expected})")
        elif (actual := file_sha256(path)) != expected:
            problems.append(f"exports {name}: sha256 {actual} differs from the one the run read, {expected}")
    return problems


def compare_evidence(out_dir: Path, rerun_dir: Path, manifest: dict) -> list[str]:
    """The evidence files the manifest lists, byte for byte against the same files of a re-run.

    Only ``evidence/``: the report and the dashboard carry the run ID and the time they were generated."""
    problems = []
    for entry in manifest["outputs"]:
        name = str(entry.get("file"))
        if not name.startswith("evidence/"):
            continue
        published, again = _inside(out_dir, name), _inside(rerun_dir, name)
        if published is None or not published.is_file():
            continue  # check_outputs names it
        if again is None or not again.is_file():
            problems.append(f"{name}: the re-run does not write it")
        elif published.read_bytes() != again.read_bytes():
            problems.append(f"{name}: differs from the re-run ({file_sha256(again)} on re-run)")
    rerun_evidence = rerun_dir / "evidence"
    listed = {str(entry.get("file")) for entry in manifest["outputs"]}
    if rerun_evidence.is_dir():
        for path in sorted(rerun_evidence.iterdir()):
            name = path.relative_to(rerun_dir).as_posix()
            if path.is_file() and not path.name.startswith(".") and name not in listed:
                problems.append(f"{name}: written by the re-run, absent from the published run")
    return problems
