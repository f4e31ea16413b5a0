"""The records of a staged table's Great Expectations run: its outcomes in ``data_quality``, its row count in
``row_count_history`` (which the next run's row-count expectation compares against) and the suite that ran in
``expectation_suites`` (GX JSON); and the files a GX user looks for, written from those records:

``evidence/expectations/<source>_contract.json``
    the suite that ran, as Great Expectations writes it (``ExpectationSuite.to_json_dict``).
``evidence/expectations/<source>_contract.validation.json``
    its validation result in the shape of GX's ``ExpectationSuiteValidationResult`` (``success``, ``statistics``,
    ``results`` with ``expectation_config``, ``success`` and ``result``), from the outcomes merged over the chunks.
``evidence/expectations/index.html``
    the Data Docs of those results: one static page, no script and no remote asset (GX's own Data Docs load
    their styles and scripts from CDNs, which a report that must open offline cannot). Every text is escaped.

Great Expectations validates a staged table per segment, the rows that came from one source file (or from a run
of small consecutive files: ``compliance.expectations.cut_into_segments``), and a segment whose rows did not change
since an earlier run reuses that run's stored state (``expectation_segment_store``: per source and segment key, the
state of each row-by-row expectation after the segment's rows) instead of converting its rows to pandas and
validating them again: a daily run that adds a file validates that file's rows alone, and when no segment changed,
Great Expectations is not even imported. The states of all segments, stored or new, are folded in table order
(segments by file name, rows by ``source_line``) into the outcomes (``compliance.expectations.outcomes_from_states``),
exactly as a cold validation folds them. A segment key
(:func:`segment_keys`) holds everything its state reads: the segment's file names and a fingerprint of their rows
(count, xor and sum of a 64-bit DuckDB hash of each whole row, ``source_line`` included, so the order and the
examples too), the table's columns and types, the whole policy, the versions of the packages and the sources of the
code that validate. A file whose rows partly changed (a superseding file replaced some) has another fingerprint and
is validated again; stored states of segments no longer in the table are dropped. The suite is stored once per
source (``expectation_suite_store``) under the same key without the rows. What is whole-table is computed anew
every run, reused or not, so both ways give the same: the column checks, uniqueness (DuckDB over all rows), the
checks that read the as-of instant or the previous run's row count (``compliance.expectations.as_of_outcomes``,
their suite entries ``as_of_expectations_json``), and the outcomes read from other tables (decoding, ambiguous
local times); all cheap DuckDB counts. The store is in the warehouse, beside the staged rows its states come from:
their first unexpected values are the examples the outcomes show, redacted then.

No example value is taken from the table here: the outcomes' ``observed`` texts are the only values shown, and
their examples were redacted when recorded (``compliance.expectations._sample``).
"""

from __future__ import annotations

import dataclasses
import html
import json
from datetime import datetime
from pathlib import Path

import duckdb

from compliance.core.files import replacing
from compliance.core.sql import ident, table_exists, table_ref
from compliance.core.stored_keys import code_fingerprint, key_of
from compliance.expectations import (
    DATA_QUALITY_COLUMNS,
    Segment,
    as_of_expectations_json,
    decoding_outcomes,
    expectations_on_rows_alone,
    outcome_column,
    outcomes_from_states,
    suite_json,
    table_segments,
    validate_segments,
    write_data_quality,
)
from compliance.ingest.contract import SOURCES
from compliance.policy import Policy

EXPECTATIONS_DIR = Path("evidence") / "expectations"
DATA_DOCS = "index.html"
SUITES_COLUMNS = "source VARCHAR, suite VARCHAR"
SEGMENT_STORE = "expectation_segment_store"
SEGMENT_STORE_COLUMNS = "source VARCHAR, segment_key VARCHAR, states VARCHAR"
SUITE_STORE = "expectation_suite_store"
SUITE_STORE_COLUMNS = "source VARCHAR, suite_key VARCHAR, suite VARCHAR"
# The store of earlier versions: one row per source, the outcomes of the whole table; dropped when met.
_WHOLE_TABLE_STORE = "expectation_validation_store"
# The code whose change can change a suite or its outcomes: a change to any of them validates every table again.
VALIDATION_CODE_SOURCES = (
    "expectations.py",
    "evidence/quality_records.py",
    "ingest/contract.py",
    "ingest/parsing.py",
    "core/secrets.py",
    "core/sql.py",
)
VALIDATION_PACKAGES = ("compliance-reporter", "great_expectations", "pandas", "pyarrow", "duckdb")


def record_expectations(
    con: duckdb.DuckDBPyConnection, table: str, source: str, policy: Policy, as_of: datetime
) -> list:
    """Validate the staged ``table`` of ``source``, replace the source's outcomes in ``data_quality`` and its
    suite in ``expectation_suites`` (none when the table does not exist: no suite ran), and record its row count
    at ``as_of``. Returns the outcomes (the suite's, then the decoding ones). Only the segments without a stored
    state are validated (module docstring)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS data_quality ({DATA_QUALITY_COLUMNS})")
    con.execute("DELETE FROM data_quality WHERE source = ?", [source])
    con.execute(f"CREATE TABLE IF NOT EXISTS expectation_suites ({SUITES_COLUMNS})")
    con.execute("DELETE FROM expectation_suites WHERE source = ?", [source])
    con.execute("CREATE TABLE IF NOT EXISTS row_count_history (source VARCHAR, as_of TIMESTAMPTZ, rows_loaded BIGINT)")
    previous = con.execute(
        "SELECT rows_loaded FROM row_count_history WHERE source = ? AND as_of < ? ORDER BY as_of DESC LIMIT 1",
        [source, as_of],
    ).fetchall()
    previous_rows = previous[0][0] if previous else None
    if not table_exists(con, table):  # no suite runs (validating would import GX to say so)
        outcomes = decoding_outcomes(con, source)
        write_data_quality(con, outcomes)
        return outcomes
    con.execute(f"DROP TABLE IF EXISTS {ident(_WHOLE_TABLE_STORE)}")
    material = _validation_material(con, table, source, policy)
    segments = table_segments(con, table)
    keys = segment_keys(segments, material)
    states = _stored_states(con, source, keys)
    unknown = [(segment, key) for segment, key in zip(segments, keys, strict=True) if key not in states]
    validated = validate_segments(con, table, source, policy, [segment for segment, _ in unknown])
    new_states = {key: validated[segment.name] for segment, key in unknown}
    _store_states(con, source, keys, new_states)
    states.update(new_states)

    suite_key = key_of(material)
    stored_suite = _stored_suite(con, source, suite_key)
    if stored_suite is None:
        suite = suite_json(SOURCES[source], policy, as_of, previous_rows)
        independent = {**suite, "expectations": expectations_on_rows_alone(suite)}
        # stored only when the suite is the stored part and the part written here: the same suite at any as-of
        if _with_as_of(independent, source, as_of, previous_rows) == suite:
            _store_suite(con, source, suite_key, json.dumps(independent, sort_keys=True))
    else:
        independent = json.loads(stored_suite)
        suite = _with_as_of(independent, source, as_of, previous_rows)
    suite_text = json.dumps(suite, sort_keys=True)
    outcomes = outcomes_from_states(
        con, table, source, independent["expectations"], [states[key] for key in keys], as_of, previous_rows
    ) + decoding_outcomes(con, source)
    write_data_quality(con, outcomes)
    con.execute("INSERT INTO expectation_suites VALUES (?, ?)", [source, suite_text])
    con.execute("DELETE FROM row_count_history WHERE source = ? AND as_of = ?", [source, as_of])
    con.execute(f"INSERT INTO row_count_history SELECT ?, ?, count(*) FROM {table}", [source, as_of])
    return outcomes


def _with_as_of(independent: dict, source: str, as_of: datetime, previous_rows: int | None) -> dict:
    """The suite that runs at ``as_of`` after ``previous_rows``: the stored expectations, then those that read them."""
    expectations = independent["expectations"] + as_of_expectations_json(SOURCES[source], as_of, previous_rows)
    return {**independent, "expectations": expectations}


def _validation_material(con: duckdb.DuckDBPyConnection, table: str, source: str, policy: Policy) -> dict:
    """Everything but the rows that a segment's state and the stored suite read (module docstring)."""
    return {
        "source": source,
        "columns": con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table_ref(table)})").fetchall(),
        "policy_sha256": policy.sha256,
        "policy": dataclasses.asdict(policy),
        **code_fingerprint(VALIDATION_CODE_SOURCES, VALIDATION_PACKAGES),
    }


def segment_keys(segments: list[Segment], material: dict) -> list[str]:
    """Per segment, sha256 of everything its stored state reads: its file name and rows' fingerprint, and
    ``material`` (:func:`_validation_material`)."""
    return [key_of({**material, "segment": dataclasses.astuple(segment)}) for segment in segments]


def _stored_states(con: duckdb.DuckDBPyConnection, source: str, keys: list[str]) -> dict[str, dict]:
    """The stored states of ``source`` under any of ``keys``, by key."""
    if not table_exists(con, SEGMENT_STORE):
        return {}
    found = con.execute(
        f"SELECT segment_key, states FROM {ident(SEGMENT_STORE)} WHERE source = ? AND list_contains(?, segment_key)",
        [source, keys],
    ).fetchall()
    return {key: json.loads(text) for key, text in found}


def _store_states(con: duckdb.DuckDBPyConnection, source: str, keys: list[str], new_states: dict[str, dict]) -> None:
    """Keep the states of the table's segments (``keys``) and add ``new_states``; those of segments no longer in
    the table are dropped."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {ident(SEGMENT_STORE)} ({SEGMENT_STORE_COLUMNS})")
    con.execute(
        f"DELETE FROM {ident(SEGMENT_STORE)} WHERE source = ? AND NOT list_contains(?, segment_key)", [source, keys]
    )
    if new_states:
        con.executemany(
            f"INSERT INTO {ident(SEGMENT_STORE)} VALUES (?, ?, ?)",
            [(source, key, json.dumps(states, sort_keys=True)) for key, states in new_states.items()],
        )


def _stored_suite(con: duckdb.DuckDBPyConnection, source: str, key: str) -> str | None:
    """The suite stored for ``source`` under ``key`` (GX JSON without the as-of checks); None when another."""
    if not table_exists(con, SUITE_STORE):
        return None
    found = con.execute(
        f"SELECT suite FROM {ident(SUITE_STORE)} WHERE source = ? AND suite_key = ?", [source, key]
    ).fetchall()
    return found[0][0] if found else None


def _store_suite(con: duckdb.DuckDBPyConnection, source: str, key: str, suite_text: str) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {ident(SUITE_STORE)} ({SUITE_STORE_COLUMNS})")
    con.execute(f"DELETE FROM {ident(SUITE_STORE)} WHERE source = ?", [source])
    con.execute(f"INSERT INTO {ident(SUITE_STORE)} VALUES (?, ?, ?)", [source, key, suite_text])


# --------------------------------------------------------------------------------------------------------
# GX files
# --------------------------------------------------------------------------------------------------------
def _validation_result(suite: dict, outcomes: dict[tuple[str, str | None], tuple]) -> dict:
    """GX's validation-result shape for ``suite``: one result per expectation, from its recorded outcome; an
    expectation on an optional column the table lacks did not run (``success`` null, said in ``result``)."""
    results = []
    for expectation in suite["expectations"]:
        outcome = outcomes.get((expectation["type"], outcome_column(expectation["type"], expectation["kwargs"])))
        if outcome is None:
            result = {"success": None, "result": {"details": "not run: the table has no such column"}}
        else:
            success, unexpected_count, observed, _message = outcome
            result = {"success": success, "result": {"observed_value": observed, "unexpected_count": unexpected_count}}
        results.append({"expectation_config": expectation, **result, "exception_info": {"raised_exception": False}})
    evaluated = [result for result in results if result["success"] is not None]
    successful = sum(1 for result in evaluated if result["success"])
    return {
        "suite_name": suite["name"],
        "success": successful == len(evaluated),
        "statistics": {
            "evaluated_expectations": len(evaluated),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(evaluated) - successful,
            "success_percent": round(100 * successful / len(evaluated), 2) if evaluated else None,
        },
        "results": results,
    }


def _data_docs(validations: list[dict], other_outcomes: list[tuple]) -> str:
    """The Data Docs page: per suite its statistics and a row per expectation (type, arguments, blocking,
    status, observed); then the outcomes that are not GX expectations (decoding, ambiguous local times)."""
    e = html.escape
    sections = []
    for validation in validations:
        stats = validation["statistics"]
        rows = []
        for result in validation["results"]:
            config = result["expectation_config"]
            status = {True: "passed", False: "failed", None: "not run"}[result["success"]]
            detail = result["result"].get("observed_value") or result["result"].get("details") or ""
            rows.append(
                f'<tr class="{status.replace(" ", "-")}"><td>{e(config["type"])}</td>'
                f"<td><code>{e(json.dumps(config['kwargs'], sort_keys=True, ensure_ascii=False))}</code></td>"
                f"<td>{'yes' if config.get('meta', {}).get('blocking') else 'no'}</td><td>{status}</td>"
                f"<td>{e(str(detail))}</td></tr>"
            )
        sections.append(
            f'<section id="{e(validation["suite_name"])}"><h2>{e(validation["suite_name"])}: '
            f"{'passed' if validation['success'] else 'failed'}</h2>"
            f"<p>{stats['successful_expectations']} of {stats['evaluated_expectations']} expectations met"
            f" ({stats['success_percent'] if stats['success_percent'] is not None else '–'} %); suite "
            f'<a href="{e(validation["suite_name"])}.json">{e(validation["suite_name"])}.json</a>, result '
            f'<a href="{e(validation["suite_name"])}.validation.json">{e(validation["suite_name"])}.validation.json</a>'
            "</p><table><thead><tr><th>expectation</th><th>arguments</th><th>blocking</th><th>status</th>"
            f"<th>observed</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
        )
    if other_outcomes:
        rows = "".join(
            f"<tr><td>{e(source)}</td><td>{e(check)}</td><td>{e(column or '')}</td><td>{e(message)}</td></tr>"
            for source, check, column, message in other_outcomes
        )
        sections.append(
            "<section><h2>Other counts (not Great Expectations)</h2><table><thead><tr><th>source</th><th>check</th>"
            f"<th>column</th><th>message</th></tr></thead><tbody>{rows}</tbody></table></section>"
        )
    index = "".join(
        f'<li><a href="#{e(v["suite_name"])}">{e(v["suite_name"])}</a>: {"passed" if v["success"] else "failed"}</li>'
        for v in validations
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Data Docs: expectation suites</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "width:100%;margin-bottom:2em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
        "vertical-align:top;font-size:14px}tr.failed td{background:#fdecea}tr.not-run td{color:#888}"
        "code{font-size:12px;word-break:break-all}</style></head><body>"
        "<h1>Data Docs: Great Expectations suites of the staged tables</h1>"
        f"<ul>{index}</ul>{''.join(sections)}</body></html>\n"
    )


def write_expectation_docs(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[Path]:
    """Write the suites that ran, their validation results and the Data Docs page under
    ``out_dir/evidence/expectations/`` (files of sources that no longer ran are removed); returns the paths."""
    folder = out_dir / EXPECTATIONS_DIR
    suites = (
        con.execute("SELECT source, suite FROM expectation_suites ORDER BY source").fetchall()
        if table_exists(con, "expectation_suites")
        else []
    )
    recorded = (
        con.execute(
            "SELECT source, expectation, column_name, success, unexpected_count, observed, message FROM data_quality "
            "ORDER BY source, expectation, column_name, message"
        ).fetchall()
        if table_exists(con, "data_quality")
        else []
    )
    written: list[Path] = []
    validations = []
    for source, text in suites:
        suite = json.loads(text)
        outcomes = {(row[1], row[2]): row[3:] for row in recorded if row[0] == source}
        validation = _validation_result(suite, outcomes)
        validations.append(validation)
        for name, document in ((f"{suite['name']}.json", suite), (f"{suite['name']}.validation.json", validation)):
            with replacing(folder / name) as temporary:
                temporary.write_text(
                    json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
                )
            written.append(folder / name)
    others = [(row[0], row[1], row[2], row[6]) for row in recorded if not row[1].startswith("expect_")]
    with replacing(folder / DATA_DOCS) as temporary:
        temporary.write_text(_data_docs(validations, others), encoding="utf-8")
    written.append(folder / DATA_DOCS)
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written
