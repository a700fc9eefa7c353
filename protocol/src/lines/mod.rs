//! The eight line types and their canonical formatter; `parse.rs` is their strict parser.
//!
//! A line is `TYPE|positional...|KEY:VALUE...`.

mod parse;

use std::borrow::Cow;
use std::fmt;

use crate::MAX_LINE_LEN;
use crate::action::Action;
use crate::auth::{Nonce, Proof};
use crate::codes::{ErrorCode, Reason};
use crate::error::{ParseError, ValueError};
use crate::values::{BarTime, Decimal, Mode, Symbol, Timeframe};

/// Every line type keyword, in PROTOCOL.md order.
pub const LINE_TYPES: [&str; 9] = [
    "HELLO",
    "AUTH",
    "BAR",
    "WARMUP",
    "HISTORY",
    "HISTORY_END",
    "SIGNAL",
    "ACK",
    "ERROR",
];

/// One protocol line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Hello(Hello),
    Auth(Auth),
    Bar(BarLine),
    Warmup(Warmup),
    History(History),
    HistoryEnd(HistoryEnd),
    Signal(Signal),
    Ack(Ack),
    Error(ErrorLine),
}

impl Line {
    /// The type keyword (`"SIGNAL"`, ...).
    pub fn line_type(&self) -> &'static str {
        match self {
            Self::Hello(_) => "HELLO",
            Self::Auth(_) => "AUTH",
            Self::Bar(_) => "BAR",
            Self::Warmup(_) => "WARMUP",
            Self::History(_) => "HISTORY",
            Self::HistoryEnd(_) => "HISTORY_END",
            Self::Signal(_) => "SIGNAL",
            Self::Ack(_) => "ACK",
            Self::Error(_) => "ERROR",
        }
    }

    /// The canonical text with the handshake's nonces and proofs replaced by `***`: what logs
    /// should show ([`crate::redact()`], which raw text that did not parse goes through too).
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(self)
    }
}

/// [`Line::redacted`]'s display adapter.
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(&'a Line);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::redact::redact(&self.0.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Line structs

/// The first line on a connection, from each side: the first two passes of the mutual
/// challenge–response (PROTOCOL.md §7). The shared token itself is never on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// `HELLO|preditor|<version>|<nonce>`: the preditor's challenge.
    Preditor { version: String, nonce: Nonce },
    /// `HELLO|executor|<version>|<mode>|<nonce>|<proof>`: the executor's challenge, and its proof
    /// that it holds the token (an HMAC over both nonces, both versions and the mode).
    Executor {
        version: String,
        mode: Mode,
        nonce: Nonce,
        proof: Proof,
    },
}

impl Hello {
    pub const MAX_VERSION_LEN: usize = 32;
    const VERSION_EXPECTED: &'static str =
        "a version of 1..=32 characters from A-Z a-z 0-9 . _ + -";

    /// Validating constructor: a `Hello` built this way always round-trips.
    pub fn preditor(version: &str, nonce: Nonce) -> Result<Self, ValueError> {
        Ok(Self::Preditor {
            version: parse_version(version)?,
            nonce,
        })
    }

    /// Validating constructor.
    pub fn executor(
        version: &str,
        mode: Mode,
        nonce: Nonce,
        proof: Proof,
    ) -> Result<Self, ValueError> {
        Ok(Self::Executor {
            version: parse_version(version)?,
            mode,
            nonce,
            proof,
        })
    }

    pub fn version(&self) -> &str {
        match self {
            Self::Preditor { version, .. } | Self::Executor { version, .. } => version,
        }
    }
}

fn parse_version(s: &str) -> Result<String, ValueError> {
    let ok = (1..=Hello::MAX_VERSION_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ValueError::new(Hello::VERSION_EXPECTED, s))
    }
}

/// `AUTH|<proof>`: the third pass, the preditor's proof that it holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub proof: Proof,
}

/// `BAR`: a closed bar of one symbol and timeframe as the wire carries it: open time (UTC), OHLC as
/// exact decimal text, tick volume. [`crate::Bar`] is the bar itself ([`crate::Bar::to_line`],
/// [`BarLine::to_bar`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarLine {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// The bar's open time.
    pub time: BarTime,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: u64,
}

/// The preditor asks for the last `count` closed bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warmup {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// At least 1.
    pub count: u32,
}

/// Opens the answer to a WARMUP: `count` BAR lines follow, oldest first, then HISTORY_END.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// How many BAR lines follow; may be less than asked (or 0) when the broker has fewer.
    pub count: u32,
}

/// Closes a HISTORY block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEnd {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
}

/// The model's decision on a bar and the twin's virtual state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub symbol: Symbol,
    pub action: Action,
    /// HMM regime: the argmax of the filtered posterior at this bar.
    pub regime: u16,
    /// Cumulative realised virtual PnL, account currency, exactly 2 decimal places.
    pub virtual_pnl: Decimal,
    /// `B:` the open time of the bar the action was decided on.
    pub bar_time: Option<BarTime>,
    /// `N:` bars the current action has been held, >= 1 (1 = changed on this bar).
    pub held: Option<u32>,
}

impl Signal {
    /// Decimal places `virtual_pnl` must have.
    pub const PNL_DECIMALS: usize = 2;
}

/// The executor's answer to a SIGNAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub symbol: Symbol,
    pub action: Action,
    pub outcome: AckOutcome,
    /// `B:` the bar of the SIGNAL this answers (echo of its `B:`), so the preditor can pair them.
    pub bar_time: Option<BarTime>,
}

impl Ack {
    pub fn ok(
        symbol: Symbol,
        action: Action,
        position_id: Option<u64>,
        price: Option<Decimal>,
    ) -> Self {
        Self {
            symbol,
            action,
            outcome: AckOutcome::Ok { position_id, price },
            bar_time: None,
        }
    }

    pub fn fail(symbol: Symbol, action: Action, reason: Reason) -> Self {
        Self {
            symbol,
            action,
            outcome: AckOutcome::Fail(reason),
            bar_time: None,
        }
    }

    pub fn wait_sync(symbol: Symbol, action: Action, reason: Reason) -> Self {
        Self {
            symbol,
            action,
            outcome: AckOutcome::WaitSync(reason),
            bar_time: None,
        }
    }

    pub fn with_bar_time(mut self, bar_time: Option<BarTime>) -> Self {
        self.bar_time = bar_time;
        self
    }
}

/// What happened to a SIGNAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Done (or nothing to do): `T:` the position id, `P:` the fill or entry price.
    Ok {
        position_id: Option<u64>,
        price: Option<Decimal>,
    },
    /// Refused or failed.
    Fail(Reason),
    /// Deliberately not followed until the next action change.
    WaitSync(Reason),
}

impl AckOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "OK",
            Self::Fail(_) => "FAIL",
            Self::WaitSync(_) => "WAIT_SYNC",
        }
    }
}

/// `ERROR|<CODE>|<text>`: a line could not be accepted; the connection stays up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    pub code: ErrorCode,
    /// Free text, the rest of the line: may contain `|`, never a control character, no
    /// leading/trailing whitespace, not empty.
    pub text: String,
}

impl ErrorLine {
    /// Builds an ERROR whose text is made safe for the wire: control characters become spaces,
    /// edges are trimmed, an empty text becomes `-`, and it is cut so the line fits MAX_LINE_LEN.
    /// Use this when the text quotes untrusted input.
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        let text = text.into();
        let text = match sanitize_error_text(&code, &text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(clean) => clean,
        };
        Self { code, text }
    }
}

/// The text an ERROR line may carry, after the `ERROR|<CODE>|` prefix, to stay within MAX_LINE_LEN.
fn error_text_budget(code: &ErrorCode) -> usize {
    // Saturating: a hand-built `ErrorCode::Other` could be arbitrarily long.
    MAX_LINE_LEN.saturating_sub("ERROR||".len() + code.as_str().len())
}

fn error_text_ok(code: &ErrorCode, text: &str) -> bool {
    !text.is_empty()
        && text.len() <= error_text_budget(code)
        && text.trim() == text
        && !text.chars().any(char::is_control)
}

fn sanitize_error_text<'a>(code: &ErrorCode, text: &'a str) -> Cow<'a, str> {
    if error_text_ok(code, text) {
        return Cow::Borrowed(text);
    }
    let budget = error_text_budget(code);
    let mut clean = String::with_capacity(text.len().min(budget));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if clean.len() + c.len_utf8() > budget {
            break;
        }
        clean.push(c);
    }
    let trimmed = clean.trim();
    Cow::Owned(if trimmed.is_empty() {
        "-".to_owned()
    } else {
        trimmed.to_owned()
    })
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hello(Hello::Preditor { version, nonce }) => {
                write!(f, "HELLO|preditor|{version}|{nonce}")
            }
            Self::Hello(Hello::Executor {
                version,
                mode,
                nonce,
                proof,
            }) => {
                write!(f, "HELLO|executor|{version}|{mode}|{nonce}|{proof}")
            }
            Self::Auth(a) => write!(f, "AUTH|{}", a.proof),
            Self::Bar(b) => write!(
                f,
                "BAR|{}|{}|{}|{}|{}|{}|{}|{}",
                b.symbol, b.timeframe, b.time, b.open, b.high, b.low, b.close, b.volume
            ),
            Self::Warmup(w) => write!(f, "WARMUP|{}|{}|{}", w.symbol, w.timeframe, w.count),
            Self::History(h) => write!(f, "HISTORY|{}|{}|{}", h.symbol, h.timeframe, h.count),
            Self::HistoryEnd(h) => write!(f, "HISTORY_END|{}|{}", h.symbol, h.timeframe),
            Self::Signal(s) => {
                write!(
                    f,
                    "SIGNAL|{}|{}|{}|{}",
                    s.symbol, s.action, s.regime, s.virtual_pnl
                )?;
                if let Some(b) = s.bar_time {
                    write!(f, "|B:{b}")?;
                }
                if let Some(n) = s.held {
                    write!(f, "|N:{n}")?;
                }
                Ok(())
            }
            Self::Ack(a) => {
                write!(f, "ACK|{}|{}|{}", a.symbol, a.action, a.outcome.as_str())?;
                match &a.outcome {
                    AckOutcome::Ok { position_id, price } => {
                        if let Some(t) = position_id {
                            write!(f, "|T:{t}")?;
                        }
                        if let Some(p) = price {
                            write!(f, "|P:{p}")?;
                        }
                    }
                    AckOutcome::Fail(r) | AckOutcome::WaitSync(r) => write!(f, "|{r}")?,
                }
                if let Some(b) = a.bar_time {
                    write!(f, "|B:{b}")?;
                }
                Ok(())
            }
            Self::Error(e) => write!(
                f,
                "ERROR|{}|{}",
                e.code,
                sanitize_error_text(&e.code, &e.text)
            ),
        }
    }
}

macro_rules! line_from {
    ($($variant:ident($ty:ty)),+) => {$(
        impl From<$ty> for Line {
            fn from(v: $ty) -> Self {
                Line::$variant(v)
            }
        }
    )+};
}
line_from!(
    Hello(Hello),
    Auth(Auth),
    Bar(BarLine),
    Warmup(Warmup),
    History(History),
    HistoryEnd(HistoryEnd),
    Signal(Signal),
    Ack(Ack),
    Error(ErrorLine)
);

/// Splits one WebSocket message into lines (`\n`-separated; one trailing `\n` is tolerated) and
/// parses each. An empty line in the middle is reported as an error, not skipped.
pub fn parse_message(msg: &str) -> impl Iterator<Item = Result<Line, ParseError>> {
    let body = msg.strip_suffix('\n').unwrap_or(msg);
    body.split('\n').map(str::parse)
}

/// The symbol and action of a line that starts like a SIGNAL, even when a later field is bad, so
/// the executor can answer `ACK|<sym>|<action>|FAIL|MALFORMED` instead of a bare ERROR.
pub fn signal_identity(line: &str) -> Option<(Symbol, Action)> {
    let mut parts = line.split('|');
    if parts.next()? != "SIGNAL" {
        return None;
    }
    let symbol = parts.next()?.parse().ok()?;
    let action = parts.next()?.parse().ok()?;
    Some((symbol, action))
}
