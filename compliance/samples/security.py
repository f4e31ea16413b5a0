"""security_reports."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR, BusinessClock, lognormal, sample_times
from compliance.samples.messy import MESSY_KINDS, apply_common_messy, messy_plan
from compliance.samples.options import S_SECURITY, GenerateOptions
from compliance.samples.output import fmt_ts, iso_z, make_ids, write_csv


def write_security(opts: GenerateOptions, clock: BusinessClock, as_of: int) -> dict[str, int]:
    n = int(opts.security_reports)
    rng = np.random.default_rng([opts.seed, S_SECURITY])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of, growth=0.0)
    rec = np.minimum(sample_times(rng, hours, p, n), as_of - 1)
    ack = rec + lognormal(rng, 5 * HOUR, 0.9, n) + 300
    ack_ok = ack <= as_of
    tl = np.maximum(rec + lognormal(rng, 2.5 * DAY, 0.6, n), ack + 60)
    tl_ok = (rng.random(n) >= 0.03) & (tl <= as_of)
    fixed = tl + lognormal(rng, 20 * DAY, 0.7, n)
    fixed_ok = (rng.random(n) < 0.8) & (fixed <= as_of) & tl_ok
    embargo = rng.random(n) < 0.08
    emb_until = rec + (rng.uniform(100, 150, n) * DAY).astype(np.int64)
    emb_ok = embargo & (rec + 80 * DAY <= as_of)  # agreed before the 90-day deadline
    late = rng.random(n) < 0.05  # disclosed after the deadline
    limit = np.where(emb_ok, emb_until, rec + 90 * DAY)
    disc = np.where(
        late,
        limit + (rng.uniform(2, 30, n) * DAY).astype(np.int64),
        np.minimum(fixed + (rng.uniform(1, 30, n) * DAY).astype(np.int64), limit - HOUR),
    )
    disc = np.maximum(disc, fixed + HOUR)
    disc_ok = fixed_ok & (disc <= as_of) & (rng.random(n) >= 0.05)
    df = pl.DataFrame(
        {
            "report_id": make_ids("SR", 0, n, 5),
            "received_at": fmt_ts(rec),
            "acknowledged_at": fmt_ts(ack, ack_ok),
            "timeline_sent_at": fmt_ts(tl, tl_ok),
            "fixed_at": fmt_ts(fixed, fixed_ok),
            "disclosed_at": fmt_ts(disc, disc_ok),
            "embargo_extended_until": fmt_ts(emb_until, emb_ok),
        }
    )
    mplan = messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["security_reports"])
    times = {
        "received_at": (rec, np.ones(n, dtype=bool)),
        "acknowledged_at": (ack, ack_ok),
        "timeline_sent_at": (tl, tl_ok),
        "fixed_at": (fixed, fixed_ok),
        "disclosed_at": (disc, disc_ok),
    }
    df, edits = apply_common_messy(df, mplan, rng, "report_id", times, "received_at")
    for row in mplan["acknowledged_before_received"]:
        edits.set("acknowledged_at", row, iso_z(int(rec[row]) - int(rng.integers(HOUR, 2 * DAY))))
    df = edits.apply(df)
    return {"security_reports.csv": write_csv(opts.out_dir / "security_reports.csv", df, "security_reports")}
