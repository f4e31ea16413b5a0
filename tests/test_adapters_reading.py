"""The reading report of a conversion: source column -> canonical column, columns not read, columns left empty."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
from conftest import HOSTILE_SCRIPT, write
from test_adapters_mapping_overrides import FRESHDESK_HEADER, FRESHDESK_MAPPING, FRESHDESK_ROWS

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, write_conversion
from compliance.policy import load_policy
from compliance.rules.reconciliation import conversion_record
from reports.compliance_report import ReportData, render_compliance_report


def _freshdesk_folder(tmp_path):
    export = write(tmp_path / "tickets.csv", FRESHDESK_HEADER + FRESHDESK_ROWS)
    options = AdapterOptions(mapping=write(tmp_path / "m.yaml", FRESHDESK_MAPPING), policy=load_policy("platform"))
    conversion = adapter_for("freshdesk").convert([export], options)
    out = tmp_path / "converted"
    write_conversion(conversion, out)
    return out


def test_conversion_json_states_how_each_column_was_read(tmp_path):
    out = _freshdesk_folder(tmp_path)
    reading = json.loads((out / "conversion.json").read_text())["reading"]["tickets"]
    assert reading["columns"]["created_at"] == "Created time"
    assert reading["columns"]["resolved_at"] == "Resolved time / Closed time"
    assert reading["columns"]["channel"] == "Group / Type / Source"
    # Freshdesk's columns kept after the contract's, read by no rule
    assert "Priority" in reading["ignored"] and "Due by Time" in reading["ignored"]
    # what the export does not carry: the rules needing it are "not assessed"
    assert {"plan", "tier", "escalated_at", "senior_reviewed_at"} <= set(reading["empty"])
    assert "created_at" not in reading["empty"]
    # and the manifest's conversion record carries it
    assert conversion_record(out)["reading"]["tickets"] == reading


def test_an_event_log_names_the_columns_it_dropped(tmp_path):
    log = write(
        tmp_path / "log.csv",
        "Case ID,Timestamp,Activity,Product\nC1,2026-01-01T00:00:00Z,Open,X\nC1,2026-01-02T00:00:00Z,Closed,X\n",
    )
    conversion = adapter_for("eventlog").convert([log], AdapterOptions(policy=load_policy("platform")))
    write_conversion(conversion, tmp_path / "out")
    reading = json.loads((tmp_path / "out" / "conversion.json").read_text())["reading"]
    assert reading["ticket_events"]["columns"]["occurred_at"] == "Timestamp"
    assert reading["tickets"]["columns"]["created_at"] == "first Timestamp of the case"
    assert reading["tickets"]["ignored"][0] == "Product"
    assert "first_response_at" in reading["tickets"]["empty"]


def test_the_report_inputs_section_shows_the_reading_escaped(tmp_path):
    policy = load_policy("platform")
    conversion = {
        "format": "freshdesk",
        "reading": {
            "tickets": {
                "columns": {"created_at": f"Created {HOSTILE_SCRIPT}"},
                "ignored": ["Priority"],
                "empty": ["first_response_at"],
            }
        },
    }
    data = ReportData(
        policy=policy,
        manifest={"as_of": "2026-01-01T00:00:00Z", "inputs": [], "conversion": conversion},
        verdicts=pl.DataFrame(),
        metrics=pl.DataFrame(),
        violations=pl.DataFrame(),
        violations_total=0,
        quarantine_summary=pl.DataFrame(),
        at_risk=pl.DataFrame(),
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    page = render_compliance_report(data)
    assert "How the vendor export was read" in page
    assert "<code>first_response_at</code>" in page and "<code>Priority</code>" in page
    assert HOSTILE_SCRIPT not in page
