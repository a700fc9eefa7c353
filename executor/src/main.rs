//! `executor` binary: parses arguments, sets up logging and signals, and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use executor::Executor;
use executor::config::{ConfigError, ExecutorConfig};
use executor::drift::DriftReport;
use executor::notify::SystemdNotifier;
use executor::onboarding::auth::{self, AuthRequest};
use executor::onboarding::{accounts, describe_error};
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
    /// Summarise a drift.csv: in sync per book (warm-up and steady state apart), why any signal was
    /// not followed, slippage in points, realised PnL; in total and per symbol.
    DriftReport {
        /// The executor's drift.csv.
        #[arg(long)]
        log: PathBuf,
        /// The executor config whose `symbols.*.digits` turn slippage into points (only that is
        /// read); without it the digits are inferred from the fill prices.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also write one self-contained HTML page with the charts (no network, opens from file://).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Print only the summary (no per-symbol blocks).
        #[arg(long)]
        summary: bool,
    },
    /// Get an access token for the config's Open API application (OAuth2 authorization code flow)
    /// and write it to broker.ctrader.token_file (0600). Prints the authorization URL, then reads
    /// the address the browser was redirected to (or the bare code) from --code or standard input.
    Auth {
        #[arg(long)]
        config: PathBuf,
        /// One of the application's redirect URIs (openapi.ctrader.com/apps); not with --refresh.
        #[arg(long, required_unless_present = "refresh", conflicts_with = "refresh")]
        redirect_uri: Option<String>,
        /// The redirect address or the code itself, instead of reading standard input.
        #[arg(long, conflicts_with = "refresh")]
        code: Option<String>,
        /// Exchange the token file's refresh token for a new pair instead (refresh tokens work once).
        #[arg(long)]
        refresh: bool,
        #[arg(long, default_value = executor::onboarding::auth::AUTH_URL)]
        auth_url: String,
        #[arg(long, default_value = executor::onboarding::auth::TOKEN_URL)]
        token_url: String,
    },
    /// List the trading accounts the token file's access token can reach (ctidTraderAccountId,
    /// live or demo, login, broker): the account_id to configure is one of them.
    Accounts {
        #[arg(long)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<ExecutorConfig, ConfigError> {
    ExecutorConfig::load(path).map(ExecutorConfig::with_model_defaults)
}

/// The log filter: `RUST_LOG` (default info), with the HTTP client's own logging off whatever it
/// says, since `executor auth`'s request line carries the code, the secret and the refresh token.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let mut f = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for quiet in ["ureq=off", "ureq_proto=off"] {
        if let Ok(d) = quiet.parse() {
            f = f.add_directive(d);
        }
    }
    f
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("executor: {}", describe_error(e.as_ref()));
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
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
        Cmd::DriftReport {
            log,
            config,
            html,
            summary,
        } => match drift_report(&log, config.as_deref(), html.as_deref(), summary) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("executor drift-report: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Cmd::Auth {
            config,
            redirect_uri,
            code,
            refresh,
            auth_url,
            token_url,
        } => {
            let req = AuthRequest {
                auth_url,
                token_url,
                redirect_uri,
                code,
                refresh,
                timeout: auth::HTTP_TIMEOUT,
            };
            match auth_cmd(&config, &req) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Cmd::Accounts { config } => match accounts_cmd(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn drift_report(
    log: &std::path::Path,
    config: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
    summary: bool,
) -> anyhow::Result<()> {
    let report = match config {
        Some(c) => DriftReport::from_file_with_config(log, c)?,
        None => DriftReport::from_file(log)?,
    };
    if summary {
        print!("{}", report.summary());
    } else {
        print!("{report}");
    }
    if let Some(path) = html {
        // Written whole to a temporary name and renamed, so a browser never shows half a page.
        service::write_atomic(path, report.to_html().as_bytes(), service::Access::Shared)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn auth_cmd(config: &std::path::Path, req: &AuthRequest) -> anyhow::Result<()> {
    let ct = ExecutorConfig::load_ctrader(config)?;
    let mut stdin = std::io::stdin().lock();
    auth::run(&ct, req, &mut stdin, &mut std::io::stdout(), || {
        chrono::Utc::now().timestamp()
    })?;
    println!(
        "Next: `executor accounts --config {}` lists the accounts this token can trade.",
        config.display()
    );
    Ok(())
}

fn accounts_cmd(config: &std::path::Path) -> anyhow::Result<()> {
    let ct = ExecutorConfig::load_ctrader(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let list = rt.block_on(accounts::list(&ct))?;
    print!("{}", accounts::render(&list, &ct.host, ct.account_id));
    Ok(())
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
        // A signal during startup (the broker connection can take up to 30 s) ends it there:
        // nothing is half done, since startup sends no order and every journal write is whole.
        let ex = tokio::select! {
            ex = Executor::start(cfg, None) => ex?.with_notifier(notifier),
            _ = term.recv() => {
                tracing::info!("SIGTERM during startup: shutting down");
                return Ok(());
            }
            _ = int.recv() => {
                tracing::info!("SIGINT during startup: shutting down");
                return Ok(());
            }
        };
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
