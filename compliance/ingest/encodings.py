"""Text encodings of export files: which codec a file is written in, and a UTF-8 copy of a file that is not UTF-8.

Detection reads samples, never the whole file: the head and a chunk from the middle (1 MiB each), plus small
windows around byte offsets the caller already knows to be suspect. In that order:

1. a byte order mark: UTF-8 (``utf-8-sig``), UTF-16 (``utf-16``; LE or BE, the BOM says which), UTF-32;
2. a head that is a quarter NUL bytes or more: UTF-16 without a BOM (LE or BE by where the NULs are);
3. samples that decode as UTF-8, or whose valid multi-byte characters outnumber their undecodable sequences
   (a UTF-8 file with a few damaged bytes): ``utf-8``;
4. otherwise charset-normalizer's best guess among :data:`LEGACY_CANDIDATES` (cp1252, gb18030). When the
   samples hold bytes that neither decodes (a damaged file), charset-normalizer offers none: the candidate whose
   text, bytes replaced, reads least like noise by charset-normalizer's own measure (its mess ratio, plus the
   share of replaced characters) is taken; on a tie, cp1252. Latin-1 text is read as cp1252, which decodes every
   Latin-1 letter the same way.

Every step looks at the same bytes for the same file, so a file always gets the same answer. A byte that does not
decode in the chosen codec becomes U+FFFD and is counted (``Decoding.replaced``); the text around it is kept.
"""

from __future__ import annotations

import codecs
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

UTF8_CODECS = ("utf-8", "utf-8-sig")  # codecs whose files DuckDB and polars read themselves
LEGACY_CANDIDATES = ("cp1252", "gb18030")
REPLACEMENT_CHARACTER = "\ufffd"
SAMPLE_BYTES = 1 << 20
WINDOW_BYTES = 4096  # around a known suspect offset
MAX_WINDOWS = 16
_CHUNK_BYTES = 1 << 20  # streamed transcoding and validation
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_COUNTED_REPLACE = "compliance-replace-and-count"
_replacements: ContextVar[list[int] | None] = ContextVar("replacements", default=None)


@dataclass(frozen=True)
class Decoding:
    """How one file was read."""

    encoding: str  # Python codec name, one that --encoding accepts: utf-8, utf-8-sig, utf-16, cp1252, gb18030…
    replaced: int = 0  # characters that did not decode and became U+FFFD


def _replace_and_count(error: UnicodeError) -> tuple[str, int]:
    counter = _replacements.get()
    if counter is not None:
        counter[0] += 1
    return REPLACEMENT_CHARACTER, error.end  # type: ignore[attr-defined]


codecs.register_error(_COUNTED_REPLACE, _replace_and_count)


@contextmanager
def _counting() -> Iterator[list[int]]:
    """A counter of the replacements made by decoders with errors=_COUNTED_REPLACE in this block."""
    counter = [0]
    token = _replacements.set(counter)
    try:
        yield counter
    finally:
        _replacements.reset(token)


def codec_name(name: str) -> str:
    """Python's canonical name of a text codec (``CP1252`` → ``cp1252``); LookupError when there is none."""
    info = codecs.lookup(name.strip())
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib…: byte-to-byte codecs, not text encodings
        raise LookupError(f"{name} is not a text encoding")
    return info.name


def decode_bytes(data: bytes, encoding: str) -> tuple[str, Decoding]:
    """``data`` decoded with ``encoding`` (a leading BOM dropped), undecodable bytes replaced, and how."""
    with _counting() as counter:
        text = data.decode(encoding, errors=_COUNTED_REPLACE)
    return text.removeprefix("\ufeff"), Decoding(encoding, counter[0])


def guess_encoding(data: bytes) -> str:
    """The encoding of text held in memory (an e-mail header or body, a JSON document), by the rules above."""
    middle = len(data) // 2
    samples = [data[:SAMPLE_BYTES]]
    if len(data) > 2 * SAMPLE_BYTES:
        samples.append(_whole_lines(data[middle : middle + SAMPLE_BYTES], at_start=False, at_end=False))
    return _decide(samples)


def detect_encoding(path: Path, around: Sequence[int] = ()) -> str:
    """The encoding of a file, from its head, a chunk from its middle and windows ``around`` the given offsets."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
        samples = [_whole_lines(head, at_start=True, at_end=len(head) == size)]
        starts = [size // 2] if size > 2 * SAMPLE_BYTES else []
        windows = [(start, SAMPLE_BYTES) for start in starts]
        windows += [(max(0, offset - WINDOW_BYTES // 2), WINDOW_BYTES) for offset in list(around)[:MAX_WINDOWS]]
        for start, length in windows:
            handle.seek(start)
            chunk = handle.read(length)
            samples.append(_whole_lines(chunk, at_start=start == 0, at_end=start + len(chunk) >= size))
    bom = _bom(head)
    return bom or _decide(samples, head)


def first_invalid_utf8(path: Path) -> int | None:
    """Byte offset of the first sequence that is not UTF-8, or None when the whole file is UTF-8 (streamed)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            pending = len(decoder.getstate()[0])  # bytes of a character split by the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                return offset - pending + error.start
            if not chunk:
                return None
            offset += len(chunk)


@contextmanager
def utf8_copy(path: Path, encoding: str) -> Iterator[tuple[Path, Decoding]]:
    """A temporary UTF-8 copy of a file written in ``encoding`` (streamed; BOM dropped; deleted after the block).

    The copy goes to the system temporary folder (``TMPDIR``); an undecodable byte becomes U+FFFD and is counted.
    """
    handle, name = tempfile.mkstemp(prefix=".decoded-", suffix=path.suffix)
    try:
        with _counting() as counter, os.fdopen(handle, "wb") as copy, path.open("rb") as original:
            decoder = codecs.getincrementaldecoder(encoding)(errors=_COUNTED_REPLACE)
            started = False
            while True:
                chunk = original.read(_CHUNK_BYTES)
                text = decoder.decode(chunk, final=not chunk)
                if not started and text:
                    text, started = text.removeprefix("\ufeff"), True
                copy.write(text.encode("utf-8"))
                if not chunk:
                    break
            decoding = Decoding(encoding, counter[0])
        yield Path(name), decoding
    finally:
        os.unlink(name)


def _bom(head: bytes) -> str | None:
    return next((encoding for bom, encoding in _BOMS if head.startswith(bom)), None)


def _whole_lines(chunk: bytes, at_start: bool, at_end: bool) -> bytes:
    """A sample cut at line ends, so that no multi-byte character is split (a newline byte is never part of
    one in UTF-8, cp1252 or GB18030)."""
    if not at_start:
        chunk = chunk[chunk.find(b"\n") + 1 :] if b"\n" in chunk else b""
    if not at_end:
        chunk = chunk[: chunk.rfind(b"\n") + 1] if b"\n" in chunk else b""
    return chunk


def _decide(samples: list[bytes], head: bytes | None = None) -> str:
    head = samples[0] if head is None else head
    bom = _bom(head)
    if bom:
        return bom
    if head and head.count(0) * 4 >= len(head):
        # ASCII text in UTF-16: every other byte is NUL, after the character (LE) or before it (BE).
        odd_nuls = head[1::2].count(0)
        return "utf-16-le" if odd_nuls * 2 >= head.count(0) else "utf-16-be"
    sample = b"\n".join(samples)
    with _counting() as counter:
        text = sample.decode("utf-8", errors=_COUNTED_REPLACE)
    undecodable = counter[0]
    multi_byte = len(text) - len(text.encode("ascii", errors="ignore")) - undecodable
    if undecodable == 0 or multi_byte > undecodable:
        return "utf-8"
    best = from_bytes(sample, cp_isolation=list(LEGACY_CANDIDATES)).best()
    if best is not None:
        return codec_name(best.encoding)
    return min(LEGACY_CANDIDATES, key=lambda candidate: _noise(sample, candidate))


def _noise(sample: bytes, encoding: str) -> float:
    with _counting() as counter:
        text = sample.decode(encoding, errors=_COUNTED_REPLACE)
    return mess_ratio(text, 1.0) + counter[0] / max(len(text), 1)
