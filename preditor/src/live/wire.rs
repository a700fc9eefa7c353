//! What the preditor writes on the WebSocket: the SIGNAL line of a decision, and lines sent (each
//! logged under the `wire` target) alone or several as one message.

use futures_util::SinkExt;
use protocol::{Action, BarTime, Decimal, Line, Signal, Symbol};
use tokio_tungstenite::tungstenite::Message;

use super::LiveError;
use crate::twin::Decision;

/// The SIGNAL line for a decision.
pub fn signal_line(symbol: &Symbol, d: &Decision) -> Result<Line, String> {
    let action = Action::from_index(usize::from(d.action))
        .ok_or_else(|| format!("action index {}", d.action))?;
    let virtual_pnl =
        Decimal::from_f64(d.realised_pnl, Signal::PNL_DECIMALS).map_err(|e| e.to_string())?;
    let bar_time = BarTime::from_unix(d.time).map_err(|e| e.to_string())?;
    Ok(Line::Signal(Signal {
        symbol: symbol.clone(),
        action,
        regime: d.regime,
        virtual_pnl,
        bar_time: Some(bar_time),
        held: Some(d.held),
    }))
}

/// Several lines as one message (`\n`-separated, PROTOCOL.md), each logged.
pub(super) async fn send_all<S>(ws: &mut S, lines: &[Line]) -> Result<(), LiveError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        tracing::info!(target: "wire", "> {}", line.redacted());
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&line.to_string());
    }
    ws.send(Message::text(text)).await?;
    Ok(())
}

pub(super) async fn send<S>(ws: &mut S, line: &Line) -> Result<(), LiveError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    tracing::info!(target: "wire", "> {}", line.redacted());
    ws.send(Message::text(line.to_string())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_line_matches_the_seed_format() {
        let d = Decision {
            time: 1_770_113_700, // 2026-02-03T10:15:00Z
            regime: 3,
            action: 1,
            direction: 1,
            intensity: 1,
            realised_pnl: -0.004,
            held: 1,
        };
        let line = signal_line(&"EURUSD".parse().unwrap(), &d).unwrap();
        assert_eq!(
            line.to_string(),
            "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1"
        );
        let d = Decision {
            action: 0,
            regime: 2,
            realised_pnl: -15.299999999,
            held: 4,
            ..d
        };
        let line = signal_line(&"EURUSD".parse().unwrap(), &d).unwrap();
        assert_eq!(
            line.to_string(),
            "SIGNAL|EURUSD|WAIT|2|-15.30|B:2026-02-03T10:15:00Z|N:4"
        );
    }
}
