"""The opsgenie format on the real DevLake raw table and on an Incident API response written from Opsgenie's docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED, write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, Conversion

RAW = SHARED / "data" / "real" / "incidents" / "opsgenie_raw_incidents.csv"


def convert(*paths: Path) -> Conversion:
    return adapter_for("opsgenie").convert(list(paths), AdapterOptions())


def test_the_real_raw_table_is_read_not_quarantined():
    if not RAW.is_file():
        pytest.skip(f"{RAW} is absent")
    conversion = convert(RAW)
    assert conversion.quarantine.height == 0 and conversion.inputs[0].rows_read == 2
    incidents = {row["tinyId"]: row for row in conversion.tables["incidents"].to_dicts()}
    # Incident#1 is open (no impactEndDate); Incident#2 resolved with impactEndDate 2023-09-05T18:21:21.49Z
    assert incidents["3"]["started_at"] == "2023-09-06T14:30:56.346000Z" and incidents["3"]["resolved_at"] is None
    assert incidents["1"]["resolved_at"] == "2023-09-05T18:21:21.490000Z"
    assert incidents["1"]["severity"] == "P5" and incidents["1"]["kind"] == "incident"
    assert "acknowledged_at" not in conversion.filled_columns["incidents"]


def test_an_incident_api_response(tmp_path):
    # Layout of GET /v1/incidents, https://docs.opsgenie.com/docs/incident-api ("List Incidents" response)
    document = {
        "data": [
            {
                "id": "70413a06-38d6-4c85-92b8-5ebc900d42e2",
                "tinyId": "1584",
                "message": "Database unreachable",
                "status": "closed",
                "priority": "P1",
                "createdAt": "2017-04-12T09:20:07.000Z",
                "impactStartDate": "2017-04-12T09:15:00Z",
                "impactEndDate": "2017-04-12T10:05:00Z",
            },
            {"id": "b1", "tinyId": "1585", "status": "open", "priority": "P2", "createdAt": "not a time"},
        ],
        "took": 0.1,
        "requestId": "9ae63dd7-ed00-4c81-86f0-c4ffd33142c9",
    }
    path = write(tmp_path / "incidents.json", json.dumps(document))
    conversion = convert(path)
    (incident,) = conversion.tables["incidents"].to_dicts()
    assert (incident["started_at"], incident["resolved_at"]) == ("2017-04-12T09:15:00Z", "2017-04-12T10:05:00Z")
    (bad,) = conversion.quarantine.to_dicts()
    assert (bad["line"], bad["reason_code"], bad["record_id"]) == (2, "bad_timestamp", "b1")
