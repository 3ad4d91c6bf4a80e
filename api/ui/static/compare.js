// Compare: every picked run's validation loss (training loss without a split) on one chart.
"use strict";

(async () => {
  const root = document.getElementById("compare");
  if (!root) return;
  const ids = root.dataset.runIds.split(",").filter(Boolean);
  const el = document.getElementById("compare-chart");
  const histories = await Promise.all(
    ids.map((id) => Descent.api(`/v1/runs/${id}/history?max_points=1000`)),
  );
  const names = [...document.querySelectorAll("[data-testid=compare-table] tbody tr a")].map((a) => a.textContent);
  const tables = histories.map((h) => [
    h.epochs.map((e) => e.epoch),
    h.epochs.map((e) => e.val_loss ?? e.train_loss),
  ]);
  const data = tables.length ? uPlot.join(tables) : [[]];
  document.querySelectorAll(".swatch").forEach((s) => { s.style.background = Descent.palette[Number(s.dataset.index)]; });
  const chart = new uPlot({
    width: Math.max(el.clientWidth, 200), height: 320,
    scales: { x: { time: false } },
    axes: [Descent.epochAxis, { label: "loss", size: 60 }],
    legend: { live: false },
    series: [{ label: "epoch" }, ...ids.map((_, i) => ({
      label: names[i] || ids[i].slice(0, 8), stroke: Descent.palette[i % Descent.palette.length], width: 2, spanGaps: true,
    }))],
  }, data, el);
  new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height: 320 })).observe(el);
  el.dataset.series = String(ids.length);
})();
