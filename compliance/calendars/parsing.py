"""Calendars as the policy writes them: the ``calendars:`` mapping parsed and checked into :class:`CalendarSpec`."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_lib

KINDS = ("always_open", "business_hours", "working_days")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
END_OF_DAY = time(0, 0)
"""A window's closing time of ``time(0, 0)`` means 24:00 (end of the day): a window never closes at 00:00 of
its own day, because opening must be before closing."""


class CalendarError(ValueError):
    """Invalid calendar definition; the message is ``"<key path>: <problem>"``."""


@dataclasses.dataclass(frozen=True)
class CalendarSpec:
    id: str
    kind: str
    timezone: str = "UTC"
    weekly_hours: dict[int, tuple[tuple[time, time], ...]] = dataclasses.field(default_factory=dict)
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    observed: bool = True
    extra_closed_dates: frozenset[date] = frozenset()
    removed_holidays: frozenset[date] = frozenset()
    description: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, calendar_id: str, mapping: Any) -> CalendarSpec:
        return _parse_calendar(calendar_id, mapping)


# ----------------------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------------------
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_TOP_KEYS = {"kind", "description", "timezone", "hours", "days", "holidays"}
_HOLIDAY_KEYS = {"country", "subdivision", "observed", "extra", "removed"}


def _err(path: str, problem: str) -> CalendarError:
    return CalendarError(f"{path}: {problem}")


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """The tail of a message about an unknown key or value: the closest known spelling, else the known ones.

    Here rather than in ``compliance.policy`` because the policy loader imports this module, not the reverse."""
    close = [k for k in known if k.lower() == word.lower()] or difflib.get_close_matches(word, known, n=1)
    return f" (did you mean `{close[0]}`?)" if close else f" (expected one of {', '.join(known)})"


def _parse_time(path: str, value: Any, *, allow_24: bool) -> tuple[time, int]:
    """Returns (time, seconds since midnight); "24:00" -> (time(0, 0), 86400)."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int):
            raise _err(
                path,
                f'expected a quoted "HH:MM" string, got the number {value} '
                "(YAML reads an unquoted 17:00 as a number; quote it)",
            )
        raise _err(path, f'expected a "HH:MM" string, got {value!r}')
    m = _TIME_RE.match(value.strip())
    if not m:
        raise _err(path, f"not a time {value!r} (expected HH:MM)")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if (h, mi, s) == (24, 0, 0):
        if not allow_24:
            raise _err(path, "24:00 is only allowed as a closing time")
        return END_OF_DAY, 86_400
    if h > 23 or mi > 59 or s > 59:
        raise _err(path, f"not a time {value!r} (expected HH:MM between 00:00 and 24:00)")
    return time(h, mi, s), h * 3600 + mi * 60 + s


def _fmt_sec(sec: int) -> str:
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _parse_date(path: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise _err(path, f"expected a date YYYY-MM-DD, got a date-time {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _err(path, f"not a date {value!r} (expected YYYY-MM-DD)")


def _parse_weekday(path: str, value: Any) -> int:
    # Exactly the spellings of the policy schema (policy.schema.json), which refuses "Mon" or " mon" too.
    if value in WEEKDAYS:
        return WEEKDAYS.index(value)
    if value in _LONG_DAYS:
        return _LONG_DAYS.index(value)
    raise _err(path, f"unknown weekday {value!r}{did_you_mean(str(value), WEEKDAYS + _LONG_DAYS)}")


_LONG_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _parse_calendar(calendar_id: str, mapping: Any) -> CalendarSpec:
    base = f"calendars.{calendar_id}"
    if not isinstance(mapping, Mapping):
        raise _err(base, f"expected a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in _TOP_KEYS:
            raise _err(f"{base}.{key}", f"unknown key `{key}`{did_you_mean(str(key), sorted(_TOP_KEYS))}")
    kind = mapping.get("kind")
    if kind is None:
        raise _err(f"{base}.kind", f"missing (expected one of {', '.join(KINDS)})")
    if kind not in KINDS:
        raise _err(f"{base}.kind", f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    description = mapping.get("description") or ""
    if not isinstance(description, str):
        raise _err(f"{base}.description", "expected a string")

    tz_name = mapping.get("timezone")
    if tz_name is None:
        if kind != "always_open":
            raise _err(f"{base}.timezone", f"missing (required for a {kind} calendar)")
        tz_name = "UTC"
    if not isinstance(tz_name, str) or not tz_name.strip():
        raise _err(f"{base}.timezone", f"unknown time zone {tz_name!r}")
    try:
        if tz_name not in available_timezones() and tz_name != "UTC":
            raise ZoneInfoNotFoundError(tz_name)
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _err(f"{base}.timezone", f"unknown time zone {tz_name!r}") from None

    weekly: dict[int, tuple[tuple[time, time], ...]] = {}
    if kind == "always_open":
        for key in ("hours", "days", "holidays"):
            if key in mapping:
                raise _err(f"{base}.{key}", "not allowed for an always_open calendar")
        return CalendarSpec(id=calendar_id, kind=kind, timezone=tz_name, description=description)

    if kind == "business_hours":
        if "days" in mapping:
            raise _err(f"{base}.days", "not allowed for a business_hours calendar (use hours)")
        hours = mapping.get("hours")
        if not isinstance(hours, Mapping) or not hours:
            raise _err(f"{base}.hours", 'missing or empty (expected e.g. mon: [["09:00", "17:00"]])')
        for day_key, windows in hours.items():
            dpath = f"{base}.hours.{day_key}"
            # Exactly mon..sun, as the policy schema says (a key "Mon" is refused there, so here too).
            if day_key not in WEEKDAYS:
                raise _err(dpath, f"unknown weekday `{day_key}`{did_you_mean(str(day_key), WEEKDAYS)}")
            wd = WEEKDAYS.index(day_key)
            if windows is None:
                windows = []
            if not isinstance(windows, (list, tuple)):
                raise _err(dpath, "expected a list of [open, close] pairs")
            parsed: list[tuple[int, int, int]] = []
            for i, win in enumerate(windows):
                wpath = f"{dpath}[{i}]"
                if not isinstance(win, (list, tuple)) or len(win) != 2:
                    raise _err(wpath, f"expected a pair [open, close], got {win!r}")
                _, o = _parse_time(wpath, win[0], allow_24=False)
                _, c = _parse_time(wpath, win[1], allow_24=True)
                if o >= c:
                    raise _err(wpath, f"opening {_fmt_sec(o)} is not before closing {_fmt_sec(c)}")
                parsed.append((o, c, i))
            parsed.sort()
            for (o1, c1, _), (o2, c2, i2) in zip(parsed, parsed[1:], strict=False):
                if o2 < c1:
                    raise _err(
                        f"{dpath}[{i2}]", f"window {_fmt_sec(o2)}-{_fmt_sec(c2)} overlaps {_fmt_sec(o1)}-{_fmt_sec(c1)}"
                    )
            if parsed:
                weekly[wd] = tuple((_sec_to_time(o), _sec_to_time(c)) for o, c, _ in parsed)
        if not weekly:
            raise _err(f"{base}.hours", "no opening hours on any weekday")
    else:  # working_days
        if "hours" in mapping:
            raise _err(f"{base}.hours", "not allowed for a working_days calendar (use days)")
        days = mapping.get("days")
        if not isinstance(days, (list, tuple)) or not days:
            raise _err(f"{base}.days", "missing or empty (expected e.g. [mon, tue, wed, thu, fri])")
        for i, d in enumerate(days):
            wd = _parse_weekday(f"{base}.days[{i}]", d)
            weekly[wd] = ((time(0, 0), END_OF_DAY),)

    country = subdiv = None
    observed = True
    extra: set[date] = set()
    removed: set[date] = set()
    hol = mapping.get("holidays")
    if hol is not None:
        hpath = f"{base}.holidays"
        if not isinstance(hol, Mapping):
            raise _err(hpath, "expected a mapping")
        for key in hol:
            if key not in _HOLIDAY_KEYS:
                raise _err(f"{hpath}.{key}", f"unknown key `{key}`{did_you_mean(str(key), sorted(_HOLIDAY_KEYS))}")
        supported = holidays_lib.list_supported_countries()
        country = hol.get("country")
        if country is not None and (not isinstance(country, str) or country not in supported):
            raise _err(
                f"{hpath}.country",
                f"unknown holiday country {country!r} (expected a code of holidays.list_supported_countries())",
            )
        subdiv = hol.get("subdivision")
        if subdiv is not None:
            if country is None:
                raise _err(f"{hpath}.subdivision", "needs a country")
            subdiv = str(subdiv)
            if subdiv not in supported[country]:
                try:
                    holidays_lib.country_holidays(country, subdiv=subdiv, years=[2000])
                except Exception:
                    raise _err(
                        f"{hpath}.subdivision",
                        f"unknown subdivision {subdiv!r} of {country} "
                        f"(expected one of {', '.join(supported[country])})",
                    ) from None
        observed = hol.get("observed", True)
        if not isinstance(observed, bool):
            raise _err(f"{hpath}.observed", f"expected true or false, got {observed!r}")
        for key, target in (("extra", extra), ("removed", removed)):
            values = hol.get(key) or []
            if not isinstance(values, (list, tuple)):
                raise _err(f"{hpath}.{key}", "expected a list of dates YYYY-MM-DD")
            for i, v in enumerate(values):
                target.add(_parse_date(f"{hpath}.{key}[{i}]", v))

    return CalendarSpec(
        id=calendar_id,
        kind=kind,
        timezone=tz_name,
        weekly_hours=weekly,
        holiday_country=country,
        holiday_subdivision=subdiv,
        observed=observed,
        extra_closed_dates=frozenset(extra),
        removed_holidays=frozenset(removed),
        description=description,
    )


def _sec_to_time(sec: int) -> time:
    if sec >= 86_400:
        return END_OF_DAY
    return time(sec // 3600, sec % 3600 // 60, sec % 60)
