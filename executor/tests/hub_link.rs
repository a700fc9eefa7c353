//! The hub link against a real Mosquitto (started by the test on a free port from the shipped
//! hub/mosquitto/ config, `testkit`) and the real binaries (`ctrader-sim`, `executor run` in shadow
//! mode, `preditor run`): what the executor publishes equals what it did and what it says of itself
//! (`executor ctl status`), every signed command round-trips through the same path as `executor
//! ctl`, forged / expired / replayed / malformed / oversized ones are refused and change nothing,
//! the last will fires after a SIGKILL, and a one-minute broker outage loses nothing.
//!
//! Needs `mosquitto`, and `ctrader-sim` and `preditor` built next to the executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::system::{System, SystemSpec, acks, ctl_as};
use fleet::ed25519_dalek::SigningKey;
use fleet::{
    CommandEnvelope, CommandId, CommandOutcome, CommandResult, InstanceId, RefusalCode,
    StatusDocument, Stream,
};
use serde_json::{Value, json};
use testkit::Mosquitto;

const ID: &str = "eu-1";
const KEEPALIVE_SECS: u64 = 5;

fn spec(bars: usize, speed: f64) -> SystemSpec {
    SystemSpec {
        symbols: vec!["EURUSD", "GBPUSD"],
        bars: 400 + bars,
        start_bar: 400,
        speed,
        request_timeout_ms: 2000,
    }
}

/// Every message a `hub`-user subscriber with a persistent session saw on `oracle/eu-1/#`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Message>>>);

/// Topic, payload, when it arrived.
type Message = (String, Vec<u8>, Instant);

impl Seen {
    fn all(&self) -> Vec<Message> {
        self.0.lock().unwrap().clone()
    }

    /// `(seq, record JSON)` of one stream, as received (repeats included).
    fn stream(&self, s: Stream) -> Vec<(u64, Value)> {
        let topic = fleet::stream_topic(&InstanceId::new(ID).unwrap(), s);
        self.all()
            .into_iter()
            .filter(|(t, _, _)| *t == topic)
            .map(|(_, p, _)| {
                let v: Value = serde_json::from_slice(&p).unwrap();
                (v["seq"].as_u64().unwrap(), v)
            })
            .collect()
    }

    /// One record per seq (the hub's upsert: the first one wins), after checking that every
    /// repeat of a seq carries the same content and that seqs run 1..=n without a gap.
    fn stored(&self, s: Stream) -> Vec<Value> {
        let mut by_seq: BTreeMap<u64, Value> = BTreeMap::new();
        for (seq, v) in self.stream(s) {
            if let Some(first) = by_seq.get(&seq) {
                assert_eq!(
                    first, &v,
                    "{s:?} seq {seq} sent twice with different content"
                );
            } else {
                by_seq.insert(seq, v);
            }
        }
        // Status seqs are reserved two per connection attempt (online, will), so they have gaps
        // by design (docs/HUB.md §2.1); every other stream counts 1, 2, 3, …
        if s != Stream::Status {
            let seqs: Vec<u64> = by_seq.keys().copied().collect();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, want, "{s:?}: a gap in seq");
        }
        by_seq.into_values().collect()
    }

    fn wait<T>(&self, what: &str, secs: u64, mut f: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            assert!(Instant::now() < deadline, "{what}: not within {secs} s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct Hub {
    broker: Mosquitto,
    rt: tokio::runtime::Runtime,
    key: SigningKey,
    seen: Seen,
    publisher: testkit::mqtt::Client,
    _secrets: tempfile::TempDir,
    section: Value,
}

impl Hub {
    fn start() -> Hub {
        let broker = Mosquitto::start();
        let token = broker.add_instance(ID);
        let secrets = tempfile::tempdir().unwrap();
        let token_file = secrets.path().join("hub_token");
        common::system::secret(&token_file, &format!("{token}\n"));
        let key = SigningKey::from_bytes(&rand16x2());
        let section = json!({"hub": {
            "broker": broker.url(), "ca_file": broker.ca(), "instance_id": ID,
            "token_file": token_file,
            "hub_public_key": fleet::signed::encode_public_key(&key.verifying_key()),
            "telemetry_secs": 1, "keepalive_secs": KEEPALIVE_SECS,
        }});
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Seen::default();
        let publisher = rt.block_on(async {
            let mut opts = testkit::mqtt::options(
                &broker.url(),
                &broker.ca(),
                "hub-test",
                "hub",
                &broker.hub_password,
            );
            // A persistent session, as the hub has: the broker keeps its subscription and queues
            // for it across its own restart (persistence on) and our reconnects.
            opts.set_clean_start(false);
            opts.set_session_expiry_interval(Some(3600));
            let mut c = testkit::mqtt::connect(opts, false);
            assert_eq!(connack(&mut c).await, "Success");
            c.subscribe(&format!("oracle/{ID}/#")).await;
            let mut rx = std::mem::replace(&mut c.rx, tokio::sync::mpsc::unbounded_channel().1);
            let sink = seen.clone();
            tokio::spawn(async move {
                while let Some(s) = rx.recv().await {
                    if let testkit::mqtt::Seen::Publish { topic, payload, .. } = s {
                        sink.0
                            .lock()
                            .unwrap()
                            .push((topic, payload, Instant::now()));
                    }
                }
            });
            c
        });
        Hub {
            broker,
            rt,
            key,
            seen,
            publisher,
            _secrets: secrets,
            section,
        }
    }

    fn envelope(&self, command: Value, confirm: Option<&str>) -> CommandEnvelope {
        let now = chrono::Utc::now().timestamp_millis();
        CommandEnvelope {
            v: 1,
            id: CommandId::from_random(rand16()),
            instance: InstanceId::new(ID).unwrap(),
            issued_ms: now,
            expires_ms: now + 60_000,
            confirm: confirm.map(|n| fleet::Nonce::new(n).unwrap()),
            command: serde_json::from_value(command).unwrap(),
        }
    }

    fn send_raw(&self, bytes: &[u8]) {
        let topic = fleet::commands_topic(&InstanceId::new(ID).unwrap());
        self.rt
            .block_on(self.publisher.publish(&topic, bytes, false));
    }

    /// Sends a signed envelope; returns its id.
    fn send(&self, env: &CommandEnvelope) -> String {
        self.send_raw(&fleet::sign(env, &self.key).to_bytes());
        env.id.as_str().to_string()
    }

    /// The `commands/result` records after the first `after` ones, waiting for `n` more.
    fn results_after(&self, after: usize, n: usize) -> Vec<CommandOutcome> {
        self.seen.wait("command results", 30, |s| {
            let r = s.stored(Stream::CommandResults);
            (r.len() >= after + n).then(|| {
                r[after..]
                    .iter()
                    .map(|v| serde_json::from_value(v["body"].clone()).unwrap())
                    .collect()
            })
        })
    }

    fn result_count(&self) -> usize {
        self.seen.stored(Stream::CommandResults).len()
    }

    /// Sends one command and returns its answer.
    fn ask(&self, command: Value, confirm: Option<&str>) -> CommandOutcome {
        let before = self.result_count();
        let id = self.send(&self.envelope(command, confirm));
        let r = self.results_after(before, 1).remove(0);
        assert_eq!(
            r.command_id.as_ref().map(CommandId::as_str),
            Some(id.as_str())
        );
        assert_eq!(r.origin, fleet::Origin::Hub);
        r
    }
}

/// The first CONNACK; a connection error before it is retried by the client (a broker that was
/// just reloaded by `add_instance` may drop the first attempt), so it is only reported on timeout.
async fn connack(c: &mut testkit::mqtt::Client) -> String {
    let mut errors = Vec::new();
    c.wait_for(20, |s| match s {
        testkit::mqtt::Seen::ConnAck(code) => Some(code.clone()),
        testkit::mqtt::Seen::Error(e) => {
            errors.push(e.clone());
            None
        }
        _ => None,
    })
    .await
    .unwrap_or_else(|| format!("no CONNACK in 20 s: {errors:?}"))
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

fn rand16x2() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

fn status(config: &Path) -> StatusDocument {
    let (c, out, err) = ctl_as(config, &["--json", "status"], None);
    assert_eq!(c, 0, "executor ctl status: {out}{err}");
    let o: CommandOutcome = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    match o.result {
        CommandResult::Status(d) => *d,
        other => panic!("status answered {other:?}"),
    }
}

fn refused(o: &CommandOutcome) -> RefusalCode {
    match &o.result {
        CommandResult::Refused(r) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ok(o: &CommandOutcome) {
    assert!(
        matches!(o.result, CommandResult::Ok { .. }),
        "expected ok, got {o:?}"
    );
}

/// What the operator's settings are (the part a command can change).
fn settings(d: &StatusDocument) -> Value {
    json!({"paused": d.paused, "risk": d.risk, "symbols": d.symbols})
}

fn wire_lines(sys: &System, prefix: &str, inbound: bool) -> Vec<String> {
    sys.wire()
        .into_iter()
        .filter(|l| l.inbound == inbound && l.text.starts_with(prefix))
        .map(|l| l.text)
        .collect()
}

fn bodies(v: &[Value], key: &str) -> Vec<String> {
    v.iter()
        .map(|r| r["body"][key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_link_reports_what_the_executor_did_and_takes_each_signed_command() {
    let hub = Hub::start();
    let mut sys = System::start_with(spec(400, 4.0), hub.section.clone());
    let cfg = sys.config.clone();

    // Online, retained, from the executor's own status seq.
    let online = hub.seen.wait("status online", 30, |s| {
        s.stored(Stream::Status)
            .into_iter()
            .find(|r| r["body"]["state"] == "online")
    });
    assert_eq!(online["body"]["mode"], "shadow");
    sys.wait_wire("acks", Duration::from_secs(120), |w| acks(w).len() >= 6);
    // A position open somewhere, for the figures and for Flatten to close.
    let deadline = Instant::now() + Duration::from_secs(120);
    while status(&cfg).telemetry.open_positions == 0 {
        assert!(Instant::now() < deadline, "no position opened within 120 s");
        std::thread::sleep(Duration::from_millis(300));
    }
    sys.sim.control_ok("pause");
    std::thread::sleep(Duration::from_secs(3));

    // Signals, ACKs and bars: the lines the executor exchanged with its preditor, each once, in
    // order, numbered 1..n.
    let wire_signals = wire_lines(&sys, "SIGNAL|", true);
    let wire_acks = acks(&sys.wire());
    hub.seen.wait("every ACK", 30, |s| {
        (s.stream(Stream::Acks).len() >= 2 * wire_acks.len()).then_some(())
    });
    let signals = hub.seen.stored(Stream::Signals);
    assert_eq!(bodies(&signals, "line"), wire_signals);
    let ack_records = hub.seen.stored(Stream::Acks);
    let live: Vec<&Value> = ack_records
        .iter()
        .filter(|r| r["body"]["book"] == "live")
        .collect();
    let live_lines: Vec<String> = live
        .iter()
        .map(|r| r["body"]["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        live_lines, wire_acks,
        "the live book's ACKs are the ones on the wire"
    );
    assert_eq!(ack_records.len(), 2 * wire_acks.len(), "one per book");
    // The live bars (those the loop closed; a warm-up's history goes out as BAR lines too, and
    // is not the recorder's): every bars record is a BAR on the wire, and every BAR on the wire
    // from the first recorded one on is recorded.
    let mut bars: Vec<(String, String)> = hub
        .seen
        .stored(Stream::Bars)
        .iter()
        .map(|r| {
            (
                r["body"]["symbol"].as_str().unwrap().to_string(),
                r["body"]["open_time"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!bars.is_empty());
    let first = bars.iter().map(|b| b.1.clone()).min().unwrap();
    let mut wire_bars: Vec<(String, String)> = wire_lines(&sys, "BAR|", false)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[1].to_string(), f[3].to_string())
        })
        .filter(|b| b.1 >= first)
        .collect();
    bars.sort();
    wire_bars.sort();
    assert_eq!(bars, wire_bars, "every live BAR sent, as a bars record");
    assert!(!hub.seen.stored(Stream::Drift).is_empty());

    // Telemetry equals the executor's own figures (`executor ctl status`), the replay paused so
    // nothing moves between the two.
    // A telemetry record published between two equal status documents must equal them (a quote
    // or an account refresh may still move the marks: then try again).
    let topic = fleet::stream_topic(&InstanceId::new(ID).unwrap(), Stream::Telemetry);
    let mut tries = 0;
    let doc = loop {
        let d1 = status(&cfg);
        let asked = Instant::now();
        let tele = hub.seen.wait("telemetry after the status", 10, |s| {
            s.all()
                .into_iter()
                .find(|(t, _, at)| *t == topic && *at > asked)
                .map(|(_, p, _)| serde_json::from_slice::<Value>(&p).unwrap())
        });
        let d2 = status(&cfg);
        if d1.telemetry == d2.telemetry {
            let mine = serde_json::to_value(&d1.telemetry).unwrap();
            assert_eq!(tele["body"], mine, "telemetry vs executor ctl status");
            break d1;
        }
        tries += 1;
        assert!(tries < 10, "the figures never held still for a second");
    };
    assert!(doc.telemetry.equity > 0.0 && doc.telemetry.open_positions > 0);
    hub.seen.stored(Stream::Telemetry);

    // Each command, through the hub's signed path.
    let before = status(&cfg);
    ok(&hub.ask(json!({"op": "pause"}), None));
    assert!(status(&cfg).paused);
    ok(&hub.ask(json!({"op": "resume"}), None));
    assert!(!status(&cfg).paused);
    ok(&hub.ask(
        json!({"op": "set_lots", "symbol": "EURUSD", "lot_weak": 0.02, "lot_moderate": 0.04, "lot_strong": 0.06}),
        None,
    ));
    let eur = |d: &StatusDocument| {
        d.symbols
            .iter()
            .find(|s| s.symbol.as_str() == "EURUSD")
            .unwrap()
            .clone()
    };
    assert_eq!(eur(&status(&cfg)).lots.lot_moderate, 0.04);
    ok(&hub.ask(
        json!({"op": "set_enabled", "symbol": "GBPUSD", "enabled": false}),
        None,
    ));
    assert!(
        !status(&cfg)
            .symbols
            .iter()
            .find(|s| s.symbol.as_str() == "GBPUSD")
            .unwrap()
            .enabled
    );
    ok(&hub.ask(
        json!({"op": "set_risk_limits", "max_daily_loss_pct": 4.5}),
        None,
    ));
    assert_eq!(status(&cfg).risk.max_daily_loss_pct, 4.5);
    match hub.ask(json!({"op": "status"}), None).result {
        CommandResult::Status(d) => assert_eq!(d.risk.max_daily_loss_pct, 4.5),
        other => panic!("status answered {other:?}"),
    }
    assert_ne!(settings(&before), settings(&status(&cfg)));

    // Refused, reported, and nothing changes.
    let settled = settings(&status(&cfg));
    let n = hub.result_count();
    let mut forged = hub.envelope(json!({"op": "pause"}), None);
    let other_key = SigningKey::from_bytes(&rand16x2());
    hub.send_raw(&fleet::sign(&forged, &other_key).to_bytes());
    forged.expires_ms = forged.issued_ms - 1;
    hub.send(&forged);
    let replay = hub.envelope(json!({"op": "pause"}), None);
    let replay_bytes = fleet::sign(&replay, &hub.key).to_bytes();
    hub.send_raw(&replay_bytes);
    hub.send_raw(&replay_bytes);
    hub.send_raw(b"{\"v\":1,\"payload\":");
    hub.send_raw(&vec![b' '; fleet::limits::MAX_COMMAND_BYTES + 1]);
    let r = hub.results_after(n, 6);
    assert_eq!(refused(&r[0]), RefusalCode::BadSignature);
    assert_eq!(r[0].command_id, None, "an unverified id is not trusted");
    assert_eq!(refused(&r[1]), RefusalCode::Expired);
    ok(&r[2]);
    assert_eq!(refused(&r[3]), RefusalCode::Replayed);
    assert_eq!(refused(&r[4]), RefusalCode::Malformed);
    assert_eq!(refused(&r[5]), RefusalCode::TooLarge);
    // The one valid pause paused; resume it and everything is as before the refusals.
    ok(&hub.ask(json!({"op": "resume"}), None));
    assert_eq!(
        settings(&status(&cfg)),
        settled,
        "a refused command changed something"
    );
    let journal = std::fs::read_to_string(sys.path("state/journal.jsonl")).unwrap_or_default();
    for code in [
        "BAD_SIGNATURE",
        "EXPIRED",
        "REPLAYED",
        "MALFORMED",
        "TOO_LARGE",
    ] {
        assert!(journal.contains(code), "refusal {code} not journaled");
    }

    // Flatten needs its confirmation; the confirmed one closes every position.
    let first = hub.ask(json!({"op": "flatten"}), None);
    let CommandResult::NeedsConfirmation { nonce, .. } = first.result else {
        panic!("flatten answered {first:?}");
    };
    assert!(
        status(&cfg).telemetry.open_positions > 0,
        "nothing closed yet"
    );
    let done = hub.ask(json!({"op": "flatten"}), Some(nonce.as_str()));
    let CommandResult::Flattened { closed, failed } = done.result else {
        panic!("flatten answered {done:?}");
    };
    assert!(
        !closed.is_empty() && failed.is_empty(),
        "{closed:?} {failed:?}"
    );
    assert_eq!(status(&cfg).telemetry.open_positions, 0);

    // SIGKILL: the broker publishes the will (retained offline, the seq above the online)
    // within 1.5 x keepalive.
    let online_seq = hub.seen.stored(Stream::Status).last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let killed = Instant::now();
    sys.executor
        .take()
        .unwrap()
        .signal_and_wait(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
    let will = hub.seen.wait("the last will", 20, |s| {
        s.stored(Stream::Status)
            .into_iter()
            .find(|r| r["seq"].as_u64() == Some(online_seq + 1))
    });
    let took = killed.elapsed();
    assert_eq!(will["body"]["state"], "offline");
    assert!(
        took <= Duration::from_millis(KEEPALIVE_SECS * 1500 + 1000),
        "the will took {took:?}"
    );
}

#[test]
fn a_one_minute_broker_outage_loses_nothing_and_trading_goes_on() {
    let mut hub = Hub::start();
    // 2 bars a second: ~120 more bars per symbol while the broker is gone.
    let mut sys = System::start_with(spec(600, 2.0), hub.section.clone());
    sys.wait_wire("acks", Duration::from_secs(120), |w| acks(w).len() >= 4);
    let before = acks(&sys.wire()).len();
    hub.broker.stop();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let during = acks(&sys.wire()).len();
    // Trading did not wait for the broker: signals kept being answered at the replay's pace.
    assert!(
        during >= before + 100,
        "only {} ACKs in the minute without a broker",
        during - before
    );
    let status_doc = status(&sys.config);
    assert!(status_doc.telemetry.equity > 0.0);
    // /metrics says where the records are: not connected, waiting in the outbox.
    let down = metrics(&sys);
    assert_eq!(down["oracle_executor_hub_connected"], 0.0);
    assert!(down["oracle_executor_hub_outbox_bytes"] > 0.0);
    assert!(down["oracle_executor_hub_telemetry_skipped"] > 0.0);
    assert_eq!(down["oracle_executor_hub_records_dropped"], 0.0);
    hub.broker.restart();
    let outage = stopped.elapsed();
    sys.sim.control_ok("pause");
    std::thread::sleep(Duration::from_secs(3));
    let wire_acks = acks(&sys.wire());
    let wire_signals = wire_lines(&sys, "SIGNAL|", true);
    hub.seen.wait("every record after the outage", 60, |s| {
        let a = s.stream(Stream::Acks);
        let max = a.iter().map(|(q, _)| *q).max().unwrap_or(0);
        (max as usize >= 2 * wire_acks.len()).then_some(())
    });
    // Every record, in order, no gap, no conflicting repeat (checked in `stored`).
    let live: Vec<String> = hub
        .seen
        .stored(Stream::Acks)
        .iter()
        .filter(|r| r["body"]["book"] == "live")
        .map(|r| r["body"]["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(live, wire_acks);
    assert_eq!(
        bodies(&hub.seen.stored(Stream::Signals), "line"),
        wire_signals
    );
    hub.seen.stored(Stream::Bars);
    hub.seen.stored(Stream::Drift);
    // A new online after the outage; it is the latest status (the highest seq).
    let status = hub.seen.stored(Stream::Status);
    assert!(
        status
            .iter()
            .filter(|r| r["body"]["state"] == "online")
            .count()
            >= 2
    );
    assert_eq!(
        status.last().unwrap()["body"]["state"],
        "online",
        "{status:?}"
    );
    // The gauges are refreshed every second: the last records may arrive before the next refresh.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let up = metrics(&sys);
        if up["oracle_executor_hub_connected"] == 1.0
            && up["oracle_executor_hub_records_acked"] > down["oracle_executor_hub_records_acked"]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics after the outage: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("outage {outage:?}: {} ACKs during it", during - before);
}

/// The executor's /metrics, unlabelled series only.
fn metrics(sys: &System) -> BTreeMap<String, f64> {
    let (code, body) = common::system::http_get(sys.http_executor, "/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn the_executors_credentials_reach_only_its_own_topics() {
    // The token and CA an executor's `hub` section holds (as in the tests above), used by hand:
    // another instance's commands never arrive, a write into its streams never reaches the hub.
    let hub = Hub::start();
    let token = std::fs::read_to_string(hub.section["hub"]["token_file"].as_str().unwrap())
        .unwrap()
        .trim()
        .to_string();
    hub.broker.add_instance("eu-2");
    hub.rt.block_on(async {
        let mut watcher = testkit::mqtt::connect(
            testkit::mqtt::options(
                &hub.broker.url(),
                &hub.broker.ca(),
                "hub-watch",
                "hub",
                &hub.broker.hub_password,
            ),
            false,
        );
        assert_eq!(connack(&mut watcher).await, "Success");
        watcher.subscribe("oracle/+/telemetry").await;
        let mut me = testkit::mqtt::connect(
            testkit::mqtt::options(&hub.broker.url(), &hub.broker.ca(), ID, ID, &token),
            false,
        );
        assert_eq!(connack(&mut me).await, "Success");
        me.subscribe("oracle/eu-2/commands").await;
        me.subscribe(&format!("oracle/{ID}/commands")).await;
        hub.publisher
            .publish("oracle/eu-2/commands", b"for eu-2", false)
            .await;
        hub.publisher
            .publish(&format!("oracle/{ID}/commands"), b"for eu-1", false)
            .await;
        me.publish("oracle/eu-2/telemetry", b"forged", false).await;
        me.publish(&format!("oracle/{ID}/telemetry"), b"mine", false)
            .await;
        let got = me.drain(1500).await;
        let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [format!("oracle/{ID}/commands").as_str()],
            "{got:?}"
        );
        // The hub sees eu-1's own write; the one into eu-2's stream reached no one.
        let seen = watcher.drain(1500).await;
        let payloads: Vec<&[u8]> = seen.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [b"mine".as_slice()], "{seen:?}");
    });
}
