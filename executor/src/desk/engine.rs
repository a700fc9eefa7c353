//! The signal engine: PROTOCOL.md §5 and §7's SIGNAL handling as a pure, synchronous state machine
//! with an injected clock. It never performs I/O: [`SignalEngine::decide`] turns a SIGNAL and a snapshot of one book
//! into either an immediate ACK or a [`Plan`] (closes, then at most one risk-approved open), and
//! [`SignalEngine::complete`] turns the broker's results for that plan into the ACK. The desk
//! ([`crate::desk`]) runs the plan against a broker in between.
//!
//! Order of the checks for one SIGNAL:
//! 1. `B:` and `N:` present (they are what dedup, staleness and missed-entry need) → else MALFORMED;
//! 2. already answered for this symbol and bar → the same ACK again (DUPLICATE_BAR if the action
//!    differs), nothing executed; possibly answered and forgotten → STALE, nothing executed;
//! 3. symbol known (config entry) → else UNKNOWN_SYMBOL; enabled → else DISABLED;
//! 4. fresh: now ≤ B + timeframe + max age → else STALE;
//! 5. a bar the executor published → else UNKNOWN_BAR;
//! 6. real position already matches the target → OK with its id and price, no order. A position
//!    the broker filled only in part counts as the target: one position on the target's side, no
//!    larger than the target, opened (its label says) for an action with this same target. It is
//!    never topped up (a second order would be a second position) nor closed and reopened; it
//!    goes when the action changes. (A lot size lowered by a config reload is held the same way.)
//! 7. `N:` > 1 (the virtual entry is on an earlier bar): close a mismatching real position (closing is
//!    always allowed) but never open: WAIT_SYNC|MISSED_ENTRY;
//! 8. otherwise close whatever does not match, then open through the risk guard: at once when there
//!    is nothing to close, and after the closes are confirmed otherwise
//!    ([`SignalEngine::approve_after_closes`]), so a reversal's new position is judged on the book
//!    its own close freed.
//!
//! Only answers about a published bar of a configured symbol are remembered (and journaled): the
//! others depend on nothing but the config, the clock and the line, and remembering them would let
//! any input grow memory or push real bars out (see [`crate::desk::bar_memory`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use protocol::{Ack, AckOutcome, Action, BarTime, Decimal, Reason, Signal, Symbol, Timeframe};

use crate::desk::bar_memory::{BarMemory, Earlier};

use crate::broker::BrokerError;
use crate::config::SymbolConfig;
use crate::desk::lots::{LotMap, TargetPosition, same_lots};
use crate::desk::risk::{RiskApproved, RiskContext, RiskGuard};
use crate::orders::{
    BookSnapshot, BrokerPosition, CloseIntent, Fill, Leg, OpenIntent, Side, client_order_id,
    parse_open_label,
};

pub use crate::desk::bar_memory::ANSWERED_PER_SYMBOL;

/// What the engine needs from the config (replaced as a whole on SIGHUP).
#[derive(Debug, Clone)]
pub struct EngineRules {
    pub symbols: BTreeMap<Symbol, SymbolConfig>,
    /// Symbols with a model but no config entry: answered DISABLED rather than UNKNOWN_SYMBOL.
    pub model_symbols: BTreeSet<Symbol>,
    pub stale_max_age_secs: i64,
}

/// The engine's answer to a SIGNAL before any broker call.
#[derive(Debug)]
pub enum Decision {
    /// Answer now; nothing to execute.
    Reply(Reply),
    /// Execute the plan, then call [`SignalEngine::complete`].
    Execute(Plan),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub ack: Ack,
    /// The same ACK sent again for a repeated signal.
    pub duplicate: bool,
    /// The answer is remembered for its bar (and so journaled); false for refusals that depend on
    /// nothing but the config, the clock and the line, and for repeats.
    pub remembered: bool,
}

/// What to do with the broker for one SIGNAL: all closes first, then the open step.
#[derive(Debug)]
pub struct Plan {
    pub symbol: Symbol,
    pub action: Action,
    pub bar: BarTime,
    pub target: TargetPosition,
    pub closes: Vec<CloseIntent>,
    pub open: OpenStep,
    pub digits: usize,
}

#[derive(Debug)]
pub enum OpenStep {
    /// The target is flat: closing is all there is.
    Nothing,
    /// Open this (only after every close succeeded).
    Open(RiskApproved<OpenIntent>),
    /// Open this if the risk guard approves it once every close of the plan is confirmed: the
    /// desk asks [`SignalEngine::approve_after_closes`] then. Until a close is confirmed its
    /// position is still held, so judging the open before it would count the position twice.
    AfterCloses(OpenIntent),
    /// The risk guard refused the open: ACK FAIL with this reason after the closes.
    Refused(Reason),
    /// `N:` > 1 and the real position was not the target: WAIT_SYNC|MISSED_ENTRY after the closes.
    MissedEntry,
}

/// The broker's results for a plan, in the plan's order. The desk sends a plan's closes together
/// and its open only once every close went through; `open` is `None` when no open was attempted.
#[derive(Debug, Default)]
pub struct Execution {
    pub closes: Vec<Result<Fill, BrokerError>>,
    pub open: Option<Result<Fill, BrokerError>>,
}

#[derive(Debug)]
pub struct SignalEngine {
    rules: EngineRules,
    pub risk: RiskGuard,
    bars: BarMemory,
    risk_dirty: bool,
}

impl SignalEngine {
    pub fn new(rules: EngineRules, risk: RiskGuard) -> Self {
        SignalEngine {
            rules,
            risk,
            bars: BarMemory::default(),
            risk_dirty: false,
        }
    }

    pub fn rules(&self) -> &EngineRules {
        &self.rules
    }

    /// New rules after a config reload; answered signals and risk state are kept.
    pub fn set_rules(&mut self, rules: EngineRules, limits: crate::config::RiskConfig) {
        self.rules = rules;
        self.risk.limits = limits;
    }

    /// True once after the risk state (day start, initial balance) changed: persist it.
    pub fn take_risk_dirty(&mut self) -> bool {
        std::mem::take(&mut self.risk_dirty)
    }

    /// Remembers an ACK for (symbol, bar), e.g. from the journal after a restart. Ignored for a
    /// symbol that is not configured (nothing of it is executed, and memory stays bounded).
    pub fn remember(&mut self, symbol: &Symbol, bar: BarTime, ack: Ack) {
        if self.rules.symbols.contains_key(symbol) {
            self.bars.answered(symbol, bar, ack);
        }
    }

    /// The executor published this bar (live or in a HISTORY block): SIGNALs may be for it. Only a
    /// configured symbol's bars of its configured timeframe count.
    pub fn on_bar_published(&mut self, symbol: &Symbol, timeframe: Timeframe, bar: BarTime) {
        if self
            .rules
            .symbols
            .get(symbol)
            .is_some_and(|c| c.timeframe == timeframe)
        {
            self.bars.published(symbol, bar);
        }
    }

    /// A bar the journal shows an order intent for (a restart's recovery): published before the
    /// restart, on the symbol's configured timeframe.
    pub fn on_bar_journaled(&mut self, symbol: &Symbol, bar: BarTime) {
        if let Some(tf) = self.rules.symbols.get(symbol).map(|c| c.timeframe) {
            self.on_bar_published(symbol, tf, bar);
        }
    }

    /// How many symbols the engine keeps bar memory for (bounded by the config).
    pub fn remembered_symbols(&self) -> usize {
        self.bars.symbols()
    }

    /// Decides what to do with a SIGNAL given one book's snapshot at `now`.
    pub fn decide(
        &mut self,
        sig: &Signal,
        now: DateTime<Utc>,
        book: &BookSnapshot,
        kill_file_present: bool,
    ) -> Decision {
        let reply = |engine: &mut Self, bar: Option<BarTime>, ack: Ack| {
            let ack = ack.with_bar_time(bar);
            if let Some(bar) = bar {
                engine.remember(&sig.symbol, bar, ack.clone());
            }
            Decision::Reply(Reply {
                ack,
                duplicate: false,
                remembered: bar.is_some(),
            })
        };
        // Answered without a trace: nothing about the bar is remembered or journaled.
        let refuse = |bar: Option<BarTime>, ack: Ack| {
            Decision::Reply(Reply {
                ack: ack.with_bar_time(bar),
                duplicate: false,
                remembered: false,
            })
        };
        let fail = |reason| Ack::fail(sig.symbol.clone(), sig.action, reason);
        // Roll the trading day on every signal, not only on opens, so the day's starting equity is
        // taken at the first signal of the day rather than at its first open.
        if let Some(account) = &book.account
            && self.risk.observe(now, account)
        {
            self.risk_dirty = true;
        }

        let (Some(bar), Some(held)) = (sig.bar_time, sig.held) else {
            return refuse(sig.bar_time, fail(Reason::Malformed));
        };
        match self.bars.earlier(&sig.symbol, bar) {
            Earlier::Answered(ack) if ack.action == sig.action => {
                return Decision::Reply(Reply {
                    ack: ack.clone(),
                    duplicate: true,
                    remembered: false,
                });
            }
            // The first answer stands; this one is not remembered over it.
            Earlier::Answered(_) => return refuse(Some(bar), fail(Reason::DuplicateBar)),
            Earlier::Forgotten => return refuse(Some(bar), fail(Reason::Stale)),
            Earlier::No => {}
        }
        let Some(rules) = self.rules.symbols.get(&sig.symbol).cloned() else {
            let reason = if self.rules.model_symbols.contains(&sig.symbol) {
                Reason::Disabled
            } else {
                Reason::UnknownSymbol
            };
            return refuse(Some(bar), fail(reason));
        };
        if !rules.enabled {
            return refuse(Some(bar), fail(Reason::Disabled));
        }
        let published = self.bars.is_published(&sig.symbol, bar);
        // An MN1 bar closes at the next month's start, not at its open.
        let bar_close = bar
            .bar_close(rules.timeframe)
            .map_or(i64::MAX, |c| c.unix_seconds());
        if now.timestamp() > bar_close + self.rules.stale_max_age_secs {
            return if published {
                reply(self, Some(bar), fail(Reason::Stale))
            } else {
                refuse(Some(bar), fail(Reason::Stale))
            };
        }
        if !published {
            return refuse(Some(bar), fail(Reason::UnknownBar));
        }

        let digits = price_digits(&rules);
        let target = rules.lots.target(sig.action);
        let mine: Vec<&BrokerPosition> = book.positions_for(&sig.symbol).collect();
        if let Some(ack) = matching(&mine, target, sig, digits, &rules.lots) {
            return reply(self, Some(bar), ack);
        }

        let closes: Vec<CloseIntent> = mine
            .iter()
            .map(|p| CloseIntent {
                symbol: sig.symbol.clone(),
                position_id: p.position_id,
                lots: p.lots,
                bar,
                action: sig.action,
                client_order_id: format!(
                    "{}-{}",
                    client_order_id(&sig.symbol, bar, sig.action, Leg::Close),
                    p.position_id
                ),
            })
            .collect();

        let open = if target.is_flat() {
            OpenStep::Nothing
        } else if held > 1 {
            OpenStep::MissedEntry
        } else if let Some(side) = Side::from_direction(target.direction) {
            let intent = OpenIntent {
                symbol: sig.symbol.clone(),
                side,
                lots: target.lots,
                bar,
                action: sig.action,
                client_order_id: client_order_id(&sig.symbol, bar, sig.action, Leg::Open),
            };
            if closes.is_empty() {
                approve(
                    &self.risk,
                    intent,
                    now,
                    book,
                    &rules,
                    kill_file_present,
                    &[],
                )
            } else {
                OpenStep::AfterCloses(intent)
            }
        } else {
            OpenStep::Nothing
        };

        if closes.is_empty() {
            // Nothing to close: a refusal or missed entry is answered at once.
            match open {
                OpenStep::Refused(reason) => return reply(self, Some(bar), fail(reason)),
                OpenStep::MissedEntry => {
                    return reply(
                        self,
                        Some(bar),
                        Ack::wait_sync(sig.symbol.clone(), sig.action, Reason::MissedEntry),
                    );
                }
                OpenStep::Nothing => {
                    return reply(
                        self,
                        Some(bar),
                        Ack::ok(sig.symbol.clone(), sig.action, None, None),
                    );
                }
                OpenStep::Open(_) | OpenStep::AfterCloses(_) => {}
            }
        }
        Decision::Execute(Plan {
            symbol: sig.symbol.clone(),
            action: sig.action,
            bar,
            target,
            closes,
            open,
            digits,
        })
    }

    /// Decides the open a plan kept for after its closes ([`OpenStep::AfterCloses`]), now that
    /// they are confirmed: `book` is the book after them (the positions they closed are not
    /// counted even if it still lists one). Any other open step is left as it is.
    pub fn approve_after_closes(
        &self,
        plan: &mut Plan,
        now: DateTime<Utc>,
        book: &BookSnapshot,
        kill_file_present: bool,
    ) {
        let OpenStep::AfterCloses(intent) = &plan.open else {
            return;
        };
        let Some(rules) = self.rules.symbols.get(&plan.symbol) else {
            plan.open = OpenStep::Refused(Reason::UnknownSymbol);
            return;
        };
        let closed: Vec<u64> = plan.closes.iter().map(|c| c.position_id).collect();
        plan.open = approve(
            &self.risk,
            intent.clone(),
            now,
            book,
            rules,
            kill_file_present,
            &closed,
        );
    }

    /// The ACK for an executed plan; remembered so a repeat of the signal gets it again.
    pub fn complete(&mut self, plan: &Plan, exec: &Execution) -> Ack {
        let ack = outcome(plan, exec);
        let ack = ack.with_bar_time(Some(plan.bar));
        self.remember(&plan.symbol, plan.bar, ack.clone());
        ack
    }
}

/// The risk guard's verdict on an open, on `book` without the positions `closing` (they are being
/// or have been closed).
fn approve(
    risk: &RiskGuard,
    intent: OpenIntent,
    now: DateTime<Utc>,
    book: &BookSnapshot,
    rules: &SymbolConfig,
    kill_file_present: bool,
    closing: &[u64],
) -> OpenStep {
    let Some(account) = book.account else {
        return OpenStep::Refused(Reason::NotConnected);
    };
    let remaining: Vec<BrokerPosition> = book
        .positions
        .iter()
        .filter(|p| !closing.contains(&p.position_id))
        .cloned()
        .collect();
    let ctx = RiskContext {
        now,
        account,
        remaining_positions: &remaining,
        quote: book.quote,
        symbol: rules,
        kill_file_present,
    };
    match risk.check_open(intent, &ctx) {
        Ok(approved) => OpenStep::Open(approved),
        Err(refused) => OpenStep::Refused(refused.reason),
    }
}

fn outcome(plan: &Plan, exec: &Execution) -> Ack {
    let sym = plan.symbol.clone();
    let fail = |reason| Ack::fail(sym.clone(), plan.action, reason);
    let mut last_close = None;
    for r in &exec.closes {
        match r {
            Ok(fill) => last_close = Some(fill),
            Err(e) => return fail(e.reason()),
        }
    }
    if exec.closes.len() < plan.closes.len() {
        // The desk stopped before every close was done without saying why.
        return fail(Reason::BrokerError);
    }
    match &plan.open {
        OpenStep::Nothing => Ack::ok(
            sym.clone(),
            plan.action,
            last_close.map(|f| f.position_id),
            last_close.and_then(|f| price(f.price?, plan.digits)),
        ),
        OpenStep::Refused(reason) => fail(reason.clone()),
        OpenStep::MissedEntry => Ack::wait_sync(sym.clone(), plan.action, Reason::MissedEntry),
        OpenStep::Open(_) => match &exec.open {
            Some(Ok(fill)) => Ack::ok(
                sym.clone(),
                plan.action,
                Some(fill.position_id),
                fill.price.and_then(|p| price(p, plan.digits)),
            ),
            Some(Err(e)) => fail(e.reason()),
            None => fail(Reason::BrokerError),
        },
        // The desk did not decide it after the closes (it stopped without saying why).
        OpenStep::AfterCloses(_) => fail(Reason::BrokerError),
    }
}

/// An OK ACK when the real position already is the target (no order needed).
fn matching(
    mine: &[&BrokerPosition],
    target: TargetPosition,
    sig: &Signal,
    digits: usize,
    lots: &LotMap,
) -> Option<Ack> {
    if target.is_flat() {
        return mine
            .is_empty()
            .then(|| Ack::ok(sig.symbol.clone(), sig.action, None, None));
    }
    match mine {
        [p] if p.side.direction() == target.direction
            && (same_lots(p.lots, target.lots)
                || partial_of_target(p, target, &sig.symbol, lots)) =>
        {
            Some(Ack::ok(
                sig.symbol.clone(),
                sig.action,
                Some(p.position_id),
                p.entry_price.and_then(|e| price(e, digits)),
            ))
        }
        _ => None,
    }
}

/// A position smaller than `target` that was opened for it: its label names an action of this
/// symbol whose target (with today's lots) is this one. What a fill cut short by the broker leaves.
fn partial_of_target(
    p: &BrokerPosition,
    target: TargetPosition,
    symbol: &Symbol,
    lots: &LotMap,
) -> bool {
    let opened_for = p
        .label
        .as_deref()
        .and_then(parse_open_label)
        .filter(|(s, _, _)| s == symbol)
        .map(|(_, _, action)| lots.target(action));
    p.lots > 0.0
        && p.lots < target.lots
        && opened_for
            .is_some_and(|t| t.direction == target.direction && same_lots(t.lots, target.lots))
}

fn price(v: f64, digits: usize) -> Option<Decimal> {
    Decimal::from_f64(v, digits).ok()
}

/// Decimal places for prices of a symbol (from its config).
pub fn price_digits(rules: &SymbolConfig) -> usize {
    rules.digits
}

/// The reason in an ACK, if it is not OK (for logs and drift rows).
pub fn ack_reason(ack: &Ack) -> Option<&Reason> {
    match &ack.outcome {
        AckOutcome::Ok { .. } => None,
        AckOutcome::Fail(r) | AckOutcome::WaitSync(r) => Some(r),
    }
}
