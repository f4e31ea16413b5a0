"""Formatting helpers shared by the report, its reconciliation section and the dashboard (pure functions)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import polars as pl


def format_timestamp(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS UTC``; naive datetimes are UTC; a plain date stays a date."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return date.fromisoformat(text).strftime("%Y-%m-%d")
            except ValueError:
                return text
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return text  # not a timestamp: shown as given (escaped by the template)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def timestamp_sort_key(value: Any) -> str:
    """A sortable text for a timestamp cell (ISO in UTC); empty for a missing value."""
    text = format_timestamp(value)
    return "" if text == "—" else text


def _seconds_value(seconds: Any) -> float | None:
    """A duration cell as seconds; None for an empty, unreadable or NaN cell (shown as "—")."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def human_duration(seconds: Any) -> str:
    """``3 h 12 min``, ``2 d 4 h``, ``45 s``; a negative duration reads ``-3 h 12 min``."""
    value = _seconds_value(seconds)
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    total = int(round(abs(value)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h" if hours else f"{days} d"
    elif hours:
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    elif minutes:
        text = f"{minutes} min {secs} s" if secs else f"{minutes} min"
    else:
        text = f"{secs} s"
    return sign + text


def business_hours_text(seconds: Any) -> str:
    """A duration on a business-hours calendar, always in business hours: ``24 business hours``,
    ``1.5 business hours``. Never in days: 24 business hours are three working days, not "1 d"."""
    value = _seconds_value(seconds)
    if value is None:
        return "—"
    hours = round(value / 3600, 1)
    if hours == int(hours):
        hours = int(hours)
    return f"{hours:,} business hour{'' if hours == 1 else 's'}"


def format_count(value: Any) -> str:
    if value is None:
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def adherence_tenths(achieved: Any, denominator: Any) -> int | None:
    """Adherence in tenths of a percent, cut (never rounded up); None without a measured item."""
    if denominator is None or achieved is None or int(denominator) <= 0:
        return None
    return (int(achieved) * 1000) // int(denominator)


def format_adherence(achieved: Any, denominator: Any) -> str:
    """``97.8% (4,402 / 4,501)``, computed exactly from the counts. The percentage is cut, never rounded up:
    99.96% reads 99.9%, not 100.0%."""
    if denominator is None or achieved is None:
        return "—"
    tenths = adherence_tenths(achieved, denominator)
    if tenths is None:
        return "— (0 / 0)"
    return f"{tenths // 10}.{tenths % 10}% ({int(achieved):,} / {int(denominator):,})"


QUOTE_MAX_CHARS = 160


def shorten(text: str, limit: int = QUOTE_MAX_CHARS) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cell_text(value: Any) -> str:
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------------------------
# Page model
# --------------------------------------------------------------------------------------------------------------


def frame_rows(frame: pl.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.height == 0:
        return []
    return frame.to_dicts()
