//! Oracle Hub (docs/HUB.md): one binary that a trader runs to watch and steer the fleet.
//!
//! - [`broker`]: instance credentials in Mosquitto (`hub add-instance`).
//! - [`mqtt`]: MQTT v5 options (rumqttc, rustls).
//! - [`config`], [`keys`]: the hub's config and secret files.

pub mod auth;
pub mod broker;
pub mod config;
pub mod events;
pub mod export;
pub mod ingest;
pub mod keys;
pub mod link;
pub mod mqtt;
pub mod serve;
pub mod sim;
pub mod store;
pub mod web;
