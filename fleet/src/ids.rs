//! Identifiers on the wire: the instance id (also its broker username and topic level), command ids
//! and confirmation nonces. Each validates on construction, so one that exists is one the topic
//! tree and the ACL accept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused: what was expected, and what came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got:?}")]
pub struct IdError {
    pub expected: &'static str,
    pub got: String,
}

impl IdError {
    fn new(expected: &'static str, got: &str) -> Self {
        // Never echo a megabyte back: the refusal names a prefix of what came.
        let got: String = got.chars().take(64).collect();
        Self { expected, got }
    }
}

/// An instance id: 1..=32 of `a-z 0-9 _ -`, starting with a letter or digit.
///
/// It is the MQTT username of the instance and one topic level (`oracle/{id}/…`), so it may hold no
/// `/ + #` (topic syntax) and nothing Mosquitto's `%u` pattern substitution would misread.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    pub const MAX_LEN: usize = 32;
    const EXPECTED: &'static str =
        "an instance id of 1..=32 characters from a-z 0-9 _ -, starting with a letter or digit";

    pub fn new(s: &str) -> Result<Self, IdError> {
        s.parse()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        let ok = (1..=Self::MAX_LEN).contains(&b.len())
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::new(Self::EXPECTED, s))
        }
    }
}

/// A command id or a confirmation nonce: 8..=64 of `A-Z a-z 0-9 _ -` (the hub uses 32 hex digits
/// from 16 random bytes). Opaque: only compared for equality.
fn token_ok(s: &str) -> bool {
    (8..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            const EXPECTED: &'static str = $expected;

            pub fn new(s: &str) -> Result<Self, IdError> {
                s.parse()
            }

            /// From random bytes (the caller's RNG: this crate does no I/O), as lowercase hex.
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if token_ok(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::new(Self::EXPECTED, s))
                }
            }
        }
    };
}

token_id!(
    /// Identifies one command, end to end: the hub's journal, the instance's seen-id set (replay
    /// refusal) and the result on `…/commands/result`.
    CommandId,
    "a command id of 8..=64 characters from A-Z a-z 0-9 _ -"
);
token_id!(
    /// The instance's answer to a command that needs a second confirmation (Flatten); the
    /// confirming command carries it back.
    Nonce,
    "a nonce of 8..=64 characters from A-Z a-z 0-9 _ -"
);

macro_rules! text_serde {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

text_serde!(InstanceId, CommandId, Nonce);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_exclude_topic_syntax() {
        for ok in ["a", "eu-1", "ftmo_100k", "0abc"] {
            assert!(InstanceId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "EU1",
            "eu/1",
            "eu+1",
            "eu#1",
            "-eu",
            "_eu",
            "eu 1",
            "é",
            "%u",
            "a234567890123456789012345678901234",
        ] {
            assert!(InstanceId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_bounded_and_plain() {
        assert!(CommandId::new("0123456789abcdef").is_ok());
        assert!(CommandId::new("short").is_err());
        assert!(CommandId::new(&"a".repeat(65)).is_err());
        assert!(Nonce::new("abc/defgh").is_err());
        assert_eq!(CommandId::from_random([0xab; 16]).as_str(), "ab".repeat(16));
        let e = CommandId::new(&"é".repeat(1000)).unwrap_err();
        assert!(e.got.chars().count() <= 64);
    }
}
