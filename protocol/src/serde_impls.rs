//! Optional `serde` support (feature `serde`): each value type, and each line, travels as its
//! canonical wire text, so a JSON document that carries one is validated exactly like a protocol
//! line (the fleet records and the executor's journal use it). A line type expects its own line:
//! an `Ack` does not deserialize from a `SIGNAL|…` text.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{
    Ack, Action, Auth, BarLine, BarTime, Decimal, ErrorCode, ErrorLine, Hello, History, HistoryEnd,
    Line, Mode, Reason, Signal, Symbol, Timeframe, Warmup,
};

struct TextVisitor<T>(PhantomData<T>);

impl<T> Visitor<'_> for TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

macro_rules! as_text {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(TextVisitor(PhantomData))
            }
        }
    )*};
}

as_text!(
    Symbol, Timeframe, Mode, Action, BarTime, Decimal, Reason, ErrorCode, Line
);

/// Each line type as the text of its [`Line`].
macro_rules! as_line {
    ($($variant:ident($t:ty) = $keyword:literal),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&Line::$variant(self.clone()))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match Line::deserialize(d)? {
                    Line::$variant(v) => Ok(v),
                    other => Err(de::Error::custom(format!(
                        "expected a {} line, got a {} line",
                        $keyword,
                        other.line_type()
                    ))),
                }
            }
        }
    )*};
}

as_line!(
    Hello(Hello) = "HELLO",
    Auth(Auth) = "AUTH",
    Bar(BarLine) = "BAR",
    Warmup(Warmup) = "WARMUP",
    History(History) = "HISTORY",
    HistoryEnd(HistoryEnd) = "HISTORY_END",
    Signal(Signal) = "SIGNAL",
    Ack(Ack) = "ACK",
    Error(ErrorLine) = "ERROR"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_their_wire_text_and_are_validated() {
        let s: Symbol = serde_json::from_str("\"EURUSD\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"EURUSD\"");
        let e = serde_json::from_str::<Symbol>("\"eur/usd\"").unwrap_err();
        assert!(e.to_string().contains("symbol"), "{e}");
        let tf: Timeframe = serde_json::from_str("\"M15\"").unwrap();
        assert_eq!(tf, Timeframe::M15);
        assert!(serde_json::from_str::<Timeframe>("\"M7\"").is_err());
        assert!(serde_json::from_str::<Mode>("\"LIVE\"").is_err());
        assert!(serde_json::from_str::<Symbol>("12").is_err());
        let t: BarTime = serde_json::from_str("\"2026-02-03T10:15:00Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-02-03T10:15:00Z\""
        );
        let r: Reason = serde_json::from_str("\"MISSED_ENTRY\"").unwrap();
        assert_eq!(r, Reason::MissedEntry);
        assert!(serde_json::from_str::<Decimal>("\"1.1x\"").is_err());
    }

    #[test]
    fn lines_travel_as_their_canonical_text_and_only_as_their_own_type() {
        let text = "ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.10610|B:2026-02-03T13:00:00Z";
        let json = format!("\"{text}\"");
        let ack: Ack = serde_json::from_str(&json).unwrap();
        assert_eq!(
            ack.outcome,
            crate::AckOutcome::Ok {
                position_id: Some(1),
                price: Some("1.10610".parse().unwrap())
            }
        );
        assert_eq!(serde_json::to_string(&ack).unwrap(), json);
        let line: Line = serde_json::from_str(&json).unwrap();
        assert_eq!(line, Line::Ack(ack));
        let e = serde_json::from_str::<Ack>("\"SIGNAL|EURUSD|WAIT|1|0.00\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a ACK line, got a SIGNAL line"),
            "{e}"
        );
        let e = serde_json::from_str::<Ack>("\"ACK|EURUSD|LONG_WEAK|MAYBE\"").unwrap_err();
        assert!(e.to_string().contains("ACK"), "{e}");
    }
}
