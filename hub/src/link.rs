//! The hub's broker link: one MQTT v5 session (rumqttc) that subscribes to every instance stream
//! and publishes signed commands.
//!
//! Nothing is lost across a hub restart that the broker still holds: the session is persistent
//! (clean start off, a fixed client id, a session expiry), subscriptions are QoS 1, and acks are
//! manual: a message is acknowledged only after the transaction that stored it committed. A message
//! the hub received but did not ack before dying is delivered again (MQTT v5 §4.4), and the
//! (instance, stream, seq) upsert makes that harmless.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::{broadcast, mpsc};

use crate::events::{HubEvent, Stats};
use crate::ingest::{Classified, classify};
use crate::store::Store;

/// How long the broker keeps the hub's session (and queues for it) while the hub is away.
pub const SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;
/// Records written per transaction at most.
const BATCH: usize = 512;

/// Clock for received/commit times (Unix ms). One clock: the process's.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Prepares the options of the hub's session.
pub fn hub_options(mut o: MqttOptions) -> MqttOptions {
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
    o.set_manual_acks(true);
    // Deliveries in flight to the hub before it must ack (the broker's view of our window).
    o.set_receive_maximum(Some(1024));
    o
}

/// Publishes commands on the hub's session.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: AsyncClient,
}

impl Publisher {
    /// QoS 1, not retained, with an MQTT v5 message expiry: a command the broker still holds when
    /// it expires is discarded, never delivered late (MQTT v5 §3.3.2.3.3).
    pub async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        expiry_secs: u32,
    ) -> Result<(), rumqttc::v5::ClientError> {
        let props = PublishProperties {
            message_expiry_interval: Some(expiry_secs.max(1)),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
    }
}

/// Starts the link: returns the publisher; ingest runs until the process ends.
pub fn start(
    options: MqttOptions,
    store: Store,
    events: broadcast::Sender<HubEvent>,
    stats: Arc<Stats>,
) -> Publisher {
    let (client, mut eventloop) = AsyncClient::new(hub_options(options), 4096);
    let (tx, rx) = mpsc::channel::<Publish>(8192);
    let sub_client = client.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(200);
                    tracing::info!(
                        session_present = ack.session_present,
                        "hub connected to the broker"
                    );
                    // Subscribing again on a kept session is harmless and covers a lost one.
                    // try_: this task is the one that drains the request channel, so it must never
                    // wait for room in it.
                    for filter in fleet::hub_subscriptions() {
                        if let Err(e) = sub_client.try_subscribe(filter, QoS::AtLeastOnce) {
                            tracing::warn!(error = %e, "subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // Backpressure: when storage is slow this waits, the broker queues.
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "broker link down; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    tokio::spawn(writer(rx, client.clone(), store, events, stats));
    Publisher { client }
}

async fn writer(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    store: Store,
    events: broadcast::Sender<HubEvent>,
    stats: Arc<Stats>,
) {
    let mut buf: Vec<Publish> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut buf, BATCH).await > 0 {
        let received = now_ms();
        let mut accepted = Vec::with_capacity(buf.len());
        for p in &buf {
            stats.received.fetch_add(1, Ordering::Relaxed);
            let topic = String::from_utf8_lossy(&p.topic);
            match classify(&topic, &p.payload, received) {
                Classified::Accepted(a) => accepted.push(*a),
                Classified::Refused { instance, reason } => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%instance, %reason, "refused a payload");
                    if let Err(e) = store.reject(&instance, &reason, received).await {
                        tracing::error!(error = %e, "storing a refusal");
                    }
                }
                Classified::Foreign(why) => {
                    stats.foreign.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%why, "ignored a message");
                }
            }
        }
        // Retry the batch until it is stored: nothing is acked (so nothing can be lost) before.
        let fresh = loop {
            match store.write(&accepted).await {
                Ok(f) => break f,
                Err(e) => {
                    tracing::error!(error = %e, "storing a batch failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let committed = now_ms();
        for p in buf.drain(..) {
            if let Err(e) = client.ack(&p).await {
                tracing::warn!(error = %e, "ack");
            }
        }
        let mut changed = BTreeSet::new();
        for (a, new) in accepted.iter().zip(&fresh) {
            if !new {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            stats.stored.fetch_add(1, Ordering::Relaxed);
            stats.stored_latency(committed, committed - a.ts_ms);
            if matches!(
                a.stream,
                fleet::Stream::Status | fleet::Stream::Telemetry | fleet::Stream::CommandResults
            ) {
                changed.insert(a.instance.clone());
            }
            if a.stream != fleet::Stream::Bars && events.receiver_count() > 0 {
                let _ = events.send(HubEvent::Record {
                    instance: a.instance.to_string(),
                    stream: a.stream.as_str().to_string(),
                    seq: a.seq,
                    ts_ms: a.ts_ms,
                    received_ms: a.received_ms,
                    symbol: a.symbol.clone(),
                    tag: a.tag.clone(),
                    body: serde_json::from_str(&a.body).unwrap_or_default(),
                });
            }
        }
        if events.receiver_count() > 0 {
            for id in changed {
                if let Ok(Some(row)) = store.instance(&id).await {
                    let _ = events.send(HubEvent::Instance(Box::new(row)));
                }
            }
        }
    }
}
