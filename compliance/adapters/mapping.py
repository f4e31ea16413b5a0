"""Column mapping: any vendor CSV onto one canonical source, described by a ``--mapping FILE.yaml``.

The same machinery converts the helpdesk formats (zendesk, jsm, freshdesk): each describes its layout as a
:class:`TableLayout` (contract column → vendor headers, timestamp formats, value spellings, vendor verdict
columns), and :func:`map_table` / :func:`finish_table` turn a text frame into canonical rows and quarantine.

A mapping file's ``values:`` section also overrides value spellings in every other format:
:func:`load_value_overrides` reads it and :func:`apply_value_overrides` applies it to a frame.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from compliance.adapters.base import (
    ISO_FORMATS,
    VENDOR_SLA_COLUMNS,
    Adapter,
    AdapterOptions,
    Check,
    Conversion,
    ConversionError,
    InputRecord,
    bad_timestamp,
    empty_quarantine,
    input_record,
    read_csv_text,
    split_checked,
    timestamp_text,
)
from compliance.ingest.contract import SOURCES, Column, Source
from compliance.ingest.parsing import accepted_spellings
from compliance.policy import Policy

METRICS = ("first_response", "resolution", "acknowledgement")
_TOP_LEVEL_KEYS = ("source", "columns", "timestamp_formats", "timezone", "values", "constants", "vendor_sla")
_VENDOR_SLA_KEYS = ("verdict", "met", "breached", "due")
_WORKING = "__"  # prefix of working columns, dropped by finish_table
ValueOverrides = dict[str, dict[str, str]]  # contract column -> {vendor spelling (lower-case): canonical value}


@dataclass(frozen=True)
class VendorSlaColumns:
    """Where a vendor states its own verdict or due time for one metric."""

    metric: str  # first_response | resolution | acknowledgement
    verdict: str | None = None  # vendor header of the verdict text
    met: tuple[str, ...] = ()  # verdict spellings meaning "met" (compared lower-case)
    breached: tuple[str, ...] = ()  # verdict spellings meaning "breached"
    due: str | None = None  # vendor header of the vendor's due time


@dataclass(frozen=True)
class TableLayout:
    """How one vendor table maps onto a canonical source."""

    source: str
    # Contract column -> vendor headers; with several, the first whose value is a known spelling wins (e.g. a
    # channel from the Group, else the Via column), else the first non-empty one.
    columns: dict[str, tuple[str, ...]]
    timestamp_formats: tuple[str, ...] = ISO_FORMATS
    timezone: str | None = None  # zone of wall times, unless --timezone says otherwise
    values: ValueOverrides = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    vendor_sla: tuple[VendorSlaColumns, ...] = ()
    numbers: tuple[str, ...] = ()  # vendor headers that must hold a number when not empty (durations)
    required_headers: bool = True  # any mapped header missing is an error (else only those of required columns)


def text(column: str) -> pl.Expr:
    """A vendor text value with surrounding blanks removed; empty becomes null."""
    stripped = pl.col(column).cast(pl.Utf8).str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def _lookup(key: pl.Expr, spellings: Mapping[str, str]) -> pl.Expr:
    """``key`` (lower-case text) looked up in ``spellings``; null when absent."""
    if not spellings:
        return pl.lit(None, dtype=pl.Utf8)
    return key.replace_strict(list(spellings), list(spellings.values()), default=None, return_dtype=pl.Utf8)


def _enum_spellings(column: Column, policy: Policy | None) -> dict[str, str] | None:
    """Accepted spellings of an enum column, or None when they depend on a policy we do not have."""
    if column.kind != "enum" or (isinstance(column.values, str) and policy is None):
        return None
    return accepted_spellings(column, policy)  # type: ignore[arg-type]


def map_table(
    frame: pl.DataFrame, layout: TableLayout, file_name: str, options: AdapterOptions, overrides: ValueOverrides
) -> tuple[pl.DataFrame, list[Check]]:
    """Contract columns (text) computed from the vendor columns, vendor columns kept, and the checks to run.

    Spellings: ``overrides`` (the --mapping file's values) win over the layout's own, which win over the
    policy's and the contract's spellings. Nothing is split yet: the adapter may add columns and checks.
    """
    source = SOURCES[layout.source]
    zone = options.timezone or layout.timezone
    present = set(frame.columns)
    mapped_headers: set[str] = set()
    exprs: list[pl.Expr] = []
    checks: list[Check] = []
    for name, headers in layout.columns.items():
        found = [header for header in headers if header in present]
        if not found:
            if layout.required_headers or name in source.required:
                raise ConversionError(f"{file_name}: no column {' or '.join(map(repr, headers))} (for {name})")
            continue
        mapped_headers.update(found)
        column = source.column(name)
        spellings = {**(_enum_spellings(column, options.policy) or {}), **layout.values.get(name, {}), **overrides.get(name, {})}
        resolved = [_lookup(text(header).str.to_lowercase(), spellings) for header in found]
        value = pl.coalesce([*resolved, *(text(header) for header in found)])
        label = " / ".join(found)
        if column.kind == "timestamp":
            # The vendor text is kept in a working column for the check's message until finish_table.
            raw = f"{_WORKING}{name}"
            exprs.append(pl.coalesce([text(header) for header in found]).alias(raw))
            value = timestamp_text(pl.coalesce([text(header) for header in found]), layout.timestamp_formats, zone)
            checks.append(_bad_timestamp_of(pl.col(raw), pl.col(name), f"{name} ({label})"))
        exprs.append(value.alias(name))
    for name, constant in layout.constants.items():
        exprs.append(pl.lit(constant, dtype=pl.Utf8).alias(name))
    for sla in layout.vendor_sla:  # the verdict and due columns are kept as they are, beside vendor_sla.csv
        if sla.due and sla.due in present:
            parsed = timestamp_text(text(sla.due), layout.timestamp_formats, zone)
            checks.append(bad_timestamp(sla.due, parsed, f"vendor due time ({sla.due})"))
    # Mapped vendor columns give way to their contract column; the others are kept, renamed when a kept vendor
    # column has a contract column's name.
    produced = {*layout.columns, *layout.constants}
    contract = {column.name for column in source.columns}
    clashing = {name: f"vendor_{name}" for name in frame.columns if name in contract - produced - mapped_headers}
    converted = (
        frame.with_columns(exprs)
        .drop([name for name in mapped_headers if name not in produced and name in frame.columns])
        .rename({name: new for name, new in clashing.items()})
    )
    checks += contract_checks(converted, source, options.policy)
    checks += [_bad_number(header) for header in layout.numbers if header in present]
    return converted, checks


def _bad_timestamp_of(raw: pl.Expr, parsed: pl.Expr, label: str) -> Check:
    return Check(
        bad=raw.is_not_null() & parsed.is_null(),
        reason_code="bad_timestamp",
        message=pl.format("{}: not a timestamp this format knows: {}", pl.lit(label), raw),
    )


def _bad_number(header: str) -> Check:
    value = text(header)
    return Check(
        bad=value.is_not_null() & (value.cast(pl.Float64, strict=False).is_null() | (value.cast(pl.Float64, strict=False) < 0)),
        reason_code="bad_number",
        message=pl.format("{}: not a non-negative number: {}", pl.lit(header), value),
    )


def contract_checks(frame: pl.DataFrame, source: Source, policy: Policy | None) -> list[Check]:
    """Missing required values and enum values outside the contract's (or the policy's) vocabulary."""
    checks: list[Check] = []
    for column in source.columns:
        if column.name not in frame.columns:
            continue
        value = text(column.name)
        if column.required:
            checks.append(Check(value.is_null(), "missing_value", pl.lit(f"{column.name}: missing required value")))
        spellings = _enum_spellings(column, policy)
        if spellings is not None:
            allowed = sorted(set(spellings.values()))
            hint = " (map it with a --mapping file's values section)" if isinstance(column.values, str) else ""
            checks.append(
                Check(
                    value.is_not_null() & ~value.is_in(allowed),
                    "unknown_value",
                    pl.format("{}: unknown value {}{}", pl.lit(column.name), value, pl.lit(hint)),
                )
            )
    return checks


def finish_table(
    frame: pl.DataFrame, checks: Sequence[Check], source_name: str, file_name: str, earlier_ids: pl.Series | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(canonical rows, quarantine): the first failing check's reason; a repeated ID after its first valid row.

    ``earlier_ids`` are the IDs already converted from earlier input files of the same source.
    """
    source = SOURCES[source_name]
    passed, quarantine = split_checked(frame, checks, file_name, source.record_id)
    passed = passed.drop([name for name in passed.columns if name.startswith(_WORKING)])
    if source.unique:
        record_id = pl.col(source.record_id)
        duplicates = [
            Check(
                ~record_id.is_first_distinct(),
                "duplicate_id",
                pl.format(
                    "{} {} already used on line {} (that row is kept)",
                    pl.lit(source.record_id),
                    record_id,
                    pl.col("source_line").first().over(source.record_id),
                ),
            )
        ]
        if earlier_ids is not None:
            duplicates.insert(
                0,
                Check(
                    record_id.is_in(earlier_ids.implode()),
                    "duplicate_id",
                    pl.format("{} {} already used in an earlier input file", pl.lit(source.record_id), record_id),
                ),
            )
        passed, repeated = split_checked(passed, duplicates, file_name, source.record_id)
        quarantine = pl.concat([quarantine, repeated])
    return passed, quarantine


def vendor_sla_rows(frame: pl.DataFrame, layout: TableLayout, options: AdapterOptions) -> pl.DataFrame:
    """The vendor's verdict and due time per record and metric, where its columns say anything."""
    record_id = SOURCES[layout.source].record_id
    zone = options.timezone or layout.timezone
    parts = []
    for sla in layout.vendor_sla:
        verdict = text(sla.verdict) if sla.verdict and sla.verdict in frame.columns else pl.lit(None, dtype=pl.Utf8)
        due = (
            timestamp_text(text(sla.due), layout.timestamp_formats, zone)
            if sla.due and sla.due in frame.columns
            else pl.lit(None, dtype=pl.Utf8)
        )
        verdicts = {**{s.lower(): "true" for s in sla.met}, **{s.lower(): "false" for s in sla.breached}}
        fields = ", ".join(name for name in (sla.verdict, sla.due) if name and name in frame.columns)
        parts.append(
            frame.select(
                pl.col(record_id).alias("record_id"),
                pl.lit(layout.source).alias("source"),
                pl.lit(sla.metric).alias("metric"),
                due.alias("vendor_due_at"),
                _lookup(verdict.str.to_lowercase(), verdicts).alias("vendor_met"),
                verdict.alias("vendor_status"),
                pl.lit(fields).alias("vendor_field"),
            ).filter(pl.col("vendor_due_at").is_not_null() | pl.col("vendor_status").is_not_null())
        )
    return concat_vendor_sla(parts)


def empty_vendor_sla() -> pl.DataFrame:
    return pl.DataFrame(schema={name: pl.Utf8 for name in VENDOR_SLA_COLUMNS})


def concat_vendor_sla(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([empty_vendor_sla(), *(f.select(VENDOR_SLA_COLUMNS).cast(pl.Utf8) for f in frames)])


Prepare = Callable[[pl.DataFrame, Path], pl.DataFrame]
Extend = Callable[[pl.DataFrame], tuple[pl.DataFrame, list[Check]]]


@dataclass
class ConvertedFiles:
    """The canonical rows of several vendor files of one layout, their quarantine, verdicts and accounting."""

    table: pl.DataFrame
    quarantine: pl.DataFrame
    vendor_sla: pl.DataFrame
    inputs: list[InputRecord]


def convert_csv_files(
    paths: Sequence[Path],
    layout: TableLayout,
    options: AdapterOptions,
    variant: str,
    prepare: Prepare | None = None,
    extend: Extend | None = None,
    vendor_sla: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> ConvertedFiles:
    """Each CSV read as text, ``prepare``d (recognise the layout, or raise), mapped, ``extend``ed with the
    adapter's own columns and checks, split; an ID repeated in a later file is a duplicate too."""
    overrides = value_overrides(options)
    record_id = SOURCES[layout.source].record_id
    tables, quarantines, verdicts, inputs = [], [], [], []
    for path in paths:
        try:
            frame = read_csv_text(path)
        except ConversionError as error:
            raise ConversionError(f"{path.name}: {error}") from None
        if prepare:
            frame = prepare(frame, path)
        mapped, checks = map_table(frame, layout, path.name, options, overrides)
        if extend:
            mapped, more = extend(mapped)
            checks += more
        earlier = pl.concat([t.get_column(record_id) for t in tables]) if tables else None
        passed, quarantine = finish_table(mapped, checks, layout.source, path.name, earlier)
        tables.append(passed)
        quarantines.append(quarantine)
        verdicts.append(vendor_sla_rows(passed, layout, options))
        if vendor_sla:
            verdicts.append(vendor_sla(passed))
        inputs.append(input_record(path, frame.height, quarantine.height, variant))
    return ConvertedFiles(
        pl.concat(tables, how="diagonal_relaxed"),
        pl.concat([empty_quarantine(), *quarantines]),
        concat_vendor_sla(verdicts),
        inputs,
    )


# --- the mapping file -------------------------------------------------------------------------------------------


def _problem(path: Path, key: str, message: str) -> ConversionError:
    return ConversionError(f"{path}: {key}: {message}")


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ConversionError(f"{path}: cannot read the mapping file: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict):
        raise ConversionError(f"{path}: a mapping file is a YAML mapping with source, columns, values, ...")
    unknown = [str(key) for key in document if key not in _TOP_LEVEL_KEYS]
    if unknown:
        raise _problem(path, unknown[0], f"unknown key (known: {', '.join(_TOP_LEVEL_KEYS)})")
    return document


def _string_map(path: Path, key: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _problem(path, key, "must be a mapping")
    return {str(name): value for name, value in raw.items()}


def _scalar(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)) or str(value).strip() == "":
        raise _problem(path, key, "must be a non-empty text value")
    return str(value).strip()


def _parse_values(path: Path, raw: Any, known_columns: set[str], where: str) -> ValueOverrides:
    values: ValueOverrides = {}
    for column, spellings in _string_map(path, "values", raw).items():
        if column not in known_columns:
            raise _problem(path, f"values.{column}", f"not a contract column of {where}")
        values[column] = {
            _scalar(path, f"values.{column}", spelling).lower(): _scalar(path, f"values.{column}.{spelling}", canonical)
            for spelling, canonical in _string_map(path, f"values.{column}", spellings).items()
        }
    return values


def load_value_overrides(path: Path) -> ValueOverrides:
    """The ``values:`` section of a mapping file: contract column → {vendor spelling (lower-case): canonical}."""
    document = _read_document(path)
    source = document.get("source")
    if source is not None and source not in SOURCES:
        raise _problem(path, "source", f"unknown source {source!r} (known: {', '.join(SOURCES)})")
    sources = [SOURCES[source]] if source else list(SOURCES.values())
    known = {column.name for s in sources for column in s.columns}
    return _parse_values(path, document.get("values"), known, source or "any source")


def value_overrides(options: AdapterOptions) -> ValueOverrides:
    """The --mapping file's value spellings when one is given, else none."""
    return load_value_overrides(options.mapping) if options.mapping else {}


def apply_value_overrides(
    frame: pl.DataFrame, overrides: ValueOverrides, columns: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """``frame`` with the override spellings replaced (case-insensitive, blanks ignored); other values unchanged.

    ``columns`` maps a contract column to the frame column holding its vendor spelling (default: the same name).
    """
    replacements = []
    for contract_column, spellings in overrides.items():
        target = (columns or {}).get(contract_column, contract_column)
        if target in frame.columns and spellings:
            key = pl.col(target).cast(pl.Utf8).str.strip_chars().str.to_lowercase()
            replacements.append(pl.coalesce(_lookup(key, spellings), pl.col(target)).alias(target))
    return frame.with_columns(replacements) if replacements else frame


def load_mapping(path: Path) -> TableLayout:
    """A mapping file validated into a layout; every problem is one line naming the file and the key."""
    document = _read_document(path)
    source_name = document.get("source")
    if source_name is None:
        raise _problem(path, "source", f"missing (one of: {', '.join(SOURCES)})")
    if source_name not in SOURCES:
        raise _problem(path, "source", f"unknown source {source_name!r} (known: {', '.join(SOURCES)})")
    source = SOURCES[source_name]
    contract = {column.name for column in source.columns}

    columns: dict[str, tuple[str, ...]] = {}
    for name, headers in _string_map(path, "columns", document.get("columns")).items():
        if name not in contract:
            raise _problem(path, f"columns.{name}", f"unknown contract column of {source_name} (known: {', '.join(sorted(contract))})")
        listed = headers if isinstance(headers, list) else [headers]
        if not listed:
            raise _problem(path, f"columns.{name}", "names no vendor column")
        columns[name] = tuple(_scalar(path, f"columns.{name}", header) for header in listed)

    constants = {}
    for name, value in _string_map(path, "constants", document.get("constants")).items():
        if name not in contract:
            raise _problem(path, f"constants.{name}", f"unknown contract column of {source_name}")
        if name in columns:
            raise _problem(path, f"constants.{name}", "is also mapped under columns; keep one")
        constants[name] = _scalar(path, f"constants.{name}", value)

    for name in source.required:
        if name not in columns and name not in constants:
            raise _problem(path, "columns", f"required contract column {name} of {source_name} is neither mapped nor a constant")

    formats_raw = document.get("timestamp_formats", list(ISO_FORMATS))
    if not isinstance(formats_raw, list) or not formats_raw:
        raise _problem(path, "timestamp_formats", "must be a non-empty list of chrono formats, e.g. ['%m/%d/%Y']")
    formats = tuple(_scalar(path, "timestamp_formats", item) for item in formats_raw)
    for item in formats:
        if "%" not in item:
            raise _problem(path, "timestamp_formats", f"{item!r} is not a chrono format (e.g. %Y-%m-%d %H:%M)")
        try:
            pl.Series([""]).str.strptime(pl.Datetime("us"), item, strict=False)
        except pl.exceptions.PolarsError:
            raise _problem(path, "timestamp_formats", f"{item!r} is not a chrono format polars accepts") from None

    timezone = document.get("timezone")
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(str(timezone))
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise _problem(path, "timezone", f"{timezone!r} is not an IANA time zone (e.g. America/New_York)") from None

    vendor_sla = []
    for metric, spec in _string_map(path, "vendor_sla", document.get("vendor_sla")).items():
        if metric not in METRICS:
            raise _problem(path, f"vendor_sla.{metric}", f"unknown metric (known: {', '.join(METRICS)})")
        spec = _string_map(path, f"vendor_sla.{metric}", spec)
        unknown = [key for key in spec if key not in _VENDOR_SLA_KEYS]
        if unknown:
            raise _problem(path, f"vendor_sla.{metric}.{unknown[0]}", f"unknown key (known: {', '.join(_VENDOR_SLA_KEYS)})")
        if "verdict" not in spec and "due" not in spec:
            raise _problem(path, f"vendor_sla.{metric}", "names neither a verdict nor a due column")
        lists = {}
        for key in ("met", "breached"):
            raw = spec.get(key, [])
            if not isinstance(raw, list):
                raise _problem(path, f"vendor_sla.{metric}.{key}", "must be a list of verdict spellings")
            lists[key] = tuple(_scalar(path, f"vendor_sla.{metric}.{key}", item) for item in raw)
        vendor_sla.append(
            VendorSlaColumns(
                metric,
                _scalar(path, f"vendor_sla.{metric}.verdict", spec["verdict"]) if "verdict" in spec else None,
                lists["met"],
                lists["breached"],
                _scalar(path, f"vendor_sla.{metric}.due", spec["due"]) if "due" in spec else None,
            )
        )

    return TableLayout(
        source=source_name,
        columns=columns,
        timestamp_formats=formats,
        timezone=str(timezone) if timezone else None,
        values=_parse_values(path, document.get("values"), contract, source_name),
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
    notes.append(f"wall times read in {zone}" if zone else "wall times kept without an offset (read in the policy's source_timezone)")
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
    )


ADAPTER = Adapter(
    name="mapping",
    description="any CSV, with a --mapping FILE.yaml naming the source, columns, timestamp formats and value spellings",
    convert=convert,
)
