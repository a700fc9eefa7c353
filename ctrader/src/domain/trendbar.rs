//! Trendbars: the server sends `low` and unsigned deltas to open, close and high, all in 1e-5
//! units, plus the open time in Unix minutes.
//!
//! Two kinds. A bar from `ProtoOAGetTrendbarsRes` is closed and complete: it decodes to the
//! workspace's one [`Bar`] ([`closed_bar`]; [`encode_closed`] is the way back, for the simulator). A
//! *live* trendbar inside `ProtoOASpotEvent` ("Returns live trend bar. Requires subscription on
//! the trend bars", spotware/openapi-proto-messages `OpenApiMessages.proto`) is the bar still
//! forming and carries `low`, `deltaOpen`, `deltaHigh`, `volume`, `period` and
//! `utcTimestampInMinutes` but **no `deltaClose`**: its last price is the bid of the spot it came
//! with. That is [`LiveTrendbar`], which has no close at all; [`LiveTrendbar::with_close`] makes a
//! [`Bar`] only once the caller supplies the bid.
//!
//! `volume` is `required int64` on the wire (`OpenApiModelMessages.proto`, `ProtoOATrendbar`), a
//! tick count; a negative one is refused ([`TrendbarError::NegativeVolume`]) rather than clamped.

use protocol::Bar;

use crate::domain::price::{PRICE_SCALE, price_to_units};
use crate::messages::{ProtoOaTrendbar, ProtoOaTrendbarPeriod};

/// Why a trendbar could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrendbarError {
    /// `low` is absent; without it no price can be reconstructed.
    #[error("trendbar at {minutes:?} min has no `low` field")]
    MissingLow {
        /// The bar's open time in minutes, if present.
        minutes: Option<u32>,
    },
    /// `utcTimestampInMinutes` is absent.
    #[error("trendbar has no `utcTimestampInMinutes` field")]
    MissingTimestamp,
    /// `low + delta` does not fit a price.
    #[error("trendbar at {minutes} min: low {low} + {field} {delta} overflows")]
    Overflow {
        /// The bar's open time in minutes.
        minutes: u32,
        /// The overflowing delta field.
        field: &'static str,
        /// The `low` value.
        low: i64,
        /// The delta value.
        delta: u64,
    },
    /// A period number outside `ProtoOATrendbarPeriod`.
    #[error("unknown trendbar period {0} (expected 1..=14, M1..MN1)")]
    UnknownPeriod(i32),
    /// A tick count below zero.
    #[error("trendbar at {minutes} min has a negative volume ({volume})")]
    NegativeVolume {
        /// The bar's open time in minutes.
        minutes: u32,
        /// The volume sent.
        volume: i64,
    },
}

/// The bar periods: the IPC protocol's [`Timeframe`] (cTrader's own names), re-exported so the client
/// and the daemons share one type. This crate only adds the Open API mapping ([`TrendbarPeriod`]).
pub use protocol::Timeframe;

/// The Open API side of a [`Timeframe`]: the `ProtoOATrendbarPeriod` enum and the period length.
pub trait TrendbarPeriod: Sized {
    /// The Open API enum value.
    fn to_proto(self) -> ProtoOaTrendbarPeriod;
    /// From the Open API enum number (as carried in an `i32` field).
    fn from_proto(value: i32) -> Result<Self, TrendbarError>;
    /// The bar length in seconds; `None` for MN1, whose length follows the calendar.
    fn seconds(self) -> Option<i64>;
}

impl TrendbarPeriod for Timeframe {
    fn to_proto(self) -> ProtoOaTrendbarPeriod {
        match self {
            Self::M1 => ProtoOaTrendbarPeriod::M1,
            Self::M2 => ProtoOaTrendbarPeriod::M2,
            Self::M3 => ProtoOaTrendbarPeriod::M3,
            Self::M4 => ProtoOaTrendbarPeriod::M4,
            Self::M5 => ProtoOaTrendbarPeriod::M5,
            Self::M10 => ProtoOaTrendbarPeriod::M10,
            Self::M15 => ProtoOaTrendbarPeriod::M15,
            Self::M30 => ProtoOaTrendbarPeriod::M30,
            Self::H1 => ProtoOaTrendbarPeriod::H1,
            Self::H4 => ProtoOaTrendbarPeriod::H4,
            Self::H12 => ProtoOaTrendbarPeriod::H12,
            Self::D1 => ProtoOaTrendbarPeriod::D1,
            Self::W1 => ProtoOaTrendbarPeriod::W1,
            Self::MN1 => ProtoOaTrendbarPeriod::Mn1,
        }
    }

    fn from_proto(value: i32) -> Result<Self, TrendbarError> {
        let p = ProtoOaTrendbarPeriod::try_from(value)
            .map_err(|_| TrendbarError::UnknownPeriod(value))?;
        Ok(match p {
            ProtoOaTrendbarPeriod::M1 => Self::M1,
            ProtoOaTrendbarPeriod::M2 => Self::M2,
            ProtoOaTrendbarPeriod::M3 => Self::M3,
            ProtoOaTrendbarPeriod::M4 => Self::M4,
            ProtoOaTrendbarPeriod::M5 => Self::M5,
            ProtoOaTrendbarPeriod::M10 => Self::M10,
            ProtoOaTrendbarPeriod::M15 => Self::M15,
            ProtoOaTrendbarPeriod::M30 => Self::M30,
            ProtoOaTrendbarPeriod::H1 => Self::H1,
            ProtoOaTrendbarPeriod::H4 => Self::H4,
            ProtoOaTrendbarPeriod::H12 => Self::H12,
            ProtoOaTrendbarPeriod::D1 => Self::D1,
            ProtoOaTrendbarPeriod::W1 => Self::W1,
            ProtoOaTrendbarPeriod::Mn1 => Self::MN1,
        })
    }

    fn seconds(self) -> Option<i64> {
        self.duration_secs().and_then(|s| i64::try_from(s).ok())
    }
}

/// The longest `toTimestamp - fromTimestamp` one `ProtoOAGetTrendbarsReq` may span, in ms, by
/// period. Spotware documented it on `fromTimestamp` ("Validation: toTimestamp - fromTimestamp <= X,
/// where X depends on series period: M1, M2, M3, M4, M5: 3024000000 (5 weeks); M10, M15, M30, H1:
/// 21168000000 (35 weeks), H4, H12, D1: 31622400000 (1 year); W1, MN1: 158112000000 (5 years)",
/// spotware/openapi-proto-messages `OpenApiMessages.proto` as of commit 5565af1, release 86; the
/// comment was dropped from the file in release 89 without a replacement). A wider request is
/// refused with `INCORRECT_BOUNDARIES`.
pub fn max_trendbar_request_ms(timeframe: Timeframe) -> i64 {
    use Timeframe::*;
    match timeframe {
        M1 | M2 | M3 | M4 | M5 => 3_024_000_000,
        M10 | M15 | M30 | H1 => 21_168_000_000,
        H4 | H12 | D1 => 31_622_400_000,
        W1 | MN1 => 158_112_000_000,
    }
}

/// The latest `toTimestamp` the server accepts: "Smaller or equal to 2147483646000 (19th Jan
/// 2038)" (`OpenApiMessages.proto`, `ProtoOAGetTrendbarsReq`); `fromTimestamp` must be >= 0.
pub const MAX_TRENDBAR_TIMESTAMP_MS: i64 = 2_147_483_646_000;

/// `low` and `low + delta` of a wire trendbar, in wire units.
struct WireBar {
    minutes: u32,
    low: i64,
}

impl WireBar {
    fn of(tb: &ProtoOaTrendbar) -> Result<Self, TrendbarError> {
        let minutes = tb
            .utc_timestamp_in_minutes
            .ok_or(TrendbarError::MissingTimestamp)?;
        let low = tb.low.ok_or(TrendbarError::MissingLow {
            minutes: Some(minutes),
        })?;
        Ok(Self { minutes, low })
    }

    /// `low + delta`; an absent delta is the proto2 default 0 (as the official SDK samples read
    /// it: `trendbar.Low + (long)trendbar.DeltaClose`, spotware/OpenAPI.Net `ChartViewModel.cs`).
    fn add(&self, field: &'static str, delta: Option<u64>) -> Result<i64, TrendbarError> {
        let delta = delta.unwrap_or(0);
        i64::try_from(delta)
            .ok()
            .and_then(|d| self.low.checked_add(d))
            .ok_or(TrendbarError::Overflow {
                minutes: self.minutes,
                field,
                low: self.low,
                delta,
            })
    }

    fn open_time(&self) -> i64 {
        i64::from(self.minutes) * 60
    }

    fn volume(&self, tb: &ProtoOaTrendbar) -> Result<u64, TrendbarError> {
        u64::try_from(tb.volume).map_err(|_| TrendbarError::NegativeVolume {
            minutes: self.minutes,
            volume: tb.volume,
        })
    }
}

fn px(units: i64) -> f64 {
    units as f64 / PRICE_SCALE
}

/// Decodes a *historical* trendbar (`ProtoOAGetTrendbarsRes`; history responses do not repeat the
/// period in each bar, the request's period is the authority). Never use it for the trendbar of a
/// spot event: that one has no close ([`LiveTrendbar::from_proto`]).
///
/// High and low are clamped so a bar is always well formed.
pub fn closed_bar(tb: &ProtoOaTrendbar) -> Result<Bar, TrendbarError> {
    let w = WireBar::of(tb)?;
    let open = w.add("deltaOpen", tb.delta_open)?;
    let close = w.add("deltaClose", tb.delta_close)?;
    let high = w.add("deltaHigh", tb.delta_high)?.max(open).max(close);
    let low = w.low.min(open).min(close);
    Ok(Bar {
        time: w.open_time(),
        open: px(open),
        high: px(high),
        low: px(low),
        close: px(close),
        volume: w.volume(tb)?,
    })
}

/// A closed bar as the server encodes it: low plus unsigned deltas, in 1e-5 units (the inverse of
/// [`closed_bar`] for prices on that grid).
pub fn encode_closed(bar: &Bar, period: ProtoOaTrendbarPeriod) -> ProtoOaTrendbar {
    let low = price_to_units(bar.low);
    let delta = |p: f64| u64::try_from(price_to_units(p) - low).unwrap_or(0);
    ProtoOaTrendbar {
        volume: i64::try_from(bar.volume).unwrap_or(i64::MAX),
        period: Some(period as i32),
        low: Some(low),
        delta_open: Some(delta(bar.open)),
        delta_close: Some(delta(bar.close)),
        delta_high: Some(delta(bar.high)),
        utc_timestamp_in_minutes: u32::try_from(bar.time.div_euclid(60)).ok(),
    }
}

/// A live trendbar as a spot event carries it: [`encode_closed`] without `deltaClose`.
pub fn encode_live(bar: &Bar, period: ProtoOaTrendbarPeriod) -> ProtoOaTrendbar {
    ProtoOaTrendbar {
        delta_close: None,
        ..encode_closed(bar, period)
    }
}

/// The bar still forming, as a spot event's live trendbar describes it: open, high, low, tick
/// volume and open time as the server aggregated them, and no close (the server sends none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveTrendbar {
    /// The bar's timeframe.
    pub timeframe: Timeframe,
    /// Open time, Unix seconds.
    pub open_time: i64,
    /// Open price.
    pub open: f64,
    /// Highest price so far.
    pub high: f64,
    /// Lowest price so far.
    pub low: f64,
    /// Tick volume so far.
    pub volume: u64,
}

impl LiveTrendbar {
    /// Decodes the trendbar of a `ProtoOASpotEvent`. A `deltaClose` is ignored even if present:
    /// the forming bar's last price is the spot's bid, which the caller supplies.
    pub fn from_proto(tb: &ProtoOaTrendbar, timeframe: Timeframe) -> Result<Self, TrendbarError> {
        let w = WireBar::of(tb)?;
        let open = w.add("deltaOpen", tb.delta_open)?;
        let high = w.add("deltaHigh", tb.delta_high)?.max(open);
        Ok(Self {
            timeframe,
            open_time: w.open_time(),
            open: px(open),
            high: px(high),
            low: px(w.low.min(open)),
            volume: w.volume(tb)?,
        })
    }

    /// The bar so far, its last price `close` (the current bid). High and low widen to include it:
    /// a spot can run ahead of the trendbar it travels with.
    pub fn with_close(&self, close: f64) -> Bar {
        Bar {
            time: self.open_time,
            open: self.open,
            high: self.high.max(close),
            low: self.low.min(close),
            close,
            volume: self.volume,
        }
    }

    /// The time the bar closes (the next bar's open; by the calendar for MN1).
    pub fn close_time(&self) -> Option<i64> {
        self.with_close(self.open).close_time(self.timeframe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tb(low: i64, o: u64, c: u64, h: u64, minutes: u32) -> ProtoOaTrendbar {
        ProtoOaTrendbar {
            volume: 77,
            low: Some(low),
            delta_open: Some(o),
            delta_close: Some(c),
            delta_high: Some(h),
            utc_timestamp_in_minutes: Some(minutes),
            ..Default::default()
        }
    }

    #[test]
    fn low_plus_deltas() {
        let bar = closed_bar(&tb(108_480, 20, 62, 80, 29_480_000)).expect("valid");
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (1.085, 1.0856, 1.0848, 1.08542)
        );
        assert_eq!(bar.time, 29_480_000 * 60);
        assert_eq!(bar.close_time(Timeframe::M15), Some(29_480_000 * 60 + 900));
        assert_eq!(bar.volume, 77);
        // And back: the simulator's encoding is the inverse on the 1e-5 grid.
        let again = encode_closed(&bar, ProtoOaTrendbarPeriod::M15);
        assert_eq!(closed_bar(&again), Ok(bar));
        assert_eq!(
            encode_live(&bar, ProtoOaTrendbarPeriod::M15).delta_close,
            None
        );
    }

    #[test]
    fn a_negative_volume_is_refused() {
        let mut t = tb(108_480, 20, 62, 80, 29_480_000);
        t.volume = -3;
        let e = TrendbarError::NegativeVolume {
            minutes: 29_480_000,
            volume: -3,
        };
        assert_eq!(closed_bar(&t), Err(e.clone()));
        t.delta_close = None;
        assert_eq!(LiveTrendbar::from_proto(&t, Timeframe::M15), Err(e));
    }

    #[test]
    fn a_live_trendbar_has_no_close_until_the_bid_gives_it_one() {
        // As a spot event carries it: no deltaClose.
        let live = ProtoOaTrendbar {
            volume: 12,
            period: Some(ProtoOaTrendbarPeriod::H1 as i32),
            low: Some(108_480),
            delta_open: Some(20),
            delta_high: Some(80),
            utc_timestamp_in_minutes: Some(29_480_000),
            ..Default::default()
        };
        let bar = LiveTrendbar::from_proto(&live, Timeframe::H1).expect("valid");
        assert_eq!((bar.open, bar.high, bar.low), (1.085, 1.0856, 1.0848));
        let closed = bar.with_close(1.08531);
        assert_eq!(closed.close, 1.08531, "the bid, not the low");
        assert_eq!(
            (closed.high, closed.low, closed.volume),
            (1.0856, 1.0848, 12)
        );
        // A bid beyond the trendbar's range widens it.
        let beyond = bar.with_close(1.0860);
        assert_eq!((beyond.high, beyond.low), (1.086, 1.0848));
        // A deltaClose, if a server sent one, is not taken for the close.
        let with_delta = ProtoOaTrendbar {
            delta_close: Some(0),
            ..live
        };
        assert_eq!(
            LiveTrendbar::from_proto(&with_delta, Timeframe::H1),
            Ok(bar)
        );
        assert_eq!(bar.close_time(), Some(29_480_000 * 60 + 3600));
        let month = LiveTrendbar {
            timeframe: Timeframe::MN1,
            open_time: 1_769_904_000, // 2026-02-01
            ..bar
        };
        assert_eq!(
            month.close_time(),
            Some(1_772_323_200),
            "2026-03-01, not its open"
        );
    }

    #[test]
    fn lagging_high_is_clamped() {
        let bar = closed_bar(&tb(100_000, 30, 50, 10, 1)).expect("valid");
        assert_eq!(bar.high, 1.0005);
    }

    #[test]
    fn missing_fields_and_overflow_are_typed() {
        let mut t = tb(1, 0, 0, 0, 5);
        t.low = None;
        assert_eq!(
            closed_bar(&t),
            Err(TrendbarError::MissingLow { minutes: Some(5) })
        );
        t.utc_timestamp_in_minutes = None;
        assert_eq!(closed_bar(&t), Err(TrendbarError::MissingTimestamp));
        let over = tb(i64::MAX - 1, 5, 0, 0, 1);
        assert!(matches!(
            closed_bar(&over),
            Err(TrendbarError::Overflow {
                field: "deltaOpen",
                ..
            })
        ));
    }

    #[test]
    fn timeframes_map_both_ways() {
        for t in Timeframe::ALL {
            assert_eq!(Timeframe::from_proto(t.to_proto() as i32), Ok(t));
        }
        assert_eq!(
            Timeframe::from_proto(15),
            Err(TrendbarError::UnknownPeriod(15))
        );
        assert_eq!(Timeframe::H4.seconds(), Some(14_400));
        assert_eq!(Timeframe::MN1.seconds(), None);
    }

    proptest! {
        #[test]
        fn decoded_bars_are_well_formed(
            low in 0i64..10_000_000, o in 0u64..100_000, c in 0u64..100_000, h in 0u64..100_000,
            minutes in any::<u32>(),
        ) {
            let bar = closed_bar(&tb(low, o, c, h, minutes)).expect("valid");
            prop_assert!(bar.high >= bar.open && bar.high >= bar.close);
            prop_assert!(bar.low <= bar.open && bar.low <= bar.close);
            prop_assert_eq!(price_to_units(bar.low), low);
            prop_assert_eq!(price_to_units(bar.open), low + o as i64);
            prop_assert_eq!(price_to_units(bar.close), low + c as i64);
        }
    }
}
