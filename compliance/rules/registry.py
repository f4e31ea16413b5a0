"""Which module evaluates each rule kind of :mod:`compliance.rule_kinds`, and the steps that run them.

A kind without a module here fails at import, so a kind added to the registry cannot load and then judge nothing.
"""

from __future__ import annotations

from types import ModuleType

from compliance.rule_kinds import RULE_KINDS
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
