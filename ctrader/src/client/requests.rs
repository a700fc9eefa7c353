//! The table of requests in flight, keyed by the `clientMsgId` the server echoes back. Pure and
//! generic over what waits for the answer, so tests need no runtime.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// One request awaiting its answer.
#[derive(Debug)]
pub struct InFlight<T> {
    /// When it times out.
    pub deadline: Instant,
    /// The request's payload type, for error messages.
    pub payload_type: u32,
    /// Whoever waits for the answer.
    pub waiter: T,
}

/// Requests in flight. Ids are never reused, across reconnects too, so a late answer to a request
/// from a dead connection can never complete a newer one.
#[derive(Debug)]
pub struct RequestTable<T> {
    next_id: u64,
    pending: HashMap<String, InFlight<T>>,
}

impl<T> Default for RequestTable<T> {
    fn default() -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
        }
    }
}

impl<T> RequestTable<T> {
    /// Registers a request; returns the `clientMsgId` to send with it.
    pub fn register(
        &mut self,
        now: Instant,
        timeout: Duration,
        payload_type: u32,
        waiter: T,
    ) -> String {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        self.pending.insert(
            id.clone(),
            InFlight {
                deadline: now + timeout,
                payload_type,
                waiter,
            },
        );
        id
    }

    /// The request with this id, left in place (for answers that come in several messages).
    pub fn get(&self, id: &str) -> Option<&InFlight<T>> {
        self.pending.get(id)
    }

    /// Removes and returns the request with this id.
    pub fn take(&mut self, id: &str) -> Option<InFlight<T>> {
        self.pending.remove(id)
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, InFlight<T>)> {
        let ids: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|r| (id, r)))
            .collect()
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|r| r.deadline).min()
    }

    /// Removes every request (the connection is gone).
    pub fn drain(&mut self) -> Vec<(String, InFlight<T>)> {
        self.pending.drain().collect()
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_expire_and_drain() {
        let t0 = Instant::now();
        let mut t = RequestTable::default();
        let a = t.register(t0, Duration::from_secs(5), 2104, "a");
        let b = t.register(t0, Duration::from_secs(1), 2121, "b");
        let c = t.register(t0, Duration::from_secs(9), 2124, "c");
        assert_ne!(a, b);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(t.expire(t0 + Duration::from_millis(999)).is_empty());
        let expired = t.expire(t0 + Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (
                expired[0].0.as_str(),
                expired[0].1.waiter,
                expired[0].1.payload_type
            ),
            (b.as_str(), "b", 2121)
        );
        assert_eq!(t.get(&a).map(|r| r.waiter), Some("a"));
        assert_eq!(t.take(&a).map(|r| r.waiter), Some("a"));
        assert!(t.take(&a).is_none(), "an answer completes a request once");
        assert_eq!(
            t.drain().into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![c]
        );
        assert!(t.is_empty());
        let d = t.register(t0, Duration::from_secs(1), 1, "d");
        assert!(![a, b].contains(&d), "ids are never reused");
    }
}
