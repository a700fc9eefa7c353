// Benchmark helper (scripts/bench_hub.sh): opens the hub's fleet page in headless Chromium, logs
// in, and measures for every fleet row the page redraws the time from the instance's telemetry
// timestamp (ts_ms, set when the instance made the record) to the moment the row is in the DOM.
// Same machine, same clock. Prints one JSON line: {"samples": n, "p50_ms": …, "p99_ms": …, "rows": …}.
//
//   node scripts/browser/hub_latency.mjs URL PASSWORD SECONDS
import { chromium } from "playwright-core";

const [url, password, secs] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
const page = await browser.newPage();
await page.goto(`${url}/login`);
await page.fill("input[name=username]", "operator");
await page.fill("input[name=password]", password);
await page.click("button[type=submit]");
await page.waitForURL(`${url}/`);
await page.waitForSelector("#fleet tbody tr");
await page.evaluate(() => {
  window.__lat = [];
  new MutationObserver((muts) => {
    const now = Date.now();
    for (const m of muts) for (const n of m.addedNodes) {
      if (n.nodeName === "TR" && n.dataset.telemetryMs) window.__lat.push(now - Number(n.dataset.telemetryMs));
    }
  }).observe(document.querySelector("#fleet tbody"), { childList: true });
});
await new Promise((r) => setTimeout(r, Number(secs) * 1000));
const lat = (await page.evaluate(() => window.__lat)).sort((a, b) => a - b);
const rows = await page.locator("#fleet tbody tr").count();
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.round((lat.length - 1) * p))] : null);
console.log(JSON.stringify({ samples: lat.length, p50_ms: q(0.5), p99_ms: q(0.99), rows }));
await browser.close();
