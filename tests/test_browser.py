"""Both published pages in a real headless Chromium: no console error, every chart drawn, every commitment listed,
hostile input shown as text and never run; the optional PNG/PDF export.

Chromium is driven through the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages ended by a
NUL byte on file descriptors 3 and 4), so the tests need no client library. Without a Chrome or Chromium binary
every test here is skipped with the reason shown (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import tempfile
import time
import warnings
from pathlib import Path

import polars as pl
import pytest

from compliance.policy import load_policy
from compliance.samples.generate import GenerateOptions, generate
from pipelines.cli import main
from reports.static_export import (
    NO_CHROME_MESSAGE,
    ExportError,
    export_dashboard,
    export_page,
    find_chrome,
    parse_formats,
)

CHROME = find_chrome()
NO_CHROME_REASON = "real-browser test skipped: no Chrome or Chromium found (install Debian's chromium or set CR_CHROME)"
needs_chrome = pytest.mark.skipif(CHROME is None, reason=NO_CHROME_REASON)
if CHROME is None:  # shown in the warnings summary of a plain `make test`, which does not list skip reasons
    warnings.warn(pytest.PytestWarning(NO_CHROME_REASON), stacklevel=1)

AS_OF = "2026-11-01T00:00:00Z"
# Each payload sets window.__pwned if the page ever runs it; alert() would open a dialog, which the client records.
HOSTILE_PAYLOADS = (
    "<script>window.__pwned=1;alert(1)</script>",
    '"><img src=x onerror="window.__pwned=1;alert(1)">',
    "'><svg onload=window.__pwned=1>",
)
PAGE_TIMEOUT_SECONDS = 20
# Chromium's first answer waits for its start, which a loaded machine (a run beside the tests) stretches.
START_TIMEOUT_SECONDS = 120


class Browser:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, binary: str, profile_dir: str) -> None:
        chrome_in, self._to_chrome = os.pipe()  # Chrome reads commands on its fd 3 ...
        self._from_chrome, chrome_out = os.pipe()  # ... and answers on its fd 4
        argv = [
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile_dir}",
            "about:blank",
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")
        # posix_spawn places the pipe ends on fds 3 and 4 without running Python code in the child.
        high_in, high_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (chrome_in, chrome_out))
        os.close(chrome_in)
        os.close(chrome_out)
        self.pid = os.posix_spawn(
            binary,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, high_in, 3),
                (os.POSIX_SPAWN_DUP2, high_out, 4),
            ],
        )
        os.close(high_in)
        os.close(high_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        try:
            target = self.call("Target.createTarget", timeout=START_TIMEOUT_SECONDS, url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
        except BaseException:
            self.close()  # a browser that never answered is still writing its profile: stopped before it is removed
            raise

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_chrome], [], [], remaining)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: bool = False, timeout: float = PAGE_TIMEOUT_SECONDS, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self._on_event(answer)

    def _on_event(self, event: dict) -> None:
        self.events.append(event)
        if event.get("method") == "Page.javascriptDialogOpening":  # a dialog blocks the page: record and close it
            self._next_id += 1
            os.write(
                self._to_chrome,
                json.dumps(
                    {
                        "id": self._next_id,
                        "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True},
                        "sessionId": self.session,
                    }
                ).encode()
                + b"\0",
            )

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self._on_event(self._read_message(deadline))

    def open(self, path: Path, *, width: int = 1440, height: int = 900) -> None:
        self.events.clear()
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries since the page was opened."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(
                    f"exception: {params['exceptionDetails'].get('text')} {params['exceptionDetails'].get('exception', {}).get('description', '')}"
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(
                    "console.error: "
                    + " ".join(str(arg.get("value", arg.get("description"))) for arg in params.get("args", []))
                )
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def dialogs(self) -> list[str]:
        return [
            event["params"].get("message", "")
            for event in self.events
            if event.get("method") == "Page.javascriptDialogOpening"
        ]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)  # only the browser this test started
                os.waitpid(self.pid, 0)
                return
            time.sleep(0.05)


def _make_hostile(exports: Path) -> None:
    """Every ticket and incident ID, and the incident severity sev3, carry markup: they reach both pages as text."""

    def hostile_ids(column: pl.Expr) -> pl.Expr:
        payload = pl.lit(list(HOSTILE_PAYLOADS)).list.get(
            column.str.slice(-1).cast(pl.Int64, strict=False).fill_null(0) % len(HOSTILE_PAYLOADS)
        )
        return pl.concat_str([column, payload])

    for name, id_column in (
        ("tickets.csv", "ticket_id"),
        ("ticket_events.csv", "ticket_id"),
        ("incidents.csv", "incident_id"),
        ("incident_updates.csv", "incident_id"),
    ):
        path = exports / name
        frame = pl.read_csv(path, infer_schema=False)
        frame = frame.with_columns(hostile_ids(pl.col(id_column)).alias(id_column))
        if name == "incidents.csv":
            frame = frame.with_columns(
                pl.when(pl.col("severity") == "sev3")
                .then(pl.lit(HOSTILE_PAYLOADS[1]))
                .otherwise(pl.col("severity"))
                .alias("severity")
            )
        frame.write_csv(path)


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    exports = tmp_path_factory.mktemp("hostile_exports")
    generate(
        GenerateOptions(
            out_dir=exports,
            tickets=2000,
            privacy_requests=150,
            security_reports=30,
            incidents=40,
            retention_records=600,
        )
    )
    _make_hostile(exports)
    out = tmp_path_factory.mktemp("hostile_out")
    assert main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory(prefix="cr-test-chrome-", ignore_cleanup_errors=True) as profile_dir:
        chrome = Browser(CHROME, profile_dir)
        try:
            yield chrome
        finally:
            chrome.close()


# A chart is drawn when its SVG holds marks: line or bar paths of a trace, or the image of a heatmap.
CHART_STATE = """(async () => {
  const charts = () => Array.from(document.querySelectorAll('div.plotly-graph-div'));
  const marks = div => div.querySelectorAll('.main-svg g.trace path, .main-svg g.hm image').length;
  for (let i = 0; i < 100 && !charts().every(div => marks(div) > 0); i++) {
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  return charts().map(div => ({id: div.id, marks: marks(div), width: div.getBoundingClientRect().width,
                               traces: (div.data || []).length}));
})()"""

INJECTION_STATE = """({
  pwned: window.__pwned === 1,
  images: document.querySelectorAll('img').length,
  handlers: document.querySelectorAll('[onerror], [onload]').length,
  // chart scripts hold the payloads as JSON data; an injected element would hold one as its whole code
  foreignScripts: Array.from(document.scripts).filter(s => s.textContent.trim().startsWith('window.__pwned')).length,
  text: document.body.innerText,
})"""


def _check_page(browser: Browser, path: Path, expected_charts: set[str]) -> dict:
    browser.open(path)
    charts = browser.evaluate(CHART_STATE)
    assert browser.errors() == []
    assert browser.dialogs() == []
    by_id = {chart["id"]: chart for chart in charts}
    assert expected_charts <= set(by_id), f"charts missing: {expected_charts - set(by_id)}"
    for chart in charts:
        assert chart["marks"] > 0 and chart["traces"] > 0 and chart["width"] > 300, chart
    injected = browser.evaluate(INJECTION_STATE)
    assert not injected["pwned"]
    assert injected["images"] == 0 and injected["handlers"] == 0 and injected["foreignScripts"] == 0
    return injected


@needs_chrome
def test_compliance_report_in_chromium(browser, run_out):
    injected = _check_page(
        browser,
        run_out / "compliance_report.html",
        {
            "chart-tickets",
            "chart-tickets-response",
            "chart-security",
            "chart-privacy",
            "chart-privacy-backlog",
            "chart-status",
            "chart-retention-classes",
        },
    )
    listed = browser.evaluate(
        "Array.from(document.querySelectorAll('table.verdicts tbody tr code')).map(c => c.textContent)"
    )
    assert listed == [rule.id for rule in load_policy("platform").rules]
    # the record IDs reached the page, as visible text
    for payload in HOSTILE_PAYLOADS:
        assert payload in injected["text"], payload


@needs_chrome
def test_violations_table_sorts_and_filters_in_the_page(browser, run_out):
    browser.open(run_out / "compliance_report.html")
    state = browser.evaluate("""(() => {
      const rows = () => Array.from(document.querySelectorAll('#violation-table tbody tr'));
      const visible = () => rows().filter(r => !r.hidden);
      const total = rows().length;
      const header = Array.from(document.querySelectorAll('#violation-table th')).find(th => th.textContent.startsWith('Overdue'));
      header.click(); header.click();  // descending
      const overdue = visible().map(r => parseFloat(r.cells[5].getAttribute('data-sort')) || 0);
      const select = document.getElementById('violation-domain');
      select.value = 'security'; select.dispatchEvent(new Event('change'));
      const domains = new Set(visible().map(r => r.getAttribute('data-domain')));
      return {total, overdue, domains: Array.from(domains), shown: visible().length,
              count: document.getElementById('violation-count').textContent};
    })()""")
    assert browser.errors() == []
    assert state["total"] > 10
    assert state["overdue"] == sorted(state["overdue"], reverse=True)
    assert state["domains"] == ["security"] and 0 < state["shown"] < state["total"]
    assert state["count"] == f"{state['shown']} of {state['total']} rows match"


@needs_chrome
def test_sla_dashboard_in_chromium(browser, run_out):
    injected = _check_page(
        browser,
        run_out / "sla_dashboard.html",
        {"chart-trend", "chart-response", "chart-heatmap", "chart-incidents", "chart-privacy"},
    )
    tiles = browser.evaluate("Array.from(document.querySelectorAll('#kpis .kpi')).map(k => k.dataset.status)")
    assert tiles and set(tiles) <= {"green", "amber", "red", "grey"}
    assert HOSTILE_PAYLOADS[1] in injected["text"]  # the incident severity, in the MTTA/MTTR table


@needs_chrome
def test_printed_pages_hide_the_controls_and_open_the_breakdowns(browser, run_out):
    """What the print style sheet promises, seen in print media: navigation, filters and chart menus hidden,
    segment breakdowns opened (beforeprint), the dashboard's tiles four to a row."""
    browser.open(run_out / "compliance_report.html")
    browser.call("Emulation.setEmulatedMedia", session=True, media="print")
    report = browser.evaluate("""(() => {
      window.dispatchEvent(new Event('beforeprint'));
      const shown = el => el && getComputedStyle(el).display !== 'none';
      const details = Array.from(document.querySelectorAll('details'));
      return {toc: shown(document.querySelector('nav.toc')), controls: Array.from(document.querySelectorAll('.controls')).some(shown),
              details: details.length, closed: details.filter(d => !d.open).length,
              printOnly: Array.from(document.querySelectorAll('.print-only')).every(shown)};
    })()""")
    assert report == {"toc": False, "controls": False, "details": report["details"], "closed": 0, "printOnly": True}
    assert report["details"] > 0
    browser.open(run_out / "sla_dashboard.html")
    browser.call("Emulation.setEmulatedMedia", session=True, media="print")
    columns = browser.evaluate(
        "getComputedStyle(document.querySelector('.kpi-grid')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 4
    browser.call("Emulation.setEmulatedMedia", session=True, media="")


@needs_chrome
def test_pages_fit_a_laptop_screen(browser, run_out):
    """At 1366 px wide nothing but the wide tables scrolls sideways."""
    for name in ("compliance_report.html", "sla_dashboard.html"):
        browser.open(run_out / name, width=1366, height=768)
        overflow = browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, name


@needs_chrome
def test_static_export_writes_png_and_pdf(run_out):
    lines = export_dashboard(run_out, ("png", "pdf"), CHROME)
    png, pdf = run_out / "sla_dashboard.png", run_out / "sla_dashboard.pdf"
    report = run_out / "compliance_report.pdf"  # the printed report comes with a PDF export
    assert lines == [f"PNG: {png.resolve()}", f"PDF: {pdf.resolve()}", f"PDF (compliance report): {report.resolve()}"]
    assert report.read_bytes()[:5] == b"%PDF-"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in run_out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_failed_export_keeps_the_previous_copy(tmp_path):
    """A browser that fails (here /bin/false) leaves the previous copy and no temporary file."""
    previous = tmp_path / "sla_dashboard.png"
    previous.write_bytes(b"previous good copy")
    lines = export_dashboard(tmp_path, ("png",), "/bin/false")  # no sla_dashboard.html in this folder
    assert len(lines) == 1 and lines[0].startswith("PNG export failed: ") and "no such page" in lines[0]
    assert previous.read_bytes() == b"previous good copy"
    (tmp_path / "sla_dashboard.html").write_text("<!DOCTYPE html><title>x</title>", encoding="utf-8")
    with pytest.raises(ExportError, match="wrote no PNG"):
        export_page(tmp_path / "sla_dashboard.html", tmp_path / "sla_dashboard.png", "/bin/false")
    assert previous.read_bytes() == b"previous good copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sla_dashboard.html", "sla_dashboard.png"]


def test_export_without_chrome_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CR_CHROME", str(tmp_path / "no-such-chrome"))
    assert find_chrome() is None
    assert export_dashboard(tmp_path, ("png", "pdf")) == [NO_CHROME_MESSAGE]
    assert NO_CHROME_MESSAGE == "PNG/PDF export skipped: no Chrome or Chromium found (set CR_CHROME)"
    monkeypatch.delenv("CR_CHROME")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chrome() is None


def test_export_formats_are_checked(tmp_path, capsys):
    assert parse_formats("png, PDF,png") == ("png", "pdf")
    with pytest.raises(ValueError, match="unknown export format svg"):
        parse_formats("png,svg")
    # the CLI refuses a bad --export before it runs anything
    assert main(["run", "--exports", str(tmp_path), "--out", str(tmp_path / "out"), "--export", "png,svg"]) == 2
    assert capsys.readouterr().err.strip() == (
        "compliance-report: --export 'png,svg': unknown export format svg (choose from png, pdf)"
    )


# --------------------------------------------------------------------------------------------------------------
# Reports people explore: dashboard filters, drill-down into the report, any screen
# --------------------------------------------------------------------------------------------------------------

TILE_STATE = """Array.from(document.querySelectorAll('article.kpi')).map(tile => ({
  id: tile.id, status: tile.dataset.status, value: tile.querySelector('.kpi-value').textContent,
  filtered: tile.querySelector('.kpi-filtered').textContent,
  links: Array.from(tile.querySelectorAll('a')).map(a => a.getAttribute('href'))}))"""


def _open_with_fragment(browser: Browser, path: Path, fragment: str, width: int = 1440) -> None:
    browser.open(path, width=width)  # the page first, then its fragment: as a shared link is opened
    browser.evaluate(f"window.location.hash = {json.dumps(fragment)}; new Promise(r => setTimeout(r, 300))")


def _expected_tile(achieved: int, breached: int, threshold: float = 100.0, band: float = 5.0) -> tuple[str, str]:
    denominator = achieved + breached
    if not denominator:
        return "—", "grey"
    tenths = achieved * 1000 // denominator
    adherence = 100 * achieved / denominator
    status = "green" if adherence >= threshold else "amber" if adherence >= threshold - band else "red"
    return f"{tenths // 10}.{tenths % 10}%", status


@needs_chrome
def test_dashboard_filter_recomputes_tiles_from_the_evidence(browser, run_out):
    """A month range and a channel: every ticket tile shows what ticket_sla.csv gives, counted here."""
    dashboard = run_out / "sla_dashboard.html"
    browser.open(dashboard)
    months = browser.evaluate("JSON.parse(document.getElementById('dashboard-data').textContent).months")
    first, last = months[2], months[5]
    _open_with_fragment(browser, dashboard, f"from={first}&to={last}&channel=technical_support")
    tiles = {tile["id"]: tile for tile in browser.evaluate(TILE_STATE)}
    assert browser.errors() == []
    clocks = pl.read_csv(run_out / "evidence" / "ticket_sla.csv", infer_schema_length=0).filter(
        pl.col("channel") == "technical_support",
        pl.col("state").is_in(["achieved", "breached"]),
        pl.col("started_at").str.slice(0, 7).is_between(pl.lit(first), pl.lit(last)),
    )
    counted = {
        row["rule_id"]: (row["achieved"], row["breached"])
        for row in clocks.group_by("rule_id")
        .agg(achieved=(pl.col("state") == "achieved").sum(), breached=(pl.col("state") == "breached").sum())
        .to_dicts()
    }
    assert counted, "the sample has technical-support clocks in the range"
    ticket_rules = [rule.id for rule in load_policy("platform").rules if rule.domain == "tickets"]
    for rule_id in ticket_rules:
        tile = tiles.get(f"kpi-{rule_id}")
        if tile is None:
            continue
        achieved, breached = counted.get(rule_id, (0, 0))
        assert (tile["value"], tile["status"]) == _expected_tile(achieved, breached), rule_id
        assert f"{achieved:,} achieved of {achieved + breached:,}" in tile["filtered"], rule_id
    summary = browser.evaluate(
        "Object.fromEntries(['green', 'amber', 'red', 'grey'].map(s => [s, Number(document.querySelector("
        "'#status-summary .rag-' + s).previousElementSibling.textContent)]))"
    )
    statuses = [tile["status"] for key, tile in tiles.items() if key.startswith("kpi-")]
    assert summary == {status: statuses.count(status) for status in ("green", "amber", "red", "grey")}
    # the breaches by cause are recounted for the same filter: per rule, its causes add up to its breached clocks
    by_cause = browser.evaluate("""(() => { const gd = document.getElementById('chart-causes'); const sums = {};
      gd.data.forEach(t => t.y.forEach((rule, i) => { sums[rule] = (sums[rule] || 0) + (t.x[i] || 0); }));
      return sums; })()""")
    for rule_id, (_, breached) in counted.items():
        assert by_cause.get(rule_id, 0) == breached, rule_id
    pooled = [sum(pair[index] for pair in counted.values()) for index in (0, 1)]
    assert (tiles["headline-tickets"]["value"], tiles["headline-tickets"]["status"]) == _expected_tile(*pooled)
    # a commitment that is not split by channel says so instead of showing an unfiltered figure
    privacy = next(tile for tile in tiles.values() if tile["id"].startswith("kpi-PRIV-"))
    assert privacy["value"] == "—" and "does not apply" in privacy["filtered"]
    # the state is in the fragment; "Show all" brings back the published figures
    state = browser.evaluate("""(() => {
      const hash = window.location.hash;
      document.getElementById('filter-reset').click();
      return {hash, after: window.location.hash,
              value: document.querySelector('#kpi-SUP-TECH-STD .kpi-value').textContent};
    })()""")
    assert "channel=technical_support" in state["hash"] and state["after"] == ""
    browser.open(dashboard)
    assert state["value"] == browser.evaluate("document.querySelector('#kpi-SUP-TECH-STD .kpi-value').textContent")


@needs_chrome
def test_dashboard_links_resolve_in_the_report(browser, run_out):
    """Every tile links to its commitment's section of the report, and its records to the filtered violations."""
    browser.open(run_out / "sla_dashboard.html")
    links = {href for tile in browser.evaluate(TILE_STATE) for href in tile["links"]}
    browser.open(run_out / "compliance_report.html")
    ids = set(browser.evaluate("Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    sections = {href.split("#", 1)[1] for href in links if "?" not in href}
    assert sections and all(href.startswith("compliance_report.html#") for href in links)
    assert sections <= ids, sections - ids
    records = sorted(href for href in links if "#violations?rule=" in href)
    assert records
    violations = pl.read_csv(run_out / "evidence" / "violations.csv", infer_schema_length=0)
    for href in records[:3]:
        rule_id = href.split("rule=", 1)[1]
        _open_with_fragment(browser, run_out / "compliance_report.html", href.split("#", 1)[1])
        shown = browser.evaluate(
            "Array.from(document.querySelectorAll('#violation-table tbody tr')).filter(r => !r.hidden)"
            ".map(r => r.dataset.rule)"
        )
        assert browser.errors() == []
        assert set(shown) <= {rule_id}
        assert len(shown) == violations.filter(pl.col("rule_id") == rule_id).height, rule_id


@needs_chrome
def test_report_drill_down_to_a_rule_and_month(browser, run_out):
    """#violations?rule=..&month=.. shows exactly the breached clocks of that rule started in that month."""
    clocks = pl.read_csv(run_out / "evidence" / "ticket_sla.csv", infer_schema_length=0).filter(
        pl.col("state") == "breached"
    )
    busiest = (
        clocks.with_columns(month=pl.col("started_at").str.slice(0, 7))
        .group_by("rule_id", "month")
        .len()
        .sort("len", "rule_id", "month", descending=[True, False, False])
        .row(0, named=True)
    )
    _open_with_fragment(
        browser, run_out / "compliance_report.html", f"violations?rule={busiest['rule_id']}&month={busiest['month']}"
    )
    state = browser.evaluate("""({shown: Array.from(document.querySelectorAll('#violation-table tbody tr'))
        .filter(r => !r.hidden).length, drill: document.getElementById('violation-drill-text').textContent})""")
    assert browser.errors() == []
    assert state["shown"] == busiest["len"]
    assert state["drill"] == f"rule {busiest['rule_id']}, month {busiest['month']}"


@needs_chrome
@pytest.mark.parametrize("width", [390, 1440])
def test_pages_never_scroll_sideways(browser, run_out, width):
    """At a phone's 390 px and a desktop's 1440 px the page itself never scrolls sideways (wide tables scroll
    in their own box), every chart keeps its mode bar, and the page logs no error."""
    for name in ("compliance_report.html", "sla_dashboard.html"):
        browser.open(run_out / name, width=width, height=900)
        state = browser.evaluate("""new Promise(resolve => setTimeout(() => resolve({
          overflow: document.documentElement.scrollWidth - window.innerWidth,
          charts: document.querySelectorAll('div.plotly-graph-div').length,
          modebars: document.querySelectorAll('div.plotly-graph-div .modebar').length}), 300))""")
        assert browser.errors() == [], name
        assert state["overflow"] <= 0, (name, width, state)
        assert state["charts"] > 0 and state["modebars"] == state["charts"], (name, state)


# --- the printed report (issue 17 item 4): the PDF read back -----------------------------------------------------
PRINT_PREPARED_BY = "Ana Prepares"


def _pdf_pages(path: Path) -> list[str]:
    """The text of each page of a PDF, whitespace removed (a long hash or ID may wrap inside its table cell)."""
    pypdf = pytest.importorskip("pypdf", reason="reading the printed report needs pypdf (the test extra)")
    return ["".join(page.extract_text().split()) for page in pypdf.PdfReader(str(path)).pages]


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> dict[str, Path]:
    """One small run printed under the platform policy (every violation fits on paper) and under a copy whose
    ``report.print_violations_max`` is 5 (the appendix instead)."""
    import yaml

    exports = tmp_path_factory.mktemp("print_exports")
    generate(
        GenerateOptions(
            out_dir=exports, tickets=300, privacy_requests=40, security_reports=10, incidents=10, retention_records=50
        )
    )
    document = yaml.safe_load(Path(load_policy("platform").path).read_text(encoding="utf-8"))
    document["report"] = {"print_violations_max": 5}
    small = tmp_path_factory.mktemp("print_policy") / "platform-print5.yaml"
    small.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    outs = {}
    for name, policy in (("every", "platform"), ("appendix", str(small))):
        out = tmp_path_factory.mktemp(f"print_{name}")
        arguments = ["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF, "--policy", policy]
        assert main([*arguments, "--export", "pdf", "--prepared-by", PRINT_PREPARED_BY]) == 0
        outs[name] = out
    return outs


def _violation_ids(out: Path) -> list[str]:
    return pl.read_csv(out / "evidence" / "violations.csv", infer_schema=False)["record_id"].to_list()


@needs_chrome
@pytest.mark.parametrize("run", ["every", "appendix"])
def test_every_printed_page_carries_its_number_and_the_run(printed, run):
    out = printed[run]
    pages = _pdf_pages(out / "compliance_report.pdf")
    run_id = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["run_id"]
    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert f"Page{number}of{len(pages)}" in text, number
        # the footer's id may wrap at a hyphen in the narrow margin box, and the PDF's text then interleaves it
        # with the page number: its first group must follow "Run" on every page
        assert f"Run{run_id.split('-')[0]}" in text, number
        assert "version" in text and "period" in text and "asof" in text, number
    whole = "".join(pages)
    assert run_id in whole  # and the whole id is printed (the header facts of the first page)
    assert f"Preparedby{PRINT_PREPARED_BY.replace(' ', '')}" in whole
    assert "Reviewedbynotstated" in whole


@needs_chrome
def test_the_printed_report_holds_every_violation(printed):
    whole = "".join(_pdf_pages(printed["every"] / "compliance_report.pdf"))
    ids = _violation_ids(printed["every"])
    assert 5 < len(ids) <= 1000
    assert f"Printed:all{len(ids)}violations" in whole
    assert [record_id for record_id in ids if record_id not in whole] == []


@needs_chrome
def test_above_the_print_size_the_appendix_names_the_evidence_and_its_hash(printed):
    import hashlib

    out = printed["appendix"]
    whole = "".join(_pdf_pages(out / "compliance_report.pdf"))
    sha256 = hashlib.sha256((out / "evidence" / "violations.csv").read_bytes()).hexdigest()
    assert "Appendix:violationsbydomain" in whole
    assert whole.count(f"evidence/violations.csv{sha256}") >= 2  # one appendix row per domain with violations
    assert "thepolicyprints" in whole
    # the list itself stays on screen: the explanations of the violations are not on paper
    explanations = pl.read_csv(out / "evidence" / "violations.csv", infer_schema=False)["explanation"].to_list()
    assert not any("".join(text.split())[:60] in whole for text in explanations)


@needs_chrome
def test_a_run_id_with_ligature_letters_is_printed_as_written(policy, tmp_path):
    """Chrome joins "ff" and "fi" into one glyph unless told not to, and the PDF's text then holds U+FB00: the run
    id of the margins (and the page's IDs) would not be the run id. A run id is random, so a run whose id held
    "ff" failed the page test above now and then; this one always holds it."""
    from dataclasses import replace

    from test_reports import _data

    from reports.compliance_report import render_compliance_report
    from reports.static_export import export_page

    run_id = "1ffa0cff-83ff-4ffd-affe-0000000000ff"
    data = _data(policy, hostile=False)
    page = tmp_path / "compliance_report.html"
    page.write_text(
        render_compliance_report(replace(data, manifest={**data.manifest, "run_id": run_id})), encoding="utf-8"
    )
    pages = _pdf_pages(export_page(page, tmp_path / "compliance_report.pdf", CHROME))
    assert pages and all(f"Run{run_id}" in text for text in pages)
    assert not any("\ufb00" in text or "\ufb01" in text for text in pages)
