//! The one typed operator command set, shared by the hub (signed, over MQTT) and the executor's
//! local `executor ctl`: what an operator may ask, where it came from, and what the executor
//! answered. Range checks that need no executor state live here ([`Command::validate`]); the
//! executor adds what needs its state (an unknown symbol, the kill switch).

use serde::{Deserialize, Serialize};

use protocol::{Mode, Symbol};

use crate::ids::{CommandId, Nonce};
use crate::limits::{MAX_SYMBOLS, MAX_TEXT};
use crate::record::{Book, Side, Telemetry, Validate, check_text};

/// Which books a Flatten closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Books {
    /// The live and the paper book (the default).
    #[default]
    All,
    Live,
    Paper,
}

/// New risk limits: only the fields present change (the executor's `risk` section names).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_loss_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_loss_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_equity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_positions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_lots: Option<f64>,
}

/// An operator command. JSON: `{"op": "pause"}`, `{"op": "flatten", "symbol": "EURUSD", "books":
/// "all"}`, … (docs/HUB.md §Commands). Unknown fields are refused: a typo must not pass as a no-op.
// `remote = "Self"`: the derives become inherent functions wrapped by the impls below, which add the
// unknown-field check serde skips for unit variants of an internally tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    remote = "Self",
    tag = "op",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Command {
    /// Stop opening positions; open ones stay, closes and risk exits still run.
    Pause,
    Resume,
    /// Close positions: one symbol, or every symbol when `symbol` is absent. Needs a confirmation.
    Flatten {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbol: Option<Symbol>,
        #[serde(default)]
        books: Books,
    },
    /// The lots per intensity of one symbol (the config's `lot_weak`, `lot_moderate`, `lot_strong`).
    SetLots {
        symbol: Symbol,
        lot_weak: f64,
        lot_moderate: f64,
        lot_strong: f64,
    },
    SetEnabled {
        symbol: Symbol,
        enabled: bool,
    },
    SetRiskLimits(RiskLimits),
    /// Re-read the config file (what a restart would apply, without dropping the broker link).
    Reload,
    /// Answer with the status document.
    Status,
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Command::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let unit = matches!(
            map.get("op").and_then(serde_json::Value::as_str),
            Some("pause" | "resume" | "reload" | "status")
        );
        if unit && let Some(extra) = map.keys().find(|k| k.as_str() != "op") {
            return Err(D::Error::custom(format!(
                "unknown field `{extra}`: this command takes no fields"
            )));
        }
        Command::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)
    }
}

/// The config's lot rule (executor/src/config.rs `valid_lot`): > 0 and <= 1000.
pub const MAX_LOT: f64 = 1000.0;

impl Command {
    /// The command's name as in JSON `op`.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Flatten { .. } => "flatten",
            Self::SetLots { .. } => "set_lots",
            Self::SetEnabled { .. } => "set_enabled",
            Self::SetRiskLimits(_) => "set_risk_limits",
            Self::Reload => "reload",
            Self::Status => "status",
        }
    }

    /// A command that closes positions asks the operator twice (needs_confirmation + nonce).
    pub fn needs_confirmation(&self) -> bool {
        matches!(self, Self::Flatten { .. })
    }

    /// Ranges that need no executor state; the refusal names the field.
    pub fn validate(&self) -> Result<(), Refusal> {
        match self {
            Self::SetLots {
                lot_weak,
                lot_moderate,
                lot_strong,
                ..
            } => {
                for (field, v) in [
                    ("lot_weak", lot_weak),
                    ("lot_moderate", lot_moderate),
                    ("lot_strong", lot_strong),
                ] {
                    if !(v.is_finite() && *v > 0.0 && *v <= MAX_LOT) {
                        return Err(Refusal::field(
                            field,
                            format!("{v} is not a lot size > 0 and <= {MAX_LOT}, e.g. 0.01"),
                        ));
                    }
                }
                Ok(())
            }
            Self::SetRiskLimits(r) => r.validate(),
            _ => Ok(()),
        }
    }
}

impl RiskLimits {
    pub fn is_empty(&self) -> bool {
        *self == RiskLimits::default()
    }

    fn validate(&self) -> Result<(), Refusal> {
        if self.is_empty() {
            return Err(Refusal::field(
                "set_risk_limits",
                "no limit given: name at least one of max_daily_loss_pct, max_total_loss_pct, min_equity, max_open_positions, max_total_lots".into(),
            ));
        }
        let pct = |field: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && x > 0.0 && x <= 100.0) => Err(Refusal::field(
                field,
                format!("{x} is not a percentage in (0, 100], e.g. 5"),
            )),
            _ => Ok(()),
        };
        pct("max_daily_loss_pct", self.max_daily_loss_pct)?;
        pct("max_total_loss_pct", self.max_total_loss_pct)?;
        if let Some(x) = self.min_equity
            && !(x.is_finite() && x >= 0.0)
        {
            return Err(Refusal::field(
                "min_equity",
                format!("{x} is not an amount >= 0"),
            ));
        }
        if self.max_open_positions == Some(0) {
            return Err(Refusal::field(
                "max_open_positions",
                "0 would refuse every open: use pause to stop opening, or give a limit >= 1".into(),
            ));
        }
        if let Some(x) = self.max_total_lots
            && !(x.is_finite() && x > 0.0)
        {
            return Err(Refusal::field(
                "max_total_lots",
                format!("{x} is not a positive number of lots"),
            ));
        }
        Ok(())
    }
}

/// Where a command came from: the hub (signed, over MQTT) or `executor ctl` on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Local,
    Hub,
}

/// Why a command was refused. The first group is decided here (fleet::signed, [`Command::validate`]);
/// the second by the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalCode {
    /// Not JSON, or not the envelope/command shape.
    Malformed,
    /// Larger than [`crate::limits::MAX_COMMAND_BYTES`].
    TooLarge,
    /// An envelope version this instance does not speak.
    UnsupportedVersion,
    /// The ed25519 signature does not verify with the hub's public key.
    BadSignature,
    /// Its expiry has passed.
    Expired,
    /// Its issue time is too far from the instance's clock, or it lives longer than allowed.
    ClockSkew,
    /// Signed for another instance.
    WrongInstance,
    /// Its id was seen before.
    Replayed,
    /// A field is out of range; `field` names it.
    InvalidField,
    /// A confirmation whose nonce is unknown, expired, or was given for another command.
    BadConfirmation,
    // -- the executor's --
    /// The symbol is not in the executor's config.
    UnknownSymbol,
    /// The local KILL file is present: it wins over every command.
    KillSwitch,
    /// The executor tried and failed (its message says why).
    Failed,
}

/// A refusal: a code, the field it concerns (when one), and a message saying how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}{}: {message}", field.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct Refusal {
    pub code: RefusalCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Self {
            code,
            field: None,
            message: clip(message.into()),
        }
    }

    /// An out-of-range field.
    pub fn field(field: &str, message: String) -> Self {
        Self {
            code: RefusalCode::InvalidField,
            field: Some(field.to_owned()),
            message: clip(message),
        }
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Lots per intensity (the status document's view of a symbol).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lots {
    pub lot_weak: f64,
    pub lot_moderate: f64,
    pub lot_strong: f64,
}

/// One symbol's settings in the status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolSettings {
    pub symbol: Symbol,
    pub enabled: bool,
    pub lots: Lots,
}

/// The risk limits in force (every field present, unlike [`RiskLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskSettings {
    pub max_daily_loss_pct: f64,
    pub max_total_loss_pct: f64,
    pub min_equity: f64,
    pub max_open_positions: u32,
    pub max_total_lots: f64,
}

/// What `Status` answers: the settings in force and the latest telemetry, and (from the executor
/// that answers `executor ctl status`) each book's positions, last signal and ACK per symbol, and
/// every risk limit with its use. `books` and `limits` are additions within version 1: a reader
/// that predates them sees them empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDocument {
    pub mode: Mode,
    pub version: String,
    pub started_ms: i64,
    pub paused: bool,
    pub kill_switch: bool,
    pub risk: RiskSettings,
    pub symbols: Vec<SymbolSettings>,
    pub telemetry: Telemetry,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub books: Vec<BookStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<LimitUse>,
}

/// One position a book holds. `entry_price` and `pnl` (open PnL, account currency) are absent
/// when the book does not know them yet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldPosition {
    pub position_id: u64,
    pub side: Side,
    pub lots: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pnl: Option<f64>,
}

/// One symbol in one book: what it holds, the last SIGNAL the executor handled for it and the ACK
/// this book answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookSymbol {
    pub symbol: Symbol,
    pub positions: Vec<HeldPosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ack: Option<String>,
}

/// One book (live or paper) as `executor ctl status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookStatus {
    pub book: Book,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<f64>,
    pub symbols: Vec<BookSymbol>,
}

/// A risk limit of one book and how much of it is used: `name` is the executor's `risk` field
/// (`max_daily_loss_pct`, `max_total_loss_pct`, `min_equity`, `max_open_positions`,
/// `max_total_lots`); `used` is in the limit's unit (equity for `min_equity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitUse {
    pub book: Book,
    pub name: String,
    pub used: f64,
    pub limit: f64,
}

impl Validate for StatusDocument {
    fn validate(&self) -> Result<(), crate::record::Invalid> {
        let too_many = |field: &str, n: usize, max: usize| {
            (n > max)
                .then(|| crate::record::Invalid::new(field, format!("{n} entries, at most {max}")))
        };
        check_text("version", &self.version)?;
        if let Some(e) = too_many("symbols", self.symbols.len(), MAX_SYMBOLS)
            .or_else(|| too_many("books", self.books.len(), 2))
            .or_else(|| too_many("limits", self.limits.len(), 16))
        {
            return Err(e);
        }
        for b in &self.books {
            if let Some(e) = too_many("books[].symbols", b.symbols.len(), MAX_SYMBOLS) {
                return Err(e);
            }
            for s in &b.symbols {
                if let Some(e) = too_many("books[].symbols[].positions", s.positions.len(), 16) {
                    return Err(e);
                }
                for t in [&s.last_signal, &s.last_ack].into_iter().flatten() {
                    check_text("books[].symbols[].last_signal", t)?;
                }
            }
        }
        for l in &self.limits {
            check_text("limits[].name", &l.name)?;
        }
        self.telemetry.validate()
    }
}

/// A position a Flatten closed, and at what price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedPosition {
    pub book: Book,
    pub symbol: Symbol,
    pub position_id: u64,
    pub side: Side,
    pub lots: f64,
    /// The fill price; absent when the broker's answer did not say (a close found done by a
    /// lookup after its answer was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// A close a Flatten sent that did not go through (the position is still open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedClose {
    pub book: Book,
    pub symbol: Symbol,
    pub position_id: u64,
    pub error: String,
}

/// The executor's answer to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CommandResult {
    /// Done; `detail` says what changed (e.g. "closed 2 positions").
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Refused(Refusal),
    /// Nothing done yet: send the same command again, with `confirm` = this nonce, before
    /// `expires_ms`. `summary` says what it will do ("flatten EURUSD on live and paper: 1 position").
    NeedsConfirmation {
        nonce: Nonce,
        summary: String,
        expires_ms: i64,
    },
    Status(Box<StatusDocument>),
    /// What a confirmed Flatten did: it paused, then closed `closed` (each at its fill price);
    /// `failed` are closes that did not go through (still open). Nothing is reopened.
    Flattened {
        closed: Vec<ClosedPosition>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<FailedClose>,
    },
}

impl CommandResult {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::Refused(_) => "refused",
            Self::NeedsConfirmation { .. } => "needs_confirmation",
            Self::Status(_) => "status",
            Self::Flattened { .. } => "flattened",
        }
    }
}

impl Validate for CommandResult {
    fn validate(&self) -> Result<(), crate::record::Invalid> {
        match self {
            Self::Ok { detail } => detail
                .as_deref()
                .map_or(Ok(()), |d| check_text("detail", d)),
            Self::Refused(r) => {
                check_text("message", &r.message)?;
                r.field
                    .as_deref()
                    .map_or(Ok(()), |f| check_text("field", f))
            }
            Self::NeedsConfirmation { summary, .. } => check_text("summary", summary),
            Self::Status(doc) => doc.validate(),
            Self::Flattened { closed, failed } => {
                let n = closed.len() + failed.len();
                if n > 2 * MAX_SYMBOLS * 16 {
                    return Err(crate::record::Invalid::new(
                        "closed",
                        format!("{n} closes, at most {}", 2 * MAX_SYMBOLS * 16),
                    ));
                }
                failed
                    .iter()
                    .try_for_each(|f| check_text("failed[].error", &f.error))
            }
        }
    }
}

/// The record on `oracle/{id}/commands/result`: which command, from where, and the answer.
/// `command_id` is absent only when the command was refused before its id could be trusted
/// (unparseable, oversized, or a bad signature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(flatten)]
    pub result: CommandResult,
}

impl Validate for CommandOutcome {
    fn validate(&self) -> Result<(), crate::record::Invalid> {
        if let Some(op) = &self.op {
            check_text("op", op)?;
        }
        self.result.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    #[test]
    fn commands_round_trip_through_json() {
        let all = [
            Command::Pause,
            Command::Resume,
            Command::Flatten {
                symbol: Some(sym("EURUSD")),
                books: Books::Live,
            },
            Command::Flatten {
                symbol: None,
                books: Books::All,
            },
            Command::SetLots {
                symbol: sym("XAUUSD"),
                lot_weak: 0.01,
                lot_moderate: 0.02,
                lot_strong: 0.05,
            },
            Command::SetEnabled {
                symbol: sym("US500"),
                enabled: false,
            },
            Command::SetRiskLimits(RiskLimits {
                max_daily_loss_pct: Some(4.5),
                max_open_positions: Some(3),
                ..RiskLimits::default()
            }),
            Command::Reload,
            Command::Status,
        ];
        for c in all {
            let text = serde_json::to_string(&c).unwrap();
            let back: Command = serde_json::from_str(&text).unwrap();
            assert_eq!(back, c, "{text}");
            assert!(text.contains(&format!("\"op\":\"{}\"", c.op())), "{text}");
            c.validate().unwrap();
        }
        assert_eq!(
            serde_json::to_string(&Command::Pause).unwrap(),
            r#"{"op":"pause"}"#
        );
        let f: Command = serde_json::from_str(r#"{"op":"flatten"}"#).unwrap();
        assert_eq!(
            f,
            Command::Flatten {
                symbol: None,
                books: Books::All
            }
        );
        assert!(f.needs_confirmation());
    }

    #[test]
    fn malformed_commands_are_refused_by_the_decoder() {
        for bad in [
            r#"{"op":"explode"}"#,
            r#"{"op":"pause","extra":1}"#,
            r#"{"op":"flatten","symbol":"eur/usd"}"#,
            r#"{"op":"flatten","books":"both"}"#,
            r#"{"op":"set_lots","symbol":"EURUSD","lot_weak":0.01}"#,
            r#"{"op":"set_risk_limits","max_daily_loss":5}"#,
            r#"{"op":"set_enabled","symbol":"EURUSD","enabled":"yes"}"#,
            r#"{"op":"set_risk_limits","max_open_positions":-1}"#,
            r#"{"pause":true}"#,
        ] {
            assert!(serde_json::from_str::<Command>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let lots = |w, m, s| Command::SetLots {
            symbol: sym("EURUSD"),
            lot_weak: w,
            lot_moderate: m,
            lot_strong: s,
        };
        for (cmd, field) in [
            (lots(0.0, 0.01, 0.01), "lot_weak"),
            (lots(0.01, 1000.5, 0.01), "lot_moderate"),
            (lots(0.01, 0.01, f64::NAN), "lot_strong"),
            (lots(0.01, 0.01, -1.0), "lot_strong"),
            (
                Command::SetRiskLimits(RiskLimits {
                    max_daily_loss_pct: Some(0.0),
                    ..Default::default()
                }),
                "max_daily_loss_pct",
            ),
            (
                Command::SetRiskLimits(RiskLimits {
                    max_total_loss_pct: Some(100.01),
                    ..Default::default()
                }),
                "max_total_loss_pct",
            ),
            (
                Command::SetRiskLimits(RiskLimits {
                    min_equity: Some(-5.0),
                    ..Default::default()
                }),
                "min_equity",
            ),
            (
                Command::SetRiskLimits(RiskLimits {
                    max_total_lots: Some(0.0),
                    ..Default::default()
                }),
                "max_total_lots",
            ),
            (
                Command::SetRiskLimits(RiskLimits::default()),
                "set_risk_limits",
            ),
            (
                Command::SetRiskLimits(RiskLimits {
                    max_open_positions: Some(0),
                    ..Default::default()
                }),
                "max_open_positions",
            ),
        ] {
            let r = cmd.validate().unwrap_err();
            assert_eq!(r.code, RefusalCode::InvalidField);
            assert_eq!(r.field.as_deref(), Some(field), "{r}");
        }
        assert!(lots(0.01, 0.03, 1000.0).validate().is_ok());
    }

    #[test]
    fn results_round_trip() {
        let outcomes = [
            CommandResult::Ok {
                detail: Some("paused".into()),
            },
            CommandResult::Refused(Refusal::field("lot_weak", "0 is not a lot size".into())),
            CommandResult::NeedsConfirmation {
                nonce: Nonce::from_random([7; 16]),
                summary: "flatten EURUSD".into(),
                expires_ms: 1_767_000_000_000,
            },
            CommandResult::Flattened {
                closed: vec![ClosedPosition {
                    book: Book::Live,
                    symbol: sym("EURUSD"),
                    position_id: 7,
                    side: Side::Long,
                    lots: 0.01,
                    price: Some(1.08542),
                }],
                failed: vec![FailedClose {
                    book: Book::Paper,
                    symbol: sym("GBPUSD"),
                    position_id: 9,
                    error: "market closed".into(),
                }],
            },
        ];
        for result in outcomes {
            let o = CommandOutcome {
                command_id: Some(CommandId::from_random([1; 16])),
                origin: Origin::Hub,
                op: Some("flatten".into()),
                result,
            };
            let text = serde_json::to_string(&o).unwrap();
            assert_eq!(
                serde_json::from_str::<CommandOutcome>(&text).unwrap(),
                o,
                "{text}"
            );
        }
    }

    #[test]
    fn refusal_text_is_bounded() {
        let r = Refusal::new(RefusalCode::Failed, "é".repeat(10_000));
        assert!(r.message.len() <= MAX_TEXT);
    }
}
