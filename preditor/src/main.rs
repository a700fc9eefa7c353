//! `preditor`: argument parsing, logging, and calls into the library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use preditor::model::{Model, load_dir};

mod bench;

#[derive(Parser, Debug)]
#[command(
    name = "preditor",
    version,
    about = "Oracle Trader brain: the digital twin per symbol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the twin over a bars CSV from FLAT, write `time,regime,action,position,intensity,virtual_pnl`
    /// (one row per decided bar) and print a summary: closed trades, win rate, realised PnL to the
    /// cent, maximum drawdown. No CSV column is rounded: `virtual_pnl` is the exact f64 of the
    /// running sum, written as the shortest decimal that reads back to it (Python's repr, as
    /// scripts/reference.py writes it), so both CSVs compare byte for byte; hence values like
    /// 612.8800000002961 where the summary says 612.88.
    Backtest {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        bars: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Connect to the executor and trade every model in `--models`.
    Run {
        /// e.g. ws://127.0.0.1:8765 (a loopback IP address; anything else is refused)
        #[arg(long)]
        executor: String,
        /// File holding the IPC token; must be mode 0600.
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        models: PathBuf,
        #[arg(long)]
        state_dir: PathBuf,
        /// Serve /healthz and /metrics on this loopback address (e.g. 127.0.0.1:9103); none when
        /// absent. docs/OPERATIONS.md, "Health and metrics".
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
    },
    /// Load and validate model zips (a file or a directory) and print what was found.
    Check { path: PathBuf },
    /// Print the in-process figures of BENCHMARKS.md: load, warm-up, resume, one bar across the
    /// symbols, backtest, and where one decision's time goes (use a release build). Logs default to
    /// `warn` so that no log line is timed.
    Bench {
        /// Directory of model zips; fewer than 20 are loaded repeatedly to make 20 twins.
        #[arg(long)]
        models: PathBuf,
        #[arg(long)]
        bars: PathBuf,
        #[arg(long, default_value_t = 20)]
        symbols: usize,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(match cli.command {
        Command::Bench { .. } => "warn",
        _ => "info,tract_linalg=warn",
    });
    match cli.command {
        Command::Backtest { model, bars, out } => {
            let model = Model::load(&model)?;
            let bars = preditor::bars::read_bars_csv(&bars)?;
            let (decisions, _) = preditor::backtest::run(
                &model.spec,
                &model,
                &bars,
                preditor::twin::TwinState::START,
            )?;
            let file =
                std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
            preditor::backtest::write_csv(std::io::BufWriter::new(file), &decisions)
                .with_context(|| format!("write {}", out.display()))?;
            let summary = preditor::summary::BacktestSummary::from_decisions(&decisions);
            println!(
                "backtest of {} {} over {} bars",
                model.symbol,
                model.timeframe,
                bars.len()
            );
            print!("{summary}");
            println!(
                "  CSV            {} ({} rows; no column rounded: virtual_pnl in full, as the reference writes it)",
                out.display(),
                decisions.len()
            );
            Ok(())
        }
        Command::Check { path } => {
            let set = if path.is_dir() {
                load_dir(&path)?
            } else {
                let mut s = preditor::model::ModelSet::default();
                match Model::load(&path) {
                    Ok(m) => s.models.push(m),
                    Err(e) => s.refused.push(e),
                }
                s
            };
            for m in &set.models {
                println!(
                    "ok {} {} {} window={} K={} sha256={}",
                    m.path.display(),
                    m.symbol,
                    m.timeframe,
                    m.spec.window,
                    m.spec.n_states,
                    m.fingerprint
                );
            }
            for e in &set.refused {
                println!("refused {e}");
            }
            if !set.refused.is_empty() {
                bail!("{} model(s) refused", set.refused.len());
            }
            Ok(())
        }
        Command::Run {
            executor,
            token_file,
            models,
            state_dir,
            http,
        } => {
            // Checked before anything else: a bad address must not wait behind model loading.
            let executor = preditor::live::executor_url(&executor)?;
            let http = http.map(service::http::Listener::bind).transpose()?;
            let key = preditor::live::read_key(&token_file)?;
            let set = load_dir(&models)?;
            for e in &set.refused {
                tracing::error!(error = %e, "model refused: that symbol is disabled");
            }
            if set.models.is_empty() {
                bail!("no usable model in {}", models.display());
            }
            let store = preditor::state::StateStore::open(&state_dir)?;
            let models: Vec<Arc<Model>> = set.models.into_iter().map(Arc::new).collect();
            let n_models = models.len();
            let mut notifier = preditor::notify::SystemdNotifier::from_env();
            let metrics = preditor::metrics::PreditorMetrics::new();
            if let Some(l) = http {
                let addr = l.local_addr();
                let m = metrics.clone();
                l.spawn(notifier.liveness(), Arc::new(move || m.encode()))?;
                tracing::info!(bind = ?addr, "serving /healthz and /metrics");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let p =
                    preditor::live::Preditor::new(models, store, env!("CARGO_PKG_VERSION"), key)?;
                // READY once the models are loaded and the twins built, before connecting: the
                // executor may be down and the preditor reconnects by itself (docs/OPERATIONS.md).
                notifier.ready(&format!("models loaded: {n_models} twin(s)"));
                let mut p = p.with_notifier(notifier).with_metrics(metrics);
                p.run(&executor, shutdown_signal()).await?;
                tracing::info!("stopped cleanly");
                anyhow::Ok(())
            })
        }
        Command::Bench {
            models,
            bars,
            symbols,
        } => bench::run(&models, &bars, symbols),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
