"""Data quality of the canonical sources: Great Expectations 1.x suites built from the data contract.

:func:`_expectations` turns a :class:`compliance.ingest.contract.Source` (plus the policy's allowed values) into
GX expectations; nothing here is written per file. :func:`validate_table` runs them over a staged DuckDB table
with an ephemeral, offline GX context on a pandas data source, and returns one :class:`ExpectationOutcome` per
expectation: what GX reports on the whole table, however the table is cut.

- Table order: the staged rows by ``source_file`` name, the rows of each file by ``source_line``; the same order
  whether the files were loaded in one run or day by day (``source_line`` alone ties across files).
- The row-by-row expectations (not-null, allowed values, pairs in order) are validated per segment (the rows of
  one source file, or of a run of small consecutive files: :func:`cut_into_segments`; :func:`validate_segments`),
  chunk by chunk, never a chunk across two segments; each segment's state (success,
  unexpected count, first unexpected values, error) reads its own rows alone, so a caller may store it and reuse
  it while the segment's rows do not change (``compliance.evidence.quality_records``). The states are folded in
  table order (:func:`outcomes_from_states`); whole-table checks are computed there from the whole table.
- GX checks every row, and only the columns that the suite reads. A column checked for nulls only (a record ID)
  reaches GX as a null marker, 0 where it has a value and NULL where it has none: the same rows are null, without
  millions of distinct strings to fetch, hash and filter.
- Counts add up over the chunks and segments. Examples are GX's, the first 20 unexpected values in table order
  counted (SUMMARY's ``partial_unexpected_counts``): each part's first ones are taken in table order until the
  table's first 20 are in.
- Record-ID uniqueness must hold across chunks, so DuckDB counts it over the whole table with GX's meaning: the
  rows whose ID occurs more than once, and as examples the IDs of the first 20 of those rows.
- The checks that read the as-of instant or the previous run's row count are computed in DuckDB with GX's meaning
  (:func:`as_of_outcomes`), and so is, when the latest timestamp of a column is after as-of, the count of the rows
  that are.

Every expectation carries ``meta = {"blocking": bool, "check": ...}``: failures that make a verdict meaningless
(missing required column or value, duplicate IDs, timestamps out of order, unknown values in a required column)
are blocking; row-count plausibility, unknown values in optional columns and timestamps after the as-of instant
(which the rules read as "not happened yet") are not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from compliance import expectations_worker
from compliance.core.secrets import redact
from compliance.core.sql import ident, table_exists, table_ref
from compliance.core.timings import timed
from compliance.ingest.contract import SOURCES, Column, Source
from compliance.ingest.parsing import accepted_spellings
from compliance.policy import Policy

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd
    import pyarrow as pa

# Great Expectations, pandas and pyarrow are imported by the functions that use them, when a suite is built or a
# table validated: importing GX takes seconds, and this module is imported by every process that loads the
# Dagster definitions (tests/test_startup.py), most of which never validate anything. GX itself runs in the Great
# Expectations worker (compliance.expectations_worker): this process builds the suite's specs and reads the rows,
# the worker builds the suite (suite_json_of_specs) and validates the chunks (chunk_validator). Set before GX is
# imported.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.ERROR)

# Timestamps that legitimately lie in the future at the as-of instant (an agreed embargo date, a maintenance
# window scheduled ahead, a vendor's due time for a case still open); every other timestamp of the contract must
# not be after as_of.
MAY_BE_FUTURE = frozenset({"embargo_extended_until", "scheduled_start_at", "vendor_due_at"})
ROW_COUNT_TOLERANCE = 0.5  # ±50 % of the previous run's row count
EXAMPLE_ROWS = 20  # an outcome's examples come from the first unexpected values (GX's partial_unexpected_count)
DATA_QUALITY_COLUMNS = (
    "source VARCHAR, expectation VARCHAR, column_name VARCHAR, success BOOLEAN, unexpected_count BIGINT, "
    "observed VARCHAR, blocking BOOLEAN, message VARCHAR"
)

_EXIST = "expect_column_to_exist"
_NOT_NULL = "expect_column_values_to_not_be_null"
_UNIQUE = "expect_column_values_to_be_unique"
_IN_SET = "expect_column_values_to_be_in_set"
_ORDER = "expect_column_pair_values_a_to_be_greater_than_b"
_MAX = "expect_column_max_to_be_between"
_ROWS = "expect_table_row_count_to_be_between"
# Not a GX expectation: the decoder's count of characters that did not decode (compliance.ingest.encodings).
DECODED = "decoded_without_replacement"
# Not a GX expectation: ingest's count of local times that occurred twice, read as their earlier instant.
AMBIGUOUS_LOCAL_TIMES = "count_ambiguous_local_times_read_as_earlier"


@dataclass(frozen=True)
class ExpectationOutcome:
    source: str
    expectation: str  # the GX expectation type, e.g. expect_column_values_to_not_be_null
    column: str | None  # for an ordering check: "earlier,later"
    success: bool
    unexpected_count: int | None
    observed: str  # short text
    blocking: bool
    message: str  # one line for a compliance officer


# --------------------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------------------
def _as_of_timestamp(as_of: Any) -> pd.Timestamp:
    """The as-of instant as Great Expectations' suites carry it (where GX runs, pandas is loaded)."""
    import pandas as pd

    stamp = pd.Timestamp(as_of)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _in_utc(instant: Any) -> datetime:
    """An instant (an ISO-8601 text or a datetime, naive meaning UTC) in UTC, without importing pandas: the process
    that runs the steps reads the suites' instants but leaves GX and its pandas to the worker."""
    stamp = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _missing(value: Any) -> bool:
    """None, NaN, NaT: what pandas calls missing (asked of pandas when a value can come from it, i.e. it is loaded)."""
    if value is None or isinstance(value, str):
        return value is None
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        return bool(pandas.isna(value))
    return isinstance(value, float) and math.isnan(value)


def _iso(value: Any) -> str:
    if _missing(value):
        return "none"
    if isinstance(value, datetime):  # pandas' Timestamp is one
        return _in_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def allowed_values(column: Column, policy: Policy) -> list[str]:
    """Canonical values of an enum column: a fixed list of the contract or a list of the policy."""
    return sorted(set(accepted_spellings(column, policy).values()))


def _expectation_specs(
    source: Source, policy: Policy, as_of: Any = None, previous_rows: int | None = None
) -> list[dict]:
    """The expectations of ``source``'s suite as plain data, in suite order: ``{"type", "kwargs", "meta"}`` as
    :func:`suite_json` writes them, but for ``max_value`` of an as-of check, which is ``as_of`` as given. Built
    without GX, so the main process can send them to the worker (``compliance.expectations_worker``)."""
    found: list[dict] = []

    def add(expectation_type: str, meta: dict, **kwargs: Any) -> None:
        found.append({"type": expectation_type, "kwargs": kwargs, "meta": meta})

    for column in source.columns:
        if column.required:
            add(_EXIST, {"blocking": True, "check": "required"}, column=column.name)
            add(_NOT_NULL, {"blocking": True, "check": "not_null"}, column=column.name)
    if source.unique:
        add(_UNIQUE, {"blocking": True, "check": "unique"}, column=source.record_id)
    for column in source.columns:
        if column.kind == "enum":
            add(
                _IN_SET,
                {"blocking": column.required, "check": "allowed_values"},
                column=column.name,
                value_set=allowed_values(column, policy),
            )
    for earlier, later in source.ordered:
        add(
            _ORDER,
            {"blocking": True, "check": "order"},
            column_A=later,
            column_B=earlier,
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        )
    if as_of is not None:
        for column in after_as_of_columns(source):
            # Not blocking: the rules read anything dated after as-of as "not happened yet".
            add(_MAX, _after_as_of_meta(), column=column, max_value=as_of)
    if previous_rows:
        low, high = _row_count_bounds(previous_rows)
        add(_ROWS, _row_count_meta(previous_rows), min_value=low, max_value=high)
    return found


def _gx_expectation(spec: dict) -> gx.expectations.Expectation:
    """The GX expectation of a spec of :func:`_expectation_specs` (an as-of limit as a UTC timestamp)."""
    import great_expectations as gx

    E = gx.expectations
    classes = {
        _EXIST: E.ExpectColumnToExist,
        _NOT_NULL: E.ExpectColumnValuesToNotBeNull,
        _UNIQUE: E.ExpectColumnValuesToBeUnique,
        _IN_SET: E.ExpectColumnValuesToBeInSet,
        _ORDER: E.ExpectColumnPairValuesAToBeGreaterThanB,
        _MAX: E.ExpectColumnMaxToBeBetween,
        _ROWS: E.ExpectTableRowCountToBeBetween,
    }
    kwargs = dict(spec["kwargs"])
    if spec["type"] == _MAX:
        kwargs["max_value"] = _as_of_timestamp(kwargs["max_value"])
    return classes[spec["type"]](**kwargs, meta=dict(spec["meta"]))


def _expectations(
    source: Source, policy: Policy, as_of: Any = None, previous_rows: int | None = None
) -> list[gx.expectations.Expectation]:
    """The suite's GX expectations, built in this process (tests/test_quality.py validates with them directly)."""
    return [_gx_expectation(spec) for spec in _expectation_specs(source, policy, as_of, previous_rows)]


# The checks (``meta["check"]``) whose outcomes read the as-of instant or the previous run's row count; they come
# last in a suite, after every check that reads the staged rows alone.
AS_OF_CHECKS = ("after_as_of", "row_count")


def after_as_of_columns(source: Source) -> list[str]:
    """The timestamp columns whose latest value must not be after the as-of instant."""
    return [column.name for column in source.columns if column.kind == "timestamp" and column.name not in MAY_BE_FUTURE]


def _after_as_of_meta() -> dict:
    return {"blocking": False, "check": "after_as_of"}


def _row_count_bounds(previous_rows: int) -> tuple[int, int]:
    return (
        math.ceil(previous_rows * (1 - ROW_COUNT_TOLERANCE)),
        math.floor(previous_rows * (1 + ROW_COUNT_TOLERANCE)),
    )


def _row_count_meta(previous_rows: int) -> dict:
    return {"blocking": False, "check": "row_count", "previous_rows": previous_rows}


def as_of_expectations_json(source: Source, as_of: Any, previous_rows: int | None) -> list[dict]:
    """The expectations of :func:`suite_json` whose check is in :data:`AS_OF_CHECKS`, as Great Expectations
    writes them (instants by ``isoformat``, as its JSON conversion does), without importing it: a caller that
    reuses the rest of a suite appends these. ``tests/test_quality.py`` checks them against GX's own."""
    found = []
    if as_of is not None:
        limit = _in_utc(as_of).isoformat()
        for column in after_as_of_columns(source):
            found.append(
                {
                    "kwargs": {"column": column, "max_value": limit},
                    "meta": _after_as_of_meta(),
                    "severity": "critical",
                    "type": _MAX,
                }
            )
    if previous_rows:
        low, high = _row_count_bounds(previous_rows)
        found.append(
            {
                "kwargs": {"max_value": high, "min_value": low},
                "meta": _row_count_meta(previous_rows),
                "severity": "critical",
                "type": _ROWS,
            }
        )
    return found


def as_of_outcomes(
    con: duckdb.DuckDBPyConnection, table: str, source_name: str, as_of: Any, previous_rows: int | None
) -> list[ExpectationOutcome]:
    """The outcomes of the expectations in :data:`AS_OF_CHECKS`, in suite order, computed in DuckDB over the whole
    table with GX's meaning (``tests/test_quality.py`` checks them against GX's own): a column's latest value is
    GX's column maximum (none when every value is empty, which passes), and GX's row count is the table's. They are
    not stored with a segment's state: they read the as-of instant and the row-count history, not the rows alone."""
    source = SOURCES[source_name]
    if not table_exists(con, table):
        return []
    present = {row[0] for row in con.execute(f"DESCRIBE {table_ref(table)}").fetchall()}
    total_rows = con.execute(f"SELECT count(*) FROM {table_ref(table)}").fetchall()[0][0]
    merged = []
    if as_of is not None:
        limit = _in_utc(as_of)
        for column in after_as_of_columns(source):
            if column not in present:
                continue  # an optional column that the table does not have: nothing to check
            latest = con.execute(f"SELECT max({ident(column)}) FROM {table_ref(table)}").fetchall()[0][0]
            merged.append(
                _Merged(
                    _MAX,
                    {"column": column, "max_value": limit},
                    _after_as_of_meta(),
                    success=latest is None or latest <= limit,
                    observed=latest,
                )
            )
    if previous_rows:
        low, high = _row_count_bounds(previous_rows)
        merged.append(
            _Merged(_ROWS, {"min_value": low, "max_value": high}, _row_count_meta(previous_rows), observed=total_rows)
        )
    return [_outcome(con, table, source, outcome, total_rows, present) for outcome in merged]


def suite_json(source: Source, policy: Policy, as_of: Any, previous_rows: int | None) -> dict:
    """The suite :func:`validate_table` runs for ``source``, as Great Expectations writes it
    (``ExpectationSuite.to_json_dict``): named ``<source>_contract``, every expectation with its ``meta``
    (``blocking``, ``check``); instants as UTC ISO-8601 with ``Z``. The same arguments give the same dict.
    Built by the Great Expectations worker (:func:`suite_json_of_specs`)."""
    return expectations_worker.call(
        "suite_json_of_specs", source.name, _expectation_specs(source, policy, as_of, previous_rows)
    )


def suite_json_of_specs(source_name: str, specs: list[dict]) -> dict:
    """:func:`suite_json` from the suite's specs (:func:`_expectation_specs`): GX builds and writes the suite."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{source_name}_contract", expectations=[_gx_expectation(s) for s in specs])
    return json.loads(json.dumps(suite.to_json_dict(), default=_iso))


# --------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------
def _context():
    """An in-memory GX context: nothing written to disk, no analytics, no progress bars, no data docs."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _columns_of(expectation_type: str, kwargs: dict) -> tuple[str, ...]:
    if expectation_type == _ORDER:
        return (kwargs["column_B"], kwargs["column_A"])
    if "column" in kwargs:
        return (kwargs["column"],)
    return ()


def outcome_column(expectation_type: str, kwargs: dict) -> str | None:
    """The ``column`` an :class:`ExpectationOutcome` of this expectation carries ("earlier,later" for a pair)."""
    return ",".join(_columns_of(expectation_type, kwargs)) or None


# The row-by-row expectations: each row passes or fails on its own values, so their results add up over any cut
# of the table (chunks, segments). The others read the whole table and are never cut: a column's presence (the
# table's columns), uniqueness (DuckDB over all rows) and the as-of checks (as_of_outcomes).
_ROW_BY_ROW = (_NOT_NULL, _IN_SET, _ORDER)


@dataclass
class _Merged:
    """One expectation's outcome as it accumulates over the parts of the table, in table order."""

    type: str
    kwargs: dict
    meta: dict
    success: bool = True
    unexpected_count: int | None = None
    observed: Any = None
    # The first EXAMPLE_ROWS unexpected values in table order, each as its _iso text; None for a pair of values,
    # which is one of the first but has no example.
    first_unexpected: list[str | None] = field(default_factory=list)
    error: str | None = None

    @property
    def examples(self) -> dict[str, int] | None:
        """GX's examples (SUMMARY's ``partial_unexpected_counts``): each of the first unexpected values, counted."""
        return dict(Counter(value for value in self.first_unexpected if value is not None)) or None


def _fold(merged: _Merged, part: _Merged) -> None:
    """Fold the state of the next part of the table (a chunk, a segment) into the running outcome: counts add up,
    it succeeds if every part does, the last error is kept, and each part's first unexpected values are taken until
    the table's first EXAMPLE_ROWS are in, which gives the whole table's examples wherever the parts are cut."""
    if part.error is not None:
        merged.error = part.error
    merged.success = merged.success and part.success
    if part.unexpected_count is not None:
        merged.unexpected_count = (merged.unexpected_count or 0) + part.unexpected_count
    merged.first_unexpected += part.first_unexpected[: EXAMPLE_ROWS - len(merged.first_unexpected)]


def _chunk_state(merged: _Merged, result) -> _Merged:
    """One chunk's GX result of a row-by-row expectation as a part to fold; its first unexpected values are BASIC's
    ``partial_unexpected_list``, in the chunk's order."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        error = str(info.get("exception_message") or "error").splitlines()[0]
        return _Merged(merged.type, merged.kwargs, merged.meta, success=False, error=error)
    payload = result.result or {}
    return _Merged(
        merged.type,
        merged.kwargs,
        merged.meta,
        success=bool(result.success),
        unexpected_count=int(payload["unexpected_count"] or 0) if "unexpected_count" in payload else None,
        first_unexpected=[
            None if isinstance(value, tuple) else _iso(value)
            for value in (payload.get("partial_unexpected_list") or [])[:EXAMPLE_ROWS]
        ],
    )


def _state_key(expectation_type: str, kwargs: dict) -> str:
    """The name of an expectation's state in a segment's states (one expectation per type and column)."""
    return f"{expectation_type}:{outcome_column(expectation_type, kwargs)}"


def _state_json(merged: _Merged) -> dict:
    return {
        "success": merged.success,
        "unexpected_count": merged.unexpected_count,
        "first_unexpected": merged.first_unexpected,
        "error": merged.error,
    }


# A Great Expectations validation costs a fixed part of a second however few its rows: validated one by one, a year
# of daily files would pay it hundreds of times. Consecutive small files therefore form one segment. Where such a
# segment ends depends on the files' own names (content-defined cutting, as rsync and deduplicating backups cut
# their chunks), not on their positions: a new file changes its own segment, not the segments of the other files.
SEGMENT_ROWS = 200_000  # a file of this many rows is a segment of its own; no segment of small files grows past it
SEGMENT_FILES = 8  # about one file in this many ends a segment (by the sha256 of its name)


@dataclass(frozen=True)
class Segment:
    """The staged rows that came from consecutive source files (one file, or several small ones), with a
    fingerprint of each file's rows as a multiset: their count, and the xor and the sum of a 64-bit DuckDB hash of
    each whole row (``source_line`` included, so their order too)."""

    files: tuple[str, ...]  # the rows' source_file values in table order; ('',) for a table without that column
    rows: tuple[int, ...]
    xor_hashes: tuple[str, ...]
    sum_hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The segment's first file: what names it among the table's segments."""
        return self.files[0]


def _ends_segment(file: str) -> bool:
    return hashlib.sha256(file.encode()).digest()[0] % SEGMENT_FILES == 0


def cut_into_segments(files: list[tuple[str, int, str, str]]) -> list[Segment]:
    """The segments of a table's files ((file, rows, xor hash, sum hash) in table order): a file of at least
    :data:`SEGMENT_ROWS` rows alone; a run of smaller ones until a file whose name ends a segment, or until the
    next file would take the run past :data:`SEGMENT_ROWS` rows."""
    segments: list[Segment] = []
    pending: list[tuple[str, int, str, str]] = []

    def close() -> None:
        if pending:
            segments.append(Segment(*(tuple(column) for column in zip(*pending, strict=True))))
            pending.clear()

    for file in files:
        rows = file[1]
        if rows >= SEGMENT_ROWS or sum(row[1] for row in pending) + rows > SEGMENT_ROWS:
            close()
        pending.append(file)
        if rows >= SEGMENT_ROWS or _ends_segment(file[0]):
            close()
    close()
    return segments


def _segment_of(present: set[str]) -> str:
    """The SQL expression naming a row's segment (a staged row always has a source_file; '' stands for none)."""
    return "coalesce(source_file, '')" if "source_file" in present else "''"


def _table_order(present: set[str]) -> str:
    """Table order: the segments by file name, the rows of each by ``source_line``. Names, not the order files were
    loaded in: a cold load and a sequence of daily loads of the same files differ in the latter, not in the former
    (and ``source_line`` alone ties across files)."""
    keys = [_segment_of(present)] + (["source_line"] if "source_line" in present else [])
    return "ORDER BY " + ", ".join(keys)


def _columns_present(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {table_ref(table)}").fetchall()}


def table_segments(con: duckdb.DuckDBPyConnection, table: str) -> list[Segment]:
    """The segments of a staged table in table order, each file fingerprinted in one GROUP BY."""
    segment = _segment_of(_columns_present(con, table))
    found = con.execute(
        f"""SELECT {segment} AS segment, count(*), bit_xor(hash(t)), sum(hash(t, 1)::HUGEINT)
            FROM {table_ref(table)} t GROUP BY segment ORDER BY segment"""
    ).fetchall()
    return cut_into_segments([(file, int(rows), str(xor), str(total)) for file, rows, xor, total in found])


def validate_segments(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_name: str,
    policy: Policy,
    segments: list[Segment],
    chunk_rows: int = 1_000_000,
) -> dict[str, dict[str, dict]]:
    """Validate the rows of ``segments`` (and no other) against the row-by-row expectations of the source's
    suite; per segment (by :attr:`Segment.name`), per expectation (by :func:`_state_key`), its state after the
    segment's rows, as
    JSON-ready dicts that :func:`outcomes_from_states` folds. A segment's state reads its rows and the table's
    columns alone, so it holds in any table that has the same segment.

    The rows come from one streamed query in table order, cut into chunks of at most ``chunk_rows`` rows of one
    segment (GX is fastest per row at about a million; each chunk costs GX a few copies of it). The rows are read
    here and validated by the Great Expectations worker (:func:`chunk_validator`), one chunk while the next is read.
    """
    if not segments:
        return {}
    with timed(con, f"expectations:{source_name}"):
        source = SOURCES[source_name]
        present = _columns_present(con, table)
        runnable = [
            spec
            for spec in _expectation_specs(source, policy)
            if spec["type"] in _ROW_BY_ROW and all(c in present for c in _columns_of(spec["type"], spec["kwargs"]))
        ]
        templates = [_Merged(spec["type"], dict(spec["kwargs"]), dict(spec["meta"])) for spec in runnable]
        states = {
            segment.name: [_Merged(t.type, t.kwargs, t.meta, unexpected_count=0) for t in templates]
            for segment in segments
        }
        if runnable:
            query = f"""
                WITH segment_files AS (SELECT unnest(?::VARCHAR[]) AS _segment_file, unnest(?::VARCHAR[]) AS _segment)
                SELECT _segment, {_selection(source, templates, present)}
                FROM {table_ref(table)} JOIN segment_files ON {_segment_of(present)} = _segment_file
                {_table_order(present)}"""
            files = [(file, segment.name) for segment in segments for file in segment.files]
            parameters = [[file for file, _ in files], [name for _, name in files]]
            chunks = _segment_chunks(con, query, parameters, chunk_rows)
            for name, chunk_states in expectations_worker.stream(
                "chunk_validator", (source.name, table, runnable), chunks
            ):
                for merged, state in zip(states[name], chunk_states, strict=True):
                    if state is not None:
                        _fold(merged, _Merged(merged.type, merged.kwargs, merged.meta, **state))
    return {name: {_state_key(m.type, m.kwargs): _state_json(m) for m in merged} for name, merged in states.items()}


def chunk_validator(source_name: str, table: str, specs: list[dict]) -> Callable[[pa.Table], list[dict | None]]:
    """The validation of one chunk of :func:`validate_segments` against the row-by-row expectations ``specs``
    (:func:`_expectation_specs`, the columns they read present), the GX suite built once: the handler takes a
    chunk's rows (Arrow, without the segment column) and returns, per spec, the chunk's state
    (:func:`_state_json` of :func:`_chunk_state`) to fold, None when GX gave no result for it."""
    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    templates = [_Merged(spec["type"], dict(spec["kwargs"]), dict(spec["meta"])) for spec in specs]
    batch_definition = (
        _context()
        .data_sources.add_pandas(f"{source_name}_staged")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("chunk")
    )
    # GX does not keep the suite's order in its results: match them back by a key in ``meta``.
    expectations = [_gx_expectation({**spec, "meta": {**spec["meta"], "key": key}}) for key, spec in enumerate(specs)]
    suite = gx.ExpectationSuite(name=f"{source_name}_contract", expectations=expectations)
    # BASIC lists each chunk's first unexpected values, all that the examples need; SUMMARY would also collect
    # their row indexes.
    result_format = {"result_format": "BASIC", "partial_unexpected_count": EXAMPLE_ROWS}

    def validate(rows: pa.Table) -> list[dict | None]:
        # The validator that Batch.validate builds, given the frame itself: Batch.validate would load (and
        # fingerprint) the frame twice.
        validator = Validator(
            batch_definition, result_format=result_format, batch_parameters={"dataframe": _frame(rows)}
        )
        chunk_states: list[dict | None] = [None] * len(templates)
        for validation in validator.validate_expectation_suite(suite).results:
            key = int(validation.expectation_config.meta["key"])
            chunk_states[key] = _state_json(_chunk_state(templates[key], validation))
        return chunk_states

    return validate


def warm_up() -> None:
    """Pay what a process's first suite and first validation cost beyond the import (GX's context, its metric
    providers, pandas paths): the Great Expectations worker calls this while the run stages the exports. One row,
    each row-by-row expectation type once; the result is not used."""
    import pyarrow as pa

    instant = datetime(2026, 1, 1, tzinfo=UTC)
    specs = [
        {"type": _NOT_NULL, "kwargs": {"column": "value"}, "meta": {}},
        {"type": _IN_SET, "kwargs": {"column": "value", "value_set": ["a"]}, "meta": {}},
        {
            "type": _ORDER,
            "kwargs": {
                "column_A": "later",
                "column_B": "earlier",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "meta": {},
        },
    ]
    suite_json_of_specs("warm_up", specs)
    chunk_validator("warm_up", "warm_up", specs)(pa.table({"value": ["a"], "earlier": [instant], "later": [instant]}))


def _segment_chunks(
    con: duckdb.DuckDBPyConnection, query: str, parameters: list, chunk_rows: int
) -> Iterator[tuple[str, pa.Table]]:
    """The query's rows as (segment, rows): its first column names the segment (a segment's rows come together),
    and each chunk of rows holds at most ``chunk_rows`` rows of one segment, without that column; cut from one
    streamed result (LIMIT/OFFSET per chunk would sort the table once per chunk)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    reader = con.sql(query, params=parameters).to_arrow_reader(chunk_rows)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    current = None

    def rows_of(batches: list[pa.RecordBatch]) -> pa.Table:
        return pa.Table.from_batches(batches, schema=reader.schema).drop_columns(["_segment"])

    for record_batch in reader:
        runs = pc.run_end_encode(record_batch.column(0))
        start = 0
        for segment, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
            if segment != current and pending_rows:
                yield current, rows_of(pending)
                pending, pending_rows = [], 0
            current = segment
            pending.append(record_batch.slice(start, end - start))
            pending_rows += end - start
            start = end
            while pending_rows >= chunk_rows:
                rows = pa.Table.from_batches(pending, schema=reader.schema)
                yield current, rows.slice(0, chunk_rows).drop_columns(["_segment"])
                rest = rows.slice(chunk_rows)
                pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield current, rows_of(pending)


def _frame(rows: pa.Table) -> pd.DataFrame:
    """A chunk's rows as pandas with text columns (enums; IDs come as null markers) as categoricals: GX hashes
    every frame and filters it per expectation, several times faster on categoricals than on strings; same
    values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = rows.combine_chunks()
    columns = [
        pc.dictionary_encode(column)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        else column
        for column in rows.columns
    ]
    return pa.Table.from_arrays(columns, names=rows.column_names).to_pandas()


def _selection(source: Source, runnable: list[_Merged], present: set[str]) -> str:
    """The SELECT list of what the runnable expectations read, in contract order.

    A column whose only value check is not-null (a record ID: its uniqueness is counted in DuckDB) comes as a
    null marker, 0 where it has a value and NULL where it has none: not-null sees exactly the same rows, and GX
    does not fetch, hash and filter millions of distinct strings for it.
    """
    read = {c for m in runnable for c in _columns_of(m.type, m.kwargs)}
    values_read = {c for m in runnable if m.type not in (_EXIST, _NOT_NULL) for c in _columns_of(m.type, m.kwargs)}
    select = [
        ident(column.name)
        if column.name in values_read
        else f"CASE WHEN {ident(column.name)} IS NOT NULL THEN 0 END::UTINYINT AS {ident(column.name)}"
        for column in source.columns
        if column.name in present and column.name in read
    ]
    return ", ".join(select) or "1 AS _row"


def expectations_on_rows_alone(suite: dict) -> list[dict]:
    """The expectations of a suite as :func:`suite_json` writes it whose outcomes read the staged rows alone:
    all but those in :data:`AS_OF_CHECKS`, in suite order."""
    return [e for e in suite["expectations"] if e.get("meta", {}).get("check") not in AS_OF_CHECKS]


def outcomes_from_states(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_name: str,
    expectations: list[dict],
    states: list[dict[str, dict]],
    as_of: Any,
    previous_rows: int | None,
) -> list[ExpectationOutcome]:
    """The outcomes of :func:`validate_table`, from ``expectations`` (:func:`expectations_on_rows_alone`) and the
    states of the table's segments in table order (:func:`validate_segments`, of this run or stored): a row-by-row
    expectation's states folded; a column's presence from the table's columns; uniqueness counted in DuckDB over
    the whole table; then the as-of checks (:func:`as_of_outcomes`) and the ambiguous local times. Everything but
    the folded states is computed from the whole table, every time."""
    source = SOURCES[source_name]
    if not table_exists(con, table):
        return []
    present = _columns_present(con, table)
    total_rows = con.execute(f"SELECT count(*) FROM {table_ref(table)}").fetchall()[0][0]
    outcomes = []
    for expectation in expectations:
        merged = _Merged(expectation["type"], expectation["kwargs"], expectation.get("meta", {}))
        if merged.type != _EXIST and not all(c in present for c in _columns_of(merged.type, merged.kwargs)):
            continue  # an optional column that the table does not have: nothing to check
        if merged.type == _UNIQUE:
            _unique_in_duckdb(con, table, _table_order(present), merged)
        elif merged.type in _ROW_BY_ROW:
            merged.unexpected_count = 0  # an empty table: no unexpected row
            key = _state_key(merged.type, merged.kwargs)
            for segment_states in states:
                _fold(merged, _Merged(merged.type, merged.kwargs, merged.meta, **segment_states[key]))
        outcomes.append(_outcome(con, table, source, merged, total_rows, present))
    return (
        outcomes
        + as_of_outcomes(con, table, source_name, as_of, previous_rows)
        + _ambiguous_local_times(con, table, source, present)
    )


def validate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_name: str,
    policy: Policy,
    as_of: Any,
    previous_rows: int | None,
    chunk_rows: int = 1_000_000,
) -> list[ExpectationOutcome]:
    """Validate a staged table against its source's suite, cold; one outcome per expectation of the suite.

    Every segment is validated (:func:`validate_segments`) and the states folded (:func:`outcomes_from_states`):
    the same path as a run that reuses stored segment states, so both give the same. A table that does not exist
    gives no outcomes (ingest reports the source as "no data"). ``chunk_rows`` bounds the rows GX holds at once.
    """
    if not table_exists(con, table):
        return []
    segments = table_segments(con, table)
    states = validate_segments(con, table, source_name, policy, segments, chunk_rows)
    suite = suite_json(SOURCES[source_name], policy, as_of, previous_rows)
    return outcomes_from_states(
        con,
        table,
        source_name,
        expectations_on_rows_alone(suite),
        [states[segment.name] for segment in segments],
        as_of,
        previous_rows,
    )


def ambiguous_local_times_outcomes(
    con: duckdb.DuckDBPyConnection, table: str, source_name: str
) -> list[ExpectationOutcome]:
    """The outcomes of :func:`validate_table` that do not come from the suite but from ingest's list of ambiguous
    local times (which changes without the staged rows changing): for a caller that reuses the suite's ones."""
    if not table_exists(con, table):
        return []
    present = {row[0] for row in con.execute(f"DESCRIBE {table_ref(table)}").fetchall()}
    return _ambiguous_local_times(con, table, SOURCES[source_name], present)


def _ambiguous_local_times(
    con: duckdb.DuckDBPyConnection, table: str, source: Source, present: set[str]
) -> list[ExpectationOutcome]:
    """Per timestamp column, the staged values that were local times occurring twice (a DST fall-back) and were
    read as their earlier instant (ingest lists them in ``ambiguous_local_times``): a count, never a failure."""
    if not table_exists(con, "ambiguous_local_times") or not {"source_file", "source_line"} <= present:
        return []
    counts = con.execute(
        f"""SELECT a.column_name, count(*) FROM ambiguous_local_times a
            JOIN {table_ref(table)} s ON s.source_file = a.source_file AND s.source_line = a.source_line
            WHERE a.source = ? GROUP BY ALL ORDER BY a.column_name""",
        [source.name],
    ).fetchall()
    return [
        ExpectationOutcome(
            source.name,
            AMBIGUOUS_LOCAL_TIMES,
            column,
            True,
            int(count),
            f"{_plural(int(count), 'value')} read as the earlier instant",
            False,
            f"{source.name}: {_plural(int(count), 'value')} of {column} name a local time that occurs twice "
            "(clocks set back for daylight saving); each is read as its earlier instant",
        )
        for column, count in counts
    ]


def _unique_in_duckdb(con: duckdb.DuckDBPyConnection, table: str, order: str, merged: _Merged) -> None:
    """GX's uniqueness over the whole table: the rows whose ID occurs more than once, and as examples the IDs
    of the first EXAMPLE_ROWS of those rows in table order (``order``)."""
    column = ident(merged.kwargs["column"])
    groups = f"FROM {table_ref(table)} WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > 1"
    rows = con.execute(f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n {groups})").fetchall()[0][0]
    first = (
        con.execute(
            f"SELECT CAST({column} AS VARCHAR) FROM {table_ref(table)} WHERE {column} IN (SELECT {column} {groups}) "
            f"{order} LIMIT ?",
            [EXAMPLE_ROWS],
        ).fetchall()
        if rows
        else []
    )
    merged.unexpected_count = int(rows)
    merged.success = rows == 0
    merged.first_unexpected = [value for (value,) in first]


def _sample(examples: dict | None, limit: int = 3) -> str:
    if not examples:
        return ""
    top = sorted(examples.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return ", ".join(redact(str(value))[:40] for value, _ in top)


def _plural(count: int, word: str = "row") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _have(count: int) -> str:
    return "1 row has" if count == 1 else f"{count} rows have"


def _outcome(
    con: duckdb.DuckDBPyConnection, table: str, source: Source, m: _Merged, total_rows: int, present: set[str]
) -> ExpectationOutcome:
    name = source.name
    blocking = bool(m.meta.get("blocking"))
    column = ",".join(_columns_of(m.type, m.kwargs)) or None
    column_label = m.kwargs.get("column")
    count = m.unexpected_count
    if m.error is not None and m.type != _EXIST:
        return ExpectationOutcome(
            name,
            m.type,
            column,
            False,
            None,
            f"error: {m.error}"[:200],
            blocking,
            f"{name}: the check {m.type} on {column or 'the table'} could not run: {m.error}"[:300],
        )
    if m.type == _EXIST:
        success = column_label in present
        message = f"{name}: required column {column_label} is {'present' if success else 'missing'}"
        return ExpectationOutcome(
            name, m.type, column, success, None, "present" if success else "missing", blocking, message
        )
    # Per type: what was observed, and the message when the check passed / failed.
    if m.type == _NOT_NULL:
        observed = f"{count} of {total_rows} rows empty"
        passed, failed = f"every row has {column_label}", f"{_have(count)} no {column_label} (a required value)"
    elif m.type == _UNIQUE:
        observed = f"{count} rows share an ID" + (f" (e.g. {_sample(m.examples)})" if m.examples else "")
        passed = f"every {column_label} is unique"
        failed = f"{_plural(count)} share a {column_label} with another row (e.g. {_sample(m.examples)})"
    elif m.type == _IN_SET:
        allowed = ", ".join(m.kwargs["value_set"]) or "none configured"
        observed = f"{count} unknown" + (f": {_sample(m.examples)}" if m.examples else "")
        passed = f"every {column_label} is a known value"
        failed = f"{_have(count)} an unknown {column_label} (e.g. {_sample(m.examples)}; allowed: {allowed})"
    elif m.type == _ORDER:
        earlier, later = m.kwargs["column_B"], m.kwargs["column_A"]
        observed = f"{count} of {total_rows} rows out of order"
        passed, failed = f"{later} is never before {earlier}", f"{_have(count)} {later} before {earlier}"
    elif m.type == _MAX:
        limit = m.kwargs["max_value"]
        observed = f"latest {_iso(m.observed)}"
        if m.success:
            count = 0
        else:
            count = con.execute(
                f"SELECT count(*) FROM {table_ref(table)} WHERE {ident(column_label)} > CAST(? AS TIMESTAMPTZ)",
                [_iso(limit)],
            ).fetchall()[0][0]
        passed = f"no {column_label} after the as-of instant {_iso(limit)}"
        failed = f"{_have(count)} {column_label} after the as-of instant {_iso(limit)} (latest {_iso(m.observed)})"
    elif m.type == _ROWS:
        low, high = m.kwargs["min_value"], m.kwargs["max_value"]
        rows = int(m.observed or 0)
        previous = m.meta.get("previous_rows")
        m.success = low <= rows <= high
        observed = f"{rows} rows (previous run {previous}, expected {low}–{high})"
        passed = f"{rows} rows, in line with the previous run ({previous})"
        failed = (
            f"{rows} rows, but the previous run had {previous} (expected {low}–{high}, ±50%); "
            "check that the export is complete"
        )
    else:  # pragma: no cover - every type built by _expectations is handled above
        observed, passed, failed = "", m.type, m.type
    message = f"{name}: {passed if m.success else failed}"
    return ExpectationOutcome(name, m.type, column, bool(m.success), count, observed[:200], blocking, message)


def decoding_outcomes(con: duckdb.DuckDBPyConnection, source_name: str) -> list[ExpectationOutcome]:
    """One non-blocking failure per column whose text had characters that did not decode (each became U+FFFD),
    over the source's files in this run's ``ingest_log``, with each file's count and encoding. None when every
    character decoded: the manifest names each file's encoding.

    The counts were taken when each file was loaded (``loaded_files.replaced_characters``), so a file loaded by an
    earlier run keeps its row. One row per column, not per file × column: the evidence file is ordered by source,
    expectation and column, and rows that tie there would come out in any order.
    """
    if not (table_exists(con, "loaded_files") and table_exists(con, "ingest_log")):
        return []
    rows = con.execute(
        """SELECT column_name, sum(characters)::BIGINT,
                  string_agg(file || ' (' || encoding || ') ' || characters, ', ' ORDER BY file)
           FROM (SELECT l.file, l.encoding, unnest(map_keys(l.replaced_characters)) AS column_name,
                        unnest(map_values(l.replaced_characters)) AS characters
                 FROM loaded_files l JOIN ingest_log i USING (source, file, sha256)
                 WHERE l.source = ? AND l.state = 'current' AND i.status = 'loaded'
                   AND i.change IS DISTINCT FROM 'superseded')
           GROUP BY column_name ORDER BY column_name""",
        [source_name],
    ).fetchall()
    return [
        ExpectationOutcome(
            source_name,
            DECODED,
            column,
            False,
            int(count),
            f"{_plural(count, 'character')} replaced: {files}"[:200],
            False,
            f"{source_name}: {_plural(count, 'character')} of {column} did not decode and became U+FFFD "
            f"({files}); the records are kept"[:300],
        )
        for column, count, files in rows
    ]


def write_data_quality(con: duckdb.DuckDBPyConnection, outcomes: list[ExpectationOutcome]) -> None:
    """(Re)create ``data_quality`` with one row per outcome (rows of the sources in ``outcomes`` are replaced)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS data_quality ({DATA_QUALITY_COLUMNS})")
    sources = sorted({outcome.source for outcome in outcomes})
    if sources:
        con.execute("DELETE FROM data_quality WHERE list_contains(?, source)", [sources])
    if outcomes:
        con.executemany(
            "INSERT INTO data_quality VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [astuple(outcome) for outcome in outcomes],
        )


__all__ = [
    "AMBIGUOUS_LOCAL_TIMES",
    "AS_OF_CHECKS",
    "MAY_BE_FUTURE",
    "ExpectationOutcome",
    "Segment",
    "after_as_of_columns",
    "allowed_values",
    "ambiguous_local_times_outcomes",
    "as_of_expectations_json",
    "as_of_outcomes",
    "decoding_outcomes",
    "expectations_on_rows_alone",
    "outcome_column",
    "outcomes_from_states",
    "suite_json",
    "table_segments",
    "validate_segments",
    "validate_table",
    "write_data_quality",
]
