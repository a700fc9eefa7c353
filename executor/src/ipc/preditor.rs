//! The core loop's side of the preditor link: the one active connection, and what it is sent.
//!
//! One preditor at a time: a second connection that authenticates **replaces** the first, which gets
//! `ERROR|REPLACED|...` and is closed. Refusing it instead would let a half-open connection (a
//! preditor killed without a FIN, a NAT/firewall drop) lock the real, restarted preditor out until
//! TCP keepalive noticed; the newcomer has to prove it holds the 0600 token (PROTOCOL.md §7), so
//! only a process that may read the secret can take over.
//!
//! Every line sent is logged verbatim to `signals.log` first. Closed bars go out through
//! [`Preditor::publish`], which holds back those of a pair being warmed up until its HISTORY_END
//! (see [`super::warmup`]).

use std::sync::Arc;

use protocol::{BarLine, ErrorCode, ErrorLine, Line};
use tokio::sync::mpsc;

use super::Outbound;
use super::signals_log::{Dir, SignalsLog};
use super::warmup::Warming;

#[derive(Debug)]
pub struct Preditor {
    active: Option<(u64, mpsc::UnboundedSender<Outbound>)>,
    log: Arc<SignalsLog>,
    /// WARMUPs in flight for the active connection, with the live bars held back meanwhile.
    pub warming: Warming,
}

impl Preditor {
    pub fn new(log: Arc<SignalsLog>) -> Self {
        Preditor {
            active: None,
            log,
            warming: Warming::default(),
        }
    }

    pub fn log(&self) -> &Arc<SignalsLog> {
        &self.log
    }

    /// The active connection's id, if a preditor is connected.
    pub fn connection(&self) -> Option<u64> {
        self.active.as_ref().map(|(id, _)| *id)
    }

    /// Whether `id` is the active connection (lines of a replaced one are ignored).
    pub fn is_active(&self, id: u64) -> bool {
        self.connection() == Some(id)
    }

    /// Connection `id` authenticated: it becomes the preditor, replacing any other.
    pub fn authenticated(&mut self, id: u64, version: &str, tx: mpsc::UnboundedSender<Outbound>) {
        if let Some((old, old_tx)) = self.active.take() {
            tracing::warn!(
                old,
                new = id,
                "a newer preditor connection authenticated; closing the old one"
            );
            let _ = old_tx.send(Outbound::Close(ErrorLine::new(
                ErrorCode::Replaced,
                "a newer authenticated preditor connection took over",
            )));
        }
        tracing::info!(conn = id, %version, "preditor authenticated");
        self.active = Some((id, tx));
        self.warming.reset();
    }

    /// Connection `id` closed; true if it was the preditor.
    pub fn closed(&mut self, id: u64) -> bool {
        if !self.is_active(id) {
            return false;
        }
        tracing::info!(conn = id, "preditor disconnected");
        self.active = None;
        self.warming.reset();
        true
    }

    pub fn send(&self, line: &Line) {
        self.send_all(std::slice::from_ref(line));
    }

    /// Several lines in one WebSocket message (`\n`-separated, PROTOCOL.md §2), each logged.
    pub fn send_all(&self, lines: &[Line]) {
        let Some((id, tx)) = &self.active else { return };
        if lines.is_empty() {
            return;
        }
        let texts: Vec<String> = lines.iter().map(Line::to_string).collect();
        self.log
            .record_lines(*id, Dir::Out, texts.iter().map(String::as_str));
        let _ = tx.send(Outbound::Line(texts.join("\n")));
    }

    /// A message to connection `conn` that is already in signals.log (a HISTORY block its task
    /// logged); dropped if `conn` is no longer the preditor.
    pub fn send_logged(&self, conn: u64, text: String) {
        if let Some((id, tx)) = &self.active
            && *id == conn
        {
            let _ = tx.send(Outbound::Line(text));
        }
    }

    /// Closed bars to the preditor in one message, except those of a pair being warmed up.
    pub fn publish(&mut self, bars: Vec<BarLine>) {
        let lines: Vec<Line> = bars
            .into_iter()
            .filter_map(|b| self.warming.hold(b))
            .map(Line::Bar)
            .collect();
        self.send_all(&lines);
    }

    /// Sends `err` and closes the connection (the executor is stopping).
    pub fn close(&mut self, err: ErrorLine) {
        if let Some((_, tx)) = self.active.take() {
            let _ = tx.send(Outbound::Close(err));
        }
    }
}
