"""`verify --exports` of a run that converted a vendor export with adapter options (``--mapping``, ``--timezone``,
``--encoding``): the manifest records them and the re-run converts again alike; a changed mapping is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REQUEST_LOG_MAPPING, write

from compliance.core.files import file_sha256
from pipelines.cli import UsageError, _recorded_conversion_options, main

AS_OF = "2026-11-01T00:00:00Z"
REQUESTS = """Tracking Number,Submitted Date,Closed Date,Disposition
REQ-1,09/01/2026,09/10/2026,completed
REQ-2,09/02/2026,,received
REQ-3,09/03/2026,11/20/2026,completed
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A folder holding ``vendor/``, ``mapping.yaml`` and ``out/``: one run of ``--format mapping`` made from it."""
    root = tmp_path_factory.mktemp("verify_mapping")
    write(root / "vendor" / "requests.csv", REQUESTS)
    write(root / "mapping.yaml", REQUEST_LOG_MAPPING)
    working = Path.cwd()
    os.chdir(root)  # the manifest names the mapping file relative to the working folder
    try:
        command = ["run", "--exports", "vendor", "--format", "mapping", "--mapping", "mapping.yaml"]
        assert main([*command, "--out", "out", "--as-of", AS_OF]) == 0
    finally:
        os.chdir(working)
    return root


def test_the_manifest_records_the_mapping_file_and_verify_converts_again_with_it(published, monkeypatch, capsys):
    manifest = json.loads((published / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["exports_format"] == "mapping"
    assert manifest["conversion"]["options"] == {
        "mapping": {"path": "mapping.yaml", "sha256": file_sha256(published / "mapping.yaml")},
        "timezone": None,
        "encoding": None,
    }
    monkeypatch.chdir(published)
    capsys.readouterr()
    assert main(["verify", "out", "--exports", "vendor"]) == 0, capsys.readouterr()
    assert "verified (hashes and a re-run" in capsys.readouterr().out


def test_a_changed_mapping_file_is_refused_in_one_line(published, monkeypatch, capsys):
    monkeypatch.chdir(published)
    changed = write(
        published / "changed.yaml", REQUEST_LOG_MAPPING.replace("request_type: access", "request_type: erasure")
    )
    capsys.readouterr()
    assert main(["verify", "out", "--exports", "vendor", "--mapping", "changed.yaml"]) == 2
    printed = capsys.readouterr()
    recorded = file_sha256(published / "mapping.yaml")
    assert printed.err.splitlines() == [
        f"compliance-report: --mapping changed.yaml: sha256 {file_sha256(changed)} differs from the manifest's "
        f"{recorded}"
    ]
    assert printed.out == ""


def test_the_recorded_mapping_file_changed_in_place_is_named(tmp_path):
    mapping = write(tmp_path / "mapping.yaml", REQUEST_LOG_MAPPING)
    manifest = {
        "exports_format": "mapping",
        "conversion": {"options": {"mapping": {"path": str(mapping), "sha256": "0" * 64}}},
    }
    with pytest.raises(UsageError) as refused:
        _recorded_conversion_options(manifest, "")
    assert str(refused.value) == (
        f"the run's mapping file {mapping} (--mapping to name it): sha256 {file_sha256(mapping)} differs from the "
        f"manifest's {'0' * 64}"
    )
    mapping.unlink()
    with pytest.raises(UsageError, match=r"mapping\.yaml \(--mapping to name it\): no such file$"):
        _recorded_conversion_options(manifest, "")


def test_every_recorded_adapter_option_is_passed_again(tmp_path):
    """--timezone and --encoding change what a conversion writes: recorded, they are passed to the re-run."""
    mapping = write(tmp_path / "m.yaml", REQUEST_LOG_MAPPING)
    options = {"mapping": {"path": "m.yaml", "sha256": file_sha256(mapping)}, "timezone": "Europe/Paris"}
    manifest = {"exports_format": "freshdesk", "conversion": {"options": {**options, "encoding": "cp1252"}}}
    assert _recorded_conversion_options(manifest, str(mapping)) == [
        "--mapping",
        str(mapping),
        "--timezone",
        "Europe/Paris",
        "--encoding",
        "cp1252",
    ]
    # canonical exports: nothing to pass; a --mapping for them is refused rather than ignored
    assert _recorded_conversion_options({"exports_format": None}, "") == []
    with pytest.raises(UsageError, match="converted none"):
        _recorded_conversion_options({"exports_format": None}, str(mapping))


def test_a_conversion_records_the_options_it_was_given(tmp_path, capsys):
    """`convert` writes them into conversion.json (the manifest's `conversion` record reads them from there)."""
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "requests.csv").write_bytes(REQUESTS.replace("REQ-3", "RÉQ-3").encode("cp1252"))
    mapping = write(tmp_path / "mapping.yaml", REQUEST_LOG_MAPPING)
    command = ["convert", str(tmp_path / "vendor"), "--format", "mapping", "--mapping", str(mapping)]
    command += ["--timezone", "America/New_York", "--encoding", "cp1252", "--out", str(tmp_path / "out")]
    assert main(command) == 0, capsys.readouterr()
    log = json.loads((tmp_path / "out" / "conversion.json").read_text(encoding="utf-8"))
    assert log["options"] == {
        "mapping": {"path": "mapping.yaml", "sha256": file_sha256(mapping)},  # outside the working folder: its name
        "timezone": "America/New_York",
        "encoding": "cp1252",
    }
