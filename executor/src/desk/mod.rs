//! A desk is one book: the signal engine plus a broker, executing the engine's plans with the
//! journal written before every order. After an ambiguous failure (timeout, disconnect) the desk
//! reconciles with the broker and looks for the order by its deterministic label; it never resends.
//! It also reconciles before deciding whenever the book contradicted the broker, and on a schedule
//! the executor's loop keeps ([`Desk::reconcile_if_due`]).

pub mod bar_memory;
pub mod engine;
pub mod lots;
pub mod persisted;
pub mod resolve;
pub mod risk;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use protocol::{Ack, Action, BarTime, Reason, Signal, Symbol};

use crate::broker::live_book::reconcile_due;
use crate::broker::{Broker, BrokerError};
use crate::desk::engine::{Decision, Execution, OpenStep, Plan, SignalEngine};
use crate::desk::lots::TargetPosition;
use crate::desk::persisted::Guard;
use crate::desk::resolve::{Lookup, Resolution, needs_lookup, resolve};
use crate::desk::risk::{RiskApproved, required_margin};
use crate::journal::{Entry, Journal, JournalError, ResolvedBy, pending_intents};
use crate::orders::{Book, BookSnapshot, BrokerPosition, CloseIntent, Fill, Leg, OpenIntent, Side};
use crate::state::{self, StateError};
use tokio::time::Instant;

pub use crate::desk::persisted::DeskState;

/// What one desk did with one signal (for the ACK, signals.log and drift.csv).
#[derive(Debug, Clone)]
pub struct DeskOutcome {
    pub ack: Ack,
    pub duplicate: bool,
    /// The answer is remembered for its bar and journaled (see [`crate::desk::engine::Reply`]).
    pub remembered: bool,
    /// The open's fill, or the last close's when nothing was opened.
    pub fill: Option<Fill>,
    /// The book's position on the symbol afterwards, e.g. `LONG 0.01` / `FLAT`.
    pub position_after: String,
    pub realized: f64,
}

#[derive(Debug)]
pub struct Desk<B> {
    /// The book it keeps (its broker's).
    pub book: Book,
    pub engine: SignalEngine,
    pub broker: B,
    pub state: DeskState,
    pub(crate) state_path: Option<PathBuf>,
    /// `state_path` existed at startup (or has been written since).
    pub(crate) state_file_found: bool,
    /// The guard (risk baseline, kill switch) the journal holds last, as far as this desk knows.
    pub(crate) journaled_guard: Option<Guard>,
    /// The last save failed: retried after the next signal even if nothing changed.
    pub(crate) save_due: bool,
    /// When the desk last had the broker's positions (monotonic).
    last_reconcile: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("a batch of signals produced no outcome")]
    EmptyBatch,
    #[error(
        "{book}: the desk state {path} is missing, but the journal shows this book has traded and holds no copy of its risk baseline (initial balance, the day's starting equity); starting afresh would reset the loss limits. Fix: restore {path} from a backup. To take a new baseline on purpose (a new account or challenge), use a new state_dir"
    )]
    BaselineLost { book: Book, path: String },
    #[error("{book}: reconcile failed: {source}")]
    Reconcile {
        book: Book,
        #[source]
        source: BrokerError,
    },
}

/// `LONG 0.01`, `SHORT 0.5`, `FLAT`; several positions are joined with `+`.
pub fn describe_positions(book: &BookSnapshot, symbol: &Symbol) -> String {
    let parts: Vec<String> = book
        .positions_for(symbol)
        .map(|p| {
            let d = match p.side {
                Side::Buy => "LONG",
                Side::Sell => "SHORT",
            };
            format!("{d} {}", p.lots)
        })
        .collect();
    if parts.is_empty() {
        "FLAT".to_string()
    } else {
        parts.join("+")
    }
}

pub fn describe_target(t: &TargetPosition) -> String {
    match Side::from_direction(t.direction) {
        None => "FLAT".to_string(),
        Some(Side::Buy) => format!("LONG {}", t.lots),
        Some(Side::Sell) => format!("SHORT {}", t.lots),
    }
}

impl<B: Broker> Desk<B> {
    /// A desk whose state lives at `state_path` (loaded if present).
    /// A corrupt file is an error (see [`crate::desk::persisted`] for what a missing one means).
    pub fn new(
        mut engine: SignalEngine,
        broker: B,
        state_path: Option<PathBuf>,
    ) -> Result<Self, DeskError> {
        let loaded: Option<DeskState> = match &state_path {
            Some(p) => state::read_json(p)?,
            None => None,
        };
        let state_file_found = loaded.is_some();
        let state = loaded.unwrap_or_default();
        if state.risk.is_some() {
            engine.risk.state = state.risk.clone();
        }
        engine.risk.kill_switch |= state.kill_switch;
        Ok(Desk {
            book: broker.book(),
            engine,
            broker,
            state,
            state_path,
            state_file_found,
            journaled_guard: None,
            save_due: false,
            last_reconcile: None,
        })
    }

    /// Reconciles the book if it contradicted the broker, or (`now` given: the executor's timer)
    /// if its last reconcile is old (see [`crate::broker::live_book`]). A book that is its own truth
    /// (paper) never needs it. A failure is logged: orders decided meanwhile meet the same broker.
    pub async fn reconcile_if_due(&mut self, now: Option<Instant>) {
        let suspect = self.broker.suspect();
        let due = match (now, self.broker.reconcile_every()) {
            (Some(now), Some(every)) => reconcile_due(self.last_reconcile, now, every, false),
            _ => false,
        };
        if suspect.is_none() && !due {
            return;
        }
        match self.broker.reconcile().await {
            Ok(snap) => {
                self.last_reconcile = Some(Instant::now());
                let positions = snap.positions.len();
                match suspect {
                    Some(why) => {
                        tracing::warn!(book = %self.book, %why, positions, "reconciled a book that contradicted the broker")
                    }
                    None => tracing::debug!(book = %self.book, positions, "scheduled reconcile"),
                }
            }
            Err(e) => tracing::warn!(book = %self.book, error = %e, "reconcile failed"),
        }
    }

    /// Startup: answered signals back into the engine, then every order whose fate the journal does
    /// not know is looked up at the broker (by label) and its result journaled. No order is resent.
    pub async fn recover(
        &mut self,
        entries: &[Entry],
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<usize, DeskError> {
        for e in entries.iter().filter(|e| e.book() == self.book) {
            match e {
                Entry::Ack { line, .. } => {
                    if let Some(bar) = line.bar_time {
                        self.engine.remember(&line.symbol, bar, line.clone());
                    }
                }
                // A bar with an order intent was published by the executor before the restart:
                // the preditor's repeat of its signal is for a real bar.
                Entry::Intent { symbol, bar, .. } => self.engine.on_bar_journaled(symbol, *bar),
                Entry::Result { .. } | Entry::Guard { .. } => {}
            }
        }
        let pending = pending_intents(entries, self.book);
        if pending.is_empty() {
            return Ok(0);
        }
        let snap = self
            .broker
            .reconcile()
            .await
            .map_err(|source| DeskError::Reconcile {
                book: self.book,
                source,
            })?;
        self.last_reconcile = Some(Instant::now());
        for p in &pending {
            let Entry::Intent {
                coid,
                leg,
                position_id,
                lots,
                symbol,
                bar,
                action,
                ..
            } = p
            else {
                continue;
            };
            let lookup = match (leg, position_id) {
                (Leg::Open, _) => Some(Lookup::Open { coid }),
                (Leg::Close, Some(id)) => Some(Lookup::Close {
                    position_id: *id,
                    lots: *lots,
                }),
                // A close of no position: nothing was held, nothing to look up.
                (Leg::Close, None) => None,
            };
            let resolution = lookup.map_or(Resolution::NotDone, |l| resolve(&l, &snap));
            let (ok, fill, error) = match (&resolution, lookup) {
                (Resolution::Done(f), _) => (true, Some(f), None),
                (Resolution::NotDone, Some(l)) => (false, None, Some(l.not_done_after_restart())),
                (Resolution::NotDone, None) => (true, None, None),
            };
            tracing::warn!(book = %self.book, coid = %coid, ok, "resolved an order left pending by a restart");
            journal.append(&Entry::Result {
                t: now,
                book: self.book,
                coid: coid.clone(),
                ok,
                position_id: fill.map(|f| f.position_id).or(*position_id),
                price: fill.and_then(|f| f.price),
                lots: fill.and_then(|f| f.lots),
                error: error.map(str::to_string),
                resolved_by: Some(ResolvedBy::Reconcile),
            })?;
            if matches!(leg, Leg::Open) && !ok {
                // The order may still be on its way to the broker (sent just before the crash).
                // Answering the repeated signal with a new order under the same label could open
                // the position twice, so the bar is answered FAIL — as a timeout that reconcile
                // could not resolve is — and the order is never resent.
                self.remember_unresolved_open(journal, now, symbol, *bar, *action)?;
            }
        }
        Ok(pending.len())
    }

    /// Journals and remembers `FAIL|BROKER_ERROR` for the bar of an open whose fate a restart
    /// could not learn.
    fn remember_unresolved_open(
        &mut self,
        journal: &mut Journal,
        now: DateTime<Utc>,
        symbol: &Symbol,
        bar: BarTime,
        action: Action,
    ) -> Result<(), DeskError> {
        let ack = Ack::fail(symbol.clone(), action, Reason::BrokerError).with_bar_time(Some(bar));
        journal.append(&Entry::Ack {
            t: now,
            book: self.book,
            symbol: symbol.clone(),
            bar,
            line: ack.clone(),
        })?;
        self.engine.remember(symbol, bar, ack);
        Ok(())
    }

    /// Handles one SIGNAL on this book (a batch of one).
    pub async fn handle_signal(
        &mut self,
        sig: &Signal,
        now: DateTime<Utc>,
        kill_file_present: bool,
        journal: &mut Journal,
    ) -> Result<DeskOutcome, DeskError> {
        let mut out = self
            .handle_batch(std::slice::from_ref(sig), now, kill_file_present, journal)
            .await;
        out.pop().ok_or(DeskError::EmptyBatch)
    }

    /// Handles the SIGNALs that arrived together, one outcome per signal in their order.
    ///
    /// Every signal is decided first, then all intents go to the journal behind one fsync, then
    /// every order is on the wire before the first answer is awaited: closes (and opens with
    /// nothing to close) in a first wave, the opens that waited for their closes in a second, each
    /// put to the risk guard once its closes are confirmed (so at the position limit a reversal
    /// takes the slot its own close freed). A symbol that appears twice starts a new batch, so its
    /// second signal sees the first's fills.
    ///
    /// Every signal gets an outcome, and an ACK says what happened at the broker: a disk failure
    /// after orders were sent (results, ACKs or the desk state not saved) is logged and retried,
    /// never turned into a FAIL; intents that cannot be journaled send no order and answer
    /// `FAIL|JOURNAL_ERROR`.
    pub async fn handle_batch(
        &mut self,
        sigs: &[Signal],
        now: DateTime<Utc>,
        kill_file_present: bool,
        journal: &mut Journal,
    ) -> Vec<DeskOutcome> {
        // Decide on the broker's positions, not on a book that contradicted them.
        self.reconcile_if_due(None).await;
        let mut out = Vec::with_capacity(sigs.len());
        let mut rest = sigs;
        while !rest.is_empty() {
            let mut seen = BTreeSet::new();
            let n = rest
                .iter()
                .take_while(|s| seen.insert(s.symbol.clone()))
                .count();
            let (batch, tail) = rest.split_at(n);
            out.extend(
                self.handle_distinct(batch, now, kill_file_present, journal)
                    .await,
            );
            rest = tail;
        }
        out
    }

    /// [`Desk::handle_batch`] for signals on distinct symbols.
    async fn handle_distinct(
        &mut self,
        sigs: &[Signal],
        now: DateTime<Utc>,
        kill_file_present: bool,
        journal: &mut Journal,
    ) -> Vec<DeskOutcome> {
        // Decide every signal. An open with nothing to close sees the opens approved before it in
        // this batch as positions (count, lots, margin), and not the positions this batch closes:
        // until a close is confirmed its margin is still held, so a batch never exceeds a risk
        // limit even if some of its closes fail. An open that waits for its own symbol's closes is
        // decided once they are confirmed (wave 2, see `execute`).
        let mut provisional: Vec<BrokerPosition> = Vec::new();
        let mut decisions = Vec::with_capacity(sigs.len());
        for sig in sigs {
            let mut snap = self.broker.snapshot(&sig.symbol);
            snap.positions.extend(provisional.iter().cloned());
            let decision = self.engine.decide(sig, now, &snap, kill_file_present);
            if let Decision::Execute(plan) = &decision
                && let OpenStep::Open(approved) = &plan.open
            {
                provisional.push(self.provisional(approved.item(), &snap));
            }
            decisions.push(decision);
        }
        let mut plans: Vec<&mut Plan> = decisions
            .iter_mut()
            .filter_map(|d| match d {
                Decision::Execute(p) => Some(p),
                Decision::Reply(_) => None,
            })
            .collect();
        // A new risk baseline goes to the journal ahead of the first order that relies on it,
        // behind the same fsync as the intents.
        let risk_changed = self.engine.take_risk_dirty();
        if risk_changed && !plans.is_empty() {
            self.journal_guard_lazily(journal, now);
        }
        // `None`: the intents could not be journaled, so no order was sent.
        let mut execs = match self
            .execute(&mut plans, journal, now, kill_file_present)
            .await
        {
            Ok(execs) => Some(execs.into_iter()),
            Err(e) => {
                tracing::error!(book = %self.book, error = %e, signals = plans.len(),
                    "cannot journal the intents: no order was sent; answering JOURNAL_ERROR");
                None
            }
        };

        let mut out = Vec::with_capacity(sigs.len());
        for (sig, decision) in sigs.iter().zip(decisions) {
            let (ack, duplicate, remembered, fill) = match decision {
                Decision::Reply(r) => (r.ack, r.duplicate, r.remembered, None),
                // Not remembered: nothing happened, so a repeat of the signal is tried again.
                Decision::Execute(plan) if execs.is_none() => (
                    Ack::fail(plan.symbol.clone(), plan.action, Reason::JournalError)
                        .with_bar_time(Some(plan.bar)),
                    false,
                    false,
                    None,
                ),
                Decision::Execute(plan) => {
                    let exec = execs.as_mut().and_then(Iterator::next).unwrap_or_default();
                    let ack = self.engine.complete(&plan, &exec);
                    let fill = match &exec.open {
                        Some(Ok(f)) => Some(f.clone()),
                        _ => exec
                            .closes
                            .iter()
                            .rev()
                            .find_map(|r| r.as_ref().ok().cloned()),
                    };
                    (ack, false, true, fill)
                }
            };
            if remembered
                && let Some(bar) = ack.bar_time
                && let Err(e) = journal.append_lazy(&[Entry::Ack {
                    t: now,
                    book: self.book,
                    symbol: sig.symbol.clone(),
                    bar,
                    line: ack.clone(),
                }])
            {
                // Answered from memory until a restart; after one, the pending intent is
                // reconciled with the broker instead.
                tracing::error!(book = %self.book, symbol = %sig.symbol, error = %e,
                    "cannot journal the ACK; it is sent as it is");
            }
            let after = self.broker.snapshot(&sig.symbol);
            out.push(DeskOutcome {
                ack,
                duplicate,
                remembered,
                fill,
                position_after: describe_positions(&after, &sig.symbol),
                realized: 0.0,
            });
        }
        let realized_changed = out
            .iter()
            .any(|o| o.fill.as_ref().is_some_and(|f| f.realized_pnl.is_some()));
        if risk_changed || realized_changed || self.save_due {
            self.save_after_orders(journal, now);
        }
        for (o, sig) in out.iter_mut().zip(sigs) {
            o.realized = self
                .state
                .realized
                .get(sig.symbol.as_str())
                .copied()
                .unwrap_or(0.0);
        }
        out
    }

    /// An approved open as the risk guard should count it until its fill is known.
    fn provisional(&self, o: &OpenIntent, snap: &BookSnapshot) -> BrokerPosition {
        let margin = match (
            self.engine.rules().symbols.get(&o.symbol),
            snap.quote,
            &snap.account,
        ) {
            (Some(spec), Some(q), Some(acct)) => {
                required_margin(spec, o.lots, q.price_for(o.side), acct.leverage)
            }
            // The guard approves no open without a quote and an account.
            _ => 0.0,
        };
        BrokerPosition {
            position_id: 0,
            symbol: o.symbol.to_string(),
            side: o.side,
            lots: o.lots,
            entry_price: None,
            margin,
            label: Some(o.client_order_id.clone()),
        }
    }

    /// Runs the plans of one batch; one [`Execution`] per plan, in order. `Err` only when the
    /// intents could not be journaled, before any order was sent.
    ///
    /// Wave 1 sends every close, and the opens of plans with nothing to close. Wave 2 sends the
    /// opens that waited for their own symbol's closes ([`OpenStep::AfterCloses`]): each is put to
    /// the risk guard once its closes are confirmed, on the book after wave 1 (the confirmed
    /// closes freed their slots, lots and margin) plus the wave-2 opens approved before it.
    async fn execute(
        &mut self,
        plans: &mut [&mut Plan],
        journal: &mut Journal,
        now: DateTime<Utc>,
        kill_file_present: bool,
    ) -> Result<Vec<Execution>, JournalError> {
        let mut execs: Vec<Execution> = plans.iter().map(|_| Execution::default()).collect();
        if plans.is_empty() {
            return Ok(execs);
        }
        // Every intent of the batch is on disk (one fsync) before the first order goes out, the
        // opens of wave 2 too: recovery looks any of them up by label rather than guess.
        let intents: Vec<Entry> = plans
            .iter()
            .flat_map(|plan| {
                let closes = plan
                    .closes
                    .iter()
                    .map(|c| Entry::close_intent(self.book, now, c));
                let open = match &plan.open {
                    OpenStep::Open(approved) => Some(approved.item()),
                    OpenStep::AfterCloses(o) => Some(o),
                    _ => None,
                }
                .map(|o| Entry::open_intent(self.book, now, o));
                closes.chain(open).collect::<Vec<_>>()
            })
            .collect();
        journal.append_all(&intents)?;

        // First wave: every close, and the opens of plans with nothing to close.
        let mut wave = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            wave.extend(plan.closes.iter().map(|c| (i, Order::Close(c))));
            if plan.closes.is_empty()
                && let OpenStep::Open(approved) = &plan.open
            {
                wave.push((i, Order::Open(approved)));
            }
        }
        let mut results = Vec::new();
        for ((i, order), r) in wave.iter().zip(self.run_wave(&wave).await) {
            match order {
                Order::Close(c) => {
                    if let Ok(f) = &r
                        && let Some(pnl) = f.realized_pnl
                    {
                        *self
                            .state
                            .realized
                            .entry(c.symbol.to_string())
                            .or_insert(0.0) += pnl;
                    }
                    results.push((c.client_order_id.clone(), r.clone()));
                    execs[*i].closes.push(r);
                }
                Order::Open(a) => {
                    results.push((a.item().client_order_id.clone(), r.clone()));
                    execs[*i].open = Some(r);
                }
            }
        }

        // Second wave: the opens whose closes all went through, each decided now. An open that is
        // not sent (a close failed, or the guard refused it) is journaled as such, so recovery has
        // nothing to guess.
        // A wave-1 open of unknown fate may still fill: it keeps its slot.
        let mut provisional: Vec<BrokerPosition> = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            if let (OpenStep::Open(a), Some(Err(e))) = (&plan.open, &execs[i].open)
                && e.is_ambiguous()
            {
                let snap = self.broker.snapshot(&plan.symbol);
                provisional.push(self.provisional(a.item(), &snap));
            }
        }
        for (i, plan) in plans.iter_mut().enumerate() {
            let OpenStep::AfterCloses(intent) = &plan.open else {
                continue;
            };
            let coid = intent.client_order_id.clone();
            if !execs[i].closes.iter().all(|r| r.is_ok()) {
                let not_sent = BrokerError::NotSent("a close of this plan failed first".into());
                results.push((coid, Err(not_sent)));
                continue;
            }
            let mut snap = self.broker.snapshot(&plan.symbol);
            snap.positions.extend(provisional.iter().cloned());
            self.engine
                .approve_after_closes(plan, now, &snap, kill_file_present);
            match &plan.open {
                OpenStep::Open(approved) => {
                    provisional.push(self.provisional(approved.item(), &snap));
                }
                OpenStep::Refused(reason) => {
                    let why = format!("refused by the risk guard after the closes: {reason}");
                    results.push((coid, Err(BrokerError::NotSent(why))));
                }
                _ => {}
            }
        }
        let mut wave = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            if !plan.closes.is_empty()
                && let OpenStep::Open(approved) = &plan.open
            {
                wave.push((i, Order::Open(approved)));
            }
        }
        for ((i, order), r) in wave.iter().zip(self.run_wave(&wave).await) {
            if let Order::Open(a) = order {
                results.push((a.item().client_order_id.clone(), r.clone()));
                execs[*i].open = Some(r);
            }
        }

        // The book is saved before the results are journaled: a crash in between leaves pending
        // intents, which recovery resolves against the saved book.
        if let Err(e) = self.broker.commit() {
            tracing::error!(book = %self.book, error = %e, "cannot save the book after its fills");
        }
        for (coid, r) in &results {
            if let Err(e) = r {
                tracing::warn!(book = %self.book, coid = %coid, error = %e, "order failed");
            }
            // The order is at the broker whatever the disk says: a result that cannot be written
            // leaves its intent pending, and a restart reconciles it by label.
            if let Err(e) = self.journal_result(journal, now, coid, r) {
                tracing::error!(book = %self.book, coid = %coid, error = %e,
                    "cannot journal an order's result; a restart reconciles it with the broker");
            }
        }
        Ok(execs)
    }

    /// Sends every order of a wave, then books the answers in order. An answer whose outcome is
    /// unknown (timeout, disconnect), or a close the broker answered POSITION_NOT_FOUND, is looked
    /// up with one reconcile for the whole wave: a close whose position is gone went through (or
    /// was closed before, by a stop-out or by hand: either way it is not held); an open found by
    /// its label filled. Nothing is resent.
    async fn run_wave(&mut self, wave: &[(usize, Order<'_>)]) -> Vec<Result<Fill, BrokerError>> {
        if wave.is_empty() {
            return Vec::new();
        }
        let tickets: Vec<_> = wave
            .iter()
            .map(|(_, order)| match order {
                Order::Close(c) => self.broker.submit_close(c),
                Order::Open(a) => self.broker.submit_open(a),
            })
            .collect();
        let answers = futures_util::future::join_all(tickets).await;
        let mut fills: Vec<Result<Fill, BrokerError>> =
            answers.into_iter().map(|a| self.broker.settle(a)).collect();
        if !fills.iter().any(needs_lookup) {
            return fills;
        }
        let snap = match self.broker.reconcile().await {
            Ok(snap) => snap,
            Err(e) => {
                tracing::warn!(book = %self.book, error = %e, "reconcile after an ambiguous order failed");
                self.broker.distrust(format!(
                    "orders of unknown outcome, and the reconcile failed: {e}"
                ));
                return fills;
            }
        };
        self.last_reconcile = Some(Instant::now());
        for ((_, order), r) in wave.iter().zip(fills.iter_mut()) {
            if !needs_lookup(r) {
                continue;
            }
            match resolve(&order.lookup(), &snap) {
                Resolution::Done(f) => *r = Ok(f),
                // It may still fill: the next decision waits for a fresh reconcile.
                Resolution::NotDone => self
                    .broker
                    .distrust("an order's outcome is unknown after a reconcile".into()),
            }
        }
        fills
    }

    fn journal_result(
        &self,
        journal: &mut Journal,
        now: DateTime<Utc>,
        coid: &str,
        r: &Result<Fill, BrokerError>,
    ) -> Result<(), DeskError> {
        journal.append_lazy(&[Entry::Result {
            t: now,
            book: self.book,
            coid: coid.to_string(),
            ok: r.is_ok(),
            position_id: r.as_ref().ok().map(|f| f.position_id),
            price: r.as_ref().ok().and_then(|f| f.price),
            lots: r.as_ref().ok().and_then(|f| f.lots),
            error: r.as_ref().err().map(|e| e.to_string()),
            resolved_by: None,
        }])?;
        Ok(())
    }
}

/// One order of a wave.
enum Order<'a> {
    Close(&'a CloseIntent),
    Open(&'a RiskApproved<OpenIntent>),
}

impl Order<'_> {
    /// How to find it at the broker when its answer is unknown.
    fn lookup(&self) -> Lookup<'_> {
        match self {
            Order::Close(c) => Lookup::Close {
                position_id: c.position_id,
                lots: c.lots,
            },
            Order::Open(a) => Lookup::Open {
                coid: &a.item().client_order_id,
            },
        }
    }
}
