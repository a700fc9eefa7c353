//! A desk is one book: the signal engine plus a broker, executing the engine's plans with the
//! journal written before every order. After an ambiguous failure (timeout, disconnect) the desk
//! reconciles with the broker and looks for the order by its deterministic label; it never resends.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use protocol::{Ack, Action, BarTime, Reason, Signal, Symbol};
use serde::{Deserialize, Serialize};

use crate::broker::{Broker, BrokerError};
use crate::engine::{Decision, Execution, OpenStep, Plan, SignalEngine};
use crate::journal::{Entry, Journal, JournalError, pending_intents};
use crate::lots::TargetPosition;
use crate::orders::{BookSnapshot, Fill, Leg, Side};
use crate::risk::RiskState;
use crate::state::{self, StateError};

/// What a desk persists besides its broker's own state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeskState {
    pub risk: Option<RiskState>,
    /// Realised PnL per symbol from this desk's closing fills, account currency.
    pub realized: BTreeMap<String, f64>,
}

/// What one desk did with one signal (for the ACK, signals.log and drift.csv).
#[derive(Debug, Clone)]
pub struct DeskOutcome {
    pub ack: Ack,
    pub duplicate: bool,
    /// The open's fill, or the last close's when nothing was opened.
    pub fill: Option<Fill>,
    /// The book's position on the symbol afterwards, e.g. `LONG 0.01` / `FLAT`.
    pub position_after: String,
    pub realized: f64,
}

#[derive(Debug)]
pub struct Desk<B> {
    pub name: &'static str,
    pub engine: SignalEngine,
    pub broker: B,
    pub state: DeskState,
    state_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{book}: reconcile failed: {source}")]
    Reconcile {
        book: &'static str,
        #[source]
        source: BrokerError,
    },
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `LONG 0.01`, `SHORT 0.5`, `FLAT`; several positions are joined with `+`.
pub fn describe_positions(book: &BookSnapshot, symbol: &Symbol) -> String {
    let parts: Vec<String> = book
        .positions_for(symbol)
        .map(|p| {
            let d = match p.side {
                Side::Buy => "LONG",
                Side::Sell => "SHORT",
            };
            format!("{d} {}", p.lots)
        })
        .collect();
    if parts.is_empty() {
        "FLAT".to_string()
    } else {
        parts.join("+")
    }
}

pub fn describe_target(t: &TargetPosition) -> String {
    match Side::from_direction(t.direction) {
        None => "FLAT".to_string(),
        Some(Side::Buy) => format!("LONG {}", t.lots),
        Some(Side::Sell) => format!("SHORT {}", t.lots),
    }
}

impl<B: Broker> Desk<B> {
    /// A desk whose state lives at `state_path` (loaded if present).
    pub fn new(
        name: &'static str,
        mut engine: SignalEngine,
        broker: B,
        state_path: Option<PathBuf>,
    ) -> Result<Self, DeskError> {
        let state: DeskState = match &state_path {
            Some(p) => state::read_json(p)?.unwrap_or_default(),
            None => DeskState::default(),
        };
        if state.risk.is_some() {
            engine.risk.state = state.risk.clone();
        }
        Ok(Desk {
            name,
            engine,
            broker,
            state,
            state_path,
        })
    }

    fn persist(&mut self) -> Result<(), DeskError> {
        self.state.risk = self.engine.risk.state.clone();
        if let Some(p) = &self.state_path {
            state::write_json_atomic(p, &self.state)?;
        }
        Ok(())
    }

    /// Startup: answered signals back into the engine, then every order whose fate the journal does
    /// not know is looked up at the broker (by label) and its result journaled. No order is resent.
    pub async fn recover(
        &mut self,
        entries: &[Entry],
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<usize, DeskError> {
        for e in entries {
            if let Entry::Ack { book, line, .. } = e
                && book == self.name
                && let Ok(protocol::Line::Ack(ack)) = line.parse::<protocol::Line>()
                && let Some(bar) = ack.bar_time
            {
                let sym = ack.symbol.clone();
                self.engine.remember(&sym, bar, ack);
            }
        }
        let pending = pending_intents(entries, self.name);
        if pending.is_empty() {
            return Ok(0);
        }
        let snap = self
            .broker
            .reconcile()
            .await
            .map_err(|source| DeskError::Reconcile {
                book: self.name,
                source,
            })?;
        for p in &pending {
            let Entry::Intent {
                coid,
                leg,
                position_id,
                symbol,
                bar,
                action,
                ..
            } = p
            else {
                continue;
            };
            let (ok, pos, price, error) = match leg {
                Leg::Open => match snap
                    .positions
                    .iter()
                    .find(|x| x.label.as_deref() == Some(coid.as_str()))
                {
                    Some(x) => (true, Some(x.position_id), Some(x.entry_price), None),
                    None => (
                        false,
                        None,
                        None,
                        Some("not at the broker after restart: never filled".to_string()),
                    ),
                },
                Leg::Close => {
                    let still_open = position_id
                        .is_some_and(|id| snap.positions.iter().any(|x| x.position_id == id));
                    if still_open {
                        (
                            false,
                            *position_id,
                            None,
                            Some("position still open after restart".to_string()),
                        )
                    } else {
                        (true, *position_id, None, None)
                    }
                }
            };
            tracing::warn!(book = self.name, coid = %coid, ok, "resolved an order left pending by a restart");
            journal.append(&Entry::Result {
                t: stamp(now),
                book: self.name.to_string(),
                coid: coid.clone(),
                ok,
                position_id: pos,
                price,
                error,
                resolved_by: Some("reconcile".into()),
            })?;
            if matches!(leg, Leg::Open) && !ok {
                // The order may still be on its way to the broker (sent just before the crash).
                // Answering the repeated signal with a new order under the same label could open
                // the position twice, so the bar is answered FAIL — as a timeout that reconcile
                // could not resolve is — and the order is never resent.
                self.remember_unresolved_open(journal, now, symbol, *bar, action)?;
            }
        }
        Ok(pending.len())
    }

    /// Journals and remembers `FAIL|BROKER_ERROR` for the bar of an open whose fate a restart
    /// could not learn. An intent whose fields do not parse back is only logged.
    fn remember_unresolved_open(
        &mut self,
        journal: &mut Journal,
        now: DateTime<Utc>,
        symbol: &str,
        bar: i64,
        action: &str,
    ) -> Result<(), DeskError> {
        let (Ok(sym), Ok(bar_time), Ok(act)) = (
            symbol.parse::<Symbol>(),
            BarTime::from_unix(bar),
            action.parse::<Action>(),
        ) else {
            tracing::warn!(
                book = self.name,
                symbol,
                bar,
                action,
                "journaled intent does not parse back; its bar is not answered"
            );
            return Ok(());
        };
        let ack = Ack::fail(sym.clone(), act, Reason::BrokerError).with_bar_time(Some(bar_time));
        journal.append(&Entry::Ack {
            t: stamp(now),
            book: self.name.to_string(),
            symbol: sym.to_string(),
            bar,
            line: protocol::Line::Ack(ack.clone()).to_string(),
        })?;
        self.engine.remember(&sym, bar_time, ack);
        Ok(())
    }

    /// Handles one SIGNAL on this book.
    pub async fn handle_signal(
        &mut self,
        sig: &Signal,
        now: DateTime<Utc>,
        kill_file_present: bool,
        journal: &mut Journal,
    ) -> Result<DeskOutcome, DeskError> {
        let snap = self.broker.snapshot(&sig.symbol);
        let decision = self.engine.decide(sig, now, &snap, kill_file_present);
        let (ack, duplicate, fill) = match decision {
            Decision::Reply(r) => (r.ack, r.duplicate, None),
            Decision::Execute(plan) => {
                let exec = self.execute(&plan, journal, now).await?;
                let ack = self.engine.complete(&plan, &exec);
                let fill = match &exec.open {
                    Some(Ok(f)) => Some(f.clone()),
                    _ => exec
                        .closes
                        .iter()
                        .rev()
                        .find_map(|r| r.as_ref().ok().cloned()),
                };
                (ack, false, fill)
            }
        };
        if !duplicate && let Some(bar) = ack.bar_time {
            journal.append_lazy(&[Entry::Ack {
                t: stamp(now),
                book: self.name.to_string(),
                symbol: sig.symbol.to_string(),
                bar: bar.unix_seconds(),
                line: protocol::Line::Ack(ack.clone()).to_string(),
            }])?;
        }
        let dirty_fill = fill.as_ref().is_some_and(|f| f.realized_pnl.is_some());
        if self.engine.take_risk_dirty() || dirty_fill {
            self.persist()?;
        }
        let after = self.broker.snapshot(&sig.symbol);
        Ok(DeskOutcome {
            ack,
            duplicate,
            fill,
            position_after: describe_positions(&after, &sig.symbol),
            realized: self
                .state
                .realized
                .get(sig.symbol.as_str())
                .copied()
                .unwrap_or(0.0),
        })
    }

    async fn execute(
        &mut self,
        plan: &Plan,
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<Execution, DeskError> {
        let mut exec = Execution::default();
        // Every intent of the plan is on disk (one fsync) before the first order goes out.
        let mut intents: Vec<Entry> = plan
            .closes
            .iter()
            .map(|c| Entry::Intent {
                t: stamp(now),
                book: self.name.to_string(),
                coid: c.client_order_id.clone(),
                leg: Leg::Close,
                symbol: c.symbol.to_string(),
                bar: c.bar.unix_seconds(),
                action: c.action.to_string(),
                side: None,
                lots: c.lots,
                position_id: Some(c.position_id),
            })
            .collect();
        if let OpenStep::Open(approved) = &plan.open {
            let o = approved.item();
            intents.push(Entry::Intent {
                t: stamp(now),
                book: self.name.to_string(),
                coid: o.client_order_id.clone(),
                leg: Leg::Open,
                symbol: o.symbol.to_string(),
                bar: o.bar.unix_seconds(),
                action: o.action.to_string(),
                side: Some(o.side),
                lots: o.lots,
                position_id: None,
            });
        }
        journal.append_all(&intents)?;
        for c in &plan.closes {
            let mut r = self.broker.close(c).await;
            if let Err(e) = &r
                && e.is_ambiguous()
            {
                // Unknown outcome: ask the broker whether the position is still there.
                if let Ok(snap) = self.broker.reconcile().await
                    && !snap
                        .positions
                        .iter()
                        .any(|p| p.position_id == c.position_id)
                {
                    r = Ok(Fill {
                        position_id: c.position_id,
                        price: f64::NAN,
                        lots: c.lots,
                        slippage: f64::NAN, // unknown: found by reconcile
                        realized_pnl: None,
                    });
                }
            }
            self.journal_result(journal, now, &c.client_order_id, &r)?;
            if let Ok(f) = &r
                && let Some(pnl) = f.realized_pnl
            {
                *self
                    .state
                    .realized
                    .entry(c.symbol.to_string())
                    .or_insert(0.0) += pnl;
            }
            let failed = r.is_err();
            exec.closes.push(r);
            if failed {
                if let OpenStep::Open(approved) = &plan.open {
                    // Journaled but never sent: say so, so recovery has nothing to guess.
                    let not_sent = Err(BrokerError::Rejected {
                        code: "NOT_SENT".into(),
                        description: "a close of this plan failed first".into(),
                    });
                    self.journal_result(journal, now, &approved.item().client_order_id, &not_sent)?;
                }
                return Ok(exec);
            }
        }
        if let OpenStep::Open(approved) = &plan.open {
            let o = approved.item();
            let mut r = self.broker.open(approved).await;
            if let Err(e) = &r
                && e.is_ambiguous()
                && let Ok(snap) = self.broker.reconcile().await
                && let Some(p) = snap
                    .positions
                    .iter()
                    .find(|p| p.label.as_deref() == Some(o.client_order_id.as_str()))
            {
                r = Ok(Fill {
                    position_id: p.position_id,
                    price: p.entry_price,
                    lots: p.lots,
                    slippage: f64::NAN, // unknown: found by reconcile
                    realized_pnl: None,
                });
            }
            self.journal_result(journal, now, &o.client_order_id, &r)?;
            exec.open = Some(r);
        }
        Ok(exec)
    }

    fn journal_result(
        &self,
        journal: &mut Journal,
        now: DateTime<Utc>,
        coid: &str,
        r: &Result<Fill, BrokerError>,
    ) -> Result<(), DeskError> {
        journal.append_lazy(&[Entry::Result {
            t: stamp(now),
            book: self.name.to_string(),
            coid: coid.to_string(),
            ok: r.is_ok(),
            position_id: r.as_ref().ok().map(|f| f.position_id),
            price: r.as_ref().ok().map(|f| f.price).filter(|p| p.is_finite()),
            error: r.as_ref().err().map(|e| e.to_string()),
            resolved_by: None,
        }])?;
        Ok(())
    }
}
