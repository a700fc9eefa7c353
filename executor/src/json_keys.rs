//! Keys a JSON text gives twice in one object. `serde_json` (like most parsers) keeps the last
//! one silently, so a config could say `"enabled": false` and, further down, `"enabled": true`.
//!
//! A serde visitor walks the text once, discarding values and remembering each object's keys;
//! it reports every repeat by its dotted path (`symbols.EURUSD.enabled`, `list[2].x`).

use std::cell::RefCell;
use std::collections::HashSet;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The dotted paths of every key repeated within one object, in text order. Invalid JSON gives
/// none (the parser reports it elsewhere).
pub fn repeated_keys(text: &str) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut de);
    found.into_inner()
}

struct Walk<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
}

impl Walk<'_> {
    fn child(&self, step: &str) -> Self {
        Walk {
            path: if self.path.is_empty() {
                step.to_string()
            } else if step.starts_with('[') {
                format!("{}{step}", self.path)
            } else {
                format!("{}.{step}", self.path)
            },
            found: self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(self.child(&format!("[{i}]")))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if !seen.insert(key) {
                self.found.borrow_mut().push(child.path.clone());
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(child)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_found_at_every_depth_and_distinct_keys_are_not() {
        let text = r#"{
          "a": 1, "b": { "x": true, "y": [ { "k": 1, "k": 2 } ], "x": false },
          "symbols": { "EURUSD": { "enabled": false, "lot_weak": 0.01, "enabled": true } },
          "a": 3
        }"#;
        assert_eq!(
            repeated_keys(text),
            ["b.y[0].k", "b.x", "symbols.EURUSD.enabled", "a"]
        );
        assert!(repeated_keys(r#"{ "a": { "a": 1 }, "b": [1, {"a": 2}] }"#).is_empty());
        assert!(repeated_keys("{ not json").is_empty());
    }
}
