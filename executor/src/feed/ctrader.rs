//! The cTrader feed: closed bars built from the client's spots and live trendbars (one
//! [`BarBuilder`] per symbol), the bars a lost link kept from it fetched from the broker's history,
//! WARMUP's history, and the link's health (its state for `STATUS=`, the probe that tells a quiet
//! market from a dead link, an announced maintenance).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use ctrader::client::{Client, ClientError, ClientEvent, ConnectionEvent};
use protocol::{BarLine, Symbol, Timeframe};
use tokio::time::Instant;

use crate::broker::BrokerError;
use crate::broker::ctrader::map_error;
use crate::feed::bars::BarBuilder;

/// In live/shadow mode, a broker round trip (a version request) when the broker has been quiet this
/// long: a closed market sends no spots, and the client's heartbeats are not passed on as events.
pub const BROKER_PROBE_PERIOD: Duration = Duration::from_secs(10);

/// How long after an announced maintenance end an unanswered probe is still put down to it.
const MAINTENANCE_GRACE_MS: i64 = 5 * 60 * 1000;

/// A history fetch that can run in a task of its own.
pub type HistoryRequest = std::pin::Pin<
    Box<dyn Future<Output = Result<Vec<protocol::Bar>, BrokerError>> + Send + 'static>,
>;

/// One symbol the feed follows.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub symbol: Symbol,
    /// The broker's symbol id.
    pub id: i64,
    pub timeframe: Timeframe,
    pub digits: usize,
}

/// What one link event did to the feed.
#[derive(Debug, Default)]
pub struct Heard {
    /// The bar it closed.
    pub closed: Option<BarLine>,
    /// The market time it carried (a spot's server time), Unix seconds.
    pub market_time: Option<i64>,
    /// The link's state word changed (`STATUS=` says it).
    pub link_changed: bool,
}

/// The outcome of a broker probe, as far as the watchdog cares.
#[derive(Debug)]
pub enum ProbeResult {
    /// The server answered (even with an error): the link and the client are alive.
    Answered,
    /// No answer: timed out, disconnected or the client is gone.
    Unanswered(String),
}

impl ProbeResult {
    fn of(r: Result<String, ClientError>) -> Self {
        match r {
            Ok(_) | Err(ClientError::Broker { .. }) => ProbeResult::Answered,
            Err(e) => ProbeResult::Unanswered(e.to_string()),
        }
    }
}

#[derive(Debug)]
pub struct LiveFeed {
    client: Client,
    by_id: HashMap<i64, Symbol>,
    instruments: BTreeMap<Symbol, Instrument>,
    builders: BTreeMap<Symbol, BarBuilder>,
    /// Market-data events the client has dropped so far (see [`LiveFeed::market_data_lost`]).
    dropped: u64,
    /// The link as the last connection event described it (for `STATUS=`).
    link: &'static str,
    /// End of a maintenance window the client announced it is waiting out, Unix ms.
    maintenance_until_ms: Option<i64>,
    last_event: Instant,
    probe_in_flight: bool,
}

impl LiveFeed {
    /// A feed over `client` for `instruments` (a symbol whose timeframe has no fixed length, MN1,
    /// gets no builder: its bars come only from history).
    pub fn new(client: Client, instruments: Vec<Instrument>, now: Instant) -> Self {
        let builders = instruments
            .iter()
            .filter_map(|i| {
                let b = BarBuilder::new(i.symbol.clone(), i.timeframe, i.digits)?;
                Some((i.symbol.clone(), b))
            })
            .collect();
        LiveFeed {
            client,
            by_id: instruments
                .iter()
                .map(|i| (i.id, i.symbol.clone()))
                .collect(),
            instruments: instruments
                .into_iter()
                .map(|i| (i.symbol.clone(), i))
                .collect(),
            builders,
            dropped: 0,
            link: "connected",
            maintenance_until_ms: None,
            last_event: now,
            probe_in_flight: false,
        }
    }

    /// `cTrader connected`, `cTrader reconnecting`, …
    pub fn status(&self) -> String {
        format!("cTrader {}", self.link)
    }

    /// The link is connected and ready.
    pub fn link_up(&self) -> bool {
        self.link == "connected"
    }

    /// The link is waiting for a new token by design (see `AuthorizationLost`).
    pub fn unauthorized(&self) -> bool {
        self.link == "unauthorized"
    }

    /// An event of the client: market data builds bars, connection steps change the link.
    pub fn on_event(&mut self, ev: &ClientEvent, now: i64, at: Instant) -> Heard {
        self.last_event = at;
        let mut heard = Heard::default();
        match ev {
            ClientEvent::Spot(q) => {
                let Some(sym) = self.by_id.get(&q.symbol_id) else {
                    return heard;
                };
                let time = q.timestamp_ms.map_or(now, |ms| ms.div_euclid(1000));
                heard.market_time = Some(time);
                if let (Some(bid), Some(b)) = (q.bid, self.builders.get_mut(sym)) {
                    heard.closed = b.on_spot(time, bid);
                }
            }
            ClientEvent::LiveBar {
                symbol_id,
                bar,
                bid,
                ..
            } => {
                let builder = self
                    .by_id
                    .get(symbol_id)
                    .and_then(|s| self.builders.get_mut(s))
                    // Only the configured timeframe's trendbar is this symbol's bar.
                    .filter(|b| b.timeframe() == bar.timeframe);
                if let Some(b) = builder {
                    heard.closed = b.on_trendbar(bar, *bid);
                }
            }
            ClientEvent::Connection(c) => {
                tracing::info!(event = ?c, "cTrader connection");
                if let Some(link) = link_state(c) {
                    heard.link_changed = link != self.link;
                    self.link = link;
                }
                match c {
                    ConnectionEvent::ReconnectScheduled {
                        maintenance_end_ms: Some(end),
                        ..
                    } => self.maintenance_until_ms = Some(*end),
                    ConnectionEvent::Ready => self.maintenance_until_ms = None,
                    // Ticks are lost from now on: no bar is emitted from partial live data.
                    ConnectionEvent::Disconnected { .. } => self.link_lost(),
                    _ => {}
                }
            }
            _ => {}
        }
        heard
    }

    /// The client has dropped `dropped` spots and live trendbars the core loop did not read in
    /// time (`EventStream::dropped_market_data`): a bar forming then may miss its last ticks, so
    /// it is taken from history like after a lost link.
    pub fn market_data_lost(&mut self, dropped: u64) {
        if dropped == self.dropped {
            return;
        }
        tracing::warn!(
            dropped,
            "market data was dropped (the core loop fell behind); the forming bars will come from history"
        );
        self.dropped = dropped;
        self.link_lost();
    }

    fn link_lost(&mut self) {
        self.builders
            .values_mut()
            .for_each(BarBuilder::on_link_lost);
    }

    /// Bars whose period (plus the grace second) has passed by the clock, `now` Unix seconds.
    pub fn on_clock(&mut self, now: i64) -> Vec<BarLine> {
        self.builders
            .values_mut()
            .filter_map(|b| b.on_clock(now))
            .collect()
    }

    /// Bars a lost link kept from the live feed (see `feed/bars.rs`), fetched from the broker's
    /// history, in order and only those still news. A failed fetch is logged: the preditor then
    /// sees a gap (and logs it) rather than a wrong bar.
    pub async fn fill_gaps(&mut self) -> Vec<BarLine> {
        let gaps: Vec<(Symbol, i64, i64)> = self
            .builders
            .iter_mut()
            .filter_map(|(s, b)| b.take_gap().map(|(from, to)| (s.clone(), from, to)))
            .collect();
        let mut out = Vec::new();
        for (symbol, from, to) in gaps {
            let Some(inst) = self.instruments.get(&symbol) else {
                continue;
            };
            let (tf, digits) = (inst.timeframe, inst.digits);
            let bars = match self.bars_between(inst.id, tf, from, to).await {
                Ok(bars) => bars
                    .iter()
                    .filter_map(|x| history_bar(&symbol, tf, digits, x))
                    .collect(),
                Err(e) => {
                    tracing::error!(%symbol, from, to, error = %e,
                        "bars missed during a broker outage could not be fetched; the preditor will see a gap");
                    Vec::new()
                }
            };
            let Some(builder) = self.builders.get_mut(&symbol) else {
                continue;
            };
            let fresh = builder.accept_backfill(bars);
            tracing::info!(%symbol, from, to, bars = fresh.len(), "bars after a broker outage taken from history");
            out.extend(fresh);
        }
        out
    }

    /// The bars of a symbol opened in `[from, to)` (Unix seconds), oldest first.
    async fn bars_between(
        &self,
        id: i64,
        timeframe: Timeframe,
        from: i64,
        to: i64,
    ) -> Result<Vec<protocol::Bar>, BrokerError> {
        let mut bars = self
            .client
            .get_trendbars(id, timeframe, from * 1000, to * 1000, None)
            .await
            .map_err(map_error)?;
        bars.retain(|b| (from..to).contains(&b.time));
        Ok(bars)
    }

    /// The last `count` closed bars of a symbol, oldest first (paged and rate-limited by the
    /// client), as a request that owns what it needs, so it runs in a task of its own while the
    /// core loop goes on handling signals.
    pub fn history_request(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
        now: i64,
    ) -> Result<HistoryRequest, BrokerError> {
        let id = self
            .instruments
            .get(symbol)
            .ok_or_else(|| BrokerError::Rejected {
                code: "SYMBOL_NOT_FOUND".into(),
                description: format!("{symbol} is not offered by the broker"),
            })?
            .id;
        let client = self.client.clone();
        // No lower bound: a stock CFD has ~7 H1 bars a day, a symbol may have halted for weeks.
        // The client pages back in windows the server accepts until it has `count` bars or the
        // broker has no more (see `ctrader::client::history`).
        Ok(Box::pin(async move {
            let mut bars = client
                .get_trendbars(id, timeframe, 0, now * 1000, Some(count + 1))
                .await
                .map_err(map_error)?;
            // Closed bars only; an MN1 bar closes at the next month's start.
            bars.retain(|b| b.close_time(timeframe).is_some_and(|c| c <= now));
            let skip = bars.len().saturating_sub(count);
            Ok(bars.split_off(skip))
        }))
    }

    /// The preditor was served the closed bars of `symbol` up to the one opened at `last_open`
    /// (a WARMUP): the live feed must not send them again.
    pub fn delivered(&mut self, symbol: &Symbol, timeframe: Timeframe, last_open: i64) {
        if let Some(b) = self.builders.get_mut(symbol)
            && b.timeframe() == timeframe
        {
            b.mark_delivered(last_open);
        }
    }

    /// A probe of the link when the broker has been quiet for [`BROKER_PROBE_PERIOD`] and none is
    /// in flight; its answer goes to [`LiveFeed::on_probe`].
    pub fn probe(&mut self, at: Instant) -> Option<impl Future<Output = ProbeResult> + use<>> {
        if self.probe_in_flight
            || at.saturating_duration_since(self.last_event) < BROKER_PROBE_PERIOD
        {
            return None;
        }
        self.probe_in_flight = true;
        let client = self.client.clone();
        Some(async move { ProbeResult::of(client.version().await) })
    }

    /// A probe's answer; true when it shows the loop alive for the watchdog (the broker answered,
    /// or its silence is expected: an announced maintenance, a token being waited for).
    pub fn on_probe(&mut self, r: ProbeResult, at: Instant, wall_ms: i64) -> bool {
        self.probe_in_flight = false;
        match r {
            ProbeResult::Answered => {
                self.last_event = at;
                true
            }
            // Waiting for a new token by design: a restart would not bring it back.
            ProbeResult::Unanswered(_) if self.unauthorized() => true,
            ProbeResult::Unanswered(why)
                if waiting_out_maintenance(self.maintenance_until_ms, wall_ms) =>
            {
                tracing::info!(%why, until_ms = ?self.maintenance_until_ms, "broker in announced maintenance");
                true
            }
            ProbeResult::Unanswered(why) => {
                tracing::warn!(%why, "the broker did not answer a probe");
                false
            }
        }
    }
}

/// The cTrader link in a word, for `STATUS=`; `None` for steps that do not change it.
fn link_state(ev: &ConnectionEvent) -> Option<&'static str> {
    use ConnectionEvent as C;
    match ev {
        C::Connecting { .. } => Some("connecting"),
        C::Ready => Some("connected"),
        C::SetupFailed { .. } | C::Disconnected { .. } => Some("disconnected"),
        C::ReconnectScheduled { .. } => Some("reconnecting"),
        C::AuthorizationLost { .. } => Some("unauthorized"),
        _ => None,
    }
}

/// Whether an unanswered broker probe is explained by an announced maintenance window (so the
/// watchdog is fed rather than restarting the executor into a server that is down on purpose).
/// Bounded: past the announced end plus a grace period, silence is a fault again.
fn waiting_out_maintenance(until_ms: Option<i64>, now_ms: i64) -> bool {
    until_ms.is_some_and(|end| now_ms <= end.saturating_add(MAINTENANCE_GRACE_MS))
}

/// A bar from the broker's history as a BAR line (`None` if a price does not fit `digits`).
pub fn history_bar(
    symbol: &Symbol,
    timeframe: Timeframe,
    digits: usize,
    x: &protocol::Bar,
) -> Option<BarLine> {
    x.to_line(symbol, timeframe, digits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_maintenance_explains_silence_until_its_end_plus_grace() {
        let end = 1_770_000_000_000;
        assert!(waiting_out_maintenance(Some(end), end - 60_000));
        assert!(waiting_out_maintenance(
            Some(end),
            end + MAINTENANCE_GRACE_MS
        ));
        assert!(!waiting_out_maintenance(
            Some(end),
            end + MAINTENANCE_GRACE_MS + 1
        ));
        assert!(!waiting_out_maintenance(None, end));
    }
}
