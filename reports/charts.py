"""Plotly helpers shared by the report and the dashboard: chart text escaped, charts rendered without the library
(plotly.js is inlined once per page), one base layout."""

from __future__ import annotations

import functools
import html
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from reports.formatting import cell_text

if TYPE_CHECKING:  # plotly is imported by the chart builders that call these, when a page is rendered
    import plotly.graph_objects as go

# The mode bar stays: its camera button saves a chart as PNG for a slide (the select tools only get in the way).
CHART_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "displayModeBar": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
# Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/): blue for kept, vermillion for
# breached, grey for not yet due; the legend and the text beside every bar say which is which, never colour alone.
CHART_COLORS = {"achieved": "#0072b2", "breached": "#d55e00", "active": "#999999"}
SERIES_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#000000", "#999999")


def chart_text(value: Any) -> str:
    """Text for a chart label or hover text. plotly.js reads a subset of HTML in labels, so input text is
    HTML-escaped (plotly shows the entities as characters); a ``%{`` is broken up so that a hovertemplate does not
    read it as a placeholder."""
    return html.escape(cell_text(value), quote=True).replace("%{", "%\u200b{")


# The plotly template every chart of the pages is drawn on (written into each chart by `chart_html`).
PAGE_TEMPLATE = "plotly_white"


def new_figure(data: Any = None) -> go.Figure:
    """A chart of a page, with ``data`` (its traces, as ``go.Figure`` takes them) or none yet.

    Its layout holds an empty template: plotly validates and copies a whole template into every figure that names
    one (its default at creation, then ours), most of what a small chart costs; `chart_html` writes
    :data:`PAGE_TEMPLATE` into the serialised chart instead, once per process."""
    import plotly.graph_objects as go

    return go.Figure(data=data, layout={"template": {}})


@functools.cache
def _page_template() -> dict[str, Any]:
    """:data:`PAGE_TEMPLATE` as a figure's layout carries it once validated (read-only: shared by every chart)."""
    import plotly.graph_objects as go

    return go.Figure(layout={"template": PAGE_TEMPLATE}).to_dict()["layout"]["template"]


@functools.cache
def plotly_js() -> Markup:
    """The plotly.js library, read once per process: both pages inline it (never data)."""
    from plotly.offline import get_plotlyjs

    return Markup(get_plotlyjs())


def chart_html(fig: go.Figure, div_id: str) -> Markup:
    """The chart's div and script, drawn on :data:`PAGE_TEMPLATE` (first in the layout, where plotly puts a
    figure's template): what ``fig.to_html`` writes for the figure with that template, without copying it."""
    import plotly.io as pio

    figure = fig.to_dict()
    layout = {key: value for key, value in figure["layout"].items() if key != "template"}
    figure["layout"] = {"template": _page_template(), **layout}
    # plotly's JSON encoder escapes <, > and / inside the figure data, so no value can end the <script> element.
    div = pio.to_html(
        figure, validate=False, full_html=False, include_plotlyjs=False, div_id=div_id, config=CHART_CONFIG
    )
    return Markup(div)


def base_layout(fig: go.Figure, title: str, y_title: str) -> None:
    """The layout every chart shares (its template: :data:`PAGE_TEMPLATE`, written by `chart_html`)."""
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
        yaxis_title=y_title,
        legend={"orientation": "h", "x": 0, "y": -0.12, "yanchor": "top"},
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
    )


def add_dropdown(fig: go.Figure, buttons: list[dict[str, Any]], active: int) -> None:
    """A dropdown at the chart's top right that switches the traces shown; ``active`` is the button shown first."""
    fig.update_layout(
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.16,
                "yanchor": "top",
                "showactive": True,
                "active": active,
            }
        ],
        margin={"t": 70},
    )
