//! What a log shows of a line: the text with the handshake's nonces and proofs replaced by `***`.
//!
//! None of them is a secret, but an older preditor sent its token where the nonce now is, and a log
//! has no use for them. [`redact`] works on raw text, so a malformed line (which is logged too) is
//! covered: a field is kept only where it is known to hold no handshake value.

use std::borrow::Cow;

use crate::values::Mode;

/// `HELLO|preditor|<v>|<nonce>` → `HELLO|preditor|<v>|***`, `HELLO|executor|<v>|<mode>|<nonce>|<proof>`
/// → `HELLO|executor|<v>|<mode>|***|***`, `AUTH|<proof>` → `AUTH|***`; any other line as it is.
/// In a HELLO, the role, the version and the mode are kept only when they are what those fields
/// may hold; anything else, and every further field, becomes `***`.
pub fn redact(raw: &str) -> Cow<'_, str> {
    if raw.starts_with("AUTH|") {
        return Cow::Borrowed("AUTH|***");
    }
    let Some(rest) = raw.strip_prefix("HELLO|") else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::from("HELLO");
    let mut fields = rest.split('|');
    let role = fields.next().unwrap_or_default();
    let known_role = matches!(role, "preditor" | "executor");
    push(&mut out, known_role.then_some(role));
    if let Some(version) = fields.next() {
        push(
            &mut out,
            (known_role && is_version(version)).then_some(version),
        );
    }
    if role == "executor"
        && let Some(mode) = fields.next()
    {
        push(
            &mut out,
            Mode::ALL.iter().any(|m| m.as_str() == mode).then_some(mode),
        );
    }
    for _ in fields {
        push(&mut out, None);
    }
    Cow::Owned(out)
}

fn push(out: &mut String, field: Option<&str>) {
    out.push('|');
    out.push_str(field.unwrap_or("***"));
}

/// The HELLO version grammar (`Hello::MAX_VERSION_LEN` characters of `A-Z a-z 0-9 . _ + -`).
fn is_version(s: &str) -> bool {
    (1..=crate::Hello::MAX_VERSION_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_values_are_starred() {
        for (raw, shown) in [
            ("HELLO|preditor|0.1.0|abcdef", "HELLO|preditor|0.1.0|***"),
            (
                "HELLO|executor|0.1.0|shadow|abc|def",
                "HELLO|executor|0.1.0|shadow|***|***",
            ),
            ("AUTH|0123abcd", "AUTH|***"),
            ("AUTH|", "AUTH|***"),
            // Malformed: more fields, an unknown role, a version that is not one, no mode.
            (
                "HELLO|preditor|0.1.0|nonce|token",
                "HELLO|preditor|0.1.0|***|***",
            ),
            ("HELLO|secret-token", "HELLO|***"),
            ("HELLO|mallory|0.1.0|x", "HELLO|***|***|***"),
            (
                "HELLO|preditor|0123456789abcdef0123456789abcdef01|n",
                "HELLO|preditor|***|***",
            ),
            ("HELLO|executor|0.1|token|p", "HELLO|executor|0.1|***|***"),
            ("HELLO|", "HELLO|***"),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }

    #[test]
    fn other_lines_pass_unchanged_and_unallocated() {
        for raw in [
            "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1",
            "BAR|EURUSD|H1|2026-02-03T10:00:00Z|1.1|1.2|1.0|1.15|10",
            "HELLOX|a",
            "AUTHX",
            "",
        ] {
            assert!(matches!(redact(raw), Cow::Borrowed(r) if r == raw), "{raw}");
        }
    }
}
