"""The shortcuts of a cold ingest give what the general path gives: the same values, rows, quarantine and records."""

from __future__ import annotations

import hashlib
import itertools

import duckdb
from conftest import write
from test_hostile_values import HEADER, ticket

from compliance.core.sql import lit
from compliance.ingest.parsing import _TRIMMED_CHARACTERS, _repeated_wall_times, _trimmed_sql
from compliance.ingest.staging import ingest_source

# Around a value: nothing, each trimmed character, characters that look like space but are not trimmed (an em
# space, NUL, a control character), a character sorting just after the space, and a mix.
_EDGES = ["", *_TRIMMED_CHARACTERS, "\u2003", "\x00", "\x01", "!", "\x1f", " \u00a0\t\ufeff", "é"]


def test_the_trim_shortcut_gives_what_trim_gives_for_every_edge():
    values = [lead + core + trail for lead, trail in itertools.product(_EDGES, _EDGES) for core in ("", "T1", "a b")]
    con = duckdb.connect()
    con.execute("CREATE TABLE texts AS SELECT unnest($values) AS v", {"values": [*values, None]})
    differing = con.execute(
        f"""SELECT v FROM texts
            WHERE {_trimmed_sql("v")} IS DISTINCT FROM nullif(trim(v, {lit(_TRIMMED_CHARACTERS)}), '')"""
    ).fetchall()
    assert differing == []
    # 10 edges are trimmed away (nothing, the 8 characters, the mix): 10 x 10 spellings of T1 read as T1
    assert con.execute(f"SELECT count(*) FROM texts WHERE {_trimmed_sql('v')} = 'T1'").fetchall()[0][0] == 100


def test_utc_has_no_repeated_wall_times_as_the_day_by_day_search_finds():
    assert _repeated_wall_times("UTC") == _repeated_wall_times("Etc/UTC") == []
    assert _repeated_wall_times("Europe/Berlin")  # the search itself still finds a fall-back


def test_the_sha256_read_beside_the_load_is_the_files_and_an_unchanged_file_is_not_read_again(con, tmp_path, policy):
    path = write(tmp_path / "tickets.csv", HEADER + ticket("T1") + ticket("T2"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    first = ingest_source(con, "tickets", tmp_path, policy)
    assert [(entry.sha256, entry.change) for entry in first.files] == [(digest, "new")]
    assert con.execute("SELECT sha256 FROM loaded_files").fetchall() == [(digest,)]
    again = ingest_source(con, "tickets", tmp_path, policy)
    assert [(entry.sha256, entry.change) for entry in again.files] == [(digest, "unchanged")]
