"""A mapping file's ``values:`` section, which overrides value spellings in every format (``--mapping FILE.yaml``):
:func:`load_value_overrides` reads it and :func:`apply_value_overrides` applies it to a frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from compliance.adapters.base import AdapterOptions, ConversionError
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
)
ValueOverrides = dict[str, dict[str, str]]  # contract column -> {vendor spelling (lower-case): canonical value}


def spelling_lookup(key: pl.Expr, spellings: Mapping[str, str]) -> pl.Expr:
    """``key`` (lower-case text) looked up in ``spellings``; null when absent."""
    if not spellings:
        return pl.lit(None, dtype=pl.Utf8)
    return key.replace_strict(list(spellings), list(spellings.values()), default=None, return_dtype=pl.Utf8)


# --- the mapping file -------------------------------------------------------------------------------------------


def mapping_problem(path: Path, key: str, message: str) -> ConversionError:
    return ConversionError(f"{path}: {key}: {message}")


def read_mapping_document(path: Path) -> dict[str, Any]:
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
        raise mapping_problem(path, unknown[0], f"unknown key (known: {', '.join(_TOP_LEVEL_KEYS)})")
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
            raise mapping_problem(path, f"values.{column}", f"not a contract column of {where}")
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
