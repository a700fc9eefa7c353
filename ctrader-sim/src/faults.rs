//! Fault injection: the control-command language and the fault state it drives.
//!
//! The same commands come from `--fault` flags at start and from the control socket at run time.
//! Time is passed in (`Instant` for durations, wall-clock milliseconds for the maintenance end time
//! the protocol carries), so the state machine is tested without sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::fills::{FillPlan, PlanEnd};

/// A parsed control line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlCommand {
    /// Close every client connection now.
    Drop,
    /// Hold every outgoing message for this long (the stream goes silent, then catches up).
    Stall(Duration),
    /// Delay every response to a request by this much (zero turns it off).
    Delay(Duration),
    /// Silently swallow the responses to the next N requests.
    DropResponses(u32),
    /// Requests per second per connection before REQUEST_FREQUENCY_EXCEEDED (`None`: no limit).
    RateLimit(Option<u32>),
    /// Disconnect everyone; refuse logins with SERVER_IS_UNDER_MAINTENANCE until it ends.
    Maintenance(Duration),
    /// Refuse new orders on a symbol with NOT_ENOUGH_MONEY.
    MarginFail(String),
    /// Undo `margin-fail` for a symbol.
    MarginOk(String),
    /// Credit (or, negative, debit) the balance by this many cents: a deposit or withdrawal, which
    /// the account's sessions learn from `ProtoOATraderUpdatedEvent`.
    Deposit(i64),
    /// Revoke the access token (and with `refresh_too` the refresh token): every session of the
    /// account gets `ProtoOAAccountsTokenInvalidatedEvent` and loses the account.
    TokenInvalidate {
        refresh_too: bool,
    },
    /// `ProtoOAClientDisconnectEvent` with this reason to every connection, then close them all.
    ClientDisconnect(String),
    /// The account holder authorised the application again: this access and refresh token pair is
    /// now the valid one (what `executor auth` would obtain from Spotware's OAuth endpoint).
    GrantTokens {
        access: String,
        refresh: String,
    },
    /// Fill every market order in this many deals; `partial_events` reports the deals before
    /// the last as ORDER_PARTIAL_FILL instead of ORDER_FILLED.
    FillDeals {
        deals: u32,
        partial_events: bool,
    },
    /// Cut the orders on a symbol short: `fraction_bps` / 10,000 of the volume executes, the rest
    /// is cancelled or expires; for the next `orders` orders of `scope`, or until `fill-ok`.
    CutShort {
        symbol: String,
        end: CutEnd,
        fraction_bps: u16,
        orders: Option<u32>,
        scope: Scope,
    },
    /// Undo `cancel-fill` / `expire-fill` for a symbol.
    FillOk(String),
    /// Reset every fault.
    Clear,
    /// Print latency statistics (and write `--stats-out`).
    Stats,
    /// Print the fault state and replay position.
    Status,
    /// Hold the replay clock: no step, no tick, market time stands still until `resume`.
    Pause,
    /// Let a held replay clock run again; the next step is due one step after the resume.
    Resume,
    Help,
}

/// Which orders a fill fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Orders that open a position.
    Opens,
    /// Orders that close (part of) one.
    Closes,
}

impl Scope {
    fn covers(self, closing: bool) -> bool {
        match self {
            Scope::All => true,
            Scope::Opens => !closing,
            Scope::Closes => closing,
        }
    }
}

/// How an order cut short ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutEnd {
    Cancel,
    Expire,
}

/// Why a control line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("empty command; try `help`")]
    Empty,
    #[error("unknown command `{0}`; try `help`")]
    Unknown(String),
    #[error("`{command}` needs {expected}")]
    BadArgument {
        command: String,
        expected: &'static str,
    },
}

pub const HELP: &str = "commands: drop | stall DUR | delay DUR | drop-responses N | rate-limit N|off | \
maintenance DUR | margin-fail SYMBOL | margin-ok SYMBOL | fill-deals K [partial] | \
cancel-fill SYMBOL FRACTION [N] [opens|closes] | expire-fill SYMBOL FRACTION [N] [opens|closes] | \
fill-ok SYMBOL | deposit AMOUNT | token-invalidate [all] | client-disconnect [REASON] | \
grant-tokens ACCESS REFRESH | clear | pause | resume | stats | status | help  (DUR: 500ms, 5s, 2m; \
a bare number is seconds; FRACTION: 0 to 0.99)";

/// Parses a fraction in `[0, 1)` into basis points.
fn parse_fraction(text: &str) -> Option<u16> {
    let f: f64 = text.parse().ok()?;
    (f.is_finite() && (0.0..1.0).contains(&f)).then(|| (f * 10_000.0).round().min(9_999.0) as u16)
}

/// Parses `500ms`, `5s`, `2m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = num.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 || value * scale > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(value * scale))
}

impl ControlCommand {
    pub fn parse(line: &str) -> Result<Self, ControlError> {
        let mut words = line.split_whitespace();
        let verb = words
            .next()
            .ok_or(ControlError::Empty)?
            .to_ascii_lowercase();
        let arg = words.next();
        let more: Vec<&str> = words.collect();
        let bad = |expected| ControlError::BadArgument {
            command: verb.clone(),
            expected,
        };
        let duration = || {
            arg.and_then(parse_duration)
                .ok_or_else(|| bad("a duration like 500ms or 5s"))
        };
        let symbol = || {
            arg.map(str::to_ascii_uppercase)
                .ok_or_else(|| bad("a symbol name"))
        };
        Ok(match verb.as_str() {
            "drop" => Self::Drop,
            "stall" => Self::Stall(duration()?),
            "delay" => Self::Delay(duration()?),
            "drop-responses" => Self::DropResponses(
                arg.and_then(|a| a.parse().ok())
                    .ok_or_else(|| bad("a count"))?,
            ),
            "rate-limit" => match arg {
                Some("off") => Self::RateLimit(None),
                Some(n) => Self::RateLimit(Some(
                    n.parse()
                        .ok()
                        .filter(|&n: &u32| n > 0)
                        .ok_or_else(|| bad("a positive count or `off`"))?,
                )),
                None => return Err(bad("a positive count or `off`")),
            },
            "maintenance" => Self::Maintenance(duration()?),
            "margin-fail" => Self::MarginFail(symbol()?),
            "margin-ok" => Self::MarginOk(symbol()?),
            "deposit" => Self::Deposit(
                arg.and_then(|a| a.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && v.abs() < 1e12)
                    .map(|v| (v * 100.0).round() as i64)
                    .ok_or_else(|| bad("an amount in the deposit currency, e.g. 250.50 or -100"))?,
            ),
            "token-invalidate" => match arg {
                None => Self::TokenInvalidate { refresh_too: false },
                Some("all") => Self::TokenInvalidate { refresh_too: true },
                Some(_) => return Err(bad("nothing, or `all` to revoke the refresh token too")),
            },
            "grant-tokens" => {
                let mut rest = line.split_whitespace().skip(1);
                match (rest.next(), rest.next(), rest.next()) {
                    (Some(a), Some(r), None) => Self::GrantTokens {
                        access: a.to_string(),
                        refresh: r.to_string(),
                    },
                    _ => return Err(bad("an access token and a refresh token")),
                }
            }
            "client-disconnect" => {
                let rest: Vec<&str> = line.split_whitespace().skip(1).collect();
                Self::ClientDisconnect(if rest.is_empty() {
                    "The application access was blocked by cTrader Administrator".to_string()
                } else {
                    rest.join(" ")
                })
            }
            "fill-deals" => Self::FillDeals {
                deals: arg
                    .and_then(|a| a.parse().ok())
                    .filter(|&n: &u32| (1..=100).contains(&n))
                    .ok_or_else(|| bad("a deal count 1..=100"))?,
                partial_events: match more.as_slice() {
                    [] => false,
                    ["partial"] => true,
                    _ => return Err(bad("a deal count, then optionally `partial`")),
                },
            },
            "cancel-fill" | "expire-fill" => {
                let symbol = symbol()?;
                let fraction_bps = more
                    .first()
                    .and_then(|f| parse_fraction(f))
                    .ok_or_else(|| bad("a symbol, a fraction 0 to 0.99, optionally a count"))?;
                let (mut orders, mut scope) = (None, None);
                for word in more.iter().skip(1) {
                    match (*word, word.parse::<u32>()) {
                        ("opens", _) if scope.is_none() => scope = Some(Scope::Opens),
                        ("closes", _) if scope.is_none() => scope = Some(Scope::Closes),
                        (_, Ok(n)) if n > 0 && orders.is_none() && scope.is_none() => {
                            orders = Some(n)
                        }
                        _ => {
                            return Err(bad(
                                "a symbol, a fraction 0 to 0.99, optionally a positive count, then optionally `opens` or `closes`",
                            ));
                        }
                    }
                }
                let scope = scope.unwrap_or(Scope::All);
                let end = if verb == "cancel-fill" {
                    CutEnd::Cancel
                } else {
                    CutEnd::Expire
                };
                Self::CutShort {
                    symbol,
                    end,
                    fraction_bps,
                    orders,
                    scope,
                }
            }
            "fill-ok" => Self::FillOk(symbol()?),
            "clear" => Self::Clear,
            "stats" => Self::Stats,
            "status" => Self::Status,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            "help" => Self::Help,
            other => return Err(ControlError::Unknown(other.to_string())),
        })
    }
}

/// What the I/O layer must do right away after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    None,
    /// Close every client connection.
    DisconnectAll,
}

/// The live fault configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultState {
    pub stall_until: Option<Instant>,
    pub response_delay: Duration,
    pub responses_to_drop: u32,
    /// Normal requests per second per connection (the real limit is 50).
    pub rate_limit: Option<u32>,
    /// Historical requests (get trendbars) per second per connection (the real limit is 5).
    pub historical_rate_limit: Option<u32>,
    /// End of the maintenance window: monotonic, and wall-clock ms for the protocol.
    pub maintenance_until: Option<(Instant, i64)>,
    pub margin_fail: BTreeSet<String>,
    /// Deals per market order (1: the default single fill).
    pub fill_deals: u32,
    /// Deals before the last reported as ORDER_PARTIAL_FILL.
    pub partial_fill_events: bool,
    /// Symbols whose orders are cut short: how, and for how many more orders (`None`: all).
    pub cut_short: BTreeMap<String, (CutEnd, u16, Option<u32>, Scope)>,
    /// The start-up rate limits `clear` returns to.
    defaults: (Option<u32>, Option<u32>),
}

impl FaultState {
    pub fn new(rate_limit: Option<u32>, historical_rate_limit: Option<u32>) -> Self {
        Self {
            stall_until: None,
            response_delay: Duration::ZERO,
            responses_to_drop: 0,
            rate_limit,
            historical_rate_limit,
            maintenance_until: None,
            margin_fail: BTreeSet::new(),
            fill_deals: 1,
            partial_fill_events: false,
            cut_short: BTreeMap::new(),
            defaults: (rate_limit, historical_rate_limit),
        }
    }

    /// Applies a fault command at `now` (`wall_ms`: the same instant as wall-clock ms).
    pub fn apply(&mut self, command: &ControlCommand, now: Instant, wall_ms: i64) -> FaultAction {
        match command {
            ControlCommand::Drop => return FaultAction::DisconnectAll,
            ControlCommand::Stall(d) => self.stall_until = Some(now + *d),
            ControlCommand::Delay(d) => self.response_delay = *d,
            ControlCommand::DropResponses(n) => self.responses_to_drop = *n,
            ControlCommand::RateLimit(n) => self.rate_limit = *n,
            ControlCommand::Maintenance(d) => {
                let end_ms =
                    wall_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                self.maintenance_until = Some((now + *d, end_ms));
                return FaultAction::DisconnectAll;
            }
            ControlCommand::MarginFail(s) => {
                self.margin_fail.insert(s.clone());
            }
            ControlCommand::MarginOk(s) => {
                self.margin_fail.remove(s);
            }
            ControlCommand::FillDeals {
                deals,
                partial_events,
            } => {
                self.fill_deals = *deals;
                self.partial_fill_events = *partial_events;
            }
            ControlCommand::CutShort {
                symbol,
                end,
                fraction_bps,
                orders,
                scope,
            } => {
                self.cut_short
                    .insert(symbol.clone(), (*end, *fraction_bps, *orders, *scope));
            }
            ControlCommand::FillOk(s) => {
                self.cut_short.remove(s);
            }
            ControlCommand::Clear => {
                *self = Self::new(self.defaults.0, self.defaults.1);
            }
            ControlCommand::ClientDisconnect(_) => return FaultAction::DisconnectAll,
            // Account events and the replay clock are the core's, not faults: `clear` leaves
            // them as they are.
            ControlCommand::Deposit(_)
            | ControlCommand::TokenInvalidate { .. }
            | ControlCommand::GrantTokens { .. }
            | ControlCommand::Stats
            | ControlCommand::Status
            | ControlCommand::Pause
            | ControlCommand::Resume
            | ControlCommand::Help => {}
        }
        FaultAction::None
    }

    /// The wall-clock end of maintenance if it is still running at `now`.
    pub fn maintenance_end(&self, now: Instant) -> Option<i64> {
        self.maintenance_until
            .filter(|(until, _)| now < *until)
            .map(|(_, ms)| ms)
    }

    /// How long outgoing messages must still be held at `now`.
    pub fn stall_remaining(&self, now: Instant) -> Option<Duration> {
        self.stall_until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// How the market executes the next order on `symbol` (an open, or a close when `closing`);
    /// consumes one count of a `cancel-fill` or `expire-fill` given with a count.
    pub fn take_fill_plan(&mut self, symbol: &str, closing: bool) -> FillPlan {
        let mut plan = FillPlan {
            deals: self.fill_deals.max(1),
            ..FillPlan::WHOLE
        };
        if let Some((end, bps, left, scope)) = self.cut_short.get_mut(symbol)
            && scope.covers(closing)
        {
            plan.end = match end {
                CutEnd::Cancel => PlanEnd::Cancelled,
                CutEnd::Expire => PlanEnd::Expired,
            };
            plan.fraction = f64::from(*bps) / 10_000.0;
            if let Some(n) = left {
                *n -= 1;
                if *n == 0 {
                    self.cut_short.remove(symbol);
                }
            }
        }
        plan
    }

    /// Consumes one "drop this response" token; true when the response must be swallowed.
    pub fn take_response_drop(&mut self) -> bool {
        if self.responses_to_drop > 0 {
            self.responses_to_drop -= 1;
            true
        } else {
            false
        }
    }

    pub fn describe(&self, now: Instant) -> String {
        format!(
            "stall_ms={} delay_ms={} drop_responses={} rate_limit={} historical_rate_limit={} maintenance_ms={} margin_fail=[{}] fill_deals={}{} cut_short=[{}]",
            self.stall_remaining(now).map_or(0, |d| d.as_millis()),
            self.response_delay.as_millis(),
            self.responses_to_drop,
            self.rate_limit.map_or("off".to_string(), |n| n.to_string()),
            self.historical_rate_limit
                .map_or("off".to_string(), |n| n.to_string()),
            self.maintenance_until
                .and_then(|(u, _)| u.checked_duration_since(now))
                .map_or(0, |d| d.as_millis()),
            self.margin_fail
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
            self.fill_deals,
            if self.partial_fill_events {
                "(partial)"
            } else {
                ""
            },
            self.cut_short
                .iter()
                .map(|(s, (end, bps, left, scope))| format!(
                    "{s}:{}:{}:{}:{scope:?}",
                    match end {
                        CutEnd::Cancel => "cancel",
                        CutEnd::Expire => "expire",
                    },
                    f64::from(*bps) / 10_000.0,
                    left.map_or("all".to_string(), |n| n.to_string())
                ))
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// A one-second fixed-window request counter for one connection and one request class.
#[derive(Debug, Clone, Copy)]
pub struct RateWindow {
    window_start: Option<Instant>,
    count: u32,
}

impl Default for RateWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl RateWindow {
    pub const fn new() -> Self {
        Self {
            window_start: None,
            count: 0,
        }
    }

    /// Counts a request at `now`; false when it exceeds `limit` in the current second.
    pub fn admit(&mut self, now: Instant, limit: Option<u32>) -> bool {
        let Some(limit) = limit else { return true };
        match self.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
        self.count += 1;
        self.count <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(ControlCommand::parse("drop"), Ok(ControlCommand::Drop));
        assert_eq!(
            ControlCommand::parse(" stall 5s "),
            Ok(ControlCommand::Stall(Duration::from_secs(5)))
        );
        assert_eq!(
            ControlCommand::parse("delay 500ms"),
            Ok(ControlCommand::Delay(Duration::from_millis(500)))
        );
        assert_eq!(
            ControlCommand::parse("drop-responses 3"),
            Ok(ControlCommand::DropResponses(3))
        );
        assert_eq!(
            ControlCommand::parse("rate-limit 10"),
            Ok(ControlCommand::RateLimit(Some(10)))
        );
        assert_eq!(
            ControlCommand::parse("rate-limit off"),
            Ok(ControlCommand::RateLimit(None))
        );
        assert_eq!(
            ControlCommand::parse("maintenance 2m"),
            Ok(ControlCommand::Maintenance(Duration::from_secs(120)))
        );
        assert_eq!(
            ControlCommand::parse("margin-fail eurusd"),
            Ok(ControlCommand::MarginFail("EURUSD".into()))
        );
        assert_eq!(ControlCommand::parse("STATS"), Ok(ControlCommand::Stats));
        assert_eq!(ControlCommand::parse("pause"), Ok(ControlCommand::Pause));
        assert_eq!(ControlCommand::parse("Resume"), Ok(ControlCommand::Resume));
        assert_eq!(
            ControlCommand::parse("deposit -250.5"),
            Ok(ControlCommand::Deposit(-25_050))
        );
        assert_eq!(
            ControlCommand::parse("token-invalidate"),
            Ok(ControlCommand::TokenInvalidate { refresh_too: false })
        );
        assert_eq!(
            ControlCommand::parse("token-invalidate all"),
            Ok(ControlCommand::TokenInvalidate { refresh_too: true })
        );
        assert_eq!(
            ControlCommand::parse("client-disconnect blocked by the admin"),
            Ok(ControlCommand::ClientDisconnect(
                "blocked by the admin".into()
            ))
        );
        assert_eq!(
            ControlCommand::parse("fill-deals 3"),
            Ok(ControlCommand::FillDeals {
                deals: 3,
                partial_events: false
            })
        );
        assert_eq!(
            ControlCommand::parse("fill-deals 2 partial"),
            Ok(ControlCommand::FillDeals {
                deals: 2,
                partial_events: true
            })
        );
        assert_eq!(
            ControlCommand::parse("cancel-fill eurusd 0.5 2"),
            Ok(ControlCommand::CutShort {
                symbol: "EURUSD".into(),
                end: CutEnd::Cancel,
                fraction_bps: 5000,
                orders: Some(2),
                scope: Scope::All,
            })
        );
        assert_eq!(
            ControlCommand::parse("expire-fill GBPUSD 0"),
            Ok(ControlCommand::CutShort {
                symbol: "GBPUSD".into(),
                end: CutEnd::Expire,
                fraction_bps: 0,
                orders: None,
                scope: Scope::All,
            })
        );
        assert_eq!(
            ControlCommand::parse("cancel-fill EURUSD 0.7 opens"),
            Ok(ControlCommand::CutShort {
                symbol: "EURUSD".into(),
                end: CutEnd::Cancel,
                fraction_bps: 7000,
                orders: None,
                scope: Scope::Opens,
            })
        );
        assert_eq!(
            ControlCommand::parse("fill-ok eurusd"),
            Ok(ControlCommand::FillOk("EURUSD".into()))
        );
        assert_eq!(
            ControlCommand::parse("stall 1.5"),
            Ok(ControlCommand::Stall(Duration::from_millis(1500)))
        );
    }

    #[test]
    fn rejects_bad_commands_with_a_hint() {
        assert_eq!(ControlCommand::parse(""), Err(ControlError::Empty));
        assert!(matches!(
            ControlCommand::parse("explode"),
            Err(ControlError::Unknown(_))
        ));
        assert!(matches!(
            ControlCommand::parse("stall"),
            Err(ControlError::BadArgument { .. })
        ));
        assert!(matches!(
            ControlCommand::parse("stall -1s"),
            Err(ControlError::BadArgument { .. })
        ));
        assert!(matches!(
            ControlCommand::parse("rate-limit 0"),
            Err(ControlError::BadArgument { .. })
        ));
        assert!(matches!(
            ControlCommand::parse("drop-responses x"),
            Err(ControlError::BadArgument { .. })
        ));
        assert!(matches!(
            ControlCommand::parse("margin-fail"),
            Err(ControlError::BadArgument { .. })
        ));
        assert_eq!(
            ControlCommand::parse("grant-tokens a1 r1"),
            Ok(ControlCommand::GrantTokens {
                access: "a1".into(),
                refresh: "r1".into()
            })
        );
        for bad in [
            "deposit",
            "deposit x",
            "deposit inf",
            "token-invalidate some",
            "grant-tokens a1",
            "grant-tokens a b c",
        ] {
            assert!(
                matches!(
                    ControlCommand::parse(bad),
                    Err(ControlError::BadArgument { .. })
                ),
                "{bad}"
            );
        }
        for bad in [
            "fill-deals 0",
            "fill-deals 2 maybe",
            "cancel-fill EURUSD",
            "cancel-fill EURUSD 1",
            "cancel-fill EURUSD -0.1",
            "expire-fill EURUSD 0.5 0",
            "expire-fill EURUSD 0.5 1 2",
            "expire-fill EURUSD 0.5 opens 1",
            "expire-fill EURUSD 0.5 opens closes",
        ] {
            assert!(
                matches!(
                    ControlCommand::parse(bad),
                    Err(ControlError::BadArgument { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn faults_expire_with_time() {
        let t0 = Instant::now();
        let mut f = FaultState::new(Some(50), Some(5));
        assert_eq!(
            f.apply(&ControlCommand::Stall(Duration::from_secs(5)), t0, 0),
            FaultAction::None
        );
        assert_eq!(
            f.stall_remaining(t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(f.stall_remaining(t0 + Duration::from_secs(5)), None);
        let action = f.apply(
            &ControlCommand::Maintenance(Duration::from_secs(30)),
            t0,
            1_000,
        );
        assert_eq!(action, FaultAction::DisconnectAll);
        assert_eq!(
            f.maintenance_end(t0 + Duration::from_secs(29)),
            Some(31_000)
        );
        assert_eq!(f.maintenance_end(t0 + Duration::from_secs(30)), None);
        f.apply(&ControlCommand::DropResponses(2), t0, 0);
        assert!(f.take_response_drop() && f.take_response_drop() && !f.take_response_drop());
        f.apply(&ControlCommand::MarginFail("EURUSD".into()), t0, 0);
        assert!(f.margin_fail.contains("EURUSD"));
        f.apply(&ControlCommand::MarginOk("EURUSD".into()), t0, 0);
        assert!(f.margin_fail.is_empty());
        f.apply(&ControlCommand::Delay(Duration::from_millis(300)), t0, 0);
        f.apply(&ControlCommand::RateLimit(Some(2)), t0, 0);
        f.apply(&ControlCommand::Clear, t0, 0);
        assert_eq!(f.response_delay, Duration::ZERO);
        assert_eq!(f.rate_limit, Some(50));
        assert_eq!(f.maintenance_end(t0), None);
    }

    #[test]
    fn fill_faults_shape_the_next_orders_plans() {
        let t0 = Instant::now();
        let mut f = FaultState::new(None, None);
        assert_eq!(f.take_fill_plan("EURUSD", false), FillPlan::WHOLE);
        f.apply(&ControlCommand::parse("fill-deals 3").unwrap(), t0, 0);
        f.apply(
            &ControlCommand::parse("cancel-fill EURUSD 0.25 1").unwrap(),
            t0,
            0,
        );
        let plan = f.take_fill_plan("EURUSD", false);
        assert_eq!((plan.deals, plan.end), (3, PlanEnd::Cancelled));
        assert!((plan.fraction - 0.25).abs() < 1e-12);
        assert_eq!(
            f.take_fill_plan("EURUSD", false).end,
            PlanEnd::Filled,
            "a count of 1 is used up"
        );
        f.apply(
            &ControlCommand::parse("expire-fill GBPUSD 0").unwrap(),
            t0,
            0,
        );
        assert_eq!(f.take_fill_plan("GBPUSD", false).end, PlanEnd::Expired);
        assert_eq!(f.take_fill_plan("GBPUSD", true).end, PlanEnd::Expired);
        f.apply(&ControlCommand::FillOk("GBPUSD".into()), t0, 0);
        assert_eq!(f.take_fill_plan("GBPUSD", false).end, PlanEnd::Filled);
        f.apply(
            &ControlCommand::parse("cancel-fill GBPUSD 0.5 1 opens").unwrap(),
            t0,
            0,
        );
        assert_eq!(
            f.take_fill_plan("GBPUSD", true).end,
            PlanEnd::Filled,
            "a close is not an open"
        );
        assert_eq!(f.take_fill_plan("GBPUSD", false).end, PlanEnd::Cancelled);
        assert_eq!(f.take_fill_plan("GBPUSD", false).end, PlanEnd::Filled);
        f.apply(&ControlCommand::Clear, t0, 0);
        assert_eq!(f.take_fill_plan("GBPUSD", false), FillPlan::WHOLE);
    }

    #[test]
    fn rate_window_refuses_above_the_limit_within_one_second() {
        let t0 = Instant::now();
        let mut w = RateWindow::new();
        for _ in 0..3 {
            assert!(w.admit(t0, Some(3)));
        }
        assert!(!w.admit(t0 + Duration::from_millis(999), Some(3)));
        assert!(w.admit(t0 + Duration::from_millis(1000), Some(3)));
        assert!(w.admit(t0, None));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any control line yields a command or a typed error; never a panic.
        #[test]
        fn control_parsing_is_total(line in "\\PC{0,60}") {
            let _ = ControlCommand::parse(&line);
        }

        #[test]
        fn durations_parse_exactly(ms in 0u64..10_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Some(Duration::from_millis(ms)));
        }
    }
}
