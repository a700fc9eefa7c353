//! The Oracle fleet wire contract, shared by the hub and the executor (docs/HUB.md is its
//! specification). No I/O: types, validation, signing and verification only.
//!
//! - [`topic`]: `oracle/{instance_id}/{stream}`, the [`Stream`]s and their size bounds.
//! - [`record`]: the versioned JSON [`Record`]s an instance publishes and their [`decode`]r.
//! - [`command`]: the one typed operator [`Command`] set (hub and `executor ctl`), its
//!   [`CommandResult`]s and [`Refusal`]s.
//! - [`signed`]: hub commands signed with ed25519, their pure [`verify`] with an injected clock,
//!   and the Flatten [`Confirmations`].
//! - [`limits`]: every size bound.
//! - `mqtt` (feature `mqtt`): rumqttc connection options over rustls, the only I/O here.

pub mod command;
pub mod ids;
pub mod limits;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod record;
pub mod signed;
pub mod topic;

pub use command::{
    BookStatus, BookSymbol, Books, ClosedPosition, Command, CommandOutcome, CommandResult,
    FailedClose, HeldPosition, LimitUse, Lots, Origin, Refusal, RefusalCode, RiskLimits,
    RiskSettings, StatusDocument, SymbolSettings,
};
pub use ids::{CommandId, IdError, InstanceId, Nonce};
pub use record::{
    AckRecord, BarRecord, Body, Book, BrokerLink, DriftRecord, LastBar, LossUse, Position, Record,
    RecordError, Side, SignalRecord, Status, SymbolTelemetry, Telemetry, decode,
};
pub use signed::{
    CommandEnvelope, Confirmations, Gate, Rejected, SignedCommand, VerifyPolicy, sign, verify,
};
pub use topic::{Stream, commands_topic, hub_subscriptions, parse_topic, stream_topic};

/// Re-exported so users name one ed25519 implementation.
pub use ed25519_dalek;
