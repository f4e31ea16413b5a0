"""retention_inventory."""

from __future__ import annotations

import numpy as np
import polars as pl

from compliance.samples.clock import DAY, HOUR, BusinessClock
from compliance.samples.messy import MESSY_KINDS, apply_common_messy, messy_plan
from compliance.samples.options import S_RETENTION, GenerateOptions
from compliance.samples.output import fmt_ts, iso_z, make_ids, pick, write_csv

_DATA_CLASSES = ("account_data", "audit_log", "billing_record", "backup")


def write_retention(opts: GenerateOptions, clock: BusinessClock, as_of: int) -> dict[str, int]:
    n = int(opts.retention_records)
    rng = np.random.default_rng([opts.seed, S_RETENTION])
    n_ws = max(1, n // 25)
    n_acc = max(1, n // 5)
    year = 365 * DAY
    # workspaces
    ws_created = as_of - (rng.uniform(0.2, 9.5, n_ws) * year).astype(np.int64)
    ws_deleted = ws_created + (rng.uniform(0.1, 1.0, n_ws) * (as_of - ws_created)).astype(np.int64)
    ws_del_ok = rng.random(n_ws) < 0.15
    # accounts, each in one workspace
    acc_ws = rng.integers(0, n_ws, n_acc)
    ws_end = np.where(ws_del_ok, ws_deleted - DAY, as_of - 30 * DAY)[acc_ws]
    acc_created = ws_created[acc_ws] + (rng.random(n_acc) * np.maximum(ws_end - ws_created[acc_ws], HOUR)).astype(
        np.int64
    )
    acc_created = np.minimum(acc_created, as_of - 2 * DAY)
    acc_closed = acc_created + (rng.random(n_acc) * (as_of - acc_created)).astype(np.int64)
    acc_closed_ok = (rng.random(n_acc) < 0.25) | ws_del_ok[acc_ws]
    acc_closed = np.where(ws_del_ok[acc_ws], np.minimum(acc_closed, ws_deleted[acc_ws]), acc_closed)

    cls = rng.choice(4, size=n, p=(0.35, 0.25, 0.25, 0.15))
    acc = rng.integers(0, n_acc, n)
    ws = acc_ws[acc]
    created = np.zeros(n, dtype=np.int64)
    deleted = np.zeros(n, dtype=np.int64)
    del_ok = np.zeros(n, dtype=bool)
    u = rng.random(n)

    # account data: deleted within 30 days of closure (mostly), later or never (few)
    m = cls == 0
    created[m] = acc_created[acc[m]]
    closed = acc_closed[acc[m]]
    lag = np.where(u[m] < 0.86, rng.uniform(0.5, 29.5, m.sum()), rng.uniform(31, 150, m.sum())) * DAY
    deleted[m] = closed + lag.astype(np.int64)
    del_ok[m] = acc_closed_ok[acc[m]] & (u[m] < 0.94) & (deleted[m] <= as_of)

    # audit logs: deleted only after the workspace was deleted (a few prematurely)
    m = cls == 1
    wsm = ws[m]
    end = np.where(ws_del_ok[wsm], ws_deleted[wsm], as_of)
    created[m] = ws_created[wsm] + (rng.random(m.sum()) * (end - ws_created[wsm])).astype(np.int64)
    after = ws_deleted[wsm] + (rng.uniform(0.5, 20, m.sum()) * DAY).astype(np.int64)
    premature = u[m] < 0.03
    early = created[m] + (rng.random(m.sum()) * (end - created[m])).astype(np.int64)
    deleted[m] = np.where(premature, early, after)
    del_ok[m] = (premature | (ws_del_ok[wsm] & (u[m] < 0.7))) & (deleted[m] <= as_of)

    # billing records: up to 9 years old; most deleted soon after 7 years, a few before, some kept past 7
    m = cls == 2
    life = np.maximum(
        np.where(acc_closed_ok, acc_closed, as_of) - acc_created, HOUR
    )  # invoices accrue over an account's life
    acc[m] = rng.choice(n_acc, size=m.sum(), p=life / life.sum())
    ws[m] = acc_ws[acc[m]]
    a = acc[m]
    created[m] = np.maximum(acc_created[a] + (rng.random(m.sum()) * life[a]).astype(np.int64), as_of - 9 * year)
    seven = created[m] + 7 * year + 2 * DAY  # 7 years incl. leap days
    old = seven <= as_of
    early = created[m] + (rng.uniform(1.0, 6.9, m.sum()) * year).astype(np.int64)
    on_time = seven + (rng.uniform(1, 60, m.sum()) * DAY).astype(np.int64)
    deleted[m] = np.where(old, on_time, early)
    del_ok[m] = np.where(old, u[m] < 0.6, u[m] < 0.02) & (deleted[m] <= as_of)

    # backups: daily snapshots of a workspace, purged within 30 days (a few not, or late)
    m = cls == 3
    k = m.sum()
    live = np.flatnonzero(~ws_del_ok[acc_ws] & ~acc_closed_ok)  # backups of live workspaces and accounts
    if len(live):
        acc[m] = live[rng.integers(0, len(live), k)]
        ws[m] = acc_ws[acc[m]]
    age_days = rng.integers(0, 120, k)
    created[m] = ((as_of // DAY) - age_days - 1) * DAY + 2 * HOUR + rng.integers(0, 30 * 60, k)
    late = u[m] < 0.05
    deleted[m] = created[m] + (np.where(late, rng.uniform(32, 60, k), rng.uniform(29.0, 29.9, k)) * DAY).astype(
        np.int64
    )
    del_ok[m] = (rng.random(k) >= 0.04) & (deleted[m] <= as_of)

    del_ok &= deleted >= created
    df = pl.DataFrame(
        {
            "record_id": make_ids("R", 0, n, 7),
            "data_class": pick(_DATA_CLASSES, cls),
            "workspace_id": make_ids("W", 0, n_ws, 5).gather(pl.Series(ws)) if n else pl.Series([], dtype=pl.String),
            "account_id": make_ids("A", 0, n_acc, 6).gather(pl.Series(acc)) if n else pl.Series([], dtype=pl.String),
            "created_at": fmt_ts(created),
            "account_closed_at": fmt_ts(acc_closed[acc], acc_closed_ok[acc]),
            "workspace_deleted_at": fmt_ts(ws_deleted[ws], ws_del_ok[ws]),
            "deleted_at": fmt_ts(deleted, del_ok),
        }
    )
    mplan = messy_plan(rng, n, opts.messy_fraction, MESSY_KINDS["retention_inventory"])
    times = {"created_at": (created, np.ones(n, dtype=bool)), "deleted_at": (deleted, del_ok)}
    df, edits = apply_common_messy(df, mplan, rng, "record_id", times, "created_at", ("data_class",))
    for row in mplan["unknown_data_class"]:
        edits.set("data_class", row, ("logs", "misc", "customer_files")[int(rng.integers(0, 3))])
    for row in mplan["deleted_before_created"]:
        edits.set("deleted_at", row, iso_z(int(created[row]) - int(rng.integers(DAY, 100 * DAY))))
    df = edits.apply(df)
    return {"retention_inventory.csv": write_csv(opts.out_dir / "retention_inventory.csv", df, "retention_inventory")}
