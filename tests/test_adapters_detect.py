"""Format detection (convert / run without --format): every real export recognised, unknown files in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED, write

from compliance.adapters.base import ConversionError
from compliance.adapters.detect import detect_format
from pipelines.cli import main

REAL = SHARED / "data" / "real"
FOIA_MAPPING = Path(__file__).resolve().parents[1] / "examples" / "mappings" / "doj_foia_privacy_requests.yaml"


def real(relative: str) -> Path:
    path = REAL / relative
    if not path.exists():
        pytest.skip(f"{REAL} is absent ({relative} not found)")
    return path


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("incidents/bpi2013_volvo_it_incidents.csv.gz", "eventlog (event log csv)"),
        ("incidents/github_status_incidents.jsonl", "statuspage (status history json lines)"),
        ("incidents/opsgenie_raw_incidents.csv", "opsgenie (raw api table csv)"),
        ("incidents/pagerduty_raw_incidents.csv", "pagerduty (raw api table csv)"),
        ("incidents/servicenow_incident_event_log_subset.csv", "servicenow (incident export)"),
        ("incidents/servicenow_table_api_incidents.csv", "servicenow (incident export)"),
        ("incidents/statuspage_cloudflare_incidents.json", "statuspage (v2 incidents.json)"),
        ("tickets/boston311_2015_bed_bugs.csv", "open311 (crm case export csv)"),
        ("tickets/boston311_2015_heat.csv", "open311 (crm case export csv)"),
    ],
)
def test_every_real_export_is_recognised(relative, expected):
    assert detect_format([real(relative)]).summary() == expected


def test_the_zendesk_warehouse_folder_is_one_format():
    seeds = sorted(real("tickets/zendesk_schema_seeds").glob("*.csv"))
    detection = detect_format(seeds)
    assert detection.format == "zendesk"
    by_file = dict(zip((path.name for path in seeds), detection.variants, strict=True))
    assert by_file["ticket_data.csv"] == "warehouse ticket_data"
    assert by_file["schedule_data.csv"] == "warehouse table not read"  # by its name, though it has id, created_at


def test_the_foia_log_needs_its_mapping_and_is_recognised_with_it():
    log = real("requests/doj_foia_2017_request_log.csv")
    with pytest.raises(ConversionError, match=r"^doj_foia_2017_request_log\.csv: not a layout any format knows; "):
        detect_format([log])
    assert detect_format([log], FOIA_MAPPING).format == "mapping"


def test_an_unknown_file_names_the_closest_format_and_what_it_lacks(tmp_path):
    almost = write(tmp_path / "export.csv", "Ticket ID,Subject,Opened\n1,Hi,2025-01-01\n")
    with pytest.raises(ConversionError) as raised:
        detect_format([almost])
    assert str(raised.value) == (
        "export.csv: not a layout any format knows; closest: freshdesk ticket export (missing 'Created time')"
    )


def test_a_mix_of_formats_is_refused(tmp_path):
    freshdesk = write(tmp_path / "a.csv", "Ticket ID,Created time\n1,2025-01-01 10:00\n")
    boston = write(tmp_path / "b.csv", "CASE_ENQUIRY_ID,OPEN_DT\n1,2025-01-01 10:00\n")
    with pytest.raises(ConversionError, match=r"several formats \(freshdesk: a\.csv; open311: b\.csv\)"):
        detect_format([freshdesk, boston])


def test_convert_without_format_says_what_it_chose(tmp_path, capsys):
    log = real("incidents/bpi2013_volvo_it_incidents.csv.gz")
    assert main(["convert", str(log), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "detected format eventlog (event log csv); --format eventlog to say so" in printed
    assert "65,533 read" in printed and (tmp_path / "out" / "ticket_events.csv").is_file()


def test_convert_of_an_unknown_file_is_one_line(tmp_path, capsys):
    odd = write(tmp_path / "odd.csv", "a,b\n1,2\n")
    assert main(["convert", str(odd), "--format", "auto", "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("compliance-report: format detection: odd.csv: not a layout any format knows")


def test_run_without_format_converts_a_recognised_export_and_reports_its_reading(tmp_path, capsys):
    raw = real("incidents/opsgenie_raw_incidents.csv")
    out = tmp_path / "run"
    code = main(["run", "--exports", str(raw), "--out", str(out), "--as-of", "2023-10-01T00:00:00Z"])
    assert code == 0, capsys.readouterr().err
    assert "detected format opsgenie (raw api table csv)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    reading = manifest["conversion"]["reading"]["incidents"]
    assert reading["columns"]["started_at"] == "data.impactStartDate / data.createdAt"
    assert "acknowledged_at" in reading["empty"]
    assert "How the vendor export was read" in (out / "compliance_report.html").read_text()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        # Zendesk Support API list responses, one file per endpoint
        # (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/)
        ("ticket_comments.json", '{"comments": [{"id": 1, "public": true, "author_id": 7}]}', "api folder file"),
        (
            "ticket_metrics.json",
            '{"ticket_metrics": [{"ticket_id": 1, "reply_time_in_minutes": {}}]}',
            "api folder file",
        ),
        # ServiceNow task_sla table export (https://docs.servicenow.com, "Task SLA table")
        (
            "task_sla.csv",
            "task,sla,stage,has_breached,planned_end_time\nINC1,P1 resolution,completed,false,\n",
            "task_sla export",
        ),
        # Socrata 311 CSV download (https://dev.socrata.com/foundry/data.cityofnewyork.us/erm2-nwe9)
        (
            "nyc311.csv",
            "Unique Key,Created Date,Closed Date,Due Date,Status\n1,01/02/2024 10:00:00 AM,,,Open\n",
            "socrata 311 csv",
        ),
        # a status page's incident history scraped to CSV, updates as JSON in a cell
        (
            "history.csv",
            'id,name,created_at,updates\nx1,Outage,"Aug 30, 2024 - 13:30 PDT","[]"\n',
            "status history csv",
        ),
    ],
)
def test_the_layouts_of_every_format_are_recognised(tmp_path, name, text, expected):
    detection = detect_format([write(tmp_path / name, text)])
    assert detection.variants == (expected,)
