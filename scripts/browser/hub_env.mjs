// What the hub's Chromium tests share (not a test file itself): free ports, processes started and
// stopped by pid, and the fleet's broker and hub — a real Mosquitto from hub/mosquitto/ (TLS, ACL,
// password file) on a free port in a private directory, and `hub serve` on SQLite — with the
// instances added by `hub add-instance`.
// Env: HUB_BIN (default target/debug/hub), MOSQUITTO (default /usr/sbin/mosquitto), CHROMIUM.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync, copyFileSync, chownSync, readdirSync, statSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const hubBin = process.env.HUB_BIN ?? join(root, "target/debug/hub");
const mosquittoBin = process.env.MOSQUITTO ?? "/usr/sbin/mosquitto";
export const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

export async function waitPort(port, child, what) {
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

export function hub(args, input) {
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

// Everything a test starts, stopped by pid in reverse order.
const started = [];
export function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.log = "";
  child.stdout.on("data", (d) => { child.log += d; });
  child.stderr.on("data", (d) => { child.log += d; });
  started.push(child);
  return child;
}

export async function stopAll() {
  for (const c of started.splice(0).reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, "SIGTERM"); } catch (_) {}
      for (let i = 0; i < 100 && c.exitCode === null && c.signalCode === null; i++) await sleep(50);
      if (c.exitCode === null && c.signalCode === null) try { process.kill(c.pid, "SIGKILL"); } catch (_) {}
    }
  }
}

// The broker and the hub in `dir`, with the instances `ids` added (`hub add-instance`: their
// credentials, their 0600 tokens in dir/instances, the executor snippet of each in `snippets`).
export async function setupFleet(dir, ids, { telemetrySecs = 10 } = {}) {
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
  const snippets = {};
  for (const id of ids) {
    snippets[id] = JSON.parse(hub(["add-instance", id, ...broker, "--key-file", join(dir, "hub_key"),
      "--broker-url", `mqtts://localhost:${port}`, "--telemetry-secs", String(telemetrySecs)])).hub;
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
  // Mosquitto drops root for its own user (mosquitto.conf(5), `user`); then it must own (and
  // read) its files.
  const owner = process.getuid() === 0 ? userIds("mosquitto") : null;
  if (owner) chownTree(dir, owner.uid, owner.gid);
  const mosq = start(mosquittoBin, ["-c", join(dir, "mosquitto.conf")], owner ? { uid: owner.uid, gid: owner.gid } : {});
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
  return { url, password, port, publicKey, snippets, hubProc: h, mosq, dir };
}

// Logs the operator in on `page` (a wrong password first: it must be refused).
export async function login(page, env) {
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
}

// A money figure as the fleet page shows it.
export const money = (x) => x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
