"""`compliance-report verify OUT [--exports DIR]`, and provenance an auditor can read (no absolute local paths)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED

from compliance.core.files import file_sha256
from compliance.evidence.verify import check_outputs, read_manifest
from compliance.policy import load_policy
from compliance.samples.generate import GenerateOptions, generate
from pipelines.cli import main

AS_OF = "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path]:
    """(exports, out) of one run of small sample exports for 2026-Q3."""
    root = tmp_path_factory.mktemp("verify")
    exports = root / "exports"
    generate(
        GenerateOptions(
            out_dir=exports, tickets=300, privacy_requests=40, security_reports=10, incidents=12, retention_records=80
        )
    )
    out = root / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--period", "2026-Q3", "--as-of", AS_OF]) == 0
    return exports, out


@pytest.fixture()
def copy(published, tmp_path) -> Path:
    """A copy of the published run, to tamper with."""
    target = tmp_path / "out"
    shutil.copytree(published[1], target, ignore=shutil.ignore_patterns("warehouse.duckdb*"))
    return target


def test_an_untouched_run_verifies(published, capsys):
    exports, out = published
    assert main(["verify", str(out)]) == 0
    assert "verified" in capsys.readouterr().out
    # with the exports: the same policy, period and as-of re-run give the same evidence, byte for byte
    assert main(["verify", str(out), "--exports", str(exports)]) == 0
    printed = capsys.readouterr()
    assert "verified (hashes and a re-run" in printed.out and printed.err == ""


def test_a_tampered_evidence_file_is_found(copy, capsys):
    violations = copy / "evidence" / "violations.csv"
    violations.write_bytes(violations.read_bytes().replace(b"breach", b"warning", 1))
    assert main(["verify", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evidence/violations.csv: sha256 ")
    assert "differs from the manifest's" in lines[0]


def test_a_missing_and_an_unlisted_file_are_found(copy):
    (copy / "evidence" / "verdicts.csv").unlink()
    (copy / "evidence" / "extra.csv").write_text("rule_id\n", encoding="utf-8")
    problems = check_outputs(copy, read_manifest(copy))
    assert problems[0].startswith("evidence/verdicts.csv: missing (the manifest records sha256 ")
    assert problems[1:] == ["evidence/extra.csv: not in the manifest"]


def test_a_forged_manifest_is_found_by_the_rerun(published, copy, capsys):
    """A changed evidence file whose new hash was written into the manifest passes the hashes, not the re-run."""
    metrics = copy / "evidence" / "metrics.csv"
    metrics.write_bytes(metrics.read_bytes() + b"FORGED,tickets\n")
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["file"] == "evidence/metrics.csv":
            entry["sha256"] = file_sha256(metrics)
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["verify", str(copy)]) == 0
    capsys.readouterr()
    assert main(["verify", str(copy), "--exports", str(published[0])]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [line for line in lines if line.startswith("evidence/metrics.csv: differs from the re-run")]
    assert len(lines) == 1


def test_changed_exports_are_named(published, copy, tmp_path, capsys):
    exports = tmp_path / "exports"
    shutil.copytree(published[0], exports)
    with (exports / "tickets.csv").open("a", encoding="utf-8") as handle:
        handle.write("\n")
    assert main(["verify", str(copy), "--exports", str(exports)]) == 1
    assert "exports tickets.csv: sha256 " in capsys.readouterr().out


def test_a_folder_without_a_manifest_is_a_usage_error(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "manifest.json: no manifest" in error


def test_the_policy_is_named_by_profile_never_by_a_local_path(published):
    manifest = json.loads((published[1] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["policy"]["path"] == "platform"
    report = (published[1] / "compliance_report.html").read_text(encoding="utf-8")
    assert "<dt>Policy file</dt><dd><code>platform</code>" in report
    assert str(Path.cwd().resolve()) not in json.dumps(manifest["policy"])


def test_a_policy_file_outside_the_working_folder_is_named_by_its_file_name(tmp_path, monkeypatch):
    own = tmp_path / "policies" / "acme.yaml"
    own.parent.mkdir()
    shutil.copy(load_policy("platform").path, own)
    monkeypatch.chdir(tmp_path)
    assert load_policy(own).reference == "policies/acme.yaml"  # repository-relative
    monkeypatch.chdir(tmp_path / "policies")
    assert load_policy(own).reference == "acme.yaml"
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_policy(own).reference == "acme.yaml"


def test_an_absent_optional_input_is_not_an_alarm(published):
    """vendor_sla feeds no domain (only the reconciliation reads it): absent, it is listed as not supplied."""
    report = (published[1] / "compliance_report.html").read_text(encoding="utf-8")
    alarm = report.split("Inputs that could not be used in full", 1)
    assert len(alarm) == 1 or "<code>vendor_sla</code>" not in alarm[1].split("</ul>", 1)[0]
    assert '<span class="badge nodata">not supplied (optional)</span>' in report
    assert '<span class="badge breached">missing</span>' not in report  # every other export is supplied


def test_the_exports_are_recorded_as_given_and_verify_finds_them(published, tmp_path, monkeypatch, capsys):
    """Run from the folder above the exports: the manifest and the report name ``exports``, not a local absolute
    path, and ``verify --exports`` re-runs them."""
    exports = tmp_path / "exports"
    shutil.copytree(published[0], exports)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", "out", "--as-of", AS_OF, "--period", "2026-Q3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["exports_dir"] == "exports" and manifest["exports_format"] is None
    report = (out / "compliance_report.html").read_text(encoding="utf-8")
    assert "<dt>Exports</dt><dd><code>exports</code></dd>" in report
    assert str(tmp_path) not in report.split('id="provenance"', 1)[1].split("</dl>", 1)[0]
    capsys.readouterr()
    assert main(["verify", "out", "--exports", "exports"]) == 0, capsys.readouterr().out


def test_a_converted_run_records_the_vendor_folder_and_format_never_the_temporary_folder(tmp_path, monkeypatch):
    source = SHARED / "data" / "real" / "incidents" / "servicenow_table_api_incidents.csv"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    shutil.copy(source, vendor / source.name)  # a temporary copy of the shared sample, never in the repository
    monkeypatch.chdir(tmp_path)
    arguments = ["run", "--exports", "vendor", "--format", "servicenow", "--out", "out", "--as-of", AS_OF]
    assert main(arguments) == 0
    text = (tmp_path / "out" / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert (manifest["exports_dir"], manifest["exports_format"]) == ("vendor", "servicenow")
    report = (tmp_path / "out" / "compliance_report.html").read_text(encoding="utf-8")
    assert "<dt>Exports</dt><dd><code>vendor</code> (servicenow export, converted for this run)</dd>" in report
    assert "compliance-report-converted-" not in text and "compliance-report-converted-" not in report
    assert main(["verify", "out", "--exports", "vendor"]) == 0  # the vendor file's hash, and a re-run converting it
