//! The handshake's wire values (PROTOCOL.md §7): a [`Nonce`] each side draws fresh per connection and
//! the [`Proof`] (an HMAC-SHA256 tag) each side computes over both nonces. Both are 32 bytes written
//! as exactly 64 lowercase hex digits, so each has one spelling. Computing and checking proofs is in
//! [`crate::handshake`] (feature `handshake`); this module only parses and formats.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;

/// Bytes in a nonce and in a proof (SHA-256's output size).
pub const AUTH_BYTES: usize = 32;

/// What a refused nonce or proof is quoted as: an older preditor sent its token in this field,
/// and an error line is sent back and logged.
const NOT_QUOTED: &str = "(not quoted)";

fn parse_hex32(s: &str, expected: &'static str) -> Result<[u8; AUTH_BYTES], ValueError> {
    let b = s.as_bytes();
    if b.len() != 2 * AUTH_BYTES {
        return Err(ValueError::new(expected, NOT_QUOTED));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; AUTH_BYTES];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
            _ => return Err(ValueError::new(expected, NOT_QUOTED)),
        }
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

macro_rules! hex32 {
    ($(#[$meta:meta])* $name:ident, $expected:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; AUTH_BYTES]);

        impl $name {
            const EXPECTED: &'static str = $expected;

            pub const fn from_bytes(bytes: [u8; AUTH_BYTES]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; AUTH_BYTES] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s, Self::EXPECTED).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        // Not a secret, but never needed in a log: an older preditor put its token where the
        // nonce now is, so logs show handshake values as `***` (see `Line::redacted`).
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(***)", stringify!($name))
            }
        }
    };
}

hex32!(
    /// A fresh random challenge, one per side and connection.
    Nonce,
    "a nonce of exactly 64 lowercase hex digits (32 random bytes)"
);

hex32!(
    /// HMAC-SHA256 over the handshake transcript, keyed with the shared IPC token.
    Proof,
    "a proof of exactly 64 lowercase hex digits (an HMAC-SHA256 tag)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_one_spelling() {
        let s = "00ff".repeat(16);
        let n: Nonce = s.parse().unwrap();
        assert_eq!(n.to_string(), s);
        assert_eq!(n.as_bytes()[1], 0xff);
        for bad in [
            "00FF".repeat(16),
            "00ff".repeat(15),
            format!("{}0", "00ff".repeat(16)),
            format!("{}g", &"0".repeat(63)),
            String::new(),
        ] {
            let e = bad.parse::<Nonce>().unwrap_err();
            assert!(
                !bad.is_empty() && !e.to_string().contains(&bad) || bad.is_empty(),
                "{e}"
            );
            assert!(bad.parse::<Proof>().is_err(), "{bad}");
        }
        assert_eq!(format!("{n:?}"), "Nonce(***)");
    }
}
