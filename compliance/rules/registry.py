"""Which module evaluates each rule kind of :mod:`compliance.rule_kinds`, and the steps that run them.

A kind without a module here fails at import, so a kind added to the registry cannot load and then judge nothing.
"""

from __future__ import annotations

from datetime import datetime
from types import ModuleType

import duckdb

from compliance.policy import Policy
from compliance.rule_kinds import DOMAINS, RULE_KINDS
from compliance.rules import (
    categorisation,
    completeness,
    privacy,
    retention,
    secrets_in_text,
    security,
    status,
    ticket_clocks,
)
from compliance.rules.common import keep_waiver_outcomes, prepare_waivers, write_at_risk_items

# The rules steps (assets/rules.py, one asset `<step>_findings` each): the modules each evaluates, in this order.
# Completeness appends to the secret scan's data_quality results and reads the first-response clocks of
# ticket_sla; categorisation (TG-MAILBOX, domain tickets) appends there too and reads the tickets' quarantine,
# which vendor_reconciliation completes with the records a conversion (mbox) quarantined.
RULE_STEPS: dict[str, tuple[ModuleType, ...]] = {
    "privacy": (privacy,),
    "security": (security,),
    "status": (status,),
    "retention": (retention,),
    "data_quality": (secrets_in_text, completeness, categorisation),
}

# kind -> the module that evaluates it. The ticket clocks are evaluated by ticket_clocks.evaluate_ticket_clocks
# (the ticket_sla asset); every module of a whole domain evaluates each kind of that domain.
EVALUATED_BY: dict[str, ModuleType] = {
    **{kind: ticket_clocks for kind in (*ticket_clocks.CLOCK_KINDS, *ticket_clocks.EVENT_CLOCK_KINDS)},
    "secrets_in_text": secrets_in_text,
    "information_completeness": completeness,
    "categorisation": categorisation,
    **{
        kind: module
        for module in (privacy, security, status, retention)
        for kind, spec in RULE_KINDS.items()
        if spec.domain == module.DOMAIN
    },
}

_UNEVALUATED = set(RULE_KINDS) - set(EVALUATED_BY)
if _UNEVALUATED or set(EVALUATED_BY) - set(RULE_KINDS):
    raise RuntimeError(
        f"rule kinds without an evaluating module, or modules for unknown kinds: {sorted(_UNEVALUATED ^ (set(EVALUATED_BY) - set(RULE_KINDS)))}"
    )

# The tables of other steps each rules step reads besides the staged exports, by the name of the asset writing
# them (completeness reads the first-response clocks of ticket_sla; categorisation the tickets' quarantine that
# vendor_reconciliation completes). The staged exports a step reads are derived: ``step_sources``.
STEP_READS: dict[str, tuple[str, ...]] = {"data_quality": ("ticket_sla", "vendor_reconciliation")}


def step_kinds(step: str) -> tuple[str, ...]:
    """The rule kinds evaluated by the modules of a rules step, in the registry's order."""
    return tuple(kind for kind, module in EVALUATED_BY.items() if module in RULE_STEPS[step])


def step_sources(step: str) -> tuple[str, ...]:
    """The exports (source names) that feed a rules step: its domain's inputs, the sources of every kind its
    modules evaluate (compliance.rule_kinds) and the waivers every step applies, each once, in that order."""
    domain = DOMAINS.get(step)
    names = [
        *(domain.inputs if domain else ()),
        *(s for kind in step_kinds(step) for s in RULE_KINDS[kind].inputs.sources),
        "waivers",
    ]
    return tuple(dict.fromkeys(names))


def evaluate_step(con: duckdb.DuckDBPyConnection, step: str, policy: Policy, as_of: datetime) -> dict[str, int]:
    """Run the modules of one rules step in order, the waivers applied (``waiver_outcomes_<step>``); returns the
    number of violations it recorded."""
    prepare_waivers(con, policy, as_of)
    if step in DOMAINS:  # empty until the domain's finish_domain writes it: no open item of an earlier run stays
        write_at_risk_items(con, step)
    for module in RULE_STEPS[step]:
        module.evaluate(con, policy, as_of)
    keep_waiver_outcomes(con, step)
    violations = con.execute(f"SELECT count(*) FROM violations_{step}").fetchall()[0][0]
    return {"violations": int(violations)}
