// The fleet page: every instance on one screen, updated live; heartbeat ages tick every second.
"use strict";

const rows = new Map();
const tbody = document.querySelector("#fleet tbody");
const results = document.getElementById("results");
const dialog = document.getElementById("confirm");

function render(row) {
  rows.set(row.instance, row);
  const now = Hub.now();
  const t = row.telemetry || {};
  const alerts = Hub.alerts(row, now);
  const id = row.instance;
  const cmd = (label, command, cls) => Hub.el("button", { class: cls, "data-cmd": command.op, onclick: () => Hub.run([id], command, results, dialog) }, label);
  const silent = row.status !== "offline" && now - row.last_seen_ms > 30000;
  const tr = Hub.el("tr", { "data-instance": id, "data-telemetry-ms": row.telemetry_ms, class: row.status + (silent ? " silent" : "") },
    Hub.el("td", { class: "name" }, Hub.el("a", { href: `/instance/${encodeURIComponent(id)}` }, id)),
    Hub.el("td", { class: "status" }, row.status),
    Hub.el("td", { class: "heartbeat", "data-last": row.last_seen_ms }, Hub.age(now - row.last_seen_ms)),
    Hub.el("td", { class: "mode" }, row.mode || "—"),
    Hub.el("td", { class: "equity num" }, Hub.money(t.equity)),
    Hub.el("td", { class: "day num" }, Hub.money(t.day_pnl)),
    Hub.el("td", { class: "daily" }, Hub.loss(t.daily_loss)),
    Hub.el("td", { class: "total" }, Hub.loss(t.total_loss)),
    Hub.el("td", { class: "open num" }, t.open_positions ?? "—"),
    Hub.el("td", { class: "alerts" }, ...alerts.map((a) => Hub.el("span", { class: "alert-tag" }, a))),
    Hub.el("td", { class: "commands" },
      cmd("Pause", { op: "pause" }), cmd("Resume", { op: "resume" }), cmd("Flatten…", { op: "flatten" }, "danger")),
  );
  const old = tbody.querySelector(`tr[data-instance="${CSS.escape(id)}"]`);
  if (old) old.replaceWith(tr);
  else {
    const after = [...tbody.children].find((r) => r.dataset.instance > id);
    tbody.insertBefore(tr, after || null);
  }
  document.getElementById("empty").hidden = rows.size > 0;
}

async function load() {
  const v = await Hub.api("/api/instances");
  for (const r of v.instances) render(r);
}

setInterval(() => {
  const now = Hub.now();
  for (const td of tbody.querySelectorAll("td.heartbeat")) td.textContent = Hub.age(now - Number(td.dataset.last));
  for (const r of rows.values()) {
    const silent = r.status !== "offline" && now - r.last_seen_ms > 30000;
    const tr = tbody.querySelector(`tr[data-instance="${CSS.escape(r.instance)}"]`);
    if (tr && silent !== tr.classList.contains("silent")) render(r);
  }
}, 1000);

document.getElementById("flatten-fleet").addEventListener("click", () => Hub.run(["*"], { op: "flatten" }, results, dialog));
document.getElementById("logout").addEventListener("click", Hub.logout);
const link = document.getElementById("link");
Hub.events("", {
  status: (s) => { link.textContent = s; },
  instance: (e) => render(e),
  resync: load,
});
load();
