"""Benchmark: whole pipeline on generated tickets vs a plain DuckDB scan of the same file, with peak memory.

    python scripts/bench.py [--tickets 1000000] [--format parquet|csv] [--keep DIR]

Prints the generation time, a plain DuckDB scan (count + min/max over the tickets file), the whole
`compliance-report run` (all assets, in-process) and its ratio to the scan, and peak memory of the run.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from compliance.generate import GenerateOptions, generate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--events", action="store_true", help="also generate ticket_events (about 7 per ticket)")
    parser.add_argument("--keep", default="", help="folder to keep the exports and outputs in")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cr-bench-"))
    exports, out = work / "exports", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    scale = args.tickets / 20_000
    started = time.perf_counter()
    generate(
        GenerateOptions(
            out_dir=exports,
            tickets=args.tickets,
            privacy_requests=int(600 * scale),
            security_reports=int(80 * scale),
            incidents=int(120 * scale),
            retention_records=int(5_000 * scale),
            file_format=args.format,
            with_events=args.events,
        )
    )
    generated = time.perf_counter() - started
    tickets_file = exports / f"tickets.{args.format}"

    started = time.perf_counter()
    reader = f"read_csv('{tickets_file}', all_varchar = true)" if args.format == "csv" else f"read_parquet('{tickets_file}')"
    duckdb.connect().execute(f"SELECT count(*), min(created_at), max(created_at) FROM {reader}").fetchall()
    scan = time.perf_counter() - started

    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--exports", str(exports), "--out", str(out),
         "--as-of", "2026-11-01T00:00:00Z"],
        capture_output=True,
        text=True,
    )
    whole = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:], sep="\n")
        return run.returncode
    steps = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("[")]
    print(f"tickets: {args.tickets:,} ({args.format}{', with events' if args.events else ''}), other domains scaled alike")
    print(f"generate exports:            {generated:8.1f} s")
    print(f"plain DuckDB scan of tickets: {scan:8.2f} s")
    print(f"whole run (all assets):       {whole:8.1f} s  = {whole / scan:.1f}x the scan")
    print(f"peak memory of the run:       {peak_mib:8.0f} MiB")
    print("slowest steps:")
    for line in sorted(steps, key=lambda text: -float(text.rsplit(" in ", 1)[1].rstrip("s")))[:6]:
        print("   ", line)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
