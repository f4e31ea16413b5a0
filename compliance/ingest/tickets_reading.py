"""How a ticket's channel and tier are read, the same for every input format (CSV, Parquet, JSON Lines, mbox and
every adapter): SQL expressions that ingest applies to every tickets file and the mbox adapter to its threads.

Readings (each one a policy setting or written here):

* **Channel.**  A channel value the export gives is one of the policy's channel keys or aliases
  (``channels.*.aliases``); ``channel_source`` says which kind: ``mailbox`` (an alias that is an address,
  ``security@telegram.org``), ``subject tag`` (an alias in brackets, ``[账户安全]``) or ``column`` (a channel key
  or another spelling: the export's own categorisation).  A *blank* channel is taken from the subject's first
  bracketed tag when that tag is a channel alias (``channel_source = subject tag``); blank and no such tag
  stays a ``missing_value`` quarantine.  A channel value that is not a known spelling stays an
  ``unknown_value`` quarantine, whatever the subject says: a wrong value is a data problem, not a blank.
* **Tier.**  An explicit tier is kept (``tier_source = column``).  Otherwise, when the policy has
  ``urgency_keywords``, the first tier in the file's order with a keyword in the subject or the text
  (``tier_source = keywords``), else ``tiers.default`` (``default``); a policy without keywords derives it
  from the plan: ``tiers.priority_plans`` give ``priority`` (``plan``), any other or an unknown plan
  ``tiers.default`` (``default``).  The text is the description for files, the customer's first message
  for mbox threads.
* **Keywords** match case-insensitively; one that starts or ends with a Latin letter or digit must stand as
  a whole word there ("API" does not match "rapid").
* **Negations** (top-level ``urgency_negations``): a keyword directly preceded by a negation, with at most
  one space between them, does not count: "不紧急", "并不紧急", "这不是紧急问题" (with ``不是`` in the list),
  "not urgent", "isn't urgent", "non-urgent".  A negation further away ("not really urgent") does not negate;
  another occurrence of the keyword in the same text still counts.  A Latin negation must start a word
  ("knot urgent" is not negated).  The negated occurrences are removed before matching (RE2 and Rust regex
  have no look-behind).
* ``channel_source`` / ``tier_source`` of an adapter's output file (the mbox adapter writes them) are kept
  when they are one of the words above and the value they describe is given; otherwise ingest works them out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from compliance.core.sql import lit
from compliance.policy import Policy

CHANNEL_SOURCES = ("column", "mailbox", "subject tag")
TIER_SOURCES = ("column", "keywords", "plan", "default")
# The first bracketed tag of a subject, also after "Re: " ("[技术问题] 无法登录" -> "技术问题").
SUBJECT_TAG_PATTERN = r"\[([^\[\]]{1,40})\]"


def channel_vocabulary(policy: Policy) -> tuple[dict[str, str], dict[str, str]]:
    """(mailbox local part -> channel, lower-case subject tag -> channel) from the channel aliases."""
    mailboxes: dict[str, str] = {}
    tags: dict[str, str] = {}
    for channel, aliases in policy.channels.items():
        for alias in aliases:
            alias = alias.strip().lower()
            if "@" in alias:
                mailboxes.setdefault(alias.rsplit("@", 1)[0], channel)
            elif alias.startswith("[") and alias.endswith("]"):
                tags.setdefault(_tag_key(alias[1:-1]), channel)
    return mailboxes, tags


def _tag_key(inner: str) -> str:
    return "[" + inner.strip().lower() + "]"


def tag_channel_sql(policy: Policy, subject: str) -> str:
    """SQL: the channel named by the first bracketed tag of ``subject`` (NULL when none is a channel alias)."""
    _, tags = channel_vocabulary(policy)
    if not tags:
        return "NULL::VARCHAR"
    tag = f"'[' || lower(trim(regexp_extract({subject}, {lit(SUBJECT_TAG_PATTERN)}, 1))) || ']'"
    cases = " ".join(f"WHEN {lit(key)} THEN {lit(channel)}" for key, channel in sorted(tags.items()))
    return f"CASE {tag} {cases} END"


def channel_source_sql(policy: Policy, channel_text: str, from_file: str) -> str:
    """SQL: ``channel_source`` of a ticket whose channel value as given is ``channel_text`` (trimmed, NULL when
    blank); ``from_file`` is the file's own ``channel_source`` value (or NULL)."""
    addresses = sorted({a.strip().lower() for aliases in policy.channels.values() for a in aliases if "@" in a})
    tags = sorted(
        {
            a.strip().lower()
            for aliases in policy.channels.values()
            for a in aliases
            if a.strip().startswith("[") and a.strip().endswith("]")
        }
    )
    kinds = "".join(
        f" WHEN lower({channel_text}) IN ({', '.join(map(lit, values))}) THEN {lit(kind)}"
        for kind, values in (("mailbox", addresses), ("subject tag", tags))
        if values
    )
    return (
        f"CASE WHEN {channel_text} IS NULL THEN 'subject tag'"
        f" WHEN lower({from_file}) IN ({', '.join(map(lit, CHANNEL_SOURCES))}) THEN lower({from_file}){kinds}"
        f" ELSE 'column' END"
    )


def keyword_pattern(keywords: Iterable[str]) -> str:
    """One case-insensitive RE2 regex; a keyword starting or ending with a Latin letter or digit must stand as a
    word there (RE2's ``\\b`` is ASCII)."""
    return "(?i)(?:" + "|".join(_bounded(keyword) for keyword in keywords) + ")"


def _bounded(word: str) -> str:
    word = word.strip()
    part = re.escape(word)
    if re.match(r"\w", word, re.ASCII):
        part = r"\b" + part
    if re.search(r"\w$", word, re.ASCII):
        part += r"\b"
    return part


def negated_keyword_pattern(policy: Policy) -> str | None:
    """RE2 regex of a negation directly before (at most one space) any urgency keyword; None without negations."""
    keywords = [keyword for _, words in policy.urgency_keywords for keyword in words]
    if not policy.urgency_negations or not keywords:
        return None
    negations = "|".join(
        (r"\b" if re.match(r"\w", n.strip(), re.ASCII) else "") + re.escape(n.strip()) for n in policy.urgency_negations
    )
    return f"(?i)(?:{negations})\\s?(?:{'|'.join(_bounded(keyword) for keyword in keywords)})"


def keyword_tier_sql(policy: Policy, subject: str, text: str) -> str | None:
    """SQL: the first tier of ``urgency_keywords`` with a keyword (not negated) in ``subject`` or ``text``, NULL when
    none; None when the policy has no keyword rules."""
    rules = [(name, keyword_pattern(words)) for name, words in policy.urgency_keywords if words]
    if not rules:
        return None
    searched = f"coalesce({subject}, '') || chr(10) || coalesce({text}, '')"
    negated = negated_keyword_pattern(policy)
    if negated:
        searched = f"regexp_replace({searched}, {lit(negated)}, ' ', 'g')"
    return (
        "CASE "
        + " ".join(f"WHEN regexp_matches({searched}, {lit(pattern)}) THEN {lit(name)}" for name, pattern in rules)
        + " END"
    )


def tier_reading_sql(
    policy: Policy, tier: str, plan: str, keyword_tier: str | None, tier_source_from_file: str = "NULL"
) -> tuple[str, str]:
    """SQL (effective tier, ``tier_source``) of a ticket with explicit tier ``tier`` (NULL when blank) and
    ``plan``; ``keyword_tier`` is :func:`keyword_tier_sql` (or a column holding it, read twice here: callers
    compute it once), None when the policy has no keyword rules; ``tier_source_from_file`` is an adapter's own
    ``tier_source`` value (or NULL)."""
    if keyword_tier is not None:
        derived = f"coalesce({keyword_tier}, {lit(policy.default_tier)})"
        derived_source = f"CASE WHEN {keyword_tier} IS NOT NULL THEN 'keywords' ELSE 'default' END"
    else:
        priority = f"{plan} IN ({', '.join(map(lit, policy.priority_plans))})" if policy.priority_plans else "FALSE"
        derived = f"CASE WHEN {priority} THEN 'priority' ELSE {lit(policy.default_tier)} END"
        derived_source = f"CASE WHEN {priority} THEN 'plan' ELSE 'default' END"
    effective = f"coalesce({tier}, {derived})"
    source = (
        f"CASE WHEN {tier} IS NULL THEN {derived_source}"
        f" WHEN lower({tier_source_from_file}) IN ({', '.join(map(lit, TIER_SOURCES))})"
        f" THEN lower({tier_source_from_file}) ELSE 'column' END"
    )
    return effective, source
