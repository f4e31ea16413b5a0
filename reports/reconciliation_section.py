"""The compliance report's vendor-verdict section: the helpdesk's own SLA verdicts against ours.

Shown only when the run had vendor verdicts (``vendor_sla.csv``) or a converted vendor export: first the headline,
the agreement per source and metric (agreeing of compared); then the vendor export's format and per-file
accounting, the conversion's consistency findings (records whose timestamps contradict each other, named with the
reading applied) and its other readings; the agreement table (what could not be compared and why); each class of
disagreement with its count and meaning; and every disagreement with both readings. All text is escaped (Jinja2
autoescape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import jinja2
import polars as pl
from markupsafe import Markup

from compliance.adapters.findings import FINDING_PREFIX
from compliance.core.sql import table_exists
from reports.formatting import format_adherence, format_count

DISAGREEMENTS_SHOWN = 500

_TEMPLATE = """
<section id="vendor-reconciliation">
  <h2>Vendor verdicts reconciled</h2>
  {% if metrics %}
  <ul class="headline" id="vendor-agreement">
  {% for row in metrics %}
    {% if row.compared %}
    <li><strong>{{ row.source }} {{ row.metric }}: the vendor agrees on {{ row.agreeing|count }} of
      {{ row.compared|count }}</strong> ({{ row.agreement }}){% if row.disagreeing %},
      disagrees on {{ row.disagreeing|count }}{% endif %}{% if row.not_comparable %};
      {{ row.not_comparable|count }} not compared{% endif %}.</li>
    {% else %}
    <li><strong>{{ row.source }} {{ row.metric }}: no vendor verdict to compare</strong>
      ({{ row.vendor_rows|count }} vendor {{ "row" if row.vendor_rows == 1 else "rows" }}: {{ row.not_comparable_reasons or "—" }}).</li>
    {% endif %}
  {% endfor %}
  {% for row in due_agreement %}
    <li>{{ row.source }} {{ row.metric }}, against the vendor's own due times ({{ row.vendor_due_rows|count }} {{ "row" if row.vendor_due_rows == 1 else "rows" }}):
      our policy's verdict is the one the vendor's due time gives on {{ row.verdicts_agreeing|count }} of
      {{ row.verdicts_compared|count }}; our due time is the vendor's on {{ row.due_equal|count }} of
      {{ row.due_compared|count }}.</li>
  {% endfor %}
  </ul>
  {% endif %}
  {% if conversion %}
  <p class="note">Converted from a <strong>{{ conversion.format }}</strong> export ({{ conversion.format_version }}):
    vendor records read = converted + quarantined per file; quarantined records are in the quarantine evidence under
    their vendor file name.</p>
  <table>
    <thead><tr><th>Vendor file</th><th>Layout</th><th class="num">Read</th><th class="num">Converted</th><th class="num">Quarantined</th></tr></thead>
    <tbody>
    {% for row in conversion.inputs %}
      <tr><td><code>{{ row.file }}</code></td><td>{{ row.variant }}</td><td class="num">{{ row.rows_read|count }}</td>
        <td class="num">{{ row.rows_converted|count }}</td><td class="num">{{ row.rows_quarantined|count }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% if findings %}
  <h3 id="consistency-findings">Consistency findings</h3>
  <p class="note">Records whose timestamps contradict each other in ways no quarantine rule catches: kept, with the
    reading used.</p>
  <ul>
  {% for finding in findings %}
    <li>{{ finding }}</li>
  {% endfor %}
  </ul>
  {% endif %}
  {% if readings %}
  <details><summary>Readings of the conversion ({{ readings|length }})</summary>
  <ul>
  {% for reading in readings %}
    <li>{{ reading }}</li>
  {% endfor %}
  </ul>
  </details>
  {% endif %}
  {% endif %}
  {% if metrics %}
  <p class="note">Where the export states its own SLA verdict, it is checked twice: against the record's own
    timestamps with the vendor's due time, and against our policy's clock on the same record. Agreement = agreeing /
    compared; full detail in <code>evidence/vendor_reconciliation.csv</code>.</p>
  <table>
    <thead><tr><th>Source</th><th>Metric</th><th class="num">Vendor rows</th><th class="num">Agreement</th>
      <th class="num">Vendor met, we missed</th><th class="num">Vendor missed, we met</th><th class="num">Not compared</th><th>Why not compared</th></tr></thead>
    <tbody>
    {% for row in metrics %}
      <tr><td>{{ row.source }}</td><td>{{ row.metric }}</td><td class="num">{{ row.vendor_rows|count }}</td>
        <td class="num">{{ row.agreement }}</td><td class="num">{{ row.vendor_met_ours_missed|count }}</td>
        <td class="num">{{ row.vendor_missed_ours_met|count }}</td><td class="num">{{ row.not_comparable|count }}</td>
        <td>{{ row.not_comparable_reasons or "—" }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% if classes %}
  <h3>Why they disagree</h3>
  <table>
    <thead><tr><th>Source</th><th>Metric</th><th class="num">Rows</th><th>Class of disagreement</th></tr></thead>
    <tbody>
    {% for row in classes %}
      <tr><td>{{ row.source }}</td><td>{{ row.metric }}</td><td class="num">{{ row.rows|count }}</td>
        <td>{{ row.meaning }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
  {% if disagreements %}
  <h3>Disagreements ({{ disagreements_total|count }}{% if disagreements|length < disagreements_total %}, first {{ disagreements|length|count }} shown{% endif %})</h3>
  <div class="table-scroll">
  <table>
    <thead><tr><th>Record ID</th><th>Metric</th><th>Vendor</th><th>Recomputed</th><th>Our policy</th><th>Explanation</th></tr></thead>
    <tbody>
    {% for row in disagreements %}
      <tr><td><code>{{ row.record_id }}</code></td><td>{{ row.metric }}</td><td>{{ row.vendor }}</td>
        <td>{{ row.recomputed }}</td><td>{{ row.ours }}</td><td class="explanation">{{ row.explanation }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
  {% else %}
  <p>No disagreement: every compared vendor verdict matches our readings.</p>
  {% endif %}
  {% else %}
  <p>The export states no SLA verdicts of its own.</p>
  {% endif %}
</section>
"""


@dataclass
class ReconciliationData:
    metrics: pl.DataFrame  # vendor_reconciliation_metrics
    disagreements: pl.DataFrame  # vendor_reconciliation rows with agrees = false (the first DISAGREEMENTS_SHOWN)
    disagreements_total: int
    classes: pl.DataFrame | None = None  # vendor_disagreement_classes (absent in a warehouse of an older run)
    due_agreement: pl.DataFrame | None = None  # vendor_due_agreement (likewise)

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> ReconciliationData | None:
        """The reconciliation tables of a run; None when the run did not reconcile."""
        if not table_exists(con, "vendor_reconciliation_metrics"):
            return None
        return cls(
            metrics=con.sql("SELECT * FROM vendor_reconciliation_metrics ORDER BY source, metric").pl(),
            disagreements=con.sql(
                "SELECT * FROM vendor_reconciliation WHERE NOT agrees ORDER BY source, metric, record_id LIMIT $shown",
                params={"shown": DISAGREEMENTS_SHOWN},
            ).pl(),
            disagreements_total=con.execute("SELECT count(*) FROM vendor_reconciliation WHERE NOT agrees").fetchall()[
                0
            ][0],
            classes=con.sql("SELECT * FROM vendor_disagreement_classes ORDER BY source, metric, rows DESC").pl()
            if table_exists(con, "vendor_disagreement_classes")
            else None,
            due_agreement=con.sql(
                "SELECT * FROM vendor_due_agreement WHERE due_compared > 0 ORDER BY source, metric"
            ).pl()
            if table_exists(con, "vendor_due_agreement")
            else None,
        )


def _reading(value: Any) -> str:
    return "—" if value is None else ("met" if value else "missed")


def _replaced_characters(conversion: Mapping[str, Any] | None) -> list[str]:
    """A finding per vendor file in which bytes did not decode (each became U+FFFD; its records were kept)."""
    found = []
    for row in (conversion or {}).get("inputs") or []:
        replaced = row.get("replaced_characters") if isinstance(row, Mapping) else None
        if isinstance(replaced, int) and replaced > 0:
            found.append(
                f"{row.get('file')}: {format_count(replaced)} character(s) did not decode in {row.get('encoding') or '?'} "
                "and were replaced by U+FFFD; reading: the records are kept with the replaced characters (pass "
                "--encoding to read the file in another encoding)"
            )
    return found


def reconciliation_section(data: ReconciliationData | None, conversion: Mapping[str, Any] | None) -> Markup:
    """The section's HTML, or nothing when the run had neither vendor verdicts nor a converted export."""
    metrics = data.metrics.to_dicts() if data is not None else []
    if not metrics and not conversion:
        return Markup("")
    for row in metrics:
        row["agreement"] = format_adherence(row["agreeing"], row["compared"])
    disagreements = [
        {
            "record_id": row["record_id"],
            "metric": row["metric"],
            "vendor": f"{_reading(row['vendor_met'])} ({row['vendor_status'] or '—'})",
            "recomputed": _reading(row["recomputed_met"]),
            "ours": f"{row['our_state']} ({row['our_rule_id']})" if row["our_state"] else "—",
            "explanation": row["explanation"],
        }
        for row in (data.disagreements.to_dicts() if data is not None else [])
    ]
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["count"] = format_count
    converted = conversion if isinstance(conversion, Mapping) and conversion.get("inputs") is not None else None
    notes = [str(note) for note in (converted.get("notes") or [])] if converted else []
    html = environment.from_string(_TEMPLATE).render(
        conversion=converted,
        findings=[
            *_replaced_characters(converted),
            *(note.removeprefix(FINDING_PREFIX) for note in notes if note.startswith(FINDING_PREFIX)),
        ],
        readings=[note for note in notes if not note.startswith(FINDING_PREFIX)],
        classes=data.classes.to_dicts() if data is not None and data.classes is not None else [],
        due_agreement=data.due_agreement.to_dicts() if data is not None and data.due_agreement is not None else [],
        metrics=metrics,
        disagreements=disagreements,
        disagreements_total=data.disagreements_total if data is not None else 0,
    )
    return Markup(html)
