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
    /// Why the replay stopped before the end of its files (a file changed under it).
    stopped: Option<String>,
}

impl Replay {
    pub fn new(source: Option<CsvBarSource>, period: Duration) -> Self {
        Replay {
            source,
            period,
            finished: false,
            stopped: None,
        }
    }

    /// The time between two steps.
    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn status(&self) -> String {
        if let Some(why) = &self.stopped {
            return format!("CSV replay stopped: {why}");
        }
        match (&self.source, self.finished) {
            (None, _) => "no bar feed",
            (Some(_), true) => "CSV replay finished",
            (Some(_), false) => "CSV replay",
        }
        .to_string()
    }

    /// The next timestamp's bars; none once the files are exhausted, or once a file could not be
    /// read again (the replay stops there, with an error naming the file and the line: every bar
    /// before it was published, none after).
    pub fn step(&mut self) -> Vec<BarLine> {
        let Some(src) = &mut self.source else {
            return Vec::new();
        };
        if self.finished {
            return Vec::new();
        }
        match src.step() {
            Ok(bars) => {
                if bars.is_empty() {
                    tracing::info!("CSV replay finished: no more bars");
                    self.finished = true;
                }
                bars
            }
            Err(e) => {
                tracing::error!(error = %e, "CSV replay stopped: fix or restore the file, then restart the executor");
                self.stopped = Some(e.to_string());
                self.finished = true;
                Vec::new()
            }
        }
    }

    /// The last `count` bars published so far, oldest first.
    pub fn history(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
    ) -> Option<Vec<BarLine>> {
        match self.source.as_ref()?.history(symbol, timeframe, count) {
            Ok(bars) => bars,
            Err(e) => {
                tracing::error!(%symbol, error = %e, "WARMUP history unavailable: the replay's file changed");
                None
            }
        }
    }

    /// Each symbol's last history bar (its close prices the paper books until the replay
    /// publishes a newer one).
    pub fn last_bars(&self, timeframe_of: impl Fn(&Symbol) -> Option<Timeframe>) -> Vec<BarLine> {
        let Some(src) = &self.source else {
            return Vec::new();
        };
        src.symbols()
            .filter_map(|s| self.history(s, timeframe_of(s)?, 1)?.pop())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file rewritten under the replay stops it with the error in STATUS, and no bar after.
    #[test]
    fn a_file_changed_under_the_replay_stops_it_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("EURUSD.csv");
        let mut text = String::from("time,open,high,low,close,volume\n");
        for i in 0..6 {
            text.push_str(&format!("{},1.1,1.5,1.0,1.{i},1\n", 3600 * (i + 1)));
        }
        std::fs::write(&p, &text).unwrap();
        let syms = vec![("EURUSD".parse().unwrap(), Timeframe::H1, 5)];
        let src = CsvBarSource::load_in_blocks(dir.path(), &syms, 0, 2).unwrap();
        let mut r = Replay::new(Some(src), Duration::from_secs(1));
        assert_eq!(r.step().len(), 1);
        assert_eq!(r.step().len(), 1);
        std::fs::write(
            &p,
            text.replace("1.1,1.5,1.0,1.3,1", "1.1,1.5,1.0,1.3,oops"),
        )
        .unwrap();
        assert!(r.step().is_empty(), "the third bar's block no longer reads");
        let status = r.status();
        assert!(
            status.starts_with("CSV replay stopped: ") && status.contains("EURUSD.csv:5: volume:"),
            "{status}"
        );
        assert!(r.step().is_empty(), "stopped for good");
    }
}
