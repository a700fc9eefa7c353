//! The daemons' loopback HTTP listener: `GET /healthz` and `GET /metrics`, nothing else.
//!
//! It runs on a thread of its own with its own single-threaded runtime, so a main loop that spins
//! (never yields) still gets an answer — 503 with the reason — instead of a probe that hangs.
//! `/metrics` is Prometheus's text exposition format 0.0.4, the format `promtool check metrics`
//! lints (prometheus.io/docs/instrumenting/exposition_formats); the caller renders it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::health::Liveness;

/// Renders the metrics exposition (text format 0.0.4).
pub type Exposition = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of the text format (prometheus.io/docs/instrumenting/exposition_formats).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Endpoints {
    liveness: Liveness,
    metrics: Exposition,
}

async fn serve_healthz(State(e): State<Endpoints>) -> impl IntoResponse {
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match e.liveness.check(Instant::now()) {
        Ok(status) => (StatusCode::OK, plain, format!("ok: {status}\n")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, plain, format!("{why}\n")),
    }
}

async fn serve_metrics(State(e): State<Endpoints>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        (e.metrics)(),
    )
}

/// The router (tests drive it without a thread).
pub fn router(liveness: Liveness, metrics: Exposition) -> Router {
    Router::new()
        .route("/healthz", get(serve_healthz))
        .route("/metrics", get(serve_metrics))
        .with_state(Endpoints { liveness, metrics })
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "{addr} is not a loopback address: health and metrics never leave the machine (use 127.0.0.1:PORT)"
    )]
    NotLoopback { addr: SocketAddr },
    #[error(
        "binding the health/metrics listener on {addr}: {source} (fix: free the port or choose another)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound listener, served on its own thread once [`Listener::spawn`] is called.
#[derive(Debug)]
pub struct Listener {
    listener: std::net::TcpListener,
}

impl Listener {
    /// Binds now (so a squatted port fails the start, not later).
    pub fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        if !addr.ip().is_loopback() {
            return Err(HttpError::NotLoopback { addr });
        }
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `/healthz` and `/metrics` on a thread of its own until the process exits.
    pub fn spawn(self, liveness: Liveness, metrics: Exposition) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("health-metrics".into())
            .spawn(move || {
                rt.block_on(async move {
                    let l = match tokio::net::TcpListener::from_std(self.listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "health/metrics listener lost");
                            return;
                        }
                    };
                    if let Err(e) = axum::serve(l, router(liveness, metrics)).await {
                        tracing::error!(error = %e, "health/metrics listener stopped");
                    }
                })
            })?;
        Ok(())
    }
}
