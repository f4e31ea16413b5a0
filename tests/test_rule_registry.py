"""The one registry of rule kinds (compliance.rule_kinds): every list of kinds and domains is derived from it."""

import importlib

import pytest

from compliance import rule_kinds
from compliance.evidence.verdicts import DOMAINS_WITH_RESULTS, RULE_SOURCES
from compliance.policy import RULE_KINDS
from compliance.rule_kinds import DOMAINS, RuleInputs, RuleKind
from compliance.rules import registry
from reports.compliance_report import DOMAIN_ORDER, DOMAIN_TITLES


def test_every_list_of_kinds_and_domains_is_the_registry():
    assert {kind: spec.domain for kind, spec in rule_kinds.RULE_KINDS.items()} == RULE_KINDS
    assert set(RULE_SOURCES) == set(rule_kinds.RULE_KINDS)
    # a domain missing from DOMAINS_WITH_RESULTS would drop out of `violations` without an error
    assert set(DOMAINS_WITH_RESULTS) == set(DOMAINS) == set(DOMAIN_ORDER) == set(DOMAIN_TITLES)
    assert set(registry.EVALUATED_BY) == set(rule_kinds.RULE_KINDS)


def test_every_kind_is_evaluated_by_a_module_of_its_steps():
    stepped = {module for modules in registry.RULE_STEPS.values() for module in modules}
    for kind, module in registry.EVALUATED_BY.items():
        # the ticket clocks run in the ticket_sla asset; every other module in one of the rules steps
        assert (
            module in stepped
            or kind in registry.ticket_clocks.CLOCK_KINDS
            or kind in registry.ticket_clocks.EVENT_CLOCK_KINDS
        )


def test_a_kind_without_an_evaluating_module_fails_at_import(monkeypatch):
    monkeypatch.setitem(rule_kinds.RULE_KINDS, "ticket_mood", RuleKind("tickets", RuleInputs(("tickets",))))
    with pytest.raises(RuntimeError, match="ticket_mood"):
        importlib.reload(registry)
    monkeypatch.undo()
    importlib.reload(registry)


def test_the_sources_of_each_rules_step_are_derived_from_the_registry(monkeypatch):
    from compliance.ingest.contract import SOURCES

    # every step applies the waivers of its rules (compliance.rules.common.apply_waivers)
    assert {step: registry.step_sources(step) for step in registry.RULE_STEPS} == {
        "privacy": ("privacy_requests", "waivers"),
        "security": ("security_reports", "waivers"),
        "status": ("incidents", "incident_updates", "waivers"),
        "retention": ("retention_inventory", "waivers"),
        "data_quality": ("tickets", "waivers"),
    }
    assert {source for step in registry.RULE_STEPS for source in registry.step_sources(step)} <= set(SOURCES)
    # a source added to a kind of the step feeds it without any other edit
    monkeypatch.setitem(
        rule_kinds.RULE_KINDS, "privacy_types", RuleKind("privacy", RuleInputs(("privacy_requests", "tickets")))
    )
    assert registry.step_sources("privacy") == ("privacy_requests", "tickets", "waivers")
