// One instance: equity curves (live, paper, virtual), positions per symbol now and over time,
// drift, the live signal/ACK feed, refusals by reason, and its commands.
"use strict";

const id = decodeURIComponent(location.pathname.split("/").pop());
const results = document.getElementById("results");
const dialog = document.getElementById("confirm");
const SVG = "http://www.w3.org/2000/svg";
let series = []; // telemetry records, oldest first: {ts, live, paper, virt, symbols}
let row = null;

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function point(rec) {
  const t = rec.body;
  const virt = (t.symbols || []).reduce((s, x) => s + (x.virtual ? x.virtual.pnl : 0), 0);
  return {
    ts: rec.ts_ms,
    live: t.mode === "paper" ? null : t.equity,
    paper: t.mode === "paper" ? t.equity : t.paper_equity ?? null,
    virt: t.balance + virt,
    symbols: t.symbols || [],
  };
}

// Draws lines on an SVG with its own y range; x = time.
function lines(el, defs, w, h) {
  el.replaceChildren();
  if (series.length < 2) { el.append(svg("text", { x: 10, y: 20, class: "muted" })); el.lastChild.textContent = "waiting for telemetry…"; return; }
  const x0 = series[0].ts, x1 = series[series.length - 1].ts;
  const vals = defs.flatMap((d) => series.map(d.get)).filter((v) => typeof v === "number" && isFinite(v));
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const X = (t) => 50 + ((t - x0) / Math.max(1, x1 - x0)) * (w - 60);
  const Y = (v) => h - 20 - ((v - lo) / (hi - lo)) * (h - 30);
  for (const [v, label] of [[lo, lo], [hi, hi]]) {
    const t = svg("text", { x: 2, y: Y(v) + 4, class: "axis" });
    t.textContent = Number(label).toFixed(2);
    el.append(t);
  }
  for (const d of defs) {
    const pts = series.map((p) => [p.ts, d.get(p)]).filter(([, v]) => typeof v === "number" && isFinite(v));
    if (pts.length < 2) continue;
    el.append(svg("polyline", { class: d.cls, "data-series": d.name, "data-points": pts.length, points: pts.map(([t, v]) => `${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join(" ") }));
  }
}

function drawCharts() {
  lines(document.getElementById("equity"), [
    { name: "live", cls: "l-live", get: (p) => p.live },
    { name: "paper", cls: "l-paper", get: (p) => p.paper },
    { name: "virtual", cls: "l-virtual", get: (p) => p.virt },
  ], 800, 220);
  const box = document.getElementById("position-charts");
  const last = series[series.length - 1];
  const names = last ? last.symbols.map((s) => s.symbol) : [];
  for (const name of names) {
    let el = box.querySelector(`svg[data-symbol="${CSS.escape(name)}"]`);
    if (!el) {
      box.append(Hub.el("h4", {}, name));
      el = svg("svg", { class: "chart small", viewBox: "0 0 800 90", "data-symbol": name });
      box.append(el);
    }
    const get = (book) => (p) => Hub.signedLots((p.symbols.find((s) => s.symbol === name) || {})[book]);
    lines(el, [
      { name: "live", cls: "l-live", get: get("live") },
      { name: "paper", cls: "l-paper", get: get("paper") },
      { name: "virtual", cls: "l-virtual", get: get("virtual") },
    ], 800, 90);
  }
}

function renderHeader() {
  if (!row) return;
  document.getElementById("name").textContent = row.instance;
  const st = document.getElementById("status");
  st.textContent = row.status;
  st.className = `badge ${row.status}`;
  document.getElementById("mode").textContent = row.mode || "—";
  const t = row.telemetry;
  const acc = document.getElementById("account");
  const fig = (k, v) => [Hub.el("dt", {}, k), Hub.el("dd", { "data-k": k }, v)];
  if (t) {
    acc.replaceChildren(
      ...fig("equity", Hub.money(t.equity)), ...fig("balance", Hub.money(t.balance)),
      ...fig("margin", Hub.money(t.margin)), ...fig("paper equity", Hub.money(t.paper_equity)),
      ...fig("today", Hub.money(t.day_pnl)), ...fig("daily loss", Hub.loss(t.daily_loss)),
      ...fig("total loss", Hub.loss(t.total_loss)), ...fig("broker", t.broker_link),
      ...fig("paused", t.paused ? "yes" : "no"), ...fig("kill switch", t.kill_switch ? "ON" : "off"),
      ...fig("version", row.version || "—"),
    );
    renderPositions(t);
  }
  const alerts = Hub.alerts(row, Hub.now());
  const al = document.getElementById("alerts");
  al.hidden = alerts.length === 0;
  al.textContent = alerts.join(" · ") + (row.last_rejection ? ` — last refused payload: ${row.last_rejection}` : "");
}

function renderPositions(t) {
  const tbody = document.querySelector("#positions tbody");
  const sel = document.querySelector("#lots select");
  const chosen = sel.value;
  tbody.replaceChildren(...(t.symbols || []).map((s) => Hub.el("tr", { "data-symbol": s.symbol },
    Hub.el("td", {}, s.symbol),
    Hub.el("td", {}, Hub.el("button", { onclick: () => Hub.run([id], { op: "set_enabled", symbol: s.symbol, enabled: !s.enabled }, results, dialog) }, s.enabled ? "enabled" : "disabled")),
    Hub.el("td", { class: "virtual" }, Hub.pos(s.virtual)),
    Hub.el("td", { class: "paper" }, Hub.pos(s.paper)),
    Hub.el("td", { class: "live" }, Hub.pos(s.live)),
    Hub.el("td", {}, s.last_bar ? `${s.last_bar.open_time} ${s.last_bar.close}` : "—"),
    Hub.el("td", {}, Hub.el("button", { class: "danger", "data-cmd": "flatten", onclick: () => Hub.run([id], { op: "flatten", symbol: s.symbol }, results, dialog) }, "Flatten…")),
  )));
  sel.replaceChildren(...(t.symbols || []).map((s) => Hub.el("option", { value: s.symbol, selected: s.symbol === chosen }, s.symbol)));
}

function feedItem(r) {
  const b = r.body || {};
  const line = b.line || "";
  return Hub.el("li", { class: `feed-${r.stream} ${r.tag === "OK" ? "ok" : ""}`, "data-seq": r.seq },
    Hub.el("time", {}, new Date(r.ts_ms).toISOString().slice(11, 19)), " ",
    r.stream === "acks" ? Hub.el("span", { class: "book" }, b.book, " ") : null,
    Hub.el("code", {}, line));
}

function driftRow(r) {
  const d = r.body;
  return Hub.el("tr", { class: d.in_sync ? "" : "out" },
    Hub.el("td", {}, d.bar_time), Hub.el("td", {}, d.symbol), Hub.el("td", {}, Hub.pos(d.target)),
    Hub.el("td", {}, Hub.pos(d.live)), Hub.el("td", {}, Hub.pos(d.paper)),
    Hub.el("td", {}, d.in_sync ? "yes" : "no"), Hub.el("td", {}, d.reason || ""));
}

function prepend(list, item, max) {
  list.prepend(item);
  while (list.children.length > max) list.lastChild.remove();
}

async function loadRefusals() {
  const v = await Hub.api(`/api/instances/${encodeURIComponent(id)}/refusals`);
  document.querySelector("#refusals tbody").replaceChildren(...v.refusals.map((r) =>
    Hub.el("tr", { "data-reason": r.reason }, Hub.el("td", {}, r.reason), Hub.el("td", { class: "num" }, r.count))));
}

async function load() {
  const base = `/api/instances/${encodeURIComponent(id)}`;
  row = (await Hub.api(base)).instance;
  renderHeader();
  const tele = await Hub.api(`${base}/telemetry?limit=600`);
  series = tele.records.reverse().map(point);
  drawCharts();
  const [sig, ack, drift, cmds] = await Promise.all([
    Hub.api(`${base}/signals?limit=50`), Hub.api(`${base}/acks?limit=50`), Hub.api(`${base}/drift?limit=50`), Hub.api(`${base}/commands`),
  ]);
  const feed = [...sig.records, ...ack.records].sort((a, b) => b.received_ms - a.received_ms || b.seq - a.seq).slice(0, 100);
  document.getElementById("feed").replaceChildren(...feed.map(feedItem));
  document.querySelector("#drift tbody").replaceChildren(...drift.records.map(driftRow));
  results.replaceChildren();
  for (const c of cmds.commands.slice(0, 20).reverse()) Hub.showResult(results, id, c.op + (c.confirm ? " (confirmed)" : ""), c.result_kind ? c : null);
  loadRefusals();
}

let refusalTimer = null;
Hub.events(`?instance=${encodeURIComponent(id)}`, {
  instance: (e) => { if (e.instance === id) { row = e; renderHeader(); } },
  record: (r) => {
    if (r.instance !== id) return;
    if (r.stream === "telemetry") {
      series.push(point(r));
      if (series.length > 600) series.shift();
      drawCharts();
    } else if (r.stream === "signals" || r.stream === "acks") {
      prepend(document.getElementById("feed"), feedItem(r), 100);
      if (r.stream === "acks" && !refusalTimer) refusalTimer = setTimeout(() => { refusalTimer = null; loadRefusals(); }, 1000);
    } else if (r.stream === "drift") {
      prepend(document.querySelector("#drift tbody"), driftRow(r), 50);
    }
  },
  resync: load,
});

setInterval(() => {
  if (row) document.getElementById("heartbeat").textContent = `heartbeat ${Hub.age(Hub.now() - row.last_seen_ms)} ago`;
}, 1000);

const run = (command) => Hub.run([id], command, results, dialog);
document.getElementById("pause").addEventListener("click", () => run({ op: "pause" }));
document.getElementById("resume").addEventListener("click", () => run({ op: "resume" }));
document.getElementById("flatten").addEventListener("click", () => run({ op: "flatten" }));
document.getElementById("logout").addEventListener("click", Hub.logout);
document.getElementById("lots").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  run({ op: "set_lots", symbol: f.get("symbol"), lot_weak: Number(f.get("lot_weak")), lot_moderate: Number(f.get("lot_moderate")), lot_strong: Number(f.get("lot_strong")) });
});
document.getElementById("risk").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const c = { op: "set_risk_limits" };
  for (const [k, v] of f.entries()) if (v !== "") c[k] = Number(v);
  run(c);
});
load();
