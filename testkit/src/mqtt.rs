//! A test MQTT v5 client over the hub's own connection options (rumqttc, rustls, the fleet CA).

use std::path::Path;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use tokio::sync::mpsc;

/// What the event loop saw.
#[derive(Debug, Clone)]
pub enum Seen {
    ConnAck(String),
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    SubAck(Vec<String>),
    PubAck(String),
    Error(String),
}

pub struct Client {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn options(url: &str, ca: &Path, id: &str, user: &str, pass: &str) -> MqttOptions {
    fleet::mqtt::options(url, Some(ca), id, user, pass, Duration::from_secs(5)).unwrap()
}

/// Connects and runs the event loop; `stop_on_error`: end at the first connection error (to see
/// a refusal) instead of reconnecting.
pub fn connect(opts: MqttOptions, stop_on_error: bool) -> Client {
    let (client, mut el) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    let _ = tx.send(Seen::ConnAck(format!("{:?}", c.code)));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Seen::Publish {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let _ = tx.send(Seen::SubAck(
                        s.return_codes.iter().map(|c| format!("{c:?}")).collect(),
                    ));
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    let _ = tx.send(Seen::PubAck(format!("{:?}", a.reason)));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Seen::Error(describe(&e)));
                    if stop_on_error {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Client { client, rx, task }
}

fn describe(e: &ConnectionError) -> String {
    format!("{e:?}")
}

impl Client {
    /// Waits for the next event matching `f`, up to `secs`.
    pub async fn wait_for<T>(
        &mut self,
        secs: u64,
        mut f: impl FnMut(&Seen) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(s)) => {
                    if let Some(t) = f(&s) {
                        return Some(t);
                    }
                }
                _ => return None,
            }
        }
    }

    pub async fn connected(&mut self) -> String {
        self.wait_for(10, |s| match s {
            Seen::ConnAck(c) => Some(c.clone()),
            Seen::Error(e) => Some(format!("error: {e}")),
            _ => None,
        })
        .await
        .unwrap_or_else(|| "timeout".into())
    }

    pub async fn subscribe(&mut self, filter: &str) -> Vec<String> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.wait_for(10, |s| match s {
            Seen::SubAck(c) => Some(c.clone()),
            _ => None,
        })
        .await
        .expect("no SUBACK")
    }

    pub async fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .await
            .unwrap();
    }

    /// Every publish seen within `ms`, drained.
    pub async fn drain(&mut self, ms: u64) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(s)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            if let Seen::Publish { topic, payload, .. } = s {
                out.push((topic, payload));
            }
        }
        out
    }
}
