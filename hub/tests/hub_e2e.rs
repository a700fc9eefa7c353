//! The hub end to end: a real Mosquitto, the `hub serve` binary, synthetic instances on the fleet
//! contract; the operator's API behind the login, signed commands and their results, Flatten's
//! confirmation, the live event stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use protocol::Mode;
use serde_json::{Value, json};
use support::Mosquitto;
use support::fleet_run::{Fleet, Spec};
use support::web::{HubProc, Web};

fn online_with_equity(v: &Value, ids: &[&str]) -> Option<()> {
    let list = v["instances"].as_array()?;
    for id in ids {
        let row = list.iter().find(|r| r["instance"] == *id)?;
        if row["status"] != "online" || row["telemetry"]["equity"].as_f64().is_none() {
            return None;
        }
    }
    Some(())
}

/// Sends a command and waits for the instance's answer.
fn command(web: &Web, id: &str, body: Value) -> Value {
    let r = web.post(&format!("/api/instances/{id}/commands"), &body);
    assert_eq!(r.status, 202, "{}", r.body);
    let cid = r.json()["command_id"].as_str().unwrap().to_string();
    web.wait(&format!("/api/commands/{cid}"), 15, |v| {
        let c = &v["command"];
        c["result_kind"].as_str().map(|_| c.clone())
    })
    .unwrap_or_else(|| panic!("no answer to {body}"))
}

fn telemetry(web: &Web, id: &str) -> Value {
    web.get(&format!("/api/instances/{id}")).json()["instance"]["telemetry"].clone()
}

fn positions_open(t: &Value) -> usize {
    t["symbols"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|x| x["live"]["side"] != "FLAT" || x["paper"]["side"] != "FLAT")
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn operator_login_commands_and_confirmation() {
    let broker = Mosquitto::start();
    let ta = broker.add_instance("a");
    let tb = broker.add_instance("b");
    let mut hub = HubProc::start(&broker, None);
    let mut fleet = Fleet::new();
    fleet.add(
        &broker,
        &ta,
        &hub.public_key,
        Spec {
            id: "a",
            mode: Mode::Shadow,
            ..Spec::default()
        },
    );
    fleet.add(
        &broker,
        &tb,
        &hub.public_key,
        Spec {
            id: "b",
            mode: Mode::Paper,
            ..Spec::default()
        },
    );

    // Nothing without a session: API 401, pages redirect to the login, assets and login page load.
    let anon = Web::new(&hub.url);
    for path in [
        "/api/instances",
        "/api/instances/a",
        "/api/events",
        "/api/stats",
        "/api/commands/x",
    ] {
        assert_eq!(anon.get(path).status, 401, "{path}");
    }
    let r = anon.get("/");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = anon.get("/login");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(anon.get("/assets/fleet.js").status, 200);
    assert_eq!(anon.get("/api/health").status, 200);
    let mut forged = Web::new(&hub.url);
    forged.cookie = Some("__Host-hub_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    assert_eq!(forged.get("/api/instances").status, 401);

    // A wrong password gets no cookie.
    let r = anon.login_raw("operator", "wrong password");
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login?failed=1"))
    );
    assert!(r.header("set-cookie").is_none());

    let mut web = Web::new(&hub.url);
    web.login(&hub.password);
    web.wait("/api/instances", 30, |v| online_with_equity(v, &["a", "b"]))
        .unwrap_or_else(|| {
            let log: Vec<String> = broker
                .log()
                .lines()
                .filter(|l| !l.contains("PING"))
                .map(str::to_string)
                .collect();
            panic!(
                "instances not online: {}\nbroker: {}\nhub: {}",
                web.get("/api/instances").body,
                log[..log.len().min(200)].join("\n"),
                hub.log()
            )
        });
    let a = web.get("/api/instances/a").json();
    assert_eq!(a["instance"]["mode"], "shadow");
    assert_eq!(
        web.get("/api/instances/b").json()["instance"]["mode"],
        "paper"
    );

    // Every command needs the CSRF token and the same origin; an unknown instance is refused.
    let pause = json!({"command": {"op": "pause"}});
    let mut no_csrf = Web::new(&hub.url);
    no_csrf.cookie = web.cookie.clone();
    assert_eq!(
        no_csrf.post("/api/instances/a/commands", &pause).status,
        403
    );
    assert_eq!(
        web.post_with(
            "/api/instances/a/commands",
            &pause,
            &[("Origin", "https://evil.example")]
        )
        .status,
        403
    );
    assert_eq!(
        web.post_with("/api/instances/a/commands", &pause, &[("Origin", "null")])
            .status,
        403
    );
    assert_eq!(anon.post("/api/instances/a/commands", &pause).status, 401);
    assert_eq!(web.post("/api/instances/zz/commands", &pause).status, 404);
    // Range checks name the field; unknown fields are refused.
    let r = web.post(
        "/api/instances/a/commands",
        &json!({"command": {"op": "set_lots", "symbol": "EURUSD", "lot_weak": 0, "lot_moderate": 0.01, "lot_strong": 0.01}}),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("lot_weak"), "{}", r.body);
    let r = web.post(
        "/api/instances/a/commands",
        &json!({"command": {"op": "pause", "hard": true}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        web.post("/api/instances/a/commands", &json!("pause"))
            .status,
        400
    );

    // Wait for open positions, then pause (no new ones), then flatten with its confirmation.
    web.wait("/api/instances/a", 30, |v| {
        (positions_open(&v["instance"]["telemetry"]) > 0).then_some(())
    })
    .expect("a opens positions");
    let r = command(&web, "a", pause.clone());
    assert_eq!(r["result_kind"], "ok", "{r}");
    web.wait("/api/instances/a", 10, |v| {
        (v["instance"]["telemetry"]["paused"] == true).then_some(())
    })
    .expect("telemetry shows paused");
    let flatten = json!({"command": {"op": "flatten"}});
    let first = command(&web, "a", flatten.clone());
    assert_eq!(first["result_kind"], "needs_confirmation", "{first}");
    assert!(
        positions_open(&telemetry(&web, "a")) > 0,
        "nothing closes before the confirmation"
    );
    let nonce = first["result"]["nonce"].as_str().unwrap().to_string();
    // A wrong nonce is refused and closes nothing.
    let wrong = command(
        &web,
        "a",
        json!({"command": {"op": "flatten"}, "confirm": "0000000000000000"}),
    );
    assert_eq!(wrong["result"]["code"], "BAD_CONFIRMATION", "{wrong}");
    assert!(positions_open(&telemetry(&web, "a")) > 0);
    let done = command(
        &web,
        "a",
        json!({"command": {"op": "flatten"}, "confirm": nonce}),
    );
    assert_eq!(done["result_kind"], "ok", "{done}");
    web.wait("/api/instances/a", 10, |v| {
        (positions_open(&v["instance"]["telemetry"]) == 0).then_some(())
    })
    .expect("every position flat after the confirmed flatten");
    // The same nonce never confirms twice.
    let again = command(
        &web,
        "a",
        json!({"command": {"op": "flatten"}, "confirm": nonce}),
    );
    assert_eq!(again["result"]["code"], "BAD_CONFIRMATION");

    let r = command(
        &web,
        "a",
        json!({"command": {"op": "set_lots", "symbol": "EURUSD", "lot_weak": 0.02, "lot_moderate": 0.04, "lot_strong": 0.08}}),
    );
    assert_eq!(r["result_kind"], "ok");
    let r = command(
        &web,
        "a",
        json!({"command": {"op": "set_lots", "symbol": "GBPUSD", "lot_weak": 0.02, "lot_moderate": 0.04, "lot_strong": 0.08}}),
    );
    assert_eq!(r["result"]["code"], "UNKNOWN_SYMBOL");
    let r = command(
        &web,
        "a",
        json!({"command": {"op": "set_risk_limits", "max_daily_loss_pct": 3.5}}),
    );
    assert_eq!(r["result_kind"], "ok");
    let st = command(&web, "a", json!({"command": {"op": "status"}}));
    assert_eq!(st["result_kind"], "status");
    assert_eq!(st["result"]["risk"]["max_daily_loss_pct"], 3.5);
    assert_eq!(st["result"]["symbols"][0]["lots"]["lot_weak"], 0.02);
    assert_eq!(st["result"]["paused"], true);
    assert_eq!(
        command(&web, "a", json!({"command": {"op": "resume"}}))["result_kind"],
        "ok"
    );

    // Fleet-wide flatten: one command per online instance, each asking for its confirmation.
    let r = web.post("/api/fleet/commands", &flatten);
    assert_eq!(r.status, 202, "{}", r.body);
    let sent = r.json()["sent"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 2);
    for s in &sent {
        let cid = s["command_id"].as_str().unwrap();
        let kind = web.wait(&format!("/api/commands/{cid}"), 15, |v| {
            v["command"]["result_kind"].as_str().map(str::to_string)
        });
        assert_eq!(kind.as_deref(), Some("needs_confirmation"));
    }

    // The journal, the feeds, refusals by reason (the paused book refused its signals).
    let cmds = web.get("/api/instances/a/commands").json();
    assert!(cmds["commands"].as_array().unwrap().len() >= 9);
    assert!(
        !web.get("/api/instances/a/signals?limit=5").json()["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !web.get("/api/instances/a/acks").json()["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !web.get("/api/instances/a/drift").json()["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let refusals = web.get("/api/instances/a/refusals").json();
    assert!(
        refusals["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"] == "PAUSED"),
        "{refusals}"
    );
    let c = web
        .get("/api/instances/a/candles?symbol=EURUSD&timeframe=M1")
        .json();
    assert!(!c["candles"].as_array().unwrap().is_empty());
    assert_eq!(web.get("/api/instances/a/records/nope").status, 400);

    // Live updates: the event stream delivers instance rows and, for one instance, its records.
    let mut sse = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
        .get(format!("{}/api/events?instance=a", hub.url))
        .header("Cookie", web.cookie.clone().unwrap())
        .call()
        .unwrap();
    assert_eq!(
        sse.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut kinds = std::collections::BTreeSet::new();
    let reader = BufReader::new(sse.body_mut().as_reader());
    for line in reader.lines().map_while(Result::ok).take(400) {
        if let Some(k) = line.strip_prefix("event: ") {
            kinds.insert(k.to_string());
        }
        if line.starts_with("data: ")
            && line.contains("\"instance\":\"b\"")
            && line.contains("\"type\":\"record\"")
        {
            panic!("a record of b on a's stream: {line}");
        }
        if kinds.contains("instance") && kinds.contains("record") {
            break;
        }
    }
    assert!(
        kinds.contains("instance") && kinds.contains("record"),
        "{kinds:?}"
    );

    // Logout ends the session.
    assert_eq!(web.post("/logout", &json!({})).status, 204);
    assert_eq!(web.get("/api/instances").status, 401);
    fleet.stop();
    // A dashboard left open (this event stream) must not hold the hub's stop.
    let t = std::time::Instant::now();
    hub.stop();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stopping took {:?}",
        t.elapsed()
    );
    drop(sse);
}

struct KillOnDrop(support::Stopper);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn a_killed_instance_is_shown_offline_by_its_last_will() {
    let broker = Mosquitto::start();
    broker.add_instance("c");
    let hub = HubProc::start(&broker, None);
    let keepalive = 5u64;
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .args(["--broker", &broker.url(), "--ca-file"])
        .arg(broker.ca())
        .arg("--tokens")
        .arg(&broker.tokens)
        .args([
            "--hub-public-key",
            &hub.public_key,
            "--id",
            "c",
            "--keepalive-secs",
            &keepalive.to_string(),
            "--bar-ms",
            "500",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(hub.dir.path().join("sim.log")).unwrap())
        .spawn()
        .unwrap();
    let stopper = support::Stopper::new(sim.id());
    // Killed by pid however this test ends (a panic included): no stray instance left behind.
    let _guard = KillOnDrop(stopper);
    let mut web = Web::new(&hub.url);
    web.login(&hub.password);
    web.wait("/api/instances", 30, |v| online_with_equity(v, &["c"]))
        .unwrap_or_else(|| {
            panic!(
                "c not online: {}\nsim: {}\nhub: {}",
                web.get("/api/instances").body,
                std::fs::read_to_string(hub.dir.path().join("sim.log")).unwrap_or_default(),
                hub.log()
            )
        });
    stopper.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = std::time::Instant::now();
    let _ = sim.wait();
    let row = web
        .wait("/api/instances/c", 15, |v| {
            (v["instance"]["status"] == "offline").then(|| v["instance"].clone())
        })
        .expect("offline after the kill");
    let took = killed.elapsed();
    // The broker publishes the will after 1.5x the keepalive without traffic (MQTT v5
    // §3.1.2.10); its loop and our polling add under a second.
    assert!(
        took < Duration::from_millis(keepalive * 1500 + 1500),
        "offline after {took:?}"
    );
    assert!(row["status_seq"].as_i64().unwrap() >= 2);
}

/// With its broker gone (here: never there), fleet-sim still stops on SIGTERM: it drops what it
/// cannot queue instead of waiting on a full client queue (it hung before, and outlived a test).
#[test]
fn fleet_sim_stops_on_sigterm_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    hub::keys::dev_certs(dir.path(), &["localhost".to_string()]).unwrap();
    let tokens = dir.path().join("instances");
    std::fs::create_dir(&tokens).unwrap();
    hub::keys::write_secret(&tokens.join("z.token"), "not-a-real-token", false).unwrap();
    let key = fleet::ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let port = support::free_port();
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .args([
            "--broker",
            &format!("mqtts://localhost:{port}"),
            "--ca-file",
        ])
        .arg(dir.path().join("fleet-ca.pem"))
        .arg("--tokens")
        .arg(&tokens)
        .args([
            "--hub-public-key",
            &fleet::signed::encode_public_key(&key.verifying_key()),
        ])
        .args([
            "--id",
            "z",
            "--symbols",
            "20",
            "--bar-ms",
            "10",
            "--signal-every",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stopper = support::Stopper::new(sim.id());
    let _guard = KillOnDrop(stopper);
    // Long enough to fill the client's queue of 1024 requests (20 symbols x 4 records / 10 ms).
    std::thread::sleep(Duration::from_secs(2));
    stopper.terminate();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = sim.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(8) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some(),
        "fleet-sim still running 8 s after SIGTERM"
    );
}

/// A SIGTERM the moment the hub printed its ready line (what a script or systemd may do) stops it
/// cleanly, exit 0: its handlers are installed before that line. It died of the signal before
/// (the handler came with the shutdown future's first poll, after the line).
#[test]
fn a_sigterm_right_after_the_ready_line_stops_the_hub_cleanly() {
    let broker = Mosquitto::start();
    let mut hub = HubProc::start(&broker, None);
    for round in 0..5 {
        if round > 0 {
            hub.restart();
        }
        let status = hub
            .terminate_now()
            .unwrap_or_else(|| panic!("the hub outlived SIGTERM by 15 s: {}", hub.log()));
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: the hub did not stop cleanly on an early SIGTERM ({status}): {}",
            hub.log()
        );
    }
}
