// The Oracle Hub dashboard in headless Chromium with REAL instances (issue 16): a real Mosquitto
// (hub/mosquitto/ config, TLS, ACL) and `hub serve` on SQLite (hub_env.mjs), and two instances
// added with `hub add-instance`, each an executor with the `hub` section the hub printed:
//   shadow — ctrader-sim + `executor run` (shadow: live book on the simulator, paper beside it)
//            + `preditor run` (3 shipped models);
//   paper  — `executor run` in paper mode on CSV bars + its own preditor.
// Every process is started here on free ports in private temp dirs and stopped by pid.
// The flows: log in; both instances online, each with the equity its executor reports itself
// (`executor ctl status`); SIGKILL the paper executor and see it offline; pause the shadow one and
// see its result (and the executor paused); flatten it with the dialog's confirmation and see its
// positions go flat AT THE SIMULATOR (its own count, not the dashboard's).
// (hub_dashboard.test.mjs drives the same page with synthetic instances: hostile payloads, CSRF,
// no foreign request.)
//
// The executor must accept the `hub` section as `hub add-instance` prints it (`executor check`):
// a refusal fails the test, it is never skipped.
// Env: EXECUTOR_BIN, PREDITOR_BIN, CTRADER_SIM_BIN (default target/debug/…), and hub_env.mjs's.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, symlinkSync, chmodSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root, browserPath, FLAGS, sleep, freePort, start, stopAll, setupFleet, login, money } from "./hub_env.mjs";

const executorBin = process.env.EXECUTOR_BIN ?? join(root, "target/debug/executor");
const preditorBin = process.env.PREDITOR_BIN ?? join(root, "target/debug/preditor");
const simBin = process.env.CTRADER_SIM_BIN ?? join(root, "target/debug/ctrader-sim");
const SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY"];
const START_BAR = 400;
// The simulator's defaults (ctrader-sim --help): the executor's config names them.
const SIM = { clientId: "sim-client-id", secret: "sim-client-secret", access: "sim-access-token", refresh: "sim-refresh-token", account: 1000001 };

function secret(path, text) {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

// The first `rows` bars of each symbol's demo file, in dir/bars.
function bars(dir, rows) {
  mkdirSync(join(dir, "bars"));
  for (const s of SYMBOLS) {
    const lines = readFileSync(join(root, `data/demo/${s}.csv`), "utf8").split("\n").slice(0, rows + 1);
    assert.equal(lines.length, rows + 1, `data/demo/${s}.csv is too short`);
    writeFileSync(join(dir, "bars", `${s}.csv`), lines.join("\n") + "\n");
  }
}

// One instance's directory: its models, IPC token, the hub's CA and its broker token (copied, as
// an operator copies them to the instance's VM, 0600), and its executor config with `hub`.
function instanceDir(base, name, env, id) {
  const dir = join(base, name);
  for (const d of ["", "models", "secrets", "preditor-state"]) mkdirSync(join(dir, d), { recursive: true });
  for (const s of SYMBOLS) symlinkSync(join(root, `models/${s}_H1.zip`), join(dir, `models/${s}_H1.zip`));
  secret(join(dir, "secrets/ipc.token"), `${"ab".repeat(24)}\n`);
  copyFileSync(join(env.dir, "fleet-ca.pem"), join(dir, "hub-ca.pem"));
  secret(join(dir, "secrets/hub_token"), readFileSync(join(env.dir, "instances", `${id}.token`), "utf8"));
  const hubSection = { ...env.snippets[id], ca_file: join(dir, "hub-ca.pem"), token_file: join(dir, "secrets/hub_token") };
  return { dir, id, hubSection };
}

function config(inst, ipcPort, broker, withHub) {
  const shipped = JSON.parse(readFileSync(join(root, "executor_config.json"), "utf8"));
  const symbols = Object.fromEntries(SYMBOLS.map((s) => [s, shipped.symbols[s]]));
  const doc = {
    timeframe: "H1", models_dir: "models", stale_signal_max_age_secs: 60, clock: "feed",
    log_dir: "log", state_dir: "state",
    ipc: { bind: `127.0.0.1:${ipcPort}`, token_file: "secrets/ipc.token", hello_timeout_secs: 3 },
    broker, symbols,
  };
  if (withHub) doc.hub = inst.hubSection;
  const path = join(inst.dir, "executor.json");
  writeFileSync(path, JSON.stringify(doc, null, 2));
  return path;
}

// `executor check`: { ok, out }.
function check(path) {
  const r = spawnSync(executorBin, ["check", "--config", path], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

// `executor ctl --json status` of a running executor: its own status document.
function ctlStatus(path) {
  const out = execFileSync(executorBin, ["ctl", "--config", path, "--json", "status"], { encoding: "utf8" });
  const o = JSON.parse(out.trim().split("\n").pop());
  assert.equal(o.result, "status", out);
  return o;
}

// One line on the simulator's control socket; its one-line answer.
function control(addr, cmd) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  return new Promise((res, rej) => {
    let buf = "";
    const c = connect(port, host, () => c.write(`${cmd}\n`));
    c.setEncoding("utf8");
    c.on("data", (d) => { buf += d; if (buf.includes("\n")) { c.destroy(); res(buf.trim()); } });
    c.on("error", rej);
  });
}

// The positions the simulator's account holds (its own count: control `status`).
async function simPositions(addr) {
  const s = await control(addr, "status");
  const m = s.match(/open_positions=(\d+)/);
  assert.ok(m, `ctrader-sim status: ${s}`);
  return Number(m[1]);
}

async function waitFor(what, ms, f) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

async function startSim(dir) {
  const sim = start(simBin, ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--data", join(dir, "bars"),
    "--cert-out", join(dir, "sim-ca.pem"), "--speed", "4", "--start-bar", String(START_BAR),
    "--rate-limit", "0", "--historical-rate-limit", "0"]);
  const first = await waitFor("ctrader-sim's first line", 30_000, () => sim.log.match(/listening=\S+:(\d+) .*control=(\S+)/) || sim.exitCode !== null);
  assert.ok(Array.isArray(first), `ctrader-sim did not start: ${sim.log}`);
  return { proc: sim, port: Number(first[1]), control: first[2] };
}

async function startExecutor(path, name) {
  const p = start(executorBin, ["run", "--config", path], { env: { ...process.env, RUST_LOG: "info" } });
  await waitFor(`the ${name} executor serving`, 60_000, () => {
    if (p.exitCode !== null) throw new Error(`the ${name} executor exited: ${p.log}`);
    return p.log.includes("serving the preditor");
  });
  return p;
}

function startPreditor(inst, ipcPort) {
  return start(preditorBin, ["run", "--executor", `ws://127.0.0.1:${ipcPort}`, "--token-file", join(inst.dir, "secrets/ipc.token"),
    "--models", join(inst.dir, "models"), "--state-dir", join(inst.dir, "preditor-state")]);
}

test("hub dashboard with real instances: equity as the executors report it, offline, pause, flatten at the simulator", { timeout: 420_000 }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), "hub-fleet-"));
  // The broker's files apart: as root, Mosquitto runs as its own user and must enter their dir.
  const fleetDir = mkdtempSync(join(tmpdir(), "hub-fleet-broker-"));
  const profile = join(tmpdir(), `hub-fleet-profile-${process.pid}`);
  let ctx;
  try {
    const env = await setupFleet(fleetDir, ["shadow-1", "paper-1"], { telemetrySecs: 1 });
    const shadow = instanceDir(base, "shadow", env, "shadow-1");
    const paper = instanceDir(base, "paper", env, "paper-1");
    bars(shadow.dir, START_BAR + 600);
    bars(paper.dir, START_BAR + 160);

    const sim = await startSim(shadow.dir);
    secret(join(shadow.dir, "secrets/ct_secret"), `${SIM.secret}\n`);
    secret(join(shadow.dir, "secrets/ct_tokens.json"), JSON.stringify({ access_token: SIM.access, refresh_token: SIM.refresh }));
    const shadowBroker = {
      mode: "shadow",
      ctrader: { host: "127.0.0.1", port: sim.port, ca_file: join(shadow.dir, "sim-ca.pem"), client_id: SIM.clientId,
        secret_file: "secrets/ct_secret", token_file: "secrets/ct_tokens.json", account_id: SIM.account, request_timeout_ms: 2000 },
      paper: { initial_balance: 100000, leverage: 30 },
    };
    const paperBroker = { mode: "paper", paper: { initial_balance: 100000, leverage: 30, bars_dir: join(paper.dir, "bars"), replay_bars_per_second: 8, start_bar: START_BAR } };
    const [shadowIpc, paperIpc] = [await freePort(), await freePort()];
    const shadowCfg = config(shadow, shadowIpc, shadowBroker, true);
    const paperCfg = config(paper, paperIpc, paperBroker, true);
    for (const p of [shadowCfg, paperCfg]) {
      const r = check(p);
      assert.ok(r.ok, `executor check ${p}:\n${r.out}`);
    }

    const shadowExec = await startExecutor(shadowCfg, "shadow");
    startPreditor(shadow, shadowIpc);
    const paperExec = await startExecutor(paperCfg, "paper");
    startPreditor(paper, paperIpc);

    // The shadow instance trades at the simulator; then its clock is held, so no price moves and
    // every equity figure below stays put.
    const held = await waitFor("a position at the simulator", 240_000, async () => (await simPositions(sim.control)) || (shadowExec.exitCode !== null && "dead"));
    assert.notEqual(held, "dead", `the shadow executor died: ${shadowExec.log}`);
    assert.match(await control(sim.control, "pause"), /^OK/);
    await waitFor("the paper replay's end", 120_000, () => paperExec.log.includes("CSV replay finished"));
    await sleep(1500); // the last bar's ACKs and books settle
    const own = { "shadow-1": ctlStatus(shadowCfg), "paper-1": ctlStatus(paperCfg) };
    assert.equal(own["shadow-1"].mode, "shadow");
    assert.equal(own["paper-1"].mode, "paper");
    const live = own["shadow-1"].books.find((b) => b.book === "live");
    assert.ok(live && live.symbols.some((s) => s.positions.length > 0), `the executor's live book holds nothing: ${JSON.stringify(own["shadow-1"].books)}`);


    ctx = await chromium.launchPersistentContext(profile, { executablePath: browserPath, headless: true, args: FLAGS });
    const page = await ctx.newPage();
    const errors = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    await login(page, env);
    const row = (id) => page.locator(`#fleet tr[data-instance="${id}"]`);

    // Both online, each with the equity its executor reports itself (the clock is held: it stays).
    for (const id of ["shadow-1", "paper-1"]) {
      await row(id).locator("td.status", { hasText: "online" }).waitFor({ timeout: 60_000 });
      const want = money(own[id].telemetry.equity);
      await page.waitForFunction(([id, want]) => document.querySelector(`tr[data-instance="${id}"] td.equity`)?.textContent === want,
        [id, want], { timeout: 30_000 }).catch(async () => {
        assert.fail(`${id}: the dashboard shows equity ${await row(id).locator("td.equity").textContent()}, its executor ${want}`);
      });
      assert.equal(await row(id).locator("td.mode").textContent(), own[id].mode);
      t.diagnostic(`${id}: equity ${want} on the dashboard and from executor ctl status`);
    }
    for (const [id, cfg] of [["shadow-1", shadowCfg], ["paper-1", paperCfg]]) {
      assert.equal(ctlStatus(cfg).telemetry.equity, own[id].telemetry.equity, `${id}'s equity moved while the clock was held`);
    }

    // SIGKILL the paper executor: its row turns offline (its last will), live, without a reload.
    process.kill(paperExec.pid, "SIGKILL");
    const killed = Date.now();
    await row("paper-1").locator("td.status", { hasText: "offline" }).waitFor({ timeout: 60_000 });
    t.diagnostic(`paper-1 shown offline ${Date.now() - killed} ms after its SIGKILL`);
    await row("paper-1").locator("td.alerts", { hasText: "OFFLINE" }).waitFor();

    // Pause the shadow instance: the result on the page, and the executor itself paused.
    await row("shadow-1").locator('button[data-cmd="pause"]').click();
    await page.locator('#results li[data-instance="shadow-1"][data-op="pause"][data-kind="ok"]').waitFor({ timeout: 30_000 });
    await row("shadow-1").locator("td.alerts", { hasText: "PAUSED" }).waitFor({ timeout: 15_000 });
    assert.equal(ctlStatus(shadowCfg).paused, true, "the executor is not paused");

    // Flatten: nothing closes at the simulator until the dialog's second confirmation.
    const before = await simPositions(sim.control);
    assert.ok(before > 0);
    t.diagnostic(`the simulator holds ${before} position(s) before the flatten`);
    await row("shadow-1").locator('button[data-cmd="flatten"]').click();
    await page.locator("#confirm[open]").waitFor({ timeout: 30_000 });
    assert.match(await page.locator('#confirm-list li[data-instance="shadow-1"]').textContent(), /flatten/);
    await page.locator('#results li[data-instance="shadow-1"][data-kind="needs_confirmation"]').waitFor();
    await sleep(1000);
    assert.equal(await simPositions(sim.control), before, "the simulator closed positions before the confirmation");
    await page.click("#confirm-ok");
    await page.locator('#results li[data-instance="shadow-1"][data-op="flatten (confirmed)"][data-kind="flattened"]').waitFor({ timeout: 30_000 });
    await waitFor("the simulator holding nothing", 30_000, async () => (await simPositions(sim.control)) === 0);
    const after = ctlStatus(shadowCfg);
    for (const b of after.books) {
      assert.ok(b.symbols.every((s) => s.positions.length === 0), `${b.book} book after the flatten: ${JSON.stringify(b.symbols)}`);
    }
    await page.waitForFunction(() => document.querySelector('tr[data-instance="shadow-1"] td.open')?.textContent === "0", null, { timeout: 15_000 });
    assert.deepEqual(errors, [], "console errors");
  } finally {
    if (ctx) await ctx.close();
    await stopAll();
    rmSync(base, { recursive: true, force: true });
    rmSync(fleetDir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});
