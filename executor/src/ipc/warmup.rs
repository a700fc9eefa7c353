//! WARMUPs answered outside the core loop (issue 12 item 10): fetching the bars (a broker round trip
//! per page, rate-limited: seconds for 40 WARMUPs), formatting and logging the HISTORY block run in
//! a task of their own, so the core loop keeps answering SIGNALs meanwhile. The core only records
//! the block's bars as published and forwards the text, in one short step, and holds back the live
//! BARs of a pair being warmed up until its HISTORY_END (PROTOCOL.md §7, Warmup).

use std::collections::HashMap;
use std::sync::Arc;

use protocol::{
    BarLine, BarTime, ErrorCode, ErrorLine, History, HistoryEnd, Line, Symbol, Timeframe, Warmup,
};

use crate::desk::bar_memory::PUBLISHED_PER_SYMBOL;
use crate::feed::ctrader::{HistoryRequest, history_bar};
use crate::ipc::signals_log::{Dir, SignalsLog};

/// Where a WARMUP's bars come from.
pub enum Fetch {
    /// Already at hand (the paper replay's CSV); `None`: nothing to serve.
    Ready(Option<Vec<BarLine>>),
    /// A broker request, and how to turn its bars into BAR lines.
    Broker {
        request: HistoryRequest,
        digits: usize,
    },
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetch::Ready(b) => write!(f, "Ready({:?} bars)", b.as_ref().map(Vec::len)),
            Fetch::Broker { digits, .. } => write!(f, "Broker {{ digits: {digits} }}"),
        }
    }
}

/// A HISTORY block (or its refusal) ready to go out, from the task back to the core.
#[derive(Debug)]
pub struct HistoryAnswer {
    pub conn: u64,
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// The block's lines as one message (already in signals.log), or the ERROR line.
    pub text: String,
    /// The newest bars of the block (at most what the engine remembers as published), newest
    /// first.
    pub newest: Vec<BarTime>,
    /// The block's last bar (its close prices a paper book that has none yet).
    pub last: Option<BarLine>,
}

/// Starts answering `w` for connection `conn` in a task of its own: the answer is handed to
/// `deliver` (which sends it back to the core loop).
pub fn serve(
    conn: u64,
    w: Warmup,
    fetch: Fetch,
    log: Arc<SignalsLog>,
    deliver: impl FnOnce(HistoryAnswer) + Send + 'static,
) {
    tokio::spawn(async move {
        let served = match fetch {
            Fetch::Ready(Some(bars)) => Served::Bars(bars),
            Fetch::Ready(None) => Served::NoSuchPair,
            Fetch::Broker { request, digits } => match request.await {
                Ok(bars) => Served::Bars(
                    bars.iter()
                        .filter_map(|x| history_bar(&w.symbol, w.timeframe, digits, x))
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(symbol = %w.symbol, error = %e, "history request failed; answered HISTORY_UNAVAILABLE (the preditor asks again)");
                    Served::Unavailable(e.to_string())
                }
            },
        };
        let answer = block(conn, &w, served);
        log.record_all(conn, Dir::Out, answer.text.split('\n'));
        deliver(answer);
    });
}

/// What a WARMUP gets.
#[derive(Debug)]
enum Served {
    /// The block's bars, oldest first (possibly none: the broker has no history).
    Bars(Vec<BarLine>),
    /// Nothing to serve for this pair, ever: `UNKNOWN_SYMBOL`.
    NoSuchPair,
    /// The broker's history request failed this time (why): `HISTORY_UNAVAILABLE`, which the
    /// preditor answers by asking again. Not `UNKNOWN_SYMBOL`: a timeout or a lost link says
    /// nothing about the symbol, and a preditor told the symbol is unknown would not ask again.
    Unavailable(String),
}

/// The HISTORY block for `served` (or the ERROR line when there is none).
fn block(conn: u64, w: &Warmup, served: Served) -> HistoryAnswer {
    let (symbol, tf) = (&w.symbol, w.timeframe.as_str());
    let refusal = |code, text: String| {
        (
            Line::Error(ErrorLine::new(code, text)).to_string(),
            Vec::new(),
        )
    };
    let last = match &served {
        Served::Bars(b) => b.last().cloned(),
        _ => None,
    };
    let (text, newest) = match served {
        Served::NoSuchPair => refusal(
            ErrorCode::UnknownSymbol,
            format!("no {symbol} {tf} bars to serve"),
        ),
        // The pair first, as PROTOCOL.md §6 says: the preditor reads which WARMUP to repeat.
        Served::Unavailable(why) => refusal(
            ErrorCode::HistoryUnavailable,
            format!(
                "{symbol} {tf}: the broker's history request failed ({why}); send WARMUP again"
            ),
        ),
        Served::Bars(bars) => {
            let mut lines = Vec::with_capacity(bars.len() + 2);
            lines.push(
                Line::History(History {
                    symbol: w.symbol.clone(),
                    timeframe: w.timeframe,
                    count: bars.len() as u32,
                })
                .to_string(),
            );
            let newest = bars
                .iter()
                .rev()
                .take(PUBLISHED_PER_SYMBOL)
                .map(|b| b.time)
                .collect();
            lines.extend(bars.into_iter().map(|b| Line::Bar(b).to_string()));
            lines.push(
                Line::HistoryEnd(HistoryEnd {
                    symbol: w.symbol.clone(),
                    timeframe: w.timeframe,
                })
                .to_string(),
            );
            (lines.join("\n"), newest)
        }
    };
    HistoryAnswer {
        conn,
        symbol: w.symbol.clone(),
        timeframe: w.timeframe,
        text,
        newest,
        last,
    }
}

/// The pairs being warmed up on the active connection, with the live bars held back meanwhile.
/// Bounded: only configured symbols are warmed up (one entry per pair), and live bars of a pair
/// arrive once per its timeframe.
#[derive(Debug, Default)]
pub struct Warming {
    held: HashMap<(Symbol, Timeframe), Vec<BarLine>>,
}

impl Warming {
    /// Starts warming a pair; false if it already is (the answer in flight serves both WARMUPs).
    pub fn start(&mut self, symbol: &Symbol, timeframe: Timeframe) -> bool {
        let key = (symbol.clone(), timeframe);
        if self.held.contains_key(&key) {
            return false;
        }
        self.held.insert(key, Vec::new());
        true
    }

    /// Holds `bar` back if its pair is being warmed up; gives it back otherwise.
    pub fn hold(&mut self, bar: BarLine) -> Option<BarLine> {
        match self.held.get_mut(&(bar.symbol.clone(), bar.timeframe)) {
            Some(held) => {
                held.push(bar);
                None
            }
            None => Some(bar),
        }
    }

    /// The pair's warmup is answered: its held live bars newer than the block's newest bar.
    pub fn finish(
        &mut self,
        symbol: &Symbol,
        timeframe: Timeframe,
        newest: Option<BarTime>,
    ) -> Vec<BarLine> {
        let mut held = self
            .held
            .remove(&(symbol.clone(), timeframe))
            .unwrap_or_default();
        held.retain(|b| newest.is_none_or(|n| b.time > n));
        held
    }

    /// A new (or no) preditor connection: nothing is being warmed up for it. The held bars are
    /// dropped: a new connection starts with WARMUPs, whose blocks hold them.
    pub fn reset(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bar(h: i64) -> BarLine {
        format!(
            "BAR|EURUSD|H1|{}|1.1|1.1|1.1|1.1|1",
            BarTime::from_unix(1_770_112_800 + h * 3600).unwrap()
        )
        .parse::<Line>()
        .map(|l| match l {
            Line::Bar(b) => b,
            _ => unreachable!(),
        })
        .unwrap()
    }

    #[test]
    fn live_bars_wait_for_the_block_and_duplicates_of_it_are_dropped() {
        let mut w = Warming::default();
        let s: Symbol = "EURUSD".parse().unwrap();
        assert!(w.start(&s, Timeframe::H1));
        assert!(!w.start(&s, Timeframe::H1), "one in flight per pair");
        assert!(w.hold(bar(1)).is_none());
        assert!(w.hold(bar(2)).is_none());
        // Another pair is not held.
        let mut other = bar(1);
        other.timeframe = Timeframe::M15;
        assert!(w.hold(other).is_some());
        // The block ended with bar 1: only bar 2 is still news.
        let rest = w.finish(&s, Timeframe::H1, Some(bar(1).time));
        assert_eq!(
            rest.iter().map(|b| b.time).collect::<Vec<_>>(),
            vec![bar(2).time]
        );
        assert!(w.hold(bar(3)).is_some(), "no longer warming");
    }

    #[test]
    fn a_block_lists_its_bars_and_its_newest_times() {
        let w = Warmup {
            symbol: "EURUSD".parse().unwrap(),
            timeframe: Timeframe::H1,
            count: 3,
        };
        let a = block(7, &w, Served::Bars(vec![bar(0), bar(1)]));
        let lines: Vec<&str> = a.text.split('\n').collect();
        assert_eq!(lines[0], "HISTORY|EURUSD|H1|2");
        assert!(lines[1].starts_with("BAR|EURUSD|H1|2026-02-03T10:00:00Z|"));
        assert_eq!(lines[3], "HISTORY_END|EURUSD|H1");
        assert_eq!(a.newest, vec![bar(1).time, bar(0).time]);
        let refused = block(7, &w, Served::NoSuchPair);
        assert_eq!(
            refused.text,
            "ERROR|UNKNOWN_SYMBOL|no EURUSD H1 bars to serve"
        );
        let failed = block(7, &w, Served::Unavailable("timeout".into()));
        assert_eq!(
            failed.text,
            "ERROR|HISTORY_UNAVAILABLE|EURUSD H1: the broker's history request failed (timeout); send WARMUP again"
        );
        assert!(failed.newest.is_empty() && failed.last.is_none());
    }
}
