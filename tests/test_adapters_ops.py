"""Incident and case adapters (servicenow, pagerduty, statuspage, open311) on the real samples and hand-made files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, Conversion, ConversionError
from compliance.policy import load_policy
from pipelines.cli import main

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def real(relative: str) -> Path:
    path = REAL / relative
    if not path.is_file():
        pytest.skip(f"{REAL} is absent (real sample {relative} not found)")
    return path


def convert(format_name: str, *paths: Path, timezone: str | None = None, policy: str = "platform") -> Conversion:
    options = AdapterOptions(timezone=timezone, policy=load_policy(policy))
    return adapter_for(format_name).convert(list(paths), options)


def by_id(conversion: Conversion, table: str, column: str) -> dict[str, dict]:
    return {row[column]: row for row in conversion.tables[table].to_dicts()}


def verdicts(conversion: Conversion) -> dict[str, dict]:
    return {row["record_id"]: row for row in conversion.vendor_sla.to_dicts()}


def quarantine(conversion: Conversion) -> dict[int, tuple[str, str]]:
    return {row["line"]: (row["reason_code"], row["reason"]) for row in conversion.quarantine.to_dicts()}


def accounted(conversion: Conversion) -> None:
    for record in conversion.inputs:
        assert record.rows_read == record.rows_converted + record.rows_quarantined, record
    assert sum(record.rows_quarantined for record in conversion.inputs) == conversion.quarantine.height


# --- servicenow ------------------------------------------------------------------------------------------------


def test_servicenow_table_export(tmp_path):
    exported = real("incidents/servicenow_table_api_incidents.csv")
    conversion = convert("servicenow", exported, timezone="America/New_York")
    accounted(conversion)
    assert conversion.inputs[0].rows_read == 67 and conversion.inputs[0].variant == "table export"
    tickets = by_id(conversion, "tickets", "ticket_id")
    assert len(tickets) == 67
    ticket = tickets["INC0000060"]
    # 2016-12-12 15:19:57 in New York (EST, UTC-5)
    assert (ticket["created_at"], ticket["resolved_at"], ticket["status"]) == (
        "2016-12-12T20:19:57Z",
        "2016-12-14T02:43:14Z",
        "closed",
    )
    assert (ticket["channel"], ticket["tier"], ticket["subject"]) == (
        "technical_support",
        "standard",
        "Unable to connect to email",
    )
    assert tickets["INC0000009"]["tier"] == "priority"  # priority 1
    assert ticket["sys_id"] == "1c741bd70b2322007518478d83673af3" and ticket["business_stc"] == "28800"  # kept
    # By default made_sla is no metric's verdict: ServiceNow clears it when any attached SLA breaches
    # (docs.servicenow.com, "Made SLA" on the Incident form); the export has no sla_due, so no vendor rows.
    assert conversion.vendor_sla.height == 0 and ticket["made_sla"] == "true"
    assert any("made_sla is not read as a verdict (setting made_sla: every_sla" in note for note in conversion.notes)
    # 20 incidents were resolved (2023-01-10, a bulk update) after they were closed (2022-10): named, kept as written
    (finding,) = [note for note in conversion.notes if note.startswith("consistency: ")]
    assert finding.startswith("consistency: 20 records with resolved_at after closed_at (INC0000001, INC0000004,")
    assert "reading: resolved_at kept as written" in finding
    assert tickets["INC0000009"]["resolved_at"] == "2023-01-11T00:56:12Z"

    # made_sla: resolution reads it as the resolution SLA's verdict
    mapping = write(tmp_path / "settings.yaml", "settings:\n  made_sla: resolution\n")
    options = AdapterOptions(timezone="America/New_York", mapping=mapping, policy=load_policy("platform"))
    found = verdicts(adapter_for("servicenow").convert([exported], options))
    assert found["INC0000060"] == {
        "record_id": "INC0000060",
        "source": "tickets",
        "metric": "resolution",
        "vendor_due_at": None,
        "vendor_met": "true",
        "vendor_status": "true",
        "vendor_field": "made_sla",
    }
    assert found["INC0000009"]["vendor_met"] == "false"
    # made_sla "true" on an incident still open is no verdict yet
    assert tickets["INC0008001"]["status"] != "closed"
    assert (
        found["INC0008001"]["vendor_met"] is None
        and found["INC0008001"]["vendor_status"] == "true (incident still open)"
    )


def test_servicenow_settings_are_checked(tmp_path):
    path = write(tmp_path / "incidents.csv", "number,opened_at\nINC1,2026-03-01 09:00:00\n")
    for text, message in (
        ("settings:\n  made_sla: response\n", "settings.made_sla: must be one of every_sla, resolution"),
        ("settings:\n  made_slas: resolution\n", "settings.made_slas: not a setting of --format servicenow"),
    ):
        mapping = write(tmp_path / "settings.yaml", text)
        with pytest.raises(ConversionError, match=message):
            adapter_for("servicenow").convert([path], AdapterOptions(timezone="UTC", mapping=mapping))


def test_servicenow_sla_due_and_task_sla(tmp_path):
    # Incident fields sla_due ("SLA due") and made_sla, and the task_sla table (task, sla, stage, has_breached,
    # planned_end_time, business_duration): docs.servicenow.com, "Task SLA table" / "SLA definitions".
    incidents = write(
        tmp_path / "incident.csv",
        "number,opened_at,resolved_at,closed_at,incident_state,made_sla,sla_due\n"
        "INC1,2026-03-01 09:00:00,2026-03-01 12:00:00,2026-03-02 12:00:00,7,true,2026-03-01 17:00:00\n"
        "INC2,2026-03-01 09:00:00,,,2,true,\n"
        "INC3,2026-03-01 09:00:00,,,2,true,tomorrow\n",
    )
    task_sla = write(
        tmp_path / "task_sla.csv",
        "task,sla,stage,has_breached,start_time,end_time,planned_end_time,business_duration\n"
        "INC1,Priority 3 response (8 hours),completed,false,2026-03-01 09:00:00,2026-03-01 10:00:00,"
        "2026-03-01 17:00:00,3600\n"
        "INC1,Priority 3 resolution (3 days),completed,true,2026-03-01 09:00:00,2026-03-01 12:00:00,"
        "2026-03-01 11:00:00,10800\n"
        "INC2,Priority 3 resolution (3 days),in_progress,false,2026-03-01 09:00:00,,2026-03-04 09:00:00,0\n"
        "INC2,Priority 3 resolution (3 days),cancelled,false,2026-03-01 09:00:00,,2026-03-04 09:00:00,0\n"
        "INC2,Security review,in_progress,false,2026-03-01 09:00:00,,2026-03-04 09:00:00,0\n"
        "INC2,Priority 3 response (8 hours),completed,perhaps,2026-03-01 09:00:00,,2026-03-01 17:00:00,0\n",
    )
    conversion = convert("servicenow", incidents, task_sla, timezone="UTC")
    accounted(conversion)
    assert [record.variant for record in conversion.inputs] == ["table export", "task_sla export"]
    assert quarantine(conversion) == {
        4: ("bad_timestamp", "sla_due: not a timestamp this format knows: tomorrow"),
        5: ("not_used", "stage cancelled: the SLA no longer applies"),
        6: ("not_used", "sla Security review: names neither a response nor a resolution SLA"),
        7: ("bad_boolean", "has_breached: not true/false: perhaps"),
    }
    rows = sorted(
        (row["record_id"], row["metric"], row["vendor_due_at"], row["vendor_met"], row["vendor_field"])
        for row in conversion.vendor_sla.to_dicts()
    )
    assert rows == [
        ("INC1", "first_response", "2026-03-01T17:00:00Z", "true", "task_sla has_breached + planned_end_time"),
        ("INC1", "resolution", "2026-03-01T11:00:00Z", "false", "task_sla has_breached + planned_end_time"),
        ("INC1", "resolution", "2026-03-01T17:00:00Z", None, "sla_due"),
        ("INC2", "resolution", "2026-03-04T09:00:00Z", None, "task_sla has_breached + planned_end_time"),
    ]
    assert not any(note.startswith("consistency: ") for note in conversion.notes)


def test_servicenow_event_log():
    conversion = convert("servicenow", real("incidents/servicenow_incident_event_log_subset.csv"))
    accounted(conversion)
    assert conversion.inputs[0].rows_read == 5998 and conversion.inputs[0].variant == "event log"
    tickets = by_id(conversion, "tickets", "ticket_id")
    assert len(tickets) == 890
    ticket = tickets["INC0000047"]
    # dd-mm-yyyy, no time zone given: wall time for the policy's source_timezone; "?" is empty
    assert (ticket["created_at"], ticket["resolved_at"], ticket["status"]) == (
        "2016-02-29T04:40:00",
        "2016-03-01T09:52:00",
        "closed",
    )
    assert ticket["cmdb_ci"] is None and ticket["channel"] == "Category 40"  # anonymised category: left for --mapping
    events = conversion.tables["ticket_events"].filter(ticket_id="INC0000047").to_dicts()
    assert [(e["occurred_at"], e["new_status"], e["incident_state"]) for e in events] == [
        ("2016-02-29T04:57:00", "new", "New"),
        ("2016-02-29T05:30:00", "open", "Active"),
        ("2016-03-01T09:14:00", "pending", "Awaiting User Info"),
        ("2016-03-01T09:52:00", "solved", "Resolved"),
        ("2016-03-06T10:00:00", "closed", "Closed"),
    ]
    assert {e["event_type"] for e in events} == {"status_change"}
    assert conversion.vendor_sla.height == 0  # made_sla is no metric's verdict by default


def test_servicenow_bad_values_are_quarantined_not_guessed(tmp_path):
    path = write(
        tmp_path / "incidents.csv",
        "number,opened_at,resolved_at,incident_state,made_sla,category,u_custom\n"
        "INC1,2026-03-01 09:00:00,2026-03-02 10:00:00,Resolved,true,network,kept\n"
        "INC2,01/03/2026 9h,,New,true,network,\n"
        "INC3,2026-03-01 09:00:00,,Parked,true,network,\n"
        "INC4,2026-03-01 09:00:00,,New,maybe,network,\n"
        ",2026-03-01 09:00:00,,New,true,network,\n",
    )
    conversion = convert("servicenow", path, timezone="UTC")
    accounted(conversion)
    assert quarantine(conversion) == {
        3: ("bad_timestamp", "opened_at: not a timestamp this format knows: 01/03/2026 9h"),
        4: ("unknown_value", "incident_state: unknown value Parked"),
        5: ("bad_boolean", "made_sla: not true/false: maybe"),
        6: ("missing_value", "number: missing incident number"),
    }
    (ticket,) = conversion.tables["tickets"].to_dicts()
    assert (ticket["ticket_id"], ticket["created_at"], ticket["status"], ticket["u_custom"]) == (
        "INC1",
        "2026-03-01T09:00:00Z",
        "solved",
        "kept",
    )


def test_servicenow_mapping_file_respells_values(tmp_path):
    path = write(
        tmp_path / "incidents.csv",
        "number,opened_at,incident_state,category,priority\n"
        "INC1,2026-03-01 09:00:00,Parked,Category 55,4 - Low\n"
        "INC2,2026-03-01 09:00:00,New,network,1 - Critical\n",
    )
    mapping = write(tmp_path / "values.yaml", "values:\n  channel: {Category 55: sales}\n  status: {parked: on_hold}\n")
    options = AdapterOptions(timezone="UTC", mapping=mapping, policy=load_policy("platform"))
    conversion = adapter_for("servicenow").convert([path], options)
    tickets = by_id(conversion, "tickets", "ticket_id")
    assert (tickets["INC1"]["channel"], tickets["INC1"]["status"], tickets["INC1"]["tier"]) == (
        "sales",
        "on_hold",
        "standard",
    )
    assert (
        tickets["INC1"]["category"] == "Category 55" and tickets["INC1"]["incident_state"] == "Parked"
    )  # kept as exported
    assert (tickets["INC2"]["channel"], tickets["INC2"]["tier"]) == ("technical_support", "priority")


# --- pagerduty -------------------------------------------------------------------------------------------------


def test_pagerduty_raw_api_table():
    conversion = convert("pagerduty", real("incidents/pagerduty_raw_incidents.csv"))
    accounted(conversion)
    incidents = by_id(conversion, "incidents", "incident_id")
    assert set(incidents) == {"Q3YON8WNWTZMRQ", "Q3CZAU7Q4008QD", "Q1OHFWFP3GPXOG"}
    resolved = incidents["Q1OHFWFP3GPXOG"]
    # acknowledged only in the log entries (PagerDuty drops acknowledgements[] on resolve)
    assert (
        resolved["kind"],
        resolved["severity"],
        resolved["started_at"],
        resolved["acknowledged_at"],
        resolved["resolved_at"],
    ) == ("incident", "low", "2022-11-03T06:45:36Z", "2022-11-03T06:45:46Z", "2022-11-03T06:51:44Z")
    retriggered = incidents["Q3YON8WNWTZMRQ"]
    assert (retriggered["acknowledged_at"], retriggered["resolved_at"]) == ("2022-11-03T06:23:07Z", None)
    assert retriggered["service"] == "DevService" and retriggered["title"] == "Crash reported"
    assert conversion.vendor_sla is None


def test_pagerduty_incidents_report_csv(tmp_path):
    path = write(
        tmp_path / "incidents.csv",
        "id,incident_number,service_name,escalation_policy_name,created_on,resolved_on,seconds_to_first_ack,seconds_to_resolve,urgency,priority\n"
        "PABC1,11,API,Default,2026-03-01T10:00:00-05:00,2026-03-01T12:30:00-05:00,95,9000,high,P1\n"
        "PABC2,12,API,Default,2026-03-01T10:00:00Z,,60,600,low,\n"
        "PABC3,13,API,Default,2026-03-01T10:00:00Z,,soon,,low,\n"
        "PABC4,14,API,Default,yesterday,,,,low,\n",
    )
    conversion = convert("pagerduty", path)
    accounted(conversion)
    incidents = by_id(conversion, "incidents", "incident_id")
    first = incidents["PABC1"]
    assert (first["severity"], first["started_at"], first["acknowledged_at"], first["resolved_at"]) == (
        "P1",
        "2026-03-01T15:00:00Z",
        "2026-03-01T15:01:35Z",
        "2026-03-01T17:30:00Z",
    )
    second = incidents["PABC2"]  # no resolved_on: created_on + seconds_to_resolve
    assert (second["severity"], second["acknowledged_at"], second["resolved_at"]) == (
        "low",
        "2026-03-01T10:01:00Z",
        "2026-03-01T10:10:00Z",
    )
    assert second["escalation_policy_name"] == "Default"
    assert quarantine(conversion) == {
        4: ("bad_number", "seconds_to_first_ack: not a number of seconds: soon"),
        5: ("bad_timestamp", "created_on: not a timestamp this format knows: yesterday"),
    }


def test_pagerduty_rest_json(tmp_path):
    incidents = [
        {
            "id": "Q1",
            "incident_number": 1,
            "created_at": "2026-03-01T10:00:00Z",
            "status": "resolved",
            "urgency": "high",
            "priority": {"summary": "P2"},
            "service": {"summary": "Checkout"},
            "acknowledgements": [],
            "last_status_change_at": "2026-03-01T11:00:00Z",
        },
        {
            "id": "Q2",
            "incident_number": 2,
            "created_at": "2026-03-01T10:00:00Z",
            "status": "acknowledged",
            "urgency": "low",
            "acknowledgements": [{"at": "2026-03-01T10:07:00Z"}, {"at": "2026-03-01T10:05:00Z"}],
            "last_status_change_at": "2026-03-01T10:05:00Z",
        },
        {
            "id": "Q3",
            "created_at": "2026-03-01T10:00:00Z",
            "status": "acknowledged",
            "acknowledgements": [{"at": "not a time"}],
        },
    ]
    path = write(tmp_path / "incidents.json", json.dumps({"incidents": incidents, "limit": 25}))
    conversion = convert("pagerduty", path)
    accounted(conversion)
    found = by_id(conversion, "incidents", "incident_id")
    assert (found["Q1"]["severity"], found["Q1"]["resolved_at"], found["Q1"]["acknowledged_at"]) == (
        "P2",
        "2026-03-01T11:00:00Z",
        None,
    )
    assert (found["Q2"]["severity"], found["Q2"]["acknowledged_at"], found["Q2"]["resolved_at"]) == (
        "low",
        "2026-03-01T10:05:00Z",
        None,
    )
    assert quarantine(conversion) == {
        3: (
            "bad_timestamp",
            "acknowledgements[].at / acknowledge_log_entry.created_at: not a timestamp this format knows: not a time",
        )
    }


# --- statuspage ------------------------------------------------------------------------------------------------


def test_statuspage_github_status_history():
    conversion = convert("statuspage", real("incidents/github_status_incidents.jsonl"))
    accounted(conversion)
    assert conversion.inputs[0].rows_read == 819 and conversion.inputs[0].variant == "status history jsonl"
    incidents = by_id(conversion, "incidents", "incident_id")
    incident = incidents["9632825"]
    assert (
        incident["kind"],
        incident["severity"],
        incident["started_at"],
        incident["resolved_at"],
        incident["announced_at"],
    ) == ("incident", "minor", "2022-03-26T01:43:00Z", "2022-03-26T03:35:00Z", "2022-03-26T01:43:00Z")
    maintenance = incidents["9630129"]
    # announced by its "Scheduled" update, started by its "In progress" one; the feed has no scheduled_for
    assert (
        maintenance["kind"],
        maintenance["announced_at"],
        maintenance["started_at"],
        maintenance["scheduled_start_at"],
    ) == ("maintenance", "2022-03-25T17:35:00Z", "2022-03-28T12:01:00Z", None)
    assert sum(row["kind"] == "maintenance" for row in incidents.values()) == 18
    updates = conversion.tables["incident_updates"].filter(incident_id="9632825").to_dicts()
    assert [update["posted_at"] for update in updates] == [
        "2022-03-26T01:43:00Z",
        "2022-03-26T01:44:00Z",
        "2022-03-26T02:20:00Z",
        "2022-03-26T03:35:00Z",
    ]
    assert updates[-1]["update_status"] == "Resolved"


def test_statuspage_v2_incidents_json():
    conversion = convert("statuspage", real("incidents/statuspage_cloudflare_incidents.json"))
    accounted(conversion)
    incident = by_id(conversion, "incidents", "incident_id")["q746ybtyb6q0"]
    assert (incident["kind"], incident["severity"], incident["started_at"], incident["resolved_at"]) == (
        "incident",
        "minor",
        "2018-09-17T19:29:21.132000Z",
        "2018-09-18T07:45:41.290000Z",
    )
    updates = conversion.tables["incident_updates"].filter(incident_id="q746ybtyb6q0")
    assert incident["announced_at"] == min(updates["posted_at"].to_list())
    assert incident["shortlink"] == "http://stspg.io/7f079791e"


def test_statuspage_scheduled_maintenances_and_bad_records(tmp_path):
    document = {
        "page": {"id": "p"},
        "scheduled_maintenances": [
            {
                "id": "m1",
                "name": "DB upgrade",
                "status": "completed",
                "impact": "maintenance",
                "created_at": "2026-03-01T09:00:00Z",
                "scheduled_for": "2026-03-10T02:00:00Z",
                "scheduled_until": "2026-03-10T04:00:00Z",
                "resolved_at": "2026-03-10T03:40:00Z",
                "incident_updates": [
                    {"status": "completed", "created_at": "2026-03-10T03:40:00Z", "display_at": "2026-03-10T03:40:00Z"},
                    {
                        "status": "in_progress",
                        "created_at": "2026-03-10T02:01:00Z",
                        "display_at": "2026-03-10T02:01:00Z",
                    },
                    {"status": "scheduled", "created_at": "2026-03-01T09:00:00Z", "display_at": "2026-02-20T09:00:00Z"},
                ],
            },
            {
                "id": "m2",
                "name": "bad",
                "created_at": "2026-03-01T09:00:00Z",
                "scheduled_for": "2026-03-10T02:00:00Z",
                "incident_updates": [{"status": "scheduled", "created_at": "tomorrow-ish"}],
            },
        ],
    }
    path = write(tmp_path / "scheduled-maintenances.json", json.dumps(document))
    lines = write(
        tmp_path / "history.jsonl",
        '{"id": "1", "started_at": "2026-03-01T09:00:00Z", "impact": "major", "updates": []}\n{broken\n',
    )
    conversion = convert("statuspage", path, lines)
    accounted(conversion)
    maintenance = by_id(conversion, "incidents", "incident_id")["m1"]
    # announced at the update's created_at (display_at can be back-dated)
    assert (
        maintenance["kind"],
        maintenance["scheduled_start_at"],
        maintenance["announced_at"],
        maintenance["started_at"],
    ) == ("maintenance", "2026-03-10T02:00:00Z", "2026-03-01T09:00:00Z", "2026-03-10T02:01:00Z")
    assert sorted(conversion.quarantine.select("source_file", "line", "record_id", "reason_code").rows()) == [
        ("history.jsonl", 2, None, "malformed_row"),
        ("scheduled-maintenances.json", 2, "m2", "bad_timestamp"),
    ]
    assert set(conversion.tables["incident_updates"]["incident_id"]) == {"m1"}


# --- open311 ---------------------------------------------------------------------------------------------------


def test_open311_boston_cases():
    heat, bed_bugs = real("tickets/boston311_2015_heat.csv"), real("tickets/boston311_2015_bed_bugs.csv")
    conversion = convert("open311", heat, bed_bugs, timezone="America/New_York", policy="city-311")
    accounted(conversion)
    assert [(r.file, r.rows_read) for r in conversion.inputs] == [(heat.name, 1324), (bed_bugs.name, 427)]
    tickets = by_id(conversion, "tickets", "ticket_id")
    assert len(tickets) == 1751
    closed = tickets["101001240786"]  # 01/01/2015 10:59:01 AM EST, closed 01/07/2015 08:49:25 AM
    assert (closed["created_at"], closed["resolved_at"], closed["status"], closed["channel"]) == (
        "2015-01-01T15:59:01Z",
        "2015-01-07T13:49:25Z",
        "closed",
        "Heat - Excessive  Insufficient",
    )
    summer = tickets["101001422241"]  # 07/02/2015 01:03:00 PM EDT (UTC-4)
    assert summer["created_at"] == "2015-07-02T17:03:00Z" and summer["LATITUDE"] is not None  # unknown columns kept
    found = verdicts(conversion)
    assert (found["101001240786"]["vendor_due_at"], found["101001240786"]["vendor_met"]) == (
        "2015-01-31T15:59:01Z",
        "true",
    )
    assert (found["101001422241"]["vendor_met"], found["101001422241"]["vendor_status"]) == (
        "false",
        "OVERDUE (case still open)",
    )
    # ONTIME on a case still open is not a verdict yet
    assert (found["101001578735"]["vendor_met"], found["101001578735"]["vendor_due_at"]) == (
        None,
        "2016-01-13T14:40:15Z",
    )
    assert found["101001578735"]["vendor_field"] == "TARGET_DT, OnTime_Status"


def test_open311_bad_values_and_georeport_json(tmp_path):
    cases = write(
        tmp_path / "cases.csv",
        ",CASE_ENQUIRY_ID,OPEN_DT,TARGET_DT,CLOSED_DT,OnTime_Status,CASE_STATUS,TYPE\n"
        "1,C1,03/08/2026 01:30:00 AM,03/09/2026 01:30:00 AM,03/08/2026 03:30:00 AM,ONTIME,Closed,Bed Bugs\n"
        "2,C2,03/08/2026 02:30:00 AM,,,ONTIME,Open,Bed Bugs\n"  # skipped by the DST change in New York
        "3,C3,03/09/2026 09:00:00 AM,03/10/2026 09:00:00 AM,,LATE-ISH,Open,Bed Bugs\n"
        "4,C4,03/09/2026 09:00:00 AM,soon,,ONTIME,Open,Bed Bugs\n",
    )
    requests = write(
        tmp_path / "requests.json",
        json.dumps(
            [
                {
                    "service_request_id": "G1",
                    "status": "closed",
                    "service_name": "Bed Bugs",
                    "description": "bugs",
                    "requested_datetime": "2026-03-01T10:00:00-05:00",
                    "expected_datetime": "2026-03-05T10:00:00-05:00",
                    "updated_datetime": "2026-03-03T12:00:00-05:00",
                },
                {
                    "service_request_id": "G2",
                    "status": "open",
                    "service_name": "Bed Bugs",
                    "requested_datetime": "2026-03-02T10:00:00-05:00",
                },
            ]
        ),
    )
    conversion = convert("open311", cases, requests, timezone="America/New_York", policy="city-311")
    accounted(conversion)
    assert {line: code for line, (code, _) in quarantine(conversion).items()} == {
        3: "bad_timestamp",
        4: "unknown_value",
        5: "bad_timestamp",
    }
    assert quarantine(conversion)[4][1] == "OnTime_Status: unknown value LATE-ISH"
    tickets = by_id(conversion, "tickets", "ticket_id")
    assert (tickets["C1"]["created_at"], tickets["C1"]["resolved_at"]) == (
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:30:00Z",
    )
    assert tickets["C1"]["column_1"] == "1"  # the unnamed index column, kept under a name
    # GeoReport: a closed request is resolved at its last update; a due time but no verdict
    assert (tickets["G1"]["resolved_at"], tickets["G1"]["description"], tickets["G2"]["resolved_at"]) == (
        "2026-03-03T17:00:00Z",
        "bugs",
        None,
    )
    found = verdicts(conversion)
    assert (found["G1"]["vendor_due_at"], found["G1"]["vendor_met"], found["G1"]["vendor_field"]) == (
        "2026-03-05T15:00:00Z",
        None,
        "expected_datetime",
    )
    assert "G2" not in found


def test_convert_and_run_reconcile_the_crm_verdicts(tmp_path, capsys):
    """End to end: open311 conversion with a quarantined case, then a run under the city-311 policy."""
    cases = write(
        tmp_path / "cases.csv",
        "CASE_ENQUIRY_ID,OPEN_DT,TARGET_DT,CLOSED_DT,OnTime_Status,CASE_STATUS,TYPE\n"
        "C1,01/01/2015 10:00:00 AM,01/31/2015 10:00:00 AM,01/05/2015 10:00:00 AM,ONTIME,Closed,Heat - Excessive  Insufficient\n"
        "C2,01/01/2015 10:00:00 AM,01/31/2015 10:00:00 AM,02/05/2015 10:00:00 AM,ONTIME,Closed,Heat - Excessive  Insufficient\n"
        "C3,01/01/2015 10:00:00 AM,01/31/2015 10:00:00 AM,,OVERDUE,Open,Heat - Excessive  Insufficient\n"
        "C4,13/45/2015 10:00:00 AM,01/31/2015 10:00:00 AM,,OVERDUE,Open,Heat - Excessive  Insufficient\n",
    )
    exports, out = tmp_path / "exports", tmp_path / "out"
    assert (
        main(
            [
                "convert",
                "--format",
                "open311",
                "--policy",
                "city-311",
                "--timezone",
                "America/New_York",
                str(cases),
                "--out",
                str(exports),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "run",
                "--policy",
                "city-311",
                "--exports",
                str(exports),
                "--out",
                str(out),
                "--as-of",
                "2015-06-01T00:00:00Z",
            ]
        )
        == 0
    )
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["conversion"]["format"] == "open311"
    assert manifest["conversion"]["inputs"][0] | {"sha256": ""} == {
        "file": "cases.csv",
        "sha256": "",
        "rows_read": 4,
        "rows_converted": 3,
        "rows_quarantined": 1,
        "variant": "crm case export csv",
        "encoding": "utf-8",
        "replaced_characters": 0,
    }
    assert "evidence/vendor_reconciliation.csv" in {entry["file"] for entry in manifest["outputs"]}
    with (out / "evidence" / "quarantine.csv").open(newline="", encoding="utf-8") as handle:
        assert [(row["source_file"], row["line"], row["reason_code"]) for row in csv.DictReader(handle)] == [
            ("cases.csv", "5", "bad_timestamp")
        ]
    with (out / "evidence" / "vendor_reconciliation.csv").open(newline="", encoding="utf-8") as handle:
        rows = {row["record_id"]: row for row in csv.DictReader(handle)}
    assert (rows["C1"]["agrees"], rows["C1"]["our_rule_id"]) == ("true", "CITY-HEAT-CLOSE")
    # the CRM said ONTIME for a case closed five days after its own due time: both our readings say missed
    assert (rows["C2"]["vendor_met"], rows["C2"]["recomputed_met"], rows["C2"]["our_state"], rows["C2"]["agrees"]) == (
        "true",
        "false",
        "breached",
        "false",
    )
    assert rows["C3"]["agrees"] == "true"
    report = (out / "compliance_report.html").read_text(encoding="utf-8")
    assert "Vendor verdicts reconciled" in report and "66.6% (2 / 3)" in report
    # the headline, and the one disagreement's class explained
    headline = re.sub(r"\s+", " ", report.split('id="vendor-agreement"', 1)[1].split("</ul>", 1)[0])
    assert "tickets resolution: the vendor agrees on 2 of 3</strong> (66.6% (2 / 3)), disagrees on 1" in headline
    why = report.split("Why they disagree", 1)[1].split("</table>", 1)[0]
    assert "the vendor says met, but the record&#39;s own stop is after the vendor&#39;s own due time" in why


def test_open311_socrata_csv_and_soda_json(tmp_path):
    # NYC "311 Service Requests from 2010 to Present" (data.cityofnewyork.us, dataset erm2-nwe9): the CSV download's
    # headers, and the SODA API's field names and floating timestamps (dev.socrata.com/docs/datatypes/floating_timestamp)
    cases = write(
        tmp_path / "311_Service_Requests.csv",
        "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Descriptor,Status,Due Date,Resolution Description\n"
        "59893917,01/10/2024 11:05:20 PM,01/11/2024 01:10:00 AM,NYPD,Noise - Residential,Loud Music/Party,Closed,"
        "01/11/2024 07:05:20 AM,The Police Department responded.\n"
        "59893918,01/10/2024 11:10:00 PM,,HPD,HEAT/HOT WATER,ENTIRE BUILDING,Assigned,01/15/2024 11:10:00 PM,\n"
        "59893919,01/10/2024 11:20:00 PM,,DOT,Street Condition,Pothole,Unspecified,,\n",
    )
    conversion = convert("open311", cases, timezone="America/New_York")
    accounted(conversion)
    assert conversion.inputs[0].variant == "socrata csv export"
    tickets = by_id(conversion, "tickets", "ticket_id")
    # 11:05:20 PM EST (UTC-5) -> 04:05:20Z the next day
    assert (
        tickets["59893917"]["created_at"],
        tickets["59893917"]["resolved_at"],
        tickets["59893917"]["status"],
        tickets["59893917"]["channel"],
        tickets["59893917"]["subject"],
    ) == ("2024-01-11T04:05:20Z", "2024-01-11T06:10:00Z", "closed", "Noise - Residential", "Loud Music/Party")
    assert tickets["59893918"]["status"] == "open" and tickets["59893918"]["Agency"] == "HPD"  # kept
    assert quarantine(conversion) == {4: ("unknown_value", "Status: unknown value Unspecified")}
    found = verdicts(conversion)
    assert (found["59893917"]["vendor_due_at"], found["59893917"]["vendor_met"], found["59893917"]["vendor_field"]) == (
        "2024-01-11T12:05:20Z",
        None,
        "Due Date",
    )
    assert any("Socrata floating timestamps have no zone: read in America/New_York" in n for n in conversion.notes)

    soda = write(
        tmp_path / "erm2-nwe9.json",
        json.dumps(
            [
                {
                    "unique_key": "59893917",
                    "created_date": "2024-01-10T23:05:20.000",
                    "closed_date": "2024-01-11T01:10:00.000",
                    "complaint_type": "Noise - Residential",
                    "status": "Closed",
                    "due_date": "2024-01-11T07:05:20.000",
                }
            ]
        ),
    )
    conversion = convert("open311", soda, timezone="America/New_York")
    assert conversion.inputs[0].variant == "socrata soda json"
    (ticket,) = conversion.tables["tickets"].to_dicts()
    assert (ticket["ticket_id"], ticket["created_at"], ticket["resolved_at"]) == (
        "59893917",
        "2024-01-11T04:05:20Z",
        "2024-01-11T06:10:00Z",
    )
    assert "service_request_id" not in ticket  # no GeoReport columns invented


def test_statuspage_cloudflare_incidents_json():
    conversion = convert("statuspage", real("incidents/statuspage_cloudflare_incidents.json"))
    accounted(conversion)
    assert conversion.inputs[0].variant == "v2 incidents.json" and conversion.inputs[0].rows_read == 2
    incident = by_id(conversion, "incidents", "incident_id")["q746ybtyb6q0"]
    assert (incident["kind"], incident["started_at"], incident["resolved_at"]) == (
        "incident",
        "2018-09-17T19:29:21.132000Z",  # no started_at: created_at
        "2018-09-18T07:45:41.290000Z",
    )
    assert not any(note.startswith("consistency: ") for note in conversion.notes)


def test_statuspage_history_csv_zone_abbreviations_and_findings(tmp_path):
    # A status page's history as it renders it (<page>/history: "Aug 30, 2024 - 13:30 PDT"), scraped to CSV with
    # the updates as JSON text in a cell; the update fields are the Statuspage v2 API's (status, body, created_at:
    # the "/api/v2/incidents.json" documented at every page's /api, e.g. www.githubstatus.com/api).
    def updates(*items):
        return json.dumps([{"status": status, "body": body, "created_at": at} for status, body, at in items])

    rows = [
        ["id", "Title", "Impact", "Started At", "Resolved At", "Updates"],
        [
            "a1",
            "API errors",
            "minor",
            "Aug 30, 2024 - 13:30 PDT",
            "Aug 30, 2024 - 15:00 PDT",
            updates(
                ("investigating", "Looking", "Aug 30, 2024 - 13:40 PDT"),
                ("resolved", "Fixed", "Aug 30, 2024 - 15:00 PDT"),
            ),
        ],
        [
            "a2",
            "Early notice",
            "major",
            "Dec 02, 2024 - 09:00 EST",
            "",
            updates(("investigating", "Seen", "Dec 02, 2024 - 08:50 EST")),
        ],
        ["a3", "Elsewhere", "minor", "Aug 30, 2024 - 13:30 IST", "", "[]"],
        ["a4", "Broken cell", "minor", "Aug 30, 2024 - 13:30 PDT", "", "[{"],
    ]
    path = tmp_path / "history.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    conversion = convert("statuspage", path)
    accounted(conversion)
    assert conversion.inputs[0].variant == "status history csv"
    incidents = by_id(conversion, "incidents", "incident_id")
    # PDT read as UTC-07:00, EST as UTC-05:00
    assert (incidents["a1"]["started_at"], incidents["a1"]["resolved_at"], incidents["a1"]["announced_at"]) == (
        "2024-08-30T20:30:00Z",
        "2024-08-30T22:00:00Z",
        "2024-08-30T20:40:00Z",
    )
    assert incidents["a1"]["name"] == "API errors" and incidents["a2"]["started_at"] == "2024-12-02T14:00:00Z"
    assert quarantine(conversion) == {
        4: ("bad_timestamp", "started_at: not a timestamp this format knows: Aug 30, 2024 - 13:30 IST"),
        5: ("malformed_row", "updates: not JSON: Expecting property name enclosed in double quotes"),
    }
    assert any("PDT = UTC-07:00" in note and "CST = UTC-06:00" in note for note in conversion.notes)
    (finding,) = [note for note in conversion.notes if note.startswith("consistency: ")]
    assert finding == (
        "consistency: 1 record with an update posted before the incident started (a2); reading: started_at kept as "
        "the vendor states it; the earlier update is the announcement (announced_at)"
    )
    assert "incidents" not in conversion.filled_columns


def test_statuspage_feed_whose_updates_share_one_instant(tmp_path):
    at = "2024-09-01T00:00:00Z"  # the time the feed was taken, on every update
    lines = [
        {"id": "f1", "title": "One", "started_at": "2024-08-30T10:00:00Z", "updates": [{"at": at, "status": "x"}]},
        {"id": "f2", "title": "Two", "started_at": "2024-08-31T10:00:00Z", "updates": [{"at": at, "status": "y"}]},
    ]
    path = write(tmp_path / "feed.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    conversion = convert("statuspage", path)
    accounted(conversion)
    assert {row["announced_at"] for row in conversion.tables["incidents"].to_dicts()} == {None}
    assert conversion.tables["incident_updates"].height == 0
    assert "announced_at" not in conversion.filled_columns["incidents"]
    (finding,) = [note for note in conversion.notes if note.startswith("consistency: ")]
    assert finding.startswith("consistency: feed.jsonl: all 2 updates carry one instant, 2024-09-01T00:00:00Z;")


def test_servicenow_task_sla_by_sys_id_names_the_incident(tmp_path):
    # the Table API writes a reference field (task_sla.task) as the referenced record's sys_id
    incidents = write(
        tmp_path / "incident.csv",
        "number,sys_id,opened_at,incident_state\nINC7,9d385017c611228701d22104cc95c371,2026-03-01 09:00:00,2\n",
    )
    task_sla = write(
        tmp_path / "task_sla.csv",
        "task,sla,stage,has_breached,planned_end_time\n"
        "9d385017c611228701d22104cc95c371,P3 resolution,in_progress,true,2026-03-01 17:00:00\n"
        "0000,P3 resolution,in_progress,false,2026-03-01 17:00:00\n",
    )
    conversion = convert("servicenow", incidents, task_sla, timezone="UTC")
    assert sorted((row["record_id"], row["vendor_met"]) for row in conversion.vendor_sla.to_dicts()) == [
        ("0000", None),
        ("INC7", "false"),
    ]


def test_statuspage_two_updates_of_one_incident_in_one_minute_are_no_finding(tmp_path):
    at = "2024-09-01T10:05:00Z"
    line = {"id": "g1", "title": "One", "started_at": "2024-09-01T10:00:00Z", "updates": [{"at": at}, {"at": at}]}
    conversion = convert("statuspage", write(tmp_path / "feed.jsonl", json.dumps(line) + "\n"))
    assert conversion.tables["incidents"].to_dicts()[0]["announced_at"] == at
    assert not any(note.startswith("consistency: ") for note in conversion.notes)
