//! The paper feed: CSV bars replayed at a fixed pace, every symbol's bars of one timestamp
//! together ([`CsvBarSource`]), and the bars before the replay's position as WARMUP history.

use std::time::Duration;

use protocol::{BarLine, Symbol, Timeframe};

use crate::feed::bars::CsvBarSource;

#[derive(Debug)]
pub struct Replay {
    /// `None`: no `broker.paper.bars_dir`, so no bars at all (the loop still ticks).
    source: Option<CsvBarSource>,
    period: Duration,
    finished: bool,
}

impl Replay {
    pub fn new(source: Option<CsvBarSource>, period: Duration) -> Self {
        Replay {
            source,
            period,
            finished: false,
        }
    }

    /// The time between two steps.
    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn status(&self) -> &'static str {
        match (&self.source, self.finished) {
            (None, _) => "no bar feed",
            (Some(_), true) => "CSV replay finished",
            (Some(_), false) => "CSV replay",
        }
    }

    /// The next timestamp's bars; none once the files are exhausted.
    pub fn step(&mut self) -> Vec<BarLine> {
        let Some(src) = &mut self.source else {
            return Vec::new();
        };
        let bars = src.step();
        if bars.is_empty() && !self.finished {
            tracing::info!("CSV replay finished: no more bars");
            self.finished = true;
        }
        bars
    }

    /// The last `count` bars published so far, oldest first.
    pub fn history(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
    ) -> Option<Vec<BarLine>> {
        self.source.as_ref()?.history(symbol, timeframe, count)
    }

    /// Each symbol's last history bar (its close prices the paper books until the replay
    /// publishes a newer one).
    pub fn last_bars(&self, timeframe_of: impl Fn(&Symbol) -> Option<Timeframe>) -> Vec<BarLine> {
        let Some(src) = &self.source else {
            return Vec::new();
        };
        src.symbols()
            .filter_map(|s| src.history(s, timeframe_of(s)?, 1)?.pop())
            .collect()
    }
}
