"""Opsgenie incidents → canonical incidents (kind incident, severity, started / resolved).

Layouts, told apart by their content:

* **Incident API JSON** (``GET /v1/incidents``: ``{"data": [...]}``, or a list, or ``{"data": {...}}`` of one
  incident; https://docs.opsgenie.com/docs/incident-api): ``id, tinyId, message, status`` (open / resolved /
  closed), ``priority`` (P1 … P5), ``createdAt, updatedAt, impactStartDate, impactEndDate, impactedServices``.
* **raw API table CSV** (e.g. Apache DevLake's ``_raw_opsgenie_incidents``): one incident object per row in the
  ``data`` column.

started_at = ``impactStartDate``, else ``createdAt``; resolved_at = ``impactEndDate`` of an incident whose status
is resolved or closed; severity = ``priority``. An Opsgenie incident record carries no acknowledgement time and no
SLA verdict: acknowledged_at is not filled (the acknowledgement rules are "not assessed") and no vendor_sla rows
are written. Fields are read set-based with JSON paths (:func:`polars.Expr.str.json_path_match`).
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
    read_csv_text,
    read_json_document,
    split_checked,
    timestamp_text,
)
from compliance.adapters.layout import text

FIELDS = ("id", "tinyId", "message", "status", "priority", "createdAt", "impactStartDate", "impactEndDate")
TERMINAL = ("resolved", "closed")


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    incidents, quarantines, inputs, variants = [], [], [], set()
    for path in paths:
        if path.suffix.lower() == ".json":
            frame, variant = _api_frame(read_json_document(path), path), "incident api json"
        else:
            frame, variant = read_csv_text(path), "raw api table csv"
            if "data" not in frame.columns:
                raise ConversionError(f"{path.name}: not an Opsgenie raw incidents table (needs the column data)")
        converted, quarantine = _incidents(frame, path.name, options)
        incidents.append(converted)
        quarantines.append(quarantine)
        inputs.append(input_record(path, frame.height, quarantine.height, variant))
        variants.add(variant)
    return Conversion(
        format="opsgenie",
        format_version="opsgenie " + " + ".join(sorted(variants)),
        tables={"incidents": pl.concat(incidents, how="diagonal_relaxed")},
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        notes=[
            "started_at = impactStartDate, else createdAt; resolved_at = impactEndDate of a resolved/closed incident",
            "severity = priority; acknowledged_at not filled (an Opsgenie incident record carries none)",
        ],
        filled_columns={"incidents": ("incident_id", "kind", "severity", "started_at", "resolved_at")},
        column_sources={
            "incidents": {
                "incident_id": "data.id",
                "kind": "constant 'incident'",
                "severity": "data.priority",
                "started_at": "data.impactStartDate / data.createdAt",
                "resolved_at": "data.impactEndDate (status resolved / closed)",
            }
        },
    )


def _api_frame(document: object, path: Path) -> pl.DataFrame:
    """Each incident object of an API response as JSON text in ``data``; ``source_line`` is its position."""
    data = document.get("data") if isinstance(document, dict) else document
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ConversionError(f'{path.name}: not an Opsgenie incident API response (expected {{"data": [...]}})')
    return pl.DataFrame(
        {"data": [json.dumps(item) for item in data], "source_line": list(range(1, len(data) + 1))},
        schema={"data": pl.Utf8, "source_line": pl.Int64},
    )


def _incidents(frame: pl.DataFrame, file_name: str, options: AdapterOptions) -> tuple[pl.DataFrame, pl.DataFrame]:
    fields = frame.select(
        "source_line", *(pl.col("data").str.json_path_match(f"$.{name}").alias(name) for name in FIELDS)
    )
    started_text = pl.coalesce(text("impactStartDate"), text("createdAt"))
    prepared = fields.with_columns(
        started_at__ts=timestamp_text(started_text, ISO_FORMATS, options.timezone),
        resolved_at__ts=timestamp_text(text("impactEndDate"), ISO_FORMATS, options.timezone),
    )
    checks = [
        Check(text("id").is_null(), "missing_value", pl.lit("data: not an Opsgenie incident object (no id)")),
        Check(started_text.is_null(), "missing_value", pl.lit("impactStartDate / createdAt: missing")),
        bad_timestamp("impactStartDate", pl.col("started_at__ts")),
        Check(
            text("impactStartDate").is_null() & text("createdAt").is_not_null() & pl.col("started_at__ts").is_null(),
            "bad_timestamp",
            pl.format("createdAt: not a timestamp this format knows: {}", text("createdAt")),
        ),
        bad_timestamp("impactEndDate", pl.col("resolved_at__ts")),
    ]
    passed, quarantine = split_checked(prepared, checks, file_name, "id")
    terminal = pl.col("status").str.to_lowercase().is_in(list(TERMINAL))
    return (
        passed.select(
            pl.col("id").alias("incident_id"),
            pl.lit("incident").alias("kind"),
            pl.col("priority").alias("severity"),
            pl.col("started_at__ts").alias("started_at"),
            pl.when(terminal).then(pl.col("resolved_at__ts")).alias("resolved_at"),
            *(pl.col(name) for name in ("tinyId", "message", "status", "createdAt")),
        ),
        quarantine,
    )


ADAPTER = Adapter(
    name="opsgenie",
    description="Opsgenie incident API JSON ({data: [...]}) or a raw API table with the incident JSON in `data`",
    convert=convert,
)
