//! Order outcomes as the real cTrader server can deliver them, with all three real binaries
//! (`common::system`): execution events out of order, fills in several deals, fills cut short by
//! the broker. Each test ends by asking the simulator (with a client of our own) what it holds and
//! comparing that with the executor's latest ACK per symbol.
//!
//! Needs `ctrader-sim` and `preditor` built next to the executor (`cargo test --workspace`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::system::{
    System, SystemSpec, ack_outcome, acks, field, positions_match_latest_acks, target_volume,
};
use serde_json::Value;

const SYMBOLS: [&str; 3] = ["EURUSD", "GBPUSD", "USDJPY"];

fn spec(replay_bars: usize) -> SystemSpec {
    SystemSpec {
        symbols: SYMBOLS.to_vec(),
        bars: 400 + replay_bars,
        start_bar: 400,
        speed: 2.0,
        request_timeout_ms: 2000,
    }
}

/// Waits until every symbol has `per_symbol` more ACKs than now.
fn wait_acks(sys: &mut System, what: &str, per_symbol: usize) {
    let base: Vec<usize> = SYMBOLS
        .iter()
        .map(|s| count_acks(&acks(&sys.wire()), s))
        .collect();
    sys.wait_wire(what, Duration::from_secs(90), |w| {
        let a = acks(w);
        SYMBOLS
            .iter()
            .zip(&base)
            .all(|(s, b)| count_acks(&a, s) >= b + per_symbol)
    });
}

fn count_acks(acks: &[String], symbol: &str) -> usize {
    acks.iter()
        .filter(|a| a.starts_with(&format!("ACK|{symbol}|")))
        .count()
}

/// Stops the preditor (so the ACKs are final) and compares the broker's positions with the latest
/// ACK of each symbol but `except`; panics with both on a mismatch. Returns the positions.
async fn stop_and_compare_except(
    sys: &mut System,
    except: &[&str],
) -> BTreeMap<String, Vec<(i64, bool, i64)>> {
    let status = sys
        .preditor
        .take()
        .unwrap()
        .signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    assert!(status.success(), "preditor exit on SIGTERM: {status}");
    sys.assert_alive();
    let all_acks = acks(&sys.wire());
    let positions = sys.sim.positions().await;
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sys.config).unwrap()).unwrap();
    let symbols: Vec<&str> = SYMBOLS
        .iter()
        .copied()
        .filter(|s| !except.contains(s))
        .collect();
    match positions_match_latest_acks(&symbols, &all_acks, &positions, &config) {
        Ok(lines) => eprintln!("{}", lines.join("\n")),
        Err(wrong) => panic!(
            "the broker does not hold what the latest ACKs say:\n{}\nall positions: {positions:?}\n{}",
            wrong.join("\n"),
            sys.log_tails(40)
        ),
    }
    positions
}

/// Issue 12 item 2, the probe: with every answer delayed by 150 ms the simulator's ORDER_ACCEPTED
/// can arrive after its ORDER_FILLED. A late ACCEPTED must not reopen a closed position or drop a
/// new one in the executor's book: after 40 bars the broker holds at most one position per
/// symbol, each the latest accepted target, and no close ever met POSITION_NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_accepted_events_under_delay_leave_the_broker_at_the_latest_targets() {
    let mut sys = System::start(spec(400));
    wait_acks(&mut sys, "the first ACKs", 1);
    sys.sim.control_ok("delay 150ms");
    wait_acks(&mut sys, "40 bars of ACKs under delay 150ms", 40);
    let positions = stop_and_compare_except(&mut sys, &[]).await;
    for (s, held) in &positions {
        assert!(held.len() <= 1, "{s}: {} positions {held:?}", held.len());
    }
    let log = sys.executor_log();
    let not_found = log.matches("POSITION_NOT_FOUND").count() + log.matches("not found").count();
    assert_eq!(
        not_found,
        0,
        "closes met POSITION_NOT_FOUND:\n{}",
        sys.log_tails(40)
    );
}

/// The journal's entries from byte `from` on.
fn journal_since(sys: &System, from: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(sys.path("state/journal.jsonl")).unwrap();
    text[from..]
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn journal_len(sys: &System) -> usize {
    std::fs::metadata(sys.path("state/journal.jsonl")).map_or(0, |m| m.len() as usize)
}

/// The live book's open intents of `symbol` (coid → lots) and results (coid → entry) among
/// `entries`.
fn live_opens(entries: &[Value], symbol: &str) -> (BTreeMap<String, f64>, BTreeMap<String, Value>) {
    let prefix = format!("OT-{symbol}-");
    let mine = |e: &&Value| {
        e["book"] == "live"
            && e["coid"]
                .as_str()
                .is_some_and(|c| c.starts_with(&prefix) && c.ends_with('O'))
    };
    let intents = entries
        .iter()
        .filter(|e| e["kind"] == "intent")
        .filter(mine)
        .map(|e| {
            (
                e["coid"].as_str().unwrap().to_string(),
                e["lots"].as_f64().unwrap(),
            )
        })
        .collect();
    let results = entries
        .iter()
        .filter(|e| e["kind"] == "result")
        .filter(mine)
        .map(|e| (e["coid"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    (intents, results)
}

/// `OT-SYM-<bar>-<action index>O…` → (bar unix seconds, action index).
fn coid_bar_action(coid: &str) -> (i64, char) {
    let f: Vec<&str> = coid.split('-').collect();
    (f[2].parse().unwrap(), f[3].chars().next().unwrap())
}

fn bar_text(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Issue 11 items 2 and 3: the broker cuts every EURUSD open short after accepting it (70 % of
/// the volume executes, rounded down to the 0.01-lot step, the rest is cancelled). A WEAK open
/// (0.01 lot) executes nothing: its ACK is FAIL|CANCELLED, not a fill of 0 lots. A larger one
/// leaves a real position of part of the target: ACK OK with that position, the journal and
/// drift.csv carry the lots held, and while the action stays the same the executor neither tops
/// it up nor closes and reopens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_cut_short_are_cancelled_or_held_as_the_target_without_churn() {
    let mut sys = System::start(spec(400));
    wait_acks(&mut sys, "the first ACKs", 1);
    sys.sim.control_ok("cancel-fill EURUSD 0.7 opens");
    // Anything decided from the next bar on met the fault.
    wait_acks(&mut sys, "a bar under the fault", 1);
    let from = journal_len(&sys);
    wait_acks(&mut sys, "60 bars with EURUSD's opens cut short", 60);
    let positions = stop_and_compare_except(&mut sys, &["EURUSD"]).await;
    let wire_acks = acks(&sys.wire());
    let entries = journal_since(&sys, from);
    let all = journal_since(&sys, 0);
    let (intents, _) = live_opens(&all, "EURUSD");
    let (_, results) = live_opens(&entries, "EURUSD");
    let ack_of = |bar: i64| {
        wire_acks
            .iter()
            .rev()
            .find(|a| a.starts_with("ACK|EURUSD|") && field(a, "B:") == Some(&bar_text(bar)))
            .cloned()
            .unwrap_or_else(|| panic!("no ACK for EURUSD at {}", bar_text(bar)))
    };
    let (mut cancelled, mut partial) = (Vec::new(), Vec::new());
    for (coid, r) in &results {
        let asked = intents[coid];
        let (bar, _) = coid_bar_action(coid);
        let ack = ack_of(bar);
        if r["ok"] == true {
            let id = r["position_id"].as_u64().unwrap();
            assert_eq!(ack_outcome(&ack), "OK", "{ack}");
            assert_eq!(field(&ack, "T:"), Some(id.to_string().as_str()), "{ack}");
            assert!(field(&ack, "P:").is_some(), "{ack}");
            let lots = r["lots"].as_f64().unwrap_or_else(|| {
                panic!("{coid}: the journal does not say how many lots are held: {r}")
            });
            let want = ((asked * 0.7 / 0.01) + 1e-9).floor() * 0.01;
            assert!(
                (lots - want).abs() < 1e-9,
                "{coid}: {asked} lots asked, {lots} held, want {want}: {r}"
            );
            partial.push((coid.clone(), id, lots));
        } else {
            let e = r["error"].as_str().unwrap();
            assert!(e.contains("cancelled by the broker"), "{coid}: {e}");
            assert!(
                asked < 0.02,
                "only a WEAK open executes nothing at 70 %: {coid} {asked}"
            );
            assert_eq!(ack_outcome(&ack), "FAIL|CANCELLED", "{ack}");
            cancelled.push(coid.clone());
        }
    }
    assert!(
        !cancelled.is_empty() && !partial.is_empty(),
        "60 bars gave {} cancelled and {} partial EURUSD opens: {results:#?}",
        cancelled.len(),
        partial.len()
    );
    // No churn: a partly filled position is closed only for another action, and the next bar's
    // ACK, if the action held, names it.
    let mut held_next = 0;
    for (coid, id, lots) in &partial {
        let (bar, action) = coid_bar_action(coid);
        for close in all.iter().filter(|e| {
            e["kind"] == "intent" && e["book"] == "live" && e["position_id"].as_u64() == Some(*id)
        }) {
            let (_, by) = coid_bar_action(close["coid"].as_str().unwrap());
            assert_ne!(
                by, action,
                "{coid}: position {id} closed by a signal of its own action: {close}"
            );
        }
        let name = ack_of(bar).split('|').nth(2).unwrap().to_string();
        let next = wire_acks
            .iter()
            .filter(|a| a.starts_with("ACK|EURUSD|"))
            .filter(|a| field(a, "B:").is_some_and(|b| b > bar_text(bar).as_str()))
            .min_by_key(|a| field(a, "B:").unwrap().to_string());
        if let Some(next) = next
            && next.split('|').nth(2) == Some(name.as_str())
        {
            assert_eq!(
                ack_outcome(next),
                "OK",
                "{coid}: the next bar, same action: {next}"
            );
            assert_eq!(
                field(next, "T:"),
                Some(id.to_string().as_str()),
                "{coid}: the next bar, same action, must name the same position: {next}"
            );
            held_next += 1;
        }
        // drift.csv: the live book reports the lots it holds.
        let drift = std::fs::read_to_string(sys.path("log/drift.csv")).unwrap();
        let row = drift
            .lines()
            .find(|l| l.contains(",EURUSD,") && l.contains(&bar_text(bar)))
            .unwrap_or_else(|| panic!("no drift row for {coid}"));
        assert!(row.contains(&format!(" {lots}")), "{coid}: drift row {row}");
    }
    assert!(
        held_next > 0,
        "no partial fill was followed by a bar of the same action"
    );
    // What the broker holds for EURUSD now is what the executor last said it holds.
    let last = wire_acks
        .iter()
        .rev()
        .find(|a| a.starts_with("ACK|EURUSD|"))
        .unwrap();
    let held = positions.get("EURUSD").cloned().unwrap_or_default();
    if ack_outcome(last) == "OK" && !last.contains("|WAIT|") {
        let id: i64 = field(last, "T:").unwrap().parse().unwrap();
        assert_eq!(held.len(), 1, "{last}: {held:?}");
        assert_eq!(held[0].0, id, "{last}: {held:?}");
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(&sys.config).unwrap()).unwrap();
        let action = last.split('|').nth(2).unwrap();
        assert!(
            held[0].2 <= target_volume(&config, "EURUSD", action),
            "{last}: {held:?}"
        );
    }
    eprintln!("cancelled: {cancelled:?}\npartial: {partial:?}");
}

/// Issue 11 item 3: every order is filled by three deals, each one point worse than the one
/// before. The ACK's price is the volume-weighted price of all three (the position's own price),
/// not one deal's, the journal carries the whole volume, and the book holds the whole position
/// (so it is not closed and reopened on the next bar).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_filled_in_several_deals_are_acked_whole_at_their_volume_weighted_price() {
    let mut sys = System::start(spec(400));
    sys.sim.control_ok("fill-deals 3");
    wait_acks(&mut sys, "40 bars of ACKs with fills in three deals", 40);
    stop_and_compare_except(&mut sys, &[]).await;
    let client = sys.sim.own_client().await;
    let deals = client
        .deal_list(0, i64::from(i32::MAX) * 1000, None)
        .await
        .unwrap()
        .deal;
    let wire_acks = acks(&sys.wire());
    let entries = journal_since(&sys, 0);
    let (mut checked, mut multi) = (0, 0);
    for s in SYMBOLS {
        let (intents, results) = live_opens(&entries, s);
        for (coid, r) in &results {
            if r["ok"] != true || r["resolved_by"].is_string() {
                continue;
            }
            let id = r["position_id"].as_i64().unwrap();
            let opening: Vec<(i64, f64)> = deals
                .iter()
                .filter(|d| d.position_id == id && d.close_position_detail.is_none())
                .map(|d| (d.filled_volume, d.execution_price.unwrap()))
                .collect();
            let volume: i64 = opening.iter().map(|d| d.0).sum();
            // Three deals, or one per 0.01-lot step when the volume has fewer.
            assert_eq!(
                opening.len() as i64,
                (volume / 100_000).min(3),
                "{coid}: {opening:?}"
            );
            let vwap = opening.iter().map(|(v, p)| *v as f64 * p).sum::<f64>() / volume as f64;
            let (bar, _) = coid_bar_action(coid);
            let ack = wire_acks
                .iter()
                .find(|a| {
                    a.starts_with(&format!("ACK|{s}|")) && field(a, "B:") == Some(&bar_text(bar))
                })
                .unwrap();
            let p: f64 = field(ack, "P:").unwrap().parse().unwrap();
            let digits = if s == "USDJPY" { 3 } else { 5 };
            assert!(
                (p - vwap).abs() <= 0.5 * 10f64.powi(-digits) + 1e-12,
                "{ack}: P:{p}, the deals' VWAP is {vwap} ({opening:?})"
            );
            let lots = r["lots"].as_f64().unwrap();
            assert!(
                (lots - intents[coid]).abs() < 1e-9,
                "{coid}: {lots} lots booked of {}",
                intents[coid]
            );
            assert!((lots * 10_000_000.0 - volume as f64).abs() < 0.5, "{coid}");
            checked += 1;
            multi += usize::from(opening.len() > 1);
        }
    }
    assert!(multi >= 3, "only {multi} opens in several deals checked");
    eprintln!("{checked} opens ({multi} in several deals): ACK price = VWAP of their deals");
}
