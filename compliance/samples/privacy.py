"""privacy_requests."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR, BusinessClock, lognormal, sample_times
from compliance.samples.messy import MESSY_KINDS, apply_common_messy, messy_plan, shift_future
from compliance.samples.options import S_PRIVACY, GenerateOptions
from compliance.samples.output import fmt_ts, iso_z, make_ids, pick, write_csv

_REQUEST_TYPES = ("access", "erasure", "portability", "rectification", "restriction", "objection")
_REQUEST_P = (0.35, 0.30, 0.10, 0.12, 0.06, 0.07)
_BOOL_SPELLINGS = (("true", "false"), ("yes", "no"), ("1", "0"))


def write_privacy(opts: GenerateOptions, clock: BusinessClock, as_of: int) -> dict[str, int]:
    n = int(opts.privacy_requests)
    rng = np.random.default_rng([opts.seed, S_PRIVACY])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of, growth=0.1)
    rec = np.minimum(sample_times(rng, hours, p, n), as_of - 1)
    rtype = rng.choice(len(_REQUEST_TYPES), size=n, p=_REQUEST_P)
    fr = rec + lognormal(rng, 1.5 * DAY, 0.8, n) + 600
    fr_ok = (rng.random(n) >= 0.02) & (fr <= as_of)
    extended = rng.random(n) < 0.12
    late_notice = extended & (rng.random(n) < 0.15)
    notice = rec + np.where(late_notice, rng.uniform(31, 45, n) * DAY, rng.uniform(10, 28, n) * DAY).astype(np.int64)
    notice_ok = extended & (notice <= as_of)
    normal_done = rec + lognormal(rng, 12 * DAY, 0.5, n) + HOUR
    ext_done = rec + (np.where(rng.random(n) < 0.9, rng.uniform(35, 88, n), rng.uniform(91, 120, n)) * DAY).astype(
        np.int64
    )
    done = np.where(extended, ext_done, normal_done)
    done = np.maximum(done, np.where(fr_ok, fr, rec))
    stuck = rng.random(n) < 0.03
    done_ok = ~stuck & (done <= as_of)
    status = np.where(done_ok, 0, np.where(notice_ok, 1, np.where(fr_ok, 2, 3)))
    status_names = ("completed", "extended", "in_progress", "received")
    spelling = rng.integers(0, len(_BOOL_SPELLINGS), n)
    ext_txt = [
        (_BOOL_SPELLINGS[int(s)][0] if e else _BOOL_SPELLINGS[int(s)][1])
        for s, e in zip(spelling, extended, strict=False)
    ]
    blank = ~extended & (rng.random(n) < 0.1)
    df = pl.DataFrame(
        {
            "request_id": make_ids("PR", 0, n, 6),
            "request_type": pick(_REQUEST_TYPES, rtype),
            "received_at": fmt_ts(rec),
            "first_response_at": fmt_ts(fr, fr_ok),
            "completed_at": fmt_ts(done, done_ok),
            "extended": pl.Series(ext_txt, dtype=pl.String).scatter(np.flatnonzero(blank), None)
            if n
            else pl.Series([], dtype=pl.String),
            "extension_notified_at": fmt_ts(notice, notice_ok),
            "status": pick(status_names, status),
        }
    )
    mplan = messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["privacy_requests"])
    times = {
        "received_at": (rec, np.ones(n, dtype=bool)),
        "first_response_at": (fr, fr_ok),
        "completed_at": (done, done_ok),
        "extension_notified_at": (notice, notice_ok),
    }
    df, edits = apply_common_messy(df, mplan, rng, "request_id", times, "received_at", ("request_type",))
    for row in mplan["unknown_request_type"]:
        edits.set(
            "request_type", row, ("deletion please", "unsubscribe", "complaint", "ERASE-ME")[int(rng.integers(0, 4))]
        )
    for row in mplan["completed_before_received"]:
        edits.set("completed_at", row, iso_z(int(rec[row]) - int(rng.integers(HOUR, 10 * DAY))))
        edits.set("status", row, "completed")
    for row in mplan["bad_boolean"]:
        edits.set("extended", row, ("maybe", "Y?", "2", "n/a")[int(rng.integers(0, 4))])
    for row in mplan["after_as_of"]:
        shift_future(edits, row, times, as_of, rng, "received_at")
    df = edits.apply(df)
    return {"privacy_requests.csv": write_csv(opts.out_dir / "privacy_requests.csv", df, "privacy_requests")}
