//! The replay clock: which bars are closed, which bar is forming, and when the next step is due.
//!
//! Each step closes the forming bar of every symbol and opens the next, all at once: subscribers
//! get the closing spot of bar p-1 (its final trendbar) immediately followed by the opening spot of
//! bar p, whose new trendbar timestamp tells them p-1 closed. History requests only ever see bars
//! before the forming one — never the future.

use std::time::Duration;

use super::SimError;
use super::bars::{Bar, BarSeries, Timeline, open_ms};

/// What one step did for one symbol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolStep {
    /// Index of the symbol in the replay's series.
    pub symbol: usize,
    /// The bar that just closed, if the symbol had one at the previous point.
    pub closed: Option<Bar>,
    /// The bar that just opened, if the symbol trades at the new point.
    pub opened: Option<Bar>,
}

#[derive(Debug, Clone)]
pub struct Replay {
    series: Vec<BarSeries>,
    timeline: Timeline,
    /// Timeline points strictly before this are closed (visible to history requests).
    closed_before: usize,
    /// The point currently forming, if any.
    forming: Option<usize>,
    finished: bool,
    /// Inside a gap of the timeline (a weekend): steps left before the bars after it open.
    gap_left: u64,
    /// A gap lasts one step per missing bar, at most this many (None: no cap).
    max_gap_steps: Option<u64>,
}

impl Replay {
    /// `start_bar`: how many timeline points are history before the first step (at least 1).
    pub fn new(series: Vec<BarSeries>, start_bar: usize) -> Result<Self, SimError> {
        let timeline = Timeline::new(&series)?;
        if start_bar == 0 || start_bar >= timeline.len() {
            return Err(SimError::BadStartBar {
                start_bar,
                bars: timeline.len(),
            });
        }
        Ok(Self {
            series,
            timeline,
            closed_before: start_bar,
            forming: None,
            finished: false,
            gap_left: 0,
            max_gap_steps: None,
        })
    }

    /// Caps how many steps a gap in the data lasts (at least 1).
    pub fn with_max_gap_steps(mut self, steps: Option<u64>) -> Self {
        self.set_max_gap_steps(steps);
        self
    }

    pub fn set_max_gap_steps(&mut self, steps: Option<u64>) {
        self.max_gap_steps = steps.map(|s| s.max(1));
    }

    /// True between the close of the bars before a gap in the data and the open of those after.
    pub fn in_gap(&self) -> bool {
        self.gap_left > 0
    }

    pub fn series(&self) -> &[BarSeries] {
        &self.series
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The timeline point currently forming.
    pub fn forming_point(&self) -> Option<usize> {
        self.forming
    }

    /// Number of closed timeline points.
    pub fn closed_points(&self) -> usize {
        self.closed_before
    }

    /// The bar `symbol` is forming now (None: its market is closed at this point).
    pub fn forming_bar(&self, symbol: usize) -> Option<Bar> {
        let point = self.forming?;
        let idx = self.timeline.bar_index(symbol, point)?;
        self.series.get(symbol)?.bars.get(idx).copied()
    }

    /// Advances one step. Returns None once the data is exhausted.
    ///
    /// A gap in the timeline (no symbol has a bar for a while: a weekend, a holiday) is replayed as
    /// time, like a real market's: the step that reaches it closes the bars before it, then one
    /// empty step passes per missing bar (at most `max_gap_steps`), then the next step opens the
    /// bars after it. So the close of Friday's last bar is not published together with Sunday's
    /// first bar, and a client's clock can see that bar close before the next one begins.
    pub fn step(&mut self) -> Option<Vec<SymbolStep>> {
        if self.finished {
            return None;
        }
        if self.gap_left > 1 {
            self.gap_left -= 1;
            return Some(Vec::new());
        }
        let reopening = self.gap_left == 1;
        self.gap_left = 0;
        let point = match self.forming {
            None => self.closed_before,
            Some(p) => p + 1,
        };
        let closing = point - 1;
        let bar_at = |symbol: usize, p: usize| {
            self.timeline
                .bar_index(symbol, p)
                .and_then(|i| self.series[symbol].bars.get(i).copied())
        };
        let period = self.timeline.period_ms();
        let missing = match (self.forming, self.timeline.time_at(point)) {
            (Some(p), Some(next)) => {
                let last = self.timeline.time_at(p).unwrap_or(next);
                u64::try_from((next - last) / period.max(1) - 1).unwrap_or(0)
            }
            _ => 0,
        };
        let gap = missing.min(self.max_gap_steps.unwrap_or(u64::MAX));
        let steps = (0..self.series.len())
            .map(|symbol| SymbolStep {
                symbol,
                // After a gap the bars before it were closed when it began.
                closed: if reopening {
                    None
                } else {
                    bar_at(symbol, closing)
                },
                opened: if point < self.timeline.len() && gap == 0 {
                    bar_at(symbol, point)
                } else {
                    None
                },
            })
            .collect();
        if gap > 0 {
            self.forming = None;
            self.closed_before = point;
            self.gap_left = gap;
        } else if point < self.timeline.len() {
            self.forming = Some(point);
            self.closed_before = point;
        } else {
            self.forming = None;
            self.closed_before = self.timeline.len();
            self.finished = true;
        }
        Some(steps)
    }

    /// Closed bars of `symbol` opening in `[from_ms, to_ms)`, oldest first, at most the newest `count`.
    pub fn closed_bars(
        &self,
        symbol: usize,
        from_ms: i64,
        to_ms: i64,
        count: Option<usize>,
    ) -> Vec<Bar> {
        let Some(series) = self.series.get(symbol) else {
            return Vec::new();
        };
        let horizon = self
            .timeline
            .time_at(self.closed_before)
            .unwrap_or(i64::MAX);
        let upper = to_ms.min(horizon);
        let mut bars: Vec<Bar> = series
            .bars
            .iter()
            .filter(|b| open_ms(b) >= from_ms && open_ms(b) < upper)
            .copied()
            .collect();
        if let Some(n) = count
            && bars.len() > n
        {
            bars.drain(..bars.len() - n);
        }
        bars
    }
}

/// When replay step `k` (0-based) is due, measured from the replay's start.
pub fn step_due(k: u64, bars_per_second: f64) -> Duration {
    Duration::from_secs_f64(k as f64 / bars_per_second)
}

/// The forming bar seen at fraction `f` (0..1) of its life, for intermediate ticks: the price walks
/// open → first extreme → second extreme → close (an up bar visits its low first, a down bar its
/// high first), and high/low are the extremes visited so far. Never outside the final bar.
pub fn intrabar(bar: &Bar, f: f64) -> Bar {
    if f >= 1.0 {
        return *bar;
    }
    let (first, second) = if bar.close >= bar.open {
        (bar.low, bar.high)
    } else {
        (bar.high, bar.low)
    };
    let path = [bar.open, first, second, bar.close];
    let legs: Vec<f64> = path.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let total: f64 = legs.iter().sum();
    let mut high = bar.open;
    let mut low = bar.open;
    let mut price = bar.open;
    if total > 0.0 {
        let mut left = f.clamp(0.0, 1.0) * total;
        for (i, leg) in legs.iter().enumerate() {
            let (from, to) = (path[i], path[i + 1]);
            if left >= *leg {
                price = to;
                left -= leg;
            } else {
                price = from + (to - from) * (left / leg);
                left = 0.0;
            }
            high = high.max(price);
            low = low.min(price);
            if left <= 0.0 {
                break;
            }
        }
    }
    Bar {
        high,
        low,
        close: price,
        volume: (bar.volume as f64 * f.clamp(0.0, 1.0)).floor() as u64,
        ..*bar
    }
}

/// Market time inside the forming bar: its open time plus the elapsed fraction of a step, scaled
/// to the bar period and kept inside the bar.
pub fn market_time_ms(
    bar_open_ms: i64,
    period_ms: i64,
    since_step: Duration,
    bars_per_second: f64,
) -> i64 {
    let fraction = (since_step.as_secs_f64() * bars_per_second).clamp(0.0, 1.0);
    let offset = ((period_ms as f64) * fraction) as i64;
    bar_open_ms + offset.min(period_ms - 1).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::parse_bars;
    use std::path::Path;

    fn series(name: &str, times: &[i64]) -> BarSeries {
        let mut text = String::from("time,open,high,low,close,volume\n");
        for (i, t) in times.iter().enumerate() {
            let p = 1.0 + i as f64 / 100.0;
            text.push_str(&format!("{t},{p},{},{},{p},10\n", p + 0.005, p - 0.005));
        }
        parse_bars(name, Path::new("x.csv"), &text).unwrap()
    }

    #[test]
    fn steps_close_and_open_all_symbols_together() {
        let a = series("A", &[0, 3600, 7200, 10800]);
        let b = series("B", &[0, 3600, 10800]);
        let mut r = Replay::new(vec![a, b], 2).unwrap();
        assert_eq!(r.closed_bars(0, 0, i64::MAX, None).len(), 2);
        let s = r.step().unwrap();
        assert_eq!(s[0].closed.unwrap().time * 1000, 3_600_000);
        assert_eq!(s[0].opened.unwrap().time * 1000, 7_200_000);
        assert_eq!(s[1].closed.unwrap().time * 1000, 3_600_000);
        assert_eq!(s[1].opened, None, "B has no bar at 02:00: market closed");
        assert_eq!(r.forming_bar(1), None);
        assert_eq!(r.forming_bar(0).unwrap().time * 1000, 7_200_000);
        // The forming bar is never history.
        assert_eq!(r.closed_bars(0, 0, i64::MAX, None).len(), 2);
        let s = r.step().unwrap();
        assert_eq!(s[1].closed, None);
        assert_eq!(s[1].opened.unwrap().time * 1000, 10_800_000);
        assert_eq!(r.closed_bars(0, 0, i64::MAX, None).len(), 3);
        let s = r.step().unwrap();
        assert!(s.iter().all(|x| x.opened.is_none() && x.closed.is_some()));
        assert!(r.is_finished());
        assert_eq!(r.closed_bars(0, 0, i64::MAX, None).len(), 4);
        assert!(r.step().is_none());
    }

    #[test]
    fn a_gap_in_the_data_passes_as_time_between_the_close_and_the_next_open() {
        // 03:00 then 07:00: three hours without a bar (a "weekend").
        let a = series("A", &[0, 3600, 7200, 10800, 25200, 28800]);
        let mut r = Replay::new(vec![a.clone()], 3).unwrap();
        r.step(); // opens 03:00
        let close = r.step().unwrap();
        assert_eq!(close[0].closed.unwrap().time * 1000, 10_800_000);
        assert_eq!(
            close[0].opened, None,
            "the bar after the gap is not opened with the close"
        );
        assert!(r.in_gap());
        assert_eq!(r.closed_bars(0, 0, i64::MAX, None).len(), 4);
        assert!(r.step().unwrap().is_empty());
        assert!(r.step().unwrap().is_empty());
        let open = r.step().unwrap();
        assert_eq!(open[0].closed, None, "closed once, when the gap began");
        assert_eq!(open[0].opened.unwrap().time * 1000, 25_200_000);
        assert!(!r.in_gap());
        assert_eq!(r.step().unwrap()[0].closed.unwrap().time * 1000, 25_200_000);
        // Capped at one step: the close, then the open right at the next step.
        let mut r = Replay::new(vec![a], 3).unwrap().with_max_gap_steps(Some(1));
        r.step();
        assert_eq!(r.step().unwrap()[0].opened, None);
        assert_eq!(r.step().unwrap()[0].opened.unwrap().time * 1000, 25_200_000);
    }

    #[test]
    fn history_honours_range_and_count() {
        let a = series("A", &[0, 3600, 7200, 10800, 14400]);
        let r = Replay::new(vec![a], 4).unwrap();
        let bars = r.closed_bars(0, 3_600_000, i64::MAX, Some(2));
        assert_eq!(
            bars.iter().map(|b| b.time).collect::<Vec<_>>(),
            vec![7200, 10800]
        );
        assert_eq!(r.closed_bars(0, 0, 7_200_000, None).len(), 2);
        assert!(Replay::new(vec![series("A", &[0, 3600])], 2).is_err());
        assert!(Replay::new(vec![series("A", &[0, 3600])], 0).is_err());
    }

    #[test]
    fn intrabar_walks_inside_the_bar_and_ends_at_it() {
        let up = Bar {
            time: 0,
            open: 1.0,
            high: 1.5,
            low: 0.8,
            close: 1.4,
            volume: 100,
        };
        let start = intrabar(&up, 0.0);
        assert_eq!((start.close, start.high, start.low), (1.0, 1.0, 1.0));
        // Path length 0.2 + 0.7 + 0.1 = 1.0: at 0.2 the low is reached, at 0.9 the high.
        let at_low = intrabar(&up, 0.2);
        assert!(
            (at_low.close - 0.8).abs() < 1e-12
                && (at_low.low - 0.8).abs() < 1e-12
                && at_low.high == 1.0
        );
        let later = intrabar(&up, 0.5);
        assert!((later.close - 1.1).abs() < 1e-12 && (later.low - 0.8).abs() < 1e-12);
        assert_eq!(intrabar(&up, 1.0), up);
        let down = Bar { close: 0.9, ..up };
        assert!(
            intrabar(&down, 0.1).close > 1.0,
            "a down bar visits its high first"
        );
        for i in 0..=20 {
            let b = intrabar(&down, f64::from(i) / 20.0);
            assert!(b.low >= down.low - 1e-12 && b.high <= down.high + 1e-12);
            assert!(b.low <= b.close && b.close <= b.high);
        }
    }

    #[test]
    fn schedule_and_market_time() {
        assert_eq!(step_due(3, 2.0), Duration::from_millis(1500));
        assert_eq!(
            market_time_ms(1_000, 3_600_000, Duration::from_millis(250), 2.0),
            1_000 + 1_800_000
        );
        assert_eq!(
            market_time_ms(1_000, 3_600_000, Duration::from_secs(9), 2.0),
            1_000 + 3_599_999
        );
    }
}
