"""What every adapter shares: the conversion result, vendor files read as text, timestamps, canonical files written.

An adapter reads vendor files and returns a :class:`Conversion`: canonical tables (the data contract's columns as
text, unknown vendor columns kept after them), the vendor's own SLA verdicts where the export carries them, and
every vendor record it could not convert, with a reason. For each input file, records read = records converted +
records quarantined. :func:`write_conversion` writes it all as a canonical exports folder that ``run`` reads.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from compliance.core.files import file_sha256, replacing
from compliance.core.secrets import pseudonym_sql, redact_sql
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
from compliance.policy import Policy, folder_reference

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
    # canonical source -> {contract column: the vendor column(s) or reading it came from}, where the adapter
    # states it; the reading report (conversion.json ``reading``) says "derived (see notes)" for the others.
    column_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    # canonical source -> vendor columns the adapter read nothing from and did not keep (kept ones are in the table)
    ignored_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the options that shaped the conversion (conversion.json ``options``: :func:`conversion_options`), which
    # ``verify`` passes again to re-run it alike
    options: dict[str, object] = field(default_factory=dict)


def normalised_header(name: str) -> str:
    """A header as detection and the event log compare it: lower case, every run of other characters one blank."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", name.lower()).split())


@dataclass(frozen=True)
class LayoutSignature:
    """One layout a format is recognised by (``compliance.adapters.FORMATS``; :mod:`compliance.adapters.detect`).

    ``kind``: csv (``keys`` are headers), data (a raw API table CSV: keys of the JSON object in its ``data``
    column), json (keys of the document or of its first record), jsonl (keys of the first line), mbox. Every key
    must be present (compared case-insensitively; with ``loose``, as :func:`normalised_header` writes them); a
    tuple key is satisfied by any of its spellings. ``stems``: the layout is a file of one of these names
    (without extension), whatever its columns.
    """

    kind: str
    keys: tuple[str | tuple[str, ...], ...]
    variant: str
    stems: tuple[str, ...] = ()
    loose: bool = False


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
    try:
        if path.suffix.lower() == ".gz":  # a gzip-compressed export (e.g. BPI 2013's .csv.gz): read through a copy
            with _gunzipped(path) as plain:
                return _read_plain_csv(plain, path, options)
        return _read_plain_csv(path, path, options)
    except OSError as error:
        raise UnreadableFile(path, f"not a readable CSV file: {error.strerror or error}") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise UnreadableFile(path, f"not a readable gzip file: {error}") from None
    except ConversionError as error:  # polars's problem, perhaps with a UTF-8 copy: named as the input file
        raise UnreadableFile(path, str(error)) from None


@contextmanager
def _gunzipped(path: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="compliance-gunzip-") as folder:
        plain = Path(folder) / path.stem
        with gzip.open(path, "rb") as packed, plain.open("wb") as unpacked:
            shutil.copyfileobj(packed, unpacked, 1 << 20)
        yield plain


def _read_plain_csv(plain: Path, path: Path, options: dict) -> pl.DataFrame:
    """``plain`` (uncompressed) read as :func:`read_csv_text` says; the decoding is recorded for ``path``."""
    named = _named_encoding()
    encoding = named or detect_encoding(plain)
    if encoding in UTF8_CODECS:
        try:
            return _numbered(path, _polars_csv(plain, options), Decoding(encoding))
        except ConversionError:
            offset = first_invalid_utf8(plain)
            if offset is None:
                raise
            encoding = named or detect_encoding(plain, around=[offset])
    with utf8_copy(plain, encoding) as (copy, decoding):
        return _numbered(path, _polars_csv(copy, options), decoding)


def _numbered(path: Path, frame: pl.DataFrame, decoding: Decoding) -> pl.DataFrame:
    _record_decoding(path, decoding)
    frame = frame.rename({name: name.strip().lstrip("\ufeff") for name in frame.columns})
    renamed = {
        found: expected for expected, found in (_reading.get() or _NO_READING).headers.items() if found in frame.columns
    }
    if renamed:  # a mapping file's headers: the file's name for a column the format knows by another
        frame = frame.drop([name for name in renamed.values() if name in frame.columns and name not in renamed])
        frame = frame.rename(renamed)
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
    reading = _reading.get() or _NO_READING
    formats = (*reading.timestamp_formats, *formats)
    text = expr.str.strip_chars()
    named_zones: list[pl.Expr] = []
    if reading.zone_abbreviations:
        # "13:30 PDT" → "13:30 -07:00", read by the formats' %z / %#z; "13:30 PT" with PT: America/Los_Angeles,
        # the wall time read in that zone (its offset on that day)
        names = "|".join(re.escape(name) for name in sorted(reading.zone_abbreviations, key=len, reverse=True))
        abbreviation = text.str.extract(rf"(?i)\b({names})$", 1).str.to_uppercase()
        bare = text.str.replace(rf"(?i)\s*\b({names})$", "")
        reading_of = spelling_lookup_text(abbreviation, {k.upper(): v for k, v in reading.zone_abbreviations.items()})
        is_offset = reading_of.str.contains(r"^[+-]\d\d:\d\d$")
        plain = [f for f in formats if "%z" not in f and "%#z" not in f]
        for zone in sorted({v for v in reading.zone_abbreviations.values() if not re.fullmatch(r"[+-]\d\d:\d\d", v)}):
            local = pl.coalesce([bare.str.strptime(pl.Datetime("us"), f, strict=False) for f in plain])
            utc = local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
                "UTC"
            )
            named_zones.append(pl.when(reading_of == zone).then(_utc_text(utc)))
        text = pl.when(is_offset).then(pl.concat_str([bare, pl.lit(" "), reading_of])).otherwise(text)
        formats = (*formats, *(f"{f} %#z" for f in plain))
    text = text.str.replace(r"[zZ]$", "+00:00")
    with_offset = [
        text.str.strptime(pl.Datetime("us", "UTC"), f, strict=False) for f in formats if "%z" in f or "%#z" in f
    ]
    wall = [text.str.strptime(pl.Datetime("us"), f, strict=False) for f in formats if "%z" not in f and "%#z" not in f]
    candidates: list[pl.Expr] = [*named_zones, _utc_text(pl.coalesce(with_offset))] if with_offset else named_zones
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


# Abbreviations read by a mapping file's ``zone_abbreviations: common``: the North American and European
# readings (CST is US Central, not China; IST is not read: Indian, Irish and Israeli time share it).
COMMON_ZONE_ABBREVIATIONS: dict[str, str] = {
    "UTC": "+00:00",
    "GMT": "+00:00",
    "BST": "+01:00",
    "CET": "+01:00",
    "CEST": "+02:00",
    "EET": "+02:00",
    "EEST": "+03:00",
    "EST": "-05:00",
    "EDT": "-04:00",
    "CST": "-06:00",
    "CDT": "-05:00",
    "MST": "-07:00",
    "MDT": "-06:00",
    "PST": "-08:00",
    "PDT": "-07:00",
    "AKST": "-09:00",
    "AKDT": "-08:00",
    "HST": "-10:00",
}
# Duration spellings a mapping file's ``durations`` names: H:MM:SS (2:05:11), H:MM, plain numbers of seconds,
# minutes or hours, ISO-8601 durations (PT1H30M, P1DT2H).
DURATION_FORMATS = ("H:MM:SS", "H:MM", "seconds", "minutes", "hours", "iso8601")
_ISO_DURATION = r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"


def duration_seconds(expr: pl.Expr, form: str) -> pl.Expr:
    """Vendor duration text in ``form`` (one of DURATION_FORMATS) → seconds (Float64); null when unreadable."""
    value = expr.str.strip_chars()
    if form in ("seconds", "minutes", "hours"):
        number = value.cast(pl.Float64, strict=False)
        return pl.when(number >= 0).then(number * {"seconds": 1, "minutes": 60, "hours": 3600}[form])
    if form == "iso8601":
        parts = [value.str.to_uppercase().str.extract(_ISO_DURATION, group).cast(pl.Float64) for group in (1, 2, 3, 4)]
        seconds = pl.sum_horizontal(
            [part.fill_null(0) * unit for part, unit in zip(parts, (86400, 3600, 60, 1), strict=True)]
        )
        readable = value.str.to_uppercase().str.contains(_ISO_DURATION) & (value.str.len_chars() > 1)
        return pl.when(readable & ~value.str.to_uppercase().str.ends_with("T")).then(seconds)
    pattern = r"^(\d+):([0-5]\d):([0-5]\d)$" if form == "H:MM:SS" else r"^(\d+):([0-5]\d)$"
    groups = value.str.extract_groups(pattern)
    hours, minutes = groups.struct.field("1").cast(pl.Float64), groups.struct.field("2").cast(pl.Float64)
    seconds = groups.struct.field("3").cast(pl.Float64) if form == "H:MM:SS" else pl.lit(0.0)
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class Reading:
    """What a --mapping file adds to how every format reads its files (see :func:`reading_overrides`)."""

    timestamp_formats: tuple[str, ...] = ()  # tried before the format's own
    zone_abbreviations: dict[str, str] = field(default_factory=dict)  # "PDT" -> "-07:00", "PT" -> an IANA zone
    headers: dict[str, str] = field(default_factory=dict)  # header the format expects -> the file's header


_reading: ContextVar[Reading | None] = ContextVar("reading", default=None)
_NO_READING = Reading()


@contextmanager
def reading_overrides(reading: Reading) -> Iterator[None]:
    """Within the block, every adapter's timestamps and CSV headers are read with ``reading`` as well.

    A context, as :func:`vendor_encoding` is: adapters read through the functions here, so each one inherits a
    mapping file's timestamp formats, zone abbreviations and header names without passing them on.
    """
    token = _reading.set(reading)
    try:
        yield
    finally:
        _reading.reset(token)


def spelling_lookup_text(key: pl.Expr, spellings: dict[str, str]) -> pl.Expr:
    """``key`` (text) looked up in ``spellings``; null when absent (``spellings`` must not be empty)."""
    return key.replace_strict(list(spellings), list(spellings.values()), default=None, return_dtype=pl.Utf8)


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
        "reading": reading_report(conversion),
        "options": conversion.options,
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


def reading_report(conversion: Conversion) -> dict[str, dict]:
    """Per canonical table written: which vendor column fed each contract column, the vendor columns no contract
    column is read from (``ignored``: dropped, or kept after the contract's columns), and the contract columns left empty (not filled, or empty in every row), which make
    the rules needing them "not assessed"."""
    filled = filled_columns(conversion)
    report = {}
    for source_name, frame in sorted(conversion.tables.items()):
        contract = [column.name for column in SOURCES[source_name].columns]
        stated = conversion.column_sources.get(source_name, {})
        non_empty = {
            name for name in filled[source_name] if frame.height and frame.get_column(name).null_count() < frame.height
        }
        report[source_name] = {
            "columns": {name: stated.get(name, "derived by the adapter (see notes)") for name in filled[source_name]},
            "ignored": [
                *conversion.ignored_columns.get(source_name, ()),
                *(name for name in frame.columns if name not in contract and name != "source_line"),
            ],
            "empty": [name for name in contract if name not in non_empty],
        }
    return report


def input_record(
    path: Path, rows_read: int, rows_quarantined: int, variant: str = "", decoding: Decoding | None = None
) -> InputRecord:
    """The accounting of one input file; ``decoding`` for an adapter that decodes the file itself, else how the
    readers here decoded it (detected again when it was read outside a :func:`vendor_encoding` block)."""
    session = _vendor_decoding.get()
    decoding = decoding or (session.files.get(path) if session else None)
    if decoding is None and path.suffix.lower() == ".gz":  # the encoding of what it holds, not of its bytes
        with _gunzipped(path) as plain:
            decoding = Decoding(_named_encoding() or detect_encoding(plain))
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


def conversion_options(options: AdapterOptions) -> dict[str, object]:
    """The options given to a conversion that change what it writes, as conversion.json records them: the
    ``--mapping`` file (its path as the outputs name files, :func:`compliance.policy.folder_reference`, and its
    sha256), the ``--timezone`` and the ``--encoding`` named (null: not given; the policy is recorded apart).
    Call it inside the :func:`vendor_encoding` block of the conversion."""
    mapping = options.mapping
    return {
        "mapping": {"path": folder_reference(mapping), "sha256": file_sha256(mapping)} if mapping else None,
        "timezone": options.timezone or None,
        "encoding": _named_encoding(),
    }


def _redacted(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantine reasons quote vendor values and vendor IDs may hold them, either of which may be a secret or
    personal data: reasons redacted, IDs pseudonymised as the ingest's quarantine does (set-based)."""
    con = duckdb.connect()
    try:
        con.register("quarantine_rows", quarantine)
        return con.sql(
            f"SELECT * REPLACE ({pseudonym_sql('record_id')} AS record_id, {redact_sql('reason')} AS reason) "
            "FROM quarantine_rows"
        ).pl()
    finally:
        con.close()


def _write_csv(frame: pl.DataFrame, path: Path) -> Path:
    with replacing(path) as temporary:
        frame.write_csv(temporary)
    return path


# The longest duration a vendor column may state (a century): longer ones (1e26 minutes, 1e308, inf) are no
# measurement, and would overflow the microseconds a shift counts in.
MAX_DURATION_SECONDS = 100 * 366 * 86400


def bad_duration(value_text: pl.Expr, unit_seconds: float) -> pl.Expr:
    """Whether a non-empty duration text (in units of ``unit_seconds``) is not a finite, non-negative number of
    at most :data:`MAX_DURATION_SECONDS`: NaN, inf, 1e308 and words are bad, as are negative numbers."""
    number = value_text.cast(pl.Float64, strict=False)
    sane = number.is_finite() & (number >= 0) & (number * unit_seconds <= MAX_DURATION_SECONDS)
    return value_text.is_not_null() & ~sane.fill_null(False)


def shift_timestamp_text(moment_text: pl.Expr, seconds: pl.Expr, timezone: str) -> pl.Expr:
    """Canonical timestamp text (as :func:`timestamp_text` writes it) plus ``seconds`` of real time, as such text.

    UTC text (``…Z``) stays UTC. Wall-time text is read in ``timezone`` (an ambiguous one as its earlier
    instant, a nonexistent one gives null, as in :func:`timestamp_text`), moved on the real timeline (a DST change
    in between counts right) and written back as wall time in that zone; a result that is the later of two
    instants with the same wall time keeps its UTC offset (``…-05:00``), since its wall time alone reads as the
    earlier one. Null when either input is null, or when ``seconds`` is no sane duration (see :func:`bad_duration`,
    which the adapters check to quarantine such a row with its reason).
    """
    seconds = pl.when(seconds.is_finite() & (seconds.abs() <= MAX_DURATION_SECONDS)).then(seconds)
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


def python_or_json(text: str | None) -> object:
    """A cell's nested value: JSON, else a Python literal as pandas writes one with ``str()`` (``{'at': '…'}``,
    ``None``, ``True``), read with :func:`ast.literal_eval` (never ``eval``); None when it is neither."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def json_cells(column: pl.Expr) -> pl.Expr:
    """A text column whose cells hold nested values, as JSON text: JSON cells as they are, Python-literal cells
    converted (element-wise: :func:`ast.literal_eval` has no set-based form), others null."""

    def as_json(text: str) -> str | None:
        value = python_or_json(text)
        return json.dumps(value, default=str) if isinstance(value, (dict, list)) else None

    stripped = column.str.strip_chars()
    is_json = stripped.str.json_path_match("$").is_not_null()
    nested = stripped.str.starts_with("{") | stripped.str.starts_with("[")
    return (
        pl.when(is_json)
        .then(stripped)
        .when(nested)
        .then(stripped.map_elements(as_json, return_dtype=pl.Utf8, skip_nulls=True))
    )


# A mapping path into a nested value: a column (or a JSON document's top-level key), then .key / [index] steps.
NESTED_PATH = re.compile(r"^(?P<column>[^.\[]+)(?P<path>(?:\.[^.\[\]]+|\[\d+\])+)$")


def with_nested_columns(frame: pl.DataFrame, headers: Sequence[str]) -> pl.DataFrame:
    """``frame`` with a column for every header written as a path into a nested value of one of its columns
    (``data.acknowledgements[0].at``), read set-based with JSON paths; a header the frame has stays itself."""
    added = []
    for header in dict.fromkeys(headers):
        match = NESTED_PATH.match(header)
        if header in frame.columns or not match or match["column"] not in frame.columns:
            continue
        path = "$" + match["path"]
        added.append(json_cells(pl.col(match["column"])).str.json_path_match(path).alias(header))
    return frame.with_columns(added) if added else frame


def read_json_records(path: Path) -> pl.DataFrame:
    """A JSON document (a list of records, or an object holding one list of them, as API responses do) or JSON
    lines as a frame: one row per record, its scalar values as text and its nested values as JSON text, so that
    mapping paths (``acknowledgements[0].at``) reach into them; ``source_line`` is the record's position."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        text = read_text_document(path)
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ConversionError(f"not JSON lines: {error.msg}") from None
    else:
        document = read_json_document(path)
        lists = [value for value in document.values() if isinstance(value, list)] if isinstance(document, dict) else []
        records = document if isinstance(document, list) else lists[0] if len(lists) == 1 else None
        if records is None:
            raise ConversionError("not a list of records, nor an object holding one list of them")
    rows = [
        {
            key: json.dumps(value) if isinstance(value, (dict, list)) else json_text(value)
            for key, value in (record.items() if isinstance(record, dict) else ())
        }
        for record in records
    ]
    return records_frame(rows, range(1, len(rows) + 1))


def records_frame(records: Sequence[dict[str, str | None]], lines: Sequence[int]) -> pl.DataFrame:
    """Flattened vendor records (text values) as an all-text frame with ``source_line`` (a record's line or position)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    frame = pl.DataFrame(
        {name: [record.get(name) for record in records] for name in names}, schema={name: pl.Utf8 for name in names}
    )
    return frame.with_columns(pl.Series("source_line", list(lines), dtype=pl.Int64))
