"""Deterministic, realistic sample exports for every input file of the data contract.

Used by ``make demo`` (``compliance-report generate``), the tests and ``make bench``.  Everything is
vectorised with numpy and written in chunks of ``CHUNK_ROWS`` tickets, so 10M tickets stay within a few GB.

Determinism: every file draws from its own ``numpy.random.default_rng([seed, stream, chunk])`` stream, the
chunk size is a constant, and nothing depends on the wall clock or on dict/set iteration order, so the same
options always give byte-identical files.

All timestamps are held as int64 seconds since the epoch (UTC) and written as ISO-8601 strings with ``Z``;
only the deliberately messy rows deviate (naive or offset timestamps, unparseable values, ...).  Nothing in a
clean row lies after ``as_of``.

The module by job: ``options`` (:class:`GenerateOptions`), ``clock`` (business hours of the platform
profile's calendar), ``output`` (the contract's columns, formatting, sinks), ``messy`` (deliberately bad rows),
``text``, and one module per file family: ``tickets``, ``privacy``, ``security``, ``incidents``, ``retention``.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from compliance.samples.clock import BusinessClock, sample_calendar
from compliance.samples.codes import CHANNELS, PLANS
from compliance.samples.incidents import write_incidents
from compliance.samples.messy import BAD_TIMESTAMPS, MESSY_KINDS
from compliance.samples.options import DEFAULT_AS_OF, FORMATS, GenerateOptions
from compliance.samples.output import CONTRACT_COLUMNS
from compliance.samples.privacy import write_privacy
from compliance.samples.retention import write_retention
from compliance.samples.security import write_security
from compliance.samples.tickets import write_tickets

__all__ = [
    "BAD_TIMESTAMPS",
    "CHANNELS",
    "CONTRACT_COLUMNS",
    "DEFAULT_AS_OF",
    "MESSY_KINDS",
    "PLANS",
    "GenerateOptions",
    "generate",
]


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
    clock = BusinessClock(sample_calendar(), as_of)
    counts: dict[str, int] = {}
    counts.update(write_tickets(options, clock, as_of))
    counts.update(write_privacy(options, clock, as_of))
    counts.update(write_security(options, clock, as_of))
    counts.update(write_incidents(options, clock, as_of))
    counts.update(write_retention(options, clock, as_of))
    return counts
