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
    /// Send an operator command to the running executor of this config (over <state_dir>/ctl.sock,
    /// as the executor's user) and print its answer. Exit status: 0 done, 1 refused, not confirmed
    /// or failed, 3 no executor to talk to. docs/OPERATIONS.md, "Operator commands".
    Ctl {
        #[arg(long)]
        config: PathBuf,
        /// Print the answer as one line of JSON (fleet's CommandOutcome).
        #[arg(long)]
        json: bool,
        /// The command id (8..=64 of A-Z a-z 0-9 _ -). A retry with the same id is answered again,
        /// never run twice. Default: a random one.
        #[arg(long)]
        id: Option<fleet::CommandId>,
        /// Confirm a flatten without being asked.
        #[arg(long)]
        yes: bool,
        #[command(subcommand)]
        cmd: CtlCmd,
    },
    /// Write a consistent snapshot of this executor's state, config and secrets into the new
    /// directory OUT (scripts/backup.sh): through the running executor, between two batches, or
    /// under its lock when none runs. Exit status 4: the state directory does not exist (the
    /// instance never ran). docs/OPERATIONS.md, "Backups".
    Snapshot {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// List the trading accounts the token file's access token can reach (ctidTraderAccountId,
    /// live or demo, login, broker): the account_id to configure is one of them.
    Accounts {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CtlCmd {
    /// Per book and symbol: position, entry, PnL, last signal and its ACK; risk use against each
    /// limit; the broker link; the last bar.
    Status,
    /// Stop opening positions (closes still go through). Kept across restarts.
    Pause,
    /// Open again (refused while a kill switch is on).
    Resume,
    /// Pause, then close the real positions of the chosen books. Asks for a confirmation.
    Flatten {
        /// One symbol; every configured symbol when absent.
        #[arg(long)]
        symbol: Option<protocol::Symbol>,
        #[arg(long, value_enum, default_value = "all")]
        books: BooksArg,
    },
    /// A symbol's three lot sizes (checked against the broker's volume rules). Kept across restarts.
    SetLots {
        symbol: protocol::Symbol,
        lot_weak: f64,
        lot_moderate: f64,
        lot_strong: f64,
    },
    /// Trade a symbol or not. Kept across restarts.
    SetEnabled {
        symbol: protocol::Symbol,
        #[arg(action = clap::ArgAction::Set)]
        enabled: bool,
    },
    /// Change risk limits; only the ones given change. Kept across restarts.
    SetRiskLimits {
        #[arg(long)]
        max_daily_loss_pct: Option<f64>,
        #[arg(long)]
        max_total_loss_pct: Option<f64>,
        #[arg(long)]
        min_equity: Option<f64>,
        #[arg(long)]
        max_open_positions: Option<u32>,
        #[arg(long)]
        max_total_lots: Option<f64>,
    },
    /// Re-read the config file (the overlay stays on top).
    Reload,
    /// Write a consistent copy of the state directory into DIR (empty, absolute, writable by the
    /// executor): what scripts/backup.sh uses.
    Snapshot { dir: PathBuf },
    /// A command as JSON, e.g. '{"op":"pause"}' (docs/HUB.md's command shape), for scripts.
    Send { json: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BooksArg {
    All,
    Live,
    Paper,
}

fn ctl_ask(cmd: CtlCmd) -> Result<executor::ops::ctl::Ask, String> {
    use executor::ops::ctl::Ask;
    use fleet::Command;
    let command = match cmd {
        CtlCmd::Status => Command::Status,
        CtlCmd::Pause => Command::Pause,
        CtlCmd::Resume => Command::Resume,
        CtlCmd::Reload => Command::Reload,
        CtlCmd::Flatten { symbol, books } => Command::Flatten {
            symbol,
            books: match books {
                BooksArg::All => fleet::Books::All,
                BooksArg::Live => fleet::Books::Live,
                BooksArg::Paper => fleet::Books::Paper,
            },
        },
        CtlCmd::SetLots {
            symbol,
            lot_weak,
            lot_moderate,
            lot_strong,
        } => Command::SetLots {
            symbol,
            lot_weak,
            lot_moderate,
            lot_strong,
        },
        CtlCmd::SetEnabled { symbol, enabled } => Command::SetEnabled { symbol, enabled },
        CtlCmd::SetRiskLimits {
            max_daily_loss_pct,
            max_total_loss_pct,
            min_equity,
            max_open_positions,
            max_total_lots,
        } => Command::SetRiskLimits(fleet::RiskLimits {
            max_daily_loss_pct,
            max_total_loss_pct,
            min_equity,
            max_open_positions,
            max_total_lots,
        }),
        CtlCmd::Snapshot { dir } => return Ok(Ask::Snapshot(dir)),
        CtlCmd::Send { json } => serde_json::from_str(&json)
            .map_err(|e| format!("not a command ({e}); e.g. '{{\"op\":\"pause\"}}'"))?,
    };
    Ok(Ask::Command {
        command,
        confirm: None,
    })
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
                if let Err(e) = show_overlay(&cfg) {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
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
        Cmd::Ctl {
            config,
            json,
            id,
            yes,
            cmd,
        } => match ctl_ask(cmd) {
            Ok(ask) => ExitCode::from(executor::ops::ctl_client::run(
                &config,
                &executor::ops::ctl_client::Invocation { ask, id, json, yes },
            )),
            Err(e) => {
                eprintln!("executor ctl: {e}");
                ExitCode::from(executor::ops::ctl_client::EXIT_REFUSED)
            }
        },
        Cmd::Snapshot { config, out } => {
            let taken = load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|cfg| Ok(executor::ops::snapshot::take(&cfg, &out)?));
            match taken {
                Ok(t) => {
                    println!(
                        "snapshot {}: {} state files and {} config/secret files ({} bytes), {}",
                        out.display(),
                        t.state_files,
                        t.other_files,
                        t.bytes,
                        match t.via {
                            executor::ops::snapshot::Via::RunningExecutor =>
                                "copied by the running executor between two batches",
                            executor::ops::snapshot::Via::Lock =>
                                "no executor running: copied under its lock",
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let never_ran = matches!(
                        e.downcast_ref(),
                        Some(executor::ops::snapshot::SnapshotError::NoStateDir(_))
                    );
                    let code = fail(&e);
                    // backup.sh skips an instance that never ran (exit 4) when it backs up all.
                    if never_ran { ExitCode::from(4) } else { code }
                }
            }
        }
        Cmd::Accounts { config } => match accounts_cmd(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

/// `executor check`: what the settings overlay changes over the file (docs/OPERATIONS.md,
/// "Settings changed by commands").
fn show_overlay(cfg: &ExecutorConfig) -> anyhow::Result<()> {
    use executor::ops::overlay::{Overlay, path};
    let p = path(&cfg.state_dir);
    let overlay = Overlay::load(&cfg.state_dir)?;
    let changes = overlay.overrides(cfg);
    if changes.is_empty() {
        println!("overlay {}: nothing overrides the config file", p.display());
        return Ok(());
    }
    println!(
        "overlay {}: {} value(s) set by executor ctl override the config file:",
        p.display(),
        changes.len()
    );
    for c in &changes {
        println!("  {} = {} (the file says {})", c.field, c.overlay, c.config);
    }
    for n in overlay.apply_to(&mut cfg.clone()) {
        println!("note: {n}");
    }
    if let Some(last) = overlay.changes.last() {
        println!(
            "  last change: {} by command {} at {}",
            last.op, last.id, last.t
        );
    }
    Ok(())
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
        let http = cfg.http.clone();
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        // Read before the runtime does anything else; a no-op outside systemd (no NOTIFY_SOCKET).
        let notifier = SystemdNotifier::from_env();
        let liveness = notifier.liveness();
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
        if let Some(http) = &http {
            let l = service::http::Listener::bind(http.bind)?;
            let m = ex.metrics();
            l.spawn(liveness.clone(), std::sync::Arc::new(move || m.encode()))
                .context("starting the health/metrics thread")?;
            tracing::info!(bind = %http.bind, "serving /healthz and /metrics");
        }
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
