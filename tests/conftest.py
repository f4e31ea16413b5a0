"""Shared fixtures: a DuckDB warehouse in a temporary folder, the shipped policies, small export folders."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import duckdb
import pytest

from compliance.policy import Policy, load_policy

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy("platform")


@pytest.fixture()
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def small_exports(folder: Path, **options) -> Path:
    """Generated exports of every domain, small enough for a test that runs the whole pipeline several times;
    ``options``: GenerateOptions fields to set otherwise."""
    from compliance.samples.generate import GenerateOptions, generate

    sizes = {"tickets": 300, "privacy_requests": 20, "security_reports": 5, "incidents": 6, "retention_records": 40}
    generate(GenerateOptions(out_dir=folder, **{**sizes, "seed": 11, **options}))
    return folder


# A staged tickets table as the Great Expectations tests build it by hand.
STAGED_TICKET_COLUMNS = (
    "ticket_id VARCHAR, channel VARCHAR, plan VARCHAR, tier VARCHAR, created_at TIMESTAMPTZ, "
    "first_response_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, status VARCHAR, escalated_at TIMESTAMPTZ, "
    "senior_reviewed_at TIMESTAMPTZ, subject VARCHAR, description VARCHAR, source_file VARCHAR, source_line BIGINT"
)


def clean_ticket_rows(n: int, file: str = "tickets.csv", first_id: int = 0) -> list[tuple]:
    """``n`` clean staged ticket rows (STAGED_TICKET_COLUMNS) of one file, IDs from ``first_id``, lines numbered
    from 2 (after a CSV header)."""
    rows = []
    for i in range(n):
        day = 1 + i % 27
        rows.append(
            (
                f"T{first_id + i:05d}",
                ("sales", "technical_support", "account_billing")[i % 3],
                ("free", "plan_2")[i % 2],
                ("standard", "priority")[i % 2],
                f"2026-03-{day:02d} 10:00:00Z",
                f"2026-03-{day:02d} 11:00:00Z",
                f"2026-03-{day:02d} 15:00:00Z",
                "solved",
                None,
                None,
                "subject",
                "text",
                file,
                i + 2,
            )
        )
    return rows


# A request log read as privacy requests by a mapping file alone (its layout is the whole format).
REQUEST_LOG_MAPPING = """source: privacy_requests
columns:
  request_id: Tracking Number
  received_at: Submitted Date
  completed_at: Closed Date
  status: Disposition
timestamp_formats: ["%m/%d/%Y"]
constants:
  request_type: access
"""


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


# --- helpers of the rule tests (tests/test_rules_*.py) ---------------------------------------------------------


def ts(text: str):
    """A UTC instant from 'YYYY-MM-DD HH:MM[:SS]'."""
    from datetime import datetime

    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def violations_of(con, rule_id: str | None = None, *, domain: str) -> dict[str, dict]:
    """The domain's violations (of one rule, or all) by record id."""
    where, params = ("WHERE rule_id = ?", [rule_id]) if rule_id else ("", [])
    cursor = con.execute(f"SELECT * FROM violations_{domain} {where}", params)
    names = [d[0] for d in cursor.description]
    return {row[2]: dict(zip(names, row, strict=False)) for row in cursor.fetchall()}


def metric_of(con, rule_id: str, period: str = "all", segment: str = "all", *, domain: str) -> dict:
    """The one metrics row of a rule, period and segment."""
    cursor = con.execute(
        f"SELECT * FROM metrics_{domain} WHERE rule_id = ? AND period = ? AND segment = ?", [rule_id, period, segment]
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=False))


@pytest.fixture
def memory_con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


# --- helpers of the ticket-clock tests -----------------------------------------------------------------------------


def load_staged_tickets(con, tickets: list[dict]) -> None:
    """Create ``staged_tickets`` with the contract's typed columns from dicts (absent keys are NULL)."""
    from compliance.ingest.contract import SOURCES

    columns = SOURCES["tickets"].columns
    types = {"timestamp": "TIMESTAMPTZ", "boolean": "BOOLEAN"}
    definition = ", ".join(f"{c.name} {types.get(c.kind, 'VARCHAR')}" for c in columns)
    con.execute(f"CREATE OR REPLACE TABLE staged_tickets ({definition}, source_file VARCHAR, source_line BIGINT)")
    con.executemany(
        f"INSERT INTO staged_tickets VALUES ({', '.join('?' for _ in columns)}, 'tickets.csv', ?)",
        [[ticket.get(c.name) for c in columns] + [line] for line, ticket in enumerate(tickets, start=2)],
    )


# --- helpers of the HTML tests -------------------------------------------------------------------------------------

# Input text that would run if a page did not escape it.
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
HOSTILE_IMG = "<img src=x onerror=alert(1)>"


def utc(*parts: int):
    """A UTC instant from its parts: utc(2024, 3, 1, 6, 30)."""
    from datetime import datetime

    return datetime(*parts, tzinfo=UTC)


def html_section(html: str, section_id: str) -> str:
    import re

    match = re.search(rf'<section id="{re.escape(section_id)}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"section {section_id} missing"
    return match.group(1)


def without_plotlyjs(html: str) -> str:
    """The page with the inlined library removed (the library's own source mentions URLs in strings)."""
    import re

    return re.sub(r'<script id="plotlyjs">.*?</script>', '<script id="plotlyjs"></script>', html, count=1, flags=re.S)
