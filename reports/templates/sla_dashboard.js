/* SLA dashboard filters: month range, channel, tier, plan. Every figure under a filter is recomputed here from the
   counts embedded in the page (#dashboard-data): adherence = sum(achieved) / sum(achieved + breached) of the
   matching rule x month (x channel x tier x plan) rows, cut to tenths, and the status compared in integers
   (thresholds in thousandths of a percent). The state lives in the URL fragment (#from=..&to=..&channel=..).
   Without a filter the page shows the figures it was published with. No network, no server. */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  var form = document.getElementById("filter-form");
  if (!source || !form) { return; }
  var data = JSON.parse(source.textContent);
  var FIELDS = ["from", "to", "channel", "tier", "plan"];
  var DIMENSIONS = ["channel", "tier", "plan"];
  var LABELS = {green: "on target", amber: "just below target", red: "below target", grey: "no data"};
  var months = data.months;
  var defaults = {from: months[0] || "", to: months[months.length - 1] || "", channel: "", tier: "", plan: ""};
  var selects = {};
  FIELDS.forEach(function (name) { selects[name] = document.getElementById("filter-" + name); });

  function option(select, value, text) {
    var element = document.createElement("option");
    element.value = value;
    element.textContent = text;
    select.appendChild(element);
  }
  months.forEach(function (month) { option(selects.from, month, month); option(selects.to, month, month); });
  DIMENSIONS.forEach(function (name) {
    data.dimensions[name].forEach(function (value) { option(selects[name], value, value === "-" ? "(none)" : value); });
  });

  function readFragment() {
    var state = Object.assign({}, defaults);
    window.location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var cut = pair.indexOf("=");
      if (cut < 1) { return; }
      var key = decodeURIComponent(pair.slice(0, cut));
      if (FIELDS.indexOf(key) !== -1) { state[key] = decodeURIComponent(pair.slice(cut + 1)); }
    });
    return state;
  }
  function writeFragment(state) {
    var parts = FIELDS.filter(function (key) { return state[key] !== defaults[key]; }).map(function (key) {
      return encodeURIComponent(key) + "=" + encodeURIComponent(state[key]);
    });
    var url = window.location.pathname + window.location.search + (parts.length ? "#" + parts.join("&") : "");
    window.history.replaceState(null, "", url);
  }
  function formState() {
    var state = {};
    FIELDS.forEach(function (key) { state[key] = selects[key].value; });
    if (state.from > state.to) { var swap = state.from; state.from = state.to; state.to = swap; }
    return state;
  }
  function setForm(state) {
    FIELDS.forEach(function (key) {
      selects[key].value = state[key];
      if (selects[key].value !== state[key]) { selects[key].value = defaults[key]; }  // an unknown value: ignored
    });
  }

  function segmentFiltered(state) { return DIMENSIONS.some(function (key) { return state[key] !== ""; }); }
  function isDefault(state) { return FIELDS.every(function (key) { return state[key] === defaults[key]; }); }
  function inRange(month, state) { return month >= state.from && month <= state.to; }

  /* rule -> month -> [achieved, breached] of the rows matching the filter */
  function counts(state) {
    var out = {};
    function add(rule, month, achieved, breached) {
      var byMonth = out[rule] || (out[rule] = {});
      var pair = byMonth[month] || (byMonth[month] = [0, 0]);
      pair[0] += achieved;
      pair[1] += breached;
    }
    if (!segmentFiltered(state)) {
      data.totals.forEach(function (row) { if (inRange(row[1], state)) { add(row[0], row[1], row[2], row[3]); } });
    } else {
      data.cells.forEach(function (row) {
        if (!inRange(row[1], state)) { return; }
        for (var i = 0; i < DIMENSIONS.length; i += 1) {
          if (state[DIMENSIONS[i]] && row[2 + i] !== state[DIMENSIONS[i]]) { return; }
        }
        add(row[0], row[1], row[5], row[6]);
      });
    }
    return out;
  }
  function total(byMonth) {
    var sum = [0, 0];
    Object.keys(byMonth || {}).forEach(function (month) { sum[0] += byMonth[month][0]; sum[1] += byMonth[month][1]; });
    return sum;
  }
  function status(achieved, denominator) {
    if (!denominator) { return "grey"; }
    var scaled = achieved * 100 * 1000;
    if (scaled >= data.threshold_milli * denominator) { return "green"; }
    if (scaled >= (data.threshold_milli - data.band_milli) * denominator) { return "amber"; }
    return "red";
  }
  function headline(achieved, denominator) {
    if (!denominator) { return "—"; }
    var tenths = Math.floor((achieved * 1000) / denominator);
    return Math.floor(tenths / 10) + "." + (tenths % 10) + "%";
  }
  function number(value) { return value.toLocaleString("en-US"); }
  function describe(state) {
    var parts = [state.from === state.to ? state.from : state.from + " to " + state.to];
    DIMENSIONS.forEach(function (key) { if (state[key]) { parts.push(key + " " + state[key]); } });
    return parts.join(", ");
  }

  var tiles = Array.prototype.slice.call(document.querySelectorAll("article.kpi"));
  tiles.forEach(function (tile) {
    var head = tile.querySelector(".kpi-head");
    ["data-rule", "data-domain"].forEach(function (name) {  // the tile's own attributes, read once
      if (head.hasAttribute(name)) { tile.setAttribute(name, head.getAttribute(name)); }
    });
    var badge = tile.querySelector(".rag-badge");
    tile.setAttribute("data-published-status", tile.getAttribute("data-status"));
    tile.setAttribute("data-published-value", tile.querySelector(".kpi-value").textContent);
    badge.setAttribute("data-published-label", badge.textContent);
  });
  function paint(tile, state, value, line) {
    var badge = tile.querySelector(".rag-badge");
    tile.classList.remove("rag-green", "rag-amber", "rag-red", "rag-grey");
    tile.classList.add("rag-" + state);
    tile.setAttribute("data-status", state);
    badge.className = "rag-badge rag-" + state;
    badge.textContent = line === null ? badge.getAttribute("data-published-label") : LABELS[state];
    tile.querySelector(".kpi-value").textContent = value;
    var filtered = tile.querySelector(".kpi-filtered");
    filtered.hidden = line === null;
    filtered.textContent = line || "";
    tile.querySelectorAll(".kpi-figures, .kpi-change").forEach(function (element) { element.hidden = line !== null; });
  }

  function updateTiles(state, byRule) {
    var pooled = {};
    tiles.forEach(function (tile) {
      var rule = tile.getAttribute("data-rule");
      if (!rule) { return; }
      var info = data.rules[rule];
      var records = tile.querySelector(".kpi-records");
      if (records) { records.href = recordsHref(rule, state); }
      if (state === null) {
        paint(tile, tile.getAttribute("data-published-status"), tile.getAttribute("data-published-value"), null);
        return;
      }
      if (!info || (segmentFiltered(state) && !info.split)) {
        paint(tile, "grey", "—", info ? "Not split by channel, tier or plan: this filter does not apply."
                                      : "No monthly figures for this commitment: not filtered.");
        return;
      }
      var sum = total(byRule[rule]);
      var denominator = sum[0] + sum[1];
      paint(tile, status(sum[0], denominator), headline(sum[0], denominator),
            describe(state) + ": " + number(sum[0]) + " achieved of " + number(denominator) + " · " +
            number(sum[1]) + " breached");
      var domain = tile.getAttribute("data-domain");
      var pool = pooled[domain] || (pooled[domain] = [0, 0, 0]);
      pool[0] += sum[0];
      pool[1] += denominator;
      pool[2] += sum[1];
    });
    tiles.forEach(function (tile) {
      if (tile.getAttribute("data-rule") || state === null) {
        if (state === null && !tile.getAttribute("data-rule")) {
          paint(tile, tile.getAttribute("data-published-status"), tile.getAttribute("data-published-value"), null);
        }
        return;
      }
      var pool = pooled[tile.getAttribute("data-domain")];
      if (!pool) {
        paint(tile, "grey", "—", "No commitment of this domain is split by channel, tier or plan: not filtered.");
        return;
      }
      paint(tile, status(pool[0], pool[1]), headline(pool[0], pool[1]),
            describe(state) + ": " + number(pool[0]) + " of " + number(pool[1]) + " items on time · " +
            number(pool[2]) + " breached");
    });
  }

  /* The status counts at the top follow the commitment tiles. */
  function updateSummary() {
    Object.keys(LABELS).forEach(function (name) {
      var badge = document.querySelector("#status-summary .rag-badge.rag-" + name);
      if (!badge || !badge.previousElementSibling) { return; }
      badge.previousElementSibling.textContent =
        document.querySelectorAll('#kpis article.kpi[data-status="' + name + '"]').length;
    });
  }

  function recordsHref(rule, state) {
    var link = data.report + "#violations?rule=" + encodeURIComponent(rule);
    if (state === null) { return link; }
    if (state.from === state.to) { link += "&month=" + encodeURIComponent(state.from); }
    else { link += "&from=" + encodeURIComponent(state.from) + "&to=" + encodeURIComponent(state.to); }
    DIMENSIONS.forEach(function (key) { if (state[key]) { link += "&" + key + "=" + encodeURIComponent(state[key]); } });
    return link;
  }

  /* Charts keep the traces they were published with (gd.__published); a filter restyles copies of them. */
  function published(gd) {
    if (!gd.__published) {
      gd.__published = gd.data.map(function (trace) {
        return {x: (trace.x || []).slice(), y: (trace.y || []).slice(), customdata: (trace.customdata || []).slice(),
                text: Array.isArray(trace.text) ? trace.text.slice() : trace.text};
      });
    }
    return gd.__published;
  }
  function monthsOnly(gd, state) {
    var keep = published(gd).map(function (trace) {
      return trace.x.map(function (month) { return state === null || inRange(String(month), state); });
    });
    function pick(key) {
      return published(gd).map(function (trace, index) {
        var values = trace[key];
        return Array.isArray(values) ? values.filter(function (_, i) { return keep[index][i]; }) : values;
      });
    }
    window.Plotly.restyle(gd, {x: pick("x"), y: pick("y"), customdata: pick("customdata"), text: pick("text")});
  }
  function trend(gd, state, byRule) {
    if (state === null) { monthsOnly(gd, null); return; }
    var update = {x: [], y: [], customdata: []};
    published(gd).forEach(function (trace, index) {
      var meta = gd.data[index].meta || [];
      var rule = meta[0], segment = meta[1];
      if (segment !== "all" || (segmentFiltered(state) && !(data.rules[rule] || {}).split)) {
        // a segment line keeps its months in range when its segment matches the filter; a rule this filter
        // does not apply to shows nothing rather than unfiltered figures
        var matches = segment !== "all" && DIMENSIONS.every(function (key) {
          return !state[key] || (";" + segment + ";").indexOf(";" + key + "=" + state[key] + ";") !== -1;
        });
        var x = [], y = [], custom = [];
        trace.x.forEach(function (month, i) {
          if (matches && inRange(String(month), state)) { x.push(month); y.push(trace.y[i]); custom.push(trace.customdata[i]); }
        });
        update.x.push(x); update.y.push(y); update.customdata.push(custom);
        return;
      }
      var byMonth = byRule[rule] || {};
      var shown = Object.keys(byMonth).sort().filter(function (month) { return byMonth[month][0] + byMonth[month][1] > 0; });
      update.x.push(shown);
      update.y.push(shown.map(function (month) { var p = byMonth[month]; return (100 * p[0]) / (p[0] + p[1]); }));
      update.customdata.push(shown.map(function (month) { var p = byMonth[month]; return [number(p[0]), number(p[0] + p[1])]; }));
    });
    window.Plotly.restyle(gd, update);
  }
  /* Breaches by cause: recounted from the embedded rule x cause x month x segment counts. Only ticket clocks
     carry a month and a segment, so under a filter the other commitments' causes are left out (and said so). */
  function causes(gd, state) {
    var original = published(gd);
    var update = {x: [], text: []};
    gd.data.forEach(function (trace, index) {
      if (state === null) {
        update.x.push(original[index].x);
        update.text.push(original[index].text);
        return;
      }
      var x = trace.y.map(function (rule) {
        var sum = 0;
        data.causes.forEach(function (row) {
          if (row[0] !== rule || row[1] !== trace.meta || row[2] === null || !inRange(row[2], state)) { return; }
          for (var i = 0; i < DIMENSIONS.length; i += 1) {
            if (state[DIMENSIONS[i]] && row[3 + i] !== state[DIMENSIONS[i]]) { return; }
          }
          sum += row[6];
        });
        return sum || null;
      });
      update.x.push(x);
      update.text.push(x.map(function (value) { return value ? number(value) : ""; }));
    });
    window.Plotly.restyle(gd, update);
  }

  function updateCharts(state, byRule) {
    var segment = state !== null && segmentFiltered(state);
    document.querySelectorAll("p.filter-note").forEach(function (note) {
      note.hidden = state === null || (note.getAttribute("data-when") === "segment" && !segment);
    });
    if (!window.Plotly) { return; }
    document.querySelectorAll(".chart[data-filter]").forEach(function (box) {
      var gd = box.querySelector(".js-plotly-plot");
      if (!gd || !gd.data) { return; }
      var kind = box.getAttribute("data-filter");
      if (kind === "trend") { trend(gd, state, byRule); }
      else if (kind === "months") { monthsOnly(gd, state); }
      else if (kind === "causes") { causes(gd, state); }
    });
  }

  var statusLine = document.getElementById("filter-status");
  var allDataText = statusLine.textContent;
  function apply(state) {
    var filtered = isDefault(state) ? null : state;
    var byRule = filtered ? counts(filtered) : {};
    updateTiles(filtered, byRule);
    updateSummary();
    updateCharts(filtered, byRule);
    statusLine.textContent = filtered ? "Filtered: " + describe(filtered) + " (month of the clock start, UTC). " +
      "Tiles and adherence charts are recomputed from the counts in this page; charts marked 'Not filtered' show all data."
      : allDataText;
    document.body.setAttribute("data-filter", filtered ? describe(filtered) : "");
  }
  form.addEventListener("change", function () { var state = formState(); writeFragment(state); apply(state); });
  document.getElementById("filter-reset").addEventListener("click", function () {
    setForm(defaults); writeFragment(defaults); apply(defaults);
  });
  window.addEventListener("hashchange", function () { var state = readFragment(); setForm(state); apply(formState()); });
  var initial = readFragment();
  setForm(initial);
  apply(formState());

  /* A point of the trend chart opens the records behind it: the report's violations of that rule and month. */
  var trendChart = document.getElementById("chart-trend");
  if (trendChart && trendChart.on) {
    trendChart.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      var meta = point && point.data.meta;
      if (!meta) { return; }
      var state = formState();
      var link = data.report + "#violations?rule=" + encodeURIComponent(meta[0]) + "&month=" + encodeURIComponent(point.x);
      DIMENSIONS.forEach(function (key) { if (state[key]) { link += "&" + key + "=" + encodeURIComponent(state[key]); } });
      window.location.href = link;
    });
  }
})();

/* The at-risk table by domain (the month, channel, tier and plan filters above do not apply to it). */
(function () {
  "use strict";
  var atRiskDomain = document.getElementById("at-risk-domain");
  if (atRiskDomain) {
    atRiskDomain.addEventListener("change", function () {
      var wanted = atRiskDomain.value;
      var shown = 0;
      document.querySelectorAll("#at-risk-table tbody tr").forEach(function (row) {
        var keep = !wanted || row.getAttribute("data-domain") === wanted;
        row.hidden = !keep;
        if (keep) { shown += 1; }
      });
      document.getElementById("at-risk-count").textContent = wanted ? shown + " of the rows shown are " + wanted : "";
    });
  }
})();
