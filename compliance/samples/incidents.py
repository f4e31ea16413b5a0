"""incidents and incident_updates."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR, BusinessClock, lognormal
from compliance.samples.messy import BAD_TIMESTAMPS, MESSY_KINDS, Edits, apply_common_messy, messy_plan
from compliance.samples.options import S_INCIDENTS, GenerateOptions
from compliance.samples.output import fmt_ts, iso_naive, make_ids, pick, write_csv


def write_incidents(opts: GenerateOptions, clock: BusinessClock, as_of: int) -> dict[str, int]:
    n = int(opts.incidents)
    rng = np.random.default_rng([opts.seed, S_INCIDENTS])
    start = np.sort(rng.integers(as_of - 365 * DAY, as_of - HOUR, n)) if n else np.empty(0, dtype=np.int64)
    maint = rng.random(n) < 0.25
    sev = rng.choice(3, size=n, p=(0.10, 0.35, 0.55))
    # maintenance: scheduled on a quiet hour (02:00-05:00 UTC), announced usually >= 7 days ahead
    sched = (start // DAY) * DAY + rng.integers(2, 6, n) * HOUR
    sched = np.where(sched > as_of - 6 * HOUR, sched - DAY, sched)
    late_notice = rng.random(n) < 0.15
    announce = sched - (np.where(late_notice, rng.uniform(0.5, 6.9, n), rng.uniform(7.2, 21, n)) * DAY).astype(np.int64)
    started = np.where(maint, sched + rng.integers(0, 10 * 60, n), start)
    ack = started + lognormal(rng, np.where(sev == 0, 4 * 60, 8 * 60), 0.8, n) + 30
    dur = np.where(
        maint,
        rng.integers(30 * 60, 4 * HOUR, n),
        lognormal(rng, np.array([3 * HOUR, 90 * 60, 45 * 60])[sev], 0.8, n) + 10 * 60,
    )
    resolved = started + dur
    res_ok = resolved <= as_of
    ack_ok = ~maint & (ack <= as_of) & (ack <= np.where(res_ok, resolved, as_of))
    ack = np.minimum(ack, resolved)
    pm = resolved + lognormal(rng, 5 * DAY, 0.6, n) + HOUR
    pm_ok = ~maint & res_ok & (rng.random(n) >= np.where(sev == 2, 0.15, 0.05)) & (pm <= as_of)
    kind = np.where(maint, 1, 0)
    df = pl.DataFrame(
        {
            "incident_id": make_ids("INC", 0, n, 5),
            "kind": pick(("incident", "maintenance"), kind),
            "severity": pick(("sev1", "sev2", "sev3", None), np.where(maint, 3, sev)),
            "started_at": fmt_ts(started),
            "acknowledged_at": fmt_ts(ack, ack_ok),
            "resolved_at": fmt_ts(resolved, res_ok),
            "announced_at": fmt_ts(announce, maint),
            "scheduled_start_at": fmt_ts(sched, maint),
            "postmortem_published_at": fmt_ts(pm, pm_ok),
        }
    )
    # updates: a first post a few minutes in, then mostly < 60 min apart, a final post at resolution
    up_inc, up_t = [], []
    for i in range(n):
        end = int(resolved[i]) if res_ok[i] else as_of
        t = int(started[i]) + int(rng.integers(3 * 60, 20 * 60))
        long_gap = rng.random() < 0.12
        while t < end:
            up_inc.append(i)
            up_t.append(t)
            g = int(25 * 60 * np.exp(rng.normal(0, 0.45)))
            if long_gap and rng.random() < 0.3:
                g, long_gap = int(rng.integers(75 * 60, 180 * 60)), False
            t += max(g, 120)
        if res_ok[i]:
            up_inc.append(i)
            up_t.append(end)
    up_inc_a = np.array(up_inc, dtype=np.int64)
    up_t_a = np.array(up_t, dtype=np.int64)
    m = len(up_inc_a)
    ids = df.get_column("incident_id")
    updates = pl.DataFrame(
        {
            "incident_id": ids.gather(pl.Series(up_inc_a)) if m else pl.Series([], dtype=pl.String),
            "posted_at": fmt_ts(up_t_a),
        }
    )

    mplan = messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["incidents"])
    times = {
        "started_at": (started, np.ones(n, dtype=bool)),
        "acknowledged_at": (ack, ack_ok),
        "resolved_at": (resolved, res_ok),
        "announced_at": (announce, maint),
        "scheduled_start_at": (sched, maint),
        "postmortem_published_at": (pm, pm_ok),
    }
    df, edits = apply_common_messy(df, mplan, rng, "incident_id", times, "started_at", ("kind",))
    for row in mplan["unknown_kind"]:
        edits.set("kind", row, ("outage", "degradation", "planned")[int(rng.integers(0, 3))])
    df = edits.apply(df)

    uplan = messy_plan(rng, m, opts.messy_fraction, MESSY_KINDS["incident_updates"])
    uedits = Edits()
    for row in uplan["unparseable_timestamp"]:
        uedits.set("posted_at", row, BAD_TIMESTAMPS[int(rng.integers(0, len(BAD_TIMESTAMPS)))])
    for row in uplan["orphan_incident"]:
        uedits.set("incident_id", row, f"INC{n + 90000 + int(row):05d}")
    for row in uplan["naive_timestamp"]:
        uedits.set("posted_at", row, iso_naive(int(up_t_a[row])))
    updates = uedits.apply(updates)
    return {
        "incidents.csv": write_csv(opts.out_dir / "incidents.csv", df, "incidents"),
        "incident_updates.csv": write_csv(opts.out_dir / "incident_updates.csv", updates, "incident_updates"),
    }
