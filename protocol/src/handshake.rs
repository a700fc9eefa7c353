//! Mutual authentication over the shared IPC token without ever sending it (PROTOCOL.md §7): the
//! three-pass mutual challenge–response of ISO/IEC 9798-4 with HMAC-SHA256 as the keyed function.
//!
//! ```text
//! P → E  HELLO|preditor|<vP>|<nP>                 nP: 32 fresh random bytes
//! E → P  HELLO|executor|<vE>|<mode>|<nE>|<pE>      pE = HMAC(token, "executor" ‖ vP ‖ nP ‖ vE ‖ mode ‖ nE)
//! P → E  AUTH|<pP>                                 pP = HMAC(token, "preditor" ‖ vP ‖ nP ‖ vE ‖ mode ‖ nE)
//! ```
//!
//! Each proof covers the other side's fresh nonce, so a recorded proof is worth nothing on the next
//! connection (replay); the role label differs, so the executor's proof can never pass as the
//! preditor's or the reverse (reflection); the versions and mode are covered too, so they cannot be
//! altered in between. The preditor checks the executor's proof before it sends anything else: a
//! process squatting the executor's port learns a nonce and nothing that authenticates anywhere.
//! Proofs are compared in constant time (`hmac`'s `verify_slice`).
//!
//! Pure and synchronous: the caller moves the lines.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{AUTH_BYTES, Nonce, Proof};
use crate::lines::{Auth, Hello};
use crate::values::Mode;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted token. Anyone who can reach the port can obtain an executor proof, which is
/// enough to test guesses of the token offline: the token must be random, not a password. The
/// installer writes 32 random bytes as 64 hex digits.
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest accepted token.
pub const MAX_TOKEN_LEN: usize = 256;

/// Domain separation: these tags are for this handshake and nothing else.
const CONTEXT: &[u8] = b"oracle-trader ipc handshake v1";

/// Why a token (the content of the token file, trimmed) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the IPC token has {len} characters; at least {MIN_TOKEN_LEN} random ones are needed (write a new one with `od -An -N32 -tx1 /dev/urandom | tr -d ' \\n'`, the installer's way)"
    )]
    TooShort { len: usize },
    #[error("the IPC token has {len} characters; at most {MAX_TOKEN_LEN} are allowed")]
    TooLong { len: usize },
    #[error(
        "the IPC token may only hold printable ASCII characters without spaces (character {position} is not one)"
    )]
    BadCharacter { position: usize },
}

/// Checks a token without keeping it (for `check` commands).
pub fn check_token(token: &str) -> Result<(), TokenError> {
    let len = token.chars().count();
    if let Some(position) = token.chars().position(|c| !c.is_ascii_graphic()) {
        return Err(TokenError::BadCharacter {
            position: position + 1,
        });
    }
    if len < MIN_TOKEN_LEN {
        return Err(TokenError::TooShort { len });
    }
    if len > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { len });
    }
    Ok(())
}

/// The shared IPC token as an HMAC key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct IpcKey(Vec<u8>);

impl IpcKey {
    pub fn from_token(token: &str) -> Result<Self, TokenError> {
        check_token(token)?;
        Ok(Self(token.as_bytes().to_vec()))
    }

    fn tag(&self, role: &str, t: &Transcript<'_>) -> HmacSha256 {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        // `|` separates fields that cannot contain it (versions, a mode word, hex nonces), so the
        // encoding is unambiguous.
        for part in [
            CONTEXT,
            role.as_bytes(),
            t.preditor_version.as_bytes(),
            t.preditor_nonce.to_string().as_bytes(),
            t.executor_version.as_bytes(),
            t.mode.as_str().as_bytes(),
            t.executor_nonce.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"|");
        }
        mac
    }

    fn prove(&self, role: &str, t: &Transcript<'_>) -> Proof {
        let bytes: [u8; AUTH_BYTES] = self.tag(role, t).finalize().into_bytes().into();
        Proof::from_bytes(bytes)
    }

    fn verify(&self, role: &str, t: &Transcript<'_>, proof: &Proof) -> bool {
        self.tag(role, t).verify_slice(proof.as_bytes()).is_ok()
    }
}

impl fmt::Debug for IpcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IpcKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("cannot draw a random nonce from the operating system: {0}")]
    Random(String),
    #[error("expected HELLO|{expected}|..., got a HELLO of the other role")]
    WrongRole { expected: &'static str },
    #[error("bad version: {0}")]
    Version(String),
    #[error(
        "the {peer}'s proof is wrong: it does not hold this IPC token (another process on the port, or a different token)"
    )]
    BadProof { peer: &'static str },
}

/// Everything both proofs cover.
struct Transcript<'a> {
    preditor_version: &'a str,
    preditor_nonce: &'a Nonce,
    executor_version: &'a str,
    mode: Mode,
    executor_nonce: &'a Nonce,
}

const PREDITOR: &str = "preditor";
const EXECUTOR: &str = "executor";

/// 32 bytes from the operating system's CSPRNG.
pub fn fresh_nonce() -> Result<Nonce, HandshakeError> {
    let mut b = [0u8; AUTH_BYTES];
    getrandom::fill(&mut b).map_err(|e| HandshakeError::Random(e.to_string()))?;
    Ok(Nonce::from_bytes(b))
}

/// The executor as the preditor learnt it from a verified HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    pub version: String,
    pub mode: Mode,
}

/// The preditor's side: [`PreditorHandshake::start`] gives the HELLO to send, then
/// [`PreditorHandshake::finish`] checks the executor's HELLO and gives the AUTH to send.
#[derive(Debug)]
pub struct PreditorHandshake {
    key: IpcKey,
    version: String,
    nonce: Nonce,
}

impl PreditorHandshake {
    pub fn start(key: &IpcKey, version: &str) -> Result<(Self, Hello), HandshakeError> {
        Self::start_with(key, version, fresh_nonce()?)
    }

    /// [`Self::start`] with a given nonce (tests).
    pub fn start_with(
        key: &IpcKey,
        version: &str,
        nonce: Nonce,
    ) -> Result<(Self, Hello), HandshakeError> {
        let hello =
            Hello::preditor(version, nonce).map_err(|e| HandshakeError::Version(e.to_string()))?;
        let me = Self {
            key: key.clone(),
            version: version.to_owned(),
            nonce,
        };
        Ok((me, hello))
    }

    /// Checks the executor's proof; only then answers with ours.
    pub fn finish(self, executor_hello: &Hello) -> Result<(Auth, Executor), HandshakeError> {
        let Hello::Executor {
            version,
            mode,
            nonce,
            proof,
        } = executor_hello
        else {
            return Err(HandshakeError::WrongRole { expected: EXECUTOR });
        };
        let t = Transcript {
            preditor_version: &self.version,
            preditor_nonce: &self.nonce,
            executor_version: version,
            mode: *mode,
            executor_nonce: nonce,
        };
        if !self.key.verify(EXECUTOR, &t, proof) {
            return Err(HandshakeError::BadProof { peer: EXECUTOR });
        }
        let auth = Auth {
            proof: self.key.prove(PREDITOR, &t),
        };
        let executor = Executor {
            version: version.clone(),
            mode: *mode,
        };
        Ok((auth, executor))
    }
}

/// The executor's side: [`ExecutorHandshake::answer`] takes the preditor's HELLO and gives ours
/// (with our proof), then [`ExecutorHandshake::finish`] checks the preditor's AUTH.
#[derive(Debug)]
pub struct ExecutorHandshake {
    key: IpcKey,
    preditor_version: String,
    preditor_nonce: Nonce,
    version: String,
    mode: Mode,
    nonce: Nonce,
}

impl ExecutorHandshake {
    pub fn answer(
        key: &IpcKey,
        version: &str,
        mode: Mode,
        preditor_hello: &Hello,
    ) -> Result<(Self, Hello), HandshakeError> {
        Self::answer_with(key, version, mode, preditor_hello, fresh_nonce()?)
    }

    /// [`Self::answer`] with a given nonce (tests).
    pub fn answer_with(
        key: &IpcKey,
        version: &str,
        mode: Mode,
        preditor_hello: &Hello,
        nonce: Nonce,
    ) -> Result<(Self, Hello), HandshakeError> {
        let Hello::Preditor {
            version: preditor_version,
            nonce: preditor_nonce,
        } = preditor_hello
        else {
            return Err(HandshakeError::WrongRole { expected: PREDITOR });
        };
        let me = Self {
            key: key.clone(),
            preditor_version: preditor_version.clone(),
            preditor_nonce: *preditor_nonce,
            version: version.to_owned(),
            mode,
            nonce,
        };
        let proof = me.key.prove(EXECUTOR, &me.transcript());
        let hello = Hello::executor(version, mode, nonce, proof)
            .map_err(|e| HandshakeError::Version(e.to_string()))?;
        Ok((me, hello))
    }

    fn transcript(&self) -> Transcript<'_> {
        Transcript {
            preditor_version: &self.preditor_version,
            preditor_nonce: &self.preditor_nonce,
            executor_version: &self.version,
            mode: self.mode,
            executor_nonce: &self.nonce,
        }
    }

    /// The preditor's version once its proof checks out.
    pub fn finish(self, auth: &Auth) -> Result<String, HandshakeError> {
        if self.key.verify(PREDITOR, &self.transcript(), &auth.proof) {
            Ok(self.preditor_version)
        } else {
            Err(HandshakeError::BadProof { peer: PREDITOR })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn key(t: &str) -> IpcKey {
        IpcKey::from_token(t).unwrap()
    }

    #[test]
    fn both_sides_authenticate_with_the_same_token() {
        let k = key(TOKEN);
        let (p, hello) = PreditorHandshake::start(&k, "0.1.0").unwrap();
        let (e, reply) = ExecutorHandshake::answer(&k, "0.2.0", Mode::Shadow, &hello).unwrap();
        let (auth, exec) = p.finish(&reply).unwrap();
        assert_eq!(
            exec,
            Executor {
                version: "0.2.0".into(),
                mode: Mode::Shadow
            }
        );
        assert_eq!(e.finish(&auth).unwrap(), "0.1.0");
    }

    #[test]
    fn no_line_of_the_handshake_carries_the_token() {
        let k = key(TOKEN);
        let (p, hello) = PreditorHandshake::start(&k, "0.1.0").unwrap();
        let (_, reply) = ExecutorHandshake::answer(&k, "0.1.0", Mode::Live, &hello).unwrap();
        let (auth, _) = p.finish(&reply).unwrap();
        for line in [
            crate::Line::Hello(hello),
            crate::Line::Hello(reply),
            crate::Line::Auth(auth),
        ] {
            assert!(!line.to_string().contains(TOKEN), "{line}");
            assert!(!format!("{line:?}").contains(TOKEN));
        }
        assert_eq!(format!("{k:?}"), "IpcKey(***)");
    }

    #[test]
    fn a_different_token_fails_on_both_sides() {
        let (good, other) = (key(TOKEN), key(&"z".repeat(40)));
        // A fake executor: the preditor refuses it and sends no proof.
        let (p, hello) = PreditorHandshake::start(&good, "0.1.0").unwrap();
        let (_, fake) = ExecutorHandshake::answer(&other, "0.1.0", Mode::Live, &hello).unwrap();
        assert_eq!(
            p.finish(&fake).unwrap_err(),
            HandshakeError::BadProof { peer: EXECUTOR }
        );
        // A fake preditor: its AUTH is refused.
        let (p, hello) = PreditorHandshake::start(&other, "0.1.0").unwrap();
        let (e, reply) = ExecutorHandshake::answer(&good, "0.1.0", Mode::Live, &hello).unwrap();
        let forged = Auth {
            proof: other.prove(
                PREDITOR,
                &Transcript {
                    preditor_version: "0.1.0",
                    preditor_nonce: &p.nonce,
                    executor_version: "0.1.0",
                    mode: Mode::Live,
                    executor_nonce: match &reply {
                        Hello::Executor { nonce, .. } => nonce,
                        Hello::Preditor { .. } => unreachable!(),
                    },
                },
            ),
        };
        assert!(e.finish(&forged).is_err());
    }

    #[test]
    fn reflecting_the_executors_proof_back_fails() {
        let k = key(TOKEN);
        // An attacker connects to the executor, sends a nonce, and returns the executor's own proof
        // (even choosing its nonce equal to the executor's cannot make the roles' tags agree).
        let n = Nonce::from_bytes([7; 32]);
        let hello = Hello::preditor("0.1.0", n).unwrap();
        let (e, reply) =
            ExecutorHandshake::answer_with(&k, "0.1.0", Mode::Live, &hello, n).unwrap();
        let Hello::Executor { proof, .. } = reply else {
            unreachable!()
        };
        assert!(e.finish(&Auth { proof }).is_err());
    }

    #[test]
    fn a_recorded_proof_fails_on_a_new_connection() {
        let k = key(TOKEN);
        let (p, hello) = PreditorHandshake::start(&k, "0.1.0").unwrap();
        let (e1, reply) = ExecutorHandshake::answer(&k, "0.1.0", Mode::Live, &hello).unwrap();
        let (auth, _) = p.finish(&reply).unwrap();
        assert!(e1.finish(&auth).is_ok());
        // The same HELLO and AUTH replayed: the executor's fresh nonce makes the old proof wrong.
        let (e2, _) = ExecutorHandshake::answer(&k, "0.1.0", Mode::Live, &hello).unwrap();
        assert!(e2.finish(&auth).is_err());
        // And an executor HELLO recorded once does not fool a preditor's next connection.
        let (p2, _) = PreditorHandshake::start(&k, "0.1.0").unwrap();
        assert!(p2.finish(&reply).is_err());
    }

    #[test]
    fn a_tampered_mode_or_version_fails() {
        let k = key(TOKEN);
        let (p, hello) = PreditorHandshake::start(&k, "0.1.0").unwrap();
        let (_, reply) = ExecutorHandshake::answer(&k, "0.1.0", Mode::Paper, &hello).unwrap();
        let Hello::Executor {
            version,
            nonce,
            proof,
            ..
        } = reply
        else {
            unreachable!()
        };
        let tampered = Hello::Executor {
            version,
            mode: Mode::Live,
            nonce,
            proof,
        };
        assert!(p.finish(&tampered).is_err());
    }

    #[test]
    fn tokens_must_be_long_random_printable_ascii() {
        assert!(check_token(TOKEN).is_ok());
        assert_eq!(check_token("short"), Err(TokenError::TooShort { len: 5 }));
        assert!(matches!(
            check_token(&"a".repeat(257)),
            Err(TokenError::TooLong { .. })
        ));
        assert_eq!(
            check_token(&format!("{TOKEN} x")),
            Err(TokenError::BadCharacter { position: 33 })
        );
        assert!(matches!(
            check_token(&format!("{TOKEN}é")),
            Err(TokenError::BadCharacter { .. })
        ));
        let e = check_token("short").unwrap_err().to_string();
        assert!(e.contains("/dev/urandom"), "{e}");
    }
}
