//! The eight line types, their strict parser and canonical formatter.
//!
//! A line is `TYPE|positional...|KEY:VALUE...`. The parser walks the fields once with a private `Fields` cursor, so
//! every error knows the line type and the field name it was reading.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::MAX_LINE_LEN;
use crate::action::Action;
use crate::auth::{Nonce, Proof};
use crate::codes::{ErrorCode, Reason};
use crate::error::{ParseError, ParseErrorKind, ValueError};
use crate::values::{BarTime, Decimal, Mode, Symbol, Timeframe, parse_uint};

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
    /// should show ([`crate::redact`], which raw text that did not parse goes through too).
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

// ---------------------------------------------------------------------------------------------
// Parsing

/// Cursor over the `|`-separated fields of one line.
struct Fields<'a> {
    line_type: &'static str,
    rest: std::str::Split<'a, char>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &'static str, kind: ParseErrorKind) -> ParseError {
        ParseError::new(Some(self.line_type), field, kind)
    }

    /// The next positional field's raw text, checked for presence, emptiness and edge whitespace.
    fn raw(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        let s = self
            .rest
            .next()
            .ok_or_else(|| self.err(field, ParseErrorKind::Missing))?;
        check_field_text(s).map_err(|kind| self.err(field, kind))
    }

    /// The next positional field parsed with `parse`.
    fn value<T>(
        &mut self,
        field: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<T, ParseError> {
        let s = self.raw(field)?;
        parse(s).map_err(|e| self.err(field, ParseErrorKind::Invalid(e)))
    }

    fn next<T: FromStr<Err = ValueError>>(&mut self, field: &'static str) -> Result<T, ParseError> {
        self.value(field, str::parse)
    }

    /// Consumes the remaining fields as `KEY:VALUE` extensions. `known` lists (key, field name)
    /// pairs; the result holds each known key's value in the same order. Unknown keys are checked
    /// for form and dropped. Keys in `forbidden` are known to the line type but not allowed here.
    fn extensions<const N: usize>(
        &mut self,
        known: [(&'static str, &'static str); N],
        forbidden: &[(&'static str, &'static str)],
    ) -> Result<[Option<&'a str>; N], ParseError> {
        let mut found = [None; N];
        while let Some(s) = self.rest.next() {
            let s = check_field_text(s).map_err(|kind| self.err("extension", kind))?;
            let (key, value) = split_extension(s).ok_or_else(|| {
                self.err(
                    "extension",
                    ParseErrorKind::Invalid(ValueError::new(EXT_EXPECTED, s)),
                )
            })?;
            if let Some(i) = known.iter().position(|(k, _)| *k == key) {
                let (k, field) = known[i];
                if found[i].is_some() {
                    return Err(self.err(field, ParseErrorKind::DuplicateKey(k)));
                }
                found[i] = Some(value);
            } else if let Some((k, field)) = forbidden.iter().find(|(k, _)| *k == key) {
                return Err(self.err(field, ParseErrorKind::KeyNotAllowed(k)));
            }
        }
        Ok(found)
    }

    fn ext_value<T>(
        &self,
        field: &'static str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, ParseError> {
        raw.map(parse)
            .transpose()
            .map_err(|e| self.err(field, ParseErrorKind::Invalid(e)))
    }
}

const EXT_EXPECTED: &str = "an extension KEY:VALUE with KEY of 1..=16 characters from A-Z 0-9 _ and a non-empty VALUE without edge whitespace";

fn check_field_text(s: &str) -> Result<&str, ParseErrorKind> {
    if s.is_empty() {
        Err(ParseErrorKind::Empty)
    } else if s.trim() != s {
        Err(ParseErrorKind::Whitespace)
    } else {
        Ok(s)
    }
}

fn split_extension(s: &str) -> Option<(&str, &str)> {
    let (key, value) = s.split_once(':')?;
    let key_ok = (1..=16).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let value_ok = !value.is_empty() && value.trim() == value;
    (key_ok && value_ok).then_some((key, value))
}

fn uint<T: FromStr>(expected: &'static str) -> impl FnOnce(&str) -> Result<T, ValueError> {
    move |s| parse_uint(s, expected)
}

fn positive_u32(expected: &'static str) -> impl FnOnce(&str) -> Result<u32, ValueError> {
    move |s| match parse_uint::<u32>(s, expected)? {
        0 => Err(ValueError::new(expected, s)),
        n => Ok(n),
    }
}

fn pnl(s: &str) -> Result<Decimal, ValueError> {
    let d: Decimal = s.parse()?;
    if d.decimals() == Signal::PNL_DECIMALS {
        Ok(d)
    } else {
        Err(ValueError::new(
            "a PnL with exactly 2 decimal places, like 0.00 or -15.30",
            s,
        ))
    }
}

impl FromStr for Line {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let whole = |kind| ParseError::new(None, "line", kind);
        if line.len() > MAX_LINE_LEN {
            return Err(whole(ParseErrorKind::TooLong { len: line.len() }));
        }
        if line.is_empty() {
            return Err(whole(ParseErrorKind::EmptyLine));
        }
        if let Some(c) = line.chars().find(|c| c.is_control()) {
            return Err(whole(ParseErrorKind::ForbiddenChar(c)));
        }
        let (type_text, _) = line.split_once('|').unwrap_or((line, ""));
        let Some(line_type) = LINE_TYPES.into_iter().find(|t| *t == type_text) else {
            return Err(ParseError::new(
                None,
                "type",
                ParseErrorKind::UnknownType(type_text.to_owned()),
            ));
        };
        if line_type == "ERROR" {
            return parse_error_line(line);
        }
        let mut rest = line.split('|');
        rest.next(); // the type, matched above
        let mut f = Fields { line_type, rest };
        Ok(match line_type {
            "HELLO" => Line::Hello(parse_hello(f)?),
            "AUTH" => {
                let proof = f.next("proof")?;
                f.extensions([], &[])?;
                Line::Auth(Auth { proof })
            }
            "BAR" => Line::Bar(parse_bar(f)?),
            "WARMUP" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                let count = f.value("count", positive_u32("a bar count 1..=4294967295"))?;
                f.extensions([], &[])?;
                Line::Warmup(Warmup {
                    symbol,
                    timeframe,
                    count,
                })
            }
            "HISTORY" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                let count = f.value("count", uint("a bar count 0..=4294967295"))?;
                f.extensions([], &[])?;
                Line::History(History {
                    symbol,
                    timeframe,
                    count,
                })
            }
            "HISTORY_END" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                f.extensions([], &[])?;
                Line::HistoryEnd(HistoryEnd { symbol, timeframe })
            }
            "SIGNAL" => Line::Signal(parse_signal(f)?),
            _ => Line::Ack(parse_ack(f)?),
        })
    }
}

fn parse_hello(mut f: Fields<'_>) -> Result<Hello, ParseError> {
    let role = f.value("role", |s| match s {
        "preditor" | "executor" => Ok(s == "preditor"),
        _ => Err(ValueError::new("a role: preditor executor", s)),
    })?;
    let version = f.value("version", parse_version)?;
    let hello = if role {
        Hello::Preditor {
            version,
            nonce: f.next("nonce")?,
        }
    } else {
        Hello::Executor {
            version,
            mode: f.next("mode")?,
            nonce: f.next("nonce")?,
            proof: f.next("proof")?,
        }
    };
    f.extensions([], &[])?;
    Ok(hello)
}

fn parse_bar(mut f: Fields<'_>) -> Result<BarLine, ParseError> {
    let bar = BarLine {
        symbol: f.next("symbol")?,
        timeframe: f.next("timeframe")?,
        time: f.next("time")?,
        open: f.next("open")?,
        high: f.next("high")?,
        low: f.next("low")?,
        close: f.next("close")?,
        volume: f.value("volume", uint("a tick volume 0..=18446744073709551615"))?,
    };
    // A bar whose prices contradict each other is corrupt data; feeding it to features would poison
    // the twin silently.
    let (o, h, l, c) = (
        bar.open.to_f64(),
        bar.high.to_f64(),
        bar.low.to_f64(),
        bar.close.to_f64(),
    );
    let inconsistent = if l > h {
        Some(("low", &bar.low, "low <= high"))
    } else if !(l..=h).contains(&o) {
        Some(("open", &bar.open, "open between low and high"))
    } else if !(l..=h).contains(&c) {
        Some(("close", &bar.close, "close between low and high"))
    } else {
        None
    };
    if let Some((field, value, expected)) = inconsistent {
        return Err(f.err(
            field,
            ParseErrorKind::Invalid(ValueError::new(expected, value.as_str())),
        ));
    }
    f.extensions([], &[])?;
    Ok(bar)
}

fn parse_signal(mut f: Fields<'_>) -> Result<Signal, ParseError> {
    let symbol = f.next("symbol")?;
    let action = f.next("action")?;
    let regime = f.value("regime", uint("an HMM regime index 0..=65535"))?;
    let virtual_pnl = f.value("virtual_pnl", pnl)?;
    let [b, n] = f.extensions([("B", "bar_time"), ("N", "held")], &[])?;
    Ok(Signal {
        symbol,
        action,
        regime,
        virtual_pnl,
        bar_time: f.ext_value("bar_time", b, str::parse)?,
        held: f.ext_value("held", n, positive_u32("bars held 1..=4294967295"))?,
    })
}

fn parse_ack(mut f: Fields<'_>) -> Result<Ack, ParseError> {
    let symbol = f.next("symbol")?;
    let action = f.next("action")?;
    let outcome = f.value("outcome", |s| match s {
        "OK" => Ok("OK"),
        "FAIL" => Ok("FAIL"),
        "WAIT_SYNC" => Ok("WAIT_SYNC"),
        _ => Err(ValueError::new("an outcome: OK FAIL WAIT_SYNC", s)),
    })?;
    const T: (&str, &str) = ("T", "position_id");
    const P: (&str, &str) = ("P", "price");
    const B: (&str, &str) = ("B", "bar_time");
    let (outcome, b) = match outcome {
        "OK" => {
            let [t, p, b] = f.extensions([T, P, B], &[])?;
            let position_id = f.ext_value(
                "position_id",
                t,
                uint("a position id 0..=18446744073709551615"),
            )?;
            let price = f.ext_value("price", p, str::parse)?;
            (AckOutcome::Ok { position_id, price }, b)
        }
        fail_or_wait => {
            let reason = f.next("reason")?;
            let [b] = f.extensions([B], &[T, P])?;
            if fail_or_wait == "FAIL" {
                (AckOutcome::Fail(reason), b)
            } else {
                (AckOutcome::WaitSync(reason), b)
            }
        }
    };
    Ok(Ack {
        symbol,
        action,
        outcome,
        bar_time: f.ext_value("bar_time", b, str::parse)?,
    })
}

fn parse_error_line(line: &str) -> Result<Line, ParseError> {
    let mut parts = line.splitn(3, '|');
    parts.next(); // "ERROR"
    let f = Fields {
        line_type: "ERROR",
        rest: "".split('|'),
    };
    let code_text = parts
        .next()
        .ok_or_else(|| f.err("code", ParseErrorKind::Missing))?;
    let code = check_field_text(code_text)
        .map_err(|kind| f.err("code", kind))?
        .parse::<ErrorCode>()
        .map_err(|e| f.err("code", ParseErrorKind::Invalid(e)))?;
    let text = parts
        .next()
        .ok_or_else(|| f.err("text", ParseErrorKind::Missing))?;
    let text = check_field_text(text).map_err(|kind| f.err("text", kind))?;
    // Control characters and the length were checked for the whole line already.
    Ok(Line::Error(ErrorLine {
        code,
        text: text.to_owned(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Formatting

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
