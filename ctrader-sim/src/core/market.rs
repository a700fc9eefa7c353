//! Market data: the replay's steps and intermediate ticks as spots and live trendbars to the
//! subscribed sessions, the maintenance notice, and the subscription and history requests.

use std::time::{Duration, Instant};

use ctrader::messages::*;

use super::*;

impl SimCore {
    /// What every connection gets when maintenance starts: the error with the end time, so a client
    /// knows when to come back (the I/O layer closes the connections right after).
    pub fn maintenance_notices(&self, now: Instant) -> Vec<Outgoing> {
        let Some(end) = self.faults.maintenance_end(now) else {
            return Vec::new();
        };
        let notice = ProtoOaErrorRes {
            error_code: "SERVER_IS_UNDER_MAINTENANCE".to_string(),
            description: Some("The server is under maintenance".to_string()),
            maintenance_end_timestamp: Some(wire_seconds(end)),
            ..Default::default()
        };
        self.conns
            .keys()
            .map(|&conn| Outgoing {
                conn,
                kind: Kind::Event,
                delay: Duration::ZERO,
                message: notice.wrap(None),
            })
            .collect()
    }

    pub(super) fn account_conns(&self, account: i64) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.accounts.contains(&account))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Advances the replay one bar: closing then opening spots (with live trendbars) to subscribers.
    pub fn step(&mut self, now: Instant) -> Vec<Outgoing> {
        let Some(steps) = self.replay.step() else {
            return Vec::new();
        };
        self.last_step_at = Some(now);
        let period_ms = self.replay.timeline().period_ms();
        let mut out = Vec::new();
        for s in steps {
            let spec = self.specs[s.symbol].clone();
            match (s.closed, s.opened) {
                (Some(_), Some(_)) => self.latency.bar_closed(&spec.name, now),
                // No new bar tells a client this one is over (latency.rs): not timed.
                (Some(_), None) => self.latency.bar_closed_before_gap(&spec.name),
                _ => {}
            }
            let quote = match (s.opened, s.closed) {
                (Some(b), _) => Some(self.quote_at(s.symbol, b.open)),
                // A gap in the data (a weekend) begins: the last close stays quoted until the
                // bars after it open. A simplification (SIM.md): a real market is closed then.
                (None, Some(b)) if self.replay.in_gap() => Some(self.quote_at(s.symbol, b.close)),
                _ => None,
            };
            self.book.set_quote(spec.id, quote);
            let mut ticks: Vec<(Quote, Bar, i64)> = Vec::new();
            if let Some(b) = s.closed {
                ticks.push((
                    self.quote_at(s.symbol, b.close),
                    b,
                    open_ms(&b) + period_ms - 1,
                ));
            }
            if let Some(b) = s.opened {
                let forming = Bar {
                    high: b.open,
                    low: b.open,
                    close: b.open,
                    volume: 0,
                    ..b
                };
                ticks.push((self.quote_at(s.symbol, b.open), forming, open_ms(&b)));
            }
            self.publish(&spec, &ticks, &mut out);
        }
        out
    }

    /// Sends spot events (with the live trendbar to its subscribers) for one symbol.
    pub(super) fn publish(
        &self,
        spec: &SymbolSpec,
        ticks: &[(Quote, Bar, i64)],
        out: &mut Vec<Outgoing>,
    ) {
        let period = self.period;
        for (conn_id, conn) in &self.conns {
            if !conn.spots.contains(&spec.id) {
                continue;
            }
            let with_bar = conn.trendbars.contains(&(spec.id, period as i32));
            for &account in &conn.accounts {
                for (q, bar, ts) in ticks {
                    let event = ProtoOaSpotEvent {
                        ctid_trader_account_id: account,
                        symbol_id: spec.id,
                        bid: u64::try_from(price_to_units(q.bid)).ok(),
                        ask: u64::try_from(price_to_units(q.ask)).ok(),
                        trendbar: if with_bar {
                            vec![encode_live(bar, period)]
                        } else {
                            Vec::new()
                        },
                        timestamp: Some(*ts),
                        ..Default::default()
                    };
                    out.push(Outgoing {
                        conn: *conn_id,
                        kind: Kind::Event,
                        delay: Duration::ZERO,
                        message: event.wrap(None),
                    });
                }
            }
        }
    }

    /// An intermediate tick at fraction `f` (0 < f < 1) of the forming bar: every trading symbol's
    /// price moves along [`intrabar`]'s path, the book's quote follows, subscribers get a spot.
    pub fn tick(&mut self, f: f64) -> Vec<Outgoing> {
        let period_ms = self.replay.timeline().period_ms();
        let mut out = Vec::new();
        for i in 0..self.specs.len() {
            let Some(bar) = self.replay.forming_bar(i) else {
                continue;
            };
            let spec = self.specs[i].clone();
            let now = intrabar(&bar, f);
            let now = Bar {
                high: spec.round_price(now.high),
                low: spec.round_price(now.low),
                close: spec.round_price(now.close),
                ..now
            };
            let quote = self.quote_at(i, now.close);
            self.book.set_quote(spec.id, Some(quote));
            let ts = open_ms(&bar) + ((period_ms as f64) * f.clamp(0.0, 1.0)) as i64;
            self.publish(
                &spec,
                &[(quote, now, ts.min(open_ms(&bar) + period_ms - 2))],
                &mut out,
            );
        }
        out
    }
}

impl Session<'_> {
    pub(super) fn subscribe_spots(&mut self, r: &ProtoOaSubscribeSpotsReq) {
        let account = r.ctid_trader_account_id;
        if !self.known_symbols(account, &r.symbol_id) {
            return;
        }
        if let Some(dup) = r.symbol_id.iter().find(|id| {
            self.core
                .conns
                .get(&self.conn)
                .is_some_and(|c| c.spots.contains(id))
        }) {
            return self.oa_error(
                Some(account),
                "ALREADY_SUBSCRIBED",
                format!("Already subscribed to spots of symbol {dup}"),
            );
        }
        let ids = r.symbol_id.clone();
        self.conn().spots.extend(ids.iter().copied());
        self.respond(&ProtoOaSubscribeSpotsRes {
            ctid_trader_account_id: account,
            ..Default::default()
        });
        // Like the real server, a new subscriber gets the current quote straight away.
        for id in ids {
            if let Some(q) = self.core.book.quote(id) {
                let event = ProtoOaSpotEvent {
                    ctid_trader_account_id: account,
                    symbol_id: id,
                    bid: u64::try_from(price_to_units(q.bid)).ok(),
                    ask: u64::try_from(price_to_units(q.ask)).ok(),
                    timestamp: Some(self.core.market_time(self.now)),
                    ..Default::default()
                };
                self.reply.out.push(Outgoing {
                    conn: self.conn,
                    kind: Kind::Event,
                    delay: Duration::ZERO,
                    message: event.wrap(None),
                });
            }
        }
    }

    pub(super) fn unsubscribe_spots(&mut self, r: &ProtoOaUnsubscribeSpotsReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        let conn = self.conn();
        for id in &r.symbol_id {
            conn.spots.remove(id);
            conn.trendbars.retain(|(s, _)| s != id);
        }
        self.respond(&ProtoOaUnsubscribeSpotsRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            ..Default::default()
        });
    }

    pub(super) fn subscribe_trendbar(&mut self, r: &ProtoOaSubscribeLiveTrendbarReq) {
        let account = r.ctid_trader_account_id;
        if self.known_symbol(account, r.symbol_id).is_none() {
            return;
        }
        if !self.conn().spots.contains(&r.symbol_id) {
            return self.oa_error(
                Some(account),
                "NOT_SUBSCRIBED_TO_SPOTS",
                "Subscribe to spots of the symbol before its live trendbars",
            );
        }
        if !self.replayed_period(account, r.period) {
            return;
        }
        self.conn().trendbars.insert((r.symbol_id, r.period));
        self.respond(&ProtoOaSubscribeLiveTrendbarRes {
            ctid_trader_account_id: account,
            ..Default::default()
        });
    }

    pub(super) fn unsubscribe_trendbar(&mut self, r: &ProtoOaUnsubscribeLiveTrendbarReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        self.conn().trendbars.remove(&(r.symbol_id, r.period));
        self.respond(&ProtoOaUnsubscribeLiveTrendbarRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            ..Default::default()
        });
    }

    pub(super) fn get_trendbars(&mut self, r: &ProtoOaGetTrendbarsReq) {
        let account = r.ctid_trader_account_id;
        let Some(symbol) = self.known_symbol(account, r.symbol_id) else {
            return;
        };
        if !self.replayed_period(account, r.period) {
            return;
        }
        if let Err(why) = history::trendbar_window_ok(self.core.period, r) {
            return self.oa_error(Some(account), "INCORRECT_BOUNDARIES", why);
        }
        let count = r.count.map(|c| c as usize);
        // toTimestamp is inclusive on the wire; the replay's bound is exclusive.
        let bars = self.core.replay.closed_bars(
            symbol,
            r.from_timestamp,
            r.to_timestamp.saturating_add(1),
            count,
        );
        let period = self.core.period;
        self.respond(&ProtoOaGetTrendbarsRes {
            ctid_trader_account_id: account,
            period: period as i32,
            timestamp: r.to_timestamp,
            trendbar: bars.iter().map(|b| encode_closed(b, period)).collect(),
            symbol_id: Some(r.symbol_id),
            ..Default::default()
        });
    }
}
