"""TG-COMPLETE-INFO: which required items a request lacks, the share of complete requests, their response times,
and the verdict against the rule's own tolerance."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import load_staged_tickets, metric_of, ts, violations_of, write

from compliance.evidence.verdicts import build_verdicts, combine_results
from compliance.ingest.staging import prepare_warehouse
from compliance.policy import PolicyError, load_policy
from compliance.rules import completeness, secrets_in_text
from compliance.rules.ticket_clocks import evaluate_ticket_clocks

AS_OF = ts("2026-11-30 00:00")
MON = ts("2026-11-02 10:00")
COMPLETE = "手机号：+86 138 0013 8000\n用户名：@durov_fan\n账户ID：123456789\n系统：iOS 17.2，应用版本：10.5.2"
ITEMS = ("phone_number", "username", "account_id", "device_os_app_version")


@pytest.fixture(scope="module")
def email_policy():
    return load_policy("email-support")


def evaluate(con, policy, tickets: list[dict]) -> dict[str, set[str]]:
    """Run the clocks, the secret scan and completeness; the missing items per ticket."""
    load_staged_tickets(con, [{"channel": "technical", "created_at": MON, **ticket} for ticket in tickets])
    evaluate_ticket_clocks(con, policy, AS_OF)
    secrets_in_text.evaluate(con, policy, AS_OF)
    completeness.evaluate(con, policy, AS_OF)
    return {
        record: set(missing)
        for record, missing in con.execute("SELECT record_id, missing FROM information_completeness").fetchall()
    }


EDGES = [
    # (ticket text, items it lacks besides the three others it carries)
    ("phone +86 138 0013 8000", "phone_number", False),
    ("phone 0044 20 7946 0958", "phone_number", False),
    ("tel: +1 (415) 555-0100", "phone_number", False),
    ("手机号：+86138****8888", "phone_number", False),
    ("phone 13800138000", "phone_number", True),  # no country code
    ("order 1004001234567", "phone_number", True),
    ("my username is @durov_fan", "username", False),
    ("username: durov_fan", "username", False),
    ("write to alice@example.com", "username", True),  # an e-mail address is not a username
    ("用户名：@abc", "username", True),  # too short for a username
    ("account ID: 123456789", "account_id", False),
    ("账户ID：123456789", "account_id", False),
    ("ID: 98765", "account_id", False),
    ("ticket 123456789", "account_id", True),  # a number without an ID label
    ("user id 1234", "account_id", True),  # too short
    ("iPhone 15 Pro, iOS 17.2", "device_os_app_version", False),
    ("Android 14", "device_os_app_version", False),
    ("Telegram 10.5.2", "device_os_app_version", False),
    ("应用版本：10.5.2", "device_os_app_version", False),
    ("my iPhone", "device_os_app_version", True),  # a device without any version
    ("on Windows", "device_os_app_version", True),
]
OTHERS = {
    "phone_number": "@durov_fan account ID: 123456789 iOS 17.2",
    "username": "+86 138 0013 8000 account ID: 123456789 iOS 17.2",
    "account_id": "+86 138 0013 8000 @durov_fan iOS 17.2",
    "device_os_app_version": "+86 138 0013 8000 @durov_fan account ID: 123456789",
}


def test_detection_at_the_edges(con, email_policy):
    tickets = [
        {"ticket_id": f"E{n}", "subject": text, "description": OTHERS[item]}
        for n, (text, item, _lacks) in enumerate(EDGES)
    ]
    missing = evaluate(con, email_policy, tickets)
    for n, (text, item, lacks) in enumerate(EDGES):
        assert missing[f"E{n}"] == ({item} if lacks else set()), text


def test_share_response_times_and_warnings(con, email_policy):
    # Complete general tickets answered after 1 and 2 working days, incomplete ones after 3, 5 and 6 (Mon 10:00 start).
    day = timedelta(days=1)
    tickets = [
        {"ticket_id": "C1", "description": COMPLETE, "first_response_at": MON + day},
        {"ticket_id": "C2", "description": COMPLETE, "first_response_at": MON + 2 * day},
        {"ticket_id": "I1", "description": "消息发送失败", "first_response_at": MON + 3 * day},
        {
            "ticket_id": "I2",
            "description": "app crashes, iOS 17.2",
            "first_response_at": MON + 7 * day,
        },  # Mon: 5 working days
        {"ticket_id": "I3", "description": "password: hunter2", "first_response_at": MON + 8 * day},
        {"ticket_id": "I4", "description": "never answered"},
        {"ticket_id": "LATER", "created_at": AS_OF + day, "description": "after the as-of time"},
    ]
    missing = evaluate(con, email_policy, tickets)
    assert set(missing) == {"C1", "C2", "I1", "I2", "I3", "I4"}
    assert missing["I2"] == {"phone_number", "username", "account_id"}
    overall = metric_of(con, "TG-COMPLETE-INFO", domain="data_quality")
    assert (overall["achieved"], overall["breached"], overall["denominator"]) == (2, 4, 6)
    assert overall["adherence_pct"] == pytest.approx(100 * 2 / 6)
    complete = metric_of(con, "TG-COMPLETE-INFO", segment="information=complete", domain="data_quality")
    incomplete = metric_of(con, "TG-COMPLETE-INFO", segment="information=incomplete", domain="data_quality")
    assert (complete["median_seconds"], complete["p90_seconds"]) == (1.5 * 86400, pytest.approx(1.9 * 86400))
    assert incomplete["median_seconds"] == 5 * 86400  # I4 has no response: not in the statistics
    assert incomplete["p90_seconds"] == pytest.approx(5.8 * 86400)
    per_tier = metric_of(con, "TG-COMPLETE-INFO", segment="information=incomplete;tier=general", domain="data_quality")
    assert per_tier["breached"] == 4
    phone = metric_of(con, "TG-COMPLETE-INFO", segment="item=phone_number", domain="data_quality")
    assert (phone["achieved"], phone["breached"]) == (2, 4)
    # the breakdown never adds an all/all row of tickets x items
    assert (
        con.execute(
            "SELECT count(*) FROM metrics_data_quality WHERE rule_id = 'TG-COMPLETE-INFO' "
            "AND period = 'all' AND segment = 'all'"
        ).fetchall()[0][0]
        == 1
    )
    warnings = violations_of(con, "TG-COMPLETE-INFO", domain="data_quality")
    assert set(warnings) == {"I1", "I2", "I3", "I4"}
    assert {row["severity"] for row in warnings.values()} == {"warning"}
    assert "does not carry phone number with country code, username, account ID" in warnings["I2"]["explanation"]
    assert "5 days of open time (general tier)" in warnings["I2"]["explanation"]
    assert "no first response" in warnings["I4"]["explanation"]
    assert "17.2" not in " ".join(row["explanation"] for row in warnings.values())  # names, never values
    # the secret scan's rows are still there beside them
    assert set(violations_of(con, "TG-NO-SECRETS", domain="data_quality")) == {"I3"}


@pytest.mark.parametrize("complete, verdict", [(4, "met"), (3, "breached")])
def test_verdict_uses_the_rules_tolerance(con, email_policy, complete, verdict):
    # 80 % of complete requests is met (the threshold itself is met); 60 % is not
    tickets = [{"ticket_id": f"T{n}", "description": COMPLETE if n < complete else "help"} for n in range(5)]
    evaluate(con, email_policy, tickets)
    prepare_warehouse(con)
    con.execute("INSERT INTO ingest_log (source, file, status) VALUES ('tickets', 'tickets.csv', 'loaded')")
    combine_results(con)
    build_verdicts(con, email_policy)
    row = con.execute(
        "SELECT verdict, warnings, adherence_pct FROM verdicts WHERE rule_id = 'TG-COMPLETE-INFO'"
    ).fetchall()[0]
    assert row == (verdict, 5 - complete, 100.0 * complete / 5)


def test_no_rule_or_no_tickets_writes_nothing(con, email_policy, policy):
    completeness.evaluate(con, email_policy, AS_OF)  # no staged tickets
    assert con.execute("SELECT count(*) FROM metrics_data_quality").fetchall()[0][0] == 0
    load_staged_tickets(con, [{"ticket_id": "X", "channel": "technical_support", "created_at": MON}])
    secrets_in_text.evaluate(con, policy, AS_OF)
    completeness.evaluate(con, policy, AS_OF)  # the platform profile has no completeness rule
    assert con.execute("SELECT count(*) FROM metrics_data_quality").fetchall()[0][0] == 0


@pytest.mark.parametrize(
    "settings, problem",
    [
        ("required_information: [phone_number]", "required_information: expected a mapping"),
        ("required_information: {phone: {label: phone, pattern: '(?<=x)1'}}", "look-around and back-references"),
        ("required_information: {phone: {label: phone, pattern: '([0-9'}}", "not a valid regular expression"),
        ("required_information: {phone: {pattern: '[0-9]+'}}", "required_information.phone.label: missing"),
        ("{met_min_adherence_pct: 120, required_information: {p: {label: p, pattern: x}}}", "between 0 and 100"),
    ],
)
def test_policy_refuses_broken_settings(tmp_path, settings, problem):
    text = (
        load_policy("email-support").path.read_text(encoding="utf-8").split("  - id: TG-COMPLETE-INFO")[0]
        + '  - id: TG-COMPLETE-INFO\n    kind: information_completeness\n    source: {doc: "002"}\n'
        + ("    settings: " + settings if settings.startswith("{") else "    settings:\n      " + settings)
        + "\n"
    )
    with pytest.raises(PolicyError, match=r"rules\.TG-COMPLETE-INFO\.settings\..*" + problem.replace("(", r"\(")):
        load_policy(write(tmp_path / "policy.yaml", text))


def test_policy_refuses_unknown_urgency_tier(tmp_path):
    text = load_policy("email-support").path.read_text(encoding="utf-8").replace("  complex: [API,", "  hard: [API,")
    with pytest.raises(PolicyError, match=r"urgency_keywords\.hard: unknown tier 'hard'"):
        load_policy(write(tmp_path / "policy.yaml", text))
