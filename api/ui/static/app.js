// Shared by every dashboard page: calls to the /v1 API with the session cookie and the page's
// CSRF token, error messages from the API's error envelope, and the compare checkboxes kept
// across the runs table's live refresh.
"use strict";

const Descent = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function api(path, { method = "GET", json, body } = {}) {
    const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
    const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const error = new Error(data?.error?.message || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.details = data?.error?.details || {};
      throw error;
    }
    return data;
  }

  const palette = ["#2359c4", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c",
    "#5c940d", "#364fc7", "#862e9c"];

  // Epochs are whole numbers: ticks at 1, 2, 5, 10, 20, ... never 1.25.
  const epochTicks = [1, 2, 5].flatMap((m) => [1, 10, 100, 1000, 10000, 100000].map((p) => m * p)).sort((a, b) => a - b);
  const epochAxis = { label: "epoch", incrs: epochTicks };

  return { api, palette, epochAxis };
})();

// The runs table refreshes itself every 2 s while runs are live: keep what was ticked.
(() => {
  const picked = new Set();
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches?.('#runs input[name="run"]')) box.checked ? picked.add(box.value) : picked.delete(box.value);
  });
  document.addEventListener("htmx:afterSwap", () => {
    document.querySelectorAll('#runs input[name="run"]').forEach((box) => { box.checked = picked.has(box.value); });
  });
})();
