//! Trading-domain conversions of Open API values: prices in 1e-5 units, trendbars as low + deltas
//! (to and from the workspace's one `protocol::Bar`), lots ↔ volume in 0.01 units of the base
//! asset, and the broker's error codes.
//!
//! Everything here is pure and synchronous.

pub mod error_code;
pub mod execution;
pub mod price;
pub mod trendbar;
pub mod volume;

pub use error_code::ErrorCode;
pub use execution::{Applied, OrderEnd, OrderProgress};
pub use price::{PRICE_SCALE, SpotQuote, price_from_units, price_to_units, round_to_digits};
pub use trendbar::{
    LiveTrendbar, MAX_TRENDBAR_TIMESTAMP_MS, Timeframe, TrendbarError, TrendbarPeriod, closed_bar,
    encode_closed, encode_live, max_trendbar_request_ms,
};
pub use volume::{SymbolVolume, VolumeError};
