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

use super::Core;
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
    /// Hub command ids seen in this run, oldest first (`core/hub.rs`).
    pub hub_ids: std::collections::HashSet<CommandId>,
    pub hub_order: std::collections::VecDeque<CommandId>,
    /// The hub link's counters, for `/metrics` (when a hub section is configured).
    pub hub_link: Option<Arc<crate::hub::Shared>>,
}

impl Operations {
    pub(crate) fn new(
        metrics: Arc<ExecutorMetrics>,
        overlay: Overlay,
        commands: CommandDesk,
        ctl: tokio::net::UnixListener,
    ) -> Self {
        Operations {
            metrics,
            overlay,
            commands,
            started_ms: chrono::Utc::now().timestamp_millis(),
            last_signals: BTreeMap::new(),
            last_acks: BTreeMap::new(),
            last_bars: BTreeMap::new(),
            ctl_listener: Some(ctl),
            hub_ids: Default::default(),
            hub_order: Default::default(),
            hub_link: None,
        }
    }

    pub(crate) fn remember_hub_id(&mut self, id: &CommandId) {
        if self.hub_ids.insert(id.clone()) {
            self.hub_order.push_back(id.clone());
        }
        while self.hub_order.len() > super::hub::HUB_IDS_KEPT {
            if let Some(old) = self.hub_order.pop_front() {
                self.hub_ids.remove(&old);
            }
        }
    }
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

pub(crate) fn fleet_book(b: crate::orders::Book) -> Book {
    match b {
        crate::orders::Book::Live => Book::Live,
        crate::orders::Book::Paper => Book::Paper,
    }
}

/// One desk as the status document shows it.
fn book_view<D: Broker>(
    desk: &crate::desk::Desk<D>,
    any: &Symbol,
    last_acks: Option<&BTreeMap<Symbol, String>>,
) -> BookView {
    let snap = desk.broker.snapshot(any);
    BookView {
        book: fleet_book(desk.book),
        account: snap.account,
        pnl: snap
            .positions
            .iter()
            .filter_map(|p| Some((p.position_id, desk.broker.open_pnl(p)?)))
            .collect(),
        positions: snap.positions,
        guard: desk.engine.risk.clone(),
        last_acks: last_acks.cloned().unwrap_or_default(),
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

impl<B: Broker> Core<B> {
    /// The metrics this executor feeds (for the `/metrics` listener).
    pub fn metrics(&self) -> Arc<ExecutorMetrics> {
        self.ops.metrics.clone()
    }

    fn kill(&self) -> KillSwitch {
        KillSwitch {
            file: self.cfg.risk.kill_switch_file.exists(),
            control: self.books.primary.engine.risk.kill_switch,
        }
    }

    fn link(&self) -> BrokerLink {
        match self.feed.link_up() {
            None => BrokerLink::None,
            Some(true) => BrokerLink::Up,
            Some(false) => BrokerLink::Down,
        }
    }

    fn book_views(&self) -> Vec<BookView> {
        let Some(any) = self.cfg.symbols.keys().next() else {
            return Vec::new();
        };
        let mut views = vec![book_view(
            &self.books.primary,
            any,
            self.ops.last_acks.get(&fleet_book(self.books.primary.book)),
        )];
        if let Some(s) = &self.books.shadow {
            views.push(book_view(s, any, self.ops.last_acks.get(&Book::Paper)));
        }
        views
    }

    /// The status document as of now.
    pub fn status_document(&self) -> StatusDocument {
        let books = self.book_views();
        build(&StatusInputs {
            mode: self.cfg.broker.mode,
            version: crate::VERSION,
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
    pub(super) fn refresh_metrics(&mut self) {
        let doc = self.status_document();
        self.ops.metrics.set_status(&doc);
        if let Some(h) = &self.ops.hub_link {
            self.ops.metrics.set_hub(h);
        }
        self.report(super::sink::Report::Telemetry(&doc.telemetry));
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

    /// What a batch of signals did on every book, for status and metrics.
    pub(super) fn note_signals(
        &mut self,
        sigs: &[Signal],
        outcomes: &[Vec<(crate::orders::Book, DeskOutcome)>],
    ) {
        self.ops.metrics.on_signals(sigs);
        for (sig, books) in sigs.iter().zip(outcomes) {
            if !self.cfg.symbols.contains_key(&sig.symbol) {
                continue; // bounded by the config
            }
            self.ops
                .last_signals
                .insert(sig.symbol.clone(), sig.clone());
            for (book, o) in books {
                self.ops
                    .last_acks
                    .entry(fleet_book(*book))
                    .or_default()
                    .insert(
                        sig.symbol.clone(),
                        protocol::Line::Ack(o.ack.clone()).to_string(),
                    );
            }
        }
    }

    /// One drift row's books, for the drift counters.
    pub(super) fn note_drift(&self, target: &str, books: &[(crate::orders::Book, DeskOutcome)]) {
        for (book, o) in books {
            self.ops.metrics.on_drift(
                fleet_book(*book),
                o.position_after == target,
                crate::desk::engine::ack_reason(&o.ack),
            );
        }
    }

    pub(super) async fn on_ctl(&mut self, call: CtlCall) {
        let outcome = match call.ask {
            Ask::Command { command, confirm } => {
                self.operator_command(&call.id, Origin::Local, &command, confirm.as_ref())
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
    pub async fn operator_command(
        &mut self,
        id: &CommandId,
        origin: Origin,
        command: &Command,
        confirm: Option<&Nonce>,
    ) -> CommandOutcome {
        let volume_rules = self.books.primary.broker.volume_rules();
        let primary = self.books.primary.book;
        let view = View {
            symbols: &self.cfg.symbols,
            volume_rules: &volume_rules,
            live: primary == crate::orders::Book::Live,
            paper: primary == crate::orders::Book::Paper || self.books.shadow.is_some(),
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
                    && let Err(e) = self.books.journal.append(&Entry::Command {
                        t: now,
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
                    && let Err(e) = self.books.journal.append_lazy(&[Entry::CommandResult {
                        t: now,
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
            Effect::Reload => match self.command(super::event::Command::Reload) {
                super::event::CommandOutcome::Done => CommandResult::Ok {
                    detail: Some(format!(
                        "config reloaded: {} symbols",
                        self.cfg.symbols.len()
                    )),
                },
                super::event::CommandOutcome::Failed(e) => refused(RefusalCode::Failed, e),
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
        let t = self
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
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
        self.books.reload(&self.cfg);
        let paused = self.ops.overlay.paused;
        self.books.primary.engine.risk.paused = paused;
        if let Some(s) = &mut self.books.shadow {
            s.engine.risk.paused = paused;
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
        let pbook = fleet_book(self.books.primary.book);
        let primary_chosen = matches!(
            (books, pbook),
            (Books::All, _) | (Books::Live, Book::Live) | (Books::Paper, Book::Paper)
        );
        let shadow_chosen = matches!(books, Books::All | Books::Paper);
        let mut outcomes = Vec::new();
        if primary_chosen {
            let r = self
                .books
                .primary
                .flatten(&symbols, id, &mut self.books.journal, now)
                .await;
            outcomes.push((pbook, r));
        }
        if shadow_chosen && let Some(s) = &mut self.books.shadow {
            let r = s.flatten(&symbols, id, &mut self.books.journal, now).await;
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
                        lots: fill.lots.unwrap_or(p.lots),
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
