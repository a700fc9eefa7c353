//! History from the broker: the bars a lost link kept from the live feed, and WARMUP's last
//! `count` closed bars (as a request a task of its own can run, `crate::warmup`).

use std::future::Future;

use protocol::{Symbol, Timeframe};

use super::{CtraderBroker, map_error};
use crate::broker::BrokerError;

impl CtraderBroker {
    /// The bars of a symbol opened in `[from, to)` (unix seconds), oldest first: the bars a lost
    /// link kept the live feed from seeing whole.
    pub async fn bars_between(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        from: i64,
        to: i64,
    ) -> Result<Vec<protocol::Bar>, BrokerError> {
        let inst = self.instrument(symbol)?;
        let mut bars = self
            .client
            .get_trendbars(inst.id, timeframe, from * 1000, to * 1000, None)
            .await
            .map_err(map_error)?;
        bars.retain(|b| (from..to).contains(&b.time));
        Ok(bars)
    }

    /// The last `count` closed bars of a symbol, oldest first (paged and rate-limited by the client).
    pub async fn history(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
        now: i64,
    ) -> Result<Vec<protocol::Bar>, BrokerError> {
        self.history_request(symbol, timeframe, count, now)?.await
    }

    /// [`Self::history`] as a request that owns what it needs, so it can run in its own task
    /// while the core loop goes on handling signals.
    pub fn history_request(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
        now: i64,
    ) -> Result<HistoryRequest, BrokerError> {
        let inst_id = self.instrument(symbol)?.id;
        let client = self.client.clone();
        // No lower bound: a stock CFD has ~7 H1 bars a day, a symbol may have halted for weeks.
        // The client pages back in windows the server accepts until it has `count` bars or the
        // broker has no more (see `ctrader::client::history`).
        Ok(Box::pin(async move {
            let mut bars = client
                .get_trendbars(inst_id, timeframe, 0, now * 1000, Some(count + 1))
                .await
                .map_err(map_error)?;
            // Closed bars only; an MN1 bar closes at the next month's start.
            bars.retain(|b| b.close_time(timeframe).is_some_and(|c| c <= now));
            let skip = bars.len().saturating_sub(count);
            Ok(bars.split_off(skip))
        }))
    }
}

/// A history fetch that can run in a task of its own.
pub type HistoryRequest = std::pin::Pin<
    Box<dyn Future<Output = Result<Vec<protocol::Bar>, BrokerError>> + Send + 'static>,
>;
