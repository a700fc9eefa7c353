//! The task that talks to the broker. Connections go out only. Per connection:
//! 1. reserve two status seqs, `n` (online) and `n+1` (the last will, fixed at CONNECT), persisted
//!    first (docs/HUB.md §2.1);
//! 2. a fresh rumqttc client and event loop, the loop polled in a task of its own and never raced
//!    against a timer (a poll dropped while connecting drops a half-open connection whose will the
//!    broker then fires; docs/HUB.md §4);
//! 3. on CONNACK: subscribe to `oracle/{id}/commands`, publish the retained online, then send the
//!    outbox from its acknowledged position, at most [`WINDOW`] records unacknowledged. PUBACKs
//!    are matched by packet id and the acknowledged position moves only over a contiguous run of
//!    acknowledged records, so it never depends on the order PUBACKs come in (MQTT v5 §4.6 asks a
//!    receiver to send them in PUBLISH order, [MQTT-4.6.0-2]; nothing here relies on it);
//! 4. when the connection dies: wait (1 s, doubling up to 10 s) and start again at 1. What was
//!    unacknowledged is sent again; the hub's upsert by (instance, stream, seq) makes a repeat
//!    harmless.
//!
//! A fresh client per connection means no request of a dead connection is replayed into a new
//! one with a packet id we would mistake for another record's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleet::{InstanceId, Record, Status, Stream};
use protocol::Mode;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use tokio::sync::mpsc;

use super::outbox::{Item, OutboxError, Reader, Shared};
use crate::clock::Clock;
use crate::config::HubConfig;

/// Records sent and not yet acknowledged, at most.
pub const WINDOW: usize = 64;
/// rumqttc's request queue (our window, the status, the subscription and their acks fit).
const REQUESTS: usize = 256;
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a clean stop waits for the offline and the DISCONNECT to go out.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("hub link: {0}")]
    Options(#[from] fleet::mqtt::LinkError),
    #[error("hub.token_file: {0}")]
    Token(#[from] service::secret::SecretError),
}

/// What the link needs besides the outbox.
#[derive(Debug)]
pub struct Link {
    cfg: HubConfig,
    password: String,
    mode: Mode,
    started_ms: i64,
    clock: Arc<dyn Clock>,
}

impl Link {
    /// Reads the token now, so a bad one stops the start with its reason.
    pub fn new(
        cfg: &HubConfig,
        mode: Mode,
        started_ms: i64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LinkError> {
        let password = service::secret::read_secret(&cfg.token_file)?;
        // The options are built once here too, so an unreadable CA stops the start.
        fleet::mqtt::options(
            &cfg.broker,
            Some(&cfg.ca_file),
            cfg.instance_id.as_str(),
            cfg.instance_id.as_str(),
            &password,
            cfg.keepalive,
        )?;
        Ok(Link {
            cfg: cfg.clone(),
            password,
            mode,
            started_ms,
            clock,
        })
    }

    fn now_ms(&self) -> i64 {
        self.clock.wall().timestamp_millis()
    }

    fn status(&self, seq: u64, s: Status) -> Vec<u8> {
        Record::new(seq, self.now_ms(), s).to_bytes()
    }

    /// Runs until the executor says stopping (the outbox's shared flag). Commands received go to
    /// `commands` (raw; the core verifies them).
    pub async fn run(self, mut outbox: Reader, commands: mpsc::Sender<Vec<u8>>) {
        let shared = outbox.shared();
        let mut backoff = BACKOFF_FIRST;
        loop {
            if shared.stopping.load(Ordering::Relaxed) {
                return;
            }
            match self.connection(&mut outbox, &shared, &commands).await {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Lost { was_up }) => {
                    if was_up {
                        backoff = BACKOFF_FIRST;
                    }
                }
                Err(e) => tracing::error!(error = %e, "hub link: cannot keep the outbox; retrying"),
            }
            shared.connected.store(false, Ordering::Relaxed);
            // Appends wake us too: only a stop cuts the wait short.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = shared.wake.notified() => {
                        if shared.stopping.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn connection(
        &self,
        outbox: &mut Reader,
        shared: &Arc<Shared>,
        commands: &mpsc::Sender<Vec<u8>>,
    ) -> Result<Ended, LinkError> {
        let id = &self.cfg.instance_id;
        let status_topic = fleet::stream_topic(id, Stream::Status);
        let (online_seq, will_seq) = outbox.reserve_status()?;
        let mut options = fleet::mqtt::options(
            &self.cfg.broker,
            Some(&self.cfg.ca_file),
            id.as_str(),
            id.as_str(),
            &self.password,
            self.cfg.keepalive,
        )?;
        options.set_last_will(LastWill::new(
            status_topic.clone(),
            self.status(will_seq, Status::Offline),
            QoS::AtLeastOnce,
            true,
            None,
        ));
        let (client, el) = AsyncClient::new(options, REQUESTS);
        let (tx, mut rx) = mpsc::channel::<Polled>(REQUESTS);
        let poller = tokio::spawn(poll(el, tx));
        let mut conn = Conn::default();
        let ended = loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    None | Some(Polled::Down(_)) => {
                        if let Some(Polled::Down(e)) = ev {
                            if conn.up {
                                tracing::warn!(error = %e, "hub link: connection lost; records wait in the outbox");
                            } else {
                                tracing::debug!(error = %e, "hub link: cannot connect");
                            }
                        }
                        break Ended::Lost { was_up: conn.up };
                    }
                    Some(Polled::Event(ev)) => {
                        if let Some(lost) = self.on_event(*ev, &client, outbox, shared, commands, &mut conn, online_seq).await? {
                            break lost;
                        }
                    }
                },
                _ = shared.wake.notified() => {
                    if shared.stopping.load(Ordering::Relaxed) {
                        self.stop(&client, outbox, &mut rx, conn.up).await;
                        break Ended::Stopped;
                    }
                    if conn.up && !conn.pump(&client, outbox, id)? {
                        break Ended::Lost { was_up: true };
                    }
                }
            }
        };
        poller.abort();
        shared.connected.store(false, Ordering::Relaxed);
        Ok(ended)
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_event(
        &self,
        ev: Event,
        client: &AsyncClient,
        outbox: &mut Reader,
        shared: &Arc<Shared>,
        commands: &mpsc::Sender<Vec<u8>>,
        conn: &mut Conn,
        online_seq: u64,
    ) -> Result<Option<Ended>, LinkError> {
        let id = &self.cfg.instance_id;
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    tracing::error!(code = ?ack.code, "hub link: the broker refused the connection (check hub.instance_id and hub.token_file)");
                    return Ok(Some(Ended::Lost { was_up: false }));
                }
                tracing::info!(broker = %self.cfg.broker, "hub link: connected");
                conn.up = true;
                shared.connected.store(true, Ordering::Relaxed);
                let online = self.status(
                    online_seq,
                    Status::Online {
                        mode: self.mode,
                        version: crate::VERSION.into(),
                        started_ms: self.started_ms,
                    },
                );
                let ok = client
                    .try_subscribe(fleet::commands_topic(id), QoS::AtLeastOnce)
                    .is_ok()
                    && client
                        .try_publish(
                            fleet::stream_topic(id, Stream::Status),
                            QoS::AtLeastOnce,
                            true,
                            online,
                        )
                        .is_ok();
                conn.requested.push_back(None);
                outbox.rewind();
                if !ok || !conn.pump(client, outbox, id)? {
                    return Ok(Some(Ended::Lost { was_up: true }));
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(i)) = conn.requested.pop_front() {
                    conn.by_pkid.insert(pkid, i);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(i) = conn.by_pkid.remove(&ack.pkid)
                    && let Some(slot) = conn.inflight.iter_mut().find(|(n, _, _)| *n == i)
                {
                    slot.2 = true;
                }
                while conn.inflight.front().is_some_and(|(_, _, acked)| *acked) {
                    if let Some((_, item, _)) = conn.inflight.pop_front() {
                        outbox.ack(&item)?;
                    }
                }
                if !conn.pump(client, outbox, id)? {
                    return Ok(Some(Ended::Lost { was_up: true }));
                }
            }
            // Bounded by the broker's and our max packet size; the core checks
            // fleet::limits::MAX_COMMAND_BYTES before parsing.
            Event::Incoming(Packet::Publish(p))
                if p.topic.as_ref() == fleet::commands_topic(id).as_bytes() =>
            {
                // (An await cannot go in a match guard.)
                #[allow(clippy::collapsible_match)]
                if commands.send(p.payload.to_vec()).await.is_err() {
                    return Ok(Some(Ended::Stopped));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// A clean stop: offline (the next status seq), DISCONNECT, so the broker does not fire the will.
    async fn stop(
        &self,
        client: &AsyncClient,
        outbox: &mut Reader,
        rx: &mut mpsc::Receiver<Polled>,
        up: bool,
    ) {
        if !up {
            return;
        }
        let Ok(seq) = outbox.next_status() else {
            return;
        };
        let topic = fleet::stream_topic(&self.cfg.instance_id, Stream::Status);
        let _ = client.try_publish(
            topic,
            QoS::AtLeastOnce,
            true,
            self.status(seq, Status::Offline),
        );
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(STOP_GRACE, async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Polled::Down(_) => return,
                    Polled::Event(e) if matches!(*e, Event::Outgoing(Outgoing::Disconnect)) => {
                        return;
                    }
                    Polled::Event(_) => {}
                }
            }
        })
        .await;
    }
}

#[derive(Debug)]
enum Ended {
    Stopped,
    Lost { was_up: bool },
}

#[derive(Debug)]
enum Polled {
    Event(Box<Event>),
    Down(String),
}

/// One connection's bookkeeping.
#[derive(Debug, Default)]
struct Conn {
    up: bool,
    next: u64,
    /// Our publish requests in order (`None`: a status), matched to packet ids as rumqttc sends them.
    requested: VecDeque<Option<u64>>,
    by_pkid: HashMap<u16, u64>,
    /// Records sent, in order: (our number, the record, acknowledged).
    inflight: VecDeque<(u64, Item, bool)>,
}

impl Conn {
    /// Sends outbox records while the window has room. `false`: the client refused (its queue is
    /// gone or full): the connection is given up and started again.
    fn pump(
        &mut self,
        client: &AsyncClient,
        outbox: &mut Reader,
        id: &InstanceId,
    ) -> Result<bool, OutboxError> {
        // Refill in halves of the window: one read and one fsync per batch, not per PUBACK.
        if self.inflight.len() > WINDOW / 2 {
            return Ok(true);
        }
        while self.inflight.len() < WINDOW {
            let batch = outbox.next_batch(WINDOW - self.inflight.len())?;
            if batch.is_empty() {
                break;
            }
            for item in batch {
                let topic = fleet::stream_topic(id, item.stream);
                if client
                    .try_publish(topic, QoS::AtLeastOnce, false, item.payload.clone())
                    .is_err()
                {
                    return Ok(false);
                }
                self.next += 1;
                self.requested.push_back(Some(self.next));
                self.inflight.push_back((self.next, item, false));
            }
        }
        Ok(true)
    }
}

/// Runs the link on a thread of its own with its own runtime: its TLS, file reads and fsyncs never
/// run on the core loop's thread (the executor's runtime is single-threaded, and a blocking fsync
/// in a task there held every signal behind it: the benchmark's `--hub on` showed it). The
/// receiver resolves when the link has stopped; `None` when the thread could not start (logged).
pub fn spawn(
    link: Link,
    outbox: Reader,
    commands: mpsc::Sender<Vec<u8>>,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("hub-link".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(link.run(outbox, commands)),
                Err(e) => tracing::error!(error = %e, "hub link: cannot start its runtime"),
            }
            let _ = done_tx.send(());
        });
    match started {
        Ok(_) => Some(done),
        Err(e) => {
            tracing::error!(error = %e, "hub link: cannot start its thread; records wait in the outbox");
            None
        }
    }
}

async fn poll(mut el: EventLoop, tx: mpsc::Sender<Polled>) {
    loop {
        let msg = match el.poll().await {
            Ok(ev) => Polled::Event(Box::new(ev)),
            Err(e) => {
                let _ = tx.send(Polled::Down(e.to_string())).await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
