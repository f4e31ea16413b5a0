"""The eventlog format: one row per status change → tickets + ticket_events (BPI 2013 and hand-made logs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, Conversion, ConversionError
from compliance.policy import load_policy

BPI = SHARED / "data" / "real" / "incidents" / "bpi2013_volvo_it_incidents.csv.gz"


def convert(*paths: Path, mapping: Path | None = None, timezone: str | None = None) -> Conversion:
    options = AdapterOptions(timezone=timezone, mapping=mapping, policy=load_policy("platform"))
    return adapter_for("eventlog").convert(list(paths), options)


def rows(conversion: Conversion, table: str) -> list[dict]:
    return conversion.tables[table].to_dicts()


def test_bpi_2013_reads_as_its_7554_incidents_without_a_mapping():
    if not BPI.is_file():
        pytest.skip(f"{BPI} is absent")
    conversion = convert(BPI)
    record = conversion.inputs[0]
    assert (record.rows_read, record.rows_quarantined) == (65_533, 0)
    assert record.encoding == "utf-8-sig"  # of the CSV inside the .gz (it starts with a BOM)
    tickets = {row["ticket_id"]: row for row in rows(conversion, "tickets")}
    assert len(tickets) == 7_554
    # 1-364285768 (read off the file): first event 2010-03-31T15:59:42+01:00; its first terminal entry is
    # "Completed / Resolved" at 2010-04-06T15:44:51+01:00; its last event is "Completed / Closed".
    first = tickets["1-364285768"]
    assert first["created_at"] == "2010-03-31T14:59:42Z"
    assert first["resolved_at"] == "2010-04-06T14:44:51Z"
    assert first["status"] == "closed"
    assert first["channel"] == "technical_support"
    assert conversion.filled_columns["tickets"] == ("ticket_id", "channel", "created_at", "resolved_at", "status")
    events = [row for row in rows(conversion, "ticket_events") if row["ticket_id"] == "1-364285768"]
    assert [e["new_status"] for e in events[:3]] == ["open", "new", "open"]  # In Progress, Queued, In Progress
    assert {e["event_type"] for e in events} == {"status_change"}


def test_usual_headers_statuses_pauses_and_quarantine(tmp_path):
    log = write(
        tmp_path / "history.csv",
        "Ticket Number,Timestamp,Activity,User\n"
        "T-1,2026-03-02T09:00:00Z,New,system\n"
        "T-1,2026-03-02T09:30:00Z,In progress,agent\n"
        "T-1,2026-03-02T10:00:00Z,Waiting for customer,agent\n"
        "T-1,2026-03-02T12:00:00Z,In progress,requester\n"
        "T-1,2026-03-02T13:00:00Z,Resolved,agent\n"
        "T-1,2026-03-03T13:00:00Z,Closed,system\n"
        "T-2,2026-03-02T11:00:00Z,Open,agent\n"
        "T-2,yesterday,Open,agent\n"
        ",2026-03-02T11:00:00Z,Open,agent\n",
    )
    conversion = convert(log)
    tickets = {row["ticket_id"]: row for row in rows(conversion, "tickets")}
    assert tickets["T-1"]["created_at"] == "2026-03-02T09:00:00Z"
    assert tickets["T-1"]["resolved_at"] == "2026-03-02T13:00:00Z"
    assert tickets["T-1"]["status"] == "closed"
    assert tickets["T-2"]["resolved_at"] is None and tickets["T-2"]["status"] == "open"
    t1 = [(e["new_status"], e["actor"]) for e in rows(conversion, "ticket_events") if e["ticket_id"] == "T-1"]
    assert t1 == [
        ("new", "system"),
        ("open", "agent"),
        ("pending", "agent"),
        ("open", "requester"),
        ("solved", "agent"),
        ("closed", "system"),
    ]
    reasons = {row["line"]: row["reason_code"] for row in conversion.quarantine.to_dicts()}
    assert reasons == {9: "bad_timestamp", 10: "missing_value"}
    assert conversion.inputs[0].rows_read == 9 and conversion.inputs[0].rows_quarantined == 2


def test_a_mapping_names_other_headers_formats_spellings_and_terminal_statuses(tmp_path):
    log = write(
        tmp_path / "log.csv",
        "Ref;When;Stage\nA7;08/01/2025 15:00;Eingang\nA7;09/01/2025 08:15;Erledigt\nA7;10/01/2025 08:15;Archiv\n",
    )
    mapping = write(
        tmp_path / "map.yaml",
        "columns: {ticket_id: Ref, occurred_at: When, new_status: Stage}\n"
        "timestamp_formats: ['%d/%m/%Y %H:%M']\n"
        "timezone: Europe/Berlin\n"
        "values: {new_status: {eingang: new, erledigt: solved, archiv: closed}}\n"
        "terminal_statuses: [closed]\n"
        "constants: {channel: account_billing}\n",
    )
    log.write_text(log.read_text().replace(";", ","))
    conversion = convert(log, mapping=mapping)
    (ticket,) = rows(conversion, "tickets")
    # 8 January 2025 15:00 in Berlin (CET, UTC+1) is 14:00Z; resolved only on entering "closed" (Archiv)
    assert ticket["created_at"] == "2025-01-08T14:00:00Z"
    assert ticket["resolved_at"] == "2025-01-10T07:15:00Z"
    assert ticket["channel"] == "account_billing"


def test_a_log_without_a_recognisable_status_is_one_line(tmp_path):
    log = write(tmp_path / "log.csv", "case id,timestamp,comment\n1,2026-01-01T00:00:00Z,hello\n")
    with pytest.raises(ConversionError, match=r"log\.csv: no new_status column recognised"):
        convert(log)


def test_an_unknown_mapping_key_is_refused_with_a_suggestion(tmp_path):
    log = write(tmp_path / "log.csv", "case id,timestamp,status\n1,2026-01-01T00:00:00Z,open\n")
    mapping = write(tmp_path / "map.yaml", "terminal_status: [closed]\n")
    with pytest.raises(ConversionError, match=r"terminal_status: unknown key \(did you mean 'terminal_statuses'\?\)"):
        convert(log, mapping=mapping)
