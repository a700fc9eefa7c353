//! The live book's positions as the broker's execution events and reconciles report them. Pure:
//! the cTrader adapter ([`crate::broker::ctrader`]) feeds it and maps the broker's positions to
//! the book's terms.
//!
//! Events can come late, twice or out of order (the simulator's `delay` fault delivers an
//! ORDER_ACCEPTED after its ORDER_FILLED). So an event changes the book only when it is news:
//! - each order's events go through its state machine ([`ctrader::domain::OrderProgress`]), which
//!   only moves forward: a repeated deal, an older executed volume, anything after the order ended
//!   is ignored;
//! - an ORDER_ACCEPTED never changes a position: nothing of the order has executed, and the
//!   position it may carry is the one from before the order;
//! - a position snapshot older (`utcLastUpdateTimestamp`) than the one held is ignored;
//! - a closed position never reopens (cTrader never reuses a position id), so a late snapshot of
//!   it is ignored.
//!
//! What contradicts the book (a close of a position it does not hold, the broker's
//! POSITION_NOT_FOUND for one it does) makes it suspect; the desk then reconciles before it
//! decides anything else, and the executor's loop reconciles on a schedule anyway
//! ([`reconcile_due`], in wall-clock time: a replay's fast market clock must not multiply it).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use ctrader::domain::{Applied, OrderProgress};
use ctrader::messages::{
    ProtoOaExecutionEvent, ProtoOaExecutionType, ProtoOaPosition, ProtoOaPositionStatus,
};

use crate::orders::BrokerPosition;

/// Ended orders and closed positions remembered to recognise their late events (the oldest are
/// forgotten first; a day of 20 symbols trading every bar is a few hundred).
pub const REMEMBERED: usize = 4096;

/// How often the live book is reconciled when nothing contradicts it.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// True when the book must be reconciled: it is suspect, was never reconciled, or the last
/// reconcile is `every` old (monotonic time).
pub fn reconcile_due(last: Option<Instant>, now: Instant, every: Duration, suspect: bool) -> bool {
    suspect || last.is_none_or(|t| now.saturating_duration_since(t) >= every)
}

/// Maps a broker position to the book's terms and its volume (0.01 units); `None` for a
/// position the book does not keep.
pub type MapPosition<'a> = &'a dyn Fn(&ProtoOaPosition) -> Option<(BrokerPosition, i64)>;

/// What an event did to the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A position was opened, changed or closed.
    Changed,
    /// Nothing to change (an ORDER_ACCEPTED, an event without a position, another symbol).
    Nothing,
    /// Older than what the book knows, or repeated: ignored.
    Stale,
    /// It contradicts the book, which is now suspect.
    Contradiction(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Held {
    position: BrokerPosition,
    volume: i64,
    updated_ms: i64,
    /// The broker's snapshot it was mapped from (to map it again: [`LiveBook::remap`]).
    broker: ProtoOaPosition,
}

/// A bounded set that forgets its oldest members.
#[derive(Debug, Default)]
struct Recent<K> {
    order: VecDeque<K>,
}

impl<K: PartialEq + Copy> Recent<K> {
    /// Remembers `k`; returns the member forgotten to make room.
    fn push(&mut self, k: K) -> Option<K> {
        self.order.retain(|x| *x != k);
        self.order.push_back(k);
        if self.order.len() > REMEMBERED {
            self.order.pop_front()
        } else {
            None
        }
    }
}

/// The live book's positions.
#[derive(Debug, Default)]
pub struct LiveBook {
    positions: BTreeMap<u64, Held>,
    closed: HashSet<u64>,
    closed_order: Recent<u64>,
    orders: HashMap<i64, OrderProgress>,
    orders_order: Recent<i64>,
    suspect: Option<String>,
}

impl LiveBook {
    /// The positions held, by id.
    pub fn positions(&self) -> Vec<BrokerPosition> {
        self.positions
            .values()
            .map(|h| h.position.clone())
            .collect()
    }

    /// A position held.
    pub fn position(&self, id: u64) -> Option<&BrokerPosition> {
        self.positions.get(&id).map(|h| &h.position)
    }

    /// The broker volume (0.01 units) of a position held.
    pub fn volume_of(&self, id: u64) -> Option<i64> {
        self.positions.get(&id).map(|h| h.volume)
    }

    /// The broker's snapshots of the positions held.
    pub fn broker_positions(&self) -> impl Iterator<Item = &ProtoOaPosition> {
        self.positions.values().map(|h| &h.broker)
    }

    /// Maps every position held again from its broker snapshot (the mapping learned something,
    /// e.g. a symbol's volume rules); one `map` no longer keeps is dropped.
    pub fn remap(&mut self, map: MapPosition<'_>) {
        self.positions.retain(|_, h| match map(&h.broker) {
            Some((position, volume)) => {
                (h.position, h.volume) = (position, volume);
                true
            }
            None => false,
        });
    }

    /// Why the book must be reconciled before it is trusted, if it must.
    pub fn suspect(&self) -> Option<&str> {
        self.suspect.as_deref()
    }

    /// Something the broker said contradicts the book.
    pub fn mark_suspect(&mut self, why: impl Into<String>) {
        let why = why.into();
        tracing::warn!(%why, "the live book contradicts the broker; reconciling");
        self.suspect = Some(why);
    }

    /// The broker's open positions replace the book's; a position the book held that is not among
    /// them was closed.
    pub fn apply_reconcile<'p>(
        &mut self,
        open: impl IntoIterator<Item = &'p ProtoOaPosition>,
        map: MapPosition<'_>,
    ) {
        let mut next = BTreeMap::new();
        for p in open {
            if let Some((position, volume)) = map(p) {
                let id = position.position_id;
                // The broker is the truth: a position it lists is open, whatever the book thought.
                self.closed.remove(&id);
                next.insert(
                    id,
                    Held {
                        position,
                        volume,
                        updated_ms: p.utc_last_update_timestamp.unwrap_or(0),
                        broker: p.clone(),
                    },
                );
            }
        }
        let gone: Vec<u64> = self
            .positions
            .keys()
            .filter(|id| !next.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.remember_closed(id);
        }
        self.positions = next;
        self.suspect = None;
    }

    /// An execution event no request was waiting for (or a late copy of one that was).
    pub fn apply_event(&mut self, ev: &ProtoOaExecutionEvent, map: MapPosition<'_>) -> Effect {
        use ProtoOaExecutionType as T;
        let kind = T::try_from(ev.execution_type).ok();
        let order_step = matches!(
            kind,
            Some(
                T::OrderAccepted
                    | T::OrderFilled
                    | T::OrderPartialFill
                    | T::OrderCancelled
                    | T::OrderExpired
                    | T::OrderRejected
            )
        );
        if order_step && let Some(order) = &ev.order {
            let progress = self.order_mut(order.order_id);
            if progress.apply(ev) != Applied::News {
                return Effect::Stale;
            }
        }
        if kind == Some(T::OrderAccepted) {
            return Effect::Nothing;
        }
        let closing = ev
            .order
            .as_ref()
            .and_then(|o| o.closing_order)
            .unwrap_or(false);
        match &ev.position {
            Some(p) => self.apply_snapshot(p, closing, map),
            None => Effect::Nothing,
        }
    }

    /// The whole answer to one of our orders, once it ended: the order is remembered as ended (so
    /// its late events are stale) and its last position snapshot applied.
    pub fn apply_order(&mut self, order: &OrderProgress, map: MapPosition<'_>) -> Effect {
        if let Some(id) = order.order_id() {
            *self.order_mut(id) = order.clone();
        }
        match order.position() {
            Some(p) => self.apply_snapshot(p, order.is_closing(), map),
            None => Effect::Nothing,
        }
    }

    fn order_mut(&mut self, id: i64) -> &mut OrderProgress {
        if !self.orders.contains_key(&id)
            && let Some(old) = self.orders_order.push(id)
        {
            self.orders.remove(&old);
        }
        self.orders.entry(id).or_default()
    }

    fn remember_closed(&mut self, id: u64) {
        self.closed.insert(id);
        if let Some(old) = self.closed_order.push(id) {
            self.closed.remove(&old);
        }
    }

    fn apply_snapshot(
        &mut self,
        p: &ProtoOaPosition,
        closing: bool,
        map: MapPosition<'_>,
    ) -> Effect {
        use ProtoOaPositionStatus as S;
        let Some((position, volume)) = map(p) else {
            return Effect::Nothing;
        };
        let id = position.position_id;
        let updated_ms = p.utc_last_update_timestamp.unwrap_or(0);
        let status = S::try_from(p.position_status).ok();
        if status == Some(S::PositionStatusCreated) {
            return Effect::Nothing;
        }
        if self.closed.contains(&id) {
            return Effect::Stale;
        }
        if self
            .positions
            .get(&id)
            .is_some_and(|h| updated_ms < h.updated_ms)
        {
            return Effect::Stale;
        }
        let known = self.positions.contains_key(&id);
        if status == Some(S::PositionStatusClosed) || volume <= 0 {
            self.positions.remove(&id);
            self.remember_closed(id);
            if !known {
                let why = format!("the broker closed position {id}, which the book did not hold");
                self.mark_suspect(why.clone());
                return Effect::Contradiction(why);
            }
            return Effect::Changed;
        }
        self.positions.insert(
            id,
            Held {
                position,
                volume,
                updated_ms,
                broker: p.clone(),
            },
        );
        if !known && closing {
            let why = format!("the broker changed position {id}, which the book did not hold");
            self.mark_suspect(why.clone());
            return Effect::Contradiction(why);
        }
        Effect::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Side;
    use ctrader::messages::{ProtoOaDeal, ProtoOaOrder, ProtoOaTradeData};

    fn map(p: &ProtoOaPosition) -> Option<(BrokerPosition, i64)> {
        // Symbol 1 is ours, anything else is not.
        (p.trade_data.symbol_id == 1).then(|| {
            (
                BrokerPosition {
                    position_id: p.position_id as u64,
                    symbol: "EURUSD".into(),
                    side: Side::Buy,
                    lots: p.trade_data.volume as f64 / 10_000_000.0,
                    entry_price: p.price,
                    margin: 0.0,
                    label: p.trade_data.label.clone(),
                },
                p.trade_data.volume,
            )
        })
    }

    fn position(id: i64, volume: i64, status: ProtoOaPositionStatus, ms: i64) -> ProtoOaPosition {
        ProtoOaPosition {
            position_id: id,
            trade_data: ProtoOaTradeData {
                symbol_id: 1,
                volume,
                ..Default::default()
            },
            position_status: status as i32,
            price: Some(1.1),
            utc_last_update_timestamp: Some(ms),
            ..Default::default()
        }
    }

    use ProtoOaExecutionType::{
        OrderAccepted as Acc, OrderCancelled as Can, OrderFilled as Fil, OrderReplaced as Rep,
    };
    use ProtoOaPositionStatus::{
        PositionStatusClosed as Closed, PositionStatusCreated as Created,
        PositionStatusOpen as Open,
    };

    /// An event of order `order` (`closing` or not, of `volume`) with its executed volume, a deal
    /// id when it reports one, and a position snapshot.
    fn ev(
        kind: ProtoOaExecutionType,
        order: i64,
        closing: bool,
        executed: i64,
        deal: Option<i64>,
        position: Option<ProtoOaPosition>,
    ) -> ProtoOaExecutionEvent {
        ProtoOaExecutionEvent {
            execution_type: kind as i32,
            order: Some(ProtoOaOrder {
                order_id: order,
                trade_data: ProtoOaTradeData {
                    symbol_id: 1,
                    volume: 100,
                    ..Default::default()
                },
                executed_volume: Some(executed),
                closing_order: Some(closing),
                ..Default::default()
            }),
            deal: deal.map(|id| ProtoOaDeal {
                deal_id: id,
                filled_volume: 100,
                execution_price: Some(1.1),
                ..Default::default()
            }),
            position,
            ..Default::default()
        }
    }

    fn ids(b: &LiveBook) -> Vec<(u64, i64)> {
        b.positions.iter().map(|(id, h)| (*id, h.volume)).collect()
    }

    /// Each row: events in arrival order, what each did, the positions held after, suspect or not.
    #[test]
    fn events_table() {
        use Effect::{Changed, Nothing, Stale};
        type Row = (
            &'static str,
            Vec<ProtoOaExecutionEvent>,
            Vec<Effect>,
            Vec<(u64, i64)>,
            bool,
        );
        let open = |ms| Some(position(5, 100, Open, ms));
        let closed = |ms| Some(position(5, 0, Closed, ms));
        let rows: Vec<Row> = vec![
            (
                "open: accepted (no position) then filled",
                vec![
                    ev(Acc, 1, false, 0, None, None),
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                ],
                vec![Nothing, Changed],
                vec![(5, 100)],
                false,
            ),
            (
                "open reordered: the late ACCEPTED (a CREATED position) does not drop the new one",
                vec![
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                    ev(Acc, 1, false, 0, None, Some(position(5, 0, Created, 9))),
                ],
                vec![Changed, Stale],
                vec![(5, 100)],
                false,
            ),
            (
                "close reordered: the late ACCEPTED (the open position) does not reopen it",
                vec![
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                    ev(Fil, 2, true, 100, Some(12), closed(20)),
                    ev(Acc, 2, true, 0, None, open(10)),
                ],
                vec![Changed, Changed, Stale],
                vec![],
                false,
            ),
            (
                "a repeated fill and an older snapshot from another event change nothing",
                vec![
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                    ev(Rep, 3, true, 0, None, open(5)),
                ],
                vec![Changed, Stale, Stale],
                vec![(5, 100)],
                false,
            ),
            (
                "a closed position never reopens, even from a newer-looking snapshot",
                vec![
                    ev(Fil, 1, false, 100, Some(11), open(10)),
                    ev(Fil, 2, true, 100, Some(12), closed(20)),
                    ev(Rep, 3, true, 0, None, open(30)),
                ],
                vec![Changed, Changed, Stale],
                vec![],
                false,
            ),
            (
                "a close of a position the book never held contradicts it",
                vec![ev(Fil, 2, true, 100, Some(12), closed(20))],
                vec![Effect::Contradiction(
                    "the broker closed position 5, which the book did not hold".into(),
                )],
                vec![],
                true,
            ),
            (
                "a fill cut short: the position of the part executed",
                vec![
                    ev(Acc, 1, false, 0, None, None),
                    ev(Can, 1, false, 40, None, Some(position(5, 40, Open, 10))),
                ],
                vec![Nothing, Changed],
                vec![(5, 40)],
                false,
            ),
            (
                "another symbol's position is not the book's",
                vec![ev(Fil, 1, false, 100, Some(11), {
                    let mut p = position(6, 100, Open, 10);
                    p.trade_data.symbol_id = 2;
                    Some(p)
                })],
                vec![Nothing],
                vec![],
                false,
            ),
        ];
        for (name, events, effects, held, suspect) in rows {
            let mut b = LiveBook::default();
            let got: Vec<Effect> = events.iter().map(|e| b.apply_event(e, &map)).collect();
            assert_eq!(got, effects, "{name}");
            assert_eq!(ids(&b), held, "{name}");
            assert_eq!(b.suspect().is_some(), suspect, "{name}");
        }
    }

    #[test]
    fn an_ended_order_makes_its_late_events_stale() {
        let mut b = LiveBook::default();
        let mut order = OrderProgress::new();
        let filled = ev(
            Fil,
            1,
            false,
            100,
            Some(11),
            Some(position(5, 100, Open, 10)),
        );
        order.apply(&filled);
        assert_eq!(b.apply_order(&order, &map), Effect::Changed);
        assert_eq!(
            b.apply_event(&ev(Acc, 1, false, 0, None, None), &map),
            Effect::Stale
        );
        assert_eq!(b.apply_event(&filled, &map), Effect::Stale);
        assert_eq!(ids(&b), vec![(5, 100)]);
        assert_eq!(b.volume_of(5), Some(100));
    }

    #[test]
    fn a_reconcile_replaces_the_positions_and_what_it_drops_stays_closed() {
        let mut b = LiveBook::default();
        b.apply_event(
            &ev(
                Fil,
                1,
                false,
                100,
                Some(11),
                Some(position(5, 100, Open, 10)),
            ),
            &map,
        );
        b.mark_suspect("test");
        let broker = [position(7, 300, Open, 50)];
        b.apply_reconcile(broker.iter(), &map);
        assert_eq!(ids(&b), vec![(7, 300)]);
        assert_eq!(b.suspect(), None);
        // Position 5 was closed at the broker: its late fill does not bring it back.
        assert_eq!(
            b.apply_event(
                &ev(
                    Fil,
                    9,
                    false,
                    100,
                    Some(19),
                    Some(position(5, 100, Open, 60))
                ),
                &map
            ),
            Effect::Stale
        );
        assert_eq!(ids(&b), vec![(7, 300)]);
    }

    /// A mapping that learns something later (an unconfigured symbol's volume rules) maps the
    /// positions held again from their broker snapshots: same positions and volumes, new terms.
    #[test]
    fn remap_maps_the_held_positions_again_from_the_brokers_snapshots() {
        let mut other = position(8, 200, Open, 10);
        other.trade_data.symbol_id = 2;
        let unknown_lots = |p: &ProtoOaPosition| {
            map(p).or_else(|| {
                let (mut bp, volume) = map(&position(p.position_id, p.trade_data.volume, Open, 0))?;
                bp.symbol = "US30".into();
                bp.lots = f64::INFINITY;
                Some((bp, volume))
            })
        };
        let mut b = LiveBook::default();
        let broker = [position(7, 300, Open, 10), other.clone()];
        b.apply_reconcile(broker.iter(), &unknown_lots);
        assert_eq!(ids(&b), vec![(7, 300), (8, 200)]);
        assert_eq!(b.position(8).unwrap().lots, f64::INFINITY);
        assert_eq!(
            b.broker_positions()
                .map(|p| p.trade_data.symbol_id)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        let known_lots = |p: &ProtoOaPosition| {
            unknown_lots(p).map(|(mut bp, volume)| {
                bp.lots = volume as f64 / 100_000.0;
                (bp, volume)
            })
        };
        b.remap(&known_lots);
        assert_eq!(ids(&b), vec![(7, 300), (8, 200)]);
        assert_eq!(b.position(8).unwrap().lots, 200.0 / 100_000.0);
        assert_eq!(b.position(8).unwrap().symbol, "US30");
        // A mapping that no longer keeps a position drops it.
        b.remap(&map);
        assert_eq!(ids(&b), vec![(7, 300)]);
    }

    #[test]
    fn memory_of_orders_and_closed_positions_is_bounded() {
        let mut b = LiveBook::default();
        for i in 0..(REMEMBERED as i64 + 10) {
            b.apply_event(&ev(Acc, i, false, 0, None, None), &map);
            b.apply_event(
                &ev(Fil, i, true, 100, Some(i), Some(position(i, 0, Closed, 1))),
                &map,
            );
        }
        assert_eq!(b.orders.len(), REMEMBERED);
        assert_eq!(b.closed.len(), REMEMBERED);
    }

    #[test]
    fn reconcile_is_due_when_suspect_first_or_on_schedule() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        assert!(reconcile_due(None, t0, every, false));
        assert!(!reconcile_due(
            Some(t0),
            t0 + Duration::from_secs(59),
            every,
            false
        ));
        assert!(reconcile_due(
            Some(t0),
            t0 + Duration::from_secs(60),
            every,
            false
        ));
        assert!(reconcile_due(Some(t0), t0, every, true));
    }
}
