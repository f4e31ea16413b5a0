"""A vendor row the adapter cannot convert (``conversion_quarantine.csv``) reaches the outputs only as canonical
quarantine rows do: its ID pseudonymised, its reason redacted (``compliance/core/secrets.py``). Nothing of its
e-mail address, token or name is in any file under ``--out``, the warehouse excepted (it keeps raw text: README)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from conftest import REQUEST_LOG_MAPPING, write

from pipelines.cli import main

AS_OF = "2026-11-01T00:00:00Z"
EMAIL = "jane.doe@example.com"
TOKEN = "sk_live_abcdefghijklmnop1234"
NAME = "Jane Doe"
# Lines 4 and 5 cannot be converted (a timestamp no format reads): one with an e-mail address as its ID, one with
# a token as its ID and the e-mail address inside the unreadable value; the requester's name rides along.
REQUESTS = f"""Tracking Number,Submitted Date,Closed Date,Disposition,Requester
REQ-1,09/01/2026,09/10/2026,completed,Ann Smith
REQ-2,09/02/2026,,received,Bo Chen
{EMAIL},not a date,09/12/2026,completed,{NAME}
{TOKEN},09/03/2026,someday {EMAIL},completed,{NAME}
"""
LEAKS = (EMAIL, TOKEN, NAME, "jane.doe", "abcdefghijklmnop1234")


def _pseudonym(kind: str, record_id: str) -> str:
    return f"[REDACTED:{kind}]-{hashlib.sha256(record_id.encode()).hexdigest()[:16]}"


def _texts(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` but the warehouse, as text (Parquet files as the CSV of their rows)."""
    texts = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("warehouse.duckdb"):
            continue
        if path.suffix == ".parquet":
            texts[path.name] = pl.read_parquet(path).write_csv()
        else:
            texts[path.name] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


@pytest.fixture(scope="module")
def vendor(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("conversion_privacy")
    write(root / "vendor" / "requests.csv", REQUESTS)
    write(root / "mapping.yaml", REQUEST_LOG_MAPPING)
    return root


def test_an_unconvertible_row_leaves_no_personal_data_under_out(vendor):
    out = vendor / "out"
    command = ["run", "--exports", str(vendor / "vendor"), "--format", "mapping"]
    assert main([*command, "--mapping", str(vendor / "mapping.yaml"), "--out", str(out), "--as-of", AS_OF]) == 0
    texts = _texts(out)
    assert {"quarantine.csv", "manifest.json", "compliance_report.html", "sla_dashboard.html"} <= set(texts)
    found = [(name, leak) for name, text in texts.items() for leak in LEAKS if leak in text]
    assert found == []
    # the two rows are in the quarantine evidence, named by the pseudonyms an auditor traces by hashing the IDs
    quarantine = pl.read_csv(out / "evidence" / "quarantine.csv").filter(pl.col("source_file") == "requests.csv")
    assert quarantine.select("line", "record_id", "reason_code").rows() == [
        (4, _pseudonym("email", EMAIL), "bad_timestamp"),
        (5, _pseudonym("api_key_or_token", TOKEN), "bad_timestamp"),
    ]
    assert quarantine.get_column("reason").to_list()[1].endswith("someday [REDACTED:email]")


def test_convert_writes_the_conversion_quarantine_pseudonymised(vendor):
    """`convert --out` keeps the customers' text in the canonical files it writes (run must read them raw), but
    its quarantine file, read by no rule, names the rows as the evidence does."""
    out = vendor / "converted"
    command = ["convert", str(vendor / "vendor"), "--format", "mapping", "--mapping", str(vendor / "mapping.yaml")]
    assert main([*command, "--out", str(out)]) == 0
    quarantine = (out / "conversion_quarantine.csv").read_text(encoding="utf-8")
    assert [leak for leak in LEAKS if leak in quarantine] == []
    assert _pseudonym("email", EMAIL) in quarantine and _pseudonym("api_key_or_token", TOKEN) in quarantine
