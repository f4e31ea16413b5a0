"""Policy versions: `version` and `effective_from` in every policy file, a folder of versions, and each item judged
by the version in force when its clock started (the privacy policy's "Last updated: 2026-04-30" as the boundary)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SHARED, write

from compliance.policy import PolicyError, load_policy, load_policy_versions, version_in_force
from pipelines.cli import main

SHIPPED = load_policy("platform").path
# The version before 2026-04-30, as a hypothetical older privacy policy: completion within 45 days.
OLD_TARGET = (
    "target: {days: 30}\n    calendar: CAL-247\n    settings:\n      day_counting: days",
    "target: {days: 45}\n    calendar: CAL-247\n    settings:\n      day_counting: days",
)
# Two requests completed 37 days after receipt: on time under 45 days, late under 30. One arrives in the last
# second before the new version, the other at its first.
PRIVACY = (
    "request_id,request_type,received_at,first_response_at,completed_at,extended,extension_notified_at,status\n"
    "OLD_SIDE,access,2026-04-29T23:59:59Z,2026-04-30T10:00:00Z,2026-06-05T23:59:59Z,false,,completed\n"
    "NEW_SIDE,access,2026-04-30T00:00:00Z,2026-04-30T10:00:00Z,2026-06-06T00:00:00Z,false,,completed\n"
)
AS_OF = "2026-11-01T00:00:00Z"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> Path:
    """policies/platform/: the shipped file (version 2026-04-30) and an older one (version 2025-01-01, 45 days)."""
    folder = tmp_path_factory.mktemp("versions") / "platform"
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert OLD_TARGET[0] in shipped and 'version: "2026-04-30"' in shipped
    older = shipped.replace(OLD_TARGET[0], OLD_TARGET[1]).replace('version: "2026-04-30"', 'version: "2025-01-01"')
    write(folder / "2025-01-01.yaml", older.replace("effective_from: 2026-04-30", "effective_from: 2025-01-01"))
    write(folder / "2026-04-30.yaml", shipped)
    return folder


def test_the_shipped_policies_carry_a_version_and_the_day_it_took_effect():
    platform = load_policy("platform")
    # /work/shared/seeds/001_*.txt (the privacy policy, source 001): "Last updated: 2026-04-30"
    seed = next((SHARED / "seeds").glob("001_*.txt"), None)
    if seed is not None:
        assert "Last updated: 2026-04-30" in seed.read_text(encoding="utf-8")
    assert (platform.version, platform.effective_from) == ("2026-04-30", utc("2026-04-30"))
    for profile in ("email-support", "city-311", "status-feed"):
        assert load_policy(profile).version != "unversioned" and load_policy(profile).effective_from is not None


def test_a_folder_holds_the_versions_oldest_first(versions):
    loaded = load_policy_versions(versions)
    assert [policy.version for policy in loaded] == ["2025-01-01", "2026-04-30"]
    assert load_policy_versions("platform") == (load_policy("platform"),)


def test_the_version_in_force_at_the_boundary(versions):
    old, new = load_policy_versions(versions)
    # clocks started up to the last second before 2026-04-30 are the old version's; from its first, the new one's
    assert version_in_force((old, new), utc("2026-04-01"), utc("2026-04-30")) is old
    assert version_in_force((old, new), utc("2026-04-30"), utc("2026-06-01")) is new
    assert version_in_force((old, new), utc("2024-01-01"), utc("2024-02-01")) is old  # before the oldest: the oldest
    with pytest.raises(PolicyError, match=r"changes on 2026-04-30 \(version 2026-04-30\)"):
        version_in_force((old, new), utc("2026-04-01"), utc("2026-05-01"))
    with pytest.raises(PolicyError, match="give a --period within one version"):
        version_in_force((old, new), None, None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("effective_from: 2025-01-01\n", ""), "needs `version` and `effective_from`"),
        (("effective_from: 2025-01-01", "effective_from: 2026-04-30"), "the same version or effective_from"),
        (("profile: platform", "profile: other"), "profile 'platform', not the folder's 'other'"),
    ],
)
def test_a_folder_of_inconsistent_versions_is_refused(versions, tmp_path, change, problem):
    folder = tmp_path / "platform"
    for file in versions.iterdir():
        text = file.read_text(encoding="utf-8")
        write(folder / file.name, text.replace(*change) if file.name.startswith("2025") else text)
    with pytest.raises(PolicyError, match=problem):
        load_policy_versions(folder)


def test_a_bad_effective_from_is_refused_with_its_key(tmp_path):
    own = write(tmp_path / "p.yaml", SHIPPED.read_text(encoding="utf-8").replace("2026-04-30\n", "30 April 2026\n"))
    with pytest.raises(PolicyError, match="effective_from"):
        load_policy(own)


def run(exports: Path, out: Path, policy: Path, period: str) -> int:
    return main(
        [
            "run",
            "--exports",
            str(exports),
            "--out",
            str(out),
            "--policy",
            str(policy),
            "--period",
            period,
            "--as-of",
            AS_OF,
        ]
    )


def completion(out: Path) -> dict[str, str]:
    with (out / "evidence" / "violations.csv").open(newline="", encoding="utf-8") as handle:
        return {
            row["record_id"]: row["explanation"] for row in csv.DictReader(handle) if row["rule_id"] == "PRIV-COMPLETE"
        }


def verdict_rows(out: Path) -> list[dict]:
    with (out / "evidence" / "verdicts.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_each_side_of_the_boundary_is_judged_by_its_own_version(versions, tmp_path, capsys):
    exports = tmp_path / "exports"
    write(exports / "privacy_requests.csv", PRIVACY)
    before, after = tmp_path / "before", tmp_path / "after"
    assert run(exports, before, versions, "2026-04-01..2026-04-29") == 0
    assert run(exports, after, versions, "2026-04-30..2026-05-31") == 0
    # 2026-04-29T23:59:59Z: 37 days, within the old version's 45; 2026-04-30T00:00:00Z: late by the new 30
    assert completion(before) == {}
    assert list(completion(after)) == ["NEW_SIDE"]
    manifests = [json.loads((out / "manifest.json").read_text(encoding="utf-8")) for out in (before, after)]
    assert [m["policy"]["version"] for m in manifests] == ["2025-01-01", "2026-04-30"]
    assert [m["policy"]["effective_from"] for m in manifests] == ["2025-01-01T00:00:00Z", "2026-04-30T00:00:00Z"]
    report = (after / "compliance_report.html").read_text(encoding="utf-8")
    assert (
        "<dt>Policy version</dt><dd>2026-04-30, effective from 2026-04-30 00:00:00 UTC: it judged every item" in report
    )
    # every item of the period (rule x record) is counted as judged by that one version
    judged = sum(
        int(row[key] or 0) for row in verdict_rows(after) for key in ("achieved", "breached", "active", "excluded")
    )
    assert judged > 0 and f"it judged every item of this report ({judged} rule × record items)" in report
    # the new version's target never rewrites the verdicts before its day: the old file alone judges the same
    alone = tmp_path / "alone"
    assert run(exports, alone, versions / "2025-01-01.yaml", "2026-04-01..2026-04-29") == 0
    for name in ("violations.csv", "verdicts.csv", "metrics.csv"):
        assert (alone / "evidence" / name).read_bytes() == (before / "evidence" / name).read_bytes(), name
    capsys.readouterr()
    # a month across the change is refused with one line, never judged under one version for both sides
    assert run(exports, tmp_path / "april", versions, "2026-04") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "changes on 2026-04-30 (version 2026-04-30)" in error
