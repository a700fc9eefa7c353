//! The account side of the simulated server: the trader entity, unrealised PnL, and the control
//! commands that act on the account (deposits, token revocation, the application's disconnection)
//! and reach its sessions as events.

use std::time::Duration;

use super::{ConnId, Kind, Outgoing, Session, SimCore};
use crate::symbols::asset_id;
use ctrader::messages::*;

impl SimCore {
    /// Events produced by the last control commands, to deliver before acting on their
    /// [`FaultAction`](crate::faults::FaultAction).
    pub fn take_events(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.control_events)
    }

    fn event_to(&mut self, conns: &[ConnId], message: &ProtoMessage) {
        self.control_events
            .extend(conns.iter().map(|&conn| Outgoing {
                conn,
                kind: Kind::Event,
                delay: Duration::ZERO,
                message: message.clone(),
            }));
    }

    /// The account as `ProtoOATraderRes` and `ProtoOATraderUpdatedEvent` describe it.
    pub(super) fn trader_entity(&self, account: i64) -> ProtoOaTrader {
        ProtoOaTrader {
            ctid_trader_account_id: account,
            balance: self.config.money.wire(self.book.balance_cents()),
            balance_version: Some(self.book.balance_version()),
            access_rights: Some(ProtoOaAccessRights::FullAccess as i32),
            deposit_asset_id: asset_id("USD"),
            swap_free: Some(false),
            leverage_in_cents: Some(self.config.leverage_in_cents),
            total_margin_calculation_type: Some(ProtoOaTotalMarginCalculationType::Max as i32),
            max_leverage: Some(self.config.leverage_in_cents / 100),
            trader_login: Some(super::trader_login(account)),
            account_type: Some(self.config.account_type as i32),
            broker_name: Some(super::BROKER_TITLE.to_string()),
            money_digits: Some(self.config.money.digits()),
            ..Default::default()
        }
    }

    /// A deposit or withdrawal: the balance changes and every session of the account gets
    /// `ProtoOATraderUpdatedEvent` ("Event that is sent when a Trader is updated on Server side").
    pub(super) fn deposit(&mut self, cents: i64) {
        self.book.deposit(cents);
        let account = self.credentials.account_id;
        let event = ProtoOaTraderUpdatedEvent {
            ctid_trader_account_id: account,
            trader: self.trader_entity(account),
            ..Default::default()
        };
        let conns = self.account_conns(account);
        self.event_to(&conns, &event.wrap(None));
    }

    /// The token is revoked: `ProtoOAAccountsTokenInvalidatedEvent` to every session of the account,
    /// which then no longer has it authorised ("a session to a specific trader's account is
    /// terminated by the server but the existing connections with the other trader's accounts are
    /// maintained", OpenApiMessages.proto); the access token (and with `refresh_too` the refresh
    /// token) stops working.
    pub(super) fn invalidate_tokens(&mut self, refresh_too: bool) {
        self.revocations += 1;
        let n = self.revocations;
        self.credentials.access_token = format!("<revoked access token {n}>");
        if refresh_too {
            self.credentials.refresh_token = format!("<revoked refresh token {n}>");
        }
        let account = self.credentials.account_id;
        let event = ProtoOaAccountsTokenInvalidatedEvent {
            ctid_trader_account_ids: vec![account],
            reason: Some(if refresh_too {
                "Access Token is recalled".to_string()
            } else {
                "Access Token is expired".to_string()
            }),
            ..Default::default()
        };
        let conns = self.account_conns(account);
        self.event_to(&conns, &event.wrap(None));
        for c in self.conns.values_mut() {
            c.accounts.remove(&account);
        }
    }

    /// `ProtoOAClientDisconnectEvent` to every connection (the I/O layer then closes them all).
    pub(super) fn client_disconnect(&mut self, reason: &str) {
        let event = ProtoOaClientDisconnectEvent {
            reason: Some(reason.to_string()),
            ..Default::default()
        };
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        self.event_to(&conns, &event.wrap(None));
    }
}

impl Session<'_> {
    /// Each open position's PnL at the current quotes. No swaps or commissions are modelled, so the
    /// net PnL equals the gross.
    pub(super) fn unrealized_pnl(&mut self, account: i64) {
        if !self.authorized(account) {
            return;
        }
        let money = self.core.config.money;
        let book = &self.core.book;
        let position_unrealized_pn_l = book
            .open_positions()
            .map(|p| {
                let pnl = money.wire(book.unrealized_cents(p));
                ProtoOaPositionUnrealizedPnL {
                    position_id: p.id,
                    gross_unrealized_pn_l: pnl,
                    net_unrealized_pn_l: pnl,
                }
            })
            .collect();
        self.respond(&ProtoOaGetPositionUnrealizedPnLRes {
            ctid_trader_account_id: account,
            position_unrealized_pn_l,
            money_digits: money.digits(),
            ..Default::default()
        });
    }
}
