/*
 * modeltrail's charts: SVG line charts drawn from JSON embedded in the page, with no dependency,
 * so the dashboard works with no internet access.
 *
 *   <figure class="chart" data-chart="ID">
 *     <script type="application/json" id="ID">
 *       {"x_label": "step", "y_label": "loss", "series": [{"name": "v3", "points": [[0, 0.9], [1, 0.7]]}]}
 *
 * (a series may also say "dashed": true)
 *     </script>
 *   </figure>
 *
 * A y of null (NaN or an infinity in the ledger) breaks the line there. Hovering shows the values
 * at the nearest x; clicking a legend entry hides or shows its series. Each drawn series is a
 * <g class="series" data-name=".." data-points="N">, so tests and people can read what was drawn.
 */
(function () {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  var COLORS = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939"
  ];
  var WIDTH = 720;
  var HEIGHT = 300;
  var PAD = { top: 12, right: 20, bottom: 44, left: 72 };
  var MARKERS_MAX = 60; // series with at most this many points also get a dot per point

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function tag(name, className, parent, text) {
    var node = document.createElement(name);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  /* Tick values covering [lo, hi] at a step of 1, 2 or 5 times a power of ten. */
  function ticks(lo, hi, count, integers) {
    var raw = (hi - lo) / count;
    var magnitude = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var norm = raw / magnitude;
    var step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
    if (integers) { step = Math.max(1, Math.round(step)); }
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  function format(v, digits) {
    if (!isNumber(v)) { return v === null || v === undefined ? "–" : String(v); }
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) { return v.toExponential(Math.max(1, (digits || 4) - 2)); }
    return String(Number(v.toPrecision(digits || 4)));
  }

  function range(series, index) {
    var lo = Infinity;
    var hi = -Infinity;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        var v = p[index];
        if (isNumber(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
    });
    if (lo === Infinity) { return null; }
    if (lo === hi) {
      var pad = Math.abs(lo) * 0.05 || 1;
      return [lo - pad, hi + pad];
    }
    return [lo, hi];
  }

  /* The index of the point whose x is nearest to x, in points sorted by x. */
  function nearest(points, x) {
    var lo = 0;
    var hi = points.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (points[mid][0] < x) { lo = mid; } else { hi = mid; }
    }
    return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? lo : hi;
  }

  function Chart(figure, spec) {
    this.figure = figure;
    this.spec = spec;
    this.series = (spec.series || []).map(function (s, i) {
      var points = (s.points || []).filter(function (p) { return isNumber(p[0]); });
      points.sort(function (a, b) { return a[0] - b[0]; });
      return {
        name: String(s.name), points: points, color: COLORS[i % COLORS.length], dashed: !!s.dashed, hidden: false
      };
    });
    this.body = tag("div", "chart-body", figure);
    this.svg = el("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img", "aria-label": spec.y_label + " by " + spec.x_label
    }, this.body);
    this.tip = tag("div", "chart-tip", this.body);
    this.tip.hidden = true;
    this.legend = tag("ul", "chart-legend", figure);
    this.drawLegend();
    this.draw();
    figure.setAttribute("data-series", String(this.series.length));
    figure.classList.add("ready");
  }

  Chart.prototype.visible = function () {
    return this.series.filter(function (s) { return !s.hidden && s.points.length; });
  };

  Chart.prototype.drawLegend = function () {
    var chart = this;
    this.legend.textContent = "";
    this.series.forEach(function (s) {
      var item = tag("li", s.hidden ? "off" : "", chart.legend);
      var button = tag("button", "", item);
      button.type = "button";
      button.title = "show or hide " + s.name;
      var swatch = tag("span", "swatch", button);
      swatch.style.background = s.color;
      tag("span", "", button, s.name + (s.points.length ? "" : " (no points)"));
      button.addEventListener("click", function () {
        s.hidden = !s.hidden;
        item.className = s.hidden ? "off" : "";
        chart.draw();
      });
    });
  };

  Chart.prototype.draw = function () {
    var svg = this.svg;
    var spec = this.spec;
    svg.textContent = "";
    this.tip.hidden = true;
    var shown = this.visible();
    var xr = range(shown, 0);
    var yr = range(shown, 1);
    if (!xr || !yr) {
      el("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", "class": "empty" }, svg).textContent =
        "no data";
      return;
    }
    var margin = (yr[1] - yr[0]) * 0.05;
    yr = [yr[0] - margin, yr[1] + margin];
    var integers = shown.every(function (s) {
      return s.points.every(function (p) { return Math.round(p[0]) === p[0]; });
    });
    var left = PAD.left;
    var right = WIDTH - PAD.right;
    var top = PAD.top;
    var bottom = HEIGHT - PAD.bottom;
    function sx(x) { return left + (x - xr[0]) / (xr[1] - xr[0]) * (right - left); }
    function sy(y) { return bottom - (y - yr[0]) / (yr[1] - yr[0]) * (bottom - top); }
    this.sx = sx;
    this.sy = sy;
    this.xr = xr;

    var grid = el("g", { "class": "grid" }, svg);
    ticks(yr[0], yr[1], 5, false).forEach(function (v) {
      el("line", { x1: left, x2: right, y1: sy(v), y2: sy(v) }, grid);
      el("text", { x: left - 6, y: sy(v) + 4, "text-anchor": "end" }, grid).textContent = format(v, 4);
    });
    ticks(xr[0], xr[1], 6, integers).forEach(function (v) {
      el("line", { x1: sx(v), x2: sx(v), y1: bottom, y2: bottom + 4 }, grid);
      el("text", { x: sx(v), y: bottom + 17, "text-anchor": "middle" }, grid).textContent = format(v, 6);
    });
    el("rect", { x: left, y: top, width: right - left, height: bottom - top, "class": "frame" }, svg);
    el("text", { x: (left + right) / 2, y: HEIGHT - 6, "text-anchor": "middle", "class": "axis-label" }, svg)
      .textContent = spec.x_label;
    el("text", {
      x: 14, y: (top + bottom) / 2, "text-anchor": "middle", "class": "axis-label",
      transform: "rotate(-90 14 " + (top + bottom) / 2 + ")"
    }, svg).textContent = spec.y_label;

    shown.forEach(function (s) {
      var g = el("g", { "class": "series", "data-name": s.name, "data-points": String(s.points.length) }, svg);
      var d = "";
      var pen = "M";
      s.points.forEach(function (p) {
        if (!isNumber(p[1])) { pen = "M"; return; }
        d += pen + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1);
        pen = "L";
      });
      var line = el("path", { d: d, stroke: s.color, "class": "line" }, g);
      if (s.dashed) { line.setAttribute("stroke-dasharray", "6 4"); }
      if (s.points.length <= MARKERS_MAX) {
        s.points.forEach(function (p) {
          if (isNumber(p[1])) { el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: s.color, "class": "point" }, g); }
        });
      }
    });
    this.guide = el("line", { y1: top, y2: bottom, "class": "guide", visibility: "hidden" }, svg);
    this.marks = el("g", { "class": "marks" }, svg);
    var overlay = el("rect", { x: left, y: top, width: right - left, height: bottom - top, "class": "overlay" }, svg);
    var chart = this;
    overlay.addEventListener("mousemove", function (event) { chart.hover(event); });
    overlay.addEventListener("mouseleave", function () {
      chart.tip.hidden = true;
      chart.guide.setAttribute("visibility", "hidden");
      chart.marks.textContent = "";
    });
  };

  Chart.prototype.hover = function (event) {
    var box = this.svg.getBoundingClientRect();
    var px = (event.clientX - box.left) * WIDTH / box.width;
    var x = this.xr[0] + (px - PAD.left) / (WIDTH - PAD.left - PAD.right) * (this.xr[1] - this.xr[0]);
    var shown = this.visible();
    var best = null;
    shown.forEach(function (s) {
      var p = s.points[nearest(s.points, x)];
      if (best === null || Math.abs(p[0] - x) < Math.abs(best - x)) { best = p[0]; }
    });
    if (best === null) { return; }
    var sx = this.sx;
    var sy = this.sy;
    var marks = this.marks;
    marks.textContent = "";
    this.guide.setAttribute("x1", sx(best));
    this.guide.setAttribute("x2", sx(best));
    this.guide.setAttribute("visibility", "visible");
    var tip = this.tip;
    tip.textContent = "";
    tag("div", "tip-x", tip, this.spec.x_label + " " + format(best, 8));
    shown.forEach(function (s) {
      var p = s.points[nearest(s.points, best)];
      if (p[0] !== best) { return; }
      if (isNumber(p[1])) { el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 4.5, stroke: s.color, "class": "mark" }, marks); }
      var row = tag("div", "tip-row", tip);
      tag("span", "swatch", row).style.background = s.color;
      tag("span", "", row, s.name + ": " + (p[1] === null ? "NaN/∞" : format(p[1], 6)));
    });
    tip.hidden = false;
    var left = (event.clientX - box.left) + 14;
    tip.style.left = Math.min(left, box.width - tip.offsetWidth - 4) + "px";
    tip.style.top = Math.max(0, event.clientY - box.top - tip.offsetHeight - 8) + "px";
  };

  function start() {
    var figures = document.querySelectorAll("figure.chart[data-chart]");
    Array.prototype.forEach.call(figures, function (figure) {
      var source = document.getElementById(figure.getAttribute("data-chart"));
      if (!source) { return; }
      try {
        figure.chart = new Chart(figure, JSON.parse(source.textContent));
      } catch (error) {
        tag("p", "muted", figure, "This chart could not be drawn: " + error.message);
      }
    });
  }

  window.ModeltrailChart = Chart;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
