//! Bars: the ones that closed go to the books (SIGNALs may be for them, paper books price from
//! them), then to the preditor; WARMUPs are answered from the feed's history in tasks of their
//! own, and their HISTORY blocks go out when ready.

use protocol::{BarLine, ErrorCode, ErrorLine, Line, Warmup};

use super::Core;
use super::event::Event;
use super::sink::Report;
use crate::broker::{Broker, BrokerEvent};
use crate::ipc::warmup::HistoryAnswer;

/// When a published bar closes (Unix s): the next bar's open, by the calendar for MN1.
fn close_time(bar: &BarLine) -> i64 {
    bar.to_bar()
        .close_time(bar.timeframe)
        .unwrap_or(protocol::BarTime::MAX_UNIX)
}

impl<B: Broker> Core<B> {
    /// The paper books price from the last history bar until the replay publishes a new one.
    pub(super) fn seed_quotes_from_history(&mut self) {
        let symbols = &self.cfg.symbols;
        let last = self.feed.last_bars(|s| symbols.get(s).map(|c| c.timeframe));
        for b in &last {
            self.apply_bar_to_books(b);
        }
    }

    fn apply_bar_to_books(&mut self, bar: &BarLine) {
        self.books
            .bar_published(&bar.symbol, bar.timeframe, bar.time);
        let close = close_time(bar);
        if let Some(t) = chrono::DateTime::from_timestamp(close, 0) {
            self.clock.observe(t);
        }
        self.books.bar_closed(bar, close);
    }

    /// Closed bars go to the books, then to the preditor in one message (except those of a pair
    /// being warmed up, held back until its HISTORY_END).
    pub(super) fn publish_bars(&mut self, bars: Vec<BarLine>) {
        for b in &bars {
            self.apply_bar_to_books(b);
            self.note_bar(b);
        }
        for b in &bars {
            self.report(Report::Bar(b));
        }
        self.preditor.publish(bars);
    }

    /// An event of the broker's link: to the feed (bars, the link's state) and to the primary
    /// book (quotes, executions). Every one is progress: market data, account events, and each
    /// step of a reconnect (so a broker outage does not turn into a restart loop). Returns the bar
    /// it closed, for the batch to publish.
    pub(super) fn on_broker_event(&mut self, ev: &BrokerEvent) -> Option<BarLine> {
        let now = self.clock.now().timestamp();
        let heard = self.feed.on_broker_event(ev, now, self.clock.instant());
        if heard.link_changed
            && let Some(up) = self.feed.link_up()
        {
            self.ops.metrics.on_link(up);
        }
        if let Some(t) = heard
            .market_time
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        {
            self.clock.observe(t);
        }
        self.books.primary.broker.on_event(ev, now);
        self.progress();
        heard.closed
    }

    /// Starts answering a WARMUP in a task of its own (`ipc/warmup.rs`); the answer comes back
    /// as [`Event::History`]. Only a configured symbol is served: anything else is refused at
    /// once, so WARMUPs in flight are bounded by the config.
    pub(super) fn on_warmup(&mut self, w: &Warmup) {
        let Some(conn) = self.preditor.connection() else {
            return;
        };
        let Some(digits) = self.cfg.symbols.get(&w.symbol).map(|c| c.digits) else {
            self.preditor.send(&Line::Error(ErrorLine::new(
                ErrorCode::UnknownSymbol,
                format!("no {} {} bars to serve", w.symbol, w.timeframe.as_str()),
            )));
            return;
        };
        if !self.preditor.warming.start(&w.symbol, w.timeframe) {
            tracing::debug!(symbol = %w.symbol, "WARMUP already being answered");
            return;
        }
        let fetch = self.feed.history(w, digits, self.clock.now().timestamp());
        let answers = self.answers.clone();
        crate::ipc::warmup::serve(
            conn,
            w.clone(),
            fetch,
            self.preditor.log().clone(),
            move |a| {
                let _ = answers.send(Event::History(a));
            },
        );
    }

    /// A HISTORY block is ready: its bars are published (SIGNALs may be for them), it goes out,
    /// then the pair's live bars held back meanwhile.
    pub(super) fn on_history(&mut self, a: HistoryAnswer) {
        if !self.preditor.is_active(a.conn) {
            return; // for a connection that is gone
        }
        for t in &a.newest {
            self.books.bar_published(&a.symbol, a.timeframe, *t);
        }
        // The shadow paper book prices from bar closes; right after a start none has closed on
        // the live feed yet, and the twin's first signal is its decision on this history's last
        // bar: that bar's close is the paper book's price until the feed publishes a newer one.
        if let (Some(s), Some(last)) = (&mut self.books.shadow, &a.last)
            && s.broker.snapshot_sync(&a.symbol).quote.is_none()
        {
            s.broker
                .on_bar_close(&last.symbol, last.close.to_f64(), close_time(last));
        }
        // The preditor has these bars now: the live feed must not send them again (a bar the
        // builder closes later, or a backfill after a lost link, is dropped by the builder; the
        // live bars held meanwhile are dropped by `Warming::finish`).
        if let Some(last) = &a.last {
            self.feed
                .delivered(&a.symbol, a.timeframe, last.time.unix_seconds());
        }
        // Already in signals.log (the task logged it).
        self.preditor.send_logged(a.conn, a.text);
        let held = self
            .preditor
            .warming
            .finish(&a.symbol, a.timeframe, a.newest.first().copied());
        let lines: Vec<Line> = held.into_iter().map(Line::Bar).collect();
        self.preditor.send_all(&lines);
    }
}
