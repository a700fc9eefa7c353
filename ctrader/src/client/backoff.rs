//! Reconnect timing: the shared exponential backoff with jitter ([`service::Backoff`]), stretched
//! to a maintenance end time when the server announced one. Pure.

use std::time::Duration;

pub use service::Backoff;

/// The wait before reconnecting: the backoff delay, or until the announced maintenance end if later.
pub fn reconnect_delay(
    backoff: Duration,
    maintenance_end_ms: Option<i64>,
    now_ms: i64,
) -> Duration {
    match maintenance_end_ms {
        Some(end) if end > now_ms => backoff.max(Duration::from_millis((end - now_ms) as u64)),
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_end_extends_the_wait() {
        let backoff = Duration::from_secs(2);
        assert_eq!(
            reconnect_delay(backoff, Some(1_000_000 + 90_000), 1_000_000),
            Duration::from_secs(90)
        );
        assert_eq!(
            reconnect_delay(backoff, Some(1_000_500), 1_000_000),
            backoff
        );
        assert_eq!(reconnect_delay(backoff, Some(5), 1_000_000), backoff);
        assert_eq!(reconnect_delay(backoff, None, 1_000_000), backoff);
    }
}
