//! `ctrader-sim`: replays bar files as a cTrader Open API server over TLS. See `ctrader-sim/SIM.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use ctrader::messages::ProtoOaAccountType;
use ctrader_sim::core::{CoreConfig, Credentials, SimCore};
use ctrader_sim::faults::{ControlCommand, parse_duration};
use ctrader_sim::money::{MAX_MONEY_DIGITS, Money};
use ctrader_sim::server::{ServerConfig, run};
use ctrader_sim::{bars, tls};
use tokio::net::TcpListener;

/// A protocol-faithful cTrader Open API simulator: TLS, the real framing and messages, bar replay,
/// market-order fills, margin, and fault injection.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address for the Open API (TLS) listener; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:5035")]
    listen: SocketAddr,
    /// Directory of `<SYMBOL>.csv` files (header `time,open,high,low,close,volume`).
    #[arg(long, default_value = "data/demo")]
    data: PathBuf,
    /// Replay speed in bars per second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start with the replay clock held: no bar closes until the control command `resume` (a driver
    /// warms its clients up on the history first). Until then the market quotes the last history
    /// bar's close.
    #[arg(long)]
    paused: bool,
    /// A gap in the data (a weekend) lasts its own length at --speed (one step per missing bar),
    /// at most this long in wall time, e.g. 3s ("0": no cap).
    #[arg(long, default_value = "0")]
    max_gap: String,
    /// Spot ticks between each bar's opening and closing spots, walking open -> low/high -> close.
    #[arg(long, default_value_t = ctrader_sim::core::DEFAULT_TICKS_PER_BAR)]
    ticks_per_bar: u32,
    /// Bars of history before the replay starts (get-trendbars sees only bars before the clock).
    #[arg(long, default_value_t = 700)]
    start_bar: usize,
    #[arg(long, default_value = "sim-client-id")]
    client_id: String,
    #[arg(long, default_value = "sim-client-secret")]
    client_secret: String,
    #[arg(long, default_value = "sim-access-token")]
    access_token: String,
    /// Accepted once by ProtoOARefreshTokenReq; both tokens then rotate.
    #[arg(long, default_value = "sim-refresh-token")]
    refresh_token: String,
    #[arg(long, default_value_t = 1_000_001)]
    account_id: i64,
    /// Initial balance in USD.
    #[arg(long, default_value_t = 100_000.0)]
    balance: f64,
    /// The account's moneyDigits: monetary values on the wire are scaled by 10^N (2 for USD
    /// accounts; some brokers use 8).
    #[arg(long, default_value_t = 2)]
    money_digits: u32,
    /// The accountType the trader answer reports: `hedged`, or `netted` (only reported: the book
    /// still trades hedged; for checking that a client refuses a netted account).
    #[arg(long, default_value = "hedged", value_parser = ["hedged", "netted"])]
    account_type: String,
    /// Account leverage (1:N).
    #[arg(long, default_value_t = 100)]
    leverage: u32,
    /// Adverse slippage on every market fill, in points.
    #[arg(long, default_value_t = 1)]
    slippage_points: i64,
    /// Charge each catalog symbol the costs its demo model was trained with (scripts/symbols.py):
    /// its own slippage instead of --slippage-points, and its round-turn commission per lot at
    /// close. The demo uses it so the live book pays what the model charges itself (SIM.md).
    #[arg(long)]
    model_costs: bool,
    /// Write the generated self-signed certificate (PEM) here for clients to trust.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Use this certificate chain (PEM) instead of generating one (needs --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Line-based control socket (fault injection, stats), e.g. 127.0.0.1:5036.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Fault to apply at start, in control-command syntax (repeatable), e.g. --fault "delay 200ms".
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Normal requests per second per connection before REQUEST_FREQUENCY_EXCEEDED (0: no limit).
    #[arg(long, default_value_t = 50)]
    rate_limit: u32,
    /// Historical (get trendbars) requests per second per connection (0: no limit).
    #[arg(long, default_value_t = 5)]
    historical_rate_limit: u32,
    /// Interval between server heartbeats (the real servers send one every 10 s).
    #[arg(long, default_value = "10s")]
    heartbeat: String,
    /// Close a connection silent for this long ("0" disables).
    #[arg(long, default_value = "30s")]
    idle_timeout: String,
    /// Bar-close -> order latency statistics (JSON) written on SIGINT/SIGTERM and `stats`.
    #[arg(long)]
    stats_out: Option<PathBuf>,
}

/// Registers SIGINT and SIGTERM handlers now (before the sockets are announced, so a signal sent
/// right after start is never missed) and returns the future that resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.speed.is_finite() && args.speed > 0.0,
        "--speed must be > 0 bars per second"
    );
    anyhow::ensure!(args.leverage > 0, "--leverage must be at least 1");
    let heartbeat = parse_duration(&args.heartbeat)
        .filter(|d| !d.is_zero())
        .context("--heartbeat must be a positive duration like 10s")?;
    let max_gap = parse_duration(&args.max_gap)
        .context("--max-gap must be a duration like 3s (0: no cap)")?;
    let idle_timeout = parse_duration(&args.idle_timeout)
        .context("--idle-timeout must be a duration like 30s (0 disables)")?;

    let series = bars::load_dir(&args.data)?;
    let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let limit = |n: u32| (n > 0).then_some(n);
    let mut core = SimCore::new(
        series,
        CoreConfig {
            credentials: Credentials {
                client_id: args.client_id,
                client_secret: args.client_secret,
                access_token: args.access_token,
                refresh_token: args.refresh_token,
                account_id: args.account_id,
            },
            start_bar: args.start_bar,
            bars_per_second: args.speed,
            balance_cents: (args.balance * 100.0).round() as i64,
            money: Money::new(args.money_digits)
                .with_context(|| format!("--money-digits must be 0..={MAX_MONEY_DIGITS}"))?,
            account_type: if args.account_type == "netted" {
                ProtoOaAccountType::Netted
            } else {
                ProtoOaAccountType::Hedged
            },
            leverage_in_cents: args.leverage.saturating_mul(100),
            slippage_points: args.slippage_points,
            model_costs: args.model_costs,
            rate_limit: limit(args.rate_limit),
            historical_rate_limit: limit(args.historical_rate_limit),
        },
    )?
    .with_ticks_per_bar(args.ticks_per_bar)
    .with_max_gap_steps(
        (!max_gap.is_zero()).then(|| (max_gap.as_secs_f64() * args.speed).ceil().max(1.0) as u64),
    );
    if args.paused {
        core.hold(Instant::now());
    }
    let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    for fault in &args.faults {
        let cmd = ControlCommand::parse(fault).with_context(|| format!("--fault {fault:?}"))?;
        let (answer, _) = core.control(&cmd, Instant::now(), wall);
        tracing::info!(fault = %fault, %answer, "fault applied at start");
    }

    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => tls::load(c, k)?,
        _ => tls::self_signed(&[])?,
    };
    if let Some(path) = &args.cert_out {
        tls::write_cert(&identity, path)?;
    }
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind --listen {}", args.listen))?;
    let control = match args.control {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind --control {addr}"))?,
        ),
        None => None,
    };
    // One machine-readable line on stdout: tests and scripts read the bound ports from it.
    println!(
        "ctrader-sim listening={} control={} cert={} symbols={} period_ms={}",
        listener.local_addr()?,
        control
            .as_ref()
            .and_then(|c| c.local_addr().ok())
            .map_or("-".to_string(), |a| a.to_string()),
        args.cert_out
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string()),
        symbols.join(","),
        core.replay().timeline().period_ms(),
    );
    let config = ServerConfig {
        tls: tls::server_config(&identity)?,
        heartbeat,
        idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
        bars_per_second: args.speed,
        stats_out: args.stats_out,
    };
    let report = run(core, config, listener, control, shutdown).await?;
    println!("{}", report.to_text());
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
