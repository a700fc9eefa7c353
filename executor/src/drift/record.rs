//! The drift.csv row of one signal: what the model wanted and what each book did with it. Pure;
//! the core loop hands the row to its sinks ([`crate::core::sink`]).

use chrono::{DateTime, SecondsFormat, Utc};
use protocol::Signal;

use super::{BookOutcome, DriftRow};
use crate::desk::DeskOutcome;
use crate::desk::engine::ack_reason;
use crate::orders::Book;

/// The row for `sig` at `now`: `target` is what its action maps to (`LONG 0.01`, `FLAT`, empty for
/// an unknown symbol), `books` what each book did, by the book it keeps.
pub fn drift_row(
    sig: &Signal,
    now: DateTime<Utc>,
    target: String,
    books: &[(Book, &DeskOutcome)],
) -> DriftRow {
    let of = |which: Book| {
        books
            .iter()
            .find(|(b, _)| *b == which)
            .map(|(_, o)| book_outcome(o))
    };
    DriftRow {
        time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        symbol: sig.symbol.to_string(),
        bar: sig.bar_time.map(|b| b.to_string()).unwrap_or_default(),
        virtual_action: sig.action.to_string(),
        virtual_pnl: sig.virtual_pnl.to_string(),
        target,
        live: of(Book::Live),
        paper: of(Book::Paper),
    }
}

fn book_outcome(o: &DeskOutcome) -> BookOutcome {
    BookOutcome {
        position: o.position_after.clone(),
        fill: o.fill.as_ref().and_then(|f| f.price),
        slippage: o.fill.as_ref().and_then(|f| f.slippage),
        outcome: o.ack.outcome.as_str().to_string(),
        reason: ack_reason(&o.ack)
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        pnl: o.realized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Line, Reason};

    fn outcome(ack: &str, position: &str) -> DeskOutcome {
        let Ok(Line::Ack(ack)) = ack.parse::<Line>() else {
            panic!("{ack}")
        };
        DeskOutcome {
            ack,
            duplicate: false,
            remembered: true,
            fill: None,
            position_after: position.into(),
            realized: 1.5,
        }
    }

    #[test]
    fn each_book_lands_in_its_own_columns() {
        let Ok(Line::Signal(sig)) =
            "SIGNAL|EURUSD|LONG_WEAK|2|3.10|B:2026-02-03T10:00:00Z|N:1".parse::<Line>()
        else {
            panic!()
        };
        let now = "2026-02-03T11:00:01.5Z".parse().unwrap();
        let live = outcome("ACK|EURUSD|LONG_WEAK|FAIL|MARGIN", "FLAT");
        let paper = outcome("ACK|EURUSD|LONG_WEAK|OK|T:3|P:1.1", "LONG 0.01");
        let row = drift_row(
            &sig,
            now,
            "LONG 0.01".into(),
            &[(Book::Live, &live), (Book::Paper, &paper)],
        );
        assert_eq!(row.time, "2026-02-03T11:00:01.500Z");
        assert_eq!(row.live.as_ref().unwrap().reason, Reason::Margin.as_str());
        assert_eq!(row.paper.as_ref().unwrap().position, "LONG 0.01");
        // A paper-only executor has no live columns.
        let row = drift_row(&sig, now, String::new(), &[(Book::Paper, &paper)]);
        assert!(row.live.is_none());
        assert_eq!(row.paper.unwrap().outcome, "OK");
    }
}
