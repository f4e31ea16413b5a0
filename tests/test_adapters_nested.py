"""Nested values: PagerDuty incident lists flattened by pandas (Python literals), mapping paths into JSON cells and
API documents."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, Conversion

# A REST v2 incident as GET /incidents returns it (https://developer.pagerduty.com/api-reference/ "List
# incidents"), with log entries included (include[]=log_entries is not needed for acknowledgements).
INCIDENT = {
    "id": "Q1ABC",
    "incident_number": 42,
    "title": "Checkout down",
    "created_at": "2025-03-04T10:00:00Z",
    "status": "resolved",
    "urgency": "high",
    "service": {"id": "PSVC", "type": "service_reference", "summary": "Checkout"},
    "priority": None,
    "acknowledgements": [{"at": "2025-03-04T10:04:30Z", "acknowledger": {"summary": "Ana", "id": "PUSR"}}],
    "last_status_change_at": "2025-03-04T11:30:00Z",
    "resolved": True,
}


def convert(format_name: str, *paths: Path, mapping: Path | None = None) -> Conversion:
    return adapter_for(format_name).convert(list(paths), AdapterOptions(mapping=mapping))


def test_a_pagerduty_incident_list_flattened_by_pandas(tmp_path):
    # what pd.DataFrame(incidents).to_csv() writes: an unnamed index column, nested values as str() of Python
    # objects (single quotes, None, True)
    path = tmp_path / "incidents.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["", *INCIDENT])
        writer.writerow(["0", *(str(value) if not isinstance(value, str) else value for value in INCIDENT.values())])
        second = {**INCIDENT, "id": "Q2DEF", "incident_number": 43, "status": "triggered", "acknowledgements": []}
        writer.writerow(["1", *(str(value) if not isinstance(value, str) else value for value in second.values())])
    assert "'summary': 'Checkout'" in path.read_text()  # Python literals, not JSON
    conversion = convert("pagerduty", path)
    assert conversion.inputs[0].variant == "incident list flattened to csv" and conversion.quarantine.height == 0
    incidents = {row["incident_id"]: row for row in conversion.tables["incidents"].to_dicts()}
    first = incidents["Q1ABC"]
    assert (first["started_at"], first["acknowledged_at"], first["resolved_at"]) == (
        "2025-03-04T10:00:00Z",
        "2025-03-04T10:04:30Z",
        "2025-03-04T11:30:00Z",  # last_status_change_at of a resolved incident
    )
    assert first["severity"] == "high" and first["service"] == "Checkout"
    assert incidents["Q2DEF"]["acknowledged_at"] is None and incidents["Q2DEF"]["resolved_at"] is None


def test_mapping_paths_into_json_and_python_literal_cells(tmp_path):
    path = tmp_path / "raw.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["row", "data"])
        writer.writerow(["1", json.dumps(INCIDENT)])
        writer.writerow(["2", str({**INCIDENT, "id": "Q9", "acknowledgements": [{"at": "2025-03-04T10:09:00Z"}]})])
    mapping = write(
        tmp_path / "m.yaml",
        "source: incidents\n"
        "columns:\n"
        "  incident_id: data.id\n"
        "  severity: data.urgency\n"
        "  started_at: data.created_at\n"
        "  acknowledged_at: 'data.acknowledgements[0].at'\n"
        "constants: {kind: incident}\n",
    )
    conversion = convert("mapping", path, mapping=mapping)
    assert conversion.quarantine.height == 0
    incidents = {row["incident_id"]: row for row in conversion.tables["incidents"].to_dicts()}
    assert incidents["Q1ABC"]["acknowledged_at"] == "2025-03-04T10:04:30Z"
    assert incidents["Q9"]["acknowledged_at"] == "2025-03-04T10:09:00Z"  # from a Python-literal cell
    reading = conversion.column_sources["incidents"]
    assert reading["acknowledged_at"] == "data.acknowledgements[0].at"


def test_mapping_paths_into_an_api_document(tmp_path):
    document = {"incidents": [INCIDENT], "limit": 25, "offset": 0, "more": False}
    path = write(tmp_path / "incidents.json", json.dumps(document))
    mapping = write(
        tmp_path / "m.yaml",
        "source: incidents\n"
        "columns:\n"
        "  incident_id: id\n"
        "  severity: service.summary\n"
        "  started_at: created_at\n"
        "  acknowledged_at: 'acknowledgements[0].at'\n"
        "constants: {kind: incident}\n",
    )
    conversion = convert("mapping", path, mapping=mapping)
    (incident,) = conversion.tables["incidents"].to_dicts()
    assert (incident["incident_id"], incident["severity"], incident["acknowledged_at"]) == (
        "Q1ABC",
        "Checkout",
        "2025-03-04T10:04:30Z",
    )
