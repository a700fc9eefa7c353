//! The broker's link, off the loop: a probe when the broker has been quiet (its answer feeds the
//! watchdog), and the account figures refreshed so no signal waits for them.

use super::Core;
use super::event::Event;
use crate::broker::{AccountFigures, Broker, BrokerError};
use crate::feed::ProbeResult;

impl<B: Broker> Core<B> {
    pub(super) fn probe(&mut self) {
        let at = self.clock.instant();
        let Some(probe) = self.feed.link().and_then(|l| l.probe(at)) else {
            return;
        };
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let _ = answers.send(Event::Probe(probe.await));
        });
    }

    pub(super) fn on_probe(&mut self, r: ProbeResult) {
        let (at, wall_ms) = (self.clock.instant(), self.clock.wall().timestamp_millis());
        // The server announces a maintenance end in wall-clock time, whatever the feed's clock.
        let alive = self.feed.link().is_some_and(|l| l.on_probe(r, at, wall_ms));
        if alive {
            self.progress();
        }
    }

    pub(super) fn refresh_account(&mut self) {
        if self.account_in_flight {
            return;
        }
        let Some(request) = self.books.primary.broker.account_request() else {
            return;
        };
        self.account_in_flight = true;
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let _ = answers.send(Event::Account(request.await));
        });
    }

    pub(super) fn on_account(&mut self, r: Result<AccountFigures, BrokerError>) {
        self.account_in_flight = false;
        match r {
            Ok(figures) => self.books.primary.broker.apply_account(&figures),
            Err(e) => {
                tracing::warn!(error = %e, "the broker's account figures could not be refreshed; the risk guard uses the last ones")
            }
        }
    }
}
