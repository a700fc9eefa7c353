// The Oracle Hub dashboard in headless Chromium, against a real Mosquitto (hub/mosquitto/ config,
// TLS, ACL), the `hub serve` binary on SQLite, and two synthetic instances (`fleet-sim`, built on
// the fleet contract): log in; both instances online with their equity; SIGKILL one and see it
// offline; pause the other and see its result; flatten it with the second confirmation and see
// its positions go flat; hostile text from an instance is shown as text; the page makes no request
// outside the hub (no CDN) and logs no error; a command without the CSRF token is refused.
//
//   node --test scripts/browser/            (scripts/test_browser.sh installs what it needs)
// Env: HUB_BIN, FLEET_SIM_BIN (default target/debug/{hub,fleet-sim}), CHROMIUM, MOSQUITTO
//      (default /usr/sbin/mosquitto), HUB_SCREENSHOT_DIR (optional).

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root, browserPath, FLAGS, start, stopAll, setupFleet, login, money } from "./hub_env.mjs";

const simBin = process.env.FLEET_SIM_BIN ?? join(root, "target/debug/fleet-sim");

async function setup(dir) {
  const env = await setupFleet(dir, ["alpha", "beta"]);
  const sim = (id, mode) => start(simBin, ["--broker", `mqtts://localhost:${env.port}`, "--ca-file", join(dir, "fleet-ca.pem"),
    "--tokens", join(dir, "instances"), "--hub-public-key", env.publicKey, "--id", id, "--mode", mode,
    "--bar-ms", "300", "--signal-every", "1", "--telemetry-ms", "500", "--keepalive-secs", "5"]);
  return { ...env, alpha: sim("alpha", "shadow"), beta: sim("beta", "paper") };
}

test("hub dashboard: login, fleet, offline, pause, flatten with confirmation", { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "hub-browser-"));
  let ctx;
  try {
    const env = await setup(dir);
    ctx = await chromium.launchPersistentContext(join(tmpdir(), `hub-profile-${process.pid}`), { executablePath: browserPath, headless: true, args: FLAGS });
    const page = await ctx.newPage();
    const errors = [];
    const foreign = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("request", (r) => r.url().startsWith(env.url) || foreign.push(r.url()));
    const shot = async (name) => process.env.HUB_SCREENSHOT_DIR && page.screenshot({ path: join(process.env.HUB_SCREENSHOT_DIR, `${name}.png`), fullPage: true });

    // Not logged in: the dashboard sends us to the login page; a wrong password is refused.
    await login(page, env);
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === "__Host-hub_session");
    assert.ok(session && session.httpOnly && session.secure && session.sameSite === "Strict", JSON.stringify(cookies));

    // Both instances online with their equity, as the API has it.
    const row = (id) => page.locator(`#fleet tr[data-instance="${id}"]`);
    for (const id of ["alpha", "beta"]) {
      await row(id).locator("td.status", { hasText: "online" }).waitFor({ timeout: 30_000 });
      await page.waitForFunction((id) => /\d/.test(document.querySelector(`tr[data-instance="${id}"] td.equity`)?.textContent || ""), id, { timeout: 30_000 });
    }
    const api = await page.evaluate(async () => (await (await fetch("/api/instances")).json()).instances);
    for (const r of api) {
      const shown = await row(r.instance).locator("td.equity").textContent();
      const want = money(r.telemetry.equity);
      assert.equal(shown, want, `${r.instance} equity`);
      assert.equal(await row(r.instance).locator("td.mode").textContent(), r.mode);
    }
    assert.equal(await row("alpha").locator("td.mode").textContent(), "shadow");
    await shot("fleet");

    // A command with the session cookie but without the CSRF token is refused (the browser
    // context's own request client: same cookie jar, no page script).
    const noCsrf = await ctx.request.post(`${env.url}/api/instances/beta/commands`, { data: { command: { op: "pause" } } });
    assert.equal(noCsrf.status(), 403);

    // SIGKILL alpha: its row turns offline, live, without a reload.
    process.kill(env.alpha.pid, "SIGKILL");
    const killed = Date.now();
    await row("alpha").locator("td.status", { hasText: "offline" }).waitFor({ timeout: 15_000 });
    const offlineAfter = Date.now() - killed;
    assert.ok(offlineAfter < 9000, `offline shown after ${offlineAfter} ms`);
    await row("alpha").locator("td.alerts", { hasText: "OFFLINE" }).waitFor();

    // beta has open positions; pause it and see the result.
    await page.waitForFunction(() => Number(document.querySelector('tr[data-instance="beta"] td.open')?.textContent) > 0, null, { timeout: 30_000 });
    await row("beta").locator('button[data-cmd="pause"]').click();
    await page.locator('#results li[data-instance="beta"][data-op="pause"][data-kind="ok"]').waitFor({ timeout: 15_000 });
    await row("beta").locator("td.alerts", { hasText: "PAUSED" }).waitFor({ timeout: 10_000 });

    // Flatten: nothing closes until the dialog's second confirmation.
    const openBefore = Number(await row("beta").locator("td.open").textContent());
    assert.ok(openBefore > 0);
    await row("beta").locator('button[data-cmd="flatten"]').click();
    await page.locator("#confirm[open]").waitFor({ timeout: 15_000 });
    assert.match(await page.locator('#confirm-list li[data-instance="beta"]').textContent(), /flatten every symbol/);
    await page.locator('#results li[data-instance="beta"][data-kind="needs_confirmation"]').waitFor();
    assert.equal(Number(await row("beta").locator("td.open").textContent()), openBefore, "closed before the confirmation");
    await shot("confirm");
    await page.click("#confirm-ok");
    await page.locator('#results li[data-instance="beta"][data-op="flatten (confirmed)"][data-kind="ok"]').waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('tr[data-instance="beta"] td.open')?.textContent === "0", null, { timeout: 10_000 });

    // The instance page: positions flat, charts drawn from telemetry, the feed and refusals.
    await page.goto(`${env.url}/instance/beta`);
    await page.locator("#positions tbody tr").first().waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll("#positions tbody td.paper")].every((td) => td.textContent === "FLAT"), null, { timeout: 10_000 });
    await page.waitForFunction(() => Number(document.querySelector('#equity polyline[data-series="paper"]')?.dataset.points) >= 2, null, { timeout: 10_000 });
    await page.locator("#feed li").first().waitFor();
    await page.locator('#refusals tr[data-reason="PAUSED"]').waitFor({ timeout: 15_000 });
    assert.equal(await page.textContent("#status"), "online");
    await shot("instance");

    // Hostile text from an instance (its own status, published with its own token) is shown as
    // text, never run.
    const xss = '<img src=x onerror="document.title=\'pwned\'">';
    const rec = JSON.stringify({ v: 1, seq: 1000000, ts_ms: Date.now(), body: { state: "online", mode: "paper", version: xss, started_ms: Date.now() } });
    const token = readFileSync(join(env.dir, "instances", "beta.token"), "utf8").trim();
    execFileSync("mosquitto_pub", ["-h", "localhost", "-p", String(env.port), "--cafile", join(env.dir, "fleet-ca.pem"), "-V", "mqttv5",
      "-u", "beta", "-P", token, "-i", "beta-pub", "-q", "1", "-r", "-t", "oracle/beta/status", "-m", rec]);
    await page.waitForFunction((x) => document.querySelector('#account dd[data-k="version"]')?.textContent === x, xss, { timeout: 15_000 });
    assert.equal(await page.locator("#account img").count(), 0);
    assert.notEqual(await page.title(), "pwned");

    // Logging out ends the session: the dashboard asks for the login again.
    await page.click("#logout");
    await page.waitForURL(/\/login$/);
    await page.goto(`${env.url}/`);
    assert.match(page.url(), /\/login$/);

    assert.deepEqual(errors, [], "console errors");
    assert.deepEqual(foreign, [], "requests outside the hub (the dashboard must work offline)");
  } finally {
    if (ctx) await ctx.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(tmpdir(), `hub-profile-${process.pid}`), { recursive: true, force: true });
  }
});
