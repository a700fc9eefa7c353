//! What the signal engine remembers about bars, per configured symbol, so that a bar is never
//! executed twice whatever arrives in between (issue 12 item 3):
//!
//! - **published**: the newest bars the executor published (live or in a HISTORY block). A SIGNAL
//!   for any other bar (in the future, off the bar grid) is refused without being remembered, so
//!   such signals cannot push real bars out of the memory below.
//! - **answered**: the ACK of each of the newest answered bars, and a watermark: every answered bar
//!   is either still remembered or not newer than the watermark, and a bar not newer than it is
//!   never executed (it may have been answered and forgotten).
//!
//! Both are bounded per symbol, and only configured symbols get an entry: 20,000 unknown symbols
//! cost nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use protocol::{Ack, BarTime, Symbol};

/// How many answered bars per symbol are remembered (and kept by journal rotation).
pub const ANSWERED_PER_SYMBOL: usize = 64;
/// How many published bars per symbol are remembered: far more than the bars a fresh SIGNAL can be
/// for (older ones are STALE anyway).
pub const PUBLISHED_PER_SYMBOL: usize = 64;

#[derive(Debug, Default)]
struct Answered {
    acks: BTreeMap<BarTime, Ack>,
    /// The newest bar ever dropped from `acks`.
    forgotten_up_to: Option<BarTime>,
}

/// What an earlier answer says about a SIGNAL's bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Earlier<'a> {
    /// Answered, and this is its ACK.
    Answered(&'a Ack),
    /// Possibly answered and forgotten: must not be executed.
    Forgotten,
    /// Never answered.
    No,
}

#[derive(Debug, Default)]
pub struct BarMemory {
    published: HashMap<Symbol, BTreeSet<BarTime>>,
    answered: HashMap<Symbol, Answered>,
}

impl BarMemory {
    /// A bar of `symbol` was published (the caller has checked the symbol is configured and the
    /// bar is of its timeframe).
    pub fn published(&mut self, symbol: &Symbol, bar: BarTime) {
        let set = self.published.entry(symbol.clone()).or_default();
        set.insert(bar);
        while set.len() > PUBLISHED_PER_SYMBOL {
            set.pop_first();
        }
    }

    pub fn is_published(&self, symbol: &Symbol, bar: BarTime) -> bool {
        self.published.get(symbol).is_some_and(|s| s.contains(&bar))
    }

    /// Remembers the ACK for (symbol, bar), replacing an earlier one. The oldest bar goes when
    /// there are too many; the watermark keeps it from ever being executed again.
    pub fn answered(&mut self, symbol: &Symbol, bar: BarTime, ack: Ack) {
        let a = self.answered.entry(symbol.clone()).or_default();
        a.acks.insert(bar, ack);
        while a.acks.len() > ANSWERED_PER_SYMBOL {
            if let Some((old, _)) = a.acks.pop_first() {
                a.forgotten_up_to = a.forgotten_up_to.max(Some(old));
            }
        }
    }

    pub fn earlier(&self, symbol: &Symbol, bar: BarTime) -> Earlier<'_> {
        let Some(a) = self.answered.get(symbol) else {
            return Earlier::No;
        };
        match a.acks.get(&bar) {
            Some(ack) => Earlier::Answered(ack),
            None if a.forgotten_up_to.is_some_and(|w| bar <= w) => Earlier::Forgotten,
            None => Earlier::No,
        }
    }

    /// Symbols with an entry (for tests of the bound).
    pub fn symbols(&self) -> usize {
        self.published
            .keys()
            .chain(self.answered.keys())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use protocol::Action;

    fn t(h: i64) -> BarTime {
        BarTime::from_unix(1_770_112_800 + h * 3600).unwrap()
    }

    #[test]
    fn every_answered_bar_is_remembered_or_under_the_watermark() {
        let s: Symbol = "EURUSD".parse().unwrap();
        let mut m = BarMemory::default();
        let ack = |h| Ack::ok(s.clone(), Action::Wait, None, None).with_bar_time(Some(t(h)));
        // Answered in any order, far more than the memory holds.
        let order: Vec<i64> = (0..300).map(|i| (i * 37) % 300).collect();
        for &h in &order {
            m.answered(&s, t(h), ack(h));
        }
        for &h in &order {
            assert_ne!(m.earlier(&s, t(h)), Earlier::No, "bar {h} could run again");
        }
        // The newest are still answered with their ACK; a never-answered newer bar is free.
        assert_eq!(m.earlier(&s, t(299)), Earlier::Answered(&ack(299)));
        assert_eq!(m.earlier(&s, t(300)), Earlier::No);
    }

    #[test]
    fn published_bars_are_bounded_per_symbol() {
        let s: Symbol = "EURUSD".parse().unwrap();
        let mut m = BarMemory::default();
        for h in 0..1000 {
            m.published(&s, t(h));
        }
        assert!(m.is_published(&s, t(999)));
        assert!(!m.is_published(&s, t(999 - PUBLISHED_PER_SYMBOL as i64)));
        assert_eq!(m.published[&s].len(), PUBLISHED_PER_SYMBOL);
    }
}
