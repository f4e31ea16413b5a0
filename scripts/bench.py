"""Benchmark: one table, each row measured by one command shown in the row (issue 19).

    python scripts/bench.py [--tickets 1000000] [--format csv|parquet] [--events] [--keep DIR] [--regenerate]
                            [--markdown FILE] [--clocks 3000000] [--reference-clocks 20000]

The rows, in the order they run (every `compliance-report` command in a child process of its own, so that its
wall time includes its start-up and its peak memory, max RSS from ``wait4``, is its own):

* **full read**: every column of the tickets file read into a DuckDB table, the least any tool that uses the data
  must do (``read_csv(file, all_varchar = true)``: as text, because the generated exports hold impossible dates
  on purpose; ``read_parquet(file)``); the median of three, in this process.
* **cold**: `compliance-report run` into an empty out folder; its ratio to the full read.
* **incremental 1 %**: the same command on the same out folder after ``tickets-2026-11-02.<format>`` (1 % more
  tickets: generated with their own seed, IDs prefixed ``D``, created over the same year) joins the exports; its
  ratio to the cold run.
* **incremental 0 %**: the same command once more, nothing new (the last run stands: nothing is computed); then
  with the as-of a day later (every step computes, reusing the stores); their ratios to the cold run.
  For these three the run's own "Finished in" (its steps, start-up aside) is shown beside the wall time.
* **start-up**: `compliance-report --help` (median of three), and the demo (`make demo`'s 20,000 tickets, seed
  7): the time from starting the command to its first step, and the whole run.
* **clock engine**: `scripts/bench_clocks.py` (the set-based engine against businesstimedelta, the same
  intervals, calendar and holidays), as clocks per second and their ratio.

With ``--keep DIR`` the exports stay in ``DIR/exports`` and are reused by later runs with the same options
(``DIR/exports/bench-options.json``); ``--regenerate`` forces new ones. ``--markdown FILE`` also writes the table
as Markdown (the README's bench section). Runs are recorded in ``DIR/dagster_home``, never in the repository's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from compliance.core.sql import lit
from compliance.samples.generate import GenerateOptions, generate

AS_OF = "2026-11-01T00:00:00Z"
NEXT_DAY = "2026-11-02T00:00:00Z"  # the daily run with nothing new: the as-of moved, so every step computes
INCREMENT_FILE = "tickets-2026-11-02"
INCREMENT_SHARE = 0.01
INCREMENT_ID_PREFIX = "D"  # the generator's IDs are T00000001...: a prefix keeps the new tickets' IDs new
DEMO_TICKETS, DEMO_SEED = 20_000, 7  # what `make demo` generates
CLI = [sys.executable, "-m", "pipelines.cli"]
FIRST_STEP = re.compile(r"^\s*\[\s*1/\d+\]\s.*\bin ([0-9.]+)s\s*$")
FINISHED = re.compile(r"^Finished in ([0-9.]+)s\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, peak memory (max RSS, GiB), its output, and when its first step began."""

    seconds: float
    peak_gib: float
    stdout: str
    first_step_seconds: float | None  # from the start of the command to the start of its first step


@dataclass(frozen=True)
class Row:
    measure: str
    command: str
    time: str
    ratio: str
    peak: str
    note: str


def _options(args: argparse.Namespace, exports: Path) -> GenerateOptions:
    scale = args.tickets / 20_000
    return GenerateOptions(
        out_dir=exports,
        tickets=args.tickets,
        privacy_requests=int(600 * scale),
        security_reports=int(80 * scale),
        incidents=int(120 * scale),
        retention_records=int(5_000 * scale),
        file_format=args.format,
        with_events=args.events,
    )


def _exports(args: argparse.Namespace, exports: Path) -> float | None:
    """Generate the exports unless identical ones are already there; seconds spent (None when reused). The
    increment file of an earlier bench is removed: every bench starts from the same exports."""
    stamp = exports / "bench-options.json"
    wanted = {"tickets": args.tickets, "format": args.format, "events": args.events}
    if not args.regenerate and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        (exports / f"{INCREMENT_FILE}.{args.format}").unlink(missing_ok=True)
        return None
    shutil.rmtree(exports, ignore_errors=True)
    started = time.perf_counter()
    generate(_options(args, exports))
    seconds = time.perf_counter() - started
    stamp.write_text(json.dumps(wanted))
    return seconds


def _write_increment(exports: Path, tickets: int, file_format: str, scratch: Path) -> Path:
    """``tickets`` new tickets in ``exports/tickets-2026-11-02.<format>``: generated with a seed of their own (so
    their own 2 % of messy rows too), every ID prefixed so that none repeats an existing ticket."""
    generate(
        GenerateOptions(
            out_dir=scratch,
            seed=DEMO_SEED + 1,
            tickets=tickets,
            privacy_requests=0,
            security_reports=0,
            incidents=0,
            retention_records=0,
            file_format=file_format,
            with_events=False,
        )
    )
    source = scratch / f"tickets.{file_format}"
    target = exports / f"{INCREMENT_FILE}.{file_format}"
    reader = f"read_csv({lit(str(source))}, all_varchar = true)" if file_format == "csv" else None
    reader = reader or f"read_parquet({lit(str(source))})"
    copy_format = "(HEADER, FORMAT csv)" if file_format == "csv" else "(FORMAT parquet)"
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT * REPLACE ({lit(INCREMENT_ID_PREFIX)} || ticket_id AS ticket_id) FROM {reader}) "
            f"TO {lit(str(target))} {copy_format}"
        )
    finally:
        con.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return target


def _full_reads(tickets_file: Path, file_format: str) -> list[float]:
    """Seconds of three full reads of every column of the tickets file into a DuckDB table, sorted."""
    path = lit(str(tickets_file))
    reader = f"read_csv({path}, all_varchar = true)" if file_format == "csv" else f"read_parquet({path})"
    con = duckdb.connect()
    seconds = []
    for _ in range(3):  # a shared machine makes one read vary by 2x; the median of three is steadier
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM {reader}")
        seconds.append(time.perf_counter() - started)
    con.close()
    return sorted(seconds)


# Linux counts in a child's max RSS the memory of the process it was forked from (this one, which has read and
# generated the exports): each command is therefore started by a small launcher of its own, which times it and
# reads its peak memory (RUSAGE_CHILDREN of a process with one child) into the file named first.
LAUNCHER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as figures:
    json.dump([code, seconds, peak_kib], figures)
"""


def _measure(command: list[str], env: dict[str, str]) -> Measured:
    """Run ``command``; its wall time and its own max RSS (from the launcher), its output, and the moment its first
    step began (the first progress line's arrival less that step's time; the launcher's start, some 20 ms, is
    counted in)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as figures:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, figures.name, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines, first_step = [], None
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = FIRST_STEP.match(line) if first_step is None else None
            if match:
                first_step = time.perf_counter() - started - float(match.group(1))
        process.wait()
        stdout = "".join(lines)
        code, seconds, peak_kib = json.loads(Path(figures.name).read_text() or "[null, 0, 0]")
    if process.returncode != 0 or code != 0:
        raise SystemExit(f"bench: {' '.join(command[2:])} failed (exit {code}):\n{stdout[-3000:]}")
    return Measured(seconds, peak_kib / 2**20, stdout, first_step)


def _finished(measured: Measured) -> float:
    """The run's own time for its steps (the CLI's "Finished in"), start-up aside."""
    match = FINISHED.search(measured.stdout)
    return float(match.group(1)) if match else float("nan")


def _timings(warehouse: Path) -> dict[str, float]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dict(con.execute("SELECT part, sum(seconds) FROM run_timings GROUP BY part").fetchall())
    finally:
        con.close()


def _forget_timings(warehouse: Path) -> None:
    """Empty ``run_timings`` before a measured run: a part the run does not time (no table to validate, clocks
    kept) must not show an earlier run's seconds."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("DELETE FROM run_timings")
    finally:
        con.close()


def _parts(warehouse: Path) -> str:
    """What the last run spent in the clock engine and in the checks (its ``run_timings``)."""
    timings = _timings(warehouse)
    clock_engine = sum(seconds for part, seconds in timings.items() if part.startswith("clock_engine"))
    expectations = sum(seconds for part, seconds in timings.items() if part.startswith("expectations"))
    return (
        f"clock engine {clock_engine:.1f} s; expectations {expectations:.1f} s; "
        f"secret scan {timings.get('secret_scan', 0.0):.1f} s"
    )


def _run_command(exports: str, out: str, as_of: str = AS_OF) -> list[str]:
    return ["run", "--exports", exports, "--out", out, "--as-of", as_of]


def _shown(arguments: list[str]) -> str:
    return "`compliance-report " + " ".join(arguments) + "`"


def _gib(value: float) -> str:
    return f"{value:.2f} GiB"


def _pipeline_rows(args: argparse.Namespace, work: Path, env: dict[str, str]) -> list[Row]:
    exports, out = work / "exports", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    generated = _exports(args, exports)
    tickets_file = exports / f"tickets.{args.format}"
    mib = tickets_file.stat().st_size / 2**20
    reads = _full_reads(tickets_file, args.format)
    full_read = statistics.median(reads)
    reader = "read_csv(W/exports/tickets.csv, all_varchar = true)"
    if args.format == "parquet":
        reader = "read_parquet(W/exports/tickets.parquet)"
    size = f"{args.tickets:,} tickets ({args.format.upper()}, {mib:,.0f} MiB{', with ticket_events' if args.events else ''})"
    rows = [
        Row(
            f"full read of the tickets file, {size}",
            f"DuckDB: `CREATE TABLE t AS SELECT * FROM {reader}`",
            f"{full_read:.2f} s",
            "1x",
            "",
            f"median of 3 ({', '.join(f'{s:.2f}' for s in reads)}); "
            + ("exports reused" if generated is None else f"exports generated in {generated:.0f} s"),
        )
    ]
    run = _run_command("W/exports", "W/out")
    real = _run_command(str(exports), str(out))
    cold = _measure(CLI + real, env)
    rows.append(
        Row(
            f"cold run, {args.tickets:,} tickets",
            _shown(run),
            f"{cold.seconds:.1f} s (steps {_finished(cold):.1f} s)",
            f"{cold.seconds / full_read:.0f}x the full read",
            _gib(cold.peak_gib),
            _parts(out / "warehouse.duckdb"),
        )
    )
    increment = max(1, round(args.tickets * INCREMENT_SHARE))
    _write_increment(exports, increment, args.format, work / "increment")
    for label, as_of, note, computed in (
        (
            f"incremental 1 % ({increment:,} new tickets)",
            AS_OF,
            f"after adding W/exports/{INCREMENT_FILE}.{args.format}",
            True,
        ),
        ("incremental 0 % (nothing new)", AS_OF, "the same command again: the last run stands", False),
        (
            "incremental 0 %, as-of a day later (nothing new)",
            NEXT_DAY,
            "the same exports, every step computed again with the stores",
            True,
        ),
    ):
        if computed:  # not before the unchanged run: writing to the warehouse is a change
            _forget_timings(out / "warehouse.duckdb")
        measured = _measure(CLI + _run_command(str(exports), str(out), as_of), env)
        rows.append(
            Row(
                label,
                _shown(_run_command("W/exports", "W/out", as_of)),
                f"{measured.seconds:.1f} s (steps {_finished(measured):.1f} s)",
                f"{100 * measured.seconds / cold.seconds:.0f} % of the cold run "
                f"(steps: {100 * _finished(measured) / _finished(cold):.0f} %)",
                _gib(measured.peak_gib),
                f"{note}; {_parts(out / 'warehouse.duckdb')}" if computed else note,
            )
        )
    return rows


def _startup_rows(work: Path, env: dict[str, str]) -> list[Row]:
    helps = sorted((_measure([*CLI, "--help"], env) for _ in range(3)), key=lambda measured: measured.seconds)
    help_run = helps[1]
    demo_exports, demo_out = work / "demo" / "exports", work / "demo" / "out"
    shutil.rmtree(work / "demo", ignore_errors=True)
    generate_args = ["generate", "--out", str(demo_exports), "--seed", str(DEMO_SEED), "--as-of", AS_OF]
    _measure(CLI + generate_args, env)
    demo = _measure(CLI + _run_command(str(demo_exports), str(demo_out)), env)
    first = demo.first_step_seconds
    return [
        Row(
            "start-up: help",
            "`compliance-report --help`",
            f"{help_run.seconds:.2f} s",
            "",
            _gib(help_run.peak_gib),
            f"median of 3 ({', '.join(f'{m.seconds:.2f}' for m in helps)})",
        ),
        Row(
            f"start-up: the demo ({DEMO_TICKETS:,} tickets, seed {DEMO_SEED})",
            _shown(_run_command("W/demo/exports", "W/demo/out")),
            "n/a" if first is None else f"{first:.1f} s to the first step",
            f"whole run {demo.seconds:.1f} s (steps {_finished(demo):.1f} s)",
            _gib(demo.peak_gib),
            "exports from `compliance-report generate --out W/demo/exports --seed 7` (not timed)",
        ),
    ]


def _clock_row(args: argparse.Namespace, env: dict[str, str]) -> Row:
    script = Path(__file__).resolve().parent / "bench_clocks.py"
    options = ["--clocks", str(args.clocks), "--reference-clocks", str(args.reference_clocks)]
    measured = _measure([sys.executable, str(script), *options, "--json"], env)
    figures = json.loads(measured.stdout.strip().splitlines()[-1])
    return Row(
        f"clock engine against businesstimedelta ({figures['calendar']})",
        f"`python scripts/bench_clocks.py {' '.join(options)}`",
        f"{figures['engine_clocks_per_second']:,.0f} clocks/s (engine, {figures['engine_clocks']:,} clocks); "
        f"{figures['reference_clocks_per_second']:,.0f} clocks/s (reference, {figures['reference_clocks']:,})",
        f"{figures['engine_clocks_per_second'] / figures['reference_clocks_per_second']:,.0f}x",
        _gib(measured.peak_gib),
        "open seconds agree on every interval the reference computed",
    )


HEADER = ("measure", "command (W: the work folder)", "time", "ratio", "peak memory (max RSS)", "notes")


def _markdown(rows: list[Row]) -> str:
    def cells(values) -> str:
        return "| " + " | ".join(str(value).replace("|", "\\|") for value in values) + " |"

    body = [cells(HEADER), cells("---" for _ in HEADER)]
    body += [cells((r.measure, r.command, r.time, r.ratio, r.peak, r.note)) for r in rows]
    return "\n".join(body) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--events", action="store_true", help="also generate ticket_events (about 7 per ticket)")
    parser.add_argument("--keep", default="", help="folder to keep (and reuse) the exports and outputs in")
    parser.add_argument("--regenerate", action="store_true", help="generate new exports even if --keep has them")
    parser.add_argument("--markdown", default="", help="also write the table to this file as Markdown")
    parser.add_argument("--clocks", type=int, default=3_000_000, help="intervals for the clock engine's row")
    parser.add_argument("--reference-clocks", type=int, default=20_000, help="of them, for businesstimedelta")
    args = parser.parse_args()

    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="cr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows = _pipeline_rows(args, work, env) + _startup_rows(work, env) + [_clock_row(args, env)]
    table = _markdown(rows)
    summary = (
        f"as-of {AS_OF}; other domains scaled with the tickets; {os.cpu_count()} cores, load average "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (other work on the machine); W = {work}; "
        f"bench took {time.perf_counter() - started:.0f} s"
    )
    print(f"{summary}\n\n{table}", end="")
    if args.markdown:
        Path(args.markdown).write_text(f"{summary}\n\n{table}", encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
