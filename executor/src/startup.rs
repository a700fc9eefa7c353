//! Startup, before any signal is served: directories and the state-directory lock, the kernel's
//! NTP status, the IPC token, the books (the broker behind the primary is chosen here, once, by
//! `broker.mode`), the journal's recovery (every order of unknown fate resolved with the broker),
//! the logs and the feed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::Mode;
use protocol::handshake::{IpcKey, TokenError};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::broker::ctrader::{CtraderBroker, CtraderStartError};
use crate::broker::paper::PaperBroker;
use crate::clock::{Clock, FeedClock, SystemClock};
use crate::config::{ClockSource, ExecutorConfig};
use crate::core::books::{Books, engine_rules};
use crate::core::run::BrokerLink;
use crate::core::sink::Sink;
use crate::core::{Core, Executor, Started};
use crate::desk::OrderSentObserver;
use crate::desk::engine::SignalEngine;
use crate::desk::risk::RiskGuard;
use crate::desk::{Desk, DeskError};
use crate::drift::DriftLog;
use crate::feed::bars::{BarsError, CsvBarSource};
use crate::feed::ctrader::{Instrument, LiveFeed};
use crate::feed::{Feed, Replay};
use crate::ipc::Preditor;
use crate::ipc::signals_log::SignalsLog;
use crate::journal::FsyncObserver;
use crate::journal::{Journal, JournalError};
use crate::ntp::{NtpStatus, kernel_ntp_status};
use crate::ops::metrics::ExecutorMetrics;
use crate::ops::overlay::Overlay;
use crate::secrets::{SecretError, read_secret};
use crate::state::{StateError, StateLock};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: TokenError,
    },
    #[error(transparent)]
    Bars(#[from] BarsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ctrader(#[from] CtraderStartError),
    #[error(transparent)]
    Overlay(#[from] crate::ops::overlay::OverlayError),
    #[error(transparent)]
    Ctl(#[from] crate::ops::ctl::CtlError),
    #[error(transparent)]
    Hub(#[from] crate::hub::LinkError),
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What every mode starts the same way.
struct Common {
    lock: StateLock,
    key: IpcKey,
    clock: Arc<dyn Clock>,
    overlay: Overlay,
    ctl: tokio::net::UnixListener,
    metrics: Arc<ExecutorMetrics>,
}

impl Executor {
    /// Startup: directories, lock, NTP status, token, books, journal recovery, logs, feed.
    /// `clock` overrides the configured clock (tests).
    pub async fn start(
        mut cfg: ExecutorConfig,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Executor, RunError> {
        let common = prepare(&mut cfg, clock)?;
        let new_engine =
            || SignalEngine::new(engine_rules(&cfg), RiskGuard::new(cfg.risk.clone(), None));
        let paper_desk = || -> Result<Desk<PaperBroker>, RunError> {
            let broker = PaperBroker::open_book(
                cfg.symbols.clone(),
                cfg.broker.paper.initial_balance,
                cfg.broker.paper.leverage,
                Some(cfg.state_dir.join("paper_book.json")),
            )?;
            Ok(Desk::new(
                new_engine(),
                broker,
                Some(cfg.state_dir.join("paper_desk.json")),
            )?)
        };
        match (cfg.broker.mode, &cfg.broker.ctrader) {
            (Mode::Paper, _) => {
                let primary = paper_desk()?;
                // CSV bars drive paper mode only; with cTrader the broker's feed is the one source.
                let source = match &cfg.broker.paper.bars_dir {
                    Some(dir) => {
                        let syms: Vec<_> = cfg
                            .symbols
                            .iter()
                            .map(|(s, c)| (s.clone(), c.timeframe, c.digits))
                            .collect();
                        Some(CsvBarSource::load(dir, &syms, cfg.broker.paper.start_bar)?)
                    }
                    None => None,
                };
                let feed = Feed::Replay(Replay::new(source, cfg.broker.paper.replay_period()));
                let started = assemble(cfg, common, primary, None, feed, None).await?;
                Ok(Executor::Paper(Box::new(started)))
            }
            (mode, Some(ct)) => {
                // The broker reconciles inside start(), before any signal is served.
                let (broker, events) =
                    CtraderBroker::start(ct, cfg.symbols.clone(), Duration::from_secs(30)).await?;
                let instruments = broker
                    .instruments
                    .iter()
                    .filter_map(|(s, i)| {
                        Some(Instrument {
                            symbol: s.clone(),
                            id: i.id,
                            timeframe: i.timeframe,
                            digits: cfg.symbols.get(s)?.digits,
                        })
                    })
                    .collect();
                let feed = Feed::Ctrader(Box::new(LiveFeed::new(
                    broker.client().clone(),
                    instruments,
                    common.clock.instant(),
                )));
                let primary = Desk::new(
                    new_engine(),
                    broker,
                    Some(cfg.state_dir.join("live_desk.json")),
                )?;
                let shadow = match mode {
                    Mode::Shadow => Some(paper_desk()?),
                    _ => None,
                };
                let link = Some(BrokerLink::new(events));
                let started = assemble(cfg, common, primary, shadow, feed, link).await?;
                Ok(Executor::Live(Box::new(started)))
            }
            (_, None) => Err(RunError::Ctrader(CtraderStartError::Symbol {
                symbol: "(config)".into(),
                why: "broker.ctrader is required in live and shadow modes".into(),
            })),
        }
    }
}

/// Directories, the lock, the NTP status, the token and the clock.
fn prepare(cfg: &mut ExecutorConfig, clock: Option<Arc<dyn Clock>>) -> Result<Common, RunError> {
    std::fs::create_dir_all(&cfg.log_dir).map_err(io_err(&cfg.log_dir))?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let lock = StateLock::acquire(&cfg.state_dir)?;
    // What operator commands changed wins over the file, before anything is built from it.
    let overlay = Overlay::load(&cfg.state_dir)?;
    for n in overlay.apply_to(cfg) {
        tracing::warn!("{n}");
    }
    if overlay.paused {
        tracing::warn!(
            "paused by an operator command before the restart: no new opens until `executor ctl resume`"
        );
    }
    let ctl = crate::ops::ctl::bind(&cfg.state_dir)?;
    let metrics = ExecutorMetrics::new(cfg.symbols.keys());
    match kernel_ntp_status() {
        NtpStatus::Synchronized {
            est_error_us,
            max_error_us,
        } => tracing::info!(
            est_error_us,
            max_error_us,
            "kernel clock is NTP-synchronised"
        ),
        NtpStatus::Unsynchronized { max_error_us } => tracing::warn!(
            max_error_us,
            "kernel clock is NOT NTP-synchronised: staleness and bar closes may be judged wrong; enable chrony/ntpd"
        ),
        NtpStatus::Unavailable(why) => {
            tracing::warn!(%why, "cannot read the kernel's NTP status (adjtimex)")
        }
    }
    let key = IpcKey::from_token(&read_secret(&cfg.ipc.token_file)?).map_err(|source| {
        RunError::Token {
            path: cfg.ipc.token_file.clone(),
            source,
        }
    })?;
    let clock: Arc<dyn Clock> = match (clock, cfg.clock) {
        (Some(c), _) => c,
        (None, ClockSource::System) => Arc::new(SystemClock),
        (None, ClockSource::Feed) => Arc::new(FeedClock::default()),
    };
    Ok(Common {
        lock,
        key,
        clock,
        overlay,
        ctl,
        metrics,
    })
}

/// The books' guards and journal recovery, the logs, and the core over them.
/// Operator commands that may wait for the loop at once; a sender past it waits its turn (an
/// operator's command is small and rare: this bounds memory, it never drops one).
const COMMAND_QUEUE: usize = 64;

async fn assemble<B: Broker>(
    cfg: ExecutorConfig,
    common: Common,
    mut primary: Desk<B>,
    mut shadow: Option<Desk<PaperBroker>>,
    feed: Feed,
    broker: Option<BrokerLink>,
) -> Result<Started<B>, RunError> {
    let journal_path = cfg.state_dir.join("journal.jsonl");
    let entries = Journal::read_all(&journal_path)?;
    let mut journal = Journal::open(&journal_path)?;
    let now = common.clock.now();
    // The loss limits' baseline and the kill switch first: a lost desk file must not reset them.
    primary.restore_guard(&entries, &mut journal, now)?;
    if let Some(s) = &mut shadow {
        s.restore_guard(&entries, &mut journal, now)?;
    }
    let n = primary.recover(&entries, &mut journal, now).await?;
    if let Some(s) = &mut shadow {
        s.recover(&entries, &mut journal, now).await?;
    }
    tracing::info!(
        book = %primary.book,
        resolved = n,
        "reconciled with the broker before serving signals"
    );
    let commands = crate::core::journaled_commands(&entries);
    {
        let m = common.metrics.clone();
        journal.observe_fsync(FsyncObserver(Arc::new(move |d| m.on_fsync(d))));
    }
    let paused = common.overlay.paused;
    let observer = |m: Arc<ExecutorMetrics>| {
        Some(OrderSentObserver(Arc::new(move |s, b| {
            m.on_order_sent(s, b, std::time::Instant::now())
        })))
    };
    primary.order_sent = observer(common.metrics.clone());
    primary.engine.risk.paused = paused;
    if let Some(s) = &mut shadow {
        s.order_sent = observer(common.metrics.clone());
        s.engine.risk.paused = paused;
    }
    let mut books = Books {
        primary,
        shadow,
        journal,
    };
    books.rotate_journal_if_large(common.clock.wall());

    let drift_path = cfg.log_dir.join("drift.csv");
    let drift = DriftLog::open(&drift_path).map_err(io_err(&drift_path))?;
    let log_path = cfg.log_dir.join("signals.log");
    let log = Arc::new(SignalsLog::open(&log_path).map_err(io_err(&log_path))?);
    {
        let m = common.metrics.clone();
        log.set_observer(Arc::new(move |dir, text, at| m.on_line(dir, text, at)));
    }
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(drift)];
    // The hub link: its outbox is opened (and recovered) now; the link task starts with the loop.
    let mut hub_link = None;
    let hub = match &cfg.hub {
        None => None,
        Some(h) => {
            let link = crate::hub::Link::new(
                h,
                cfg.broker.mode,
                chrono::Utc::now().timestamp_millis(),
                common.clock.clone(),
            )?;
            let (sink, reader) = crate::hub::open(h, &cfg.state_dir, common.clock.clone())
                .map_err(crate::hub::LinkError::from)?;
            hub_link = Some(sink.shared());
            sinks.push(Box::new(sink));
            tracing::info!(broker = %h.broker, instance = %h.instance_id, "hub link configured");
            Some((link, reader))
        }
    };
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let core = Core::new(
        cfg,
        common.clock,
        books,
        feed,
        Preditor::new(log),
        sinks,
        answers_tx,
        {
            let mut ops =
                crate::core::Operations::new(common.metrics, common.overlay, commands, common.ctl);
            ops.hub_link = hub_link;
            ops
        },
        common.lock,
    );
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    Ok(Started {
        core,
        answers,
        commands,
        commands_tx,
        broker,
        key: common.key,
        hub,
    })
}
