"""tickets and ticket_events."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR, BusinessClock, lognormal, sample_times
from compliance.samples.codes import (
    CHANNEL_ALIASES,
    CHANNEL_P,
    CHANNELS,
    PLAN_P,
    PLANS,
    PRIORITY_PLANS,
    ST_CLOSED,
    ST_HOLD,
    ST_NEW,
    ST_NONE,
    ST_OPEN,
    ST_PENDING,
    ST_SOLVED,
    STATUSES,
    UNKNOWN_CHANNELS,
)
from compliance.samples.messy import MESSY_KINDS, VALID_VARIANTS, apply_common_messy, messy_plan, shift_future
from compliance.samples.options import CHUNK_ROWS, S_ARRIVAL, S_TEXT, S_TICKETS, GenerateOptions
from compliance.samples.output import CONTRACT_COLUMNS, Sink, fmt_ts, iso_z, make_ids, pick
from compliance.samples.text import HOSTILE, SENSITIVE, plant, text_pools

# event slots, in chronological order within a ticket (ties keep slot order)
_EV_TYPES = ("status_change", "auto_ack", "internal_note", "public_reply", "requester_reply")
_EV_ACTORS = ("system", "agent", "requester")
_SLOT_TYPE = np.array([0, 1, 0, 2, 3, 0, 4, 0, 3, 0, 0, 4, 0, 3, 0, 0])
_SLOT_ACTOR = np.array([0, 0, 1, 1, 1, 1, 2, 0, 1, 1, 1, 2, 0, 1, 1, 0])
_STATUS_SLOTS = (0, 2, 5, 7, 9, 10, 12, 14, 15)
N_SLOTS = 16

# first-response log-normal medians (seconds; business seconds for the business-hours channels) and sigma
_FR_MEDIAN = {  # (standard, priority)
    "technical_support": (4.0 * HOUR, 40 * 60),
    "account_billing": (3.0 * HOUR, 35 * 60),
    "abuse": (3.0 * HOUR, 3.0 * HOUR),
    "sales": (8.0 * HOUR, 8.0 * HOUR),
    "privacy": (1.3 * DAY, 1.3 * DAY),
    "security": (4.0 * HOUR, 2.0 * HOUR),
}
_FR_SIGMA = {
    "technical_support": 1.0,
    "account_billing": 1.1,
    "abuse": 1.1,
    "sales": 1.0,
    "privacy": 0.9,
    "security": 1.0,
}
_BUSINESS_CHANNELS = ("technical_support", "sales")


def _ticket_chunk(
    rng,
    clock: BusinessClock,
    created: np.ndarray,
    as_of: int,
    start_index: int,
    width: int,
    pools,
    messy_fraction: float,
    want_events: bool,
):
    n = len(created)
    c = created
    ch = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P)
    plan = rng.choice(len(PLANS), size=n, p=PLAN_P)
    plan_ok = rng.random(n) >= np.where(ch == CHANNELS.index("sales"), 0.4, 0.01)
    derived_prio = np.isin(plan, PRIORITY_PLANS) & plan_ok
    tier_explicit = rng.random(n) < 0.03
    tier_override = tier_explicit & (rng.random(n) < 0.1)
    prio = np.where(tier_override, ~derived_prio, derived_prio)

    # ---- first response -------------------------------------------------------------------------------
    med = np.zeros(n)
    sig = np.zeros(n)
    for i, name in enumerate(CHANNELS):
        m = ch == i
        med[m] = np.where(prio[m], _FR_MEDIAN[name][1], _FR_MEDIAN[name][0])
        sig[m] = _FR_SIGMA[name]
    delay = med * np.exp(rng.normal(0.0, 1.0, n) * sig)
    tail = rng.random(n) < 0.01  # forgotten tickets: long tail
    delay = np.where(tail, delay * rng.uniform(2.0, 6.0, n), delay)
    delay = np.minimum(delay, 200 * DAY).astype(np.int64) + 60
    business = np.isin(ch, [CHANNELS.index(x) for x in _BUSINESS_CHANNELS])
    f_wall = c + delay
    f_bh = clock.add_business(c, delay)
    f = np.where(business, f_bh, f_wall)
    answered = rng.random(n) >= 0.03

    # ---- resolution and conversation ---------------------------------------------------------------------
    res_delay = lognormal(rng, 20 * HOUR, 1.3, n) + 5 * 60
    r1 = f + np.minimum(res_delay, 300 * DAY)
    resolves = rng.random(n) >= 0.015
    triage = c + 60 + lognormal(rng, 30 * 60, 1.0, n)
    spam_solved = ~answered & (rng.random(n) < 0.3)
    r1 = np.where(answered, r1, triage + lognormal(rng, DAY, 1.0, n))
    resolves = np.where(answered, resolves, spam_solved)

    T = np.zeros((n, N_SLOTS), dtype=np.int64)
    V = np.zeros((n, N_SLOTS), dtype=bool)
    S = np.full((n, N_SLOTS), ST_NONE, dtype=np.int8)
    T[:, 0], V[:, 0], S[:, 0] = c, True, ST_NEW
    T[:, 1], V[:, 1] = c + rng.integers(5, 61, n), rng.random(n) < 0.92
    T[:, 2], V[:, 2] = triage, ~answered
    S[:, 2] = np.where(rng.random(n) < 0.8, ST_OPEN, ST_HOLD)
    gap = f - c - 60
    T[:, 3] = c + 60 + (rng.random(n) * np.maximum(gap, 0)).astype(np.int64)
    V[:, 3] = answered & (gap > 60) & (rng.random(n) < 0.15)
    T[:, 4], V[:, 4] = f, answered
    pend1 = rng.random(n) < 0.6
    T[:, 5], V[:, 5], S[:, 5] = f, answered, np.where(pend1, ST_PENDING, ST_OPEN)
    rr = f + (rng.random(n) * (r1 - f) * 0.7).astype(np.int64)
    has_rr = answered & (rng.random(n) < 0.5)
    T[:, 6], V[:, 6] = rr, has_rr
    T[:, 7], V[:, 7], S[:, 7] = rr, has_rr & pend1, ST_OPEN
    a2 = rr + (rng.random(n) * (r1 - rr)).astype(np.int64)
    T[:, 8], V[:, 8] = a2, has_rr
    T[:, 9], V[:, 9], S[:, 9] = a2, has_rr & (rng.random(n) < 0.5), ST_PENDING
    T[:, 10], V[:, 10], S[:, 10] = r1, resolves, ST_SOLVED
    reopen = resolves & answered & (rng.random(n) < 0.03)
    ro = r1 + lognormal(rng, DAY, 0.8, n) + 60
    a3 = ro + lognormal(rng, 4 * HOUR, 0.8, n) + 60
    r2 = a3 + lognormal(rng, 6 * HOUR, 0.8, n) + 60
    T[:, 11], V[:, 11] = ro, reopen
    T[:, 12], V[:, 12], S[:, 12] = ro, reopen, ST_OPEN
    T[:, 13], V[:, 13] = a3, reopen
    T[:, 14], V[:, 14], S[:, 14] = r2, reopen, ST_SOLVED
    r_final = np.where(reopen, r2, r1)
    T[:, 15], V[:, 15], S[:, 15] = r_final + 4 * DAY, resolves & (rng.random(n) < 0.95), ST_CLOSED
    V &= as_of >= T  # nothing after as_of

    status = np.full(n, ST_NEW, dtype=np.int8)
    for s in _STATUS_SLOTS:
        status = np.where(V[:, s], S[:, s], status)
    is_resolved = (status == ST_SOLVED) | (status == ST_CLOSED)
    resolved_at = np.where(V[:, 14], T[:, 14], T[:, 10])
    fr_ok = V[:, 4]

    # ---- escalation ---------------------------------------------------------------------------------------
    esc_end = np.where(is_resolved, resolved_at, np.minimum(as_of, c + 10 * DAY))
    esc = c + 60 + (rng.random(n) * np.maximum(esc_end - c - 60, 0)).astype(np.int64)
    esc_ok = (rng.random(n) < 0.05) & (esc <= as_of)
    rev = esc + lognormal(rng, 10 * HOUR, 1.0, n) + 60
    rev_ok = esc_ok & (rng.random(n) >= 0.05) & (rev <= as_of)

    # ---- text ---------------------------------------------------------------------------------------------
    subj_pool, sub_off, sub_size, desc_pool, desc_off, desc_size = pools
    subj = subj_pool.gather(pl.Series(sub_off[ch] + (rng.random(n) * sub_size[ch]).astype(np.int64)))
    desc = desc_pool.gather(pl.Series(desc_off[ch] + rng.integers(0, desc_size, n)))
    desc = plant(rng, desc, SENSITIVE, 0.03)  # secrets, e-mail addresses, phone numbers
    subj = plant(rng, subj, HOSTILE, 0.002)  # markup / formula injection

    ids = make_ids("T", start_index, n, width)
    plan_codes = np.where(plan_ok, plan, len(PLANS))
    tier_codes = np.where(tier_explicit, np.where(prio, 1, 0), 2)
    df = pl.DataFrame(
        {
            "ticket_id": ids,
            "channel": pick(CHANNELS, ch),
            "plan": pick(PLANS + (None,), plan_codes),
            "tier": pick(("standard", "priority", None), tier_codes),
            "created_at": fmt_ts(c),
            "first_response_at": fmt_ts(f, fr_ok),
            "resolved_at": fmt_ts(resolved_at, is_resolved),
            "status": pick(STATUSES, status),
            "escalated_at": fmt_ts(esc, esc_ok),
            "senior_reviewed_at": fmt_ts(rev, rev_ok),
            "subject": subj,
            "description": desc,
        }
    )

    # ---- messy rows ---------------------------------------------------------------------------------------
    mplan = messy_plan(rng, n, messy_fraction, MESSY_KINDS["tickets"])
    times = {
        "created_at": (c, np.ones(n, dtype=bool)),
        "first_response_at": (f, fr_ok),
        "resolved_at": (resolved_at, is_resolved),
        "escalated_at": (esc, esc_ok),
        "senior_reviewed_at": (rev, rev_ok),
    }
    df, edits = apply_common_messy(df, mplan, rng, "ticket_id", times, "created_at", ("channel",))
    for row in mplan["unknown_channel"]:
        edits.set("channel", row, UNKNOWN_CHANNELS[int(rng.integers(0, len(UNKNOWN_CHANNELS)))])
    for row in mplan["channel_alias"]:
        aliases = CHANNEL_ALIASES[CHANNELS[int(ch[row])]]
        edits.set("channel", row, aliases[int(rng.integers(0, len(aliases)))])
    for row in mplan["response_before_created"]:
        edits.set("first_response_at", row, iso_z(int(c[row]) - int(rng.integers(60, 6 * HOUR))))
    for row in mplan["after_as_of"]:
        shift_future(edits, row, times, as_of, rng, "created_at")
    df = edits.apply(df)

    events = None
    if want_events:
        keep = np.ones(n, dtype=bool)  # events only for tickets whose row is clean or a valid variant
        for kind, rows in mplan.items():
            if kind not in VALID_VARIANTS:
                keep[rows] = False
        V &= keep[:, None]
        flat = np.flatnonzero(V.ravel())
        tix = flat // N_SLOTS
        slot = flat % N_SLOTS
        st = S.ravel()[flat]
        events = pl.DataFrame(
            {
                "ticket_id": ids.gather(pl.Series(tix)),
                "occurred_at": fmt_ts(T.ravel()[flat]),
                "event_type": pick(_EV_TYPES, _SLOT_TYPE[slot]),
                "actor": pick(_EV_ACTORS, _SLOT_ACTOR[slot]),
                "new_status": pick(STATUSES + (None,), st),
            }
        )
    return df, events


def write_tickets(opts: GenerateOptions, clock: BusinessClock, as_of: int) -> dict[str, int]:
    ext = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}[opts.file_format]
    n = int(opts.tickets)
    rng_a = np.random.default_rng([opts.seed, S_ARRIVAL])
    hours, p = clock.arrival_weights(as_of - 365 * DAY, as_of)
    created = sample_times(rng_a, hours, p, n)
    created = np.minimum(created, as_of - 1)
    pools = text_pools(np.random.default_rng([opts.seed, S_TEXT]))
    width = max(8, len(str(n)))
    sink = Sink(opts.out_dir / f"tickets.{ext}", opts.file_format, CONTRACT_COLUMNS["tickets"])
    esink = (
        Sink(opts.out_dir / f"ticket_events.{ext}", opts.file_format, CONTRACT_COLUMNS["ticket_events"])
        if opts.with_events
        else None
    )
    for k, start in enumerate(range(0, max(n, 1), CHUNK_ROWS)):
        if n == 0:
            break
        rng = np.random.default_rng([opts.seed, S_TICKETS, k])
        df, ev = _ticket_chunk(
            rng,
            clock,
            created[start : start + CHUNK_ROWS],
            as_of,
            start,
            width,
            pools,
            opts.messy_fraction,
            opts.with_events,
        )
        sink.write(df)
        if esink is not None:
            esink.write(ev)
    out = {sink.path.name: sink.close()}
    if esink is not None:
        out[esink.path.name] = esink.close()
    return out
