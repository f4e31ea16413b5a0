"""ServiceNow incidents → canonical tickets (+ ticket_events from an audit event log) and ``made_sla`` verdicts.

Two layouts, told apart by their columns:

* **table export** (Table API / list export of ``incident``, one row per incident): ``number, opened_at,
  resolved_at, closed_at, incident_state|state, priority, category, contact_type, made_sla`` …
* **event log** (an audit log with one row per update of an incident, e.g. the UCI "incident management process
  enriched event log": ``sys_updated_at``, ``sys_mod_count``, ``dd-mm-yyyy HH:MM`` dates, ``?`` for empty):
  one ticket per incident from its last row, and a ``status_change`` event for every change of
  ``incident_state``.

* **task_sla export** (the per-SLA records of the ``task_sla`` table: ``task, sla, stage, has_breached,
  planned_end_time, start_time, end_time, business_duration`` …): vendor verdicts and due times only.

Readings: an ITSM incident is a support ticket (ticket_id = number, created_at = opened_at). ``resolved_at`` is
ServiceNow's, or ``closed_at`` for a closed incident without one; a ``resolved_at`` after ``closed_at`` is kept as
written (the later instant: reading the earlier one could hide a breach) and named in the conversion's findings.
``sla_due`` is ServiceNow's due time of the incident's resolution (vendor due time, no verdict).

``made_sla`` is read by the ``made_sla`` setting (the --mapping file's ``settings:``). ServiceNow clears it when
*any* SLA attached to the incident breaches (response, resolution or any other definition), so by default
(``every_sla``) it is not taken as the verdict of one metric: it stays a vendor column, stated in the notes. With
``made_sla: resolution`` it is the resolution verdict: ``false`` is a miss; ``true`` is a verdict only once the
incident is resolved or closed (before that it only means "not breached yet" and is written without a verdict).

A ``task_sla`` row is a verdict on the metric its SLA definition names (``sla`` containing "response" →
first_response, "resolution"/"resolve" → resolution; others are quarantined as ``not_used``): ``has_breached``
true is a miss; false is met once the ``stage`` is completed (or achieved), else no verdict yet; cancelled SLAs are
not used; ``planned_end_time`` is the due time. ``task`` is the incident's number as the list export writes it,
or its ``sys_id`` (the reference value), read as the number of the incident of the same ``sys_id`` when an
incident file of the conversion carries it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

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
    split_checked,
    timestamp_text,
)
from compliance.adapters.findings import consistency_findings
from compliance.adapters.settings import Setting, format_settings
from compliance.adapters.value_overrides import apply_value_overrides, value_overrides
from compliance.policy import Policy

# ServiceNow's list exports write yyyy-MM-dd; the UCI event log writes dd-mm-yyyy (day first).
TIMESTAMP_FORMATS = (*ISO_FORMATS, "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M")
# incident_state as a number (Table API values) or its label (display values, event logs), lower-case; the
# contract's own statuses stand for themselves (a --mapping file's value overrides write them).
STATUSES = {
    **{status: status for status in ("new", "open", "pending", "on_hold", "solved", "closed")},
    "1": "new",
    "2": "open",
    "in progress": "open",
    "active": "open",
    "3": "on_hold",
    "on hold": "on_hold",
    "6": "solved",
    "resolved": "solved",
    "7": "closed",
    "8": "closed",
    "canceled": "closed",
    "cancelled": "closed",
    # waiting for the caller is "pending"; waiting for a problem, vendor, change or evidence is "on hold"
    "awaiting user info": "pending",
    "awaiting caller": "pending",
    "awaiting problem": "on_hold",
    "awaiting vendor": "on_hold",
    "awaiting change": "on_hold",
    "awaiting evidence": "on_hold",
}
TERMINAL = ("solved", "closed")
# ITSM categories of an IT help desk: technical support, when the policy has that channel.
TECHNICAL_CATEGORIES = ("software", "hardware", "network", "database", "inquiry", "inquiry / help", "help")
# Priority 1-2 (critical, high) is priority support, 3-5 standard, when the policy has those tiers.
PRIORITY_TIERS = {"1": "priority", "2": "priority", "3": "standard", "4": "standard", "5": "standard"}
_BOOLEANS = {"true": "true", "false": "false", "1": "true", "0": "false", "yes": "true", "no": "false"}
SETTINGS = {
    "made_sla": Setting(
        default="every_sla",
        choices=("every_sla", "resolution"),
        help="every_sla: made_sla is false when any attached SLA breached, so no metric's verdict; "
        "resolution: the resolution SLA's verdict",
    )
}
TASK_SLA_COLUMNS = {"task", "sla", "stage", "has_breached"}
# task_sla stages (values, or labels lower-cased): an SLA that has finished, and one that no longer counts.
_SLA_FINISHED = ("completed", "achieved")
_SLA_CANCELLED = ("cancelled", "canceled")


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    settings = format_settings(options, "servicenow", SETTINGS)
    tables: dict[str, list[pl.DataFrame]] = {"tickets": [], "ticket_events": []}
    verdicts, quarantines, inputs, variants, findings = [], [], [], set(), []
    for path in paths:
        frame = read_csv_text(path)
        if set(frame.columns) >= TASK_SLA_COLUMNS:
            vendor, quarantine = _task_sla(frame, path.name, options)
            verdicts.append(vendor)
            quarantines.append(quarantine)
            inputs.append(input_record(path, frame.height, quarantine.height, "task_sla export"))
            variants.add("task_sla export")
            continue
        if "number" not in frame.columns or "opened_at" not in frame.columns:
            raise ConversionError(
                f"{path.name}: not a ServiceNow incident export (needs the columns number and opened_at) "
                "nor a task_sla export (task, sla, stage, has_breached)"
            )
        if "sys_updated_at" in frame.columns:
            tickets, events, vendor, quarantine, variant = _event_log(frame, path.name, options, settings)
            tables["ticket_events"].append(events)
        else:
            tickets, vendor, quarantine = _table_export(frame, path.name, options, settings)
            variant = "table export"
        tables["tickets"].append(tickets.drop("resolved_after_closed"))
        findings.append(tickets.filter(pl.col("resolved_after_closed")).get_column("ticket_id"))
        verdicts.append(vendor)
        quarantines.append(quarantine)
        inputs.append(input_record(path, frame.height, quarantine.height, variant))
        variants.add(variant)
    made_sla_note = (
        "made_sla = ServiceNow's verdict on the resolution SLA (setting made_sla: resolution); a 'true' on an open "
        "incident is not yet a verdict"
        if settings["made_sla"] == "resolution"
        else "made_sla is not read as a verdict (setting made_sla: every_sla, the default): ServiceNow clears it when "
        "any SLA attached to the incident breaches, so it does not say which metric; kept as a vendor column"
    )
    return Conversion(
        format="servicenow",
        format_version="servicenow " + " + ".join(sorted(variants)),
        tables={name: pl.concat(frames, how="diagonal") for name, frames in tables.items() if frames},
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        vendor_sla=_by_number(pl.concat(verdicts, how="diagonal"), tables["tickets"]),
        notes=[
            "ticket_id = number, created_at = opened_at; resolved_at = resolved_at, or closed_at when closed without one",
            made_sla_note,
            "sla_due = ServiceNow's due time of the resolution (a vendor due time, without a verdict of its own)",
            "event log: one ticket per incident from its last row (by sys_mod_count); a status_change per state change",
            "task_sla: one vendor verdict per SLA record on the metric its definition names (response -> "
            "first_response, resolution -> resolution); has_breached true = missed, false = met once the stage is "
            "completed; planned_end_time = the due time",
            *consistency_findings(
                pl.concat(findings) if findings else pl.Series([], dtype=pl.Utf8),
                "resolved_at after closed_at",
                "resolved_at kept as written (the later instant; reading closed_at instead could hide a breach)",
            ),
        ],
    )


def _prepared(frame: pl.DataFrame, options: AdapterOptions) -> pl.DataFrame:
    """Parsed timestamps (``*__ts``), mapped state and made_sla, beside the vendor's own text.

    The spellings feeding channel, status and tier are copied (``*__raw``) and the --mapping file's value
    overrides applied to the copies, so that the vendor columns themselves are kept as exported.
    """
    state_column = next((name for name in ("incident_state", "state") if name in frame.columns), None)
    frame = _with_raw(frame, "category", "contact_type", "priority", "short_description")
    frame = frame.with_columns(
        (pl.col(state_column) if state_column else pl.lit(None, pl.Utf8)).str.strip_chars().alias("state__raw"),
        pl.coalesce(pl.col("category__raw"), pl.col("contact_type__raw")).str.strip_chars().alias("channel__raw"),
    )
    frame = apply_value_overrides(
        frame, value_overrides(options), {"channel": "channel__raw", "status": "state__raw", "tier": "priority__raw"}
    )
    state = pl.col("state__raw").str.to_lowercase()
    columns = {
        f"{name}__ts": timestamp_text(pl.col(name), TIMESTAMP_FORMATS, options.timezone)
        for name in ("opened_at", "resolved_at", "closed_at", "sys_updated_at", "sla_due")
        if name in frame.columns
    }
    made_sla = (
        pl.col("made_sla").str.strip_chars().str.to_lowercase()
        if "made_sla" in frame.columns
        else pl.lit(None, pl.Utf8)
    )
    return frame.with_columns(
        **columns,
        state__vendor=pl.col(state_column).str.strip_chars() if state_column else pl.lit(None, pl.Utf8),
        state__text=state,
        state__mapped=state.replace_strict(STATUSES, default=None, return_dtype=pl.Utf8),
        made_sla__text=made_sla,
        made_sla__mapped=made_sla.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Utf8),
    )


def _checks(frame: pl.DataFrame) -> list[Check]:
    checks = [
        Check(pl.col("number").is_null(), "missing_value", pl.lit("number: missing incident number")),
        Check(pl.col("opened_at").is_null(), "missing_value", pl.lit("opened_at: missing (the ticket's creation)")),
    ]
    checks += [
        bad_timestamp(name, pl.col(f"{name}__ts"))
        for name in ("opened_at", "resolved_at", "closed_at", "sys_updated_at", "sla_due")
        if name in frame.columns
    ]
    checks += [
        Check(
            pl.col("state__text").is_not_null() & pl.col("state__mapped").is_null(),
            "unknown_value",
            pl.format("incident_state: unknown value {}", pl.col("state__raw")),
        ),
        Check(
            pl.col("made_sla__text").is_not_null() & pl.col("made_sla__mapped").is_null(),
            "bad_boolean",
            pl.format("made_sla: not true/false: {}", pl.col("made_sla__text")),
        ),
    ]
    if "sys_updated_at" in frame.columns:
        checks.append(Check(pl.col("sys_updated_at").is_null(), "missing_value", pl.lit("sys_updated_at: missing")))
    return checks


def _channel(policy: Policy | None) -> pl.Expr:
    """category (else contact_type) in the policy's spelling where one is obvious, else as ServiceNow wrote it
    (or as the --mapping file respells it)."""
    raw = pl.col("channel__raw")
    if policy is None or "technical_support" not in policy.channels:
        return raw
    known = set(policy.channel_spellings())
    lowered = raw.str.to_lowercase()
    return (
        pl.when(lowered.is_in(list(known)))
        .then(raw)
        .when(lowered.is_in(TECHNICAL_CATEGORIES))
        .then(pl.lit("technical_support"))
        .otherwise(raw)
    )


def _tier(policy: Policy | None) -> pl.Expr:
    if policy is None or not {"priority", "standard"} <= set(policy.tiers):
        return pl.lit(None, pl.Utf8)
    # "2 - High" (display value) or "2" (Table API value): the leading digit is the priority
    raw = pl.col("priority__raw").str.strip_chars()
    digit = raw.str.extract(r"^(\d)", 1)
    return (
        pl.when(raw.is_in(list(policy.tiers)))
        .then(raw)
        .otherwise(digit.replace_strict(PRIORITY_TIERS, default=None, return_dtype=pl.Utf8))
    )


def _with_raw(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """Copies of vendor columns under ``<name>__raw`` (null when the export lacks the column)."""
    return frame.with_columns(
        (pl.col(name) if name in frame.columns else pl.lit(None, pl.Utf8)).alias(f"{name}__raw") for name in names
    )


def _canonical_tickets(rows: pl.DataFrame, options: AdapterOptions) -> pl.DataFrame:
    """Ticket rows: the contract's columns, every vendor column not renamed into one, and the made_sla helpers."""
    vendor_columns = [name for name in rows.columns if "__" not in name and name != "source_line"]
    status = pl.col("state__mapped")
    closed = pl.col("closed_at__ts") if "closed_at__ts" in rows.columns else pl.lit(None, pl.Utf8)
    canonical = [
        pl.col("number").alias("ticket_id"),
        pl.col("opened_at__ts").alias("created_at"),
        pl.coalesce(pl.col("resolved_at__ts"), pl.when(status.is_in(TERMINAL)).then(closed)).alias("resolved_at")
        if "resolved_at__ts" in rows.columns
        else pl.when(status.is_in(TERMINAL)).then(closed).alias("resolved_at"),
        status.alias("status"),
        _channel(options.policy).alias("channel"),
        _tier(options.policy).alias("tier"),
        pl.col("short_description__raw").alias("subject"),
    ]
    replaced = {"number", "opened_at", "short_description", "resolved_at", "status", "channel", "tier", "subject"}
    kept = [pl.col(name) for name in vendor_columns if name not in replaced]
    resolved = pl.col("resolved_at__ts") if "resolved_at__ts" in rows.columns else pl.lit(None, pl.Utf8)
    due = pl.col("sla_due__ts") if "sla_due__ts" in rows.columns else pl.lit(None, pl.Utf8)
    return rows.select(
        *canonical,
        *kept,
        "made_sla__mapped",
        "made_sla__text",
        due.alias("sla_due__at"),
        (_instant(resolved) > _instant(closed)).fill_null(False).alias("resolved_after_closed"),
        "source_line",
    )


def _by_number(verdicts: pl.DataFrame, tickets: list[pl.DataFrame]) -> pl.DataFrame:
    """Vendor rows whose record is a ``sys_id`` (a task_sla ``task`` exported as its reference value) renamed to
    the incident's number, when an incident file of the conversion carries that ``sys_id``."""
    with_sys_id = [frame.select("ticket_id", "sys_id") for frame in tickets if "sys_id" in frame.columns]
    if not with_sys_id:
        return verdicts
    numbers = pl.concat(with_sys_id).drop_nulls().unique("sys_id", keep="first")
    return (
        verdicts.join(numbers, left_on="record_id", right_on="sys_id", how="left", maintain_order="left")
        .with_columns(pl.coalesce(pl.col("ticket_id"), pl.col("record_id")).alias("record_id"))
        .drop("ticket_id")
    )


def _instant(moment_text: pl.Expr) -> pl.Expr:
    """Canonical timestamp text as a comparable value: UTC text as an instant; wall text (one zone) as wall time."""
    return moment_text.str.replace(r"Z$", "").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)


def _verdicts(tickets: pl.DataFrame, settings: dict) -> pl.DataFrame:
    """The resolution row per incident: ``sla_due`` as the due time, and ``made_sla`` as the verdict under the
    ``made_sla: resolution`` setting (false is a miss at any time; true counts only once the incident is resolved
    or closed); under ``every_sla`` there is a row only where ``sla_due`` gives a due time."""
    terminal = pl.col("status").is_in(TERMINAL)
    met = pl.col("made_sla__mapped")
    due = pl.col("sla_due__at")
    if settings["made_sla"] == "resolution":
        return tickets.filter(met.is_not_null() | due.is_not_null()).select(
            pl.col("ticket_id").alias("record_id"),
            pl.lit("tickets").alias("source"),
            pl.lit("resolution").alias("metric"),
            due.alias("vendor_due_at"),
            pl.when((met == "false") | terminal).then(met).alias("vendor_met"),
            pl.when(met.is_null())
            .then(pl.lit("no made_sla"))
            .when(terminal)
            .then(pl.col("made_sla__text"))
            .otherwise(pl.format("{} (incident still open)", pl.col("made_sla__text")))
            .alias("vendor_status"),
            pl.when(due.is_null())
            .then(pl.lit("made_sla"))
            .when(met.is_null())
            .then(pl.lit("sla_due"))
            .otherwise(pl.lit("made_sla + sla_due"))
            .alias("vendor_field"),
        )
    return tickets.filter(due.is_not_null()).select(
        pl.col("ticket_id").alias("record_id"),
        pl.lit("tickets").alias("source"),
        pl.lit("resolution").alias("metric"),
        due.alias("vendor_due_at"),
        pl.lit(None, pl.Utf8).alias("vendor_met"),
        pl.lit("sla_due (a due time, no verdict)").alias("vendor_status"),
        pl.lit("sla_due").alias("vendor_field"),
    )


def _split_verdicts(tickets: pl.DataFrame, settings: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    return tickets.drop("made_sla__mapped", "made_sla__text", "sla_due__at"), _verdicts(tickets, settings)


def _table_export(frame: pl.DataFrame, file_name: str, options: AdapterOptions, settings: dict):
    prepared = _prepared(frame, options)
    passed, quarantine = split_checked(prepared, _checks(prepared), file_name, "number")
    tickets, verdicts = _split_verdicts(_canonical_tickets(passed, options), settings)
    return tickets, verdicts, quarantine


def _task_sla(frame: pl.DataFrame, file_name: str, options: AdapterOptions) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Vendor verdicts and due times from ``task_sla`` records (one per SLA attached to a task)."""
    definition = pl.col("sla").str.strip_chars().str.to_lowercase()
    stage = pl.col("stage").str.strip_chars().str.to_lowercase()
    breached = pl.col("has_breached").str.strip_chars().str.to_lowercase()
    planned = "planned_end_time" in frame.columns
    prepared = frame.with_columns(
        pl.when(definition.str.contains("response"))
        .then(pl.lit("first_response"))
        .when(definition.str.contains("resol"))
        .then(pl.lit("resolution"))
        .alias("metric__mapped"),
        breached.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Utf8).alias("breached__mapped"),
        stage.alias("stage__text"),
        (
            timestamp_text(pl.col("planned_end_time"), TIMESTAMP_FORMATS, options.timezone)
            if planned
            else pl.lit(None, pl.Utf8)
        ).alias("planned_end_time__ts"),
    )
    checks = [
        Check(pl.col("task").str.strip_chars().fill_null("") == "", "missing_value", pl.lit("task: missing")),
        Check(
            pl.col("breached__mapped").is_null(),
            "bad_boolean",
            pl.format("has_breached: not true/false: {}", pl.col("has_breached")),
        ),
        Check(
            pl.col("stage__text").is_in(_SLA_CANCELLED),
            "not_used",
            pl.lit("stage cancelled: the SLA no longer applies"),
        ),
        Check(
            pl.col("metric__mapped").is_null(),
            "not_used",
            pl.format("sla {}: names neither a response nor a resolution SLA", pl.col("sla")),
        ),
    ]
    if planned:
        checks.append(bad_timestamp("planned_end_time", pl.col("planned_end_time__ts")))
    passed, quarantine = split_checked(prepared, checks, file_name, "task")
    missed = pl.col("breached__mapped") == "true"
    verdicts = passed.select(
        pl.col("task").str.strip_chars().alias("record_id"),
        pl.lit("tickets").alias("source"),
        pl.col("metric__mapped").alias("metric"),
        pl.col("planned_end_time__ts").alias("vendor_due_at"),
        pl.when(missed)
        .then(pl.lit("false"))
        .when(pl.col("stage__text").is_in(_SLA_FINISHED))
        .then(pl.lit("true"))
        .alias("vendor_met"),
        pl.format("{}: stage {}, has_breached {}", pl.col("sla"), pl.col("stage"), pl.col("has_breached")).alias(
            "vendor_status"
        ),
        pl.lit("task_sla has_breached + planned_end_time").alias("vendor_field"),
    )
    return verdicts, quarantine


def _event_log(frame: pl.DataFrame, file_name: str, options: AdapterOptions, settings: dict):
    # "?" is the event log's empty value
    frame = frame.with_columns(
        pl.when(pl.col(name).str.strip_chars() == "?").then(None).otherwise(pl.col(name)).alias(name)
        for name in frame.columns
        if name != "source_line"
    )
    prepared = _prepared(frame, options)
    passed, quarantine = split_checked(prepared, _checks(prepared), file_name, "number")
    order = [
        pl.col("sys_mod_count").cast(pl.Int64, strict=False) if "sys_mod_count" in passed.columns else pl.lit(0),
        pl.col("sys_updated_at__ts"),
        pl.col("source_line"),
    ]
    ordered = passed.sort(["number", *order]) if passed.height else passed
    # one ticket per incident: its last row, with the earliest readable opened_at
    last = ordered.group_by("number", maintain_order=True).agg(
        pl.all().last(), pl.col("opened_at__ts").min().alias("_opened")
    )
    last = last.with_columns(pl.col("_opened").alias("opened_at__ts")).drop("_opened")
    tickets, verdicts = _split_verdicts(_canonical_tickets(last, options), settings)
    previous = pl.col("state__mapped").shift(1).over("number")
    events = ordered.filter(
        pl.col("state__mapped").is_not_null() & (previous.is_null() | (previous != pl.col("state__mapped")))
    ).select(
        pl.col("number").alias("ticket_id"),
        pl.col("sys_updated_at__ts").alias("occurred_at"),
        pl.lit("status_change").alias("event_type"),
        pl.col("state__mapped").alias("new_status"),
        pl.col("state__vendor").alias("incident_state"),
        *[pl.col(name) for name in ("sys_updated_by", "sys_mod_count") if name in ordered.columns],
    )
    return tickets, events, verdicts, quarantine, "event log"


ADAPTER = Adapter(
    name="servicenow",
    description="ServiceNow incident table export or incident event log (number, opened_at, resolved_at, made_sla)",
    convert=convert,
)
