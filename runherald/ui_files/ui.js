// runherald dashboard: vanilla JavaScript over the HTTP API. Everything a run, rule or letter says is
// written with textContent (never innerHTML): run names and labels are user input. The API token is
// never seen here: the HttpOnly session cookie authenticates fetch() and EventSource; every change
// carries the X-Runherald-UI header the API asks of a change authenticated by that cookie.
"use strict";

const UI_HEADER = "X-Runherald-UI";

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers[UI_HEADER] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { status: 0, ok: false, body: { error: "the worker did not answer: " + error } };
  }
  let data = null;
  try { data = await response.json(); } catch (error) { data = { error: response.statusText }; }
  if (response.status === 401) window.location.assign("/ui/login?next=" + encodeURIComponent(location.pathname));
  return { status: response.status, ok: response.ok, body: data };
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function link(href, text) {
  const node = el("a", text);
  node.href = href;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function $(id) { return document.getElementById(id); }

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? String(text) : date.toLocaleString();
}

function problemText(answer) {
  const body = answer.body || {};
  let text = body.error || ("HTTP " + answer.status);
  if (Array.isArray(body.problems)) text += ": " + body.problems.map((p) => (p.path ? p.path + ": " : "") + p.message).join("; ");
  return text;
}

function say(node, text, ok) {
  node.textContent = text;
  node.className = "result " + (ok ? "ok" : "error");
}

function runPath(project, uid) {
  return "/ui/runs/" + encodeURIComponent(project) + "/" + encodeURIComponent(uid);
}

function counts(notifications) {
  if (!notifications || typeof notifications !== "object") return "";
  return Object.keys(notifications).sort().filter((k) => notifications[k]).map((k) => notifications[k] + " " + k).join(", ");
}

// ---- runs, live ----
function runsPage() {
  const body = document.querySelector("#runs tbody");
  const rows = new Map();

  function upsert(item, fresh) {
    const key = item.project + "/" + item.uid;
    const old = rows.get(key);
    // An event without counts keeps the row's until the list is read again (refreshSoon).
    const noted = counts(item.notifications) || (old ? old.dataset.counts : "");
    const tr = row([
      when(item.updated || item.last_update), item.project, link(runPath(item.project, item.uid), item.name || item.uid),
      el("span", item.state, "state-" + item.state), noted,
    ]);
    tr.dataset.counts = noted;
    tr.dataset.key = key;
    tr.dataset.lastUpdate = item.last_update || "";
    if (fresh) tr.classList.add("fresh");
    if (old) old.replaceWith(tr);
    rows.set(key, tr);
    if (fresh) body.insertBefore(tr, body.firstChild); else if (!old) body.appendChild(tr);
    $("runs-empty").hidden = rows.size > 0;
  }

  function fromEvent(run) {
    const meta = run.metadata || {};
    const status = run.status || {};
    const notes = {};
    for (const value of Object.values(status.notifications || {})) {
      if (value && value.status) notes[value.status] = (notes[value.status] || 0) + 1;
    }
    return {
      project: meta.project, uid: meta.uid, name: meta.name, state: status.state,
      last_update: status.last_update, updated: new Date().toISOString(), notifications: notes,
    };
  }

  async function refresh() {  // the list's notification counts, for the rows the stream added too
    const answer = await api("GET", "/api/v1/runs?limit=100");
    if (!answer.ok) { $("runs-note").textContent = "The runs list is not available: " + problemText(answer); return; }
    $("runs-note").textContent = "";
    for (const item of answer.body.items || []) {
      const shown = rows.get(item.project + "/" + item.uid);
      if (shown && Date.parse(shown.dataset.lastUpdate) > Date.parse(item.last_update)) continue;  // older
      upsert(item, false);
    }
  }
  let pending = null;
  function refreshSoon() {
    if (pending === null) pending = setTimeout(() => { pending = null; refresh(); }, 1500);
  }
  refresh();
  const live = $("live");
  const source = new EventSource("/api/v1/subscribe?since=1m", { withCredentials: true });
  source.onopen = () => { live.textContent = "live"; live.className = "badge live"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "badge"; };
  source.addEventListener("run", (event) => {
    try { upsert(fromEvent(JSON.parse(event.data)), true); } catch (error) { return; /* not a run */ }
    refreshSoon();
  });
}

// ---- one run ----
function silenceForm(prefill) {
  const form = $("silence-form");
  if (!form) return;
  if (prefill) $("silence-matchers").value = prefill;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const matchers = $("silence-matchers").value.split("\n").map((s) => s.trim()).filter(Boolean);
    const answer = await api("POST", "/api/v1/silences", {
      matchers, duration: $("silence-duration").value.trim(), comment: $("silence-comment").value.trim(),
    });
    if (answer.ok) {
      say($("silence-result"), "Silence " + answer.body.id + " added, until " + when(answer.body.ends_at) + ".", true);
      if (document.body.dataset.page === "config") loadSilences();
    } else {
      say($("silence-result"), "Not added: " + problemText(answer), false);
    }
  });
}

function quoted(value) { return JSON.stringify(String(value)); }

function attemptsTable(attempts) {
  const table = el("table", null, "attempts");
  const head = row(["At", "State", "Outcome", "Response code", "Latency (ms)", "Reason"]);
  head.querySelectorAll("td").forEach((td) => { const th = el("th", td.textContent); td.replaceWith(th); });
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const a of attempts) {
    body.appendChild(row([when(a.at), a.state, el("span", a.outcome, "status-" + a.outcome), a.response_code, a.latency_ms, a.reason]));
  }
  return table;
}

function notificationBlock(name, view) {
  const block = el("section", null, "card notification");
  block.dataset.name = name;
  block.appendChild(el("h3", name + (view.kind ? " (" + view.kind + ")" : "")));
  const table = el("table", null, "deliveries");
  const head = row(["State", "Status", "Sent", "Reason", "Attempts"]);
  head.querySelectorAll("td").forEach((td) => td.replaceWith(el("th", td.textContent)));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  const attempts = [];
  const states = view.states && Object.keys(view.states).length ? view.states : { [view.state || ""]: view };
  for (const [state, entry] of Object.entries(states)) {
    body.appendChild(row([state, el("span", entry.status, "status-" + entry.status), when(entry.sent_time), entry.reason, entry.attempts]));
    for (const a of entry.attempt_log || []) attempts.push(Object.assign({ state }, a));
  }
  block.appendChild(table);
  attempts.sort((a, b) => String(a.at).localeCompare(String(b.at)));
  if (attempts.length) block.appendChild(attemptsTable(attempts));
  else block.appendChild(el("p", "No attempt yet.", "muted"));
  return block;
}

function runPage() {
  const project = document.body.dataset.project;
  const uid = document.body.dataset.uid;
  const base = "/api/v1/runs/" + encodeURIComponent(project) + "/" + encodeURIComponent(uid);
  let prefilled = false;

  async function load() {
    const [run, notes] = await Promise.all([api("GET", base), api("GET", base + "/notifications")]);
    const problem = $("run-error-load");
    if (!run.ok) { problem.hidden = false; problem.textContent = problemText(run); return; }
    problem.hidden = true;
    const meta = run.body.metadata || {};
    const status = run.body.status || {};
    $("run-name").textContent = meta.name || "";
    $("run-state").textContent = status.state || "";
    $("run-state").className = "state-" + status.state;
    const labels = meta.labels || {};
    const text = (value) => value || "\u2014"; // an em dash, not an empty cell, where the run has none
    $("run-updated").textContent = text(when(status.last_update));
    $("run-labels").textContent = text(Object.keys(labels).map((k) => k + "=" + labels[k]).join(", "));
    $("run-error").textContent = text(status.error);
    if (!prefilled) {
      prefilled = true;
      silenceForm(["project=" + quoted(meta.project || project), "name=" + quoted(meta.name || "")].join("\n"));
      $("silence-comment").value = "silenced from the dashboard: " + (meta.name || uid);
    }
    const list = $("notifications");
    list.replaceChildren();
    const views = notes.ok ? notes.body : {};
    for (const name of Object.keys(views).sort()) list.appendChild(notificationBlock(name, views[name]));
    $("notifications-empty").hidden = Object.keys(views).length > 0;
  }
  load();
  setInterval(load, 3000);
}

// ---- dead letter ----
function deadLetterPage() {
  const body = document.querySelector("#dead-letter tbody");
  const result = $("replay-result");

  async function replay(request) {
    const answer = await api("POST", "/api/v1/dead-letter/replay", request);
    if (!answer.ok) { say(result, "Replay refused: " + problemText(answer), false); return; }
    const unknown = answer.body.unknown || [];
    const skipped = (answer.body.not_replayed || []).map((r) => r.id + " (" + r.reason + ")");
    let text = "Replayed " + answer.body.replayed + ".";
    if (skipped.length) text += " Not replayed: " + skipped.join(", ") + ".";
    if (unknown.length) text += " Unknown: " + unknown.join(", ") + ".";
    say(result, text, true);
    load();
  }

  async function load() {
    const answer = await api("GET", "/api/v1/dead-letter?limit=200");
    if (!answer.ok) { $("dead-letter-note").textContent = "The dead letter is not available: " + problemText(answer); return; }
    body.replaceChildren();
    const items = answer.body.items || [];
    $("dead-letter-note").textContent = items.length ? "" : "The dead letter is empty.";
    for (const item of items) {
      const button = el("button", "Replay", "replay");
      button.type = "button";
      button.disabled = item.replayable === false;
      if (item.not_replayable) button.title = item.not_replayable;
      button.addEventListener("click", () => replay({ ids: [item.id] }));
      const tr = row([when(item.at), item.stage, item.key, item.reason, item.id, button]);
      tr.dataset.id = item.id;
      body.appendChild(tr);
    }
  }
  $("replay-all").addEventListener("click", () => {
    if (window.confirm("Replay every letter of the dead letter?")) replay({ all: true });
  });
  load();
}

// ---- rules, receivers, silences, dry run ----
async function loadSilences() {
  const body = document.querySelector("#silences tbody");
  const answer = await api("GET", "/api/v1/silences");
  if (!answer.ok) { say($("silences-result"), problemText(answer), false); return; }
  body.replaceChildren();
  for (const silence of answer.body.silences || []) {
    const button = el("button", "Expire", "expire");
    button.type = "button";
    button.addEventListener("click", async () => {
      const done = await api("DELETE", "/api/v1/silences/" + encodeURIComponent(silence.id));
      say($("silences-result"), done.ok ? "Silence " + silence.id + " expired." : "Not expired: " + problemText(done), done.ok);
      loadSilences();
    });
    const tr = row([silence.id, (silence.matchers || []).join(", "), silence.state, when(silence.ends_at), silence.comment, button]);
    tr.dataset.id = silence.id;
    body.appendChild(tr);
  }
}

function details(value) { return el("pre", JSON.stringify(value, null, 1)); }

async function loadNamed(path, key, table, cells) {
  const answer = await api("GET", path);
  const body = document.querySelector("#" + table + " tbody");
  body.replaceChildren();
  if (!answer.ok) { body.appendChild(row([problemText(answer)])); return; }
  for (const item of answer.body[key] || []) body.appendChild(row(cells(item)));
}

function dryRunForm() {
  $("dry-run-run").value = JSON.stringify({
    metadata: { project: "demo", name: "train", uid: "dry-run-1", labels: {} },
    spec: { notifications: [] }, status: { state: "error", error: "example" },
  }, null, 2);
  $("dry-run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let run;
    try { run = JSON.parse($("dry-run-run").value); } catch (error) { say($("dry-run-result"), "The run is not JSON: " + error.message, false); return; }
    const names = $("dry-run-rules").value.split(",").map((s) => s.trim()).filter(Boolean);
    const answer = await api("POST", "/api/v1/rules/test", names.length ? { run, rules: names } : { run });
    const table = $("dry-run-table");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!answer.ok) { table.hidden = true; say($("dry-run-result"), problemText(answer), false); return; }
    const rules = answer.body.rules || [];
    const sends = (r) => r.matched && (r.receivers || []).some((x) => x.send);
    const firing = rules.filter(sends).map((r) => r.rule);
    const quiet = rules.filter((r) => r.matched && !sends(r)).map((r) => r.rule);
    let text = firing.length ? "Would fire: " + firing.join(", ") + "." : "No rule would fire.";
    if (quiet.length) text += " Matched without sending: " + quiet.join(", ") + ".";
    say($("dry-run-result"), text, true);
    for (const rule of rules) {
      const receivers = rule.receivers && rule.receivers.length ? rule.receivers : [{}];
      for (const r of receivers) {
        const why = rule.matched ? (r.reason || (r.silence ? "silenced by " + r.silence : "")) : "no match: " + (rule.failed_matcher || "");
        const tr = row([rule.rule, rule.matched ? "yes" : "no", r.receiver || "", r.send === undefined ? "" : (r.send ? "yes" : "no"), why]);
        tr.dataset.rule = rule.rule;
        body.appendChild(tr);
      }
    }
    table.hidden = false;
  });
}

function configPage() {
  loadSilences();
  silenceForm();
  loadNamed("/api/v1/rules", "rules", "rules", (rule) => [rule.name, (rule.matchers || []).join(", "), (rule.receivers || []).join(", "), details(rule)]);
  loadNamed("/api/v1/receivers", "receivers", "receivers", (r) => [r.name, r.kind, details(r)]);
  dryRunForm();
}

// ---- deliveries per minute ----
const OUTCOMES = ["sent", "retryable", "permanent", "deferred"];  // the outcomes of an attempt

function chartPage() {
  const svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attributes, text) {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function draw(buckets) {
    const width = 900, height = 300, left = 40, bottom = 30, top = 10;
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "deliveries per minute by outcome" });
    const outcomes = [...OUTCOMES];
    for (const b of buckets) for (const k of Object.keys(b.counts || {})) if (!outcomes.includes(k)) outcomes.push(k);
    const totals = buckets.map((b) => Object.values(b.counts || {}).reduce((s, n) => s + n, 0));
    const max = Math.max(1, ...totals);
    const plot = height - bottom - top;
    const step = (width - left) / Math.max(1, buckets.length);
    chart.appendChild(svg("line", { x1: left, y1: top + plot, x2: width, y2: top + plot, class: "axis" }));
    chart.appendChild(svg("line", { x1: left, y1: top, x2: left, y2: top + plot, class: "axis" }));
    chart.appendChild(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "tick" }, max));
    chart.appendChild(svg("text", { x: left - 6, y: top + plot, "text-anchor": "end", class: "tick" }, 0));
    buckets.forEach((bucket, i) => {
      let y = top + plot;
      for (const outcome of outcomes) {
        const n = (bucket.counts || {})[outcome] || 0;
        if (!n) continue;
        const h = (n / max) * plot;
        y -= h;
        const bar = svg("rect", {
          x: left + i * step + 1, y, width: Math.max(1, step - 2), height: h,
          class: "bar outcome-" + (OUTCOMES.includes(outcome) ? outcome : "other"),
          "data-outcome": outcome, "data-count": n, "data-at": bucket.at,
        });
        bar.appendChild(svg("title", {}, when(bucket.at) + ": " + n + " " + outcome));
        chart.appendChild(bar);
      }
      if (i % Math.max(1, Math.ceil(buckets.length / 8)) === 0) {
        const label = new Date(bucket.at);
        chart.appendChild(svg("text", { x: left + i * step, y: height - 10, class: "tick" }, isNaN(label) ? "" : label.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
      }
    });
    $("chart").replaceChildren(chart);
    const legend = $("chart-legend");
    legend.replaceChildren();
    for (const outcome of outcomes) {
      const total = buckets.reduce((s, b) => s + ((b.counts || {})[outcome] || 0), 0);
      const item = el("span");
      item.appendChild(el("span", "", "swatch outcome-" + (OUTCOMES.includes(outcome) ? outcome : "other")));
      item.appendChild(document.createTextNode(outcome + ": " + total));
      item.dataset.outcome = outcome;
      legend.appendChild(item);
    }
  }

  async function load() {
    const query = new URLSearchParams({ since: $("chart-since").value });
    const project = $("chart-project").value.trim();
    if (project) query.set("project", project);
    const answer = await api("GET", "/api/v1/deliveries/per-minute?" + query);
    if (!answer.ok) { $("chart-note").textContent = "Not available: " + problemText(answer); return; }
    $("chart-note").textContent = "updated " + new Date().toLocaleTimeString();
    draw(answer.body.buckets || []);
  }
  $("chart-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
  setInterval(load, 10000);
}

const PAGES = { runs: runsPage, run: runPage, "dead-letter": deadLetterPage, config: configPage, deliveries: chartPage };
document.addEventListener("DOMContentLoaded", () => {
  const page = PAGES[document.body.dataset.page];
  if (page) page();
});
