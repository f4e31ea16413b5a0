"""What every adapter shares: the conversion result, vendor files read as text, timestamps, canonical files written.

An adapter reads vendor files and returns a :class:`Conversion`: canonical tables (the data contract's columns as
text, unknown vendor columns kept after them), the vendor's own SLA verdicts where the export carries them, and
every vendor record it could not convert, with a reason. For each input file, records read = records converted +
records quarantined. :func:`write_conversion` writes it all as a canonical exports folder that ``run`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from compliance.core.files import file_sha256, replacing
from compliance.core.secrets import redact_sql
from compliance.ingest.contract import QUARANTINE_SCHEMA, SOURCES
from compliance.ingest.encodings import (
    UTF8_CODECS,
    Decoding,
    codec_name,
    decode_bytes,
    detect_encoding,
    first_invalid_utf8,
    guess_encoding,
    utf8_copy,
)
from compliance.ingest.landing import CONVERSION_LOG, CONVERSION_QUARANTINE
from compliance.policy import Policy

VENDOR_SLA = "vendor_sla.csv"
# One row per record × metric where the vendor states its own verdict or due time.
#   source: the canonical source of the record (tickets, incidents, privacy_requests);
#   metric: first_response | resolution | acknowledgement;
#   vendor_due_at: the vendor's due instant (ISO-8601), when it states one;
#   vendor_met: true / false / empty (the vendor gives no verdict);
#   vendor_status: the vendor's own words (e.g. "Within SLA", "OVERDUE", "-1:30");
#   vendor_field: the vendor column(s) it came from.
VENDOR_SLA_COLUMNS = ("record_id", "source", "metric", "vendor_due_at", "vendor_met", "vendor_status", "vendor_field")
QUARANTINE_COLUMNS = tuple(QUARANTINE_SCHEMA)
_UTC_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_UTC_MICROSECONDS = "%Y-%m-%dT%H:%M:%S%.6fZ"


class ConversionError(Exception):
    """A whole input file cannot be converted; the message is one line naming the problem (not the file)."""


class UnreadableFile(ConversionError):
    """A vendor file that cannot be read as CSV or JSON at all; ``path`` names it, the message says why.

    Raised by the readers (``read_csv_text``, ``read_json_document``), so that whoever reports it can name the
    file whether or not the adapter in between added its name to the message.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(problem)
        self.path = path


@dataclass(frozen=True)
class AdapterOptions:
    # IANA zone of vendor timestamps written without an offset. None keeps them without an offset, so that the
    # run reads them in the policy's ``source_timezone`` (recorded in the manifest).
    timezone: str | None = None
    mapping: Path | None = None  # the --mapping FILE.yaml of the ``mapping`` format
    policy: Policy | None = None  # for adapters that need the policy's vocabulary (mailboxes, keyword rules)


@dataclass(frozen=True)
class InputRecord:
    """Accounting of one vendor input file."""

    file: str
    sha256: str
    rows_read: int
    rows_converted: int
    rows_quarantined: int
    variant: str = ""  # which layout of the format was recognised, e.g. "csv export" or "api json"
    encoding: str = ""  # the text encoding it was read in (compliance.ingest.encodings)
    replaced_characters: int = 0  # characters that did not decode in it and became U+FFFD (the records are kept)


@dataclass
class Conversion:
    format: str
    format_version: str  # the vendor layout and its version, e.g. "statuspage v2 incidents.json"
    tables: dict[str, pl.DataFrame]  # canonical source name -> rows (text columns)
    quarantine: pl.DataFrame  # QUARANTINE_COLUMNS
    inputs: list[InputRecord]
    vendor_sla: pl.DataFrame | None = None  # VENDOR_SLA_COLUMNS
    notes: list[str] = field(default_factory=list)  # readings the adapter applied, for the manifest
    # canonical source -> the contract columns the adapter fills. A table without an entry is declared to fill
    # the contract columns it holds; an adapter that writes a column it cannot fill (always empty) leaves it out,
    # so that the run reports the rules needing it "not assessed" instead of judging every record as "not yet".
    filled_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Adapter:
    name: str
    description: str  # one line for `compliance-report convert --help` and the README
    convert: Callable[[list[Path], AdapterOptions], Conversion]


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source_file": pl.Utf8,
            "line": pl.Int64,
            "record_id": pl.Utf8,
            "reason_code": pl.Utf8,
            "reason": pl.Utf8,
        }
    )


@dataclass
class _VendorDecoding:
    encoding: str | None  # --encoding; None: detected per file
    files: dict[Path, Decoding] = field(default_factory=dict)  # how each file read so far was decoded


_vendor_decoding: ContextVar[_VendorDecoding | None] = ContextVar("vendor_decoding", default=None)


@contextmanager
def vendor_encoding(encoding: str | None) -> Iterator[None]:
    """Within the block, vendor files are read in ``encoding`` (else detected per file) and each one's
    :class:`InputRecord` names the encoding and the characters that did not decode.

    A context rather than an adapter option: every adapter reads its files through the functions here, and none
    of them has to pass the setting on or report back.
    """
    token = _vendor_decoding.set(_VendorDecoding(codec_name(encoding) if encoding else None))
    try:
        yield
    finally:
        _vendor_decoding.reset(token)


def _named_encoding() -> str | None:
    session = _vendor_decoding.get()
    return session.encoding if session else None


def _record_decoding(path: Path, decoding: Decoding) -> None:
    session = _vendor_decoding.get()
    if session is not None:
        session.files[path] = decoding


def read_csv_text(path: Path, **options) -> pl.DataFrame:
    """A vendor CSV with every column as text and ``source_line`` (the header is line 1, each record one line).

    Header names are stripped of surrounding blanks; a file polars cannot read raises ConversionError. A UTF-8
    file is read by polars itself; any other through a UTF-8 copy where bytes that do not decode are U+FFFD
    (counted). Bytes that are not UTF-8 beyond what detection sampled make polars fail: the file is then
    detected again around the first of them and read through a copy.
    """
    named = _named_encoding()
    try:
        encoding = named or detect_encoding(path)
        if encoding in UTF8_CODECS:
            try:
                return _numbered(path, _polars_csv(path, options), Decoding(encoding))
            except ConversionError:
                offset = first_invalid_utf8(path)
                if offset is None:
                    raise
                encoding = named or detect_encoding(path, around=[offset])
        with utf8_copy(path, encoding) as (copy, decoding):
            return _numbered(path, _polars_csv(copy, options), decoding)
    except OSError as error:
        raise UnreadableFile(path, f"not a readable CSV file: {error.strerror or error}") from None
    except ConversionError as error:  # polars's problem, perhaps with a UTF-8 copy: named as the input file
        raise UnreadableFile(path, str(error)) from None


def _numbered(path: Path, frame: pl.DataFrame, decoding: Decoding) -> pl.DataFrame:
    _record_decoding(path, decoding)
    frame = frame.rename({name: name.strip().lstrip("\ufeff") for name in frame.columns})
    return frame.with_row_index("source_line", offset=2).with_columns(pl.col("source_line").cast(pl.Int64))


def _polars_csv(path: Path, options: dict) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False, encoding="utf8", **options)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as error:
        raise ConversionError(f"not a readable CSV file: {str(error).splitlines()[0]}") from None


def timestamp_text(expr: pl.Expr, formats: Sequence[str], timezone: str | None) -> pl.Expr:
    """Vendor timestamp text → canonical ISO-8601 text; null when the text is empty or matches no format.

    ``formats`` are chrono formats tried in order. A format with ``%z``/``%#z`` reads an offset (a trailing ``Z``
    is accepted as +00:00) and yields UTC with ``Z``. A format without one yields wall time: converted to UTC in
    ``timezone`` when given (a wall time skipped by a DST change gives null; an ambiguous one, the earlier
    instant), else written without an offset for the run to read in the policy's ``source_timezone``.
    """
    text = expr.str.strip_chars().str.replace(r"[zZ]$", "+00:00")
    with_offset = [
        text.str.strptime(pl.Datetime("us", "UTC"), f, strict=False) for f in formats if "%z" in f or "%#z" in f
    ]
    wall = [text.str.strptime(pl.Datetime("us"), f, strict=False) for f in formats if "%z" not in f and "%#z" not in f]
    candidates: list[pl.Expr] = [_utc_text(pl.coalesce(with_offset))] if with_offset else []
    if wall:
        local = pl.coalesce(wall)
        if timezone:
            utc = local.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
                "UTC"
            )
            candidates.append(_utc_text(utc))
        else:
            candidates.append(local.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return pl.coalesce(candidates)


def _utc_text(moment: pl.Expr) -> pl.Expr:
    return (
        pl.when(moment.dt.microsecond() == 0)
        .then(moment.dt.strftime(_UTC_SECONDS))
        .otherwise(moment.dt.strftime(_UTC_MICROSECONDS))
    )


# ISO-8601 with or without an offset, "T" or a blank between date and time, optional fractional seconds.
ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


@dataclass(frozen=True)
class Check:
    """A row is quarantined when ``bad`` is true; ``message`` is a text expression naming the column and value."""

    bad: pl.Expr
    reason_code: str  # the ingest's codes: bad_timestamp, missing_value, unknown_value, bad_number, duplicate_id, …
    message: pl.Expr


def split_checked(
    frame: pl.DataFrame, checks: Sequence[Check], source_file: str, record_id: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows passing every check, quarantine rows with the first failing check's reason), set-based."""
    if not checks:
        return frame, empty_quarantine()
    code = pl.coalesce([pl.when(check.bad.fill_null(False)).then(pl.lit(check.reason_code)) for check in checks])
    message = pl.coalesce([pl.when(check.bad.fill_null(False)).then(check.message) for check in checks])
    marked = frame.with_columns(code.alias("_reason_code"), message.alias("_reason"))
    failed = marked.filter(pl.col("_reason_code").is_not_null())
    quarantine = failed.select(
        pl.lit(source_file).alias("source_file"),
        pl.col("source_line").cast(pl.Int64).alias("line"),
        pl.col(record_id).cast(pl.Utf8).alias("record_id"),
        pl.col("_reason_code").alias("reason_code"),
        pl.col("_reason").cast(pl.Utf8).alias("reason"),
    )
    passed = marked.filter(pl.col("_reason_code").is_null()).drop("_reason_code", "_reason")
    return passed, quarantine


def bad_timestamp(column: str, parsed: pl.Expr, label: str | None = None) -> Check:
    """A non-empty vendor value in ``column`` that ``parsed`` (its timestamp_text) could not read."""
    raw = pl.col(column).str.strip_chars()
    return Check(
        bad=(raw.str.len_chars() > 0) & parsed.is_null(),
        reason_code="bad_timestamp",
        message=pl.format("{}: not a timestamp this format knows: {}", pl.lit(label or column), raw),
    )


def write_conversion(conversion: Conversion, out_dir: Path) -> list[Path]:
    """Write the canonical exports folder: ``<source>.csv`` per table, vendor verdicts, quarantine, conversion log."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source_name, frame in sorted(conversion.tables.items()):
        contract = [column.name for column in SOURCES[source_name].columns]
        ordered = [name for name in contract if name in frame.columns] + [
            name for name in frame.columns if name not in contract and name != "source_line"
        ]
        written.append(_write_csv(frame.select(ordered), out_dir / f"{source_name}.csv"))
    if conversion.vendor_sla is not None:
        written.append(_write_csv(conversion.vendor_sla.select(VENDOR_SLA_COLUMNS), out_dir / VENDOR_SLA))
    written.append(
        _write_csv(_redacted(conversion.quarantine.select(QUARANTINE_COLUMNS)), out_dir / CONVERSION_QUARANTINE)
    )
    log = {
        "format": conversion.format,
        "format_version": conversion.format_version,
        "inputs": [asdict(record) for record in conversion.inputs],
        "outputs": [path.name for path in written],
        "notes": conversion.notes,
        "filled_columns": filled_columns(conversion),
    }
    with replacing(out_dir / CONVERSION_LOG) as temporary:
        temporary.write_text(json.dumps(log, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [*written, out_dir / CONVERSION_LOG]


def filled_columns(conversion: Conversion) -> dict[str, list[str]]:
    """Per canonical table written, the contract columns the adapter fills (its declaration, in contract order)."""
    declared = {}
    for source_name, frame in sorted(conversion.tables.items()):
        filled = conversion.filled_columns.get(source_name, frame.columns)
        declared[source_name] = [
            column.name
            for column in SOURCES[source_name].columns
            if column.name in filled and column.name in frame.columns
        ]
    return declared


def input_record(
    path: Path, rows_read: int, rows_quarantined: int, variant: str = "", decoding: Decoding | None = None
) -> InputRecord:
    """The accounting of one input file; ``decoding`` for an adapter that decodes the file itself, else how the
    readers here decoded it (detected again when it was read outside a :func:`vendor_encoding` block)."""
    session = _vendor_decoding.get()
    decoding = decoding or (session.files.get(path) if session else None)
    if decoding is None:
        decoding = Decoding(_named_encoding() or detect_encoding(path))
    return InputRecord(
        path.name,
        file_sha256(path),
        rows_read,
        rows_read - rows_quarantined,
        rows_quarantined,
        variant,
        decoding.encoding,
        decoding.replaced,
    )


def _redacted(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantine reasons quote vendor values, which may be secrets or personal data: redacted, set-based."""
    con = duckdb.connect()
    try:
        con.register("quarantine_rows", quarantine)
        return con.sql(f"SELECT * REPLACE ({redact_sql('reason')} AS reason) FROM quarantine_rows").pl()
    finally:
        con.close()


def _write_csv(frame: pl.DataFrame, path: Path) -> Path:
    with replacing(path) as temporary:
        frame.write_csv(temporary)
    return path


def shift_timestamp_text(moment_text: pl.Expr, seconds: pl.Expr, timezone: str) -> pl.Expr:
    """Canonical timestamp text (as :func:`timestamp_text` writes it) plus ``seconds`` of real time, as such text.

    UTC text (``…Z``) stays UTC. Wall-time text is read in ``timezone`` (an ambiguous one as its earlier
    instant, a nonexistent one gives null, as in :func:`timestamp_text`), moved on the real timeline (a DST change
    in between counts right) and written back as wall time in that zone; a result that is the later of two
    instants with the same wall time keeps its UTC offset (``…-05:00``), since its wall time alone reads as the
    earlier one. Null when either input is null.
    """
    is_utc = moment_text.str.ends_with("Z")
    utc = moment_text.str.replace(r"Z$", "+00:00").str.strptime(
        pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False
    )
    wall = (
        moment_text.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)
        .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    moved = pl.when(is_utc).then(utc).otherwise(wall) + pl.duration(
        microseconds=(seconds * 1_000_000).round(0).cast(pl.Int64)
    )
    local = moved.dt.convert_time_zone(timezone)
    wall_text = local.dt.strftime("%Y-%m-%dT%H:%M:%S")
    read_back = wall_text.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False).dt.replace_time_zone(
        timezone, ambiguous="earliest", non_existent="null"
    )
    wall_text = (
        pl.when(read_back == local.dt.truncate("1s"))
        .then(wall_text)
        .otherwise(local.dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
    )
    return pl.when(is_utc).then(_utc_text(moved)).otherwise(wall_text)


def read_text_document(path: Path) -> str:
    """A whole vendor text file decoded (in --encoding, else detected); bytes that do not decode are U+FFFD."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableFile(path, f"cannot be read: {error.strerror or error}") from None
    text, decoding = decode_bytes(data, _named_encoding() or guess_encoding(data))
    _record_decoding(path, decoding)
    return text


def read_json_document(path: Path) -> object:
    """A whole JSON file parsed; a file that is not JSON raises ConversionError naming the first problem."""
    try:
        return json.loads(read_text_document(path))
    except json.JSONDecodeError as error:
        raise UnreadableFile(path, f"not a JSON document: {error.msg} at line {error.lineno}") from None
    except RecursionError:
        raise UnreadableFile(path, "not a usable JSON document: nested too deeply") from None


def json_text(value: object) -> str | None:
    """A JSON scalar as canonical text (true/false for booleans); None for null and for nested values."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def records_frame(records: Sequence[dict[str, str | None]], lines: Sequence[int]) -> pl.DataFrame:
    """Flattened vendor records (text values) as an all-text frame with ``source_line`` (a record's line or position)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    frame = pl.DataFrame(
        {name: [record.get(name) for record in records] for name in names}, schema={name: pl.Utf8 for name in names}
    )
    return frame.with_columns(pl.Series("source_line", list(lines), dtype=pl.Int64))
