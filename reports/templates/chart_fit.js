/* Chart titles fit their chart: plotly does not wrap a title, so on a narrow screen (390 px) a long title would
   run past the chart and make the whole page scroll sideways. Each title is broken at word boundaries into lines
   that fit the chart's width (about 7.5 px per character at 14 px), and the top margin grows by one line each. */
(function () {
  "use strict";
  function wrap(text, perLine) {
    var lines = [], line = "";
    text.split(" ").forEach(function (word) {
      if (line && (line + " " + word).length > perLine) { lines.push(line); line = word; }
      else { line = line ? line + " " + word : word; }
    });
    if (line) { lines.push(line); }
    return lines;
  }
  function fit() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("div.plotly-graph-div").forEach(function (gd) {
      if (!gd.layout || !gd.layout.title) { return; }
      if (gd.__fullTitle === undefined) {
        gd.__fullTitle = gd.layout.title.text || "";
        gd.__topMargin = (gd.layout.margin && gd.layout.margin.t) || 50;
      }
      var lines = wrap(gd.__fullTitle, Math.max(20, Math.floor(gd.getBoundingClientRect().width / 7.5)));
      var text = lines.join("<br>");
      if (text !== gd.layout.title.text) {
        window.Plotly.relayout(gd, {"title.text": text, "margin.t": gd.__topMargin + 17 * (lines.length - 1)});
      }
    });
  }
  var pending = null;
  window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(fit, 150); });
  fit();
})();
