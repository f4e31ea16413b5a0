"""No planted secret reaches a published file: every file under --out but the warehouse (README "Secrets").

Secrets of each class, plain and disguised (zero-width characters, full-width forms, Cyrillic look-alike labels,
no-break spaces), are planted in every free-text column of every source, and as the raw value of a bad timestamp
and of an unknown enum value (which quarantine reasons quote); a second run reads a vendor export through
``run --format``. Then every file under --out is read whole (Parquet files value by value) and searched.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb

from compliance.core.secrets import visible
from pipelines.cli import main

AS_OF = "2026-12-01T00:00:00Z"

# (text as planted, the raw values that must appear nowhere)
PLANTED = [
    ("password: Hunter2Zq!", ["Hunter2Zq!"]),
    ("my PIN 73918264", ["73918264"]),
    ("verification code: 58293746", ["58293746"]),
    ("card 4111 1111 1111 1111", ["4111 1111 1111 1111", "4111111111111111"]),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
    ("mail planted.person@example.org", ["planted.person@example.org"]),
    ("call +44 20 7946 0958", ["+44 20 7946 0958"]),
    ("pass\u200bword: ZwSecret9x", ["ZwSecret9x"]),
    ("ｐａｓｓｗｏｒｄ：ＦｕｌｌＳｅｃ４２", ["ＦｕｌｌＳｅｃ４２", "FullSec42"]),
    ("раssword: CyrSecret7q", ["CyrSecret7q"]),
    ("token\u00a0=\u00a0Zq7Wm3Kp9Tx2Lr5Vn8Hc4Bd6Fg1Js0Ya", ["Zq7Wm3Kp9Tx2Lr5Vn8Hc4Bd6Fg1Js0Ya"]),
]
RAW_VALUES = [value for _, values in PLANTED for value in values]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _planted_exports(folder: Path) -> Path:
    """Every source, a row per planted text in each of its free-text columns, and rows whose timestamp and enum
    values are the planted texts (quarantined, their reasons quoting the value)."""
    folder.mkdir(parents=True)
    texts = [text for text, _ in PLANTED]
    good, late = "2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z"
    tickets = [[f"T{i}", "technical_support", "plan_2", good, late, text, text] for i, text in enumerate(texts)]
    tickets += [[f"TB{i}", "technical_support", "plan_2", text, "", "", ""] for i, text in enumerate(texts)]
    tickets += [[f"TE{i}", text, "plan_2", good, "", "", ""] for i, text in enumerate(texts)]
    _write_csv(
        folder / "tickets.csv",
        ["ticket_id", "channel", "plan", "created_at", "first_response_at", "subject", "description"],
        tickets,
    )
    events = [["T0", late, "public_reply", "agent"]]
    events += [[f"T{i}", text, "public_reply", "agent"] for i, text in enumerate(texts)]
    events += [[f"T{i}", late, text, "agent"] for i, text in enumerate(texts)]
    _write_csv(folder / "ticket_events.csv", ["ticket_id", "occurred_at", "event_type", "actor"], events)
    privacy = [[f"P{i}", "access", good, text] for i, text in enumerate(texts)]
    privacy += [[f"PB{i}", "access", text, ""] for i, text in enumerate(texts)]
    _write_csv(folder / "privacy_requests.csv", ["request_id", "request_type", "received_at", "status"], privacy)
    security = [[f"S{i}", good, text] for i, text in enumerate(texts)]
    _write_csv(folder / "security_reports.csv", ["report_id", "received_at", "acknowledged_at"], security)
    incidents = [[f"I{i}", "incident", text, good, late] for i, text in enumerate(texts)]
    incidents += [[f"IB{i}", text, "", good, late] for i, text in enumerate(texts)]
    _write_csv(folder / "incidents.csv", ["incident_id", "kind", "severity", "started_at", "resolved_at"], incidents)
    _write_csv(
        folder / "incident_updates.csv",
        ["incident_id", "posted_at"],
        [["I0", late]] + [[f"I{i}", text] for i, text in enumerate(texts)],
    )
    retention = [[f"R{i}", "tickets", good, text] for i, text in enumerate(texts)]
    _write_csv(folder / "retention_inventory.csv", ["record_id", "data_class", "created_at", "deleted_at"], retention)
    vendor = [[f"T{i}", "tickets", "first_response", text, text] for i, text in enumerate(texts)]
    _write_csv(folder / "vendor_sla.csv", ["record_id", "source", "metric", "vendor_status", "vendor_field"], vendor)
    return folder


def _published_text(path: Path) -> str:
    if path.suffix == ".parquet":  # compressed: searched value by value
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
        return "\n".join(" ".join(str(value) for value in row) for row in rows)
    return path.read_bytes().decode("utf-8", errors="replace")


def _assert_nothing_published(out: Path) -> list[Path]:
    files = [path for path in out.rglob("*") if path.is_file() and path.name != "warehouse.duckdb"]
    assert files
    for path in files:
        text = _published_text(path)
        for value in RAW_VALUES:
            assert value not in text, f"{value!r} in {path.relative_to(out)}"
            assert visible(value) not in text, f"{visible(value)!r} in {path.relative_to(out)}"
    return files


def test_no_planted_secret_in_any_published_file(tmp_path):
    exports = _planted_exports(tmp_path / "exports")
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    published = {str(path.relative_to(out)) for path in _assert_nothing_published(out)}
    assert {"compliance_report.html", "sla_dashboard.html", "manifest.json", "evidence/quarantine.csv"} <= published
    # the Great Expectations suites, results and Data Docs are published too: listed, linked, searched above
    docs = {"evidence/expectations/index.html", "evidence/expectations/tickets_contract.json"}
    assert docs <= published
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert docs <= {entry["file"] for entry in manifest["outputs"]}
    assert 'href="evidence/expectations/index.html"' in (out / "compliance_report.html").read_text(encoding="utf-8")
    # the secrets were there to be found: the scan counts one finding per planted text in each ticket column
    with (out / "evidence" / "secret_findings.csv").open(encoding="utf-8") as handle:
        findings = {(row["record_id"], row["column_name"]) for row in csv.DictReader(handle)}
    assert {(f"T{i}", column) for i in range(len(PLANTED)) for column in ("subject", "description")} <= findings
    quarantine = (out / "evidence" / "quarantine.csv").read_text(encoding="utf-8")
    assert quarantine.count("[REDACTED:") >= len(PLANTED)


def test_run_format_keeps_the_converted_files_out_of_the_published_folder(tmp_path):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    header = ["Ticket ID", "Subject", "Description", "Status", "Group", "Created time", "Initial response time"]
    rows = [
        [str(i), text, text, "Open", "Technical support", "2026-11-02 09:00:00", "2026-11-02 10:00:00"]
        for i, (text, _) in enumerate(PLANTED, start=1)
    ]
    rows += [
        [str(100 + i), "bad time", "", "Open", "Technical support", text, ""]
        for i, (text, _) in enumerate(PLANTED, start=1)
    ]
    _write_csv(vendor / "freshdesk.csv", header, rows)
    out = tmp_path / "out"
    arguments = ["run", "--format", "freshdesk", "--timezone", "UTC", "--exports", str(vendor), "--out", str(out)]
    assert main([*arguments, "--as-of", AS_OF]) == 0
    _assert_nothing_published(out)
    assert not (out / "converted").exists()
    with (out / "evidence" / "secret_findings.csv").open(encoding="utf-8") as handle:
        records = {row["record_id"] for row in csv.DictReader(handle)}
    assert {str(i) for i in range(1, len(PLANTED) + 1)} <= records  # the converted text was scanned raw


def test_a_secret_inside_an_id_is_published_as_its_stable_pseudonym(tmp_path):
    """A ticket number that is an API key, an e-mail address or a card number: the ticket is still judged (its
    first response joins its events by the same pseudonym), and only the pseudonym is published; a later row
    with the same ID is quarantined under it."""
    import hashlib

    exports = tmp_path / "exports"
    exports.mkdir()
    ids = {
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc": "api_key_or_token",
        "planted.person@example.org": "email",
        "4111 1111 1111 1111": "card_number",
    }
    good, late = "2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z"
    tickets = [[ticket_id, "technical_support", "plan_2", good, "", "", ""] for ticket_id in ids]
    tickets.append(["planted.person@example.org", "sales", "plan_2", good, "", "", ""])  # a duplicate ID
    tickets.append(["T-ORDINARY", "technical_support", "plan_2", good, "", "", ""])
    _write_csv(
        exports / "tickets.csv",
        ["ticket_id", "channel", "plan", "created_at", "first_response_at", "subject", "description"],
        tickets,
    )
    _write_csv(
        exports / "ticket_events.csv",
        ["ticket_id", "occurred_at", "event_type", "actor"],
        [[ticket_id, late, "public_reply", "agent"] for ticket_id in [*ids, "T-ORDINARY"]],
    )
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    files = [path for path in out.rglob("*") if path.is_file() and path.name != "warehouse.duckdb"]
    for path in files:
        text = _published_text(path)
        for raw in [*ids, "4111111111111111"]:
            assert raw not in text, f"{raw!r} in {path.relative_to(out)}"
    expected = {f"[REDACTED:{kind}]-{hashlib.sha256(raw.encode()).hexdigest()[:16]}": raw for raw, kind in ids.items()}
    with (out / "evidence" / "ticket_sla.csv").open(encoding="utf-8") as handle:
        clocks = [row for row in csv.DictReader(handle) if row["metric"] == "first_response"]
    states = {row["record_id"]: row["state"] for row in clocks}
    # answered an hour after creation, through the events that name the same (pseudonymised) ticket
    assert states == {**dict.fromkeys(expected, "achieved"), "T-ORDINARY": "achieved"}
    with (out / "evidence" / "quarantine.csv").open(encoding="utf-8") as handle:
        quarantined = [(row["record_id"], row["reason_code"]) for row in csv.DictReader(handle)]
    email = next(pseudonym for pseudonym, raw in expected.items() if "@" in raw)
    assert quarantined == [(email, "duplicate_id")]
