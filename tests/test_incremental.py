"""Incremental, idempotent loads: repeated files are no-ops, newer exports replace records, monthly partitions."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
from conftest import write

from compliance.ingest.contract import SOURCES
from compliance.ingest.landing import export_files, source_of
from compliance.ingest.staging import accounting_problems, ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"


def ticket(ticket_id: str, created: str = "2026-03-02T10:00:00Z", status: str = "open", channel: str = "sales") -> str:
    return f"{ticket_id},{channel},free,,{created},,,{status},,,,"


def tickets_file(folder: Path, name: str, *rows: str) -> Path:
    return write(folder / name, HEADER + "\n".join(rows) + "\n")


def staged(con) -> dict[str, tuple]:
    rows = con.execute("SELECT ticket_id, status, source_file, source_line FROM staged_tickets").fetchall()
    assert len(rows) == len({row[0] for row in rows}), "a ticket is staged twice"
    return {row[0]: row[1:] for row in rows}


def snapshot(con) -> list:
    return [
        con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        for table in ("staged_tickets", "quarantine", "loaded_files")
    ]


def changes(result) -> dict[str, str]:
    return {f"{entry.file}@{entry.sha256[:8]}": entry.change for entry in result.files}


def test_a_second_load_of_the_same_file_is_a_no_op(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets.csv", ticket("T1"), ticket("T2", channel="fax"), ticket("T3"))
    first = ingest_source(con, "tickets", tmp_path, policy)
    assert (first.rows_read, first.rows_loaded, first.rows_quarantined, first.merged.inserted) == (3, 2, 1, 2)
    before = snapshot(con)
    second = ingest_source(con, "tickets", tmp_path, policy)
    assert snapshot(con) == before
    assert second.merged == dataclasses.replace(second.merged, inserted=0, replaced=0, unchanged=0, withdrawn=0)
    assert [entry.change for entry in second.files] == ["unchanged"]
    assert (second.rows_read, second.rows_loaded, second.rows_quarantined) == (3, 2, 1)
    assert accounting_problems(con, second) == []


def test_a_newer_export_replaces_records_and_never_double_counts(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets-2026-11-19.csv", ticket("T1"), ticket("T2"), ticket("T3"))
    ingest_source(con, "tickets", tmp_path, policy)
    tickets_file(tmp_path, "tickets-2026-11-20.csv", ticket("T1"), ticket("T2", status="solved"), ticket("T4"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.merged.inserted, result.merged.replaced, result.merged.unchanged) == (1, 1, 1)
    rows = staged(con)
    assert sorted(rows) == ["T1", "T2", "T3", "T4"]
    # identical: the newer export's row, as in a clean run whatever the order (tests/test_version_order.py)
    assert rows["T1"] == ("open", "tickets-2026-11-20.csv", 2)
    assert rows["T2"] == ("solved", "tickets-2026-11-20.csv", 3)
    assert rows["T3"][1] == "tickets-2026-11-19.csv"
    assert [(entry.file, entry.change) for entry in result.files] == [
        ("tickets-2026-11-19.csv", "unchanged"),
        ("tickets-2026-11-20.csv", "new"),
    ]
    # Both files delivered the same three-then-four records again: nothing changes.
    assert ingest_source(con, "tickets", tmp_path, policy).merged.inserted == 0
    assert len(staged(con)) == 4


def test_a_file_whose_records_were_all_replaced_is_superseded(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets-a.csv", ticket("T1"), ticket("T2"))
    tickets_file(tmp_path, "tickets-b.csv", ticket("T1", status="solved"), ticket("T2", status="solved"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert [(entry.file, entry.change) for entry in result.files] == [
        ("tickets-a.csv", "superseded"),
        ("tickets-b.csv", "new"),
    ]
    assert {status for status, *_ in staged(con).values()} == {"solved"}


def test_a_new_version_of_a_file_replaces_that_files_contribution(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets.csv", ticket("T1"), ticket("T2"), ticket("T3", channel="fax"))
    first = ingest_source(con, "tickets", tmp_path, policy)
    tickets_file(tmp_path, "tickets.csv", ticket("T5"), ticket("T1"), ticket("T2", status="solved"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    rows = staged(con)
    assert rows == {
        "T1": ("open", "tickets.csv", 3),
        "T2": ("solved", "tickets.csv", 4),
        "T5": ("open", "tickets.csv", 2),
    }
    assert (result.merged.inserted, result.merged.replaced, result.merged.unchanged) == (1, 1, 1)
    assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]  # T3's bad row belonged to v1
    assert changes(result) == {
        f"tickets.csv@{first.files[0].sha256[:8]}": "superseded",
        f"tickets.csv@{result.files[-1].sha256[:8]}": "new",
    }
    assert con.execute("SELECT state, count(*) FROM loaded_files GROUP BY ALL ORDER BY ALL").fetchall() == [
        ("current", 1),
        ("superseded", 1),
    ]
    assert accounting_problems(con, result) == []


def test_an_unusable_new_version_keeps_the_loaded_one(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets.csv", ticket("T1"), ticket("T2", channel="fax"))
    ingest_source(con, "tickets", tmp_path, policy)
    before = snapshot(con)
    write(tmp_path / "tickets.csv", "ticket_id,channel\nT9,sales\nT8\n")
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert snapshot(con) == before
    assert result.status == "loaded"
    assert [(entry.status, entry.problem) for entry in result.files] == [
        ("unusable", "missing required column created_at"),
        ("loaded", None),
    ]


def test_a_files_events_replace_all_events_of_its_tickets(con, tmp_path, policy):
    header = "ticket_id,occurred_at,event_type,actor,new_status\n"
    write(
        tmp_path / "ticket_events-1.csv",
        header + "T1,2026-03-02T10:00:00Z,public_reply,agent,\n"
        "T1,2026-03-02T11:00:00Z,requester_reply,requester,\nT1,2026-03-02T12:00:00Z,public_reply,agent,\n"
        "T2,2026-03-02T10:00:00Z,public_reply,agent,\nT2,2026-03-02T10:00:00Z,public_reply,agent,\n",
    )
    ingest_source(con, "ticket_events", tmp_path, policy)
    write(
        tmp_path / "ticket_events-2.csv",
        header + "T1,2026-03-02T10:05:00Z,public_reply,agent,\n"
        "T1,2026-03-03T09:00:00Z,status_change,agent,solved\n"
        "T2,2026-03-02T10:00:00Z,public_reply,agent,\nT2,2026-03-02T10:00:00Z,public_reply,agent,\n",
    )
    result = ingest_source(con, "ticket_events", tmp_path, policy)
    events = con.execute(
        "SELECT ticket_id, source_file, count(*) FROM staged_ticket_events GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    # T2's identical events come from the file with the greater version key (same timestamps: the later name)
    assert events == [("T1", "ticket_events-2.csv", 2), ("T2", "ticket_events-2.csv", 2)]
    assert (result.merged.inserted, result.merged.replaced, result.merged.unchanged) == (0, 2, 2)


def test_changed_parse_settings_read_the_files_again(con, tmp_path, policy):
    tickets_file(tmp_path, "tickets.csv", "T1,sales,free,,2026-07-01T09:00:00,,,open,,,,")
    ingest_source(con, "tickets", tmp_path, policy)
    new_york = dataclasses.replace(policy, source_timezone="America/New_York")
    result = ingest_source(con, "tickets", tmp_path, new_york)
    assert [entry.change for entry in result.files] == ["new"]
    created = con.execute("SELECT strftime(created_at, '%H:%M') FROM staged_tickets").fetchall()
    assert created == [("13:00",)]


def test_landing_file_names(tmp_path):
    for name in SOURCES:
        assert source_of(f"{name}.csv") == name
        assert source_of(f"{name}-2026-11-20.parquet") == name
        assert source_of(f"{name}_delta.jsonl") == name
    for ignored in ("tickets.csv.part", ".tickets.csv", "ticketsx.csv", "tickets.xlsx"):
        write(tmp_path / ignored, "x")
        assert source_of(ignored) is None
    write(tmp_path / "tickets_2.csv", "x")
    write(tmp_path / "tickets.csv", "x")
    write(tmp_path / "tickets-1.csv", "x")
    assert [path.name for path in export_files(tmp_path, "tickets")] == [
        "tickets-1.csv",
        "tickets.csv",
        "tickets_2.csv",
    ]


# --- through Dagster: the manifest and the monthly partitions -------------------------------------------------------


def _resources(exports: Path, out: Path):
    from assets.resources import ReporterSettings, Warehouse

    return {
        "settings": ReporterSettings(exports_dir=str(exports), out_dir=str(out), as_of="2026-11-01T00:00:00Z"),
        "warehouse": Warehouse(path=str(out / "warehouse.duckdb")),
    }


def test_the_manifest_names_new_unchanged_and_superseded_files(tmp_path):
    from pipelines.definitions import ALL_ASSETS, ALL_CHECKS

    exports, out = tmp_path / "exports", tmp_path / "out"
    tickets_file(exports, "tickets-2026-11-19.csv", ticket("T1"), ticket("T2"))
    assert dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=_resources(exports, out)).success
    tickets_file(
        exports, "tickets-2026-11-20.csv", ticket("T1", status="solved"), ticket("T2", status="solved"), ticket("T3")
    )
    assert dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=_resources(exports, out)).success
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {change: [entry["file"] for entry in entries] for change, entries in manifest["changes"].items()} == {
        "new": ["tickets-2026-11-20.csv"],
        "unchanged": [],
        "superseded": ["tickets-2026-11-19.csv"],
    }
    tickets = [entry for entry in manifest["inputs"] if entry["source"] == "tickets"]
    assert [(entry["file"], entry["rows_loaded"]) for entry in tickets] == [
        ("tickets-2026-11-19.csv", 2),
        ("tickets-2026-11-20.csv", 3),
    ]
    with (out / "evidence" / "ticket_sla.csv").open(newline="", encoding="utf-8") as handle:
        clocks = [(row["record_id"], row["rule_id"]) for row in csv.DictReader(handle)]
    assert {record for record, _ in clocks} == {"T1", "T2", "T3"}
    assert len(clocks) == len(set(clocks))  # no ticket counted twice by any rule


def test_re_running_one_month_rewrites_only_that_month(tmp_path, policy):
    from assets.partitions import monthly_records

    exports, out = tmp_path / "exports", tmp_path / "out"
    tickets_file(exports, "tickets.csv", ticket("T1", "2026-03-05T10:00:00Z"), ticket("T2", "2026-04-07T10:00:00Z"))
    out.mkdir()
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    ingest_source(con, "tickets", exports, policy)
    con.close()
    resources = _resources(exports, out)
    for month in ("2026-03-01", "2026-04-01"):
        assert dg.materialize([monthly_records], partition_key=month, resources=resources).success
    march, april = (out / "partitions" / "tickets" / f"month={m}" / "part-0.parquet" for m in ("2026-03", "2026-04"))
    march_before, april_before = march.read_bytes(), april.read_bytes()
    os.utime(march, ns=(1, 1))
    tickets_file(exports, "tickets-2026-11-20.csv", ticket("T2", "2026-04-07T10:00:00Z", status="solved"))
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    ingest_source(con, "tickets", exports, policy)
    con.close()
    assert dg.materialize([monthly_records], partition_key="2026-04-01", resources=resources).success
    assert march.read_bytes() == march_before and march.stat().st_mtime_ns == 1
    assert april.read_bytes() != april_before
    reader = duckdb.connect()
    rows = reader.execute(
        f"SELECT ticket_id, status, month FROM read_parquet('{out}/partitions/tickets/*/*.parquet', hive_partitioning = true) ORDER BY 1"
    ).fetchall()
    assert rows == [("T1", "open", "2026-03"), ("T2", "solved", "2026-04")]
