//! What the dashboard is told live (SSE), and the hub's own ingest figures.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::store::InstanceRow;

/// One live update. The fleet page listens to `instance`; an instance page also to `record`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubEvent {
    Instance(Box<InstanceRow>),
    Record {
        instance: String,
        stream: String,
        seq: i64,
        ts_ms: i64,
        received_ms: i64,
        symbol: Option<String>,
        tag: Option<String>,
        body: serde_json::Value,
    },
}

impl HubEvent {
    pub fn instance(&self) -> &str {
        match self {
            Self::Instance(r) => &r.instance,
            Self::Record { instance, .. } => instance,
        }
    }
}

/// Ingest counters and the publish → stored latency of recent records (the instance's `ts_ms` to
/// the hub's commit, both on the hubs' and instances' NTP clocks).
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub foreign: AtomicU64,
    /// (commit time, publish → stored ms) of the latest records.
    latencies: Mutex<VecDeque<(i64, i64)>>,
}

const LATENCY_SAMPLES: usize = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub foreign: u64,
    pub stored_latency_ms_p50: Option<i64>,
    pub stored_latency_ms_p99: Option<i64>,
    pub latency_samples: usize,
}

impl Stats {
    pub fn stored_latency(&self, committed_ms: i64, ms: i64) {
        let mut q = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == LATENCY_SAMPLES {
            q.pop_front();
        }
        q.push_back((committed_ms, ms));
    }

    /// Counters, and the latency quantiles of the records committed since `since_ms` (a
    /// benchmark's window after its warm-up).
    pub fn view(&self, since_ms: i64) -> StatsView {
        let mut v: Vec<i64> = self
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(t, _)| *t >= since_ms)
            .map(|(_, l)| *l)
            .collect();
        v.sort_unstable();
        let pct = |p: f64| (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * p).round() as usize]);
        StatsView {
            received: self.received.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            foreign: self.foreign.load(Ordering::Relaxed),
            stored_latency_ms_p50: pct(0.5),
            stored_latency_ms_p99: pct(0.99),
            latency_samples: v.len(),
        }
    }
}
