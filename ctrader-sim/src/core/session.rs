//! One request's handling: who asked, the answers and errors it gets, the account and symbol
//! checks, the dispatch by payload type, and the application, account, token, symbol and
//! reconcile requests. Market data and trading requests are in `market.rs` and `trading.rs`.

use std::time::{Duration, Instant};

use ctrader::messages::*;

use super::*;

/// Handling of one request: who asked, when, and what goes back.
pub(super) struct Session<'a> {
    pub(super) core: &'a mut SimCore,
    pub(super) conn: ConnId,
    pub(super) now: Instant,
    pub(super) msg_id: Option<String>,
    pub(super) reply: Reply,
}

impl Session<'_> {
    pub(super) fn respond<M: OpenApiMessage>(&mut self, m: &M) {
        self.reply.out.push(Outgoing {
            conn: self.conn,
            kind: Kind::Response,
            delay: Duration::ZERO,
            message: m.wrap(self.msg_id.clone()),
        });
    }

    pub(super) fn oa_error(
        &mut self,
        account: Option<i64>,
        code: &str,
        description: impl Into<String>,
    ) {
        let m = ProtoOaErrorRes {
            ctid_trader_account_id: account,
            error_code: code.to_string(),
            description: Some(description.into()),
            ..Default::default()
        };
        self.respond(&m);
    }

    pub(super) fn common_error(&mut self, code: ProtoErrorCode, description: impl Into<String>) {
        let m = ProtoErrorRes {
            error_code: code.as_str_name().to_string(),
            description: Some(description.into()),
            ..Default::default()
        };
        self.respond(&m);
    }

    pub(super) fn conn(&mut self) -> &mut Conn {
        self.core.conns.entry(self.conn).or_default()
    }

    /// The account-scoped guard every trading/data request goes through.
    pub(super) fn authorized(&mut self, account: i64) -> bool {
        if !self.conn().app_authorized {
            self.oa_error(
                Some(account),
                "CH_CLIENT_NOT_AUTHENTICATED",
                "Application is not authorized",
            );
            return false;
        }
        if !self.conn().accounts.contains(&account) {
            self.oa_error(
                Some(account),
                "ACCOUNT_NOT_AUTHORIZED",
                format!("Trading account {account} is not authorized"),
            );
            return false;
        }
        true
    }

    /// The opening of a request about symbols: the account authorized on this connection, then
    /// every symbol id known. Answers the error itself (the first failing check) and returns false.
    pub(super) fn known_symbols(&mut self, account: i64, symbol_ids: &[i64]) -> bool {
        if !self.authorized(account) {
            return false;
        }
        if let Some(bad) = symbol_ids
            .iter()
            .find(|id| !self.core.by_id.contains_key(id))
        {
            self.oa_error(
                Some(account),
                "SYMBOL_NOT_FOUND",
                format!("Symbol {bad} not found"),
            );
            return false;
        }
        true
    }

    /// [`Self::known_symbols`] for one symbol: its index in the replay, or `None` once answered.
    pub(super) fn known_symbol(&mut self, account: i64, symbol_id: i64) -> Option<usize> {
        if !self.known_symbols(account, &[symbol_id]) {
            return None;
        }
        self.core.by_id.get(&symbol_id).copied()
    }

    /// Trendbar requests must name the one period the simulator replays; answers the error otherwise.
    pub(super) fn replayed_period(&mut self, account: i64, period: i32) -> bool {
        if period == self.core.period as i32 {
            return true;
        }
        self.oa_error(
            Some(account),
            "INVALID_REQUEST",
            format!(
                "ctrader-sim replays {} bars only",
                self.core.period.as_str_name()
            ),
        );
        false
    }

    pub(super) fn dispatch(&mut self, frame: &ProtoMessage) {
        let payload = match Payload::decode(frame) {
            Ok(p) => p,
            Err(e) => return self.common_error(ProtoErrorCode::InvalidRequest, e.to_string()),
        };
        if let Payload::HeartbeatEvent(_) = payload {
            // Answered as an event: heartbeats carry no request id and are never "responses".
            self.reply.out.push(Outgoing {
                conn: self.conn,
                kind: Kind::Event,
                delay: Duration::ZERO,
                message: ProtoHeartbeatEvent::default().wrap(None),
            });
            return;
        }
        if let Some(end) = self.core.faults.maintenance_end(self.now) {
            let m = ProtoOaErrorRes {
                error_code: "SERVER_IS_UNDER_MAINTENANCE".to_string(),
                description: Some("The server is under maintenance".to_string()),
                maintenance_end_timestamp: Some(wire_seconds(end)),
                ..Default::default()
            };
            self.respond(&m);
            self.reply.close = true;
            return;
        }
        let historical = matches!(payload, Payload::GetTrendbarsReq(_));
        let admitted = {
            let (now, normal, hist) = (
                self.now,
                self.core.faults.rate_limit,
                self.core.faults.historical_rate_limit,
            );
            let conn = self.conn();
            if historical {
                conn.historical_rate.admit(now, hist)
            } else {
                conn.normal_rate.admit(now, normal)
            }
        };
        if !admitted {
            return self.oa_error(
                None,
                "REQUEST_FREQUENCY_EXCEEDED",
                "Request frequency is exceeded",
            );
        }
        match payload {
            Payload::ApplicationAuthReq(r) => self.application_auth(&r),
            Payload::VersionReq(_) => self.respond(&ProtoOaVersionRes {
                version: "ctrader-sim-95".to_string(),
                ..Default::default()
            }),
            Payload::GetAccountListByAccessTokenReq(r) => self.accounts_by_token(&r),
            Payload::AccountAuthReq(r) => self.account_auth(&r),
            Payload::AccountLogoutReq(r) => {
                if self.authorized(r.ctid_trader_account_id) {
                    self.conn().accounts.remove(&r.ctid_trader_account_id);
                    self.respond(&ProtoOaAccountLogoutRes {
                        ctid_trader_account_id: r.ctid_trader_account_id,
                        ..Default::default()
                    });
                }
            }
            Payload::RefreshTokenReq(r) => self.refresh_token(&r),
            Payload::SymbolsListReq(r) => self.symbols_list(&r),
            Payload::SymbolByIdReq(r) => self.symbol_by_id(&r),
            Payload::TraderReq(r) => self.trader(r.ctid_trader_account_id),
            Payload::ReconcileReq(r) => self.reconcile(r.ctid_trader_account_id),
            Payload::GetPositionUnrealizedPnlReq(r) => {
                self.unrealized_pnl(r.ctid_trader_account_id)
            }
            Payload::SubscribeSpotsReq(r) => self.subscribe_spots(&r),
            Payload::UnsubscribeSpotsReq(r) => self.unsubscribe_spots(&r),
            Payload::SubscribeLiveTrendbarReq(r) => self.subscribe_trendbar(&r),
            Payload::UnsubscribeLiveTrendbarReq(r) => self.unsubscribe_trendbar(&r),
            Payload::GetTrendbarsReq(r) => self.get_trendbars(&r),
            Payload::NewOrderReq(r) => self.new_order(&r),
            Payload::ClosePositionReq(r) => self.close_position(&r),
            Payload::AmendPositionSltpReq(r) => self.amend_position_sltp(&r),
            Payload::DealListReq(r) => self.deal_list(&r),
            Payload::OrderListReq(r) => self.order_list(&r),
            other => self.common_error(
                ProtoErrorCode::UnsupportedMessage,
                format!(
                    "payload type {} ({}) is not supported by ctrader-sim",
                    other.payload_type(),
                    other.name()
                ),
            ),
        }
    }

    pub(super) fn application_auth(&mut self, r: &ProtoOaApplicationAuthReq) {
        if self.conn().app_authorized {
            return self.oa_error(
                None,
                "CH_CLIENT_ALREADY_AUTHENTICATED",
                "Application is already authenticated",
            );
        }
        let creds = &self.core.credentials;
        if r.client_id != creds.client_id || r.client_secret != creds.client_secret {
            return self.oa_error(
                None,
                "CH_CLIENT_AUTH_FAILURE",
                "clientId or clientSecret is incorrect",
            );
        }
        self.conn().app_authorized = true;
        self.respond(&ProtoOaApplicationAuthRes::default());
    }

    pub(super) fn app_ok(&mut self) -> bool {
        if self.conn().app_authorized {
            return true;
        }
        self.oa_error(
            None,
            "CH_CLIENT_NOT_AUTHENTICATED",
            "Application is not authorized",
        );
        false
    }

    pub(super) fn accounts_by_token(&mut self, r: &ProtoOaGetAccountListByAccessTokenReq) {
        if !self.app_ok() {
            return;
        }
        if r.access_token != self.core.credentials.access_token {
            return self.oa_error(None, "CH_ACCESS_TOKEN_INVALID", "Access token is invalid");
        }
        let id = self.core.credentials.account_id;
        let account = ProtoOaCtidTraderAccount {
            ctid_trader_account_id: u64::try_from(id).unwrap_or(0),
            is_live: Some(false),
            trader_login: Some(trader_login(id)),
            broker_title_short: Some(BROKER_TITLE.to_string()),
            ..Default::default()
        };
        self.respond(&ProtoOaGetAccountListByAccessTokenRes {
            access_token: r.access_token.clone(),
            permission_scope: Some(ProtoOaClientPermissionScope::ScopeTrade as i32),
            ctid_trader_account: vec![account],
            ..Default::default()
        });
    }

    pub(super) fn account_auth(&mut self, r: &ProtoOaAccountAuthReq) {
        if !self.app_ok() {
            return;
        }
        let account = r.ctid_trader_account_id;
        if r.access_token != self.core.credentials.access_token {
            return self.oa_error(
                Some(account),
                "CH_ACCESS_TOKEN_INVALID",
                "Access token is invalid",
            );
        }
        if account != self.core.credentials.account_id {
            return self.oa_error(
                Some(account),
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                format!("Trading account {account} not found"),
            );
        }
        if !self.conn().accounts.insert(account) {
            return self.oa_error(
                Some(account),
                "ALREADY_LOGGED_IN",
                "Trading account is already authorized",
            );
        }
        self.respond(&ProtoOaAccountAuthRes {
            ctid_trader_account_id: account,
            ..Default::default()
        });
    }

    pub(super) fn refresh_token(&mut self, r: &ProtoOaRefreshTokenReq) {
        if !self.app_ok() {
            return;
        }
        if r.refresh_token != self.core.credentials.refresh_token {
            return self.oa_error(
                None,
                "CH_ACCESS_TOKEN_INVALID",
                "Refresh token is invalid or already used",
            );
        }
        // Single use: both tokens rotate, the old refresh token stops working.
        self.core.refreshes += 1;
        let n = self.core.refreshes;
        let creds = &mut self.core.credentials;
        creds.access_token = format!("{}~{n}", self.core.config.credentials.access_token);
        creds.refresh_token = format!("{}~{n}", self.core.config.credentials.refresh_token);
        let res = ProtoOaRefreshTokenRes {
            access_token: creds.access_token.clone(),
            token_type: "bearer".to_string(),
            expires_in: 2_628_000,
            refresh_token: creds.refresh_token.clone(),
            ..Default::default()
        };
        self.respond(&res);
    }

    pub(super) fn symbols_list(&mut self, r: &ProtoOaSymbolsListReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        let symbol = self
            .core
            .specs
            .iter()
            .map(|s| ProtoOaLightSymbol {
                symbol_id: s.id,
                symbol_name: Some(s.name.clone()),
                enabled: Some(true),
                base_asset_id: Some(asset_id(&s.base_asset)),
                quote_asset_id: Some(asset_id(&s.quote_asset)),
                symbol_category_id: Some(s.class.category_id()),
                description: Some(s.description.clone()),
            })
            .collect();
        self.respond(&ProtoOaSymbolsListRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            symbol,
            ..Default::default()
        });
    }

    pub(super) fn symbol_by_id(&mut self, r: &ProtoOaSymbolByIdReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        let found: Vec<ProtoOaSymbol> = r
            .symbol_id
            .iter()
            .filter_map(|id| self.core.by_id.get(id))
            .map(|&i| symbol_to_wire(&self.core.specs[i]))
            .collect();
        if found.is_empty() {
            return self.oa_error(
                Some(r.ctid_trader_account_id),
                "SYMBOL_NOT_FOUND",
                format!("Symbols {:?} not found", r.symbol_id),
            );
        }
        self.respond(&ProtoOaSymbolByIdRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            symbol: found,
            ..Default::default()
        });
    }

    pub(super) fn trader(&mut self, account: i64) {
        if !self.authorized(account) {
            return;
        }
        let trader = self.core.trader_entity(account);
        self.respond(&ProtoOaTraderRes {
            ctid_trader_account_id: account,
            trader,
            ..Default::default()
        });
    }

    pub(super) fn reconcile(&mut self, account: i64) {
        if !self.authorized(account) {
            return;
        }
        let position = self
            .core
            .book
            .open_positions()
            .map(|p| position_to_wire(p, self.core.config.money))
            .collect();
        self.respond(&ProtoOaReconcileRes {
            ctid_trader_account_id: account,
            position,
            order: Vec::new(),
            ..Default::default()
        });
    }
}
