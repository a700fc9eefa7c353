//! The versioned JSON records an instance publishes, one type per stream, and their decoder.
//!
//! Every record is `{"v": 1, "seq": N, "ts_ms": T, "body": {…}}`: `seq` counts from 1 per
//! (instance, stream) and survives restarts (the instance's outbox assigns it), so the hub upserts
//! by (instance, stream, seq) and a replay after an outage changes nothing. `ts_ms` is the
//! instance's clock (Unix milliseconds) when the record was made. Within version 1, unknown fields
//! are ignored (additions stay compatible); another `v` is refused.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use protocol::bar::tick_volume;
use protocol::{Bar, BarError, BarTime, Line, Mode, Symbol, Timeframe, ValueError};

use crate::command::CommandOutcome;
use crate::limits::{MAX_SYMBOLS, MAX_TEXT};
use crate::topic::Stream;

/// The record format version this crate writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// Unix milliseconds bounds a timestamp must fall in (2000-01-01 ..= 2200-01-01): a record from
/// outside is a broken clock or a forged value, and would wreck every time axis.
pub const MIN_TS_MS: i64 = 946_684_800_000;
pub const MAX_TS_MS: i64 = 7_258_118_400_000;

/// A record as on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<B> {
    pub v: u32,
    pub seq: u64,
    pub ts_ms: i64,
    pub body: B,
}

impl<B: Serialize> Record<B> {
    pub fn new(seq: u64, ts_ms: i64, body: B) -> Self {
        Self {
            v: RECORD_VERSION,
            seq,
            ts_ms,
            body,
        }
    }

    /// The JSON payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these plain data types cannot fail (no map with non-string keys, no I/O).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A field that fails its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(field: &str, problem: String) -> Self {
        Self {
            field: field.to_owned(),
            problem,
        }
    }
}

/// Checks a body beyond its shape (ranges, finiteness, bounded text and lists).
pub trait Validate {
    fn validate(&self) -> Result<(), Invalid>;
}

pub(crate) fn check_text(field: &str, s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_TEXT {
        return Err(Invalid::new(
            field,
            format!("{} bytes, at most {MAX_TEXT}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::new(field, "contains a control character".into()));
    }
    Ok(())
}

fn check_finite(field: &str, v: f64) -> Result<(), Invalid> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Invalid::new(field, format!("{v} is not finite")))
    }
}

fn check_ts(field: &str, ts: i64) -> Result<(), Invalid> {
    if (MIN_TS_MS..=MAX_TS_MS).contains(&ts) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{ts} is not Unix milliseconds between 2000 and 2200"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// status

/// `oracle/{id}/status` (retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Published on every connect.
    Online {
        mode: Mode,
        version: String,
        started_ms: i64,
    },
    /// The last will (the broker publishes it when the link dies), or a clean shutdown.
    Offline,
}

impl Validate for Status {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            Self::Online {
                version,
                started_ms,
                ..
            } => {
                check_text("version", version)?;
                check_ts("started_ms", *started_ms)
            }
            Self::Offline => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// telemetry

/// A book's side on one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    Long,
    Short,
    Flat,
}

/// One book's position on one symbol: side, lots (0 when flat) and its PnL in account currency
/// (the twin's realised virtual PnL; a broker book's open PnL).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub side: Side,
    pub lots: f64,
    pub pnl: f64,
}

impl Position {
    fn validate(&self, field: &str) -> Result<(), Invalid> {
        check_finite(field, self.lots)?;
        check_finite(field, self.pnl)?;
        if self.lots < 0.0 || (self.side == Side::Flat) != (self.lots == 0.0) {
            return Err(Invalid::new(
                field,
                format!(
                    "{:?} with {} lots (flat is 0 lots, a position more)",
                    self.side, self.lots
                ),
            ));
        }
        Ok(())
    }
}

/// The last closed bar a symbol saw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastBar {
    pub timeframe: Timeframe,
    pub open_time: BarTime,
    pub close: f64,
}

/// One symbol in a telemetry record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolTelemetry {
    pub symbol: Symbol,
    pub enabled: bool,
    /// The twin's virtual position (what the model holds).
    #[serde(rename = "virtual")]
    pub virtual_position: Position,
    /// The paper book (paper and shadow modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<Position>,
    /// The live book (live and shadow modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bar: Option<LastBar>,
}

/// A loss measured against its limit, both in % of the initial balance (the risk guard's figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossUse {
    pub used_pct: f64,
    pub limit_pct: f64,
}

/// The state of the instance's broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerLink {
    /// The cTrader session is up and authorised.
    Up,
    /// Down or reconnecting.
    Down,
    /// Paper mode: no broker.
    None,
}

/// `oracle/{id}/telemetry`: every N seconds and on change. Money is in the account currency; the
/// headline figures are the account's (the live book in live and shadow modes, the paper book in
/// paper mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    pub mode: Mode,
    pub equity: f64,
    pub balance: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// The paper book's equity when it runs beside live (shadow mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_equity: Option<f64>,
    /// Today's PnL (since the trading day's starting equity).
    pub day_pnl: f64,
    pub daily_loss: LossUse,
    pub total_loss: LossUse,
    pub broker_link: BrokerLink,
    pub paused: bool,
    pub kill_switch: bool,
    pub open_positions: u32,
    pub symbols: Vec<SymbolTelemetry>,
}

impl Validate for Telemetry {
    fn validate(&self) -> Result<(), Invalid> {
        for (field, v) in [
            ("equity", self.equity),
            ("balance", self.balance),
            ("day_pnl", self.day_pnl),
            ("daily_loss.used_pct", self.daily_loss.used_pct),
            ("daily_loss.limit_pct", self.daily_loss.limit_pct),
            ("total_loss.used_pct", self.total_loss.used_pct),
            ("total_loss.limit_pct", self.total_loss.limit_pct),
            ("margin", self.margin.unwrap_or(0.0)),
            ("paper_equity", self.paper_equity.unwrap_or(0.0)),
        ] {
            check_finite(field, v)?;
        }
        if self.symbols.len() > MAX_SYMBOLS {
            return Err(Invalid::new(
                "symbols",
                format!("{} symbols, at most {MAX_SYMBOLS}", self.symbols.len()),
            ));
        }
        for s in &self.symbols {
            s.virtual_position.validate("symbols[].virtual")?;
            if let Some(p) = &s.paper {
                p.validate("symbols[].paper")?;
            }
            if let Some(p) = &s.live {
                p.validate("symbols[].live")?;
            }
            if let Some(b) = &s.last_bar {
                check_finite("symbols[].last_bar.close", b.close)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// signals, acks, drift, bars

/// `oracle/{id}/signals`: a SIGNAL line as the twin sent it (protocol/PROTOCOL.md is its grammar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub line: String,
}

/// The book an ACK speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Book {
    Live,
    Paper,
}

/// `oracle/{id}/acks`: an ACK line the executor answered, and for which book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    pub book: Book,
    pub line: String,
}

fn parse_line(field: &str, line: &str, want: &str) -> Result<Line, Invalid> {
    let parsed: Line = line
        .parse()
        .map_err(|e: protocol::ParseError| Invalid::new(field, e.to_string()))?;
    let kind = match &parsed {
        Line::Signal(_) => "SIGNAL",
        Line::Ack(_) => "ACK",
        _ => "other",
    };
    if kind != want {
        return Err(Invalid::new(field, format!("not a {want} line")));
    }
    Ok(parsed)
}

impl SignalRecord {
    /// The parsed line (validated by [`Validate`], so this only fails on an unvalidated record).
    pub fn signal(&self) -> Result<protocol::Signal, Invalid> {
        match parse_line("line", &self.line, "SIGNAL")? {
            Line::Signal(s) => Ok(s),
            _ => Err(Invalid::new("line", "not a SIGNAL line".into())),
        }
    }
}

impl AckRecord {
    pub fn ack(&self) -> Result<protocol::Ack, Invalid> {
        match parse_line("line", &self.line, "ACK")? {
            Line::Ack(a) => Ok(a),
            _ => Err(Invalid::new("line", "not an ACK line".into())),
        }
    }
}

impl Validate for SignalRecord {
    fn validate(&self) -> Result<(), Invalid> {
        self.signal().map(|_| ())
    }
}

impl Validate for AckRecord {
    fn validate(&self) -> Result<(), Invalid> {
        self.ack().map(|_| ())
    }
}

/// `oracle/{id}/bars`: one closed bar (the hub's recorder). `open_time` is the bar's open time, as
/// in protocol BAR lines and the bars CSV (scripts/ENV.md §1). The wire form of a [`protocol::Bar`]
/// with its symbol and timeframe: it converts both ways ([`BarRecord::new`], [`BarRecord::to_bar`]),
/// and a record is valid exactly when it is a bar by the bar's own rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarRecord {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub open_time: BarTime,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Tick volume, a whole number (a JSON number; `u64` in [`protocol::Bar`]).
    pub volume: f64,
}

impl BarRecord {
    /// The record of `bar`; fails on a time outside the BAR line's range (1970..=9999).
    pub fn new(symbol: Symbol, timeframe: Timeframe, bar: &Bar) -> Result<Self, ValueError> {
        Ok(Self {
            symbol,
            timeframe,
            open_time: BarTime::from_unix(bar.time)?,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            // A tick count beyond 2^53 does not occur; below it the f64 is exact.
            volume: bar.volume as f64,
        })
    }

    /// The bar this record carries, checked by [`Bar::validate`] (scripts/ENV.md §1: finite
    /// prices within ±1e9, high ≥ max(open, close), low ≤ min(open, close)) and
    /// [`protocol::bar::tick_volume`] (a whole number ≥ 0).
    pub fn to_bar(&self) -> Result<Bar, Invalid> {
        let volume = tick_volume(self.volume);
        let bar = Bar {
            time: self.open_time.unix_seconds(),
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: volume.unwrap_or(0),
        };
        bar.validate().map_err(|e| {
            let field = match &e {
                BarError::NotFinite { field, .. } | BarError::PriceOutOfRange { field, .. } => {
                    field
                }
                BarError::HighTooLow { .. } => "high",
                BarError::LowTooHigh { .. } => "low",
                BarError::Time { .. } => "open_time",
            };
            Invalid::new(field, e.to_string())
        })?;
        volume.map_err(|e| Invalid::new("volume", format!("{} {e}", self.volume)))?;
        Ok(bar)
    }
}

impl Validate for BarRecord {
    fn validate(&self) -> Result<(), Invalid> {
        self.to_bar().map(|_| ())
    }
}

/// `oracle/{id}/drift`: after a signal was handled, where each book stands against the twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub symbol: Symbol,
    /// The open time of the bar the signal was decided on.
    pub bar_time: BarTime,
    /// The twin's position (the target).
    pub target: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<Position>,
    /// Every book present holds the target's side and lots.
    pub in_sync: bool,
    /// Why a book did not follow (an ACK reason such as `MARKET_CLOSED`), when one did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fill slippage in points against the signal's bar close, when an order filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slippage_points: Option<f64>,
}

impl Validate for DriftRecord {
    fn validate(&self) -> Result<(), Invalid> {
        self.target.validate("target")?;
        if let Some(p) = &self.live {
            p.validate("live")?;
        }
        if let Some(p) = &self.paper {
            p.validate("paper")?;
        }
        if let Some(r) = &self.reason {
            check_text("reason", r)?;
        }
        check_finite("slippage_points", self.slippage_points.unwrap_or(0.0))
    }
}

// ---------------------------------------------------------------------------------------------
// decoding

/// A decoded record body, by stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Status(Status),
    Telemetry(Box<Telemetry>),
    Signal(SignalRecord),
    Ack(AckRecord),
    Bar(BarRecord),
    Drift(DriftRecord),
    CommandResult(Box<CommandOutcome>),
}

/// Why a payload was refused. Never contains more than a bounded prefix of the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{stream} record of {size} bytes is larger than {max}")]
    TooLarge {
        stream: Stream,
        size: usize,
        max: usize,
    },
    #[error("{stream} record is not valid JSON of the record shape: {message}")]
    Malformed { stream: Stream, message: String },
    #[error("{stream} record has version {v}; this hub reads version {RECORD_VERSION}")]
    Version { stream: Stream, v: u32 },
    #[error("{stream} record: seq must be >= 1")]
    ZeroSeq { stream: Stream },
    #[error("{stream} record: {invalid}")]
    Invalid { stream: Stream, invalid: Invalid },
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    v: u32,
    seq: u64,
    ts_ms: i64,
    #[serde(borrow)]
    body: &'a RawValue,
}

fn malformed(stream: Stream, e: &serde_json::Error) -> RecordError {
    let mut message = e.to_string();
    message.truncate(MAX_TEXT);
    RecordError::Malformed { stream, message }
}

fn body<T: DeserializeOwned + Validate>(stream: Stream, raw: &RawValue) -> Result<T, RecordError> {
    let b: T = serde_json::from_str(raw.get()).map_err(|e| malformed(stream, &e))?;
    b.validate()
        .map_err(|invalid| RecordError::Invalid { stream, invalid })?;
    Ok(b)
}

/// Decodes and validates a payload received on `stream`: size first (before any parsing), then
/// shape, version, seq, timestamp and the body's own checks.
pub fn decode(stream: Stream, payload: &[u8]) -> Result<Record<Body>, RecordError> {
    let max = stream.max_payload();
    if payload.len() > max {
        return Err(RecordError::TooLarge {
            stream,
            size: payload.len(),
            max,
        });
    }
    let raw: RawRecord = serde_json::from_slice(payload).map_err(|e| malformed(stream, &e))?;
    if raw.v != RECORD_VERSION {
        return Err(RecordError::Version { stream, v: raw.v });
    }
    if raw.seq == 0 {
        return Err(RecordError::ZeroSeq { stream });
    }
    check_ts("ts_ms", raw.ts_ms).map_err(|invalid| RecordError::Invalid { stream, invalid })?;
    let b = match stream {
        Stream::Status => Body::Status(body(stream, raw.body)?),
        Stream::Telemetry => Body::Telemetry(Box::new(body(stream, raw.body)?)),
        Stream::Signals => Body::Signal(body(stream, raw.body)?),
        Stream::Acks => Body::Ack(body(stream, raw.body)?),
        Stream::Bars => Body::Bar(body(stream, raw.body)?),
        Stream::Drift => Body::Drift(body(stream, raw.body)?),
        Stream::CommandResults => Body::CommandResult(Box::new(body(stream, raw.body)?)),
    };
    Ok(Record {
        v: raw.v,
        seq: raw.seq,
        ts_ms: raw.ts_ms,
        body: b,
    })
}
