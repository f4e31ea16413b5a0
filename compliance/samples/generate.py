"""Deterministic, realistic sample exports for every input file of the data contract.

Used by ``make demo`` (``compliance-report generate``), the tests and ``make bench``.  Everything is
vectorised with numpy and written in chunks of ``CHUNK_ROWS`` tickets, so 10M tickets stay within a few GB.

Determinism: every file draws from its own ``numpy.random.default_rng([seed, stream, chunk])`` stream, the
chunk size is a constant, and nothing depends on the wall clock or on dict/set iteration order, so the same
options always give byte-identical files.

All timestamps are held as int64 seconds since the epoch (UTC) and written as ISO-8601 strings with ``Z``;
only the deliberately messy rows deviate (naive or offset timestamps, unparseable values, ...).  Nothing in a
clean row lies after ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

__all__ = [
    "CHANNELS",
    "CONTRACT_COLUMNS",
    "DEFAULT_AS_OF",
    "MESSY_KINDS",
    "PLANS",
    "GenerateOptions",
    "generate",
]

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK_ROWS = 1_000_000
FORMATS = ("csv", "parquet", "jsonl")

CONTRACT_COLUMNS: dict[str, list[str]] = {
    "tickets": [
        "ticket_id",
        "channel",
        "plan",
        "tier",
        "created_at",
        "first_response_at",
        "resolved_at",
        "status",
        "escalated_at",
        "senior_reviewed_at",
        "subject",
        "description",
    ],
    "ticket_events": ["ticket_id", "occurred_at", "event_type", "actor", "new_status"],
    "privacy_requests": [
        "request_id",
        "request_type",
        "received_at",
        "first_response_at",
        "completed_at",
        "extended",
        "extension_notified_at",
        "status",
    ],
    "security_reports": [
        "report_id",
        "received_at",
        "acknowledged_at",
        "timeline_sent_at",
        "fixed_at",
        "disclosed_at",
        "embargo_extended_until",
    ],
    "incidents": [
        "incident_id",
        "kind",
        "severity",
        "started_at",
        "acknowledged_at",
        "resolved_at",
        "announced_at",
        "scheduled_start_at",
        "postmortem_published_at",
    ],
    "incident_updates": ["incident_id", "posted_at"],
    "retention_inventory": [
        "record_id",
        "data_class",
        "workspace_id",
        "account_id",
        "created_at",
        "account_closed_at",
        "workspace_deleted_at",
        "deleted_at",
    ],
}

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

CHANNELS = ("technical_support", "account_billing", "abuse", "sales", "privacy", "security")
CHANNEL_P = (0.45, 0.30, 0.08, 0.07, 0.05, 0.05)
PLANS = ("free", "plan_1", "plan_2", "plan_3")
PLAN_P = (0.50, 0.25, 0.15, 0.10)
PRIORITY_PLANS = (2, 3)  # plan_2, plan_3
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
ST_NEW, ST_OPEN, ST_PENDING, ST_HOLD, ST_SOLVED, ST_CLOSED, ST_NONE = range(7)

CHANNEL_ALIASES = {
    "account_billing": ["account", "billing", "account & billing"],
    "technical_support": ["tech", "technical support", "support"],
    "sales": ["sales@telegramos.com", "sales inquiries"],
    "abuse": ["abuse@telegramos.com", "abuse reports"],
    "privacy": ["privacy requests", "/legal/privacy"],
    "security": ["security@telegramos.com", "security disclosures"],
}
UNKNOWN_CHANNELS = ("carrier_pigeon", "fax", "phone_hotline", "twitter_dm", "unknown")
BAD_TIMESTAMPS = ("2026-13-45", "yesterday", "2026-02-30T10:00:00Z", "not a date", "TBD", "25:61 12/40/2026")
MIXED_OFFSETS_H = (2.0, -5.0, -4.0, 5.5, 0.0, 9.0, -7.0)

NY = ZoneInfo("America/New_York")
HOUR = 3600
DAY = 86400

# stream ids for the per-file random generators
_S_ARRIVAL, _S_TICKETS, _S_PRIVACY, _S_SECURITY, _S_INCIDENTS, _S_RETENTION, _S_TEXT = range(1, 8)


@dataclass
class GenerateOptions:
    out_dir: Path
    seed: int = 7
    tickets: int = 20_000
    privacy_requests: int = 600
    security_reports: int = 80
    incidents: int = 120  # incidents + maintenance windows
    retention_records: int = 5_000
    as_of: datetime = field(default_factory=lambda: DEFAULT_AS_OF)  # data covers the 12 months before as_of
    file_format: str = "csv"  # csv | parquet | jsonl (tickets and ticket_events; others always csv)
    messy_fraction: float = 0.02  # share of deliberately bad rows
    with_events: bool = True  # write ticket_events


# ----------------------------------------------------------------------------------------------------------
# calendar helpers
# ----------------------------------------------------------------------------------------------------------
class _Clock:
    """Hourly table around as_of: New York local weekday/hour, holidays and business-hour arithmetic."""

    def __init__(self, as_of: int, days_before: int = 400, days_after: int = 800):
        self.as_of = as_of
        self.base = (as_of // HOUR) * HOUR - days_before * DAY
        n = (days_before + days_after) * 24
        self.hours = self.base + np.arange(n, dtype=np.int64) * HOUR
        # UTC offset of New York for each hour (transitions happen on hour boundaries)
        offsets = np.array(
            [datetime.fromtimestamp(int(h), NY).utcoffset().total_seconds() for h in self.hours], dtype=np.int64
        )
        local = self.hours + offsets
        local_day = local // DAY
        self.weekday = ((local_day + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday; Monday = 0
        self.local_hour = ((local % DAY) // HOUR).astype(np.int8)
        y0 = int(datetime.fromtimestamp(int(self.hours[0]), UTC).year)
        y1 = int(datetime.fromtimestamp(int(self.hours[-1]), UTC).year)
        self.holiday = np.isin(local_day, _us_holiday_days(y0, y1))
        self.open = (self.weekday < 5) & (self.local_hour >= 9) & (self.local_hour < 17) & ~self.holiday
        self.cum = np.concatenate([[0], np.cumsum(self.open.astype(np.int64) * HOUR)])

    def _hidx(self, t: np.ndarray) -> np.ndarray:
        return np.clip((t - self.base) // HOUR, 0, len(self.hours) - 1)

    def business_seconds(self, t: np.ndarray) -> np.ndarray:
        h = self._hidx(t)
        frac = t - self.hours[h]
        return self.cum[h] + np.where(self.open[h], frac, 0)

    def add_business(self, t: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Instant when ``seconds`` of business time have elapsed after ``t`` (always inside open hours)."""
        b = np.minimum(self.business_seconds(t) + seconds, self.cum[-1] - 1)
        h = np.searchsorted(self.cum[1:], b, side="right")
        return self.base + h * HOUR + (b - self.cum[h])

    def arrival_weights(self, start: int, end: int, growth: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """Hour starts in [start, end) and their relative ticket arrival weights."""
        sel = (self.hours >= start) & (self.hours < end)
        wd = np.array([1.15, 1.15, 1.10, 1.05, 0.90, 0.45, 0.40])[self.weekday[sel]]
        hour_curve = np.array(
            [
                0.25,
                0.20,
                0.18,
                0.18,
                0.20,
                0.28,
                0.40,
                0.60,
                0.90,
                1.30,
                1.55,
                1.60,
                1.55,
                1.55,
                1.60,
                1.50,
                1.35,
                1.05,
                0.80,
                0.65,
                0.55,
                0.45,
                0.38,
                0.30,
            ]
        )
        hr = hour_curve[self.local_hour[sel]]
        hol = np.where(self.holiday[sel], 0.55, 1.0)
        t = self.hours[sel]
        trend = 1.0 + growth * (t - start) / max(end - start, 1)
        w = wd * hr * hol * trend
        return t, w / w.sum()


def _us_holiday_days(y0: int, y1: int) -> np.ndarray:
    try:
        import holidays  # project dependency; calendar matches policies/platform.yaml (observed included)

        days = sorted(holidays.US(years=range(y0, y1 + 1), observed=True).keys())
    except Exception:  # pragma: no cover - fallback keeps the generator usable without the package
        days = [date(y, 1, 1) for y in range(y0, y1 + 1)] + [date(y, 12, 25) for y in range(y0, y1 + 1)]
    epoch = date(1970, 1, 1)
    return np.array(sorted((d - epoch).days for d in days), dtype=np.int64)


def _sample_times(rng: np.random.Generator, hour_starts: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    counts = rng.multinomial(n, p)
    t = np.repeat(hour_starts, counts) + rng.integers(0, HOUR, n)
    t.sort()
    return t


def _lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    return (np.asarray(median, dtype=np.float64) * np.exp(rng.normal(0.0, sigma, n))).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# formatting helpers
# ----------------------------------------------------------------------------------------------------------
def _fmt_ts(sec: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    s = pl.from_epoch(pl.Series(np.asarray(sec, dtype=np.int64)), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if valid is not None:
        bad = np.flatnonzero(~valid)
        if len(bad):
            s = s.scatter(bad, None)
    return s


def _iso_offset(t: int, offset_hours: float) -> str:
    tz = timezone(timedelta(minutes=int(offset_hours * 60)))
    return datetime.fromtimestamp(int(t), tz).isoformat()


def _iso_naive(t: int, space: bool = False) -> str:
    s = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return s.replace("T", " ") if space else s


def _iso_z(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ids(prefix: str, start: int, n: int, width: int) -> pl.Series:
    nums = pl.Series(np.arange(start + 1, start + n + 1, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return (prefix + nums).alias("id") if n else pl.Series("id", [], dtype=pl.String)


def _pick(values, codes: np.ndarray) -> pl.Series:
    return pl.Series(list(values), dtype=pl.String).gather(pl.Series(np.asarray(codes, dtype=np.int64)))


class _Sink:
    """Writes DataFrame chunks to one file: CSV (header once), JSON Lines, or one Parquet file."""

    def __init__(self, path: Path, fmt: str, columns: list[str]):
        self.path, self.fmt, self.columns, self.rows = path, fmt, columns, 0
        # kept open across write() calls, closed by close(): one file written in chunks
        self._fh = open(path, "wb") if fmt in ("csv", "jsonl") else None  # noqa: SIM115
        self._pq = None
        self._header_done = False

    def write(self, df: pl.DataFrame) -> None:
        df = df.select([pl.col(c).cast(pl.String) for c in self.columns])
        self.rows += df.height
        if self.fmt == "csv":
            df.write_csv(self._fh, include_header=not self._header_done)
            self._header_done = True
        elif self.fmt == "jsonl":
            df.write_ndjson(self._fh)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = df.to_arrow()
            if self._pq is None:
                schema = pa.schema([pa.field(c, pa.string()) for c in self.columns])
                self._schema = schema
                self._pq = pq.ParquetWriter(str(self.path), schema, compression="zstd")
            self._pq.write_table(table.cast(self._schema))

    def close(self) -> int:
        if self.fmt == "csv" and not self._header_done:
            pl.DataFrame({c: pl.Series([], dtype=pl.String) for c in self.columns}).write_csv(self._fh)
        if self._fh is not None:
            self._fh.close()
        if self.fmt == "parquet":
            if self._pq is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = pa.schema([pa.field(c, pa.string()) for c in self.columns])
                pq.write_table(schema.empty_table(), str(self.path), compression="zstd")
            else:
                self._pq.close()
        return self.rows


# ----------------------------------------------------------------------------------------------------------
# messy rows
# ----------------------------------------------------------------------------------------------------------
def _messy_plan(
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


def _clean_rows(n: int, plan: dict[str, np.ndarray]) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for rows in plan.values():
        mask[rows] = False
    return np.flatnonzero(mask)


class _Edits:
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


def _retime_row(
    edits: _Edits, row: int, times: dict[str, tuple[np.ndarray, np.ndarray]], style: str, rng: np.random.Generator
) -> None:
    """Rewrite every present timestamp of a row as naive UTC or with a random offset (same instant)."""
    space = bool(rng.random() < 0.3)
    for col in sorted(times):
        t, ok = times[col]
        if not ok[row]:
            continue
        if style == "naive":
            edits.set(col, row, _iso_naive(t[row], space))
        else:
            edits.set(col, row, _iso_offset(t[row], MIXED_OFFSETS_H[int(rng.integers(0, len(MIXED_OFFSETS_H)))]))


def _apply_common_messy(
    df: pl.DataFrame,
    plan: dict[str, np.ndarray],
    rng: np.random.Generator,
    id_col: str,
    times: dict[str, tuple[np.ndarray, np.ndarray]],
    required_ts: str,
    required_other: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, _Edits]:
    """Duplicates (applied immediately) and timestamp variants shared by every file; returns pending edits."""
    n = df.height
    clean = _clean_rows(n, plan)
    if len(clean) == 0:
        clean = np.arange(n)
    edits = _Edits()
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
        _retime_row(edits, row, times, "naive", rng)
    for row in plan.get("mixed_offsets", ()):
        _retime_row(edits, row, times, "offset", rng)
    return df, edits


def _shift_future(edits: _Edits, row: int, times, as_of: int, rng: np.random.Generator, anchor: str) -> None:
    shift = as_of - int(times[anchor][0][row]) + int(rng.integers(HOUR, 20 * DAY))
    for col in sorted(times):
        t, ok = times[col]
        if ok[row]:
            edits.set(col, row, _iso_z(int(t[row]) + shift))


# ----------------------------------------------------------------------------------------------------------
# text
# ----------------------------------------------------------------------------------------------------------
_SUBJECTS = {
    "technical_support": [
        "API returns 500 on /v2/messages",
        "Webhook deliveries delayed",
        "Cannot log in after update",
        "Bot token rejected",
        "Rate limit errors since this morning",
        "App crashes on startup (Android 14)",
        "Sync stuck at 99%",
        "SSO configuration not working",
        "File upload fails over 20 MB",
        "Push notifications not arriving",
        "Dashboard very slow",
        "Export job never finishes",
    ],
    "account_billing": [
        "Charged twice this month",
        "Update billing address",
        "Invoice missing VAT number",
        "Downgrade to free plan",
        "Refund request",
        "Card declined on renewal",
        "Change account owner",
        "Upgrade to Plan 2",
        "Receipt for last payment",
        "Cancel subscription",
    ],
    "abuse": [
        "Spam bot in public group",
        "Phishing link reported",
        "Impersonation of our brand",
        "Harassment from a user",
        "Scam channel",
        "Copyright infringement report",
    ],
    "sales": [
        "Enterprise pricing question",
        "Volume discount for 500 seats",
        "Demo request",
        "Partnership inquiry",
        "Quote for annual plan",
        "Procurement questionnaire",
    ],
    "privacy": [
        "Delete my account data",
        "Request a copy of my data",
        "Correct my personal details",
        "Object to marketing processing",
        "Data portability request",
        "GDPR request",
    ],
    "security": [
        "Possible XSS in profile page",
        "Account takeover attempt",
        "Suspicious login notifications",
        "Vulnerability report: IDOR",
        "Leaked API key found",
        "2FA bypass concern",
    ],
}
_OPENERS = ["Hi,", "Hello team,", "Hi there,", "Good morning,", "Hey,", "Dear support,", ""]
_BODIES = {
    "technical_support": [
        "since yesterday our integration keeps failing with a timeout.",
        "the app shows an error after the latest update and I cannot continue.",
        "requests to the API return an internal error about one in ten times.",
        "our webhooks arrive hours late which breaks our workflow.",
        "the desktop client freezes when I open a large group.",
        "login with SSO redirects back to the start page in a loop.",
    ],
    "account_billing": [
        "I was billed twice for the same month, please refund one charge.",
        "please change the billing email on our account.",
        "our invoice is missing the company VAT number.",
        "my card was declined although it has enough funds.",
        "we would like to move from the free plan to Plan 2.",
        "I need receipts for the last three payments for our accountant.",
    ],
    "abuse": [
        "a bot is posting scam links in our community every few minutes.",
        "this account pretends to be our company and asks users for money.",
        "someone keeps sending threatening messages to my team.",
        "a channel is redistributing our paid content without permission.",
    ],
    "sales": [
        "we are evaluating the platform for about 500 employees.",
        "could you send pricing for an annual contract?",
        "we would like a demo for our IT team next week.",
        "does the enterprise plan include a dedicated account manager?",
    ],
    "privacy": [
        "under GDPR I ask you to delete all personal data you hold about me.",
        "please send me a copy of all data linked to my account.",
        "my name is misspelled in your records, please correct it.",
        "I object to my data being used for analytics.",
    ],
    "security": [
        "I found a way to read other users' profile data by changing an id in the URL.",
        "I received login alerts from a country I have never visited.",
        "an API key of yours appears in a public repository.",
        "the 2FA prompt can be skipped by reloading the page.",
    ],
}
_CLOSERS = ["Thanks.", "Thank you!", "Regards, Alex", "Best, Maria", "Please help asap.", "Cheers", ""]
_SENSITIVE = [
    "I forgot my password, my password is hunter2 if that helps.",
    "My PIN 4821 no longer works at login.",
    "You can charge card 4111 1111 1111 1111 exp 12/28 instead.",
    "I got the code 123456 by SMS but it says expired.",
    "the one-time code was 908172, is it still valid?",
    "password: Summer2026! please reset it.",
    "Please use my other card 5500 0000 0000 0004.",
    "Reach me at jane.doe@example.com for details.",
    "You can call me on +1 (415) 555-0134 any time.",
    "My number is +44 20 7946 0958 and my email is k.ito@example.org.",
    "contact: ops-team@example.net, phone +49 30 901820",
]
_HOSTILE = [
    "<script>alert(1)</script>",
    '=HYPERLINK("http://x")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "Robert'); DROP TABLE tickets;--",
    '"quoted", with, commas',
]


def _text_pools(rng: np.random.Generator):
    """Subject / description pools (one block per channel) plus sensitive and hostile pools."""
    subjects, sub_off, descs, desc_off = [], [], [], []
    for ch in CHANNELS:
        sub_off.append(len(subjects))
        subjects.extend(_SUBJECTS[ch])
        desc_off.append(len(descs))
        for _ in range(60):
            parts = [
                _OPENERS[int(rng.integers(0, len(_OPENERS)))],
                _BODIES[ch][int(rng.integers(0, len(_BODIES[ch])))],
                _CLOSERS[int(rng.integers(0, len(_CLOSERS)))],
            ]
            sep = "\n" if rng.random() < 0.1 else " "  # some multi-line descriptions
            descs.append(sep.join(p for p in parts if p))
    sub_size = np.array([len(_SUBJECTS[c]) for c in CHANNELS])
    return (
        pl.Series(subjects, dtype=pl.String),
        np.array(sub_off),
        sub_size,
        pl.Series(descs, dtype=pl.String),
        np.array(desc_off),
        60,
    )


# ----------------------------------------------------------------------------------------------------------
# tickets and ticket_events
# ----------------------------------------------------------------------------------------------------------
# event slots, in chronological order within a ticket (ties keep slot order)
_EV_TYPES = ("status_change", "auto_ack", "internal_note", "public_reply", "requester_reply")
_EV_ACTORS = ("system", "agent", "requester")
_SLOT_TYPE = np.array([0, 1, 0, 2, 3, 0, 4, 0, 3, 0, 0, 4, 0, 3, 0, 0])
_SLOT_ACTOR = np.array([0, 0, 1, 1, 1, 1, 2, 0, 1, 1, 1, 2, 0, 1, 1, 0])
_STATUS_SLOTS = (0, 2, 5, 7, 9, 10, 12, 14, 15)
N_SLOTS = 16

# first-response log-normal medians (seconds; business seconds for the business-hours channels) and sigma
_FR_MEDIAN = {  # (standard, priority)
    "technical_support": (4.0 * HOUR, 40 * 60),
    "account_billing": (3.0 * HOUR, 35 * 60),
    "abuse": (3.0 * HOUR, 3.0 * HOUR),
    "sales": (8.0 * HOUR, 8.0 * HOUR),
    "privacy": (1.3 * DAY, 1.3 * DAY),
    "security": (4.0 * HOUR, 2.0 * HOUR),
}
_FR_SIGMA = {
    "technical_support": 1.0,
    "account_billing": 1.1,
    "abuse": 1.1,
    "sales": 1.0,
    "privacy": 0.9,
    "security": 1.0,
}
_BUSINESS_CHANNELS = ("technical_support", "sales")


def _plant(rng: np.random.Generator, col: pl.Series, pool: list[str], share: float) -> pl.Series:
    """Replace a small share of cells with strings of ``pool`` (each one at least once when there is room)."""
    n = col.len()
    k = min(max(int(round(share * n)), len(pool)), n // 20)
    if k <= 0:
        return col
    rows = np.sort(rng.choice(n, size=k, replace=False))
    vals = pl.Series(pool, dtype=pl.String).gather(
        pl.Series((np.arange(k) + int(rng.integers(0, len(pool)))) % len(pool))
    )
    return col.scatter(rows, vals)


def _ticket_chunk(
    rng,
    clock: _Clock,
    created: np.ndarray,
    as_of: int,
    start_index: int,
    width: int,
    pools,
    messy_fraction: float,
    want_events: bool,
):
    n = len(created)
    c = created
    ch = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P)
    plan = rng.choice(len(PLANS), size=n, p=PLAN_P)
    plan_ok = rng.random(n) >= np.where(ch == CHANNELS.index("sales"), 0.4, 0.01)
    derived_prio = np.isin(plan, PRIORITY_PLANS) & plan_ok
    tier_explicit = rng.random(n) < 0.03
    tier_override = tier_explicit & (rng.random(n) < 0.1)
    prio = np.where(tier_override, ~derived_prio, derived_prio)

    # ---- first response -------------------------------------------------------------------------------
    med = np.zeros(n)
    sig = np.zeros(n)
    for i, name in enumerate(CHANNELS):
        m = ch == i
        med[m] = np.where(prio[m], _FR_MEDIAN[name][1], _FR_MEDIAN[name][0])
        sig[m] = _FR_SIGMA[name]
    delay = med * np.exp(rng.normal(0.0, 1.0, n) * sig)
    tail = rng.random(n) < 0.01  # forgotten tickets: long tail
    delay = np.where(tail, delay * rng.uniform(2.0, 6.0, n), delay)
    delay = np.minimum(delay, 200 * DAY).astype(np.int64) + 60
    business = np.isin(ch, [CHANNELS.index(x) for x in _BUSINESS_CHANNELS])
    f_wall = c + delay
    f_bh = clock.add_business(c, delay)
    f = np.where(business, f_bh, f_wall)
    answered = rng.random(n) >= 0.03

    # ---- resolution and conversation ---------------------------------------------------------------------
    res_delay = _lognormal(rng, 20 * HOUR, 1.3, n) + 5 * 60
    r1 = f + np.minimum(res_delay, 300 * DAY)
    resolves = rng.random(n) >= 0.015
    triage = c + 60 + _lognormal(rng, 30 * 60, 1.0, n)
    spam_solved = ~answered & (rng.random(n) < 0.3)
    r1 = np.where(answered, r1, triage + _lognormal(rng, DAY, 1.0, n))
    resolves = np.where(answered, resolves, spam_solved)

    T = np.zeros((n, N_SLOTS), dtype=np.int64)
    V = np.zeros((n, N_SLOTS), dtype=bool)
    S = np.full((n, N_SLOTS), ST_NONE, dtype=np.int8)
    T[:, 0], V[:, 0], S[:, 0] = c, True, ST_NEW
    T[:, 1], V[:, 1] = c + rng.integers(5, 61, n), rng.random(n) < 0.92
    T[:, 2], V[:, 2] = triage, ~answered
    S[:, 2] = np.where(rng.random(n) < 0.8, ST_OPEN, ST_HOLD)
    gap = f - c - 60
    T[:, 3] = c + 60 + (rng.random(n) * np.maximum(gap, 0)).astype(np.int64)
    V[:, 3] = answered & (gap > 60) & (rng.random(n) < 0.15)
    T[:, 4], V[:, 4] = f, answered
    pend1 = rng.random(n) < 0.6
    T[:, 5], V[:, 5], S[:, 5] = f, answered, np.where(pend1, ST_PENDING, ST_OPEN)
    rr = f + (rng.random(n) * (r1 - f) * 0.7).astype(np.int64)
    has_rr = answered & (rng.random(n) < 0.5)
    T[:, 6], V[:, 6] = rr, has_rr
    T[:, 7], V[:, 7], S[:, 7] = rr, has_rr & pend1, ST_OPEN
    a2 = rr + (rng.random(n) * (r1 - rr)).astype(np.int64)
    T[:, 8], V[:, 8] = a2, has_rr
    T[:, 9], V[:, 9], S[:, 9] = a2, has_rr & (rng.random(n) < 0.5), ST_PENDING
    T[:, 10], V[:, 10], S[:, 10] = r1, resolves, ST_SOLVED
    reopen = resolves & answered & (rng.random(n) < 0.03)
    ro = r1 + _lognormal(rng, DAY, 0.8, n) + 60
    a3 = ro + _lognormal(rng, 4 * HOUR, 0.8, n) + 60
    r2 = a3 + _lognormal(rng, 6 * HOUR, 0.8, n) + 60
    T[:, 11], V[:, 11] = ro, reopen
    T[:, 12], V[:, 12], S[:, 12] = ro, reopen, ST_OPEN
    T[:, 13], V[:, 13] = a3, reopen
    T[:, 14], V[:, 14], S[:, 14] = r2, reopen, ST_SOLVED
    r_final = np.where(reopen, r2, r1)
    T[:, 15], V[:, 15], S[:, 15] = r_final + 4 * DAY, resolves & (rng.random(n) < 0.95), ST_CLOSED
    V &= as_of >= T  # nothing after as_of

    status = np.full(n, ST_NEW, dtype=np.int8)
    for s in _STATUS_SLOTS:
        status = np.where(V[:, s], S[:, s], status)
    is_resolved = (status == ST_SOLVED) | (status == ST_CLOSED)
    resolved_at = np.where(V[:, 14], T[:, 14], T[:, 10])
    fr_ok = V[:, 4]

    # ---- escalation ---------------------------------------------------------------------------------------
    esc_end = np.where(is_resolved, resolved_at, np.minimum(as_of, c + 10 * DAY))
    esc = c + 60 + (rng.random(n) * np.maximum(esc_end - c - 60, 0)).astype(np.int64)
    esc_ok = (rng.random(n) < 0.05) & (esc <= as_of)
    rev = esc + _lognormal(rng, 10 * HOUR, 1.0, n) + 60
    rev_ok = esc_ok & (rng.random(n) >= 0.05) & (rev <= as_of)

    # ---- text ---------------------------------------------------------------------------------------------
    subj_pool, sub_off, sub_size, desc_pool, desc_off, desc_size = pools
    subj = subj_pool.gather(pl.Series(sub_off[ch] + (rng.random(n) * sub_size[ch]).astype(np.int64)))
    desc = desc_pool.gather(pl.Series(desc_off[ch] + rng.integers(0, desc_size, n)))
    desc = _plant(rng, desc, _SENSITIVE, 0.03)  # secrets, e-mail addresses, phone numbers
    subj = _plant(rng, subj, _HOSTILE, 0.002)  # markup / formula injection

    ids = _ids("T", start_index, n, width)
    plan_codes = np.where(plan_ok, plan, len(PLANS))
    tier_codes = np.where(tier_explicit, np.where(prio, 1, 0), 2)
    df = pl.DataFrame(
        {
            "ticket_id": ids,
            "channel": _pick(CHANNELS, ch),
            "plan": _pick(PLANS + (None,), plan_codes),
            "tier": _pick(("standard", "priority", None), tier_codes),
            "created_at": _fmt_ts(c),
            "first_response_at": _fmt_ts(f, fr_ok),
            "resolved_at": _fmt_ts(resolved_at, is_resolved),
            "status": _pick(STATUSES, status),
            "escalated_at": _fmt_ts(esc, esc_ok),
            "senior_reviewed_at": _fmt_ts(rev, rev_ok),
            "subject": subj,
            "description": desc,
        }
    )

    # ---- messy rows ---------------------------------------------------------------------------------------
    mplan = _messy_plan(rng, n, messy_fraction, MESSY_KINDS["tickets"])
    times = {
        "created_at": (c, np.ones(n, dtype=bool)),
        "first_response_at": (f, fr_ok),
        "resolved_at": (resolved_at, is_resolved),
        "escalated_at": (esc, esc_ok),
        "senior_reviewed_at": (rev, rev_ok),
    }
    df, edits = _apply_common_messy(df, mplan, rng, "ticket_id", times, "created_at", ("channel",))
    for row in mplan["unknown_channel"]:
        edits.set("channel", row, UNKNOWN_CHANNELS[int(rng.integers(0, len(UNKNOWN_CHANNELS)))])
    for row in mplan["channel_alias"]:
        aliases = CHANNEL_ALIASES[CHANNELS[int(ch[row])]]
        edits.set("channel", row, aliases[int(rng.integers(0, len(aliases)))])
    for row in mplan["response_before_created"]:
        edits.set("first_response_at", row, _iso_z(int(c[row]) - int(rng.integers(60, 6 * HOUR))))
    for row in mplan["after_as_of"]:
        _shift_future(edits, row, times, as_of, rng, "created_at")
    df = edits.apply(df)

    events = None
    if want_events:
        keep = np.ones(n, dtype=bool)  # events only for tickets whose row is clean or a valid variant
        for kind, rows in mplan.items():
            if kind not in VALID_VARIANTS:
                keep[rows] = False
        V &= keep[:, None]
        flat = np.flatnonzero(V.ravel())
        tix = flat // N_SLOTS
        slot = flat % N_SLOTS
        st = S.ravel()[flat]
        events = pl.DataFrame(
            {
                "ticket_id": ids.gather(pl.Series(tix)),
                "occurred_at": _fmt_ts(T.ravel()[flat]),
                "event_type": _pick(_EV_TYPES, _SLOT_TYPE[slot]),
                "actor": _pick(_EV_ACTORS, _SLOT_ACTOR[slot]),
                "new_status": _pick(STATUSES + (None,), st),
            }
        )
    return df, events


def _write_tickets(opts: GenerateOptions, clock: _Clock, as_of: int) -> dict[str, int]:
    ext = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}[opts.file_format]
    n = int(opts.tickets)
    rng_a = np.random.default_rng([opts.seed, _S_ARRIVAL])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of)
    created = _sample_times(rng_a, hours, p, n)
    created = np.minimum(created, as_of - 1)
    pools = _text_pools(np.random.default_rng([opts.seed, _S_TEXT]))
    width = max(8, len(str(n)))
    sink = _Sink(opts.out_dir / f"tickets.{ext}", opts.file_format, CONTRACT_COLUMNS["tickets"])
    esink = (
        _Sink(opts.out_dir / f"ticket_events.{ext}", opts.file_format, CONTRACT_COLUMNS["ticket_events"])
        if opts.with_events
        else None
    )
    for k, start in enumerate(range(0, max(n, 1), CHUNK_ROWS)):
        if n == 0:
            break
        rng = np.random.default_rng([opts.seed, _S_TICKETS, k])
        df, ev = _ticket_chunk(
            rng,
            clock,
            created[start : start + CHUNK_ROWS],
            as_of,
            start,
            width,
            pools,
            opts.messy_fraction,
            opts.with_events,
        )
        sink.write(df)
        if esink is not None:
            esink.write(ev)
    out = {sink.path.name: sink.close()}
    if esink is not None:
        out[esink.path.name] = esink.close()
    return out


# ----------------------------------------------------------------------------------------------------------
# privacy requests
# ----------------------------------------------------------------------------------------------------------
_REQUEST_TYPES = ("access", "erasure", "portability", "rectification", "restriction", "objection")
_REQUEST_P = (0.35, 0.30, 0.10, 0.12, 0.06, 0.07)
_BOOL_SPELLINGS = (("true", "false"), ("yes", "no"), ("1", "0"))


def _write_privacy(opts: GenerateOptions, clock: _Clock, as_of: int) -> dict[str, int]:
    n = int(opts.privacy_requests)
    rng = np.random.default_rng([opts.seed, _S_PRIVACY])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of, growth=0.1)
    rec = np.minimum(_sample_times(rng, hours, p, n), as_of - 1)
    rtype = rng.choice(len(_REQUEST_TYPES), size=n, p=_REQUEST_P)
    fr = rec + _lognormal(rng, 1.5 * DAY, 0.8, n) + 600
    fr_ok = (rng.random(n) >= 0.02) & (fr <= as_of)
    extended = rng.random(n) < 0.12
    late_notice = extended & (rng.random(n) < 0.15)
    notice = rec + np.where(late_notice, rng.uniform(31, 45, n) * DAY, rng.uniform(10, 28, n) * DAY).astype(np.int64)
    notice_ok = extended & (notice <= as_of)
    normal_done = rec + _lognormal(rng, 12 * DAY, 0.5, n) + HOUR
    ext_done = rec + (np.where(rng.random(n) < 0.9, rng.uniform(35, 88, n), rng.uniform(91, 120, n)) * DAY).astype(
        np.int64
    )
    done = np.where(extended, ext_done, normal_done)
    done = np.maximum(done, np.where(fr_ok, fr, rec))
    stuck = rng.random(n) < 0.03
    done_ok = ~stuck & (done <= as_of)
    status = np.where(done_ok, 0, np.where(notice_ok, 1, np.where(fr_ok, 2, 3)))
    status_names = ("completed", "extended", "in_progress", "received")
    spelling = rng.integers(0, len(_BOOL_SPELLINGS), n)
    ext_txt = [
        (_BOOL_SPELLINGS[int(s)][0] if e else _BOOL_SPELLINGS[int(s)][1])
        for s, e in zip(spelling, extended, strict=False)
    ]
    blank = ~extended & (rng.random(n) < 0.1)
    df = pl.DataFrame(
        {
            "request_id": _ids("PR", 0, n, 6),
            "request_type": _pick(_REQUEST_TYPES, rtype),
            "received_at": _fmt_ts(rec),
            "first_response_at": _fmt_ts(fr, fr_ok),
            "completed_at": _fmt_ts(done, done_ok),
            "extended": pl.Series(ext_txt, dtype=pl.String).scatter(np.flatnonzero(blank), None)
            if n
            else pl.Series([], dtype=pl.String),
            "extension_notified_at": _fmt_ts(notice, notice_ok),
            "status": _pick(status_names, status),
        }
    )
    mplan = _messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["privacy_requests"])
    times = {
        "received_at": (rec, np.ones(n, dtype=bool)),
        "first_response_at": (fr, fr_ok),
        "completed_at": (done, done_ok),
        "extension_notified_at": (notice, notice_ok),
    }
    df, edits = _apply_common_messy(df, mplan, rng, "request_id", times, "received_at", ("request_type",))
    for row in mplan["unknown_request_type"]:
        edits.set(
            "request_type", row, ("deletion please", "unsubscribe", "complaint", "ERASE-ME")[int(rng.integers(0, 4))]
        )
    for row in mplan["completed_before_received"]:
        edits.set("completed_at", row, _iso_z(int(rec[row]) - int(rng.integers(HOUR, 10 * DAY))))
        edits.set("status", row, "completed")
    for row in mplan["bad_boolean"]:
        edits.set("extended", row, ("maybe", "Y?", "2", "n/a")[int(rng.integers(0, 4))])
    for row in mplan["after_as_of"]:
        _shift_future(edits, row, times, as_of, rng, "received_at")
    df = edits.apply(df)
    return {"privacy_requests.csv": _write_csv(opts.out_dir / "privacy_requests.csv", df, "privacy_requests")}


def _write_csv(path: Path, df: pl.DataFrame, name: str) -> int:
    sink = _Sink(path, "csv", CONTRACT_COLUMNS[name])
    sink.write(df)
    return sink.close()


# ----------------------------------------------------------------------------------------------------------
# security reports
# ----------------------------------------------------------------------------------------------------------
def _write_security(opts: GenerateOptions, clock: _Clock, as_of: int) -> dict[str, int]:
    n = int(opts.security_reports)
    rng = np.random.default_rng([opts.seed, _S_SECURITY])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of, growth=0.0)
    rec = np.minimum(_sample_times(rng, hours, p, n), as_of - 1)
    ack = rec + _lognormal(rng, 5 * HOUR, 0.9, n) + 300
    ack_ok = ack <= as_of
    tl = np.maximum(rec + _lognormal(rng, 2.5 * DAY, 0.6, n), ack + 60)
    tl_ok = (rng.random(n) >= 0.03) & (tl <= as_of)
    fixed = tl + _lognormal(rng, 20 * DAY, 0.7, n)
    fixed_ok = (rng.random(n) < 0.8) & (fixed <= as_of) & tl_ok
    embargo = rng.random(n) < 0.08
    emb_until = rec + (rng.uniform(100, 150, n) * DAY).astype(np.int64)
    emb_ok = embargo & (rec + 80 * DAY <= as_of)  # agreed before the 90-day deadline
    late = rng.random(n) < 0.05  # disclosed after the deadline
    limit = np.where(emb_ok, emb_until, rec + 90 * DAY)
    disc = np.where(
        late,
        limit + (rng.uniform(2, 30, n) * DAY).astype(np.int64),
        np.minimum(fixed + (rng.uniform(1, 30, n) * DAY).astype(np.int64), limit - HOUR),
    )
    disc = np.maximum(disc, fixed + HOUR)
    disc_ok = fixed_ok & (disc <= as_of) & (rng.random(n) >= 0.05)
    df = pl.DataFrame(
        {
            "report_id": _ids("SR", 0, n, 5),
            "received_at": _fmt_ts(rec),
            "acknowledged_at": _fmt_ts(ack, ack_ok),
            "timeline_sent_at": _fmt_ts(tl, tl_ok),
            "fixed_at": _fmt_ts(fixed, fixed_ok),
            "disclosed_at": _fmt_ts(disc, disc_ok),
            "embargo_extended_until": _fmt_ts(emb_until, emb_ok),
        }
    )
    mplan = _messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["security_reports"])
    times = {
        "received_at": (rec, np.ones(n, dtype=bool)),
        "acknowledged_at": (ack, ack_ok),
        "timeline_sent_at": (tl, tl_ok),
        "fixed_at": (fixed, fixed_ok),
        "disclosed_at": (disc, disc_ok),
    }
    df, edits = _apply_common_messy(df, mplan, rng, "report_id", times, "received_at")
    for row in mplan["acknowledged_before_received"]:
        edits.set("acknowledged_at", row, _iso_z(int(rec[row]) - int(rng.integers(HOUR, 2 * DAY))))
    df = edits.apply(df)
    return {"security_reports.csv": _write_csv(opts.out_dir / "security_reports.csv", df, "security_reports")}


# ----------------------------------------------------------------------------------------------------------
# incidents and incident_updates
# ----------------------------------------------------------------------------------------------------------
def _write_incidents(opts: GenerateOptions, clock: _Clock, as_of: int) -> dict[str, int]:
    n = int(opts.incidents)
    rng = np.random.default_rng([opts.seed, _S_INCIDENTS])
    start = np.sort(rng.integers(as_of - 365 * DAY, as_of - HOUR, n)) if n else np.empty(0, dtype=np.int64)
    maint = rng.random(n) < 0.25
    sev = rng.choice(3, size=n, p=(0.10, 0.35, 0.55))
    # maintenance: scheduled on a quiet hour (02:00-05:00 UTC), announced usually >= 7 days ahead
    sched = (start // DAY) * DAY + rng.integers(2, 6, n) * HOUR
    sched = np.where(sched > as_of - 6 * HOUR, sched - DAY, sched)
    late_notice = rng.random(n) < 0.15
    announce = sched - (np.where(late_notice, rng.uniform(0.5, 6.9, n), rng.uniform(7.2, 21, n)) * DAY).astype(np.int64)
    started = np.where(maint, sched + rng.integers(0, 10 * 60, n), start)
    ack = started + _lognormal(rng, np.where(sev == 0, 4 * 60, 8 * 60), 0.8, n) + 30
    dur = np.where(
        maint,
        rng.integers(30 * 60, 4 * HOUR, n),
        _lognormal(rng, np.array([3 * HOUR, 90 * 60, 45 * 60])[sev], 0.8, n) + 10 * 60,
    )
    resolved = started + dur
    res_ok = resolved <= as_of
    ack_ok = ~maint & (ack <= as_of) & (ack <= np.where(res_ok, resolved, as_of))
    ack = np.minimum(ack, resolved)
    pm = resolved + _lognormal(rng, 5 * DAY, 0.6, n) + HOUR
    pm_ok = ~maint & res_ok & (rng.random(n) >= np.where(sev == 2, 0.15, 0.05)) & (pm <= as_of)
    kind = np.where(maint, 1, 0)
    df = pl.DataFrame(
        {
            "incident_id": _ids("INC", 0, n, 5),
            "kind": _pick(("incident", "maintenance"), kind),
            "severity": _pick(("sev1", "sev2", "sev3", None), np.where(maint, 3, sev)),
            "started_at": _fmt_ts(started),
            "acknowledged_at": _fmt_ts(ack, ack_ok),
            "resolved_at": _fmt_ts(resolved, res_ok),
            "announced_at": _fmt_ts(announce, maint),
            "scheduled_start_at": _fmt_ts(sched, maint),
            "postmortem_published_at": _fmt_ts(pm, pm_ok),
        }
    )
    # updates: a first post a few minutes in, then mostly < 60 min apart, a final post at resolution
    up_inc, up_t = [], []
    for i in range(n):
        end = int(resolved[i]) if res_ok[i] else as_of
        t = int(started[i]) + int(rng.integers(3 * 60, 20 * 60))
        long_gap = rng.random() < 0.12
        while t < end:
            up_inc.append(i)
            up_t.append(t)
            g = int(25 * 60 * np.exp(rng.normal(0, 0.45)))
            if long_gap and rng.random() < 0.3:
                g, long_gap = int(rng.integers(75 * 60, 180 * 60)), False
            t += max(g, 120)
        if res_ok[i]:
            up_inc.append(i)
            up_t.append(end)
    up_inc_a = np.array(up_inc, dtype=np.int64)
    up_t_a = np.array(up_t, dtype=np.int64)
    m = len(up_inc_a)
    ids = df.get_column("incident_id")
    updates = pl.DataFrame(
        {
            "incident_id": ids.gather(pl.Series(up_inc_a)) if m else pl.Series([], dtype=pl.String),
            "posted_at": _fmt_ts(up_t_a),
        }
    )

    mplan = _messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["incidents"])
    times = {
        "started_at": (started, np.ones(n, dtype=bool)),
        "acknowledged_at": (ack, ack_ok),
        "resolved_at": (resolved, res_ok),
        "announced_at": (announce, maint),
        "scheduled_start_at": (sched, maint),
        "postmortem_published_at": (pm, pm_ok),
    }
    df, edits = _apply_common_messy(df, mplan, rng, "incident_id", times, "started_at", ("kind",))
    for row in mplan["unknown_kind"]:
        edits.set("kind", row, ("outage", "degradation", "planned")[int(rng.integers(0, 3))])
    df = edits.apply(df)

    uplan = _messy_plan(rng, m, opts.messy_fraction, MESSY_KINDS["incident_updates"])
    uedits = _Edits()
    for row in uplan["unparseable_timestamp"]:
        uedits.set("posted_at", row, BAD_TIMESTAMPS[int(rng.integers(0, len(BAD_TIMESTAMPS)))])
    for row in uplan["orphan_incident"]:
        uedits.set("incident_id", row, f"INC{n + 90000 + int(row):05d}")
    for row in uplan["naive_timestamp"]:
        uedits.set("posted_at", row, _iso_naive(int(up_t_a[row])))
    updates = uedits.apply(updates)
    return {
        "incidents.csv": _write_csv(opts.out_dir / "incidents.csv", df, "incidents"),
        "incident_updates.csv": _write_csv(opts.out_dir / "incident_updates.csv", updates, "incident_updates"),
    }


# ----------------------------------------------------------------------------------------------------------
# retention inventory
# ----------------------------------------------------------------------------------------------------------
_DATA_CLASSES = ("account_data", "audit_log", "billing_record", "backup")


def _write_retention(opts: GenerateOptions, clock: _Clock, as_of: int) -> dict[str, int]:
    n = int(opts.retention_records)
    rng = np.random.default_rng([opts.seed, _S_RETENTION])
    n_ws = max(1, n // 25)
    n_acc = max(1, n // 5)
    year = 365 * DAY
    # workspaces
    ws_created = as_of - (rng.uniform(0.2, 9.5, n_ws) * year).astype(np.int64)
    ws_deleted = ws_created + (rng.uniform(0.1, 1.0, n_ws) * (as_of - ws_created)).astype(np.int64)
    ws_del_ok = rng.random(n_ws) < 0.15
    # accounts, each in one workspace
    acc_ws = rng.integers(0, n_ws, n_acc)
    ws_end = np.where(ws_del_ok, ws_deleted - DAY, as_of - 30 * DAY)[acc_ws]
    acc_created = ws_created[acc_ws] + (rng.random(n_acc) * np.maximum(ws_end - ws_created[acc_ws], HOUR)).astype(
        np.int64
    )
    acc_created = np.minimum(acc_created, as_of - 2 * DAY)
    acc_closed = acc_created + (rng.random(n_acc) * (as_of - acc_created)).astype(np.int64)
    acc_closed_ok = (rng.random(n_acc) < 0.25) | ws_del_ok[acc_ws]
    acc_closed = np.where(ws_del_ok[acc_ws], np.minimum(acc_closed, ws_deleted[acc_ws]), acc_closed)

    cls = rng.choice(4, size=n, p=(0.35, 0.25, 0.25, 0.15))
    acc = rng.integers(0, n_acc, n)
    ws = acc_ws[acc]
    created = np.zeros(n, dtype=np.int64)
    deleted = np.zeros(n, dtype=np.int64)
    del_ok = np.zeros(n, dtype=bool)
    u = rng.random(n)

    # account data: deleted within 30 days of closure (mostly), later or never (few)
    m = cls == 0
    created[m] = acc_created[acc[m]]
    closed = acc_closed[acc[m]]
    lag = np.where(u[m] < 0.86, rng.uniform(0.5, 29.5, m.sum()), rng.uniform(31, 150, m.sum())) * DAY
    deleted[m] = closed + lag.astype(np.int64)
    del_ok[m] = acc_closed_ok[acc[m]] & (u[m] < 0.94) & (deleted[m] <= as_of)

    # audit logs: deleted only after the workspace was deleted (a few prematurely)
    m = cls == 1
    wsm = ws[m]
    end = np.where(ws_del_ok[wsm], ws_deleted[wsm], as_of)
    created[m] = ws_created[wsm] + (rng.random(m.sum()) * (end - ws_created[wsm])).astype(np.int64)
    after = ws_deleted[wsm] + (rng.uniform(0.5, 20, m.sum()) * DAY).astype(np.int64)
    premature = u[m] < 0.03
    early = created[m] + (rng.random(m.sum()) * (end - created[m])).astype(np.int64)
    deleted[m] = np.where(premature, early, after)
    del_ok[m] = (premature | (ws_del_ok[wsm] & (u[m] < 0.7))) & (deleted[m] <= as_of)

    # billing records: up to 9 years old; most deleted soon after 7 years, a few before, some kept past 7
    m = cls == 2
    life = np.maximum(
        np.where(acc_closed_ok, acc_closed, as_of) - acc_created, HOUR
    )  # invoices accrue over an account's life
    acc[m] = rng.choice(n_acc, size=m.sum(), p=life / life.sum())
    ws[m] = acc_ws[acc[m]]
    a = acc[m]
    created[m] = np.maximum(acc_created[a] + (rng.random(m.sum()) * life[a]).astype(np.int64), as_of - 9 * year)
    seven = created[m] + 7 * year + 2 * DAY  # 7 years incl. leap days
    old = seven <= as_of
    early = created[m] + (rng.uniform(1.0, 6.9, m.sum()) * year).astype(np.int64)
    on_time = seven + (rng.uniform(1, 60, m.sum()) * DAY).astype(np.int64)
    deleted[m] = np.where(old, on_time, early)
    del_ok[m] = np.where(old, u[m] < 0.6, u[m] < 0.02) & (deleted[m] <= as_of)

    # backups: daily snapshots of a workspace, purged within 30 days (a few not, or late)
    m = cls == 3
    k = m.sum()
    live = np.flatnonzero(~ws_del_ok[acc_ws] & ~acc_closed_ok)  # backups of live workspaces and accounts
    if len(live):
        acc[m] = live[rng.integers(0, len(live), k)]
        ws[m] = acc_ws[acc[m]]
    age_days = rng.integers(0, 120, k)
    created[m] = ((as_of // DAY) - age_days - 1) * DAY + 2 * HOUR + rng.integers(0, 30 * 60, k)
    late = u[m] < 0.05
    deleted[m] = created[m] + (np.where(late, rng.uniform(32, 60, k), rng.uniform(29.0, 29.9, k)) * DAY).astype(
        np.int64
    )
    del_ok[m] = (rng.random(k) >= 0.04) & (deleted[m] <= as_of)

    del_ok &= deleted >= created
    df = pl.DataFrame(
        {
            "record_id": _ids("R", 0, n, 7),
            "data_class": _pick(_DATA_CLASSES, cls),
            "workspace_id": _ids("W", 0, n_ws, 5).gather(pl.Series(ws)) if n else pl.Series([], dtype=pl.String),
            "account_id": _ids("A", 0, n_acc, 6).gather(pl.Series(acc)) if n else pl.Series([], dtype=pl.String),
            "created_at": _fmt_ts(created),
            "account_closed_at": _fmt_ts(acc_closed[acc], acc_closed_ok[acc]),
            "workspace_deleted_at": _fmt_ts(ws_deleted[ws], ws_del_ok[ws]),
            "deleted_at": _fmt_ts(deleted, del_ok),
        }
    )
    mplan = _messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["retention_inventory"])
    times = {"created_at": (created, np.ones(n, dtype=bool)), "deleted_at": (deleted, del_ok)}
    df, edits = _apply_common_messy(df, mplan, rng, "record_id", times, "created_at", ("data_class",))
    for row in mplan["unknown_data_class"]:
        edits.set("data_class", row, ("logs", "misc", "customer_files")[int(rng.integers(0, 3))])
    for row in mplan["deleted_before_created"]:
        edits.set("deleted_at", row, _iso_z(int(created[row]) - int(rng.integers(DAY, 100 * DAY))))
    df = edits.apply(df)
    return {"retention_inventory.csv": _write_csv(opts.out_dir / "retention_inventory.csv", df, "retention_inventory")}


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------
def generate(options: GenerateOptions) -> dict[str, int]:
    """Write every input file of the data contract into ``options.out_dir``; returns file name -> rows."""
    if options.file_format not in FORMATS:
        raise ValueError(f"file_format must be one of {FORMATS}, got {options.file_format!r}")
    if not 0.0 <= options.messy_fraction <= 0.5:
        raise ValueError("messy_fraction must be between 0 and 0.5")
    for name in ("tickets", "privacy_requests", "security_reports", "incidents", "retention_records"):
        if int(getattr(options, name)) < 0:
            raise ValueError(f"{name} must be >= 0")
    as_of_dt = options.as_of
    if as_of_dt.tzinfo is None:
        as_of_dt = as_of_dt.replace(tzinfo=UTC)
    as_of = int(as_of_dt.timestamp())
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = GenerateOptions(**{**options.__dict__, "out_dir": out_dir})
    # remove stale exports of the other formats so a folder never holds two versions of one file
    for stem in ("tickets", "ticket_events"):
        for fmt in FORMATS:
            stale = out_dir / f"{stem}.{fmt}"
            if stale.exists() and (fmt != options.file_format or (stem == "ticket_events" and not options.with_events)):
                stale.unlink()
    clock = _Clock(as_of)
    counts: dict[str, int] = {}
    counts.update(_write_tickets(options, clock, as_of))
    counts.update(_write_privacy(options, clock, as_of))
    counts.update(_write_security(options, clock, as_of))
    counts.update(_write_incidents(options, clock, as_of))
    counts.update(_write_retention(options, clock, as_of))
    return counts
