"""The whole asset graph: materialize() on a temporary warehouse, evidence layout, determinism, the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.resources import ReporterSettings, Warehouse
from compliance.evidence.files import _csv_copy
from compliance.samples.generate import GenerateOptions, generate
from pipelines.cli import main
from pipelines.definitions import ALL_ASSETS, ALL_CHECKS

AS_OF = "2026-11-01T00:00:00+00:00"
CONTRACT_COLUMNS = {
    "ticket_sla.csv": "record_id,rule_id,metric,calendar,target_seconds,started_at,due_at,stopped_at,elapsed_seconds,state,breached",
    "violations.csv": "rule_id,domain,record_id,due_at,actual_at,overdue_seconds,severity,explanation",
    "quarantine.csv": "source_file,line,record_id,reason",
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    generate(
        GenerateOptions(
            out_dir=folder, tickets=1500, privacy_requests=120, security_reports=30, incidents=40, retention_records=600
        )
    )
    return folder


def materialize(exports: Path, out: Path, policy: str = "platform") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={
            "settings": ReporterSettings(exports_dir=str(exports), out_dir=str(out), policy=policy, as_of=AS_OF),
            "warehouse": Warehouse(path=str(out / "warehouse.duckdb")),
        },
    )


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_materialize_writes_the_data_contract(exports, tmp_path, policy):
    result = materialize(exports, tmp_path)
    assert result.success
    for name, columns in CONTRACT_COLUMNS.items():
        header = (tmp_path / "evidence" / name).read_text(encoding="utf-8").splitlines()[0]
        assert header.startswith(columns), name
    metrics_header = (tmp_path / "evidence" / "metrics.csv").read_text(encoding="utf-8").splitlines()[0]
    for column in (
        "rule_id",
        "period",
        "achieved",
        "breached",
        "active",
        "adherence_pct",
        "median_seconds",
        "p90_seconds",
        "p95_seconds",
    ):
        assert column in metrics_header.split(",")
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"] == "2026-11-01T00:00:00Z"
    assert manifest["policy"]["sha256"] == policy.sha256
    for entry in manifest["inputs"]:
        assert entry["rows_read"] == entry["rows_loaded"] + entry["rows_quarantined"], entry
    assert {entry["file"] for entry in manifest["outputs"]} >= {
        "compliance_report.html",
        "evidence/ticket_sla.csv",
        "evidence/violations.csv",
    }
    report = (tmp_path / "compliance_report.html").read_text(encoding="utf-8")
    for rule in policy.rules:
        assert rule.id in report
    assert report.count("Plotly.newPlot") >= 1 and "<script src=" not in report
    # Every timestamp in the evidence is UTC with Z.
    for row in read_csv(tmp_path / "evidence" / "ticket_sla.csv")[:200]:
        assert row["started_at"].endswith("Z") and row["state"] in {"achieved", "breached", "active", "excluded"}
    # Every ticket violation is a breached clock, traceable to its record.
    breached = {
        (r["rule_id"], r["record_id"])
        for r in read_csv(tmp_path / "evidence" / "ticket_sla.csv")
        if r["state"] == "breached"
    }
    ticket_violations = {
        (r["rule_id"], r["record_id"])
        for r in read_csv(tmp_path / "evidence" / "violations.csv")
        if r["domain"] == "tickets"
    }
    assert breached == ticket_violations


def test_same_inputs_give_the_same_evidence(exports, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert materialize(exports, first).success
    assert materialize(exports, second).success
    assert materialize(exports, second).success  # a rerun on the same warehouse changes nothing
    for path in sorted(path for path in (first / "evidence").rglob("*") if path.is_file()):  # with expectations/
        relative = path.relative_to(first)
        assert path.read_bytes() == (second / relative).read_bytes(), str(relative)
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (first, second)]
    for manifest in manifests:
        manifest.pop("run_id")
    assert manifests[0]["inputs"] == manifests[1]["inputs"]
    # The HTML pages differ by run id and generation time only; every evidence file is identical.
    assert [o for o in manifests[0]["outputs"] if not o["file"].endswith(".html")] == [
        o for o in manifests[1]["outputs"] if not o["file"].endswith(".html")
    ]


@pytest.mark.parametrize(
    ("bad_file", "content", "problem"),
    [
        ("tickets-2026-10-31.csv", "ticket_id,subject\nT9,no times\n", "missing required columns channel, created_at"),
        # the only ticket events file: the clocks read events when they are there (pauses, reopens, stops)
        ("ticket_events.csv", "ticket_id,occurred_at\nT1,2026-03-07T00:00:00Z\n", "missing required column event_type"),
    ],
)
def test_an_unusable_file_beside_loaded_ones_leaves_no_verdict_met(tmp_path, bad_file, content, problem):
    """A breach in the loaded files stands; "met" or "no data" from them cannot, since the unread file's records
    could hold a breach: those verdicts are "not assessed", and every ticket verdict names the file."""
    whole, partial = tmp_path / "whole", tmp_path / "partial"
    whole.mkdir()
    (whole / "tickets.csv").write_text(
        "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status\n"
        # SUP-TECH-PRIO, 4 business hours: Friday 15:00-17:00 EST, then Monday 09:00-11:00 EDT (DST began Sunday)
        "T1,technical_support,plan_2,,2026-03-06T15:00:00-05:00,2026-03-09T15:00:00Z,2026-03-10T15:00:00Z,closed\n"
        # SUP-ACCT-PRIO, 4 hours around the clock: answered after 5
        "T2,account_billing,plan_2,,2026-10-01T00:00:00Z,2026-10-01T05:00:00Z,2026-10-02T00:00:00Z,closed\n",
        encoding="utf-8",
    )
    shutil.copytree(whole, partial)
    (partial / bad_file).write_text(content, encoding="utf-8")
    for exports in (whole, partial):
        assert materialize(exports, tmp_path / f"out_{exports.name}").success
    before, after = (
        {row["rule_id"]: row for row in read_csv(tmp_path / f"out_{name}" / "evidence" / "verdicts.csv")}
        for name in ("whole", "partial")
    )
    assert (before["SUP-TECH-PRIO"]["verdict"], before["SUP-ACCT-PRIO"]["verdict"]) == ("met", "breached")
    unread = f"{bad_file} is unusable: {problem}"
    for rule, row in before.items():
        if row["domain"] != "tickets":
            assert after[rule] == row, rule
        elif row["verdict"] in ("met", "no data"):
            assert after[rule]["verdict"] == "not assessed", rule
            assert (
                f"{unread} (the loaded files show no breach; the unread records may hold one)" in after[rule]["reason"]
            )
        elif row["verdict"] == "breached":
            assert after[rule]["verdict"] == "breached", rule
            assert f"{unread} (its records not judged)" in after[rule]["reason"], rule
        else:  # not assessed already, for its own reason
            assert (after[rule]["verdict"], after[rule]["reason"]) == ("not assessed", row["reason"]), rule


def test_a_verdict_names_the_quarantined_rows_it_could_not_judge(tmp_path):
    """A quarantined row could have been a breach: a met verdict says how many rows of its source it did not judge
    (an exact duplicate of a kept line is no row lost)."""
    exports = tmp_path / "exports"
    exports.mkdir()
    good = "T1,technical_support,plan_2,,2026-03-06T15:00:00-05:00,2026-03-09T15:00:00Z,2026-03-10T15:00:00Z,closed\n"
    (exports / "tickets.csv").write_text(
        "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status\n"
        + good
        + good
        + "T2,technical_support,plan_2,,2026-03-06T15:00:00-05:00,yesterday,2026-03-10T15:00:00Z,closed\n",
        encoding="utf-8",
    )
    assert materialize(exports, tmp_path / "out").success
    verdicts = {row["rule_id"]: row for row in read_csv(tmp_path / "out" / "evidence" / "verdicts.csv")}
    assert verdicts["SUP-TECH-PRIO"]["verdict"] == "met"
    assert verdicts["SUP-TECH-PRIO"]["reason"] == "1 quarantined row of tickets not judged (quarantine.csv)"
    assert (
        verdicts["SEC-ACK"]["reason"]
        == "no security_reports export (looked for security_reports.csv, .parquet, .jsonl)"
    )


def test_missing_and_unusable_files_leave_other_domains_reported(exports, tmp_path):
    partial = tmp_path / "exports"
    shutil.copytree(exports, partial)
    (partial / "privacy_requests.csv").unlink()
    (partial / "security_reports.csv").write_text(
        "report_id,acknowledged_at\nS1,2026-01-01T00:00:00Z\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    assert materialize(partial, out).success
    verdicts = {row["rule_id"]: row for row in read_csv(out / "evidence" / "verdicts.csv")}
    assert verdicts["PRIV-COMPLETE"]["verdict"] == "no data"
    assert "no privacy_requests export" in verdicts["PRIV-COMPLETE"]["reason"]
    assert verdicts["SEC-ACK"]["verdict"] == "no data"
    assert verdicts["SEC-ACK"]["reason"] == "security_reports.csv is unusable: missing required column received_at"
    assert verdicts["SUP-TECH-PRIO"]["verdict"] in {"met", "breached"}
    manifest = json.loads((out / "manifest.json").read_text())
    security = next(entry for entry in manifest["inputs"] if entry["source"] == "security_reports")
    assert (security["status"], security["problem"]) == ("unusable", "missing required column received_at")
    report = (out / "compliance_report.html").read_text(encoding="utf-8")
    assert "missing required column received_at" in report


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "tickets.csv").write_text(
        "ticket_id,channel,plan,created_at,first_response_at\n"
        '=HYPERLINK("http://x"),abuse,free,2026-03-01T00:00:00Z,2026-03-05T00:00:00Z\n'
        "@SUM(A1),nonsense,free,2026-03-01T00:00:00Z,\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert materialize(exports, out).success
    violations = (out / "evidence" / "violations.csv").read_text(encoding="utf-8")
    quarantine = (out / "evidence" / "quarantine.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in violations and "\n=HYPERLINK" not in violations and ",=HYPERLINK" not in violations
    assert "'@SUM(A1)" in quarantine
    report = (out / "compliance_report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in report


def test_large_csv_evidence_keeps_its_order_and_stays_inert(memory_con, tmp_path):
    # Many vectors of 2048 rows written by parallel threads, from a table stored in order (as ticket_sla is): the
    # file keeps the stored order. (A formula test written as IN (...) became a join that lost it.)
    memory_con.execute(
        "CREATE TABLE t AS SELECT i, CASE i % 7 WHEN 0 THEN '=1+' WHEN 1 THEN '-2' WHEN 2 THEN '@x' WHEN 3 THEN chr(9) || 'y' "
        "ELSE 'R' || i END AS s FROM range(200000) r(i) ORDER BY i"
    )
    for order_by in ("", "i"):
        memory_con.execute(_csv_copy(memory_con, "t", order_by, tmp_path / "t.csv"))
        rows = read_csv(tmp_path / "t.csv")
        assert [int(row["i"]) for row in rows] == list(range(200000))
    assert {row["s"][0] for row in rows} == {"'", "R"}
    assert [row["s"] for row in rows[:5]] == ["'=1+", "'-2", "'@x", "'\ty", "R4"]


def test_csv_evidence_timestamps(memory_con, tmp_path):
    def rendered(*values: str) -> list[str]:
        memory_con.execute(
            f"CREATE OR REPLACE TABLE t AS SELECT * FROM (VALUES {', '.join(f'({n}, {v})' for n, v in enumerate(values))}) v(n, moment)"
        )
        memory_con.execute(_csv_copy(memory_con, "t", "n", tmp_path / "t.csv"))
        return [row["moment"] for row in read_csv(tmp_path / "t.csv")]

    # whole seconds everywhere (formatted by the CSV writer), then a fraction, +-infinity and a year before 1000
    assert rendered("TIMESTAMPTZ '2026-03-08 07:00:00+00'", "NULL") == ["2026-03-08T07:00:00Z", ""]
    assert rendered("TIMESTAMPTZ '2026-03-08 07:00:00+00'", "TIMESTAMPTZ '2026-03-08 07:00:00.25+00'") == [
        "2026-03-08T07:00:00Z",
        "2026-03-08T07:00:00.250000Z",
    ]
    assert rendered("TIMESTAMPTZ '0999-01-02 03:04:05+00'", "'infinity'::TIMESTAMPTZ", "'-infinity'::TIMESTAMPTZ") == [
        "0999-01-02T03:04:05Z",
        "infinity",
        "-infinity",
    ]
    assert rendered("TIMESTAMP '2026-03-08 07:00:00'") == ["2026-03-08T07:00:00Z"]


def test_cli_run_and_exit_codes(exports, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", "2026-11-01T00:00:00Z"]) == 0
    printed = capsys.readouterr().out
    assert "Inputs (rows read = loaded + quarantined)" in printed and "Verdicts by domain" in printed
    assert str((out / "compliance_report.html").resolve()) in printed
    assert "Traceback" not in printed

    assert main(["run", "--exports", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "--exports" in capsys.readouterr().err
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", "last tuesday"]) == 2
    assert "not an ISO-8601 timestamp" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "profile: x\ncalendars: {}\nrules:\n  - {id: A, kind: nope, source: {doc: '1'}}\n", encoding="utf-8"
    )
    assert main(["run", "--exports", str(exports), "--out", str(out), "--policy", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "broken.yaml: rules.A.kind: unknown rule kind 'nope'" in error and "Traceback" not in error
    assert main(["generate", "--out", str(tmp_path / "gen"), "--tickets", "-5"]) == 2


def test_cli_generate_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert main(["generate", "--out", str(tmp_path / name), "--tickets", "300", "--seed", "3"]) == 0
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_email_support_profile_runs(exports, tmp_path):
    result = materialize(exports, tmp_path, policy="email-support")
    assert result.success
    verdicts = {row["rule_id"]: row for row in read_csv(tmp_path / "evidence" / "verdicts.csv")}
    assert set(verdicts) >= {"TG-URGENT", "TG-GENERAL", "TG-COMPLEX", "TG-NO-SECRETS"}


def test_blocking_expectation_makes_the_domain_not_assessed(exports, tmp_path, policy):
    import duckdb

    from compliance.evidence.verdicts import blocked_domains, build_verdicts

    assert materialize(exports, tmp_path).success
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    assert blocked_domains(con) == {}
    con.execute(
        "INSERT INTO data_quality VALUES ('privacy_requests', 'expect_column_values_to_be_unique', 'request_id', "
        "false, 2, '2 duplicates', true, 'privacy_requests: 2 rows share a request_id')"
    )
    build_verdicts(con, policy, blocked_domains(con))
    verdicts = dict(con.execute("SELECT rule_id, verdict || ': ' || coalesce(reason, '') FROM verdicts").fetchall())
    con.close()
    assert (
        verdicts["PRIV-COMPLETE"]
        == "not assessed: blocking data-quality check failed: privacy_requests: 2 rows share a request_id"
    )
    assert verdicts["SEC-ACK"].startswith(("met", "breached"))


def test_report_shows_data_coverage_without_secrets(exports, tmp_path):
    assert materialize(exports, tmp_path).success
    report = (tmp_path / "compliance_report.html").read_text(encoding="utf-8")
    assert "Data-quality expectations" in report and "Secrets and personal data in free text" in report
    for planted in ("hunter2", "4111 1111 1111 1111"):
        assert planted not in report
        assert planted not in "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "evidence").glob("*.csv"))
