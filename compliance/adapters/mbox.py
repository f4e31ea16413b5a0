"""Email support (profile email-support, source 002): an mbox archive → tickets and ticket events.

Readings (each one a policy setting or written here; the policy's ``email`` and ``urgency_keywords`` sections):

* Messages are read with Python's ``mailbox`` and ``email.policy.default`` (RFC 2047 headers, any body charset).
  A body without a declared charset, declared ``us-ascii`` but holding 8-bit bytes, or in a charset Python does
  not know, and a header with raw 8-bit bytes, are decoded in the encoding detected for them
  (:mod:`compliance.ingest.encodings`: UTF-8, else cp1252 or GB18030); ``gb2312`` and ``gbk`` are read as GB18030, their
  superset, which mailers use without saying so. A byte that does not decode becomes U+FFFD and is counted in
  the file's input record. Several files are one archive: a thread may span an inbox and a sent folder.
* **Threads**: messages are joined by Message-ID / In-Reply-To / References, and by the ticket number that
  acknowledgments announce; a message with neither In-Reply-To nor References joins the thread of the same
  customer with the same subject once reply prefixes (Re:, Fwd:, 回复:, 答复:, 转发: …) are stripped.
  One thread is one ticket.
* **Who wrote it**: automatic mail (``Auto-Submitted`` other than ``no``, ``X-Autoreply``, ``X-Autorespond``,
  ``Precedence: auto_reply``, or a sender local part in ``email.auto_reply_senders``) from the support side or an
  automatic sender is an acknowledgment (``auto_ack``, TG-ACK); other mail from ``email.support_domains`` is an
  agent's reply (``public_reply``; the first one after the request is ``first_response_at``); the rest is the
  customer's (``requester_reply`` after the first). A customer's own automatic mail (out-of-office) stays in its
  thread without an event.
* **Settings** (the --mapping file's ``settings:``): ``agent_domains`` and ``agent_addresses`` add to the
  policy's ``email.support_domains`` the domains and addresses whose mail is the support side's (an agent
  writing from a personal address, a list moderator); ``list_munging`` (``unmunge``, the default, or ``keep``):
  mailing-list archives write addresses and Message-IDs as ``user at domain`` (Mailman's pipermail) and rewrite
  In-Reply-To to ids the archive does not hold; ``unmunge`` reads ``x at y`` as ``x@y`` in addresses and ids, and a
  message whose every parent is absent from the archive is threaded like one without parents (normalised subject
  and customer). A thread with no message from the support side is named in the conversion's findings. The
  --mapping file's ``values: channel:`` spellings that are addresses (``dev@lists.example.org: technical``) give
  the channel of mail sent to them, at any domain (a mailing list's address).
* **Ticket**: ``ticket_id`` is the number the first acknowledgment announces (``email.ticket_number``), else
  ``mbox-`` and a hash of the request's Message-ID; ``created_at`` is the customer's first message;
  ``channel`` is the support mailbox it was sent to (To, Cc, Delivered-To, X-Original-To; the local part of a
  channel alias address at a support domain), else its subject tag (``[技术问题]``, ``[Technical]`` … as channel
  aliases), recorded in ``channel_source`` (``mailbox`` | ``subject tag``); ``tier`` and ``tier_source`` are
  read from the subject and the first customer message by ``compliance.ingest.tickets_reading`` (urgency keywords and
  negations, the same reading ingest applies to every tickets file's subject and description);
  ``description`` is every customer message of the thread in order, quoted lines left out.
* **Dates**: a Date with an offset is converted to UTC; ``-0000`` is UTC (RFC 5322 §3.3); a Date without a
  zone is read in ``--timezone`` when given, else quarantined, like an unreadable or missing Date. A thread
  with an undatable message is quarantined whole (its times are unknown), as is a thread without a customer
  message or without a known channel, and agent or automatic mail older than the request.
* Accounting counts messages: read = in a converted thread + quarantined. The quarantine ``line`` is the
  message's position in its file (1 = the first message); its ``record_id`` the message's hashed id.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import mailbox
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from compliance.adapters.base import (
    QUARANTINE_COLUMNS,
    Adapter,
    AdapterOptions,
    Conversion,
    ConversionError,
    empty_quarantine,
    input_record,
)
from compliance.adapters.findings import consistency_findings
from compliance.adapters.settings import Setting, format_settings
from compliance.adapters.value_overrides import spelling_lookup, value_overrides
from compliance.core.secrets import redact
from compliance.core.sql import ident
from compliance.ingest.encodings import Decoding, codec_name, decode_bytes, guess_encoding
from compliance.ingest.tickets_reading import channel_vocabulary, keyword_tier_sql, tag_channel_sql, tier_reading_sql
from compliance.policy import Policy, load_policy

FORMAT_VERSION = "mbox archive (RFC 4155) of RFC 5322 messages"
MIME_CHARSETS = "MIME charsets"  # an archive's encoding: each message part says (or is detected) on its own
# Declared charsets that mailers use for GB18030 text (characters beyond GB2312 under a gb2312 label).
_GB18030_LABELS = frozenset({"gb2312", "gbk", "gb18030", "cp936", "euc-cn", "x-gbk"})
_QUOTED_MAX_CHARS = 60
_AUTO_HEADERS = ("x-autoreply", "x-autorespond")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|回复|答复|转发|回覆|轉寄|转寄)\s*(?:\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE
)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
# Where a reply's quotation of earlier mail starts: ">" lines are dropped, these lines end the new text.
_QUOTE_START = re.compile(
    r"^\s*(?:On .{0,200} wrote:|在.{0,200}写道[:：]|-{2,}\s*(?:Original Message|原始邮件)\s*-{2,}|发件人[:：]|From:\s.+@)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
# The headers whose addresses and ids a mailing-list archive writes as "user at domain".
_MUNGED_HEADERS = ("from", "to", "cc", "delivered-to", "x-original-to", "message-id", "in-reply-to", "references")
_MESSAGE_SCHEMA = {
    "file": pl.Utf8,
    "position": pl.Int64,
    "record_id": pl.Utf8,
    "thread": pl.Utf8,
    "from_address": pl.Utf8,
    "recipients": pl.List(pl.Utf8),
    "automatic": pl.Boolean,
    "sent_at": pl.Datetime("us", "UTC"),
    "date_problem": pl.Utf8,
    "date_problem_code": pl.Utf8,
    "subject": pl.Utf8,
    "text": pl.Utf8,
    "announced_number": pl.Utf8,
}


SETTINGS = {
    "agent_domains": Setting(default=(), help="domains whose mail is the support side's (besides the policy's)"),
    "agent_addresses": Setting(default=(), help="addresses whose mail is the support side's"),
    "list_munging": Setting(default="unmunge", choices=("unmunge", "keep")),
}
_MUNGED = re.compile(r"(\S+?)\s+at\s+([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    settings = format_settings(options, "mbox", SETTINGS)
    policy = options.policy or load_policy("email-support")
    policy = replace(
        policy,
        email=replace(
            policy.email,
            support_domains=tuple(dict.fromkeys([*policy.email.support_domains, *settings["agent_domains"]])),
        ),
    )
    agent_addresses = settings["agent_addresses"]
    unmunge = settings["list_munging"] == "unmunge"
    mailboxes, tags = channel_vocabulary(policy)
    if not mailboxes and not tags:
        raise ConversionError(
            f"policy {policy.profile} maps no mailbox address or subject tag to a channel (channels.*.aliases); "
            "use --policy email-support or add them"
        )
    ticket_number = re.compile(policy.email.ticket_number_pattern)
    parsed: list[dict] = []
    counts: dict[str, int] = {}
    replaced: dict[str, int] = {}
    for path in paths:
        messages = _read_archive(path, ticket_number, options.timezone, unmunge)
        counts[path.name] = len(messages)
        replaced[path.name] = sum(message["replaced_characters"] for message in messages)
        parsed += messages
    messages, duplicates = _drop_duplicates(parsed)
    frame = pl.DataFrame(_thread(messages, policy, agent_addresses), schema=_MESSAGE_SCHEMA)
    address_channels = {
        spelling: channel
        for spelling, channel in value_overrides(options).get("channel", {}).items()
        if "@" in spelling
    }
    roles = _with_roles(frame, policy, mailboxes, agent_addresses, address_channels)
    tickets, events, quarantine = _tickets(roles, policy)
    unanswered = tickets.filter(pl.col("agent_messages") == 0).get_column("ticket_id")
    tickets = tickets.drop("agent_messages")
    quarantine = pl.concat([duplicates, quarantine]).sort("source_file", "line")
    quarantined = dict(quarantine.group_by("source_file").len().iter_rows())
    return Conversion(
        format="mbox",
        format_version=FORMAT_VERSION,
        tables={"tickets": tickets, "ticket_events": events},
        quarantine=quarantine.select(QUARANTINE_COLUMNS),
        inputs=[
            input_record(
                path,
                counts[path.name],
                quarantined.get(path.name, 0),
                "mbox",
                Decoding(MIME_CHARSETS, replaced[path.name]),
            )
            for path in paths
        ],
        notes=[
            "one ticket per thread (Message-ID / In-Reply-To / References, announced ticket number, subject fallback)",
            "support side: "
            + ", ".join([*policy.email.support_domains, *agent_addresses])
            + " (the policy's email.support_domains and the settings agent_domains, agent_addresses); "
            "acknowledgments: automatic mail",
            "list munging: "
            + (
                "'user at domain' read as user@domain in addresses and Message-IDs; a message whose parents are all "
                "absent from the archive is threaded by normalised subject and customer"
                if unmunge
                else "kept as written (setting list_munging: keep)"
            ),
            "Date without a zone: " + (f"read in {options.timezone}" if options.timezone else "quarantined"),
            *consistency_findings(
                unanswered,
                "no message from the support side in their thread",
                "first_response_at left empty (never answered); if agents wrote from other addresses, name them "
                "in the settings agent_addresses or agent_domains",
            ),
        ],
    )


# --------------------------------------------------------------------------------------------------------
# Reading messages
# --------------------------------------------------------------------------------------------------------
def _read_archive(path: Path, ticket_number: re.Pattern, zone: str | None, unmunge: bool) -> list[dict]:
    """One dict per message of an mbox file, with its headers decoded and its Date read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError as error:
        raise ConversionError(f"{path.name}: cannot be read ({error.strerror or error})") from None
    if not head:
        raise ConversionError(f"{path.name}: the file is empty")
    if head != b"From ":
        raise ConversionError(f"{path.name}: not an mbox archive (the first line does not start with 'From ')")
    archive = mailbox.mbox(str(path), factory=_parse_message, create=False)
    try:
        return [
            _message_row(path.name, position, message, ticket_number, zone, unmunge)
            for position, message in enumerate(archive, start=1)
        ]
    finally:
        archive.close()


def _parse_message(handle) -> EmailMessage:
    return email.message_from_binary_file(handle, policy=email.policy.default)


def _message_row(
    file: str, position: int, message: EmailMessage, ticket_number: re.Pattern, zone: str | None, unmunge: bool
) -> dict:
    raw = {name.lower(): str(value) for name, value in reversed(list(message.raw_items()))}  # the first occurrence wins
    if unmunge:
        raw = {name: _MUNGED.sub(r"\1@\2", value) if name in _MUNGED_HEADERS else value for name, value in raw.items()}
    message_id = _ids(raw.get("message-id", ""))
    key = message_id[0] if message_id else f"{file}#{position}"
    sent_at, problem_code, problem = _read_date(raw.get("date"), zone)
    subject, subject_replaced = _header_text(message, "subject")
    text, text_replaced = _body_text(message)
    automatic = (
        raw.get("auto-submitted", "no").strip().lower() != "no"
        or any(name in raw for name in _AUTO_HEADERS)
        or raw.get("precedence", "").strip().lower() == "auto_reply"
    )
    announced = ticket_number.search(subject + "\n" + text)
    return {
        "file": file,
        "position": position,
        "key": key,
        "record_id": "mbox-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        "parents": _ids(raw.get("in-reply-to", "")) + _ids(raw.get("references", "")),
        "from_address": _addresses(raw.get("from", ""))[:1],
        "recipients": _addresses(*(raw.get(name, "") for name in ("to", "cc", "delivered-to", "x-original-to"))),
        "automatic": automatic,
        "sent_at": sent_at,
        "date_problem": problem,
        "date_problem_code": problem_code,
        "subject": subject,
        "text": text,
        "announced_number": announced.group(1) if announced else None,
        "replaced_characters": subject_replaced + text_replaced,
    }


def _ids(value: str) -> list[str]:
    return _MESSAGE_ID.findall(value)


def _addresses(*values: str) -> list[str]:
    return [address.strip().lower() for _name, address in getaddresses([v for v in values if v]) if "@" in address]


def _read_date(value: str | None, zone: str | None) -> tuple[datetime | None, str | None, str | None]:
    """(UTC instant, problem code, problem) of a Date header."""
    if value is None or not value.strip():
        return None, "missing_value", "Date: missing"
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None, "bad_timestamp", f"Date: not an RFC 5322 date: {_shown(value)}"
    if moment.tzinfo is None:
        if re.search(r"-0000\s*(?:\(.*\))?\s*$", value):  # RFC 5322: UTC, local zone unknown
            moment = moment.replace(tzinfo=UTC)
        elif zone:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        else:
            return None, "bad_timestamp", f"Date: no time zone (pass --timezone to read it in one): {_shown(value)}"
    return moment.astimezone(UTC), None, None


def _header_text(message: EmailMessage, name: str) -> tuple[str, int]:
    """A header's text, and how many of its characters did not decode."""
    raw = next((str(value) for key, value in message.raw_items() if key.lower() == name), "")
    replaced = 0
    if re.search("[\udc80-\udcff]", raw):
        # Raw 8-bit bytes (no RFC 2047 encoded word): the parser kept them as surrogate escapes.
        data = raw.encode("ascii", errors="surrogateescape")
        value, decoding = decode_bytes(data, guess_encoding(data))
        replaced = decoding.replaced
    else:
        try:
            value = message[name]
        except (ValueError, IndexError, TypeError, LookupError):  # a header the parser cannot decode: keep it raw
            value = raw
    return " ".join(str(value or "").split()), replaced


def _body_text(message: EmailMessage) -> tuple[str, int]:
    """The new text of a message: its plain (else HTML) body, decoded, without the quotation of earlier mail;
    and how many characters did not decode."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return "", 0
    payload = part.get_payload(decode=True) or b""
    text, decoding = decode_bytes(payload, _body_encoding(part.get_content_charset(), payload))
    if part.get_content_subtype() == "html":
        text = html.unescape(re.sub(r"(?is)<(script|style)\b.*?</\1>|<[^>]+>", " ", text))
    quote = _QUOTE_START.search(text)
    if quote:
        text = text[: quote.start()]
    new_text = "\n".join(line.rstrip() for line in text.splitlines() if not line.lstrip().startswith(">")).strip()
    return new_text, decoding.replaced


def _body_encoding(declared: str | None, payload: bytes) -> str:
    """The codec of a body: its declared charset, unless it declares none, only ASCII for 8-bit bytes, or one
    Python does not know (then detected); GB2312 and GBK labels read as GB18030."""
    if declared in _GB18030_LABELS:
        return "gb18030"
    if declared is not None and not (declared in ("us-ascii", "ascii") and not payload.isascii()):
        try:
            return codec_name(declared)
        except LookupError:
            pass
    return guess_encoding(payload)


def _shown(value: str) -> str:
    """A raw value as a quarantine reason may quote it: secrets and personal data redacted, then cut short."""
    value = redact(" ".join(value.split())) or ""
    return value if len(value) <= _QUOTED_MAX_CHARS else value[:_QUOTED_MAX_CHARS] + "…"


# --------------------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------------------
def _drop_duplicates(messages: list[dict]) -> tuple[list[dict], pl.DataFrame]:
    """Messages with a Message-ID already read (a copy in two folders) are quarantined; the first is kept."""
    first: dict[str, dict] = {}
    kept, rows = [], []
    for message in messages:
        seen = first.setdefault(message["key"], message)
        if seen is message:
            kept.append(message)
        else:
            rows.append(
                (
                    message["file"],
                    message["position"],
                    message["record_id"],
                    "duplicate_id",
                    f"Message-ID already read as message {seen['position']} of {seen['file']} (that one is kept)",
                )
            )
    return kept, _quarantine_frame(rows)


def _thread(messages: list[dict], policy: Policy, agent_addresses: tuple[str, ...] = ()) -> Iterable[dict]:
    """The messages, each with ``thread``: the key of the earliest-read message of its thread. A message without
    parents, or whose parents are all absent from the archive (a list's rewritten In-Reply-To), joins the thread of
    the same customer with the same subject once reply prefixes are stripped."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb, key=order.get)] = min(ra, rb, key=order.get)

    order = {message["key"]: index for index, message in enumerate(messages)}
    held = set(order)
    by_subject: dict[tuple[str, str], str] = {}
    by_number: dict[str, str] = {}
    support = set(policy.email.support_domains)
    for message in messages:
        key = message["key"]
        root(key)
        for referenced in message["parents"]:
            order.setdefault(referenced, len(order))
            join(key, referenced)
        if message["announced_number"]:
            join(key, by_number.setdefault(message["announced_number"], key))
        if not any(referenced in held for referenced in message["parents"]):
            customer = _customer_address(message, support, agent_addresses)
            subject = _REPLY_PREFIX.sub("", message["subject"]).strip().lower()
            if customer and subject:
                join(key, by_subject.setdefault((subject, customer), key))
    for message in messages:
        yield {
            **{name: message[name] for name in _MESSAGE_SCHEMA if name in message},
            "thread": root(message["key"]),
            "from_address": message["from_address"][0] if message["from_address"] else None,
        }


def _customer_address(message: dict, support_domains: set[str], agent_addresses: tuple[str, ...] = ()) -> str | None:
    """The customer's address in a message: its sender, or for support mail its first outside recipient."""
    for address in message["from_address"] + message["recipients"]:
        if address.rsplit("@", 1)[1] not in support_domains and address not in agent_addresses:
            return address
    return None


# --------------------------------------------------------------------------------------------------------
# Roles, channel, urgency (set-based; the subject tag and urgency readings are compliance.ingest.tickets_reading)
# --------------------------------------------------------------------------------------------------------
def _with_roles(
    frame: pl.DataFrame,
    policy: Policy,
    mailboxes: dict[str, str],
    agent_addresses: tuple[str, ...] = (),
    address_channels: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Messages with ``role`` (requester | agent | system | requester_auto), ``mailbox_channel``, ``tag_channel``.

    ``address_channels`` (the --mapping file's ``values: channel:`` spellings that are addresses) give the channel
    of mail sent to an address outside the support domains, e.g. a mailing list's."""
    address_channels = address_channels or {}
    domain = pl.col("from_address").str.split("@").list.last()
    local = pl.col("from_address").str.split("@").list.first()
    support = (
        domain.is_in(list(policy.email.support_domains)) | pl.col("from_address").is_in(list(agent_addresses))
    ).fill_null(False)
    auto_sender = local.is_in(list(policy.email.auto_reply_senders)).fill_null(False)
    automatic = pl.col("automatic") | auto_sender
    recipients = (
        frame.select("record_id", "recipients")
        .explode("recipients")
        .with_row_index("rank")
        .with_columns(
            pl.coalesce(
                spelling_lookup(pl.col("recipients"), address_channels),
                pl.when(pl.col("recipients").str.split("@").list.last().is_in(list(policy.email.support_domains))).then(
                    pl.col("recipients")
                    .str.split("@")
                    .list.first()
                    .replace_strict(mailboxes, default=None, return_dtype=pl.Utf8)
                ),
            ).alias("mailbox_channel")
        )
        .drop_nulls("mailbox_channel")
        .sort("rank")
        .group_by("record_id", maintain_order=True)
        .agg(pl.col("mailbox_channel").first())
    )
    with_tags = _with_sql(frame, tag_channel=tag_channel_sql(policy, "subject"))
    return with_tags.join(recipients, on="record_id", how="left").with_columns(
        pl.when(automatic & (support | auto_sender))
        .then(pl.lit("system"))
        .when(support)
        .then(pl.lit("agent"))
        .when(automatic)
        .then(pl.lit("requester_auto"))
        .otherwise(pl.lit("requester"))
        .alias("role"),
    )


def _with_sql(frame: pl.DataFrame, **columns: str) -> pl.DataFrame:
    """``frame`` with columns computed by DuckDB SQL over its rows: the readings of compliance.ingest.tickets_reading are
    SQL, the same expressions ingest applies to every tickets file."""
    con = duckdb.connect()
    try:
        con.register("frame", frame.to_arrow())
        selects = ", ".join(f"{sql} AS {ident(name)}" for name, sql in columns.items())
        # a plain projection of one scan keeps the row order
        computed = pl.from_arrow(con.sql(f"SELECT {selects} FROM frame").to_arrow_table())
    finally:
        con.close()
    return pl.concat([frame, computed.cast({name: pl.Utf8 for name in columns})], how="horizontal")


# --------------------------------------------------------------------------------------------------------
# Tickets, events, quarantine
# --------------------------------------------------------------------------------------------------------
def _tickets(messages: pl.DataFrame, policy: Policy) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    undatable = messages.filter(pl.col("sent_at").is_null())
    problems = [_problems(undatable, pl.col("date_problem_code"), pl.col("date_problem"))]
    # A thread with an undatable message cannot be timed: its other messages are quarantined with it.
    first_undatable = undatable.sort("file", "position").group_by("thread", maintain_order=True).first()
    datable = messages.filter(pl.col("sent_at").is_not_null())
    held = datable.join(
        first_undatable.select("thread", pl.col("file").alias("u_file"), pl.col("position").alias("u_position")),
        on="thread",
    )
    problems.append(
        _problems(
            held,
            pl.lit("incomplete_thread"),
            pl.format(
                "its thread also holds message {} of {}, which has no usable Date: the thread's times are unknown",
                pl.col("u_position"),
                pl.col("u_file"),
            ),
        )
    )
    datable = datable.join(first_undatable.select("thread"), on="thread", how="anti")
    request = (
        datable.filter(pl.col("role") == "requester")
        .sort("sent_at", "file", "position")
        .group_by("thread", maintain_order=True)
        .agg(
            pl.col("record_id").first().alias("request_id"),
            pl.col("sent_at").first().alias("created"),
            pl.col("subject").first(),
            pl.col("text").first().alias("first_text"),
            pl.col("text").str.join("\n\n").alias("description"),
            pl.coalesce("mailbox_channel", "tag_channel").first().alias("channel"),
            pl.when(pl.col("mailbox_channel").first().is_not_null())
            .then(pl.lit("mailbox"))
            .when(pl.col("tag_channel").first().is_not_null())
            .then(pl.lit("subject tag"))
            .alias("channel_source"),
        )
    )
    with_request = datable.join(request.select("thread", "request_id", "created", "channel"), on="thread", how="left")
    reasons = (
        pl.when(pl.col("created").is_null())
        .then(
            pl.struct(
                code=pl.lit("missing_value"),
                reason=pl.lit("thread has no message from a customer (only support or automatic mail)"),
            )
        )
        .when(pl.col("channel").is_null() & (pl.col("record_id") == pl.col("request_id")))
        .then(
            pl.struct(
                code=pl.lit("unknown_value"),
                reason=pl.lit(
                    "channel: the request went to none of the policy's support mailboxes and its subject has no tag "
                    "that is a channel alias"
                ),
            )
        )
        # the thread's other messages: one "channel:" reason per ticket (TG-MAILBOX counts tickets)
        .when(pl.col("channel").is_null())
        .then(
            pl.struct(
                code=pl.lit("incomplete_thread"),
                reason=pl.lit(
                    "its thread's request is quarantined: no support mailbox or subject tag gives its channel"
                ),
            )
        )
        .when(pl.col("sent_at") < pl.col("created"))
        .then(
            pl.struct(
                code=pl.lit("out_of_order"), reason=pl.lit("sent before the customer's first message of its thread")
            )
        )
    )
    judged = with_request.with_columns(reasons.alias("problem"))
    rejected = judged.filter(pl.col("problem").is_not_null())
    problems.append(
        _problems(rejected, pl.col("problem").struct.field("code"), pl.col("problem").struct.field("reason"))
    )
    used = judged.filter(pl.col("problem").is_null()).sort("sent_at", "file", "position")
    tickets = _ticket_rows(used, request, policy)
    events = (
        used.join(request.select("thread", "request_id"), on="thread")
        .filter((pl.col("record_id") != pl.col("request_id")) & (pl.col("role") != "requester_auto"))
        .join(tickets.select("thread", "ticket_id"), on="thread")
        .select(
            "ticket_id",
            _iso(pl.col("sent_at")).alias("occurred_at"),
            pl.col("role")
            .replace_strict({"system": "auto_ack", "agent": "public_reply", "requester": "requester_reply"})
            .alias("event_type"),
            pl.col("role")
            .replace_strict({"system": "system", "agent": "agent", "requester": "requester"})
            .alias("actor"),
            pl.lit(None, pl.Utf8).alias("new_status"),
            pl.col("record_id").alias("message_id"),
        )
    )
    quarantine = pl.concat([_quarantine_frame([]), *problems])
    return tickets.drop("thread"), events, quarantine


def _ticket_rows(used: pl.DataFrame, request: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    replies = used.group_by("thread").agg(
        pl.col("sent_at").filter(pl.col("role") == "agent").min().alias("first_response"),
        pl.col("sent_at").filter(pl.col("role") == "system").min().alias("acknowledged"),
        (pl.col("role") == "agent").sum().alias("agent_messages"),
        pl.col("announced_number").filter(pl.col("role") == "system").drop_nulls().first().alias("announced"),
        pl.len().alias("messages"),
    )
    tickets = request.join(replies, on="thread").sort("created", "request_id")
    # urgency from the subject and the customer's first message (tickets_reading, as ingest reads a file's text)
    tier, tier_source = tier_reading_sql(
        policy, "NULL::VARCHAR", "NULL::VARCHAR", keyword_tier_sql(policy, "subject", "first_text")
    )
    return _with_sql(tickets, tier=tier, tier_source=tier_source).select(
        "thread",
        pl.coalesce("announced", "request_id").alias("ticket_id"),
        "channel",
        "tier",
        _iso(pl.col("created")).alias("created_at"),
        _iso(pl.col("first_response")).alias("first_response_at"),
        "subject",
        "description",
        _iso(pl.col("acknowledged")).alias("acknowledged_at"),
        pl.col("messages").cast(pl.Utf8),
        "channel_source",
        "tier_source",
        pl.col("request_id").alias("request_message_id"),
        "agent_messages",
    )


def _iso(moment: pl.Expr) -> pl.Expr:
    return moment.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _problems(messages: pl.DataFrame, code: pl.Expr, reason: pl.Expr) -> pl.DataFrame:
    """Quarantine rows for ``messages``: the message's file and position, its hashed id, a code and a reason."""
    return messages.select(
        pl.col("file").alias("source_file"),
        pl.col("position").cast(pl.Int64).alias("line"),
        "record_id",
        code.cast(pl.Utf8).alias("reason_code"),
        reason.cast(pl.Utf8).alias("reason"),
    )


def _quarantine_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=empty_quarantine().schema, orient="row")


ADAPTER = Adapter(
    name="mbox",
    description="email support archive (mbox): one ticket per thread, acknowledgments and replies as events",
    convert=convert,
)
