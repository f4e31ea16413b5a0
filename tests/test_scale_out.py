"""Month partitions that scale out: the ticket clocks of each month from its Parquet, on Dagster's dask executor,
equal to the in-process run byte for byte; an unchanged month is not recomputed."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import write

from compliance.evidence.files import EVIDENCE_FILES, _csv_copy
from compliance.evidence.monthly_clocks import (
    METRICS_ORDER,
    evaluate_month,
    load_monthly_ticket_sla,
    period_metrics,
    ticket_sla_part,
    write_period_metrics,
)
from compliance.evidence.partitions import write_month
from compliance.ingest.staging import ingest_source
from compliance.rules.ticket_clocks import TICKET_SLA_ORDER, evaluate_ticket_clocks

AS_OF = "2026-11-01T00:00:00Z"
TICKETS_HEADER = (
    "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,"
    "subject,description\n"
)
EVENTS_HEADER = "ticket_id,occurred_at,event_type,actor,new_status\n"


def _warehouse(folder: Path, policy, tickets: str, events: str) -> Path:
    exports, out = folder / "exports", folder / "out"
    write(exports / "tickets.csv", TICKETS_HEADER + tickets)
    write(exports / "ticket_events.csv", EVENTS_HEADER + events)
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    for source in ("tickets", "ticket_events"):
        ingest_source(con, source, exports, policy)
    for month in ("2026-03", "2026-04"):
        write_month(con, out / "partitions", month)
    con.close()
    return out


# T1 is created on 31 March and answered on 1 April; T2 is created and answered in April.
TICKETS = (
    "T1,sales,free,,2026-03-31T22:00:00Z,,,open,,,,\n"  # first response only from its events
    "T2,sales,free,,2026-04-07T10:00:00Z,,,open,,,,\n"
)
EVENTS = "T1,2026-04-01T09:00:00Z,public_reply,agent,open\nT2,2026-04-07T11:00:00Z,public_reply,agent,open\n"


def test_a_ticket_event_is_stored_in_the_month_of_its_ticket(tmp_path, policy):
    out = _warehouse(tmp_path, policy, TICKETS, EVENTS)
    reader = duckdb.connect()
    rows = reader.execute(
        f"SELECT ticket_id, month FROM read_parquet('{out}/partitions/ticket_events/*/*.parquet', "
        "hive_partitioning = true) ORDER BY ALL"
    ).fetchall()
    # T1's reply (April) is kept with T1 (March): a March partition without it would find T1 never answered
    assert rows == [("T1", "2026-03"), ("T2", "2026-04")]


def test_a_month_is_recomputed_only_when_its_inputs_the_policy_or_the_as_of_change(tmp_path, policy):
    out = _warehouse(tmp_path, policy, TICKETS, EVENTS)
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    first = [evaluate_month(out / "partitions", out, month, (policy,), as_of) for month in ("2026-03", "2026-04")]
    assert [(result.recomputed, result.clocks > 0) for result in first] == [(True, True), (True, True)]
    march = ticket_sla_part(out, "2026-03")
    reader = duckdb.connect()
    sources = reader.execute(
        f"SELECT DISTINCT metric, clock_source, state FROM read_parquet('{march}') WHERE metric = 'first_response'"
    ).fetchall()
    assert sources == [("first_response", "events", "achieved")]  # answered by the April event
    os.utime(march, ns=(1, 1))
    again = [evaluate_month(out / "partitions", out, month, (policy,), as_of) for month in ("2026-03", "2026-04")]
    assert [result.recomputed for result in again] == [False, False]
    assert march.stat().st_mtime_ns == 1  # kept, not rewritten
    later = evaluate_month(out / "partitions", out, "2026-03", (policy,), datetime(2026, 11, 2, tzinfo=UTC))
    assert later.recomputed
    # a new version of T2 changes April's partition only
    write(
        tmp_path / "exports" / "tickets-2026-11-20.csv",
        TICKETS_HEADER + "T2,sales,free,,2026-04-07T10:00:00Z,,,solved,,,,\n",
    )
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    ingest_source(con, "tickets", tmp_path / "exports", policy)
    write_month(con, out / "partitions", "2026-04")
    con.close()
    after = [evaluate_month(out / "partitions", out, month, (policy,), as_of) for month in ("2026-03", "2026-04")]
    assert [result.recomputed for result in after] == [True, True]  # March: as-of back to 1 Nov; April: T2 changed
    assert [
        evaluate_month(out / "partitions", out, month, (policy,), as_of).recomputed for month in ("2026-03", "2026-04")
    ] == [False, False]
    # the figures of every period from the stored months are the whole run's
    path, rows = write_period_metrics((policy,), out)
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    evaluate_ticket_clocks(con, policy, as_of)
    whole_run = con.execute(f"SELECT * FROM metrics_tickets ORDER BY {METRICS_ORDER}").fetchall()
    con.close()
    assert duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall() == whole_run
    assert rows == len(whole_run) and {row[2] for row in whole_run} == {"all", "2026-03", "2026-04"}


def test_a_month_excludes_the_items_of_a_file_without_a_column_as_the_whole_run_does(tmp_path, policy):
    exports, out = tmp_path / "exports", tmp_path / "out"
    write(
        exports / "tickets.csv", TICKETS_HEADER + "T1,sales,free,,2026-03-02T10:00:00Z,2026-03-02T10:30:00Z,,open,,,,\n"
    )
    # a second export of March that does not carry first_response_at: its tickets' first responses are unknown
    write(
        exports / "tickets-2026-03-20.csv",
        TICKETS_HEADER.replace("first_response_at,", "") + "T3,sales,free,,2026-03-20T10:00:00Z,,open,,,,\n",
    )
    out.mkdir()
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    ingest_source(con, "tickets", exports, policy)
    write_month(con, out / "partitions", "2026-03")
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    evaluate_month(out / "partitions", out, "2026-03", (policy,), as_of)
    evaluate_ticket_clocks(con, policy, as_of)
    whole_run = con.execute(f"SELECT * FROM ticket_sla ORDER BY {TICKET_SLA_ORDER}").fetchall()
    con.close()
    part = duckdb.connect().execute(
        f"SELECT * FROM read_parquet('{ticket_sla_part(out, '2026-03')}', hive_partitioning = false)"
    )
    columns = [column[0] for column in part.description]
    month = [dict(zip(columns, row, strict=True)) for row in part.fetchall()]
    assert month == [dict(zip(columns, row, strict=True)) for row in whole_run]
    (t3,) = [row for row in month if row["record_id"] == "T3" and row["metric"] == "first_response"]
    assert (t3["state"], t3["exclusion_reason"]) == (
        "excluded",
        "tickets-2026-03-20.csv has no first_response_at column",
    )


# --- the whole sample on a dask cluster ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The in-process run of a generated sample: its evidence is what the month partitions must reproduce."""
    from compliance.samples.generate import GenerateOptions, generate
    from pipelines.cli import main

    folder = tmp_path_factory.mktemp("scale_out")
    exports, out = folder / "exports", folder / "out"
    generate(
        GenerateOptions(
            out_dir=exports, tickets=2000, privacy_requests=20, security_reports=5, incidents=5, retention_records=20
        )
    )
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    return out


@pytest.fixture(scope="module")
def dask_cluster():
    """A local dask cluster of two worker processes, closed after the tests: its address and worker pids."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dagster_dask", reason="dagster-dask is not installed: pip install -e '.[test]'")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        yield cluster.scheduler_address, worker_pids
    finally:
        cluster.close()


def _csv(con: duckdb.DuckDBPyConnection, table: str, order_by: str, path: Path) -> bytes:
    con.execute(_csv_copy(con, table, order_by, path))
    return path.read_bytes()


def _backfill(out: Path, months: list[str], address: str) -> list[tuple[bool, dict, set[int]]]:
    """One run per month, two runs at a time (each from its own process, as a run launcher starts them), every
    step executed on the dask cluster's workers."""
    run_config = {
        "resources": {
            "settings": {"config": {"exports_dir": str(out.parent / "exports"), "out_dir": str(out), "as_of": AS_OF}},
            "warehouse": {"config": {"path": str(out / "warehouse.duckdb")}},
        },
        "execution": {"config": {"address": address}},
    }
    with dg.instance_for_test() as instance:
        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as launcher:
            runs = [launcher.submit(_run_month, instance.get_ref(), run_config, month) for month in months]
            return [run.result(timeout=300) for run in runs]


def _run_month(instance_ref, run_config: dict, month: str) -> tuple[bool, dict, set[int]]:
    from pipelines.scale_out import dask_job

    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = dg.execute_job(
            dg.reconstructable(dask_job),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": f"{month}-01"},
        )
        return result.success, _clock_metadata(result), _step_pids(result)


def _clock_metadata(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("monthly_ticket_clocks")
    return {key: value.value for key, value in materialization.metadata.items() if key in ("recomputed", "clocks")}


def _step_pids(result) -> set[int]:
    return {event.pid for event in result.all_events if event.is_step_success}


@pytest.mark.slow  # about 90 s: a sample run, then two backfills of every month on the cluster
def test_a_backfill_on_the_dask_executor_gives_the_in_process_evidence(reference, dask_cluster, tmp_path):
    dask_address, worker_pids = dask_cluster
    reader = duckdb.connect(str(reference / "warehouse.duckdb"), read_only=True)
    months = [
        row[0]
        for row in reader.execute(
            "SELECT DISTINCT strftime(created_at, '%Y-%m') FROM staged_tickets ORDER BY 1"
        ).fetchall()
    ]
    reader.close()
    assert len(months) >= 12

    cold = _backfill(reference, months, dask_address)
    assert all(success for success, _, _ in cold)
    assert all(metadata["recomputed"] for _, metadata, _ in cold)
    pids = set().union(*(step_pids for _, _, step_pids in cold))
    assert pids <= worker_pids  # every step ran on the cluster's worker processes

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    load_monthly_ticket_sla(con, reference)
    assert (
        sum(metadata["clocks"] for _, metadata, _ in cold)
        == con.execute("SELECT count(*) FROM ticket_sla").fetchall()[0][0]
    )
    assert (
        _csv(con, "ticket_sla", TICKET_SLA_ORDER, tmp_path / "ticket_sla.csv")
        == (reference / "evidence" / "ticket_sla.csv").read_bytes()
    )

    # whole-period figures from the stored parts: exact quantiles over the union, as metrics.csv has them
    from compliance.policy import load_policy

    period_metrics(con, (load_policy("platform"),), reference)
    metrics_order = EVIDENCE_FILES["metrics"][1]
    header, *ours = _csv(con, "metrics_tickets", metrics_order, tmp_path / "metrics.csv").decode().splitlines()
    published = (reference / "evidence" / "metrics.csv").read_text().splitlines()
    assert header == published[0]
    tickets = [line for line in published[1:] if line.split(",")[1] == "tickets"]
    assert ours == tickets
    assert any(line.split(",")[2] == "all" for line in ours) and any(line.split(",")[2] != "all" for line in ours)

    parts = {month: ticket_sla_part(reference, month).read_bytes() for month in months}
    again = _backfill(reference, months, dask_address)
    assert all(success for success, _, _ in again)
    assert [metadata["recomputed"] for _, metadata, _ in again] == [False] * len(months)
    assert {month: ticket_sla_part(reference, month).read_bytes() for month in months} == parts
