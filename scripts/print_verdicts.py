"""Print a finished run's verdict per commitment and its vendor-verdict agreement (for `make demo-real`)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(out_dir: Path) -> None:
    evidence = out_dir / "evidence"
    print(f"\nVerdicts ({out_dir}):")
    with (evidence / "verdicts.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            figures = (
                f"{row['achieved'] or 0} achieved / {row['denominator'] or 0}"
                if int(row["denominator"] or 0)
                else row["reason"]
            )
            print(f"  {row['rule_id']:<20} {row['verdict']:<13} {figures}")
    with (evidence / "vendor_reconciliation_metrics.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    print("Vendor verdicts against ours:" if rows else "Vendor verdicts: the export states none.")
    for row in rows:
        compared = int(row["compared"])
        rate = (
            f"{float(row['agreement_pct']):.1f}% agree ({row['agreeing']} / {compared})"
            if compared
            else "none compared"
        )
        print(
            f"  {row['source']} {row['metric']}: {rate}; {row['disagreeing']} disagree; {row['not_comparable']} not compared"
            + (f" ({row['not_comparable_reasons']})" if row["not_comparable_reasons"] else "")
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
