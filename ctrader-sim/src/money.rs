//! Money on the wire. The book keeps cents of the deposit currency; the Open API sends every
//! monetary value as an integer scaled by the account's `moneyDigits` ("moneyDigits = 8 should be
//! interpreted as the value multiplied by 10^8", spotware/openapi-proto-messages
//! `OpenApiMessages.proto`, `ProtoOAGetPositionUnrealizedPnLRes.moneyDigits`; likewise
//! `ProtoOATrader.moneyDigits` for balance, `ProtoOAPosition`/`ProtoOADeal.moneyDigits`).

/// The scale of the simulated account's money on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    digits: u32,
}

/// Most money digits accepted: 10^10 cents-scaled balances still fit an `i64` by far.
pub const MAX_MONEY_DIGITS: u32 = 10;

impl Money {
    /// `digits` of the account (2 for a USD account, 8 for e.g. a BTC one), at most
    /// [`MAX_MONEY_DIGITS`].
    pub fn new(digits: u32) -> Option<Self> {
        (digits <= MAX_MONEY_DIGITS).then_some(Self { digits })
    }

    /// The `moneyDigits` the wire carries.
    pub fn digits(self) -> u32 {
        self.digits
    }

    /// Cents as the wire value (rounded half away from zero below 2 digits, saturating).
    pub fn wire(self, cents: i64) -> i64 {
        if self.digits >= 2 {
            cents.saturating_mul(10i64.pow(self.digits - 2))
        } else {
            let div = 10i64.pow(2 - self.digits);
            let half = div / 2 * cents.signum();
            cents.saturating_add(half) / div
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_scale_to_the_money_digits() {
        let m = |d| Money::new(d).unwrap();
        assert_eq!(m(2).wire(123_456), 123_456);
        assert_eq!(m(8).wire(123_456), 123_456_000_000, "1234.56 x 10^8");
        assert_eq!(m(0).wire(123_456), 1_235);
        assert_eq!(m(0).wire(-123_450), -1_235);
        assert_eq!(m(1).wire(-4), 0);
        assert!(Money::new(11).is_none());
        assert_eq!(m(10).wire(i64::MAX / 2), i64::MAX, "saturates");
    }
}
