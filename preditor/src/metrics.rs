//! The preditor's `/metrics` (docs/OPERATIONS.md, "Health and metrics"), Prometheus text format
//! through the tikv `prometheus` crate. Symbol labels are the loaded models' symbols only.

use std::sync::Arc;

use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

use crate::twin::Decision;

/// Every series of the preditor.
#[derive(Debug)]
pub struct PreditorMetrics {
    registry: Registry,
    bars: IntCounterVec,
    signals: IntCounterVec,
    position: GaugeVec,
    regime: GaugeVec,
    pnl: GaugeVec,
    save_failures: IntCounter,
    reconnects: IntCounter,
}

impl PreditorMetrics {
    /// The names and label sets are constants: registering them cannot fail (a duplicate would be
    /// a programming error the first test that builds this catches).
    pub fn new() -> Arc<Self> {
        let r = Registry::new_custom(Some("oracle_preditor".into()), None)
            .unwrap_or_else(|e| panic!("registry: {e}"));
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            r.register(Box::new(c.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = GaugeVec::new(Opts::new(name, help), &["symbol"])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            r.register(Box::new(g.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            g
        };
        let single = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}"));
            r.register(Box::new(c.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            c
        };
        let m = PreditorMetrics {
            bars: counter(
                "bars_received_total",
                "Live BARs received from the executor for a loaded model (HISTORY bars excluded).",
                &["symbol"],
            ),
            signals: counter(
                "signals_total",
                "SIGNALs sent to the executor, by action.",
                &["symbol", "action"],
            ),
            position: gauge(
                "twin_virtual_position",
                "The twin's virtual position: direction times intensity (-3..3, 0 flat).",
            ),
            regime: gauge("twin_regime", "The HMM regime of the twin's last decision."),
            pnl: gauge(
                "twin_realised_pnl",
                "The twin's realised virtual PnL, account currency.",
            ),
            save_failures: single(
                "state_save_failures_total",
                "Twin states that could not be written (retried on the next bar).",
            ),
            reconnects: single(
                "connect_attempts_total",
                "Connection attempts to the executor.",
            ),
            registry: r,
        };
        Arc::new(m)
    }

    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn on_bar(&self, symbol: &str) {
        self.bars.with_label_values(&[symbol]).inc();
    }

    /// A decision signalled (live or after a history replay).
    pub fn on_signal(&self, symbol: &str, action: &str, d: &Decision) {
        self.signals.with_label_values(&[symbol, action]).inc();
        self.on_twin(symbol, d);
    }

    /// The twin's state after a decision.
    pub fn on_twin(&self, symbol: &str, d: &Decision) {
        self.position
            .with_label_values(&[symbol])
            .set(f64::from(d.direction) * f64::from(d.intensity));
        self.regime
            .with_label_values(&[symbol])
            .set(f64::from(d.regime));
        self.pnl.with_label_values(&[symbol]).set(d.realised_pnl);
    }

    pub fn on_save_failure(&self) {
        self.save_failures.inc();
    }

    pub fn on_connect_attempt(&self) {
        self.reconnects.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_text_format() {
        let m = PreditorMetrics::new();
        m.on_bar("EURUSD");
        let d = Decision {
            time: 1_770_113_700,
            regime: 2,
            action: 4,
            direction: -1,
            intensity: 1,
            realised_pnl: -1.5,
            held: 1,
        };
        m.on_signal("EURUSD", "SHORT_WEAK", &d);
        let t = m.encode();
        for line in [
            "oracle_preditor_bars_received_total{symbol=\"EURUSD\"} 1",
            "oracle_preditor_signals_total{action=\"SHORT_WEAK\",symbol=\"EURUSD\"} 1",
            "oracle_preditor_twin_virtual_position{symbol=\"EURUSD\"} -1",
            "oracle_preditor_twin_regime{symbol=\"EURUSD\"} 2",
            "oracle_preditor_twin_realised_pnl{symbol=\"EURUSD\"} -1.5",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} not in\n{t}");
        }
    }
}
