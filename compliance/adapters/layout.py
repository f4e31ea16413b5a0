"""The CSV layout engine the helpdesk adapters share (zendesk, jsm, freshdesk, and the ``mapping`` format).

Each describes its layout as a :class:`TableLayout` (contract column → vendor headers, timestamp formats, value
spellings, vendor verdict columns), and :func:`map_table` / :func:`finish_table` turn a text frame into canonical
rows and quarantine; :func:`convert_csv_files` runs it over a vendor's files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from compliance.adapters.base import (
    ISO_FORMATS,
    VENDOR_SLA_COLUMNS,
    AdapterOptions,
    Check,
    ConversionError,
    InputRecord,
    bad_duration,
    bad_timestamp,
    duration_seconds,
    empty_quarantine,
    input_record,
    read_csv_text,
    read_json_records,
    split_checked,
    timestamp_text,
    with_nested_columns,
)
from compliance.adapters.value_overrides import (
    LayoutOverrides,
    ValueOverrides,
    load_overrides,
    spelling_lookup,
    value_overrides,
)
from compliance.ingest.contract import SOURCES, Column, Source
from compliance.ingest.parsing import accepted_spellings
from compliance.policy import Policy

METRICS = ("first_response", "resolution", "acknowledgement")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")  # read as records (API documents), not as CSV
_WORKING = "__"  # prefix of working columns, dropped by finish_table


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
    durations: dict[str, str] = field(default_factory=dict)  # vendor header -> its duration format (a --mapping)
    required_headers: bool = True  # any mapped header missing is an error (else only those of required columns)


def text(column: str) -> pl.Expr:
    """A vendor text value with surrounding blanks removed; empty becomes null."""
    stripped = pl.col(column).cast(pl.Utf8).str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


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
        spellings = {
            **(_enum_spellings(column, options.policy) or {}),
            **layout.values.get(name, {}),
            **overrides.get(name, {}),
        }
        resolved = [spelling_lookup(text(header).str.to_lowercase(), spellings) for header in found]
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
    checks += [
        _bad_duration(header, layout.durations[header]) if header in layout.durations else _bad_number(header)
        for header in layout.numbers
        if header in present
    ]
    checks += [
        _bad_duration(header, form)
        for header, form in layout.durations.items()
        if header in present and header not in layout.numbers
    ]
    return converted, checks


def with_overrides(layout: TableLayout, overrides: LayoutOverrides) -> TableLayout:
    """``layout`` with a --mapping file's columns, constants and duration formats (when it is of this source)."""
    if overrides.source not in (None, layout.source):
        return layout
    contract = {column.name for column in SOURCES[layout.source].columns}
    columns = {**layout.columns, **{k: v for k, v in overrides.columns.items() if k in contract}}
    constants = {k: v for k, v in {**layout.constants, **overrides.constants}.items() if k in contract}
    return replace(
        layout,
        columns={k: v for k, v in columns.items() if k not in overrides.constants},
        constants=constants,
        durations={**layout.durations, **overrides.durations},
    )


def _bad_duration(header: str, form: str) -> Check:
    value = text(header)
    return Check(
        bad=value.is_not_null() & duration_seconds(value, form).is_null(),
        reason_code="bad_number",
        message=pl.format("{}: not a duration ({}): {}", pl.lit(header), pl.lit(form), value),
    )


def _bad_timestamp_of(raw: pl.Expr, parsed: pl.Expr, label: str) -> Check:
    return Check(
        bad=raw.is_not_null() & parsed.is_null(),
        reason_code="bad_timestamp",
        message=pl.format("{}: not a timestamp this format knows: {}", pl.lit(label), raw),
    )


def _unit_seconds(header: str) -> float:
    """The unit of a duration column, from its header ("… in minutes", "… (in hrs)"); seconds otherwise."""
    lowered = header.lower()
    return 60.0 if "minutes" in lowered else 3600.0 if "hrs" in lowered or "hours" in lowered else 1.0


def _bad_number(header: str) -> Check:
    value = text(header)
    return Check(
        bad=bad_duration(value, _unit_seconds(header)),
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
                spelling_lookup(verdict.str.to_lowercase(), verdicts).alias("vendor_met"),
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
    column_sources: dict[str, str] = field(default_factory=dict)  # contract column -> the vendor headers read


def column_sources(frame: pl.DataFrame, layout: TableLayout) -> dict[str, str]:
    """Contract column -> the vendor headers of ``frame`` it is read from (or the layout's constant)."""
    sources = {
        name: " / ".join(found)
        for name, headers in layout.columns.items()
        if (found := [header for header in headers if header in frame.columns])
    }
    return sources | {name: f"constant {value!r}" for name, value in layout.constants.items()}


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
    if options.mapping:
        layout = with_overrides(layout, load_overrides(options.mapping))
    record_id = SOURCES[layout.source].record_id
    tables, quarantines, verdicts, inputs, sources = [], [], [], [], {}
    for path in paths:
        try:
            frame = read_json_records(path) if path.suffix.lower() in JSON_SUFFIXES else read_csv_text(path)
        except ConversionError as error:
            raise ConversionError(f"{path.name}: {error}") from None
        frame = with_nested_columns(frame, [header for headers in layout.columns.values() for header in headers])
        if prepare:
            frame = prepare(frame, path)
        mapped, checks = map_table(frame, layout, path.name, options, overrides)
        sources = column_sources(frame, layout) | sources  # the first file's reading wins
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
        sources,
    )
