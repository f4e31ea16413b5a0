"""The mbox adapter (profile email-support) on hand-made archives, the end-to-end run on its output, and
quarantine reasons that never quote a secret."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import mailbox
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import write

from compliance.adapters.base import AdapterOptions, ConversionError, write_conversion
from compliance.adapters.mbox import convert
from compliance.ingest.staging import ingest_source
from compliance.policy import load_policy

SUPPORT = "support@telegram.org"


@pytest.fixture(scope="module")
def email_policy():
    return load_policy("email-support")


def _b64(text: str, charset: str = "utf-8") -> str:
    """An RFC 2047 encoded word."""
    return f"=?{charset}?b?{base64.b64encode(text.encode(charset)).decode()}?="


def message(
    sender: str,
    to: str,
    subject: str,
    body: str,
    date: str | None,
    message_id: str | None,
    in_reply_to: str | None = None,
    headers: dict | None = None,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    if date is not None:
        mail["Date"] = date
    if message_id:
        mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail


def raw_message(headers: dict[str, str], body: bytes, charset: str = "utf-8") -> bytes:
    """A message with its header values exactly as given (EmailMessage would rewrite a broken Date)."""
    lines = [f"{name}: {value}" for name, value in headers.items()]
    lines += ["MIME-Version: 1.0", f"Content-Type: text/plain; charset={charset}", "Content-Transfer-Encoding: base64"]
    return ("\n".join(lines) + "\n\n" + base64.b64encode(body).decode() + "\n").encode("ascii")


def write_mbox(path: Path, messages: list) -> Path:
    box = mailbox.mbox(str(path))
    for item in messages:
        box.add(item)
    box.flush()
    box.close()
    return path


GB_SUBJECT = "[账户安全] 发现异常登录活动请求协助"
REQUEST_BODY = (
    "我的账号被盗，无法登录。\n手机号：+86 138 0013 8000\n用户名：@durov_fan\n账户ID：123456789\n"
    "设备：iPhone 15 Pro，系统：iOS 17.2，应用版本：10.5.2"
)


def inbox_messages() -> list:
    gbk_request = raw_message(
        {
            "From": "Li Lei <lilei@example.cn>",
            "To": "security@telegram.org",
            "Subject": _b64(GB_SUBJECT, "gb2312"),
            "Date": "Wed, 04 Nov 2026 09:00:00 +0800",
            "Message-ID": "<gb-1@example.cn>",
        },
        "有人登录了我的账户，系统：Android 14".encode("gbk"),
        "gbk",
    )
    return [
        # Thread 1: mailbox support@, urgent keyword, auto-reply with a ticket number, agent reply (in sent.mbox),
        # customer follow-up quoting the agent.
        message(
            "Alice <alice@example.com>",
            SUPPORT,
            "[技术问题] 账号被盗，无法登录",
            REQUEST_BODY,
            "Mon, 02 Nov 2026 10:00:00 +0800",
            "req-1@example.com",
        ),
        message(
            "Telegram Support <noreply@telegram.org>",
            "alice@example.com",
            "Re: [技术问题] 账号被盗，无法登录",
            "我们已收到您的邮件。您的工单号：TG-20261102-0001，预计处理时间24-48小时。",
            "Mon, 02 Nov 2026 02:05:00 +0000",
            "ack-1@telegram.org",
            "req-1@example.com",
            {"Auto-Submitted": "auto-replied"},
        ),
        message(
            "alice@example.com",
            SUPPORT,
            "Re: [技术问题] 账号被盗，无法登录",
            "谢谢！补充：问题从昨天开始。\n\n> 您好，请确认……\n> 旧的引用",
            "Wed, 04 Nov 2026 08:00:00 +0000",
            "req-1-followup@example.com",
            "agent-1@telegram.org",
        ),
        # Thread 2: no mailbox, English subject tag; the agent answers without In-Reply-To (subject fallback).
        message(
            "bob@example.org",
            "helpdesk@example.net",
            "[Account security] Strange login",
            "Someone logged in from another country.",
            "Tue, 03 Nov 2026 08:00:00 -0500",
            "req-2@example.org",
        ),
        message(
            "Agent Li <agent.li@telegram.org>",
            "bob@example.org",
            "RE: [Account security] Strange login",
            "We are looking into it.",
            "Thu, 05 Nov 2026 13:00:00 +0000",
            "agent-2@telegram.org",
        ),
        # Thread 3: a broken Date quoting a card number, and a reply to it.
        raw_message(
            {
                "From": "carol@example.com",
                "To": "abuse@telegram.org",
                "Subject": _b64("[滥用举报] 垃圾信息"),
                "Date": "sometime 4111 1111 1111 1111",
                "Message-ID": "<req-3@example.com>",
            },
            b"spam bot",
        ),
        message(
            SUPPORT,
            "carol@example.com",
            "Re: [滥用举报] 垃圾信息",
            "Thanks",
            "Fri, 06 Nov 2026 10:00:00 +0000",
            "agent-3@telegram.org",
            "req-3@example.com",
        ),
        # Thread 4: no Date at all.
        message(
            "dave@example.com", "legal@telegram.org", "[legal] DMCA notice", "copyright", None, "req-4@example.com"
        ),
        # Thread 5: a Date without a time zone.
        raw_message(
            {
                "From": "erin@example.com",
                "To": SUPPORT,
                "Subject": "App crashes",
                "Date": "Mon, 09 Nov 2026 10:00:00",
                "Message-ID": "<req-5@example.com>",
            },
            b"crash",
        ),
        # Thread 6: press@ mailbox, complex keyword, "-0000" (UTC, local zone unknown), never answered.
        message(
            "frank@example.com",
            "press@telegram.org",
            "[功能咨询] Bot API 企业版开通申请",
            "企业客户",
            "Tue, 10 Nov 2026 12:00:00 -0000",
            "req-6@example.com",
        ),
        # Thread 7: neither a support mailbox nor a known tag.
        message(
            "gina@example.com",
            "someone@example.com",
            "hello",
            "hi",
            "Tue, 10 Nov 2026 12:00:00 +0000",
            "req-7@example.com",
        ),
        # Thread 8: gb2312 RFC 2047 subject, gbk body, security@ mailbox.
        gbk_request,
    ]


def sent_messages() -> list:
    return [
        message(
            SUPPORT,
            "alice@example.com",
            "Re: [技术问题] 账号被盗，无法登录",
            "您好，请确认……",
            "Tue, 03 Nov 2026 09:30:00 +0000",
            "agent-1@telegram.org",
            "req-1@example.com",
        ),
        # A copy of the request (the archive holds it twice).
        message(
            "Alice <alice@example.com>",
            SUPPORT,
            "[技术问题] 账号被盗，无法登录",
            REQUEST_BODY,
            "Mon, 02 Nov 2026 10:00:00 +0800",
            "req-1@example.com",
        ),
    ]


@pytest.fixture()
def archive(tmp_path) -> list[Path]:
    return [write_mbox(tmp_path / "inbox.mbox", inbox_messages()), write_mbox(tmp_path / "sent.mbox", sent_messages())]


@pytest.fixture()
def converted(archive, email_policy):
    return convert(archive, AdapterOptions(policy=email_policy))


def rows(frame) -> dict[str, dict]:
    return {row["ticket_id"]: row for row in frame.iter_rows(named=True)}


def test_accounting_counts_messages(converted):
    inputs = {record.file: record for record in converted.inputs}
    assert inputs["inbox.mbox"].rows_read == 12 and inputs["sent.mbox"].rows_read == 2
    for record in converted.inputs:
        assert record.rows_read == record.rows_converted + record.rows_quarantined
    # inbox: the broken-Date thread (2), no Date, no zone, unknown channel; sent: the duplicate request.
    assert inputs["inbox.mbox"].rows_quarantined == 5 and inputs["sent.mbox"].rows_quarantined == 1
    in_tickets = converted.tables["ticket_events"].height + converted.tables["tickets"].height
    assert in_tickets == 14 - 6


def test_threads_become_tickets_with_channel_tier_and_times(converted):
    tickets = rows(converted.tables["tickets"])
    assert len(tickets) == 4
    first = tickets["TG-20261102-0001"]  # the number the auto-reply announced
    assert (first["channel"], first["tier"]) == ("technical", "urgent")
    assert (first["created_at"], first["first_response_at"], first["acknowledged_at"]) == (
        "2026-11-02T02:00:00Z",
        "2026-11-03T09:30:00Z",
        "2026-11-02T02:05:00Z",
    )
    assert first["subject"] == "[技术问题] 账号被盗，无法登录"
    assert first["description"].startswith("我的账号被盗") and "谢谢！补充" in first["description"]
    assert "旧的引用" not in first["description"]  # quoted lines of a reply are not the customer's text
    by_subject = {row["subject"]: row for row in tickets.values()}
    fallback = by_subject["[Account security] Strange login"]
    assert fallback["ticket_id"].startswith("mbox-")
    assert (fallback["channel"], fallback["tier"], fallback["channel_source"]) == (
        "account_security",
        "general",
        "subject tag",
    )
    assert (fallback["created_at"], fallback["first_response_at"]) == ("2026-11-03T13:00:00Z", "2026-11-05T13:00:00Z")
    press = by_subject["[功能咨询] Bot API 企业版开通申请"]
    assert (press["channel"], press["tier"], press["channel_source"]) == ("media_partnership", "complex", "mailbox")
    assert (press["created_at"], press["first_response_at"]) == ("2026-11-10T12:00:00Z", None)
    decoded = by_subject[GB_SUBJECT]  # gb2312 encoded word, gbk body
    assert (decoded["channel"], decoded["created_at"]) == ("account_security", "2026-11-04T01:00:00Z")
    assert "Android 14" in decoded["description"]
    # a stable id: the same archive gives the same ids
    assert fallback["ticket_id"] == fallback["request_message_id"]


def test_events_of_a_thread(converted):
    events = converted.tables["ticket_events"].filter(ticket_id="TG-20261102-0001").sort("occurred_at")
    assert events.select("occurred_at", "event_type", "actor").rows() == [
        ("2026-11-02T02:05:00Z", "auto_ack", "system"),
        ("2026-11-03T09:30:00Z", "public_reply", "agent"),
        ("2026-11-04T08:00:00Z", "requester_reply", "requester"),
    ]


def test_quarantine_reasons(converted):
    reasons = {(row["source_file"], row["line"]): row for row in converted.quarantine.iter_rows(named=True)}
    broken = reasons[("inbox.mbox", 6)]
    assert broken["reason_code"] == "bad_timestamp" and "[REDACTED:card_number]" in broken["reason"]
    assert "4111" not in broken["reason"]
    assert reasons[("inbox.mbox", 7)]["reason_code"] == "incomplete_thread"
    assert "message 6 of inbox.mbox" in reasons[("inbox.mbox", 7)]["reason"]
    assert (reasons[("inbox.mbox", 8)]["reason_code"], reasons[("inbox.mbox", 8)]["reason"]) == (
        "missing_value",
        "Date: missing",
    )
    assert "no time zone" in reasons[("inbox.mbox", 9)]["reason"]
    assert reasons[("inbox.mbox", 11)]["reason_code"] == "unknown_value"
    assert reasons[("sent.mbox", 2)]["reason_code"] == "duplicate_id"
    assert all(row["record_id"].startswith("mbox-") for row in reasons.values())


def test_timezone_option_reads_a_date_without_zone(archive, email_policy):
    conversion = convert(archive, AdapterOptions(policy=email_policy, timezone="Asia/Shanghai"))
    tickets = {row["subject"]: row for row in conversion.tables["tickets"].iter_rows(named=True)}
    assert tickets["App crashes"]["created_at"] == "2026-11-09T02:00:00Z"
    assert tickets["App crashes"]["channel"] == "technical"


def test_written_files_keep_extra_columns(converted, tmp_path):
    write_conversion(converted, tmp_path / "out")
    with (tmp_path / "out" / "tickets.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[:2] == ["ticket_id", "channel"] and {"acknowledged_at", "messages", "channel_source"} <= set(header)
    log = json.loads((tmp_path / "out" / "conversion.json").read_text(encoding="utf-8"))
    assert log["format"] == "mbox" and "mbox" in log["format_version"]


def test_not_an_mbox_is_one_line_error(tmp_path, email_policy):
    from compliance.adapters.base import ConversionError

    with pytest.raises(ConversionError, match=r"notes\.txt: not an mbox archive"):
        convert([write(tmp_path / "notes.txt", "hello\n")], AdapterOptions(policy=email_policy))
    with pytest.raises(ConversionError, match="maps no mailbox address or subject tag"):
        convert(
            [tmp_path / "notes.txt"], AdapterOptions(policy=replace(email_policy, channels={"technical": ("tech",)}))
        )


def test_convert_then_run_gives_verdicts(archive, tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "canonical"
    assert (
        main(["convert", "--format", "mbox", *map(str, archive), "--out", str(out), "--policy", "email-support"]) == 0
    )
    with (out / "tickets.csv").open("a", encoding="utf-8", newline="") as handle:
        header = (out / "tickets.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
        csv.DictWriter(handle, header).writerow(
            {"ticket_id": "T-PLANTED", "channel": "technical", "created_at": "4111 1111 1111 1111 alice@example.com"}
        )
    run = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--exports",
                str(out),
                "--out",
                str(run),
                "--policy",
                "email-support",
                "--as-of",
                "2026-12-31T00:00:00Z",
            ]
        )
        == 0
    )
    with (run / "evidence" / "verdicts.csv").open(encoding="utf-8") as handle:
        verdicts = {row["rule_id"]: row for row in csv.DictReader(handle)}
    # urgent: answered after 31.5 h of 48; general: 2 working days of 7; complex: never answered, 14 working days passed
    # urgent: answered after 31.5 h of 48; general: one answered in 2 of 7 working days, one never answered;
    # complex: never answered and 14 working days have passed
    assert (verdicts["TG-URGENT"]["verdict"], verdicts["TG-URGENT"]["achieved"], verdicts["TG-URGENT"]["breached"]) == (
        "met",
        "1",
        "0",
    )
    assert (
        verdicts["TG-GENERAL"]["verdict"],
        verdicts["TG-GENERAL"]["achieved"],
        verdicts["TG-GENERAL"]["breached"],
    ) == ("breached", "1", "1")
    assert (verdicts["TG-COMPLEX"]["verdict"], verdicts["TG-COMPLEX"]["breached"]) == ("breached", "1")
    # one of four tickets carries every required item: under the 80 % tolerance
    assert (verdicts["TG-COMPLETE-INFO"]["verdict"], verdicts["TG-COMPLETE-INFO"]["adherence_pct"]) == (
        "breached",
        "25.0",
    )
    with (run / "evidence" / "secret_findings.csv").open(encoding="utf-8") as handle:
        assert "phone" in {row["kind"] for row in csv.DictReader(handle)}  # the text of the mail was scanned
    # a bad timestamp planted in the converted tickets carries secrets: the published quarantine redacts them
    published = (run / "evidence" / "quarantine.csv").read_text(encoding="utf-8")
    assert "T-PLANTED" in published and "[REDACTED:card_number]" in published and "[REDACTED:email]" in published
    assert "4111" not in published and "alice@example.com" not in published
    assert verdicts["TG-ACK"]["verdict"] == "breached"  # one acknowledgment in 5 min, three tickets without one
    # TG-MAILBOX: four threads categorised (mailbox or subject tag), the one sent to no known mailbox listed
    mailbox = verdicts["TG-MAILBOX"]
    assert (mailbox["verdict"], mailbox["achieved"], mailbox["breached"], mailbox["adherence_pct"]) == (
        "breached",
        "4",
        "1",
        "80.0",
    )


def test_quarantine_reasons_of_the_ingest_are_redacted_and_short(tmp_path, con, policy):
    exports = tmp_path / "exports"
    write(
        exports / "tickets.csv",
        (
            "ticket_id,channel,created_at\n"
            "T-1,technical_support,card 4111 1111 1111 1111\n"
            "T-2,technical_support,mail alice@example.com\n"
            "T-3,technical_support,password: hunter2\n"
            "T-4,technical_support," + "x" * 300 + "\n"
            "T-5,technical_support,2026-11-01T10:00:00Z\n"
        ),
    )
    result = ingest_source(con, "tickets", exports, policy)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 4)
    reasons = dict(con.execute("SELECT record_id, reason FROM quarantine").fetchall())
    assert "[REDACTED:card_number]" in reasons["T-1"] and "4111" not in reasons["T-1"]
    assert "[REDACTED:email]" in reasons["T-2"] and "alice" not in reasons["T-2"]
    assert "[REDACTED:password]" in reasons["T-3"] and "hunter2" not in reasons["T-3"]
    assert reasons["T-4"].startswith("created_at: not an ISO-8601 timestamp: xxx") and reasons["T-4"].endswith("…")
    assert len(reasons["T-4"]) == 120


# A mailing-list archive as Mailman's pipermail writes it (its "Raw text" mbox download): addresses and Message-IDs
# with "@" written " at " (Mailman's ARCHIVER_OBSCURES_EMAILADDRS, docs.mailman3.org / list.org "pipermail"), and
# an In-Reply-To rewritten to an id the archive does not hold.
LIST_ARCHIVE = """From alice at example.com  Mon Mar  2 09:00:00 2026
From: alice at example.com (Alice)
To: support at telegram.org
Date: Mon, 02 Mar 2026 09:00:00 +0000
Subject: Cannot log in
Message-ID: <m1 at example.com>

My account is locked.

From bob at helpers.example.net  Mon Mar  2 10:00:00 2026
From: bob at helpers.example.net (Bob)
To: support at telegram.org
Date: Mon, 02 Mar 2026 10:00:00 +0000
Subject: Re: Cannot log in
Message-ID: <m2 at helpers.example.net>
In-Reply-To: <m1 at example.com>

Unlocked it.

From carol at example.com  Mon Mar  2 11:00:00 2026
From: carol at example.com (Carol)
To: support at telegram.org
Date: Mon, 02 Mar 2026 11:00:00 +0000
Subject: Crash on start
Message-ID: <m3 at example.com>

It crashes.

From carol at example.com  Mon Mar  2 12:00:00 2026
From: carol at example.com (Carol)
To: support at telegram.org
Date: Mon, 02 Mar 2026 12:00:00 +0000
Subject: Re: Crash on start
Message-ID: <m4 at example.com>
In-Reply-To: <rewritten-77 at lists.example.org>

Still crashing.
"""


def _ticket_id(message_id: str) -> str:
    return "mbox-" + hashlib.sha256(message_id.encode()).hexdigest()[:16]


def test_mailing_list_archive_unmunged_threaded_and_agents_from_settings(tmp_path, email_policy):
    archive = write(tmp_path / "list.mbox", LIST_ARCHIVE)
    settings = write(tmp_path / "settings.yaml", "settings:\n  agent_addresses: [bob@helpers.example.net]\n")
    conversion = convert([archive], AdapterOptions(policy=email_policy, mapping=settings))
    tickets = rows(conversion.tables["tickets"])
    login, crash = _ticket_id("m1@example.com"), _ticket_id("m3@example.com")
    assert set(tickets) == {login, crash}  # m4's parent is absent: threaded by subject and customer
    assert (tickets[login]["created_at"], tickets[login]["first_response_at"], tickets[login]["channel"]) == (
        "2026-03-02T09:00:00Z",
        "2026-03-02T10:00:00Z",  # Bob, an agent by the setting agent_addresses
        "technical",  # the policy's channel of the support@ mailbox
    )
    assert tickets[crash]["first_response_at"] is None and tickets[crash]["messages"] == "2"
    events = conversion.tables["ticket_events"].to_dicts()
    assert [(e["ticket_id"], e["event_type"]) for e in events] == [(login, "public_reply"), (crash, "requester_reply")]
    (finding,) = [note for note in conversion.notes if note.startswith("consistency: ")]
    assert finding.startswith(f"consistency: 1 record with no message from the support side in their thread ({crash})")
    assert any("'user at domain' read as user@domain" in note for note in conversion.notes)

    # without the setting Bob is a customer: neither thread has a support-side message
    conversion = convert([archive], AdapterOptions(policy=email_policy))
    assert {row["first_response_at"] for row in conversion.tables["tickets"].to_dicts()} == {None}
    (finding,) = [note for note in conversion.notes if note.startswith("consistency: ")]
    assert finding.startswith("consistency: 2 records with no message from the support side")


def test_mbox_settings_are_checked(tmp_path, email_policy):
    archive = write(tmp_path / "list.mbox", LIST_ARCHIVE)
    settings = write(tmp_path / "settings.yaml", "settings:\n  list_munging: sometimes\n")
    with pytest.raises(ConversionError, match=r"settings\.list_munging: must be one of unmunge, keep"):
        convert([archive], AdapterOptions(policy=email_policy, mapping=settings))


def test_mailing_list_address_as_a_channel_from_the_mapping_values(tmp_path, email_policy):
    archive = write(
        tmp_path / "list.mbox", LIST_ARCHIVE.replace("To: support at telegram.org", "To: dev at lists.example.org")
    )
    mapping = write(
        tmp_path / "list.yaml",
        "values:\n  channel: {dev@lists.example.org: technical}\nsettings:\n  agent_addresses: [bob@helpers.example.net]\n",
    )
    conversion = convert([archive], AdapterOptions(policy=email_policy, mapping=mapping))
    tickets = rows(conversion.tables["tickets"])
    assert {row["channel"] for row in tickets.values()} == {"technical"} and len(tickets) == 2
    assert tickets[_ticket_id("m1@example.com")]["first_response_at"] == "2026-03-02T10:00:00Z"
    # without the mapping the list address is no support mailbox: every thread's channel is unknown
    conversion = convert([archive], AdapterOptions(policy=email_policy))
    assert conversion.tables["tickets"].height == 0
    assert set(conversion.quarantine.get_column("reason_code")) == {"unknown_value", "incomplete_thread"}
