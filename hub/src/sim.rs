//! A synthetic fleet instance built on the fleet contract: it publishes what an executor would
//! (status with a last will, telemetry, closed bars, signals, ACKs, drift) and answers signed
//! commands exactly as the contract says (verify, confirmation for Flatten, results). The hub's
//! tests and its benchmark drive the hub with it until the executor's own link exists; it trades
//! nothing and its prices are a random walk.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleet::ed25519_dalek::VerifyingKey;
use fleet::{
    AckRecord, BarRecord, Book, BrokerLink, Command, CommandOutcome, CommandResult, Confirmations,
    DriftRecord, Gate, InstanceId, LastBar, LossUse, Nonce, Origin, Position, Record, Side,
    SignalRecord, Status, Stream, SymbolTelemetry, Telemetry, VerifyPolicy,
};
use protocol::{Bar, BarTime, Mode, Symbol, Timeframe};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::watch;

use crate::keys::random_bytes;
use crate::link::now_ms;

/// One synthetic instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub id: InstanceId,
    pub options: MqttOptions,
    pub hub_key: VerifyingKey,
    pub symbols: Vec<Symbol>,
    pub mode: Mode,
    /// One closed bar per symbol per tick.
    pub bar_every: Duration,
    pub telemetry_every: Duration,
    /// A signal (and its ACKs and drift) every this many bars per symbol.
    pub signal_every_bars: u64,
    /// The first bar's open time (Unix s); each bar is one M1 later.
    pub first_bar: i64,
}

/// What a synthetic instance did.
#[derive(Debug, Default)]
pub struct SimStats {
    pub published: AtomicU64,
    /// Records not queued (the client's queue was full: the broker unreachable).
    pub dropped: AtomicU64,
    pub commands: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Book3 {
    virt: Position,
    paper: Position,
    live: Position,
}

const FLAT: Position = Position {
    side: Side::Flat,
    lots: 0.0,
    pnl: 0.0,
};

#[derive(Debug)]
struct State {
    seq: BTreeMap<Stream, u64>,
    price: BTreeMap<Symbol, f64>,
    books: BTreeMap<Symbol, Book3>,
    lots: BTreeMap<Symbol, [f64; 3]>,
    enabled: BTreeMap<Symbol, bool>,
    bar_index: u64,
    paused: bool,
    started_ms: i64,
    rng: u64,
    seen: HashSet<fleet::CommandId>,
    confirmations: Confirmations,
    risk: fleet::RiskSettings,
}

impl State {
    fn next(&mut self, s: Stream) -> u64 {
        let n = self.seq.entry(s).or_insert(0);
        *n += 1;
        *n
    }

    /// xorshift: reproducible per instance, no I/O.
    fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn record<B: serde::Serialize>(st: &mut State, stream: Stream, body: B) -> Vec<u8> {
    let seq = st.next(stream);
    Record::new(seq, now_ms(), body).to_bytes()
}

/// Never waits: with the broker gone and the client's queue full, the record is dropped and
/// counted (a synthetic instance has no outbox; the real one must, docs/HUB.md §4), so the loop
/// keeps answering its timers and its stop.
async fn publish(
    client: &AsyncClient,
    cfg: &SimConfig,
    stats: &SimStats,
    stream: Stream,
    payload: Vec<u8>,
) {
    let retain = stream == Stream::Status;
    match client.try_publish(
        fleet::stream_topic(&cfg.id, stream),
        QoS::AtLeastOnce,
        retain,
        payload,
    ) {
        Ok(()) => stats.published.fetch_add(1, Ordering::Relaxed),
        Err(_) => stats.dropped.fetch_add(1, Ordering::Relaxed),
    };
}

fn telemetry(cfg: &SimConfig, st: &State) -> Telemetry {
    let mut open = 0;
    let symbols = cfg
        .symbols
        .iter()
        .map(|s| {
            let b = st.books.get(s).copied().unwrap_or(Book3 {
                virt: FLAT,
                paper: FLAT,
                live: FLAT,
            });
            if b.live.side != Side::Flat {
                open += 1;
            }
            SymbolTelemetry {
                symbol: s.clone(),
                enabled: st.enabled.get(s).copied().unwrap_or(true),
                virtual_position: b.virt,
                paper: Some(b.paper),
                live: (cfg.mode != Mode::Paper).then_some(b.live),
                last_bar: st.price.get(s).map(|p| LastBar {
                    timeframe: Timeframe::M1,
                    open_time: BarTime::from_unix(cfg.first_bar + 60 * st.bar_index as i64)
                        .unwrap_or_else(|_| BarTime::from_unix(0).expect("epoch")),
                    close: *p,
                }),
            }
        })
        .collect();
    let pnl: f64 = st.books.values().map(|b| b.live.pnl).sum();
    let paper: f64 = st.books.values().map(|b| b.paper.pnl).sum();
    Telemetry {
        mode: cfg.mode,
        equity: 10_000.0 + pnl,
        balance: 10_000.0,
        margin: Some(open as f64 * 33.0),
        paper_equity: Some(10_000.0 + paper),
        day_pnl: pnl,
        daily_loss: LossUse {
            used_pct: (-pnl / 100.0).max(0.0),
            limit_pct: st.risk.max_daily_loss_pct,
        },
        total_loss: LossUse {
            used_pct: (-pnl / 100.0).max(0.0),
            limit_pct: st.risk.max_total_loss_pct,
        },
        broker_link: if cfg.mode == Mode::Paper {
            BrokerLink::None
        } else {
            BrokerLink::Up
        },
        paused: st.paused,
        kill_switch: false,
        open_positions: open,
        symbols,
    }
}

fn status_doc(cfg: &SimConfig, st: &State) -> fleet::StatusDocument {
    fleet::StatusDocument {
        mode: cfg.mode,
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: st.started_ms,
        paused: st.paused,
        kill_switch: false,
        risk: st.risk,
        symbols: cfg
            .symbols
            .iter()
            .map(|s| {
                let l = st.lots.get(s).copied().unwrap_or([0.01, 0.03, 0.05]);
                fleet::SymbolSettings {
                    symbol: s.clone(),
                    enabled: st.enabled.get(s).copied().unwrap_or(true),
                    lots: fleet::Lots {
                        lot_weak: l[0],
                        lot_moderate: l[1],
                        lot_strong: l[2],
                    },
                }
            })
            .collect(),
        telemetry: telemetry(cfg, st),
        books: Vec::new(),
        limits: Vec::new(),
    }
}

/// Applies a verified, confirmed command to the synthetic books.
fn apply(cfg: &SimConfig, st: &mut State, command: &Command) -> CommandResult {
    let unknown = |s: &Symbol| {
        CommandResult::Refused(fleet::Refusal {
            code: fleet::RefusalCode::UnknownSymbol,
            field: Some("symbol".into()),
            message: format!("{s} is not traded by this instance"),
        })
    };
    match command {
        Command::Pause => {
            st.paused = true;
            CommandResult::Ok {
                detail: Some("paused: no new positions".into()),
            }
        }
        Command::Resume => {
            st.paused = false;
            CommandResult::Ok {
                detail: Some("resumed".into()),
            }
        }
        Command::Flatten { symbol, books } => {
            if let Some(s) = symbol
                && !cfg.symbols.contains(s)
            {
                return unknown(s);
            }
            let mut closed = 0;
            for (s, b) in st.books.iter_mut() {
                if symbol.as_ref().is_some_and(|x| x != s) {
                    continue;
                }
                if *books != fleet::Books::Paper && b.live.side != Side::Flat {
                    b.live = FLAT;
                    closed += 1;
                }
                if *books != fleet::Books::Live && b.paper.side != Side::Flat {
                    b.paper = FLAT;
                    closed += 1;
                }
            }
            CommandResult::Ok {
                detail: Some(format!("closed {closed} positions")),
            }
        }
        Command::SetLots {
            symbol,
            lot_weak,
            lot_moderate,
            lot_strong,
        } => {
            if !cfg.symbols.contains(symbol) {
                return unknown(symbol);
            }
            st.lots
                .insert(symbol.clone(), [*lot_weak, *lot_moderate, *lot_strong]);
            CommandResult::Ok {
                detail: Some(format!(
                    "{symbol} lots {lot_weak}/{lot_moderate}/{lot_strong}"
                )),
            }
        }
        Command::SetEnabled { symbol, enabled } => {
            if !cfg.symbols.contains(symbol) {
                return unknown(symbol);
            }
            st.enabled.insert(symbol.clone(), *enabled);
            CommandResult::Ok {
                detail: Some(format!("{symbol} enabled={enabled}")),
            }
        }
        Command::SetRiskLimits(r) => {
            if let Some(x) = r.max_daily_loss_pct {
                st.risk.max_daily_loss_pct = x;
            }
            if let Some(x) = r.max_total_loss_pct {
                st.risk.max_total_loss_pct = x;
            }
            if let Some(x) = r.min_equity {
                st.risk.min_equity = x;
            }
            if let Some(x) = r.max_open_positions {
                st.risk.max_open_positions = x;
            }
            if let Some(x) = r.max_total_lots {
                st.risk.max_total_lots = x;
            }
            CommandResult::Ok {
                detail: Some("risk limits set".into()),
            }
        }
        Command::Reload => CommandResult::Ok {
            detail: Some("nothing to reload (synthetic)".into()),
        },
        Command::Status => CommandResult::Status(Box::new(status_doc(cfg, st))),
    }
}

fn on_command(cfg: &SimConfig, st: &mut State, payload: &[u8]) -> (CommandOutcome, bool) {
    let now = now_ms();
    let seen = st.seen.clone();
    match fleet::verify(
        payload,
        &cfg.hub_key,
        &cfg.id,
        now,
        VerifyPolicy::default(),
        |id| seen.contains(id),
    ) {
        Err(r) => (
            CommandOutcome {
                command_id: r.id,
                origin: Origin::Hub,
                op: r.op.map(str::to_string),
                result: CommandResult::Refused(r.refusal),
            },
            false,
        ),
        Ok(env) => {
            st.seen.insert(env.id.clone());
            let result =
                match st
                    .confirmations
                    .gate(&env.command, env.confirm.as_ref(), now, || {
                        Nonce::from_random(random_bytes::<16>())
                    }) {
                    Gate::Answer(r) => r,
                    Gate::Execute => apply(cfg, st, &env.command),
                };
            let changed = matches!(result, CommandResult::Ok { .. });
            (
                CommandOutcome {
                    command_id: Some(env.id),
                    origin: Origin::Hub,
                    op: Some(env.command.op().into()),
                    result,
                },
                changed,
            )
        }
    }
}

fn bar_tick(cfg: &SimConfig, st: &mut State) -> Vec<(Stream, Vec<u8>)> {
    let mut out = Vec::new();
    let open_time = cfg.first_bar + 60 * st.bar_index as i64;
    let signal_bar =
        cfg.signal_every_bars > 0 && st.bar_index.is_multiple_of(cfg.signal_every_bars);
    for s in cfg.symbols.clone() {
        let open = *st.price.entry(s.clone()).or_insert(1.1);
        let step = (st.rand() - 0.5) * 0.002;
        let close = ((open + step) * 1e5).round() / 1e5;
        let high = open.max(close) + 0.0001 * st.rand();
        let low = open.min(close) - 0.0001 * st.rand();
        st.price.insert(s.clone(), close);
        // In 0..100: exact as a tick count.
        let volume = (st.rand() * 100.0).floor() as u64;
        let closed = Bar {
            time: open_time,
            open,
            high,
            low,
            close,
            volume,
        };
        let Ok(bar) = BarRecord::new(s.clone(), Timeframe::M1, &closed) else {
            continue;
        };
        let t = bar.open_time;
        out.push((Stream::Bars, record(st, Stream::Bars, bar)));
        if !signal_bar {
            continue;
        }
        let r = st.rand();
        let (action, side) = if r < 0.33 {
            ("LONG_WEAK", Side::Long)
        } else if r < 0.66 {
            ("SHORT_WEAK", Side::Short)
        } else {
            ("WAIT", Side::Flat)
        };
        let lots = if side == Side::Flat {
            0.0
        } else {
            st.lots.get(&s).map_or(0.01, |l| l[0])
        };
        let target = Position {
            side,
            lots,
            pnl: 0.0,
        };
        let line = format!("SIGNAL|{s}|{action}|1|0.00|B:{t}|N:1");
        out.push((
            Stream::Signals,
            record(st, Stream::Signals, SignalRecord { line }),
        ));
        let enabled = st.enabled.get(&s).copied().unwrap_or(true);
        // Paused, the synthetic books follow nothing (so a test sees exactly what a command
        // changed); a disabled symbol likewise.
        let refused = st.paused || !enabled;
        let book = st.books.entry(s.clone()).or_insert(Book3 {
            virt: FLAT,
            paper: FLAT,
            live: FLAT,
        });
        book.virt = target;
        let reason = if !enabled { "DISABLED" } else { "PAUSED" };
        if !refused {
            book.paper = target;
            book.live = target;
        }
        let b = *book;
        for which in [Book::Live, Book::Paper] {
            let ack = if refused {
                format!("ACK|{s}|{action}|FAIL|{reason}|B:{t}")
            } else {
                format!("ACK|{s}|{action}|OK|B:{t}")
            };
            out.push((
                Stream::Acks,
                record(
                    st,
                    Stream::Acks,
                    AckRecord {
                        book: which,
                        line: ack,
                    },
                ),
            ));
        }
        let drift = DriftRecord {
            symbol: s.clone(),
            bar_time: t,
            target,
            live: (cfg.mode != Mode::Paper).then_some(b.live),
            paper: Some(b.paper),
            in_sync: !refused,
            reason: refused.then(|| reason.to_string()),
            slippage_points: None,
        };
        out.push((Stream::Drift, record(st, Stream::Drift, drift)));
    }
    st.bar_index += 1;
    out
}

/// Runs one synthetic instance until `stop` turns true. `seq_start`: continue each stream's
/// numbering from there (a restarted instance's durable counters).
pub async fn run(
    cfg: SimConfig,
    stats: Arc<SimStats>,
    mut stop: watch::Receiver<bool>,
    seq_start: u64,
) {
    let mut st = State {
        seq: Stream::ALL.iter().map(|s| (*s, seq_start)).collect(),
        price: BTreeMap::new(),
        books: BTreeMap::new(),
        lots: BTreeMap::new(),
        enabled: BTreeMap::new(),
        bar_index: 0,
        paused: false,
        started_ms: now_ms(),
        rng: 0x9E37_79B9_7F4A_7C15
            ^ cfg
                .id
                .as_str()
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
        seen: HashSet::new(),
        confirmations: Confirmations::new(16, 60_000),
        risk: fleet::RiskSettings {
            max_daily_loss_pct: 5.0,
            max_total_loss_pct: 10.0,
            min_equity: 0.0,
            max_open_positions: 20,
            max_total_lots: 100.0,
        },
    };
    // The last will is fixed at CONNECT, so its seq is reserved before each connection attempt,
    // one above the online this connection will publish: a fired will always outranks the online
    // of its own connection and is outranked by the next connection's (docs/HUB.md §Status).
    let status_seq = Arc::new(std::sync::Mutex::new(seq_start));
    let topic = fleet::stream_topic(&cfg.id, Stream::Status);
    let reserve = {
        let status_seq = status_seq.clone();
        move || {
            let mut n = status_seq.lock().unwrap_or_else(|e| e.into_inner());
            let online = *n + 1;
            *n += 2;
            let will = Record::new(*n, now_ms(), Status::Offline).to_bytes();
            (
                online,
                LastWill::new(topic.clone(), will, QoS::AtLeastOnce, true, None),
            )
        }
    };
    let mut options = cfg.options.clone();
    let (first_online, will) = reserve();
    options.set_last_will(will);
    let (client, mut el) = AsyncClient::new(options, 1024);
    // rumqttc's EventLoop::poll is not cancel-safe while it connects (a dropped poll drops a
    // half-open connection, whose will the broker then fires), so it runs in its own task and
    // is never raced against timers.
    let (link_tx, mut link_rx) = tokio::sync::mpsc::channel::<LinkEvent>(256);
    let el_task = tokio::spawn(async move {
        let mut online_seq = first_online;
        loop {
            let ev = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => LinkEvent::Connected(online_seq),
                Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Command(p.payload.to_vec()),
                Ok(_) => continue,
                Err(_) => {
                    let (online, will) = reserve();
                    online_seq = online;
                    el.options.set_last_will(will);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            };
            if link_tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    let mut bars = tokio::time::interval(cfg.bar_every);
    let mut tele = tokio::time::interval(cfg.telemetry_every);
    bars.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tele.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    let seq = {
                        let mut n = status_seq.lock().unwrap_or_else(|e| e.into_inner());
                        *n += 1;
                        *n
                    };
                    let offline = Record::new(seq, now_ms(), Status::Offline).to_bytes();
                    publish(&client, &cfg, &stats, Stream::Status, offline).await;
                    let _ = client.try_disconnect();
                    // Let the event loop send the offline and the DISCONNECT.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    el_task.abort();
                    return;
                }
            }
            ev = link_rx.recv() => match ev {
                Some(LinkEvent::Connected(online_seq)) => {
                    let _ = client.subscribe(fleet::commands_topic(&cfg.id), QoS::AtLeastOnce).await;
                    let online = Record::new(online_seq, now_ms(), Status::Online {
                        mode: cfg.mode,
                        version: env!("CARGO_PKG_VERSION").into(),
                        started_ms: st.started_ms,
                    }).to_bytes();
                    publish(&client, &cfg, &stats, Stream::Status, online).await;
                }
                Some(LinkEvent::Command(payload)) => {
                    stats.commands.fetch_add(1, Ordering::Relaxed);
                    let (outcome, changed) = on_command(&cfg, &mut st, &payload);
                    let r = record(&mut st, Stream::CommandResults, outcome);
                    publish(&client, &cfg, &stats, Stream::CommandResults, r).await;
                    if changed {
                        let t = telemetry(&cfg, &st);
                        let r = record(&mut st, Stream::Telemetry, t);
                        publish(&client, &cfg, &stats, Stream::Telemetry, r).await;
                    }
                }
                None => return,
            },
            _ = bars.tick() => {
                for (stream, payload) in bar_tick(&cfg, &mut st) {
                    publish(&client, &cfg, &stats, stream, payload).await;
                }
            }
            _ = tele.tick() => {
                let t = telemetry(&cfg, &st);
                let r = record(&mut st, Stream::Telemetry, t);
                publish(&client, &cfg, &stats, Stream::Telemetry, r).await;
            }
        }
    }
}

#[derive(Debug)]
enum LinkEvent {
    /// Connected; publish the online with this (reserved) seq.
    Connected(u64),
    Command(Vec<u8>),
}
