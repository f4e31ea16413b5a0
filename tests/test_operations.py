"""Operations, for real: concurrent runs, kill -9 mid-run, the landing-folder sensor, the multiprocess executor,
PostgreSQL instance storage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import write

from assets.resources import ReporterSettings, Warehouse, WarehouseBusy
from compliance.samples.generate import GenerateOptions, generate
from pipelines.cli import main

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    generate(
        GenerateOptions(
            out_dir=folder, tickets=400, privacy_requests=40, security_reports=15, incidents=15, retention_records=150
        )
    )
    return folder


def cli_run(exports: Path, out: Path, **env: str) -> subprocess.Popen:
    """`python -m pipelines.cli run` in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def evidence(out: Path) -> dict[str, bytes]:
    return {  # with the expectation suites and Data Docs in evidence/expectations/
        str(path.relative_to(out / "evidence")): path.read_bytes()
        for path in sorted((out / "evidence").rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def outputs(out: Path) -> dict[str, bytes]:
    files = [out / "manifest.json", out / "compliance_report.html", out / "sla_dashboard.html"]
    return {**evidence(out), **{path.name: path.read_bytes() for path in files}}


def assert_warehouse_consistent(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) - count(DISTINCT ticket_id) FROM staged_tickets").fetchall() == [(0,)]
        current = con.execute(
            "SELECT file, count(*) FROM loaded_files WHERE state = 'current' GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        assert current == []
        unbalanced = con.execute(
            "SELECT file FROM ingest_log WHERE rows_read <> rows_loaded + rows_quarantined"
        ).fetchall()
        assert unbalanced == []
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference(exports, tmp_path_factory) -> Path:
    """A clean in-process run on a fresh warehouse: what every recovered or concurrent run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    return out


def test_two_concurrent_runs_end_with_a_consistent_warehouse(exports, reference, tmp_path):
    out = tmp_path / "out"
    runs = [cli_run(exports, out), cli_run(exports, out)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [stderr[-2000:] for _, stderr in results]
    assert sum("waiting for warehouse" in stdout for stdout, _ in results) == 1  # the second waited for the first
    assert all("Traceback" not in stdout + stderr for stdout, stderr in results)
    assert evidence(out) == evidence(reference)
    assert_warehouse_consistent(out / "warehouse.duckdb")


def test_a_second_run_fails_with_one_line_when_the_warehouse_stays_busy(exports, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("CR_LOCK_TIMEOUT", "0.5")
    with Warehouse(path=str((out / "warehouse.duckdb").resolve())).run_lock():
        assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 1
    error = capsys.readouterr().err
    assert f"warehouse.duckdb is in use by another run (pid {os.getpid()}); waited 0.5s" in error
    assert len(error.strip().splitlines()) == 1


@contextmanager
def duckdb_file_held(path: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process holding the DuckDB file ``path`` open for writing, for ``seconds`` at most."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep({seconds})",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_step_waits_for_the_duckdb_file_then_names_its_holder(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb_file_held(path, 60) as holder:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match=rf"is in use by another run \(pid {holder.pid}\)"):
            with Warehouse(path=str(path), lock_timeout_seconds=0.5).connect():
                pass
        assert time.monotonic() - started >= 0.5
    with Warehouse(path=str(path), lock_timeout_seconds=5).connect() as con:  # free again
        assert con.execute("SELECT 1").fetchall() == [(1,)]


def test_a_period_report_attaching_the_warehouse_waits_for_a_writer(tmp_path):
    """A monthly report reads the warehouse read-only beside a run's writing step: it waits, never fails."""
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    with duckdb_file_held(path, 1.5) as holder, duckdb.connect() as con:
        with pytest.raises(WarehouseBusy, match=rf"is in use by another run \(pid {holder.pid}\)"):
            Warehouse(path=str(path), lock_timeout_seconds=0.3).attach_read_only(con, "warehouse")
        Warehouse(path=str(path), lock_timeout_seconds=30).attach_read_only(con, "warehouse")
        databases = "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'warehouse'"
        assert con.execute(databases).fetchall() == [(1,)]


def test_a_run_killed_midway_is_followed_by_a_clean_run(exports, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    before = outputs(out)
    newer = tmp_path / "newer"
    shutil.copytree(exports, newer)
    # A superseding export, so that the killed run has real work to do in its ingest transactions.
    lines = (exports / "tickets.csv").read_text(encoding="utf-8").splitlines()
    write(
        newer / "tickets-2026-11-20.csv",
        "\n".join([lines[0], *(line.replace(",open,", ",solved,") for line in lines[1:200])]) + "\n",
    )
    run = cli_run(newer, out)
    for line in run.stdout:  # kill -9 as soon as the first step has committed: the next one is under way
        if "[ 1/" in line:
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert outputs(out) == before  # the last good report, evidence and manifest are untouched
    assert_warehouse_consistent(out / "warehouse.duckdb")

    assert main(["run", "--exports", str(newer), "--out", str(out), "--as-of", AS_OF]) == 0  # no manual step
    fresh = tmp_path / "fresh"
    assert main(["run", "--exports", str(newer), "--out", str(fresh), "--as-of", AS_OF]) == 0
    assert evidence(out) == evidence(fresh)
    assert_warehouse_consistent(out / "warehouse.duckdb")


# --- the landing-folder sensor ---------------------------------------------------------------------------------------


def test_the_sensor_picks_up_a_new_file_exactly_once(tmp_path):
    from pipelines.automation import landing_folder_sensor

    landing = tmp_path / "landing"
    landing.mkdir()
    settings = ReporterSettings(exports_dir=str(landing), out_dir=str(tmp_path / "out"))

    def evaluate(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(
            cursor=cursor, resources={"settings": settings}, instance=dg.DagsterInstance.ephemeral()
        ) as context:
            return landing_folder_sensor(context)

    empty = evaluate(None)
    assert not empty.run_requests and json.loads(empty.cursor) == {}
    write(landing / "tickets.csv", "ticket_id,channel,created_at\nT1,sales,2026-03-02T10:00:00Z\n")
    write(landing / "notes.txt", "not an export")
    write(landing / "tickets.csv.part", "being copied")
    first = evaluate(empty.cursor)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["compliance/landing_files"] == "tickets.csv"
    assert list(json.loads(first.cursor)) == ["tickets.csv"]
    assert evaluate(empty.cursor).run_requests[0].run_key == first.run_requests[0].run_key  # a repeat is deduplicated
    assert not evaluate(first.cursor).run_requests  # nothing changed: nothing to do

    write(landing / "tickets.csv", "ticket_id,channel,created_at\nT1,sales,2026-03-03T10:00:00Z\n")
    changed = evaluate(first.cursor)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != first.run_requests[0].run_key
    assert not evaluate(changed.cursor).run_requests
    write(landing / "tickets.csv", "ticket_id,channel,created_at\nT1,sales,2026-03-02T10:00:00Z\n")  # back to version 1
    reverted = evaluate(changed.cursor)
    assert len(reverted.run_requests) == 1
    assert reverted.run_requests[0].run_key not in {first.run_requests[0].run_key, changed.run_requests[0].run_key}


def test_schedule_and_sensor_are_in_the_definitions():
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("daily_compliance_run")
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    assert schedule.job_name == sensor.job_name == "compliance_run"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


# --- Dagster executors and instance storage ----------------------------------------------------------------------


def _run_config(exports: Path, out: Path) -> dict:
    return {
        "resources": {
            "settings": {
                "config": {"exports_dir": str(exports), "out_dir": str(out), "as_of": AS_OF, "policy": "platform"}
            },
            "warehouse": {"config": {"path": str(out / "warehouse.duckdb")}},
        }
    }


def test_the_multiprocess_executor_produces_the_same_evidence(exports, reference, tmp_path):
    from pipelines.definitions import multiprocess_job

    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(multiprocess_job), instance=instance, run_config=_run_config(exports, out)
        )
        assert result.success
        processes = {event.pid for event in result.all_events if event.is_step_success}
    assert len(processes) > 1  # the steps really ran in several processes
    assert evidence(out) == evidence(reference)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_binaries() -> Path | None:
    candidates = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    return next(
        (folder for folder in candidates if (folder / "initdb").exists() and (folder / "pg_ctl").exists()), None
    )


@pytest.fixture()
def postgres_url():
    """A throwaway PostgreSQL server in a temporary folder on a free port (as `nobody` when run as root)."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed: pip install -e '.[postgres]'")
    server = Path(tempfile.mkdtemp(prefix="cr-postgres-"))  # outside pytest's folders, which only root may enter
    data = server / "data"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        server.chmod(0o755)
        shutil.chown(data, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(data / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://dagster@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(server, ignore_errors=True)


def test_a_run_on_postgresql_instance_storage(postgres_url, exports, reference, tmp_path, monkeypatch):
    from pipelines.definitions import defs

    home = tmp_path / "dagster_home"
    home.mkdir()
    # The shipped production setting, pointed at the throwaway server through its environment variables.
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    host, port = postgres_url.rsplit("@", 1)[1].split("/")[0].split(":")
    for name, value in {
        "DAGSTER_PG_HOST": host,
        "DAGSTER_PG_PORT": port,
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "postgres",
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        job = defs.resolve_job_def("compliance_run")
        result = job.execute_in_process(instance=instance, run_config=_run_config(exports, out))
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("run_manifest")) is not None
    assert evidence(out) == evidence(reference)


# --- observability -------------------------------------------------------------------------------------------------


def test_every_asset_reports_timings_and_logs_carry_no_free_text(exports, tmp_path):
    from pipelines.definitions import ALL_ASSETS, defs

    planted = ("hunter2", "4111 1111 1111 1111", "jane.doe@example.com", "+1 (415) 555-0134")
    exported = "".join(path.read_text(encoding="utf-8", errors="replace") for path in exports.glob("*.csv"))
    present = [value for value in planted if value in exported]
    assert present, "the sample exports should carry planted personal data"
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("compliance_run").execute_in_process(
            instance=instance, run_config=_run_config(exports, tmp_path)
        )
        assert result.success
        materializations = [
            event.event_specific_data.materialization for event in result.get_asset_materialization_events()
        ]
        logged = "\n".join(repr(record) for record in instance.all_logs(result.run_id))
    assert len(materializations) == len(ALL_ASSETS)
    for materialization in materializations:
        assert "duration_seconds" in materialization.metadata, materialization.asset_key
    ingest = next(m for m in materializations if m.asset_key.path[-1] == "staged_tickets")
    assert (
        ingest.metadata["rows_read"].value
        == ingest.metadata["rows_loaded"].value + ingest.metadata["rows_quarantined"].value
        > 0
    )
    for value in present:
        assert value not in logged


# --- CLI runs in the Dagster instance -----------------------------------------------------------------------------


def test_a_cli_run_is_recorded_in_the_instance_under_dagster_home(exports, tmp_path, monkeypatch):
    """What `make dev` then shows: the run, a materialization of every asset, and every check's evaluations."""
    from pipelines.definitions import ALL_ASSETS, ALL_CHECKS, defs

    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["run", "--exports", str(exports), "--out", str(tmp_path / "out"), "--as-of", AS_OF]) == 0
    assert (home / "dagster.yaml").is_file()  # written so that Dagster does not warn about its defaults
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [(run.job_name, run.status) for run in runs] == [("compliance_run", dg.DagsterRunStatus.SUCCESS)]
        for asset in ALL_ASSETS:
            for key in asset.keys:
                assert instance.get_latest_materialization_event(key) is not None, key
        evaluated = {
            event.dagster_event.event_specific_data.asset_check_key
            for event in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        }
    declared = {key for checks in ALL_CHECKS for key in checks.check_keys}
    assert declared and evaluated == declared
    assert defs.resolve_job_def("compliance_run")  # the job the UI lists the run under


def test_a_dagster_run_without_its_exports_folder_fails_with_the_cli_message(tmp_path):
    from pipelines.definitions import defs

    missing = tmp_path / "landing"
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("compliance_run").execute_in_process(
            instance=instance, run_config=_run_config(missing, tmp_path / "out"), raise_on_error=False
        )
    assert not result.success
    assert not any(event.is_step_success for event in result.all_events)  # nothing judged "no data"
    failures = [event for event in result.all_events if event.event_type_value == "RESOURCE_INIT_FAILURE"]
    error = failures[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert error.message.strip() == f"assets.resources.SettingError: exports folder {missing}: no such folder"
    assert not (tmp_path / "out" / "compliance_report.html").exists()


def test_dagster_materialize_select_all_with_a_month(exports, tmp_path):
    """`dagster asset materialize --select '*' --partition 2026-10-01`: the report and that month's Parquet."""
    out = tmp_path / "out"
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CR_EXPORTS_DIR": str(exports),
        "CR_OUT_DIR": str(out),
        "CR_WAREHOUSE": str(out / "warehouse.duckdb"),
        "CR_POLICY": "platform",
    }
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "pipelines.definitions", "--select", "*"]
        + ["--partition", "2026-10-01"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (out / "compliance_report.html").is_file()
    assert (out / "partitions" / "tickets" / "month=2026-10" / "part-0.parquet").is_file()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        monthly = instance.get_latest_materialization_event(dg.AssetKey("monthly_records"))
        assert monthly is not None and monthly.dagster_event.partition == "2026-10-01"


def test_cli_instance_storage_commits_without_waiting_for_the_disk(tmp_path):
    """SQLite connections of the CLI's process are `synchronous = OFF` (pipelines.cli explains the trade)."""
    import sqlalchemy

    from pipelines.cli import _commit_instance_records_without_fsync

    _commit_instance_records_without_fsync()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'runs.db'}", poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 0  # OFF


def test_cli_instance_event_log_keeps_one_engine_per_sqlite_file(tmp_path, monkeypatch):
    """Every event of a run stored through two engines (the run's file and the index), not one engine per event."""
    import sqlalchemy

    from pipelines.cli import _DEFAULT_INSTANCE_SETTINGS, _keep_event_log_engines

    created = []
    create_engine = sqlalchemy.create_engine
    monkeypatch.setattr(sqlalchemy, "create_engine", lambda *a, **k: created.append(a[0]) or create_engine(*a, **k))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_DEFAULT_INSTANCE_SETTINGS, encoding="utf-8")

    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        _keep_event_log_engines(instance)
        result = dg.materialize([one], instance=instance)
        assert result.success
        events = instance.all_logs(result.run_id)
        assert {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION} <= {
            event.dagster_event_type for event in events
        }
        assert instance.get_latest_materialization_event(dg.AssetKey("one")) is not None
    assert len(events) > len(created) and sorted(set(created)) == sorted(created)  # one engine per file
