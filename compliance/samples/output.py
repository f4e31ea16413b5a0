"""Writing the sample files: the contract's columns, timestamp and id formatting, chunked sinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from compliance.ingest.contract import SOURCES

# The generator writes every canonical file of the data contract except vendor_sla (the adapters' output),
# with the contract's columns in the contract's order.
SAMPLE_FILES = (
    "tickets",
    "ticket_events",
    "privacy_requests",
    "security_reports",
    "incidents",
    "incident_updates",
    "retention_inventory",
)
CONTRACT_COLUMNS: dict[str, list[str]] = {
    name: [column.name for column in SOURCES[name].columns] for name in SAMPLE_FILES
}


def fmt_ts(sec: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    s = pl.from_epoch(pl.Series(np.asarray(sec, dtype=np.int64)), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if valid is not None:
        bad = np.flatnonzero(~valid)
        if len(bad):
            s = s.scatter(bad, None)
    return s


def iso_offset(t: int, offset_hours: float) -> str:
    tz = timezone(timedelta(minutes=int(offset_hours * 60)))
    return datetime.fromtimestamp(int(t), tz).isoformat()


def iso_naive(t: int, space: bool = False) -> str:
    s = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return s.replace("T", " ") if space else s


def iso_z(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_ids(prefix: str, start: int, n: int, width: int) -> pl.Series:
    nums = pl.Series(np.arange(start + 1, start + n + 1, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return (prefix + nums).alias("id") if n else pl.Series("id", [], dtype=pl.String)


def pick(values, codes: np.ndarray) -> pl.Series:
    return pl.Series(list(values), dtype=pl.String).gather(pl.Series(np.asarray(codes, dtype=np.int64)))


class Sink:
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


def write_csv(path: Path, df: pl.DataFrame, name: str) -> int:
    sink = Sink(path, "csv", CONTRACT_COLUMNS[name])
    sink.write(df)
    return sink.close()
