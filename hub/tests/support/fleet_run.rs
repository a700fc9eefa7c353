//! Synthetic instances (hub::sim) for tests, on their own runtime thread.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fleet::InstanceId;
use hub::sim::{SimConfig, SimStats};
use protocol::{Mode, Symbol};

use super::Mosquitto;

pub struct Fleet {
    pub rt: tokio::runtime::Runtime,
    stops: Vec<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<SimStats>,
}

pub struct Spec<'a> {
    pub id: &'a str,
    pub mode: Mode,
    pub symbols: &'a [&'a str],
    pub bar_ms: u64,
    pub telemetry_ms: u64,
    pub signal_every: u64,
    pub seq_start: u64,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            id: "a",
            mode: Mode::Shadow,
            symbols: &["EURUSD", "XAUUSD"],
            bar_ms: 200,
            telemetry_ms: 300,
            signal_every: 1,
            seq_start: 0,
        }
    }
}

impl Fleet {
    pub fn new() -> Fleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Fleet {
            rt,
            stops: Vec::new(),
            tasks: Vec::new(),
            stats: Arc::new(SimStats::default()),
        }
    }

    pub fn options(broker: &Mosquitto, id: &str, token: &str) -> rumqttc::v5::MqttOptions {
        hub::mqtt::options(
            &broker.url(),
            Some(&broker.ca()),
            id,
            id,
            token,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    pub fn add(&mut self, broker: &Mosquitto, token: &str, hub_public_key: &str, spec: Spec<'_>) {
        let cfg = SimConfig {
            id: InstanceId::new(spec.id).unwrap(),
            options: Self::options(broker, spec.id, token),
            hub_key: fleet::signed::decode_public_key(hub_public_key).unwrap(),
            symbols: spec
                .symbols
                .iter()
                .map(|s| Symbol::new(s).unwrap())
                .collect(),
            mode: spec.mode,
            bar_every: Duration::from_millis(spec.bar_ms),
            telemetry_every: Duration::from_millis(spec.telemetry_ms),
            signal_every_bars: spec.signal_every,
            first_bar: 1_767_225_600,
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.stops.push(tx);
        let stats = self.stats.clone();
        self.tasks
            .push(self.rt.spawn(hub::sim::run(cfg, stats, rx, spec.seq_start)));
    }

    /// Stops every instance cleanly (each publishes offline) and waits.
    pub fn stop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(true);
        }
        let tasks: Vec<_> = self.tasks.drain(..).collect();
        self.rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        });
    }
}
