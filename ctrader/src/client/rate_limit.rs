//! Client-side request pacing. The server allows 50 requests/s for ordinary requests and 5/s for
//! historical data per connection (help.ctrader.com/open-api, Getting started, "Rate limiting"; the
//! older FAQ at spotware-open-api.readthedocs.io/en/latest/faq names the historical ones:
//! "ProtoOAGetTrendbarsReq, ProtoOAGetTickDataReq, ProtoOADealListReq: 5 requests/second") and
//! answers excess with REQUEST_FREQUENCY_EXCEEDED; pacing here keeps us under that. Pure: the
//! caller passes `now`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::messages::{
    OpenApiMessage, ProtoOaDealListReq, ProtoOaGetTrendbarsReq, ProtoOaOrderListReq,
};

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// Ordinary requests (50/s).
    Normal,
    /// Historical data requests: trendbars, deals, orders (5/s).
    Historical,
}

impl RequestClass {
    /// The class of a request payload type.
    pub fn of(payload_type: u32) -> Self {
        if payload_type == ProtoOaGetTrendbarsReq::PAYLOAD_TYPE
            || payload_type == ProtoOaDealListReq::PAYLOAD_TYPE
            || payload_type == ProtoOaOrderListReq::PAYLOAD_TYPE
        {
            Self::Historical
        } else {
            Self::Normal
        }
    }
}

/// At most `limit` requests in any window of [`WINDOW`]: a log of the last `limit` send times.
///
/// Not a token bucket: a bucket of capacity N refilled at N/s lets ~2N requests through within one
/// second (a full burst, then the refill), and the server counts per second, so 20 symbols trading on
/// one bar were answered REQUEST_FREQUENCY_EXCEEDED. A sliding window can never exceed the limit in
/// any one-second interval, whichever way the server aligns its windows.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    sent: VecDeque<Instant>,
}

/// The window the server counts in, plus a margin for transit jitter between our send and its count.
pub const WINDOW: Duration = Duration::from_millis(1050);

impl SlidingWindow {
    /// An empty log. A limit of 0 is raised to 1 so requests always drain.
    pub fn new(per_second: u32) -> Self {
        let limit = per_second.max(1) as usize;
        Self {
            limit,
            sent: VecDeque::with_capacity(limit),
        }
    }

    /// Records a send at `now`, or says how long until one is allowed.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.sent.front() {
            if now.saturating_duration_since(oldest) >= WINDOW {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            return Ok(());
        }
        // Full: the oldest send leaves the window first.
        let oldest = self.sent.front().copied().unwrap_or(now);
        Err((oldest + WINDOW).saturating_duration_since(now))
    }
}

/// One window per request class.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    normal: SlidingWindow,
    historical: SlidingWindow,
}

impl RateLimiter {
    /// Limits in requests per second.
    pub fn new(normal_per_second: u32, historical_per_second: u32) -> Self {
        Self {
            normal: SlidingWindow::new(normal_per_second),
            historical: SlidingWindow::new(historical_per_second),
        }
    }

    /// Records a send of the request's class, or says how long to wait.
    pub fn try_take(&mut self, class: RequestClass, now: Instant) -> Result<(), Duration> {
        match class {
            RequestClass::Normal => self.normal.try_take(now),
            RequestClass::Historical => self.historical.try_take(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the sends inside every window of `WINDOW` that starts at a send.
    fn max_in_any_window(sends: &[Instant]) -> usize {
        sends
            .iter()
            .map(|&a| sends.iter().filter(|&&b| b >= a && b < a + WINDOW).count())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        // Greedy sender: asks every millisecond for 5 s. A token bucket of 50 refilled at 50/s
        // lets ~100 through in the first second; the window must cap it at 50 everywhere.
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(50);
        let mut sends = Vec::new();
        for ms in 0..5000 {
            let now = t0 + Duration::from_millis(ms);
            if w.try_take(now).is_ok() {
                sends.push(now);
            }
        }
        assert_eq!(max_in_any_window(&sends), 50);
        // Throughput is still the limit: 5 s at 50 per 1.05 s.
        assert!(sends.len() >= 200, "only {} sends in 5 s", sends.len());
    }

    #[test]
    fn wait_is_until_the_oldest_send_leaves() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(5);
        for i in 0..5 {
            assert_eq!(w.try_take(t0 + Duration::from_millis(i * 10)), Ok(()));
        }
        let now = t0 + Duration::from_millis(100);
        assert_eq!(w.try_take(now), Err(WINDOW - Duration::from_millis(100)));
        assert!(w.try_take(t0 + WINDOW - Duration::from_millis(1)).is_err());
        assert_eq!(w.try_take(t0 + WINDOW), Ok(()));
        // A long idle period allows a full burst of `limit` only.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| w.try_take(later).is_ok()).count(), 5);
    }

    #[test]
    fn classes_have_separate_windows() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(50, 5);
        let hist = RequestClass::of(ProtoOaGetTrendbarsReq::PAYLOAD_TYPE);
        assert_eq!(hist, RequestClass::Historical);
        assert_eq!((0..20).filter(|_| r.try_take(hist, t0).is_ok()).count(), 5);
        assert_eq!(
            (0..60)
                .filter(|_| r.try_take(RequestClass::Normal, t0).is_ok())
                .count(),
            50
        );
        assert_eq!(RequestClass::of(2106), RequestClass::Normal);
    }
}
