//! The limits the server puts on a historical trendbar request.

use ctrader::domain::{Timeframe, TrendbarPeriod};
use ctrader::messages::{ProtoOaGetTrendbarsReq, ProtoOaTrendbarPeriod};

/// The documented limits of a `ProtoOAGetTrendbarsReq`: `fromTimestamp` >= 0, `toTimestamp` <=
/// 2147483646000, from <= to, and `toTimestamp - fromTimestamp` within the period's maximum
/// ([`ctrader::domain::max_trendbar_request_ms`]).
pub(super) fn trendbar_window_ok(
    period: ProtoOaTrendbarPeriod,
    r: &ProtoOaGetTrendbarsReq,
) -> Result<(), String> {
    let from = r.from_timestamp;
    let to = r.to_timestamp;
    if from < 0 || to > ctrader::domain::MAX_TRENDBAR_TIMESTAMP_MS {
        return Err(format!(
            "fromTimestamp {from} must be >= 0 and toTimestamp {to} <= {}",
            ctrader::domain::MAX_TRENDBAR_TIMESTAMP_MS
        ));
    }
    if from > to {
        return Err("fromTimestamp is after toTimestamp".to_string());
    }
    let max = Timeframe::from_proto(period as i32)
        .map(ctrader::domain::max_trendbar_request_ms)
        .unwrap_or(i64::MAX);
    if to - from > max {
        return Err(format!(
            "toTimestamp - fromTimestamp = {} ms exceeds {max} ms for {}",
            to - from,
            period.as_str_name()
        ));
    }
    Ok(())
}
