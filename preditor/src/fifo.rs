//! The per-symbol bar FIFO: the last `W` closed bars, oldest first.
//!
//! The window is handed out as one contiguous slice on every bar, so the bars live in a `Vec` of room
//! `2W` and slide: a new bar is appended after the window, and once the room is used up the window is
//! moved back to the start, one copy of `W` bars every `W` bars (a ring buffer would have to be made
//! contiguous, a copy of the whole window, on most bars once it has wrapped).

use crate::bars::{Bar, format_time};

/// A bar the FIFO refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FifoError {
    #[error("bar {time} repeats the last bar; ignored")]
    Duplicate { time: String },
    #[error("bar {time} is older than the last bar {last}; bars must arrive in time order")]
    OutOfOrder { time: String, last: String },
}

/// What a push did besides storing the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The bar follows the previous one directly (or is the first).
    Next,
    /// Bars are missing between the previous bar and this one (weekend, holiday, outage): accepted.
    Gap {
        missing_from: i64,
        missing_secs: i64,
    },
}

/// Fixed-capacity FIFO of the last `capacity` bars.
#[derive(Debug, Clone)]
pub struct BarFifo {
    /// `bars[start..]` is the window.
    bars: Vec<Bar>,
    start: usize,
    capacity: usize,
    /// Bar spacing in seconds, if known, to recognise gaps.
    step_secs: Option<i64>,
}

impl BarFifo {
    pub fn new(capacity: usize, step_secs: Option<i64>) -> Self {
        Self {
            bars: Vec::with_capacity(2 * capacity.max(1)),
            start: 0,
            capacity,
            step_secs,
        }
    }

    /// Appends a bar; refuses duplicates and bars older than the last one.
    pub fn push(&mut self, bar: Bar) -> Result<Push, FifoError> {
        let mut outcome = Push::Next;
        if let Some(last) = self.bars.last() {
            if bar.time == last.time {
                return Err(FifoError::Duplicate {
                    time: format_time(bar.time),
                });
            }
            if bar.time < last.time {
                return Err(FifoError::OutOfOrder {
                    time: format_time(bar.time),
                    last: format_time(last.time),
                });
            }
            if let Some(step) = self.step_secs
                && bar.time - last.time > step
            {
                outcome = Push::Gap {
                    missing_from: last.time + step,
                    missing_secs: bar.time - last.time - step,
                };
            }
        }
        if self.len() == self.capacity {
            self.start += 1;
        }
        if self.bars.len() == self.bars.capacity() && self.start > 0 {
            self.bars.drain(..self.start);
            self.start = 0;
        }
        self.bars.push(bar);
        Ok(outcome)
    }

    pub fn len(&self) -> usize {
        self.bars.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once `capacity` bars are held: a decision can be taken.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    pub fn last(&self) -> Option<&Bar> {
        self.bars.last()
    }

    /// The held bars, oldest first, as one slice.
    pub fn as_slice(&self) -> &[Bar] {
        &self.bars[self.start..]
    }

    pub fn clear(&mut self) {
        self.bars.clear();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64) -> Bar {
        Bar {
            time: t,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: t as f64,
            volume: 0,
        }
    }

    #[test]
    fn keeps_the_last_capacity_bars_in_order() {
        let mut f = BarFifo::new(3, Some(60));
        for t in 0..7 {
            assert_eq!(f.push(bar(t * 60)), Ok(Push::Next));
        }
        assert!(f.is_full());
        let times: Vec<i64> = f.as_slice().iter().map(|b| b.time).collect();
        assert_eq!(times, vec![240, 300, 360]);
    }

    /// The slide never lets the window grow past `capacity` nor the room past `2 · capacity`.
    #[test]
    fn a_long_run_keeps_the_window_and_the_room_bounded() {
        let mut f = BarFifo::new(5, None);
        for t in 0..1000 {
            f.push(bar(t)).unwrap();
            let times: Vec<i64> = f.as_slice().iter().map(|b| b.time).collect();
            let expected: Vec<i64> = ((t - 4).max(0)..=t).collect();
            assert_eq!(times, expected);
            assert!(
                f.bars.capacity() <= 10,
                "room grew to {}",
                f.bars.capacity()
            );
        }
    }

    #[test]
    fn refuses_duplicates_and_out_of_order_accepts_gaps() {
        let mut f = BarFifo::new(3, Some(60));
        f.push(bar(600)).unwrap();
        assert!(matches!(f.push(bar(600)), Err(FifoError::Duplicate { .. })));
        assert!(matches!(
            f.push(bar(540)),
            Err(FifoError::OutOfOrder { .. })
        ));
        assert_eq!(
            f.push(bar(840)),
            Ok(Push::Gap {
                missing_from: 660,
                missing_secs: 180
            })
        );
        assert_eq!(f.len(), 2);
    }
}
