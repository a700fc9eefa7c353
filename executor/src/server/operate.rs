//! The core loop's side of operating the executor: operator commands from `executor ctl` (and,
//! later, the hub) handled one at a time between batches like a signal, journaled before they act;
//! the status document every second for `/metrics`; consistent state snapshots for backups.
//! The decisions are in [`crate::ops`]; this applies them to the books.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use fleet::{
    Book, Books, BrokerLink, ClosedPosition, Command, CommandId, CommandOutcome, CommandResult,
    FailedClose, LastBar, Nonce, Origin, Refusal, RefusalCode, Side, StatusDocument,
};
use protocol::{Signal, Symbol};

use super::{AnyBroker, Executor, engine_rules};
use crate::broker::Broker;
use crate::desk::DeskOutcome;
use crate::journal::Entry;
use crate::ops::commands::{CommandDesk, Effect, KillSwitch, Step, View, journaled};
use crate::ops::ctl::{Ask, CtlCall};
use crate::ops::metrics::ExecutorMetrics;
use crate::ops::overlay::Overlay;
use crate::ops::status::{BookView, StatusInputs, build};

/// What operating the executor needs beside the books.
#[derive(Debug)]
pub(crate) struct Operations {
    pub metrics: Arc<ExecutorMetrics>,
    pub overlay: Overlay,
    pub commands: CommandDesk,
    pub started_ms: i64,
    pub last_signals: BTreeMap<Symbol, Signal>,
    pub last_acks: BTreeMap<Book, BTreeMap<Symbol, String>>,
    pub last_bars: BTreeMap<Symbol, LastBar>,
    /// Taken by `run` (served in a task of its own).
    pub ctl_listener: Option<tokio::net::UnixListener>,
}

/// The commands of a journal with their answers, oldest first (for [`CommandDesk::restore`]).
pub(crate) fn journaled_commands(entries: &[Entry]) -> CommandDesk {
    let mut results: BTreeMap<&CommandId, &CommandResult> = BTreeMap::new();
    for e in entries {
        if let Entry::CommandResult { id, result, .. } = e {
            results.insert(id, result);
        }
    }
    CommandDesk::restore(entries.iter().filter_map(|e| match e {
        Entry::Command { id, .. } => Some((id, results.get(id).copied())),
        _ => None,
    }))
}

pub(crate) fn book_of(name: &str) -> Book {
    if name == "live" {
        Book::Live
    } else {
        Book::Paper
    }
}

fn fresh_nonce() -> Nonce {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    Nonce::from_random(b)
}

fn refused(code: RefusalCode, message: String) -> CommandResult {
    CommandResult::Refused(Refusal::new(code, message))
}

impl Executor {
    /// The metrics this executor feeds (for the `/metrics` listener).
    pub fn metrics(&self) -> Arc<ExecutorMetrics> {
        self.ops.metrics.clone()
    }

    fn kill(&self) -> KillSwitch {
        KillSwitch {
            file: self.cfg.risk.kill_switch_file.exists(),
            control: self.primary.engine.risk.kill_switch,
        }
    }

    fn link(&self) -> BrokerLink {
        match (&self.primary.broker, self.broker_link) {
            (AnyBroker::Paper(_), _) => BrokerLink::None,
            (_, "connected") => BrokerLink::Up,
            _ => BrokerLink::Down,
        }
    }

    fn book_views(&self) -> Vec<BookView> {
        let Some(any) = self.cfg.symbols.keys().next() else {
            return Vec::new();
        };
        let primary = self.primary.broker.snapshot(any);
        let pnl = |p: &crate::orders::BrokerPosition| match &self.primary.broker {
            AnyBroker::Paper(b) => b.position_pnl(p),
            AnyBroker::Ctrader(b) => b.position_pnl(p.position_id),
        };
        let book = book_of(self.primary.name);
        let mut views = vec![BookView {
            book,
            account: primary.account,
            pnl: primary
                .positions
                .iter()
                .filter_map(|p| Some((p.position_id, pnl(p)?)))
                .collect(),
            positions: primary.positions,
            guard: self.primary.engine.risk.clone(),
            last_acks: self.ops.last_acks.get(&book).cloned().unwrap_or_default(),
        }];
        if let Some(s) = &self.shadow {
            let snap = s.broker.snapshot_sync(any);
            views.push(BookView {
                book: Book::Paper,
                account: snap.account,
                pnl: snap
                    .positions
                    .iter()
                    .filter_map(|p| Some((p.position_id, s.broker.position_pnl(p)?)))
                    .collect(),
                positions: snap.positions,
                guard: s.engine.risk.clone(),
                last_acks: self
                    .ops
                    .last_acks
                    .get(&Book::Paper)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        views
    }

    /// The status document as of now.
    pub fn status_document(&self) -> StatusDocument {
        let books = self.book_views();
        build(&StatusInputs {
            mode: self.cfg.broker.mode,
            version: super::VERSION,
            started_ms: self.ops.started_ms,
            paused: self.ops.overlay.paused,
            kill_switch: self.kill().on(),
            broker_link: self.link(),
            symbols: &self.cfg.symbols,
            books: &books,
            last_signals: &self.ops.last_signals,
            last_bars: &self.ops.last_bars,
        })
    }

    /// The gauges of `/metrics` (every second and after a command).
    pub(super) fn refresh_metrics(&self) {
        self.ops.metrics.set_status(&self.status_document());
    }

    /// A bar went to the books (the status's last bar per symbol).
    pub(super) fn note_bar(&mut self, bar: &protocol::BarLine) {
        self.ops.last_bars.insert(
            bar.symbol.clone(),
            LastBar {
                timeframe: bar.timeframe,
                open_time: bar.time,
                close: bar.close.to_f64(),
            },
        );
    }

    /// What a batch of signals did, for status and metrics.
    pub(super) fn note_signals(
        &mut self,
        sigs: &[Signal],
        primary: &[Option<DeskOutcome>],
        shadow: &[Option<DeskOutcome>],
    ) {
        self.ops.metrics.on_signals(sigs);
        let pbook = book_of(self.primary.name);
        for ((sig, p), s) in sigs.iter().zip(primary).zip(shadow) {
            if !self.cfg.symbols.contains_key(&sig.symbol) {
                continue; // bounded by the config
            }
            self.ops
                .last_signals
                .insert(sig.symbol.clone(), sig.clone());
            for (book, o) in [(pbook, p), (Book::Paper, s)] {
                if let Some(o) = o {
                    self.ops.last_acks.entry(book).or_default().insert(
                        sig.symbol.clone(),
                        protocol::Line::Ack(o.ack.clone()).to_string(),
                    );
                }
            }
        }
    }

    /// One drift row's books, for the drift counters.
    pub(super) fn note_drift(&self, book: &'static str, target: &str, o: &DeskOutcome) {
        self.ops.metrics.on_drift(
            book_of(book),
            o.position_after == target,
            crate::engine::ack_reason(&o.ack),
        );
    }

    pub(super) async fn on_ctl(&mut self, call: CtlCall) {
        let outcome = match call.ask {
            Ask::Command { command, confirm } => {
                self.command(&call.id, Origin::Local, &command, confirm.as_ref())
                    .await
            }
            Ask::Snapshot(dir) => CommandOutcome {
                command_id: Some(call.id.clone()),
                origin: Origin::Local,
                op: Some("snapshot".into()),
                result: self.snapshot(&dir),
            },
        };
        self.ops.metrics.on_command(
            outcome.op.as_deref().unwrap_or("unknown"),
            outcome.result.kind(),
        );
        let _ = call.reply.send(outcome);
        self.refresh_metrics();
    }

    /// Decides and runs one operator command: journaled before it acts, answered once, its
    /// answer remembered under its id.
    pub async fn command(
        &mut self,
        id: &CommandId,
        origin: Origin,
        command: &Command,
        confirm: Option<&Nonce>,
    ) -> CommandOutcome {
        let volume_rules = match &self.primary.broker {
            AnyBroker::Ctrader(b) => b.volume_rules(),
            AnyBroker::Paper(_) => BTreeMap::new(),
        };
        let view = View {
            symbols: &self.cfg.symbols,
            volume_rules: &volume_rules,
            live: self.primary.name == "live",
            paper: self.primary.name == "paper" || self.shadow.is_some(),
            kill: self.kill(),
            paused: self.ops.overlay.paused,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        let step = self
            .ops
            .commands
            .decide(id, command, confirm, &view, fresh_nonce);
        let result = match step {
            Step::Answer(r) => r,
            Step::Run(effect) => {
                let now = self.clock.now();
                if journaled(command)
                    && let Err(e) = self.journal.append(&Entry::Command {
                        t: crate::desk::stamp(now),
                        id: id.clone(),
                        origin,
                        command: command.clone(),
                    })
                {
                    // Not remembered: nothing was done, so the same id may be tried again.
                    return CommandOutcome {
                        command_id: Some(id.clone()),
                        origin,
                        op: Some(command.op().into()),
                        result: refused(
                            RefusalCode::Failed,
                            format!("cannot journal the command, so nothing was done: {e}"),
                        ),
                    };
                }
                tracing::info!(%id, ?origin, op = command.op(), "operator command");
                let result = self.apply(effect, id, command).await;
                if journaled(command)
                    && let Err(e) = self.journal.append_lazy(&[Entry::CommandResult {
                        t: crate::desk::stamp(now),
                        id: id.clone(),
                        result: result.clone(),
                    }])
                {
                    tracing::error!(%id, error = %e, "cannot journal a command's result; a restart answers its id as interrupted");
                }
                self.ops.commands.finish(id, command, &result);
                result
            }
        };
        if let CommandResult::Refused(r) = &result {
            tracing::warn!(%id, op = command.op(), refusal = %r, "operator command refused");
        }
        CommandOutcome {
            command_id: Some(id.clone()),
            origin,
            op: Some(command.op().into()),
            result,
        }
    }

    async fn apply(&mut self, effect: Effect, id: &CommandId, command: &Command) -> CommandResult {
        match effect {
            Effect::Status => CommandResult::Status(Box::new(self.status_document())),
            Effect::Reload => match self.reload_config() {
                Ok(n) => CommandResult::Ok {
                    detail: Some(format!("config reloaded: {n} symbols")),
                },
                Err(e) => refused(
                    RefusalCode::Failed,
                    format!("the config was refused, the running one is kept: {e}"),
                ),
            },
            Effect::Pause => match self.change_overlay(id, command) {
                Ok(()) => CommandResult::Ok {
                    detail: Some("paused: no new opens; closes still go through".into()),
                },
                Err(e) => refused(
                    RefusalCode::Failed,
                    format!("paused now, but not saved (a restart would forget it): {e}"),
                ),
            },
            Effect::Resume => match self.change_overlay(id, command) {
                Ok(()) => CommandResult::Ok {
                    detail: Some(
                        "resumed: positions the model already holds are missed entries until its action changes".into(),
                    ),
                },
                Err(e) => refused(RefusalCode::Failed, format!("still paused: {e}")),
            },
            Effect::Settings(_) => match self.change_overlay(id, command) {
                Ok(()) => CommandResult::Ok {
                    detail: Some(format!("{} applied and saved", command.op())),
                },
                Err(e) => refused(RefusalCode::Failed, format!("nothing changed: {e}")),
            },
            Effect::Flatten { symbol, books } => {
                if let Err(e) = self.change_overlay(id, command) {
                    tracing::error!(error = %e, "flatten: paused, but the pause is not saved");
                }
                self.flatten(id, symbol, books).await
            }
        }
    }

    /// Records a command in the overlay, saves it, and puts it in force. A pause is in force even
    /// when it cannot be saved (it only reduces risk); anything else is applied only once saved.
    fn change_overlay(&mut self, id: &CommandId, command: &Command) -> Result<(), String> {
        let mut next = self.ops.overlay.clone();
        let t = crate::desk::stamp(self.clock.now());
        next.record(id, command, &t);
        let saved = next.save(&self.cfg.state_dir).map_err(|e| e.to_string());
        let reduces_risk = next.paused && !self.ops.overlay.paused;
        if saved.is_ok() || reduces_risk {
            self.ops.overlay = next;
            self.apply_overlay();
        }
        saved
    }

    /// Puts the overlay in force on the running config and books.
    pub(super) fn apply_overlay(&mut self) {
        for n in self.ops.overlay.apply_to(&mut self.cfg) {
            tracing::warn!("{n}");
        }
        let rules = engine_rules(&self.cfg);
        let paused = self.ops.overlay.paused;
        self.primary
            .engine
            .set_rules(rules.clone(), self.cfg.risk.clone());
        self.primary.engine.risk.paused = paused;
        match &mut self.primary.broker {
            AnyBroker::Paper(p) => p.set_specs(self.cfg.symbols.clone()),
            AnyBroker::Ctrader(c) => c.set_specs(self.cfg.symbols.clone()),
        }
        if let Some(s) = &mut self.shadow {
            s.engine.set_rules(rules, self.cfg.risk.clone());
            s.engine.risk.paused = paused;
            s.broker.set_specs(self.cfg.symbols.clone());
        }
        self.ops.metrics.set_symbols(self.cfg.symbols.keys());
    }

    async fn flatten(
        &mut self,
        id: &CommandId,
        symbol: Option<Symbol>,
        books: Books,
    ) -> CommandResult {
        let symbols: Vec<Symbol> = match symbol {
            Some(s) => vec![s],
            None => self.cfg.symbols.keys().cloned().collect(),
        };
        let now = self.clock.now();
        let pbook = book_of(self.primary.name);
        let primary_chosen = matches!(
            (books, pbook),
            (Books::All, _) | (Books::Live, Book::Live) | (Books::Paper, Book::Paper)
        );
        let shadow_chosen = matches!(books, Books::All | Books::Paper);
        let mut outcomes = Vec::new();
        if primary_chosen {
            let r = self
                .primary
                .flatten(&symbols, id, &mut self.journal, now)
                .await;
            outcomes.push((pbook, r));
        }
        if shadow_chosen && let Some(s) = &mut self.shadow {
            let r = s.flatten(&symbols, id, &mut self.journal, now).await;
            outcomes.push((Book::Paper, r));
        }
        let (mut closed, mut failed) = (Vec::new(), Vec::new());
        for (book, r) in outcomes {
            let list = match r {
                Ok(list) => list,
                Err(e) => {
                    return refused(
                        RefusalCode::Failed,
                        format!(
                            "paused; the {} book's closes could not be journaled, so none was sent: {e}",
                            crate::ops::status::book_name(book)
                        ),
                    );
                }
            };
            for (p, r) in list {
                let Ok(symbol) = p.symbol.parse::<Symbol>() else {
                    continue;
                };
                match r {
                    Ok(fill) => closed.push(ClosedPosition {
                        book,
                        symbol,
                        position_id: p.position_id,
                        side: match p.side {
                            crate::orders::Side::Buy => Side::Long,
                            crate::orders::Side::Sell => Side::Short,
                        },
                        lots: if fill.lots.is_finite() {
                            fill.lots
                        } else {
                            p.lots
                        },
                        price: fill.price,
                    }),
                    Err(e) => failed.push(FailedClose {
                        book,
                        symbol,
                        position_id: p.position_id,
                        error: e.to_string(),
                    }),
                }
            }
        }
        tracing::warn!(%id, closed = closed.len(), failed = failed.len(), "flatten done; paused");
        CommandResult::Flattened { closed, failed }
    }

    /// Copies the state directory's files into `dir` between two batches: nothing writes them
    /// meanwhile (the core loop is the only writer and it is here), so the copy is one consistent
    /// state (`crate::ops::snapshot`). The lock, the socket and temporary files are left out.
    fn snapshot(&mut self, dir: &Path) -> CommandResult {
        let fail = |m: String| refused(RefusalCode::Failed, m);
        if !dir.is_absolute() || !dir.is_dir() {
            return refused(
                RefusalCode::InvalidField,
                format!(
                    "snapshot: {} is not an existing absolute directory",
                    dir.display()
                ),
            );
        }
        match std::fs::read_dir(dir).map(|mut d| d.next().is_none()) {
            Ok(true) => {}
            Ok(false) => return fail(format!("snapshot: {} is not empty", dir.display())),
            Err(e) => return fail(format!("snapshot: {}: {e}", dir.display())),
        }
        let (files, bytes) = match crate::ops::snapshot::copy_state_files(&self.cfg.state_dir, dir)
        {
            Ok(n) => n,
            Err(e) => return fail(e.to_string()),
        };
        tracing::info!(dir = %dir.display(), files, bytes, "state snapshot written");
        CommandResult::Ok {
            detail: Some(format!(
                "{files} files ({bytes} bytes) in {}",
                dir.display()
            )),
        }
    }
}
