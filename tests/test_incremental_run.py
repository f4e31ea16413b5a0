"""The same answer either way (issue 19 item 2): a sequence of runs in one out folder, whose ticket clocks are
reused from the warehouse's clock store (compliance.rules.clock_store), gives at every step the evidence of a cold
run in a fresh folder, byte for byte."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import small_exports

from assets.resources import ReporterSettings, Warehouse
from compliance.evidence.periods import parse_period, restrict_to_period
from compliance.ingest.staging import ingest_source
from compliance.policy import load_policy
from compliance.rules.clock_store import STORE_ROWS, STORE_TICKETS, ClockReuse, evaluate_ticket_clocks_incrementally
from compliance.rules.ticket_clocks import evaluate_ticket_clocks
from pipelines.definitions import ALL_ASSETS, ALL_CHECKS

FIRST_AS_OF = "2026-10-25T00:00:00Z"
LATER_AS_OF = "2026-11-03T00:00:00Z"  # past the due times of the tickets open at FIRST_AS_OF
# What legitimately differs between a run on a warehouse that has seen the earlier steps and a cold one, in
# manifest.json: the run id, "changes" (the files this run loaded: an incremental run loads only the new ones),
# and the "inputs" entries of file versions no longer in the exports folder (the version of a file name that a
# newer version superseded, loaded by an earlier step). The two HTML pages print the run id and the changes, so
# their manifest entries differ too. Every file under evidence/ is compared byte for byte, once the incremental
# warehouse's row_count_history (the row counts of runs at earlier as-of instants, which the row-count drift
# expectation of data_quality and evidence/expectations/ compares with: run history a cold folder cannot have) is
# emptied before each run.
MANIFEST_KEYS_OF_THE_RUN = ("run_id", "changes")
PAGES_OF_THE_RUN = ("compliance_report.html", "sla_dashboard.html")


def materialize(exports: Path, out: Path, as_of: str, policy: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={
            "settings": ReporterSettings(exports_dir=str(exports), out_dir=str(out), policy=policy, as_of=as_of),
            "warehouse": Warehouse(path=str(out / "warehouse.duckdb")),
        },
    )
    assert result.success
    return result


def reuse_of(result: dg.ExecuteInProcessResult) -> tuple[int, int]:
    metadata = result.asset_materializations_for_node("ticket_sla")[0].metadata
    return metadata["tickets_kept"].value, metadata["tickets_recomputed"].value


def read(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write(path: Path, header: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def well_formed(rows: list[dict]) -> list[dict]:
    """Rows the ingest stages (the generator writes a few bad ones on purpose), and ticket ids that are unique."""
    kept, seen = [], set()
    for row in rows:
        try:
            instant(row["created_at"])
        except ValueError:
            continue
        if row["ticket_id"].startswith("T") and row["ticket_id"] not in seen:
            seen.add(row["ticket_id"])
            kept.append(row)
    return kept


def add_new_tickets(exports: Path) -> None:
    """40 new tickets (copies of old ones under new ids) with their events, in exports of 2026-11-02."""
    header, rows = read(exports / "tickets.csv")
    events_header, events = read(exports / "ticket_events.csv")
    copied = well_formed(rows)[:40]
    ids = {row["ticket_id"] for row in copied}
    write(exports / "tickets-2026-11-02.csv", header, [{**row, "ticket_id": "N" + row["ticket_id"]} for row in copied])
    write(
        exports / "ticket_events-2026-11-02.csv",
        events_header,
        [{**event, "ticket_id": "N" + event["ticket_id"]} for event in events if event["ticket_id"] in ids],
    )


def change_tickets(exports: Path) -> None:
    """A new version of tickets.csv: ten open tickets resolved two hours after creation, ten others moved to another
    channel (a newer version of a file name replaces its records, compliance.ingest.staging)."""
    header, rows = read(exports / "tickets.csv")
    valid = well_formed(rows)
    changes = {
        row["ticket_id"]: {"status": "solved", "resolved_at": stamp(instant(row["created_at"]) + timedelta(hours=2))}
        for row in [row for row in valid if not row["resolved_at"]][:10]
    }
    for row in [row for row in valid if row["resolved_at"]][:10]:
        changes[row["ticket_id"]] = {
            "channel": "account_billing" if row["channel"] == "technical_support" else "technical_support"
        }
    write(exports / "tickets.csv", header, [{**row, **changes.get(row["ticket_id"], {})} for row in rows])


def add_events_to_old_tickets(exports: Path) -> None:
    """A newer events export for fifteen old tickets: all their events again, plus a public reply and a solve."""
    header, events = read(exports / "ticket_events.csv")
    by_ticket: dict[str, list[dict]] = {}
    for event in events:
        by_ticket.setdefault(event["ticket_id"], []).append(event)
    chosen = [ticket for ticket, rows in by_ticket.items() if ticket.startswith("T") and len(rows) >= 2][100:115]
    rows = []
    for ticket in chosen:
        history = [event for event in by_ticket[ticket] if _parses(event["occurred_at"])]
        last = max(instant(event["occurred_at"]) for event in history)
        rows += history
        rows.append(
            {
                "ticket_id": ticket,
                "occurred_at": stamp(last + timedelta(minutes=30)),
                "event_type": "public_reply",
                "actor": "agent",
                "new_status": "",
            }
        )
        rows.append(
            {
                "ticket_id": ticket,
                "occurred_at": stamp(last + timedelta(hours=1)),
                "event_type": "status_change",
                "actor": "agent",
                "new_status": "solved",
            }
        )
    write(exports / "ticket_events-2026-11-03.csv", header, rows)


def _parses(text: str) -> bool:
    try:
        instant(text)
    except ValueError:
        return False
    return True


def supersede_new_tickets(exports: Path) -> None:
    """A new version of tickets-2026-11-02.csv that no longer holds half of its tickets: they leave the run."""
    header, rows = read(exports / "tickets-2026-11-02.csv")
    write(exports / "tickets-2026-11-02.csv", header, rows[:20])


def tighter_policy(folder: Path) -> str:
    """The platform policy with SUP-ACCT-STD's first response target cut from 24 to 12 hours."""
    text = load_policy("platform").path.read_text(encoding="utf-8")
    rule = text.index("- id: SUP-ACCT-STD")
    target = text.index("target: {hours: 24}", rule)
    path = folder / "platform-tighter.yaml"
    path.write_text(text[:target] + "target: {hours: 12}" + text[target + len("target: {hours: 24}") :])
    return str(path)


def forget_row_count_history(warehouse: Path) -> None:
    if warehouse.exists():
        con = duckdb.connect(str(warehouse))
        con.execute("DROP TABLE IF EXISTS row_count_history")
        con.close()


def evidence_of(out: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted((out / "evidence").rglob("*"))
        if path.is_file()
    }


def manifest_of(out: Path, exports: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    for key in MANIFEST_KEYS_OF_THE_RUN:
        manifest.pop(key)
    in_folder = {(path.name, hashlib.sha256(path.read_bytes()).hexdigest()) for path in exports.iterdir()}
    manifest["inputs"] = [entry for entry in manifest["inputs"] if (entry["file"], entry.get("sha256")) in in_folder]
    manifest["outputs"] = [entry for entry in manifest["outputs"] if entry["file"] not in PAGES_OF_THE_RUN]
    return manifest


def test_incremental_runs_give_the_evidence_of_cold_runs(tmp_path):
    exports = tmp_path / "exports"
    small_exports(exports)
    platform = "platform"
    steps = [  # (what changes, its change to the exports, as-of, policy, expected (kept, recomputed) or None)
        ("cold load", None, FIRST_AS_OF, platform),
        ("nothing new", None, FIRST_AS_OF, platform),
        ("new tickets in a second file", add_new_tickets, FIRST_AS_OF, platform),
        ("changed tickets in a newer export", change_tickets, FIRST_AS_OF, platform),
        ("events for old tickets", add_events_to_old_tickets, FIRST_AS_OF, platform),
        ("a superseding export", supersede_new_tickets, FIRST_AS_OF, platform),
        ("the as-of past due times of open tickets", None, LATER_AS_OF, platform),
        ("a policy target changed", None, LATER_AS_OF, tighter_policy(tmp_path)),
    ]
    incremental = tmp_path / "incremental"
    reuses = []
    for number, (what, change, as_of, policy) in enumerate(steps):
        if change:
            change(exports)
        forget_row_count_history(incremental / "warehouse.duckdb")
        reuses.append(reuse_of(materialize(exports, incremental, as_of, policy)))
        cold = tmp_path / f"cold-{number}"
        materialize(exports, cold, as_of, policy)
        cold_evidence, incremental_evidence = evidence_of(cold), evidence_of(incremental)
        assert sorted(incremental_evidence) == sorted(cold_evidence), what
        for name, content in cold_evidence.items():
            assert incremental_evidence[name] == content, f"{what}: {name}"
        assert manifest_of(incremental, exports) == manifest_of(cold, exports), what
    kept = [reuse[0] for reuse in reuses]
    recomputed = [reuse[1] for reuse in reuses]
    # the store was used where it could be: nothing recomputed when nothing changed, the changed tickets when
    # some changed (a generated row may be quarantined: "about"), the as-of dependent ones when the as-of moved,
    # everything for a new policy
    assert kept[0] == 0 and recomputed[0] > 250
    assert (kept[1], recomputed[1]) == (recomputed[0], 0)
    assert kept[2] == kept[1] and 35 <= recomputed[2] <= 40
    assert 15 <= recomputed[3] <= 20 and kept[3] == kept[2] + recomputed[2] - recomputed[3]
    assert recomputed[4] == 15 and kept[4] == kept[3] + recomputed[3] - 15
    assert recomputed[5] == 0 and kept[4] + recomputed[4] - 20 <= kept[5] < kept[4] + recomputed[4]
    assert 0 < recomputed[6] < kept[5] and kept[6] + recomputed[6] == kept[5]
    assert (kept[7], recomputed[7]) == (0, kept[5])


# --- the store's reuse decision against a cold evaluation, on small random ticket sets --------------------------

RANDOM_HEADER = (
    "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at"
)
EVENTS_HEADER = "ticket_id,occurred_at,event_type,actor,new_status"
CLOCK_TABLES = (
    "ticket_sla",
    "violations_tickets",
    "metrics_tickets",
    "at_risk",
    "response_times",
    "expectation_metrics",
)


def random_ticket(rng: random.Random, ticket_id: str, start: datetime) -> tuple[dict, list[tuple]]:
    """A ticket created in the three weeks after ``start`` and, half the time, an event history; stops may lie
    after any as-of the runs use."""
    created = start + timedelta(minutes=rng.randrange(0, 21 * 24 * 60))

    def later(hours: int) -> str:
        return stamp(created + timedelta(minutes=rng.randrange(1, hours * 60))) if rng.random() < 0.7 else ""

    resolved = later(400)
    escalated = later(48) if rng.random() < 0.3 else ""
    row = {
        "ticket_id": ticket_id,
        "channel": rng.choice(["account_billing", "technical_support", "abuse", "sales"]),
        "plan": rng.choice(["free", "plan_1", "plan_2", "plan_3", ""]),
        "tier": "",
        "created_at": stamp(created),
        "first_response_at": later(60),
        "resolved_at": resolved,
        "status": "solved" if resolved else rng.choice(["open", "pending"]),
        "escalated_at": escalated,
        "senior_reviewed_at": later(100) if escalated else "",
    }
    events = []
    if rng.random() < 0.5:
        moment = created
        for _ in range(rng.randrange(1, 6)):
            moment += timedelta(minutes=rng.randrange(1, 3000))
            kind = rng.choice(["public_reply", "auto_ack", "status_change", "requester_reply"])
            status = rng.choice(["open", "pending", "solved", "closed"]) if kind != "auto_ack" else ""
            events.append((ticket_id, stamp(moment), kind, "agent", status))
    return row, events


def write_random_exports(folder: Path, tickets: dict[str, dict], events: dict[str, list[tuple]]) -> None:
    rows = [",".join(row[column] for column in RANDOM_HEADER.split(",")) for row in tickets.values()]
    (folder / "tickets.csv").write_text(RANDOM_HEADER + "\n" + "\n".join(rows) + "\n")
    event_rows = [",".join(event) for ticket in tickets for event in events.get(ticket, [])]
    (folder / "ticket_events.csv").write_text(EVENTS_HEADER + "\n" + "\n".join(event_rows) + "\n")


def clock_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {table: con.execute(f"SELECT * FROM {table}").fetchall() for table in CLOCK_TABLES}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_reuse_decision_gives_the_cold_tables(tmp_path, policy, seed):
    rng = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    tickets, events = {}, {}
    for number in range(60):
        tickets[f"R{number}"], events[f"R{number}"] = random_ticket(rng, f"R{number}", start)
    as_of = start + timedelta(days=14)
    incremental = duckdb.connect(str(tmp_path / "incremental.duckdb"))
    incremental.execute("SET TimeZone = 'UTC'")
    kept_some = False
    for step in range(5):
        if step:  # new, changed, disappeared tickets, new event histories, and an as-of that moves either way
            for number in range(100 * step, 100 * step + rng.randrange(0, 8)):
                tickets[f"R{number}"], events[f"R{number}"] = random_ticket(rng, f"R{number}", start)
            for ticket in rng.sample(sorted(tickets), 6):
                changed, changed_events = random_ticket(rng, ticket, start)
                tickets[ticket] = changed if rng.random() < 0.5 else tickets[ticket]
                events[ticket] = changed_events if rng.random() < 0.5 else events.get(ticket, [])
            for ticket in rng.sample(sorted(tickets), 3):
                del tickets[ticket]
            as_of += timedelta(hours=rng.choice([0, 0, 6, 72, -30]))
        folder = tmp_path / f"exports-{step}"
        folder.mkdir()
        write_random_exports(folder, tickets, events)
        cold = duckdb.connect(str(tmp_path / f"cold-{step}.duckdb"))
        cold.execute("SET TimeZone = 'UTC'")
        for con in (incremental, cold):
            for source in ("tickets", "ticket_events"):
                ingest_source(con, source, folder, policy)
        reuse = evaluate_ticket_clocks_incrementally(incremental, policy, as_of)
        evaluate_ticket_clocks(cold, policy, as_of)
        assert clock_tables(incremental) == clock_tables(cold), (seed, step, reuse)
        assert reuse.kept + reuse.recomputed == cold.execute("SELECT count(*) FROM staged_tickets").fetchall()[0][0]
        kept_some = kept_some or reuse.kept > 0
        cold.close()
    assert kept_some
    incremental.close()


def test_a_run_restricted_to_a_period_is_cold_and_leaves_the_store_alone(tmp_path, policy):
    rng = random.Random(5)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    tickets, events = {}, {}
    for number in range(40):
        tickets[f"R{number}"], events[f"R{number}"] = random_ticket(rng, f"R{number}", start)
    write_random_exports(tmp_path, tickets, events)
    as_of = start + timedelta(days=30)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    for source in ("tickets", "ticket_events"):
        ingest_source(con, source, tmp_path, policy)
    evaluate_ticket_clocks_incrementally(con, policy, as_of)
    store = [con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in (STORE_TICKETS, STORE_ROWS)]
    restrict_to_period(con, parse_period("2026-09-01..2026-09-10"))
    reuse = evaluate_ticket_clocks_incrementally(con, policy, as_of)
    restricted = clock_tables(con)
    assert reuse.kept == 0 and reuse.cold_reason == "a run restricted to a report period"
    assert store == [
        con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in (STORE_TICKETS, STORE_ROWS)
    ]
    evaluate_ticket_clocks(con, policy, as_of)
    assert restricted == clock_tables(con)
    assert 0 < len({row[0] for row in restricted["ticket_sla"]}) < 40  # the period's tickets only
    con.close()


def test_unchanged_inputs_keep_the_judged_tables_and_any_change_writes_them_again(tmp_path, policy):
    """A run on the same staged rows at the same as-of keeps the judged tables only while they hold what the last run
    wrote from the same inputs: tables written since by someone else, a new waiver or another as-of judge again."""
    rng = random.Random(7)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    tickets, events = {}, {}
    for number in range(60):
        tickets[f"R{number}"], events[f"R{number}"] = random_ticket(rng, f"R{number}", start)
    write_random_exports(tmp_path, tickets, events)
    as_of = start + timedelta(days=14)
    incremental = duckdb.connect(str(tmp_path / "incremental.duckdb"))
    cold = duckdb.connect(str(tmp_path / "cold.duckdb"))
    for con in (incremental, cold):
        con.execute("SET TimeZone = 'UTC'")
        for source in ("tickets", "ticket_events"):
            ingest_source(con, source, tmp_path, policy)

    def run(moment: datetime) -> ClockReuse:
        incremental.begin()  # one transaction per step, as assets.resources.Warehouse.connect gives them
        reuse = evaluate_ticket_clocks_incrementally(incremental, policy, moment)
        incremental.commit()
        evaluate_ticket_clocks(cold, policy, moment)
        assert clock_tables(incremental) == clock_tables(cold), reuse
        return reuse

    assert not run(as_of).tables_kept
    staged = cold.execute("SELECT count(*) FROM staged_tickets").fetchall()[0][0]
    assert run(as_of) == ClockReuse(staged, 0, tables_kept=True)
    # the tables rewritten in between (here one clock changed by hand): they no longer hold what was recorded
    incremental.execute("UPDATE ticket_sla SET state = 'achieved', breached = FALSE WHERE state = 'breached'")
    assert run(as_of) == ClockReuse(staged, 0)
    assert run(as_of).tables_kept
    # a waiver of a breached clock: the tickets are unchanged, the judged tables are not
    record_id, rule_id = cold.execute(
        "SELECT record_id, rule_id FROM ticket_sla WHERE state = 'breached' ORDER BY ALL LIMIT 1"
    ).fetchall()[0]
    (tmp_path / "waivers.csv").write_text(
        "record_id,rule_id,reason,approved_by,approved_at,expires_at\n"
        f"{record_id},{rule_id},Customer asked to wait,Dana Ops,2026-09-02T00:00:00Z,\n"
    )
    for con in (incremental, cold):
        ingest_source(con, "waivers", tmp_path, policy)
    assert not run(as_of).tables_kept
    assert cold.execute("SELECT count(*) FROM ticket_sla WHERE state = 'waived'").fetchall() == [(1,)]
    assert run(as_of).tables_kept
    # another as-of: judged again, even where no clock depends on it
    assert not run(as_of + timedelta(hours=1)).tables_kept
    incremental.close()
    cold.close()
