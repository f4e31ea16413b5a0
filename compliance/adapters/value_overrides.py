"""A mapping file read as overrides of any format (``--mapping FILE.yaml``): its ``values:`` section
(:func:`load_value_overrides`, applied by :func:`apply_value_overrides`) and the rest of what it may change in a
format's layout (:func:`load_overrides`: columns, timestamp formats, zone abbreviations, durations, header names,
constants).
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from compliance.adapters.base import (
    COMMON_ZONE_ABBREVIATIONS,
    DURATION_FORMATS,
    AdapterOptions,
    ConversionError,
    spelling_lookup_text,
)
from compliance.core.bounded_yaml import RefusedYaml, load_bounded_yaml
from compliance.ingest.contract import SOURCES

_TOP_LEVEL_KEYS = (
    "source",
    "columns",
    "timestamp_formats",
    "timezone",
    "values",
    "constants",
    "vendor_sla",
    "settings",
    "durations",
    "zone_abbreviations",
    "headers",
    "terminal_statuses",
)
ValueOverrides = dict[str, dict[str, str]]  # contract column -> {vendor spelling (lower-case): canonical value}


def spelling_lookup(key: pl.Expr, spellings: Mapping[str, str]) -> pl.Expr:
    """``key`` (lower-case text) looked up in ``spellings``; null when absent."""
    if not spellings:
        return pl.lit(None, dtype=pl.Utf8)
    return spelling_lookup_text(key, dict(spellings))


# --- the mapping file -------------------------------------------------------------------------------------------


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest known name, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def mapping_problem(path: Path, key: str, message: str) -> ConversionError:
    return ConversionError(f"{path}: {key}: {message}")


def read_mapping_document(path: Path) -> dict[str, Any]:
    try:
        # bounded as a policy is: a hostile mapping file (nesting, an alias bomb) is one line, not a hang
        document = load_bounded_yaml(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ConversionError(f"{path}: cannot read the mapping file: {error.strerror}") from None
    except RefusedYaml as error:
        mark = error.problem_mark
        raise ConversionError(f"{path}{f' (line {mark.line + 1})' if mark else ''}: {error.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict):
        raise ConversionError(f"{path}: a mapping file is a YAML mapping with source, columns, values, ...")
    unknown = [str(key) for key in document if key not in _TOP_LEVEL_KEYS]
    if unknown:
        raise mapping_problem(
            path,
            unknown[0],
            f"unknown key{did_you_mean(unknown[0], _TOP_LEVEL_KEYS)} (known: {', '.join(_TOP_LEVEL_KEYS)})",
        )
    return document


def string_map(path: Path, key: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise mapping_problem(path, key, "must be a mapping")
    return {str(name): value for name, value in raw.items()}


def scalar_value(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)) or str(value).strip() == "":
        raise mapping_problem(path, key, "must be a non-empty text value")
    return str(value).strip()


def parse_values(path: Path, raw: Any, known_columns: set[str], where: str) -> ValueOverrides:
    values: ValueOverrides = {}
    for column, spellings in string_map(path, "values", raw).items():
        if column not in known_columns:
            raise mapping_problem(
                path, f"values.{column}", f"not a contract column of {where}{did_you_mean(column, known_columns)}"
            )
        values[column] = {
            scalar_value(path, f"values.{column}", spelling).lower(): scalar_value(
                path, f"values.{column}.{spelling}", canonical
            )
            for spelling, canonical in string_map(path, f"values.{column}", spellings).items()
        }
    return values


def load_value_overrides(path: Path) -> ValueOverrides:
    """The ``values:`` section of a mapping file: contract column → {vendor spelling (lower-case): canonical}."""
    document = read_mapping_document(path)
    source = document.get("source")
    if source is not None and source not in SOURCES:
        raise mapping_problem(path, "source", f"unknown source {source!r} (known: {', '.join(SOURCES)})")
    sources = [SOURCES[source]] if source else list(SOURCES.values())
    known = {column.name for s in sources for column in s.columns}
    return parse_values(path, document.get("values"), known, source or "any source")


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
            replacements.append(pl.coalesce(spelling_lookup(key, spellings), pl.col(target)).alias(target))
    return frame.with_columns(replacements) if replacements else frame


def timestamp_formats_of(path: Path, formats_raw: Any) -> tuple[str, ...]:
    if not isinstance(formats_raw, list) or not formats_raw:
        raise mapping_problem(
            path, "timestamp_formats", "must be a non-empty list of chrono formats, e.g. ['%m/%d/%Y']"
        )
    formats = tuple(scalar_value(path, "timestamp_formats", item) for item in formats_raw)
    for item in formats:
        if "%" not in item:
            raise mapping_problem(path, "timestamp_formats", f"{item!r} is not a chrono format (e.g. %Y-%m-%d %H:%M)")
        try:
            pl.Series([""]).str.strptime(pl.Datetime("us"), item, strict=False)
        except pl.exceptions.PolarsError:
            raise mapping_problem(
                path, "timestamp_formats", f"{item!r} is not a chrono format polars accepts"
            ) from None
    return formats


def timezone_of(path: Path, timezone: Any) -> str | None:
    if timezone is None:
        return None
    try:
        zoneinfo.ZoneInfo(str(timezone))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise mapping_problem(
            path, "timezone", f"{timezone!r} is not an IANA time zone (e.g. America/New_York)"
        ) from None
    return str(timezone)


@dataclass(frozen=True)
class LayoutOverrides:
    """What a --mapping file changes in any other format's layout (every key optional)."""

    source: str | None  # the canonical source its columns, values and constants are of (None: any)
    columns: dict[str, tuple[str, ...]]  # contract column -> vendor headers, replacing the format's own
    timestamp_formats: tuple[str, ...]  # tried before the format's own
    timezone: str | None  # zone of wall times, unless --timezone says otherwise
    values: ValueOverrides
    constants: dict[str, str]  # contract column -> one value for every row
    durations: dict[str, str]  # vendor header -> duration format (DURATION_FORMATS)
    zone_abbreviations: dict[str, str]  # abbreviation (upper case) -> the UTC offset or IANA zone it is read in
    headers: dict[str, str]  # header the format expects -> the header this file has instead
    terminal_statuses: tuple[str, ...]  # eventlog: statuses whose first entry resolves a case


def load_overrides(path: Path, source_names: tuple[str, ...] = ()) -> LayoutOverrides:
    """A mapping file read as overrides of a format's layout for ``source_names`` (else its own ``source``, or
    any source); every problem is one line naming the file and the key."""
    document = read_mapping_document(path)
    named = document.get("source")
    if named is not None and named not in SOURCES:
        raise mapping_problem(path, "source", f"unknown source {named!r} (known: {', '.join(SOURCES)})")
    names = (named,) if named else source_names or tuple(SOURCES)
    contract = {column.name for name in names for column in SOURCES[name].columns}
    where = " / ".join(names) if len(names) < len(SOURCES) else "any source"

    def contract_column(key: str, name: str) -> str:
        if name not in contract:
            raise mapping_problem(
                path, f"{key}.{name}", f"not a contract column of {where}{did_you_mean(name, contract)}"
            )
        return name

    columns = {}
    for name, headers in string_map(path, "columns", document.get("columns")).items():
        listed = headers if isinstance(headers, list) else [headers]
        if not listed:
            raise mapping_problem(path, f"columns.{name}", "names no vendor column")
        columns[contract_column("columns", name)] = tuple(
            scalar_value(path, f"columns.{name}", header) for header in listed
        )
    constants = {
        contract_column("constants", name): scalar_value(path, f"constants.{name}", value)
        for name, value in string_map(path, "constants", document.get("constants")).items()
    }
    durations = {}
    for header, form in string_map(path, "durations", document.get("durations")).items():
        form = scalar_value(path, f"durations.{header}", form)
        if form not in DURATION_FORMATS:
            raise mapping_problem(
                path,
                f"durations.{header}",
                f"unknown duration format {form!r} (known: {', '.join(DURATION_FORMATS)}){did_you_mean(form, DURATION_FORMATS)}",
            )
        durations[header] = form
    abbreviations = document.get("zone_abbreviations")
    if abbreviations == "common":
        zones = dict(COMMON_ZONE_ABBREVIATIONS)
    else:
        zones = {}
        for name, offset in string_map(path, "zone_abbreviations", abbreviations).items():
            offset = scalar_value(path, f"zone_abbreviations.{name}", offset)
            if not re.fullmatch(r"[+-]\d\d:\d\d", offset):
                try:
                    zoneinfo.ZoneInfo(offset)
                except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                    raise mapping_problem(
                        path,
                        f"zone_abbreviations.{name}",
                        f"{offset!r} is neither an offset like -07:00 nor an IANA zone like America/Los_Angeles",
                    ) from None
            zones[name.upper()] = offset
    terminal = document.get("terminal_statuses", [])
    if not isinstance(terminal, list):
        raise mapping_problem(path, "terminal_statuses", "must be a list of statuses, e.g. [solved, closed]")
    statuses = ("new", "open", "pending", "on_hold", "solved", "closed")
    for status in terminal:
        if status not in statuses:
            raise mapping_problem(
                path, "terminal_statuses", f"unknown status {status!r} (known: {', '.join(statuses)})"
            )
    return LayoutOverrides(
        source=named,
        columns=columns,
        timestamp_formats=timestamp_formats_of(path, document["timestamp_formats"])
        if "timestamp_formats" in document
        else (),
        timezone=timezone_of(path, document.get("timezone")),
        values=parse_values(path, document.get("values"), contract, where),
        constants=constants,
        durations=durations,
        zone_abbreviations=zones,
        headers={
            name: scalar_value(path, f"headers.{name}", header)
            for name, header in string_map(path, "headers", document.get("headers")).items()
        },
        terminal_statuses=tuple(terminal),
    )
