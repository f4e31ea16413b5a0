"""PagerDuty incidents → canonical incidents (kind incident, severity, started / acknowledged / resolved).

Three layouts, told apart by their content:

* **incidents report CSV** (Analytics / incidents export): ``id, incident_number, service_name,
  escalation_policy_name, created_on, resolved_on, seconds_to_first_ack, seconds_to_resolve, urgency`` …;
  acknowledged_at = created_on + seconds_to_first_ack, resolved_at = resolved_on (else created_on +
  seconds_to_resolve).
* **REST v2 JSON** (``GET /incidents``: ``{"incidents": [...]}``, or a list, or ``{"incident": {...}}``):
  ``id, incident_number, created_at, status, urgency, priority.summary, service.summary, acknowledgements[].at,
  last_status_change_at`` and, when included, ``log_entries[]``. acknowledged_at = the earliest of
  ``acknowledgements[].at`` and the ``acknowledge_log_entry`` times (PagerDuty lists only the current
  acknowledgements, so a resolved incident keeps its acknowledgement in the log entries only); resolved_at = the
  ``resolve_log_entry`` time, else ``last_status_change_at`` of a resolved incident.
* **raw API table CSV** (e.g. Apache DevLake's ``_raw_pagerduty_incidents``): one REST incident object per row
  in the ``data`` column, read as above.
* **incident list flattened to CSV by pandas** (``id, incident_number, created_at, status, …`` with nested
  values as Python literals, ``{'summary': 'DevService', …}``): each row read back with ``ast.literal_eval``
  (never ``eval``), then as above.

severity = the incident's priority (``P1`` …) when it has one, else its urgency (``high`` / ``low``).
PagerDuty states no SLA verdict, so this format writes no vendor_sla rows.
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
    bad_duration,
    bad_timestamp,
    empty_quarantine,
    input_record,
    json_text,
    python_or_json,
    read_csv_text,
    read_json_document,
    records_frame,
    shift_timestamp_text,
    split_checked,
    timestamp_text,
)

REPORT_COLUMNS = ("id", "created_on")
FLATTENED_COLUMNS = ("id", "incident_number", "created_at")
_NUMBER = r"^\d+(\.\d+)?$"


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    incidents, quarantines, inputs, variants = [], [], [], set()
    for path in paths:
        if path.suffix.lower() == ".json":
            frame, malformed, variant = _api_frame(read_json_document(path)), empty_quarantine(), "rest v2 json"
        else:
            frame, malformed, variant = _csv_frame(path)
        converted, quarantine = (
            _from_report(frame, path.name, options)
            if variant == "incidents report csv"
            else _from_api(frame, path.name, options)
        )
        quarantine = pl.concat([malformed, quarantine])
        incidents.append(converted)
        quarantines.append(quarantine)
        inputs.append(input_record(path, frame.height + malformed.height, quarantine.height, variant))
        variants.add(variant)
    return Conversion(
        format="pagerduty",
        format_version="pagerduty " + " + ".join(sorted(variants)),
        tables={"incidents": pl.concat(incidents, how="diagonal")},
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        column_sources={
            "incidents": {
                "incident_id": "id",
                "kind": "constant 'incident'",
                "severity": "priority.summary, else urgency",
                "started_at": "created_at (report: created_on)",
                "acknowledged_at": "acknowledgements[].at / acknowledge_log_entry (report: seconds_to_first_ack)",
                "resolved_at": "resolve_log_entry / last_status_change_at (report: resolved_on / seconds_to_resolve)",
            }
        },
        notes=[
            "severity = priority when set, else urgency",
            "acknowledged_at = first acknowledgement (report: created_on + seconds_to_first_ack)",
            "resolved_at = resolve log entry, else last_status_change_at of a resolved incident (report: resolved_on)",
        ],
    )


def _csv_frame(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """A report CSV as it is, or the incident objects of a raw API table (JSON in ``data``) flattened."""
    frame = read_csv_text(path)
    if all(name in frame.columns for name in REPORT_COLUMNS):
        return frame, empty_quarantine(), "incidents report csv"
    if "data" not in frame.columns and all(name in frame.columns for name in FLATTENED_COLUMNS):
        return _flattened_frame(frame), empty_quarantine(), "incident list flattened to csv"
    if "data" not in frame.columns:
        raise ConversionError(
            f"{path.name}: not a PagerDuty incidents report (needs id, created_on), a raw API table (needs data)"
            " nor an incident list flattened to CSV (needs id, incident_number, created_at)"
        )
    records, lines, malformed = [], [], []
    for line, text in zip(frame["source_line"], frame["data"], strict=False):
        try:
            incident = json.loads(text or "")
        except json.JSONDecodeError as error:
            malformed.append((path.name, line, None, "malformed_row", f"data: not a JSON object: {error.msg}"))
            continue
        if not isinstance(incident, dict):
            malformed.append((path.name, line, None, "malformed_row", "data: not a JSON object"))
            continue
        records.append(_flatten(incident))
        lines.append(line)
    quarantine = pl.DataFrame(malformed, schema=empty_quarantine().schema, orient="row")
    return records_frame(records, lines) if records else _empty_api_frame(), quarantine, "raw api table csv"


def _flattened_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A REST incident list written to CSV by pandas (``pd.DataFrame(incidents).to_csv()``): one incident per row,
    nested values (service, acknowledgements, log_entries) as Python literals, read with ``ast.literal_eval``
    (:func:`python_or_json`), then flattened as an API incident."""
    names = [name for name in frame.columns if name != "source_line" and not name.startswith("Unnamed")]
    records = []
    for row in frame.select(names).iter_rows():  # literal_eval has no set-based form
        records.append(
            _flatten(
                {
                    name: python_or_json(value) if value and value.lstrip()[:1] in ("{", "[") else value
                    for name, value in zip(names, row, strict=True)
                    if value not in (None, "", "nan", "None")
                }
            )
        )
    return records_frame(records, frame.get_column("source_line").to_list()) if records else _empty_api_frame()


def _api_frame(document: object) -> pl.DataFrame:
    """REST v2 incidents, flattened; ``source_line`` is the incident's position (1-based) in the response."""
    if isinstance(document, dict) and isinstance(document.get("incidents"), list):
        incidents = document["incidents"]
    elif isinstance(document, dict) and isinstance(document.get("incident"), dict):
        incidents = [document["incident"]]
    elif isinstance(document, list):
        incidents = document
    else:
        raise ConversionError('not a PagerDuty REST response (expected {"incidents": [...]})')
    records = [_flatten(incident if isinstance(incident, dict) else {}) for incident in incidents]
    return records_frame(records, range(1, len(records) + 1)) if records else _empty_api_frame()


def _empty_api_frame() -> pl.DataFrame:
    return pl.DataFrame(schema={"id": pl.Utf8, "created_at": pl.Utf8, "source_line": pl.Int64})


def _flatten(incident: dict) -> dict[str, str | None]:
    """Top-level scalars as they are, references by their summary, acknowledgement and resolution times as lists."""
    flat = {key: json_text(value) for key, value in incident.items() if not isinstance(value, (dict, list))}
    for key, value in incident.items():
        if isinstance(value, dict) and "summary" in value:
            flat[key] = json_text(value["summary"])
    entries = [entry for entry in incident.get("log_entries") or [] if isinstance(entry, dict)]
    acknowledged = [ack.get("at") for ack in incident.get("acknowledgements") or [] if isinstance(ack, dict)]
    acknowledged += [entry.get("created_at") for entry in entries if entry.get("type") == "acknowledge_log_entry"]
    resolved = [entry.get("created_at") for entry in entries if entry.get("type") == "resolve_log_entry"]
    # the times are parsed (and their earliest / latest taken) set-based in _from_api
    flat["acknowledgement_times"] = json.dumps([str(at) for at in acknowledged if at]) if acknowledged else None
    flat["resolve_times"] = json.dumps([str(at) for at in resolved if at]) if resolved else None
    flat["log_entries"] = str(len(entries)) if entries else None
    return flat


def _listed_time(
    frame: pl.DataFrame, column: str, name: str, options: AdapterOptions, *, earliest: bool
) -> pl.DataFrame:
    """Per incident (source_line): the earliest / latest readable time of a JSON-list column as ``<name>__ts``,
    and the first unreadable one as ``<name>__bad``."""
    listed = (
        frame.select("source_line", pl.col(column).str.json_decode(pl.List(pl.Utf8)).alias("text"))
        .explode("text")
        .drop_nulls("text")
        .with_columns(canonical=timestamp_text(pl.col("text"), ISO_FORMATS, options.timezone))
        # canonical text is all UTC ("…Z") or all wall time in one zone: its value without the Z sorts as instants
        .with_columns(
            instant=pl.col("canonical")
            .str.replace(r"Z$", "")
            .str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)
        )
    )
    best = (
        listed.filter(pl.col("canonical").is_not_null())
        .group_by("source_line")
        .agg(pl.col("canonical").sort_by("instant", descending=not earliest).first().alias(f"{name}__ts"))
    )
    bad = (
        listed.filter(pl.col("canonical").is_null())
        .group_by("source_line")
        .agg(pl.col("text").first().alias(f"{name}__bad"))
    )
    return best.join(bad, on="source_line", how="full", coalesce=True)


def _from_api(frame: pl.DataFrame, file_name: str, options: AdapterOptions) -> tuple[pl.DataFrame, pl.DataFrame]:
    def column(name: str) -> pl.Expr:
        return pl.col(name) if name in frame.columns else pl.lit(None, pl.Utf8)

    listed = {"acknowledgement_times": "acknowledged_at", "resolve_times": "resolve_log_entry"}
    prepared = frame.with_columns(started_at__ts=timestamp_text(column("created_at"), ISO_FORMATS, options.timezone))
    for vendor, name in listed.items():
        if vendor not in frame.columns:
            prepared = prepared.with_columns(
                pl.lit(None, pl.Utf8).alias(f"{name}__ts"), pl.lit(None, pl.Utf8).alias(f"{name}__bad")
            )
            continue
        times = _listed_time(frame, vendor, name, options, earliest=name == "acknowledged_at")
        prepared = prepared.join(times, on="source_line", how="left")
    last_change = timestamp_text(column("last_status_change_at"), ISO_FORMATS, options.timezone)
    prepared = prepared.with_columns(
        resolved_at__ts=pl.coalesce(
            pl.col("resolve_log_entry__ts"), pl.when(column("status") == "resolved").then(last_change)
        )
    )
    checks = [
        Check(column("id").is_null(), "missing_value", pl.lit("id: missing incident id")),
        Check(column("created_at").is_null(), "missing_value", pl.lit("created_at: missing (the incident's start)")),
        bad_timestamp("created_at", pl.col("started_at__ts")) if "created_at" in frame.columns else None,
        Check(
            (column("status") == "resolved") & column("last_status_change_at").is_not_null() & last_change.is_null(),
            "bad_timestamp",
            pl.format("last_status_change_at: not a timestamp this format knows: {}", column("last_status_change_at")),
        ),
        *[
            Check(
                pl.col(f"{name}__bad").is_not_null(),
                "bad_timestamp",
                pl.format("{}: not a timestamp this format knows: {}", pl.lit(label), pl.col(f"{name}__bad")),
            )
            for name, label in (
                ("acknowledged_at", "acknowledgements[].at / acknowledge_log_entry.created_at"),
                ("resolve_log_entry", "resolve_log_entry.created_at"),
            )
        ],
    ]
    passed, quarantine = split_checked(
        prepared.sort("source_line"), [check for check in checks if check], file_name, "id"
    )
    canonical = _incident_columns(column, pl.col("resolved_at__ts"))
    kept = [pl.col(name) for name in frame.columns if name not in ("id", "source_line", *listed)]
    return passed.select(*canonical, *kept), quarantine


def _from_report(frame: pl.DataFrame, file_name: str, options: AdapterOptions) -> tuple[pl.DataFrame, pl.DataFrame]:
    def column(name: str) -> pl.Expr:
        return pl.col(name).str.strip_chars() if name in frame.columns else pl.lit(None, pl.Utf8)

    started = timestamp_text(column("created_on"), ISO_FORMATS, options.timezone)
    zone = options.timezone or "UTC"  # wall text stays wall text; UTC moves it by the seconds as they are
    prepared = frame.with_columns(
        started_at__ts=started,
        resolved_on__ts=timestamp_text(column("resolved_on"), ISO_FORMATS, options.timezone),
        acknowledged_at__ts=shift_timestamp_text(
            started, column("seconds_to_first_ack").cast(pl.Float64, strict=False), zone
        ),
        resolved_by_seconds__ts=shift_timestamp_text(
            started, column("seconds_to_resolve").cast(pl.Float64, strict=False), zone
        ),
    )
    checks = [
        Check(column("id").is_null(), "missing_value", pl.lit("id: missing incident id")),
        Check(column("created_on").is_null(), "missing_value", pl.lit("created_on: missing (the incident's start)")),
        bad_timestamp("created_on", pl.col("started_at__ts")),
        bad_timestamp("resolved_on", pl.col("resolved_on__ts")) if "resolved_on" in frame.columns else None,
        *[
            Check(
                column(name).is_not_null() & (~column(name).str.contains(_NUMBER) | bad_duration(column(name), 1)),
                "bad_number",
                pl.format("{}: not a number of seconds: {}", pl.lit(name), column(name)),
            )
            for name in ("seconds_to_first_ack", "seconds_to_resolve")
        ],
    ]
    passed, quarantine = split_checked(prepared, [check for check in checks if check], file_name, "id")
    canonical = _incident_columns(column, pl.coalesce(pl.col("resolved_on__ts"), pl.col("resolved_by_seconds__ts")))
    kept = [pl.col(name) for name in frame.columns if name not in ("id", "source_line")]
    return passed.select(*canonical, *kept), quarantine


ADAPTER = Adapter(
    name="pagerduty",
    description="PagerDuty incidents report CSV, REST v2 incidents JSON, or a raw API table with JSON in `data`",
    convert=convert,
)


def _incident_columns(column, resolved_at: pl.Expr) -> list[pl.Expr]:
    """The canonical incident columns of a checked frame (``column`` reads a vendor column, empty when absent)."""
    return [
        pl.col("id").alias("incident_id"),
        pl.lit("incident").alias("kind"),
        pl.coalesce(column("priority"), column("urgency")).alias("severity"),
        pl.col("started_at__ts").alias("started_at"),
        pl.col("acknowledged_at__ts").alias("acknowledged_at"),
        resolved_at.alias("resolved_at"),
    ]
