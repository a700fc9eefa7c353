//! The simulator's protocol state machine: Open API requests in, responses and events out.
//!
//! Synchronous and deterministic: the I/O layer passes every frame with the instant it arrived
//! (`Instant` for latency and rate limits, wall-clock ms for maintenance end times) and delivers
//! the [`Outgoing`] messages it returns. One `SimCore` serves every connection, so execution events
//! reach every session authorised on the account, as on the real server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::SimError;
use super::bars::{Bar, BarSeries, open_ms};
use super::book::{AccountConfig, AmendKind, Book, MarketOrder, Quote, Side, TradeError};
use super::faults::{ControlCommand, FaultAction, FaultState, HELP, RateWindow};
use super::fills::{Execution, StepKind};
use super::latency::LatencyRecorder;
use super::money::Money;
use super::replay::{Replay, intrabar, market_time_ms};
use super::symbols::{SymbolSpec, asset_id, catalog_spec, fallback_spec};
use super::wire::{deal_to_wire, order_to_wire, position_to_wire};
use ctrader::domain::{Timeframe, TrendbarPeriod, encode_closed, encode_live, price_to_units};
use ctrader::messages::*;

/// Spots published inside each bar besides its opening and closing ones, unless told otherwise:
/// a real feed ticks many times per bar, and a client must not get every bar as two spots.
pub const DEFAULT_TICKS_PER_BAR: u32 = 4;

mod account;
mod history;
mod market;
mod session;
mod trading;

use session::Session;

/// Identifies one client connection inside the core.
pub type ConnId = u64;

/// The application and account credentials the simulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub access_token: String,
    pub refresh_token: String,
    pub account_id: i64,
}

/// Start-up configuration of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub credentials: Credentials,
    pub start_bar: usize,
    pub bars_per_second: f64,
    pub balance_cents: i64,
    /// The account's `moneyDigits`: every monetary value on the wire is scaled by 10^digits.
    pub money: Money,
    /// The `accountType` the trader answer reports. The book always trades hedged (every order its
    /// own position); NETTED is only reported, to check that clients refuse such an account.
    pub account_type: ProtoOaAccountType,
    pub leverage_in_cents: u32,
    pub slippage_points: i64,
    /// Charge each catalog symbol its demo model's training costs (slippage, commission).
    pub model_costs: bool,
    /// Requests per second per connection (the real server allows 50).
    pub rate_limit: Option<u32>,
    /// Historical requests per second per connection (the real server allows 5).
    pub historical_rate_limit: Option<u32>,
}

/// Whether a message answers a request (subject to `delay` and `drop-responses`) or is an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Response,
    Event,
}

/// One message for one connection, to be sent after `delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub conn: ConnId,
    pub kind: Kind,
    pub delay: Duration,
    pub message: ProtoMessage,
}

/// What handling one frame produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reply {
    pub out: Vec<Outgoing>,
    /// Close this connection after sending `out`.
    pub close: bool,
}

#[derive(Debug, Default)]
struct Conn {
    app_authorized: bool,
    accounts: BTreeSet<i64>,
    spots: BTreeSet<i64>,
    trendbars: BTreeSet<(i64, i32)>,
    normal_rate: RateWindow,
    historical_rate: RateWindow,
}

/// The simulator's whole state.
#[derive(Debug)]
pub struct SimCore {
    config: CoreConfig,
    credentials: Credentials,
    refreshes: u32,
    replay: Replay,
    specs: Vec<SymbolSpec>,
    by_id: HashMap<i64, usize>,
    period: ProtoOaTrendbarPeriod,
    book: Book,
    faults: FaultState,
    latency: LatencyRecorder,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    last_step_at: Option<Instant>,
    ticks_per_bar: u32,
    /// Events a control command produced, for the I/O layer to deliver ([`SimCore::take_events`]).
    control_events: Vec<Outgoing>,
    /// Access tokens revoked so far (makes each revoked value unique).
    revocations: u32,
    /// Since when the replay clock is held (`pause`, `--paused`); None while it runs.
    held_since: Option<Instant>,
    /// Time held so far: the replay driver moves every step's due time on by it.
    held_total: Duration,
}

/// The broker the simulated account belongs to (`brokerTitleShort`, `ProtoOATrader.brokerName`).
pub const BROKER_TITLE: &str = "ctrader-sim";

/// The login the trader sees in cTrader for an account. On the real servers it is a number of its
/// own, not the ctidTraderAccountId ("TraderLogin for a specific account. Value is displayed on
/// Client App UI", OpenApiModelMessages.proto), so the simulator offsets it to keep them apart.
pub fn trader_login(account: i64) -> i64 {
    account + 2_000_000
}

/// `ProtoOAErrorRes.maintenanceEndTimestamp` is in Unix seconds (OpenApiMessages.proto); the
/// fault state keeps milliseconds. Rounded up, so a client never comes back before the end.
fn wire_seconds(end_ms: i64) -> i64 {
    end_ms.div_euclid(1000) + i64::from(end_ms.rem_euclid(1000) != 0)
}

/// The trendbar period of a bar length, if cTrader has one.
pub fn period_of(ms: i64) -> Option<ProtoOaTrendbarPeriod> {
    Timeframe::ALL
        .into_iter()
        .find(|tf| tf.seconds().is_some_and(|s| s * 1000 == ms))
        .map(Timeframe::to_proto)
}

fn symbol_to_wire(s: &SymbolSpec) -> ProtoOaSymbol {
    ProtoOaSymbol {
        symbol_id: s.id,
        digits: s.digits as i32,
        pip_position: s.pip_position as i32,
        enable_short_selling: Some(true),
        max_volume: Some(s.max_volume),
        min_volume: Some(s.min_volume),
        step_volume: Some(s.step_volume),
        lot_size: Some(s.lot_size),
        swap_long: Some(0.0),
        swap_short: Some(0.0),
        schedule_time_zone: Some("UTC".to_string()),
        ..Default::default()
    }
}

impl SimCore {
    /// Builds the core over loaded bar series (one per symbol, any order).
    pub fn new(series: Vec<BarSeries>, config: CoreConfig) -> Result<Self, SimError> {
        let specs: Vec<SymbolSpec> = series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                catalog_spec(&s.symbol)
                    .unwrap_or_else(|| fallback_spec(&s.symbol, s.max_decimals, i as i64))
            })
            .collect();
        let replay = Replay::new(series, config.start_bar)?;
        let period_ms = replay.timeline().period_ms();
        let period = period_of(period_ms).ok_or(SimError::UnsupportedPeriod(period_ms))?;
        let by_id = specs.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        let book = Book::new(
            AccountConfig {
                account_id: config.credentials.account_id,
                balance_cents: config.balance_cents,
                leverage_in_cents: config.leverage_in_cents,
                slippage_points: config.slippage_points,
                model_costs: config.model_costs,
            },
            specs.clone(),
        );
        let faults = FaultState::new(config.rate_limit, config.historical_rate_limit);
        let mut core = Self {
            credentials: config.credentials.clone(),
            config,
            refreshes: 0,
            replay,
            specs,
            by_id,
            period,
            book,
            faults,
            latency: LatencyRecorder::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            last_step_at: None,
            ticks_per_bar: DEFAULT_TICKS_PER_BAR,
            control_events: Vec::new(),
            revocations: 0,
            held_since: None,
            held_total: Duration::ZERO,
        };
        // Quote the last closed bar until the first step, so orders before it have a price.
        for i in 0..core.specs.len() {
            let last = core.replay.closed_bars(i, i64::MIN, i64::MAX, Some(1));
            let quote = last.first().map(|b| core.quote_at(i, b.close));
            core.book.set_quote(core.specs[i].id, quote);
        }
        Ok(core)
    }

    /// Publishes `n` intermediate spots between each bar's opening and closing spots (default
    /// [`DEFAULT_TICKS_PER_BAR`]).
    pub fn with_ticks_per_bar(mut self, n: u32) -> Self {
        self.ticks_per_bar = n;
        self
    }

    /// Caps how many steps a gap in the data lasts (see [`Replay::step`]).
    pub fn with_max_gap_steps(mut self, steps: Option<u64>) -> Self {
        self.replay.set_max_gap_steps(steps);
        self
    }

    pub fn ticks_per_bar(&self) -> u32 {
        self.ticks_per_bar
    }

    pub fn specs(&self) -> &[SymbolSpec] {
        &self.specs
    }

    pub fn book(&self) -> &Book {
        &self.book
    }

    pub fn faults(&self) -> &FaultState {
        &self.faults
    }

    pub fn latency(&self) -> &LatencyRecorder {
        &self.latency
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    pub fn period(&self) -> ProtoOaTrendbarPeriod {
        self.period
    }

    /// Bid at the bar price (trendbars are bid bars), ask one modeled spread above.
    fn quote_at(&self, symbol: usize, price: f64) -> Quote {
        let spec = &self.specs[symbol];
        let bid = spec.round_price(price);
        Quote {
            bid,
            ask: spec.round_price(bid + spec.spread_points as f64 * spec.point()),
        }
    }

    /// Market time now: inside the forming bar, or the last bar's close after the data ends.
    pub fn market_time(&self, now: Instant) -> i64 {
        let period_ms = self.replay.timeline().period_ms();
        let tl = self.replay.timeline();
        // While held, market time stands where the hold began (the step instant was moved on by
        // every earlier hold, so the elapsed time below never counts a hold).
        let now = self.held_since.map_or(now, |h| h.min(now));
        match (self.replay.forming_point(), self.last_step_at) {
            (Some(p), Some(at)) => market_time_ms(
                tl.time_at(p).unwrap_or(0),
                period_ms,
                now.saturating_duration_since(at),
                self.config.bars_per_second,
            ),
            _ => {
                let last = tl
                    .time_at(self.replay.closed_points().saturating_sub(1))
                    .unwrap_or(0);
                // Before the first step, and inside a gap of the data, the last closed bar is
                // closed (history requests return it), so the clock stands at its close: a client
                // asking for the time then must not see that bar as still forming. Once the data
                // is exhausted: the last bar's last millisecond.
                if self.replay.is_finished() {
                    last + period_ms - 1
                } else {
                    last + period_ms
                }
            }
        }
    }

    /// Holds the replay clock at `now` (no-op when already held).
    pub fn hold(&mut self, now: Instant) {
        self.held_since.get_or_insert(now);
    }

    /// Lets a held clock run again at `now`: the time held is added to the schedule and to the
    /// step instant, so market time goes on from where it stood.
    pub fn release(&mut self, now: Instant) {
        if let Some(since) = self.held_since.take() {
            let held = now.saturating_duration_since(since);
            self.held_total += held;
            if let Some(at) = &mut self.last_step_at {
                *at += held;
            }
        }
    }

    pub fn is_held(&self) -> bool {
        self.held_since.is_some()
    }

    /// Total time the clock has been held (completed holds only).
    pub fn held_total(&self) -> Duration {
        self.held_total
    }

    pub fn connect(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, Conn::default());
        id
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Stall still in force at `now` (the I/O layer holds outgoing messages until it ends).
    pub fn stall_remaining(&self, now: Instant) -> Option<Duration> {
        self.faults.stall_remaining(now)
    }

    /// Applies a control command; returns the text answer and what the I/O layer must do.
    pub fn control(
        &mut self,
        command: &ControlCommand,
        now: Instant,
        wall_ms: i64,
    ) -> (String, FaultAction) {
        let action = self.faults.apply(command, now, wall_ms);
        match command {
            ControlCommand::Deposit(cents) => self.deposit(*cents),
            ControlCommand::TokenInvalidate { refresh_too } => self.invalidate_tokens(*refresh_too),
            ControlCommand::ClientDisconnect(reason) => self.client_disconnect(reason),
            ControlCommand::GrantTokens { access, refresh } => {
                self.credentials.access_token = access.clone();
                self.credentials.refresh_token = refresh.clone();
            }
            ControlCommand::Pause => self.hold(now),
            ControlCommand::Resume => self.release(now),
            _ => {}
        }
        let text = match command {
            ControlCommand::Stats => {
                serde_json::to_string(&self.latency.report()).unwrap_or_else(|e| format!("ERR {e}"))
            }
            ControlCommand::Status => format!(
                "OK connections={} closed_bars={} finished={} paused={} balance_cents={} open_positions={} {}",
                self.conns.len(),
                self.replay.closed_points(),
                self.replay.is_finished(),
                self.is_held(),
                self.book.balance_cents(),
                self.book.open_positions().count(),
                self.faults.describe(now)
            ),
            ControlCommand::Help => format!("OK {HELP}"),
            ControlCommand::Pause | ControlCommand::Resume => format!(
                "OK paused={} closed_bars={}",
                self.is_held(),
                self.replay.closed_points()
            ),
            _ => format!("OK {}", self.faults.describe(now)),
        };
        (text, action)
    }

    /// Handles one decoded frame from `conn`.
    pub fn handle(&mut self, conn: ConnId, frame: &ProtoMessage, now: Instant) -> Reply {
        let mut session = Session {
            core: self,
            conn,
            now,
            msg_id: frame.client_msg_id.clone(),
            reply: Reply::default(),
        };
        session.dispatch(frame);
        let mut reply = session.reply;
        // Response faults apply to everything this request produced for the requester.
        let drop = reply
            .out
            .iter()
            .any(|o| o.conn == conn && o.kind == Kind::Response)
            && self.faults.take_response_drop();
        let delay = self.faults.response_delay;
        reply.out.retain_mut(|o| {
            if o.conn == conn && o.kind == Kind::Response {
                o.delay = delay;
                !drop
            } else {
                true
            }
        });
        reply
    }
}

/// Decodes the inner message of an outgoing frame, for tests and logs.
pub fn decode_out<M: OpenApiMessage>(o: &Outgoing) -> Option<M> {
    (o.message.payload_type == M::PAYLOAD_TYPE)
        .then(|| M::decode(o.message.payload.as_deref().unwrap_or_default()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::parse_bars;
    use crate::faults::ControlCommand;
    use std::path::Path;

    const ACCOUNT: i64 = 77;

    fn core(start_bar: usize) -> SimCore {
        let files = [
            ("EURUSD", include_str!("../tests/data/EURUSD.csv")),
            ("US500", include_str!("../tests/data/US500.csv")),
        ];
        core_from(
            files
                .iter()
                .map(|(s, t)| parse_bars(s, Path::new(s), t).unwrap())
                .collect(),
            start_bar,
        )
    }

    fn core_from(series: Vec<BarSeries>, start_bar: usize) -> SimCore {
        core_with_money(series, start_bar, 2)
    }

    fn core_with_money(series: Vec<BarSeries>, start_bar: usize, money_digits: u32) -> SimCore {
        SimCore::new(
            series,
            CoreConfig {
                credentials: Credentials {
                    client_id: "id".into(),
                    client_secret: "secret".into(),
                    access_token: "token".into(),
                    refresh_token: "refresh".into(),
                    account_id: ACCOUNT,
                },
                start_bar,
                bars_per_second: 10.0,
                balance_cents: 1_000_000,
                money: crate::money::Money::new(money_digits).unwrap(),
                account_type: ProtoOaAccountType::Hedged,
                leverage_in_cents: 10_000,
                slippage_points: 1,
                model_costs: false,
                rate_limit: Some(50),
                historical_rate_limit: Some(5),
            },
        )
        .unwrap()
    }

    fn send<M: OpenApiMessage>(
        c: &mut SimCore,
        conn: ConnId,
        m: &M,
        id: &str,
        now: Instant,
    ) -> Reply {
        c.handle(conn, &m.wrap(Some(id.to_string())), now)
    }

    fn only<M: OpenApiMessage>(r: &Reply) -> M {
        assert_eq!(r.out.len(), 1, "{:?}", r.out);
        decode_out::<M>(&r.out[0]).unwrap_or_else(|| {
            panic!(
                "expected {}, got {:?}",
                M::NAME,
                r.out[0].message.payload_type
            )
        })
    }

    /// A connection through app auth and account auth.
    fn login(c: &mut SimCore, now: Instant) -> ConnId {
        let conn = c.connect();
        let r = send(
            c,
            conn,
            &ProtoOaApplicationAuthReq {
                client_id: "id".into(),
                client_secret: "secret".into(),
                ..Default::default()
            },
            "a",
            now,
        );
        only::<ProtoOaApplicationAuthRes>(&r);
        let r = send(
            c,
            conn,
            &ProtoOaAccountAuthReq {
                ctid_trader_account_id: ACCOUNT,
                access_token: "token".into(),
                ..Default::default()
            },
            "b",
            now,
        );
        only::<ProtoOaAccountAuthRes>(&r);
        conn
    }

    fn market(symbol_id: i64, volume: i64) -> ProtoOaNewOrderReq {
        ProtoOaNewOrderReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: ProtoOaTradeSide::Buy as i32,
            volume,
            label: Some("lbl".into()),
            client_order_id: Some("coid".into()),
            ..Default::default()
        }
    }

    #[test]
    fn before_the_first_step_the_clock_stands_at_the_last_history_bars_close() {
        // A subscriber connected while the replay is held (`--paused`) gets the current quote with
        // the market time: it must be the close of the last bar history returns, not a moment
        // inside it (a client would take that bar for still forming and leave it out).
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let sub = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id: vec![1],
            ..Default::default()
        };
        let r = send(&mut c, a, &sub, "s", now);
        let spot = r
            .out
            .iter()
            .find_map(decode_out::<ProtoOaSpotEvent>)
            .expect("the current quote");
        let last = c.replay().closed_bars(0, i64::MIN, i64::MAX, Some(1))[0];
        let period = c.replay().timeline().period_ms();
        assert_eq!(spot.timestamp, Some(open_ms(&last) + period));
    }

    #[test]
    fn across_a_gap_in_the_data_the_last_close_stays_quoted_at_its_close_time() {
        let mut text = String::from("time,open,high,low,close,volume\n");
        for (i, t) in [0i64, 3600, 7200, 10800, 25200, 28800].iter().enumerate() {
            let p = 1.1 + i as f64 / 1000.0;
            text.push_str(&format!("{t},{p},{},{},{p},10\n", p + 0.0005, p - 0.0005));
        }
        let series = parse_bars("EURUSD", Path::new("x.csv"), &text).unwrap();
        let mut c = core_from(vec![series], 3);
        let now = Instant::now();
        c.step(now); // opens 03:00
        c.step(now); // closes 03:00; 07:00 opens three steps later
        assert!(c.replay().in_gap());
        assert_eq!(c.market_time(now + Duration::from_secs(5)), 14_400_000);
        let id = c.specs()[0].id;
        let q = c.book().quote(id).expect("still quoted in the gap");
        assert!((q.bid - 1.103).abs() < 1e-9, "the last close: {q:?}");
    }

    /// The demo's New Bar → Order Sent max of 2.2 s was Friday's last bar: the simulator started
    /// the clock at that close, but no new bar followed it, and the executor closed the bar on its
    /// own clock (its end plus one second, after the last spot's whole second) at wall speed.
    #[test]
    fn an_order_for_the_bar_before_a_gap_is_not_timed_as_new_bar_latency() {
        let mut text = String::from("time,open,high,low,close,volume\n");
        for (i, t) in [0i64, 3600, 7200, 10800, 25200, 28800].iter().enumerate() {
            let p = 1.1 + i as f64 / 1000.0;
            text.push_str(&format!("{t},{p},{},{},{p},10\n", p + 0.0005, p - 0.0005));
        }
        let series = parse_bars("EURUSD", Path::new("x.csv"), &text).unwrap();
        let mut c = core_from(vec![series], 3);
        let t0 = Instant::now();
        let a = login(&mut c, t0);
        c.step(t0); // opens 03:00
        c.step(t0 + Duration::from_millis(100)); // closes 03:00; a gap begins
        assert!(c.replay().in_gap());
        let at = t0 + Duration::from_millis(2_300);
        send(&mut c, a, &market(1, 100_000), "late", at);
        let rep = c.latency().report();
        assert_eq!(rep.overall, None, "{rep:?}");
        assert_eq!(rep.untimed_closes, 1);
    }

    #[test]
    fn a_held_clock_freezes_market_time_and_resumes_where_it_stood() {
        // 10 bars/s: 50 ms of wall time is half an H1 bar of market time.
        let mut c = core(10);
        let t0 = Instant::now();
        c.step(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let open = c.market_time(t0);
        assert_eq!(c.market_time(at(20)), open + 720_000);
        c.control(&ControlCommand::Pause, at(20), 0);
        assert!(c.is_held());
        assert_eq!(c.market_time(at(80)), open + 720_000, "frozen while held");
        assert_eq!(c.market_time(at(500)), open + 720_000, "frozen while held");
        c.control(&ControlCommand::Resume, at(520), 0);
        assert!(!c.is_held());
        assert_eq!(c.held_total(), Duration::from_millis(500));
        // 20 ms before the hold and 30 ms after it: 50 ms of running clock.
        assert_eq!(c.market_time(at(550)), open + 1_800_000);
        // A second hold adds to the total; releasing an unheld clock changes nothing.
        c.hold(at(600));
        c.hold(at(650));
        c.release(at(700));
        c.release(at(800));
        assert_eq!(c.held_total(), Duration::from_millis(600));
    }

    #[test]
    fn encoded_trendbars_decode_to_the_file_values_with_the_client_decoder() {
        let c = core(10);
        for (i, series) in c.replay().series().iter().enumerate() {
            let digits = c.specs()[i].digits as i32;
            for bar in &series.bars {
                let tb = encode_closed(bar, ProtoOaTrendbarPeriod::H1);
                let back = ctrader::domain::closed_bar(&tb).unwrap();
                assert_eq!(back.time, bar.time);
                for (got, want) in [
                    (back.open, bar.open),
                    (back.high, bar.high),
                    (back.low, bar.low),
                    (back.close, bar.close),
                ] {
                    assert!(
                        (got - want).abs() < 0.5 * 10f64.powi(-digits),
                        "{} {got} vs {want}",
                        series.symbol
                    );
                }
            }
        }
        assert_eq!(period_of(3_600_000), Some(ProtoOaTrendbarPeriod::H1));
        assert_eq!(period_of(86_400_000), Some(ProtoOaTrendbarPeriod::D1));
        assert_eq!(period_of(7 * 60_000), None);
    }

    #[test]
    fn every_catalog_symbol_accepts_the_demo_lot_sizes_through_the_client_volume_rules() {
        // scripts/symbols.py: forex, metal and crypto trade 0.01/0.03/0.05 lots, indices 0.1/0.3/0.5,
        // stocks 1/3/5.
        use crate::symbols::{AssetClass, catalog_spec};
        let names = [
            "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "EURGBP",
            "EURJPY", "GBPJPY", "XAUUSD", "US500", "US30", "NAS100", "GER40", "UK100", "AAPL",
            "MSFT", "TSLA", "BTCUSD",
        ];
        for name in names {
            let spec = catalog_spec(name).unwrap();
            let rules =
                ctrader::domain::SymbolVolume::from_symbol(name, &symbol_to_wire(&spec)).unwrap();
            let lots: [f64; 3] = match spec.class {
                AssetClass::Index => [0.1, 0.3, 0.5],
                AssetClass::Stock => [1.0, 3.0, 5.0],
                _ => [0.01, 0.03, 0.05],
            };
            for l in lots {
                let volume = rules.lots_to_volume(l).unwrap();
                assert_eq!(
                    volume,
                    (l * spec.lot_size as f64).round() as i64,
                    "{name} {l} lots"
                );
                assert!(
                    volume >= spec.min_volume && volume % spec.step_volume == 0,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn auth_errors_use_the_real_codes_and_echo_the_request_id() {
        let now = Instant::now();
        let mut c = core(10);
        let conn = c.connect();
        let r = send(
            &mut c,
            conn,
            &ProtoOaTraderReq {
                ctid_trader_account_id: ACCOUNT,
                ..Default::default()
            },
            "1",
            now,
        );
        assert_eq!(
            only::<ProtoOaErrorRes>(&r).error_code,
            "CH_CLIENT_NOT_AUTHENTICATED"
        );
        let bad = ProtoOaApplicationAuthReq {
            client_id: "id".into(),
            client_secret: "nope".into(),
            ..Default::default()
        };
        let r = send(&mut c, conn, &bad, "2", now);
        assert_eq!(
            only::<ProtoOaErrorRes>(&r).error_code,
            "CH_CLIENT_AUTH_FAILURE"
        );
        assert_eq!(r.out[0].message.client_msg_id.as_deref(), Some("2"));
        let good = ProtoOaApplicationAuthReq {
            client_secret: "secret".into(),
            ..bad
        };
        only::<ProtoOaApplicationAuthRes>(&send(&mut c, conn, &good, "3", now));
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, conn, &good, "4", now)).error_code,
            "CH_CLIENT_ALREADY_AUTHENTICATED"
        );
        let wrong_account = ProtoOaAccountAuthReq {
            ctid_trader_account_id: 1,
            access_token: "token".into(),
            ..Default::default()
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, conn, &wrong_account, "5", now)).error_code,
            "CH_CTID_TRADER_ACCOUNT_NOT_FOUND"
        );
        let auth = ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACCOUNT,
            ..wrong_account
        };
        only::<ProtoOaAccountAuthRes>(&send(&mut c, conn, &auth, "6", now));
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, conn, &auth, "7", now)).error_code,
            "ALREADY_LOGGED_IN"
        );
        let trader = only::<ProtoOaTraderRes>(&send(
            &mut c,
            conn,
            &ProtoOaTraderReq {
                ctid_trader_account_id: ACCOUNT,
                ..Default::default()
            },
            "8",
            now,
        ));
        assert_eq!(
            (trader.trader.balance, trader.trader.money_digits),
            (1_000_000, Some(2))
        );
    }

    #[test]
    fn money_digits_scale_balance_margin_pnl_and_deals_on_the_wire() {
        let now = Instant::now();
        let files = [("EURUSD", include_str!("../tests/data/EURUSD.csv"))];
        let series = files
            .iter()
            .map(|(s, t)| parse_bars(s, Path::new(s), t).unwrap())
            .collect();
        let mut c = core_with_money(series, 10, 8);
        let a = login(&mut c, now);
        let trader = only::<ProtoOaTraderRes>(&send(
            &mut c,
            a,
            &ProtoOaTraderReq {
                ctid_trader_account_id: ACCOUNT,
                ..Default::default()
            },
            "t",
            now,
        ))
        .trader;
        // 10,000.00 USD with moneyDigits 8.
        assert_eq!(
            (trader.balance, trader.money_digits),
            (1_000_000_000_000, Some(8))
        );
        let r = send(&mut c, a, &market(1, 100_000), "o", now);
        let filled = decode_out::<ProtoOaExecutionEvent>(&r.out[1]).unwrap();
        let pos = filled.position.unwrap();
        let margin_cents = c.book().open_positions().next().unwrap().used_margin_cents;
        assert_eq!(pos.money_digits, Some(8));
        assert_eq!(
            pos.used_margin,
            u64::try_from(margin_cents * 1_000_000).ok()
        );
        // Price moves one step: the broker's PnL answer is in the same scale.
        c.step(now);
        let pnl = only::<ProtoOaGetPositionUnrealizedPnLRes>(&send(
            &mut c,
            a,
            &ProtoOaGetPositionUnrealizedPnLReq {
                ctid_trader_account_id: ACCOUNT,
                ..Default::default()
            },
            "p",
            now,
        ));
        let open = c.book().open_positions().next().unwrap().clone();
        let cents = c.book().unrealized_cents(&open);
        assert_ne!(cents, 0, "the quote moved");
        assert_eq!(pnl.money_digits, 8);
        assert_eq!(pnl.position_unrealized_pn_l.len(), 1);
        let p = &pnl.position_unrealized_pn_l[0];
        assert_eq!(
            (
                p.position_id,
                p.gross_unrealized_pn_l,
                p.net_unrealized_pn_l
            ),
            (open.id, cents * 1_000_000, cents * 1_000_000)
        );
        let close = ProtoOaClosePositionReq {
            ctid_trader_account_id: ACCOUNT,
            position_id: open.id,
            volume: open.volume,
            ..Default::default()
        };
        let r = send(&mut c, a, &close, "c", now);
        let deal = decode_out::<ProtoOaExecutionEvent>(&r.out[1])
            .unwrap()
            .deal
            .unwrap();
        let detail = deal.close_position_detail.unwrap();
        assert_eq!(detail.money_digits, Some(8));
        assert_eq!(detail.balance, c.book().balance_cents() * 1_000_000);
        assert_eq!(
            detail.gross_profit,
            (c.book().balance_cents() - 1_000_000) * 1_000_000
        );
    }

    #[test]
    fn unknown_and_undecodable_payloads_get_errors_without_closing() {
        let now = Instant::now();
        let mut c = core(10);
        let conn = c.connect();
        let r = c.handle(
            conn,
            &ProtoMessage {
                payload_type: 2155,
                payload: None,
                client_msg_id: None,
            },
            now,
        );
        assert_eq!(only::<ProtoErrorRes>(&r).error_code, "UNSUPPORTED_MESSAGE");
        let r = c.handle(
            conn,
            &ProtoMessage {
                payload_type: 2106,
                payload: Some(vec![0xff, 0xff, 0xff]),
                client_msg_id: None,
            },
            now,
        );
        assert_eq!(only::<ProtoErrorRes>(&r).error_code, "INVALID_REQUEST");
        assert!(!r.close);
        let r = c.handle(conn, &ProtoHeartbeatEvent::default().wrap(None), now);
        only::<ProtoHeartbeatEvent>(&r);
    }

    #[test]
    fn market_order_reports_accepted_then_filled_to_every_session_of_the_account() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let b = login(&mut c, now);
        let r = send(&mut c, a, &market(1, 200_000), "ord", now);
        let kinds: Vec<(ConnId, i32, Option<&str>, Kind)> = r
            .out
            .iter()
            .map(|o| {
                let e = decode_out::<ProtoOaExecutionEvent>(o).unwrap();
                (
                    o.conn,
                    e.execution_type,
                    o.message.client_msg_id.as_deref(),
                    o.kind,
                )
            })
            .collect();
        let (acc, fill) = (
            ProtoOaExecutionType::OrderAccepted as i32,
            ProtoOaExecutionType::OrderFilled as i32,
        );
        assert_eq!(
            kinds,
            vec![
                (a, acc, Some("ord"), Kind::Response),
                (b, acc, None, Kind::Event),
                (a, fill, Some("ord"), Kind::Response),
                (b, fill, None, Kind::Event),
            ]
        );
        let filled = decode_out::<ProtoOaExecutionEvent>(&r.out[2]).unwrap();
        let pos = filled.position.unwrap();
        assert_eq!(pos.trade_data.label.as_deref(), Some("lbl"));
        assert_eq!(
            filled.order.unwrap().client_order_id.as_deref(),
            Some("coid")
        );
        // The last closed bar's close is the quote before the first step: ask = close + 7 points, + 1 slippage.
        let last_close = c.replay().closed_bars(0, i64::MIN, i64::MAX, Some(1))[0].close;
        let expected = ((last_close + 0.00008) * 1e5).round() / 1e5;
        assert!((filled.deal.unwrap().execution_price.unwrap() - expected).abs() < 1e-9);
        let rec = only::<ProtoOaReconcileRes>(&send(
            &mut c,
            b,
            &ProtoOaReconcileReq {
                ctid_trader_account_id: ACCOUNT,
                ..Default::default()
            },
            "r",
            now,
        ));
        assert_eq!(rec.position.len(), 1);
        assert_eq!(rec.position[0].position_id, pos.position_id);
    }

    /// One event of an order: (type, executed volume so far, position volume, deal (filled
    /// volume, price)).
    type OrderEvent = (i32, i64, Option<i64>, Option<(i64, f64)>);

    /// The events of one order on the requester's connection.
    fn order_events(r: &Reply) -> Vec<OrderEvent> {
        r.out
            .iter()
            .map(|o| {
                let e = decode_out::<ProtoOaExecutionEvent>(o).unwrap();
                (
                    e.execution_type,
                    e.order.unwrap().executed_volume.unwrap(),
                    e.position.map(|p| p.trade_data.volume),
                    e.deal
                        .map(|d| (d.filled_volume, d.execution_price.unwrap())),
                )
            })
            .collect()
    }

    #[test]
    fn fill_faults_report_each_deal_with_the_executed_volume_so_far_or_cut_the_order_short() {
        use ProtoOaExecutionType::*;
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let fault = |c: &mut SimCore, cmd: &str| {
            c.control(&ControlCommand::parse(cmd).unwrap(), now, 0);
        };

        // Three deals, each one point worse; every ORDER_FILLED carries the volume executed so far.
        fault(&mut c, "fill-deals 3");
        let ev = order_events(&send(&mut c, a, &market(1, 700_000), "o1", now));
        let kinds: Vec<i32> = ev.iter().map(|e| e.0).collect();
        let (acc, fil) = (OrderAccepted as i32, OrderFilled as i32);
        assert_eq!(kinds, vec![acc, fil, fil, fil]);
        assert_eq!(
            ev.iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![0, 200_000, 400_000, 700_000]
        );
        assert_eq!(
            ev[0].2, None,
            "an opening order's ORDER_ACCEPTED has no position"
        );
        assert_eq!(ev[3].2, Some(700_000));
        let deals: Vec<(i64, f64)> = ev.iter().filter_map(|e| e.3).collect();
        assert_eq!(
            deals.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![200_000, 200_000, 300_000]
        );
        assert!((deals[1].1 - deals[0].1 - 0.00001).abs() < 1e-9);
        assert!((deals[2].1 - deals[0].1 - 0.00002).abs() < 1e-9);
        let vwap = deals.iter().map(|(v, p)| *v as f64 * p).sum::<f64>() / 700_000.0;
        let pos = c.book().open_positions().next().unwrap().clone();
        assert!(
            (pos.entry_price - vwap).abs() < 1e-12,
            "{} vs {vwap}",
            pos.entry_price
        );

        // The same with ORDER_PARTIAL_FILL before the last deal.
        fault(&mut c, "fill-deals 2 partial");
        let ev = order_events(&send(&mut c, a, &market(1, 200_000), "o2", now));
        let kinds: Vec<i32> = ev.iter().map(|e| e.0).collect();
        assert_eq!(kinds, vec![acc, OrderPartialFill as i32, fil]);

        // Half filled, the rest cancelled, reported in the ORDER_CANCELLED itself (one deal);
        // once: the next order fills whole.
        fault(&mut c, "fill-deals 1");
        fault(&mut c, "cancel-fill EURUSD 0.5 1");
        let ev = order_events(&send(&mut c, a, &market(1, 400_000), "o3", now));
        assert_eq!(
            ev,
            vec![
                (acc, 0, None, None),
                (OrderCancelled as i32, 200_000, Some(200_000), None)
            ]
        );
        let ev = order_events(&send(&mut c, a, &market(1, 100_000), "o4", now));
        assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![acc, fil]);

        // Nothing filled, the order expires: no position.
        fault(&mut c, "expire-fill EURUSD 0 1");
        let ev = order_events(&send(&mut c, a, &market(1, 100_000), "o5", now));
        assert_eq!(
            ev,
            vec![(acc, 0, None, None), (OrderExpired as i32, 0, None, None)]
        );
        let volumes: Vec<i64> = c.book().open_positions().map(|p| p.volume).collect();
        assert_eq!(volumes, vec![700_000, 200_000, 200_000, 100_000]);
        use crate::book::OrderStatus::{self, Cancelled, Expired, Filled};
        let statuses: Vec<OrderStatus> = c.book().orders().iter().map(|o| o.status).collect();
        assert_eq!(statuses, vec![Filled, Filled, Cancelled, Filled, Expired]);

        // A close cut short keeps the rest of the position open.
        fault(&mut c, "cancel-fill EURUSD 0.5 1");
        let close = ProtoOaClosePositionReq {
            ctid_trader_account_id: ACCOUNT,
            position_id: pos.id,
            volume: 700_000,
            ..Default::default()
        };
        let ev = order_events(&send(&mut c, a, &close, "c1", now));
        assert_eq!(
            ev[0].2,
            Some(700_000),
            "a closing order's ACCEPTED has the position"
        );
        assert_eq!(ev[1], (OrderCancelled as i32, 300_000, Some(400_000), None));
    }

    #[test]
    fn an_sltp_amend_is_answered_accepted_then_replaced_then_cancelled() {
        use ProtoOaExecutionType::*;
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let b = login(&mut c, now);
        send(&mut c, a, &market(1, 100_000), "o", now);
        let id = c.book().open_positions().next().unwrap().id;
        let amend = |sl: Option<f64>, tp: Option<f64>| ProtoOaAmendPositionSltpReq {
            ctid_trader_account_id: ACCOUNT,
            position_id: id,
            stop_loss: sl,
            take_profit: tp,
            ..Default::default()
        };
        let mut answers = Vec::new();
        for (sl, tp) in [(Some(1.0), None), (Some(1.01), Some(1.5)), (None, None)] {
            let r = send(&mut c, a, &amend(sl, tp), "m", now);
            assert_eq!(r.out.len(), 2, "to both sessions");
            assert_eq!(r.out[0].message.client_msg_id.as_deref(), Some("m"));
            let e = decode_out::<ProtoOaExecutionEvent>(&r.out[0]).unwrap();
            let p = e.position.unwrap();
            assert_eq!((p.stop_loss, p.take_profit), (sl, tp));
            let o = e.order.unwrap();
            assert_eq!(o.order_type, ProtoOaOrderType::StopLossTakeProfit as i32);
            answers.push(e.execution_type);
        }
        assert_eq!(
            answers,
            vec![
                OrderAccepted as i32,
                OrderReplaced as i32,
                OrderCancelled as i32
            ]
        );
        let r = send(&mut c, b, &amend(Some(-1.0), None), "bad", now);
        assert_eq!(
            only::<ProtoOaOrderErrorEvent>(&r).error_code,
            "TRADING_BAD_STOPS"
        );
        let mut gone = amend(Some(1.0), None);
        gone.position_id = 999;
        let r = send(&mut c, b, &gone, "gone", now);
        assert_eq!(
            only::<ProtoOaOrderErrorEvent>(&r).error_code,
            "POSITION_NOT_FOUND"
        );
    }

    #[test]
    fn a_step_sends_the_closed_bar_then_the_new_one_to_subscribers_only() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let b = login(&mut c, now);
        let sub = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id: vec![1],
            ..Default::default()
        };
        let r = send(&mut c, a, &sub, "s", now);
        assert_eq!(r.out.len(), 2, "the response, then the current quote");
        let tb = ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id: 1,
            period: ProtoOaTrendbarPeriod::H1 as i32,
            ..Default::default()
        };
        only::<ProtoOaSubscribeLiveTrendbarRes>(&send(&mut c, a, &tb, "t", now));
        let out = c.step(now);
        assert!(out.iter().all(|o| o.conn == a), "b subscribed to nothing");
        let spots: Vec<ProtoOaSpotEvent> = out.iter().map(|o| decode_out(o).unwrap()).collect();
        assert_eq!(spots.len(), 2);
        assert!(spots.iter().all(|s| s.symbol_id == 1 && s.ask > s.bid));
        let bars = c.replay().series()[0].bars.clone();
        // The closing spot: the whole bar as a live trendbar (no deltaClose), its bid the close.
        assert_eq!(
            spots[0].trendbar[0],
            encode_live(&bars[9], ProtoOaTrendbarPeriod::H1)
        );
        assert_eq!(spots[0].trendbar[0].delta_close, None);
        assert_eq!(
            spots[0].bid,
            u64::try_from(price_to_units(bars[9].close)).ok()
        );
        assert_eq!(
            spots[1].trendbar[0].utc_timestamp_in_minutes,
            u32::try_from(bars[10].time / 60).ok()
        );
        assert_eq!(
            spots[1].bid,
            u64::try_from(price_to_units(bars[10].open)).ok()
        );
        let _ = b;
        // The forming bar never appears in history.
        let req = ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: ACCOUNT,
            from_timestamp: open_ms(&bars[0]),
            to_timestamp: open_ms(&bars[bars.len() - 1]),
            period: ProtoOaTrendbarPeriod::H1 as i32,
            symbol_id: 1,
            ..Default::default()
        };
        let hist = only::<ProtoOaGetTrendbarsRes>(&send(&mut c, a, &req, "h", now));
        assert_eq!(hist.trendbar.len(), 10);
        assert_eq!(
            hist.trendbar.last(),
            Some(&encode_closed(&bars[9], ProtoOaTrendbarPeriod::H1))
        );
        let m15 = ProtoOaGetTrendbarsReq {
            period: ProtoOaTrendbarPeriod::M15 as i32,
            ..req
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, a, &m15, "m", now)).error_code,
            "INVALID_REQUEST"
        );
    }

    #[test]
    fn trendbar_windows_past_the_documented_maximum_are_refused() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let to = open_ms(&c.replay().series()[0].bars[9]);
        let max_h1 = ctrader::domain::max_trendbar_request_ms(Timeframe::H1);
        let req = |from: i64, to: i64| ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: ACCOUNT,
            from_timestamp: from,
            to_timestamp: to,
            period: ProtoOaTrendbarPeriod::H1 as i32,
            symbol_id: 1,
            ..Default::default()
        };
        let within =
            only::<ProtoOaGetTrendbarsRes>(&send(&mut c, a, &req(to - max_h1, to), "1", now));
        assert_eq!(within.trendbar.len(), 10);
        for (from, to) in [
            (to - max_h1 - 1, to),
            (-1, 0),
            (0, ctrader::domain::MAX_TRENDBAR_TIMESTAMP_MS + 1),
            (to, to - 1),
        ] {
            let err = only::<ProtoOaErrorRes>(&send(&mut c, a, &req(from, to), "2", now));
            assert_eq!(err.error_code, "INCORRECT_BOUNDARIES", "{from}..{to}");
        }
    }

    #[test]
    fn symbol_requests_check_the_account_then_the_symbol_then_the_period() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        // (account, symbol, period): another account, then an unknown symbol, then a known symbol
        // with a period the simulator does not replay.
        let cases = [
            (ACCOUNT + 1, 999, ProtoOaTrendbarPeriod::M1 as i32),
            (ACCOUNT, 999, ProtoOaTrendbarPeriod::M1 as i32),
            (ACCOUNT, 1, ProtoOaTrendbarPeriod::M1 as i32),
        ];
        let mut errors = |request: &dyn Fn(i64, i64, i32) -> ProtoMessage, n: usize| {
            cases[..n]
                .iter()
                .map(|&(account, symbol, period)| {
                    let r = c.handle(a, &request(account, symbol, period), now);
                    let err = only::<ProtoOaErrorRes>(&r);
                    assert_eq!(err.ctid_trader_account_id, Some(account));
                    err.error_code
                })
                .collect::<Vec<_>>()
        };
        let history = |account, symbol_id, period| {
            ProtoOaGetTrendbarsReq {
                ctid_trader_account_id: account,
                from_timestamp: 0,
                to_timestamp: i64::MAX / 2,
                period,
                symbol_id,
                ..Default::default()
            }
            .wrap(Some("h".into()))
        };
        assert_eq!(
            errors(&history, 3),
            [
                "ACCOUNT_NOT_AUTHORIZED",
                "SYMBOL_NOT_FOUND",
                "INVALID_REQUEST"
            ]
        );
        // Spots have no period; one unknown id among known ones refuses the whole request.
        let spots = |account, symbol_id, _| {
            ProtoOaSubscribeSpotsReq {
                ctid_trader_account_id: account,
                symbol_id: vec![1, symbol_id],
                ..Default::default()
            }
            .wrap(Some("s".into()))
        };
        assert_eq!(
            errors(&spots, 2),
            ["ACCOUNT_NOT_AUTHORIZED", "SYMBOL_NOT_FOUND"]
        );
        // Live trendbars need the symbol's spots first: that check comes before the period's.
        let live = |account, symbol_id, period| {
            ProtoOaSubscribeLiveTrendbarReq {
                ctid_trader_account_id: account,
                symbol_id,
                period,
                ..Default::default()
            }
            .wrap(Some("t".into()))
        };
        assert_eq!(
            errors(&live, 3),
            [
                "ACCOUNT_NOT_AUTHORIZED",
                "SYMBOL_NOT_FOUND",
                "NOT_SUBSCRIBED_TO_SPOTS"
            ]
        );
    }

    #[test]
    fn intermediate_ticks_move_the_quote_inside_the_forming_bar() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let sub = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id: vec![1],
            ..Default::default()
        };
        send(&mut c, a, &sub, "s", now);
        let tb = ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: ACCOUNT,
            symbol_id: 1,
            period: ProtoOaTrendbarPeriod::H1 as i32,
            ..Default::default()
        };
        send(&mut c, a, &tb, "t", now);
        c.step(now);
        let bar = c.replay().forming_bar(0).unwrap();
        let out = c.tick(0.5);
        assert_eq!(out.len(), 1, "one spot for the one subscribed symbol");
        let spot: ProtoOaSpotEvent = decode_out(&out[0]).unwrap();
        let live =
            ctrader::domain::LiveTrendbar::from_proto(&spot.trendbar[0], Timeframe::H1).unwrap();
        let bid = ctrader::domain::price_from_units(spot.bid.unwrap() as i64);
        assert_eq!(
            spot.trendbar[0].delta_close, None,
            "live trendbars carry no close"
        );
        assert_eq!(live.open_time, bar.time);
        assert!(live.low >= bar.low - 1e-9 && live.high <= bar.high + 1e-9);
        // The tick's bid is inside the range the trendbar has visited so far.
        assert!(
            live.low - 1e-9 <= bid && bid <= live.high + 1e-9,
            "{bid} vs {live:?}"
        );
        assert_eq!(c.book().quote(1).unwrap().bid, bid, "fills follow the tick");
        assert!(spot.timestamp.unwrap() > open_ms(&bar));
    }

    #[test]
    fn latency_runs_from_the_published_close_to_the_first_order() {
        let t0 = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, t0);
        c.step(t0);
        send(
            &mut c,
            a,
            &market(1, 100_000),
            "1",
            t0 + Duration::from_micros(1_500),
        );
        send(
            &mut c,
            a,
            &market(1, 100_000),
            "2",
            t0 + Duration::from_micros(9_000),
        );
        let rep = c.latency().report();
        assert_eq!(rep.per_symbol["EURUSD"].count, 1);
        assert_eq!(rep.per_symbol["EURUSD"].max_us, 1_500);
        assert!(!rep.per_symbol.contains_key("US500"));
    }

    #[test]
    fn injected_faults_shape_the_answers() {
        let t0 = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, t0);
        let trader = ProtoOaTraderReq {
            ctid_trader_account_id: ACCOUNT,
            ..Default::default()
        };

        c.control(&ControlCommand::DropResponses(1), t0, 0);
        assert!(send(&mut c, a, &trader, "x", t0).out.is_empty());
        only::<ProtoOaTraderRes>(&send(&mut c, a, &trader, "y", t0));

        c.control(&ControlCommand::Delay(Duration::from_millis(250)), t0, 0);
        let r = send(&mut c, a, &trader, "z", t0);
        assert_eq!(r.out[0].delay, Duration::from_millis(250));
        c.control(&ControlCommand::Delay(Duration::ZERO), t0, 0);

        c.control(&ControlCommand::MarginFail("EURUSD".into()), t0, 0);
        let r = send(&mut c, a, &market(1, 100_000), "o", t0);
        assert_eq!(
            only::<ProtoOaOrderErrorEvent>(&r).error_code,
            "NOT_ENOUGH_MONEY"
        );
        assert_eq!(r.out[0].message.client_msg_id.as_deref(), Some("o"));

        let t1 = t0 + Duration::from_secs(5);
        c.control(&ControlCommand::RateLimit(Some(2)), t1, 0);
        only::<ProtoOaTraderRes>(&send(&mut c, a, &trader, "1", t1));
        only::<ProtoOaTraderRes>(&send(&mut c, a, &trader, "2", t1));
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, a, &trader, "3", t1)).error_code,
            "REQUEST_FREQUENCY_EXCEEDED"
        );
        only::<ProtoOaTraderRes>(&send(&mut c, a, &trader, "4", t1 + Duration::from_secs(1)));

        let (_, action) = c.control(
            &ControlCommand::Maintenance(Duration::from_secs(30)),
            t1,
            1_000_000,
        );
        assert_eq!(action, FaultAction::DisconnectAll);
        let fresh = c.connect();
        let auth = ProtoOaApplicationAuthReq {
            client_id: "id".into(),
            client_secret: "secret".into(),
            ..Default::default()
        };
        let r = send(&mut c, fresh, &auth, "m", t1 + Duration::from_secs(1));
        let err = only::<ProtoOaErrorRes>(&r);
        assert_eq!(
            (err.error_code.as_str(), err.maintenance_end_timestamp),
            ("SERVER_IS_UNDER_MAINTENANCE", Some(1_030))
        );
        assert!(r.close);
        only::<ProtoOaApplicationAuthRes>(&send(
            &mut c,
            fresh,
            &auth,
            "n",
            t1 + Duration::from_secs(31),
        ));
    }

    #[test]
    fn orders_fail_with_market_closed_where_a_symbol_has_no_bar() {
        let now = Instant::now();
        let text = "time,open,high,low,close,volume\n0,1.1,1.1,1.1,1.1,1\n3600,1.1,1.1,1.1,1.1,1\n7200,1.1,1.1,1.1,1.1,1\n";
        let gappy = "time,open,high,low,close,volume\n0,5000,5000,5000,5000,1\n3600,5000,5000,5000,5000,1\n";
        let series = vec![
            parse_bars("EURUSD", Path::new("a"), text).unwrap(),
            parse_bars("US500", Path::new("b"), gappy).unwrap(),
        ];
        let mut c2 = core_from(series, 2);
        let a = login(&mut c2, now);
        c2.step(now); // opens 02:00: EURUSD trades, US500 has no bar
        let r = send(&mut c2, a, &market(10_013, 10), "x", now);
        assert_eq!(
            only::<ProtoOaOrderErrorEvent>(&r).error_code,
            "MARKET_CLOSED"
        );
        let r = send(&mut c2, a, &market(1, 100_000), "y", now);
        assert_eq!(r.out.len(), 2);
    }

    #[test]
    fn a_deposit_reaches_every_session_as_a_trader_update() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        let idle = c.connect(); // not authorised on the account: gets nothing
        c.control(&ControlCommand::Deposit(-12_345), now, 0);
        let out = c.take_events();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].conn, a);
        assert_ne!(out[0].conn, idle);
        let ev = decode_out::<ProtoOaTraderUpdatedEvent>(&out[0]).unwrap();
        assert_eq!(ev.trader.balance, 1_000_000 - 12_345);
        assert_eq!(ev.trader.balance_version, Some(1));
        assert!(c.take_events().is_empty(), "delivered once");
    }

    #[test]
    fn an_invalidated_token_logs_the_account_out_and_stops_working() {
        let now = Instant::now();
        let mut c = core(10);
        let a = login(&mut c, now);
        c.control(
            &ControlCommand::TokenInvalidate { refresh_too: false },
            now,
            0,
        );
        let out = c.take_events();
        let ev = decode_out::<ProtoOaAccountsTokenInvalidatedEvent>(&out[0]).unwrap();
        assert_eq!(
            (out[0].conn, ev.ctid_trader_account_ids),
            (a, vec![ACCOUNT])
        );
        let trader = ProtoOaTraderReq {
            ctid_trader_account_id: ACCOUNT,
            ..Default::default()
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, a, &trader, "t", now)).error_code,
            "ACCOUNT_NOT_AUTHORIZED",
            "the connection stays, the account session is gone"
        );
        let old = ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACCOUNT,
            access_token: "token".into(),
            ..Default::default()
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, a, &old, "o", now)).error_code,
            "CH_ACCESS_TOKEN_INVALID"
        );
        // The refresh token still works after a plain invalidation...
        let refresh = ProtoOaRefreshTokenReq {
            refresh_token: "refresh".into(),
            ..Default::default()
        };
        let fresh = only::<ProtoOaRefreshTokenRes>(&send(&mut c, a, &refresh, "r", now));
        let again = ProtoOaAccountAuthReq {
            access_token: fresh.access_token,
            ..old.clone()
        };
        only::<ProtoOaAccountAuthRes>(&send(&mut c, a, &again, "n", now));
        // ...but not after a revocation of both.
        c.control(
            &ControlCommand::TokenInvalidate { refresh_too: true },
            now,
            0,
        );
        assert_eq!(c.take_events().len(), 1);
        let refresh = ProtoOaRefreshTokenReq {
            refresh_token: fresh.refresh_token,
            ..Default::default()
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, a, &refresh, "r2", now)).error_code,
            "CH_ACCESS_TOKEN_INVALID"
        );
    }

    #[test]
    fn refresh_tokens_are_single_use_and_rotate_the_access_token() {
        let now = Instant::now();
        let mut c = core(10);
        let conn = c.connect();
        let auth = ProtoOaApplicationAuthReq {
            client_id: "id".into(),
            client_secret: "secret".into(),
            ..Default::default()
        };
        only::<ProtoOaApplicationAuthRes>(&send(&mut c, conn, &auth, "a", now));
        let refresh = ProtoOaRefreshTokenReq {
            refresh_token: "refresh".into(),
            ..Default::default()
        };
        let res = only::<ProtoOaRefreshTokenRes>(&send(&mut c, conn, &refresh, "r", now));
        assert_ne!(res.access_token, "token");
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, conn, &refresh, "r2", now)).error_code,
            "CH_ACCESS_TOKEN_INVALID"
        );
        let old = ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACCOUNT,
            access_token: "token".into(),
            ..Default::default()
        };
        assert_eq!(
            only::<ProtoOaErrorRes>(&send(&mut c, conn, &old, "o", now)).error_code,
            "CH_ACCESS_TOKEN_INVALID"
        );
        let new = ProtoOaAccountAuthReq {
            access_token: res.access_token,
            ..old
        };
        only::<ProtoOaAccountAuthRes>(&send(&mut c, conn, &new, "n", now));
    }
}
