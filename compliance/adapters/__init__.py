"""Vendor export adapters: each turns one vendor's export into the canonical files of the data contract.

Every adapter module exposes ``ADAPTER``, an :class:`compliance.adapters.base.Adapter`. The registry maps the
``--format`` names of ``compliance-report convert`` to those modules, imported only when used, and to the layouts
each is recognised by (:mod:`compliance.adapters.detect` derives format detection from them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry is read by `compliance-report --help`, which must not pay for polars
    from compliance.adapters.base import Adapter

from compliance.adapters.base import (
    Adapter,
    AdapterOptions,
    Conversion,
    ConversionError,
    LayoutSignature,
    Reading,
    conversion_options,
    reading_overrides,
)
from compliance.adapters.value_overrides import load_overrides, read_mapping_document
from compliance.ingest.contract import SOURCES

# The usual header names of an event log's roles (compared normalised: lower case, every run of other characters
# one blank); the eventlog format reads them and detection recognises an event log by them.
EVENT_LOG_HEADERS: dict[str, tuple[str, ...]] = {
    "ticket_id": (
        "case id",
        "case concept name",
        "case number",
        "case",
        "incident id",
        "incident number",
        "incident",
        "ticket id",
        "ticket number",
        "ticket",
        "sr number",
        "sr id",
        "service request number",
        "request id",
    ),
    "occurred_at": (
        "timestamp",
        "time timestamp",
        "change date time",
        "event time",
        "time",
        "date time",
        "datetime",
        "occurred at",
        "changed at",
        "change date",
    ),
    "new_status": ("status", "state", "lifecycle", "lifecycle transition", "activity", "concept name"),
    "sub_status": ("sub status", "substatus", "status reason"),
    "actor": ("actor", "org resource", "resource", "changed by", "user"),
}
_JSM_KEY = ("Issue key", "Clé de ticket", "Clé", "Schlüssel", "Vorgangsschlüssel", "Clave", "Clave de incidencia")
_JSM_CREATED = ("Created", "Création", "Créé", "Erstellt", "Creada", "Creado")
# Zendesk warehouse tables recognised but not read (business-hours schedules, users, groups ...: the policy's own
# calendars judge time); compliance.adapters.zendesk skips them with a note.
ZENDESK_WAREHOUSE_UNUSED = (
    "schedule_data",
    "schedule_holiday_data",
    "ticket_schedule_data",
    "user_data",
    "group_data",
    "organization_data",
    "brand_data",
    "domain_name_data",
    "time_zone_data",
    "daylight_time_data",
)


# The Zendesk API files an export folder may hold (compliance.adapters.zendesk reads them; others are skipped).
ZENDESK_API_FILES = (
    "tickets",
    "ticket_metrics",
    "ticket_metric_events",
    "ticket_comments",
    "ticket_audits",
    "sla_policies",
    "users",
    "groups",
)

MAPPING_KEYS_OF_EVERY_FORMAT = (
    "source",
    "timestamp_formats",
    "zone_abbreviations",
    "timezone",
    "headers",
    "constants",
    "values",
)
_LAYOUT_KEYS = ("columns", "durations")  # read by the formats built on the layout engine (adapters/layout.py)


@dataclass(frozen=True)
class Format:
    """A registered format: its module (imported only when used) and the layouts detection recognises it by."""

    module: str
    signature: tuple[LayoutSignature, ...] = ()
    # the --mapping keys this format reads beyond those every format reads (MAPPING_KEYS_OF_EVERY_FORMAT)
    mapping_keys: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    "zendesk": Format(
        "compliance.adapters.zendesk",
        (
            LayoutSignature("csv", ("Id", "Created at"), "support csv export"),
            LayoutSignature("json", ("tickets",), "api tickets.json"),
            LayoutSignature("json", ("ticket_metric_events",), "api ticket_metric_events.json"),
            LayoutSignature("csv", ("id", "created_at", "via_channel", "status"), "warehouse ticket_data"),
            LayoutSignature("csv", ("ticket_id", "created", "public", "user_id"), "warehouse ticket_comment_data"),
            LayoutSignature("csv", ("field_name", "ticket_id", "updated", "value"), "warehouse field history"),
            LayoutSignature(
                "csv", ("sla_policy_id", "metric", "target", "business_hours"), "warehouse sla policy history"
            ),
            LayoutSignature("csv", ("ticket_id", "sla_policy_id", "policy_applied_at"), "warehouse ticket sla"),
            LayoutSignature("csv", (), "warehouse table not read", stems=ZENDESK_WAREHOUSE_UNUSED),
            LayoutSignature("json", (), "api folder file", stems=ZENDESK_API_FILES),
        ),
        _LAYOUT_KEYS,
    ),
    "jsm": Format(
        "compliance.adapters.jsm", (LayoutSignature("csv", (_JSM_KEY, _JSM_CREATED), "issue csv"),), _LAYOUT_KEYS
    ),
    "freshdesk": Format(
        "compliance.adapters.freshdesk",
        (LayoutSignature("csv", ("Ticket ID", "Created time"), "ticket export"),),
        _LAYOUT_KEYS,
    ),
    "servicenow": Format(
        "compliance.adapters.servicenow",
        (
            LayoutSignature("csv", ("number", "opened_at"), "incident export"),
            LayoutSignature("csv", ("task", "sla", "stage", "has_breached"), "task_sla export"),
        ),
        ("settings",),
    ),
    "pagerduty": Format(
        "compliance.adapters.pagerduty",
        (
            LayoutSignature("csv", ("id", "created_on"), "incidents report csv"),
            LayoutSignature("data", ("incident_number", "created_at"), "raw api table csv"),
            LayoutSignature("json", ("incidents", "incident_number"), "rest v2 json"),
            LayoutSignature("json", ("incident", "incident_number"), "rest v2 json"),
            LayoutSignature("csv", ("id", "incident_number", "created_at"), "incident list flattened to csv"),
        ),
    ),
    "opsgenie": Format(
        "compliance.adapters.opsgenie",
        (
            LayoutSignature("data", ("tinyId", "createdAt"), "raw api table csv"),
            LayoutSignature("json", ("tinyId", "createdAt"), "incident api json"),
        ),
    ),
    "statuspage": Format(
        "compliance.adapters.statuspage",
        (
            LayoutSignature("json", ("incidents", "incident_updates"), "v2 incidents.json"),
            LayoutSignature("json", ("scheduled_maintenances",), "v2 scheduled-maintenances.json"),
            LayoutSignature("jsonl", ("title", "started_at", "updates"), "status history json lines"),
            LayoutSignature(
                "csv", (("id", "incident id"), ("updates", "incident updates")), "status history csv", loose=True
            ),
        ),
    ),
    "open311": Format(
        "compliance.adapters.open311",
        (
            LayoutSignature("csv", ("CASE_ENQUIRY_ID", "OPEN_DT"), "crm case export csv"),
            LayoutSignature("json", ("service_request_id", "requested_datetime"), "georeport v2 json"),
            LayoutSignature("csv", ("unique key", "created date"), "socrata 311 csv", loose=True),
            LayoutSignature("json", ("unique_key", "created_date"), "socrata soda json"),
        ),
    ),
    "mbox": Format("compliance.adapters.mbox", (LayoutSignature("mbox", (), "mbox archive"),), ("settings",)),
    "eventlog": Format(
        "compliance.adapters.eventlog",
        (
            LayoutSignature(
                "csv",
                tuple(EVENT_LOG_HEADERS[role] for role in ("ticket_id", "occurred_at", "new_status")),
                "event log csv",
                loose=True,
            ),
        ),
        ("columns", "terminal_statuses"),
    ),
    "mapping": Format("compliance.adapters.mapping"),  # any CSV, with a --mapping FILE.yaml
}


def adapter_for(format_name: str) -> Adapter:
    """The adapter registered under ``format_name``, reading a ``--mapping`` file's overrides (of timestamp
    formats, zone abbreviations, header names, time zone and constants) whatever its format; KeyError names the
    known formats."""
    try:
        module = FORMATS[format_name].module
    except KeyError:
        raise KeyError(f"unknown format {format_name!r}; known formats: {', '.join(FORMATS)}") from None
    adapter = import_module(module).ADAPTER
    if format_name == "mapping":  # the mapping file is that format's whole layout
        return replace(adapter, convert=partial(_with_options_recorded, adapter.convert))
    return replace(
        adapter, convert=partial(_with_options_recorded, partial(_with_mapping, format_name, adapter.convert))
    )


def _with_options_recorded(
    convert: Callable[[list[Path], AdapterOptions], Conversion], paths, options: AdapterOptions
) -> Conversion:
    """The conversion, recording the options as given (before a mapping file's own time zone is merged in), so
    that ``verify`` can convert again alike."""
    conversion = convert(paths, options)
    conversion.options = conversion_options(options)
    return conversion


def _with_mapping(
    format_name: str, convert: Callable[[list[Path], AdapterOptions], Conversion], paths, options
) -> Conversion:
    if options.mapping is None:
        return convert(paths, options)
    overrides = load_overrides(options.mapping)
    readable = (*MAPPING_KEYS_OF_EVERY_FORMAT, *FORMATS[format_name].mapping_keys)
    unread = [str(key) for key in read_mapping_document(options.mapping) if key not in readable]
    if unread:  # a key this format would ignore is refused, not silently dropped
        raise ConversionError(
            f"{options.mapping}: {unread[0]}: --format {format_name} does not read it (it reads: {', '.join(readable)})"
        )
    reading = Reading(overrides.timestamp_formats, overrides.zone_abbreviations, overrides.headers)
    with reading_overrides(reading):
        conversion = convert(paths, replace(options, timezone=options.timezone or overrides.timezone))
    for source_name, frame in conversion.tables.items():
        contract = {column.name for column in SOURCES[source_name].columns}
        constants = {
            name: value
            for name, value in overrides.constants.items()
            if name in contract and overrides.source in (None, source_name)
        }
        if constants:
            import polars as pl  # here, not at the top: the registry is read by `--help`

            conversion.tables[source_name] = frame.with_columns(
                pl.lit(value, pl.Utf8).alias(name) for name, value in constants.items()
            )
            if source_name in conversion.filled_columns:
                declared = conversion.filled_columns[source_name]
                conversion.filled_columns[source_name] = (*declared, *(n for n in constants if n not in declared))
    conversion.notes.extend(_override_notes(options.mapping.name, overrides))
    return conversion


def _override_notes(name: str, overrides) -> list[str]:
    notes = []
    if overrides.timestamp_formats:
        notes.append(f"mapping file {name}: timestamp formats tried first: {', '.join(overrides.timestamp_formats)}")
    if overrides.zone_abbreviations:
        readings = ", ".join(
            f"{abbr} = UTC{reading}" if reading[:1] in "+-" else f"{abbr} = wall time in {reading}"
            for abbr, reading in sorted(overrides.zone_abbreviations.items())
        )
        notes.append(f"mapping file {name}: zone abbreviations read as {readings}")
    if overrides.headers:
        notes.append(
            f"mapping file {name}: headers " + ", ".join(f"{v!r} read as {k!r}" for k, v in overrides.headers.items())
        )
    if overrides.constants:
        notes.append(f"mapping file {name}: constants " + ", ".join(f"{k}={v}" for k, v in overrides.constants.items()))
    if overrides.timezone:
        notes.append(f"mapping file {name}: wall times in {overrides.timezone} unless --timezone says otherwise")
    return notes
