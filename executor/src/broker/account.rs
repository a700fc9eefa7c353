//! The live account as the broker reports it: balance, leverage and money scale from
//! `ProtoOATrader` (`ProtoOATraderReq`, `ProtoOATraderUpdatedEvent`), the balance after each closing
//! deal, and every open position's unrealised PnL from `ProtoOAGetPositionUnrealizedPnLReq`. Pure:
//! the cTrader book feeds in what the client receives, the risk guard reads [`BrokerAccount::snapshot`].
//!
//! Every monetary value on the wire is an integer scaled by `moneyDigits` ("moneyDigits = 8 should
//! be interpreted as the value multiplied by 10^8", spotware/openapi-proto-messages
//! `OpenApiMessages.proto`, `ProtoOAGetPositionUnrealizedPnLRes.moneyDigits`): nothing here assumes
//! 2 digits, and nothing comes from the config.

use std::collections::HashMap;

use ctrader::messages::{
    ProtoOaAccountType, ProtoOaClosePositionDetail, ProtoOaGetPositionUnrealizedPnLRes,
    ProtoOaTrader,
};

use crate::orders::{AccountSnapshot, BrokerPosition};

/// Money digits assumed until the broker has said otherwise (a USD account's).
const DEFAULT_MONEY_DIGITS: u32 = 2;
/// No broker uses more; a larger value on the wire is refused rather than overflowing `10^n`.
const MAX_MONEY_DIGITS: u32 = 18;

/// Why the executor will not trade an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefused {
    /// A NETTED account holds one position per symbol: the executor's opens and closes of
    /// positions by id (and its drift accounting) assume a HEDGED one.
    #[error(
        "cTrader account {account_id} is a NETTED account (one position per symbol); the executor needs a HEDGED account, where every order opens its own position. Open a hedged account at your broker (or choose one with `executor accounts`) and set broker.ctrader.account_id to it"
    )]
    Netted { account_id: i64 },
    /// Spread-betting accounts trade stakes, not the volumes the executor sends.
    #[error(
        "cTrader account {account_id} is a SPREAD_BETTING account, which the executor does not support; use a HEDGED account"
    )]
    SpreadBetting { account_id: i64 },
    /// An account type this build does not know.
    #[error(
        "cTrader account {account_id} has account type {value}, unknown to this executor; use a HEDGED account"
    )]
    UnknownType { account_id: i64, value: i32 },
    #[error(
        "cTrader account {account_id} reports moneyDigits {digits}, more than {MAX_MONEY_DIGITS}"
    )]
    MoneyDigits { account_id: i64, digits: u32 },
}

/// Refuses an account the executor cannot trade correctly. `accountType` defaults to HEDGED in the
/// .proto (`[default = HEDGED]`).
pub fn check_tradable(t: &ProtoOaTrader) -> Result<(), AccountRefused> {
    let account_id = t.ctid_trader_account_id;
    let value = t.account_type.unwrap_or(ProtoOaAccountType::Hedged as i32);
    match ProtoOaAccountType::try_from(value) {
        Ok(ProtoOaAccountType::Hedged) => {}
        Ok(ProtoOaAccountType::Netted) => return Err(AccountRefused::Netted { account_id }),
        Ok(ProtoOaAccountType::SpreadBetting) => {
            return Err(AccountRefused::SpreadBetting { account_id });
        }
        Err(_) => return Err(AccountRefused::UnknownType { account_id, value }),
    }
    match t.money_digits {
        Some(digits) if digits > MAX_MONEY_DIGITS => {
            Err(AccountRefused::MoneyDigits { account_id, digits })
        }
        _ => Ok(()),
    }
}

/// A wire amount in account currency.
pub fn money(value: i64, digits: u32) -> f64 {
    value as f64 / 10f64.powi(digits.min(MAX_MONEY_DIGITS) as i32)
}

/// The account figures the broker has reported so far.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerAccount {
    balance: f64,
    leverage: f64,
    money_digits: u32,
    /// Net unrealised PnL per position id, account currency, from the last PnL answer.
    unrealized: HashMap<u64, f64>,
    /// A PnL answer has been applied since start.
    pnl_known: bool,
    /// `balanceVersion` of the balance held ("Increments each time when the trader's account
    /// balance is changed", OpenApiModelMessages.proto), when the broker gave one.
    balance_version: Option<i64>,
    /// Balance changes booked from events; an answer requested before one of them is stale.
    epoch: u64,
}

impl Default for BrokerAccount {
    fn default() -> Self {
        Self {
            balance: 0.0,
            leverage: 1.0,
            money_digits: DEFAULT_MONEY_DIGITS,
            unrealized: HashMap::new(),
            pnl_known: false,
            balance_version: None,
            epoch: 0,
        }
    }
}

impl BrokerAccount {
    /// The account's `moneyDigits` as last reported.
    pub fn money_digits(&self) -> u32 {
        self.money_digits
    }

    /// A wire amount with its own `moneyDigits` if it carries one, else the account's.
    pub fn amount(&self, value: i64, digits: Option<u32>) -> f64 {
        money(value, digits.unwrap_or(self.money_digits))
    }

    /// A balance with its version: kept unless the version held is newer.
    fn set_balance(&mut self, balance: f64, version: Option<i64>) {
        if let (Some(held), Some(v)) = (self.balance_version, version)
            && v < held
        {
            return;
        }
        self.balance = balance;
        self.balance_version = version.or(self.balance_version);
    }

    /// `ProtoOATraderRes` or `ProtoOATraderUpdatedEvent`: balance, leverage, money scale.
    pub fn apply_trader(&mut self, t: &ProtoOaTrader) {
        if let Some(d) = t.money_digits.filter(|d| *d <= MAX_MONEY_DIGITS) {
            self.money_digits = d;
        }
        self.set_balance(money(t.balance, self.money_digits), t.balance_version);
        if let Some(l) = t.leverage_in_cents {
            self.leverage = (f64::from(l) / 100.0).max(1.0);
        }
    }

    /// A closing deal: the balance after it, as the broker booked it.
    pub fn apply_close(&mut self, c: &ProtoOaClosePositionDetail) {
        self.epoch += 1;
        let balance = self.amount(c.balance, c.money_digits);
        self.set_balance(balance, c.balance_version);
    }

    /// Counts balance changes booked from events (see [`BrokerAccount::apply_refresh`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// An answer to a trader + PnL request sent at `epoch`: when a closing deal was booked since,
    /// its balance may predate that deal and is not taken (leverage, money digits and PnL are).
    pub fn apply_refresh(
        &mut self,
        t: &ProtoOaTrader,
        pnl: &ProtoOaGetPositionUnrealizedPnLRes,
        epoch: u64,
    ) {
        if epoch == self.epoch {
            self.apply_trader(t);
        } else {
            let keep = (self.balance, self.balance_version);
            self.apply_trader(t);
            (self.balance, self.balance_version) = keep;
        }
        self.apply_pnl(pnl);
    }

    /// The broker's unrealised PnL of every open position (net of swaps and commissions).
    pub fn apply_pnl(&mut self, res: &ProtoOaGetPositionUnrealizedPnLRes) {
        let digits = res.money_digits;
        self.unrealized = res
            .position_unrealized_pn_l
            .iter()
            .filter_map(|p| {
                let id = u64::try_from(p.position_id).ok()?;
                Some((id, money(p.net_unrealized_pn_l, digits)))
            })
            .collect();
        self.pnl_known = true;
    }

    /// A position is gone: its PnL is in the balance now.
    pub fn forget_position(&mut self, position_id: u64) {
        self.unrealized.remove(&position_id);
    }

    /// Whether a PnL answer has come since start (equity is the balance until then).
    /// The broker's last unrealised PnL of one position (net), account currency.
    pub fn position_pnl(&self, position_id: u64) -> Option<f64> {
        self.unrealized.get(&position_id).copied()
    }

    pub fn pnl_known(&self) -> bool {
        self.pnl_known
    }

    /// Balance, equity (balance + the broker's PnL of the positions still open), the margin the
    /// broker holds for every position (configured symbol or not) and the leverage.
    pub fn snapshot(&self, positions: &[BrokerPosition]) -> AccountSnapshot {
        let unrealized: f64 = positions
            .iter()
            .filter_map(|p| self.unrealized.get(&p.position_id))
            .sum();
        AccountSnapshot {
            balance: self.balance,
            equity: self.balance + unrealized,
            used_margin: positions.iter().map(|p| p.margin).sum(),
            leverage: self.leverage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Side;
    use ctrader::messages::ProtoOaPositionUnrealizedPnL;

    fn trader(balance: i64, digits: Option<u32>, account_type: Option<i32>) -> ProtoOaTrader {
        ProtoOaTrader {
            ctid_trader_account_id: 7,
            balance,
            money_digits: digits,
            leverage_in_cents: Some(3_000),
            account_type,
            ..Default::default()
        }
    }

    fn position(id: u64, margin: f64) -> BrokerPosition {
        BrokerPosition {
            position_id: id,
            symbol: "EURUSD".into(),
            side: Side::Buy,
            lots: 0.01,
            entry_price: Some(1.1),
            margin,
            label: None,
        }
    }

    #[test]
    fn money_digits_scale_balance_pnl_and_deals() {
        let mut a = BrokerAccount::default();
        a.apply_trader(&trader(1_234_567_890_000, Some(8), None));
        assert_eq!(a.snapshot(&[]).balance, 12_345.678_9);
        assert_eq!(a.snapshot(&[]).leverage, 30.0);
        a.apply_pnl(&ProtoOaGetPositionUnrealizedPnLRes {
            ctid_trader_account_id: 7,
            position_unrealized_pn_l: vec![
                ProtoOaPositionUnrealizedPnL {
                    position_id: 1,
                    gross_unrealized_pn_l: -5_100_000_000,
                    net_unrealized_pn_l: -5_000_000_000,
                },
                ProtoOaPositionUnrealizedPnL {
                    position_id: 2,
                    gross_unrealized_pn_l: 2_500_000_000,
                    net_unrealized_pn_l: 2_500_000_000,
                },
            ],
            money_digits: 8,
            ..Default::default()
        });
        let snap = a.snapshot(&[position(1, 100.0), position(2, 50.5)]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(snap.equity, 12_345.678_9 - 25.0),
            "net PnL, 10^8 scale: {snap:?}"
        );
        assert_eq!(snap.used_margin, 150.5);
        // A position that is gone no longer counts, even before the next PnL answer.
        assert!(close(
            a.snapshot(&[position(2, 50.5)]).equity,
            12_345.678_9 + 25.0
        ));
        a.apply_close(&ProtoOaClosePositionDetail {
            balance: 1_000_000,
            money_digits: Some(2),
            ..Default::default()
        });
        assert_eq!(a.snapshot(&[]).balance, 10_000.0);
    }

    #[test]
    fn a_stale_balance_never_overwrites_a_newer_one() {
        let mut a = BrokerAccount::default();
        let with_version = |balance, v| ProtoOaTrader {
            balance_version: Some(v),
            ..trader(balance, Some(2), None)
        };
        a.apply_trader(&with_version(100_000, 5));
        // A closing deal books balance version 6; an older trader answer (5) then arrives.
        a.apply_close(&ProtoOaClosePositionDetail {
            balance: 104_000,
            balance_version: Some(6),
            ..Default::default()
        });
        a.apply_trader(&with_version(100_000, 5));
        assert_eq!(a.snapshot(&[]).balance, 1_040.0);
        // Without versions: an answer requested before the deal was booked is not taken.
        let mut b = BrokerAccount::default();
        b.apply_trader(&trader(100_000, Some(2), None));
        let asked_at = b.epoch();
        b.apply_close(&ProtoOaClosePositionDetail {
            balance: 104_000,
            ..Default::default()
        });
        let pnl = ProtoOaGetPositionUnrealizedPnLRes {
            money_digits: 2,
            ..Default::default()
        };
        b.apply_refresh(&trader(100_000, Some(2), None), &pnl, asked_at);
        assert_eq!(b.snapshot(&[]).balance, 1_040.0);
        b.apply_refresh(&trader(105_000, Some(2), None), &pnl, b.epoch());
        assert_eq!(b.snapshot(&[]).balance, 1_050.0, "a fresh answer is taken");
        assert!(b.pnl_known());
    }

    #[test]
    fn only_hedged_accounts_are_traded() {
        assert_eq!(check_tradable(&trader(0, Some(2), None)), Ok(()));
        assert_eq!(
            check_tradable(&trader(0, Some(2), Some(ProtoOaAccountType::Hedged as i32))),
            Ok(())
        );
        let netted = check_tradable(&trader(0, Some(2), Some(ProtoOaAccountType::Netted as i32)))
            .unwrap_err();
        assert_eq!(netted, AccountRefused::Netted { account_id: 7 });
        let text = netted.to_string();
        assert!(text.contains("NETTED") && text.contains("HEDGED") && text.contains("account_id"));
        assert!(matches!(
            check_tradable(&trader(0, Some(2), Some(2))),
            Err(AccountRefused::SpreadBetting { .. })
        ));
        assert!(matches!(
            check_tradable(&trader(0, Some(2), Some(9))),
            Err(AccountRefused::UnknownType { value: 9, .. })
        ));
        assert!(matches!(
            check_tradable(&trader(0, Some(40), None)),
            Err(AccountRefused::MoneyDigits { digits: 40, .. })
        ));
    }
}
