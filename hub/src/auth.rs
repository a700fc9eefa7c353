//! The operator's login: an argon2 password hash in the hub's config, server-side sessions behind
//! an opaque random cookie, a CSRF token per session, and a throttle on failed logins.
//!
//! Why no session crate: one operator, sessions in memory (a hub restart asks for a new login), and
//! the cookie is a 256-bit random key into a map, so nothing needs signing. The `cookie` crate
//! writes and parses the headers; `argon2` (RustCrypto) checks the password.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::keys::{random_bytes, random_token};

/// The argon2id PHC string of `password` (default parameters of the `argon2` crate: m=19 MiB,
/// t=2, p=1, OWASP's minimum for argon2id).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

/// Constant-time comparison of the user name; argon2 verification for the password.
pub fn check_login(cfg_user: &str, cfg_hash: &str, user: &str, password: &str) -> bool {
    let user_ok = constant_eq(cfg_user.as_bytes(), user.as_bytes());
    let pw_ok = PasswordHash::new(cfg_hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    user_ok & pw_ok
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub expires_ms: i64,
}

/// Sessions and the login throttle.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    failures: Mutex<Vec<i64>>,
    ttl_ms: i64,
}

/// At most this many live sessions (older ones are dropped): memory stays bounded whatever a
/// client does with the login form.
const MAX_SESSIONS: usize = 64;
/// Failed logins allowed per minute before the form answers 429.
pub const MAX_FAILURES_PER_MINUTE: usize = 10;

impl Sessions {
    pub fn new(ttl_ms: i64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            failures: Mutex::new(Vec::new()),
            ttl_ms,
        }
    }

    /// A new session: (cookie value, session).
    pub fn create(&self, now_ms: i64) -> (String, Session) {
        let token = random_token();
        let s = Session {
            csrf: random_token(),
            expires_ms: now_ms + self.ttl_ms,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, v| v.expires_ms > now_ms);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, v)| v.expires_ms)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), s.clone());
        (token, s)
    }

    pub fn get(&self, token: &str, now_ms: i64) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token).filter(|s| s.expires_ms > now_ms).cloned()
    }

    pub fn remove(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Whether another login attempt may be checked now.
    pub fn may_try(&self, now_ms: i64) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|t| now_ms - t < 60_000);
        f.len() < MAX_FAILURES_PER_MINUTE
    }

    pub fn failed(&self, now_ms: i64) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(now_ms);
    }
}

/// Compares a CSRF token from a request with the session's, in constant time.
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| constant_eq(g.as_bytes(), session.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_sessions() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(check_login("op", &h, "op", "correct horse battery"));
        assert!(!check_login("op", &h, "op", "correct horse batterY"));
        assert!(!check_login("op", &h, "other", "correct horse battery"));
        assert!(!check_login("op", "not a hash", "op", "x"));
        let s = Sessions::new(1000);
        let (tok, sess) = s.create(0);
        assert!(s.get(&tok, 999).is_some());
        assert!(s.get(&tok, 1000).is_none(), "expired");
        assert!(s.get("guess", 1).is_none());
        assert!(csrf_ok(&sess, Some(&sess.csrf)));
        assert!(!csrf_ok(&sess, Some("x")));
        assert!(!csrf_ok(&sess, None));
        for i in 0..200 {
            s.create(i);
        }
        assert!(s.map.lock().unwrap().len() <= MAX_SESSIONS);
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(s.may_try(5));
            s.failed(5);
        }
        assert!(!s.may_try(6));
        assert!(s.may_try(60_006));
    }
}
