"""`compliance-report`: run the Dagster asset graph in-process, or generate sample exports.

Exit codes: 0 done; 1 the run failed; 2 the command line, the policy or an input folder is not usable.
A user never sees a traceback: every problem is one line naming the file or option and what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from assets.resources import ReporterSettings, Warehouse, WarehouseBusy, parse_as_of
from compliance.policy import PolicyError, load_policy

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _progress_logger(total_steps: int, stream) -> dg.LoggerDefinition:
    """A Dagster logger that prints one line per finished step and every warning, for long runs."""

    class _Handler(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.done = 0
            self.started: dict[str, float] = {}

        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", None) or {}
            event = meta.get("dagster_event")
            step = meta.get("step_key") or ""
            if event is None:
                if record.levelno >= logging.WARNING:
                    print(f"  ! {step}: {meta.get('orig_message', record.getMessage())}", file=stream, flush=True)
                return
            kind = event.event_type_value
            if kind == "STEP_START":
                self.started[step] = time.monotonic()
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                self.done += 1
                seconds = time.monotonic() - self.started.get(step, time.monotonic())
                status = "done" if kind == "STEP_SUCCESS" else "FAILED"
                width = len(str(total_steps))
                print(
                    f"  [{self.done:>{width}}/{total_steps}] {step:<46} {status} in {seconds:.1f}s",
                    file=stream,
                    flush=True,
                )

    @dg.logger(description="One line per finished step.")
    def progress(_init_context) -> logging.Logger:
        log = logging.getLogger("compliance_report.progress")
        log.handlers = [_Handler()]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log

    return progress


def _convert_inputs(format_name: str, inputs: list[Path], out_dir: Path, args: argparse.Namespace) -> None:
    """Run one vendor adapter over ``inputs`` (files, or folders whose files are all read) into ``out_dir``."""
    from compliance.adapters import adapter_for
    from compliance.adapters.base import AdapterOptions, ConversionError, vendor_encoding, write_conversion

    try:
        adapter = adapter_for(format_name)
    except KeyError as error:
        raise UsageError(f"--format: {error.args[0]}") from None
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise UsageError(f"--format {format_name}: no input files")
    mapping = Path(args.mapping) if getattr(args, "mapping", "") else None
    if format_name == "mapping" and mapping is None:
        raise UsageError("--format mapping needs --mapping FILE.yaml")
    try:
        policy = load_policy(args.policy)
    except PolicyError as error:
        raise UsageError(str(error)) from None
    if args.timezone:
        try:
            ZoneInfo(args.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise UsageError(f"--timezone {args.timezone!r}: not an IANA time zone (e.g. America/New_York)") from None
    options = AdapterOptions(timezone=args.timezone or None, mapping=mapping, policy=policy)
    try:
        with vendor_encoding(_encoding_option(args)):
            conversion = adapter.convert(files, options)
    except ConversionError as error:
        raise UsageError(str(error)) from None
    written = write_conversion(conversion, out_dir)
    print(f"compliance-report: converted {format_name} ({conversion.format_version}) into {out_dir}")
    for record in conversion.inputs:
        print(
            f"  {record.file:<40} {record.rows_read:>9,} read {record.rows_converted:>9,} converted"
            f" {record.rows_quarantined:>7,} quarantined"
        )
    print("  wrote " + ", ".join(path.name for path in written))


def _convert(args: argparse.Namespace) -> int:
    _convert_inputs(args.format, [Path(name) for name in args.inputs], Path(args.out), args)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    """With ``--format``, the vendor export is converted into a private temporary folder that lives for this run
    only: the converted files carry the customers' text as written (the secret scan and the completeness rule
    must read it raw), so they never sit under ``--out`` beside the published files. ``convert`` keeps them."""
    if not args.format:
        return _run_exports(args, None)
    with tempfile.TemporaryDirectory(prefix="compliance-report-converted-") as converted:
        return _run_exports(args, Path(converted))


def _run_exports(args: argparse.Namespace, converted: Path | None) -> int:
    from pipelines.definitions import (  # dagster imports are slow: only when running
        ALL_ASSETS,
        ALL_CHECKS,
        build_definitions,
    )
    from reports.static_export import export_dashboard, parse_formats

    exports_dir = Path(args.exports)
    encoding = _encoding_option(args)
    if converted is not None:  # a vendor export: convert it into canonical files first
        _convert_inputs(args.format, [exports_dir], converted, args)
        exports_dir = converted
        encoding = ""  # --encoding was the vendor files'; the converted files are UTF-8
    if not exports_dir.is_dir():
        raise UsageError(f"--exports {exports_dir}: no such folder")
    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        raise UsageError(f"--as-of {args.as_of!r}: not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)") from None
    try:
        policy = load_policy(args.policy)
    except PolicyError as error:
        raise UsageError(str(error)) from None
    try:
        export_formats = parse_formats(args.export) if args.export else ()
    except ValueError as error:
        raise UsageError(f"--export {args.export!r}: {error}") from None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    warehouse = Path(args.warehouse) if args.warehouse else out_dir / "warehouse.duckdb"

    resources = {
        "settings": ReporterSettings(
            exports_dir=str(exports_dir.resolve()),
            out_dir=str(out_dir.resolve()),
            policy=str(policy.path),
            as_of=as_of.isoformat(),
            encoding=encoding,
        ),
        "warehouse": Warehouse(
            path=str(warehouse.resolve()), lock_timeout_seconds=float(os.environ.get("CR_LOCK_TIMEOUT", "600"))
        ),
    }
    definitions = build_definitions(resources)
    job = definitions.resolve_job_def("compliance_run")
    print(f"compliance-report: policy {policy.profile} ({policy.path.name}), as of {as_of:%Y-%m-%dT%H:%M:%SZ}")
    print(f"  exports {exports_dir} -> {out_dir}")
    started = time.monotonic()
    progress = _progress_logger(len(ALL_ASSETS) + len(ALL_CHECKS), sys.stdout)
    try:  # one run per warehouse at a time: a second run waits for the first, then fails with one line
        with resources["warehouse"].run_lock(notify=print), dg.DagsterInstance.ephemeral() as instance:
            result = job.with_logger_defs({"progress": progress}).execute_in_process(
                instance=instance, raise_on_error=False, run_config={"loggers": {"progress": {}}}
            )
            if result.success:  # still holding the warehouse, which the next run may open as soon as it is free
                _print_summary(warehouse, out_dir, time.monotonic() - started)
    except WarehouseBusy as busy:
        print(f"compliance-report: {busy}", file=sys.stderr)
        return EXIT_FAILED
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
                error = event.step_failure_data.error
                while error.cause is not None:  # the user's error, not Dagster's wrapper around it
                    error = error.cause
                message = error.message.strip().splitlines()[0]
                print(f"compliance-report: step {event.step_key} failed: {message}", file=sys.stderr)
        return EXIT_FAILED
    if export_formats:
        for line in export_dashboard(out_dir, export_formats):
            print(line)
    return EXIT_OK


def _print_summary(warehouse: Path, out_dir: Path, seconds: float) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        print("\nInputs (rows read = loaded + quarantined):")
        absent = []
        for source, file, status, problem, read, loaded, quarantined in con.execute(
            "SELECT source, file, status, problem, rows_read, rows_loaded, rows_quarantined FROM ingest_log ORDER BY source"
        ).fetchall():
            if status == "loaded":
                print(f"  {file:<28} {read:>10,} read {loaded:>10,} loaded {quarantined:>8,} quarantined")
            elif status == "missing":
                absent.append(source)
            else:
                print(f"  {(file or source):<28} {status.upper()}: {problem}")
        if absent:
            print(f"  no export for: {', '.join(absent)}")
        print("\nVerdicts by domain:")
        for domain, met, breached, no_data, not_assessed, violations in con.execute(
            """SELECT v.domain, count(*) FILTER (WHERE verdict = 'met'), count(*) FILTER (WHERE verdict = 'breached'),
                      count(*) FILTER (WHERE verdict = 'no data'), count(*) FILTER (WHERE verdict = 'not assessed'),
                      (SELECT count(*) FROM violations x WHERE x.domain = v.domain AND x.severity = 'breach')
               FROM verdicts v GROUP BY v.domain ORDER BY min(position)"""
        ).fetchall():
            print(
                f"  {domain:<12} {met} met, {breached} breached, {no_data} no data, {not_assessed} not assessed"
                f" — {violations:,} violations"
            )
    finally:
        con.close()
    print(f"\nReport:    {(out_dir / 'compliance_report.html').resolve()}")
    print(f"Dashboard: {(out_dir / 'sla_dashboard.html').resolve()}")
    print(f"Evidence:  {(out_dir / 'evidence').resolve()}")
    print(f"Finished in {seconds:.1f}s")


def _generate(args: argparse.Namespace) -> int:
    from compliance.samples.generate import GenerateOptions, generate

    try:
        as_of = parse_as_of(args.as_of)
    except ValueError:
        raise UsageError(f"--as-of {args.as_of!r}: not an ISO-8601 timestamp") from None
    for name in ("tickets", "privacy_requests", "security_reports", "incidents", "retention_records"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')}: must not be negative")
    if not 0 <= args.messy_fraction <= 0.5:
        raise UsageError("--messy-fraction: must be between 0 and 0.5")
    started = time.monotonic()
    written = generate(
        GenerateOptions(
            out_dir=Path(args.out),
            seed=args.seed,
            tickets=args.tickets,
            privacy_requests=args.privacy_requests,
            security_reports=args.security_reports,
            incidents=args.incidents,
            retention_records=args.retention_records,
            as_of=as_of,
            file_format=args.format,
            messy_fraction=args.messy_fraction,
            with_events=not args.no_events,
        )
    )
    for name, rows in written.items():
        print(f"  {name:<32} {rows:>12,} rows")
    print(f"Sample exports in {Path(args.out).resolve()} ({time.monotonic() - started:.1f}s)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compliance-report", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="evaluate every commitment on a folder of exports")
    run.add_argument("--exports", required=True, help="folder with the canonical export files")
    run.add_argument("--out", required=True, help="folder for the report, evidence and manifest")
    run.add_argument(
        "--policy", default="platform", help="profile name (platform, email-support) or a policy YAML path"
    )
    run.add_argument("--as-of", default="", help="ISO-8601 instant the report judges at (default: now)")
    run.add_argument("--warehouse", default="", help="DuckDB file (default: OUT/warehouse.duckdb)")
    run.add_argument(
        "--export", default="", help="also write sla_dashboard.png/.pdf with headless Chrome: png, pdf or png,pdf"
    )
    _add_adapter_options(run, required=False)
    run.set_defaults(handler=_run)

    convert = commands.add_parser("convert", help="turn a vendor export into the canonical export files")
    convert.add_argument("inputs", nargs="+", metavar="INPUT", help="vendor export files or folders")
    convert.add_argument("--out", required=True, help="folder for the canonical files")
    convert.add_argument("--policy", default="platform", help="profile name or policy YAML (its vocabulary is used)")
    _add_adapter_options(convert, required=True)
    convert.set_defaults(handler=_convert)

    gen = commands.add_parser("generate", help="write deterministic sample exports")
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--tickets", type=int, default=20_000)
    gen.add_argument("--privacy-requests", type=int, default=600)
    gen.add_argument("--security-reports", type=int, default=80)
    gen.add_argument("--incidents", type=int, default=120)
    gen.add_argument("--retention-records", type=int, default=5_000)
    gen.add_argument("--as-of", default="2026-11-01T00:00:00Z", help="the data covers the 12 months before it")
    gen.add_argument("--format", choices=("csv", "parquet", "jsonl"), default="csv")
    gen.add_argument("--messy-fraction", type=float, default=0.02)
    gen.add_argument("--no-events", action="store_true", help="do not write ticket_events")
    gen.set_defaults(handler=_generate)
    return parser


def _add_adapter_options(parser: argparse.ArgumentParser, required: bool) -> None:
    from compliance.adapters import FORMATS

    parser.add_argument(
        "--format",
        required=required,
        default="",
        choices=sorted(FORMATS) if required else None,
        help="vendor export format: " + ", ".join(FORMATS) + ("" if required else " (the exports are converted first)"),
    )
    parser.add_argument("--mapping", default="", help="column and value mapping YAML for --format mapping")
    parser.add_argument("--timezone", default="", help="IANA zone of vendor timestamps without an offset")
    parser.add_argument(
        "--encoding",
        default="",
        help="text encoding of every input file, e.g. cp1252, gb18030, utf-16 (default: detected per file)",
    )


def _encoding_option(args: argparse.Namespace) -> str:
    """The --encoding codec as Python names it, "" when not given; an unknown name is a usage error."""
    from compliance.ingest.encodings import codec_name

    if not args.encoding:
        return ""
    try:
        return codec_name(args.encoding)
    except LookupError:
        raise UsageError(
            f"--encoding {args.encoding!r}: not a known text encoding (e.g. utf-8, cp1252, gb18030, utf-16)"
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"compliance-report: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("compliance-report: interrupted; the last published report is unchanged", file=sys.stderr)
        return 130
    except Exception as error:  # a user never sees a traceback
        print(f"compliance-report: unexpected error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


def entry_point() -> None:
    """Console script: exit without interpreter teardown, where native extensions print reference-leak noise."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
