// The run page: curves from the history, then live from the run's Server-Sent Events stream
// (one `epoch` event per epoch, a `status` event on every change). Long runs are thinned to at
// most MAX_POINTS points (the page's max_points, 2,000 by default), on the server at first and
// here as epochs arrive, so 100,000 epochs draw like 2,000.
"use strict";

(() => {
  const root = document.getElementById("run");
  if (!root) return;
  const runId = root.dataset.runId;
  const epochs = Number(root.dataset.epochs) || 0;
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const MAX_POINTS = Number(root.dataset.maxPoints) || 2000;
  const colors = { train: "#9aa5b1", val: "#2359c4", lr: "#d9480f", best: "#2b8a3e" };

  const series = { epoch: [], train_loss: [], val_loss: [], train_metric: [], val_metric: [], lr: [], seconds: [] };
  let last = 0;
  // The best epoch is the server's (runs.best_epoch: lowest validation loss, else training
  // loss), rendered into the page; an epoch that arrives after the render replaces it only
  // when it beats it. The thinned history always holds the best epoch's row.
  const rendered = Number(root.dataset.epoch) || 0;
  let best = root.dataset.bestEpoch == null ? null
    : { epoch: Number(root.dataset.bestEpoch), loss: Number(root.dataset.bestLoss), entry: null };
  let metricKind = null; // "accuracy" | "r2" | null
  const charts = {};

  const metricOf = (entry, split) => {
    if (entry[`${split}_accuracy`] != null) return ["accuracy", entry[`${split}_accuracy`]];
    const r2 = entry.metrics?.[`${split}_r2`];
    return r2 != null ? ["r2", r2] : [null, null];
  };

  function add(entry) {
    if (entry.epoch <= last) return false; // a replayed epoch: seen once only
    last = entry.epoch;
    series.epoch.push(entry.epoch);
    series.train_loss.push(entry.train_loss);
    series.val_loss.push(entry.val_loss);
    const [kind, trainMetric] = metricOf(entry, "train");
    const [valKind, valMetric] = metricOf(entry, "val");
    metricKind = metricKind || kind || valKind;
    series.train_metric.push(trainMetric);
    series.val_metric.push(valMetric);
    series.lr.push(entry.learning_rate);
    series.seconds.push(entry.seconds);
    const loss = entry.val_loss ?? entry.train_loss;
    if (entry.epoch > rendered && (best === null || loss < best.loss)) best = { epoch: entry.epoch, loss, entry };
    if (series.epoch.length > 2 * MAX_POINTS) thin();
    return true;
  }

  function thin() {
    // Every other point, always keeping the newest and the best epoch's.
    const keep = series.epoch.map((e, i) => i % 2 === 0 || i === series.epoch.length - 1 || e === best?.epoch);
    for (const key of Object.keys(series)) series[key] = series[key].filter((_, i) => keep[i]);
  }

  function bestLine(u) {
    if (best === null) return;
    const x = u.valToPos(best.epoch, "x", true);
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = colors.best;
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  // Tick labels with enough digits to tell them apart (0.0015 and 0.002, not 0.002 twice).
  const ticks = (_, splits) => splits.map((v) => (v == null ? "" : String(Number(v.toPrecision(3)))));

  function makeChart(el, lines, { marker = false, yLabel = "" } = {}) {
    const opts = {
      width: Math.max(el.clientWidth, 200),
      height: 220,
      scales: { x: { time: false } },
      axes: [Descent.epochAxis, { label: yLabel, size: 60, values: ticks }],
      series: [{ label: "epoch" }, ...lines.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: true }))],
      hooks: marker ? { draw: [bestLine] } : {},
      legend: { live: false },
    };
    const chart = new uPlot(opts, [[], ...lines.map(() => [])], el);
    new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height: 220 })).observe(el);
    return chart;
  }

  function draw() {
    const el = (id) => document.getElementById(id);
    if (!charts.loss) {
      charts.loss = makeChart(el("loss-chart"), [["train loss", colors.train], ["validation loss", colors.val]], { marker: true });
      charts.lr = makeChart(el("lr-chart"), [["learning rate", colors.lr]]);
    }
    if (!charts.metric && metricKind) {
      const name = metricKind === "accuracy" ? "accuracy" : "R²";
      el("metric-title").textContent = metricKind === "accuracy" ? "Accuracy" : "R²";
      charts.metric = makeChart(el("metric-chart"), [[`train ${name}`, colors.train], [`validation ${name}`, colors.val]]);
    }
    charts.loss.setData([series.epoch, series.train_loss, series.val_loss]);
    charts.lr.setData([series.epoch, series.lr]);
    charts.metric?.setData([series.epoch, series.train_metric, series.val_metric]);
    el("loss-chart").dataset.points = String(series.epoch.length);
    if (best) {
      el("loss-chart").dataset.bestEpoch = String(best.epoch);
      el("loss-chart").dataset.bestOnPoint = String(series.epoch.includes(best.epoch));
    }
  }

  function showProgress() {
    document.getElementById("epoch-counter").textContent = String(last);
    if (epochs) document.getElementById("run-progress").value = Math.min(last / epochs, 1);
    const recent = series.seconds.slice(-10);
    if (recent.length && epochs && !FINAL.has(root.dataset.status)) {
      const perEpoch = recent.reduce((a, b) => a + b, 0) / recent.length;
      document.getElementById("run-eta").textContent = `${Math.round(perEpoch * Math.max(epochs - last, 0))} s`;
    }
    // Only a best epoch newer than the page's render is written; the server's text stands.
    if (best?.entry) document.getElementById("run-best").textContent = `${valMetric(best.entry)} @ epoch ${best.epoch}`;
  }

  // As the server's val_metric filter: validation accuracy or R², else a loss.
  const figure = (v) => String(Number(Number(v).toPrecision(4)));
  function valMetric(entry) {
    if (entry.val_accuracy != null) return `acc ${figure(entry.val_accuracy)}`;
    if (entry.metrics?.val_r2 != null) return `R² ${figure(entry.metrics.val_r2)}`;
    return entry.val_loss != null ? `loss ${figure(entry.val_loss)}` : `train loss ${figure(entry.train_loss)}`;
  }

  function showStatus(status) {
    root.dataset.status = status;
    const pill = document.getElementById("run-status");
    pill.textContent = status;
    pill.className = `status s-${status}`;
    document.getElementById("cancel-run").hidden = FINAL.has(status) || status === "cancelling";
  }

  async function showOutcome() {
    // The final state (model, confusion matrix, error) as the server renders it.
    const html = await (await fetch(location.href, { credentials: "same-origin" })).text();
    const fresh = new DOMParser().parseFromString(html, "text/html");
    for (const id of ["outcome", "run-error", "run-facts"]) {
      const next = fresh.getElementById(id);
      if (next) document.getElementById(id).replaceWith(next);
    }
    drawPredictedVsActual();
  }

  function follow() {
    const stream = new EventSource(`/v1/runs/${runId}/events?after_epoch=${last}`);
    stream.addEventListener("epoch", (event) => {
      if (add(JSON.parse(event.data))) { draw(); showProgress(); }
    });
    stream.addEventListener("status", (event) => {
      const { status } = JSON.parse(event.data);
      showStatus(status);
      if (FINAL.has(status)) { stream.close(); showProgress(); showOutcome(); }
    });
  }

  function drawPredictedVsActual() {
    const el = document.getElementById("pva-chart");
    if (!el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    const points = JSON.parse(el.dataset.points).sort((a, b) => a[0] - b[0]);
    const xs = points.map((p) => p[0]);
    const chart = new uPlot({
      width: Math.max(el.clientWidth, 200), height: 300,
      scales: { x: { time: false } },
      axes: [{ label: "actual" }, { label: "predicted", size: 60 }],
      series: [{ label: "actual" },
        { label: "predicted", stroke: colors.val, paths: () => null, points: { show: true, size: 5, fill: colors.val } },
        { label: "ideal", stroke: colors.train, dash: [4, 4], width: 1, points: { show: false } }],
    }, [xs, points.map((p) => p[1]), xs], el);
    new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height: 300 })).observe(el);
  }

  document.getElementById("cancel-run").addEventListener("click", async (event) => {
    event.target.disabled = true;
    try {
      const answer = await Descent.api(`/v1/runs/${runId}/cancel`, { method: "POST" });
      showStatus(answer.status);
    } catch (error) {
      const box = document.getElementById("run-error");
      box.textContent = error.message;
      box.hidden = false;
      event.target.disabled = false;
    }
  });

  // The server rendered the duration once; while the run goes on it counts here (the final
  // figure comes back with the outcome).
  const clock = setInterval(() => {
    const span = document.getElementById("run-duration");
    if (!span?.dataset.started || FINAL.has(root.dataset.status)) return clearInterval(clock);
    const seconds = Math.max(0, (Date.now() - Date.parse(span.dataset.started)) / 1000);
    span.textContent = seconds < 60 ? `${seconds.toFixed(1)} s`
      : `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  }, 1000);

  (async () => {
    const history = await Descent.api(`/v1/runs/${runId}/history?max_points=${MAX_POINTS}`);
    history.epochs.forEach(add);
    if (!history.epochs.length && FINAL.has(root.dataset.status)) {
      // Ended before its first epoch (a failure at the start, a cancel while queued).
      document.querySelector(".charts").hidden = true;
      document.getElementById("no-epochs").hidden = false;
    }
    draw();
    showProgress();
    drawPredictedVsActual();
    if (!FINAL.has(root.dataset.status)) follow();
  })();
})();
