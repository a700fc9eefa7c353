//! One twin's sync with the executor, as a state machine without I/O: whether its history has come,
//! where a received bar goes, when to ask WARMUP again. The shell ([`crate::live`]) sends the
//! WARMUPs, feeds the twin ([`crate::session::SymbolTwin`]) what the transitions hand back and
//! sends its SIGNALs.
//!
//! ```text
//!            HISTORY              HISTORY_END → catch-up consumed
//!   Waiting ─────────▶ Receiving ─────────────────────────────────▶ Live
//!      ▲  └──── a window of live bars, no HISTORY: warm up from them ──▶ │
//!      └──────────────────────── connection lost ────────────────────────┘
//! ```
//!
//! A HISTORY while `Live` opens a block again (a fresh warmup on the same connection); a history
//! the twin refuses leaves it `Waiting`.

use tokio::time::Instant;

use crate::bars::Bar;
use crate::warmup_retry::WarmupRetry;

/// Where a twin stands with the executor on the current connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Sync {
    /// No usable history yet (a WARMUP is out, or due again after `HISTORY_UNAVAILABLE`, see
    /// `retry`): live bars wait in `early`, oldest first.
    Waiting { early: Vec<Bar>, retry: WarmupRetry },
    /// A HISTORY block is open: its bars so far, and the live bars that came before it.
    Receiving { history: Vec<Bar>, early: Vec<Bar> },
    /// The history is consumed: live bars are stepped.
    Live,
}

impl Default for Sync {
    fn default() -> Self {
        Sync::Waiting {
            early: Vec::new(),
            retry: WarmupRetry::default(),
        }
    }
}

/// What to do with a bar the executor sent (already checked by the twin).
#[derive(Debug, Clone, PartialEq)]
pub enum BarRoute {
    /// Step it now: the twin is live.
    Step(Bar),
    /// Kept: in the open HISTORY block, or until the history comes.
    Kept,
    /// A HISTORY block with more bars than the WARMUP asked for: not needed, not kept.
    Dropped,
    /// A window of live bars came and no HISTORY (the executor refused the WARMUP): they are the
    /// history. Consume them as a [`CatchUp`] without early bars.
    WarmFromLive(Vec<Bar>),
}

/// A history to rebuild the twin from, then the live bars that arrived before it, in order. The
/// twin waits ([`Sync::Waiting`]) until the shell says the history was consumed
/// ([`Sync::synced`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUp {
    pub history: Vec<Bar>,
    pub early: Vec<Bar>,
}

impl Sync {
    /// A live twin steps bars as they come.
    pub fn is_live(&self) -> bool {
        matches!(self, Sync::Live)
    }

    /// Waiting for a history, no block open: a WARMUP may be asked again.
    pub fn is_waiting(&self) -> bool {
        matches!(self, Sync::Waiting { .. })
    }

    /// `HISTORY`: a block opens, with room for `capacity` bars (already bounded by the WARMUP's
    /// count). A block already open starts over; live bars that came before it are kept.
    pub fn on_history(&mut self, capacity: usize) {
        let early = match std::mem::replace(self, Sync::Live) {
            Sync::Waiting { early, .. } | Sync::Receiving { early, .. } => early,
            Sync::Live => Vec::new(),
        };
        *self = Sync::Receiving {
            history: Vec::with_capacity(capacity),
            early,
        };
    }

    /// A `BAR`: into the open block (at most `limit`, the WARMUP's count), kept until the history
    /// comes (a window of `window` of them is the history if none comes), or stepped.
    pub fn on_bar(&mut self, bar: Bar, limit: usize, window: usize) -> BarRoute {
        match self {
            Sync::Receiving { history, .. } if history.len() < limit => {
                history.push(bar);
                BarRoute::Kept
            }
            Sync::Receiving { .. } => BarRoute::Dropped,
            Sync::Waiting { early, .. } => {
                early.push(bar);
                if early.len() < window {
                    return BarRoute::Kept;
                }
                let bars = std::mem::take(early);
                *self = Sync::default();
                BarRoute::WarmFromLive(bars)
            }
            Sync::Live => BarRoute::Step(bar),
        }
    }

    /// `HISTORY_END`: the block to consume, and the live bars that came before it; `None` without
    /// an open block. The twin waits until [`Sync::synced`].
    pub fn on_history_end(&mut self) -> Option<CatchUp> {
        match std::mem::take(self) {
            Sync::Receiving { history, early } => Some(CatchUp { history, early }),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The twin consumed its history: live from now on.
    pub fn synced(&mut self) {
        *self = Sync::Live;
    }

    /// The connection is gone (or a new one starts): no history, nothing kept, and the first
    /// WARMUP failure waits the shortest backoff again.
    pub fn reset(&mut self) {
        *self = Sync::default();
    }

    /// `ERROR|HISTORY_UNAVAILABLE` for this pair: ask WARMUP again after the backoff, if the twin
    /// still waits for a history. Returns whether a retry is (now) scheduled.
    pub fn history_unavailable(&mut self, now: Instant) -> bool {
        match self {
            Sync::Waiting { retry, .. } => {
                retry.failed(now);
                true
            }
            _ => false,
        }
    }

    /// When the next WARMUP is due, if the twin waits and one is scheduled.
    pub fn warmup_due(&self) -> Option<Instant> {
        match self {
            Sync::Waiting { retry, .. } => retry.due(),
            _ => None,
        }
    }

    /// Whether a WARMUP is to be sent at `now`; if so it counts as sent.
    pub fn take_warmup_due(&mut self, now: Instant) -> bool {
        match self {
            Sync::Waiting { retry, .. } => retry.take_due(now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::warmup_retry::RETRY_MIN;

    fn bar(h: i64) -> Bar {
        Bar {
            time: 1_770_112_800 + h * 3600,
            open: 1.1,
            high: 1.2,
            low: 1.0,
            close: 1.1,
            volume: 1,
        }
    }

    const LIMIT: usize = 4;
    const WINDOW: usize = 3;

    #[test]
    fn a_history_then_its_end_hands_back_the_block_and_the_early_bars_then_goes_live() {
        let mut s = Sync::default();
        assert!(s.is_waiting() && !s.is_live());
        assert_eq!(s.on_bar(bar(9), LIMIT, WINDOW), BarRoute::Kept, "early");
        s.on_history(2);
        assert!(!s.is_waiting(), "a block is open: no WARMUP again");
        for h in 0..LIMIT as i64 {
            assert_eq!(s.on_bar(bar(h), LIMIT, WINDOW), BarRoute::Kept);
        }
        assert_eq!(
            s.on_bar(bar(4), LIMIT, WINDOW),
            BarRoute::Dropped,
            "over the WARMUP"
        );
        let c = s.on_history_end().unwrap();
        assert_eq!(c.history, (0..4).map(bar).collect::<Vec<_>>());
        assert_eq!(c.early, vec![bar(9)]);
        // Until the shell has consumed it, the twin waits: a bar meanwhile is early.
        assert!(s.is_waiting());
        s.synced();
        assert!(s.is_live());
        assert_eq!(s.on_bar(bar(10), LIMIT, WINDOW), BarRoute::Step(bar(10)));
    }

    #[test]
    fn a_history_end_without_a_block_is_ignored_in_every_state() {
        for mut s in [Sync::default(), Sync::Live] {
            let before = s.clone();
            assert_eq!(s.on_history_end(), None);
            assert_eq!(s, before);
        }
    }

    #[test]
    fn a_second_history_starts_the_block_over_and_keeps_the_early_bars() {
        let mut s = Sync::default();
        s.on_bar(bar(9), LIMIT, WINDOW);
        s.on_history(2);
        s.on_bar(bar(0), LIMIT, WINDOW);
        s.on_history(2);
        s.on_bar(bar(1), LIMIT, WINDOW);
        let c = s.on_history_end().unwrap();
        assert_eq!((c.history, c.early), (vec![bar(1)], vec![bar(9)]));
        // A history while live (a fresh warmup on the same connection) has no early bars.
        s.synced();
        s.on_history(2);
        s.on_bar(bar(2), LIMIT, WINDOW);
        let c = s.on_history_end().unwrap();
        assert_eq!((c.history, c.early), (vec![bar(2)], vec![]));
    }

    #[test]
    fn without_a_history_a_window_of_live_bars_becomes_the_history() {
        let mut s = Sync::default();
        for h in 0..WINDOW as i64 - 1 {
            assert_eq!(s.on_bar(bar(h), LIMIT, WINDOW), BarRoute::Kept);
        }
        assert_eq!(
            s.on_bar(bar(2), LIMIT, WINDOW),
            BarRoute::WarmFromLive((0..3).map(bar).collect())
        );
        assert_eq!(s, Sync::default(), "waits, nothing kept, until consumed");
    }

    #[test]
    fn warmup_retries_only_while_waiting_and_a_reset_forgets_everything() {
        let t0 = Instant::now();
        let mut s = Sync::default();
        assert_eq!(s.warmup_due(), None);
        assert!(s.history_unavailable(t0));
        assert_eq!(s.warmup_due(), Some(t0 + RETRY_MIN));
        assert!(!s.take_warmup_due(t0));
        assert!(s.take_warmup_due(t0 + RETRY_MIN));
        assert!(s.history_unavailable(t0 + RETRY_MIN));
        let backed_off = s.warmup_due().unwrap() - (t0 + RETRY_MIN);
        assert_eq!(backed_off, RETRY_MIN * 2, "doubles while waiting");
        // A block open, or live: no retry, an unavailable history changes nothing.
        s.on_history(1);
        assert_eq!(s.warmup_due(), None);
        assert!(!s.history_unavailable(t0));
        assert!(!s.take_warmup_due(t0 + Duration::from_secs(60)));
        s.on_history_end().unwrap();
        s.synced();
        assert!(!s.history_unavailable(t0));
        assert_eq!(s.warmup_due(), None);
        // A lost connection from any state: waiting afresh, shortest backoff again.
        s.on_bar(bar(1), LIMIT, WINDOW);
        s.reset();
        assert_eq!(s, Sync::default());
        assert!(s.history_unavailable(t0));
        assert_eq!(s.warmup_due(), Some(t0 + RETRY_MIN));
        let mut s = Sync::default();
        s.on_bar(bar(1), LIMIT, WINDOW);
        s.on_history(1);
        s.reset();
        assert_eq!(s, Sync::default());
    }
}
