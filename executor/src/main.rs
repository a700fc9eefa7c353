//! `executor` binary: parses arguments, sets up logging and signals, and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use executor::config::{ConfigError, ExecutorConfig};
use executor::drift::DriftReport;
use executor::notify::SystemdNotifier;
use executor::server::Executor;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "executor",
    version,
    about = "Oracle Trader executor: signals to orders"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Validate the config, then serve the preditor until SIGTERM/SIGINT (SIGHUP reloads the config).
    /// Under systemd (`NOTIFY_SOCKET`) it sends READY=1, STATUS=, WATCHDOG=1 on progress, STOPPING=1.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the config and report every problem at once (non-zero exit if any).
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Summarise a drift.csv per symbol.
    DriftReport {
        #[arg(long)]
        log: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<ExecutorConfig, ConfigError> {
    ExecutorConfig::load(path).map(ExecutorConfig::with_model_defaults)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config } => match load(&config) {
            Ok(cfg) => {
                for n in &cfg.notes {
                    println!("note: {n}");
                }
                let enabled = cfg.symbols.values().filter(|s| s.enabled).count();
                println!(
                    "{}: OK ({} symbols, {} enabled, mode {})",
                    config.display(),
                    cfg.symbols.len(),
                    enabled,
                    cfg.broker.mode.as_str()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Cmd::DriftReport { log } => match DriftReport::from_file(&log) {
            Ok(r) => {
                print!("{r}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("executor: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: PathBuf) -> anyhow::Result<()> {
    let cfg = load(&config)?;
    for n in &cfg.notes {
        tracing::info!("{n}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let bind = cfg.ipc.bind;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        // Read before the runtime does anything else; a no-op outside systemd (no NOTIFY_SOCKET).
        let notifier = SystemdNotifier::from_env();
        let ex = Executor::start(cfg, None).await?.with_notifier(notifier);
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the IPC WebSocket on {bind}"))?;
        tracing::info!(%bind, mode = ex.mode().as_str(), "serving the preditor");
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config");
                if reload_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        };
        ex.run(listener, shutdown, reload_rx).await?;
        Ok(())
    })
}
