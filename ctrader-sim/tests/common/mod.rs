//! Shared by ctrader-sim's integration tests: the simulator started in process (its real I/O shell:
//! TLS listener, per-connection tasks, control socket) over `tests/data`, and the ways to talk to it
//! (a raw framed TLS connection, or a `ClientConfig` for the cTrader client). The client helpers
//! are the cTrader crate's own test helpers, included from there.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

#[path = "../../../ctrader/tests/common/mod.rs"]
mod client;
pub use client::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ctrader::client::ClientConfig;
use ctrader::codec::FrameCodec;
use ctrader_sim::bars::load_dir;
use ctrader_sim::core::{CoreConfig, Credentials, SimCore};
use ctrader_sim::latency::LatencyReport;
use ctrader_sim::server::{ServerConfig, run};
use ctrader_sim::tls;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

/// A raw Open API connection to the simulator: TLS plus the crate's framing.
pub type Conn = Framed<tokio_rustls::client::TlsStream<TcpStream>, FrameCodec>;

/// A running in-process simulator; stopped when dropped (or by [`Sim::stop`]).
pub struct Sim {
    pub port: u16,
    pub control_port: u16,
    /// The simulator's self-signed certificate, as DER and as a PEM file a client config can name.
    cert: CertificateDer<'static>,
    cert_file: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<LatencyReport>>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Sim {
    /// Replays the fixture bars from bar 20 at `bars_per_second`, with the real limits (50/s, and
    /// 5/s historical) and the simulator's default intermediate spots.
    pub async fn start(bars_per_second: f64) -> Self {
        Self::start_with_ticks(bars_per_second, ctrader_sim::core::DEFAULT_TICKS_PER_BAR).await
    }

    /// As [`Sim::start`], publishing `ticks_per_bar` spots between each bar's open and close.
    pub async fn start_with_ticks(bars_per_second: f64, ticks_per_bar: u32) -> Self {
        let series = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")).unwrap();
        let core = SimCore::new(
            series,
            CoreConfig {
                credentials: Credentials {
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    access_token: ACCESS_TOKEN.into(),
                    refresh_token: REFRESH_TOKEN.into(),
                    account_id: ACCOUNT,
                },
                start_bar: 20,
                bars_per_second,
                balance_cents: 10_000_000,
                money: ctrader_sim::money::Money::new(2).unwrap(),
                account_type: ctrader::messages::ProtoOaAccountType::Hedged,
                leverage_in_cents: 10_000,
                slippage_points: 1,
                model_costs: false,
                rate_limit: Some(50),
                historical_rate_limit: Some(5),
            },
        )
        .unwrap()
        .with_ticks_per_bar(ticks_per_bar);
        let identity = tls::self_signed(&[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("sim.pem");
        std::fs::write(&cert_file, &identity.cert_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (port, control_port) = (
            listener.local_addr().unwrap().port(),
            control.local_addr().unwrap().port(),
        );
        let config = ServerConfig {
            tls: tls::server_config(&identity).unwrap(),
            heartbeat: Duration::from_secs(10),
            idle_timeout: None,
            bars_per_second,
            stats_out: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(core, config, listener, Some(control), async {
            let _ = rx.await;
        }));
        Self {
            port,
            control_port,
            cert: identity.chain[0].clone(),
            cert_file,
            _dir: dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Sends one control-socket command and returns its one-line answer.
    pub async fn control(&self, line: &str) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.control_port))
            .await
            .unwrap();
        tcp.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(tcp).read_line(&mut answer).await.unwrap();
        answer
    }

    /// Stops the simulator and returns its latency figures.
    pub async fn stop(mut self) -> LatencyReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap()
    }

    /// A raw TLS connection that trusts only the simulator's certificate.
    pub async fn connect_raw(&self) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        Framed::new(tls, FrameCodec::default())
    }

    /// A client configuration for this simulator, with short timeouts and backoff for tests.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = client_config(self.port, ACCOUNT, &self.cert_file);
        c.request_timeout = Duration::from_secs(3);
        c.backoff_initial = Duration::from_millis(100);
        c.backoff_max = Duration::from_millis(400);
        c
    }
}
