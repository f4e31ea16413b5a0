"""Subjects and descriptions of the sample tickets, with planted secrets and hostile strings."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.codes import CHANNELS

_SUBJECTS = {
    "technical_support": [
        "API returns 500 on /v2/messages",
        "Webhook deliveries delayed",
        "Cannot log in after update",
        "Bot token rejected",
        "Rate limit errors since this morning",
        "App crashes on startup (Android 14)",
        "Sync stuck at 99%",
        "SSO configuration not working",
        "File upload fails over 20 MB",
        "Push notifications not arriving",
        "Dashboard very slow",
        "Export job never finishes",
    ],
    "account_billing": [
        "Charged twice this month",
        "Update billing address",
        "Invoice missing VAT number",
        "Downgrade to free plan",
        "Refund request",
        "Card declined on renewal",
        "Change account owner",
        "Upgrade to Plan 2",
        "Receipt for last payment",
        "Cancel subscription",
    ],
    "abuse": [
        "Spam bot in public group",
        "Phishing link reported",
        "Impersonation of our brand",
        "Harassment from a user",
        "Scam channel",
        "Copyright infringement report",
    ],
    "sales": [
        "Enterprise pricing question",
        "Volume discount for 500 seats",
        "Demo request",
        "Partnership inquiry",
        "Quote for annual plan",
        "Procurement questionnaire",
    ],
    "privacy": [
        "Delete my account data",
        "Request a copy of my data",
        "Correct my personal details",
        "Object to marketing processing",
        "Data portability request",
        "GDPR request",
    ],
    "security": [
        "Possible XSS in profile page",
        "Account takeover attempt",
        "Suspicious login notifications",
        "Vulnerability report: IDOR",
        "Leaked API key found",
        "2FA bypass concern",
    ],
}
_OPENERS = ["Hi,", "Hello team,", "Hi there,", "Good morning,", "Hey,", "Dear support,", ""]
_BODIES = {
    "technical_support": [
        "since yesterday our integration keeps failing with a timeout.",
        "the app shows an error after the latest update and I cannot continue.",
        "requests to the API return an internal error about one in ten times.",
        "our webhooks arrive hours late which breaks our workflow.",
        "the desktop client freezes when I open a large group.",
        "login with SSO redirects back to the start page in a loop.",
    ],
    "account_billing": [
        "I was billed twice for the same month, please refund one charge.",
        "please change the billing email on our account.",
        "our invoice is missing the company VAT number.",
        "my card was declined although it has enough funds.",
        "we would like to move from the free plan to Plan 2.",
        "I need receipts for the last three payments for our accountant.",
    ],
    "abuse": [
        "a bot is posting scam links in our community every few minutes.",
        "this account pretends to be our company and asks users for money.",
        "someone keeps sending threatening messages to my team.",
        "a channel is redistributing our paid content without permission.",
    ],
    "sales": [
        "we are evaluating the platform for about 500 employees.",
        "could you send pricing for an annual contract?",
        "we would like a demo for our IT team next week.",
        "does the enterprise plan include a dedicated account manager?",
    ],
    "privacy": [
        "under GDPR I ask you to delete all personal data you hold about me.",
        "please send me a copy of all data linked to my account.",
        "my name is misspelled in your records, please correct it.",
        "I object to my data being used for analytics.",
    ],
    "security": [
        "I found a way to read other users' profile data by changing an id in the URL.",
        "I received login alerts from a country I have never visited.",
        "an API key of yours appears in a public repository.",
        "the 2FA prompt can be skipped by reloading the page.",
    ],
}
_CLOSERS = ["Thanks.", "Thank you!", "Regards, Alex", "Best, Maria", "Please help asap.", "Cheers", ""]
SENSITIVE = [
    "I forgot my password, my password is hunter2 if that helps.",
    "My PIN 4821 no longer works at login.",
    "You can charge card 4111 1111 1111 1111 exp 12/28 instead.",
    "I got the code 123456 by SMS but it says expired.",
    "the one-time code was 908172, is it still valid?",
    "password: Summer2026! please reset it.",
    "Please use my other card 5500 0000 0000 0004.",
    "Reach me at jane.doe@example.com for details.",
    "You can call me on +1 (415) 555-0134 any time.",
    "My number is +44 20 7946 0958 and my email is k.ito@example.org.",
    "contact: ops-team@example.net, phone +49 30 901820",
]
HOSTILE = [
    "<script>alert(1)</script>",
    '=HYPERLINK("http://x")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "Robert'); DROP TABLE tickets;--",
    '"quoted", with, commas',
]


def text_pools(rng: np.random.Generator):
    """Subject / description pools (one block per channel) plus sensitive and hostile pools."""
    subjects, sub_off, descs, desc_off = [], [], [], []
    for ch in CHANNELS:
        sub_off.append(len(subjects))
        subjects.extend(_SUBJECTS[ch])
        desc_off.append(len(descs))
        for _ in range(60):
            parts = [
                _OPENERS[int(rng.integers(0, len(_OPENERS)))],
                _BODIES[ch][int(rng.integers(0, len(_BODIES[ch])))],
                _CLOSERS[int(rng.integers(0, len(_CLOSERS)))],
            ]
            sep = "\n" if rng.random() < 0.1 else " "  # some multi-line descriptions
            descs.append(sep.join(p for p in parts if p))
    sub_size = np.array([len(_SUBJECTS[c]) for c in CHANNELS])
    return (
        pl.Series(subjects, dtype=pl.String),
        np.array(sub_off),
        sub_size,
        pl.Series(descs, dtype=pl.String),
        np.array(desc_off),
        60,
    )


def plant(rng: np.random.Generator, col: pl.Series, pool: list[str], share: float) -> pl.Series:
    """Replace a small share of cells with strings of ``pool`` (each one at least once when there is room)."""
    n = col.len()
    k = min(max(int(round(share * n)), len(pool)), n // 20)
    if k <= 0:
        return col
    rows = np.sort(rng.choice(n, size=k, replace=False))
    vals = pl.Series(pool, dtype=pl.String).gather(
        pl.Series((np.arange(k) + int(rng.integers(0, len(pool)))) % len(pool))
    )
    return col.scatter(rows, vals)
