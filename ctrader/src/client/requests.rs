//! The table of requests in flight, keyed by the `clientMsgId` the server echoes back, and what
//! each request waits for before it is answered. Pure and generic over what waits for the answer,
//! so tests need no runtime.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::OrderProgress;
use crate::messages::Payload;

/// When a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// By the first message carrying its id.
    Reply,
    /// A market order or a position close: by the event that ends the order (filled in full,
    /// cancelled, expired, rejected). ORDER_ACCEPTED, ORDER_PARTIAL_FILL and an ORDER_FILLED for
    /// part of the volume are steps (see [`crate::domain::execution`]).
    Order,
    /// By the first execution event: an SL/TP amend is answered by ORDER_ACCEPTED (a protection
    /// order created) or ORDER_REPLACED (changed), a cancel by ORDER_CANCELLED, and nothing
    /// follows (issue 11 item 8; claasahl/spotware-adapter maps PROTO_OA_AMEND_POSITION_SLTP_REQ
    /// to one PROTO_OA_EXECUTION_EVENT).
    Execution,
}

/// What a request's caller gets.
#[derive(Debug)]
pub enum Answer {
    /// The message that answered it.
    Message(Box<Payload>),
    /// Every step of an order, folded.
    Order(Box<OrderProgress>),
}

/// Whether a message ended the request.
#[derive(Debug)]
pub enum Step {
    /// More is to come; the request stays in flight.
    Pending,
    /// The request is answered.
    Done(Answer),
}

/// A request's completion rule and what it has gathered so far.
#[derive(Debug)]
pub struct Awaiting {
    completion: Completion,
    order: OrderProgress,
}

impl Awaiting {
    pub fn new(completion: Completion) -> Self {
        Self {
            completion,
            order: OrderProgress::new(),
        }
    }

    /// The request's rule.
    pub fn completion(&self) -> Completion {
        self.completion
    }

    /// The order's id, once one of its events named it.
    pub fn order_id(&self) -> Option<i64> {
        self.order.order_id()
    }

    /// A message carrying the request's id (errors are handled before: they always end it).
    pub fn on_message(&mut self, payload: Payload) -> Step {
        match (self.completion, payload) {
            (Completion::Order, Payload::ExecutionEvent(ev)) => {
                self.order.apply(&ev);
                if self.order.is_done() {
                    Step::Done(Answer::Order(Box::new(std::mem::take(&mut self.order))))
                } else {
                    Step::Pending
                }
            }
            (_, other) => Step::Done(Answer::Message(Box::new(other))),
        }
    }
}

/// One request awaiting its answer.
#[derive(Debug)]
pub struct InFlight<T> {
    /// When it times out.
    pub deadline: Instant,
    /// The request's payload type, for error messages.
    pub payload_type: u32,
    /// Whoever waits for the answer.
    pub waiter: T,
}

/// Requests in flight. Ids are never reused, across reconnects too, so a late answer to a request
/// from a dead connection can never complete a newer one.
#[derive(Debug)]
pub struct RequestTable<T> {
    next_id: u64,
    pending: HashMap<String, InFlight<T>>,
    /// Orders named by a request's first events: later events of the order that come without the
    /// request's id still reach it.
    orders: HashMap<i64, String>,
}

impl<T> Default for RequestTable<T> {
    fn default() -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
            orders: HashMap::new(),
        }
    }
}

impl<T> RequestTable<T> {
    /// Registers a request; returns the `clientMsgId` to send with it.
    pub fn register(
        &mut self,
        now: Instant,
        timeout: Duration,
        payload_type: u32,
        waiter: T,
    ) -> String {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        self.pending.insert(
            id.clone(),
            InFlight {
                deadline: now + timeout,
                payload_type,
                waiter,
            },
        );
        id
    }

    /// The request with this id, left in place (for answers that come in several messages).
    pub fn get(&self, id: &str) -> Option<&InFlight<T>> {
        self.pending.get(id)
    }

    /// The request with this id, to update in place.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut InFlight<T>> {
        self.pending.get_mut(id)
    }

    /// Removes and returns the request with this id.
    pub fn take(&mut self, id: &str) -> Option<InFlight<T>> {
        self.orders.retain(|_, r| r != id);
        self.pending.remove(id)
    }

    /// Links an order to the request in flight that placed it.
    pub fn link_order(&mut self, order_id: i64, id: &str) {
        if self.pending.contains_key(id) {
            self.orders.insert(order_id, id.to_string());
        }
    }

    /// The id of the request in flight that placed this order.
    pub fn request_of_order(&self, order_id: i64) -> Option<&str> {
        self.orders
            .get(&order_id)
            .map(String::as_str)
            .filter(|id| self.pending.contains_key(*id))
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, InFlight<T>)> {
        let ids: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.take(&id).map(|r| (id, r)))
            .collect()
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|r| r.deadline).min()
    }

    /// Removes every request (the connection is gone).
    pub fn drain(&mut self) -> Vec<(String, InFlight<T>)> {
        self.orders.clear();
        self.pending.drain().collect()
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderEnd;
    use crate::messages::{
        ProtoOaExecutionEvent, ProtoOaExecutionType, ProtoOaOrder, ProtoOaTradeData,
        ProtoOaVersionRes,
    };

    fn exec(kind: ProtoOaExecutionType, executed: i64) -> Payload {
        Payload::ExecutionEvent(ProtoOaExecutionEvent {
            execution_type: kind as i32,
            order: Some(ProtoOaOrder {
                order_id: 5,
                trade_data: ProtoOaTradeData {
                    volume: 300,
                    ..Default::default()
                },
                executed_volume: Some(executed),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn an_order_is_answered_when_it_ends_not_at_its_first_fill() {
        use ProtoOaExecutionType::*;
        let mut a = Awaiting::new(Completion::Order);
        assert!(matches!(
            a.on_message(exec(OrderAccepted, 0)),
            Step::Pending
        ));
        assert_eq!(a.order_id(), Some(5));
        assert!(matches!(
            a.on_message(exec(OrderFilled, 100)),
            Step::Pending
        ));
        assert!(matches!(
            a.on_message(exec(OrderPartialFill, 200)),
            Step::Pending
        ));
        match a.on_message(exec(OrderFilled, 300)) {
            Step::Done(Answer::Order(o)) => {
                assert_eq!(
                    (o.end(), o.executed_volume()),
                    (Some(OrderEnd::Filled), 300)
                )
            }
            other => panic!("{other:?}"),
        }
        let mut a = Awaiting::new(Completion::Order);
        a.on_message(exec(OrderAccepted, 0));
        match a.on_message(exec(OrderCancelled, 0)) {
            Step::Done(Answer::Order(o)) => assert_eq!(o.end(), Some(OrderEnd::Cancelled)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_amend_is_answered_by_its_first_execution_event_and_a_reply_by_its_message() {
        for kind in [
            ProtoOaExecutionType::OrderAccepted,
            ProtoOaExecutionType::OrderReplaced,
        ] {
            let mut a = Awaiting::new(Completion::Execution);
            assert!(matches!(
                a.on_message(exec(kind, 0)),
                Step::Done(Answer::Message(m)) if matches!(*m, Payload::ExecutionEvent(_))
            ));
        }
        let mut a = Awaiting::new(Completion::Reply);
        let v = Payload::VersionRes(ProtoOaVersionRes::default());
        assert!(matches!(a.on_message(v), Step::Done(Answer::Message(_))));
    }

    #[test]
    fn an_order_links_to_its_request_until_the_request_ends() {
        let t0 = Instant::now();
        let mut t = RequestTable::default();
        let id = t.register(t0, Duration::from_secs(1), 2106, ());
        t.link_order(42, "r-unknown");
        assert_eq!(t.request_of_order(42), None, "only requests in flight");
        t.link_order(42, &id);
        assert_eq!(t.request_of_order(42), Some(id.as_str()));
        assert!(t.take(&id).is_some());
        assert_eq!(t.request_of_order(42), None);
        let id = t.register(t0, Duration::from_secs(1), 2106, ());
        t.link_order(43, &id);
        assert_eq!(t.expire(t0 + Duration::from_secs(1)).len(), 1);
        assert_eq!(t.request_of_order(43), None);
    }

    #[test]
    fn match_expire_and_drain() {
        let t0 = Instant::now();
        let mut t = RequestTable::default();
        let a = t.register(t0, Duration::from_secs(5), 2104, "a");
        let b = t.register(t0, Duration::from_secs(1), 2121, "b");
        let c = t.register(t0, Duration::from_secs(9), 2124, "c");
        assert_ne!(a, b);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(t.expire(t0 + Duration::from_millis(999)).is_empty());
        let expired = t.expire(t0 + Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (
                expired[0].0.as_str(),
                expired[0].1.waiter,
                expired[0].1.payload_type
            ),
            (b.as_str(), "b", 2121)
        );
        assert_eq!(t.get(&a).map(|r| r.waiter), Some("a"));
        assert_eq!(t.take(&a).map(|r| r.waiter), Some("a"));
        assert!(t.take(&a).is_none(), "an answer completes a request once");
        assert_eq!(
            t.drain().into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![c]
        );
        assert!(t.is_empty());
        let d = t.register(t0, Duration::from_secs(1), 1, "d");
        assert!(![a, b].contains(&d), "ids are never reused");
    }
}
