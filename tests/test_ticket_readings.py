"""One reading of a ticket's channel and tier whatever path it came in by (compliance.ingest.tickets_reading): CSV,
Parquet, JSON Lines and mbox; negated keywords; TG-MAILBOX, the share of tickets categorised."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest
from conftest import load_staged_tickets, metric_of, violations_of
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.ingest.staging import ingest_source
from compliance.ingest.tickets_reading import keyword_tier_sql
from compliance.policy import load_policy
from compliance.rules import categorisation
from compliance.rules.ticket_clocks import evaluate_ticket_clocks

UTC = UTC
AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CREATED = "2026-11-02T10:00:00Z"
ANSWERED_AFTER_72H = "2026-11-05T10:00:00Z"


@pytest.fixture(scope="module")
def email_policy():
    return load_policy("email-support")


def ticket(
    ticket_id: str,
    channel: str = "",
    subject: str = "",
    description: str = "",
    tier: str = "",
    first_response_at: str = ANSWERED_AFTER_72H,
    **extra: str,
) -> dict:
    return {
        "ticket_id": ticket_id,
        "channel": channel,
        "tier": tier,
        "created_at": CREATED,
        "first_response_at": first_response_at,
        "subject": subject,
        "description": description,
        **extra,
    }


def write_tickets(folder, file_format: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema={name: pl.Utf8 for name in rows[0]})
    if file_format == "csv":
        frame.write_csv(folder / "tickets.csv")
    elif file_format == "parquet":
        frame.write_parquet(folder / "tickets.parquet")
    else:
        frame.write_ndjson(folder / "tickets.jsonl")


def staged(con) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT ticket_id, channel, channel_source, tier, tier_source FROM staged_tickets"
        ).fetchall()
    }


FORMATS = ["csv", "parquet", "jsonl"]


@pytest.mark.parametrize("file_format", FORMATS)
def test_every_file_format_reads_urgency_from_the_keywords(con, tmp_path, email_policy, file_format):
    write_tickets(
        tmp_path,
        file_format,
        [
            ticket("HACKED", "technical", "Help", "My account was hacked yesterday"),
            ticket("PLAIN", "technical", "Question", "How do I change my name?"),
            ticket("EXPLICIT", "technical", "account was hacked", "", tier="complex"),
            ticket("API", "technical", "Bot API limits", "rapid growth"),
        ],
    )
    result = ingest_source(con, "tickets", tmp_path, email_policy)
    assert result.rows_loaded == 4
    rows = staged(con)
    assert rows["HACKED"][2:] == ("urgent", "keywords")
    assert rows["PLAIN"][2:] == ("general", "default")
    assert rows["EXPLICIT"][2:] == ("complex", "column")
    assert rows["API"][2:] == ("complex", "keywords")
    # the example: answered after 72 h, an urgent ticket breaches the 48 h commitment
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    assert con.execute("SELECT rule_id, state FROM ticket_sla WHERE record_id = 'HACKED'").fetchall() == [
        ("TG-URGENT", "breached")
    ]


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_blank_channel_comes_from_the_subject_tag_in_every_format(con, tmp_path, email_policy, file_format):
    write_tickets(
        tmp_path,
        file_format,
        [
            ticket("TAG", "", "[账户安全] 异常登录"),
            ticket("RE-TAG", "", "Re: [Technical] app crashes"),
            ticket("NO-TAG", "", "no tag here"),
            ticket("UNKNOWN", "fax", "[账户安全] a wrong channel value is not replaced"),
            ticket("MAILBOX", "Security@Telegram.org", "whatever"),
            ticket("TAG-VALUE", "[滥用举报]", ""),
            ticket("KEY", "legal", ""),
        ],
    )
    result = ingest_source(con, "tickets", tmp_path, email_policy)
    assert (result.rows_loaded, result.rows_quarantined) == (5, 2)
    rows = staged(con)
    assert rows["TAG"][:2] == ("account_security", "subject tag")
    assert rows["RE-TAG"][:2] == ("technical", "subject tag")
    assert rows["MAILBOX"][:2] == ("account_security", "mailbox")
    assert rows["TAG-VALUE"][:2] == ("abuse", "subject tag")
    assert rows["KEY"][:2] == ("legal", "column")
    reasons = dict(con.execute("SELECT record_id, reason_code || ': ' || reason FROM quarantine").fetchall())
    assert reasons == {
        "NO-TAG": "missing_value: channel: missing required value",
        "UNKNOWN": "unknown_value: channel: unknown value fax",
    }


NEGATED = [
    "不紧急的问题",
    "这不是紧急问题",
    "并不紧急",
    "not urgent",
    "Not urgent at all",
    "isn't urgent",
    "non-urgent question",
    "账号没有被冻结",
]


@pytest.mark.parametrize("text", NEGATED)
def test_a_negated_keyword_does_not_make_a_ticket_urgent(memory_con, email_policy, text):
    tier = keyword_tier_sql(email_policy, "?", "NULL")
    assert memory_con.execute(f"SELECT {tier.replace('?', '$1')}", [text]).fetchall() == [(None,)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("not urgent, but my account was hacked", "urgent"),  # another keyword, not negated
        ("紧急！不紧急是假的", "urgent"),  # the first mention is not negated
        ("not really urgent", "urgent"),  # a negation further away does not negate (documented)
        ("knot urgent", "urgent"),  # a Latin negation must start a word
        ("urgent", "urgent"),
        ("rapid reply please", None),  # "API" must stand as a word
    ],
)
def test_negation_is_only_the_direct_form(memory_con, email_policy, text, expected):
    tier = keyword_tier_sql(email_policy, "$1", "NULL")
    assert memory_con.execute(f"SELECT {tier}", [text]).fetchall() == [(expected,)]


# A slow, obvious reference of the keyword reading, in Python: remove every negation + keyword occurrence, then
# look for each tier's keywords in order.
def reference_tier(policy, text: str) -> str | None:
    def bounded(word: str) -> str:
        part = re.escape(word)
        if re.match(r"\w", word, re.ASCII):
            part = r"(?<![A-Za-z0-9_])" + part
        if re.search(r"\w$", word, re.ASCII):
            part += r"(?![A-Za-z0-9_])"
        return part

    keywords = [word for _, words in policy.urgency_keywords for word in words]
    negations = "|".join(
        (r"(?<![A-Za-z0-9_])" if re.match(r"\w", n, re.ASCII) else "") + re.escape(n) for n in policy.urgency_negations
    )
    text = re.sub(f"(?i)(?:{negations})\\s?(?:{'|'.join(map(bounded, keywords))})", " ", text)
    for tier, words in policy.urgency_keywords:
        if any(re.search("(?i)" + bounded(word), text) for word in words):
            return tier
    return None


PIECES = [
    "urgent",
    "Urgent",
    "not",
    "not ",
    "no ",
    "isn't ",
    "non-",
    "紧急",
    "不",
    "不是",
    "并不",
    "账号被盗",
    "API",
    "rapid",
    "hacked",
    "x",
    " ",
    "，",
    "API问题",
    "frozen",
    "legal",
    "媒体",
    "没有",
    "被冻结",
    "k",
    "_",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8))
def test_keyword_reading_matches_a_slow_reference(email_policy, pieces):
    text = "".join(pieces)
    con = duckdb.connect()
    try:
        got = con.execute(f"SELECT {keyword_tier_sql(email_policy, '$1', 'NULL')}", [text]).fetchall()[0][0]
    finally:
        con.close()
    assert got == reference_tier(email_policy, text), text


def test_platform_tier_from_the_plan_is_recorded(con, tmp_path, policy):
    write_tickets(
        tmp_path,
        "csv",
        [
            {"ticket_id": "P2", "channel": "sales", "plan": "plan_2", "tier": "", "created_at": CREATED},
            {"ticket_id": "FREE", "channel": "sales", "plan": "free", "tier": "", "created_at": CREATED},
            {"ticket_id": "NONE", "channel": "sales", "plan": "", "tier": "", "created_at": CREATED},
            {"ticket_id": "SET", "channel": "sales", "plan": "plan_3", "tier": "standard", "created_at": CREATED},
        ],
    )
    ingest_source(con, "tickets", tmp_path, policy)
    rows = staged(con)
    assert {key: value[2:] for key, value in rows.items()} == {
        "P2": ("priority", "plan"),
        "FREE": ("standard", "default"),
        "NONE": ("standard", "default"),
        "SET": ("standard", "column"),
    }


def test_clocks_on_a_staged_table_without_readings_read_the_same_way(con, email_policy):
    """A staged table not written by ingest (no tier_source) is read by the same function in the clocks."""
    created = datetime(2026, 11, 2, 10, tzinfo=UTC)
    load_staged_tickets(
        con,
        [
            {
                "ticket_id": "A",
                "channel": "technical",
                "created_at": created,
                "subject": "账号被盗",
                "first_response_at": created + timedelta(hours=72),
            },
            {
                "ticket_id": "B",
                "channel": "technical",
                "created_at": created,
                "subject": "不紧急",
                "first_response_at": created + timedelta(hours=72),
            },
        ],
    )
    evaluate_ticket_clocks(con, email_policy, AS_OF)
    assert con.execute("SELECT record_id, rule_id, state FROM ticket_sla ORDER BY record_id").fetchall() == [
        ("A", "TG-URGENT", "breached"),
        ("B", "TG-GENERAL", "achieved"),
    ]


def test_mbox_and_files_read_urgency_and_tags_the_same_way(tmp_path, email_policy):
    from compliance.adapters.base import AdapterOptions
    from compliance.adapters.mbox import convert
    from tests.test_adapters_mbox import message, write_mbox

    archive = write_mbox(
        tmp_path / "inbox.mbox",
        [
            message(
                "alice@example.com",
                "someone@example.com",
                "[账户安全] 不紧急：改名",
                "请问如何改名？",
                "Mon, 02 Nov 2026 10:00:00 +0000",
                "a@example.com",
            ),
            message(
                "bob@example.com",
                "abuse@telegram.org",
                "Spam",
                "My account was hacked",
                "Mon, 02 Nov 2026 11:00:00 +0000",
                "b@example.com",
            ),
        ],
    )
    tickets = convert([archive], AdapterOptions(policy=email_policy)).tables["tickets"]
    read = {
        row["subject"]: (row["channel"], row["channel_source"], row["tier"], row["tier_source"])
        for row in tickets.iter_rows(named=True)
    }
    assert read == {
        "[账户安全] 不紧急：改名": ("account_security", "subject tag", "general", "default"),
        "Spam": ("abuse", "mailbox", "urgent", "keywords"),
    }


def test_ingest_keeps_the_readings_an_adapter_recorded(con, tmp_path, email_policy):
    write_tickets(
        tmp_path,
        "csv",
        [
            ticket("M1", "technical", "no keyword", tier="urgent", channel_source="mailbox", tier_source="keywords"),
            ticket("M2", "technical", "no keyword", tier="", channel_source="bogus", tier_source="keywords"),
        ],
    )
    ingest_source(con, "tickets", tmp_path, email_policy)
    rows = staged(con)
    assert rows["M1"][1:] == ("mailbox", "urgent", "keywords")
    # a reading word that is not one of ours, or a reading without the value it describes, is worked out here
    assert rows["M2"][1:] == ("column", "general", "default")


def test_tg_mailbox_is_the_share_of_tickets_categorised(con, tmp_path, email_policy):
    write_tickets(
        tmp_path,
        "csv",
        [
            ticket("MAILBOX", "security@telegram.org"),
            ticket("TAG", "", "[技术问题] crash"),
            ticket("KEY", "technical"),
            ticket("NONE", "", "no tag"),
        ],
    )
    ingest_source(con, "tickets", tmp_path, email_policy)
    categorisation.evaluate(con, email_policy, AS_OF)
    figures = metric_of(con, "TG-MAILBOX", domain="data_quality")
    assert (figures["domain"], figures["achieved"], figures["breached"], figures["denominator"]) == ("tickets", 3, 1, 4)
    assert figures["adherence_pct"] == 75.0
    for segment, achieved in (
        ("channel_source=mailbox", 1),
        ("channel_source=subject tag", 1),
        ("channel_source=column", 1),
    ):
        assert metric_of(con, "TG-MAILBOX", segment=segment, domain="data_quality")["achieved"] == achieved
    listed = violations_of(con, "TG-MAILBOX", domain="data_quality")
    assert set(listed) == {"NONE"}
    assert listed["NONE"]["severity"] == "warning" and "tickets.csv, line 5" in listed["NONE"]["explanation"]
