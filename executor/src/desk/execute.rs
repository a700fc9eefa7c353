//! Executing one batch's plans: every intent journaled before the first order, the orders sent in
//! two waves (closes and plain opens, then the opens that waited for their own symbol's closes,
//! put to the risk guard once those are confirmed), and every order of unknown fate looked up
//! with the one [`resolve`] rule after a reconcile. Nothing is ever resent.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{Desk, DeskError};
use crate::broker::{Broker, BrokerError};
use crate::desk::engine::{Execution, OpenStep, Plan};
use crate::desk::resolve::{Lookup, Resolution, needs_lookup, resolve};
use crate::desk::risk::{RiskApproved, required_margin};
use crate::journal::{Entry, Journal, JournalError};
use crate::orders::{BookSnapshot, BrokerPosition, CloseIntent, Fill, OpenIntent};

impl<B: Broker> Desk<B> {
    /// An approved open as the risk guard should count it until its fill is known.
    pub(super) fn provisional(&self, o: &OpenIntent, snap: &BookSnapshot) -> BrokerPosition {
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
    pub(super) async fn execute(
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
    pub(super) async fn run_wave(
        &mut self,
        wave: &[(usize, Order<'_>)],
    ) -> Vec<Result<Fill, BrokerError>> {
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
        if let Some(o) = &self.order_sent {
            for (_, order) in wave {
                match order {
                    Order::Close(c) => (o.0)(&c.symbol, c.bar),
                    Order::Open(a) => (o.0)(&a.item().symbol, a.item().bar),
                }
            }
        }
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

    pub(super) fn journal_result(
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
pub(super) enum Order<'a> {
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
