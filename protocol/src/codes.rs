//! Wire codes: ACK reasons and ERROR codes. Both keep an unknown but well-formed code (`Other`) so an
//! older peer can still read a newer one's lines.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;

/// Grammar of any code on the wire: 1..=32 characters of `A-Z 0-9 _`.
fn is_code(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Declares a code enum with its known variants, their wire text, and an `Other(String)` fallback.
macro_rules! wire_codes {
    ($(#[$meta:meta])* $name:ident, $expected:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A well-formed code this version does not know (`[A-Z0-9_]{1,32}`). Never holds the
            /// text of a known code: parsing maps those to their variant.
            Other(String),
        }

        impl $name {
            /// Every known code, in declaration order.
            pub const KNOWN: &'static [$name] = &[$(Self::$variant,)+];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(code) => code,
                }
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ if is_code(s) => Ok(Self::Other(s.to_owned())),
                    _ => Err(ValueError::new($expected, s)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_codes! {
    /// Why an ACK is FAIL or WAIT_SYNC. PROTOCOL.md says when each is used.
    Reason, "a reason code of 1..=32 characters from A-Z 0-9 _ (e.g. MARGIN)" {
        /// The SIGNAL parsed as a SIGNAL but a field was bad.
        Malformed = "MALFORMED",
        /// The executor has no configuration for the symbol.
        UnknownSymbol = "UNKNOWN_SYMBOL",
        /// The symbol is configured with `enabled=false`.
        Disabled = "DISABLED",
        /// The signal arrived later than the configured age after its bar's close.
        Stale = "STALE",
        /// `B:` is not a bar the executor published for the symbol (a future bar, a time off the
        /// bar grid): nothing is executed and nothing is remembered.
        UnknownBar = "UNKNOWN_BAR",
        /// The bar was already answered for another action: the first answer stands, nothing is
        /// executed.
        DuplicateBar = "DUPLICATE_BAR",
        DailyLoss = "DAILY_LOSS",
        TotalLoss = "TOTAL_LOSS",
        MinEquity = "MIN_EQUITY",
        Spread = "SPREAD",
        Margin = "MARGIN",
        MaxPositions = "MAX_POSITIONS",
        MaxExposure = "MAX_EXPOSURE",
        KillSwitch = "KILL_SWITCH",
        /// An operator paused the executor (`executor ctl pause`, or a Flatten): no new opens
        /// until Resume; closes still go through.
        Paused = "PAUSED",
        MarketClosed = "MARKET_CLOSED",
        BadVolume = "BAD_VOLUME",
        Timeout = "TIMEOUT",
        Disconnected = "DISCONNECTED",
        NotConnected = "NOT_CONNECTED",
        BrokerError = "BROKER_ERROR",
        /// The broker cancelled the order (or let it expire) after accepting it, with nothing of
        /// it executed; or cut a close short, leaving part of the position open.
        Cancelled = "CANCELLED",
        /// The executor could not write the order's intent to its journal (disk full, I/O error),
        /// so no order was sent.
        JournalError = "JOURNAL_ERROR",
        /// The virtual position was opened on an earlier bar and the real one is flat: not chased.
        MissedEntry = "MISSED_ENTRY",
    }
}

wire_codes! {
    /// The code of an `ERROR` line.
    ErrorCode, "an error code of 1..=32 characters from A-Z 0-9 _ (e.g. MALFORMED)" {
        /// The line could not be parsed (its type was known).
        Malformed = "MALFORMED",
        /// A line other than HELLO before a successful HELLO, or a bad token.
        Unauthenticated = "UNAUTHENTICATED",
        /// The first field is not a line type.
        UnknownType = "UNKNOWN_TYPE",
        /// A WARMUP for a symbol the executor cannot serve.
        UnknownSymbol = "UNKNOWN_SYMBOL",
        /// A WARMUP the executor could not answer this time (the broker's history request failed:
        /// timeout, lost link, refusal); the text starts with the symbol and timeframe. Send the
        /// WARMUP again later.
        HistoryUnavailable = "HISTORY_UNAVAILABLE",
        /// The line is longer than MAX_LINE_LEN.
        TooLong = "TOO_LONG",
        /// The receiver failed while handling a valid line.
        Internal = "INTERNAL",
        /// A newer authenticated preditor connection took over; this one is closed.
        Replaced = "REPLACED",
        /// The executor is stopping; the connection is closed.
        Shutdown = "SHUTDOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes the executor closes a connection with are known, not `Other` (issue 13).
    #[test]
    fn connection_closing_codes_are_known() {
        for (text, code) in [
            ("REPLACED", ErrorCode::Replaced),
            ("SHUTDOWN", ErrorCode::Shutdown),
        ] {
            assert_eq!(text.parse::<ErrorCode>().unwrap(), code);
            assert_eq!(code.as_str(), text);
        }
    }
}
