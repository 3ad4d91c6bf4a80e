// The dashboard's forms: upload a dataset, start a run (validated first, errors shown at the
// field), and predict with a model. Each calls the same /v1 API as any client.
"use strict";

(() => {
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

  function showError(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  // -- upload ---------------------------------------------------------------------------------
  const upload = document.getElementById("upload-form");
  upload?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(upload);
    for (const key of ["label", "name"]) if (!form.get(key)) form.delete(key);
    const button = upload.querySelector("button");
    button.disabled = true;
    try {
      const dataset = await Descent.api("/v1/datasets", { method: "POST", body: form });
      location.href = `/ui/datasets/${dataset.id}`;
    } catch (error) {
      const where = error.details?.line ? ` (line ${error.details.line})` : "";
      showError(byTestId("upload-error"), error.message + where);
      button.disabled = false;
    }
  });

  // -- new run --------------------------------------------------------------------------------
  const runForm = document.getElementById("run-form");

  function specFrom(form) {
    let spec;
    try {
      spec = JSON.parse(form.get("extra") || "{}");
    } catch (error) {
      throw Object.assign(new Error(`Other spec fields: not JSON (${error.message})`), { details: { field: "spec" } });
    }
    if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
      throw Object.assign(new Error("Other spec fields: a JSON object, like {\"seed\": 1}"), { details: { field: "spec" } });
    }
    const number = (name) => (form.get(name) === "" ? undefined : Number(form.get(name)));
    const units = String(form.get("layers")).split(",").map((u) => u.trim()).filter(Boolean);
    spec.layers = units.map((u) => ({ units: Number(u), activation: form.get("activation") }));
    spec.optimizer = { ...(spec.optimizer || {}), name: form.get("optimizer") };
    if (number("learning_rate") !== undefined) spec.optimizer.learning_rate = number("learning_rate");
    for (const name of ["epochs", "batch_size", "validation_split"]) {
      if (number(name) !== undefined) spec[name] = number(name);
    }
    return spec;
  }

  function markField(field) {
    runForm.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    if (!field) return;
    // The most specific input for a dotted path: spec.layers.0.units -> spec.layers.
    const parts = field.split(".");
    for (let n = parts.length; n > 0; n--) {
      const input = runForm.querySelector(`[data-field="${parts.slice(0, n).join(".")}"]`);
      if (input) { input.classList.add("invalid"); input.focus(); return; }
    }
  }

  runForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(runForm);
    const errorBox = byTestId("run-form-error");
    const button = byTestId("run-submit");
    button.disabled = true;
    try {
      const body = { dataset_id: form.get("dataset_id"), spec: specFrom(form) };
      if (form.get("name")) body.name = form.get("name");
      const check = await Descent.api("/v1/runs/validate", { method: "POST", json: body });
      const estimate = byTestId("run-estimate");
      estimate.textContent = `${check.n_parameters} parameters` + (check.warnings.length ? ` · ${check.warnings.join("; ")}` : "");
      estimate.hidden = false;
      const run = await Descent.api("/v1/runs", { method: "POST", json: body });
      location.href = `/ui/runs/${run.id}`;
    } catch (error) {
      showError(errorBox, error.message);
      markField(error.details?.field);
      button.disabled = false;
    }
  });

  // -- predict --------------------------------------------------------------------------------
  const predictForm = document.getElementById("predict-form");

  // RFC 4180 CSV: fields split at commas, "quoted" fields may hold commas, newlines and ""
  // (one quote); rows end at LF or CRLF. Returns the rows as arrays of strings.
  function parseCsv(text) {
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    let i = 0;
    if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte-order mark
    for (; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (quoted) throw new Error("CSV: a quoted field is never closed");
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows.filter((r) => r.length > 1 || r[0].trim() !== ""); // blank lines
  }

  // An empty field is a missing value (null: the model imputes it as in training), never 0.
  function valueOf(kind, raw) {
    const text = raw.trim();
    if (text === "") return null;
    if (kind !== "numeric") return raw;
    const number = Number(text);
    return Number.isNaN(number) ? text : number; // not a number: the API names it
  }

  async function recordsFrom(form) {
    const kinds = Object.fromEntries([...form.querySelectorAll("[data-kind]")].map((i) => [i.name, i.dataset.kind]));
    const file = form.querySelector('input[name="csv"]').files[0];
    if (file) {
      const [header, ...lines] = parseCsv(await file.text());
      if (!header) throw new Error("CSV: the file is empty");
      const names = header.map((h) => h.trim());
      return lines.map((cells, row) => {
        if (cells.length !== names.length) throw new Error(`CSV row ${row + 1}: ${cells.length} fields, the header has ${names.length}`);
        return Object.fromEntries(cells.map((v, i) => [names[i], valueOf(kinds[names[i]], v)]));
      });
    }
    const record = {};
    form.querySelectorAll("[data-kind]").forEach((input) => { record[input.name] = valueOf(input.dataset.kind, input.value); });
    return [record];
  }

  function render(answer) {
    const out = byTestId("predict-result");
    out.replaceChildren();
    answer.predictions.forEach((prediction, row) => {
      const block = document.createElement("div");
      block.className = "prediction";
      block.dataset.testid = "prediction";
      const title = document.createElement("h3");
      const files = predictForm.dataset.images ? predictForm.querySelector('input[type="file"]').files : null;
      const what = files ? files[row].name : `Row ${row + 1}`;
      title.textContent = answer.predictions.length > 1 || files ? `${what}: ${prediction}` : String(prediction);
      block.append(title);
      if (answer.probabilities) {
        const bars = document.createElement("div");
        bars.className = "bars";
        answer.classes.forEach((label, k) => {
          const p = answer.probabilities[row][k];
          const line = document.createElement("div");
          line.className = "bar-row";
          line.dataset.class = String(label);
          line.dataset.probability = String(p);
          line.innerHTML = '<span class="bar-label"></span><span class="bar-track"><span class="bar-fill"></span></span><span class="num"></span>';
          line.children[0].textContent = String(label);
          line.querySelector(".bar-fill").style.width = `${(100 * p).toFixed(1)}%`;
          line.children[2].textContent = `${(100 * p).toFixed(p >= 0.995 || p < 0.005 ? 0 : 1)} %`;
          bars.append(line);
        });
        block.append(bars);
      }
      out.append(block);
    });
  }

  predictForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errorBox = byTestId("predict-error");
    try {
      const path = `/v1/models/${predictForm.dataset.modelId}/predict`;
      // An image model takes the pictures themselves (multipart), any other JSON records.
      const answer = predictForm.dataset.images
        ? await Descent.api(path, { method: "POST", body: new FormData(predictForm) })
        : await Descent.api(path, { method: "POST", json: { records: await recordsFrom(predictForm) } });
      showError(errorBox, "");
      render(answer);
    } catch (error) {
      showError(errorBox, error.message);
    }
  });
})();
