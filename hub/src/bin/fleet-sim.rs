//! `fleet-sim`: synthetic fleet instances on the fleet contract (hub/src/sim.rs), for the hub's
//! tests, its benchmark and the demo until executors publish themselves. Instances are named
//! `{prefix}-{n}` (or `--id` for one) and log in with `{tokens}/{id}.token` (`hub add-instance`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fleet::InstanceId;
use hub::sim::{SimConfig, SimStats};
use protocol::{Mode, Symbol};

#[derive(Debug, Parser)]
#[command(
    name = "fleet-sim",
    about = "Synthetic Oracle instances publishing to the fleet broker"
)]
struct Args {
    #[arg(long)]
    broker: String,
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Directory of `<id>.token` files.
    #[arg(long)]
    tokens: PathBuf,
    /// The hub's public key (base64), to verify commands.
    #[arg(long)]
    hub_public_key: String,
    /// One instance with this id (else --instances of them named {prefix}-{n}).
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value_t = 1)]
    instances: usize,
    #[arg(long, default_value = "sim")]
    prefix: String,
    #[arg(long, default_value_t = 3)]
    symbols: usize,
    #[arg(long, default_value_t = 1000)]
    bar_ms: u64,
    #[arg(long, default_value_t = 1000)]
    telemetry_ms: u64,
    #[arg(long, default_value_t = 5)]
    signal_every: u64,
    #[arg(long, default_value = "shadow")]
    mode: String,
    /// MQTT keepalive: the broker publishes the last will after 1.5x this without traffic.
    #[arg(long, default_value_t = 5)]
    keepalive_secs: u64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Continue every stream's seq from here (a restarted instance).
    #[arg(long, default_value_t = 0)]
    seq_start: u64,
}

const NAMES: [&str; 20] = [
    "EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD",
    "EURJPY", "GBPJPY", "EURGBP", "US30", "NAS100", "GER40", "UK100", "BTCUSD", "ETHUSD", "XAGUSD",
    "USOIL",
];

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let hub_key =
        fleet::signed::decode_public_key(&a.hub_public_key).map_err(anyhow::Error::msg)?;
    let mode: Mode = a.mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let ids: Vec<InstanceId> = match &a.id {
        Some(id) => vec![InstanceId::new(id)?],
        None => (1..=a.instances)
            .map(|n| InstanceId::new(&format!("{}-{n}", a.prefix)))
            .collect::<Result<_, _>>()?,
    };
    let symbols: Vec<Symbol> = (0..a.symbols)
        .map(|i| {
            let name = NAMES
                .get(i)
                .map_or_else(|| format!("SYM{i}"), |s| s.to_string());
            Symbol::new(&name)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stats = Arc::new(SimStats::default());
        let mut tasks = Vec::new();
        let first_bar = (chrono::Utc::now().timestamp() / 60) * 60;
        for id in &ids {
            let token = hub::config::read_secret(&a.tokens.join(format!("{id}.token")))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("the token of {id}"))?;
            let options = hub::mqtt::options(
                &a.broker,
                a.ca_file.as_deref(),
                id.as_str(),
                id.as_str(),
                &token,
                Duration::from_secs(a.keepalive_secs),
            )?;
            let cfg = SimConfig {
                id: id.clone(),
                options,
                hub_key,
                symbols: symbols.clone(),
                mode,
                bar_every: Duration::from_millis(a.bar_ms),
                telemetry_every: Duration::from_millis(a.telemetry_ms),
                signal_every_bars: a.signal_every,
                first_bar,
            };
            tasks.push(tokio::spawn(hub::sim::run(
                cfg,
                stats.clone(),
                stop_rx.clone(),
                a.seq_start,
            )));
        }
        eprintln!(
            "fleet-sim: {} instances x {} symbols",
            ids.len(),
            symbols.len()
        );
        let until = async {
            match a.duration_secs {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = until => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        eprintln!(
            "fleet-sim: published {} records, dropped {}",
            stats.published.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed)
        );
        anyhow::Ok(())
    })
}
