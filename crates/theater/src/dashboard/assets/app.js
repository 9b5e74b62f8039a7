// The Theater dashboard. Reads the JSON API under /api and the live event
// stream; everything an actor wrote is put on the page as text, never as
// markup. The token, when the server has one, stays in this tab's session
// storage and travels only in the Authorization header.
"use strict";

const TOKEN_KEY = "theater-token";
// Samples kept per actor for its sparklines (one a second: a minute).
const SPARK_SAMPLES = 60;
// Live events kept on the page; older ones are removed.
const LIVE_KEPT = 200;
const REFRESH_MS = 1000;

const state = {
  selected: null,
  chainStart: null,
  chainTotal: 0,
  history: new Map(),
  reloadPending: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch("/api" + path, { headers: headers() });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  start();
});

async function start() {
  try {
    await api("/node");
  } catch (error) {
    if (error instanceof Unauthorized) {
      const tried = sessionStorage.getItem(TOKEN_KEY) !== null;
      showLogin(tried ? "That token was refused." : "");
      return;
    }
    throw error;
  }
  $("login").hidden = true;
  $("main").hidden = false;
  // `#actor=<id>` opens that actor: a link to it names no secret.
  const linked = location.hash.match(/^#actor=([0-9a-f-]{36})$/);
  if (linked) select(linked[1], "");
  refresh();
  setInterval(refresh, REFRESH_MS);
  live();
}

async function refresh() {
  try {
    const [node, actors, tree] = await Promise.all([api("/node"), api("/actors"), api("/tree")]);
    renderNode(node);
    renderActors(actors);
    renderTree(tree);
  } catch (error) {
    if (error instanceof Unauthorized) showLogin("The token was refused.");
  }
}

function renderNode(node) {
  const home = node.home ? " · " + node.home : "";
  $("node").textContent = `v${node.version} · ${node.actors} actors${home}${clusterText(node.cluster)}`;
}

// " · node n1 of 3 · actors: n1 4, n2 3, n3 5", or why the nodes are unknown.
function clusterText(cluster) {
  if (!cluster) return "";
  if (!cluster.nodes) return ` · node ${cluster.node} (cluster: ${cluster.error})`;
  const loads = cluster.nodes.map((n) => `${n.node} ${n.actors}`).join(", ");
  return ` · node ${cluster.node} of ${cluster.nodes.length} · actors: ${loads}`;
}

// Keeps a minute of (time, calls, busy time) samples per actor.
function sample(actor, now) {
  let samples = state.history.get(actor.id);
  if (!samples) state.history.set(actor.id, (samples = []));
  samples.push({ t: now, calls: actor.calls_ok + actor.calls_failed, busy: actor.busy_micros });
  if (samples.length > SPARK_SAMPLES + 1) samples.shift();
  return samples;
}

// Calls per second and mean latency (ms) between consecutive samples.
function rates(samples) {
  const calls = [], latency = [];
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1], samples[i]];
    const seconds = Math.max((b.t - a.t) / 1000, 0.001);
    const n = b.calls - a.calls;
    calls.push(n / seconds);
    latency.push(n > 0 ? (b.busy - a.busy) / n / 1000 : 0);
  }
  return { calls, latency };
}

function sparkline(values, unit) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${SPARK_SAMPLES} 20`);
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(...values, 1e-9);
  const offset = SPARK_SAMPLES - values.length;
  const points = values.map((v, i) => `${offset + i},${(19 - (v / max) * 18).toFixed(2)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  const last = values.length ? values[values.length - 1] : 0;
  return el("span", {}, svg, el("span", { class: "spark-value" }, last.toFixed(1) + unit));
}

function renderActors(body) {
  const tbody = $("actors").tBodies[0];
  const live = new Set();
  const rows = body.actors.map((actor) => {
    live.add(actor.id);
    const { calls, latency } = rates(sample(actor, body.time_ms));
    const row = el(
      "tr",
      { data: { actor: actor.id }, onclick: () => select(actor.id, actor.name) },
      el("td", {}, actor.name),
      el("td", {}, el("code", {}, actor.short)),
      el("td", { class: actor.status === "running" ? "ok" : "bad" }, actor.status),
      el("td", { class: "num" }, `${actor.queue_depth}/${actor.queue_capacity}`),
      el("td", { class: "num" }, actor.calls_ok),
      el("td", { class: "num" }, actor.calls_failed),
      el("td", {}, sparkline(calls, "/s")),
      el("td", {}, sparkline(latency, " ms")),
    );
    if (actor.id === state.selected) {
      row.classList.add("selected");
      $("actor-title").textContent = `${actor.name} ${actor.id}`;
    }
    return row;
  });
  tbody.replaceChildren(...rows);
  for (const id of state.history.keys()) if (!live.has(id)) state.history.delete(id);
  const more = body.total - body.actors.length;
  $("actors-more").textContent = more > 0 ? `and ${more} more` : "";
}

function treeNode(node) {
  const label = el(
    "span",
    { onclick: () => select(node.id, node.name) },
    node.name || "?",
    " ",
    el("code", {}, node.short),
  );
  const children = node.children.length ? el("ul", {}, ...node.children.map(treeNode)) : null;
  return el("li", { data: { actor: node.id } }, label, children);
}

function renderTree(body) {
  const nodes = body.roots.map(treeNode);
  if (!body.complete) nodes.push(el("li", { class: "muted" }, "…"));
  $("tree").replaceChildren(...nodes);
}

async function select(id, name) {
  state.selected = id;
  state.chainStart = null;
  history.replaceState(null, "", "#actor=" + id);
  $("actor-title").textContent = `${name} ${id}`;
  $("actor-detail").hidden = false;
  for (const row of $("actors").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.actor === id);
  }
  await loadActor();
}

async function loadActor() {
  const id = state.selected;
  if (!id) return;
  const start = state.chainStart === null ? "" : `&start=${state.chainStart}`;
  try {
    const [chain, current] = await Promise.all([
      api(`/actors/${id}/chain?limit=50${start}`),
      api(`/actors/${id}/state`).catch((error) => ({ error: error.message })),
    ]);
    if (id !== state.selected) return;
    renderState(current);
    renderChain(chain);
  } catch (error) {
    $("chain-status").replaceChildren(el("span", { class: "badge bad" }, error.message));
  }
}

function renderState(current) {
  $("state").textContent = current.error
    ? current.error
    : current.state === null
      ? "(no state)"
      : JSON.stringify(current.state, null, 2);
}

function time(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function renderChain(chain) {
  state.chainTotal = chain.total;
  const status = chain.verified
    ? el("span", { class: "badge good" }, `verified · ${chain.total} events`)
    : el(
        "span",
        { class: "badge bad" },
        `not verified${chain.first_bad_event === null ? "" : " at event " + chain.first_bad_event}: ${chain.problem}`,
      );
  $("chain-status").replaceChildren(status);
  const last = chain.start + chain.events.length;
  $("chain-range").textContent = `events ${chain.start}–${last - 1} of ${chain.total}`;
  $("older").disabled = chain.start === 0;
  $("newer").disabled = last >= chain.total;
  const rows = [];
  for (const event of [...chain.events].reverse()) {
    const data = el(
      "tr",
      { class: "event-data", hidden: "" },
      el("td", { colspan: "6" }, el("pre", {}, JSON.stringify(event.data, null, 2))),
    );
    rows.push(
      el(
        "tr",
        { class: "event", data: { index: event.index }, onclick: () => (data.hidden = !data.hidden) },
        el("td", { class: event.verified ? "good" : "bad", title: event.verified ? "verified" : "not verified" },
          event.verified ? "✓" : "✗"),
        el("td", { class: "num" }, event.index),
        el("td", {}, event.event_type),
        el("td", { class: "data" }, event.description),
        el("td", {}, time(event.timestamp)),
        el("td", { class: "hash" }, event.hash.slice(0, 12)),
      ),
      data,
    );
  }
  $("chain").tBodies[0].replaceChildren(...rows);
}

$("older").addEventListener("click", () => {
  const current = state.chainStart === null ? Math.max(state.chainTotal - 50, 0) : state.chainStart;
  state.chainStart = Math.max(current - 50, 0);
  loadActor();
});
$("newer").addEventListener("click", () => {
  const next = (state.chainStart || 0) + 50;
  state.chainStart = next + 50 >= state.chainTotal ? null : next;
  loadActor();
});

// A new event of the selected actor reloads its view, at most once at a time.
function reloadSelected() {
  if (state.reloadPending) return;
  state.reloadPending = true;
  setTimeout(async () => {
    await loadActor();
    state.reloadPending = false;
  }, 200);
}

function addLive(item) {
  const list = $("live");
  list.prepend(item);
  while (list.children.length > LIVE_KEPT) list.lastElementChild.remove();
}

function onLive(kind, data) {
  if (kind === "lagged") {
    addLive(el("li", { class: "lagged" }, `missed ${data.missed} events (this page fell behind)`));
    return;
  }
  addLive(
    el(
      "li",
      { data: { actor: data.actor, hash: data.hash } },
      el("span", { class: "muted" }, time(data.timestamp).slice(11), " "),
      el("code", {}, data.short),
      " ",
      el("span", { class: "type" }, data.event_type),
      " ",
      data.description,
    ),
  );
  if (data.actor === state.selected && state.chainStart === null) reloadSelected();
}

// Server-sent events read with fetch, so that the token goes in a header.
async function live() {
  const connection = $("connection");
  for (;;) {
    try {
      const response = await fetch("/api/live", { headers: headers() });
      if (!response.ok) throw new Error(response.statusText);
      connection.className = "on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trimStart();
          }
          if (data) onLive(kind, JSON.parse(data));
        }
      }
    } catch (error) {
      // Reconnects below.
    }
    connection.className = "off";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

start();
