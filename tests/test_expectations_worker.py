"""The Great Expectations worker (``compliance/expectations_worker.py``): its states are the in-process states, its
errors reach the caller, a worker that dies is replaced by the main process, and the main process of a CLI run never
imports Great Expectations."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import STAGED_TICKET_COLUMNS, clean_ticket_rows, small_exports
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compliance.expectations as expectations
from compliance import expectations_worker
from compliance.expectations import _ROW_BY_ROW, table_segments, validate_segments

REPO = Path(__file__).resolve().parents[1]
TICKET_ID, CHANNEL, CREATED, FIRST_RESPONSE, SOURCE_FILE = 0, 1, 4, 5, 12


@pytest.fixture(autouse=True, scope="module")
def one_worker():
    """The tests share a worker (each costs a GX import) with the setting at its default; none is left behind."""
    with pytest.MonkeyPatch.context() as patched:
        patched.delenv(expectations_worker.SETTING, raising=False)
        expectations_worker.stop()
        yield
        expectations_worker.stop()


def _staged(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE staged_tickets ({STAGED_TICKET_COLUMNS})")
    con.executemany(f"INSERT INTO staged_tickets VALUES ({', '.join('?' * 14)})", rows)
    return con


def _states(con, policy, chunk_rows: int) -> dict:
    return validate_segments(
        con, "staged_tickets", "tickets", policy, table_segments(con, "staged_tickets"), chunk_rows
    )


def _in_process_states(con, policy, chunk_rows: int, monkeypatch) -> dict:
    with monkeypatch.context() as patched:
        patched.setenv(expectations_worker.SETTING, "off")
        return _states(con, policy, chunk_rows)


def _tickets(draws: list[tuple[int, int, int, int]]) -> list[tuple]:
    """Clean ticket rows of two files, each spoiled by a draw: (file, unknown channel, empty ID, response order)."""
    rows = []
    for i, (file, channel, empty_id, order) in enumerate(draws):
        row = list(clean_ticket_rows(1, ("tickets-2026-10-01.csv", "tickets.csv")[file], i)[0])
        row[SOURCE_FILE + 1] = i + 2
        row[CHANNEL] = (row[CHANNEL], "fax", "telex", None)[channel]
        row[TICKET_ID] = None if empty_id else row[TICKET_ID]
        row[FIRST_RESPONSE] = (row[FIRST_RESPONSE], "2026-01-01 00:00:00Z", None)[order]
        rows.append(tuple(row))
    return rows


DRAWS = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 3), st.booleans().map(int), st.integers(0, 2)), min_size=1, max_size=40
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draws=DRAWS, chunk_rows=st.integers(1, 7))
def test_the_workers_states_are_the_in_process_states(policy, monkeypatch, draws, chunk_rows):
    con = _staged(_tickets(draws))
    in_worker = _states(con, policy, chunk_rows)
    assert expectations_worker.worker_pid() is not None  # validated in the worker
    assert in_worker == _in_process_states(con, policy, chunk_rows, monkeypatch)


def test_a_chunked_segment_with_every_row_by_row_expectation_failing(policy, monkeypatch):
    """30 rows of one file in chunks of 4: the unknown channels, the empty ID and the response before creation are
    counted over every chunk, and the examples are the first 20 in table order, as in this process."""
    rows = _tickets([(1, 1 + i % 2, int(i == 17), int(i % 5 == 0)) for i in range(30)])
    con = _staged(rows)
    states = _states(con, policy, chunk_rows=4)["tickets.csv"]
    assert {key.split(":")[0] for key, state in states.items() if not state["success"]} == set(_ROW_BY_ROW)
    channel = states["expect_column_values_to_be_in_set:channel"]
    assert channel["unexpected_count"] == 30
    assert channel["first_unexpected"] == ["fax", "telex"] * 10
    assert states["expect_column_values_to_not_be_null:ticket_id"]["unexpected_count"] == 1
    assert (
        states["expect_column_pair_values_a_to_be_greater_than_b:created_at,first_response_at"]["unexpected_count"] == 6
    )
    assert _states(con, policy, chunk_rows=4) == {"tickets.csv": states}
    assert _in_process_states(con, policy, 4, monkeypatch) == {"tickets.csv": states}


def test_the_suite_comes_from_the_worker_as_in_process(policy, monkeypatch):
    from compliance.expectations import suite_json
    from compliance.ingest.contract import SOURCES

    built = suite_json(SOURCES["tickets"], policy, "2026-11-01T00:00:00Z", 10)
    assert expectations_worker.worker_pid() is not None
    monkeypatch.setenv(expectations_worker.SETTING, "off")
    assert built == suite_json(SOURCES["tickets"], policy, "2026-11-01T00:00:00Z", 10)


def test_an_exception_in_the_worker_reaches_the_caller_and_the_worker_serves_on():
    unknown = [{"type": "expect_nothing_in_particular", "kwargs": {}, "meta": {}}]
    with pytest.raises(KeyError, match="expect_nothing_in_particular"):
        expectations_worker.call("suite_json_of_specs", "tickets", unknown)
    pid = expectations_worker.worker_pid()
    table = _staged(clean_ticket_rows(3)).sql("SELECT channel FROM staged_tickets").to_arrow_table()
    with pytest.raises(KeyError, match="expect_nothing_in_particular"):
        expectations_worker.stream("chunk_validator", ("tickets", "staged_tickets", unknown), [(1, table), (2, table)])
    assert expectations_worker.call("outcome_column", "expect_column_to_exist", {"column": "channel"}) == "channel"
    assert expectations_worker.worker_pid() == pid


def test_a_worker_killed_mid_run_is_replaced_by_this_process(policy, monkeypatch, caplog):
    """The worker is killed once it has the first chunk: the main process warns and validates from there."""
    rows = _tickets([(i % 2, i % 3, 0, i % 4 == 0) for i in range(20)])
    con = _staged(rows)
    expected = _in_process_states(con, policy, 3, monkeypatch)
    chunks = expectations._segment_chunks

    def killing_after_the_first(*args):
        for number, chunk in enumerate(chunks(*args)):
            yield chunk
            if number == 1:  # the worker holds chunk 0 and 1
                os.kill(expectations_worker.worker_pid(), signal.SIGKILL)

    expectations_worker.start()
    monkeypatch.setattr(expectations, "_segment_chunks", killing_after_the_first)
    with caplog.at_level(logging.WARNING, logger="compliance.expectations_worker"):
        assert _states(con, policy, 3) == expected
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "validating in this process" in warnings[0]
    assert expectations_worker.worker_pid() is None


def test_a_worker_that_hangs_is_stopped_and_this_process_answers(monkeypatch, caplog):
    assert expectations_worker.call("outcome_column", "expect_column_to_exist", {"column": "x"}) == "x"
    hung = expectations_worker.worker_pid()
    os.kill(hung, signal.SIGSTOP)
    monkeypatch.setattr(expectations_worker, "_ANSWER_SECONDS", 0.5)
    with caplog.at_level(logging.WARNING, logger="compliance.expectations_worker"):
        assert expectations_worker.call("outcome_column", "expect_column_to_exist", {"column": "y"}) == "y"
    assert "no answer in 0.5 s" in caplog.text and "validating in this process" in caplog.text
    assert expectations_worker.worker_pid() is None
    assert not _running(hung)


def test_stop_leaves_no_child_process():
    assert expectations_worker.call("outcome_column", "expect_column_to_exist", {"column": "x"}) == "x"
    pid = expectations_worker.worker_pid()
    expectations_worker.stop()
    assert expectations_worker.worker_pid() is None
    assert multiprocessing.active_children() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_worker_exits_when_its_parent_dies():
    code = (
        "import os\nfrom compliance import expectations_worker\n"
        "expectations_worker.call('outcome_column', 'expect_column_to_exist', {'column': 'x'})\n"
        "print(expectations_worker.worker_pid(), flush=True)\nos._exit(0)\n"
    )
    pid = int(_python(code).stdout.split()[-1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    assert not _running(pid)


def test_a_worker_stopped_while_it_imports_ends_at_once_and_silently():
    """A run that fails at once (a bad setting) stops a worker still importing GX: no wait, no warning printed."""
    code = (
        "import time\nfrom compliance import expectations_worker\n"
        "expectations_worker.start()\nstarted = time.monotonic()\nexpectations_worker.stop()\n"
        "print(round(time.monotonic() - started, 1))\n"
    )
    ran = _python(code)
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert float(ran.stdout) < 2.0  # the worker was not waited for until its import ended


def test_the_worker_does_not_run_the_parents_script_again(tmp_path):
    """A script without an ``if __name__ == "__main__"`` guard: spawn would run it again in the worker."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os\nfrom compliance import expectations_worker\n"
        f"open({str(tmp_path / 'runs')!r}, 'a').write('ran\\n')\n"
        "assert expectations_worker.call('outcome_column', 'expect_column_to_exist', {'column': 'x'}) == 'x'\n"
        "expectations_worker.stop()\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ran = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "validating in this process" not in ran.stderr  # the worker answered
    assert (tmp_path / "runs").read_text() == "ran\n"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited, its new parent reaps it


def test_an_unknown_setting_is_refused():
    with pytest.MonkeyPatch.context() as patched:
        patched.setenv(expectations_worker.SETTING, "sometimes")
        with pytest.raises(ValueError, match="CR_GX_WORKER='sometimes'"):
            expectations_worker.start()


def test_the_main_process_of_a_cli_run_never_imports_great_expectations(tmp_path):
    exports = small_exports(tmp_path / "exports")
    out = tmp_path / "out"
    code = (
        "import json, sys\nfrom pipelines.cli import main\n"
        f"code = main(['run', '--exports', {str(exports)!r}, '--out', {str(out)!r}, "
        "'--as-of', '2026-11-01T00:00:00Z'])\n"
        "print(json.dumps([code, 'great_expectations' in sys.modules]))\n"
    )
    environment = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    environment.pop(expectations_worker.SETTING, None)
    (tmp_path / "home").mkdir()
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600
    )
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == [0, False], ran.stderr[-2000:]
    validation = json.loads((out / "evidence/expectations/tickets_contract.validation.json").read_text())
    assert validation["results"]  # the suite ran, in the worker
    assert "Great Expectations worker" not in ran.stderr  # it started and answered: no fallback
    assert "leaked semaphore" not in ran.stderr  # the worker ran its finalizers before it exited


def test_the_warm_up_runs():
    """The worker swallows a failed warm-up (a head start only): it must not fail unnoticed here."""
    expectations.warm_up()


def test_a_run_that_computes_starts_the_worker_and_stops_it_an_unchanged_run_does_not_start_it(
    tmp_path, monkeypatch, capsys
):
    from pipelines.cli import main

    exports = small_exports(tmp_path / "exports")
    started = []
    start = expectations_worker.start
    monkeypatch.setattr(expectations_worker, "start", lambda: started.append(True) or start())
    command = ["run", "--exports", str(exports), "--out", str(tmp_path / "out"), "--as-of", "2026-11-01T00:00:00Z"]
    assert main(command) == 0
    assert len(started) >= 1 and expectations_worker.worker_pid() is None  # stopped with the run
    started.clear()
    assert main(command) == 0
    assert "nothing changed since run" in capsys.readouterr().out
    assert started == [] and expectations_worker.worker_pid() is None
