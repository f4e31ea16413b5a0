"""One Great Expectations worker process per main process, so that the main process never imports GX.

Importing Great Expectations costs a fresh process about 3 s (it imports scipy, altair, sqlalchemy, pandas, ...).
A CLI run calls :func:`start` before it loads the Dagster definitions: the worker, a ``multiprocessing`` *spawn*
child (the main process holds DuckDB and Dagster threads: it is never forked), imports GX, pandas and
``compliance.expectations`` on the other core while the run stages the exports, then serves requests over a
``multiprocessing`` Pipe. A thread would not do: importing is Python code, and the GIL would share one core.

Contract:

- :func:`call` runs a function of ``compliance.expectations`` (named, with picklable arguments) and returns its
  result; an exception it raises is raised again here with the same type and message (as a ``RuntimeError``
  naming its type when it cannot be pickled, or when its class is Great Expectations', which the main process does
  not import).
- :func:`stream` runs a function of ``compliance.expectations`` that returns a handler, then the handler on each
  Arrow table of a stream, sent as Arrow IPC bytes; the worker validates one table while this process reads the
  next one from DuckDB. The answers come back in order, with the key each table came with.
- The first request starts the worker if :func:`start` did not (a Dagster UI run and a test take the same path);
  ``CR_GX_WORKER=off`` (default ``on``) does every request in this process instead.
- A worker that cannot be started, dies during a request or hangs (no answer in ten minutes), is logged once as a
  warning and the request is done in this process, from the first unanswered table of a stream: a run never fails
  because of the worker. A worker that died is started again at the next request; one that could not be started is
  not tried again until :func:`stop`.
- :func:`stop` ends the worker and reaps it; it also runs at interpreter exit (``atexit``; a process that ends by
  ``os._exit``, as the CLI does, calls it itself). The worker exits by itself when its pipe closes, so a parent
  that dies leaves no orphan.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import pyarrow as pa

log = logging.getLogger(__name__)

# The module whose functions the worker serves. Reached by name, not imported here: compliance.expectations imports
# this module to send its requests, and the import graph stays without a cycle.
SERVED_MODULE = "compliance.expectations"
SETTING = "CR_GX_WORKER"
_SETTING_VALUES = ("on", "off")
# Exceptions of these packages are sent back as RuntimeError: unpickling one would import its package here.
_NOT_IMPORTED_HERE = ("great_expectations",)
_STOP_SECONDS = 5.0
# A worker that has not answered in this long is stopped and the request done here: its import takes seconds and a
# chunk of a million rows a few more, so only a worker that hangs waits this long.
_ANSWER_SECONDS = 600.0

_lock = threading.RLock()  # one request at a time on the pipe
_process: multiprocessing.process.BaseProcess | None = None
_connection: Connection | None = None
_unavailable = False  # the worker could not be started: every request is done here until stop()
_in_worker = False  # True in the worker itself, where a request is simply a call
_stop_at_exit = False


class _WorkerGone(Exception):
    """The pipe to the worker broke: it died, or was stopped."""


def _enabled() -> bool:
    value = os.environ.get(SETTING, "on").strip().lower()
    if value not in _SETTING_VALUES:
        raise ValueError(f"{SETTING}={value!r}: expected one of {', '.join(_SETTING_VALUES)}")
    return value == "on"


@contextlib.contextmanager
def _parent_main_hidden() -> Iterator[None]:
    """Spawn runs the parent's ``__main__`` again in the child (as ``__mp_main__``) unless it cannot find it. The
    worker needs nothing of it, and a script that calls the CLI without an ``if __name__ == "__main__"`` guard
    would start a second run there, which would wait for the first one's warehouse."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


def start() -> None:
    """Start the worker if it is not running (idempotent); returns at once, while the worker imports GX."""
    global _process, _connection, _unavailable, _stop_at_exit
    with _lock:
        if _process is not None or _unavailable or _in_worker or not _enabled():
            return  # running, or requests are done in this process
        try:
            context = multiprocessing.get_context("spawn")
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end,), name="great-expectations-worker", daemon=True)
            with _parent_main_hidden():
                process.start()
        except Exception as error:  # e.g. a daemonic process, which may not have children
            _unavailable = True
            log.warning("Great Expectations worker not started (%s); validating in this process", error)
            return
        child_end.close()  # the worker's end lives in the worker alone: its death is our end's EOF
        _process, _connection = process, parent_end
        if not _stop_at_exit:
            atexit.register(stop)
            _stop_at_exit = True


def stop() -> None:
    """End the worker and wait for it; the next request (or :func:`start`) starts a new one."""
    global _unavailable
    with _lock:
        _unavailable = False
        _end_worker()


def worker_pid() -> int | None:
    """The worker's process id, None when it is not running."""
    return _process.pid if _process is not None else None


def _end_worker() -> None:
    global _process, _connection
    process, connection = _process, _connection
    _process = _connection = None
    if connection is not None:
        connection.close()  # the worker's recv ends with EOF, and it exits
    if process is not None:
        # Without waiting for an EOF the worker reads only once it has imported GX: it exits on SIGTERM as on EOF.
        process.terminate()
        process.join(_STOP_SECONDS)
        if process.is_alive():  # a signal waits while C code runs; nothing is lost by not waiting longer
            process.kill()
            process.join(_STOP_SECONDS)


def _worker_connection() -> Connection | None:
    """The pipe to a running worker, started if need be; None when requests are done in this process."""
    if not _enabled():
        return None
    start()
    return _connection


def _lost(error: BaseException | None) -> None:
    log.warning("Great Expectations worker stopped answering (%r); validating in this process", error)
    _end_worker()


def _served(function: str) -> Callable:
    return getattr(importlib.import_module(SERVED_MODULE), function)


def call(function: str, *args: Any) -> Any:
    """``compliance.expectations.<function>(*args)``, in the worker (module docstring)."""
    with _lock:
        connection = _worker_connection()
        if connection is not None:
            try:
                _send(connection, ("call", function, args))
                return _answer(_receive(connection))
            except _WorkerGone as gone:
                _lost(gone.__cause__)
    return _served(function)(*args)


def stream(function: str, args: tuple, items: Iterable[tuple[Any, pa.Table]]) -> list[tuple[Any, Any]]:
    """``handler = compliance.expectations.<function>(*args)``, then ``(key, handler(table))`` for each
    ``(key, table)`` of ``items``, in order, in the worker (module docstring). At most two tables are held here at
    once: the one the worker validates and the next one."""
    items = iter(items)
    answered: list[tuple[Any, Any]] = []
    unanswered: deque[tuple[Any, pa.Table]] = deque()
    with _lock:
        connection = _worker_connection()
        if connection is not None:
            try:
                return _stream_in_worker(connection, function, args, items, answered, unanswered)
            except _WorkerGone as gone:
                _lost(gone.__cause__)
    handler = _served(function)(*args)
    return answered + [(key, handler(table)) for source in (unanswered, items) for key, table in source]


def _stream_in_worker(connection, function, args, items, answered, unanswered) -> list[tuple[Any, Any]]:
    """The stream over the pipe; on a broken pipe, ``answered`` and ``unanswered`` say where it stopped."""
    _send(connection, ("stream", function, args))
    owed = 0  # the answers the worker still owes for the tables sent
    try:
        for key, table in items:
            unanswered.append((key, table))
            _send_table(connection, table)
            owed += 1
            if len(unanswered) > 1:  # the worker has the next table: take the answer to the one before
                reply = _receive(connection)
                owed -= 1
                answered.append((unanswered[0][0], _answer(reply)))
                unanswered.popleft()
        while unanswered:
            reply = _receive(connection)
            owed -= 1
            answered.append((unanswered[0][0], _answer(reply)))
            unanswered.popleft()
    except _WorkerGone:
        raise
    except BaseException:
        # An error in reading the tables here, or raised by the worker: end the stream and take the answers still
        # owed, so that the worker waits for the next request.
        _end_stream(connection, owed)
        raise
    _send_bytes(connection, b"")
    _answer(_receive(connection))
    return answered


def _end_stream(connection: Connection, owed: int) -> None:
    try:
        _send_bytes(connection, b"")
        for _ in range(owed + 1):  # the answers owed, then the end's own
            _receive(connection)
    except _WorkerGone as gone:
        _lost(gone.__cause__)


def _send(connection: Connection, message: Any) -> None:
    try:
        connection.send(message)
    except OSError as error:
        raise _WorkerGone from error


def _send_bytes(connection: Connection, data) -> None:
    try:
        connection.send_bytes(data)
    except OSError as error:
        raise _WorkerGone from error


def _send_table(connection: Connection, table: pa.Table) -> None:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    _send_bytes(connection, sink.getvalue())


def _receive(connection: Connection) -> tuple:
    try:
        if not connection.poll(_ANSWER_SECONDS):
            raise TimeoutError(f"no answer in {_ANSWER_SECONDS:g} s")
        return connection.recv()
    except (EOFError, OSError) as error:  # TimeoutError is an OSError
        raise _WorkerGone from error


def _answer(reply: tuple) -> Any:
    """A reply's value, or its exception raised again."""
    if reply[0] == "ok":
        return reply[1]
    _, pickled, type_name, message = reply
    try:
        error = pickle.loads(pickled) if pickled is not None else None
    except Exception:
        error = None
    if error is None:
        error = RuntimeError(f"{type_name}: {message}")
    error.add_note("(raised in the Great Expectations worker)")
    raise error


# --------------------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------------------
def _serve(connection: Connection) -> None:
    """The worker's loop: import what the requests need and warm them up (``warm_up`` of the served module), then
    answer until the pipe closes."""
    global _in_worker
    _in_worker = True
    # Ctrl-C reaches the whole process group: the main process handles it (and stops the worker), the worker
    # prints nothing. SIGTERM (stop()) ends the worker at once, even while it imports, as the end of its pipe does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _exit_worker())
    served = importlib.import_module(SERVED_MODULE)
    import great_expectations  # noqa: F401  the point of the worker: imported before the first request
    import pandas  # noqa: F401
    import pyarrow as pa

    try:
        served.warm_up()
    except Exception:  # only a head start: a real request that fails the same way reports it
        pass
    while True:
        try:
            kind, function, args = connection.recv()
            if kind == "call":
                connection.send(_reply(getattr(served, function), *args))
                continue
            # "stream": the handler, then one answer per table until an empty message, then the end's answer
            handler = _reply(getattr(served, function), *args)
            while data := connection.recv_bytes():
                if handler[0] == "ok":
                    connection.send(_reply(handler[1], pa.ipc.open_stream(pa.py_buffer(data)).read_all()))
                else:
                    connection.send(handler)
            connection.send(handler if handler[0] == "error" else ("ok", None))
        except (EOFError, OSError):  # the main process closed the pipe, or died: nothing left to serve
            break
    _exit_worker()


def _exit_worker() -> None:
    """What a multiprocessing child does when its target returns (finalizers: a semaphore made by a GX dependency
    unlinked, else the resource tracker warns of a leak on the main process's stderr), without the interpreter's
    teardown of GX's modules, which would keep stop() waiting a second or two."""
    multiprocessing.util._exit_function()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _reply(function: Callable, *args: Any) -> tuple:
    """``("ok", function(*args))``, or ``("error", pickled exception or None, type name, message)``."""
    try:
        return ("ok", function(*args))
    except Exception as error:
        pickled = None
        if type(error).__module__.split(".")[0] not in _NOT_IMPORTED_HERE:
            try:
                pickled = pickle.dumps(error)
            except Exception:
                pickled = None
        return ("error", pickled, f"{type(error).__module__}.{type(error).__qualname__}", str(error))


__all__ = ["SETTING", "call", "start", "stop", "stream", "worker_pid"]
