//! The IPC token's rule: what a token file may hold so that every HELLO carrying it parses.
//!
//! A token with a space, a `|`, a non-ASCII character or more than [`MAX_TOKEN_LEN`] characters
//! cannot be sent in a line, so a daemon that accepted it at startup would fail at every reconnect.
//! Both daemons check their token file with [`check_token`] at startup and in `check`.

/// Longest token, in bytes (= characters: the token is ASCII).
pub const MAX_TOKEN_LEN: usize = 256;

/// Why a token is refused. Never holds the token (it is a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} characters long; at most {MAX_TOKEN_LEN}")]
    TooLong { len: usize },
    #[error("character {position} is {what}; a token is printable ASCII (33..=126) other than '|'")]
    BadCharacter { position: usize, what: &'static str },
}

/// Whether `token` is 1..=256 printable ASCII characters other than `|` (no space).
pub fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let len = token.chars().count();
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { len });
    }
    for (i, c) in token.chars().enumerate() {
        let what = match c {
            ' ' => "a space",
            '|' => "'|' (the field separator)",
            c if !c.is_ascii() => "not ASCII",
            c if c.is_ascii_control() => "a control character",
            _ => continue,
        };
        return Err(TokenError::BadCharacter {
            position: i + 1,
            what,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_and_its_refusals() {
        assert_eq!(check_token("test-token-0123456789"), Ok(()));
        assert_eq!(check_token(&"a".repeat(256)), Ok(()));
        assert_eq!(check_token(""), Err(TokenError::Empty));
        assert_eq!(
            check_token(&"a".repeat(300)),
            Err(TokenError::TooLong { len: 300 })
        );
        for (t, pos) in [("ab cd", 3), ("ab|cd", 3), ("abé", 3), ("a\tb", 2)] {
            assert!(
                matches!(check_token(t), Err(TokenError::BadCharacter { position, .. }) if position == pos),
                "{t:?}"
            );
        }
        let e = check_token("secret|value").unwrap_err().to_string();
        assert!(!e.contains("secret"), "never quotes the token: {e}");
    }
}
