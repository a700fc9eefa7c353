//! Optional `serde` support (feature `serde`): each value type travels as its wire text, so a JSON
//! document that carries one is validated exactly like a protocol line (the fleet records use it).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{Action, BarTime, Mode, Symbol, Timeframe};

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

as_text!(Symbol, Timeframe, Mode, Action, BarTime);

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
    }
}
