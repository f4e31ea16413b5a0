"""Resources: the run's settings (exports, output folder, policy, as-of) and the DuckDB warehouse."""

import fcntl
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb

from compliance.core.sql import MACRO_NAMES, ident, lit
from compliance.evidence.files import SPREADSHEET_MAX_ROWS
from compliance.evidence.periods import ReportPeriod, parse_period
from compliance.policy import Policy, VersionWindow, load_policy_versions, version_windows


def parse_as_of(text: str) -> datetime:
    """An ISO-8601 instant; one without an offset is read as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def missing_exports_folder(folder: Path, label: str = "exports folder") -> str | None:
    """The one-line problem with an exports folder that is not there; the CLI's ``label`` is ``--exports``."""
    if folder.is_dir():
        return None
    return f"{label} {folder}: {'not a folder' if folder.exists() else 'no such folder'}"


class ReporterSettings(dg.ConfigurableResource):
    """Where a run reads exports and writes evidence, under which policy and as-of instant."""

    exports_dir: str
    out_dir: str
    # For provenance: the exports as the user named them (the CLI's --exports; empty: exports_dir) and, when they
    # were a vendor export converted into exports_dir for this run only, its format (empty: canonical files).
    exports_given: str = ""
    exports_format: str = ""
    policy: str = "platform"
    as_of: str = ""  # ISO-8601; empty means the moment the run was created
    encoding: str = ""  # text encoding (Python codec name) of every CSV / JSON Lines export; empty: detected per file
    # Above this many rows ticket_sla and violations are written per month (compliance.evidence.files).
    spreadsheet_max_rows: int = SPREADSHEET_MAX_ROWS
    # The report period (compliance.evidence.periods: 2026-Q3, 2026-09, 2026, 2026-07-01..2026-09-30): only the
    # items whose clock started in it are judged. Empty: every item in the exports.
    period: str = ""
    # The sign-off block of the compliance report (text as given; empty: "not stated").
    prepared_by: str = ""
    reviewed_by: str = ""
    attested_on: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a run whose exports folder does not exist, as the CLI does, before any step judges "no data"."""
        problem = missing_exports_folder(Path(self.exports_dir))
        if problem:
            raise SettingError(problem)

    def policy_versions(self) -> tuple[Policy, ...]:
        """Every version of the policy file or folder, oldest first."""
        return load_policy_versions(self.policy)

    def policy_windows(self) -> tuple[VersionWindow, ...]:
        """The policy versions that judge the run's items, each with its part (compliance.policy.version_windows)."""
        period = self.report_period()
        return version_windows(self.policy_versions(), period.start if period else None, period.end if period else None)

    def load_policy(self) -> Policy:
        """The newest policy version judging the run: it reads the exports and names the commitments."""
        return self.policy_windows()[-1].policy

    def report_period(self) -> ReportPeriod | None:
        return parse_period(self.period) if self.period else None

    def as_of_instant(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> datetime:
        if self.as_of:
            return parse_as_of(self.as_of)
        # Every asset of one run must judge against the same instant: the run's creation time (for a report
        # period, its end when that is earlier).
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = (record.create_timestamp if record else datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        period = self.report_period()
        return period.default_as_of(created) if period else created


# The Dagster concurrency pool of every step that opens the warehouse (its limit is set in dagster.yaml).
WAREHOUSE_POOL = "warehouse"


class WarehouseBusy(Exception):
    """Another process holds the warehouse; the message is one line naming the file and that process."""


class WarehouseUnusable(Exception):
    """The warehouse file, or its lock file, cannot be what it must be: an operator's mistake (exit 2).

    ``path`` names the file; the message is one line, "<path>: <problem>".
    """

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


class SettingError(ValueError):
    """An environment setting (``CR_*``) whose value cannot be used; the message names the variable and value."""


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (unset or blank: ``default``)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise SettingError(f"{name}={text!r}: not a number of seconds (e.g. {default:g})")
    return seconds


Opened = TypeVar("Opened")

# A DuckDB database file starts with an 8-byte checksum and the magic bytes "DUCK" (DuckDB's storage format,
# https://duckdb.org/docs/stable/internals/storage): what tells a warehouse from any other file without opening it.
_DUCKDB_MAGIC = b"DUCK"
_DUCKDB_MAGIC_AT = 8


class Warehouse(dg.ConfigurableResource):
    """The embedded DuckDB warehouse file: one writing process at a time, each step one transaction.

    Not dagster-duckdb's ``DuckDBResource``: its ``get_connection`` opens every connection read-write (the monthly
    Parquet steps read side by side), runs no transaction (a failed step would leave half its writes), retries a
    held file lock ten times within seconds and then raises DuckDB's own error, and has no lock for a whole run.
    """

    path: str
    # DuckDB memory limit (empty: DuckDB's default, 80 % of RAM). Past it DuckDB spills to `<warehouse>.tmp`;
    # 4 GB keeps a run of ten million tickets under 6 GiB of peak memory with Python's own (README, Performance).
    memory_limit: str = "4GB"
    # How long a step waits for another process (a parallel step, another run) to release the file.
    lock_timeout_seconds: float = 600.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: committed when the block ends, rolled back if it raises.

        A process killed mid-step leaves the warehouse as the last committed step left it (DuckDB's WAL).
        """
        self.check_usable()
        kept = _SESSIONS.get(_session_key(self.path))
        con = kept.connection if kept else self._open(read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if self.memory_limit:
                con.execute(f"SET memory_limit = {lit(self.memory_limit)}")
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()
        finally:
            if kept is None:
                con.close()
            else:
                kept.forget_step()

    @contextmanager
    def session(self) -> Iterator[None]:
        """Inside the block, every step this process runs shares one open connection to the warehouse.

        Opening the file reads its catalog and closing it checkpoints: paid per step, a run of thirty steps paid
        both thirty times. Each step is still its own transaction, and starts as on a connection of its own:
        what a step leaves on the connection (temporary tables, views, macros, variables, settings, attached
        databases) is dropped or reset when it ends. For a process that holds the warehouse for a whole run (the
        CLI's, inside :meth:`run_lock`); readers in other processes wait for the run to end, as other runs do.
        """
        self.check_usable()
        key = _session_key(self.path)
        if key in _SESSIONS:  # nested: the outer block keeps the connection
            yield
            return
        try:
            connection = self._open(read_only=False)
        except duckdb.Error:  # a damaged file: each step opens it itself and fails with DuckDB's message, as always
            yield
            return
        _SESSIONS[key] = _Session(connection)
        try:
            yield
        finally:
            _SESSIONS.pop(key).connection.close()

    def check_usable(self) -> None:
        """Refuse, as :class:`WarehouseUnusable`, a path that is a folder or a file that is not a DuckDB database.

        A path that does not exist yet is fine (the first run creates it, and its folder).
        """
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WarehouseUnusable(path.parent, f"cannot hold the warehouse ({error.strerror or error})") from None
        if path.is_dir():
            raise WarehouseUnusable(path, "is a folder, not a DuckDB warehouse file")
        if not path.exists():
            return
        try:
            with path.open("rb") as handle:
                header = handle.read(_DUCKDB_MAGIC_AT + len(_DUCKDB_MAGIC))
        except OSError as error:
            raise WarehouseUnusable(path, f"cannot be read ({error.strerror or error})") from None
        if header[_DUCKDB_MAGIC_AT:] != _DUCKDB_MAGIC:
            raise WarehouseUnusable(path, "not a DuckDB database file (give --warehouse a new or a DuckDB file)")

    def attach_read_only(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """Attach the warehouse to ``con`` as ``alias``, read-only, waiting (as :meth:`connect` does) while a step
        of another run holds it for writing."""
        self.check_usable()
        path = str(Path(self.path).resolve())
        self._waiting_for_lock(lambda: con.execute(f"ATTACH {lit(path)} AS {ident(alias)} (READ_ONLY)"))

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        return self._waiting_for_lock(lambda: duckdb.connect(self.path, read_only=read_only))

    def _waiting_for_lock(self, action: Callable[[], Opened]) -> Opened:
        """``action()``, tried again while DuckDB says another process holds the file, up to the lock timeout."""
        deadline = time.monotonic() + self.lock_timeout_seconds
        pause = 0.05
        while True:
            try:
                return action()
            except duckdb.IOException as error:
                holder = _LOCK_HOLDER.search(str(error))
                if holder is None:
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"warehouse {self.path} is in use by another run (pid {holder.group(1)}); "
                        f"waited {self.lock_timeout_seconds:g}s"
                    ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    @contextmanager
    def run_lock(self, notify: Callable[[str], object] | None = None) -> Iterator[None]:
        """Hold the warehouse for a whole run (an OS lock beside the file), waiting up to the lock timeout.

        Steps open and close the DuckDB file one by one; without this, two runs could interleave their steps.
        The OS releases the lock when the process ends, however it ends.
        """
        lock_path = Path(self.path + ".lock")
        self.check_usable()
        if lock_path.is_dir():
            raise WarehouseUnusable(lock_path, "is a folder; the run's lock file must be a file (remove the folder)")
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the whole run: the lock lives with it
        except OSError as error:
            raise WarehouseUnusable(lock_path, f"cannot open the run's lock file ({error.strerror or error})") from None
        try:
            deadline = time.monotonic() + self.lock_timeout_seconds
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    if notify is not None:
                        notify(f"  waiting for warehouse {self.path}: in use by another run (pid {holder})")
                        notify = None  # say it once
                    if time.monotonic() >= deadline:
                        raise WarehouseBusy(
                            f"warehouse {self.path} is in use by another run (pid {holder}); "
                            f"waited {self.lock_timeout_seconds:g}s"
                        ) from None
                    time.sleep(0.2)
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()  # closing the descriptor releases the lock


def _session_key(path: str) -> str:
    return os.path.realpath(path)


class _Session:
    """The connection :meth:`Warehouse.session` keeps open, and what a new connection to it starts with."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection
        self.settings = self._settings()
        self.databases = self._databases()

    def _settings(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT name, value FROM duckdb_settings()").fetchall())

    def _databases(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT database_name FROM duckdb_databases()").fetchall()}

    def forget_step(self) -> None:
        """Leave the connection as a step found it: a step reads ``temp`` objects of its own, never of another."""
        con = self.connection
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall():
            con.execute(f"DROP TABLE temp.main.{ident(name)}")
        for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall():
            con.unregister(name)  # a Python object registered as a view; nothing for a view made in SQL
            con.execute(f"DROP VIEW IF EXISTS temp.main.{ident(name)}")
        # by name: listing the temporary ones reads duckdb_functions(), every function of DuckDB, at each step
        for name in MACRO_NAMES:
            con.execute(f"DROP MACRO IF EXISTS temp.main.{ident(name)}")
        for (name,) in con.execute("SELECT name FROM duckdb_variables()").fetchall():
            con.execute(f"RESET VARIABLE {ident(name)}")
        for name in self._databases() - self.databases:
            con.execute(f"DETACH {ident(name)}")
        for name, value in self._settings().items():
            if self.settings.get(name) != value:
                con.execute(f"RESET {name}")
        # A closed connection gave its cache back; a kept one keeps at most this much of it for the next step,
        # which may need the memory in Python (pandas frames for the expectations, the report's tables).
        cached = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] or 0
        if cached > _SESSION_CACHE_BYTES:
            try:  # lowering the limit evicts cached blocks; the next step sets its own limit again
                con.execute(f"SET memory_limit = '{_SESSION_CACHE_BYTES}B'")
            except duckdb.OutOfMemoryException:
                pass  # blocks still pinned: the next step runs with them, as it would have on a full cache
            con.execute("RESET memory_limit")


_SESSION_CACHE_BYTES = 1 << 30
# The connections kept open by Warehouse.session, by the warehouse file's real path.
_SESSIONS: dict[str, _Session] = {}


# DuckDB: 'Could not set lock on file "...": Conflicting lock is held in /usr/bin/python3 (PID 1234) by user x'
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in .*?\(PID (\d+)\)")


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources for `dagster dev`, the schedule and the sensor, configured from the environment.

    Dagster reads each ``EnvVar`` when a run (or a sensor tick) starts, not when the definitions are imported,
    and fails it with the variable's name when one is not set: a deployment states all four, no folder or
    policy is assumed. As-of and the lock timeout keep their defaults (the run's creation time, 600 s); set
    them per run in the launchpad (``resources.settings.config.as_of``).
    """
    return {
        "settings": ReporterSettings(
            exports_dir=dg.EnvVar("CR_EXPORTS_DIR"), out_dir=dg.EnvVar("CR_OUT_DIR"), policy=dg.EnvVar("CR_POLICY")
        ),
        "warehouse": Warehouse(path=dg.EnvVar("CR_WAREHOUSE")),
    }
