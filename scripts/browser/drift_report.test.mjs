// The HTML drift report in headless Chromium: the page loads from file:// with no console error and
// no network request, and its charts and tables hold the data of the drift.csv it was made from.
//
// The expected figures are computed here from the CSV, independently of the Rust code, from the
// definitions the report prints: "in sync" = the book's position text equals the target; warm-up =
// a symbol's leading rows answered a whole timeframe or more after the bar closed (time >= bar +
// 2*tf, tf = the smallest gap between its bars), until its first row answered in time; equity =
// realised PnL minus the symbol's first value.
//
//   node --test scripts/browser/            (scripts/test_browser.sh installs what it needs)
// Env: EXECUTOR_BIN (default target/debug/executor), CHROMIUM (default /usr/bin/chromium),
//      REPORT_SCREENSHOT_DIR (optional: save a screenshot of each page there).

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const executor = process.env.EXECUTOR_BIN ?? join(root, "target/debug/executor");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const fixtures = join(root, "executor/tests/data/drift");
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// ---- the expected figures, from the CSV -------------------------------------------------------

function lots(position) {
  if (position === "" || position === "FLAT") return 0;
  return position.split("+").reduce((net, part) => {
    const [side, n] = part.split(" ");
    return net + (side === "LONG" ? 1 : -1) * Number(n);
  }, 0);
}

function parseCsv(text) {
  const [header, ...lines] = text.trim().split("\n");
  const cols = header.split(",");
  return lines.map((line) => {
    const c = line.split(",");
    const row = Object.fromEntries(cols.map((k, i) => [k, c[i]]));
    const book = (p) =>
      row[`${p}_outcome`] === ""
        ? null
        : {
            position: row[`${p}_position`],
            lots: lots(row[`${p}_position`]),
            outcome: row[`${p}_outcome`],
            reason: row[`${p}_reason`],
            pnl: Number(row[`${p}_pnl`]),
            slippage: row[`${p}_slippage`] === "" ? null : Number(row[`${p}_slippage`]),
            inSync: row[`${p}_position`] === row.target,
          };
    return {
      symbol: row.symbol,
      time: Date.parse(row.time) / 1000,
      bar: row.bar === "" ? null : Date.parse(row.bar) / 1000,
      virtualPnl: Number(row.virtual_pnl),
      targetLots: lots(row.target),
      live: book("live"),
      paper: book("paper"),
    };
  });
}

// Step series as change points: a value equal to the one holding adds nothing; a later value at
// the same x replaces the earlier one.
function setPoint(points, x, y) {
  const last = points[points.length - 1];
  if (last && last[0] === x) {
    last[1] = y;
    if (points.length >= 2 && points[points.length - 2][1] === y) points.pop();
    return;
  }
  if (last && last[1] === y) return;
  points.push([x, y]);
}

function expected(rows) {
  const bySym = new Map();
  for (const r of rows) {
    if (!bySym.has(r.symbol)) bySym.set(r.symbol, []);
    bySym.get(r.symbol).push(r);
  }
  const tf = new Map();
  for (const [sym, rs] of bySym) {
    const bars = [...new Set(rs.map((r) => r.bar).filter((b) => b !== null))].sort((a, b) => a - b);
    let gap = Infinity;
    for (let i = 1; i < bars.length; i++) gap = Math.min(gap, bars[i] - bars[i - 1]);
    tf.set(sym, gap);
  }
  const out = { symbols: new Map(), total: null };
  const mk = () => ({
    equity: { virtual: [], paper: [], live: [] },
    positions: { virtual: [], paper: [], live: [] },
    driftPnl: { paper: [], live: [] },
    notFollowed: new Map(), // "book|phase|reason" -> count
    steady: { live: [0, 0], paper: [0, 0] }, // [in sync, signals]
    warmupSignals: 0,
  });
  const total = mk();
  const first = new Map();
  const latest = new Map();
  const inTime = new Set();
  const joined = new Set();
  for (const r of rows) {
    const x = r.bar ?? r.time;
    const t = tf.get(r.symbol);
    const late = r.bar !== null && Number.isFinite(t) && r.time >= r.bar + 2 * t;
    const warm = late && !inTime.has(r.symbol);
    if (!late) inTime.add(r.symbol);
    if (!out.symbols.has(r.symbol)) out.symbols.set(r.symbol, mk());
    const s = out.symbols.get(r.symbol);
    if (!first.has(r.symbol)) first.set(r.symbol, {});
    const f = first.get(r.symbol);
    const l = latest.get(r.symbol) ?? { virtual: 0, paper: 0, live: 0 };
    const vals = { virtual: r.virtualPnl, paper: r.paper?.pnl, live: r.live?.pnl };
    for (const k of ["virtual", "paper", "live"]) {
      if (vals[k] === undefined) continue;
      if (!(k in f)) f[k] = vals[k];
      l[k] = vals[k] - f[k];
      setPoint(s.equity[k], x, l[k]);
    }
    latest.set(r.symbol, l);
    setPoint(s.positions.virtual, x, r.targetLots);
    if (warm) {
      s.warmupSignals++;
      total.warmupSignals++;
    }
    for (const k of ["paper", "live"]) {
      const b = r[k];
      if (!b) continue;
      setPoint(s.positions[k], x, b.lots);
      setPoint(s.driftPnl[k], x, l[k] - l.virtual);
      // Start-up: after the warm-up, the book's MISSED_ENTRY answers until its first signal in sync.
      const jk = `${r.symbol}|${k}`;
      const startup = !warm && !joined.has(jk) && !b.inSync && b.reason === "MISSED_ENTRY";
      if (!warm && !startup) joined.add(jk);
      const phase = warm ? "warmup" : startup ? "startup" : "steady";
      if (phase === "steady") {
        for (const acc of [s, total]) {
          acc.steady[k][1]++;
          if (b.inSync) acc.steady[k][0]++;
        }
      }
      if (!b.inSync) {
        const key = `${k}|${phase}|${b.reason === "" ? "OK_BUT_DIFFERENT" : b.reason}`;
        for (const acc of [s, total]) acc.notFollowed.set(key, (acc.notFollowed.get(key) ?? 0) + 1);
      }
    }
    for (const k of ["virtual", "paper", "live"]) {
      let sum = 0;
      for (const v of latest.values()) sum += v[k];
      if (vals[k] !== undefined) setPoint(total.equity[k], x, sum);
    }
  }
  out.total = total;
  return out;
}

// ---- what the page holds ----------------------------------------------------------------------

function readPage() {
  const nums = (s) => (s.trim() === "" ? [] : s.trim().split(/\s+/).map(Number));
  const sections = {};
  for (const sec of document.querySelectorAll("section[data-symbol]")) {
    const charts = [];
    for (const svg of sec.querySelectorAll("svg.chart")) {
      const d = svg.dataset;
      charts.push({
        kind: d.kind,
        book: d.book ?? null,
        box: ["x0", "x1", "y0", "y1", "left", "top", "width", "height"].map((k) => Number(d[k])),
        series: [...svg.querySelectorAll("polyline")].map((p) => ({
          name: p.dataset.series,
          xs: nums(p.dataset.x),
          ys: nums(p.dataset.y),
          points: p.getAttribute("points").trim().split(/\s+/).map((xy) => xy.split(",").map(Number)),
        })),
      });
    }
    const bars = [...sec.querySelectorAll("svg.bars rect[data-count]")].map((r) => ({
      key: `${r.dataset.book}|${r.dataset.phase}|${r.dataset.reason}`,
      count: Number(r.dataset.count),
      width: Number(r.getAttribute("width")),
    }));
    const maxWidth = Number(sec.querySelector("svg.bars")?.dataset.width ?? 0);
    const rows = {};
    for (const tr of sec.querySelectorAll("tr[data-book]")) {
      const cell = (f) => tr.querySelector(`[data-field="${f}"]`)?.textContent;
      rows[tr.dataset.book] = {
        inSync: Number(cell("steady-in-sync")),
        signals: Number(cell("steady-signals")),
        warmup: Number(cell("warmup-signals")),
      };
    }
    const attribution = {};
    for (const tr of sec.querySelectorAll("tr[data-attribution]")) {
      const cell = (f) => Number(tr.querySelector(`[data-field="${f}"]`)?.textContent);
      attribution[tr.dataset.attribution] = {
        gap: cell("gap"),
        missed: cell("missed"),
        execution: cell("execution"),
        other: cell("other"),
      };
    }
    sections[sec.dataset.symbol] = { charts, bars, maxWidth, rows, attribution };
  }
  return { sections, summary: document.querySelector("#summary")?.textContent ?? "" };
}

// ---- checks -----------------------------------------------------------------------------------

const close = (a, b, tol = 1e-6) => Math.abs(a - b) <= tol;

function checkSeries(where, got, want) {
  assert.ok(got, `${where}: series missing`);
  assert.equal(got.xs.length, want.length, `${where}: change points`);
  want.forEach(([x, y], i) => {
    assert.equal(got.xs[i], x, `${where}: x[${i}]`);
    assert.ok(close(got.ys[i], y), `${where}: y[${i}] page ${got.ys[i]} csv ${y}`);
  });
}

// The drawing itself: every change point (x, y) is a vertex of the polyline at the scaled place.
function checkGeometry(where, chart, s) {
  const [x0, x1, y0, y1, left, top, width, height] = chart.box;
  const sx = (x) => (x1 > x0 ? left + (width * (x - x0)) / (x1 - x0) : left + width / 2);
  const sy = (y) => top + (height * (y1 - y)) / (y1 - y0);
  s.xs.forEach((x, i) => {
    const [px, py] = [sx(x), sy(s.ys[i])];
    const hit = s.points.some(([a, b]) => close(a, px, 0.011) && close(b, py, 0.011));
    assert.ok(hit, `${where}: no vertex at (${px.toFixed(2)}, ${py.toFixed(2)}) for point ${i}`);
    assert.ok(s.ys[i] >= y0 - 1e-9 && s.ys[i] <= y1 + 1e-9, `${where}: point ${i} outside the axis`);
  });
}

function checkSection(name, sec, want, isTotal) {
  assert.ok(sec, `section ${name} missing`);
  for (const book of ["virtual", "paper", "live"]) {
    const chart = sec.charts.find((c) => c.kind === "equity" && c.book === book);
    if (want.equity[book].length === 0) continue;
    assert.ok(chart, `${name}: equity chart of ${book}`);
    checkSeries(`${name} equity ${book}`, chart.series[0], want.equity[book]);
    checkGeometry(`${name} equity ${book}`, chart, chart.series[0]);
  }
  // The three equity charts share one y axis, so they compare at a glance.
  const eq = sec.charts.filter((c) => c.kind === "equity");
  assert.ok(eq.every((c) => c.box[2] === eq[0].box[2] && c.box[3] === eq[0].box[3]), `${name}: shared axis`);
  if (!isTotal) {
    const pos = sec.charts.find((c) => c.kind === "positions");
    for (const book of ["virtual", "paper", "live"]) {
      if (want.positions[book].length === 0) continue;
      const s = pos.series.find((x) => x.name === book);
      checkSeries(`${name} positions ${book}`, s, want.positions[book]);
      checkGeometry(`${name} positions ${book}`, pos, s);
    }
    const dp = sec.charts.find((c) => c.kind === "drift-pnl");
    for (const book of ["paper", "live"]) {
      if (want.driftPnl[book].length === 0) continue;
      const s = dp.series.find((x) => x.name === book);
      checkSeries(`${name} drift ${book}`, s, want.driftPnl[book]);
      checkGeometry(`${name} drift ${book}`, dp, s);
    }
  }
  const gotBars = new Map(sec.bars.map((b) => [b.key, b.count]));
  assert.deepEqual(gotBars, want.notFollowed, `${name}: signals not followed by book|phase|reason`);
  const max = Math.max(1, ...sec.bars.map((b) => b.count));
  for (const b of sec.bars) {
    assert.ok(close(b.width, (sec.maxWidth * b.count) / max, 0.01), `${name}: bar ${b.key} width`);
  }
  // The PnL attribution: book − virtual as the CSV has it, and its parts add up to it (to the
  // cents each part is printed with).
  for (const book of ["live", "paper"]) {
    const eqBook = want.equity[book];
    if (eqBook.length === 0) continue;
    const a = sec.attribution[book];
    assert.ok(a, `${name}: attribution of ${book}`);
    const last = (pts) => (pts.length ? pts[pts.length - 1][1] : 0);
    const gap = last(eqBook) - last(want.equity.virtual);
    assert.ok(close(a.gap, gap, 0.006), `${name}: ${book} − virtual ${a.gap} vs ${gap}`);
    assert.ok(close(a.missed + a.execution + a.other, a.gap, 0.016), `${name}: ${book} parts add up`);
  }
  for (const book of ["live", "paper"]) {
    const [inSync, signals] = want.steady[book];
    if (signals === 0) continue;
    assert.equal(sec.rows[book].inSync, inSync, `${name}: ${book} steady in sync`);
    assert.equal(sec.rows[book].signals, signals, `${name}: ${book} steady signals`);
  }
}

const cases = readdirSync(fixtures).filter((f) => f.endsWith(".csv"));

test("there are drift logs to check", () => {
  assert.ok(cases.length >= 2, `fixtures in ${fixtures}`);
});

for (const name of cases) {
  test(`the HTML report of ${name} loads cleanly and holds the CSV's data`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "drift-html-"));
    try {
      const csv = join(fixtures, name);
      const html = join(dir, "report.html");
      execFileSync(executor, ["drift-report", "--log", csv, "--config", join(root, "executor_config.json"), "--html", html], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      const ctx = await chromium.launchPersistentContext(join(dir, "profile"), {
        executablePath: browserPath,
        headless: true,
        args: FLAGS,
      });
      try {
        const page = await ctx.newPage();
        const errors = [];
        const requests = [];
        page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
        page.on("pageerror", (e) => errors.push(String(e)));
        page.on("request", (r) => r.url().startsWith("file:") || requests.push(r.url()));
        await page.goto(pathToFileURL(html).href, { waitUntil: "load" });
        const got = await page.evaluate(readPage);
        if (process.env.REPORT_SCREENSHOT_DIR) {
          await page.screenshot({ path: join(process.env.REPORT_SCREENSHOT_DIR, `${name}.png`), fullPage: true });
        }
        assert.deepEqual(errors, [], "console errors");
        assert.deepEqual(requests, [], "network requests");
        const want = expected(parseCsv(readFileSync(csv, "utf8")));
        assert.ok(got.summary.includes("in sync"), "summary text");
        checkSection("All symbols", got.sections["All symbols"], want.total, true);
        assert.deepEqual(
          Object.keys(got.sections).filter((s) => s !== "All symbols").sort(),
          [...want.symbols.keys()].sort(),
          "one section per symbol",
        );
        for (const [sym, w] of want.symbols) checkSection(sym, got.sections[sym], w, false);
        // On a phone-narrow window the symbol links wrap instead of running off to the right (they
        // had no break opportunity between them and overflowed a narrow window).
        await page.setViewportSize({ width: 240, height: 800 });
        const nav = await page.evaluate(() => {
          const links = [...document.querySelectorAll("nav a")];
          return {
            links: links.length,
            right: Math.max(...links.map((a) => a.getBoundingClientRect().right)),
            width: document.documentElement.clientWidth,
          };
        });
        assert.ok(nav.links >= 3, `symbol links: ${nav.links}`);
        assert.ok(nav.right <= nav.width, `a symbol link ends at ${nav.right} px, past the ${nav.width} px window`);
      } finally {
        await ctx.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
