"""Benchmark: the whole pipeline on generated exports against a plain DuckDB read of the same tickets file.

    python scripts/bench.py [--tickets 1000000] [--format csv|parquet] [--events] [--keep DIR] [--regenerate]

Prints, for one run of `compliance-report run` (all assets, in-process, in a child process):

* the baseline: a plain DuckDB read of every column of the tickets file into a table (median of three)
  (``CREATE TABLE t AS SELECT * FROM read_csv(file, all_varchar = true)`` / ``read_parquet(file)``; CSV as
  text because the generated exports hold impossible dates on purpose), i.e. the least any tool that uses the
  data must do, and for reference a count-only scan (``count(*), min, max`` of ``created_at``);
* the whole run, its ratio to the full read, and the peak memory (max RSS) of the run;
* the clock engine alone: elapsed open time + due instants of every ticket clock (``compute_clocks`` passes
  inside the ``ticket_sla`` step);
* the checks: Great Expectations suites of every staged table and the secret scan, and their overhead as a
  percentage of the rest of the run (all timed inside that same run, from the warehouse's ``run_timings``);
* the slowest steps.

With ``--keep DIR`` the exports stay in ``DIR/exports`` and are reused by later runs with the same options
(``DIR/exports/bench-options.json``); ``--regenerate`` forces new ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from compliance.samples.generate import GenerateOptions, generate

AS_OF = "2026-11-01T00:00:00Z"


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


def _exports(args: argparse.Namespace, exports: Path) -> tuple[float | None, GenerateOptions]:
    """Generate the exports unless identical ones are already there; seconds spent (None when reused)."""
    options = _options(args, exports)
    stamp = exports / "bench-options.json"
    wanted = {"tickets": args.tickets, "format": args.format, "events": args.events}
    if not args.regenerate and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return None, options
    shutil.rmtree(exports, ignore_errors=True)
    started = time.perf_counter()
    generate(options)
    seconds = time.perf_counter() - started
    stamp.write_text(json.dumps(wanted))
    return seconds, options


def _scans(tickets_file: Path, file_format: str) -> tuple[float, list[float]]:
    """Seconds of a count-only scan, and of three full reads of every column into a DuckDB table."""
    # Text for CSV: the exports are messy on purpose (impossible dates), so a typed read would stop at the first one.
    reader = (
        f"read_csv('{tickets_file}', all_varchar = true)" if file_format == "csv" else f"read_parquet('{tickets_file}')"
    )
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(f"SELECT count(*), min(created_at), max(created_at) FROM {reader}").fetchall()
    count_only = time.perf_counter() - started
    full_reads = []
    for _ in range(3):  # a shared machine makes one read vary by 2x; the median of three is steadier
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM {reader}")
        full_reads.append(time.perf_counter() - started)
    con.close()
    return count_only, sorted(full_reads)


def _timings(warehouse: Path) -> dict[str, float]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dict(con.execute("SELECT part, sum(seconds) FROM run_timings GROUP BY part").fetchall())
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--events", action="store_true", help="also generate ticket_events (about 7 per ticket)")
    parser.add_argument("--keep", default="", help="folder to keep (and reuse) the exports and outputs in")
    parser.add_argument("--regenerate", action="store_true", help="generate new exports even if --keep has them")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cr-bench-"))
    exports, out = work / "exports", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    generated, _ = _exports(args, exports)
    tickets_file = exports / f"tickets.{args.format}"
    count_only, full_reads = _scans(tickets_file, args.format)
    full_read = full_reads[1]

    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF],
        capture_output=True,
        text=True,
    )
    whole = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:], sep="\n")
        return run.returncode
    timings = _timings(out / "warehouse.duckdb")
    clock_engine = sum(seconds for part, seconds in timings.items() if part.startswith("clock_engine"))
    expectations = sum(seconds for part, seconds in timings.items() if part.startswith("expectations"))
    secret_scan = timings.get("secret_scan", 0.0)
    checks = expectations + secret_scan
    steps = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("[")]
    ticket_mib = tickets_file.stat().st_size / 2**20

    print(
        f"tickets: {args.tickets:,} ({args.format}, {ticket_mib:,.0f} MiB{', with ticket_events' if args.events else ''}), "
        f"other domains scaled alike; as-of {AS_OF}; {os.cpu_count()} cores"
    )
    print(f"generate exports:                      {'reused' if generated is None else f'{generated:8.1f} s'}")
    print(f"baseline, count-only scan of tickets:  {count_only:8.2f} s")
    print(
        f"baseline, full read into DuckDB table: {full_read:8.2f} s  (median of 3: {', '.join(f'{r:.2f}' for r in full_reads)})"
    )
    print(
        f"whole run (all assets, in-process):    {whole:8.1f} s  = {whole / full_read:.1f}x the full read "
        f"({whole / count_only:.0f}x the count-only scan)"
    )
    print(f"peak memory of the run (max RSS):      {peak_gib:8.2f} GiB")
    print(f"clock engine (elapsed + due, all ticket clocks): {clock_engine:6.1f} s")
    print(
        f"checks: expectations {expectations:.1f} s + secret scan {secret_scan:.1f} s = {checks:.1f} s, "
        f"{100 * checks / max(whole - checks, 1e-9):.0f}% on top of the rest of the run ({whole - checks:.1f} s)"
    )
    print("slowest steps:")
    for line in sorted(steps, key=lambda text: -float(text.rsplit(" in ", 1)[1].rstrip("s")))[:8]:
        print("   ", line)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
