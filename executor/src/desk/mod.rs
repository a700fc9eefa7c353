//! A desk is one book: the signal engine plus a broker, executing the engine's plans with the
//! journal written before every order. After an ambiguous failure (timeout, disconnect) the desk
//! reconciles with the broker and looks for the order by its deterministic label; it never resends.
//! It also reconciles before deciding whenever the book contradicted the broker, and on a schedule
//! the executor's loop keeps ([`Desk::reconcile_if_due`]).

pub mod bar_memory;
pub mod engine;
mod execute;
mod flatten;
pub mod lots;
pub mod persisted;
mod recovery;
pub mod resolve;
pub mod risk;

pub use flatten::flatten_label;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use protocol::{Ack, Reason, Signal, Symbol};

use crate::broker::live_book::reconcile_due;
use crate::broker::{Broker, BrokerError};
use crate::desk::engine::{Decision, OpenStep, Plan, SignalEngine};
use crate::desk::lots::TargetPosition;
use crate::desk::persisted::Guard;
use crate::journal::{Entry, Journal, JournalError};
use crate::orders::{Book, BookSnapshot, BrokerPosition, Fill, Side};
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
    /// Told of every order as it goes to the broker (`/metrics`: New Bar → Order Sent).
    pub order_sent: Option<OrderSentObserver>,
}

/// What [`OrderSentObserver`] calls.
pub type OrderSentFn = dyn Fn(&Symbol, protocol::BarTime) + Send + Sync;

/// Called with each order's symbol and bar when it is sent.
#[derive(Clone)]
pub struct OrderSentObserver(pub std::sync::Arc<OrderSentFn>);

impl std::fmt::Debug for OrderSentObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderSentObserver")
    }
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
            order_sent: None,
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
}
