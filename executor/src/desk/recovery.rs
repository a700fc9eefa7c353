//! Startup recovery of one book: the journal's answered signals back into the engine, and every
//! order whose fate the journal does not know looked up at the broker by its label (the one
//! [`resolve`] rule) and its result journaled. No order is resent.

use chrono::{DateTime, Utc};
use protocol::{Ack, Action, BarTime, Reason, Symbol};
use tokio::time::Instant;

use super::{Desk, DeskError};
use crate::broker::Broker;
use crate::desk::resolve::{Lookup, Resolution, resolve};
use crate::journal::{Entry, Journal, ResolvedBy, pending_intents};
use crate::orders::Leg;

impl<B: Broker> Desk<B> {
    /// Startup: answered signals back into the engine, then every order whose fate the journal does
    /// not know is looked up at the broker (by label) and its result journaled. No order is resent.
    pub async fn recover(
        &mut self,
        entries: &[Entry],
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<usize, DeskError> {
        for e in entries.iter().filter(|e| e.book() == Some(self.book)) {
            match e {
                Entry::Ack { line, .. } => {
                    if let Some(bar) = line.bar_time {
                        self.engine.remember(&line.symbol, bar, line.clone());
                    }
                }
                // A bar with an order intent was published by the executor before the restart:
                // the preditor's repeat of its signal is for a real bar.
                Entry::Intent { symbol, bar, .. } => self.engine.on_bar_journaled(symbol, *bar),
                Entry::Result { .. }
                | Entry::Guard { .. }
                | Entry::Command { .. }
                | Entry::CommandResult { .. } => {}
            }
        }
        let pending = pending_intents(entries, self.book);
        if pending.is_empty() {
            return Ok(0);
        }
        let snap = self
            .broker
            .reconcile()
            .await
            .map_err(|source| DeskError::Reconcile {
                book: self.book,
                source,
            })?;
        self.last_reconcile = Some(Instant::now());
        for p in &pending {
            let Entry::Intent {
                coid,
                leg,
                position_id,
                lots,
                symbol,
                bar,
                action,
                ..
            } = p
            else {
                continue;
            };
            let lookup = match (leg, position_id) {
                (Leg::Open, _) => Some(Lookup::Open { coid }),
                (Leg::Close, Some(id)) => Some(Lookup::Close {
                    position_id: *id,
                    lots: *lots,
                }),
                // A close of no position: nothing was held, nothing to look up.
                (Leg::Close, None) => None,
            };
            let resolution = lookup.map_or(Resolution::NotDone, |l| resolve(&l, &snap));
            let (ok, fill, error) = match (&resolution, lookup) {
                (Resolution::Done(f), _) => (true, Some(f), None),
                (Resolution::NotDone, Some(l)) => (false, None, Some(l.not_done_after_restart())),
                (Resolution::NotDone, None) => (true, None, None),
            };
            tracing::warn!(book = %self.book, coid = %coid, ok, "resolved an order left pending by a restart");
            journal.append(&Entry::Result {
                t: now,
                book: self.book,
                coid: coid.clone(),
                ok,
                position_id: fill.map(|f| f.position_id).or(*position_id),
                price: fill.and_then(|f| f.price),
                lots: fill.and_then(|f| f.lots),
                error: error.map(str::to_string),
                resolved_by: Some(ResolvedBy::Reconcile),
            })?;
            if matches!(leg, Leg::Open) && !ok {
                // The order may still be on its way to the broker (sent just before the crash).
                // Answering the repeated signal with a new order under the same label could open
                // the position twice, so the bar is answered FAIL — as a timeout that reconcile
                // could not resolve is — and the order is never resent.
                self.remember_unresolved_open(journal, now, symbol, *bar, *action)?;
            }
        }
        Ok(pending.len())
    }

    /// Journals and remembers `FAIL|BROKER_ERROR` for the bar of an open whose fate a restart
    /// could not learn.
    fn remember_unresolved_open(
        &mut self,
        journal: &mut Journal,
        now: DateTime<Utc>,
        symbol: &Symbol,
        bar: BarTime,
        action: Action,
    ) -> Result<(), DeskError> {
        let ack = Ack::fail(symbol.clone(), action, Reason::BrokerError).with_bar_time(Some(bar));
        journal.append(&Entry::Ack {
            t: now,
            book: self.book,
            symbol: symbol.clone(),
            bar,
            line: ack.clone(),
        })?;
        self.engine.remember(symbol, bar, ack);
        Ok(())
    }
}
