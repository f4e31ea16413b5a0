"""Rule assets: privacy, security, status-page and retention commitments evaluated on the staged exports."""

import dagster as dg

from compliance.rules import data_quality, privacy, retention, security, status
from pipelines.resources import ReporterSettings, Warehouse

_DOMAINS = {
    "privacy": (privacy, ["staged_privacy_requests"]),
    "security": (security, ["staged_security_reports"]),
    "status": (status, ["staged_incidents", "staged_incident_updates"]),
    "retention": (retention, ["staged_retention_inventory"]),
    "data_quality": (data_quality, ["staged_tickets"]),
}


def _rules_asset(domain: str) -> dg.AssetsDefinition:
    module, deps = _DOMAINS[domain]

    @dg.asset(
        name=f"{domain}_findings",
        group_name="rules",
        kinds={"duckdb"},
        deps=deps,
        description=f"Violations and figures of the {domain} commitments.",
    )
    def _asset(context: dg.AssetExecutionContext, settings: ReporterSettings, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            module.evaluate(con, settings.load_policy(), settings.as_of_instant(context))
            violations = con.execute(f"SELECT count(*) FROM violations_{domain}").fetchall()[0][0]
        return dg.MaterializeResult(metadata={"violations": int(violations)})

    return _asset


rule_assets = [_rules_asset(domain) for domain in _DOMAINS]
