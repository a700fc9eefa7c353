//! The risk guard: every *opening* order passes here; closing never does (reducing risk is always
//! allowed). Only this module can build a [`RiskApproved`], and a broker's open call takes nothing else,
//! so an unchecked order cannot reach a broker.
//!
//! Prop-firm style loss limits: the daily loss is measured from the trading day's starting equity,
//! the total loss from the initial balance, both as a percentage of the initial balance. The day's
//! starting equity and the initial balance are persisted ([`RiskState`]) so a restart mid-day keeps
//! counting from the real start of the day, not from the equity at the restart.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use protocol::Reason;
use serde::{Deserialize, Serialize};

use crate::config::{QuoteConversion, RiskConfig, SymbolConfig};
use crate::orders::{AccountSnapshot, BrokerPosition, OpenIntent, Quote};

/// An item the risk guard approved. Constructed only by [`RiskGuard::check_open`]: the field is
/// private, so code outside this module cannot forge an approval.
///
/// ```compile_fail
/// use executor::desk::risk::RiskApproved;
/// let forged = RiskApproved(0u8); // error: the constructor is private
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RiskApproved<T>(T);

impl<T> RiskApproved<T> {
    pub fn item(&self) -> &T {
        &self.0
    }
    pub fn into_item(self) -> T {
        self.0
    }
}

/// An item the risk guard refused, with the reason sent back in the ACK.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRefused<T> {
    pub item: T,
    pub reason: Reason,
}

/// What the guard persists per book: the loss limits' reference points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskState {
    pub initial_balance: f64,
    pub day: NaiveDate,
    pub day_start_equity: f64,
}

/// Everything besides the intent that the guard looks at, gathered by the caller (no I/O here).
#[derive(Debug, Clone)]
pub struct RiskContext<'a> {
    pub now: DateTime<Utc>,
    pub account: AccountSnapshot,
    /// Positions that will still be open once the planned closes are done.
    pub remaining_positions: &'a [BrokerPosition],
    pub quote: Option<Quote>,
    pub symbol: &'a SymbolConfig,
    /// The kill-switch file exists (checked by the caller).
    pub kill_file_present: bool,
}

#[derive(Debug, Clone)]
pub struct RiskGuard {
    pub limits: RiskConfig,
    pub state: Option<RiskState>,
    /// Set by the `CONTROL|KILL_SWITCH|ON` line; cleared by `OFF`.
    pub kill_switch: bool,
    /// Set by an operator's Pause (or Flatten), cleared by Resume (`crate::ops`): no new opens.
    pub paused: bool,
}

impl RiskGuard {
    pub fn new(limits: RiskConfig, state: Option<RiskState>) -> Self {
        RiskGuard {
            limits,
            state,
            kill_switch: false,
            paused: false,
        }
    }

    /// The trading day `now` belongs to (the day starts at `day_start_hour_utc`).
    pub fn trading_day(&self, now: DateTime<Utc>) -> NaiveDate {
        (now - Duration::hours(i64::from(self.limits.day_start_hour_utc))).date_naive()
    }

    /// Rolls the day forward (and sets the initial balance the first time). Returns true if the
    /// state changed and must be persisted.
    pub fn observe(&mut self, now: DateTime<Utc>, account: &AccountSnapshot) -> bool {
        let day = self.trading_day(now);
        match &mut self.state {
            None => {
                self.state = Some(RiskState {
                    initial_balance: self.limits.initial_balance.unwrap_or(account.balance),
                    day,
                    day_start_equity: account.equity,
                });
                true
            }
            // Forward only: a clock that steps back over midnight, or a paper replay that starts
            // again at an earlier day, must not take a new (higher) starting equity and hand the
            // day's losses back to the limit.
            Some(s) if day > s.day => {
                s.day = day;
                s.day_start_equity = account.equity;
                true
            }
            Some(_) => false,
        }
    }

    /// Checks an opening order. The caller must have called [`RiskGuard::observe`] for `ctx.now`.
    pub fn check_open(
        &self,
        intent: OpenIntent,
        ctx: &RiskContext<'_>,
    ) -> Result<RiskApproved<OpenIntent>, RiskRefused<OpenIntent>> {
        match self.refusal(&intent, ctx) {
            Some(reason) => Err(RiskRefused {
                item: intent,
                reason,
            }),
            None => Ok(RiskApproved(intent)),
        }
    }

    fn refusal(&self, intent: &OpenIntent, ctx: &RiskContext<'_>) -> Option<Reason> {
        if self.kill_switch || ctx.kill_file_present {
            return Some(Reason::KillSwitch);
        }
        if self.paused {
            return Some(Reason::Paused);
        }
        let acct = &ctx.account;
        let initial = self
            .state
            .as_ref()
            .map(|s| s.initial_balance)
            .or(self.limits.initial_balance)
            .unwrap_or(acct.balance);
        if initial - acct.equity >= initial * self.limits.max_total_loss_pct / 100.0 {
            return Some(Reason::TotalLoss);
        }
        if let Some(s) = &self.state
            && s.day_start_equity - acct.equity >= initial * self.limits.max_daily_loss_pct / 100.0
        {
            return Some(Reason::DailyLoss);
        }
        if acct.equity < self.limits.min_equity {
            return Some(Reason::MinEquity);
        }
        if ctx.remaining_positions.len() + 1 > self.limits.max_open_positions {
            return Some(Reason::MaxPositions);
        }
        let open_lots: f64 = ctx.remaining_positions.iter().map(|p| p.lots).sum();
        if open_lots + intent.lots > self.limits.max_total_lots + 1e-9 {
            return Some(Reason::MaxExposure);
        }
        let Some(quote) = ctx.quote else {
            // No price: cannot judge spread or margin, and the market may well be shut.
            return Some(Reason::MarketClosed);
        };
        if let Some(max) = ctx.symbol.max_spread
            && quote.spread() > max + 1e-12
        {
            return Some(Reason::Spread);
        }
        let price = quote.price_for(intent.side);
        let required = required_margin(ctx.symbol, intent.lots, price, acct.leverage);
        let held: f64 = ctx.remaining_positions.iter().map(|p| p.margin).sum();
        if required > acct.equity - held {
            return Some(Reason::Margin);
        }
        None
    }
}

/// Margin for a position: notional in account currency over leverage.
pub fn required_margin(sym: &SymbolConfig, lots: f64, price: f64, leverage: f64) -> f64 {
    let notional_quote = lots * sym.contract_size * price;
    let notional = match sym.quote_to_account {
        QuoteConversion::Fixed(r) => notional_quote * r,
        // Base currency is the account currency: the notional is the base amount itself.
        QuoteConversion::InversePrice => lots * sym.contract_size,
    };
    notional / leverage.max(1.0)
}
