//! Market data for the preditor: where closed bars come from, the history a WARMUP is served
//! from, and the gaps a lost link leaves. One enum over the two feeds, so the core loop never asks
//! which mode it runs in; each says which timers it needs ([`Feed::ticks`]).
//!
//! - [`bars`]: closed bars themselves: the pure closed-bar detector ([`bars::BarBuilder`], from
//!   live trendbars and spots).
//! - [`csv_replay`]: the paper replay's CSV bars, read from their files as the replay goes.
//! - [`replay`]: paper mode, CSV bars replayed at a fixed pace.
//! - [`ctrader`]: live and shadow modes, bars built from the cTrader client's market data, gaps
//!   filled from its history, and the link's health.

pub mod bars;
pub mod csv_replay;
pub mod ctrader;
pub mod replay;

use std::time::Duration;

use protocol::{BarLine, Symbol, Timeframe, Warmup};
use tokio::time::Instant;

use crate::broker::BrokerEvent;
use crate::core::event::Tick;
use crate::ipc::warmup::Fetch;

pub use ctrader::{Heard, LiveFeed, ProbeResult};
pub use replay::Replay;

/// How often the cTrader account (balance, leverage, every position's unrealised PnL) is asked of
/// the broker: the risk guard's equity is at most this old (plus a round trip). Two requests per
/// period, far under the server's 50/s.
pub const ACCOUNT_REFRESH_PERIOD: Duration = Duration::from_secs(5);
/// Bar closes by the clock (boundary + 1 s) are checked four times a second.
pub const BAR_CLOCK_PERIOD: Duration = Duration::from_millis(250);
/// The live book is reconciled on a schedule and as soon as it contradicted the broker (the desk
/// decides when: `Desk::reconcile_if_due`); this is how often it is asked.
pub const RECONCILE_CHECK_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub enum Feed {
    Replay(Replay),
    Ctrader(Box<LiveFeed>),
}

impl Feed {
    /// The timers this feed needs: each tick's period and its first delay.
    pub fn ticks(&self) -> Vec<(Tick, Duration, Duration)> {
        match self {
            // The replay clock is the feed; it ticks even with no preditor connected (bars are
            // only stepped for one), so a tick handled is the proof that the loop is alive.
            Feed::Replay(r) => vec![(Tick::Replay, r.period(), Duration::ZERO)],
            Feed::Ctrader(_) => vec![
                (Tick::BarClock, BAR_CLOCK_PERIOD, Duration::ZERO),
                // Wall-clock time: a replay's market clock runs hours a second.
                (Tick::Reconcile, RECONCILE_CHECK_PERIOD, Duration::ZERO),
                (
                    Tick::Probe,
                    ctrader::BROKER_PROBE_PERIOD,
                    ctrader::BROKER_PROBE_PERIOD,
                ),
                (
                    Tick::AccountRefresh,
                    ACCOUNT_REFRESH_PERIOD,
                    ACCOUNT_REFRESH_PERIOD,
                ),
            ],
        }
    }

    /// The feed in a few words, for `STATUS=`.
    pub fn status(&self) -> String {
        match self {
            Feed::Replay(r) => r.status(),
            Feed::Ctrader(l) => l.status(),
        }
    }

    /// A tick of the feed's own timers: the replay's next step, or the bars the clock closed
    /// (`now` Unix seconds).
    pub fn on_tick(&mut self, tick: Tick, now: i64) -> Vec<BarLine> {
        match (self, tick) {
            (Feed::Replay(r), Tick::Replay) => r.step(),
            (Feed::Ctrader(l), Tick::BarClock) => l.on_clock(now),
            _ => Vec::new(),
        }
    }

    /// An event of the broker's link.
    pub fn on_broker_event(&mut self, ev: &BrokerEvent, now: i64, at: Instant) -> Heard {
        match self {
            Feed::Ctrader(l) => l.on_event(ev, now, at),
            Feed::Replay(_) => Heard::default(),
        }
    }

    /// The broker's link dropped market data the loop did not read in time.
    pub fn market_data_lost(&mut self, dropped: u64) {
        if let Feed::Ctrader(l) = self {
            l.market_data_lost(dropped);
        }
    }

    /// Bars a lost link kept from the feed, fetched from history.
    pub async fn fill_gaps(&mut self) -> Vec<BarLine> {
        match self {
            Feed::Ctrader(l) => l.fill_gaps().await,
            Feed::Replay(_) => Vec::new(),
        }
    }

    /// Where a WARMUP's bars come from (`digits`: the symbol's, `now` Unix seconds).
    pub fn history(&self, w: &Warmup, digits: usize, now: i64) -> Fetch {
        match self {
            Feed::Replay(r) => Fetch::Ready(r.history(&w.symbol, w.timeframe, w.count as usize)),
            Feed::Ctrader(l) => {
                match l.history_request(&w.symbol, w.timeframe, w.count as usize, now) {
                    Ok(request) => Fetch::Broker { request, digits },
                    Err(e) => {
                        tracing::warn!(symbol = %w.symbol, error = %e, "history request failed");
                        Fetch::Ready(None)
                    }
                }
            }
        }
    }

    /// A WARMUP served `symbol`'s closed bars up to the one opened at `last_open`.
    pub fn delivered(&mut self, symbol: &Symbol, timeframe: Timeframe, last_open: i64) {
        if let Feed::Ctrader(l) = self {
            l.delivered(symbol, timeframe, last_open);
        }
    }

    /// Each symbol's last history bar, to price the paper books before the first new bar.
    pub fn last_bars(&self, timeframe_of: impl Fn(&Symbol) -> Option<Timeframe>) -> Vec<BarLine> {
        match self {
            Feed::Replay(r) => r.last_bars(timeframe_of),
            Feed::Ctrader(_) => Vec::new(),
        }
    }

    /// The cTrader link, when this feed has one (its probe).
    /// Whether the broker's link is up; `None` without a broker (the paper replay).
    pub fn link_up(&self) -> Option<bool> {
        match self {
            Feed::Ctrader(l) => Some(l.link_up()),
            Feed::Replay(_) => None,
        }
    }

    pub fn link(&mut self) -> Option<&mut LiveFeed> {
        match self {
            Feed::Ctrader(l) => Some(l),
            Feed::Replay(_) => None,
        }
    }
}
