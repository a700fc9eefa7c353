//! Which IPC connections the executor keeps while they have not completed the handshake (issue 12
//! item 4): any local user can open connections, and each costs buffers. At most
//! [`MAX_PENDING_HANDSHAKES`] wait at once; a newcomer evicts the **oldest** waiting one rather than
//! being refused, so connections left idle (or trickling bytes) cannot lock the real preditor out,
//! whose handshake takes a few milliseconds. Each waits at most `ipc.hello_timeout_secs` from its
//! accept. An authenticated connection leaves this set; there is one active preditor at a time
//! (a newer one replaces it, see `preditor.rs`), so every connection is bounded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Connections allowed to wait for their handshake at once.
pub const MAX_PENDING_HANDSHAKES: usize = 8;

#[derive(Debug, Default)]
struct Waiting {
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
    evicted: u64,
}

/// The set of connections waiting for their handshake (cheap to clone, shared by the accept loop).
#[derive(Debug, Clone, Default)]
pub struct Admission {
    inner: Arc<Mutex<Waiting>>,
}

impl Admission {
    /// Admits connection `id`; evicts the oldest waiting one if the set is full. The returned
    /// ticket's [`Ticket::evicted`] resolves when this connection is evicted in turn.
    pub fn admit(&self, id: u64) -> Ticket {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.inner.lock() {
            w.queue.push_back((id, tx));
            while w.queue.len() > MAX_PENDING_HANDSHAKES {
                if let Some((old, evict)) = w.queue.pop_front() {
                    w.evicted += 1;
                    tracing::debug!(
                        conn = old,
                        "evicted: too many connections waiting for the handshake"
                    );
                    let _ = evict.send(());
                }
            }
        }
        Ticket {
            id,
            admission: self.clone(),
            evicted: Some(rx),
        }
    }

    fn leave(&self, id: u64) {
        if let Ok(mut w) = self.inner.lock() {
            w.queue.retain(|(i, _)| *i != id);
        }
    }

    /// How many connections are waiting now.
    pub fn waiting(&self) -> usize {
        self.inner.lock().map_or(0, |w| w.queue.len())
    }

    /// How many connections were evicted so far.
    pub fn evicted(&self) -> u64 {
        self.inner.lock().map_or(0, |w| w.evicted)
    }
}

/// One connection's place in the waiting set; it leaves the set when authenticated or dropped.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    admission: Admission,
    evicted: Option<oneshot::Receiver<()>>,
}

impl Ticket {
    /// Resolves when a newer connection evicted this one; never once it has left the set.
    pub async fn evicted(&mut self) {
        match self.evicted.as_mut() {
            Some(rx) => {
                if rx.await.is_err() {
                    // Left the set (the sender was dropped with it): never evicted now.
                    self.evicted = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// The handshake is done: the connection no longer counts as waiting.
    pub fn authenticated(&mut self) {
        self.admission.leave(self.id);
        self.evicted = None;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_waiting_connection_is_evicted_and_an_authenticated_one_never() {
        let a = Admission::default();
        let mut first = a.admit(0);
        let mut done = a.admit(1);
        done.authenticated();
        let mut rest: Vec<Ticket> = (2..=MAX_PENDING_HANDSHAKES as u64)
            .map(|i| a.admit(i))
            .collect();
        assert_eq!(a.waiting(), MAX_PENDING_HANDSHAKES);
        assert_eq!(a.evicted(), 0);
        // One more: the oldest waiting (0) goes, not the authenticated one (1).
        rest.push(a.admit(100));
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest was evicted");
        assert_eq!(a.evicted(), 1);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), done.evicted())
                .await
                .is_err()
        );
        // Dropped tickets leave the set.
        rest.clear();
        drop(first);
        assert_eq!(a.waiting(), 0);
    }
}
