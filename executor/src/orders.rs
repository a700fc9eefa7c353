//! What travels between the signal engine and a broker: intents, fills, positions, account figures.

use protocol::{Action, BarTime, Direction, Symbol};
use serde::{Deserialize, Serialize};

/// Deterministic client order id / label: the same symbol, bar and action always give the same id,
/// so a resend after a crash can be recognised at the broker instead of doubling a position.
/// Format: `OT-<SYMBOL>-<bar unix seconds>-<action index><O|C>` (well under cTrader's 50/100 char limits).
pub fn client_order_id(symbol: &Symbol, bar: BarTime, action: Action, leg: Leg) -> String {
    let leg = match leg {
        Leg::Open => 'O',
        Leg::Close => 'C',
    };
    format!(
        "OT-{}-{}-{}{}",
        symbol.as_str(),
        bar.unix_seconds(),
        action.index(),
        leg
    )
}

/// The symbol, bar and action an open's label names: the inverse of [`client_order_id`] for
/// [`Leg::Open`]. `None` for any other label (a close, another program's order).
pub fn parse_open_label(label: &str) -> Option<(Symbol, BarTime, Action)> {
    let rest = label.strip_prefix("OT-")?.strip_suffix('O')?;
    let mut parts = rest.rsplitn(3, '-');
    let action = Action::from_index(parts.next()?.parse().ok()?)?;
    let bar = BarTime::from_unix(parts.next()?.parse().ok()?).ok()?;
    let symbol = parts.next()?.parse().ok()?;
    Some((symbol, bar, action))
}

/// Which book a desk keeps: the broker's real one or the simulated one. Its word (`live`,
/// `paper`) names the book in the journal, the desk file and the drift log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Book {
    Live,
    Paper,
}

impl Book {
    pub fn as_str(self) -> &'static str {
        match self {
            Book::Live => "live",
            Book::Paper => "paper",
        }
    }
}

impl std::fmt::Display for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Leg {
    Open,
    Close,
}

/// Serialisable direction (protocol's `Direction` is a wire type without serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn from_direction(d: Direction) -> Option<Side> {
        match d {
            Direction::Long => Some(Side::Buy),
            Direction::Short => Some(Side::Sell),
            Direction::Flat => None,
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Side::Buy => Direction::Long,
            Side::Sell => Direction::Short,
        }
    }

    /// +1 for buy, -1 for sell.
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }
}

/// Open a market position. Only a `RiskApproved<OpenIntent>` can be handed to a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIntent {
    pub symbol: Symbol,
    pub side: Side,
    pub lots: f64,
    pub bar: BarTime,
    pub action: Action,
    pub client_order_id: String,
}

/// Close one broker position in full. Closing is always allowed, so it needs no approval.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseIntent {
    pub symbol: Symbol,
    pub position_id: u64,
    pub lots: f64,
    pub bar: BarTime,
    pub action: Action,
    pub client_order_id: String,
}

/// A position as the broker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerPosition {
    pub position_id: u64,
    pub symbol: String,
    pub side: Side,
    pub lots: f64,
    /// `None` when the broker did not report it (and for an open still on its way).
    pub entry_price: Option<f64>,
    /// Margin the broker holds for it, in account currency.
    pub margin: f64,
    /// The label / client order id it was opened with, when the broker keeps one.
    pub label: Option<String>,
}

/// A completed execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub position_id: u64,
    /// `None` when the broker's answer does not tell (a close found done by a reconcile).
    pub price: Option<f64>,
    /// `None` when the symbol's volume rules are unknown.
    pub lots: Option<f64>,
    /// Fill price minus the reference price (bar close or quote), signed against us (> 0 = worse);
    /// `None` when either is unknown.
    pub slippage: Option<f64>,
    /// Realised PnL in account currency (closing fills only).
    pub realized_pnl: Option<f64>,
}

/// Account figures used by the risk guard, in account currency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub balance: f64,
    pub equity: f64,
    pub used_margin: f64,
    pub leverage: f64,
}

impl AccountSnapshot {
    pub fn free_margin(&self) -> f64 {
        self.equity - self.used_margin
    }
}

/// The current bid/ask of a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub bid: f64,
    pub ask: f64,
    /// Unix seconds of the price.
    pub time: i64,
}

impl Quote {
    pub fn spread(&self) -> f64 {
        self.ask - self.bid
    }

    /// The price an order of this side fills at before slippage.
    pub fn price_for(&self, side: Side) -> f64 {
        match side {
            Side::Buy => self.ask,
            Side::Sell => self.bid,
        }
    }
}

/// What one book looks like at the moment a signal is decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookSnapshot {
    pub account: Option<AccountSnapshot>,
    pub positions: Vec<BrokerPosition>,
    pub quote: Option<Quote>,
}

impl BookSnapshot {
    pub fn positions_for<'a>(
        &'a self,
        symbol: &'a Symbol,
    ) -> impl Iterator<Item = &'a BrokerPosition> + 'a {
        self.positions
            .iter()
            .filter(move |p| p.symbol == symbol.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_id_is_deterministic_and_distinct() {
        let s: Symbol = "EURUSD".parse().unwrap();
        let b = BarTime::from_unix(1_770_113_700).unwrap();
        let a = client_order_id(&s, b, Action::LongWeak, Leg::Open);
        assert_eq!(a, client_order_id(&s, b, Action::LongWeak, Leg::Open));
        assert_eq!(a, "OT-EURUSD-1770113700-1O");
        assert_ne!(a, client_order_id(&s, b, Action::LongWeak, Leg::Close));
        assert_ne!(a, client_order_id(&s, b, Action::LongModerate, Leg::Open));
        assert!(a.len() <= 50);
    }

    #[test]
    fn an_open_label_parses_back_and_nothing_else_does() {
        let s: Symbol = "US500".parse().unwrap();
        let b = BarTime::from_unix(1_770_113_700).unwrap();
        for action in Action::ALL {
            let label = client_order_id(&s, b, action, Leg::Open);
            assert_eq!(parse_open_label(&label), Some((s.clone(), b, action)));
        }
        let close = client_order_id(&s, b, Action::LongWeak, Leg::Close);
        for other in [
            close.as_str(),
            &format!("{close}-17"),
            "OT-US500-1770113700-9O",
            "OT-US500-x-1O",
            "my manual trade",
            "",
        ] {
            assert_eq!(parse_open_label(other), None, "{other}");
        }
    }
}
