//! Oracle Hub (docs/HUB.md): one binary that a trader runs to watch and steer the fleet.
//!
//! - [`broker`]: instance credentials in Mosquitto (`hub add-instance`).
//! - [`mqtt`]: MQTT v5 options (rumqttc, rustls).
//! - [`config`], [`keys`]: the hub's config and secret files.
//! - [`link`]: the hub's MQTT session (every instance stream in, signed commands out).
//! - [`ingest`]: a (topic, payload) into an accepted record or a counted refusal; a `bars` record
//!   becomes a [`protocol::Bar`] through `fleet::BarRecord::to_bar`.
//! - [`store`]: records, derived state, candles (`protocol::Bar`s) and commands in SQLite or
//!   PostgreSQL.
//! - [`export`]: `hub export-bars`, candles as the workspace's bars CSV (`protocol::bars_file`).
//! - [`auth`], [`web`], [`events`]: the operator's login, the dashboard and API, the live feed.
//! - [`serve`]: `hub serve`, everything above together; [`sim`]: a synthetic fleet instance.

pub mod auth;
pub mod broker;
pub mod config;
pub mod events;
pub mod export;
pub mod ingest;
pub mod keys;
pub mod link;
/// The fleet's MQTT connection options (shared with the executor's link).
pub use fleet::mqtt;
pub mod serve;
pub mod sim;
pub mod store;
pub mod web;
