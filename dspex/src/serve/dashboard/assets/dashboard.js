// The dashboard's page: reads the server's JSON, builds the page with DOM nodes (every value
// is set as text, never parsed as HTML), sends edits and rollbacks, and reads again whenever
// the server's live stream says something changed.
"use strict";

const state = { canWrite: false };

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "hidden") node.hidden = true;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// A value as the page shows it: text as it is, anything else as JSON.
function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function table(headers, rows) {
  return el("div", { class: "table-wrap" },
    el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows)));
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    window.location.assign("/dashboard");
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// A write: the server's error message on failure.
async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.ok) return { ok: true, body: await response.json() };
  let message = `${response.status} ${response.statusText}`;
  try {
    const error = (await response.json()).error;
    if (error && error.message) message = error.message;
  } catch (_) { /* not JSON */ }
  return { ok: false, message };
}

// ---- programs and variables ----------------------------------------------------------------

function variableKey(program, name) {
  return `${program}.${name}`;
}

function historyTable(program, variable) {
  const rows = variable.history.map((entry) => {
    const current = entry.version === variable.version;
    let action = el("td", { text: current ? "current" : "" });
    if (!current && state.canWrite && !variable.readonly) {
      const button = el("button", {
        type: "button", class: "secondary rollback", "data-version": String(entry.version),
        "aria-label": `Roll ${variable.name} back to version ${entry.version}`,
        text: "Roll back",
      });
      button.addEventListener("click", () => rollback(program, variable.name, entry.version));
      action = el("td", {}, button);
    }
    return el("tr", { "data-version": String(entry.version) },
      el("td", { text: String(entry.version) }),
      el("td", { class: "mono", text: shown(entry.value) }),
      el("td", { text: entry.source }),
      el("td", { text: entry.at }),
      el("td", { class: "mono", text: Object.keys(entry.metadata || {}).length ? JSON.stringify(entry.metadata) : "" }),
      action);
  });
  return table(["version", "value", "source", "at", "metadata", ""], rows);
}

function variableCard(program, variable) {
  const key = variableKey(program, variable.name);
  const inputId = `edit-${program}-${variable.name}`;
  const errorId = `error-${program}-${variable.name}`;
  const card = el("article", { class: "variable", "data-program": program, "data-var": variable.name },
    el("h4", {}, el("code", { text: variable.name }), " ",
      el("span", { class: "meta", text: `${variable.type}${variable.readonly ? " · read-only" : ""}` })),
    el("output", { class: "value", "aria-label": `value of ${variable.name}`, text: shown(variable.value) }),
    el("p", { class: "meta" },
      "version ", el("span", { class: "version", text: String(variable.version) }),
      Object.keys(variable.constraints).length ? ` · constraints ${JSON.stringify(variable.constraints)}` : ""));
  if (state.canWrite && !variable.readonly) {
    const input = el("input", { type: "text", id: inputId, name: "text", "aria-describedby": errorId, autocomplete: "off" });
    input.value = shown(variable.value);
    input.defaultValue = input.value;
    const form = el("form", { class: "edit", "data-key": key },
      el("label", { for: inputId, text: `New value of ${variable.name}` }),
      input,
      el("button", { type: "submit", text: "Save" }),
      el("p", { class: "field-error", id: errorId, role: "alert" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      edit(program, variable, input, form.querySelector(".field-error"));
    });
    card.append(form);
  }
  card.append(el("details", { class: "history" },
    el("summary", { text: `History (${variable.history.length})` }),
    historyTable(program, variable)));
  return card;
}

async function edit(program, variable, input, errorNode) {
  errorNode.textContent = "";
  const result = await send("PUT", `/dashboard/api/programs/${program}/variables/${variable.name}`,
    { text: input.value, expected_version: variable.version });
  if (!result.ok) {
    errorNode.textContent = result.message;
    input.setAttribute("aria-invalid", "true");
    return;
  }
  input.removeAttribute("aria-invalid");
  input.dataset.saved = "true";
  await loadOverview();
}

async function rollback(program, name, version) {
  const result = await send("POST", `/dashboard/api/programs/${program}/variables/${name}/rollback`, { version });
  const errorNode = document.getElementById(`error-${program}-${name}`);
  const input = document.getElementById(`edit-${program}-${name}`);
  if (errorNode) errorNode.textContent = result.ok ? "" : result.message;
  // After a rollback the field shows the value rolled back to.
  if (result.ok && input) input.dataset.saved = "true";
  await loadOverview();
}

function programSection(program) {
  const steps = program.steps.map((step) => el("tr", {},
    el("td", {}, el("code", { text: step.name })),
    el("td", { text: `${step.kind} ${step.module}` }),
    el("td", { class: "mono", text: step.signature })));
  return el("div", { class: "program", "data-program": program.name },
    el("h3", {}, el("code", { text: program.name }), " ", el("span", { class: "meta", text: program.program })),
    el("p", {}, "Signature: ", el("code", { class: "signature", text: program.signature })),
    el("h4", { text: "Steps" }),
    table(["step", "module", "signature"], steps),
    el("h4", { text: "Variables" }),
    program.variables.length
      ? el("div", { class: "variables" }, program.variables.map((v) => variableCard(program.name, v)))
      : el("p", { class: "meta", text: "No variables." }));
}

// Keeps what the user is typing (and the error shown) across a re-render.
function typedInputs() {
  const kept = new Map();
  for (const form of document.querySelectorAll("form.edit")) {
    const input = form.querySelector("input");
    const error = form.querySelector(".field-error");
    const dirty = input.value !== input.defaultValue && input.dataset.saved !== "true";
    kept.set(form.dataset.key, {
      value: dirty ? input.value : null,
      error: error.textContent,
      focused: document.activeElement === input,
    });
  }
  return kept;
}

function restoreInputs(kept) {
  for (const form of document.querySelectorAll("form.edit")) {
    const before = kept.get(form.dataset.key);
    if (!before) continue;
    const input = form.querySelector("input");
    if (before.value !== null) input.value = before.value;
    form.querySelector(".field-error").textContent = before.error;
    if (before.focused) input.focus();
  }
}

async function loadOverview() {
  const overview = await getJson("/dashboard/api/overview");
  state.canWrite = overview.can_write;
  document.getElementById("role").textContent = overview.can_write ? "admin: can edit" : "read only";
  document.getElementById("admin-login").hidden = overview.can_write;
  const kept = typedInputs();
  const list = document.getElementById("program-list");
  list.replaceChildren(...overview.programs.map(programSection));
  restoreInputs(kept);
}

// ---- runs ----------------------------------------------------------------------------------

function stepRows(trace) {
  return trace.steps.map((step) => {
    const calls = step.lm_calls.map((call) =>
      `${call.model}: ${call.prompt_tokens ?? "?"} in, ${call.completion_tokens ?? "?"} out`);
    return el("tr", {},
      el("td", {}, el("code", { text: step.step })),
      el("td", { text: `${step.runner.kind} ${step.runner.type}` }),
      el("td", { class: "mono params", text: JSON.stringify(step.params) }),
      el("td", { text: calls.join("; ") || "none" }),
      el("td", { text: `${(step.duration * 1000).toFixed(1)} ms` }));
  });
}

function runItem(run) {
  const failed = run.error !== null;
  const tokens = failed ? 0 : run.trace.steps.flatMap((s) => s.lm_calls)
    .reduce((sum, c) => sum + (c.prompt_tokens || 0) + (c.completion_tokens || 0), 0);
  const summary = `#${run.number} ${run.program} · ${run.at} · ${(run.duration * 1000).toFixed(1)} ms · `
    + (failed ? `failed (${run.error.kind})` : `ok · ${tokens} tokens`);
  const body = [
    el("p", {}, "Inputs: ", el("code", { text: JSON.stringify(run.inputs) })),
  ];
  if (failed) {
    body.push(el("p", { class: "error run-error", text: run.error.message }));
  } else {
    body.push(el("p", {}, "Outputs: ", el("code", { class: "outputs", text: JSON.stringify(run.outputs) })));
    body.push(table(["step", "module", "parameters used", "LM calls (tokens)", "latency"], stepRows(run.trace)));
  }
  return el("details", { class: `run${failed ? " run-failed" : ""}`, "data-number": String(run.number) },
    el("summary", { text: summary }), ...body);
}

async function loadRuns() {
  const runs = await getJson("/dashboard/api/runs");
  const open = new Set([...document.querySelectorAll("details.run[open]")].map((d) => d.dataset.number));
  const list = document.getElementById("run-list");
  if (!runs.length) {
    list.replaceChildren(el("p", { class: "meta", text: "No runs yet." }));
    return;
  }
  const items = runs.map(runItem);
  items.forEach((item, i) => { if (open.has(item.dataset.number) || i === 0) item.open = true; });
  list.replaceChildren(...items);
}

// ---- studies -------------------------------------------------------------------------------

// An SVG drawn by the server, parsed as XML (scripts in it would not run) and placed inline.
function svgNode(text, label) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (root.nodeName !== "svg") return el("p", { class: "error", text: `${label}: the plot could not be read` });
  if (!root.getAttribute("viewBox")) {
    root.setAttribute("viewBox", `0 0 ${root.getAttribute("width")} ${root.getAttribute("height")}`);
  }
  root.setAttribute("role", "img");
  root.setAttribute("aria-label", label);
  return document.importNode(root, true);
}

function studySection(study) {
  if (study.error) {
    return el("div", { class: "study" }, el("h3", { text: study.name }), el("p", { class: "error", text: study.error }));
  }
  const best = study.trials.find((t) => t.index === study.best);
  const rows = study.trials.map((t) => el("tr", { class: t.index === study.best ? "best" : "" },
    el("td", { text: String(t.index) }),
    el("td", { text: t.state }),
    el("td", { text: t.state === "finished" ? t.score.toFixed(4) : "" }),
    el("td", { class: "mono", text: JSON.stringify(t.assignment) }),
    el("td", { text: `${t.examples} (${t.errors} failed)` }),
    el("td", { text: `${t.duration.toFixed(2)} s` })));
  const plots = [];
  if (study.plots.error) {
    plots.push(el("p", { class: "error", text: study.plots.error }));
  } else {
    plots.push(el("figure", { class: "plot score-plot" }, svgNode(study.plots.score, `score per trial of ${study.name}`),
      el("figcaption", { text: "Score per trial (points) and best so far (line)" })));
    for (const v of study.plots.variables) {
      plots.push(el("figure", { class: "plot variable-plot", "data-var": v.name }, svgNode(v.svg, `${v.name} against the score`),
        el("figcaption", { text: `${v.name} against the score` })));
    }
  }
  return el("div", { class: "study", "data-study": study.name },
    el("h3", {}, el("code", { text: study.name })),
    el("p", { class: "meta", text: `${study.where} · ${study.direction} · ${study.trials.length} trials` }),
    el("p", { class: "best-trial", text: best ? `Best so far: trial ${best.index}, score ${best.score.toFixed(4)}, ${JSON.stringify(best.assignment)}` : "No finished trial yet." }),
    el("div", { class: "plots" }, plots),
    el("details", { class: "trials" }, el("summary", { text: "Trials" }),
      table(["trial", "state", "score", "assignment", "examples", "time"], rows)));
}

async function loadStudies() {
  const studies = await getJson("/dashboard/api/studies");
  const list = document.getElementById("study-list");
  const open = document.querySelector("details.trials[open]") !== null;
  if (!studies.length) {
    list.replaceChildren(el("p", { class: "meta", text: "No studies (Server::builder().study(name, study) adds one)." }));
    return;
  }
  list.replaceChildren(...studies.map(studySection));
  if (open) document.querySelectorAll("details.trials").forEach((d) => { d.open = true; });
}

// ---- live ----------------------------------------------------------------------------------

function report(error) {
  document.getElementById("live").textContent = `error: ${error.message}`;
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => { live.textContent = "live"; });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; });
  source.addEventListener("variables", () => loadOverview().catch(report));
  source.addEventListener("runs", () => loadRuns().catch(report));
  source.addEventListener("studies", () => loadStudies().catch(report));
}

document.addEventListener("DOMContentLoaded", () => {
  listen();
  Promise.all([loadOverview(), loadRuns(), loadStudies()]).catch(report);
});
