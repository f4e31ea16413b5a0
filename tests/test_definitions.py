"""The Dagster definitions load, and their graph is the one in tests/snapshots/definitions.json.

The snapshot lists every asset (key, group, kinds, upstream keys, pool, partitioned or not), every asset check
(blocking or not), the jobs, schedules and sensors, and each resource's configuration (environment variables by
name). A change of the graph fails here until the snapshot is refreshed on purpose:

    UPDATE_SNAPSHOTS=1 PYTHONPATH=$PWD .venv/bin/python -m pytest -q tests/test_definitions.py

then read the diff of tests/snapshots/definitions.json and commit it with the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from pipelines.automation import landing_folder_sensor
from pipelines.definitions import ALL_CHECKS, defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
ENVIRONMENT = ("CR_EXPORTS_DIR", "CR_OUT_DIR", "CR_POLICY", "CR_WAREHOUSE")


def _configuration(resource: dg.ConfigurableResource) -> dict:
    def shown(value):
        return {"env": value.env_var_name} if isinstance(value, dg.EnvVar) else value

    return {name: shown(getattr(resource, name)) for name in type(resource).model_fields}


def graph_of(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda key: key.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "pools": sorted(node.pools or ()),
            "partitioned": node.is_partitioned,
            "checks": {
                check_key.name: {"blocking": graph.get(check_key).blocking}
                for check_key in sorted(node.check_keys, key=lambda check_key: check_key.name)
            },
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in definitions.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in definitions.schedules or ()),
        "sensors": sorted(sensor.name for sensor in definitions.sensors or ()),
        "resources": {name: _configuration(resource) for name, resource in sorted(definitions.resources.items())},
    }


def test_the_graph_is_the_snapshot():
    now = graph_of(defs)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert now == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_the_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_dependency_is_an_asset_of_the_definitions():
    # A dependency on a key that no asset produces loads (as an external asset) and runs; here it fails.
    graph = defs.resolve_asset_graph()
    produced = {key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    for key in graph.get_all_asset_keys():
        assert set(graph.get(key).parent_keys) <= produced, key


def test_the_rules_steps_depend_on_what_the_registry_says_they_read():
    from compliance.rules import reconciliation
    from compliance.rules.registry import RULE_STEPS, STEP_READS, step_sources

    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    for step in RULE_STEPS:
        expected = {f"staged_{source}" for source in step_sources(step)} | set(STEP_READS.get(step, ()))
        assert parents(f"{step}_findings") == expected, step
    assert parents("vendor_reconciliation") == {
        *(f"staged_{source}" for source in reconciliation.FEEDING_SOURCES),
        *reconciliation.READS,
    }


def test_both_checks_of_every_staged_table_block():
    from compliance.ingest.contract import SOURCES

    graph = defs.resolve_asset_graph()
    blocking = {(key.asset_key.to_user_string(), key.name): graph.get(key).blocking for key in graph.asset_check_keys}
    assert blocking == {
        (f"staged_{source}", check): True for source in SOURCES for check in ("rows_accounted_for", "expectations")
    }


def test_a_failed_blocking_expectation_runs_before_the_rules_and_makes_the_domain_not_assessed(tmp_path, monkeypatch):
    import csv

    import checks.ingest
    from assets.resources import ReporterSettings, Warehouse
    from compliance.expectations import ExpectationOutcome, write_data_quality
    from compliance.samples.generate import GenerateOptions, generate
    from pipelines.definitions import ALL_ASSETS

    generate(GenerateOptions(out_dir=tmp_path / "exports", tickets=20, privacy_requests=5, security_reports=0))
    recorded = checks.ingest.record_expectations

    def with_a_failure(con, table, source, policy, as_of):
        outcomes = recorded(con, table, source, policy, as_of)
        if source == "tickets":
            outcomes.append(
                ExpectationOutcome(
                    "tickets",
                    "expect_column_values_to_be_unique",
                    "ticket_id",
                    False,
                    2,
                    "2 rows share an ID",
                    True,
                    "tickets: 2 rows share a ticket_id",
                )
            )
            write_data_quality(con, outcomes)
        return outcomes

    monkeypatch.setattr("checks.ingest.record_expectations", with_a_failure)
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={
            "settings": ReporterSettings(
                exports_dir=str(tmp_path / "exports"), out_dir=str(tmp_path / "out"), as_of="2026-11-01T00:00:00Z"
            ),
            "warehouse": Warehouse(path=str(tmp_path / "out" / "warehouse.duckdb")),
        },
        raise_on_error=False,
    )
    assert result.success  # a WARN: the run goes on
    evaluations = {
        (evaluation.asset_key.to_user_string(), evaluation.check_name): (evaluation.passed, evaluation.severity)
        for evaluation in result.get_asset_check_evaluations()
    }
    assert evaluations[("staged_tickets", "expectations")] == (False, dg.AssetCheckSeverity.WARN)
    assert evaluations[("staged_privacy_requests", "expectations")][0] is True
    # the rules read the table only after its checks ran
    order = [event.step_key for event in result.all_events if event.event_type_value == "STEP_START"]
    assert order.index("staged_tickets_checks") < order.index("ticket_sla")
    assert order.index("staged_privacy_requests_checks") < order.index("privacy_findings")
    with (tmp_path / "out" / "evidence" / "verdicts.csv").open(encoding="utf-8") as handle:
        verdicts = {row["rule_id"]: row for row in csv.DictReader(handle)}
    assert verdicts["SUP-TECH-STD"]["verdict"] == "not assessed"
    assert "tickets: 2 rows share a ticket_id" in verdicts["SUP-TECH-STD"]["reason"]
    assert verdicts["PRIV-COMPLETE"]["verdict"] != "not assessed"


def _sensor_tick() -> dg.SensorResult:
    """One tick of the landing-folder sensor with the resources of `dagster dev`, as built at import."""
    with dg.instance_for_test() as instance:
        return landing_folder_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))


def test_resources_read_the_environment_when_a_tick_starts_not_at_import(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "tickets.csv").write_text("ticket_id\nT1\n", encoding="utf-8")
    # Set after pipelines.definitions was imported: only a value read when the tick starts can see it.
    monkeypatch.setenv("CR_EXPORTS_DIR", str(landing))
    monkeypatch.setenv("CR_OUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("CR_POLICY", "platform")
    monkeypatch.setenv("CR_WAREHOUSE", str(tmp_path / "out" / "warehouse.duckdb"))
    result = _sensor_tick()
    assert [request.tags["compliance/landing_files"] for request in result.run_requests] == ["tickets.csv"]


def test_an_unset_variable_fails_with_its_name(monkeypatch):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(Exception, match="CR_EXPORTS_DIR"):
        _sensor_tick()


def test_a_failed_accounting_stops_the_steps_downstream(tmp_path, monkeypatch):
    from assets.ingest import staged
    from assets.resources import ReporterSettings, Warehouse
    from assets.sla import ticket_sla
    from compliance.samples.generate import GenerateOptions, generate

    generate(
        GenerateOptions(
            out_dir=tmp_path / "exports",
            tickets=20,
            privacy_requests=0,
            security_reports=0,
            incidents=0,
            retention_records=0,
        )
    )
    monkeypatch.setattr(
        "checks.ingest.accounting_problems", lambda con, result: ["tickets.csv: 1 row read, 0 accounted for"]
    )
    checks = [
        check for check in ALL_CHECKS if check.node_def.name in ("staged_tickets_checks", "staged_ticket_events_checks")
    ]
    result = dg.materialize(
        [staged["tickets"], staged["ticket_events"], *checks, ticket_sla],
        resources={
            "settings": ReporterSettings(
                exports_dir=str(tmp_path / "exports"), out_dir=str(tmp_path / "out"), as_of="2026-11-01T00:00:00Z"
            ),
            "warehouse": Warehouse(path=str(tmp_path / "out" / "warehouse.duckdb")),
        },
        raise_on_error=False,
    )
    assert not result.success
    failed = {event.step_key for event in result.all_events if event.is_step_failure}
    assert failed == {"staged_tickets_checks", "staged_ticket_events_checks"}  # the loads themselves succeeded
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert "ticket_sla" not in materialized
    accounting = {
        evaluation.asset_key.to_user_string(): evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "rows_accounted_for"
    }
    assert accounting == {"staged_tickets": False, "staged_ticket_events": False}
