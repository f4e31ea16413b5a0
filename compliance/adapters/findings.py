"""Consistency findings: records whose timestamps contradict each other in ways no quarantine rule catches.

Such a record is kept (its times are the vendor's) and named in the conversion's notes with the reading applied,
so that the report's data-quality findings (``reports/reconciliation_section.py``) list it instead of using it
silently. A finding note starts with :data:`FINDING_PREFIX`.
"""

from __future__ import annotations

import polars as pl

FINDING_PREFIX = "consistency: "
IDS_NAMED = 20  # record ids named in one finding; the count says how many there are in all


def consistency_findings(record_ids: pl.Series, what: str, reading: str) -> list[str]:
    """One note naming the records (sorted, the first :data:`IDS_NAMED`) that show ``what``; none without any."""
    ids = record_ids.drop_nulls().cast(pl.Utf8).unique().sort()
    if ids.len() == 0:
        return []
    named = ", ".join(ids.head(IDS_NAMED).to_list())
    more = f", … {ids.len() - IDS_NAMED} more" if ids.len() > IDS_NAMED else ""
    records = "record" if ids.len() == 1 else "records"
    return [f"{FINDING_PREFIX}{ids.len()} {records} with {what} ({named}{more}); reading: {reading}"]
