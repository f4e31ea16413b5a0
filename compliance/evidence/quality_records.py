"""The records of a staged table's Great Expectations run: its outcomes in ``data_quality`` and its row count in
``row_count_history`` (which the next run's row-count expectation compares against)."""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.core.sql import table_exists
from compliance.expectations import DATA_QUALITY_COLUMNS, decoding_outcomes, validate_table, write_data_quality
from compliance.policy import Policy


def record_expectations(
    con: duckdb.DuckDBPyConnection, table: str, source: str, policy: Policy, as_of: datetime
) -> list:
    """Validate the staged ``table`` of ``source``, replace the source's outcomes in ``data_quality`` and record
    its row count at ``as_of``. Returns the outcomes (the suite's, then the decoding ones)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS data_quality ({DATA_QUALITY_COLUMNS})")
    con.execute("DELETE FROM data_quality WHERE source = ?", [source])
    con.execute("CREATE TABLE IF NOT EXISTS row_count_history (source VARCHAR, as_of TIMESTAMPTZ, rows_loaded BIGINT)")
    previous = con.execute(
        "SELECT rows_loaded FROM row_count_history WHERE source = ? AND as_of < ? ORDER BY as_of DESC LIMIT 1",
        [source, as_of],
    ).fetchall()
    outcomes = validate_table(con, table, source, policy, as_of, previous[0][0] if previous else None)
    outcomes += decoding_outcomes(con, source)
    write_data_quality(con, outcomes)
    if table_exists(con, table):
        con.execute("DELETE FROM row_count_history WHERE source = ? AND as_of = ?", [source, as_of])
        con.execute(f"INSERT INTO row_count_history SELECT ?, ?, count(*) FROM {table}", [source, as_of])
    return outcomes
