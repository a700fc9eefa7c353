//! Client-side request pacing. The server allows 50 requests/s for ordinary requests and 5/s for
//! historical data per connection and answers excess with REQUEST_FREQUENCY_EXCEEDED; pacing here
//! keeps us under that. Pure: the caller passes `now`.

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

/// A token bucket: up to `capacity` requests at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of 0 is raised to 1 so the bucket always drains.
    pub fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            capacity: rate,
            per_second: rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

/// One bucket per request class.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    normal: TokenBucket,
    historical: TokenBucket,
}

impl RateLimiter {
    /// Limits in requests per second.
    pub fn new(normal_per_second: u32, historical_per_second: u32, now: Instant) -> Self {
        Self {
            normal: TokenBucket::new(normal_per_second, now),
            historical: TokenBucket::new(historical_per_second, now),
        }
    }

    /// Takes a token of the request's class, or says how long to wait.
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

    #[test]
    fn burst_then_paced() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, t0);
        for _ in 0..5 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_millis(200));
        assert!(b.try_take(t0 + Duration::from_millis(199)).is_err());
        assert_eq!(b.try_take(t0 + Duration::from_millis(200)), Ok(()));
        // A long idle period refills to capacity only.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.try_take(later).is_ok()).count(), 5);
    }

    #[test]
    fn classes_have_separate_buckets() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(50, 5, t0);
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
