//! cTrader Open API: the wire format, the domain conversions and an async client. The simulator
//! that speaks the same protocol is a crate of its own (`ctrader-sim`), so its binary-only
//! dependencies stay out of what the executor links.
//!
//! - [`messages`]: the generated Open API types (our own `.proto` subset of Spotware's public set in
//!   `proto/`, compiled by prost), [`messages::OpenApiMessage`] to wrap a typed message into a
//!   [`messages::ProtoMessage`], and [`messages::Payload`] to decode one into the messages we handle.
//! - [`codec`]: [`codec::FrameCodec`], the 4-byte big-endian length + `ProtoMessage` framing.
//! - [`domain`]: trendbars and spot prices in 1e-5 units, lots ↔ volume, broker error codes.
//! - [`client`]: the async TLS client ([`client::connect`] → [`client::Client`] +
//!   [`client::EventStream`]) with request matching, heartbeats, rate limits, reconnect and token
//!   persistence.

pub mod client;
pub mod codec;
pub mod domain;
pub mod messages;
