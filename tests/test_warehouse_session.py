"""Warehouse.session: the steps of one CLI run share a connection, each starting as on a connection of its own."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from assets import resources
from assets.resources import Warehouse
from compliance.core.sql import install_macros


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(path=str(tmp_path / "warehouse.duckdb"))


def _leave_everything_behind(con: duckdb.DuckDBPyConnection, attached: str) -> None:
    con.execute("CREATE TABLE kept AS SELECT 1 AS x")
    con.execute("CREATE TEMP TABLE captures AS SELECT 1 AS x")
    con.execute("CREATE TEMP VIEW staged_tickets AS SELECT 2 AS shadowing")
    con.register("frame", pa.table({"x": [1]}))
    install_macros(con)
    con.execute("SET VARIABLE lines = 3")
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    con.execute(f"ATTACH '{attached}' AS other")


def _state(con: duckdb.DuckDBPyConnection) -> dict:
    return {
        "tables": con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall(),
        "views": con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall(),
        "macros": con.execute("SELECT function_name FROM duckdb_functions() WHERE database_name = 'temp'").fetchall(),
        "variables": con.execute("SELECT name FROM duckdb_variables()").fetchall(),
        "optimizers": con.execute("SELECT current_setting('disabled_optimizers')").fetchall(),
        "databases": con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall(),
    }


def test_a_step_in_a_session_starts_as_on_a_connection_of_its_own(warehouse, tmp_path):
    with warehouse.connect() as con:
        fresh = _state(con)
    with warehouse.session():
        with warehouse.connect() as first:
            _leave_everything_behind(first, str(tmp_path / "other.duckdb"))
        with warehouse.connect() as second:
            assert second is first  # the same connection: not opened again
            after = _state(second)
    assert after == {**fresh, "tables": [("kept",)]}


def test_a_failed_step_in_a_session_is_rolled_back_and_the_next_step_runs(warehouse):
    with warehouse.session():
        with pytest.raises(ValueError), warehouse.connect() as con:
            con.execute("CREATE TABLE half_written AS SELECT 1 AS x")
            raise ValueError("the step failed")
        with warehouse.connect() as con:
            assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_written'").fetchall() == [
                (0,)
            ]
            con.execute("CREATE TABLE written AS SELECT 1 AS x")
    with duckdb.connect(warehouse.path, read_only=True) as reader:  # the session closed the file
        assert reader.execute("SELECT x FROM written").fetchall() == [(1,)]


def test_without_a_session_each_step_opens_and_closes_the_file(warehouse):
    with warehouse.connect() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    with warehouse.connect() as other:
        assert other is not con
    with duckdb.connect(warehouse.path, read_only=True) as reader:
        assert reader.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_session_keeps_at_most_its_share_of_duckdbs_cache_for_the_next_step(warehouse, monkeypatch):
    monkeypatch.setattr(resources, "_SESSION_CACHE_BYTES", 8 << 20)
    with warehouse.connect() as con:
        con.execute("CREATE TABLE wide AS SELECT range AS id, md5(range::VARCHAR) AS text FROM range(2000000)")
    with warehouse.session():
        with warehouse.connect() as con:
            con.execute("SELECT count(DISTINCT text) FROM wide").fetchall()
            assert con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] > 8 << 20
        with warehouse.connect() as con:
            assert con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] <= 8 << 20
            assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [("3.7 GiB",)]


def test_a_damaged_file_is_left_to_the_steps_to_report(warehouse):
    with open(warehouse.path, "wb") as damaged:
        damaged.write(b"\0" * 8 + b"DUCK" + b"\xff" * 4096)
    with warehouse.session():
        with pytest.raises(duckdb.Error), warehouse.connect():
            pass


def test_the_only_temporary_macros_are_those_a_step_forgets_by_name():
    """forget_step drops macros by name (compliance.core.sql.MACRO_NAMES): one made elsewhere would outlive its step."""
    root = Path(resources.__file__).parents[1]
    makers = {
        str(path.relative_to(root))
        for folder in ("compliance", "assets", "checks", "reports", "pipelines")
        for path in (root / folder).rglob("*.py")
        if "TEMP MACRO" in path.read_text(encoding="utf-8")
    }
    assert makers == {"compliance/core/sql.py"}
