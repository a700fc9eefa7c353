//! The per-symbol bar FIFO: the last `W` closed bars, oldest first.
//!
//! A ring buffer (`VecDeque` of fixed capacity) so a new bar costs O(1); the window is handed out as one
//! contiguous slice (`make_contiguous` only moves memory when the ring has wrapped).

use std::collections::VecDeque;

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
    bars: VecDeque<Bar>,
    capacity: usize,
    /// Bar spacing in seconds, if known, to recognise gaps.
    step_secs: Option<i64>,
}

impl BarFifo {
    pub fn new(capacity: usize, step_secs: Option<i64>) -> Self {
        Self {
            bars: VecDeque::with_capacity(capacity),
            capacity,
            step_secs,
        }
    }

    /// Appends a bar; refuses duplicates and bars older than the last one.
    pub fn push(&mut self, bar: Bar) -> Result<Push, FifoError> {
        let mut outcome = Push::Next;
        if let Some(last) = self.bars.back() {
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
        if self.bars.len() == self.capacity {
            self.bars.pop_front();
        }
        self.bars.push_back(bar);
        Ok(outcome)
    }

    pub fn len(&self) -> usize {
        self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// True once `capacity` bars are held: a decision can be taken.
    pub fn is_full(&self) -> bool {
        self.bars.len() == self.capacity
    }

    pub fn last(&self) -> Option<&Bar> {
        self.bars.back()
    }

    /// The held bars, oldest first, as one slice.
    pub fn as_slice(&mut self) -> &[Bar] {
        self.bars.make_contiguous()
    }

    pub fn clear(&mut self) {
        self.bars.clear();
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
