"""An event log (one row per status change of a case) → canonical tickets and ticket_events.

Rows hold a case id, a time, a status or activity and optionally a sub-status and an actor; the headers are
recognised by their usual names (``HEADER_NAMES``: case / incident / ticket / SR number; time / timestamp /
change date+time; status / activity / lifecycle), others are named in a ``--mapping`` file (``columns``:
``ticket_id``, ``occurred_at``, ``new_status`` — several headers are read together, e.g. status and sub status —
and ``actor``). The BPI Challenge 2013 Volvo IT incident log reads without one.

Per case: created_at = its first event; resolved_at = its first entry into a terminal status (the mapping file's
``terminal_statuses``, default solved and closed); status = the status of its last event. Every change of status
is a ``status_change`` event, so the ticket clocks pause on the policy's pausing statuses. A status text is read
into the contract's statuses by the mapping file's ``values.new_status`` spellings, else by its words
(``STATUS_WORDS``, first match wins). The log says nothing of replies: first_response_at is not filled, and the
rules needing it are "not assessed".
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from compliance.adapters import EVENT_LOG_HEADERS
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
    normalised_header,
    read_csv_text,
    split_checked,
    timestamp_text,
)
from compliance.adapters.layout import text
from compliance.adapters.value_overrides import load_overrides, spelling_lookup

VERSION = "event log csv"
HEADER_NAMES = EVENT_LOG_HEADERS  # the usual header names per role, shared with format detection
# Status words → contract status, tried in this order on "status [sub status]" (lower case).
STATUS_WORDS: tuple[tuple[str, str], ...] = (
    ("closed", r"\b(closed|cancell?ed|rejected|withdrawn)\b"),
    ("solved", r"\b(resolved|solved|completed?|done|fixed|finished)\b"),
    ("pending", r"\b(wait(ing)?\s*-?\s*(for|on)?\s*(the\s+)?(user|customer|caller|requester)|pending)\b"),
    ("new", r"\b(new|queued|created|registered|awaiting assignment|unassigned)\b"),
    ("on_hold", r"\b(wait(ing)?|on hold|hold|awaiting|suspended)\b"),
)
ACTOR_WORDS = {"agent": "agent", "staff": "agent", "requester": "requester", "customer": "requester"}
ACTOR_WORDS |= {"caller": "requester", "system": "system", "automation": "system"}
DEFAULT_TERMINAL = ("solved", "closed")


def recognised_headers(headers: list[str]) -> dict[str, list[str]]:
    """Role → the file's headers for it (the first usual name present; status and sub status both kept)."""
    by_name = {normalised_header(header): header for header in headers}
    found: dict[str, list[str]] = {}
    for role, names in HEADER_NAMES.items():
        for name in names:
            if name in by_name:
                found[role] = [by_name[name]]
                break
    return found


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    overrides = load_overrides(options.mapping, ("ticket_events", "tickets")) if options.mapping else None
    terminal = overrides.terminal_statuses if overrides and overrides.terminal_statuses else DEFAULT_TERMINAL
    # the mapping file's timestamp formats, zone abbreviations and time zone reach every format the same way
    # (compliance.adapters.adapter_for): ISO_FORMATS here are only this format's own
    formats, zone = ISO_FORMATS, options.timezone
    spellings = overrides.values.get("new_status", {}) if overrides else {}
    events, quarantines, inputs, notes, read_from, unread = [], [], [], [], {}, {}
    for path in paths:
        frame = read_csv_text(path)
        roles = recognised_headers(frame.columns)
        if overrides:
            roles |= {role: list(headers) for role, headers in overrides.columns.items()}
        missing = [role for role in ("ticket_id", "occurred_at", "new_status") if not roles.get(role)]
        absent = [h for headers in roles.values() for h in headers if h not in frame.columns]
        if missing or absent:
            what = f"no column {absent[0]!r}" if absent else "no " + " / ".join(missing) + " column recognised"
            raise ConversionError(
                f"{path.name}: {what} (an event log needs a case id, a time and a status; name them in a"
                " --mapping file's columns: ticket_id, occurred_at, new_status)"
            )
        # a mapped status is read as named; a recognised one with its sub status (BPI: Accepted + Wait - User)
        mapped_status = overrides is not None and "new_status" in overrides.columns
        status_headers = roles["new_status"] + ([] if mapped_status else roles.get("sub_status", []))
        notes.append(
            f"{path.name}: case id {roles['ticket_id'][0]!r}, time {roles['occurred_at'][0]!r},"
            f" status {' + '.join(map(repr, status_headers))}"
            + (f", actor {roles['actor'][0]!r}" if roles.get("actor") else "")
        )
        read_from = {
            "ticket_id": roles["ticket_id"][0],
            "occurred_at": roles["occurred_at"][0],
            "new_status": " + ".join(status_headers),
            **({"actor": roles["actor"][0]} if roles.get("actor") else {}),
        } | read_from
        used = {*status_headers, *(headers[0] for headers in roles.values())}
        unread |= dict.fromkeys(name for name in frame.columns if name not in used and name != "source_line")
        converted, quarantine = _events(frame, roles, status_headers, formats, zone, spellings, path.name)
        events.append(converted)
        quarantines.append(quarantine)
        inputs.append(input_record(path, frame.height, quarantine.height, VERSION))
    all_events = pl.concat(events, how="diagonal_relaxed")
    channel = (overrides.constants.get("channel") if overrides else None) or _default_channel(options)
    tickets = _tickets(all_events, terminal, channel)
    status_events = _status_changes(all_events)
    filled_events = ["ticket_id", "occurred_at", "event_type", "new_status"]
    if status_events.get_column("actor").is_not_null().any():
        filled_events.append("actor")
    notes += [
        "created_at = first event of the case; resolved_at = first entry into " + " / ".join(terminal),
        "status = the last event's status; a status_change event per change of status (pauses follow the policy)",
        "statuses read by "
        + ("the mapping file's values.new_status, else " if spellings else "")
        + "their words: "
        + "; ".join(f"{status} ← {pattern}" for status, pattern in STATUS_WORDS)
        + "; anything else is open",
        f"channel: {channel} for every case (the log names none; a --mapping file's constants.channel sets it)",
        "first_response_at not filled: an event log says nothing of replies",
        "wall times read in " + zone
        if zone
        else "wall times kept without an offset (read in the policy's source_timezone)",
    ]
    return Conversion(
        format="eventlog",
        format_version=VERSION,
        tables={"tickets": tickets, "ticket_events": status_events},
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        notes=notes,
        column_sources={
            "tickets": {
                "ticket_id": read_from["ticket_id"],
                "channel": f"constant {channel!r}",
                "created_at": f"first {read_from['occurred_at']} of the case",
                "resolved_at": f"first {read_from['occurred_at']} in a terminal status",
                "status": f"last {read_from['new_status']} of the case",
            },
            "ticket_events": {
                **read_from,
                "event_type": "constant 'status_change' (a change of status)",
            },
        },
        ignored_columns={"tickets": tuple(unread), "ticket_events": tuple(unread)},
        filled_columns={
            "tickets": ("ticket_id", "channel", "created_at", "resolved_at", "status"),
            "ticket_events": tuple(filled_events),
        },
    )


def _events(frame, roles, status_headers, formats, zone, spellings, file_name):
    """Every readable row as (ticket_id, occurred_at, new_status, actor, status_text, line); the rest quarantined."""
    case, moment = roles["ticket_id"][0], roles["occurred_at"][0]
    status_text = pl.concat_str([text(h) for h in status_headers], separator=" ", ignore_nulls=True)
    lowered = status_text.str.to_lowercase()
    by_words = pl.lit("open")
    for status, pattern in reversed(STATUS_WORDS):
        by_words = pl.when(lowered.str.contains(pattern)).then(pl.lit(status)).otherwise(by_words)
    actor_header = (roles.get("actor") or [None])[0]
    prepared = frame.with_columns(
        text(case).alias("__case"),
        timestamp_text(text(moment), formats, zone).alias("__at"),
        status_text.alias("__status_text"),
        pl.coalesce(spelling_lookup(lowered, spellings), by_words).alias("__status"),
        (text(actor_header) if actor_header else pl.lit(None, pl.Utf8)).alias("__actor_name"),
    )
    checks = [
        Check(pl.col("__case").is_null(), "missing_value", pl.lit(f"{case}: missing case id")),
        Check(text(moment).is_null(), "missing_value", pl.lit(f"{moment}: missing time")),
        bad_timestamp(moment, pl.col("__at")),
        Check(pl.col("__status_text").str.len_chars() == 0, "missing_value", pl.lit(f"{status_headers[0]}: missing")),
    ]
    passed, quarantine = split_checked(prepared, checks, file_name, case)
    return (
        passed.select(
            pl.col("__case").alias("ticket_id"),
            pl.col("__at").alias("occurred_at"),
            pl.col("__status").alias("new_status"),
            pl.col("__actor_name").alias("actor_name"),
            pl.col("__status_text").alias("vendor_status"),
            pl.lit(file_name).alias("__file"),
            pl.col("source_line"),
        ),
        quarantine,
    )


def _ordered(events: pl.DataFrame) -> pl.DataFrame:
    # canonical text is all UTC ("…Z") or all wall time in one zone: without the Z it sorts as instants
    instant = pl.col("occurred_at").str.replace(r"Z$", "").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f")
    return events.with_columns(__instant=instant).sort("ticket_id", "__instant", "__file", "source_line")


def _tickets(events: pl.DataFrame, terminal: tuple[str, ...], channel: str) -> pl.DataFrame:
    ordered = _ordered(events)
    in_terminal = pl.col("new_status").is_in(list(terminal))
    return (
        ordered.group_by("ticket_id", maintain_order=True)
        .agg(
            pl.col("occurred_at").first().alias("created_at"),
            pl.col("occurred_at").filter(in_terminal).first().alias("resolved_at"),
            pl.col("new_status").last().alias("status"),
            pl.col("vendor_status").last().alias("vendor_status"),
            pl.len().alias("events"),
        )
        .with_columns(pl.lit(channel).alias("channel"), pl.col("events").cast(pl.Utf8))
        .select("ticket_id", "channel", "created_at", "resolved_at", "status", "vendor_status", "events")
    )


def _status_changes(events: pl.DataFrame) -> pl.DataFrame:
    ordered = _ordered(events)
    previous = pl.col("new_status").shift(1).over("ticket_id")
    actor = spelling_lookup(pl.col("actor_name").str.to_lowercase(), ACTOR_WORDS)
    return ordered.filter(previous.is_null() | (previous != pl.col("new_status"))).select(
        "ticket_id",
        "occurred_at",
        pl.lit("status_change").alias("event_type"),
        actor.alias("actor"),
        "new_status",
        "vendor_status",
        "actor_name",
    )


def _default_channel(options: AdapterOptions) -> str:
    """The channel every case gets: technical support when the policy has it, else the policy's first channel."""
    channels = list(options.policy.channels) if options.policy else []
    return "technical_support" if not channels or "technical_support" in channels else channels[0]


ADAPTER = Adapter(
    name="eventlog",
    description="event log CSV (case id, time, status or activity, optional actor; .gz accepted) → tickets + events",
    convert=convert,
)
