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

  async function recordsFrom(form) {
    const file = form.querySelector('input[name="csv"]').files[0];
    if (file) {
      // A plain header + rows table; numbers for the model's numeric features.
      const text = await file.text();
      if (text.includes('"')) throw new Error("quoted CSV fields are not read here: send them through the API");
      const kinds = Object.fromEntries([...form.querySelectorAll("[data-kind]")].map((i) => [i.name, i.dataset.kind]));
      const [header, ...lines] = text.split(/\r?\n/).filter((l) => l.trim());
      const names = header.split(",").map((h) => h.trim());
      const value = (name, raw) => (kinds[name] === "numeric" && raw.trim() !== "" ? Number(raw) : raw.trim());
      return lines.map((line) => Object.fromEntries(line.split(",").map((v, i) => [names[i], value(names[i], v)])));
    }
    const record = {};
    form.querySelectorAll("[data-kind]").forEach((input) => {
      record[input.name] = input.dataset.kind === "numeric" ? Number(input.value) : input.value;
    });
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
