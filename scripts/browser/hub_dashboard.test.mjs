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
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync, chownSync, readdirSync, statSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const hubBin = process.env.HUB_BIN ?? join(root, "target/debug/hub");
const simBin = process.env.FLEET_SIM_BIN ?? join(root, "target/debug/fleet-sim");
const mosquittoBin = process.env.MOSQUITTO ?? "/usr/sbin/mosquitto";
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

async function waitPort(port, child, what) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
    const ok = await new Promise((r) => {
      const c = connect(port, "127.0.0.1", () => { c.destroy(); r(true); });
      c.once("error", () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${port}`);
}

function hub(args, input) {
  return execFileSync(hubBin, args, { input, stdio: ["pipe", "pipe", "pipe"] }).toString().trim();
}

function chownTree(dir, uid, gid) {
  chownSync(dir, uid, gid);
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

function userIds(name) {
  try {
    return { uid: Number(execFileSync("id", ["-u", name]).toString()), gid: Number(execFileSync("id", ["-g", name]).toString()) };
  } catch (_) {
    return null;
  }
}

// Everything this test starts, stopped by pid in reverse order.
const started = [];
function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.log = "";
  child.stdout.on("data", (d) => { child.log += d; });
  child.stderr.on("data", (d) => { child.log += d; });
  started.push(child);
  return child;
}

async function stopAll() {
  for (const c of started.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, "SIGTERM"); } catch (_) {}
      for (let i = 0; i < 100 && c.exitCode === null && c.signalCode === null; i++) await sleep(50);
      if (c.exitCode === null && c.signalCode === null) try { process.kill(c.pid, "SIGKILL"); } catch (_) {}
    }
  }
}

async function setup(dir) {
  hub(["dev-certs", "--dir", dir]);
  const port = await freePort();
  const conf = readFileSync(join(root, "hub/mosquitto/oracle-fleet.conf"), "utf8")
    .replaceAll("/etc/mosquitto/oracle/", `${dir}/`)
    .replaceAll("/etc/mosquitto/certs/", `${dir}/`)
    .replace("listener 8883", `listener ${port} 127.0.0.1`);
  writeFileSync(join(dir, "mosquitto.conf"), `${conf}\nlog_dest stderr\npersistence false\n`);
  copyFileSync(join(root, "hub/mosquitto/acl"), join(dir, "acl"));
  const broker = ["--passwd-file", join(dir, "passwd"), "--token-dir", join(dir, "instances")];
  hub(["set-hub-user", ...broker, "--password-file", join(dir, "broker_password")]);
  const publicKey = hub(["gen-key", "--key-file", join(dir, "hub_key")]);
  for (const id of ["alpha", "beta"]) {
    hub(["add-instance", id, ...broker, "--key-file", join(dir, "hub_key"), "--broker-url", `mqtts://localhost:${port}`]);
  }
  const password = randomBytes(18).toString("base64url");
  const hash = hub(["hash-password"], `${password}\n`);
  writeFileSync(join(dir, "hub.json"), JSON.stringify({
    listen: "127.0.0.1:0",
    database: `sqlite://${join(dir, "hub.db")}`,
    broker: { url: `mqtts://localhost:${port}`, ca_file: "fleet-ca.pem", username: "hub", password_file: "broker_password", client_id: "oracle-hub-browser" },
    operator: { username: "operator", password_hash: hash },
    key_file: "hub_key",
    command_ttl_secs: 30,
  }));
  // Mosquitto drops root for its own user; then it must own (and read) its files.
  const ids = process.getuid() === 0 ? userIds("mosquitto") : null;
  if (ids) chownTree(dir, ids.uid, ids.gid);
  const mosq = start(mosquittoBin, ["-c", join(dir, "mosquitto.conf")], ids ? { uid: ids.uid, gid: ids.gid } : {});
  await waitPort(port, mosq, "mosquitto");
  const h = start(hubBin, ["serve", "--config", join(dir, "hub.json")], { env: { ...process.env, RUST_LOG: "info" } });
  let url = null;
  for (let i = 0; i < 400 && !url; i++) {
    const m = h.log.match(/hub: dashboard on (http:\/\/[0-9.:]+)\//);
    if (m) url = m[1];
    else await sleep(50);
  }
  assert.ok(url, `hub did not start: ${h.log}`);
  for (let i = 0; i < 200 && !h.log.includes("hub connected to the broker"); i++) await sleep(50);
  const sim = (id, mode) => start(simBin, ["--broker", `mqtts://localhost:${port}`, "--ca-file", join(dir, "fleet-ca.pem"),
    "--tokens", join(dir, "instances"), "--hub-public-key", publicKey, "--id", id, "--mode", mode,
    "--bar-ms", "300", "--signal-every", "1", "--telemetry-ms", "500", "--keepalive-secs", "5"]);
  return { url, password, port, alpha: sim("alpha", "shadow"), beta: sim("beta", "paper"), hubProc: h, mosq, dir };
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
    await page.goto(`${env.url}/`);
    assert.match(page.url(), /\/login$/);
    await page.fill("input[name=username]", "operator");
    await page.fill("input[name=password]", "not the password");
    await page.click("button[type=submit]");
    await page.waitForURL(/failed=1/);
    assert.equal(await page.isVisible("#failed"), true);
    await page.fill("input[name=username]", "operator");
    await page.fill("input[name=password]", env.password);
    await page.click("button[type=submit]");
    await page.waitForURL(`${env.url}/`);
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
      const want = r.telemetry.equity.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
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
