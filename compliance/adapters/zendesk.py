"""Zendesk exports → tickets, ticket events and Zendesk's own SLA verdicts, in three layouts.

- the Support CSV export (``Id, Subject, Status, …, Created at, Solved at, First reply time in minutes, …``);
- the API v2 JSON: ``tickets.json`` (``{"tickets": [...]}``) with any of ``ticket_metric_events.json``,
  ``ticket_metrics.json``, ``ticket_comments.json``, ``ticket_audits.json``, ``sla_policies.json``, ``users.json``,
  ``groups.json`` (a folder dump; other files are skipped with a note);
- the warehouse schema Fivetran's dbt_zendesk reads (``ticket_data``, ``ticket_comment_data``,
  ``ticket_field_history_data``, ``ticket_sla_policy_data``, ``sla_policy_metric_history_data``).

The layout is recognised from each file's name and header; one conversion reads one layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from compliance.adapters import ZENDESK_API_FILES, ZENDESK_WAREHOUSE_UNUSED
from compliance.adapters.base import (
    ISO_FORMATS,
    Adapter,
    AdapterOptions,
    Check,
    Conversion,
    ConversionError,
    bad_timestamp,
    empty_quarantine,
    input_record,
    read_csv_text,
    read_json_document,
    records_frame,
    shift_timestamp_text,
    split_checked,
    timestamp_text,
)
from compliance.adapters.layout import (
    TableLayout,
    concat_vendor_sla,
    convert_csv_files,
    empty_vendor_sla,
    finish_table,
    map_table,
    text,
)
from compliance.adapters.value_overrides import value_overrides

STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "on_hold",
    "on-hold": "on_hold",
    "on_hold": "on_hold",
    "solved": "solved",
    "closed": "closed",
}
CSV_EXPORT = "zendesk support csv export"
API = "zendesk api v2 json"
WAREHOUSE = "zendesk warehouse schema (fivetran dbt_zendesk)"
FIRST_REPLY_MINUTES = "First reply time in minutes"

CSV_LAYOUT = TableLayout(
    source="tickets",
    columns={
        "ticket_id": ("Id",),
        # The group is the support line; the Via channel (Web form, Email, …) when the group says nothing known.
        "channel": ("Group", "Via"),
        "created_at": ("Created at",),
        "resolved_at": ("Solved at",),
        "status": ("Status",),
        "subject": ("Subject",),
        "description": ("Description",),
    },
    timestamp_formats=(*ISO_FORMATS, "%Y-%m-%d %H:%M:%S %z"),
    values={"status": STATUSES},
    numbers=tuple(
        f"{metric}{suffix}"
        for metric in (
            "First reply time in minutes",
            "First resolution time in minutes",
            "Full resolution time in minutes",
            "Agent wait time in minutes",
            "Requester wait time in minutes",
            "On hold time in minutes",
        )
        for suffix in ("", " within business hours")
    )
    + ("On hold time",),
    required_headers=False,
)
API_LAYOUT = TableLayout(
    source="tickets",
    columns={
        "ticket_id": ("id",),
        "channel": ("group_id", "via_channel"),
        "created_at": ("created_at",),
        "status": ("status",),
        "subject": ("subject",),
        "description": ("description",),
    },
    values={"status": STATUSES},
    required_headers=False,
)
# Fivetran writes Zendesk's UTC instants without an offset.
WAREHOUSE_LAYOUT = replace(API_LAYOUT, timezone="UTC")
# Zendesk metric -> the contract's metric; requester wait time (what the requester lives through) is preferred
# over agent work time when a ticket carries targets for both.
METRICS = {
    "reply_time": "first_response",
    "first_reply_time": "first_response",
    "requester_wait_time": "resolution",
    "agent_work_time": "resolution",
}
_RESOLUTION_PREFERENCE = ["requester_wait_time", "agent_work_time"]
# Fivetran's tables, recognised by the columns they must have.
WAREHOUSE_TABLES = {
    "ticket_data": {"id", "created_at", "via_channel", "status"},
    "ticket_comment_data": {"ticket_id", "created", "public", "user_id"},
    "ticket_field_history_data": {"field_name", "ticket_id", "updated", "value"},
    "sla_policy_metric_history_data": {
        "sla_policy_id",
        "metric",
        "target",
        "business_hours",
        "priority",
        "sla_policy_updated_at",
    },
    "ticket_sla_policy_data": {"ticket_id", "sla_policy_id", "policy_applied_at"},
}


@dataclass
class _Input:
    path: Path
    kind: str  # csv_export | tickets_json | metric_events_json | a WAREHOUSE_TABLES name
    frame: pl.DataFrame
    side_loaded: bool = False  # a list side-loaded into another response (users or groups in tickets.json)


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    inputs, unused, skipped = _recognise(paths)
    families = {_family(item.kind) for item in inputs}
    if not families:
        raise ConversionError(
            "no Zendesk export among the inputs (only " + ", ".join(p.name for p in [*unused, *skipped]) + ")"
        )
    if len(families) > 1:
        raise ConversionError(
            "inputs mix Zendesk layouts (" + ", ".join(sorted(families)) + "); convert one layout at a time"
        )
    family = families.pop()
    if family == CSV_EXPORT:
        conversion = _convert_csv_export([item.path for item in inputs], options)
    elif family == API:
        conversion = _convert_api(inputs, options)
    else:
        conversion = _convert_warehouse(inputs, options)
    conversion.notes += [
        f"{path.name}: recognised as a Zendesk warehouse table that the reporter does not need; not read"
        for path in unused
    ]
    conversion.notes += [
        f"{path.name}: skipped, not a Zendesk file this adapter reads (API responses: "
        + ", ".join(f"{key}.json" for key in ZENDESK_API_FILES)
        + ")"
        for path in skipped
    ]
    return conversion


def _family(kind: str) -> str:
    if kind == "csv_export":
        return CSV_EXPORT
    return API if kind.endswith("_json") else WAREHOUSE


def _recognise(paths: list[Path]) -> tuple[list[_Input], list[Path], list[Path]]:
    """(inputs read, warehouse tables recognised but not needed, files of no Zendesk layout this adapter reads).

    A JSON file is an API response recognised by its top-level list (``API_OBJECTS``); one holding none of them,
    and a file that is neither JSON nor CSV, is skipped (the conversion's notes name it). A CSV that is neither the
    Support export nor a warehouse table stops the conversion (a wrong file given as a Zendesk export)."""
    inputs, unused, skipped = [], [], []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".json":
            document = _read_json(path)
            # the response's main list, and the lists side-loaded beside it (?include=users,groups)
            found = [
                (key, kind)
                for key, kind in API_OBJECTS.items()
                if isinstance(document, dict) and isinstance(document.get(key), list)
            ]
            if not found:
                skipped.append(path)
                continue
            for position, (key, kind) in enumerate(found):
                side_loaded = position > 0 and kind in _SIDE_LOADED
                if position == 0 or side_loaded:
                    inputs.append(_Input(path, kind, _API_FRAMES[kind](document[key]), side_loaded))
            continue
        if suffix not in (".csv", ".tsv", ".txt") or path.stem in ZENDESK_WAREHOUSE_UNUSED:
            (unused if path.stem in ZENDESK_WAREHOUSE_UNUSED else skipped).append(path)
            continue
        try:
            frame = read_csv_text(path)
        except ConversionError as error:
            raise ConversionError(f"{path.name}: {error}") from None
        if {"Id", "Created at"} <= set(frame.columns):
            inputs.append(_Input(path, "csv_export", frame))
            continue
        table = next((name for name, needed in WAREHOUSE_TABLES.items() if needed <= set(frame.columns)), None)
        if table is None:
            raise ConversionError(
                f"{path.name}: not a Zendesk export this adapter knows (a CSV export with Id and Created at, "
                f"API responses ({', '.join(f'{key}.json' for key in ZENDESK_API_FILES)}), or a warehouse table: "
                f"{', '.join(WAREHOUSE_TABLES)})"
            )
        inputs.append(_Input(path, table, frame))
    return inputs, unused, skipped


def _read_json(path: Path) -> object:
    try:
        return read_json_document(path)
    except ConversionError as error:
        raise ConversionError(f"{path.name}: {error}") from None


def _zone(options: AdapterOptions) -> str:
    """Where wall-time arithmetic happens: the --timezone, else the zone the run will read wall times in."""
    return options.timezone or (options.policy.source_timezone if options.policy else "UTC")


# --- the CSV export ---------------------------------------------------------------------------------------------


def _convert_csv_export(paths: list[Path], options: AdapterOptions) -> Conversion:
    zone = _zone(options)

    def first_reply(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Check]]:
        if FIRST_REPLY_MINUTES not in frame.columns:
            return frame, []
        minutes = text(FIRST_REPLY_MINUTES).cast(pl.Float64, strict=False)
        # Zendesk counts this one in calendar minutes; "… within business hours" is its business-hours twin.
        return frame.with_columns(
            shift_timestamp_text(pl.col("created_at"), minutes * 60, zone).alias("first_response_at")
        ), []

    converted = convert_csv_files(paths, CSV_LAYOUT, options, CSV_EXPORT, extend=first_reply)
    return Conversion(
        format="zendesk",
        format_version=CSV_EXPORT,
        tables={"tickets": converted.table},
        quarantine=converted.quarantine,
        inputs=converted.inputs,
        vendor_sla=None,
        notes=[
            "channel: Group, else Via, whichever is a channel spelling of the policy or the mapping file",
            f"first_response_at: Created at + {FIRST_REPLY_MINUTES} (calendar minutes; wall times counted in {zone})",
            "resolved_at: Solved at; status: hold/on-hold -> on_hold",
            f"wall times read in {options.timezone}"
            if options.timezone
            else "wall times kept without an offset (read in the policy's source_timezone)",
        ],
    )


# --- the API JSON -----------------------------------------------------------------------------------------------


def _json_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _tickets_frame(tickets: list) -> pl.DataFrame:
    records = []
    for ticket in tickets:
        ticket = ticket if isinstance(ticket, dict) else {}
        record = {key: _json_value(value) for key, value in ticket.items() if key not in ("via", "tags")}
        via = ticket.get("via") if isinstance(ticket.get("via"), dict) else {}
        record["via_channel"] = _json_value(via.get("channel"))
        if isinstance(ticket.get("tags"), list):
            record["tags"] = " ".join(str(tag) for tag in ticket["tags"])
        records.append(record)
    frame = records_frame(records, range(1, len(records) + 1))
    return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("id")) if "id" not in frame.columns else frame


_EVENT_COLUMNS = (
    "id",
    "ticket_id",
    "metric",
    "instance_id",
    "type",
    "time",
    "deleted",
    "sla_target",
    "sla_business_hours",
    "sla_policy",
)


def _metric_events_frame(events: list) -> pl.DataFrame:
    records = []
    for event in events:
        event = event if isinstance(event, dict) else {}
        sla = event.get("sla") if isinstance(event.get("sla"), dict) else {}
        policy = sla.get("policy") if isinstance(sla.get("policy"), dict) else {}
        records.append(
            {
                **{
                    key: _json_value(event.get(key))
                    for key in ("id", "ticket_id", "metric", "instance_id", "type", "time", "deleted")
                },
                "sla_target": _json_value(sla.get("target")),
                "sla_business_hours": _json_value(sla.get("business_hours")),
                "sla_policy": _json_value(policy.get("title") or policy.get("id")),
            }
        )
    return (
        records_frame(records, range(1, len(records) + 1))
        if records
        else pl.DataFrame(schema={**{name: pl.Utf8 for name in _EVENT_COLUMNS}, "source_line": pl.Int64})
    )


def _flat_records(items: list, nested: tuple[str, ...] = ()) -> pl.DataFrame:
    """API objects as text columns; the objects under ``nested`` keys are flattened one level (``key_sub``)."""
    records = []
    for item in items:
        item = item if isinstance(item, dict) else {}
        record = {key: _json_value(value) for key, value in item.items() if key not in nested}
        for key in nested:
            inner = item.get(key) if isinstance(item.get(key), dict) else {}
            record.update({f"{key}_{sub}": _json_value(value) for sub, value in inner.items()})
        records.append(record)
    frame = records_frame(records, range(1, len(records) + 1))
    return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("id")) if "id" not in frame.columns else frame


_METRIC_MINUTES = ("reply_time_in_minutes", "full_resolution_time_in_minutes", "requester_wait_time_in_minutes")


def _ticket_metrics_frame(items: list) -> pl.DataFrame:
    frame = _flat_records(items, _METRIC_MINUTES)
    wanted = ("ticket_id", "solved_at", "reply_time_in_minutes_calendar", "reply_time_in_minutes_business")
    return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(name) for name in wanted if name not in frame.columns)


_AUDIT_COLUMNS = ("ticket_id", "audit_id", "created_at", "author_id", "event", "public", "value")


def _audits_frame(audits: list) -> pl.DataFrame:
    """One row per audit event the adapter reads: each ``Comment``, and each ``Create``/``Change`` of the status
    (Zendesk's audit events; other events, e.g. notifications or other fields' changes, are not records here).
    ``source_line`` is the audit's position in the list."""
    records, lines = [], []
    for position, audit in enumerate(audits, start=1):
        audit = audit if isinstance(audit, dict) else {}
        for event in audit.get("events") or []:
            event = event if isinstance(event, dict) else {}
            kind = event.get("type")
            if kind == "Comment" or (kind in ("Create", "Change") and event.get("field_name") == "status"):
                records.append(
                    {
                        "ticket_id": _json_value(audit.get("ticket_id")),
                        "audit_id": _json_value(audit.get("id")),
                        "created_at": _json_value(audit.get("created_at")),
                        "author_id": _json_value(event.get("author_id", audit.get("author_id"))),
                        "event": "comment" if kind == "Comment" else "status",
                        "public": _json_value(event.get("public")),
                        "value": _json_value(event.get("value")),
                    }
                )
                lines.append(position)
    if not records:
        return pl.DataFrame(schema={**{name: pl.Utf8 for name in _AUDIT_COLUMNS}, "source_line": pl.Int64})
    return records_frame(records, lines)


def _comments_frame(comments: list) -> pl.DataFrame:
    frame = _flat_records(comments)
    return frame.with_columns(
        pl.lit(None, dtype=pl.Utf8).alias(name)
        for name in ("ticket_id", "author_id", "public", "created_at")
        if name not in frame.columns
    )


# Top-level list of an API v2 response -> the kind of input; the file names a folder dump uses, for messages.
API_OBJECTS = {
    "tickets": "tickets_json",
    "ticket_metric_events": "metric_events_json",
    "ticket_metrics": "ticket_metrics_json",
    "comments": "comments_json",
    "audits": "audits_json",
    "sla_policies": "sla_policies_json",
    "users": "users_json",
    "groups": "groups_json",
}
_API_FRAMES = {
    "tickets_json": lambda items: _tickets_frame(items),
    "metric_events_json": lambda items: _metric_events_frame(items),
    "ticket_metrics_json": _ticket_metrics_frame,
    "comments_json": _comments_frame,
    "audits_json": _audits_frame,
    "sla_policies_json": _flat_records,
    "users_json": _flat_records,
    "groups_json": _flat_records,
}
_VARIANTS = {
    "tickets_json": "api tickets.json",
    "metric_events_json": "api ticket_metric_events.json",
    "ticket_metrics_json": "api ticket_metrics.json",
    "comments_json": "api ticket_comments.json",
    "audits_json": "api ticket_audits.json (comment and status events)",
    "sla_policies_json": "api sla_policies.json",
    "users_json": "api users.json",
    "groups_json": "api groups.json",
}
_AGENT_ROLES = ("agent", "admin")
# Lists Zendesk side-loads into a response (developer.zendesk.com, "Side-loading": ?include=users,groups) that are
# read as if they were their own file.
_SIDE_LOADED = ("users_json", "groups_json")


def _reference(items: list[_Input], value: str) -> tuple[pl.DataFrame | None, list, list]:
    """(id -> ``value`` lookup, input records, quarantines) of users, groups or SLA policies; an object without
    an id is quarantined."""
    if not items:
        return None, [], []
    parts, records, quarantines = [], [], []
    for item in items:
        frame = item.frame.with_columns(
            text("id").alias("id"),
            (text(value) if value in item.frame.columns else pl.lit(None, dtype=pl.Utf8)).alias("value"),
        )
        checks = [Check(pl.col("id").is_null(), "missing_value", pl.lit("id: missing required value"))]
        passed, quarantine = split_checked(frame, checks, item.path.name, "id")
        parts.append(passed.select("id", "value"))
        quarantines.append(quarantine)
        variant = _VARIANTS[item.kind] + (f" (side-loaded in {item.path.name})" if item.side_loaded else "")
        records.append(input_record(item.path, frame.height, quarantine.height, variant))
    return pl.concat(parts).unique("id", keep="first", maintain_order=True), records, quarantines


def _checked_ticket_metrics(items: list[_Input], known: pl.Series | None) -> tuple[pl.DataFrame, list, list]:
    """Per ticket: Zendesk's reply time (calendar and business minutes) and solve time from ticket_metrics."""
    parts, records, quarantines = [], [], []
    for item in items:
        frame = item.frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            text("reply_time_in_minutes_calendar").cast(pl.Float64, strict=False).alias("reply_calendar"),
            text("reply_time_in_minutes_business").cast(pl.Float64, strict=False).alias("reply_business"),
            timestamp_text(text("solved_at"), _OFFSET_FORMATS, None).alias("solved_at_ts"),
        )
        checks = [
            Check(pl.col("ticket_id").is_null(), "missing_value", pl.lit("ticket_id: missing required value")),
            *[
                Check(
                    text(name).is_not_null() & (pl.col(short).is_null() | (pl.col(short) < 0)),
                    "bad_number",
                    pl.format("{}: not a number of minutes: {}", pl.lit(name.replace("_in_minutes_", ".")), text(name)),
                )
                for name, short in (
                    ("reply_time_in_minutes_calendar", "reply_calendar"),
                    ("reply_time_in_minutes_business", "reply_business"),
                )
            ],
            bad_timestamp("solved_at", pl.col("solved_at_ts"), "solved_at (with an offset)"),
        ]
        if known is not None:
            checks.append(
                Check(
                    ~pl.col("ticket_id").is_in(known.implode()),
                    "orphan_record",
                    pl.format("ticket {} is not in the tickets file", pl.col("ticket_id")),
                )
            )
        passed, quarantine = split_checked(frame, checks, item.path.name, "ticket_id")
        parts.append(passed.select("ticket_id", "reply_calendar", "reply_business", "solved_at_ts"))
        quarantines.append(quarantine)
        records.append(input_record(item.path, frame.height, quarantine.height, _VARIANTS[item.kind]))
    return pl.concat(parts).unique("ticket_id", keep="first", maintain_order=True), records, quarantines


def _api_ticket_events(
    comment_items: list[_Input],
    audit_items: list[_Input],
    requesters: pl.DataFrame,
    roles: pl.DataFrame | None,
) -> tuple[pl.DataFrame | None, list, list]:
    """ticket_events from comments (ticket_comments.json, and the Comment events of audits) and status changes
    (audits). A public comment is an agent's reply when its author's role (users.json) is agent or admin, or, for an
    author users.json does not list, when the author is not the ticket's requester; the ticket's first comment is
    the request itself (its description), never a reply."""
    spellings = STATUSES
    parts, records, quarantines = [], [], []
    for item in [*comment_items, *audit_items]:
        frame = item.frame
        if "event" not in frame.columns:
            frame = frame.with_columns(pl.lit("comment").alias("event"), pl.lit(None, dtype=pl.Utf8).alias("value"))
        frame = frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            text("author_id").alias("author_id"),
            timestamp_text(text("created_at"), _OFFSET_FORMATS, None).alias("occurred_at"),
            text("public")
            .str.to_lowercase()
            .replace_strict(["true", "false"], [True, False], default=None, return_dtype=pl.Boolean)
            .alias("is_public"),
            text("value").str.to_lowercase().replace_strict(spellings, default=None).alias("new_status"),
        ).join(requesters, on="ticket_id", how="left", maintain_order="left")
        if roles is not None:
            frame = frame.join(
                roles.rename({"id": "author_id", "value": "author_role"}),
                on="author_id",
                how="left",
                maintain_order="left",
            )
        else:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("author_role"))
        comment = pl.col("event") == "comment"
        checks = [
            Check(
                pl.col("ticket_id").is_null(),
                "missing_value",
                pl.lit(
                    "ticket_id: missing (GET /tickets/{id}/comments does not repeat it: the dump must add it to "
                    "each comment)"
                ),
            ),
            Check(text("created_at").is_null(), "missing_value", pl.lit("created_at: missing required value")),
            bad_timestamp("created_at", pl.col("occurred_at"), "created_at (with an offset)"),
            Check(
                comment & pl.col("is_public").is_null(),
                "bad_boolean",
                pl.format("public: not a boolean (true/false): {}", pl.col("public")),
            ),
            Check(
                ~comment & pl.col("new_status").is_null(),
                "unknown_value",
                pl.format("status: unknown value {}", pl.col("value")),
            ),
            Check(
                pl.col("known").is_null(),
                "orphan_record",
                pl.format("ticket {} is not in the tickets file", pl.col("ticket_id")),
            ),
        ]
        passed, quarantine = split_checked(frame, checks, item.path.name, "ticket_id")
        parts.append(passed)
        quarantines.append(quarantine)
        records.append(input_record(item.path, frame.height, quarantine.height, _VARIANTS[item.kind]))
    if not parts:
        return None, records, quarantines
    rows = pl.concat(parts, how="diagonal_relaxed").with_columns(_utc(pl.col("occurred_at")).alias("at"))
    rows = rows.sort("ticket_id", "at", "source_line", maintain_order=True)
    comment = pl.col("event") == "comment"
    first_comment = comment & (pl.int_range(pl.len()).over("ticket_id", comment) == 0)
    by_requester = (pl.col("author_id") == pl.col("requester_id")) | (pl.col("author_role") == "end-user")
    agent = pl.col("author_role").is_in(_AGENT_ROLES) | (
        pl.col("author_role").is_null() & ~by_requester.fill_null(False)
    )
    events = rows.filter(~(first_comment & ~by_requester.fill_null(False))).select(
        "ticket_id",
        "occurred_at",
        pl.when(~comment)
        .then(pl.lit("status_change"))
        .when(~pl.col("is_public"))
        .then(pl.lit("internal_note"))
        .when(agent & ~first_comment)
        .then(pl.lit("public_reply"))
        .otherwise(pl.lit("requester_reply"))
        .alias("event_type"),
        pl.when(~comment)
        .then(pl.lit(None, dtype=pl.Utf8))
        .when(agent | ~pl.col("is_public"))
        .then(pl.lit("agent"))
        .otherwise(pl.lit("requester"))
        .alias("actor"),
        pl.when(~comment).then(pl.col("new_status")).alias("new_status"),
        pl.col("author_id").alias("author_id"),
    )
    return events, records, quarantines


def _convert_api(inputs: list[_Input], options: AdapterOptions) -> Conversion:
    overrides = value_overrides(options)

    def of(kind: str) -> list[_Input]:
        return [item for item in inputs if item.kind == kind]

    records, quarantines, tables = [], [], {}
    roles, found, bad = _reference(of("users_json"), "role")
    records, quarantines = records + found, quarantines + bad
    groups, found, bad = _reference(of("groups_json"), "name")
    records, quarantines = records + found, quarantines + bad
    policies, found, bad = _reference(of("sla_policies_json"), "title")
    records, quarantines = records + found, quarantines + bad

    layout = API_LAYOUT
    if groups is not None:
        layout = replace(
            API_LAYOUT, columns={**API_LAYOUT.columns, "channel": ("group_name", "group_id", "via_channel")}
        )
    mapped = []
    for item in of("tickets_json"):
        frame = item.frame
        if groups is not None and "group_id" in frame.columns:
            frame = frame.join(
                groups.rename({"id": "group_id", "value": "group_name"}),
                on="group_id",
                how="left",
                maintain_order="left",
            )
        mapped.append((item, *map_table(frame, layout, item.path.name, options, overrides)))
    known = pl.concat([frame.get_column("ticket_id") for _, frame, _ in mapped]) if mapped else None
    requesters = pl.concat(
        [
            item.frame.select(
                text("id").alias("ticket_id"),
                (text("requester_id") if "requester_id" in item.frame.columns else pl.lit(None, pl.Utf8)).alias(
                    "requester_id"
                ),
                pl.lit(True).alias("known"),
            )
            for item, _, _ in mapped
        ]
        or [pl.DataFrame(schema={"ticket_id": pl.Utf8, "requester_id": pl.Utf8, "known": pl.Boolean})]
    ).unique("ticket_id", keep="first", maintain_order=True)

    events = None
    if of("metric_events_json"):
        events, event_quarantine, event_records = _checked_metric_events(of("metric_events_json"), known)
        quarantines.append(event_quarantine)
        records += event_records
    metrics = None
    if of("ticket_metrics_json"):
        metrics, found, bad = _checked_ticket_metrics(of("ticket_metrics_json"), known)
        records, quarantines = records + found, quarantines + bad
    ticket_events, found, bad = _api_ticket_events(of("comments_json"), of("audits_json"), requesters, roles)
    records, quarantines = records + found, quarantines + bad
    if ticket_events is not None:
        tables["ticket_events"] = ticket_events

    # Each time from the most direct source the folder holds: Zendesk's SLA events, then ticket_metrics, then
    # the comments and status changes themselves.
    first_response_sources, resolved_sources = [], []
    times = requesters.select("ticket_id")
    if events is not None:
        times = times.join(_times_from_metric_events(events), on="ticket_id", how="left")
        times = times.rename({"first_response_at": "fr_events", "resolved_at": "res_events"})
        first_response_sources.append("fr_events")
        resolved_sources.append("res_events")
    if metrics is not None:
        times = times.join(metrics, on="ticket_id", how="left")
        resolved_sources.append("solved_at_ts")
    if ticket_events is not None:
        ordered = ticket_events.with_columns(_utc(pl.col("occurred_at")).alias("at")).sort("at")
        from_events = ordered.group_by("ticket_id").agg(
            pl.col("occurred_at").filter(pl.col("event_type") == "public_reply").first().alias("fr_comments"),
            pl.col("occurred_at").filter(pl.col("new_status") == "solved").last().alias("res_audits"),
        )
        times = times.join(from_events, on="ticket_id", how="left")
        if of("comments_json") or not ticket_events.filter(pl.col("event_type") != "status_change").is_empty():
            first_response_sources.append("fr_comments")
        if of("audits_json"):
            resolved_sources.append("res_audits")

    earlier, parts = None, []
    for item, frame, checks in mapped:
        frame = frame.join(times, on="ticket_id", how="left", maintain_order="left")
        reply_from_metrics = (
            [shift_timestamp_text(pl.col("created_at"), pl.col("reply_calendar") * 60, "UTC")]
            if metrics is not None
            else []
        )
        solved = pl.col("status").is_in(["solved", "closed"])
        additions = []
        if first_response_sources or reply_from_metrics:
            fr = [pl.col(first_response_sources[0])] if "fr_events" in first_response_sources else []
            fr += reply_from_metrics + [pl.col(name) for name in first_response_sources if name != "fr_events"]
            additions.append(pl.coalesce(fr).alias("first_response_at"))
        if resolved_sources:
            additions.append(pl.when(solved).then(pl.coalesce(resolved_sources)).alias("resolved_at"))
        frame = frame.with_columns(additions).drop(
            [name for name in times.columns if name != "ticket_id" and name in frame.columns]
        )
        passed, quarantine = finish_table(frame, checks, "tickets", item.path.name, earlier)
        earlier = (
            passed.get_column("ticket_id") if earlier is None else pl.concat([earlier, passed.get_column("ticket_id")])
        )
        parts.append(passed)
        quarantines.append(quarantine)
        records.append(input_record(item.path, item.frame.height, quarantine.height, _VARIANTS[item.kind]))
    if parts:
        tables["tickets"] = pl.concat(parts, how="diagonal_relaxed")

    vendor_sla = None
    if events is not None:
        vendor_sla = _metric_event_verdicts(events, policies)
        if metrics is not None:  # a verdict from ticket_metrics replaces the events' row without one
            decided = _ticket_metric_verdicts(events, metrics, vendor_sla)
            vendor_sla = concat_vendor_sla(
                [
                    vendor_sla.join(decided.select("record_id", "metric"), on=["record_id", "metric"], how="anti"),
                    decided,
                ]
            )
    return Conversion(
        format="zendesk",
        format_version=API,
        tables=tables,
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=records,
        vendor_sla=vendor_sla,
        notes=_api_notes(of, events is not None, metrics is not None, ticket_events is not None),
    )


def _ticket_metric_verdicts(events: pl.DataFrame, metrics: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """First-reply verdicts from ticket_metrics where the metric events apply a reply-time target but state no
    verdict (no fulfil or breach event): Zendesk's reply time (business minutes for a business-hours target,
    else calendar minutes) against the target."""
    undecided = verdicts.filter((pl.col("metric") == "first_response") & pl.col("vendor_met").is_null()).select(
        pl.col("record_id").alias("ticket_id")
    )
    targets = (
        events.filter(
            (pl.col("type") == "apply_sla")
            & pl.col("metric").is_in(["reply_time", "first_reply_time"])
            & (text("instance_id") == "1")
        )
        .group_by("ticket_id")
        .agg(
            pl.col("sla_target").last().cast(pl.Float64, strict=False).alias("target"),
            pl.col("sla_business_hours").last().str.to_lowercase().alias("business_hours"),
        )
    )
    business = pl.col("business_hours") == "true"
    minutes = pl.when(business).then(pl.col("reply_business")).otherwise(pl.col("reply_calendar"))
    rows = (
        undecided.join(targets, on="ticket_id")
        .join(metrics, on="ticket_id")
        .filter(minutes.is_not_null() & pl.col("target").is_not_null())
    )
    return rows.select(
        pl.col("ticket_id").alias("record_id"),
        pl.lit("tickets").alias("source"),
        pl.lit("first_response").alias("metric"),
        pl.lit(None, dtype=pl.Utf8).alias("vendor_due_at"),
        pl.when(minutes <= pl.col("target")).then(pl.lit("true")).otherwise(pl.lit("false")).alias("vendor_met"),
        pl.format(
            "reply time {} min ({}) against the target {} min",
            minutes.cast(pl.Int64).cast(pl.Utf8),
            pl.when(business).then(pl.lit("business hours")).otherwise(pl.lit("calendar hours")),
            pl.col("target").cast(pl.Int64).cast(pl.Utf8),
        ).alias("vendor_status"),
        pl.when(business)
        .then(pl.lit("ticket_metrics reply_time_in_minutes.business"))
        .otherwise(pl.lit("ticket_metrics reply_time_in_minutes.calendar"))
        .alias("vendor_field"),
    )


def _api_notes(of, has_events: bool, has_metrics: bool, has_ticket_events: bool) -> list[str]:
    notes = [
        "channel: group_id, else via.channel, whichever is a channel spelling of the policy or the mapping file "
        "(group ids need a --mapping file with a values: channel: section)"
        if not of("groups_json")
        else "channel: the group's name (groups.json), else group_id, else via.channel, whichever is a channel "
        "spelling of the policy or the mapping file",
        "line numbers of JSON records are their positions in the list (1 = first; for audits, the audit's)",
    ]
    if has_events:
        notes += [
            "first_response_at: the reply_time fulfill event of instance 1; resolved_at: the requester_wait_time "
            "(else agent_work_time) fulfill event, for solved and closed tickets",
            "vendor verdicts: a breach event (not deleted) before any fulfill -> not met; a fulfill without one -> met; "
            "requester_wait_time is preferred over agent_work_time for the resolution metric",
            "vendor due time: the breach event's time, else activate + SLA target for calendar-hours targets that "
            "never paused; business-hours targets without a breach event have no due time (schedules are not read)",
            "metrics pausable_update_time, periodic_update_time and group SLAs have no contract metric: their events are not used",
        ]
    if has_metrics:
        notes += [
            "ticket_metrics: first_response_at = created_at + reply_time_in_minutes.calendar (where no fulfill event "
            "gives it); resolved_at = solved_at, for solved and closed tickets",
            "ticket_metrics verdicts: where a reply-time SLA applies (apply_sla event) without a fulfill or breach "
            "event, reply_time_in_minutes (business minutes for a business-hours target) <= the target is met; "
            "without metric events ticket_metrics gives times, no verdicts (a target needs the applied policy)",
        ]
    if has_ticket_events:
        notes += [
            "comments: private -> internal_note; public by an author whose role (users.json) is agent or admin -> "
            "public_reply (agent), by an end-user -> requester_reply; an author users.json does not list is the "
            "requester when it is the ticket's requester_id, else an agent; a ticket's first comment is the request "
            "itself, never a reply",
            "audits: each Comment event as a comment; each Create or Change of the status as a status_change",
        ]
    if of("sla_policies_json"):
        notes.append("sla_policies.json: the policies' titles name the policy of each SLA verdict")
    return notes


_EVENT_TYPES = ("activate", "pause", "fulfill", "apply_sla", "apply_group_sla", "breach", "update_status", "measure")
_OFFSET_FORMATS = tuple(f for f in ISO_FORMATS if "%#z" in f)


def _utc(text_expr: pl.Expr) -> pl.Expr:
    """Canonical UTC text (``…Z``) as a datetime, for ordering and arithmetic."""
    return text_expr.str.replace(r"Z$", "+00:00").str.strptime(
        pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False
    )


def _checked_metric_events(
    event_inputs: list[_Input], known_tickets: pl.Series | None
) -> tuple[pl.DataFrame, pl.DataFrame, list]:
    """Metric events that can be used (time read, ticket known, metric with a contract meaning), and the others."""
    parts, quarantines, records = [], [], []
    for item in event_inputs:
        frame = item.frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            timestamp_text(text("time"), _OFFSET_FORMATS, None).alias("time_at"),
            pl.col("type").str.strip_chars().str.to_lowercase().alias("type"),
            pl.col("metric").str.strip_chars().str.to_lowercase().alias("metric"),
        )
        checks = [
            Check(pl.col("ticket_id").is_null(), "missing_value", pl.lit("ticket_id: missing required value")),
            Check(text("time").is_null(), "missing_value", pl.lit("time: missing required value")),
            bad_timestamp("time", pl.col("time_at"), "time (with an offset)"),
            Check(
                ~pl.col("type").is_in(_EVENT_TYPES),
                "unknown_value",
                pl.format("type: unknown value {}", pl.col("type")),
            ),
            Check(
                (pl.col("type") == "apply_sla")
                & text("sla_target").is_not_null()
                & text("sla_target").cast(pl.Float64, strict=False).is_null(),
                "bad_number",
                pl.format("sla.target: not a number of minutes: {}", pl.col("sla_target")),
            ),
            Check(
                ~pl.col("metric").is_in(list(METRICS)) | (pl.col("type") == "apply_group_sla"),
                "not_used",
                pl.format("metric {} ({}): no contract metric", pl.col("metric"), pl.col("type")),
            ),
        ]
        if known_tickets is not None:
            checks.append(
                Check(
                    ~pl.col("ticket_id").is_in(known_tickets.implode()),
                    "orphan_record",
                    pl.format("ticket {} is not in the tickets file", pl.col("ticket_id")),
                )
            )
        passed, quarantine = split_checked(frame, checks, item.path.name, "ticket_id")
        parts.append(passed)
        quarantines.append(quarantine)
        records.append(input_record(item.path, frame.height, quarantine.height, "api ticket_metric_events.json"))
    events = (
        pl.concat(parts, how="diagonal_relaxed")
        .with_columns(_utc(pl.col("time_at")).alias("at"))
        .sort("at", "source_line")
    )
    return events, pl.concat(quarantines), records


def _times_from_metric_events(events: pl.DataFrame) -> pl.DataFrame:
    fulfil = pl.col("type") == "fulfill"
    return events.group_by("ticket_id").agg(
        pl.col("time_at")
        .filter(fulfil & (pl.col("metric") == "reply_time") & (text("instance_id") == "1"))
        .first()
        .alias("first_response_at"),
        pl.coalesce(
            pl.col("time_at").filter(fulfil & (pl.col("metric") == "requester_wait_time")).last(),
            pl.col("time_at").filter(fulfil & (pl.col("metric") == "agent_work_time")).last(),
        ).alias("resolved_at"),
    )


def _metric_event_verdicts(events: pl.DataFrame, policies: pl.DataFrame | None = None) -> pl.DataFrame:
    """One vendor verdict per ticket and contract metric from Zendesk's SLA events (instance 1 of each metric);
    ``policies`` (sla_policies.json: id -> title) name a policy the events give only by id."""
    if policies is not None:
        events = events.join(
            policies.rename({"id": "sla_policy", "value": "policy_title"}),
            on="sla_policy",
            how="left",
            maintain_order="left",
        ).with_columns(pl.coalesce(pl.col("policy_title"), pl.col("sla_policy")).alias("sla_policy"))
    kind = pl.col("type")
    live_breach = (kind == "breach") & (text("deleted").fill_null("false").str.to_lowercase() != "true")
    per_metric = (
        events.filter(text("instance_id") == "1")
        .group_by("ticket_id", "metric")
        .agg(
            (kind == "apply_sla").any().alias("applied"),
            pl.col("sla_target").filter(kind == "apply_sla").last().cast(pl.Float64, strict=False).alias("target"),
            pl.col("sla_business_hours").filter(kind == "apply_sla").last().str.to_lowercase().alias("business_hours"),
            pl.col("sla_policy").filter(kind == "apply_sla").last().alias("policy"),
            pl.col("time_at").filter(live_breach).first().alias("breach_at"),
            pl.col("at").filter(live_breach).first().alias("breach_moment"),
            pl.col("at").filter(kind == "fulfill").first().alias("fulfil_moment"),
            pl.col("time_at").filter(kind == "activate").first().alias("activated_at"),
            (kind == "pause").any().alias("paused"),
        )
        .filter(pl.col("applied") | pl.col("breach_at").is_not_null())
    )
    breached = pl.col("breach_at").is_not_null() & (
        pl.col("fulfil_moment").is_null() | (pl.col("breach_moment") <= pl.col("fulfil_moment"))
    )
    calendar_due = shift_timestamp_text(pl.col("activated_at"), pl.col("target") * 60, "UTC")
    hours = (
        pl.when(pl.col("business_hours") == "true").then(pl.lit("business hours")).otherwise(pl.lit("calendar hours"))
    )
    verdicts = (
        per_metric.with_columns(
            pl.col("metric").replace_strict(METRICS, default=None).alias("contract_metric"),
            pl.col("metric")
            .replace_strict({m: i for i, m in enumerate(_RESOLUTION_PREFERENCE)}, default=0, return_dtype=pl.Int64)
            .alias("preference"),
        )
        .sort("ticket_id", "contract_metric", "preference")
        .unique(["ticket_id", "contract_metric"], keep="first", maintain_order=True)
    )
    return concat_vendor_sla(
        [
            verdicts.select(
                pl.col("ticket_id").alias("record_id"),
                pl.lit("tickets").alias("source"),
                pl.col("contract_metric").alias("metric"),
                pl.coalesce(
                    pl.col("breach_at"),
                    pl.when(
                        (pl.col("business_hours") != "true") & ~pl.col("paused") & pl.col("target").is_not_null()
                    ).then(calendar_due),
                ).alias("vendor_due_at"),
                pl.when(breached)
                .then(pl.lit("false"))
                .when(pl.col("fulfil_moment").is_not_null())
                .then(pl.lit("true"))
                .alias("vendor_met"),
                pl.format(
                    "{}; policy {}, target {} min ({})",
                    pl.when(breached)
                    .then(pl.lit("breach"))
                    .when(pl.col("fulfil_moment").is_not_null())
                    .then(pl.lit("fulfill"))
                    .otherwise(pl.lit("apply_sla")),
                    pl.col("policy").fill_null("?"),
                    pl.col("target").cast(pl.Int64, strict=False).cast(pl.Utf8).fill_null("?"),
                    hours,
                ).alias("vendor_status"),
                pl.format("ticket_metric_events {}", pl.col("metric")).alias("vendor_field"),
            )
        ]
    )


# --- the warehouse schema -----------------------------------------------------------------------------------------


def _only(inputs: list[_Input], kind: str) -> _Input | None:
    found = [item for item in inputs if item.kind == kind]
    if len(found) > 1:
        raise ConversionError(f"{' and '.join(item.path.name for item in found)} are both {kind} tables; give one")
    return found[0] if found else None


def _convert_warehouse(inputs: list[_Input], options: AdapterOptions) -> Conversion:
    overrides = value_overrides(options)
    zone = options.timezone or "UTC"
    tickets_in, comments_in, history_in = (
        _only(inputs, k) for k in ("ticket_data", "ticket_comment_data", "ticket_field_history_data")
    )
    applied_in, targets_in = _only(inputs, "ticket_sla_policy_data"), _only(inputs, "sla_policy_metric_history_data")
    records, quarantines, tables, event_parts = [], [], {}, []
    requesters = None
    if tickets_in:
        requesters = (
            tickets_in.frame.select(
                text("id").alias("ticket_id"),
                text("requester_id").alias("requester_id")
                if "requester_id" in tickets_in.frame.columns
                else pl.lit(None, dtype=pl.Utf8).alias("requester_id"),
                text("priority").alias("current_priority")
                if "priority" in tickets_in.frame.columns
                else pl.lit(None, dtype=pl.Utf8).alias("current_priority"),
            )
            .filter(pl.col("ticket_id").is_not_null())
            .unique("ticket_id", keep="first")
        )
    known = requesters.get_column("ticket_id") if requesters is not None else None

    history = None
    if history_in:
        history = history_in.frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            timestamp_text(text("updated"), ISO_FORMATS, zone).alias("occurred_at"),
            text("field_name").alias("field_name"),
        )
        spellings = {**STATUSES, **overrides.get("new_status", {})}
        value = text("value").str.to_lowercase()
        history = history.with_columns(
            value.replace_strict(list(spellings), list(spellings.values()), default=value).alias("new_status")
        )
        checks = [
            Check(pl.col("ticket_id").is_null(), "missing_value", pl.lit("ticket_id: missing required value")),
            Check(text("updated").is_null(), "missing_value", pl.lit("updated: missing required value")),
            bad_timestamp("updated", pl.col("occurred_at")),
            Check(
                pl.col("field_name") != "status",
                "not_used",
                pl.format("field {}: only status changes become ticket events", pl.col("field_name")),
            ),
            Check(
                pl.col("new_status") == "deleted",
                "not_used",
                pl.lit("status deleted: the ticket was deleted in Zendesk"),
            ),
            Check(
                ~pl.col("new_status").is_in(list(set(STATUSES.values()))),
                "unknown_value",
                pl.format("status: unknown value {}", text("value")),
            ),
        ]
        if known is not None:
            checks.append(_orphan(known))
        status_events, quarantine = split_checked(history, checks, history_in.path.name, "ticket_id")
        quarantines.append(quarantine)
        records.append(
            input_record(history_in.path, history.height, quarantine.height, "warehouse ticket_field_history_data")
        )
        event_parts.append(
            status_events.with_columns(
                pl.lit("status_change").alias("event_type"), pl.lit(None, dtype=pl.Utf8).alias("actor")
            )
            .drop("updated", "value")
            .rename({"field_name": "vendor_field_name"})
        )

    if comments_in:
        comments = comments_in.frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            timestamp_text(text("created"), ISO_FORMATS, zone).alias("occurred_at"),
            text("public")
            .str.to_lowercase()
            .replace_strict(
                ["true", "false", "1", "0"], [True, False, True, False], default=None, return_dtype=pl.Boolean
            )
            .alias("is_public"),
        )
        if requesters is not None:
            comments = comments.join(requesters.select("ticket_id", "requester_id"), on="ticket_id", how="left")
        else:
            comments = comments.with_columns(pl.lit(None, dtype=pl.Utf8).alias("requester_id"))
        by_requester = text("user_id") == pl.col("requester_id")
        comments = comments.with_columns(
            pl.when(~pl.col("is_public"))
            .then(pl.lit("internal_note"))
            .when(by_requester)
            .then(pl.lit("requester_reply"))
            .otherwise(pl.lit("public_reply"))
            .alias("event_type"),
            pl.when(by_requester).then(pl.lit("requester")).otherwise(pl.lit("agent")).alias("actor"),
        )
        checks = [
            Check(pl.col("ticket_id").is_null(), "missing_value", pl.lit("ticket_id: missing required value")),
            Check(text("created").is_null(), "missing_value", pl.lit("created: missing required value")),
            bad_timestamp("created", pl.col("occurred_at")),
            Check(
                pl.col("is_public").is_null(),
                "bad_boolean",
                pl.format("public: not a boolean (TRUE/FALSE): {}", pl.col("public")),
            ),
            Check(
                pl.col("requester_id").is_null(),
                "orphan_record",
                pl.format(
                    "ticket {} is not in ticket_data (or has no requester_id): who wrote the comment is unknown",
                    pl.col("ticket_id"),
                ),
            ),
        ]
        comment_events, quarantine = split_checked(comments, checks, comments_in.path.name, "ticket_id")
        quarantines.append(quarantine)
        records.append(
            input_record(comments_in.path, comments.height, quarantine.height, "warehouse ticket_comment_data")
        )
        event_parts.append(comment_events.drop("created", "is_public", "requester_id"))

    events = None
    if event_parts:
        events = pl.concat(event_parts, how="diagonal_relaxed")
        events = events.with_columns(
            pl.lit(None, dtype=pl.Utf8).alias(name) for name in ("actor", "new_status") if name not in events.columns
        )
        tables["ticket_events"] = events

    if tickets_in:
        frame, checks = map_table(tickets_in.frame, WAREHOUSE_LAYOUT, tickets_in.path.name, options, overrides)
        checks.insert(
            0,
            Check(
                text("status").str.to_lowercase() == "deleted",
                "not_used",
                pl.lit("status deleted: the ticket was deleted in Zendesk"),
            ),
        )
        if events is not None:
            frame = frame.join(_times_from_events(events), on="ticket_id", how="left").with_columns(
                pl.when(pl.col("status").is_in(["solved", "closed"])).then(pl.col("resolved_at")).alias("resolved_at")
            )
        passed, quarantine = finish_table(frame, checks, "tickets", tickets_in.path.name)
        tables["tickets"] = passed
        quarantines.append(quarantine)
        records.append(
            input_record(tickets_in.path, tickets_in.frame.height, quarantine.height, "warehouse ticket_data")
        )

    verdicts = None
    if applied_in or targets_in:
        verdicts, sla_quarantine, sla_records = _warehouse_targets(applied_in, targets_in, requesters, history, zone)
        quarantines.append(sla_quarantine)
        records += sla_records
    # the event-derived times exist only where their table was given: without comments there is no first
    # response, without the status history no resolution (the columns are written, empty)
    unfilled = {"first_response_at": comments_in is None, "resolved_at": history_in is None}
    filled = {}
    if "tickets" in tables and events is not None:
        filled["tickets"] = tuple(name for name in tables["tickets"].columns if not unfilled.get(name))
    return Conversion(
        format="zendesk",
        format_version=WAREHOUSE,
        filled_columns=filled,
        tables=tables,
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=records,
        vendor_sla=verdicts,
        notes=[
            f"warehouse timestamps are UTC without an offset; read in {zone}",
            "channel: group_id, else via_channel (group ids need a --mapping file with a values: channel: section)",
            "ticket_events: status changes from ticket_field_history_data; comments from ticket_comment_data: "
            "private -> internal_note, public by the ticket's requester -> requester_reply, other public -> public_reply (agent)",
            "first_response_at: the first public agent comment; resolved_at: the last change to solved (else closed), "
            "for solved and closed tickets; deleted tickets are not used",
            "vendor due times: policy_applied_at + the first_reply_time target of the ticket's priority at that time, "
            "calendar-hours targets only (business-hours targets need Zendesk's schedules, which are not read; "
            "pausable metrics move with every pause); no verdicts (the warehouse holds none)",
        ],
    )


def _orphan(known: pl.Series) -> Check:
    return Check(
        ~pl.col("ticket_id").is_in(known.implode()),
        "orphan_record",
        pl.format("ticket {} is not in ticket_data", pl.col("ticket_id")),
    )


def _times_from_events(events: pl.DataFrame) -> pl.DataFrame:
    ordered = events.with_columns(_utc(pl.col("occurred_at")).alias("at")).sort("at")
    return ordered.group_by("ticket_id").agg(
        pl.col("occurred_at").filter(pl.col("event_type") == "public_reply").first().alias("first_response_at"),
        pl.coalesce(
            pl.col("occurred_at").filter(pl.col("new_status") == "solved").last(),
            pl.col("occurred_at").filter(pl.col("new_status") == "closed").last(),
        ).alias("resolved_at"),
    )


def _warehouse_targets(
    applied_in: _Input | None,
    targets_in: _Input | None,
    requesters: pl.DataFrame | None,
    history: pl.DataFrame | None,
    zone: str,
) -> tuple[pl.DataFrame, pl.DataFrame, list]:
    """Vendor due times from the SLA policy applied to each ticket and the policy's targets at that time."""
    quarantines, records = [], []
    applied = targets = None
    if applied_in:
        frame = applied_in.frame.with_columns(
            text("ticket_id").alias("ticket_id"),
            text("sla_policy_id").alias("sla_policy_id"),
            timestamp_text(text("policy_applied_at"), ISO_FORMATS, zone).alias("applied_at"),
        )
        checks = [
            Check(
                pl.col("ticket_id").is_null() | pl.col("sla_policy_id").is_null(),
                "missing_value",
                pl.lit("ticket_id and sla_policy_id are required"),
            ),
            Check(
                pl.col("applied_at").is_null(),
                "bad_timestamp",
                pl.format("policy_applied_at: not a timestamp this format knows: {}", pl.col("policy_applied_at")),
            ),
        ]
        if requesters is not None:
            checks.append(_orphan(requesters.get_column("ticket_id")))
        applied, quarantine = split_checked(frame, checks, applied_in.path.name, "ticket_id")
        quarantines.append(quarantine)
        records.append(
            input_record(applied_in.path, frame.height, quarantine.height, "warehouse ticket_sla_policy_data")
        )
    if targets_in:
        frame = targets_in.frame.with_columns(
            text("sla_policy_id").alias("sla_policy_id"),
            timestamp_text(text("sla_policy_updated_at"), ISO_FORMATS, zone).alias("version_at"),
            text("target").cast(pl.Float64, strict=False).alias("target_minutes"),
            text("business_hours").str.to_lowercase().alias("business_hours"),
            text("priority").str.to_lowercase().alias("priority"),
            text("metric").alias("metric"),
        )
        checks = [
            Check(pl.col("sla_policy_id").is_null(), "missing_value", pl.lit("sla_policy_id: missing required value")),
            bad_timestamp("sla_policy_updated_at", pl.col("version_at")),
            Check(
                pl.col("target_minutes").is_null() | (pl.col("target_minutes") < 0),
                "bad_number",
                pl.format("target: not a non-negative number of minutes: {}", pl.col("target")),
            ),
            Check(
                ~pl.col("business_hours").is_in(["true", "false"]),
                "bad_boolean",
                pl.format("business_hours: not a boolean (TRUE/FALSE): {}", pl.col("business_hours")),
            ),
        ]
        targets, quarantine = split_checked(frame, checks, targets_in.path.name, "sla_policy_id")
        quarantines.append(quarantine)
        records.append(
            input_record(targets_in.path, frame.height, quarantine.height, "warehouse sla_policy_metric_history_data")
        )
    if applied is None or targets is None or requesters is None:
        return empty_vendor_sla(), pl.concat([empty_quarantine(), *quarantines]), records

    # The ticket's priority when the policy was applied: the last priority change up to then, else its current one.
    applied = applied.with_columns(_utc(pl.col("applied_at")).alias("at")).sort("at")
    if history is not None:
        changes = (
            history.filter((pl.col("field_name") == "priority") & pl.col("occurred_at").is_not_null())
            .select(
                "ticket_id",
                _utc(pl.col("occurred_at")).alias("at"),
                text("value").str.to_lowercase().alias("priority_then"),
            )
            .sort("at")
        )
        applied = applied.join_asof(changes, on="at", by="ticket_id", strategy="backward", check_sortedness=False)
    else:
        applied = applied.with_columns(pl.lit(None, dtype=pl.Utf8).alias("priority_then"))
    applied = applied.join(requesters.select("ticket_id", "current_priority"), on="ticket_id", how="left").with_columns(
        pl.coalesce(pl.col("priority_then"), pl.col("current_priority").str.to_lowercase()).alias("priority")
    )
    first_reply = targets.filter(pl.col("metric") == "first_reply_time").with_columns(
        _utc(pl.col("version_at")).alias("version_moment")
    )
    matched = (
        applied.join(first_reply, on=["sla_policy_id", "priority"], how="inner")
        .filter(pl.col("version_moment") <= pl.col("at"))
        .sort("version_moment")
        .group_by("ticket_id", "sla_policy_id", "applied_at", maintain_order=True)
        .last()
        .filter(pl.col("business_hours") == "false")
    )
    due = shift_timestamp_text(pl.col("applied_at"), pl.col("target_minutes") * 60, zone)
    rows = matched.select(
        pl.col("ticket_id").alias("record_id"),
        pl.lit("tickets").alias("source"),
        pl.lit("first_response").alias("metric"),
        due.alias("vendor_due_at"),
        pl.lit(None, dtype=pl.Utf8).alias("vendor_met"),
        pl.format(
            "policy {} first_reply_time {}: {} min, calendar hours",
            pl.col("sla_policy_id"),
            pl.col("priority"),
            pl.col("target_minutes").cast(pl.Int64).cast(pl.Utf8),
        ).alias("vendor_status"),
        pl.lit("ticket_sla_policy_data + sla_policy_metric_history_data").alias("vendor_field"),
    )
    return concat_vendor_sla([rows]), pl.concat([empty_quarantine(), *quarantines]), records


ADAPTER = Adapter(
    name="zendesk",
    description="Zendesk: Support CSV export, an API v2 folder (tickets.json, ticket_metrics.json, comments, …), or the warehouse tables",
    convert=convert,
)
