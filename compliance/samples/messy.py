"""Deliberately messy rows: which rows, which kinds, and the cell edits that make them."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR
from compliance.samples.output import iso_naive, iso_offset, iso_z

# Kinds of deliberately messy rows per file.  "naive_timestamp", "mixed_offsets" and "channel_alias" are
# valid input variants (ingest must accept them); all the others are bad rows (ingest should quarantine or
# flag them).  For messy_fraction > 0 every kind appears at least once per file (when the file has room).
MESSY_KINDS: dict[str, tuple[str, ...]] = {
    "tickets": (
        "unparseable_timestamp",
        "unknown_channel",
        "exact_duplicate",
        "duplicate_id",
        "missing_required",
        "naive_timestamp",
        "mixed_offsets",
        "response_before_created",
        "after_as_of",
        "channel_alias",
    ),
    "privacy_requests": (
        "unparseable_timestamp",
        "unknown_request_type",
        "exact_duplicate",
        "duplicate_id",
        "missing_required",
        "naive_timestamp",
        "mixed_offsets",
        "completed_before_received",
        "bad_boolean",
        "after_as_of",
    ),
    "security_reports": (
        "unparseable_timestamp",
        "duplicate_id",
        "missing_required",
        "naive_timestamp",
        "mixed_offsets",
        "acknowledged_before_received",
    ),
    "incidents": (
        "unparseable_timestamp",
        "unknown_kind",
        "duplicate_id",
        "missing_required",
        "mixed_offsets",
    ),
    "incident_updates": ("unparseable_timestamp", "orphan_incident", "naive_timestamp"),
    "retention_inventory": (
        "unparseable_timestamp",
        "unknown_data_class",
        "exact_duplicate",
        "duplicate_id",
        "missing_required",
        "naive_timestamp",
        "mixed_offsets",
        "deleted_before_created",
    ),
}
VALID_VARIANTS = frozenset({"naive_timestamp", "mixed_offsets", "channel_alias"})
BAD_TIMESTAMPS = ("2026-13-45", "yesterday", "2026-02-30T10:00:00Z", "not a date", "TBD", "25:61 12/40/2026")
MIXED_OFFSETS_H = (2.0, -5.0, -4.0, 5.5, 0.0, 9.0, -7.0)


def messy_plan(
    rng: np.random.Generator, n: int, fraction: float, kinds: tuple[str, ...], minimum: int | None = None
) -> dict[str, np.ndarray]:
    """Row indices per messy kind; every kind at least once when fraction > 0 and the file has room."""
    if fraction <= 0 or n < 4:
        return {k: np.empty(0, dtype=np.int64) for k in kinds}
    k = len(kinds)
    count = max(int(round(fraction * n)), minimum if minimum is not None else k)
    count = min(count, n // 2)
    rows = rng.choice(n, size=count, replace=False)
    labels = np.concatenate([np.arange(min(k, count)), rng.integers(0, k, max(count - k, 0))])
    return {kind: np.sort(rows[labels == i]) for i, kind in enumerate(kinds)}


def clean_rows(n: int, plan: dict[str, np.ndarray]) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for rows in plan.values():
        mask[rows] = False
    return np.flatnonzero(mask)


class Edits:
    """Collects per-cell string overrides and applies them with one scatter per column."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[int, str | None]] = {}

    def set(self, col: str, row: int, value: str | None) -> None:
        self.cells.setdefault(col, {})[int(row)] = value

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        cols = []
        for col in sorted(self.cells):
            items = sorted(self.cells[col].items())
            idx = [i for i, _ in items]
            vals = pl.Series([v for _, v in items], dtype=pl.String)
            cols.append(df.get_column(col).scatter(idx, vals))
        return df.with_columns(cols) if cols else df


def retime_row(
    edits: Edits, row: int, times: dict[str, tuple[np.ndarray, np.ndarray]], style: str, rng: np.random.Generator
) -> None:
    """Rewrite every present timestamp of a row as naive UTC or with a random offset (same instant)."""
    space = bool(rng.random() < 0.3)
    for col in sorted(times):
        t, ok = times[col]
        if not ok[row]:
            continue
        if style == "naive":
            edits.set(col, row, iso_naive(t[row], space))
        else:
            edits.set(col, row, iso_offset(t[row], MIXED_OFFSETS_H[int(rng.integers(0, len(MIXED_OFFSETS_H)))]))


def apply_common_messy(
    df: pl.DataFrame,
    plan: dict[str, np.ndarray],
    rng: np.random.Generator,
    id_col: str,
    times: dict[str, tuple[np.ndarray, np.ndarray]],
    required_ts: str,
    required_other: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, Edits]:
    """Duplicates (applied immediately) and timestamp variants shared by every file; returns pending edits."""
    n = df.height
    clean = clean_rows(n, plan)
    if len(clean) == 0:
        clean = np.arange(n)
    edits = Edits()
    dups = plan.get("exact_duplicate", np.empty(0, dtype=np.int64))
    if len(dups):
        src = clean[rng.integers(0, len(clean), len(dups))]
        order = np.arange(n)
        order[dups] = src
        df = df[pl.Series(order)]
    for row in plan.get("duplicate_id", ()):  # same id as another row, different content
        edits.set(id_col, row, df.get_column(id_col)[int(clean[rng.integers(0, len(clean))])])
    for row in plan.get("unparseable_timestamp", ()):
        cols = [c for c in sorted(times) if times[c][1][row]] or [required_ts]
        col = required_ts if rng.random() < 0.5 else cols[int(rng.integers(0, len(cols)))]
        edits.set(col, row, BAD_TIMESTAMPS[int(rng.integers(0, len(BAD_TIMESTAMPS)))])
    for i, row in enumerate(plan.get("missing_required", ())):
        choices = (required_ts, id_col) + required_other
        edits.set(choices[i % len(choices)], row, None)
    for row in plan.get("naive_timestamp", ()):
        retime_row(edits, row, times, "naive", rng)
    for row in plan.get("mixed_offsets", ()):
        retime_row(edits, row, times, "offset", rng)
    return df, edits


def shift_future(edits: Edits, row: int, times, as_of: int, rng: np.random.Generator, anchor: str) -> None:
    shift = as_of - int(times[anchor][0][row]) + int(rng.integers(HOUR, 20 * DAY))
    for col in sorted(times):
        t, ok = times[col]
        if ok[row]:
            edits.set(col, row, iso_z(int(t[row]) + shift))
