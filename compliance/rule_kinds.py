"""The one registry of rule kinds and domains: every other list of them is derived from these two tables.

``DOMAINS`` (in the order of the evidence and the report): a domain's title in the report, its short label on the
dashboard, and the exports that feed it. ``RULE_KINDS``: each kind a policy may use, the domain it belongs to,
and what it reads: without one of its ``sources`` its verdict is "no data"; without one of its ``columns``
((source, canonical column) pairs) in the loaded files it cannot be judged ("not assessed").

The module that evaluates each kind is in :mod:`compliance.rules.registry` (which checks that every kind here has
one); a new kind is added here, there, and in ``compliance/policy.schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    title: str  # the report's section heading
    label: str  # the dashboard's headline tile
    inputs: tuple[str, ...]  # the exports (file stems) that feed it, named when the domain has no data


@dataclass(frozen=True)
class RuleInputs:
    """What a rule kind reads: without one of ``sources`` its verdict is "no data"; without one of ``columns``
    ((source, canonical column) pairs) in the loaded files it cannot be judged ("not assessed")."""

    sources: tuple[str, ...]
    columns: tuple[tuple[str, str], ...] = ()
    # A ticket clock that the ticket's event history stops instead of the ticket column (first response,
    # resolution): the kind whose stopping events, when the ticket_events export carries them, stand in.
    events_stand_in: bool = False


@dataclass(frozen=True)
class RuleKind:
    domain: str
    inputs: RuleInputs


DOMAINS: dict[str, Domain] = {
    "tickets": Domain("Tickets: support response times", "Tickets", ("tickets", "ticket_events")),
    "privacy": Domain("Privacy (data-subject) requests", "Privacy", ("privacy_requests",)),
    "security": Domain("Security disclosures", "Security", ("security_reports",)),
    "status": Domain("Platform status and incidents", "Status", ("incidents", "incident_updates")),
    "retention": Domain("Data retention", "Retention", ("retention_inventory",)),
    "data_quality": Domain("Ticket data quality", "Data quality", ("tickets",)),
}

RULE_KINDS: dict[str, RuleKind] = {
    "first_response": RuleKind(
        "tickets", RuleInputs(("tickets",), (("tickets", "first_response_at"),), events_stand_in=True)
    ),
    "senior_review": RuleKind(
        "tickets", RuleInputs(("tickets",), (("tickets", "escalated_at"), ("tickets", "senior_reviewed_at")))
    ),
    "resolution": RuleKind("tickets", RuleInputs(("tickets",), (("tickets", "resolved_at"),), events_stand_in=True)),
    "acknowledgment": RuleKind("tickets", RuleInputs(("tickets", "ticket_events"))),
    "categorisation": RuleKind("tickets", RuleInputs(("tickets",))),
    "secrets_in_text": RuleKind("data_quality", RuleInputs(("tickets",))),
    "information_completeness": RuleKind("data_quality", RuleInputs(("tickets",))),
    "security_ack": RuleKind("security", RuleInputs(("security_reports",), (("security_reports", "acknowledged_at"),))),
    "security_timeline": RuleKind(
        "security", RuleInputs(("security_reports",), (("security_reports", "timeline_sent_at"),))
    ),
    "security_embargo": RuleKind(
        "security", RuleInputs(("security_reports",), (("security_reports", "disclosed_at"),))
    ),
    "privacy_first_response": RuleKind(
        "privacy", RuleInputs(("privacy_requests",), (("privacy_requests", "first_response_at"),))
    ),
    "privacy_completion": RuleKind(
        "privacy", RuleInputs(("privacy_requests",), (("privacy_requests", "completed_at"),))
    ),
    "privacy_extension": RuleKind(
        "privacy",
        RuleInputs(
            ("privacy_requests",),
            (
                ("privacy_requests", "extended"),
                ("privacy_requests", "extension_notified_at"),
                ("privacy_requests", "completed_at"),
            ),
        ),
    ),
    "privacy_types": RuleKind("privacy", RuleInputs(("privacy_requests",))),
    "retention_after_closure": RuleKind(
        "retention",
        RuleInputs(
            ("retention_inventory",),
            (("retention_inventory", "account_closed_at"), ("retention_inventory", "deleted_at")),
        ),
    ),
    "retention_workspace_lifetime": RuleKind(
        "retention",
        RuleInputs(
            ("retention_inventory",),
            (("retention_inventory", "workspace_deleted_at"), ("retention_inventory", "deleted_at")),
        ),
    ),
    "retention_minimum": RuleKind(
        "retention", RuleInputs(("retention_inventory",), (("retention_inventory", "deleted_at"),))
    ),
    "retention_maximum_age": RuleKind(
        "retention", RuleInputs(("retention_inventory",), (("retention_inventory", "deleted_at"),))
    ),
    "maintenance_notice": RuleKind(
        "status", RuleInputs(("incidents",), (("incidents", "announced_at"), ("incidents", "scheduled_start_at")))
    ),
    "postmortem": RuleKind(
        "status", RuleInputs(("incidents",), (("incidents", "resolved_at"), ("incidents", "postmortem_published_at")))
    ),
    "live_updates": RuleKind("status", RuleInputs(("incidents", "incident_updates"), (("incidents", "started_at"),))),
    "incident_history": RuleKind("status", RuleInputs(("incidents",))),
}

_UNKNOWN_DOMAINS = {kind.domain for kind in RULE_KINDS.values()} - set(DOMAINS)
if _UNKNOWN_DOMAINS:  # a kind in a domain without results would silently drop out of the evidence
    raise RuntimeError(f"rule kinds in domains missing from DOMAINS: {sorted(_UNKNOWN_DOMAINS)}")


@dataclass(frozen=True)
class ClockStart:
    """Where an export's items start their clock, for a report period (:mod:`compliance.evidence.periods`).

    ``columns``: the first of them that has a value is the start. Without columns the rows follow the records of
    another export: ``follows`` (or, with ``follows_named_by``, the export that column of the row names), whose
    ``parent_key`` the row's ``key`` refers to (``parent_key`` empty: that export's record ID)."""

    columns: tuple[str, ...] = ()
    follows: str = ""
    key: str = ""
    parent_key: str = ""
    follows_named_by: str = ""


# Per export (file stem): where its items' clocks start. None: the export has no clock start (the retention
# inventory is a snapshot judged whole as of the as-of time). Every export of the contract is named here.
CLOCK_STARTS: dict[str, ClockStart | None] = {
    "tickets": ClockStart(("created_at",)),
    "ticket_events": ClockStart(follows="tickets", key="ticket_id", parent_key="ticket_id"),
    "privacy_requests": ClockStart(("received_at",)),
    "security_reports": ClockStart(("received_at",)),
    # an incident's clocks start when it starts; a planned maintenance without a start yet, at its scheduled start
    "incidents": ClockStart(("started_at", "scheduled_start_at")),
    "incident_updates": ClockStart(follows="incidents", key="incident_id", parent_key="incident_id"),
    "retention_inventory": None,
    # a waiver names its record and rule; it applies to that item in whichever period the item is judged
    "waivers": None,
    "vendor_sla": ClockStart(key="record_id", follows_named_by="source"),
}
