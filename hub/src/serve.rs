//! `hub serve`: loads the config and secrets, opens storage, starts the broker link and the
//! dashboard, and stops cleanly on SIGTERM/SIGINT.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::broadcast;

use crate::auth::Sessions;
use crate::config::{HubConfig, read_secret};
use crate::events::Stats;
use crate::store::Store;
use crate::web::{App, router};

pub fn run(config: &Path) -> anyhow::Result<()> {
    let cfg = HubConfig::load(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: HubConfig) -> anyhow::Result<()> {
    let key = crate::keys::load_signing_key(&cfg.key_file)
        .map_err(anyhow::Error::msg)
        .context("the hub's signing key (create it with `hub gen-key`)")?;
    let password = read_secret(&cfg.broker.password_file)
        .map_err(anyhow::Error::msg)
        .context("broker.password_file (create it with `hub set-hub-user`)")?;
    let store = Store::open(&cfg.database)
        .await
        .with_context(|| format!("opening the database {}", redact(&cfg.database)))?;
    tracing::info!(backend = ?store.backend, hypertables = store.hypertables, "storage ready");
    let options = crate::mqtt::options(
        &cfg.broker.url,
        cfg.broker.ca_file.as_deref(),
        &cfg.broker.client_id,
        &cfg.broker.username,
        &password,
        Duration::from_secs(20),
    )?;
    let (events, _) = broadcast::channel(4096);
    let stats = Arc::new(Stats::default());
    let publisher = crate::link::start(options, store.clone(), events.clone(), stats.clone());
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        store: store.clone(),
        sessions: Sessions::new(cfg.session_hours as i64 * 3_600_000),
        operator_user: cfg.operator.username.clone(),
        operator_hash: cfg.operator.password_hash.clone(),
        cookie_secure: cfg.cookie_secure,
        key,
        command_ttl_ms: cfg.command_ttl_secs as i64 * 1000,
        publisher,
        events,
        stats,
        stopping,
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {} (another process has it?)", cfg.listen))?;
    let addr = listener.local_addr()?;
    // The handlers exist before anyone learns the hub is up: a SIGTERM right after the line below
    // (a script, systemd after READY=1) stops it cleanly; before, it met the default action and
    // killed the hub before the shutdown future was first polled.
    let signals = StopSignals::install().context("installing the SIGTERM/SIGINT handlers")?;
    // The one line a script waits for (tests, demo): the dashboard's real address.
    println!("hub: dashboard on http://{addr}/");
    tracing::info!(%addr, "dashboard listening");
    let mut notifier = service::SystemdNotifier::from_env();
    notifier.ready(&format!("dashboard on {addr}"));
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        signals.recv().await;
        let _ = stop_tx.send(true);
        let _ = signalled_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    let _ = signalled.await;
    notifier.stopping();
    // In-flight requests get a few seconds; then the hub stops regardless (systemd must not wait
    // out TimeoutStopSec because a browser keeps a connection open).
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "dashboard server"),
        Err(_) => tracing::warn!("open connections did not close within 5 s; stopping anyway"),
        _ => {}
    }
    store.close().await;
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        tracing::info!("stopping");
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_never_reach_a_message() {
        assert_eq!(
            super::redact("postgres://hub:s3cret@db:5432/hub"),
            "postgres://hub:***@db:5432/hub"
        );
        assert_eq!(
            super::redact("sqlite:///var/lib/hub.db"),
            "sqlite:///var/lib/hub.db"
        );
    }
}
