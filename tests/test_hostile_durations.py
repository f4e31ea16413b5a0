"""Hostile durations in vendor exports: NaN, inf, 1e308 or 1e26 in a minutes or seconds column cost their row
(quarantined as bad_number with the value), never the conversion (polars' strict cast to microseconds failed it)."""

from __future__ import annotations

import pytest
from conftest import write

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions
from compliance.policy import load_policy

HOSTILE_NUMBERS = ["NaN", "inf", "-inf", "1e308", "1e26", "1" + "0" * 400]


def convert(format_name: str, path):
    return adapter_for(format_name).convert([path], AdapterOptions(timezone=None, policy=load_policy("platform")))


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_a_zendesk_minutes_column_with_no_sane_number_quarantines_its_row(tmp_path, number):
    path = write(
        tmp_path / "zendesk_export.csv",
        "Id,Subject,Status,Via,Group,Created at,First reply time in minutes\n"
        "101,Fine,Open,Web form,Support,2026-07-18 09:10:00,95\n"
        f"102,Hostile,Open,Web form,Support,2026-07-18 09:10:00,{number}\n",
    )
    conversion = convert("zendesk", path)
    tickets = {row["ticket_id"]: row for row in conversion.tables["tickets"].to_dicts()}
    assert tickets["101"]["first_response_at"] == "2026-07-18T10:45:00"  # wall time + 95 minutes
    assert "102" not in tickets
    reasons = {row["line"]: row["reason_code"] for row in conversion.quarantine.to_dicts()}
    assert reasons == {3: "bad_number"}


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_a_pagerduty_seconds_column_with_no_sane_number_quarantines_its_row(tmp_path, number):
    path = write(
        tmp_path / "incidents.csv",
        "id,incident_number,service_name,escalation_policy_name,created_on,resolved_on,seconds_to_first_ack,seconds_to_resolve,urgency,priority\n"
        "PABC1,11,API,Default,2026-03-01T10:00:00Z,,60,600,low,\n"
        f"PABC2,12,API,Default,2026-03-01T10:00:00Z,,{number},,low,\n",
    )
    conversion = convert("pagerduty", path)
    incidents = {row["incident_id"]: row for row in conversion.tables["incidents"].to_dicts()}
    assert incidents["PABC1"]["acknowledged_at"] == "2026-03-01T10:01:00Z"
    assert "PABC2" not in incidents
    assert {row["line"]: row["reason_code"] for row in conversion.quarantine.to_dicts()} == {3: "bad_number"}
