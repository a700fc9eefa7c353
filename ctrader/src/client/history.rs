//! Paging of historical trendbars. One `ProtoOAGetTrendbarsReq` may span only a limited time range
//! (shorter for short periods), so a long request is cut into windows walked backwards from `to`,
//! each answered with the latest bars of its window. Pure: the client feeds in each answer.

use std::collections::BTreeMap;

use protocol::Bar;

use crate::domain::{
    MAX_TRENDBAR_TIMESTAMP_MS, Timeframe, TrendbarPeriod, max_trendbar_request_ms,
};

/// Bars per window at most; keeps each response far below the frame limit, and each window inside
/// the older, shorter documented M1 limit (302,400,000 ms) as well.
const BARS_PER_WINDOW: i64 = 5_000;
/// Stop walking back after this much time without a single bar: the history has run out. Long
/// enough to cross any market closure, and a simulator replaying last year's data.
const MAX_EMPTY_SPAN_MS: i64 = 400 * 86_400_000;

/// The time range of one request: the server's documented maximum for the period
/// ([`max_trendbar_request_ms`]) or 5,000 bars, whichever is shorter.
pub fn max_window_ms(timeframe: Timeframe) -> i64 {
    let period_ms = timeframe.seconds().unwrap_or(31 * 86_400) * 1000;
    max_trendbar_request_ms(timeframe).min(BARS_PER_WINDOW * period_ms)
}

/// State of one paged trendbar download.
#[derive(Debug, Clone)]
pub struct TrendbarPager {
    timeframe: Timeframe,
    from_ms: i64,
    to_ms: i64,
    count: Option<usize>,
    empty_since_ms: Option<i64>,
    bars: BTreeMap<i64, Bar>,
    done: bool,
}

impl TrendbarPager {
    /// Bars with open time in `[from_ms, to_ms]`, keeping the latest `count` if given. The range
    /// is clipped to what the server accepts (from >= 0, to <= 2147483646000).
    pub fn new(timeframe: Timeframe, from_ms: i64, to_ms: i64, count: Option<usize>) -> Self {
        let (from_ms, to_ms) = (from_ms.max(0), to_ms.min(MAX_TRENDBAR_TIMESTAMP_MS));
        let done = to_ms < from_ms || count == Some(0);
        Self {
            timeframe,
            from_ms,
            to_ms,
            count,
            empty_since_ms: None,
            bars: BTreeMap::new(),
            done,
        }
    }

    /// The next window to request (`from`, `to`, `count` in Unix ms), or `None` when finished.
    pub fn next_window(&self) -> Option<(i64, i64, Option<u32>)> {
        if self.done {
            return None;
        }
        let from = self
            .from_ms
            .max(self.to_ms - max_window_ms(self.timeframe) + 1);
        let remaining = self
            .count
            .map(|c| u32::try_from(c.saturating_sub(self.bars.len())).unwrap_or(u32::MAX));
        Some((from, self.to_ms, remaining))
    }

    /// Records the answer to the window last returned by [`TrendbarPager::next_window`].
    pub fn accept(&mut self, window_from_ms: i64, bars: impl IntoIterator<Item = Bar>) {
        let mut earliest: Option<i64> = None;
        for bar in bars {
            let t = bar.time * 1000;
            if t < self.from_ms || t > self.to_ms {
                continue;
            }
            earliest = Some(earliest.map_or(t, |e: i64| e.min(t)));
            self.bars.insert(t, bar);
        }
        match earliest {
            // The server may return fewer bars than the window holds; continue below the earliest.
            Some(e) => {
                self.to_ms = e.min(window_from_ms) - 1;
                self.empty_since_ms = None;
            }
            None => {
                let since = *self.empty_since_ms.get_or_insert(self.to_ms);
                self.to_ms = window_from_ms - 1;
                if since - self.to_ms > MAX_EMPTY_SPAN_MS {
                    self.done = true;
                }
            }
        }
        if self.to_ms < self.from_ms || self.count.is_some_and(|c| self.bars.len() >= c) {
            self.done = true;
        }
    }

    /// The bars, oldest first, the latest `count` of them.
    pub fn finish(self) -> Vec<Bar> {
        let skip = self.count.map_or(0, |c| self.bars.len().saturating_sub(c));
        self.bars.into_values().skip(skip).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(time: i64) -> Bar {
        Bar {
            time,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1,
        }
    }

    /// A fake history: one M1 bar per minute except a 2-day weekend gap; answers like the server
    /// (latest `count` bars of the window).
    fn serve(window: (i64, i64, Option<u32>), all: &[i64]) -> Vec<Bar> {
        let mut v: Vec<i64> = all
            .iter()
            .copied()
            .filter(|t| t * 1000 >= window.0 && t * 1000 <= window.1)
            .collect();
        if let Some(c) = window.2 {
            let skip = v.len().saturating_sub(c as usize);
            v.drain(..skip);
        }
        v.into_iter().map(bar).collect()
    }

    #[test]
    fn walks_back_over_windows_and_gaps_to_the_count() {
        let day = 86_400;
        let all: Vec<i64> = (0..10 * day / 60)
            .map(|m| m * 60)
            .filter(|t| !(3 * day..5 * day).contains(t))
            .collect();
        let to_ms = 10 * day * 1000;
        let mut p = TrendbarPager::new(Timeframe::M1, 0, to_ms, Some(8_000));
        let mut requests = 0;
        while let Some(w) = p.next_window() {
            assert!(w.1 - w.0 < max_window_ms(Timeframe::M1));
            p.accept(w.0, serve(w, &all));
            requests += 1;
            assert!(requests < 50);
        }
        let got = p.finish();
        assert_eq!(got.len(), 8_000);
        let want: Vec<i64> = all[all.len() - 8_000..].to_vec();
        assert_eq!(got.iter().map(|b| b.time).collect::<Vec<_>>(), want);
    }

    /// A stock CFD: 7 H1 bars on each weekday (14:00–20:00 UTC), none at weekends.
    fn session_hours(days: i64) -> Vec<i64> {
        (0..days)
            .filter(|d| (d + 4) % 7 < 5) // day 0 (1970-01-01) was a Thursday
            .flat_map(|d| (14..21).map(move |h| d * 86_400 + h * 3600))
            .collect()
    }

    #[test]
    fn a_session_limited_symbol_pages_back_to_the_count() {
        let all = session_hours(400);
        let to_ms = 400 * 86_400 * 1000;
        let mut p = TrendbarPager::new(Timeframe::H1, 0, to_ms, Some(1_500));
        let mut windows = Vec::new();
        while let Some(w) = p.next_window() {
            assert!(w.1 - w.0 <= max_trendbar_request_ms(Timeframe::H1), "{w:?}");
            p.accept(w.0, serve(w, &all));
            windows.push(w);
            assert!(windows.len() < 20);
        }
        let got = p.finish();
        assert_eq!(got.len(), 1_500, "after {} windows", windows.len());
        assert!(
            windows.len() > 1,
            "1,500 session bars span more than one window"
        );
        assert_eq!(
            got.iter().map(|b| b.time).collect::<Vec<_>>(),
            all[all.len() - 1_500..].to_vec()
        );
    }

    #[test]
    fn requests_stay_inside_the_servers_timestamp_bounds() {
        let p = TrendbarPager::new(Timeframe::D1, -5, i64::MAX, Some(10));
        let (from, to, _) = p.next_window().expect("a window");
        assert!(from >= 0 && to == MAX_TRENDBAR_TIMESTAMP_MS, "{from} {to}");
    }

    #[test]
    fn stops_when_history_runs_out() {
        let all: Vec<i64> = (0..100).map(|m| 1_000 * 86_400 + m * 60).collect();
        let mut p = TrendbarPager::new(Timeframe::M1, 0, 1_001 * 86_400 * 1000, Some(1_000));
        let mut requests = 0;
        while let Some(w) = p.next_window() {
            p.accept(w.0, serve(w, &all));
            requests += 1;
        }
        // 400 empty days are ~115 M1 windows; walking on to 1970 would take ~286.
        assert!(
            requests < 130,
            "gave up after 400 days of nothing, not at 1970: {requests}"
        );
        assert_eq!(p.finish().len(), 100);
    }

    #[test]
    fn empty_or_inverted_range_needs_no_request() {
        assert!(
            TrendbarPager::new(Timeframe::H1, 10, 5, None)
                .next_window()
                .is_none()
        );
        assert!(
            TrendbarPager::new(Timeframe::H1, 0, 5, Some(0))
                .next_window()
                .is_none()
        );
    }
}
