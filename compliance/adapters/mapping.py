"""Column mapping: any vendor CSV onto one canonical source, described by a ``--mapping FILE.yaml``.

The mapping file is read into a :class:`compliance.adapters.layout.TableLayout` and converted by the layout engine
the helpdesk formats share (:mod:`compliance.adapters.layout`); its ``values:`` section, which also overrides
value spellings in every other format, is :mod:`compliance.adapters.value_overrides`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl

from compliance.adapters.base import ISO_FORMATS, Adapter, AdapterOptions, Conversion, ConversionError
from compliance.adapters.layout import METRICS, TableLayout, VendorSlaColumns, convert_csv_files
from compliance.adapters.value_overrides import (
    mapping_problem,
    parse_values,
    read_mapping_document,
    scalar_value,
    string_map,
    timestamp_formats_of,
    timezone_of,
)
from compliance.ingest.contract import SOURCES

_VENDOR_SLA_KEYS = ("verdict", "met", "breached", "due")


def load_mapping(path: Path) -> TableLayout:
    """A mapping file validated into a layout; every problem is one line naming the file and the key."""
    document = read_mapping_document(path)
    source_name = document.get("source")
    if source_name is None:
        raise mapping_problem(path, "source", f"missing (one of: {', '.join(SOURCES)})")
    if source_name not in SOURCES:
        raise mapping_problem(path, "source", f"unknown source {source_name!r} (known: {', '.join(SOURCES)})")
    source = SOURCES[source_name]
    contract = {column.name for column in source.columns}

    columns: dict[str, tuple[str, ...]] = {}
    for name, headers in string_map(path, "columns", document.get("columns")).items():
        if name not in contract:
            raise mapping_problem(
                path,
                f"columns.{name}",
                f"unknown contract column of {source_name} (known: {', '.join(sorted(contract))})",
            )
        listed = headers if isinstance(headers, list) else [headers]
        if not listed:
            raise mapping_problem(path, f"columns.{name}", "names no vendor column")
        columns[name] = tuple(scalar_value(path, f"columns.{name}", header) for header in listed)

    constants = {}
    for name, value in string_map(path, "constants", document.get("constants")).items():
        if name not in contract:
            raise mapping_problem(path, f"constants.{name}", f"unknown contract column of {source_name}")
        if name in columns:
            raise mapping_problem(path, f"constants.{name}", "is also mapped under columns; keep one")
        constants[name] = scalar_value(path, f"constants.{name}", value)

    for name in source.required:
        if name not in columns and name not in constants:
            raise mapping_problem(
                path, "columns", f"required contract column {name} of {source_name} is neither mapped nor a constant"
            )

    formats = timestamp_formats_of(path, document.get("timestamp_formats", list(ISO_FORMATS)))
    timezone = timezone_of(path, document.get("timezone"))

    vendor_sla = []
    for metric, spec in string_map(path, "vendor_sla", document.get("vendor_sla")).items():
        if metric not in METRICS:
            raise mapping_problem(path, f"vendor_sla.{metric}", f"unknown metric (known: {', '.join(METRICS)})")
        spec = string_map(path, f"vendor_sla.{metric}", spec)
        unknown = [key for key in spec if key not in _VENDOR_SLA_KEYS]
        if unknown:
            raise mapping_problem(
                path, f"vendor_sla.{metric}.{unknown[0]}", f"unknown key (known: {', '.join(_VENDOR_SLA_KEYS)})"
            )
        if "verdict" not in spec and "due" not in spec:
            raise mapping_problem(path, f"vendor_sla.{metric}", "names neither a verdict nor a due column")
        lists = {}
        for key in ("met", "breached"):
            raw = spec.get(key, [])
            if not isinstance(raw, list):
                raise mapping_problem(path, f"vendor_sla.{metric}.{key}", "must be a list of verdict spellings")
            lists[key] = tuple(scalar_value(path, f"vendor_sla.{metric}.{key}", item) for item in raw)
        vendor_sla.append(
            VendorSlaColumns(
                metric,
                scalar_value(path, f"vendor_sla.{metric}.verdict", spec["verdict"]) if "verdict" in spec else None,
                lists["met"],
                lists["breached"],
                scalar_value(path, f"vendor_sla.{metric}.due", spec["due"]) if "due" in spec else None,
            )
        )

    return TableLayout(
        source=source_name,
        columns=columns,
        timestamp_formats=formats,
        timezone=timezone,
        values=parse_values(path, document.get("values"), contract, source_name),
        constants=constants,
        vendor_sla=tuple(vendor_sla),
    )


def _missing_headers(frame: pl.DataFrame, layout: TableLayout, mapping: Path) -> str | None:
    for name, headers in layout.columns.items():
        if not any(header in frame.columns for header in headers):
            return f"no column {' or '.join(map(repr, headers))} (named by {mapping}: columns.{name})"
    for sla in layout.vendor_sla:
        for key, header in (("verdict", sla.verdict), ("due", sla.due)):
            if header and header not in frame.columns:
                return f"no column {header!r} (named by {mapping}: vendor_sla.{sla.metric}.{key})"
    return None


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    """Every input CSV converted with the --mapping file's layout (all files hold the same source)."""
    if options.mapping is None:
        raise ConversionError("--format mapping needs --mapping FILE.yaml")
    layout = load_mapping(options.mapping)
    mapping = options.mapping

    def require_headers(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
        missing = _missing_headers(frame, layout, mapping)
        if missing:
            raise ConversionError(f"{path.name}: {missing}")
        return frame

    # The file's values section is the layout's own spelling table here, not an override of another format's.
    converted = convert_csv_files(
        paths, layout, replace(options, mapping=None), f"csv mapped to {layout.source}", prepare=require_headers
    )
    zone = options.timezone or layout.timezone
    notes = [f"mapping file {options.mapping.name}: {layout.source} from {len(layout.columns)} mapped columns"]
    notes.append(f"timestamp formats tried in order: {', '.join(layout.timestamp_formats)}")
    notes.append(
        f"wall times read in {zone}"
        if zone
        else "wall times kept without an offset (read in the policy's source_timezone)"
    )
    if layout.constants:
        notes.append("constants: " + ", ".join(f"{k}={v}" for k, v in layout.constants.items()))
    return Conversion(
        format="mapping",
        format_version=f"csv via {options.mapping.name}",
        tables={layout.source: converted.table},
        quarantine=converted.quarantine,
        inputs=converted.inputs,
        vendor_sla=converted.vendor_sla if layout.vendor_sla else None,
        notes=notes,
        column_sources={layout.source: converted.column_sources},
    )


ADAPTER = Adapter(
    name="mapping",
    description="any CSV, with a --mapping FILE.yaml naming the source, columns, timestamp formats and value spellings",
    convert=convert,
)
