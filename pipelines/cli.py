"""`compliance-report`: run the Dagster asset graph in-process, or generate sample exports.

Exit codes (the README's "Command line" states them for users): 0 done; 1 the run failed (or another run kept
the warehouse busy); 2 an operator's mistake: an option, a folder, the warehouse file, a CR_* setting or the
policy is not usable. A user never sees a traceback: every problem is one line naming the file or option.

Start-up: `--help` and argument errors must be instant, so Dagster, DuckDB, polars, Great Expectations and plotly
are imported inside the commands that use them, never at the top of this module.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import dagster as dg

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Where CLI runs are recorded when DAGSTER_HOME is not set: the instance `make dev` opens (relative to the
# current folder, the repository root for `make`), so the UI shows the runs, materializations and checks.
DEFAULT_DAGSTER_HOME = Path("var/dagster_home")


class UsageError(Exception):
    """An operator's mistake (exit 2); the message is one line naming the option, file or setting."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line plus the usage hint, instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\nUsage: {self.prog} --help\n")


def _progress_logger(total_steps: int, stream) -> dg.LoggerDefinition:
    """A Dagster logger that prints one line per finished step and every warning, for long runs."""
    import dagster as dg

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
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from compliance.adapters import adapter_for
    from compliance.adapters.base import (
        AdapterOptions,
        ConversionError,
        UnreadableFile,
        vendor_encoding,
        write_conversion,
    )

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
    _writable_folder(out_dir, "--out")
    policy = _policy(args.policy)
    if args.timezone:
        try:
            ZoneInfo(args.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise UsageError(f"--timezone {args.timezone!r}: not an IANA time zone (e.g. America/New_York)") from None
    options = AdapterOptions(timezone=args.timezone or None, mapping=mapping, policy=policy)
    try:
        with vendor_encoding(_encoding_option(args)):
            conversion = adapter.convert(files, options)
    except UnreadableFile as error:  # the reader names the file when the adapter in between did not
        message = str(error)
        raise UsageError(message if message.startswith(error.path.name) else f"{error.path}: {message}") from None
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


def _policy(name_or_path: str):
    from compliance.policy import PolicyError, load_policy

    try:
        return load_policy(name_or_path)
    except PolicyError as error:
        raise UsageError(str(error)) from None


def _writable_folder(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and prove a file can be written in it, before any work is done."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"{option} {folder}: not a writable folder ({error.strerror or error})") from None


_DEFAULT_INSTANCE_SETTINGS = """\
# Written by compliance-report for a Dagster instance folder that had no settings: Dagster's defaults, with runs,
# event logs and schedules in SQLite files here. `make dev` replaces it with the repository's dagster.yaml.
telemetry:
  enabled: false
"""


@functools.cache
def _commit_instance_records_without_fsync() -> None:
    """SQLite instance storage in ``synchronous = OFF`` for this process: commits do not wait for the disk.

    Dagster opens and closes a SQLite connection per operation (SQLAlchemy's NullPool), and each commit or close
    syncs the file: a run's ~1,100 syncs tripled the wall time of a small run on a busy disk (14 s -> 45 s;
    ``synchronous = NORMAL`` left 1,130 of them, as closing a WAL database checkpoints it). OFF survives a crash of
    this process, not of the machine (https://www.sqlite.org/pragma.html#pragma_synchronous): what is at stake is
    the run's history in the instance, never the warehouse or the evidence. PostgreSQL storage is left alone.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _unsynchronised(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous = OFF")


def _dagster_instance():
    """The Dagster instance that records this run: DAGSTER_HOME's, else ``DEFAULT_DAGSTER_HOME``'s.

    Its ``dagster.yaml`` (when present) chooses the storage; without one Dagster keeps runs, event logs and
    asset records in SQLite files under the folder.
    """
    import dagster as dg

    configured = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(configured) if configured else DEFAULT_DAGSTER_HOME
    setting = f"DAGSTER_HOME {home}" if configured else f"the Dagster instance folder {home} (DAGSTER_HOME unset)"
    if home.exists() and not home.is_dir():
        raise UsageError(f"{setting}: is a file, not a folder")
    try:
        home.mkdir(parents=True, exist_ok=True)
        settings_file = home / "dagster.yaml"
        if not settings_file.exists():  # else Dagster warns on every run that it defaults to SQLite storage here
            settings_file.write_text(_DEFAULT_INSTANCE_SETTINGS, encoding="utf-8")
        _commit_instance_records_without_fsync()
        return dg.DagsterInstance.from_config(str(home.resolve()))
    except OSError as error:
        raise UsageError(f"{setting}: not a writable folder ({error.strerror or error})") from None
    except dg.DagsterError as error:  # e.g. a dagster.yaml that does not validate
        raise UsageError(f"{setting}: not a usable Dagster instance: {str(error).splitlines()[0]}") from None


def _run(args: argparse.Namespace) -> int:
    from assets.resources import (
        ReporterSettings,
        SettingError,
        Warehouse,
        WarehouseBusy,
        WarehouseUnusable,
        env_seconds,
        missing_exports_folder,
        parse_as_of,
    )
    from reports.static_export import export_dashboard, parse_formats

    try:
        from pipelines.definitions import ALL_ASSETS, ALL_CHECKS, build_definitions
    except SettingError as error:  # a CR_* setting read when the definitions load (CR_PARTITIONS_START)
        raise UsageError(str(error)) from None
    exports_dir = Path(args.exports)
    encoding = _encoding_option(args)
    try:
        lock_timeout = env_seconds("CR_LOCK_TIMEOUT", 600.0)
    except SettingError as error:
        raise UsageError(str(error)) from None
    if args.format:  # a vendor export: convert it into canonical files beside the report first
        converted = Path(args.out) / "converted"
        _convert_inputs(args.format, [exports_dir], converted, args)
        exports_dir = converted
        encoding = ""  # --encoding was the vendor files'; the converted files are UTF-8
    exports_problem = missing_exports_folder(exports_dir, "--exports")
    if exports_problem:
        raise UsageError(exports_problem)
    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        raise UsageError(f"--as-of {args.as_of!r}: not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)") from None
    policy = _policy(args.policy)
    try:
        export_formats = parse_formats(args.export) if args.export else ()
    except ValueError as error:
        raise UsageError(f"--export {args.export!r}: {error}") from None
    out_dir = Path(args.out)
    _writable_folder(out_dir, "--out")
    warehouse = Path(args.warehouse) if args.warehouse else out_dir / "warehouse.duckdb"

    resources = {
        "settings": ReporterSettings(
            exports_dir=str(exports_dir.resolve()),
            out_dir=str(out_dir.resolve()),
            policy=str(policy.path),
            as_of=as_of.isoformat(),
            encoding=encoding,
        ),
        "warehouse": Warehouse(path=str(warehouse.resolve()), lock_timeout_seconds=lock_timeout),
    }
    definitions = build_definitions(resources)
    job = definitions.resolve_job_def("compliance_run")
    print(f"compliance-report: policy {policy.profile} ({policy.path.name}), as of {as_of:%Y-%m-%dT%H:%M:%SZ}")
    print(f"  exports {exports_dir} -> {out_dir}")
    started = time.monotonic()
    progress = _progress_logger(len(ALL_ASSETS) + len(ALL_CHECKS), sys.stdout)
    try:  # one run per warehouse at a time: a second run waits for the first, then fails with one line
        with resources["warehouse"].run_lock(notify=print), _dagster_instance() as instance:
            result = job.with_logger_defs({"progress": progress}).execute_in_process(
                instance=instance, raise_on_error=False, run_config={"loggers": {"progress": {}}}
            )
            if result.success:  # still holding the warehouse, which the next run may open as soon as it is free
                _print_summary(warehouse, out_dir, time.monotonic() - started)
    except WarehouseBusy as busy:
        print(f"compliance-report: {busy}", file=sys.stderr)
        return EXIT_FAILED
    except WarehouseUnusable as error:
        option = "--warehouse " if args.warehouse else ""
        raise UsageError(f"{option}{error}") from None
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
                where, error = f"step {event.step_key}", event.step_failure_data.error
            elif event.event_type_value == "RESOURCE_INIT_FAILURE" and event.event_specific_data.error:
                where, error = "run", event.event_specific_data.error  # e.g. the exports folder went away
            else:
                continue
            while error.cause is not None:  # the user's error, not Dagster's wrapper around it
                error = error.cause
            message = error.message.strip().splitlines()[0]
            print(f"compliance-report: {where} failed: {message}", file=sys.stderr)
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
    from assets.resources import parse_as_of
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
    _writable_folder(Path(args.out), "--out")
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
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("compliance-reporter")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH that was never installed
        installed = "(not installed)"
    parser = _Parser(prog="compliance-report", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
