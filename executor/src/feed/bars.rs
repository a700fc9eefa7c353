//! Closed bars for the preditor.
//!
//! [`BarBuilder`] (pure, injected time) turns a broker's live trendbar updates and spot ticks into
//! closed bars: a bar is closed at its period boundary plus one second, or at the first tick or
//! trendbar of the next bar, whichever comes first, and is emitted exactly once.
//!
//! A live trendbar carries the forming bar's open, high, low and tick volume as the server
//! aggregated them, but no close: the server leaves `deltaClose` out of the trendbar of a spot
//! event, and the bar's last price is the bid (see `ctrader::domain::LiveTrendbar`). The builder
//! closes each bar at the last bid it saw inside it.
//!
//! A bar the live feed saw only in part is never emitted from it. That is the bar forming when the
//! feed starts (at start-up the executor subscribes in the middle of a bar; the first spot is the
//! current quote, not the bar's first tick) and the bar forming when the link to the broker was
//! lost ([`BarBuilder::on_link_lost`], also used when market data was dropped), plus any bar that
//! closed meanwhile. A live trendbar makes a bar whole again (the server's aggregate covers what
//! the feed missed); spot ticks alone cannot. When the feed moves past such bars, the builder
//! reports them ([`BarBuilder::take_gap`]); the caller fetches them from the broker's history and
//! hands them to [`BarBuilder::accept_backfill`], so the preditor sees the same bars as a backtest
//! would. [`CsvBarSource`] (in [`crate::feed::csv_replay`]) replays `<SYMBOL>.csv` files so paper
//! mode runs without cTrader; they are read by the workspace's one bars reader
//! (`protocol::bars_file`), so a file `preditor backtest` takes is one paper mode takes too.

use std::path::{Path, PathBuf};

use ctrader::domain::LiveTrendbar;
use protocol::bars_file::{BarsFileError, read_bars_csv};
use protocol::{Bar, BarLine, Symbol, Timeframe};

pub use crate::feed::csv_replay::CsvBarSource;

/// Seconds after the period boundary at which a bar with no newer tick is declared closed: the
/// seed's "second 01", so the broker has finished the bar before we read it.
pub const CLOSE_GRACE_SECS: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Forming {
    open_time: i64,
    open: f64,
    high: f64,
    low: f64,
    /// The last bid inside the bar; `None` while no bid is known for it.
    close: Option<f64>,
    volume: u64,
    /// The feed covers the whole bar: it was live when the bar opened, or a live trendbar (the
    /// server's aggregate) describes it and the feed has been live since.
    whole: bool,
}

/// Detects closed bars for one symbol and timeframe.
#[derive(Debug, Clone)]
pub struct BarBuilder {
    symbol: Symbol,
    timeframe: Timeframe,
    period: i64,
    digits: usize,
    current: Option<Forming>,
    last_emitted: Option<i64>,
    /// The latest bid seen while the feed has been live (forgotten when the link is lost, so no
    /// bar closes at a price from before an outage).
    last_bid: Option<f64>,
    /// No live data since start-up or since the link was lost: whatever is forming may miss ticks.
    stalled: bool,
    /// Since start-up or a lost link, no bar has been finished yet: the first one must check that
    /// nothing is missing between the last emitted bar and itself.
    resyncing: bool,
    /// Open times `[from, to)` of bars to fetch from history before anything newer is emitted.
    gap: Option<(i64, i64)>,
}

impl BarBuilder {
    /// `None` for a timeframe without a fixed length (MN1). The builder starts as after a lost
    /// link: the bar forming when the feed starts is not whole.
    pub fn new(symbol: Symbol, timeframe: Timeframe, digits: usize) -> Option<Self> {
        let period = timeframe.duration_secs()? as i64;
        Some(BarBuilder {
            symbol,
            timeframe,
            period,
            digits,
            current: None,
            last_emitted: None,
            last_bid: None,
            stalled: true,
            resyncing: true,
            gap: None,
        })
    }

    /// The timeframe whose bars it builds.
    pub fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// The link to the broker was lost (or market data was dropped): the forming bar misses
    /// ticks, and bars may close before the feed resumes. Nothing is emitted from live data until
    /// it does.
    pub fn on_link_lost(&mut self) {
        self.stalled = true;
        self.resyncing = true;
        self.last_bid = None;
        if let Some(cur) = &mut self.current {
            cur.whole = false;
        }
    }

    /// The preditor was served the closed bars up to the one opened at `open_time` (a WARMUP from
    /// history): they are never emitted again.
    pub fn mark_delivered(&mut self, open_time: i64) {
        if self.last_emitted.is_none_or(|t| t < open_time) {
            self.last_emitted = Some(open_time);
        }
    }

    /// Live data arrived; returns whether the feed was live before it (so a bar this data opens
    /// was seen from its first tick).
    fn resume(&mut self) -> bool {
        !std::mem::replace(&mut self.stalled, false)
    }

    fn is_done(&self, open_time: i64) -> bool {
        self.last_emitted.is_some_and(|t| open_time <= t)
    }

    fn emit(&mut self, f: Forming) -> Option<BarLine> {
        let close = f.close?;
        if self.is_done(f.open_time) {
            return None;
        }
        self.last_emitted = Some(f.open_time);
        bar_line(
            &self.symbol,
            self.timeframe,
            self.digits,
            f.open_time,
            [f.open, f.high, f.low, close],
            f.volume,
        )
    }

    /// Bars the live feed could not give whole, as open times `[from, to)`, once per gap.
    pub fn take_gap(&mut self) -> Option<(i64, i64)> {
        self.gap.take()
    }

    fn add_gap(&mut self, from: i64, to: i64) {
        if from < to {
            let (f, t) = self
                .gap
                .map_or((from, to), |(f, t)| (f.min(from), t.max(to)));
            self.gap = Some((f, t));
        }
    }

    /// Bars fetched from the broker for a gap: the ones after the last emitted bar, in order, are
    /// returned for publishing and count as emitted.
    pub fn accept_backfill(&mut self, mut bars: Vec<BarLine>) -> Vec<BarLine> {
        bars.sort_by_key(|b| b.time.unix_seconds());
        bars.dedup_by_key(|b| b.time.unix_seconds());
        bars.retain(|b| !self.is_done(b.time.unix_seconds()));
        if let Some(last) = bars.last() {
            self.last_emitted = Some(last.time.unix_seconds());
        }
        bars
    }

    /// The feed moved on to the bar opened at `next_open`: the forming bar is over. Emitted when it
    /// is whole (and, right after a start or a lost link, nothing is missing before it); otherwise
    /// it is dropped and the bars up to `next_open` become a gap to fetch, so bars still reach the
    /// preditor whole and in order.
    fn finish(&mut self, next_open: i64) -> Option<BarLine> {
        let cur = self.current.take();
        let cur_open = cur.map(|c| c.open_time);
        let whole = cur.is_some_and(|c| c.whole && c.close.is_some());
        let first_missing = if std::mem::take(&mut self.resyncing) {
            self.last_emitted.map(|t| t + self.period).or(cur_open)
        } else {
            None
        };
        let behind = first_missing.is_some_and(|f| f < cur_open.unwrap_or(next_open));
        if let Some(c) = cur
            && whole
            && !behind
        {
            return self.emit(c);
        }
        let from = first_missing.into_iter().chain(cur_open).min();
        if let Some(from) = from {
            let from = self
                .last_emitted
                .map_or(from, |t| from.max(t + self.period));
            self.add_gap(from, next_open);
        }
        None
    }

    /// A live trendbar: the broker's view of the forming bar, without a close. `bid` is the bid of
    /// the spot event that carried it, if it changed (the latest bid seen is used otherwise).
    pub fn on_trendbar(&mut self, bar: &LiveTrendbar, bid: Option<f64>) -> Option<BarLine> {
        self.resume();
        if let Some(b) = bid {
            self.last_bid = Some(b);
        }
        let mut out = None;
        match self.current {
            Some(cur) if cur.open_time > bar.open_time => return None, // late: a newer bar is forming
            Some(cur) if cur.open_time == bar.open_time => {}
            _ => out = self.finish(bar.open_time),
        }
        if self.is_done(bar.open_time) {
            return out; // a late update of a bar already sent: the preditor has it, ignore
        }
        let close = bid.or(self.current.and_then(|c| c.close)).or(self.last_bid);
        // The server's aggregate covers the whole bar, whatever the feed missed of it.
        self.current = Some(Forming {
            open_time: bar.open_time,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close,
            volume: bar.volume,
            whole: true,
        });
        out
    }

    /// A spot tick (bid) at unix second `time`.
    pub fn on_spot(&mut self, time: i64, bid: f64) -> Option<BarLine> {
        let open_time = time - time.rem_euclid(self.period);
        let was_live = self.resume();
        self.last_bid = Some(bid);
        let mut out = None;
        if self
            .current
            .is_none_or(|cur| time >= cur.open_time + self.period)
        {
            out = self.finish(open_time);
        }
        if self.is_done(open_time) {
            return out;
        }
        match &mut self.current {
            Some(cur) if cur.open_time == open_time => {
                cur.high = cur.high.max(bid);
                cur.low = cur.low.min(bid);
                cur.close = Some(bid);
                cur.volume += 1;
            }
            Some(cur) if cur.open_time > open_time => {} // a late tick of an older bar
            _ => {
                // Seen from its first tick only if the feed was already live before it.
                self.current = Some(Forming {
                    open_time,
                    open: bid,
                    high: bid,
                    low: bid,
                    close: Some(bid),
                    volume: 1,
                    whole: was_live,
                });
            }
        }
        out
    }

    /// The clock ticked: close the forming bar once its period plus the grace second has passed.
    pub fn on_clock(&mut self, now: i64) -> Option<BarLine> {
        let cur = self.current?;
        if self.stalled {
            return None; // the bar may be missing ticks: wait for the feed (see `finish`)
        }
        if now >= cur.open_time + self.period + CLOSE_GRACE_SECS {
            return self.finish(cur.open_time + self.period);
        }
        None
    }
}

/// The BAR line of a bar the builder finished; high and low widen to the open and the close (a
/// trendbar's range can lag the bid that closes it).
fn bar_line(
    symbol: &Symbol,
    timeframe: Timeframe,
    digits: usize,
    open_time: i64,
    ohlc: [f64; 4],
    volume: u64,
) -> Option<BarLine> {
    let [open, high, low, close] = ohlc;
    let bar = Bar {
        time: open_time,
        open,
        high: high.max(open).max(close),
        low: low.min(open).min(close),
        close,
        volume,
    };
    bar.to_line(symbol, timeframe, digits).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    #[error(transparent)]
    File(#[from] BarsFileError),
    #[error(
        "{path}: the bar opened at {time}: {why} (fix: the symbol's `digits` in the config, or the file's prices)"
    )]
    Digits {
        path: PathBuf,
        time: String,
        why: String,
    },
}

/// Loads one `<SYMBOL>.csv` as BAR lines of `symbol`, prices written with `digits` decimals.
pub fn load_csv(
    path: &Path,
    symbol: &Symbol,
    timeframe: Timeframe,
    digits: usize,
) -> Result<Vec<BarLine>, BarsError> {
    read_bars_csv(path)?
        .iter()
        .map(|bar| {
            bar.to_line(symbol, timeframe, digits)
                .map_err(|e| BarsError::Digits {
                    path: path.to_path_buf(),
                    time: protocol::bar::format_time(bar.time),
                    why: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> BarBuilder {
        BarBuilder::new("EURUSD".parse().unwrap(), Timeframe::M15, 5).unwrap()
    }

    const T0: i64 = 1_770_113_700; // 2026-02-03T10:15:00Z, a 15-minute boundary

    fn live(open_time: i64, open: f64, high: f64, low: f64, volume: u64) -> LiveTrendbar {
        LiveTrendbar {
            timeframe: Timeframe::M15,
            open_time,
            open,
            high,
            low,
            volume,
        }
    }

    fn ohlc(bar: &BarLine) -> (&str, &str, &str, &str) {
        (
            bar.open.as_str(),
            bar.high.as_str(),
            bar.low.as_str(),
            bar.close.as_str(),
        )
    }

    #[test]
    fn clock_closes_bar_one_second_after_the_boundary() {
        let mut b = builder();
        assert_eq!(
            b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 10), Some(1.15)),
            None
        );
        assert_eq!(b.on_clock(T0 + 900), None, "not before boundary + 1 s");
        let bar = b.on_clock(T0 + 901).unwrap();
        assert_eq!(bar.time.unix_seconds(), T0);
        assert_eq!(bar.close.as_str(), "1.15000");
        assert_eq!(b.on_clock(T0 + 902), None, "emitted once");
    }

    #[test]
    fn a_live_trendbar_closes_at_the_last_bid_not_at_its_low() {
        let mut b = builder();
        // The trendbar of a spot event: open, high, low, volume and no close; the bid moves on.
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 10), Some(1.17));
        b.on_spot(T0 + 300, 1.16);
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 11), None);
        b.on_spot(T0 + 600, 1.18);
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 12), Some(1.18));
        let bar = b
            .on_trendbar(&live(T0 + 900, 1.19, 1.19, 1.19, 1), Some(1.19))
            .unwrap();
        assert_eq!(ohlc(&bar), ("1.10000", "1.20000", "1.00000", "1.18000"));
        assert_eq!(bar.volume, 12, "the server's tick volume");
    }

    #[test]
    fn a_trendbar_without_a_bid_takes_the_last_one_and_none_known_is_no_bar() {
        let mut b = builder();
        b.on_spot(T0 - 1, 1.13); // the feed is live before T0
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 5), None);
        let bar = b.on_clock(T0 + 901).unwrap();
        assert_eq!(bar.close.as_str(), "1.13000", "the latest bid");
        assert_eq!(
            b.take_gap(),
            Some((T0 - 900, T0)),
            "the bar forming at start"
        );
        // After a lost link the old bid is forgotten: a trendbar alone cannot close the bar.
        b.on_link_lost();
        b.on_trendbar(&live(T0 + 900, 1.2, 1.3, 1.1, 5), None);
        assert_eq!(b.on_clock(T0 + 1801), None);
        assert_eq!(b.take_gap(), Some((T0 + 900, T0 + 1800)));
    }

    #[test]
    fn the_bar_forming_at_start_is_never_emitted_from_the_first_spots() {
        let mut b = builder();
        // Subscribing mid-bar: the first spot is the current quote, then one more tick.
        assert_eq!(b.on_spot(T0 + 500, 1.1), None);
        assert_eq!(b.on_spot(T0 + 600, 1.12), None);
        assert_eq!(b.on_clock(T0 + 901), None, "not from two ticks of a bar");
        assert_eq!(
            b.take_gap(),
            Some((T0, T0 + 900)),
            "from history once closed"
        );
        let out = b.accept_backfill(fetched(&b, &[T0]));
        assert_eq!(times(&out), vec![T0]);
        // The next bar was seen from its first tick: live again.
        b.on_spot(T0 + 905, 1.2);
        let bar = b.on_spot(T0 + 1800, 1.3).unwrap();
        assert_eq!((bar.time.unix_seconds(), bar.volume), (T0 + 900, 1));
        assert_eq!(b.take_gap(), None);
    }

    #[test]
    fn bars_the_preditor_got_in_a_warmup_are_not_sent_again() {
        let mut b = builder();
        b.mark_delivered(T0);
        // A quote from before the warmup's last bar (a closed market) changes nothing.
        assert_eq!(b.on_spot(T0 + 899, 1.1), None);
        assert_eq!(b.on_clock(T0 + 5000), None);
        assert_eq!(b.take_gap(), None);
        // The first trendbar after it is whole and nothing is missing in between.
        b.on_trendbar(&live(T0 + 900, 1.1, 1.2, 1.0, 3), Some(1.15));
        assert_eq!(b.on_clock(T0 + 1801).unwrap().time.unix_seconds(), T0 + 900);
    }

    #[test]
    fn a_late_trendbar_of_an_older_bar_does_not_replace_the_forming_one() {
        let mut b = builder();
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 10), Some(1.15));
        let first = b
            .on_trendbar(&live(T0 + 900, 1.15, 1.16, 1.14, 2), Some(1.155))
            .unwrap();
        assert_eq!(first.time.unix_seconds(), T0);
        assert_eq!(b.on_trendbar(&live(T0, 1.1, 1.9, 1.0, 11), Some(1.5)), None);
        let bar = b.on_clock(T0 + 1801).unwrap();
        assert_eq!(ohlc(&bar), ("1.15000", "1.16000", "1.14000", "1.15500"));
    }

    #[test]
    fn first_tick_of_next_bar_closes_it_before_the_timer() {
        let mut b = builder();
        b.on_spot(T0 - 1, 1.1); // the feed is live before T0 opens
        b.on_spot(T0 + 5, 1.1);
        b.on_spot(T0 + 100, 1.3);
        b.on_spot(T0 + 800, 1.05);
        let bar = b.on_spot(T0 + 900, 1.2).unwrap();
        assert_eq!(ohlc(&bar), ("1.10000", "1.30000", "1.05000", "1.05000"));
        assert_eq!(bar.volume, 3);
        // the timer must not re-send it; the new bar closes later
        assert_eq!(b.on_clock(T0 + 901), None);
        assert_eq!(b.on_clock(T0 + 1801).unwrap().time.unix_seconds(), T0 + 900);
    }

    #[test]
    fn late_trendbar_update_of_an_emitted_bar_is_ignored() {
        let mut b = builder();
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 10), Some(1.15));
        assert!(b.on_clock(T0 + 901).is_some());
        assert_eq!(
            b.on_trendbar(&live(T0, 1.1, 1.25, 1.0, 11), Some(1.16)),
            None
        );
        assert_eq!(b.on_clock(T0 + 2000), None);
        // next bar via trendbar roll-over
        b.on_trendbar(&live(T0 + 900, 1.16, 1.17, 1.15, 2), Some(1.16));
        let bar = b
            .on_trendbar(&live(T0 + 1800, 1.16, 1.16, 1.16, 1), Some(1.16))
            .unwrap();
        assert_eq!(bar.time.unix_seconds(), T0 + 900);
    }

    fn fetched(b: &BarBuilder, opens: &[i64]) -> Vec<BarLine> {
        opens
            .iter()
            .map(|&t| bar_line(&b.symbol, b.timeframe, b.digits, t, [1.2; 4], 7).unwrap())
            .collect()
    }

    fn times(bars: &[BarLine]) -> Vec<i64> {
        bars.iter().map(|b| b.time.unix_seconds()).collect()
    }

    #[test]
    fn bars_an_outage_cut_short_come_from_history_in_order() {
        let mut b = builder();
        b.on_spot(T0 - 1, 1.1); // the feed is live before T0 opens
        b.on_spot(T0 + 5, 1.1);
        assert_eq!(
            b.take_gap(),
            Some((T0 - 900, T0)),
            "the bar forming at start"
        );
        assert!(b.on_spot(T0 + 900, 1.1).is_some()); // T0 closed normally
        b.on_spot(T0 + 905, 1.1); // T0+900 forming, then the link drops
        b.on_link_lost();
        assert_eq!(
            b.on_clock(T0 + 1801),
            None,
            "no bar from partial data during the outage"
        );
        // The feed resumes inside T0+2700: T0+900 was partial, T0+1800 closed unseen.
        assert_eq!(b.on_spot(T0 + 2750, 1.3), None);
        assert_eq!(b.take_gap(), Some((T0 + 900, T0 + 2700)));
        assert_eq!(b.take_gap(), None, "reported once");
        let out = b.accept_backfill(fetched(&b, &[T0 + 1800, T0 + 900, T0 + 900]));
        assert_eq!(times(&out), vec![T0 + 900, T0 + 1800], "sorted, once each");
        // T0+2700 began before the feed resumed: it is fetched too, then live bars are whole again.
        assert_eq!(b.on_spot(T0 + 3600, 1.3), None);
        assert_eq!(b.take_gap(), Some((T0 + 2700, T0 + 3600)));
        assert_eq!(
            times(&b.accept_backfill(fetched(&b, &[T0 + 2700]))),
            vec![T0 + 2700]
        );
        let live = b.on_spot(T0 + 4500, 1.4).unwrap();
        assert_eq!(live.time.unix_seconds(), T0 + 3600);
        assert_eq!(b.take_gap(), None);
    }

    #[test]
    fn a_trendbar_after_an_outage_is_whole_and_no_history_is_needed() {
        let mut b = builder();
        b.on_trendbar(&live(T0, 1.1, 1.2, 1.0, 10), Some(1.15));
        b.on_link_lost();
        // Back within the same bar: the broker's trendbar carries all of it.
        b.on_trendbar(&live(T0, 1.1, 1.3, 1.0, 25), Some(1.2));
        let bar = b
            .on_trendbar(&live(T0 + 900, 1.2, 1.2, 1.2, 1), Some(1.2))
            .unwrap();
        assert_eq!((bar.high.as_str(), bar.volume), ("1.30000", 25));
        assert_eq!(b.take_gap(), None);
    }

    #[test]
    fn csv_loader_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("EURUSD.csv");
        std::fs::write(&p, "time,open,high,low,close,volume\n2026-02-03T10:00:00Z,1.1,1.2,1.0,1.15,5\n2026-02-03T11:00:00Z,1.1,x,1.0,1.15,5\n").unwrap();
        let e = load_csv(&p, &"EURUSD".parse().unwrap(), Timeframe::H1, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EURUSD.csv:3: high:"), "{e}");
    }
}
