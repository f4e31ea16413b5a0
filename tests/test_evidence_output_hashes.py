"""The hashes the manifest names (issue 19): a published file still the version it was hashed as is not read again,
and any other version of it, even one of the same size given back its modification time, is read and hashed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import compliance.evidence.files as evidence_files
from compliance.evidence.files import OUTPUT_HASH_STORE, output_sha256s


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture()
def reads(monkeypatch) -> list[Path]:
    """The files hashed by reading them."""
    read: list[Path] = []

    def reading(path: Path) -> str:
        read.append(path)
        return _sha256(path.read_text())

    monkeypatch.setattr(evidence_files, "file_sha256", reading)
    return read


def test_an_unchanged_file_is_hashed_once(con, tmp_path, reads):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("x\n1\n")
    second.write_text("x\n2\n")
    assert output_sha256s(con, [first, second]) == [_sha256("x\n1\n"), _sha256("x\n2\n")]
    assert output_sha256s(con, [second, first]) == [_sha256("x\n2\n"), _sha256("x\n1\n")]
    assert reads == [first, second]


def test_a_file_written_again_is_hashed_again_even_with_its_size_and_time_given_back(con, tmp_path, reads):
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    output_sha256s(con, [path])
    before = path.stat()
    path.write_text("x\n9\n")  # in place: same size, same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert output_sha256s(con, [path]) == [_sha256("x\n9\n")]
    replacement = tmp_path / "new.csv"  # replaced, as compliance.core.files.replacing does
    replacement.write_text("x\n7\n")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert output_sha256s(con, [path]) == [_sha256("x\n7\n")]
    assert reads == [path, path, path]


def test_the_records_of_files_gone_are_dropped(con, tmp_path, reads):
    kept, removed = tmp_path / "kept.csv", tmp_path / "removed.csv"
    kept.write_text("x\n")
    removed.write_text("y\n")
    output_sha256s(con, [kept, removed])
    removed.unlink()
    assert output_sha256s(con, [kept]) == [_sha256("x\n")]
    assert con.execute(f"SELECT path FROM {OUTPUT_HASH_STORE}").fetchall() == [(str(kept.resolve()),)]
