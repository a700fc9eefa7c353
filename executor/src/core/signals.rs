//! SIGNALs: decided on every book, answered with the primary's ACKs, recorded in drift.csv.

use protocol::{Line, Signal};

use super::Core;
use super::sink::Report;
use crate::broker::Broker;
use crate::desk::describe_target;
use crate::drift::record::drift_row;

impl<B: Broker> Core<B> {
    /// The SIGNALs that arrived together: each book decides the batch, the primary's ACKs go out
    /// in one message before the shadow book runs, then one drift row per signal (none for a
    /// repeat, which changed nothing).
    pub(super) async fn on_signals(&mut self, sigs: Vec<Signal>) {
        let now = self.clock.now();
        for sig in &sigs {
            self.report(Report::Signal(sig));
        }
        let kill = self.cfg.risk.kill_switch_file.exists();
        let preditor = &self.preditor;
        let outcomes = self
            .books
            .signals(&sigs, now, kill, |primary| {
                let acks: Vec<Line> = primary.iter().map(|o| Line::Ack(o.ack.clone())).collect();
                preditor.send_all(&acks);
            })
            .await;
        self.note_signals(&sigs, &outcomes);
        for books in &outcomes {
            for (book, o) in books {
                self.report(Report::Ack(*book, &o.ack));
            }
        }
        for (sig, books) in sigs.iter().zip(&outcomes) {
            if books.first().is_some_and(|(_, o)| o.duplicate) {
                continue;
            }
            let target = self
                .cfg
                .symbols
                .get(&sig.symbol)
                .map(|c| describe_target(&c.lots.target(sig.action)))
                .unwrap_or_default();
            self.note_drift(&target, books);
            let books: Vec<_> = books.iter().map(|(b, o)| (*b, o)).collect();
            let row = drift_row(sig, now, target, &books);
            self.report(Report::Drift(&row));
        }
        // Between batches no order is in flight: the one safe moment to rotate.
        let wall = self.clock.wall();
        self.books.rotate_journal_if_large(wall);
    }
}
