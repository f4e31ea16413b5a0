"""`compliance-report`: run the Dagster asset graph in-process, or generate sample exports.

Exit codes (the README's "Command line" states them for users): 0 done; 1 the run failed (or another run kept
the warehouse busy; ``verify``: a difference was found); 2 an operator's mistake: an option, a folder, the
warehouse file, a CR_* setting or the policy is not usable. A user never sees a traceback: every problem is one
line naming the file or option.

Start-up: `--help` and argument errors must be instant, so Dagster, DuckDB, polars, Great Expectations and plotly
are imported inside the commands that use them, never at the top of this module.
"""

from __future__ import annotations

import argparse
import contextlib
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

    from compliance.evidence.unchanged_run import FileHashes
    from compliance.policy import Policy

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

    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise UsageError(f"--format {format_name or 'auto'}: no input files")
    mapping = Path(args.mapping) if getattr(args, "mapping", "") else None
    if format_name in ("", "auto"):
        format_name = _detected_format(files, mapping)
    try:
        adapter = adapter_for(format_name)
    except KeyError as error:
        raise UsageError(f"--format: {error.args[0]}") from None
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


def _detected_format(files: list[Path], mapping: Path | None) -> str:
    """The format every input file is recognised as (printed); an unknown file is one line naming the closest."""
    from compliance.adapters.base import ConversionError
    from compliance.adapters.detect import detect_format

    try:
        detection = detect_format(files, mapping)
    except ConversionError as error:
        raise UsageError(f"format detection: {error}") from None
    print(f"compliance-report: detected format {detection.summary()}; --format {detection.format} to say so")
    return detection.format


def _vendor_files(exports: Path) -> list[Path]:
    """``--exports`` as a vendor export: a file, or a folder's files when none of them is a canonical export file
    (nor a conversion's log); empty otherwise."""
    from compliance.ingest.landing import CONVERSION_LOG, source_of

    if exports.is_file():
        return [exports]
    if not exports.is_dir():
        return []
    files = sorted(path for path in exports.iterdir() if path.is_file() and not path.name.startswith("."))
    return [] if any(source_of(path.name) or path.name == CONVERSION_LOG for path in files) else files


def _convert(args: argparse.Namespace) -> int:
    _convert_inputs(args.format, [Path(name) for name in args.inputs], Path(args.out), args)
    return EXIT_OK


def _check_as_of_window(as_of: datetime, policy: Policy) -> None:
    """An --as-of outside the policy's timestamp window is a mistake (0001-01-01), refused like a bad export value."""
    first, after_last = policy.timestamp_bounds()
    if not first <= as_of < after_last:
        first_year, last_year = policy.timestamp_window
        raise UsageError(
            f"--as-of {as_of.isoformat()}: outside the policy's timestamp window ({first_year}-{last_year})"
        )


def _policy(name_or_path: str, period=None) -> Policy:
    """The policy file, or of a policy folder the newest version judging the report ``period``."""
    return _policy_windows(name_or_path, period)[-1].policy


def _policy_windows(name_or_path: str, period=None) -> tuple:
    """The versions of the policy file or folder judging the report ``period``, each with its part
    (compliance.policy.version_windows); a policy that cannot be used is a usage error."""
    from compliance.policy import PolicyError, load_policy_versions, version_windows

    try:
        return version_windows(
            load_policy_versions(name_or_path), period.start if period else None, period.end if period else None
        )
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


def _keep_event_log_engines(instance) -> None:
    """The instance's SQLite event log with one SQLAlchemy engine per file for this process, not one per event.

    Dagster's ``SqliteEventLogStorage`` creates an engine, connects and disposes it for each event it stores (about
    190 a run, each a new SQLite connection and dialect set-up): half of the time the demo spent recording its
    events. Each event is still its own transaction under the storage's lock. Only that storage class, and only
    while it has the members this replaces; any other storage (PostgreSQL, a Dagster that changed them) is left
    as Dagster made it. The engines are disposed with the instance.
    """
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
    from sqlalchemy import create_engine

    storage = instance.event_log_storage
    members = ("_connect", "_db_lock", "_initialized_dbs", "_initdb", "conn_string_for_shard", "dispose")
    if type(storage) is not SqliteEventLogStorage or not all(hasattr(storage, name) for name in members):
        return
    engines: dict = {}

    @contextlib.contextmanager
    def connect(shard: str):
        with storage._db_lock:
            engine = engines.get(shard)
            if engine is None:
                engine = engines[shard] = create_engine(
                    storage.conn_string_for_shard(shard),
                    # serialised by the storage's lock, whichever thread stores the event
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                )
            if shard not in storage._initialized_dbs:
                storage._initdb(engine)
                storage._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection

    dispose_storage = storage.dispose

    def dispose() -> None:
        for engine in engines.values():
            engine.dispose()
        engines.clear()
        dispose_storage()

    storage._connect = connect
    storage.dispose = dispose


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
        instance = dg.DagsterInstance.from_config(str(home.resolve()))
        _keep_event_log_engines(instance)
        return instance
    except OSError as error:
        raise UsageError(f"{setting}: not a writable folder ({error.strerror or error})") from None
    except dg.DagsterError as error:  # e.g. a dagster.yaml that does not validate
        raise UsageError(f"{setting}: not a usable Dagster instance: {str(error).splitlines()[0]}") from None


def _run(args: argparse.Namespace) -> int:
    """A vendor export (``--format``, or detected when the folder holds no canonical file) is converted into a
    private temporary folder that lives for this run only: the converted files carry the customers' text as written
    (the secret scan and the completeness rule must read it raw), so they never sit under ``--out`` beside the
    published files. ``convert`` keeps them where asked."""
    exports_dir = Path(args.exports)
    vendor_format = args.format
    vendor_files = [] if vendor_format else _vendor_files(exports_dir)
    if vendor_files:  # no canonical file: a vendor export, if its format is known
        try:
            vendor_format = _detected_format(vendor_files, Path(args.mapping) if args.mapping else None)
        except UsageError as error:
            print(f"compliance-report: --exports {exports_dir}: no canonical export files, and {error}")
    if not vendor_format:
        return _run_exports(args, None)
    with tempfile.TemporaryDirectory(prefix="compliance-report-converted-") as converted:
        return _run_exports(args, (vendor_format, Path(converted)))


def _run_exports(args: argparse.Namespace, conversion: tuple[str, Path] | None) -> int:
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
    from compliance.evidence.unchanged_run import (
        FileHashes,
        forget_completed_run,
        record_completed_run,
        record_path,
        standing_run,
    )
    from reports.static_export import export_dashboard, parse_formats

    exports_dir = Path(args.exports)
    encoding = _encoding_option(args)
    try:
        lock_timeout = env_seconds("CR_LOCK_TIMEOUT", 600.0)
    except SettingError as error:
        raise UsageError(str(error)) from None
    if conversion is not None:  # a vendor export: convert it into canonical files first
        vendor_format, converted = conversion
        _convert_inputs(vendor_format, [exports_dir], converted, args)
        exports_dir = converted
        encoding = ""  # --encoding was the vendor files'; the converted files are UTF-8
    exports_problem = missing_exports_folder(exports_dir, "--exports")
    if exports_problem:
        raise UsageError(exports_problem)
    period = _period_option(args.period)
    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        raise UsageError(f"--as-of {args.as_of!r}: not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)") from None
    if period is not None and not args.as_of:
        as_of = period.default_as_of(as_of)
    windows = _policy_windows(args.policy, period)
    policy = windows[-1].policy
    _check_as_of_window(as_of, policy)
    try:
        export_formats = parse_formats(args.export) if args.export else ()
    except ValueError as error:
        raise UsageError(f"--export {args.export!r}: {error}") from None
    attestation = _attestation_option(args)
    out_dir = Path(args.out)
    _writable_folder(out_dir, "--out")
    warehouse = Path(args.warehouse) if args.warehouse else out_dir / "warehouse.duckdb"

    settings = {
        "exports_dir": str(exports_dir.resolve()),
        # provenance: the folder as named here and the vendor format converted, never the temporary folder
        "exports_given": args.exports,
        "exports_format": conversion[0] if conversion else "",
        "out_dir": str(out_dir.resolve()),
        "policy": str(policy.path if len(windows) == 1 else policy.path.parent),
        "as_of": as_of.isoformat(),
        "encoding": encoding,
        "period": period.label if period else "",
        "prepared_by": attestation.prepared_by,
        "reviewed_by": attestation.reviewed_by,
        "attested_on": attestation.date,
    }
    resources = {
        "settings": ReporterSettings(**settings),
        "warehouse": Warehouse(path=str(warehouse.resolve()), lock_timeout_seconds=lock_timeout),
    }
    versions = ", ".join(
        f"{window.policy.version}" + (f" until {window.end:%Y-%m-%d}" if not window.latest else "")
        for window in windows
    )
    print(
        f"compliance-report: policy {policy.profile} ({policy.path.name if len(windows) == 1 else policy.path.parent.name}, "
        f"version{'s' if len(windows) > 1 else ''} {versions}), as of {as_of:%Y-%m-%dT%H:%M:%SZ}"
    )
    if period is not None:
        print(
            f"  period {period.label}: clocks started {period.start:%Y-%m-%dT%H:%M:%SZ} to {period.end:%Y-%m-%dT%H:%M:%SZ} (end excluded)"
        )
    print(f"  exports {exports_dir} -> {out_dir}")
    started = time.monotonic()
    try:  # one run per warehouse at a time: a second run waits for the first, then fails with one line
        with resources["warehouse"].run_lock(notify=print):
            warehouse_file = Path(resources["warehouse"].path)
            hashes = FileHashes(warehouse_file)
            key = _run_key(settings, exports_dir, conversion is not None, windows, hashes)
            standing = standing_run(warehouse_file, out_dir, key, hashes)
            if standing is not None:
                run_id, files = standing
                print(
                    f"  nothing changed since run {run_id}: its report and evidence stand, nothing recomputed\n"
                    f"  (the same exports, policy, as-of, settings and code; its {files} published files as its "
                    f"manifest records them; remove {record_path(warehouse_file)} to compute every step again)"
                )
                _print_summary(warehouse, out_dir, time.monotonic() - started)
                result = None
            else:
                forget_completed_run(warehouse_file)
                with _expectations_worker():
                    result = _execute_run(resources)
                if result.success:  # still holding the warehouse, which the next run may open as soon as it is free
                    record_completed_run(warehouse_file, out_dir, key, hashes)
                    _print_summary(warehouse, out_dir, time.monotonic() - started)
    except WarehouseBusy as busy:
        print(f"compliance-report: {busy}", file=sys.stderr)
        return EXIT_FAILED
    except WarehouseUnusable as error:
        option = "--warehouse " if args.warehouse else ""
        raise UsageError(f"{option}{error}") from None
    if result is not None and not result.success:
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


@contextlib.contextmanager
def _expectations_worker():
    """The Great Expectations worker for a run that computes: started before the definitions load, so that it
    imports GX on the other core while this process loads them and stages the exports; stopped when the run ends,
    however it ends (``entry_point`` ends by ``os._exit``, where no ``atexit`` runs)."""
    from compliance import expectations_worker

    try:
        expectations_worker.start()
    except ValueError as error:  # an unknown CR_GX_WORKER value
        raise UsageError(str(error)) from None
    try:
        yield
    finally:
        expectations_worker.stop()


def _execute_run(resources: dict) -> dg.ExecuteInProcessResult:
    """The compliance_run job in this process, its steps reported by the progress logger, recorded in the instance."""
    from assets.resources import SettingError

    try:
        from pipelines.definitions import ALL_ASSETS, ALL_CHECKS, build_definitions
    except SettingError as error:  # a CR_* setting read when the definitions load (CR_PARTITIONS_START)
        raise UsageError(str(error)) from None
    job = build_definitions(resources).resolve_job_def("compliance_run")
    progress = _progress_logger(len(ALL_ASSETS) + len(ALL_CHECKS), sys.stdout)
    with _dagster_instance() as instance, resources["warehouse"].session():
        return job.with_logger_defs({"progress": progress}).execute_in_process(
            instance=instance, raise_on_error=False, run_config={"loggers": {"progress": {}}}
        )


def _run_key(settings: dict, exports_dir: Path, converted: bool, windows: tuple, hashes: FileHashes) -> str:
    """The key of everything this run's output is a function of (``compliance.evidence.unchanged_run``): the
    settings (a converted folder's temporary path aside: its files are what counts), the warehouse's files, the
    policy's bytes, the exports read and the code that runs."""
    import importlib.util

    from compliance.evidence.unchanged_run import code_material, exports_material, run_key
    from compliance.ingest.contract import SOURCES
    from compliance.ingest.landing import export_files

    policy_path = Path(settings["policy"])
    policy_files = sorted(policy_path.iterdir()) if policy_path.is_dir() else [policy_path]
    source_files = {}
    for source in SOURCES:
        for path in export_files(exports_dir, source):
            try:
                source_files[path.name] = hashes.sha256(path)
            except OSError as error:  # unreadable: the ingest names it; a change of its state still shows
                source_files[path.name] = f"unreadable: {error}"
    packages = [
        Path(location)
        for name in ("compliance", "assets", "checks", "reports", "pipelines")
        for location in importlib.util.find_spec(name).submodule_search_locations
    ]
    return run_key(
        {
            "settings": {name: value for name, value in settings.items() if not (converted and name == "exports_dir")},
            "policy_files": {path.name: hashes.sha256(path) for path in policy_files if path.is_file()},
            "policy_windows": [(window.policy.sha256, window.start, window.end, window.latest) for window in windows],
            "exports": exports_material(exports_dir, source_files),
            "code": code_material(packages),
        }
    )


def _attestation_option(args: argparse.Namespace):
    """The sign-off block: ``--attestation FILE`` (YAML), each of ``--prepared-by`` / ``--reviewed-by`` /
    ``--attested-on`` given on the command line taking the place of the file's."""
    from reports.compliance_report import Attestation, AttestationError, load_attestation

    try:
        attestation = load_attestation(Path(args.attestation)) if args.attestation else Attestation()
    except AttestationError as error:
        raise UsageError(f"--attestation {error}") from None
    return Attestation(
        prepared_by=args.prepared_by or attestation.prepared_by,
        reviewed_by=args.reviewed_by or attestation.reviewed_by,
        date=args.attested_on or attestation.date,
    )


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


def _verify(args: argparse.Namespace) -> int:
    """Check a published run: its files against the manifest's hashes; with --exports, its evidence against a
    re-run of the same exports, policy, period and as-of time. One line per difference; exit 0 only when all hold."""
    from compliance.evidence.verify import ManifestError, check_inputs, check_outputs, read_manifest

    out_dir = Path(args.out_dir)
    try:
        manifest = read_manifest(out_dir)
    except ManifestError as error:
        raise UsageError(str(error)) from None
    problems = check_outputs(out_dir, manifest)
    if args.exports:
        exports_dir = Path(args.exports)
        if not exports_dir.is_dir():
            raise UsageError(f"--exports {exports_dir}: no such folder")
        problems += check_inputs(exports_dir, manifest)
        conversion_options = _recorded_conversion_options(manifest, args.mapping)
        problems += _rerun_differences(exports_dir, out_dir, manifest, args.policy, conversion_options)
    for line in problems:
        print(line)
    checked = "hashes and a re-run" if args.exports else "hashes"
    if problems:
        print(f"compliance-report: {out_dir}: {len(problems)} difference(s) ({checked} checked)", file=sys.stderr)
        return EXIT_FAILED
    print(f"compliance-report: {out_dir}: verified ({checked}: every file as the manifest records)")
    return EXIT_OK


def _recorded_conversion_options(manifest: dict, mapping_option: str) -> list[str]:
    """The adapter options of ``run`` that the manifest records its conversion was given (``conversion.options``:
    ``--mapping``, ``--timezone``, ``--encoding``), to pass again; empty for a run of canonical files.

    The mapping file is ``mapping_option`` when given, else the recorded path (relative to the working folder); a
    file that is not there, or whose sha256 is not the recorded one, is a usage error naming it: the re-run
    would convert the exports otherwise than the run did."""
    from compliance.core.files import file_sha256

    if not manifest.get("exports_format"):
        if mapping_option:
            raise UsageError(f"--mapping {mapping_option}: the run read canonical export files, it converted none")
        return []
    recorded = (manifest.get("conversion") or {}).get("options") or {}
    options = []
    mapping = recorded.get("mapping") or {}
    if mapping or mapping_option:
        path = Path(mapping_option or str(mapping.get("path")))
        option = f"--mapping {path}" if mapping_option else f"the run's mapping file {path} (--mapping to name it)"
        if not path.is_file():
            raise UsageError(f"{option}: no such file")
        expected = mapping.get("sha256")
        if expected and (actual := file_sha256(path)) != expected:
            raise UsageError(f"{option}: sha256 {actual} differs from the manifest's {expected}")
        options += ["--mapping", str(path)]
    for name in ("timezone", "encoding"):
        if recorded.get(name):
            options += [f"--{name}", str(recorded[name])]
    return options


def _rerun_differences(
    exports_dir: Path, out_dir: Path, manifest: dict, policy_option: str, conversion_options: list[str]
) -> list[str]:
    """Re-run the manifest's policy, period and as-of on ``exports_dir`` into a temporary folder (a vendor
    export converted again with ``conversion_options``); the evidence files that differ, byte for byte, one line
    each (the run's output is not shown: only its differences)."""
    import contextlib
    import io

    from compliance.evidence.verify import compare_evidence
    from compliance.policy import PolicyError, load_policy_versions

    recorded = manifest.get("policy") or {}
    # a run judged by several versions of a policy folder names the folder, and each version's file and sha256
    reference = policy_option or str(recorded.get("folder") or recorded.get("path") or "")
    try:
        versions = load_policy_versions(reference)
    except PolicyError as error:
        return [f"policy {reference}: cannot be loaded here ({error}); name it with --policy"]
    recorded_versions = [item for item in manifest.get("policy_versions") or [] if isinstance(item, dict)]
    expected = {item.get("version"): item.get("sha256") for item in recorded_versions if len(recorded_versions) > 1}
    expected = expected or {recorded.get("version"): recorded.get("sha256")}
    loaded = {policy.version: policy.sha256 for policy in versions}
    if len(expected) == 1 and len(versions) == 1:  # one file: whatever its version, its bytes must be the same
        loaded = dict.fromkeys(expected, versions[0].sha256)
    for version, sha256 in expected.items():
        if loaded.get(version) != sha256:
            return [
                f"policy {reference}: version {version} sha256 {loaded.get(version)} differs from the manifest's {sha256}"
            ]
    policy_path = versions[0].path if len(versions) == 1 else versions[0].path.parent
    period = (manifest.get("period_filter") or {}).get("label")
    with tempfile.TemporaryDirectory(prefix="compliance-verify-") as temporary:
        rerun_dir = Path(temporary) / "out"
        command = ["run", "--exports", str(exports_dir), "--out", str(rerun_dir), "--policy", str(policy_path)]
        command += ["--as-of", str(manifest.get("as_of")), *(["--period", period] if period else [])]
        if manifest.get("exports_format"):  # a vendor export converted for the run: converted again alike
            command += ["--format", str(manifest["exports_format"]), *conversion_options]
        errors = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            code = main(command)
        if code != EXIT_OK:
            first = (errors.getvalue().strip().splitlines() or ["no message"])[0]
            return [f"re-run failed (exit {code}): {first}"]
        return compare_evidence(out_dir, rerun_dir, manifest)


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
    run.add_argument(
        "--period",
        default="",
        help="judge only the items whose clock started in 2026-Q3, 2026-09, 2026 or 2026-07-01..2026-09-30 "
        "(UTC, days included; --as-of defaults to the period's end, or now when earlier)",
    )
    run.add_argument("--warehouse", default="", help="DuckDB file (default: OUT/warehouse.duckdb)")
    run.add_argument(
        "--export",
        default="",
        help="also write sla_dashboard.png/.pdf with headless Chrome: png, pdf or png,pdf "
        "(pdf: compliance_report.pdf too, the printed report)",
    )
    sign_off = run.add_argument_group("sign-off (the attestation block of the printed report)")
    sign_off.add_argument("--prepared-by", default="", help="who prepared the report")
    sign_off.add_argument("--reviewed-by", default="", help="who reviewed it")
    sign_off.add_argument("--attested-on", default="", help="the date of the sign-off, as it should be printed")
    sign_off.add_argument(
        "--attestation", default="", help="YAML file with prepared_by, reviewed_by, date (options above win)"
    )
    _add_adapter_options(run)
    run.set_defaults(handler=_run)

    convert = commands.add_parser("convert", help="turn a vendor export into the canonical export files")
    convert.add_argument("inputs", nargs="+", metavar="INPUT", help="vendor export files or folders")
    convert.add_argument("--out", required=True, help="folder for the canonical files")
    convert.add_argument("--policy", default="platform", help="profile name or policy YAML (its vocabulary is used)")
    _add_adapter_options(convert)
    convert.set_defaults(handler=_convert)

    verify = commands.add_parser(
        "verify", help="check a run's files against its manifest; with --exports, against a re-run of the same inputs"
    )
    verify.add_argument("out_dir", metavar="OUT", help="the output folder of the run (holding manifest.json)")
    verify.add_argument("--exports", default="", help="the export folder the run read: re-run it and compare")
    verify.add_argument("--policy", default="", help="the policy file, when the manifest's path does not resolve here")
    verify.add_argument(
        "--mapping",
        default="",
        help="the mapping file of a converted run, when the manifest's path does not resolve here (same sha256)",
    )
    verify.set_defaults(handler=_verify)

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


def _add_adapter_options(parser: argparse.ArgumentParser) -> None:
    from compliance.adapters import FORMATS

    parser.add_argument(
        "--format",
        default="",
        choices=["auto", *sorted(FORMATS)],
        help="vendor export format: auto (recognised from the files; the default of convert, and of run on a folder"
        " without canonical files) or " + ", ".join(FORMATS) + " (run converts the exports first)",
    )
    parser.add_argument(
        "--mapping", default="", help="mapping YAML: the layout of --format mapping, or overrides of any other format"
    )
    parser.add_argument("--timezone", default="", help="IANA zone of vendor timestamps without an offset")
    parser.add_argument(
        "--encoding",
        default="",
        help="text encoding of every input file, e.g. cp1252, gb18030, utf-16 (default: detected per file)",
    )


def _period_option(text: str):
    """The --period as a ReportPeriod (None when not given); a value naming no period is a usage error."""
    from compliance.evidence.periods import PeriodError, parse_period

    if not text:
        return None
    try:
        return parse_period(text)
    except PeriodError as error:
        raise UsageError(str(error)) from None


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
