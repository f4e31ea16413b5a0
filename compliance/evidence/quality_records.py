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

A staged table whose rows did not change since an earlier run reuses that run's stored results
(``expectation_validation_store``: one row per source, the outcomes and the suite under a key) instead of converting
the table to pandas and validating it again, and Great Expectations is not even imported. The key
(:func:`validation_key`) holds everything the stored outcomes read: a fingerprint of the staged rows (count, xor and
sum of a 64-bit DuckDB hash of each whole row, ``source_line`` included, so the order and the examples too), the
table's columns and types, the whole policy, the versions of the packages and the sources of the code that
validate. What the stored outcomes do not hold is computed anew every run, reused or not, so both ways give the
same: the checks that read the as-of instant or the previous run's row count
(``compliance.expectations.as_of_outcomes``, their suite entries ``as_of_expectations_json``), and the outcomes
read from other tables (decoding, ambiguous local times); all cheap DuckDB counts.

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
    AMBIGUOUS_LOCAL_TIMES,
    AS_OF_CHECKS,
    DATA_QUALITY_COLUMNS,
    ExpectationOutcome,
    ambiguous_local_times_outcomes,
    as_of_expectations_json,
    as_of_outcomes,
    decoding_outcomes,
    outcome_column,
    suite_json,
    validate_table,
    write_data_quality,
)
from compliance.ingest.contract import SOURCES
from compliance.policy import Policy

EXPECTATIONS_DIR = Path("evidence") / "expectations"
DATA_DOCS = "index.html"
SUITES_COLUMNS = "source VARCHAR, suite VARCHAR"
VALIDATION_STORE = "expectation_validation_store"
VALIDATION_STORE_COLUMNS = "source VARCHAR, validation_key VARCHAR, outcomes VARCHAR, suite VARCHAR"
# The code whose change can change a suite or its outcomes: a change to any of them validates every table again.
VALIDATION_CODE_SOURCES = (
    "expectations.py",
    "evidence/quality_records.py",
    "ingest/contract.py",
    "ingest/parsing.py",
    "core/secrets.py",
    "core/sql.py",
)
# Outcomes not stored: computed anew every run, from other tables (ambiguous local times) or from the as-of
# instant and the previous row count (compliance.expectations.as_of_outcomes).
_NOT_STORED = (AMBIGUOUS_LOCAL_TIMES, "expect_column_max_to_be_between", "expect_table_row_count_to_be_between")
VALIDATION_PACKAGES = ("compliance-reporter", "great_expectations", "pandas", "pyarrow", "duckdb")


def record_expectations(
    con: duckdb.DuckDBPyConnection, table: str, source: str, policy: Policy, as_of: datetime
) -> list:
    """Validate the staged ``table`` of ``source``, replace the source's outcomes in ``data_quality`` and its
    suite in ``expectation_suites`` (none when the table does not exist: no suite ran), and record its row count
    at ``as_of``. Returns the outcomes (the suite's, then the decoding ones)."""
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
    if not table_exists(con, table):  # no suite runs (validate_table would import GX to say so)
        outcomes = decoding_outcomes(con, source)
        write_data_quality(con, outcomes)
        return outcomes
    key = validation_key(con, table, source, policy)
    stored = _stored_validation(con, source, key)
    if stored is None:
        validated = validate_table(con, table, source, policy, as_of, previous_rows)
        suite_outcomes = [outcome for outcome in validated if outcome.expectation not in _NOT_STORED]
        suite = suite_json(SOURCES[source], policy, as_of, previous_rows)
        independent = {
            **suite,
            "expectations": [e for e in suite["expectations"] if e.get("meta", {}).get("check") not in AS_OF_CHECKS],
        }
        suite_text = json.dumps(suite, sort_keys=True)
        # stored only when the suite is the stored part and the part written here: the same suite at any as-of
        if _with_as_of(independent, source, as_of, previous_rows) == suite:
            _store_validation(con, source, key, suite_outcomes, json.dumps(independent, sort_keys=True))
    else:
        suite_outcomes, independent = stored[0], json.loads(stored[1])
        suite_text = json.dumps(_with_as_of(independent, source, as_of, previous_rows), sort_keys=True)
    suite_outcomes += as_of_outcomes(con, table, source, as_of, previous_rows)
    outcomes = suite_outcomes + ambiguous_local_times_outcomes(con, table, source) + decoding_outcomes(con, source)
    write_data_quality(con, outcomes)
    con.execute("INSERT INTO expectation_suites VALUES (?, ?)", [source, suite_text])
    con.execute("DELETE FROM row_count_history WHERE source = ? AND as_of = ?", [source, as_of])
    con.execute(f"INSERT INTO row_count_history SELECT ?, ?, count(*) FROM {table}", [source, as_of])
    return outcomes


def _with_as_of(independent: dict, source: str, as_of: datetime, previous_rows: int | None) -> dict:
    """The suite that runs at ``as_of`` after ``previous_rows``: the stored expectations, then those that read them."""
    expectations = independent["expectations"] + as_of_expectations_json(SOURCES[source], as_of, previous_rows)
    return {**independent, "expectations": expectations}


def validation_key(con: duckdb.DuckDBPyConnection, table: str, source: str, policy: Policy) -> str:
    """sha256 of everything the stored outcomes of ``source`` on ``table`` read (module docstring).

    The rows are fingerprinted as a multiset (count, and the xor and the sum of a 64-bit DuckDB hash of each whole
    row); ``source_line`` is part of the row, so the order GX reads them in is fingerprinted too."""
    rows, xor_hash, sum_hash = con.execute(
        f"SELECT count(*), bit_xor(hash(t)), sum(hash(t, 1)::HUGEINT) FROM {table_ref(table)} t"
    ).fetchall()[0]
    material = {
        "source": source,
        "rows": [rows, str(xor_hash), str(sum_hash)],
        "columns": con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table_ref(table)})").fetchall(),
        "policy_sha256": policy.sha256,
        "policy": dataclasses.asdict(policy),
        **code_fingerprint(VALIDATION_CODE_SOURCES, VALIDATION_PACKAGES),
    }
    return key_of(material)


def _stored_validation(
    con: duckdb.DuckDBPyConnection, source: str, key: str
) -> tuple[list[ExpectationOutcome], str] | None:
    """The outcomes and suite stored for ``source`` under ``key``; None when the store holds another key."""
    if not table_exists(con, VALIDATION_STORE):
        return None
    found = con.execute(
        f"SELECT outcomes, suite FROM {ident(VALIDATION_STORE)} WHERE source = ? AND validation_key = ?", [source, key]
    ).fetchall()
    if not found:
        return None
    outcomes_text, suite_text = found[0]
    return [ExpectationOutcome(*fields) for fields in json.loads(outcomes_text)], suite_text


def _store_validation(
    con: duckdb.DuckDBPyConnection, source: str, key: str, outcomes: list[ExpectationOutcome], suite_text: str
) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {ident(VALIDATION_STORE)} ({VALIDATION_STORE_COLUMNS})")
    con.execute(f"DELETE FROM {ident(VALIDATION_STORE)} WHERE source = ?", [source])
    con.execute(
        f"INSERT INTO {ident(VALIDATION_STORE)} VALUES (?, ?, ?, ?)",
        [source, key, json.dumps([dataclasses.astuple(outcome) for outcome in outcomes]), suite_text],
    )


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
