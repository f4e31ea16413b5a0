"""Policy files: both shipped profiles encode every catalogued commitment; broken files get clear messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import SHARED

from compliance.policy import PolicyError, load_policy

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"


def catalog_ids(profile_heading: str) -> set[str]:
    """Commitment IDs listed in shared/spec/commitments.md under a profile heading (calendars aside)."""
    text = (SHARED / "spec" / "commitments.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    section = next(s for s in sections if s.startswith(profile_heading))
    return {
        match
        for match in re.findall(r"^\| ([A-Z]+(?:-[A-Z0-9]+)+) \|", section, flags=re.M)
        if not match.startswith("CAL-")
    }


@pytest.mark.skipif(not (SHARED / "spec").exists(), reason="shared/spec is not beside the repository")
@pytest.mark.parametrize(
    "profile,heading", [("platform", "Profile `platform`"), ("email-support", "Profile `email-support`")]
)
def test_every_catalogued_commitment_is_in_the_policy(profile, heading):
    policy = load_policy(profile)
    assert catalog_ids(heading) <= {rule.id for rule in policy.rules}
    for rule in policy.rules:
        assert rule.source_doc in policy.sources, rule.id
        assert rule.source_quote, rule.id


@pytest.mark.skipif(not (SHARED / "seeds").exists(), reason="shared/seeds is not beside the repository")
@pytest.mark.parametrize("profile", ["platform", "email-support"])
def test_quotes_come_from_the_cited_source(profile):
    policy = load_policy(profile)
    for rule in policy.rules:
        source = (SHARED / "seeds" / policy.sources[rule.source_doc]["file"]).read_text(encoding="utf-8")
        fragments = [part.strip() for part in rule.source_quote.split("...") if part.strip()]
        for fragment in fragments:
            assert fragment in source, f"{rule.id}: {fragment!r} not in source {rule.source_doc}"


def test_platform_readings(policy):
    assert policy.rule("SUP-TECH-PRIO").calendar == "CAL-BH-EST"
    assert policy.rule("SUP-TECH-PRIO").target.seconds == 4 * 3600
    assert policy.rule("PRIV-COMPLETE").setting("day_counting") == "days"
    assert policy.calendars["CAL-BH-EST"].timezone == "America/New_York"
    assert policy.priority_plans == ("plan_2", "plan_3")


def test_email_support_range_targets():
    policy = load_policy("email-support")
    urgent = policy.rule("TG-URGENT").target
    assert (urgent.seconds, urgent.expectation_seconds) == (48 * 3600, 24 * 3600)
    general = policy.rule("TG-GENERAL").target
    assert (general.working_days, general.expectation_working_days) == (7, 3)


def _broken(tmp_path: Path, edit) -> Path:
    document = yaml.safe_load((POLICY_DIR / "platform.yaml").read_text(encoding="utf-8"))
    edit(document)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def _rule(document, rule_id):
    return next(rule for rule in document["rules"] if rule["id"] == rule_id)


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            lambda d: _rule(d, "SUP-TECH-PRIO").update(kind="first_reponse"),
            "rules.SUP-TECH-PRIO.kind: unknown rule kind 'first_reponse'",
        ),
        (
            lambda d: _rule(d, "SUP-TECH-PRIO").update(target={"hours": -4}),
            "rules.SUP-TECH-PRIO.target.hours: must be a positive number",
        ),
        (
            lambda d: _rule(d, "SUP-TECH-PRIO").update(target={"fortnights": 1}),
            "rules.SUP-TECH-PRIO.target.fortnights: unknown key `fortnights` in a target",
        ),
        (
            lambda d: _rule(d, "SUP-TECH-PRIO").update(calendar="CAL-MARS"),
            "rules.SUP-TECH-PRIO.calendar: unknown calendar 'CAL-MARS'",
        ),
        (
            lambda d: _rule(d, "SUP-TECH-PRIO").update(applies_to={"channel": "fax"}),
            "rules.SUP-TECH-PRIO.applies_to.channel: unknown channel 'fax'",
        ),
        (lambda d: _rule(d, "SUP-TECH-PRIO").pop("source"), "rules.SUP-TECH-PRIO.source: missing"),
        (lambda d: d["calendars"]["CAL-BH-EST"].update(timezone="America/New_Yrok"), "calendars.CAL-BH-EST.timezone"),
        (lambda d: d.update(source_timezone="Mars/Olympus"), "source_timezone: unknown time zone 'Mars/Olympus'"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "duplicate rule id 'SUP-ACCT-STD'"),
        (lambda d: d.pop("rules"), "rules: missing"),
        (lambda d: d["tiers"].update(priority_plans=["plan_9"]), "tiers.priority_plans[0]: unknown plan 'plan_9'"),
    ],
)
def test_broken_policy_names_file_key_and_problem(tmp_path, edit, expected):
    path = _broken(tmp_path, edit)
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert expected in message
    assert "\n" not in message


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(PolicyError, match="no such policy file or profile"):
        load_policy("no-such-profile")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad.yaml: not valid YAML \(line \d+\)"):
        load_policy(bad)
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="must contain a mapping"):
        load_policy(bad)
