//! The lines a connection receives, one at a time and without I/O: each twin's [`Sync`] says where
//! a line goes (HISTORY blocks fed to the twins: replay, then the first SIGNALs; live BARs stepped
//! into SIGNALs; a refused WARMUP asked again later, `ERROR|HISTORY_UNAVAILABLE`), and the saves
//! that follow a decision once its SIGNAL is sent.
//!
//! [`Sync`]: crate::sync::Sync

use protocol::{Action, BarTime, Decimal, ErrorCode, ErrorLine, Line, Signal, Symbol, Warmup};

use super::Preditor;
use crate::bars::{Bar, format_time};
use crate::session::BarOutcome;
use crate::sync::{BarRoute, CatchUp};
use crate::twin::Decision;
use crate::warmup_retry::named_pair;

impl Preditor {
    /// Applies every line of one received message; returns the lines to send, as one message:
    /// the SIGNALs of a bar close's 20 BARs reach the executor together, as one batch of orders.
    /// Nothing decided here is saved before the caller has sent them.
    pub(super) fn handle_text(&mut self, text: &str) -> Vec<Line> {
        let mut out = Vec::new();
        for line in protocol::parse_message(text) {
            match line {
                Ok(line) => {
                    tracing::info!(target: "wire", "< {}", line.redacted());
                    out.extend(self.handle(line));
                }
                Err(e) => {
                    tracing::warn!(target: "wire", error = %e, "< (malformed)");
                }
            }
        }
        out
    }

    /// Applies one received line; returns the lines to send (signals).
    pub(super) fn handle(&mut self, line: Line) -> Vec<Line> {
        match line {
            Line::History(h) => {
                if let Some(&i) = self.index.get(&(h.symbol.clone(), h.timeframe)) {
                    let slot = &mut self.slots[i];
                    slot.sync.on_history(slot.twin.history_capacity(h.count));
                } else {
                    tracing::warn!(symbol = %h.symbol, "HISTORY for a symbol without a model");
                }
                Vec::new()
            }
            Line::Bar(b) => {
                let Some(&i) = self.index.get(&(b.symbol.clone(), b.timeframe)) else {
                    tracing::debug!(symbol = %b.symbol, "BAR for a symbol without a model; ignored");
                    return Vec::new();
                };
                let bar = b.to_bar();
                let slot = &mut self.slots[i];
                if let Err(e) = slot.twin.check_bar(&bar) {
                    tracing::warn!(symbol = %b.symbol, time = %b.time, error = %e, "bar refused");
                    return Vec::new();
                }
                // A live bar (not one of a HISTORY block being received) counts in /metrics.
                if let Some(m) = &self.metrics
                    && (slot.sync.is_live() || slot.sync.is_waiting())
                {
                    m.on_bar(slot.symbol.as_str());
                }
                let (limit, window) = (slot.twin.warmup_count(), slot.twin.model.spec.window);
                match slot.sync.on_bar(bar, limit, window) {
                    BarRoute::Step(bar) => self.live_bar(i, bar).into_iter().collect(),
                    BarRoute::Kept => Vec::new(),
                    BarRoute::Dropped => {
                        tracing::warn!(symbol = %b.symbol, time = %b.time, "more HISTORY bars than asked for; dropped");
                        Vec::new()
                    }
                    BarRoute::WarmFromLive(history) => {
                        tracing::warn!(symbol = %slot.symbol, "no HISTORY received; warming up from live bars");
                        let early = Vec::new();
                        self.consume_history(i, CatchUp { history, early })
                    }
                }
            }
            Line::HistoryEnd(h) => {
                let Some(&i) = self.index.get(&(h.symbol.clone(), h.timeframe)) else {
                    return Vec::new();
                };
                let Some(catch_up) = self.slots[i].sync.on_history_end() else {
                    tracing::warn!(symbol = %h.symbol, "HISTORY_END without HISTORY; ignored");
                    return Vec::new();
                };
                self.consume_history(i, catch_up)
            }
            Line::Ack(_) | Line::Hello(_) | Line::Auth(_) => Vec::new(),
            Line::Error(e) => {
                tracing::warn!(code = %e.code, text = %e.text, "executor reported an error");
                if e.code == ErrorCode::HistoryUnavailable {
                    self.history_unavailable(&e);
                }
                Vec::new()
            }
            Line::Warmup(_) | Line::Signal(_) => {
                tracing::warn!("unexpected line from the executor; ignored");
                Vec::new()
            }
        }
    }

    /// The WARMUP for slot `i`.
    pub(super) fn warmup(&self, i: usize) -> Line {
        let slot = &self.slots[i];
        Line::Warmup(Warmup {
            symbol: slot.symbol.clone(),
            timeframe: slot.timeframe,
            count: u32::try_from(slot.twin.warmup_count()).unwrap_or(u32::MAX),
        })
    }

    /// The executor could not serve a WARMUP this time: ask again after a backoff, for the pair
    /// the text names, or for every pair still waiting when it names none.
    pub(super) fn history_unavailable(&mut self, e: &ErrorLine) {
        let now = tokio::time::Instant::now();
        let named = named_pair(&e.text).and_then(|pair| self.index.get(&pair).copied());
        let slots: Vec<usize> = match named {
            Some(i) => vec![i],
            None => (0..self.slots.len()).collect(),
        };
        for i in slots {
            let slot = &mut self.slots[i];
            if slot.sync.history_unavailable(now) {
                tracing::info!(symbol = %slot.symbol, "asking WARMUP again after HISTORY_UNAVAILABLE");
            }
        }
    }

    /// Rebuilds a twin from history bars, then applies the live bars that arrived meanwhile.
    /// Nothing is saved here: the signals of earlier lines of the same message are not sent yet.
    pub(super) fn consume_history(&mut self, i: usize, catch_up: CatchUp) -> Vec<Line> {
        let CatchUp {
            history: bars,
            early,
        } = catch_up;
        let mut out = Vec::new();
        let slot = &mut self.slots[i];
        match slot.twin.on_history(&bars) {
            Ok(outcome) => {
                slot.sync.synced();
                tracing::info!(symbol = %slot.symbol, bars = bars.len(), replayed = outcome.replayed,
                            mode = ?outcome.mode, signals = outcome.signals.len(), "history consumed");
                // Saved after the signals go out, like a live bar (see `live_bar`).
                slot.unsaved |= outcome.replayed > 0;
                for d in &outcome.signals {
                    out.extend(self.signal(i, d));
                }
            }
            // Still waiting: the next HISTORY, or a window of live bars, syncs it.
            Err(e) => tracing::error!(symbol = %slot.symbol, error = %e, "history refused"),
        }
        for bar in early {
            out.extend(self.live_bar(i, bar));
        }
        out
    }

    /// Steps one live bar. The SIGNAL is returned to be sent BEFORE the state is saved (the caller
    /// saves once the whole batch of received bars is signalled): an fsync costs milliseconds and
    /// 20 symbols close together. Safe because the step is deterministic: if the process dies after
    /// the send but before the save, the restart resumes from the previous state, replays this bar
    /// and sends the same SIGNAL with the same `B:`, which the executor answers again without
    /// executing twice. Not saved here either when the twin has unsaved bars: one message can hold
    /// several bars of a symbol (those held back during its WARMUP, a backfill), and saving the
    /// previous bar's state before its SIGNAL is sent would lose that SIGNAL to a kill.
    pub(super) fn live_bar(&mut self, i: usize, bar: Bar) -> Option<Line> {
        let slot = &mut self.slots[i];
        match slot.twin.on_bar(bar) {
            Ok(BarOutcome::Decided(d)) => {
                slot.unsaved = true;
                self.signal(i, &d)
            }
            Ok(BarOutcome::WarmingUp { have, need }) => {
                tracing::info!(symbol = %slot.symbol, have, need, "warming up: no decision yet");
                None
            }
            Ok(BarOutcome::AlreadyDecided) => {
                tracing::debug!(symbol = %slot.symbol, time = %format_time(bar.time), "bar already decided");
                None
            }
            Err(e) => {
                tracing::warn!(symbol = %slot.symbol, time = %format_time(bar.time), error = %e, "bar refused");
                None
            }
        }
    }

    /// Saves a twin's state if it decided bars since the last save; a failure is logged loudly (the
    /// next decided bar retries) and does not stop trading.
    pub(super) fn persist_if_unsaved(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !std::mem::take(&mut slot.unsaved) {
            return;
        }
        if let Err(e) = self.store.save(&slot.twin.persisted()) {
            tracing::error!(symbol = %slot.symbol, error = %e, "could not persist the twin state");
            if let Some(m) = &self.metrics {
                m.on_save_failure();
            }
        }
        // Off the signal path too: the next bar's recursions, so that bar costs one step of each.
        slot.twin.prepare_next();
    }

    /// Saves every twin with unsaved decisions (once each).
    pub(super) fn persist_unsaved(&mut self) {
        for i in 0..self.slots.len() {
            self.persist_if_unsaved(i);
        }
    }

    pub(super) fn signal(&self, i: usize, d: &Decision) -> Option<Line> {
        let slot = &self.slots[i];
        let line = signal_line(&slot.symbol, d)
            .map_err(|e| tracing::error!(symbol = %slot.symbol, error = %e, "cannot format SIGNAL"))
            .ok()?;
        if let (Some(m), Line::Signal(s)) = (&self.metrics, &line) {
            m.on_signal(slot.symbol.as_str(), s.action.as_str(), d);
        }
        Some(line)
    }
}

/// The SIGNAL line for a decision.
pub fn signal_line(symbol: &Symbol, d: &Decision) -> Result<Line, String> {
    let action = Action::from_index(usize::from(d.action))
        .ok_or_else(|| format!("action index {}", d.action))?;
    let virtual_pnl =
        Decimal::from_f64(d.realised_pnl, Signal::PNL_DECIMALS).map_err(|e| e.to_string())?;
    let bar_time = BarTime::from_unix(d.time).map_err(|e| e.to_string())?;
    Ok(Line::Signal(Signal {
        symbol: symbol.clone(),
        action,
        regime: d.regime,
        virtual_pnl,
        bar_time: Some(bar_time),
        held: Some(d.held),
    }))
}
