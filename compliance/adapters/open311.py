"""City 311 CRM cases → canonical tickets, with the CRM's own due time and on-time verdict as vendor_sla rows.

Layouts:

* **CRM case export CSV** (Boston 311 and its kin): ``CASE_ENQUIRY_ID, OPEN_DT, TARGET_DT, CLOSED_DT,
  OnTime_Status, CASE_STATUS, CASE_TITLE, TYPE, Source`` …, times like ``01/01/2015 07:27:13 AM`` in the city's
  local time (pass ``--timezone America/New_York``, or let the policy's ``source_timezone`` read them).
* **Open311 GeoReport v2 JSON** (``GET /requests.json``: a list, or ``{"service_requests": [...]}``):
  ``service_request_id, status, service_name, service_code, description, requested_datetime,
  expected_datetime, updated_datetime``.
* **Socrata 311 export** (an open-data portal's 311 dataset, e.g. NYC "311 Service Requests", dataset
  ``erm2-nwe9`` on data.cityofnewyork.us): the CSV download (``Unique Key, Created Date, Closed Date, Agency,
  Complaint Type, Descriptor, Status, Due Date, Resolution Description`` …, times like ``01/01/2015 12:00:00 AM``)
  or the SODA API (``/resource/erm2-nwe9.json``: a list of records with the field names ``unique_key,
  created_date, closed_date, complaint_type, status, due_date``, floating timestamps like
  ``2015-01-01T00:00:00.000``; dev.socrata.com "Floating Timestamp"). Headers are matched in either spelling.
  Floating timestamps carry no zone: they are the city's wall time (``--timezone``, else ``source_timezone``).

Readings: a case is a ticket (ticket_id = CASE_ENQUIRY_ID / service_request_id, created_at = OPEN_DT /
requested_datetime, subject = CASE_TITLE); its channel is the case type (TYPE / service_name), which the policy
names as a channel or alias; status ``open`` / ``closed``. resolved_at = CLOSED_DT; GeoReport has no closing
time, so a closed request is resolved at its ``updated_datetime`` (its last change). The CRM's verdict on the
resolution: ``vendor_due_at`` = TARGET_DT / expected_datetime; OnTime_Status ``OVERDUE`` is a miss and
``ONTIME`` a success once the case is closed (on an open case it only means "not overdue yet", written without a
verdict). GeoReport states a due time but no verdict. Socrata: ticket_id = unique_key, channel = complaint_type,
resolved_at = closed_date, status Open / Assigned / In Progress / Started / Email Sent → open, Pending → pending,
Closed → closed (others, e.g. ``Unspecified``, are quarantined unless the --mapping file spells them);
``due_date`` ("the date when the responding agency is expected to update the SR", per the dataset's data
dictionary, set from the complaint type's internal SLA) is read as the resolution's vendor due time, without a
verdict.
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
    json_text,
    read_csv_text,
    read_json_document,
    records_frame,
    split_checked,
    timestamp_text,
)
from compliance.adapters.value_overrides import apply_value_overrides, value_overrides

CRM_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", *ISO_FORMATS)
# open / closed, and the contract's own statuses (which a --mapping override may write)
CRM_STATUSES = {status: status for status in ("new", "open", "pending", "on_hold", "solved", "closed")}
ON_TIME = {"ontime": "true", "overdue": "false"}
# vendor column -> contract column, per layout
CRM_COLUMNS = {
    "CASE_ENQUIRY_ID": "ticket_id",
    "OPEN_DT": "created_at",
    "CLOSED_DT": "resolved_at",
    "TARGET_DT": "due",
    "CASE_STATUS": "status",
    "TYPE": "channel",
    "CASE_TITLE": "subject",
    "OnTime_Status": "on_time",
}
GEOREPORT_COLUMNS = {
    "service_request_id": "ticket_id",
    "requested_datetime": "created_at",
    "updated_datetime": "updated",
    "expected_datetime": "due",
    "status": "status",
    "service_name": "channel",
    "description": "description",
}

# Socrata field names (the SODA API's; the CSV download's headers, lower-cased with "_" for blanks, are the same)
SOCRATA_COLUMNS = {
    "unique_key": "ticket_id",
    "created_date": "created_at",
    "closed_date": "resolved_at",
    "due_date": "due",
    "status": "status",
    "complaint_type": "channel",
    "descriptor": "subject",
    "resolution_description": "description",
}
SOCRATA_STATUSES = {
    "assigned": "open",
    "in progress": "open",
    "started": "open",
    "email sent": "open",
}

_OUTPUT = ("ticket_id", "channel", "created_at", "resolved_at", "status", "subject", "description")


def _field_name(header: str) -> str:
    """A Socrata CSV header as its API field name: ``Unique Key`` -> ``unique_key``."""
    return "_".join(header.strip().lower().replace("-", " ").split())


def _socrata_columns(frame: pl.DataFrame) -> dict[str, str] | None:
    """vendor column -> contract column when ``frame`` has a Socrata 311 layout (unique_key and created_date)."""
    found = {name: SOCRATA_COLUMNS[_field_name(name)] for name in frame.columns if _field_name(name) in SOCRATA_COLUMNS}
    return found if {"ticket_id", "created_at"} <= set(found.values()) else None


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    tickets, verdicts, quarantines, inputs, variants = [], [], [], [], set()
    for path in paths:
        if path.suffix.lower() == ".json":
            frame = _json_records_frame(read_json_document(path))
            socrata = _socrata_columns(frame)
            if socrata:
                columns, variant = socrata, "socrata soda json"
            else:
                frame, columns, variant = _with_georeport_columns(frame), GEOREPORT_COLUMNS, "georeport v2 json"
        else:
            frame, columns, variant = read_csv_text(path), CRM_COLUMNS, "crm case export csv"
            missing = [name for name in ("CASE_ENQUIRY_ID", "OPEN_DT") if name not in frame.columns]
            socrata = _socrata_columns(frame) if missing else None
            if socrata:
                columns, variant = socrata, "socrata csv export"
            elif missing:
                raise ConversionError(
                    f"{path.name}: not a 311 CRM case export (missing {', '.join(missing)}) nor a Socrata 311 "
                    "export (Unique Key / unique_key and Created Date / created_date)"
                )
            # an unnamed first column is a spreadsheet's row index: kept, under a name
            vendor_names = [name for name in frame.columns if name != "source_line"]
            frame = frame.rename(
                {name: f"column_{index}" for index, name in enumerate(vendor_names, start=1) if not name}
            )
        statuses = {**CRM_STATUSES, **SOCRATA_STATUSES} if variant.startswith("socrata") else CRM_STATUSES
        converted, vendor, quarantine = _convert(frame, columns, statuses, path.name, options)
        tickets.append(converted)
        verdicts.append(vendor)
        quarantines.append(quarantine)
        inputs.append(input_record(path, frame.height, quarantine.height, variant))
        variants.add(variant)
    return Conversion(
        format="open311",
        format_version="open311 " + " + ".join(sorted(variants)),
        tables={"tickets": pl.concat(tickets, how="diagonal")},
        quarantine=pl.concat([empty_quarantine(), *quarantines]),
        inputs=inputs,
        vendor_sla=pl.concat(verdicts, how="diagonal"),
        notes=[
            "channel = the case type (TYPE / service_name); subject = CASE_TITLE",
            "vendor_sla resolution: vendor_due_at = TARGET_DT / expected_datetime; OVERDUE = missed, ONTIME = met once closed",
            "GeoReport: a closed request is resolved at its updated_datetime",
            *(
                [
                    "Socrata: ticket_id = unique_key, channel = complaint_type, resolved_at = closed_date; due_date "
                    "(when the agency is expected to update the request) = the resolution's vendor due time, no verdict",
                    "Socrata floating timestamps have no zone: read in "
                    + (options.timezone or "the policy's source_timezone"),
                ]
                if any(variant.startswith("socrata") for variant in variants)
                else []
            ),
        ],
    )


def _json_records_frame(document: object) -> pl.DataFrame:
    """The records of a GeoReport or SODA response (a list, or GeoReport's ``{"service_requests": [...]}``)."""
    if isinstance(document, dict) and isinstance(document.get("service_requests"), list):
        requests = document["service_requests"]
    elif isinstance(document, list):
        requests = document
    else:
        raise ConversionError(
            "not an Open311 GeoReport v2 or Socrata SODA response "
            '(expected a list of requests or {"service_requests": [...]})'
        )
    records = [
        {key: json_text(value) for key, value in request.items()} if isinstance(request, dict) else {}
        for request in requests
    ]
    return records_frame(records, range(1, len(records) + 1))


def _with_georeport_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(None, pl.Utf8).alias(name) for name in GEOREPORT_COLUMNS if name not in frame.columns
    )


def _convert(
    frame: pl.DataFrame, columns: dict[str, str], statuses: dict[str, str], file_name: str, options: AdapterOptions
):
    vendor = {canonical: name for name, canonical in columns.items() if name in frame.columns}

    def column(canonical: str) -> pl.Expr:
        return pl.col(vendor[canonical]).str.strip_chars() if canonical in vendor else pl.lit(None, pl.Utf8)

    def parsed(canonical: str) -> pl.Expr:
        return timestamp_text(column(canonical), CRM_FORMATS, options.timezone)

    # the --mapping file's value overrides apply to copies: the vendor columns are kept as exported
    frame = frame.with_columns(column("channel").alias("channel__raw"), column("status").alias("status__raw"))
    frame = apply_value_overrides(frame, value_overrides(options), {"channel": "channel__raw", "status": "status__raw"})
    status_text = pl.col("status__raw").str.to_lowercase()
    on_time_text = column("on_time").str.to_lowercase()
    prepared = frame.with_columns(
        created__ts=parsed("created_at"),
        resolved__ts=parsed("resolved_at"),
        updated__ts=parsed("updated"),
        due__ts=parsed("due"),
        status__mapped=status_text.replace_strict(statuses, default=None, return_dtype=pl.Utf8),
        on_time__mapped=on_time_text.replace_strict(ON_TIME, default=None, return_dtype=pl.Utf8),
    )
    record_id = vendor["ticket_id"]
    checks = [
        Check(column("ticket_id").is_null(), "missing_value", pl.format("{}: missing case id", pl.lit(record_id))),
        Check(
            column("created_at").is_null(),
            "missing_value",
            pl.format("{}: missing (the case's opening)", pl.lit(vendor["created_at"])),
        ),
        *[
            bad_timestamp(vendor[canonical], pl.col(f"{short}__ts"))
            for canonical, short in (
                ("created_at", "created"),
                ("resolved_at", "resolved"),
                ("updated", "updated"),
                ("due", "due"),
            )
            if canonical in vendor
        ],
        *[
            Check(
                text.is_not_null() & pl.col(f"{name}__mapped").is_null(),
                "unknown_value",
                pl.format("{}: unknown value {}", pl.lit(vendor.get(name, name)), text),
            )
            for name, text in (("status", pl.col("status__raw")), ("on_time", column("on_time")))
            if name in vendor
        ],
    ]
    passed, quarantine = split_checked(prepared, checks, file_name, record_id)
    closed = pl.col("status__mapped") == "closed"
    resolved = pl.col("resolved__ts") if "resolved_at" in vendor else pl.when(closed).then(pl.col("updated__ts"))
    tickets = passed.select(
        column("ticket_id").alias("ticket_id"),
        pl.col("channel__raw").alias("channel"),
        pl.col("created__ts").alias("created_at"),
        resolved.alias("resolved_at"),
        pl.col("status__mapped").alias("status"),
        *[column(name).alias(name) for name in ("subject", "description") if name in vendor],
        # vendor columns kept, except those moved into a contract column of the same or another name
        *[
            pl.col(name)
            for name in frame.columns
            if name not in ("source_line", *_OUTPUT)
            and "__" not in name
            and columns.get(name) not in ("ticket_id", "subject", "description")
        ],
    )
    met = pl.col("on_time__mapped")
    verdicts = passed.filter(pl.col("due__ts").is_not_null() | met.is_not_null()).select(
        column("ticket_id").alias("record_id"),
        pl.lit("tickets").alias("source"),
        pl.lit("resolution").alias("metric"),
        pl.col("due__ts").alias("vendor_due_at"),
        pl.when((met == "false") | closed).then(met).alias("vendor_met"),
        pl.when(met.is_null() | closed)
        .then(column("on_time"))
        .otherwise(pl.format("{} (case still open)", column("on_time")))
        .alias("vendor_status"),
        pl.lit(
            ", ".join(
                name for name, canonical in columns.items() if canonical in ("on_time", "due") and name in frame.columns
            )
        ).alias("vendor_field"),
    )
    return tickets, verdicts, quarantine


ADAPTER = Adapter(
    name="open311",
    description="City 311 CRM case export CSV (OPEN_DT, TARGET_DT, CLOSED_DT, OnTime_Status) or Open311 GeoReport v2 JSON",
    convert=convert,
)
