//! Hub commands as sent on `oracle/{id}/commands`, signed with the hub's ed25519 key.
//!
//! The signature covers exact bytes: the hub serializes the [`CommandEnvelope`] once, signs those
//! bytes, and carries them as a JSON string (`payload`) beside the signature. The instance verifies
//! the bytes it received, then parses them; no canonical form is needed, and a byte changed anywhere
//! in `payload` fails the signature.
//!
//! Verification is pure: the caller supplies the clock (`now_ms`) and the seen-id set (persisted by
//! the instance). Commands expire; ids need only be remembered until their `expires_ms` plus the
//! allowed skew has passed (after that the expiry check refuses a replay anyway).

use std::collections::VecDeque;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, Refusal, RefusalCode};
use crate::ids::{CommandId, InstanceId, Nonce};
use crate::limits::MAX_COMMAND_BYTES;

/// The envelope version this crate writes and reads.
pub const COMMAND_VERSION: u32 = 1;

/// What the hub signs: the command, its id, the target instance, when it was issued and until when
/// it may run, and (for a confirmation) the nonce the instance answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandEnvelope {
    pub v: u32,
    pub id: CommandId,
    pub instance: InstanceId,
    pub issued_ms: i64,
    pub expires_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Nonce>,
    pub command: Command,
}

/// The message on `oracle/{id}/commands`: `{"v":1,"payload":"<envelope JSON>","sig":"<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub v: u32,
    pub payload: String,
    pub sig: String,
}

impl SignedCommand {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Signs an envelope with the hub's key.
pub fn sign(envelope: &CommandEnvelope, key: &SigningKey) -> SignedCommand {
    let payload = serde_json::to_string(envelope).unwrap_or_default();
    let sig = key.sign(payload.as_bytes());
    SignedCommand {
        v: COMMAND_VERSION,
        payload,
        sig: B64.encode(sig.to_bytes()),
    }
}

/// The hub's public key as written in the executor config (`hub_public_key`): the 32-byte key in
/// standard base64 (44 characters).
pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses `hub_public_key`.
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("hub_public_key is not base64: {e}"))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "hub_public_key is {} bytes, an ed25519 key is 32",
            bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("hub_public_key is not an ed25519 key: {e}"))
}

/// Bounds on time an instance applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// |issued_ms − now_ms| above this is refused (clocks too far apart).
    pub max_skew_ms: i64,
    /// expires_ms − issued_ms above this is refused (a command that would live too long).
    pub max_ttl_ms: i64,
}

impl Default for VerifyPolicy {
    /// 30 s of skew, 5 min of life: NTP-synced hosts are within milliseconds; an operator's
    /// click is acted on in seconds or not at all.
    fn default() -> Self {
        Self {
            max_skew_ms: 30_000,
            max_ttl_ms: 300_000,
        }
    }
}

/// A refused command: the refusal, and the command's id when it could be trusted (the signature
/// verified), so the result can name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{refusal}")]
pub struct Rejected {
    pub id: Option<CommandId>,
    pub op: Option<&'static str>,
    pub refusal: Refusal,
}

fn reject(code: RefusalCode, message: impl Into<String>) -> Rejected {
    Rejected {
        id: None,
        op: None,
        refusal: Refusal::new(code, message),
    }
}

/// Verifies a message received on `oracle/{me}/commands`. Order: size, outer shape, signature over
/// the payload bytes, envelope shape, target instance, time, replay, then the command's own range
/// checks. A refusal before the signature verified carries no id (nothing in it can be trusted).
pub fn verify(
    raw: &[u8],
    key: &VerifyingKey,
    me: &InstanceId,
    now_ms: i64,
    policy: VerifyPolicy,
    seen: impl Fn(&CommandId) -> bool,
) -> Result<CommandEnvelope, Rejected> {
    if raw.len() > MAX_COMMAND_BYTES {
        return Err(reject(
            RefusalCode::TooLarge,
            format!("{} bytes, at most {MAX_COMMAND_BYTES}", raw.len()),
        ));
    }
    let outer: SignedCommand = serde_json::from_slice(raw)
        .map_err(|e| reject(RefusalCode::Malformed, format!("not a signed command: {e}")))?;
    if outer.v != COMMAND_VERSION {
        return Err(reject(
            RefusalCode::UnsupportedVersion,
            format!("version {}, this instance reads {COMMAND_VERSION}", outer.v),
        ));
    }
    let sig_bytes = B64
        .decode(outer.sig.as_bytes())
        .map_err(|_| reject(RefusalCode::BadSignature, "sig is not base64"))?;
    let sig = Signature::from_slice(&sig_bytes)
        .map_err(|_| reject(RefusalCode::BadSignature, "sig is not 64 bytes"))?;
    key.verify(outer.payload.as_bytes(), &sig).map_err(|_| {
        reject(
            RefusalCode::BadSignature,
            "the signature does not verify with hub_public_key",
        )
    })?;
    let env: CommandEnvelope = serde_json::from_str(&outer.payload).map_err(|e| {
        reject(
            RefusalCode::Malformed,
            format!("signed payload is not a command envelope: {e}"),
        )
    })?;
    let trusted = |code, message: String| Rejected {
        id: Some(env.id.clone()),
        op: Some(env.command.op()),
        refusal: Refusal::new(code, message),
    };
    if env.v != COMMAND_VERSION {
        return Err(trusted(
            RefusalCode::UnsupportedVersion,
            format!(
                "envelope version {}, this instance reads {COMMAND_VERSION}",
                env.v
            ),
        ));
    }
    if &env.instance != me {
        return Err(trusted(
            RefusalCode::WrongInstance,
            format!("signed for instance {}, this is {me}", env.instance),
        ));
    }
    if now_ms > env.expires_ms {
        return Err(trusted(
            RefusalCode::Expired,
            format!("expired {} ms ago", now_ms.saturating_sub(env.expires_ms)),
        ));
    }
    let skew = now_ms.saturating_sub(env.issued_ms).saturating_abs();
    if skew > policy.max_skew_ms {
        return Err(trusted(
            RefusalCode::ClockSkew,
            format!(
                "issued {skew} ms from this instance's clock, at most {} (check NTP on both hosts)",
                policy.max_skew_ms
            ),
        ));
    }
    let ttl = env.expires_ms.saturating_sub(env.issued_ms);
    if ttl > policy.max_ttl_ms || ttl < 0 {
        return Err(trusted(
            RefusalCode::ClockSkew,
            format!("lives {ttl} ms, at most {} ms", policy.max_ttl_ms),
        ));
    }
    if seen(&env.id) {
        return Err(trusted(
            RefusalCode::Replayed,
            "this command id was already received".into(),
        ));
    }
    if let Err(refusal) = env.command.validate() {
        return Err(Rejected {
            id: Some(env.id.clone()),
            op: Some(env.command.op()),
            refusal,
        });
    }
    Ok(env)
}

// ---------------------------------------------------------------------------------------------
// confirmations

#[derive(Debug, Clone)]
struct Pending {
    nonce: Nonce,
    command: Command,
    expires_ms: i64,
}

/// The instance's pending confirmations (Flatten). The first command gets `needs_confirmation`
/// with a fresh nonce; the same command sent again with `confirm` = that nonce, before it expires,
/// runs. A nonce is used once. Bounded: the oldest pending one is forgotten past `capacity`.
#[derive(Debug, Clone)]
pub struct Confirmations {
    pending: VecDeque<Pending>,
    capacity: usize,
    ttl_ms: i64,
}

/// What to do with a verified command.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Run it.
    Execute,
    /// Answer this and run nothing (needs_confirmation, or a refused confirmation).
    Answer(CommandResult),
}

impl Confirmations {
    /// `ttl_ms`: how long a nonce stays valid (e.g. 60 000).
    pub fn new(capacity: usize, ttl_ms: i64) -> Self {
        Self {
            pending: VecDeque::new(),
            capacity: capacity.max(1),
            ttl_ms,
        }
    }

    /// Decides whether `command` runs now. `fresh_nonce` is called only when one is needed (the
    /// caller's RNG).
    pub fn gate(
        &mut self,
        command: &Command,
        confirm: Option<&Nonce>,
        now_ms: i64,
        fresh_nonce: impl FnOnce() -> Nonce,
    ) -> Gate {
        self.pending.retain(|p| p.expires_ms >= now_ms);
        if let Some(nonce) = confirm {
            let Some(i) = self.pending.iter().position(|p| &p.nonce == nonce) else {
                return Gate::Answer(CommandResult::Refused(Refusal::new(
                    RefusalCode::BadConfirmation,
                    "unknown or expired confirmation nonce: send the command again without confirm",
                )));
            };
            // Used once, whatever follows: a nonce never confirms twice.
            let Some(p) = self.pending.remove(i) else {
                return Gate::Execute;
            };
            if &p.command != command {
                return Gate::Answer(CommandResult::Refused(Refusal::new(
                    RefusalCode::BadConfirmation,
                    format!(
                        "the nonce confirms {}, not this {}",
                        p.command.op(),
                        command.op()
                    ),
                )));
            }
            return Gate::Execute;
        }
        if !command.needs_confirmation() {
            return Gate::Execute;
        }
        let nonce = fresh_nonce();
        let expires_ms = now_ms.saturating_add(self.ttl_ms);
        if self.pending.len() >= self.capacity {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            nonce: nonce.clone(),
            command: command.clone(),
            expires_ms,
        });
        Gate::Answer(CommandResult::NeedsConfirmation {
            nonce,
            summary: summary(command),
            expires_ms,
        })
    }
}

fn summary(command: &Command) -> String {
    match command {
        Command::Flatten { symbol, books } => format!(
            "flatten {} on {} book(s)",
            symbol
                .as_ref()
                .map_or("every symbol".to_string(), |s| s.to_string()),
            match books {
                crate::command::Books::All => "the live and paper",
                crate::command::Books::Live => "the live",
                crate::command::Books::Paper => "the paper",
            }
        ),
        other => other.op().to_string(),
    }
}
