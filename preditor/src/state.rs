//! The twin's persisted state: one JSON file per symbol, written atomically after every bar.
//!
//! Atomic = [`service::write_atomic`]: a temp file in the same directory, fsynced, renamed over the
//! old file, then the directory fsynced. A crash at any point leaves either the old or the new
//! state, never a torn one, so a restart resumes exactly after the last bar that was fully decided.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bars::{MAX_PRICE, check_bar_time, format_time};
use crate::model::{ACTION_TABLE, EnvSpec};
use crate::twin::TwinState;

/// The on-disk record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub symbol: String,
    pub timeframe: String,
    /// sha256 of the model zip the state was computed with; a different model invalidates it.
    pub model_fingerprint: String,
    pub twin: TwinState,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt state file ({source}); {HELD}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {problem}; {HELD}")]
    Invalid {
        path: PathBuf,
        problem: StateProblem,
    },
}

/// What an unusable state means and how to get out of it (the tail of both refusals).
const HELD: &str = "the twin's virtual position cannot be trusted, so this symbol is held (no WARMUP, no SIGNAL: \
the executor leaves its real position as it is). Fix: restore the file from a backup, or move it aside \
(mv <file> <file>.bad) and restart the preditor to rebuild the twin by a fast-forward replay";

/// A persisted state that no twin of this model could be in: the field, its value, the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}` is {value}, {rule}")]
pub struct StateProblem {
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

/// Largest |realised PnL| a state may hold: far beyond any account, and still a SIGNAL's PnL
/// (2 decimals within the protocol's 40 characters).
pub const MAX_ABS_PNL: f64 = 1e15;

impl PersistedState {
    /// Whether this state is one the twin of `symbol`/`timeframe` with `spec` can be in at `now`
    /// (Unix s): a position the action table allows, finite and bounded prices and PnL, the last
    /// action and regime in range, and a last decided bar on the timeframe's grid and not after
    /// `now` (one from the future would make every real bar look already decided).
    pub fn check(
        &self,
        symbol: &str,
        timeframe: &str,
        spec: &EnvSpec,
        now: i64,
    ) -> Result<(), StateProblem> {
        let bad = |field: &'static str, value: String, rule: String| {
            Err(StateProblem { field, value, rule })
        };
        if self.symbol != symbol || self.timeframe != timeframe {
            return bad(
                "symbol/timeframe",
                format!("{} {}", self.symbol, self.timeframe),
                format!("expected {symbol} {timeframe} (the file's name)"),
            );
        }
        let t = &self.twin;
        let p = &t.position;
        if !(-1..=1).contains(&p.direction) {
            return bad(
                "twin.position.direction",
                p.direction.to_string(),
                "expected -1, 0 or 1".into(),
            );
        }
        if p.intensity > 3 || (p.direction == 0) != (p.intensity == 0) {
            return bad(
                "twin.position.intensity",
                p.intensity.to_string(),
                format!(
                    "expected 1..=3 with a direction, 0 when flat (direction {})",
                    p.direction
                ),
            );
        }
        if !p.entry.is_finite() || p.entry.abs() > MAX_PRICE {
            return bad(
                "twin.position.entry",
                p.entry.to_string(),
                format!("expected a price within ±{MAX_PRICE:e}"),
            );
        }
        if !t.realised_pnl.is_finite() || t.realised_pnl.abs() > MAX_ABS_PNL {
            return bad(
                "twin.realised_pnl",
                t.realised_pnl.to_string(),
                format!("expected a finite amount within ±{MAX_ABS_PNL:e}"),
            );
        }
        match t.last_action {
            None if p.direction != 0 || t.held != 0 || t.last_bar_time.is_some() => {
                return bad("twin.last_action", "null".into(),
                    "but the state holds a position, a held count or a last bar: expected the action that led there".into());
            }
            None => {}
            Some(a) => {
                let Some((_, d, q)) = ACTION_TABLE.get(usize::from(a)) else {
                    return bad(
                        "twin.last_action",
                        a.to_string(),
                        "expected an action index 0..=6".into(),
                    );
                };
                if (*d, *q) != (p.direction, p.intensity) {
                    return bad(
                        "twin.last_action",
                        a.to_string(),
                        format!(
                            "but the position is direction {} intensity {}: the twin always holds its last action's target",
                            p.direction, p.intensity
                        ),
                    );
                }
                if t.held == 0 {
                    return bad(
                        "twin.held",
                        "0".into(),
                        "expected >= 1 after a decision".into(),
                    );
                }
                if t.last_bar_time.is_none() {
                    return bad(
                        "twin.last_bar_time",
                        "null".into(),
                        "expected the bar of the last decision".into(),
                    );
                }
            }
        }
        if let Some(r) = t.last_regime
            && usize::from(r) >= spec.n_states
        {
            return bad(
                "twin.last_regime",
                r.to_string(),
                format!("expected 0..{} (the model's n_states)", spec.n_states),
            );
        }
        if let Some(bar) = t.last_bar_time
            && let Err(why) = check_bar_time(bar, timeframe.parse().ok(), now)
        {
            return bad(
                "twin.last_bar_time",
                format!("{bar} ({})", format_time(bar)),
                why,
            );
        }
        Ok(())
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            op: "create state directory",
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path_for(&self, symbol: &str, timeframe: &str) -> PathBuf {
        self.dir.join(format!("{symbol}_{timeframe}.json"))
    }

    /// The stored state for a symbol, if any.
    pub fn load(
        &self,
        symbol: &str,
        timeframe: &str,
    ) -> Result<Option<PersistedState>, StateError> {
        let path = self.path_for(symbol, timeframe);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path,
                    op: "read",
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes the state atomically (temp file, fsync, rename, fsync directory).
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let path = self.path_for(&state.symbol, &state.timeframe);
        // serde_json writes f64 shortest-roundtrip, so a reloaded R is bit-identical.
        let body = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            path: path.clone(),
            op: "serialise",
            source: std::io::Error::other(e),
        })?;
        service::write_atomic(&path, &body, service::Access::Shared).map_err(|e| StateError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::VirtualPosition;

    #[test]
    fn save_then_load_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load("EURUSD", "H1").unwrap(), None);
        let st = PersistedState {
            symbol: "EURUSD".into(),
            timeframe: "H1".into(),
            model_fingerprint: "ab".into(),
            twin: TwinState {
                position: VirtualPosition {
                    direction: -1,
                    intensity: 2,
                    entry: 1.0845500000000001,
                },
                realised_pnl: 0.1 + 0.2,
                held: 7,
                last_action: Some(5),
                last_bar_time: Some(1_700_000_000),
                last_regime: Some(3),
            },
        };
        store.save(&st).unwrap();
        assert_eq!(store.load("EURUSD", "H1").unwrap(), Some(st));
        // Nothing but the state file: no temporary file is left behind.
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("EURUSD_H1.json")]);
    }

    /// A spec of `k` states (the state check reads only `n_states`).
    fn spec_with_states(k: usize) -> EnvSpec {
        use crate::features::{HmmPeriods, PolicyPeriods};
        use crate::model::Costs;
        EnvSpec {
            window: 8,
            policy: PolicyPeriods {
                roc: 2,
                atr: 2,
                ema: 3,
                range: 2,
                volume_ma: 2,
            },
            hmm_periods: HmmPeriods {
                momentum: 2,
                consistency: 2,
                range: 3,
            },
            n_states: k,
            norm_mean: [0.0; 5],
            norm_std: [1.0; 5],
            norm_clip: 5.0,
            unrealized_clip: 5.0,
            hmm_mean: [0.0; 3],
            hmm_std: [1.0; 3],
            startprob: vec![1.0 / k as f64; k],
            transmat: vec![1.0 / k as f64; k * k],
            costs: Costs {
                point: 0.00001,
                pip_size: 0.0001,
                pip_value: 10.0,
                spread_points: 7.0,
                slippage_points: 2.0,
                commission_per_lot: 7.0,
                lot_sizes: [0.0, 0.01, 0.03, 0.05],
            },
        }
    }

    #[test]
    fn a_state_no_twin_can_be_in_is_refused_naming_the_field() {
        use crate::twin::VirtualPosition;
        let spec = spec_with_states(4);
        let now = 1_770_120_000;
        let good = PersistedState {
            symbol: "EURUSD".into(),
            timeframe: "H1".into(),
            model_fingerprint: "ab".into(),
            twin: TwinState {
                position: VirtualPosition {
                    direction: 1,
                    intensity: 2,
                    entry: 1.1,
                },
                realised_pnl: -12.5,
                held: 3,
                last_action: Some(2),
                last_bar_time: Some(now - 7200),
                last_regime: Some(3),
            },
        };
        assert_eq!(good.check("EURUSD", "H1", &spec, now), Ok(()));
        type Edit<'a> = Box<dyn Fn(&mut TwinState) + 'a>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "twin.position.direction",
                Box::new(|t| t.position.direction = 2),
            ),
            (
                "twin.position.intensity",
                Box::new(|t| t.position.intensity = 9),
            ),
            (
                "twin.position.entry",
                Box::new(|t| t.position.entry = f64::NAN),
            ),
            ("twin.realised_pnl", Box::new(|t| t.realised_pnl = 1e300)),
            ("twin.last_action", Box::new(|t| t.last_action = Some(5))),
            ("twin.last_action", Box::new(|t| t.last_action = Some(7))),
            ("twin.held", Box::new(|t| t.held = 0)),
            ("twin.last_regime", Box::new(|t| t.last_regime = Some(4))),
            (
                "twin.last_bar_time",
                Box::new(|t| t.last_bar_time = Some(4_070_908_800)),
            ),
            (
                "twin.last_bar_time",
                Box::new(|t| t.last_bar_time = Some(now - 5400)),
            ),
        ];
        for (field, edit) in cases {
            let mut bad = good.clone();
            edit(&mut bad.twin);
            let e = bad.check("EURUSD", "H1", &spec, now).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        assert!(good.check("GBPUSD", "H1", &spec, now).is_err());
    }

    #[test]
    fn a_month_bar_is_decided_only_once_the_month_is_over() {
        let spec = spec_with_states(4);
        const FEB1: i64 = 1_769_904_000; // 2026-02-01T00:00:00Z
        const MAR1: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
        let mut st = PersistedState {
            symbol: "EURUSD".into(),
            timeframe: "MN1".into(),
            model_fingerprint: "ab".into(),
            twin: TwinState {
                position: crate::twin::VirtualPosition {
                    direction: 1,
                    intensity: 2,
                    entry: 1.1,
                },
                realised_pnl: 0.0,
                held: 1,
                last_action: Some(2),
                last_bar_time: Some(FEB1),
                last_regime: Some(0),
            },
        };
        // On 3 February the February bar is still forming: no twin can have decided it.
        let e = st
            .check("EURUSD", "MN1", &spec, FEB1 + 2 * 86_400)
            .unwrap_err();
        assert_eq!(e.field, "twin.last_bar_time");
        assert!(e.rule.contains("from the future"), "{e}");
        assert_eq!(st.check("EURUSD", "MN1", &spec, MAR1), Ok(()));
        // W1 bars close a week after they open.
        st.timeframe = "W1".into();
        assert!(st.check("EURUSD", "W1", &spec, FEB1 + 6 * 86_400).is_err());
        assert_eq!(st.check("EURUSD", "W1", &spec, FEB1 + 7 * 86_400), Ok(()));
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(store.path_for("X", "H1"), b"{nope").unwrap();
        assert!(matches!(
            store.load("X", "H1"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
