// Admin → Integrations: one card per vendor, live. Plain DOM, no build step.
// Every value from the server is set with textContent, never parsed as HTML.
"use strict";

const state = { vendors: [], integrations: [], open: null, timer: null, history: {} };
const tokenKey = "continuum-admin-token";
// Mounted in Continuum: its session cookie signs the calls in; standalone: a bearer token.
const sessionAuth = () => document.body.dataset.auth === "session";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function call(method, path, body) {
  const headers = sessionAuth() ? {} : { "Authorization": "Bearer " + (sessionStorage.getItem(tokenKey) || "") };
  if (method !== "GET") headers["X-Requested-With"] = "continuum-admin";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    showLogin(sessionAuth() ? "Sign in to Continuum as an administrator, then reload this page." : "Sign in with the admin token.");
    throw new Error("unauthorized");
  }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) { const error = new Error(data.detail || data.title); error.problem = data; throw error; }
  return data;
}

function showLogin(message) {
  clearInterval(state.timer);
  document.getElementById("board").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  const token = document.getElementById("token");
  if (token) token.focus();
}

async function start() {
  document.getElementById("login").hidden = true;
  try {
    state.vendors = await call("GET", "api/vendors");
  } catch (error) { return; }
  document.getElementById("board").hidden = false;
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, 2000);
}

async function refresh() {
  try {
    state.integrations = await call("GET", "api/integrations");
  } catch (error) {
    document.getElementById("refreshed").textContent = "Could not refresh: " + error.message;
    return;
  }
  render();
  document.getElementById("refreshed").textContent = "Updated " + new Date().toLocaleTimeString();
  refreshHistory();
}

// The last hour per integration (rate and lag per minute), fetched every 15 s at most.
async function refreshHistory() {
  const now = Date.now();
  for (const i of state.integrations) {
    const known = state.history[i.name];
    if (known && now - known.fetched < 15000) continue;
    try {
      const data = await call("GET", `api/integrations/${encodeURIComponent(i.name)}/history`);
      state.history[i.name] = { ...data, fetched: now };
    } catch (error) { continue; }
  }
  render();
}

// A small line chart as SVG: one polyline per run of minutes that had a report.
function sparkline(id, label, values, unit) {
  const width = 240, height = 40, known = values.filter(v => v !== null && v !== undefined);
  const top = Math.max(1, ...known);
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  const last = known.length ? known[known.length - 1] : null;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("id", id);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", last === null ? `${label}: no reports in the last hour`
    : `${label}: now ${last}${unit}, at most ${top}${unit} in the last hour`);
  let run = [];
  const flush = () => {
    if (run.length) {
      const line = document.createElementNS(svgNS, "polyline");
      line.setAttribute("points", run.join(" "));
      svg.append(line);
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null || v === undefined) { flush(); return; }
    const x = (i / Math.max(1, values.length - 1)) * width;
    run.push(`${x.toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  });
  flush();
  return el("figure", { class: "chart" }, svg, el("figcaption", {}, label + (last === null ? "" : ` — now ${last}${unit}`)));
}

function ago(seconds) {
  if (!seconds) return "never";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  return s < 120 ? Math.round(s) + " s ago" : Math.round(s / 60) + " min ago";
}

function render() {
  // Rebuilt on every refresh: keep the keyboard focus where it was.
  const focused = document.activeElement && document.activeElement.id;
  for (const category of ["logging", "monitoring", "alerting"]) {
    const box = document.getElementById("cards-" + category);
    const cards = state.vendors.filter(v => v.category === category).map(card);
    box.replaceChildren(...cards);
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function card(vendor) {
  const mine = state.integrations.filter(i => i.vendor === vendor.vendor);
  const badge = mine.some(i => i.badge === "Failing") ? "Failing" : mine.some(i => i.badge === "Not running")
    ? "Not running" : mine.length ? "Connected" : "Not connected";
  const node = el("article", { class: "card", id: "card-" + vendor.vendor, "aria-labelledby": "title-" + vendor.vendor },
    el("h3", { id: "title-" + vendor.vendor }, vendor.title,
      el("span", { class: "badge " + badge.toLowerCase().replace(" ", "-"), "data-badge": badge }, badge)),
    mine.map(integration),
    el("div", { class: "actions" },
      el("button", { type: "button", id: "connect-" + vendor.vendor, class: mine.length ? "secondary" : "",
                     onclick: () => openConnect(vendor) },
        mine.length ? "Connect another" : "Connect")));
  return node;
}

function integration(i) {
  const s = i.status || {};
  const box = el("div", { class: "integration", "data-name": i.name },
    el("strong", {}, i.name),
    el("dl", {},
      el("dt", {}, "State"), el("dd", { "data-field": "state" }, s.state || "starting"),
      el("dt", {}, "Delivered"), el("dd", { "data-field": "delivered" }, s.delivered ?? 0),
      el("dt", {}, "Retried"), el("dd", { "data-field": "retried" }, s.retried ?? 0),
      el("dt", {}, "Dead-lettered"), el("dd", { "data-field": "dead_lettered" }, s.dead_lettered ?? 0),
      el("dt", {}, "Waiting in DLQ"), el("dd", { "data-field": "waiting" }, s.dead_letters_waiting ?? "?"),
      el("dt", {}, "Lag"), el("dd", { "data-field": "lag" }, s.lag ?? "?"),
      el("dt", {}, "Last delivery"), el("dd", {}, ago(s.last_delivery)),
      el("dt", {}, "Errors"), el("dd", { "data-field": "errors", title: "failures over every run of its connectors" },
        s.errors ?? 0),
      el("dt", {}, "Last error"), el("dd", { "data-field": "last_error", class: s.last_error ? "error" : "" },
        s.last_error ? `${s.last_error} (${ago(s.last_error_at)})` : "none")),
    state.history[i.name] ? el("div", { class: "charts" },
      sparkline("rate-" + i.name, "Delivered/s, last hour", state.history[i.name].rate, "/s"),
      sparkline("lag-" + i.name, "Lag, last hour", state.history[i.name].lag, "")) : null,
    el("p", { class: "verdict", id: "verdict-" + i.name, role: "status", "aria-live": "polite" },
      state[`verdict:${i.name}`] || ""),
    state.open === i.name ? letters(i.name) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", id: "test-" + i.name, onclick: () => testConnection(i.name) }, "Test Connection"),
      el("button", { type: "button", id: "edit-" + i.name, class: "secondary", onclick: () => openEdit(i) }, "Edit"),
      el("button", { type: "button", id: "letters-" + i.name, class: "secondary", onclick: () => toggleLetters(i.name) },
        state.open === i.name ? "Hide dead letters" : "Dead letters"),
      el("button", { type: "button", id: "disconnect-" + i.name, class: "secondary", onclick: () => disconnect(i.name) },
        "Disconnect")));
  return box;
}

async function testConnection(name) {
  state[`verdict:${name}`] = "Testing…";
  render();
  try {
    const verdict = await call("POST", `api/integrations/${encodeURIComponent(name)}/test`);
    state[`verdict:${name}`] = (verdict.ok ? "OK: " : "Failed: ") + verdict.verdict
      + " (" + new Date(verdict.checked_at * 1000).toLocaleTimeString() + ")";
  } catch (error) {
    state[`verdict:${name}`] = "Failed: " + error.message;
  }
  render();
}

async function disconnect(name) {
  if (!confirm(`Disconnect ${name}? Its position and dead letters are kept.`)) return;
  await call("DELETE", `api/integrations/${encodeURIComponent(name)}`);
  await refresh();
}

async function toggleLetters(name) {
  if (state.open === name) { state.open = null; render(); return; }
  state.open = name;
  state.letters = null;
  render();
  state.letters = await call("GET", `api/integrations/${encodeURIComponent(name)}/dead-letters`);
  render();
}

function letters(name) {
  const data = state.letters;
  if (!data) return el("p", {}, "Loading dead letters…");
  if (!data.groups.length) return el("p", { class: "letters-empty" }, "No dead letters.");
  return el("div", { class: "dead-letters" },
    el("ul", { class: "letters" }, data.groups.map(g =>
      el("li", {}, `${g.waiting} waiting of ${g.count}: ${g.reason} (${Object.keys(g.event_types).join(", ")})`))),
    el("button", { type: "button", id: "redrive-" + name, disabled: data.waiting === 0, onclick: () => redrive(name) },
      `Redrive ${data.waiting} waiting`));
}

async function redrive(name) {
  const job = await call("POST", `api/integrations/${encodeURIComponent(name)}/dead-letters/redrive`, {});
  state[`verdict:${name}`] = "Redriving…";
  render();
  let current = job;
  while (current.state === "running") {
    await new Promise(resolve => setTimeout(resolve, 500));
    current = await call("GET", `api/jobs/${job.id}`);
  }
  const r = current.result || {};
  state[`verdict:${name}`] = current.state === "done"
    ? `Redrive: ${r.delivered} delivered, ${r.dead_lettered} dead-lettered again` : `Redrive ${current.state}: ${current.error || ""}`;
  state.letters = await call("GET", `api/integrations/${encodeURIComponent(name)}/dead-letters`);
  render();
}

function openEdit(integration) {
  const vendor = state.vendors.find(v => v.vendor === integration.vendor);
  if (vendor) openConnect(vendor, integration);
}

// One dialog for both: connecting a new integration, and editing one (`existing`: its
// description from the API; secrets are never sent back, so a blank secret keeps the stored one).
function openConnect(vendor, existing) {
  const dialog = document.getElementById("connect-dialog");
  const form = document.getElementById("connect-form");
  form.reset();
  form.dataset.vendor = vendor.vendor;
  form.dataset.editing = existing ? existing.name : "";
  document.getElementById("connect-title").textContent = (existing ? "Edit " + existing.name : "Connect " + vendor.title);
  document.getElementById("connect-submit").textContent = existing ? "Save" : "Connect";
  document.getElementById("connect-error").textContent = "";
  const suggested = vendor.vendor + "-" + (state.integrations.filter(i => i.vendor === vendor.vendor).length + 1);
  const current = field => existing
    ? (field.name === "name" ? existing.name : existing.options[field.name] ?? field.default) : field.default;
  const fields = [{ name: "name", label: "Integration name", required: true, secret: false, type: "string",
                    default: suggested }, ...vendor.fields].map(field => ({ ...field, default: current(field),
    required: field.required && !(existing && field.secret && existing.secrets[field.name]) }));
  document.getElementById("connect-fields").replaceChildren(...fields.map(field => {
    const id = "field-" + field.name;
    const input = field.choices
      ? el("select", { id, name: field.name }, field.choices.map(c => el("option", { value: c, selected: c === field.default }, c)))
      : el("input", { id, name: field.name, required: field.required,
                      type: field.secret ? "password" : field.type === "number" ? "number" : field.type === "boolean" ? "checkbox" : "text",
                      autocomplete: field.secret ? "new-password" : "off",
                      value: field.type === "boolean" ? undefined : (field.default ?? undefined),
                      checked: field.type === "boolean" && field.default === true,
                      readonly: existing && field.name === "name",
                      placeholder: existing && field.secret && existing.secrets[field.name] ? "stored: leave blank to keep" : undefined,
                      "aria-describedby": id + "-error" });
    return el("div", { class: "field" },
      el("label", { for: id }, field.label + (field.required ? " (required)" : "")),
      input,
      el("p", { class: "field-error", id: id + "-error" }));
  }));
  if (existing) {
    form.elements.allow_private_network.checked = existing.allow_private_network;
    form.elements.allow_insecure_http.checked = existing.allow_insecure_http;
    form.elements.start_from.value = existing.start_from;
  }
  dialog.showModal();
  const first = document.querySelector("#connect-fields input:not([readonly])");
  if (first) first.focus();
}

async function submitConnect(event) {
  event.preventDefault();
  const form = event.target;
  const vendor = state.vendors.find(v => v.vendor === form.dataset.vendor);
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  document.getElementById("connect-error").textContent = "";
  let missing = false;
  for (const input of form.querySelectorAll("input[required]")) {
    if (!input.value.trim()) {
      document.getElementById(input.id + "-error").textContent = "Required.";
      missing = true;
    }
  }
  if (missing) return;
  const body = { name: form.elements.name.value.trim(), vendor: vendor.vendor, options: {}, secrets: {},
                 allow_private_network: form.elements.allow_private_network.checked,
                 allow_insecure_http: form.elements.allow_insecure_http.checked,
                 start_from: form.elements.start_from.value };
  for (const field of vendor.fields) {
    const input = form.elements[field.name];
    if (field.secret) { if (input.value) body.secrets[field.name] = input.value; continue; }
    if (field.type === "boolean") { if (input.checked !== (field.default === true)) body.options[field.name] = input.checked; continue; }
    if (input.value === "" || input.value === String(field.default ?? "")) continue;
    body.options[field.name] = field.type === "number" ? Number(input.value) : input.value;
  }
  const editing = form.dataset.editing;
  try {
    if (editing) {
      await call("PUT", `api/integrations/${encodeURIComponent(editing)}`, body);
    } else {
      try {
        await call("POST", "api/integrations", body);
      } catch (error) {
        if (!error.problem || error.problem.status !== 409) throw error;
        // The name is taken: replacing it is the operator's decision, never the form's.
        if (!confirm(`An integration named ${body.name} is already connected. Replace it?`)) {
          document.getElementById("field-name-error").textContent = "Already connected: choose another name.";
          return;
        }
        await call("POST", "api/integrations", { ...body, replace: true });
      }
    }
  } catch (error) {
    const problem = error.problem || {};
    document.getElementById("connect-error").textContent = problem.title ? problem.title + (problem.detail ? ": " + problem.detail : "") : error.message;
    for (const e of problem.errors || []) {
      const key = e.field.split(".").pop();
      const target = document.getElementById("field-" + key + "-error") || document.getElementById("connect-error");
      target.textContent = (target.textContent ? target.textContent + " " : "") + e.message;
    }
    return;
  }
  document.getElementById("connect-dialog").close();
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const login = document.getElementById("login-form");
  if (login) login.addEventListener("submit", event => {
    event.preventDefault();
    sessionStorage.setItem(tokenKey, document.getElementById("token").value);
    start();
  });
  document.getElementById("connect-form").addEventListener("submit", submitConnect);
  document.getElementById("connect-cancel").addEventListener("click", () => document.getElementById("connect-dialog").close());
  if (sessionAuth() || sessionStorage.getItem(tokenKey)) start(); else showLogin("");
});
