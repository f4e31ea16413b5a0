"""Freshdesk ticket export CSV → tickets, with Freshdesk's own first-response and resolution SLA verdicts."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from compliance.adapters.base import Adapter, AdapterOptions, Conversion, ConversionError
from compliance.adapters.layout import TableLayout, VendorSlaColumns, convert_csv_files

LAYOUT = TableLayout(
    source="tickets",
    columns={
        "ticket_id": ("Ticket ID",),
        # The group is the support line; the ticket type or the source (Email, Portal, ...) when only they are known.
        "channel": ("Group", "Type", "Source"),
        "created_at": ("Created time",),
        "first_response_at": ("Initial response time",),
        "resolved_at": ("Resolved time", "Closed time"),
        "status": ("Status",),
        "subject": ("Subject",),
        "description": ("Description",),
    },
    values={
        "status": {
            "open": "open",
            "pending": "pending",
            "resolved": "solved",
            "closed": "closed",
            "waiting on customer": "pending",
            "waiting on third party": "on_hold",
        }
    },
    vendor_sla=(
        VendorSlaColumns(
            "first_response", verdict="First response status", met=("Within SLA",), breached=("SLA Violated",)
        ),
        VendorSlaColumns(
            "resolution",
            verdict="Resolution status",
            met=("Within SLA",),
            breached=("SLA Violated",),
            due="Due by Time",
        ),
    ),
    numbers=("First response time (in hrs)", "Resolution time (in hrs)"),
    required_headers=False,
)
VERSION = "freshdesk ticket export csv"


def _recognise(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    if not {"Ticket ID", "Created time"} <= set(frame.columns):
        raise ConversionError(
            f"{path.name}: not a Freshdesk ticket export (needs the columns Ticket ID and Created time)"
        )
    return frame


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    converted = convert_csv_files(paths, LAYOUT, options, VERSION, prepare=_recognise)
    return Conversion(
        format="freshdesk",
        format_version=VERSION,
        tables={"tickets": converted.table},
        quarantine=converted.quarantine,
        inputs=converted.inputs,
        vendor_sla=converted.vendor_sla,
        column_sources={"tickets": converted.column_sources},
        notes=[
            "channel: Group, else Type, else Source, whichever is a channel spelling of the policy or the mapping file",
            "first_response_at: Initial response time; resolved_at: Resolved time, else Closed time",
            "vendor verdicts: First response status and Resolution status (Within SLA / SLA Violated); Due by Time is the resolution due time",
            "wall times read in " + options.timezone
            if options.timezone
            else "wall times kept without an offset (read in the policy's source_timezone)",
        ],
    )


ADAPTER = Adapter(
    name="freshdesk",
    description="Freshdesk ticket export CSV (Ticket ID, Created time, Initial response time, SLA statuses, Due by Time)",
    convert=convert,
)
