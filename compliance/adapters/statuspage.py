"""Atlassian Statuspage → canonical incidents (incidents and scheduled maintenances) and incident_updates.

Layouts:

* **v2 ``incidents.json``** (``{"page": …, "incidents": [...]}``) and **``scheduled-maintenances.json``**
  (``{"scheduled_maintenances": [...]}``), or a bare list of such objects: ``id, name, status, impact,
  created_at, started_at, resolved_at, scheduled_for, scheduled_until, postmortem_published_at,
  incident_updates[] {status, body, created_at, display_at}``.
* **status history JSON lines** (one incident per line, as parsed from a Statuspage feed, e.g. the GitHub status
  history): ``id, title, started_at, resolved_at, impact, updates[] {at, status, message}``.
* **status history CSV** (a status page's history scraped to CSV, one incident per row): the same fields as
  columns (header names matched lower-case, blanks as ``_``: ``id`` or ``incident_id``, ``name`` or ``title``,
  ``impact``, ``created_at``, ``started_at``, ``resolved_at`` …), the updates as JSON text in an ``updates`` (or
  ``incident_updates``) cell, and times as the status page shows them, ``Aug 30, 2024 - 13:30 PDT``.

Zone abbreviations (``PDT`` …) name no zone on their own: each is read as the one UTC offset of
``ZONE_ABBREVIATIONS`` (the North American and European readings status pages use; ``CST`` is US Central, not
China), stated in the notes; an abbreviation outside that table (``IST``: India, Ireland or Israel) leaves the
time unreadable and its incident quarantined.

Readings: kind is ``maintenance`` when the object has ``scheduled_for``, its impact is ``maintenance`` or its
first update is ``scheduled``; else ``incident``. severity = impact. An incident starts at ``started_at`` (else
``created_at``); a maintenance starts at its first ``in progress`` update and is scheduled for ``scheduled_for``
(a feed without it leaves ``scheduled_start_at`` empty: the notice rule then excludes it rather than guess).
announced_at = the first update; each update is an incident_updates row posted at its ``created_at`` (the time it
was written; ``display_at`` only when ``created_at`` is absent, as it can be back-dated). An incident with an
unreadable time, its own or one of its updates', is quarantined whole, so records read = converted + quarantined
counts incidents. A record's ``line`` is its line in a JSON-lines file, else its position (1-based) in the list.
Statuspage states no SLA verdict, so this format writes no vendor_sla rows.

Consistency findings (``compliance.adapters.findings``), kept and named in the notes: an incident (not a
maintenance, whose notice precedes it) with an update posted before it started (started_at is kept, the earlier
update is its announcement); and a file whose updates, of more than one incident, all carry one instant (the time
the feed was taken, not when they were posted): its update times are read as unknown, so its incidents have no
``announced_at``, its updates are not written, and ``announced_at`` is declared unfilled (the rules needing it are
"not assessed" rather than judged on that instant).
"""

from __future__ import annotations

import json
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
    json_text,
    read_csv_text,
    read_json_document,
    read_text_document,
    records_frame,
    split_checked,
    timestamp_text,
)
from compliance.adapters.findings import FINDING_PREFIX, consistency_findings
from compliance.ingest.contract import SOURCES

_INCIDENT_TIMES = (
    "created_at",
    "started_at",
    "resolved_at",
    "scheduled_for",
    "scheduled_until",
    "postmortem_published_at",
)
_CONTRACT = {column.name for column in SOURCES["incidents"].columns}
# Zone abbreviation -> the UTC offset it is read as (a status page writes its viewer's or its own zone this way).
ZONE_ABBREVIATIONS = {
    "UTC": "+0000",
    "GMT": "+0000",
    "Z": "+0000",
    "PST": "-0800",
    "PDT": "-0700",
    "MST": "-0700",
    "MDT": "-0600",
    "CST": "-0600",
    "CDT": "-0500",
    "EST": "-0500",
    "EDT": "-0400",
    "AKST": "-0900",
    "AKDT": "-0800",
    "HST": "-1000",
    "BST": "+0100",
    "WET": "+0000",
    "WEST": "+0100",
    "CET": "+0100",
    "CEST": "+0200",
    "EET": "+0200",
    "EEST": "+0300",
}
# ISO-8601, and the status page's own rendering once its abbreviation is an offset: "Aug 30, 2024 - 13:30 -0700".
TIME_FORMATS = (*ISO_FORMATS, "%b %d, %Y - %H:%M %z", "%B %d, %Y - %H:%M %z", "%b %d, %Y - %H:%M", "%b %d, %Y %H:%M %z")
_CSV_UPDATES = ("updates", "incident_updates")
_CSV_IDS = ("id", "incident_id")
_UPDATE_SCHEMA = {
    "source_line": pl.Int64,
    "position": pl.Int64,
    "status": pl.Utf8,
    "body": pl.Utf8,
    "created_at": pl.Utf8,
    "display_at": pl.Utf8,
}


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    incidents, updates, quarantines, inputs, variants, findings = [], [], [], [], set(), []
    one_instant_files = []
    for path in paths:
        objects, malformed, variant = _read(path)
        converted, converted_updates, quarantine = _convert_objects(objects, path.name, options)
        quarantine = pl.concat([malformed, quarantine])
        findings += _early_updates(converted, converted_updates)
        instants = converted_updates.get_column("posted_at").unique()
        # two updates of one incident in the same minute happen; the updates of several incidents at one instant
        # are the time the feed was taken
        if converted_updates.get_column("incident_id").n_unique() > 1 and instants.len() == 1:
            one_instant_files.append((path.name, converted_updates.height, instants[0]))
            converted = converted.with_columns(pl.lit(None, pl.Utf8).alias("announced_at"))
            converted_updates = converted_updates.clear()
        incidents.append(converted)
        updates.append(converted_updates)
        quarantines.append(quarantine)
        inputs.append(input_record(path, len(objects) + malformed.height, quarantine.height, variant))
        variants.add(variant)
    for name, count, instant in one_instant_files:
        findings.append(
            f"{FINDING_PREFIX}{name}: all {count} updates carry one instant, {instant}; reading: the update times "
            "are not when the updates were posted, so announced_at is not filled and the updates are not written "
            "(the rules needing them are not assessed)"
        )
    abbreviations = ", ".join(f"{name} = UTC{offset[:3]}:{offset[3:]}" for name, offset in ZONE_ABBREVIATIONS.items())
    tables = {
        "incidents": pl.concat(incidents, how="diagonal"),
        "incident_updates": pl.concat(updates, how="diagonal"),
    }
    filled = {}
    if one_instant_files:
        filled["incidents"] = tuple(name for name in tables["incidents"].columns if name != "announced_at")
    return Conversion(
        format="statuspage",
        format_version="statuspage " + " + ".join(sorted(variants)),
        tables=tables,
        filled_columns=filled,
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        notes=[
            "kind maintenance: scheduled_for present, impact 'maintenance' or first update 'scheduled'",
            "announced_at = first update; incident_updates.posted_at = update created_at (display_at when absent)",
            "maintenance started_at = first 'in progress' update; scheduled_start_at = scheduled_for (empty when the feed lacks it)",
            *(
                [f"zone abbreviations read as fixed offsets: {abbreviations}; any other abbreviation is unreadable"]
                if "status history csv" in variants
                else []
            ),
            *findings,
        ],
    )


def _early_updates(incidents: pl.DataFrame, updates: pl.DataFrame) -> list[str]:
    """The consistency finding of incidents (not maintenances) with an update posted before they started."""
    first = updates.group_by("incident_id").agg(_instant(pl.col("posted_at")).min().alias("first_update"))
    early = (
        incidents.filter(pl.col("kind") == "incident")
        .join(first, on="incident_id", how="inner")
        .filter(pl.col("first_update") < _instant(pl.col("started_at")))
    )
    return consistency_findings(
        early.get_column("incident_id"),
        "an update posted before the incident started",
        "started_at kept as the vendor states it; the earlier update is the announcement (announced_at)",
    )


def _instant(moment_text: pl.Expr) -> pl.Expr:
    """Canonical timestamp text as comparable time (UTC text or, in one file, wall text in one zone)."""
    return moment_text.str.replace(r"Z$", "").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)


def _time(text: pl.Expr, timezone: str | None) -> pl.Expr:
    """A vendor time as canonical text; a trailing zone abbreviation of ZONE_ABBREVIATIONS becomes its offset."""
    stripped = text.str.strip_chars()
    abbreviation = stripped.str.extract(r"\s([A-Z]{1,5})$", 1)
    offset = abbreviation.replace_strict(ZONE_ABBREVIATIONS, default=None, return_dtype=pl.Utf8)
    rewritten = (
        pl.when(offset.is_not_null())
        .then(pl.concat_str([stripped.str.replace(r"\s[A-Z]{1,5}$", ""), offset], separator=" "))
        .otherwise(stripped)
    )
    return timestamp_text(rewritten, TIME_FORMATS, timezone)


def _read(path: Path) -> tuple[list[tuple[int, dict]], pl.DataFrame, str]:
    """(line or position, object) per incident, malformed JSON lines quarantined, and the layout recognised."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        objects, malformed = [], []
        for number, text in enumerate(read_text_document(path).splitlines(), start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                malformed.append(
                    (path.name, number, None, "malformed_row", f"not a JSON object on this line: {error.msg}")
                )
                continue
            if not isinstance(value, dict):
                malformed.append((path.name, number, None, "malformed_row", "not a JSON object on this line"))
                continue
            objects.append((number, value))
        return objects, pl.DataFrame(malformed, schema=empty_quarantine().schema, orient="row"), "status history jsonl"
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_csv(path)
    document = read_json_document(path)
    if isinstance(document, dict) and isinstance(document.get("incidents"), list):
        items, variant = document["incidents"], "v2 incidents.json"
    elif isinstance(document, dict) and isinstance(document.get("scheduled_maintenances"), list):
        items, variant = document["scheduled_maintenances"], "v2 scheduled-maintenances.json"
    elif isinstance(document, list):
        items, variant = document, "v2 incident list"
    else:
        raise ConversionError(
            'not a Statuspage v2 document (expected {"incidents": [...]} or {"scheduled_maintenances": [...]})'
        )
    return (
        [(position, item if isinstance(item, dict) else {}) for position, item in enumerate(items, start=1)],
        empty_quarantine(),
        variant,
    )


def _read_csv(path: Path) -> tuple[list[tuple[int, dict]], pl.DataFrame, str]:
    """A status history CSV as incident objects: the updates cell parsed as JSON (a cell that is not a JSON list
    quarantines its incident as ``malformed_row``)."""
    frame = read_csv_text(path)
    frame = frame.rename({name: "_".join(name.lower().split()) for name in frame.columns if name != "source_line"})
    id_column = next((name for name in _CSV_IDS if name in frame.columns), None)
    updates_column = next((name for name in _CSV_UPDATES if name in frame.columns), None)
    if id_column is None or updates_column is None:
        raise ConversionError(
            "not a status history CSV (needs an id or incident_id column and the updates as JSON in an updates "
            "or incident_updates column)"
        )
    objects, malformed = [], []
    for row in frame.to_dicts():  # the updates are JSON text, parsed cell by cell
        line = row.pop("source_line")
        cell = row.pop(updates_column)
        try:
            updates = json.loads(cell) if cell and cell.strip() else []
        except json.JSONDecodeError as error:
            updates = None
            problem = f"{updates_column}: not JSON: {error.msg}"
        else:
            problem = f"{updates_column}: not a JSON list of updates"
        if not isinstance(updates, list):
            malformed.append((path.name, line, row.get(id_column), "malformed_row", problem))
            continue
        incident = {key: value for key, value in row.items() if value is not None and value.strip()}
        incident["id"] = row.get(id_column)
        objects.append((line, {**incident, "updates": updates}))
    return objects, pl.DataFrame(malformed, schema=empty_quarantine().schema, orient="row"), "status history csv"


def _flatten(line: int, incident: dict) -> tuple[dict[str, str | None], list[tuple]]:
    """An incident's scalars (``title`` read as ``name``) and its updates as (line, position, status, body, created, display)."""
    flat = {key: json_text(value) for key, value in incident.items() if not isinstance(value, (dict, list))}
    if "name" not in flat and "title" in flat:
        flat["name"] = flat.pop("title")
    if isinstance(incident.get("components"), list):  # the feed's component names
        flat["components"] = "; ".join(
            str(item.get("name", item) if isinstance(item, dict) else item) for item in incident["components"]
        )
    raw_updates = incident.get("incident_updates", incident.get("updates")) or []
    updates = [
        (
            line,
            position,
            json_text(update.get("status")),
            json_text(update.get("body", update.get("message"))),
            json_text(update.get("created_at", update.get("at"))),
            json_text(update.get("display_at")),
        )
        for position, update in enumerate(raw_updates, start=1)
        if isinstance(update, dict)
    ]
    return flat, updates


def _convert_objects(objects: list[tuple[int, dict]], file_name: str, options: AdapterOptions):
    flattened = [_flatten(line, incident) for line, incident in objects]
    frame = (
        records_frame([flat for flat, _ in flattened], [line for line, _ in objects])
        if objects
        else pl.DataFrame(schema={"id": pl.Utf8, "source_line": pl.Int64})
    )
    vendor_columns = [name for name in frame.columns if name not in ("id", "source_line")]
    for name in ("id", "impact", *_INCIDENT_TIMES):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(name))
    updates = pl.DataFrame([row for _, rows in flattened for row in rows], schema=_UPDATE_SCHEMA, orient="row")
    updates = updates.with_columns(
        posted_at=_time(pl.coalesce(pl.col("created_at"), pl.col("display_at")), options.timezone),
        status_lower=pl.col("status").str.to_lowercase().str.replace_all(r"[\s_]+", " ").str.strip_chars(),
    )
    per_incident = (
        updates.sort("source_line", "position")
        .group_by("source_line")
        .agg(
            pl.col("posted_at").drop_nulls().sort().first().alias("announced_at__ts"),
            pl.col("status_lower").first().alias("first_update_status"),
            pl.col("posted_at").filter(pl.col("status_lower") == "in progress").sort().first().alias("in_progress__ts"),
            pl.coalesce(pl.col("created_at"), pl.col("display_at"))
            .filter(
                pl.col("posted_at").is_null() & pl.coalesce(pl.col("created_at"), pl.col("display_at")).is_not_null()
            )
            .first()
            .alias("update__bad"),
        )
    )
    parsed = {f"{name}__ts": _time(pl.col(name), options.timezone) for name in _INCIDENT_TIMES}
    prepared = frame.with_columns(**parsed).join(per_incident, on="source_line", how="left")
    is_maintenance = (
        pl.col("scheduled_for").is_not_null()
        | (pl.col("impact").str.to_lowercase() == "maintenance")
        | (pl.col("first_update_status") == "scheduled")
    )
    prepared = prepared.with_columns(
        kind=pl.when(is_maintenance).then(pl.lit("maintenance")).otherwise(pl.lit("incident"))
    )
    checks = [
        Check(pl.col("id").is_null(), "missing_value", pl.lit("id: missing incident id")),
        *[bad_timestamp(name, pl.col(f"{name}__ts")) for name in _INCIDENT_TIMES],
        Check(
            pl.col("update__bad").is_not_null(),
            "bad_timestamp",
            pl.format("an update's created_at: not a timestamp this format knows: {}", pl.col("update__bad")),
        ),
    ]
    passed, quarantine = split_checked(prepared, checks, file_name, "id")
    maintenance = pl.col("kind") == "maintenance"
    incidents = passed.select(
        pl.col("id").alias("incident_id"),
        "kind",
        pl.col("impact").alias("severity"),
        pl.when(maintenance)
        .then(pl.col("in_progress__ts"))
        .otherwise(pl.coalesce(pl.col("started_at__ts"), pl.col("created_at__ts")))
        .alias("started_at"),
        pl.col("resolved_at__ts").alias("resolved_at"),
        pl.col("announced_at__ts").alias("announced_at"),
        pl.col("scheduled_for__ts").alias("scheduled_start_at"),
        pl.col("postmortem_published_at__ts").alias("postmortem_published_at"),
        # vendor columns kept; one named like a contract column keeps its own value as vendor_<name>
        *[pl.col(name).alias(f"vendor_{name}" if name in _CONTRACT else name) for name in vendor_columns],
    )
    converted_updates = (
        updates.join(passed.select("source_line", "id"), on="source_line", how="inner")
        .sort("source_line", "position")
        .select(
            pl.col("id").alias("incident_id"),
            "posted_at",
            pl.col("status").alias("update_status"),
            "body",
            pl.col("created_at").alias("update_created_at"),
            pl.col("display_at").alias("update_display_at"),
        )
    )
    return incidents, converted_updates.filter(pl.col("posted_at").is_not_null()), quarantine


ADAPTER = Adapter(
    name="statuspage",
    description="Atlassian Statuspage v2 incidents.json / scheduled-maintenances.json, or a status history JSONL feed",
    convert=convert,
)
