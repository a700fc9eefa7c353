//! A desk's part of an operator's Flatten: close every position of the chosen symbols, through the
//! same path as a signal's closes — intents journaled (one fsync) before any order goes out, every
//! close on the wire before the first answer is awaited, an ambiguous answer looked up at the broker
//! and never resent, each result journaled. Nothing is opened.
//!
//! A flatten close has no bar: its intent names bar 0 (1970-01-01, older than any bar a SIGNAL can
//! be fresh for, so recovery marking it "published" changes nothing) and the label
//! `OT-FLAT-<first 16 characters of the command id>-<position id>`, unique per command and
//! position, under cTrader's 50-character client order id limit.

use chrono::{DateTime, Utc};
use fleet::CommandId;
use protocol::{Action, BarTime, Symbol};

use super::Desk;
use super::execute::Order;
use crate::broker::{Broker, BrokerError};
use crate::journal::{Entry, Journal, JournalError};
use crate::orders::{BrokerPosition, CloseIntent, Fill};

/// The label of a flatten close.
pub fn flatten_label(id: &CommandId, position_id: u64) -> String {
    let short: String = id.as_str().chars().take(16).collect();
    format!("OT-FLAT-{short}-{position_id}")
}

impl<B: Broker> Desk<B> {
    /// Closes every position this book holds on `symbols`. Returns each position with the result
    /// of its close, in the book's order; `Err` only when the intents could not be journaled (then
    /// nothing was sent).
    pub async fn flatten(
        &mut self,
        symbols: &[Symbol],
        id: &CommandId,
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<Vec<(BrokerPosition, Result<Fill, BrokerError>)>, JournalError> {
        let (Some(any), Ok(bar0)) = (symbols.first(), BarTime::from_unix(0)) else {
            return Ok(Vec::new());
        };
        // Close what the broker holds, not a book that contradicted it.
        self.reconcile_if_due(None).await;
        let held: Vec<BrokerPosition> = self
            .broker
            .snapshot(any)
            .positions
            .into_iter()
            .filter(|p| symbols.iter().any(|s| s.as_str() == p.symbol))
            .collect();
        let mut intents = Vec::new();
        let mut targets = Vec::new();
        for p in held {
            let Ok(symbol) = p.symbol.parse::<Symbol>() else {
                continue;
            };
            intents.push(CloseIntent {
                symbol,
                position_id: p.position_id,
                lots: p.lots,
                bar: bar0,
                action: Action::Wait,
                client_order_id: flatten_label(id, p.position_id),
            });
            targets.push(p);
        }
        if intents.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Entry> = intents
            .iter()
            .map(|c| Entry::close_intent(self.book, now, c))
            .collect();
        journal.append_all(&entries)?;
        let wave: Vec<(usize, Order<'_>)> = intents
            .iter()
            .enumerate()
            .map(|(i, c)| (i, Order::Close(c)))
            .collect();
        let results = self.run_wave(&wave).await;
        for (c, r) in intents.iter().zip(&results) {
            if let Ok(f) = r
                && let Some(pnl) = f.realized_pnl
            {
                *self
                    .state
                    .realized
                    .entry(c.symbol.to_string())
                    .or_insert(0.0) += pnl;
            }
        }
        if let Err(e) = self.broker.commit() {
            tracing::error!(book = %self.book, error = %e, "cannot save the book after a flatten");
        }
        for (c, r) in intents.iter().zip(&results) {
            if let Err(e) = self.journal_result(journal, now, &c.client_order_id, r) {
                tracing::error!(book = %self.book, coid = %c.client_order_id, error = %e,
                    "cannot journal a flatten close's result; a restart reconciles it with the broker");
            }
        }
        self.save_after_orders(journal, now);
        Ok(targets.into_iter().zip(results).collect())
    }
}
