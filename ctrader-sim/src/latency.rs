//! Bar-close → order latency, measured where it matters: at the simulator.
//!
//! For each symbol, the clock starts when the simulator publishes a bar's close (the first spot of
//! the next bar) and stops at the first NewOrderReq or ClosePositionReq it receives for that symbol
//! afterwards. Bars with no order produce no sample.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Default, Clone)]
struct SymbolLatency {
    pending_close: Option<Instant>,
    samples_us: Vec<u64>,
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

    /// The simulator published `symbol`'s bar close at `at`.
    pub fn bar_closed(&mut self, symbol: &str, at: Instant) {
        self.symbols
            .entry(symbol.to_string())
            .or_default()
            .pending_close = Some(at);
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
            None => out.push("no bar-close -> order samples yet".to_string()),
        }
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
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=200).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (100, 198, 200));
        assert_eq!(summarize(&[]), None);
        assert_eq!(percentile(&[5], 99.0), 5);
    }
}
