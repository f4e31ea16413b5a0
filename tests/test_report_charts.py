"""The charts of both pages: written by `reports.charts.chart_html` with the page template reused from one copy,
byte for byte what plotly writes for the same figure built on that template; plotly.js and the templates read once."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports.charts import CHART_CONFIG, PAGE_TEMPLATE, base_layout, chart_html, new_figure, plotly_js
from reports.compliance_report import template_environment


def _chart(fig: go.Figure) -> go.Figure:
    """A chart with what the pages' charts use: traces with text to escape, a threshold line, axis settings."""
    fig.add_trace(
        go.Scatter(
            x=["2026-01", "2026-02"],
            y=[99.5, None],
            customdata=[["1,990", "2,000"], ["0", "0"]],
            name="SUP &lt;b&gt;",
            mode="lines+markers",
            line={"color": "#0072b2", "dash": "dot"},
            hovertemplate="%{x}: %{y:.1f}%<extra></extra>",
        )
    )
    fig.add_trace(go.Bar(x=["2026-01"], y=[3], marker_pattern_shape="/", textposition="inside"))
    base_layout(fig, "Adherence per rule", "adherence %")
    fig.add_hline(y=95, line_dash="dot", annotation_text="met at ≥ 95%", annotation_position="top left")
    fig.update_yaxes(range=[0, 102])
    fig.update_xaxes(type="category")
    fig.update_layout(height=320, barmode="group")
    return fig


def _as_plotly_writes_it(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(template=PAGE_TEMPLATE)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=CHART_CONFIG)


def test_a_chart_is_written_as_plotly_writes_it_on_the_page_template():
    expected = _as_plotly_writes_it(_chart(go.Figure()), "chart-x")
    assert str(chart_html(_chart(new_figure()), "chart-x")) == expected
    # the second chart reuses the first one's template: still the same bytes, and the first chart unchanged
    assert str(chart_html(_chart(new_figure()), "chart-x")) == expected
    assert '"template":{"data":' in expected.replace(" ", "")


def test_a_chart_made_with_its_traces_is_written_as_plotly_writes_it():
    def heatmap() -> go.Heatmap:
        return go.Heatmap(z=[[0, 2], [1, 0]], x=["00:00", "01:00"], y=["Mon", "Tue"], texttemplate="%{z}", zmin=0)

    expected_figure = go.Figure(heatmap())
    base_layout(expected_figure, "Breaches by hour", "")
    fig = new_figure(heatmap())
    base_layout(fig, "Breaches by hour", "")
    assert str(chart_html(fig, "chart-heatmap")) == _as_plotly_writes_it(expected_figure, "chart-heatmap")


def test_plotly_js_and_the_templates_are_read_once_per_process():
    assert plotly_js() is plotly_js()
    assert str(plotly_js()) == get_plotlyjs()
    assert template_environment() is template_environment()
    template = template_environment().get_template("sla_dashboard.html")
    assert template_environment().get_template("sla_dashboard.html") is template


def test_the_utc_month_of_an_instant_is_read_from_its_epoch_and_a_value_without_one_as_converted(con):
    from compliance.evidence.summaries import _utc_month

    con.execute(
        "CREATE TABLE instants AS SELECT * FROM (VALUES (1, TIMESTAMPTZ '2026-01-31 23:30:00-05'), "
        "(2, TIMESTAMPTZ '2026-03-01 00:30:00+01'), (3, NULL), (4, TIMESTAMPTZ '-infinity')) AS t(n, happened_at)"
    )
    months = con.execute(f"SELECT {_utc_month('happened_at')} FROM instants ORDER BY n").fetchall()
    assert months == [("2026-02",), ("2026-02",), (None,), ("-infinity",)]


def _traces(chart: str) -> list[dict]:
    """The traces of a chart's ``Plotly.newPlot(id, traces, layout, config)``."""
    import json

    call = chart[chart.index("Plotly.newPlot(") :]
    return json.JSONDecoder().raw_decode(call[call.index("[") :])[0]


def test_the_dashboards_traces_given_as_dicts_are_written_as_trace_objects_write_them(policy):
    """The trend and response charts give plotly their traces as dicts. plotly writes a trace's properties in its
    own order (by name, then ``type``) whichever way they were given, except a ``marker_color`` style name in a
    dict, which it puts last: the pages' bytes would change. Every property is written in plotly's order."""
    from reports.sla_dashboard import _response_chart, _trend_chart
    from tests.test_sla_dashboard import _data

    data = _data(policy)
    for chart in (_trend_chart, _response_chart):
        traces = _traces(str(chart(data)))
        assert len(traces) > 1
        for trace in traces:
            assert list(trace) == [*sorted(set(trace) - {"type"}), "type"]
            assert "color" in (trace.get("line") or trace.get("marker"))
