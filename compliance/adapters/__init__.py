"""Vendor export adapters: each turns one vendor's export into the canonical files of the data contract.

Every adapter module exposes ``ADAPTER``, an :class:`compliance.adapters.base.Adapter`. The registry maps the
``--format`` names of ``compliance-report convert`` to those modules, imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from importlib import import_module
from pathlib import Path

import polars as pl

from compliance.adapters.base import Adapter, AdapterOptions, Conversion, Reading, reading_overrides
from compliance.adapters.value_overrides import load_overrides
from compliance.ingest.contract import SOURCES

FORMATS: dict[str, str] = {
    "zendesk": "compliance.adapters.zendesk",
    "jsm": "compliance.adapters.jsm",
    "freshdesk": "compliance.adapters.freshdesk",
    "servicenow": "compliance.adapters.servicenow",
    "pagerduty": "compliance.adapters.pagerduty",
    "statuspage": "compliance.adapters.statuspage",
    "open311": "compliance.adapters.open311",
    "mbox": "compliance.adapters.mbox",
    "eventlog": "compliance.adapters.eventlog",
    "opsgenie": "compliance.adapters.opsgenie",
    "mapping": "compliance.adapters.mapping",  # any CSV, with a --mapping FILE.yaml
}


def adapter_for(format_name: str) -> Adapter:
    """The adapter registered under ``format_name``, reading a ``--mapping`` file's overrides (of timestamp
    formats, zone abbreviations, header names, time zone and constants) whatever its format; KeyError names the
    known formats."""
    try:
        module = FORMATS[format_name]
    except KeyError:
        raise KeyError(f"unknown format {format_name!r}; known formats: {', '.join(FORMATS)}") from None
    adapter = import_module(module).ADAPTER
    if format_name == "mapping":  # the mapping file is that format's whole layout
        return adapter
    return replace(adapter, convert=partial(_with_mapping, adapter.convert))


def _with_mapping(convert: Callable[[list[Path], AdapterOptions], Conversion], paths, options) -> Conversion:
    if options.mapping is None:
        return convert(paths, options)
    overrides = load_overrides(options.mapping)
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
        readings = ", ".join(f"{abbr} = UTC{offset}" for abbr, offset in sorted(overrides.zone_abbreviations.items()))
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
