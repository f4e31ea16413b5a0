"""What an export does not carry is "not assessed", naming the file and the column; an empty value is "not yet".

Runs the CLI on small hand-made folders and on the real vendor samples in ../shared/data/real.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import write

from pipelines.cli import main

# the real samples live beside the repository (../shared/data/real), or beside the folder of worktrees
REAL = next(
    (
        folder / "shared" / "data" / "real"
        for folder in Path(__file__).resolve().parents
        if (folder / "shared" / "data" / "real").is_dir()
    ),
    Path("shared") / "data" / "real",
)
FOIA_MAPPING = Path(__file__).resolve().parents[1] / "examples" / "mappings" / "doj_foia_privacy_requests.yaml"
PLATFORM = Path(__file__).resolve().parents[1] / "policies" / "platform.yaml"
AS_OF = "2026-03-10T00:00:00Z"
FIRST_RESPONSE_RULES = (
    "SUP-ACCT-STD",
    "SUP-ACCT-PRIO",
    "SUP-TECH-STD",
    "SUP-TECH-PRIO",
    "SUP-SALES",
    "SUP-ABUSE",
    "SUP-PRIV-RESP",
)
# Five account-and-billing tickets of the free plan (SUP-ACCT-STD, 24 h on the 24/7 calendar): answered late,
# closed without an answer, still open past due, answered on time, and open before its deadline.
TICKETS_WITH_RESPONSES = """ticket_id,channel,plan,created_at,first_response_at,resolved_at,status
A1,account_billing,free,2026-03-02T10:00:00Z,2026-03-03T11:00:00Z,,open
A2,account_billing,free,2026-03-02T10:00:00Z,,2026-03-04T10:00:00Z,closed
A3,account_billing,free,2026-03-02T10:00:00Z,,,open
A4,account_billing,free,2026-03-02T10:00:00Z,2026-03-02T12:00:00Z,,open
A5,account_billing,free,2026-03-09T12:00:00Z,,,open
"""
# The same tickets from an export that has no first-response column at all.
TICKETS_WITHOUT_RESPONSES = """ticket_id,channel,plan,created_at,resolved_at,status
B1,account_billing,free,2026-03-02T10:00:00Z,,open
B2,account_billing,free,2026-03-02T10:00:00Z,2026-03-04T10:00:00Z,closed
B3,account_billing,free,2026-03-02T10:00:00Z,,open
"""


def real(relative: str) -> Path:
    path = REAL / relative
    if not path.exists():
        pytest.skip(f"{REAL} is absent (real sample {relative} not found)")
    return path


def run(exports: Path, out: Path, *options: str, as_of: str = AS_OF) -> None:
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", as_of, *options]) == 0


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def verdicts(out: Path) -> dict[str, dict]:
    return {row["rule_id"]: row for row in read_csv(out / "evidence" / "verdicts.csv")}


def rows_of(out: Path, name: str, rule_id: str) -> list[dict]:
    return [row for row in read_csv(out / "evidence" / name) if row["rule_id"] == rule_id]


def manifest_input(out: Path, file: str) -> dict:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return next(entry for entry in manifest["inputs"] if entry["file"] == file)


def test_absent_first_response_column_is_not_assessed_naming_file_and_column(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS_WITHOUT_RESPONSES)
    run(tmp_path / "exports", tmp_path / "out")
    result = verdicts(tmp_path / "out")
    for rule_id in FIRST_RESPONSE_RULES:
        assert result[rule_id]["verdict"] == "not assessed", rule_id
        assert result[rule_id]["reason"] == "tickets.csv has no first_response_at column", rule_id
        assert not rows_of(tmp_path / "out", "violations.csv", rule_id)
    clocks = rows_of(tmp_path / "out", "ticket_sla.csv", "SUP-ACCT-STD")
    assert {(row["record_id"], row["state"], row["exclusion_reason"]) for row in clocks} == {
        (ticket, "excluded", "tickets.csv has no first_response_at column") for ticket in ("B1", "B2", "B3")
    }
    assert result["ESC-REVIEW"]["verdict"] == "not assessed"
    assert result["ESC-REVIEW"]["reason"] == (
        "tickets.csv has no escalated_at column; tickets.csv has no senior_reviewed_at column"
    )
    tickets = manifest_input(tmp_path / "out", "tickets.csv")
    assert tickets["columns"] == ["ticket_id", "channel", "plan", "created_at", "resolved_at", "status"]
    assert tickets["absent_columns"]["first_response_at"] == "tickets.csv has no first_response_at column"


def test_present_but_empty_first_response_is_not_yet_and_breaches(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS_WITH_RESPONSES)
    run(tmp_path / "exports", tmp_path / "out")
    standard = verdicts(tmp_path / "out")["SUP-ACCT-STD"]
    assert standard["verdict"] == "breached"
    assert (standard["achieved"], standard["breached"], standard["active"]) == ("1", "3", "1")
    assert manifest_input(tmp_path / "out", "tickets.csv")["absent_columns"]["escalated_at"] == (
        "tickets.csv has no escalated_at column"
    )


def test_mixed_folder_excludes_only_the_tickets_of_the_file_without_the_column(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS_WITH_RESPONSES)
    write(tmp_path / "exports" / "tickets-legacy.csv", TICKETS_WITHOUT_RESPONSES)
    run(tmp_path / "exports", tmp_path / "out")
    standard = verdicts(tmp_path / "out")["SUP-ACCT-STD"]
    # B1-B3 would be three more breaches ("still missing") if the absent column read as "not yet"
    assert (
        standard["verdict"],
        standard["achieved"],
        standard["breached"],
        standard["active"],
        standard["excluded"],
    ) == ("breached", "1", "3", "1", "3")
    assert "excluded where tickets-legacy.csv has no first_response_at column" in standard["reason"]
    breached = {row["record_id"] for row in rows_of(tmp_path / "out", "violations.csv", "SUP-ACCT-STD")}
    assert breached == {"A1", "A2", "A3"}
    excluded = {
        row["record_id"]: row["exclusion_reason"]
        for row in rows_of(tmp_path / "out", "ticket_sla.csv", "SUP-ACCT-STD")
        if row["state"] == "excluded"
    }
    assert excluded == {ticket: "tickets-legacy.csv has no first_response_at column" for ticket in ("B1", "B2", "B3")}


def test_tickets_with_events_are_judged_when_the_column_is_absent(tmp_path):
    write(tmp_path / "exports" / "tickets.csv", TICKETS_WITHOUT_RESPONSES)
    write(
        tmp_path / "exports" / "ticket_events.csv",
        "ticket_id,occurred_at,event_type,actor,new_status\nB1,2026-03-02T11:00:00Z,public_reply,agent,\n",
    )
    run(tmp_path / "exports", tmp_path / "out")
    standard = verdicts(tmp_path / "out")["SUP-ACCT-STD"]
    # B1 is answered by its events; B2 and B3 have no event history and no first_response_at column
    assert (standard["verdict"], standard["achieved"], standard["breached"], standard["excluded"]) == (
        "met",
        "1",
        "0",
        "2",
    )


def test_privacy_files_without_the_column_exclude_their_requests_only(tmp_path):
    write(
        tmp_path / "exports" / "privacy_requests.csv",
        "request_id,request_type,received_at,first_response_at,completed_at\n"
        "P1,access,2026-02-01T00:00:00Z,,\n"
        "P2,access,2026-02-01T00:00:00Z,2026-02-02T00:00:00Z,2026-02-03T00:00:00Z\n",
    )
    write(
        tmp_path / "exports" / "privacy_requests-2025.csv",
        "request_id,request_type,received_at,completed_at\nQ1,erasure,2026-02-01T00:00:00Z,2026-02-03T00:00:00Z\n",
    )
    run(tmp_path / "exports", tmp_path / "out")
    response = verdicts(tmp_path / "out")["PRIV-RESP"]
    assert (response["verdict"], response["achieved"], response["breached"], response["excluded"]) == (
        "breached",
        "1",
        "1",
        "1",
    )
    assert response["reason"] == (
        "1 breached: 1 still open past due; excluded where privacy_requests-2025.csv has no first_response_at column"
    )
    assert [row["record_id"] for row in rows_of(tmp_path / "out", "violations.csv", "PRIV-RESP")] == ["P1"]


def test_servicenow_incidents_first_response_not_assessed_resolution_judged(tmp_path):
    incidents = real("incidents/servicenow_table_api_incidents.csv")
    # the platform policy plus a resolution target, to see that what the export carries is still judged
    policy = write(
        tmp_path / "policy.yaml",
        PLATFORM.read_text(encoding="utf-8")
        + """
  - id: TEST-RESOLVE
    domain: tickets
    kind: resolution
    title: Technical tickets resolved within 5 days
    source: {doc: "000", quote: "test"}
    applies_to: {channel: technical_support}
    target: {days: 5}
    calendar: CAL-247
""",
    )
    out = tmp_path / "out"
    run(incidents, out, "--format", "servicenow", "--policy", str(policy), as_of="2026-01-01T00:00:00Z")
    result = verdicts(out)
    for rule_id in FIRST_RESPONSE_RULES:
        assert result[rule_id]["verdict"] == "not assessed", rule_id
        assert result[rule_id]["reason"] == "tickets.csv has no first_response_at column"
        assert not rows_of(out, "violations.csv", rule_id)
    # before: all 63 technical-support incidents breached "first response still missing, 2,334 days late"
    excluded = [row for rule_id in ("SUP-TECH-STD", "SUP-TECH-PRIO") for row in rows_of(out, "ticket_sla.csv", rule_id)]
    assert len(excluded) == 63
    assert {row["exclusion_reason"] for row in excluded} == {"tickets.csv has no first_response_at column"}
    resolve = result["TEST-RESOLVE"]
    assert resolve["verdict"] in ("met", "breached") and int(resolve["denominator"]) > 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    filled = manifest["conversion"]["filled_columns"]["tickets"]
    assert "resolved_at" in filled and "first_response_at" not in filled
    assert "first_response_at" in manifest_input(out, "tickets.csv")["absent_columns"]


def test_servicenow_event_log_has_no_reply_events(tmp_path):
    log = real("incidents/servicenow_incident_event_log_subset.csv")
    run(log, tmp_path / "out", "--format", "servicenow", as_of="2026-01-01T00:00:00Z")
    assert verdicts(tmp_path / "out")["SUP-TECH-STD"]["reason"] == (
        "tickets.csv has no first_response_at column; ticket_events.csv has no public_reply event"
    )


def test_foia_log_privacy_first_response_not_assessed(tmp_path):
    log = real("requests/doj_foia_2017_request_log.csv")
    out = tmp_path / "out"
    run(log, out, "--format", "mapping", "--mapping", str(FOIA_MAPPING), as_of="2017-09-01T00:00:00Z")
    result = verdicts(out)
    # before: PRIV-RESP 0/244, every request "had no first response"
    assert (result["PRIV-RESP"]["verdict"], result["PRIV-RESP"]["reason"]) == (
        "not assessed",
        "privacy_requests.csv has no first_response_at column",
    )
    assert not rows_of(out, "violations.csv", "PRIV-RESP")
    assert result["PRIV-COMPLETE"]["verdict"] == "breached"
    assert result["PRIV-COMPLETE"]["causes"] == f"completed_late={result['PRIV-COMPLETE']['breached']}"


def test_zendesk_warehouse_without_comments_cannot_fill_first_response(tmp_path):
    seeds = real("tickets/zendesk_schema_seeds")
    folder = tmp_path / "seeds"
    shutil.copytree(seeds, folder, ignore=shutil.ignore_patterns("ticket_comment_data.csv"))
    out = tmp_path / "out"
    run(folder, out, "--format", "zendesk", as_of="2026-01-01T00:00:00Z")
    conversion = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["conversion"]
    assert "first_response_at" not in conversion["filled_columns"]["tickets"]
    assert "resolved_at" in conversion["filled_columns"]["tickets"]
    reason = (
        "tickets.csv: the zendesk adapter cannot fill first_response_at; ticket_events.csv has no public_reply event"
    )
    for rule_id in FIRST_RESPONSE_RULES:
        assert (verdicts(out)[rule_id]["verdict"], verdicts(out)[rule_id]["reason"]) == ("not assessed", reason), (
            rule_id
        )
    assert manifest_input(out, "tickets.csv")["absent_columns"]["first_response_at"] == (
        "tickets.csv: the zendesk adapter cannot fill first_response_at"
    )
