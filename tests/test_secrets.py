"""Secrets and personal data in free text (TG-NO-SECRETS): found, not over-flagged, redacted, never stored."""

from __future__ import annotations

import hashlib
import re

import pytest

from compliance.core.secrets import (
    PATTERNS,
    find_secrets,
    pseudonym_sql,
    redact,
    redact_sql,
    scan_secrets,
    summarise,
    visible,
)

PLANTED = [
    ("my password is hunter2 if that helps.", "password", "hunter2"),
    ("password: Summer2026! please reset it.", "password", "Summer2026!"),
    ("pwd: x", "password", "x"),
    ("我的密码是abc12345，请帮忙", "password", "abc12345"),
    ("密码:qwerty99", "password", "qwerty99"),
    ("My PIN 4821 no longer works at login.", "pin", "4821"),
    ("PIN码 1234", "pin", "1234"),
    ("I got the code 123456 by SMS but it says expired.", "one_time_code", "123456"),
    ("verification code: 654321", "one_time_code", "654321"),
    ("the one-time code was 908172, is it still valid?", "one_time_code", "908172"),
    ("验证码 123456", "one_time_code", "123456"),
    ("You can charge card 4111 1111 1111 1111 exp 12/28 instead.", "card_number", "4111 1111 1111 1111"),
    ("Please use my other card 5500-0000-0000-0004.", "card_number", "5500-0000-0000-0004"),
    ("amex 378282246310005 ok", "card_number", "378282246310005"),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc leaked", "api_key_or_token", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789 in repo",
        "api_key_or_token",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ),
    ("aws AKIAIOSFODNN7EXAMPLE", "api_key_or_token", "AKIAIOSFODNN7EXAMPLE"),
    ("Reach me at jane.doe@example.com for details.", "email", "jane.doe@example.com"),
    ("You can call me on +1 (415) 555-0134 any time.", "phone", "+1 (415) 555-0134"),
    ("My number is +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
    ("phone +49 30 901820", "phone", "+49 30 901820"),
]

ORDINARY = [
    "order 123456789",
    "order 1234567890123 was shipped",  # 13 digits, fails Luhn
    "ticket T00001234",
    "2026-03-08 10:00",
    "meeting 2026-03-08T10:00:00Z",
    "Android 14",
    "iOS 17.2",
    "app 10.3.2",
    "App crashes on startup (Android 14)",
    "please reset my pin",
    "my password is not working",
    "I forgot my password, can you help?",
    "error code 500",
    "error code 1001",
    "Bot token rejected",
    "price $1,299.00 or EUR 4999",
    "Volume discount for 500 seats",
    "Sync stuck at 99%",
    "+1+1",
    "-2+3",
    "0000 0000 0000 0000",  # Luhn-valid but not a card
]


def _table(con, texts):
    con.execute("CREATE OR REPLACE TABLE notes (note_id VARCHAR, subject VARCHAR, body VARCHAR)")
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", [(f"N{i}", "hello", text) for i, text in enumerate(texts)])


@pytest.mark.parametrize(("text", "kind", "secret"), PLANTED)
def test_planted_secret_found_in_python(text, kind, secret):
    found = find_secrets(text)
    assert (kind, text.index(secret), len(secret)) in found


def test_every_planted_kind_is_found_in_duckdb_with_position(con):
    _table(con, [text for text, _, _ in PLANTED])
    scan_secrets(con, "notes", "note_id", ["subject", "body"])
    rows = con.execute("SELECT record_id, column_name, kind, start, length FROM secret_findings").fetchall()
    for index, (text, kind, secret) in enumerate(PLANTED):
        assert (f"N{index}", "body", kind, text.index(secret), len(secret)) in rows, text
    kinds = {kind for kind, _ in PATTERNS}
    assert {row[2] for row in rows} == kinds
    summary = {kind: (count, records) for kind, count, records in summarise(con)}
    assert summary["card_number"] == (3, 3)
    assert summary["password"][1] == 5


def test_findings_never_contain_the_secret(con):
    _table(con, [text for text, _, _ in PLANTED])
    scan_secrets(con, "notes", "note_id", ["body"])
    columns = [row[0] for row in con.execute("DESCRIBE secret_findings").fetchall()]
    assert columns == ["record_id", "column_name", "kind", "start", "length"]
    stored = " ".join(str(value) for row in con.execute("SELECT * FROM secret_findings").fetchall() for value in row)
    for _, _, secret in PLANTED:
        assert secret not in stored


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_not_flagged(text):
    assert find_secrets(text) == []
    assert redact(text) == text


def test_ordinary_text_is_not_flagged_in_duckdb(con):
    _table(con, ORDINARY)
    scan_secrets(con, "notes", "note_id", ["subject", "body"])
    assert con.execute("SELECT count(*) FROM secret_findings").fetchall()[0][0] == 0
    assert summarise(con) == []


def test_python_and_sql_scans_agree(con):
    texts = (
        [text for text, _, _ in PLANTED]
        + ORDINARY
        + ["My number is +44 20 7946 0958 and my email is k.ito@example.org, PIN 9999, card 4111111111111111"]
    )
    _table(con, texts)
    scan_secrets(con, "notes", "note_id", ["body"])
    sql = sorted(con.execute("SELECT record_id, kind, start, length FROM secret_findings").fetchall())
    python = sorted(
        (f"N{i}", kind, start, length) for i, text in enumerate(texts) for kind, start, length in find_secrets(text)
    )
    assert sql == python


def test_redaction_replaces_all_and_keeps_the_rest():
    text = "Hi, my password is hunter2 and PIN 4821; card 4111 1111 1111 1111, mail jane.doe@example.com. Thanks!"
    assert redact(text) == (
        "Hi, my password is [REDACTED:password] and PIN [REDACTED:pin]; card [REDACTED:card_number], "
        "mail [REDACTED:email]. Thanks!"
    )
    assert redact("密码是abc123，验证码 123456") == "密码是[REDACTED:password]，验证码 [REDACTED:one_time_code]"
    assert redact(None) is None


def test_sql_redaction_matches_python_redaction(con):
    texts = (
        [text for text, _, _ in PLANTED] + ORDINARY + ["order 4111 1111 1111 1112 not a card, 4111 1111 1111 1111 is"]
    )
    _table(con, texts + [None])
    rows = con.execute(f"SELECT note_id, body, {redact_sql('body')} AS clean FROM notes").fetchall()
    for _, body, clean in rows:
        assert clean == redact(body)
        if body is not None:
            for planted, _, secret in PLANTED:
                if body == planted:
                    assert secret not in clean and "[REDACTED:" in clean
    assert redact(texts[-1]) == "order 4111 1111 1111 1112 not a card, [REDACTED:card_number] is"


def test_pattern_table_is_shared_and_well_formed():
    for kind, regex in PATTERNS:
        assert kind in {"password", "pin", "one_time_code", "card_number", "api_key_or_token", "email", "phone"}
        assert re.compile(regex, re.ASCII).groups == 2, regex  # (label)(value)


# Labels and values disguised so that a plain pattern would miss them: (text, kind, secret as published raw).
DISGUISED = [
    ("my pass\u200bword: hunter2x thanks", "password", "hunter2x"),  # zero-width space
    ("pass\u200cword\u200d: zw-joiner-9", "password", "zw-joiner-9"),  # non-joiner, joiner
    ("pass\u2060word: wordjoin7", "password", "wordjoin7"),  # word joiner
    ("\ufeffpassword: bomvalue8", "password", "bomvalue8"),  # BOM
    ("pass\u00adword: softhyph3n", "password", "softhyph3n"),  # soft hyphen
    ("ｐａｓｓｗｏｒｄ：ｆｕｌｌ４２", "password", "ｆｕｌｌ４２"),  # full-width label and value
    ("раssword: cyrillic5", "password", "cyrillic5"),  # Cyrillic р and а
    ("ΡΙΝ 4821 please", "pin", "4821"),  # Greek capitals
    ("pass-word: hyphen8d", "password", "hyphen8d"),  # a separator inside the label
    ("pass_word=under5core", "password", "under5core"),
    ("PIN\u00a04821", "pin", "4821"),  # no-break space
    ("PIN ４８２１", "pin", "４８２１"),  # full-width digits
    ("verification\u3000code: 654321", "one_time_code", "654321"),  # ideographic space
    ("тоkеn: abcdefghijklmnopqrstuvwxyz0123", "api_key_or_token", "abcdefghijklmnopqrstuvwxyz0123"),
]


@pytest.mark.parametrize(("text", "kind", "secret"), DISGUISED)
def test_disguised_labels_and_values_are_found_and_redacted(text, kind, secret):
    assert kind in {found_kind for found_kind, _, _ in find_secrets(text)}
    redacted = redact(text)
    assert secret not in redacted and f"[REDACTED:{kind}]" in redacted
    assert visible(secret) not in redacted


def test_disguised_secrets_are_redacted_and_scanned_alike_in_duckdb(con):
    texts = [text for text, _, _ in DISGUISED]
    _table(con, texts)
    rows = con.execute(f"SELECT body, {redact_sql('body')} FROM notes ORDER BY note_id").fetchall()
    assert all(redacted == redact(body) for body, redacted in rows)
    scan_secrets(con, "notes", "note_id", ["body"])
    sql = sorted(con.execute("SELECT record_id, kind, start, length FROM secret_findings").fetchall())
    python = sorted(
        (f"N{i}", kind, start, length) for i, text in enumerate(texts) for kind, start, length in find_secrets(text)
    )
    assert sql == python
    assert {record for record, _, _, _ in sql} == {f"N{i}" for i in range(len(texts))}


def test_visible_text_drops_invisible_characters_and_folds_full_width_forms():
    assert visible("pa\u200bss\u00adwo\ufeffrd\u2060") == "password"
    assert visible("ＡＢＣ１２３＝\u3000x\u00a0y") == "ABC123= x y"
    assert visible("密码：是，好") == "密码：是，好"  # CJK punctuation is read by the patterns as it is
    assert visible("раssword") == "раssword"  # look-alikes are matched by the patterns, never rewritten


def test_text_without_a_finding_is_published_unchanged(con):
    text = "ｆｕｌｌ width\u200b note, Пароль не работает"
    assert redact(text) == text
    _table(con, [text])
    assert con.execute(f"SELECT {redact_sql('body')} FROM notes").fetchall()[0][0] == text


def test_look_alike_words_in_cyrillic_text_are_not_findings():
    for text in ("Пароль не работает", "код 1234", "spin 2024", "опция pin-код не нужна"):
        assert find_secrets(text) == [], text


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("T-1001", None),
        ("4111111111111112", None),  # fails the Luhn check: an order number, not a card
        ("Tß-1", None),  # not ASCII, nothing found: as written
        ("jane.doe@example.com", "email"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key_or_token"),
        ("4111111111111111", "card_number"),
        ("ｐａｓｓｗｏｒｄ：ＦｕｌｌＳｅｃ４２", "password"),  # found in its visible form
    ],
)
def test_an_id_holding_a_secret_is_replaced_by_its_stable_pseudonym(con, value, kind):
    published = con.execute(f"SELECT {pseudonym_sql('x')} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchall()
    expected = value if kind is None else f"[REDACTED:{kind}]-{hashlib.sha256(value.encode()).hexdigest()[:16]}"
    assert published == [(expected,)]
