"""File encodings: detection, decoded copies, replaced bytes counted, --encoding, in ingest, adapters and the manifest."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import mailbox

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.adapters import adapter_for
from compliance.adapters.base import AdapterOptions, vendor_encoding
from compliance.adapters.mbox import _body_text, _header_text
from compliance.expectations import DECODED, decoding_outcomes
from compliance.ingest import encodings
from compliance.ingest.encodings import codec_name, detect_encoding, first_invalid_utf8, utf8_copy
from compliance.ingest.staging import ingest_source

HEADER = "ticket_id,channel,plan,tier,created_at,first_response_at,resolved_at,status,escalated_at,senior_reviewed_at,subject,description\n"
TICKET = "{id},technical_support,plan_2,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,open,,,{subject},{description}\n"
CHINESE_SUBJECTS = ("无法登录账户", "退款申请进度查询", "发票抬头需要修改")


def tickets(*subjects: str, description: str = "") -> str:
    return HEADER + "".join(
        TICKET.format(id=f"T{n}", subject=s, description=description) for n, s in enumerate(subjects, 1)
    )


def staged(con, columns: str = "ticket_id, subject") -> list[tuple]:
    return con.execute(f"SELECT {columns} FROM staged_tickets ORDER BY source_line").fetchall()


def replaced(con, file: str = "tickets.csv") -> dict[str, int]:
    return dict(con.execute("SELECT replaced_characters FROM loaded_files WHERE file = ?", [file]).fetchall()[0][0])


def assert_accounted(result) -> None:
    for entry in result.files:
        assert entry.rows_read == entry.rows_loaded + entry.rows_quarantined, entry


# --- detection --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (tickets("café").encode("utf-8"), "utf-8"),
        (tickets("café").encode("utf-8-sig"), "utf-8-sig"),
        (tickets("café").encode("utf-16"), "utf-16"),  # with its BOM, LE here
        (b"\xfe\xff" + tickets("café").encode("utf-16-be"), "utf-16"),
        (tickets("café").encode("utf-16-le"), "utf-16-le"),  # no BOM: the NULs say which half
        (tickets("café").encode("cp1252"), "cp1252"),
        (tickets("\u201cquoted\u201d – Größe").encode("cp1252"), "cp1252"),
        (tickets(*CHINESE_SUBJECTS).encode("gb18030"), "gb18030"),
        (tickets(*CHINESE_SUBJECTS).encode("utf-8") + b"T9,x,\xff\n", "utf-8"),  # UTF-8 with one damaged byte
        (tickets(*CHINESE_SUBJECTS).encode("gb18030") + b"T9,x \xff\n", "gb18030"),  # GBK with one damaged byte
        (tickets("caf\xe9 \x81").encode("latin-1"), "cp1252"),  # 0x81: no character in cp1252
        (HEADER.encode(), "utf-8"),
    ],
)
def test_detection(tmp_path, data, expected):
    path = tmp_path / "tickets.csv"
    path.write_bytes(data)
    assert detect_encoding(path) == expected
    assert detect_encoding(path) == expected  # the same bytes, the same answer


def test_detection_looks_around_given_offsets(tmp_path, monkeypatch):
    monkeypatch.setattr(encodings, "SAMPLE_BYTES", 256)
    path = tmp_path / "tickets.csv"
    head = tickets(*["plain ascii"] * 40).encode()
    path.write_bytes(head + TICKET.format(id="T99", subject="caf\xe9", description="").encode("cp1252"))
    assert detect_encoding(path) == "utf-8"  # the sampled head is ASCII
    assert detect_encoding(path, around=[first_invalid_utf8(path)]) == "cp1252"


def test_codec_names():
    assert [codec_name(name) for name in ("UTF8", "CP1252", "latin-1", "GB18030")] == [
        "utf-8",
        "cp1252",
        "iso8859-1",
        "gb18030",
    ]
    for name in ("no-such-codec", "base64"):
        with pytest.raises(LookupError):
            codec_name(name)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="gb18030", exclude_categories=("Cs",)), max_size=80),
    encoding=st.sampled_from(["utf-8", "gb18030", "utf-16", "utf-8-sig"]),
    chunk=st.integers(1, 9),
)
def test_copy_round_trips_whatever_the_chunk_cut(tmp_path_factory, text, encoding, chunk):
    """The streamed copy equals decoding the whole file at once, however chunks split its characters."""
    path = tmp_path_factory.mktemp("copy") / "tickets.csv"
    path.write_bytes(text.encode(encoding))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encodings, "_CHUNK_BYTES", chunk)
        with utf8_copy(path, encoding) as (copy, decoding):
            assert copy.read_bytes().decode("utf-8") == text.removeprefix("\ufeff")
            assert decoding.replaced == 0


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=40), chunk=st.integers(1, 9))
def test_first_invalid_utf8_and_replacements_match_a_whole_decode(tmp_path_factory, data, chunk):
    """Streamed in chunks of a few bytes, against Python decoding the whole file at once."""
    path = tmp_path_factory.mktemp("bytes") / "tickets.csv"
    path.write_bytes(data)
    try:
        data.decode("utf-8")
        expected = None
    except UnicodeDecodeError as error:
        expected = error.start
    reference = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encodings, "_CHUNK_BYTES", chunk)
        assert first_invalid_utf8(path) == expected
        with utf8_copy(path, "utf-8") as (copy, decoding):
            assert copy.read_bytes().decode("utf-8") == reference
            # each U+FFFD written for bytes that did not decode is one counted replacement
            assert decoding.replaced == reference.count("\ufffd") - data.decode("utf-8", errors="ignore").count(
                "\ufffd"
            )


# --- ingest -----------------------------------------------------------------------------------------------------


def test_one_cp1252_byte_in_a_subject_keeps_the_ticket(con, tmp_path, policy):
    (tmp_path / "tickets.csv").write_bytes(tickets("caf\xe9 au lait", "plain").encode("cp1252"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 2, 0)
    assert staged(con) == [("T1", "café au lait"), ("T2", "plain")]
    assert result.files[0].encoding == "cp1252"
    assert con.execute("SELECT encoding FROM ingest_log").fetchall() == [("cp1252",)]
    assert decoding_outcomes(con, "tickets") == []  # every byte decoded in cp1252


def test_gb18030_subjects(con, tmp_path, policy):
    (tmp_path / "tickets.csv").write_bytes(tickets(*CHINESE_SUBJECTS).encode("gb18030"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged(con) == [(f"T{n}", subject) for n, subject in enumerate(CHINESE_SUBJECTS, 1)]
    assert result.files[0].encoding == "gb18030"
    assert_accounted(result)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_files_with_a_byte_order_mark(con, tmp_path, policy, encoding):
    (tmp_path / "tickets.csv").write_bytes(tickets("café", CHINESE_SUBJECTS[0]).encode(encoding))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert staged(con) == [("T1", "café"), ("T2", CHINESE_SUBJECTS[0])]
    assert result.files[0].encoding == encoding


def test_an_undecodable_byte_in_utf8_text_is_replaced_counted_and_the_record_kept(con, tmp_path, policy):
    text = tickets("café crème", CHINESE_SUBJECTS[0], "broken here", description="ok")
    (tmp_path / "tickets.csv").write_bytes(text.replace("broken", "bro\x00ken").encode().replace(b"\x00", b"\xff"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    assert staged(con)[2] == ("T3", "bro\ufffdken here")
    assert result.files[0].encoding == "utf-8"
    assert replaced(con) == {"subject": 1}
    [outcome] = decoding_outcomes(con, "tickets")
    assert (outcome.expectation, outcome.column, outcome.success, outcome.unexpected_count, outcome.blocking) == (
        DECODED,
        "subject",
        False,
        1,
        False,
    )
    assert "tickets.csv (utf-8) 1" in outcome.message


def test_bytes_past_the_samples_are_found_by_duckdb_and_the_file_read_again(con, tmp_path, policy, monkeypatch):
    monkeypatch.setattr(encodings, "SAMPLE_BYTES", 512)
    ascii_rows = [f"plain {n}" for n in range(30)]
    (tmp_path / "tickets.csv").write_bytes(tickets(*ascii_rows, "caf\xe9", "na\xefve").encode("cp1252"))
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_loaded, result.rows_quarantined) == (32, 0)
    assert staged(con)[-2:] == [("T31", "café"), ("T32", "naïve")]
    assert result.files[0].encoding == "cp1252"
    assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]


@pytest.mark.parametrize("sample_bytes", [1 << 20, 64])
def test_json_lines_in_cp1252(con, tmp_path, policy, monkeypatch, sample_bytes):
    monkeypatch.setattr(encodings, "SAMPLE_BYTES", sample_bytes)  # 64: the é lies past the samples
    lines = [
        {"ticket_id": f"T{n}", "channel": "sales", "created_at": "2026-03-02T10:00:00Z", "subject": "plain"}
        for n in range(1, 4)
    ]
    lines[2]["subject"] = "caf\xe9"
    (tmp_path / "tickets.jsonl").write_bytes(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("cp1252")
    )
    result = ingest_source(con, "tickets", tmp_path, policy)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    assert staged(con)[2] == ("T3", "café")
    assert result.files[0].encoding == "cp1252"


def test_named_encoding_overrides_detection_and_a_change_reads_the_file_again(con, tmp_path, policy):
    # UTF-8 bytes of "é" read as cp1252 are "Ã©": what the user asked for
    (tmp_path / "tickets.csv").write_bytes(tickets("café").encode("utf-8"))
    result = ingest_source(con, "tickets", tmp_path, policy, encoding="CP1252")
    assert (staged(con), result.files[0].encoding) == ([("T1", "cafÃ©")], "cp1252")
    result = ingest_source(con, "tickets", tmp_path, policy)  # same file, detection again: read again
    assert (staged(con), result.files[0].encoding) == ([("T1", "café")], "utf-8")
    with pytest.raises(LookupError):
        ingest_source(con, "tickets", tmp_path, policy, encoding="no-such-codec")


def test_replacement_counts_stay_with_the_file_across_runs(con, tmp_path, policy):
    # 0x81 has no character in cp1252 (and "é " none in GB18030): cp1252, one byte replaced
    (tmp_path / "tickets.csv").write_bytes(tickets("caf\xe9 \x81").encode("latin-1"))
    ingest_source(con, "tickets", tmp_path, policy)
    (tmp_path / "tickets-2.csv").write_bytes(tickets("fine").replace("T1,", "T7,").encode())
    result = ingest_source(con, "tickets", tmp_path, policy)  # tickets.csv is not read again
    assert [entry.change for entry in result.files] == ["unchanged", "new"]
    [outcome] = decoding_outcomes(con, "tickets")
    assert (outcome.column, outcome.unexpected_count) == ("subject", 1)
    assert "tickets.csv (cp1252) 1" in outcome.observed


# --- vendor adapters --------------------------------------------------------------------------------------------

ZENDESK_CSV = (
    "Id,Subject,Status,Priority,Via,Ticket type,Created at,Updated at,Solved at,Group,Tags,"
    "First reply time in minutes,First reply time in minutes within business hours,Full resolution time in minutes\n"
    "101,Caf\xe9 cr\xe8me: cannot log in,Solved,Normal,Web form,Question,2026-07-18 09:10:00,2026-07-18 12:00:00,"
    "2026-07-18 11:40:00,Support,login,95,95,150\n"
)


def test_zendesk_csv_in_cp1252(tmp_path, policy):
    path = tmp_path / "zendesk_tickets.csv"
    path.write_bytes(ZENDESK_CSV.encode("cp1252"))
    with vendor_encoding(None):
        conversion = adapter_for("zendesk").convert([path], AdapterOptions(policy=policy, timezone="UTC"))
    assert conversion.tables["tickets"]["subject"].to_list() == ["Café crème: cannot log in"]
    [record] = conversion.inputs
    assert (record.encoding, record.replaced_characters, record.rows_quarantined) == ("cp1252", 0, 0)


def test_mbox_archive_counts_what_did_not_decode(tmp_path):
    from compliance.policy import load_policy

    path = tmp_path / "inbox.mbox"
    box = mailbox.mbox(str(path))
    box.add(
        b"From: user@example.cn\nTo: security@telegram.org\nSubject: "
        + "账户无法登录".encode("gbk")
        + b"\nDate: Wed, 04 Nov 2026 09:00:00 +0800\nMessage-ID: <m1@example.cn>\nContent-Type: text/plain\n\n"
        + "有人登录了我的账户".encode("gbk")
        + b" \xff\n"
    )
    box.flush()
    box.close()
    with vendor_encoding(None):
        conversion = adapter_for("mbox").convert([path], AdapterOptions(policy=load_policy("email-support")))
    assert conversion.tables["tickets"]["subject"].to_list() == ["账户无法登录"]
    assert conversion.tables["tickets"]["description"].to_list() == ["有人登录了我的账户 \ufffd"]
    [record] = conversion.inputs
    assert (record.encoding, record.replaced_characters) == ("MIME charsets", 1)


def test_mbox_with_undeclared_8bit_gbk():
    raw = (
        b"From: user@example.com\nTo: support@telegram.org\nSubject: "
        + "账户无法登录，请协助".encode("gbk")
        + b"\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n"
        + "你好，我的账户无法登录。".encode("gbk")
        + b"\n"
    )
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert _header_text(parsed, "subject") == ("账户无法登录，请协助", 0)
    assert _body_text(parsed) == ("你好，我的账户无法登录。", 0)
    declared_wrong = raw.replace(b"Content-Type: text/plain", b"Content-Type: text/plain; charset=gb2312")
    body = "镕".encode("gbk")  # a GBK character outside GB2312, under a gb2312 label
    parsed = email.message_from_bytes(
        declared_wrong.split(b"\n\n")[0] + b"\n\n" + body + b"\n", policy=email.policy.default
    )
    assert _body_text(parsed) == ("镕", 0)


# --- command line and manifest ----------------------------------------------------------------------------------


def test_run_reads_cp1252_judges_the_ticket_and_the_manifest_names_every_encoding(tmp_path, capsys):
    from pipelines.cli import main

    exports = tmp_path / "exports"
    exports.mkdir()
    # 0x81 has no character in cp1252 (and "é " none in GB18030): replaced, counted, the ticket kept
    (exports / "tickets.csv").write_bytes(tickets("caf\xe9 au lait", description="x\x81 y").encode("latin-1"))
    (exports / "incidents.jsonl").write_bytes(
        (
            '{"incident_id": "I1", "kind": "incident", "severity": "sev1", "started_at": "2026-03-01T10:00:00Z"}\n'
        ).encode("utf-16")
    )
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", "2026-04-01T00:00:00Z"]) == 0
    with (out / "evidence" / "ticket_sla.csv").open(encoding="utf-8") as handle:
        assert "T1" in {row["record_id"] for row in csv.DictReader(handle)}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    encodings_of = {entry["file"]: entry["encoding"] for entry in manifest["inputs"] if entry["file"]}
    assert encodings_of == {"tickets.csv": "cp1252", "incidents.jsonl": "utf-16"}
    assert all("encoding" in entry for entry in manifest["inputs"])
    with (out / "evidence" / "data_quality.csv").open(encoding="utf-8") as handle:
        decoded = [row for row in csv.DictReader(handle) if row["expectation"] == DECODED]
    assert [(row["source"], row["column_name"], row["unexpected_count"], row["blocking"]) for row in decoded] == [
        ("tickets", "description", "1", "false")
    ]


def test_encoding_option_of_convert_and_run(tmp_path, capsys):
    from pipelines.cli import main

    vendor = tmp_path / "zendesk_tickets.csv"
    vendor.write_bytes(ZENDESK_CSV.encode("cp1252"))
    out = tmp_path / "canonical"
    assert (
        main(
            [
                "convert",
                "--format",
                "zendesk",
                str(vendor),
                "--out",
                str(out),
                "--timezone",
                "UTC",
                "--encoding",
                "latin-1",
            ]
        )
        == 0
    )
    log = json.loads((out / "conversion.json").read_text(encoding="utf-8"))
    assert [(item["encoding"], item["replaced_characters"]) for item in log["inputs"]] == [("iso8859-1", 0)]
    with (out / "tickets.csv").open(encoding="utf-8") as handle:
        assert [row["subject"] for row in csv.DictReader(handle)] == ["Café crème: cannot log in"]
    for command in (
        ["convert", "--format", "zendesk", str(vendor), "--out", str(out)],
        ["run", "--exports", str(out), "--out", str(out)],
    ):
        assert main([*command, "--encoding", "klingon"]) == 2
        assert "--encoding 'klingon': not a known text encoding" in capsys.readouterr().err
