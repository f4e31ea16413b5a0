"""A --mapping file under every format: timestamp formats, zone abbreviations, durations, headers, constants."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, Conversion, ConversionError, duration_seconds
from compliance.policy import load_policy

# Freshdesk's ticket export columns (Freshdesk support article "Exporting tickets",
# https://support.freshdesk.com/support/solutions/articles/37601-exporting-tickets, and the layout seen in the
# wild in shared/data/real/PROVENANCE.md), written as an account with a day-first date format exports them:
# dates "08/01/2025 15:00" and the "(in hrs)" times as H:MM:SS.
FRESHDESK_HEADER = (
    "Ticket ID,Subject,Status,Priority,Source,Type,Group,Created time,Due by Time,Resolved time,Closed time,"
    "Initial response time,First response time (in hrs),Resolution time (in hrs),Resolution status,"
    "First response status\n"
)
FRESHDESK_ROWS = (
    "101,Cannot log in,Closed,High,Email,Question,Technical,08/01/2025 15:00,09/01/2025 15:00,"
    "08/01/2025 17:05,10/01/2025 09:00,08/01/2025 17:05,2:05:11,2:05:11,Within SLA,Within SLA\n"
    "102,Invoice wrong,Resolved,Low,Portal,Question,Billing,13/01/2025 09:30,14/01/2025 09:30,"
    "15/01/2025 10:00,,13/01/2025 12:00,2:30:00,48:30:00,SLA Violated,Within SLA\n"
)
FRESHDESK_MAPPING = (
    "timestamp_formats: ['%d/%m/%Y %H:%M']\n"
    "durations: {'First response time (in hrs)': 'H:MM:SS', 'Resolution time (in hrs)': 'H:MM:SS'}\n"
    "values: {channel: {technical: technical_support, billing: account_billing}}\n"
)


def convert(format_name: str, *paths: Path, mapping: Path | None = None) -> Conversion:
    options = AdapterOptions(mapping=mapping, policy=load_policy("platform"))
    return adapter_for(format_name).convert(list(paths), options)


def test_freshdesk_day_first_dates_and_hms_durations_read_with_a_mapping(tmp_path):
    export = write(tmp_path / "tickets.csv", FRESHDESK_HEADER + FRESHDESK_ROWS)
    without = convert("freshdesk", export)
    assert without.quarantine.height == 2  # as the issue saw it: every row quarantined
    mapping = write(tmp_path / "freshdesk.yaml", FRESHDESK_MAPPING)
    conversion = convert("freshdesk", export, mapping=mapping)
    assert conversion.quarantine.height == 0 and conversion.inputs[0].rows_converted == 2
    tickets = {row["ticket_id"]: row for row in conversion.tables["tickets"].to_dicts()}
    # 08/01/2025 is 8 January (day first); wall times stay wall times without --timezone
    assert tickets["101"]["created_at"] == "2025-01-08T15:00:00"
    assert tickets["101"]["first_response_at"] == "2025-01-08T17:05:00"
    assert tickets["102"]["resolved_at"] == "2025-01-15T10:00:00"
    assert tickets["102"]["channel"] == "account_billing"
    due = {(r["record_id"], r["metric"]): r["vendor_due_at"] for r in conversion.vendor_sla.to_dicts()}
    assert due[("102", "resolution")] == "2025-01-14T09:30:00"
    assert any("timestamp formats tried first: %d/%m/%Y %H:%M" in note for note in conversion.notes)


def test_an_unreadable_duration_is_quarantined_naming_its_format(tmp_path):
    rows = FRESHDESK_ROWS.replace("48:30:00", "48h30")
    export = write(tmp_path / "tickets.csv", FRESHDESK_HEADER + rows)
    conversion = convert("freshdesk", export, mapping=write(tmp_path / "m.yaml", FRESHDESK_MAPPING))
    (row,) = conversion.quarantine.to_dicts()
    assert row["reason"] == "Resolution time (in hrs): not a duration (H:MM:SS): 48h30"


def test_zone_abbreviations_and_12_hour_times_in_a_format_without_a_layout_engine(tmp_path):
    # PagerDuty incidents report columns, created_on written as a status page would ("Aug 30, 2024 - 1:30 PM PDT")
    report = write(
        tmp_path / "incidents.csv",
        "id,incident_number,created_on,resolved_on,seconds_to_first_ack,urgency\n"
        'P1,1,"Aug 30, 2024 - 1:30 PM PDT","Aug 30, 2024 - 3:00 PM PDT",60,high\n'
        'P2,2,"Dec 02, 2024 - 9:05 AM EST",,,low\n',
    )
    mapping = write(tmp_path / "m.yaml", "timestamp_formats: ['%b %d, %Y - %I:%M %p']\nzone_abbreviations: common\n")
    conversion = convert("pagerduty", report, mapping=mapping)
    assert conversion.quarantine.height == 0
    incidents = {row["incident_id"]: row for row in conversion.tables["incidents"].to_dicts()}
    # PDT is read as UTC-07:00, EST as UTC-05:00 (stated in the notes)
    assert incidents["P1"]["started_at"] == "2024-08-30T20:30:00Z"
    assert incidents["P1"]["resolved_at"] == "2024-08-30T22:00:00Z"
    assert incidents["P1"]["acknowledged_at"] == "2024-08-30T20:31:00Z"
    assert incidents["P2"]["started_at"] == "2024-12-02T14:05:00Z"
    assert any("PDT = UTC-07:00" in note for note in conversion.notes)


def test_headers_and_constants_reach_any_format(tmp_path):
    report = write(tmp_path / "incidents.csv", "Incident,Opened,urgency\nP9,2024-05-01T10:00:00Z,high\n")
    mapping = write(tmp_path / "m.yaml", "headers: {id: Incident, created_on: Opened}\nconstants: {severity: sev2}\n")
    conversion = convert("pagerduty", report, mapping=mapping)
    (incident,) = conversion.tables["incidents"].to_dicts()
    assert (incident["incident_id"], incident["started_at"], incident["severity"]) == (
        "P9",
        "2024-05-01T10:00:00Z",
        "sev2",
    )


@pytest.mark.parametrize(
    ("text", "form", "seconds"),
    [
        ("2:05:11", "H:MM:SS", 7511.0),
        ("48:30", "H:MM", 174600.0),
        ("90", "minutes", 5400.0),
        ("1.5", "hours", 5400.0),
        ("PT1H30M", "iso8601", 5400.0),
        ("P1DT2H", "iso8601", 93600.0),
        ("PT", "iso8601", None),
        ("2:65:00", "H:MM:SS", None),
        ("-5", "minutes", None),
    ],
)
def test_duration_formats(text, form, seconds):
    value = pl.select(duration_seconds(pl.lit(text), form)).item()
    assert value == seconds


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("timestamp_format: ['%d/%m/%Y']\n", r"timestamp_format: unknown key \(did you mean 'timestamp_formats'\?\)"),
        ("durations: {X: 'HH:MM'}\n", r"durations\.X: unknown duration format 'HH:MM'.*did you mean 'H:MM'"),
        ("zone_abbreviations: {PDT: '-7'}\n", r"zone_abbreviations\.PDT: '-7' is neither an offset like -07:00 nor"),
        (
            "constants: {chanel: x}\n",
            r"constants\.chanel: not a contract column of any source \(did you mean 'channel'\?\)",
        ),
    ],
)
def test_mapping_mistakes_are_one_line_with_a_suggestion(tmp_path, document, message):
    export = write(tmp_path / "tickets.csv", FRESHDESK_HEADER + FRESHDESK_ROWS)
    with pytest.raises(ConversionError, match=message):
        convert("freshdesk", export, mapping=write(tmp_path / "m.yaml", document))


def test_a_key_the_format_does_not_read_is_refused_not_dropped(tmp_path):
    report = write(tmp_path / "incidents.csv", "id,created_on\nP1,2024-05-01T10:00:00Z\n")
    mapping = write(tmp_path / "m.yaml", "columns: {started_at: Opened}\n")
    with pytest.raises(ConversionError, match=r"m\.yaml: columns: --format pagerduty does not read it"):
        convert("pagerduty", report, mapping=mapping)


def test_a_named_zone_reads_the_wall_time_with_that_days_offset(tmp_path):
    # "PT" is Pacific time: UTC-07:00 in August (PDT), UTC-08:00 in December (PST)
    report = write(
        tmp_path / "incidents.csv",
        'id,created_on\nP1,"Aug 30, 2024 - 13:30 PT"\nP2,"Dec 02, 2024 - 09:05 PT"\nP3,"Dec 02, 2024 - 09:05 UTC"\n',
    )
    mapping = write(
        tmp_path / "m.yaml",
        "timestamp_formats: ['%b %d, %Y - %H:%M']\nzone_abbreviations: {PT: America/Los_Angeles, UTC: '+00:00'}\n",
    )
    conversion = convert("pagerduty", report, mapping=mapping)
    started = {row["incident_id"]: row["started_at"] for row in conversion.tables["incidents"].to_dicts()}
    assert started == {"P1": "2024-08-30T20:30:00Z", "P2": "2024-12-02T17:05:00Z", "P3": "2024-12-02T09:05:00Z"}
    assert any("PT = wall time in America/Los_Angeles" in note for note in conversion.notes)
