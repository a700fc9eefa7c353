// Shared by the dashboard pages: API calls with the CSRF token, DOM building that only ever sets
// text (whatever an instance sends is shown, never run), formatting, the live event stream, and
// the signed-command flow with Flatten's second confirmation.
"use strict";

const Hub = {
  csrf: null,
  offset: 0, // server clock − browser clock, ms

  async api(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.href = "/login"; throw new Error("session expired"); }
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    const v = await r.json();
    if (typeof v.now_ms === "number") Hub.offset = v.now_ms - Date.now();
    return v;
  },

  async post(path, body) {
    if (!Hub.csrf) Hub.csrf = (await Hub.api("/api/session")).csrf;
    const r = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": Hub.csrf },
      body: JSON.stringify(body),
    });
    if (r.status === 401) { location.href = "/login"; throw new Error("session expired"); }
    const text = await r.text();
    let v = {};
    try { v = JSON.parse(text); } catch (_) { v = { error: text }; }
    if (!r.ok) throw new Error(v.error || `${r.status}`);
    return v;
  },

  now() { return Date.now() + Hub.offset; },

  // el("td", {class: "x", "data-k": "v"}, "text", child…): text children become text nodes.
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  },

  money(x) {
    if (typeof x !== "number" || !isFinite(x)) return "—";
    return x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  },

  age(ms) {
    if (!(ms >= 0)) return "—";
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  },

  pos(p) {
    if (!p) return "—";
    return p.side === "FLAT" ? "FLAT" : `${p.side} ${p.lots}`;
  },

  signedLots(p) {
    if (!p) return 0;
    return p.side === "LONG" ? p.lots : p.side === "SHORT" ? -p.lots : 0;
  },

  // Alerts an operator must see on the fleet page.
  alerts(row, now) {
    const out = [];
    const t = row.telemetry;
    if (row.status === "offline") out.push("OFFLINE");
    else if (now - row.last_seen_ms > 30000) out.push("SILENT");
    if (t) {
      if (t.kill_switch) out.push("KILL SWITCH");
      if (t.paused) out.push("PAUSED");
      if (t.broker_link === "down") out.push("BROKER DOWN");
      if (t.daily_loss && t.daily_loss.limit_pct > 0 && t.daily_loss.used_pct >= 0.8 * t.daily_loss.limit_pct) out.push("DAILY LOSS ≥80%");
      if (t.total_loss && t.total_loss.limit_pct > 0 && t.total_loss.used_pct >= 0.8 * t.total_loss.limit_pct) out.push("TOTAL LOSS ≥80%");
    }
    if (row.rejected > 0) out.push(`${row.rejected} REFUSED PAYLOADS`);
    return out;
  },

  loss(l) {
    if (!l) return "—";
    return `${l.used_pct.toFixed(2)}% / ${l.limit_pct}%`;
  },

  // The live stream; reconnects by itself (EventSource does), and tells the page to refetch after
  // a gap.
  events(query, handlers) {
    let es;
    const open = () => {
      es = new EventSource(`/api/events${query}`);
      es.addEventListener("open", () => handlers.status && handlers.status("live"));
      es.addEventListener("error", () => handlers.status && handlers.status("reconnecting…"));
      es.addEventListener("instance", (e) => handlers.instance && handlers.instance(JSON.parse(e.data)));
      es.addEventListener("record", (e) => handlers.record && handlers.record(JSON.parse(e.data)));
      es.addEventListener("resync", () => handlers.resync && handlers.resync());
    };
    open();
    return () => es.close();
  },

  async wait(commandId, ttlMs) {
    const deadline = Date.now() + ttlMs + 2000;
    while (Date.now() < deadline) {
      const c = (await Hub.api(`/api/commands/${encodeURIComponent(commandId)}`)).command;
      if (c.result_kind) return c;
      await new Promise((r) => setTimeout(r, 300));
    }
    return null;
  },

  describe(c) {
    if (!c) return "no answer before the command expired";
    const r = c.result || {};
    switch (c.result_kind) {
      case "ok": return `ok${r.detail ? ": " + r.detail : ""}`;
      case "refused": return `refused ${r.code}${r.field ? " (" + r.field + ")" : ""}: ${r.message}`;
      case "needs_confirmation": return `needs confirmation: ${r.summary}`;
      case "status": return `status: ${r.paused ? "paused" : "running"}, ${r.symbols ? r.symbols.length : 0} symbols`;
      case "flattened": return `flattened: paused, closed ${(r.closed || []).length}${(r.failed || []).length ? ", " + r.failed.length + " close(s) FAILED" : ""}`;
      default: return c.result_kind;
    }
  },

  showResult(list, instance, op, c) {
    const kind = c ? c.result_kind : "timeout";
    const li = Hub.el("li", { class: `result ${kind}`, "data-instance": instance, "data-op": op, "data-kind": kind },
      Hub.el("b", {}, instance), ` ${op} → `, Hub.describe(c));
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  },

  // Sends commands; Flatten answers needs_confirmation first, and only the dialog's Confirm sends
  // the confirming commands (one per instance, each with its own nonce).
  async run(targets, command, results, dialog) {
    const sent = [];
    for (const t of targets) {
      try {
        const s = t === "*"
          ? (await Hub.post("/api/fleet/commands", { command })).sent
          : [await Hub.post(`/api/instances/${encodeURIComponent(t)}/commands`, { command })];
        sent.push(...s);
      } catch (e) {
        Hub.showResult(results, t === "*" ? "fleet" : t, command.op, { result_kind: "refused", result: { code: "HUB", message: e.message } });
      }
    }
    const answers = await Promise.all(sent.map(async (s) => ({ s, c: await Hub.wait(s.command_id, s.expires_ms - Hub.now()) })));
    const pending = [];
    for (const { s, c } of answers) {
      Hub.showResult(results, s.instance, s.op, c);
      if (c && c.result_kind === "needs_confirmation") pending.push({ instance: s.instance, nonce: c.result.nonce, summary: c.result.summary });
    }
    if (pending.length === 0) return;
    const list = dialog.querySelector("#confirm-list");
    list.replaceChildren(...pending.map((p) => Hub.el("li", { "data-instance": p.instance }, Hub.el("b", {}, p.instance), ": ", p.summary)));
    const ok = await new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
    if (!ok) {
      for (const p of pending) Hub.showResult(results, p.instance, command.op, { result_kind: "cancelled", result: {} });
      return;
    }
    await Promise.all(pending.map(async (p) => {
      try {
        const s = await Hub.post(`/api/instances/${encodeURIComponent(p.instance)}/commands`, { command, confirm: p.nonce });
        Hub.showResult(results, p.instance, `${command.op} (confirmed)`, await Hub.wait(s.command_id, s.expires_ms - Hub.now()));
      } catch (e) {
        Hub.showResult(results, p.instance, command.op, { result_kind: "refused", result: { code: "HUB", message: e.message } });
      }
    }));
  },

  logout() {
    Hub.post("/logout", {}).catch(() => {}).finally(() => { location.href = "/login"; });
  },
};
