"""The judging step that follows the rules: results combined, verdicts per commitment, waivers and at-risk items.

One function, so that the run's `verdicts` asset and a period's report (assets/partitions.py) judge alike.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.evidence.at_risk import combine_at_risk
from compliance.evidence.verdicts import blocked_domains, build_verdicts, combine_results
from compliance.evidence.waivers import combine_waivers
from compliance.policy import Policy


def judge(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: datetime) -> None:
    """Combine every rule step's results, then write ``verdicts``, the waivers applied or refused, and the at-risk
    items of every domain."""
    combine_results(con)
    build_verdicts(con, policy, blocked_domains(con))
    combine_waivers(con, policy, as_of)
    combine_at_risk(con, policy, as_of)
