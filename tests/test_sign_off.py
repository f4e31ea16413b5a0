"""Sign-off and the printed report (issue 17 item 4), without a browser: the policy's print size, the
attestation block and the text of the print margins (the PDF itself: tests/test_browser.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_reports import _data

from compliance.policy import PolicyError, load_policy
from pipelines.cli import main
from reports.compliance_report import (
    Attestation,
    AttestationError,
    css_string,
    load_attestation,
    render_compliance_report,
)

PLATFORM = Path(__file__).resolve().parents[1] / "policies" / "platform.yaml"


def _policy_with(tmp_path: Path, report) -> Path:
    document = yaml.safe_load(PLATFORM.read_text(encoding="utf-8"))
    document["report"] = report
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_print_violations_max_defaults_to_1000_and_is_read_from_the_policy(tmp_path):
    assert load_policy("platform").print_violations_max == 1000
    assert load_policy(_policy_with(tmp_path, {"print_violations_max": 5})).print_violations_max == 5


@pytest.mark.parametrize(
    "report", [{"print_violation_max": 5}, {"print_violations_max": -1}, {"print_violations_max": 2001}]
)
def test_a_misspelled_or_impossible_print_setting_is_refused(tmp_path, report):
    with pytest.raises(PolicyError):
        load_policy(_policy_with(tmp_path, report))


def _counts(total: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"rule_id": ["SUP-TECH-STD", "PRIV-COMPLETE"], "severity": ["breach", "breach"], "findings": [total - 2, 2]}
    )


def test_up_to_the_print_size_every_violation_prints(policy):
    data = _data(policy, hostile=False)
    shown = data.violations.height
    page = render_compliance_report(replace(data, violations_total=shown, finding_counts=_counts(shown)))
    assert f"Printed: all {shown} violations" in page
    assert 'id="violation-appendix"' not in page
    assert '<div class="table-scroll">' in page  # no noprint on the list
    assert "nth-child(n+101)" not in page  # nothing cuts the printed list any more


def test_above_the_print_size_an_appendix_names_the_evidence_file_and_its_hash(policy):
    data = _data(policy, hostile=False)
    manifest = {**data.manifest, "outputs": [{"file": "evidence/violations.csv", "sha256": "ab" * 32}]}
    page = render_compliance_report(
        replace(data, manifest=manifest, violations_total=1353, finding_counts=_counts(1353))
    )
    appendix = page[page.index('id="violation-appendix"') : page.index('id="attestation"')]
    assert "more than the 1,000 the policy prints" in page
    assert '<div class="table-scroll noprint">' in page
    assert appendix.count("<tr><td>") == 2
    assert "<td>tickets</td>" in appendix and ">1,351<" in appendix and ">2<" in appendix
    assert appendix.count("ab" * 32) == 2 and "evidence/violations.csv" in appendix


def test_the_attestation_block_and_the_print_margins(policy):
    data = replace(_data(policy, hostile=False), attestation=Attestation("Ana Prepares", "", "2026-11-02"))
    page = render_compliance_report(data)
    block = page[page.index('id="attestation"') :]
    assert "<td>Ana Prepares</td>" in block and "<td>not stated</td>" in block and "<td>2026-11-02</td>" in block
    margins = page[page.index('<style media="print">') :]
    margins = margins[: margins.index("</style>")]
    assert 'counter(page) " of " counter(pages)' in margins
    assert data.manifest["run_id"] in margins


def test_css_string_cannot_end_the_string_or_the_style_element():
    assert css_string('a"b\\c</style>\n') == '"a\\22 b\\5c c\\3c /style\\3e \\a "'


def test_attestation_file_reading(tmp_path):
    path = tmp_path / "attestation.yaml"
    path.write_text("prepared_by: Ana\nreviewed_by: Rui\ndate: 2026-11-02\n", encoding="utf-8")
    assert load_attestation(path) == Attestation("Ana", "Rui", "2026-11-02")
    path.write_text("prepared_by: Ana\nsigned_by: Rui\n", encoding="utf-8")
    with pytest.raises(AttestationError, match="unknown key signed_by"):
        load_attestation(path)


def test_cli_refuses_a_bad_attestation_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "attestation.yaml"
    path.write_text("- a list\n", encoding="utf-8")
    exports = tmp_path / "exports"
    exports.mkdir()
    code = main(["run", "--exports", str(exports), "--out", str(tmp_path / "out"), "--attestation", str(path)])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a mapping" in err[0]


def test_above_the_spreadsheet_size_the_appendix_names_the_month_files_that_hold_each_domain(policy):
    """Evidence written by month (above ``spreadsheet_max_rows``): the appendix names, per domain, the month
    files holding its violations with the sha256 the manifest records and the count of each, never the
    ``evidence/violations.csv`` the run did not write."""
    data = _data(policy, hostile=False)
    outputs = [
        {"file": f"evidence/violations/month={month}/{name}", "sha256": digit * 64}
        for month, digit in (("2026-08", "a"), ("2026-09", "b"), ("none", "c"))
        for name in ("violations.csv", "part-0.parquet")
    ]
    months = pl.DataFrame(
        {
            "rule_id": ["SUP-TECH-STD", "SUP-TECH-STD", "PRIV-COMPLETE"],
            "month": ["2026-08", "2026-09", "2026-09"],
            "findings": [1000, 351, 2],
        }
    )
    page = render_compliance_report(
        replace(
            data,
            manifest={**data.manifest, "outputs": outputs},
            violations_total=1353,
            finding_counts=_counts(1353),
            violation_months=months,
        )
    )
    appendix = page[page.index('id="violation-appendix"') : page.index('id="attestation"')]
    assert "evidence/violations.csv" not in appendix and "month=none" not in appendix
    tickets = appendix[appendix.index('<td rowspan="2">tickets</td>') : appendix.index(">privacy</td>")]
    assert "<code>evidence/violations/month=2026-08/violations.csv</code></td><td><code>" + "a" * 64 in tickets
    assert ">1,000<" in tickets and ">351<" in tickets and ">1,351<" in tickets
    assert "<code>evidence/violations/month=2026-09/violations.csv</code></td><td><code>" + "b" * 64 in tickets
    privacy = appendix[appendix.index(">privacy</td>") :]
    assert privacy.count("violations.csv") == 1 and "b" * 64 in privacy and "a" * 64 not in privacy
    assert "parquet" not in appendix
    assert "<code>evidence/violations.csv</code>" not in page
