"""Helpdesk adapters (zendesk, jsm, freshdesk) and the generic --mapping format, on hand-made and real files."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, ConversionError, write_conversion
from compliance.adapters.mapping import load_mapping
from compliance.adapters.value_overrides import apply_value_overrides, load_value_overrides
from tests.conftest import write

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
REPO = Path(__file__).resolve().parents[1]
FOIA_MAPPING = REPO / "examples" / "mappings" / "doj_foia_privacy_requests.yaml"
ZENDESK_GROUPS = REPO / "examples" / "mappings" / "zendesk_groups.yaml"


def real(relative: str) -> Path:
    path = REAL / relative
    if not path.exists():
        pytest.skip(f"{REAL} is absent (real samples live beside the repository, in ../shared/data/real)")
    return path


def convert(format_name: str, paths: list[Path], policy, **options):
    return adapter_for(format_name).convert(paths, AdapterOptions(policy=policy, **options))


def rows(frame: pl.DataFrame, key: str) -> dict[str, dict]:
    return {row[key]: row for row in frame.to_dicts()}


def reasons(conversion) -> dict[tuple[str, int], str]:
    return {(r["source_file"], r["line"]): r["reason_code"] for r in conversion.quarantine.to_dicts()}


def assert_accounting(conversion) -> None:
    for record in conversion.inputs:
        assert record.rows_read == record.rows_converted + record.rows_quarantined, record
        quarantined = conversion.quarantine.filter(pl.col("source_file") == record.file).height
        assert quarantined == record.rows_quarantined, record


def verdicts(conversion) -> dict[tuple[str, str], dict]:
    return {(r["record_id"], r["metric"]): r for r in conversion.vendor_sla.to_dicts()}


# --- zendesk: CSV export ------------------------------------------------------------------------------------------

ZENDESK_CSV = """\
Id,Subject,Status,Priority,Via,Ticket type,Created at,Updated at,Solved at,Group,Tags,First reply time in minutes,First reply time in minutes within business hours,Full resolution time in minutes,On hold time,Satisfaction Score
101,Cannot log in,Solved,Normal,Web form,Question,2026-07-18 09:10:00,2026-07-18 12:00:00,2026-07-18 11:40:00,Support,login,95,95,150,0,Good
102,Refund please,Hold,High,Email,Problem,2026-03-07 23:30:00,2026-03-08 10:00:00,,Billing,refund,1440,480,,30,
103,Bad date,Open,Low,Email,,2026-13-40 10:00:00,,,Support,,,,,,
104,Bad minutes,Open,Low,Email,,2026-07-20 10:00:00,,,Support,,soon,,,,
101,Same id again,Open,Low,Email,,2026-07-21 10:00:00,,,Support,,,,,,
,No id,Open,Low,Email,,2026-07-21 10:00:00,,,Support,,,,,,
106,Unknown line,Open,Low,Carrier pigeon,,2026-07-21 10:00:00,,,Mystery,,,,,,
107,Via only,New,Low,Web form,,2026-07-21 10:00:00,,,,,,,,,
"""


def test_zendesk_csv_export_converts_times_statuses_and_quarantines(tmp_path, policy):
    path = write(tmp_path / "zendesk_export.csv", ZENDESK_CSV)
    conversion = convert("zendesk", [path], policy, timezone="America/New_York")
    assert_accounting(conversion)
    assert conversion.format_version == "zendesk support csv export"
    assert conversion.inputs[0].variant == "zendesk support csv export"
    assert (conversion.inputs[0].rows_read, conversion.inputs[0].rows_quarantined) == (8, 6)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    first = tickets["101"]
    assert first["created_at"] == "2026-07-18T13:10:00Z"  # 09:10 EDT
    assert first["first_response_at"] == "2026-07-18T14:45:00Z"  # + 95 calendar minutes
    assert first["resolved_at"] == "2026-07-18T15:40:00Z"
    assert (first["channel"], first["status"]) == ("technical_support", "solved")
    # Unknown vendor columns are kept under their own names.
    assert (
        first["Priority"],
        first["Satisfaction Score"],
        first["First reply time in minutes within business hours"],
    ) == ("Normal", "Good", "95")
    second = tickets["102"]
    assert (second["channel"], second["status"]) == ("account_billing", "on_hold")
    # 1440 calendar minutes across the spring-forward night are 24 real hours: 23:30 EST -> 00:30 EDT two days on.
    assert (second["created_at"], second["first_response_at"]) == ("2026-03-08T04:30:00Z", "2026-03-09T04:30:00Z")
    got = reasons(conversion)
    name = "zendesk_export.csv"
    assert got == {
        (name, 4): "bad_timestamp",
        (name, 5): "bad_number",
        (name, 6): "duplicate_id",
        (name, 7): "missing_value",
        (name, 8): "unknown_value",
        (name, 9): "unknown_value",  # neither the (empty) group nor "Web form" is a channel of the policy
    }
    assert conversion.vendor_sla is None


def test_zendesk_csv_export_without_timezone_keeps_wall_times_and_mapping_overrides(tmp_path, policy):
    path = write(tmp_path / "export.csv", ZENDESK_CSV)
    mapping = write(
        tmp_path / "spellings.yaml",
        'values:\n  channel: {"Web form": sales, "mystery": abuse}\n  status: {hold: pending}\n',
    )
    conversion = convert("zendesk", [path], policy, mapping=mapping)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert (tickets["101"]["created_at"], tickets["101"]["first_response_at"]) == (
        "2026-07-18T09:10:00",
        "2026-07-18T10:45:00",
    )
    assert tickets["102"]["status"] == "pending"  # the mapping file's spelling wins over the adapter's
    assert tickets["106"]["channel"] == "abuse"  # case-insensitive
    assert tickets["107"]["channel"] == "sales"  # no group: the Via value, mapped
    assert_accounting(conversion)


# --- zendesk: API JSON --------------------------------------------------------------------------------------------

TICKETS_JSON = {
    "tickets": [
        {
            "id": 201,
            "created_at": "2026-07-18T09:00:00Z",
            "status": "solved",
            "priority": "high",
            "group_id": 360001,
            "via": {"channel": "web"},
            "subject": "Login",
            "description": "Cannot log in",
            "tags": ["login", "vip"],
        },
        {
            "id": 202,
            "created_at": "2026-07-18T10:00:00Z",
            "status": "open",
            "group_id": None,
            "via": {"channel": "email"},
            "subject": "Invoice",
            "description": "Wrong amount",
            "tags": [],
        },
        {
            "id": 203,
            "created_at": "2026-07-18T12:00:00Z",
            "status": "hold",
            "group_id": 360001,
            "via": {"channel": "email"},
            "subject": "Crash",
            "description": "It crashes",
        },
        {"id": None, "created_at": "2026-07-18T12:00:00Z", "status": "open", "via": {"channel": "email"}},
    ]
}


def _event(n, ticket, metric, kind, time, instance=1, **extra):
    return {
        "id": n,
        "ticket_id": ticket,
        "metric": metric,
        "instance_id": instance,
        "type": kind,
        "time": time,
        **extra,
    }


METRIC_EVENTS_JSON = {
    "ticket_metric_events": [
        _event(1, 201, "reply_time", "activate", "2026-07-18T09:00:00Z"),
        _event(
            2,
            201,
            "reply_time",
            "apply_sla",
            "2026-07-18T09:00:00Z",
            sla={"target": 60, "business_hours": False, "policy": {"id": 7, "title": "Gold"}},
        ),
        _event(3, 201, "reply_time", "fulfill", "2026-07-18T09:30:00Z"),
        _event(4, 201, "requester_wait_time", "activate", "2026-07-18T09:00:00Z"),
        _event(
            5,
            201,
            "requester_wait_time",
            "apply_sla",
            "2026-07-18T09:00:00Z",
            sla={"target": 300, "business_hours": False, "policy": {"id": 7, "title": "Gold"}},
        ),
        _event(6, 201, "requester_wait_time", "breach", "2026-07-18T14:00:00Z"),
        _event(7, 201, "requester_wait_time", "fulfill", "2026-07-18T15:00:00Z"),
        _event(
            8,
            201,
            "agent_work_time",
            "apply_sla",
            "2026-07-18T09:00:00Z",
            sla={"target": 600, "business_hours": False, "policy": {"id": 7, "title": "Gold"}},
        ),
        _event(9, 201, "agent_work_time", "fulfill", "2026-07-18T15:00:00Z"),
        _event(10, 202, "reply_time", "activate", "2026-07-18T10:00:00Z"),
        _event(
            11,
            202,
            "reply_time",
            "apply_sla",
            "2026-07-18T10:00:00Z",
            sla={"target": 120, "business_hours": True, "policy": {"id": 8, "title": "Silver"}},
        ),
        _event(12, 202, "reply_time", "breach", "2026-07-18T13:00:00Z", deleted=True),
        _event(13, 202, "reply_time", "fulfill", "2026-07-18T11:00:00Z"),
        _event(14, 203, "reply_time", "activate", "2026-07-18T12:00:00Z"),
        _event(
            15,
            203,
            "reply_time",
            "apply_sla",
            "2026-07-18T12:00:00Z",
            sla={"target": 30, "business_hours": False, "policy": {"id": 7, "title": "Gold"}},
        ),
        _event(16, 203, "reply_time", "breach", "2026-07-18T12:30:00Z"),
        _event(17, 203, "reply_time", "fulfill", "yesterday"),
        _event(18, 999, "reply_time", "activate", "2026-07-18T12:00:00Z"),
        _event(19, 203, "periodic_update_time", "activate", "2026-07-18T12:00:00Z"),
    ]
}


def test_zendesk_api_tickets_and_metric_events(tmp_path, policy):
    tickets_path = write(tmp_path / "tickets.json", json.dumps(TICKETS_JSON))
    events_path = write(tmp_path / "ticket_metric_events.json", json.dumps(METRIC_EVENTS_JSON))
    mapping = write(
        tmp_path / "groups.yaml", 'values:\n  channel: {"360001": technical_support, email: account_billing}\n'
    )
    conversion = convert("zendesk", [tickets_path, events_path], policy, mapping=mapping)
    assert_accounting(conversion)
    assert conversion.format_version.startswith("zendesk api v2")
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert set(tickets) == {"201", "202", "203"}
    assert tickets["201"]["first_response_at"] == "2026-07-18T09:30:00Z"  # reply_time fulfil, instance 1
    assert tickets["201"]["resolved_at"] == "2026-07-18T15:00:00Z"  # requester_wait_time fulfil
    assert tickets["201"]["tags"] == "login vip"
    assert tickets["202"]["channel"] == "account_billing"  # no group: via.channel, mapped
    assert tickets["202"]["resolved_at"] is None  # not solved
    assert tickets["203"]["status"] == "on_hold"
    got = {(r["source_file"], r["line"]): (r["reason_code"], r["record_id"]) for r in conversion.quarantine.to_dicts()}
    assert got == {
        ("tickets.json", 4): ("missing_value", None),
        ("ticket_metric_events.json", 17): ("bad_timestamp", "203"),
        ("ticket_metric_events.json", 18): ("orphan_record", "999"),
        ("ticket_metric_events.json", 19): ("not_used", "203"),
    }
    sla = verdicts(conversion)
    assert (sla[("201", "first_response")]["vendor_met"], sla[("201", "first_response")]["vendor_due_at"]) == (
        "true",
        "2026-07-18T10:00:00Z",
    )
    resolution = sla[("201", "resolution")]  # requester wait time preferred over agent work time
    assert (resolution["vendor_met"], resolution["vendor_due_at"]) == ("false", "2026-07-18T14:00:00Z")
    assert resolution["vendor_field"] == "ticket_metric_events requester_wait_time"
    # A deleted breach event is no breach; a business-hours target gives no computable due time.
    assert (sla[("202", "first_response")]["vendor_met"], sla[("202", "first_response")]["vendor_due_at"]) == (
        "true",
        None,
    )
    assert (sla[("203", "first_response")]["vendor_met"], sla[("203", "first_response")]["vendor_due_at"]) == (
        "false",
        "2026-07-18T12:30:00Z",
    )
    assert len(conversion.vendor_sla) == 4


def test_zendesk_unknown_file_and_mixed_layouts_are_one_line_errors(tmp_path, policy):
    other = write(tmp_path / "other.csv", "a,b\n1,2\n")
    with pytest.raises(ConversionError, match=r"^other\.csv: not a Zendesk export"):
        convert("zendesk", [other], policy)
    csv_export = write(tmp_path / "export.csv", ZENDESK_CSV)
    tickets_json = write(tmp_path / "tickets.json", json.dumps(TICKETS_JSON))
    with pytest.raises(ConversionError, match="mix Zendesk layouts"):
        convert("zendesk", [csv_export, tickets_json], policy)


# --- zendesk: an API folder ---------------------------------------------------------------------------------------
# Objects as the Zendesk Support API v2 returns them (developer.zendesk.com/api-reference/ticketing/): Tickets
# (tickets/tickets: requester_id, group_id), Ticket Comments (tickets/ticket_comments: author_id, public,
# created_at; a folder dump adds the ticket_id), Ticket Audits (tickets/ticket_audits: events of type Create,
# Change with field_name/value, Comment with public and author_id), Ticket Metrics (tickets/ticket_metrics:
# reply_time_in_minutes {calendar, business}, solved_at), Ticket Metric Events (tickets/ticket_metric_events),
# SLA Policies (business-rules/sla_policies: id, title, policy_metrics), Users (users/users: role end-user, agent,
# admin), Groups (groups/groups: id, name).

API_FOLDER = {
    "tickets.json": {
        "tickets": [
            {"id": 301, "created_at": "2026-07-20T09:00:00Z", "status": "solved", "requester_id": 1001, "group_id": 55},
            {"id": 302, "created_at": "2026-07-20T10:00:00Z", "status": "open", "requester_id": 1002, "group_id": 56},
            {"id": 303, "created_at": "2026-07-20T10:30:00Z", "status": "solved", "requester_id": 1003, "group_id": 55},
        ]
    },
    "ticket_comments.json": {
        "comments": [
            {"id": 1, "ticket_id": 301, "author_id": 1001, "public": True, "created_at": "2026-07-20T09:00:00Z"},
            {"id": 2, "ticket_id": 301, "author_id": 2001, "public": False, "created_at": "2026-07-20T09:10:00Z"},
            {"id": 3, "ticket_id": 301, "author_id": 2001, "public": True, "created_at": "2026-07-20T09:40:00Z"},
            {"id": 4, "ticket_id": 301, "author_id": 1001, "public": True, "created_at": "2026-07-20T10:00:00Z"},
            {"id": 5, "ticket_id": 302, "author_id": 2002, "public": True, "created_at": "2026-07-20T10:00:00Z"},
            {"id": 6, "ticket_id": 302, "author_id": 1002, "public": True, "created_at": "2026-07-20T10:20:00Z"},
            {"id": 7, "ticket_id": 302, "author_id": 9999, "public": True, "created_at": "2026-07-20T11:00:00Z"},
            {"id": 8, "ticket_id": 302, "author_id": 2001, "public": "maybe", "created_at": "2026-07-20T11:30:00Z"},
            {"id": 9, "ticket_id": 999, "author_id": 2001, "public": True, "created_at": "2026-07-20T11:30:00Z"},
        ]
    },
    "ticket_audits.json": {
        "audits": [
            {
                "id": 5000,
                "ticket_id": 303,
                "created_at": "2026-07-20T10:30:00Z",
                "author_id": 1003,
                "events": [
                    {"type": "Create", "field_name": "status", "value": "new"},
                    {"type": "Comment", "public": True, "author_id": 1003, "body": "Help"},
                ],
            },
            {
                "id": 5001,
                "ticket_id": 303,
                "created_at": "2026-07-20T12:00:00Z",
                "author_id": 2001,
                "events": [{"type": "Comment", "public": True, "author_id": 2001}, {"type": "Notification"}],
            },
            {
                "id": 5002,
                "ticket_id": 303,
                "created_at": "2026-07-21T08:00:00Z",
                "author_id": 2001,
                "events": [
                    {"type": "Change", "field_name": "status", "value": "solved", "previous_value": "open"},
                    {"type": "Change", "field_name": "priority", "value": "high"},
                ],
            },
        ]
    },
    "ticket_metrics.json": {
        "ticket_metrics": [
            {
                "ticket_id": 301,
                "reply_time_in_minutes": {"calendar": 40, "business": 40},
                "solved_at": "2026-07-20T12:00:00Z",
            },
            {"ticket_id": 302, "reply_time_in_minutes": {"calendar": None, "business": None}, "solved_at": None},
            {
                "ticket_id": 303,
                "reply_time_in_minutes": {"calendar": 90, "business": 30},
                "solved_at": "2026-07-21T08:00:00Z",
            },
            {"ticket_id": 304, "reply_time_in_minutes": {"calendar": 5, "business": 5}},
        ]
    },
    "ticket_metric_events.json": {
        "ticket_metric_events": [
            _event(1, 303, "reply_time", "activate", "2026-07-20T10:30:00Z"),
            _event(
                2,
                303,
                "reply_time",
                "apply_sla",
                "2026-07-20T10:30:00Z",
                sla={"target": 60, "business_hours": True, "policy": {"id": 9}},
            ),
        ]
    },
    "sla_policies.json": {
        "sla_policies": [
            {
                "id": 9,
                "title": "Enterprise",
                "policy_metrics": [
                    {"priority": "high", "metric": "first_reply_time", "target": 60, "business_hours": True}
                ],
            }
        ]
    },
    "users.json": {
        "users": [
            {"id": 1001, "role": "end-user"},
            {"id": 1002, "role": "end-user"},
            {"id": 2001, "role": "agent"},
            {"id": 2002, "role": "admin"},
        ]
    },
    "groups.json": {"groups": [{"id": 55, "name": "Technical Support"}, {"id": 56, "name": "Billing"}]},
    "organizations.json": {"organizations": [{"id": 1, "name": "Acme"}]},
}


def test_zendesk_api_folder_reads_every_file_it_knows(tmp_path, policy):
    paths = [write(tmp_path / name, json.dumps(document)) for name, document in API_FOLDER.items()]
    conversion = convert("zendesk", paths, policy)
    assert_accounting(conversion)
    assert conversion.format_version.startswith("zendesk api v2")
    assert {record.file: record.rows_read for record in conversion.inputs} == {
        "tickets.json": 3,
        "ticket_comments.json": 9,
        "ticket_audits.json": 4,  # of its 3 audits: 2 Comment events, a Create and a Change of the status
        "ticket_metrics.json": 4,
        "ticket_metric_events.json": 2,
        "sla_policies.json": 1,
        "users.json": 4,
        "groups.json": 2,
    }
    assert any(note.startswith("organizations.json: skipped, not a Zendesk file") for note in conversion.notes)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    # channel from the group's name (policy aliases "technical support", "billing"); times hand-computed per file
    assert {key: tickets[key]["channel"] for key in tickets} == {
        "301": "technical_support",
        "302": "account_billing",
        "303": "technical_support",
    }
    assert (tickets["301"]["first_response_at"], tickets["301"]["resolved_at"]) == (
        "2026-07-20T09:40:00Z",  # created 09:00 + reply_time 40 calendar minutes
        "2026-07-20T12:00:00Z",  # ticket_metrics solved_at
    )
    # no reply time in ticket_metrics: the first public comment of an author who is not the requester (9999 is
    # not in users.json); comment 5, by an admin, is the ticket's first comment: the request, not a reply
    assert (tickets["302"]["first_response_at"], tickets["302"]["resolved_at"]) == ("2026-07-20T11:00:00Z", None)
    assert (tickets["303"]["first_response_at"], tickets["303"]["resolved_at"]) == (
        "2026-07-20T12:00:00Z",  # 10:30 + 90 calendar minutes
        "2026-07-21T08:00:00Z",
    )
    events = conversion.tables["ticket_events"].sort("ticket_id", "occurred_at", maintain_order=True).to_dicts()
    assert [
        (e["ticket_id"], e["occurred_at"][11:16], e["event_type"], e["actor"], e["new_status"]) for e in events
    ] == [
        ("301", "09:00", "requester_reply", "requester", None),
        ("301", "09:10", "internal_note", "agent", None),
        ("301", "09:40", "public_reply", "agent", None),
        ("301", "10:00", "requester_reply", "requester", None),
        ("302", "10:20", "requester_reply", "requester", None),
        ("302", "11:00", "public_reply", "agent", None),
        ("303", "10:30", "status_change", None, "new"),
        ("303", "10:30", "requester_reply", "requester", None),
        ("303", "12:00", "public_reply", "agent", None),
        ("303", "08:00", "status_change", None, "solved"),  # the next day
    ]
    assert reasons(conversion) == {
        ("ticket_comments.json", 8): "bad_boolean",
        ("ticket_comments.json", 9): "orphan_record",
        ("ticket_metrics.json", 4): "orphan_record",
    }
    # the metric events apply a business-hours reply target with no fulfil yet: ticket_metrics decides it
    (verdict,) = conversion.vendor_sla.to_dicts()
    assert verdict == {
        "record_id": "303",
        "source": "tickets",
        "metric": "first_response",
        "vendor_due_at": None,
        "vendor_met": "true",
        "vendor_status": "reply time 30 min (business hours) against the target 60 min",
        "vendor_field": "ticket_metrics reply_time_in_minutes.business",
    }


def test_zendesk_api_policy_titles_and_a_folder_with_nothing_known(tmp_path, policy):
    paths = [
        write(tmp_path / name, json.dumps(API_FOLDER[name]))
        for name in ("tickets.json", "ticket_metric_events.json", "sla_policies.json")
    ]
    (verdict,) = convert("zendesk", paths, policy).vendor_sla.to_dicts()
    assert verdict["vendor_met"] is None and verdict["vendor_status"].startswith("apply_sla; policy Enterprise,")
    other = write(tmp_path / "other" / "organizations.json", json.dumps(API_FOLDER["organizations.json"]))
    with pytest.raises(ConversionError, match=r"^no Zendesk export among the inputs \(only organizations\.json\)"):
        convert("zendesk", [other], policy)


# --- zendesk: warehouse schema (real dbt_zendesk seeds) -------------------------------------------------------------


def test_zendesk_warehouse_seeds(policy):
    seeds = real("tickets/zendesk_schema_seeds")
    files = sorted(seeds.glob("*.csv"))
    conversion = convert("zendesk", files, policy, mapping=ZENDESK_GROUPS)
    assert_accounting(conversion)
    assert conversion.format_version == "zendesk warehouse schema (fivetran dbt_zendesk)"
    assert {r.variant for r in conversion.inputs} >= {"warehouse ticket_data", "warehouse ticket_comment_data"}
    assert any("schedule_data.csv" in note for note in conversion.notes)  # recognised, not read
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert len(tickets) == 8  # 10 rows, two deleted tickets
    assert {
        r["reason"] for r in conversion.quarantine.filter(pl.col("source_file") == "ticket_data.csv").to_dicts()
    } == {"status deleted: the ticket was deleted in Zendesk"}
    ticket = tickets["11071"]
    assert (ticket["channel"], ticket["created_at"], ticket["status"]) == (
        "technical_support",
        "2020-08-28T18:06:36Z",
        "closed",
    )
    assert ticket["resolved_at"] == "2020-11-14T11:01:27Z"  # the change to solved in the field history
    assert ticket["priority"] == "urgent"  # vendor column kept
    events = conversion.tables["ticket_events"].filter(pl.col("ticket_id") == "11071")
    assert events.get_column("new_status").to_list() == [
        "open",
        "pending",
        "on_hold",
        "pending",
        "open",
        "pending",
        "on_hold",
        "open",
        "on_hold",
        "pending",
        "open",
        "solved",
        "closed",
    ]
    assert set(events.get_column("event_type")) == {"status_change"}
    # Comments belong to tickets absent from ticket_data: who wrote them cannot be told, so none is guessed.
    comment_reasons = conversion.quarantine.filter(pl.col("source_file") == "ticket_comment_data.csv")
    assert comment_reasons.height == 20 and set(comment_reasons.get_column("reason_code")) == {"orphan_record"}
    # Policy 1002 (calendar hours) applied at creation; the ticket's priority was then "normal": 960 minutes.
    assert verdicts(conversion) == {
        ("11071", "first_response"): {
            "record_id": "11071",
            "source": "tickets",
            "metric": "first_response",
            "vendor_due_at": "2020-08-29T10:06:36Z",
            "vendor_met": None,
            "vendor_status": "policy 1002 first_reply_time normal: 960 min, calendar hours",
            "vendor_field": "ticket_sla_policy_data + sla_policy_metric_history_data",
        }
    }


def test_zendesk_warehouse_comments_become_replies_and_first_response(tmp_path, policy):
    tickets = write(
        tmp_path / "ticket_data.csv",
        "id,created_at,via_channel,status,group_id,requester_id,priority\n"
        "1,2020-01-01 10:00:00,email,solved,360006965034,55,normal\n",
    )
    comments = write(
        tmp_path / "ticket_comment_data.csv",
        "id,created,public,ticket_id,user_id,body\n"
        "1,2020-01-01 10:00:00,TRUE,1,55,help\n"
        "2,2020-01-01 10:20:00,FALSE,1,77,note\n"
        "3,2020-01-01 11:00:00,TRUE,1,77,answer\n"
        "4,2020-01-01 12:00:00,maybe,1,77,odd\n",
    )
    conversion = convert("zendesk", [tickets, comments], policy, mapping=ZENDESK_GROUPS)
    assert_accounting(conversion)
    events = conversion.tables["ticket_events"].sort("occurred_at")
    assert events.select("event_type", "actor").rows() == [
        ("requester_reply", "requester"),
        ("internal_note", "agent"),
        ("public_reply", "agent"),
    ]
    assert conversion.tables["tickets"].row(0, named=True)["first_response_at"] == "2020-01-01T11:00:00Z"
    assert reasons(conversion) == {("ticket_comment_data.csv", 5): "bad_boolean"}


# --- jsm ----------------------------------------------------------------------------------------------------------

JSM_ENGLISH = """\
Issue key,Summary,Status,Priority,Created,Updated,Resolved,Custom field (Request Type),Custom field (Time to first response),Custom field (Time to resolution),Labels
SD-1,Printer,Resolved,High,18/Jul/26 9:10 AM,18/Jul/26 3:00 PM,18/Jul/26 2:45 PM,Technical support,0:45,-1:30,hardware
SD-2,VPN,Waiting for customer,Low,18/Jul/26 21:10,18/Jul/26 21:30,,Technical support,-0:15,3:00,
SD-3,Bad date,Open,Low,31/Foo/26 9:10 AM,,,Technical support,,,
SD-4,Bad SLA,Open,Low,18/Jul/26 9:10 AM,,,Technical support,soon,,
SD-5,Not started,Open,Low,2026-07-19T08:00:00+02:00,,,Billing,,,
"""
JSM_FRENCH = """\
Clé de ticket,Résumé,État,Priorité,Création,Mise à jour,Résolue,Champ personnalisé (Type de demande),Champ personnalisé (Délai de première réponse),Champ personnalisé (Délai de résolution)
SD-10,Imprimante,Résolu,Haute,18/juil./26 09:10,18/juil./26 15:00,18/juil./26 14:45,Support technique,0:45,-1:30
SD-11,Facture,Ouvert,Basse,3/déc./26 17:05,3/déc./26 17:30,,Facturation,,
SD-12,Date fausse,Ouvert,Basse,3/xyz./26 17:05,,,Facturation,,
"""


def test_jsm_english_dates_sla_cells_and_quarantine(tmp_path, policy):
    path = write(tmp_path / "jira.csv", JSM_ENGLISH)
    conversion = convert("jsm", [path], policy)
    assert_accounting(conversion)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert (tickets["SD-1"]["created_at"], tickets["SD-1"]["resolved_at"]) == (
        "2026-07-18T09:10:00",
        "2026-07-18T14:45:00",
    )
    assert tickets["SD-2"]["created_at"] == "2026-07-18T21:10:00"  # 24-hour form
    assert tickets["SD-5"]["created_at"] == "2026-07-19T06:00:00Z"  # ISO with an offset
    assert (tickets["SD-1"]["status"], tickets["SD-2"]["status"]) == ("solved", "pending")
    assert (tickets["SD-1"]["channel"], tickets["SD-5"]["channel"]) == ("technical_support", "account_billing")
    assert (tickets["SD-1"]["Labels"], tickets["SD-1"]["Priority"]) == ("hardware", "High")
    assert reasons(conversion) == {("jira.csv", 4): "bad_timestamp", ("jira.csv", 5): "bad_number"}
    sla = verdicts(conversion)
    assert (sla[("SD-1", "first_response")]["vendor_met"], sla[("SD-1", "first_response")]["vendor_status"]) == (
        "true",
        "0:45",
    )
    assert (sla[("SD-1", "resolution")]["vendor_met"], sla[("SD-1", "resolution")]["vendor_status"]) == (
        "false",
        "-1:30",
    )
    assert sla[("SD-2", "first_response")]["vendor_met"] == "false"
    assert sla[("SD-2", "resolution")]["vendor_met"] is None  # 3 h left on an open ticket: no verdict yet
    assert sla[("SD-1", "resolution")]["vendor_field"] == "Custom field (Time to resolution)"
    assert len(sla) == 4


def test_jsm_french_headers_months_and_timezone(tmp_path, policy):
    path = write(tmp_path / "jira_fr.csv", JSM_FRENCH, bom=True)
    mapping = write(
        tmp_path / "fr.yaml",
        'values:\n  channel: {"Support technique": technical_support, Facturation: account_billing}\n',
    )
    conversion = convert("jsm", [path], policy, mapping=mapping, timezone="Europe/Paris")
    assert_accounting(conversion)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert tickets["SD-10"]["created_at"] == "2026-07-18T07:10:00Z"  # CEST
    assert tickets["SD-10"]["resolved_at"] == "2026-07-18T12:45:00Z"
    assert tickets["SD-11"]["created_at"] == "2026-12-03T16:05:00Z"  # CET
    assert (tickets["SD-10"]["status"], tickets["SD-11"]["status"]) == ("solved", "open")
    assert (tickets["SD-10"]["channel"], tickets["SD-11"]["channel"]) == ("technical_support", "account_billing")
    assert tickets["SD-10"]["subject"] == "Imprimante"
    assert reasons(conversion) == {("jira_fr.csv", 4): "bad_timestamp"}
    assert verdicts(conversion)[("SD-10", "resolution")]["vendor_met"] == "false"


def test_jsm_without_key_columns_is_refused(tmp_path, policy):
    path = write(tmp_path / "x.csv", "Résumé,État\nA,B\n")
    with pytest.raises(ConversionError, match=r"^x\.csv: not a Jira Service Management CSV"):
        convert("jsm", [path], policy)


# --- freshdesk ----------------------------------------------------------------------------------------------------

FRESHDESK = """\
Ticket ID,Subject,Status,Priority,Source,Type,Group,Created time,Due by Time,Resolved time,Closed time,Initial response time,First response time (in hrs),Resolution time (in hrs),Resolution status,First response status,Agent
1,Login,Resolved,High,Email,Question,Technical support,2026-07-18 09:10:00,2026-07-19 09:10:00,2026-07-18 15:00:00,,2026-07-18 09:40:00,0.5,5.83,Within SLA,Within SLA,Ana
2,Refund,Closed,Low,Portal,Refund,Billing,2026-07-18 10:00:00,2026-07-18 18:00:00,,2026-07-19 12:00:00,2026-07-18 16:00:00,6,26,SLA Violated,SLA Violated,Bo
3,Bad date,Open,Low,Email,Question,Billing,2026-07-18 25:00:00,,,,,,,,,Cy
4,Bad hours,Open,Low,Email,Question,Billing,2026-07-18 10:00:00,,,,,two,,,,Cy
2,Same id,Open,Low,Email,Question,Billing,2026-07-18 10:00:00,,,,,,,,,Cy
,No id,Open,Low,Email,Question,Billing,2026-07-18 10:00:00,,,,,,,,,Cy
5,Third party,Waiting on Third Party,Low,Phone,,,2026-07-18 10:00:00,bad due,,,,,,,,Cy
6,Open,Waiting on Customer,Low,Phone,,Sales inquiries,2026-07-18 10:00:00,,,,,,,,,Cy
"""


def test_freshdesk_export_tickets_verdicts_and_quarantine(tmp_path, policy):
    path = write(tmp_path / "freshdesk.csv", FRESHDESK)
    conversion = convert("freshdesk", [path], policy, timezone="Asia/Kolkata")
    assert_accounting(conversion)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert set(tickets) == {"1", "2", "6"}
    one = tickets["1"]
    assert (one["created_at"], one["first_response_at"], one["resolved_at"]) == (
        "2026-07-18T03:40:00Z",
        "2026-07-18T04:10:00Z",
        "2026-07-18T09:30:00Z",
    )  # IST is UTC+05:30
    assert (one["channel"], one["status"], one["Agent"], one["Priority"]) == (
        "technical_support",
        "solved",
        "Ana",
        "High",
    )
    assert tickets["2"]["resolved_at"] == "2026-07-19T06:30:00Z"  # no Resolved time: the Closed time
    assert (tickets["2"]["channel"], tickets["6"]["channel"], tickets["6"]["status"]) == (
        "account_billing",
        "sales",
        "pending",
    )
    assert reasons(conversion) == {
        ("freshdesk.csv", 4): "bad_timestamp",
        ("freshdesk.csv", 5): "bad_number",
        ("freshdesk.csv", 6): "duplicate_id",
        ("freshdesk.csv", 7): "missing_value",
        ("freshdesk.csv", 8): "bad_timestamp",  # the vendor's due time is unreadable
    }
    sla = verdicts(conversion)
    assert sla[("1", "first_response")] == {
        "record_id": "1",
        "source": "tickets",
        "metric": "first_response",
        "vendor_due_at": None,
        "vendor_met": "true",
        "vendor_status": "Within SLA",
        "vendor_field": "First response status",
    }
    assert (sla[("2", "resolution")]["vendor_met"], sla[("2", "resolution")]["vendor_due_at"]) == (
        "false",
        "2026-07-18T12:30:00Z",
    )
    assert ("6", "resolution") not in sla  # neither a verdict nor a due time
    assert len(sla) == 4


# --- the mapping format -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source: tickets_v2\ncolumns: {ticket_id: Id}\n", r"source: unknown source 'tickets_v2'"),
        (
            "source: privacy_requests\ncolumns: {request_id: A, recieved_at: B}\n",
            r"columns\.recieved_at: unknown contract column",
        ),
        (
            "source: privacy_requests\ncolumns: {request_id: A, received_at: B}\n",
            r"columns: required contract column request_type",
        ),
        (
            "source: privacy_requests\ncolumns: {request_id: A, received_at: B, request_type: C}\ntimezone: Mars/Olympus\n",
            r"timezone: 'Mars/Olympus'",
        ),
        (
            "source: privacy_requests\ncolumns: {request_id: A, received_at: B}\nconstants: {request_type: access, received_at: x}\n",
            r"constants\.received_at: is also mapped",
        ),
        (
            "source: privacy_requests\ncolumns: {request_id: A, received_at: B, request_type: C}\ntimestamp_formats: [mm/dd/yyyy]\n",
            r"timestamp_formats: 'mm/dd/yyyy' is not a chrono format",
        ),
        (
            "source: tickets\ncolumns: {ticket_id: A, channel: B, created_at: C}\nvendor_sla: {speed: {verdict: X}}\n",
            r"vendor_sla\.speed: unknown metric",
        ),
        (
            "source: tickets\ncolumns: {ticket_id: A, channel: B, created_at: C}\nvalues: {colour: {red: blue}}\n",
            r"values\.colour: not a contract column",
        ),
        ("source: tickets\nextra: 1\n", r"extra: unknown key"),
        ("source: [unclosed\n", r"not valid YAML"),
    ],
)
def test_mapping_file_problems_are_one_line_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path / "broken.yaml", text)
    with pytest.raises(ConversionError) as error:
        load_mapping(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert re.search(expected, message), message


def test_mapping_missing_header_names_csv_and_mapping_key(tmp_path, policy):
    mapping = write(
        tmp_path / "m.yaml",
        "source: privacy_requests\ncolumns: {request_id: Ref, received_at: Opened}\nconstants: {request_type: erasure}\n",
    )
    data = write(tmp_path / "log.csv", "Ref,Opened on\nR1,2026-01-01\n")
    with pytest.raises(
        ConversionError, match=r"^log\.csv: no column 'Opened' \(named by .*m\.yaml: columns\.received_at\)$"
    ):
        convert("mapping", [data], policy, mapping=mapping)


def test_mapping_values_constants_vendor_sla_and_unknown_columns(tmp_path, policy):
    mapping = write(
        tmp_path / "crm.yaml",
        """\
source: tickets
columns: {ticket_id: Case, channel: [Queue, Origin], created_at: Opened, resolved_at: Closed, status: State}
timestamp_formats: ["%m/%d/%Y %I:%M:%S %p", "%Y-%m-%d %H:%M:%S"]
timezone: America/Chicago
values:
  channel: {"Queue A": technical_support, phone: sales}
  status: {Done: solved, "In work": open}
constants: {plan: plan_2}
vendor_sla:
  resolution: {verdict: OnTime, met: [ONTIME], breached: [OVERDUE], due: Target}
""",
    )
    data = write(
        tmp_path / "cases.csv",
        """\
Case,Queue,Origin,Opened,Closed,State,OnTime,Target,Neighbourhood
C1,Queue A,Web,07/01/2026 09:00:00 AM,07/01/2026 05:30:00 PM,Done,ONTIME,07/02/2026 09:00:00 AM,North
C2,,Phone,2026-07-01 10:00:00,,In work,OVERDUE,2026-07-01 12:00:00,South
C3,Queue A,Web,07/01/2026 13:00:00 PM,,In work,,,East
C1,Queue A,Web,07/01/2026 09:00:00 AM,,Done,,,North
""",
    )
    conversion = convert("mapping", [data], policy, mapping=mapping)
    assert_accounting(conversion)
    tickets = rows(conversion.tables["tickets"], "ticket_id")
    assert (tickets["C1"]["created_at"], tickets["C1"]["resolved_at"]) == (
        "2026-07-01T14:00:00Z",
        "2026-07-01T22:30:00Z",
    )
    assert (tickets["C1"]["channel"], tickets["C1"]["status"], tickets["C1"]["plan"]) == (
        "technical_support",
        "solved",
        "plan_2",
    )
    assert (tickets["C2"]["channel"], tickets["C2"]["status"]) == ("sales", "open")
    assert tickets["C1"]["Neighbourhood"] == "North"
    assert reasons(conversion) == {("cases.csv", 4): "bad_timestamp", ("cases.csv", 5): "duplicate_id"}
    sla = verdicts(conversion)
    assert (sla[("C1", "resolution")]["vendor_met"], sla[("C1", "resolution")]["vendor_due_at"]) == (
        "true",
        "2026-07-02T14:00:00Z",
    )
    assert (sla[("C2", "resolution")]["vendor_met"], sla[("C2", "resolution")]["vendor_status"]) == ("false", "OVERDUE")


def test_value_override_helpers(tmp_path):
    path = write(
        tmp_path / "v.yaml", 'values:\n  channel: {"Tier 1": technical_support}\n  new_status: {Hold: on_hold}\n'
    )
    overrides = load_value_overrides(path)
    assert overrides == {"channel": {"tier 1": "technical_support"}, "new_status": {"hold": "on_hold"}}
    frame = pl.DataFrame({"group": [" TIER 1 ", "Tier 2", None], "new_status": ["hold", "open", None]})
    result = apply_value_overrides(frame, overrides, columns={"channel": "group"})
    assert result.get_column("group").to_list() == ["technical_support", "Tier 2", None]
    assert result.get_column("new_status").to_list() == ["on_hold", "open", None]


def test_doj_foia_log_through_the_example_mapping(tmp_path, policy):
    log = real("requests/doj_foia_2017_request_log.csv")
    conversion = convert("mapping", [log], policy, mapping=FOIA_MAPPING)
    assert_accounting(conversion)
    with log.open(newline="", encoding="utf-8") as handle:
        raw = list(csv.DictReader(handle))
    assert conversion.inputs[0].rows_read == len(raw) and conversion.quarantine.height == 0
    requests = rows(conversion.tables["privacy_requests"], "request_id")
    first = requests["DOJ-2017-005712"]
    assert (first["received_at"], first["completed_at"]) == (
        "2017-07-03T04:00:00Z",
        "2017-08-01T04:00:00Z",
    )  # EDT midnight
    assert (first["request_type"], first["status"], first["Sub-Office"]) == (
        "access",
        "Full grant",
        "Office of Information Policy",
    )
    assert requests["DOJ-2017-000676"]["received_at"] == "2016-11-08T05:00:00Z"  # EST midnight


def test_doj_foia_log_runs_end_to_end(tmp_path, capsys):
    from pipelines.cli import main

    log = real("requests/doj_foia_2017_request_log.csv")
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--format",
            "mapping",
            "--mapping",
            str(FOIA_MAPPING),
            "--exports",
            str(log),
            "--out",
            str(out),
            "--as-of",
            "2017-09-01T00:00:00Z",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with (out / "evidence" / "verdicts.csv").open(newline="", encoding="utf-8") as handle:
        privacy = {row["rule_id"]: row for row in csv.DictReader(handle) if row["domain"] == "privacy"}
    # Independent count: completed within 30 x 24 h of receipt, both dates read as New York midnights.
    with log.open(newline="", encoding="utf-8") as handle:
        zone = ZoneInfo("America/New_York")
        day = lambda text: datetime.strptime(text, "%m/%d/%Y").replace(tzinfo=zone)  # noqa: E731
        on_time = sum(
            day(r["Closed Date"]) - day(r["Submitted Date"]) <= timedelta(days=30) for r in csv.DictReader(handle)
        )
    complete = privacy["PRIV-COMPLETE"]
    assert (int(complete["achieved"]), int(complete["breached"])) == (on_time, 244 - on_time)
    assert complete["verdict"] == "breached"
    manifest = json.loads((out / "manifest.json").read_text())
    assert any(i.get("file") == "privacy_requests.csv" and i.get("rows_read") == 244 for i in manifest["inputs"])


def test_written_conversion_is_readable_by_the_run(tmp_path, policy):
    path = write(tmp_path / "freshdesk.csv", FRESHDESK)
    written = write_conversion(convert("freshdesk", [path], policy), tmp_path / "out")
    names = {p.name for p in written}
    assert {"tickets.csv", "vendor_sla.csv", "conversion_quarantine.csv", "conversion.json"} <= names
    log = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert log["format_version"] == "freshdesk ticket export csv"
    assert log["inputs"][0]["rows_read"] == 8 and log["inputs"][0]["rows_quarantined"] == 5


def test_zendesk_api_comments_without_their_ticket_id_say_why(tmp_path, policy):
    # GET /api/v2/tickets/{ticket_id}/comments returns the comments without their ticket's id
    tickets = write(tmp_path / "tickets.json", json.dumps(API_FOLDER["tickets.json"]))
    comments = write(
        tmp_path / "ticket_comments.json",
        json.dumps({"comments": [{"id": 1, "author_id": 1001, "public": True, "created_at": "2026-07-20T09:00:00Z"}]}),
    )
    conversion = convert("zendesk", [tickets, comments], policy)
    assert_accounting(conversion)
    (row,) = conversion.quarantine.filter(pl.col("source_file") == "ticket_comments.json").to_dicts()
    assert row["reason_code"] == "missing_value"
    assert row["reason"].startswith("ticket_id: missing (GET /tickets/{id}/comments does not repeat it")


def test_zendesk_api_side_loaded_users_and_groups(tmp_path, policy):
    # GET /api/v2/tickets?include=users,groups (developer.zendesk.com, "Side-loading"): the lists beside "tickets"
    document = {
        **API_FOLDER["tickets.json"],
        "users": API_FOLDER["users.json"]["users"],
        "groups": API_FOLDER["groups.json"]["groups"],
    }
    tickets = write(tmp_path / "tickets.json", json.dumps(document))
    comments = write(tmp_path / "ticket_comments.json", json.dumps(API_FOLDER["ticket_comments.json"]))
    conversion = convert("zendesk", [tickets, comments], policy)
    assert [(record.file, record.variant, record.rows_read) for record in conversion.inputs][:2] == [
        ("tickets.json", "api users.json (side-loaded in tickets.json)", 4),
        ("tickets.json", "api groups.json (side-loaded in tickets.json)", 2),
    ]
    by_ticket = rows(conversion.tables["tickets"], "ticket_id")
    assert by_ticket["302"]["channel"] == "account_billing"  # group 56 "Billing", side-loaded
    # comment 5 (by admin 2002) is 302's first: the request; comment 7 by an unlisted author is the reply
    assert by_ticket["302"]["first_response_at"] == "2026-07-20T11:00:00Z"
