"""A run that would change nothing recomputes nothing (compliance.evidence.unchanged_run): the last completed run
stands only when its material (exports, policy, as-of, settings, code), the warehouse and every published file are
exactly as that run left them; any change computes every step again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import small_exports

import compliance.evidence.unchanged_run as unchanged_run
import pipelines.cli as cli
from compliance.evidence.unchanged_run import FileHashes, code_material, record_path, standing_run
from pipelines.cli import main

AS_OF = "2026-11-01T00:00:00Z"
NOTHING_CHANGED = "nothing changed since run"


def run(exports: Path, out: Path, capsys, *options: str) -> str:
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF, *options]) == 0
    return capsys.readouterr().out


def published(out: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of the out folder but the warehouse and its sidecars: modification time and bytes."""
    return {
        path.relative_to(out).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith("warehouse.duckdb")
    }


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> tuple[Path, Path, str]:
    """Exports, and the out folder of one completed run of them, with that run's key."""
    folder = tmp_path_factory.mktemp("unchanged")
    exports = small_exports(folder / "exports")
    out = folder / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    record = json.loads(record_path(out / "warehouse.duckdb").read_text(encoding="utf-8"))
    return exports, out, record["run_key"]


def copy_of(completed, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the completed run's out folder (times kept, so the warehouse's state is the same)."""
    _, out, _ = completed
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    return copy, copy / "warehouse.duckdb"


def test_the_same_run_again_recomputes_nothing_and_leaves_every_file_as_it_was(tmp_path, capsys):
    exports = small_exports(tmp_path / "exports")
    out = tmp_path / "out"
    first = run(exports, out, capsys)
    assert "[ 1/" in first and NOTHING_CHANGED not in first
    before = published(out)
    again = run(exports, out, capsys)
    run_id = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["run_id"]
    assert f"{NOTHING_CHANGED} {run_id}" in again and "[ 1/" not in again
    assert "Verdicts by domain" in again and "Finished in" in again  # the standing run's summary
    assert published(out) == before

    # one more ticket: every step runs again, and the run after it stands again
    tickets = exports / "tickets.csv"
    tickets.write_bytes(tickets.read_bytes() + tickets.read_bytes().splitlines(keepends=True)[1].replace(b"T", b"X", 1))
    changed = run(exports, out, capsys)
    assert "[ 1/" in changed and NOTHING_CHANGED not in changed
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["run_id"] != run_id
    assert NOTHING_CHANGED in run(exports, out, capsys)


def test_the_standing_run_reads_no_file_the_last_run_hashed(tmp_path, capsys, monkeypatch):
    """The exports and the published files are gigabytes at ten million tickets: a file still the version the last
    run hashed (size, times, inode) is not read again, and one given its old modification time back is."""
    exports = small_exports(tmp_path / "exports")
    out = tmp_path / "out"
    run(exports, out, capsys)
    read: list[str] = []
    hashing = unchanged_run.file_sha256

    def counting(path):
        read.append(path.name)
        return hashing(path)

    monkeypatch.setattr(unchanged_run, "file_sha256", counting)
    assert NOTHING_CHANGED in run(exports, out, capsys)
    assert read == []
    tickets = exports / "tickets.csv"
    before = tickets.stat()
    tickets.write_bytes(tickets.read_bytes().replace(b",", b";", 1))
    os.utime(tickets, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert NOTHING_CHANGED not in run(exports, out, capsys)
    assert "tickets.csv" in read


def test_a_copy_of_a_completed_run_stands_for_its_own_key_only(completed, tmp_path):
    out, warehouse = copy_of(completed, tmp_path)
    key = completed[2]
    assert standing_run(warehouse, out, key, FileHashes(warehouse)) is not None
    assert standing_run(warehouse, out, "another key", FileHashes(warehouse)) is None


@pytest.mark.parametrize(
    "change",
    [
        "an evidence file edited",
        "an evidence file edited, its modification time restored",
        "an evidence file removed",
        "the manifest edited",
        "the report removed",
        "the warehouse written",
        "the record removed",
        "the record unreadable",
    ],
)
def test_a_published_file_or_the_warehouse_changed_since_the_run_computes_again(completed, tmp_path, change):
    out, warehouse = copy_of(completed, tmp_path)
    evidence = next(path for path in sorted((out / "evidence").glob("*.csv")))
    if change == "an evidence file edited":
        evidence.write_bytes(evidence.read_bytes() + b"\n")
    elif change == "an evidence file edited, its modification time restored":
        before = evidence.stat()
        evidence.write_bytes(evidence.read_bytes().replace(b",", b";", 1))
        os.utime(evidence, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif change == "an evidence file removed":
        evidence.unlink()
    elif change == "the manifest edited":
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        (out / "manifest.json").write_text(json.dumps({**manifest, "as_of": "2030-01-01T00:00:00Z"}), encoding="utf-8")
    elif change == "the report removed":
        (out / "compliance_report.html").unlink()
    elif change == "the warehouse written":
        with duckdb.connect(str(warehouse)) as con:
            con.execute("DELETE FROM staged_tickets WHERE rowid = 0")
    elif change == "the record removed":
        record_path(warehouse).unlink()
    else:
        record_path(warehouse).write_text("{not json", encoding="utf-8")
    assert standing_run(warehouse, out, completed[2], FileHashes(warehouse)) is None


def key_after(completed, monkeypatch, tmp_path, change: str) -> str:
    """The key of the completed run's material with one thing changed (``"nothing"``: the same material)."""
    exports, out, _ = completed
    given = tmp_path / "exports"
    shutil.copytree(exports, given)
    policy = tmp_path / "platform.yaml"
    shutil.copy(Path(cli.__file__).parents[1] / "policies" / "platform.yaml", policy)
    settings = {"policy": str(policy), "as_of": AS_OF, "out_dir": str(out.resolve()), "exports_dir": str(given)}
    if change == "as-of":
        settings["as_of"] = "2026-11-02T00:00:00Z"
    elif change == "an export file's bytes":
        tickets = given / "tickets.csv"
        tickets.write_bytes(tickets.read_bytes().replace(b"T", b"X", 1))
    elif change == "an export file added":
        (given / "tickets-2026-11-02.csv").write_bytes((given / "tickets.csv").read_bytes().splitlines(True)[0])
    elif change == "another file in the folder":
        (given / "notes.txt").write_text("read me", encoding="utf-8")
    elif change == "the conversion log":
        (given / "conversion.json").write_text('{"format": "zendesk"}', encoding="utf-8")
    elif change == "the policy's bytes":
        policy.write_text(policy.read_text(encoding="utf-8") + "\n# reviewed\n", encoding="utf-8")
    elif change == "a CR_ setting":
        monkeypatch.setenv("CR_PARTITIONS_START", "2026-01-01")
    elif change != "nothing":
        raise AssertionError(change)
    return cli._run_key(settings, given, False, (), FileHashes(tmp_path / "no-warehouse.duckdb"))


@pytest.mark.parametrize(
    "change",
    [
        "as-of",
        "an export file's bytes",
        "an export file added",
        "another file in the folder",
        "the conversion log",
        "the policy's bytes",
        "a CR_ setting",
    ],
)
def test_any_change_of_the_material_changes_the_key(completed, monkeypatch, tmp_path, change):
    folder = tmp_path / "material"
    unchanged = key_after(completed, monkeypatch, folder, "nothing")
    shutil.rmtree(folder)
    assert key_after(completed, monkeypatch, folder, "nothing") == unchanged  # a function of the material
    shutil.rmtree(folder)
    assert key_after(completed, monkeypatch, folder, change) != unchanged


def test_a_change_of_code_changes_the_code_material(tmp_path):
    package = tmp_path / "package"
    (package / "__pycache__").mkdir(parents=True)
    (package / "rules.py").write_text("TARGET = 1\n", encoding="utf-8")
    (package / "__pycache__" / "rules.cpython-311.pyc").write_bytes(b"compiled")
    before = code_material([package])
    (package / "__pycache__" / "rules.cpython-311.pyc").write_bytes(b"compiled again")
    assert code_material([package]) == before  # bytecode is not code
    (package / "rules.py").write_text("TARGET = 2\n", encoding="utf-8")
    assert code_material([package]) != before


def test_a_run_that_computes_removes_the_record_before_its_first_step(tmp_path, capsys, monkeypatch):
    """A failed or killed run must leave no record behind that the next run could take for its own."""
    exports = small_exports(tmp_path / "exports")
    out = tmp_path / "out"
    run(exports, out, capsys)
    record = record_path(out / "warehouse.duckdb")
    assert record.exists()
    computing = cli._execute_run

    class Failed:  # as a run whose last step failed
        success, all_events = False, ()

    def failing(resources):
        assert not record.exists()
        computing(resources)
        return Failed()

    monkeypatch.setattr(cli, "_execute_run", failing)
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", "2026-11-02T00:00:00Z"]) == 1
    assert not record.exists()
