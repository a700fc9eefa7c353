//! New Bar → Order Sent latency, measured where it matters: at the simulator.
//!
//! For each symbol, the clock starts when the simulator publishes a new bar (the closing spot of
//! the bar before and the opening spot of the new one, in one step) and stops at the first
//! NewOrderReq or ClosePositionReq it receives for that symbol afterwards. Bars with no order
//! produce no sample.
//!
//! A close with no new bar after it (the last bar before a gap in the data, a weekend, or the end
//! of a symbol's session) is not timed: nothing tells a client that bar is over but its own clock,
//! which the accelerated replay does not speed up (the executor closes such a bar one second past
//! its end on its clock, after the last spot's whole second: about 2 s of wall time), so its
//! orders would measure that rule, not the pipeline. Those closes are counted instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Default, Clone)]
struct SymbolLatency {
    pending_close: Option<Instant>,
    samples_us: Vec<u64>,
    untimed_closes: u64,
}

#[derive(Debug, Default, Clone)]
pub struct LatencyRecorder {
    symbols: BTreeMap<String, SymbolLatency>,
}

/// Percentiles of one set of samples, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyReport {
    pub overall: Option<LatencySummary>,
    pub per_symbol: BTreeMap<String, LatencySummary>,
    /// Bar closes with no new bar after them (a gap in the data): not timed.
    pub untimed_closes: u64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarize(samples: &[u64]) -> Option<LatencySummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    Some(LatencySummary {
        count: sorted.len(),
        p50_us: percentile(&sorted, 50.0),
        p99_us: percentile(&sorted, 99.0),
        max_us: sorted[sorted.len() - 1],
    })
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The simulator published a new bar of `symbol` at `at` (the one before it closed).
    pub fn bar_closed(&mut self, symbol: &str, at: Instant) {
        self.symbols
            .entry(symbol.to_string())
            .or_default()
            .pending_close = Some(at);
    }

    /// The simulator published `symbol`'s bar close with no new bar after it (a gap begins): the
    /// orders that follow are not timed.
    pub fn bar_closed_before_gap(&mut self, symbol: &str) {
        let entry = self.symbols.entry(symbol.to_string()).or_default();
        entry.pending_close = None;
        entry.untimed_closes += 1;
    }

    /// An order for `symbol` arrived at `at`; returns the latency when it is the first since a close.
    pub fn order_received(&mut self, symbol: &str, at: Instant) -> Option<Duration> {
        let entry = self.symbols.get_mut(symbol)?;
        let closed = entry.pending_close.take()?;
        let latency = at.saturating_duration_since(closed);
        entry
            .samples_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        Some(latency)
    }

    pub fn report(&self) -> LatencyReport {
        let all: Vec<u64> = self
            .symbols
            .values()
            .flat_map(|s| s.samples_us.iter().copied())
            .collect();
        LatencyReport {
            overall: summarize(&all),
            per_symbol: self
                .symbols
                .iter()
                .filter_map(|(name, s)| summarize(&s.samples_us).map(|sum| (name.clone(), sum)))
                .collect(),
            untimed_closes: self.symbols.values().map(|s| s.untimed_closes).sum(),
        }
    }
}

impl LatencyReport {
    /// A human-readable table, one line per symbol then the overall line.
    pub fn to_text(&self) -> String {
        let line = |name: &str, s: &LatencySummary| {
            format!(
                "{name:<8} n={:<6} p50={:>9.3}ms p99={:>9.3}ms max={:>9.3}ms",
                s.count,
                s.p50_us as f64 / 1000.0,
                s.p99_us as f64 / 1000.0,
                s.max_us as f64 / 1000.0
            )
        };
        let mut out: Vec<String> = self.per_symbol.iter().map(|(n, s)| line(n, s)).collect();
        match &self.overall {
            Some(s) => out.push(line("ALL", s)),
            None => out.push("no new bar -> order samples yet".to_string()),
        }
        out.push(format!(
            "{} bar closes before a gap in the data (no new bar after them) not timed",
            self.untimed_closes
        ));
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_order_after_a_close_counts() {
        let t0 = Instant::now();
        let mut r = LatencyRecorder::new();
        assert_eq!(r.order_received("EURUSD", t0), None);
        r.bar_closed("EURUSD", t0);
        assert_eq!(
            r.order_received("EURUSD", t0 + Duration::from_micros(700)),
            Some(Duration::from_micros(700))
        );
        assert_eq!(
            r.order_received("EURUSD", t0 + Duration::from_micros(900)),
            None
        );
        r.bar_closed("USDJPY", t0);
        r.bar_closed("USDJPY", t0 + Duration::from_millis(10)); // no order for the first bar
        r.order_received("USDJPY", t0 + Duration::from_millis(12));
        let rep = r.report();
        assert_eq!(rep.per_symbol["EURUSD"].count, 1);
        assert_eq!(rep.per_symbol["USDJPY"].max_us, 2_000);
        assert_eq!(rep.overall.as_ref().unwrap().count, 2);
        assert!(rep.to_text().contains("ALL"));
    }

    #[test]
    fn a_close_before_a_gap_is_not_timed() {
        let t0 = Instant::now();
        let mut r = LatencyRecorder::new();
        r.bar_closed("EURUSD", t0);
        r.bar_closed_before_gap("EURUSD");
        // The client closes the bar on its own clock, seconds later: not a pipeline latency.
        assert_eq!(
            r.order_received("EURUSD", t0 + Duration::from_secs(2)),
            None
        );
        r.bar_closed("EURUSD", t0 + Duration::from_secs(3));
        assert_eq!(
            r.order_received("EURUSD", t0 + Duration::from_millis(3_004)),
            Some(Duration::from_millis(4))
        );
        let rep = r.report();
        assert_eq!(rep.untimed_closes, 1);
        assert_eq!(rep.overall.unwrap().max_us, 4_000);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=200).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (100, 198, 200));
        assert_eq!(summarize(&[]), None);
        assert_eq!(percentile(&[5], 99.0), 5);
    }
}
