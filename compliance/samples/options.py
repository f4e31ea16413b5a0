"""Options of the sample generator, and the ids of its random streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from compliance.ingest.contract import FILE_FORMATS

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK_ROWS = 1_000_000
FORMATS = FILE_FORMATS

# stream ids for the per-file random generators
S_ARRIVAL, S_TICKETS, S_PRIVACY, S_SECURITY, S_INCIDENTS, S_RETENTION, S_TEXT = range(1, 8)


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
