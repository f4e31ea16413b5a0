"""Policy versions: `version` and `effective_from` in every policy file, a folder of versions, and each item judged
by the version in force when its clock started (the privacy policy's "Last updated: 2026-04-30" as the boundary)."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SHARED, small_exports, write
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from compliance.policy import PolicyError, load_policy, load_policy_versions, version_windows
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


def window_bounds(windows) -> list[tuple]:
    return [(window.policy.version, window.start, window.end, window.latest) for window in windows]


def test_the_versions_judging_a_period_at_the_boundary(versions):
    old, new = load_policy_versions(versions)
    # clocks started up to the last second before 2026-04-30 are the old version's; from its first, the new one's
    assert window_bounds(version_windows((old, new), utc("2026-04-01"), utc("2026-04-30"))) == [
        ("2025-01-01", utc("2026-04-01"), utc("2026-04-30"), True)
    ]
    assert window_bounds(version_windows((old, new), utc("2026-04-30"), utc("2026-06-01"))) == [
        ("2026-04-30", utc("2026-04-30"), utc("2026-06-01"), True)
    ]
    # before the oldest version's day: the oldest (there is nothing older to judge by)
    assert [w.policy for w in version_windows((old, new), utc("2024-01-01"), utc("2024-02-01"))] == [old]
    # a period across the day: each side by its own version, the newest reading what has no clock start
    assert window_bounds(version_windows((old, new), utc("2026-04-01"), utc("2026-05-01"))) == [
        ("2025-01-01", utc("2026-04-01"), utc("2026-04-30"), False),
        ("2026-04-30", utc("2026-04-30"), utc("2026-05-01"), True),
    ]
    assert window_bounds(version_windows((old, new), None, None)) == [
        ("2025-01-01", None, utc("2026-04-30"), False),
        ("2026-04-30", utc("2026-04-30"), None, True),
    ]


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(0, 2000), min_size=1, max_size=5, unique=True),
    bounds=st.tuples(st.none() | st.integers(-100, 2100), st.none() | st.integers(-100, 2100)),
    probes=st.lists(st.integers(-200, 2200), min_size=1, max_size=20),
)
def test_every_instant_of_a_period_is_judged_by_the_version_in_force_then(days, bounds, probes):
    """Against the obvious reading: an instant belongs to the newest version whose day is at or before it (the
    oldest before every day), and to exactly one window; the windows cover the period and nothing else."""
    origin = utc("2024-01-01")
    policy = load_policy("platform")
    versions = tuple(
        dataclasses.replace(policy, version=f"v{day}", effective_from=origin + timedelta(days=day))
        for day in sorted(days)
    )
    start, end = (origin + timedelta(days=b) if b is not None else None for b in bounds)
    assume(start is None or end is None or start < end)
    windows = version_windows(versions, start, end)
    assert [w.latest for w in windows] == [False] * (len(windows) - 1) + [True]
    for probe in probes:
        instant = origin + timedelta(days=probe, hours=12)
        in_period = (start is None or instant >= start) and (end is None or instant < end)
        holding = [w for w in windows if (w.start is None or instant >= w.start) and (w.end is None or instant < w.end)]
        if not in_period:
            assert holding == []
            continue
        in_force = [v for v in versions if v.effective_from <= instant] or [versions[0]]
        assert [w.policy.version for w in holding] == [in_force[-1].version]


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
    # a month across the change: each side by its own version, in one report
    april = tmp_path / "april"
    assert run(exports, april, versions, "2026-04") == 0
    assert list(completion(april)) == ["NEW_SIDE"]
    assert "judged by the version in force when its clock started" in (april / "compliance_report.html").read_text(
        encoding="utf-8"
    )


def rows_of(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_run_across_the_change_judges_each_item_by_its_version_and_says_so(versions, tmp_path):
    exports = tmp_path / "exports"
    write(exports / "privacy_requests.csv", PRIVACY)
    out = tmp_path / "out"
    assert main(["run", "--exports", str(exports), "--out", str(out), "--policy", str(versions), "--as-of", AS_OF]) == 0
    assert list(completion(out)) == ["NEW_SIDE"]
    verdict = next(row for row in verdict_rows(out) if row["rule_id"] == "PRIV-COMPLETE")
    # one verdict over both sides: one on time under 45 days, one late under 30; both targets named
    assert (verdict["verdict"], verdict["achieved"], verdict["breached"], verdict["denominator"]) == (
        "breached",
        "1",
        "1",
        "2",
    )
    assert verdict["target"] == "30 days; 45 days for items started before 2026-04-30 (version 2025-01-01)"
    # the figures are computed over both versions' items, the exact quantiles included (37 days each side)
    figures = next(
        row
        for row in rows_of(out / "evidence" / "metrics.csv")
        if (row["rule_id"], row["period"], row["segment"]) == ("PRIV-COMPLETE", "all", "all")
    )
    assert (figures["achieved"], figures["breached"], figures["adherence_pct"]) == ("1", "1", "50.0")
    assert float(figures["median_seconds"]) == 37 * 86400
    # who judged how many items: the evidence, the manifest and the report agree
    judged = rows_of(out / "evidence" / "policy_versions.csv")
    by_version = {}
    for row in judged:
        by_version[row["version"]] = by_version.get(row["version"], 0) + int(row["items"])
    assert by_version == {"2025-01-01": 3, "2026-04-30": 3}  # PRIV-RESP, PRIV-COMPLETE, PRIV-TYPES each side
    assert {
        (row["version"], row["judged_from"], row["judged_until"]) for row in judged if row["rule_id"] == "PRIV-COMPLETE"
    } == {
        ("2025-01-01", "", "2026-04-30T00:00:00Z"),
        ("2026-04-30", "2026-04-30T00:00:00Z", ""),
    }
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [(v["version"], v["items"], v["sha256"]) for v in manifest["policy_versions"]] == [
        (policy.version, 3, policy.sha256) for policy in load_policy_versions(versions)
    ]
    assert manifest["policy"]["folder"] == "platform" and manifest["policy"]["version"] == "2026-04-30"
    report = (out / "compliance_report.html").read_text(encoding="utf-8")
    assert "<dt>Policy versions</dt>" in report and "before 2026-04-30 00:00:00 UTC" in report
    # an auditor's re-run finds the same evidence from the folder
    assert main(["verify", str(out), "--exports", str(exports), "--policy", str(versions)]) == 0


def test_a_newer_version_never_rewrites_the_verdicts_before_its_day(versions, tmp_path):
    """Data entirely before 2026-04-30: the folder (both versions) and the old file alone judge it alike."""
    exports = tmp_path / "exports"
    write(
        exports / "privacy_requests.csv",
        PRIVACY.replace("NEW_SIDE,access,2026-04-30T00:00:00Z", "NEW_SIDE,access,2026-04-29T00:00:00Z"),
    )
    folder_out, alone_out = tmp_path / "folder", tmp_path / "alone"
    for policy, out in ((versions, folder_out), (versions / "2025-01-01.yaml", alone_out)):
        assert (
            main(["run", "--exports", str(exports), "--out", str(out), "--policy", str(policy), "--as-of", AS_OF]) == 0
        )
    for name in ("violations.csv", "metrics.csv", "ticket_sla.csv", "at_risk.csv", "waivers.csv"):
        assert (folder_out / "evidence" / name).read_bytes() == (alone_out / "evidence" / name).read_bytes(), name
    assert completion(folder_out) == {}


# A version change in the middle of a year of generated data: the old version gives technical priority tickets
# 8 business hours (not 4) and completes privacy requests within 45 days (not 30).
OLD_TARGETS = (
    (
        "    applies_to: {channel: technical_support, tier: priority}\n    target: {hours: 4}",
        "    applies_to: {channel: technical_support, tier: priority}\n    target: {hours: 8}",
    ),
    OLD_TARGET,
)
CHANGE_DAY = "2026-06-01"


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> dict[str, Path]:
    """A year of exports judged three ways: whole by a two-version folder (the change on 2026-06-01), and the two
    sides apart as report periods."""
    root = tmp_path_factory.mktemp("year")
    exports = small_exports(
        root / "exports",
        tickets=400,
        privacy_requests=60,
        security_reports=30,
        incidents=20,
        retention_records=100,
        seed=7,
        messy_fraction=0.0,
        as_of=utc("2026-11-01"),
    )
    shipped = SHIPPED.read_text(encoding="utf-8").replace("effective_from: 2026-04-30", f"effective_from: {CHANGE_DAY}")
    older = (
        shipped.replace(*OLD_TARGETS[0])
        .replace(*OLD_TARGETS[1])
        .replace('version: "2026-04-30"', 'version: "2025-01-01"')
    )
    older = older.replace(f"effective_from: {CHANGE_DAY}", "effective_from: 2025-01-01")
    assert older.count("target: {hours: 8}") == 1
    folder = root / "platform"
    write(folder / "2025-01-01.yaml", older)
    write(folder / "2026-06-01.yaml", shipped)
    outs = {"whole": root / "whole", "before": root / "before", "after": root / "after"}
    periods = {
        "whole": [],
        "before": ["--period", "2025-01-01..2026-05-31"],
        "after": ["--period", "2026-06-01..2026-12-31"],
    }
    for name, out in outs.items():
        command = ["run", "--exports", str(exports), "--out", str(out), "--policy", str(folder), "--as-of", AS_OF]
        assert main([*command, *periods[name]]) == 0, name
    return outs


def evidence_rows(out: Path, name: str, keep=lambda row: True) -> list[tuple]:
    return sorted(tuple(row.items()) for row in rows_of(out / "evidence" / name) if keep(row))


@pytest.mark.parametrize("name", ["ticket_sla.csv", "violations.csv", "at_risk.csv"])
def test_a_run_across_versions_is_the_union_of_its_sides(year, name):
    """Every judged item of the whole run is the one its side's report has, judged alike: the old side by the old
    version, the new side by the new; the retention inventory (no clock) by the newest version only."""
    not_retention = lambda row: row.get("domain") != "retention"  # noqa: E731
    expected = sorted(evidence_rows(year["before"], name, not_retention) + evidence_rows(year["after"], name))
    assert evidence_rows(year["whole"], name) == expected
    assert expected, "no rows to compare"


def test_the_figures_across_versions_add_up_and_the_old_target_judged_the_old_side(year):
    def all_rows(out: Path) -> dict[str, dict]:
        return {
            row["rule_id"]: row
            for row in rows_of(out / "evidence" / "metrics.csv")
            if row["period"] == "all" and row["segment"] == "all"
        }

    whole, before, after = (all_rows(year[name]) for name in ("whole", "before", "after"))
    for rule_id, row in whole.items():
        sides = [after[rule_id]] + ([before[rule_id]] if row["domain"] != "retention" else [])
        for column in ("achieved", "breached", "active", "excluded", "waived"):
            assert int(row[column]) == sum(int(side[column]) for side in sides), (rule_id, column)
    # the old version's 8 hours judged the technical priority tickets created before the change
    prio = [row for row in rows_of(year["before"] / "evidence" / "ticket_sla.csv") if row["rule_id"] == "SUP-TECH-PRIO"]
    assert prio and {row["target_seconds"] for row in prio} == {str(8 * 3600)}
    whole_prio = {
        row["record_id"]: row["target_seconds"]
        for row in rows_of(year["whole"] / "evidence" / "ticket_sla.csv")
        if row["rule_id"] == "SUP-TECH-PRIO"
    }
    assert {whole_prio[row["record_id"]] for row in prio} == {str(8 * 3600)}
    assert set(whole_prio.values()) == {str(8 * 3600), str(4 * 3600)}


def test_a_monthly_partition_across_the_change_judges_as_the_run_does(versions, tmp_path):
    """The Dagster month partition (a DuckDB of its own reading the warehouse read-only) judges each side of
    2026-04-30 by its version, as `run --period 2026-04` does, byte for byte."""
    import dagster as dg

    from assets.partitions import monthly_report
    from assets.resources import ReporterSettings, Warehouse

    exports, out = tmp_path / "exports", tmp_path / "out"
    write(exports / "privacy_requests.csv", PRIVACY)
    assert run(exports, out, versions, "2026-04") == 0
    resources = {
        "settings": ReporterSettings(exports_dir=str(exports), out_dir=str(out), policy=str(versions), as_of=AS_OF),
        "warehouse": Warehouse(path=str(out / "warehouse.duckdb")),
    }
    assert dg.materialize([monthly_report], partition_key="2026-04-01", resources=resources).success
    month = out / "periods" / "2026-04"
    assert list(completion(month)) == ["NEW_SIDE"]
    for name in ("violations.csv", "metrics.csv", "verdicts.csv", "policy_versions.csv", "waivers.csv"):
        assert (month / "evidence" / name).read_bytes() == (out / "evidence" / name).read_bytes(), name


def test_a_rule_the_newer_version_dropped_still_judges_the_items_before_it(versions, tmp_path):
    """PRIV-RESP only in the old version: its verdict is listed (after the newest version's rules) and judges the
    request received before the change; the one received after it is judged by no PRIV-RESP at all."""
    folder = tmp_path / "platform"
    old_file, new_file = sorted(versions.iterdir())
    write(folder / old_file.name, old_file.read_text(encoding="utf-8"))
    newest = new_file.read_text(encoding="utf-8")
    block = newest[newest.index("  - id: PRIV-RESP\n") : newest.index("  - id: PRIV-COMPLETE\n")]
    write(folder / new_file.name, newest.replace(block, ""))
    exports, out = tmp_path / "exports", tmp_path / "out"
    write(exports / "privacy_requests.csv", PRIVACY)
    assert main(["run", "--exports", str(exports), "--out", str(out), "--policy", str(folder), "--as-of", AS_OF]) == 0
    verdicts = verdict_rows(out)
    assert verdicts[-1]["rule_id"] == "PRIV-RESP"
    assert (verdicts[-1]["verdict"], verdicts[-1]["achieved"], verdicts[-1]["denominator"]) == ("met", "1", "1")
    judged = [row for row in rows_of(out / "evidence" / "policy_versions.csv") if row["rule_id"] == "PRIV-RESP"]
    assert [(row["version"], row["items"]) for row in judged] == [("2025-01-01", "1")]


def test_a_second_run_across_versions_reuses_its_stores_and_writes_the_same_evidence(year):
    """The stores a run keeps for the next (clock rows, secret scan, checks, evidence files) hold the whole pass's
    work, never one version's part: the second run on the same folder writes the same evidence."""
    evidence = year["whole"] / "evidence"
    before = {path.name: path.read_bytes() for path in sorted(evidence.glob("*.csv"))}
    folder = year["whole"].parent / "platform"
    exports = year["whole"].parent / "exports"
    command = ["run", "--exports", str(exports), "--out", str(year["whole"]), "--policy", str(folder), "--as-of", AS_OF]
    assert main(command) == 0
    after = {path.name: path.read_bytes() for path in sorted(evidence.glob("*.csv"))}
    assert sorted(after) == sorted(before)
    for name, content in before.items():
        assert after[name] == content, name
