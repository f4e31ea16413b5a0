"""The judging step that follows the rules: results combined, verdicts per commitment, waivers and at-risk items.

One function, so that the run's `verdicts` asset and a period's report (assets/partitions.py) judge alike.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from compliance.evidence.at_risk import combine_at_risk
from compliance.evidence.policy_versions import create_version_items_table
from compliance.evidence.verdicts import blocked_domains, build_verdicts, combine_results
from compliance.evidence.waivers import combine_waivers
from compliance.policy import VersionWindow


def judge(con: duckdb.DuckDBPyConnection, windows: tuple[VersionWindow, ...], as_of: datetime) -> None:
    """Combine every rule step's results, then write ``verdicts`` (under the policy versions of ``windows``, the
    newest naming the commitments), the waivers applied or refused, and the at-risk items of every domain."""
    policy = windows[-1].policy
    create_version_items_table(con)
    combine_results(con)
    build_verdicts(con, policy, blocked_domains(con), windows)
    combine_waivers(con, policy, as_of)
    combine_at_risk(con, policy, as_of)
