// The sweep page: one small scatter per searched parameter (the metric's best value of each
// trial against the parameter's value), drawn from the board's data-charts and redrawn each
// time htmx swaps in a fresh board (every 2 s while the sweep runs). A numeric parameter whose
// values span two decades or more gets a log axis; lists and text are evenly spaced ticks.
"use strict";

(() => {
  const root = document.getElementById("sweep");
  if (!root) return;
  const holder = document.getElementById("sweep-charts");
  const metric = document.querySelector('[data-testid="sweep-metric"]').textContent;
  const charts = new Map(); // parameter name -> {chart, el, scale}

  // 0.0001 -> "1e-4", 0.003 -> "0.003", 128 -> "128": a tick label stays short.
  const short = (v) => (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)
    ? v.toExponential(0).replace("e+", "e")
    : String(Number(v.toPrecision(3))));

  function xScale(spec) {
    if (spec.scale === "category") {
      const n = spec.ticks.length;
      return { time: false, range: () => [-0.5, Math.max(n - 0.5, 0.5)] };
    }
    // Room either side, so no point sits on the frame.
    if (spec.scale === "log") return { time: false, distr: 3, range: () => [spec.low / 2, spec.high * 2] };
    const pad = (spec.high - spec.low) * 0.08 || Math.abs(spec.low) * 0.1 || 1;
    return { time: false, range: () => [spec.low - pad, spec.high + pad] };
  }

  function options(spec, el) {
    const xAxis = { size: 36, values: (_, splits) => splits.map((v) => (v == null ? "" : short(v))) };
    if (spec.scale === "category") {
      xAxis.splits = () => spec.ticks.map((_, i) => i);
      xAxis.values = (_, splits) => splits.map((v) => spec.ticks[v] ?? "");
    }
    const yRange = (_, min, max) => {
      const pad = (max - min) * 0.1 || Math.abs(max) * 0.05 || 1;
      return [min - pad, max + pad];
    };
    return {
      width: Math.max(el.clientWidth, 200),
      height: 200,
      scales: { x: xScale(spec), y: { range: yRange } },
      axes: [xAxis, { label: metric, labelFont: "12px system-ui", size: 60 }],
      cursor: { drag: { x: false, y: false } },
      legend: { show: false },
      series: [{ label: spec.name },
        { label: metric, stroke: Descent.palette[0], paths: () => null, points: { show: true, size: 7, fill: Descent.palette[0] } }],
    };
  }

  const columns = (spec) => [spec.points.map((p) => p[0]), spec.points.map((p) => p[1])];

  function drawOne(spec) {
    let entry = charts.get(spec.name);
    // A category axis's ticks are baked into its options: new ticks, a new chart.
    const ticks = JSON.stringify(spec.ticks);
    if (entry && (entry.scale !== spec.scale || entry.ticks !== ticks)) {
      entry.chart.destroy();
      entry.figure.remove();
      charts.delete(spec.name);
      entry = undefined;
    }
    if (!entry) {
      const figure = document.createElement("figure");
      figure.dataset.testid = "sweep-chart";
      figure.dataset.param = spec.name;
      figure.dataset.scale = spec.scale;
      const caption = document.createElement("figcaption");
      caption.textContent = spec.name;
      const note = document.createElement("small");
      note.className = "muted chart-note";
      note.textContent = spec.scale === "log" ? " (log scale)" : "";
      caption.append(note);
      const el = document.createElement("div");
      figure.append(caption, el);
      holder.append(figure);
      const chart = new uPlot(options(spec, el), columns(spec), el);
      new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height: 200 })).observe(el);
      entry = { chart, figure, scale: spec.scale, ticks };
      charts.set(spec.name, entry);
    } else {
      entry.chart.setData(columns(spec));
    }
    entry.figure.dataset.points = String(spec.points.length);
    entry.figure.dataset.series = "1";
  }

  function draw() {
    const board = document.getElementById("sweep-board");
    const specs = JSON.parse(board.dataset.charts || "[]");
    specs.forEach(drawOne);
    // In the parameters' order, whichever chart was made last.
    specs.forEach((spec) => holder.append(charts.get(spec.name).figure));
    holder.dataset.charts = String(specs.length);
  }

  document.addEventListener("htmx:afterSettle", draw);
  draw();
})();
