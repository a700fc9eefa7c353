//! The books the loop owns: the primary desk (paper, or the live cTrader book), in shadow mode a
//! paper desk beside it, and the one journal both write. Every signal goes to each; a bar that
//! closed prices both; a kill switch or a reload reaches both.

use chrono::{DateTime, Utc};
use protocol::{BarLine, BarTime, Signal, Symbol, Timeframe};

use crate::broker::Broker;
use crate::broker::paper::PaperBroker;
use crate::config::ExecutorConfig;
use crate::desk::engine::EngineRules;
use crate::desk::{Desk, DeskOutcome};
use crate::journal::Journal;
use crate::orders::Book;

#[derive(Debug)]
pub struct Books<B> {
    pub primary: Desk<B>,
    /// Shadow mode: the paper book run beside the live one, to measure drift.
    pub shadow: Option<Desk<PaperBroker>>,
    pub journal: Journal,
}

/// What the engine needs from the config (replaced as a whole on a reload).
pub fn engine_rules(cfg: &ExecutorConfig) -> EngineRules {
    EngineRules {
        symbols: cfg.symbols.clone(),
        model_symbols: cfg.model_symbols(),
        stale_max_age_secs: cfg.stale_signal_max_age_secs as i64,
    }
}

impl<B: Broker> Books<B> {
    /// A bar the executor published (live, or in a HISTORY block): SIGNALs may be for it.
    pub fn bar_published(&mut self, symbol: &Symbol, timeframe: Timeframe, bar: BarTime) {
        self.primary.engine.on_bar_published(symbol, timeframe, bar);
        if let Some(s) = &mut self.shadow {
            s.engine.on_bar_published(symbol, timeframe, bar);
        }
    }

    /// A bar closed: books priced from bars quote its close (`close_time` Unix seconds).
    pub fn bar_closed(&mut self, bar: &BarLine, close_time: i64) {
        let close = bar.close.to_f64();
        self.primary
            .broker
            .on_bar_close(&bar.symbol, close, close_time);
        if let Some(s) = &mut self.shadow {
            s.broker.on_bar_close(&bar.symbol, close, close_time);
        }
    }

    /// The SIGNALs that arrived together, on every book: the primary's outcomes, then the
    /// shadow's (when there is one), each one per signal. The primary's ACKs can go out before
    /// the shadow runs: `primary` is handed to `answer` first.
    pub async fn signals(
        &mut self,
        sigs: &[Signal],
        now: DateTime<Utc>,
        kill_file_present: bool,
        answer: impl FnOnce(&[DeskOutcome]),
    ) -> Vec<Vec<(Book, DeskOutcome)>> {
        // One outcome per signal: an ACK says what the broker did, whatever the disk did after.
        let primary = self
            .primary
            .handle_batch(sigs, now, kill_file_present, &mut self.journal)
            .await;
        answer(&primary);
        let shadow = match &mut self.shadow {
            Some(s) => s
                .handle_batch(sigs, now, kill_file_present, &mut self.journal)
                .await
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; sigs.len()],
        };
        let (pb, sb) = (self.primary.book, Book::Paper);
        primary
            .into_iter()
            .zip(shadow)
            .map(|(p, s)| std::iter::once((pb, p)).chain(s.map(|s| (sb, s))).collect())
            .collect()
    }

    /// Sets the kill switch on every book; the errors of those that could not keep it.
    pub fn set_kill_switch(&mut self, on: bool, now: DateTime<Utc>) -> Vec<String> {
        let mut failed = Vec::new();
        if let Err(e) = self.primary.set_kill_switch(on, &mut self.journal, now) {
            failed.push(e.to_string());
        }
        if let Some(s) = &mut self.shadow
            && let Err(e) = s.set_kill_switch(on, &mut self.journal, now)
        {
            failed.push(e.to_string());
        }
        failed
    }

    /// New rules and specs after a config reload; answered signals and risk state are kept.
    pub fn reload(&mut self, cfg: &ExecutorConfig) {
        let rules = engine_rules(cfg);
        self.primary
            .engine
            .set_rules(rules.clone(), cfg.risk.clone());
        self.primary.broker.set_specs(cfg.symbols.clone());
        if let Some(s) = &mut self.shadow {
            s.engine.set_rules(rules, cfg.risk.clone());
            Broker::set_specs(&mut s.broker, cfg.symbols.clone());
        }
    }

    /// Archives the journal once it passes [`crate::journal::ROTATE_BYTES`] (see `journal.rs`).
    /// Call it between batches, when no order is in flight. A failed rotation is logged and the
    /// old file kept: it only grows. `stamp` (wall-clock time) names the archive.
    pub fn rotate_journal_if_large(&mut self, stamp: DateTime<Utc>) {
        if self.journal.len_bytes() < crate::journal::ROTATE_BYTES {
            return;
        }
        let stamp = stamp.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        match self
            .journal
            .rotate(crate::desk::engine::ANSWERED_PER_SYMBOL, &stamp)
        {
            Ok((archive, kept)) => {
                tracing::info!(archive = %archive.display(), kept, "journal rotated")
            }
            Err(e) => tracing::warn!(error = %e, "journal rotation failed; keeping the old file"),
        }
    }
}
