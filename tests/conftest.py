"""Shared fixtures: a DuckDB warehouse in a temporary folder, the shipped policies, small export folders."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from compliance.policy import Policy, load_policy

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def platform_policy() -> Policy:
    return load_policy("platform")


@pytest.fixture()
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """Leave without interpreter teardown, where DuckDB's native bindings print reference-leak noise after the
    summary line (the same reason as ``pipelines.cli.entry_point``)."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
