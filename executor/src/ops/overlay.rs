//! The settings overlay: what `SetLots`, `SetEnabled`, `SetRiskLimits` and `Pause` changed, kept in
//! `<state_dir>/settings_overlay.json` so a restart keeps it.
//!
//! `executor_config.json` stays the file an operator edits and is never written by the executor.
//! The overlay holds only the values commands set, and is applied on top of the config at every
//! start, SIGHUP and `Reload`: a value in the overlay wins over the same value in the file until
//! another command changes it. `executor check` lists every value the overlay overrides next to what
//! the file says. To hand a value back to the file, stop the executor and remove its entry (or the
//! whole file); see docs/OPERATIONS.md, "Settings changed by commands".
//!
//! A missing file is an empty overlay. A file that does not parse, or holds a value out of range,
//! refuses the start (like a corrupt desk file): trading on the config's values instead would undo
//! what an operator decided, e.g. re-enable a symbol they disabled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleet::{Command, CommandId, RiskLimits};
use serde::{Deserialize, Serialize};

use crate::config::ExecutorConfig;
use crate::state::{self, StateError};

pub const FILE_NAME: &str = "settings_overlay.json";
/// The format version written and read.
pub const VERSION: u32 = 1;
/// Changes kept in the file's `changes` list (an audit of what set it; the journal has them all).
pub const CHANGES_KEPT: usize = 32;

/// One symbol's values set by commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolOverlay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_weak: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_moderate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_strong: Option<f64>,
}

/// A command that changed the overlay: its id, op and time (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub id: CommandId,
    pub op: String,
    pub t: String,
}

/// `settings_overlay.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    pub v: u32,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub symbols: BTreeMap<String, SymbolOverlay>,
    #[serde(default, skip_serializing_if = "RiskLimits::is_empty")]
    pub risk: RiskLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

impl Default for Overlay {
    fn default() -> Self {
        Self {
            v: VERSION,
            paused: false,
            symbols: BTreeMap::new(),
            risk: RiskLimits::default(),
            changes: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "{path}: {problem}. Fix: restore it from a backup, or stop the executor and correct or remove that entry (the config file's value then applies again)"
    )]
    Invalid { path: PathBuf, problem: String },
}

/// A value the overlay sets and what the config file says (`executor check`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub field: String,
    pub overlay: String,
    pub config: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

fn lot_ok(x: f64) -> bool {
    x.is_finite() && x > 0.0 && x <= fleet::command::MAX_LOT
}

impl Overlay {
    /// Reads `<state_dir>/settings_overlay.json`; an empty overlay when there is none.
    pub fn load(state_dir: &Path) -> Result<Overlay, OverlayError> {
        let p = path(state_dir);
        let overlay: Overlay = state::read_json(&p)?.unwrap_or_default();
        overlay
            .check()
            .map_err(|problem| OverlayError::Invalid { path: p, problem })?;
        Ok(overlay)
    }

    /// Writes it atomically (temp file, fsync, rename, directory fsync).
    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        state::write_json_atomic(&path(state_dir), self)
    }

    /// The ranges a command would have been refused outside of (a hand-edited file).
    fn check(&self) -> Result<(), String> {
        if self.v != VERSION {
            return Err(format!(
                "version {}, this executor reads version {VERSION}",
                self.v
            ));
        }
        for (sym, s) in &self.symbols {
            if sym.parse::<protocol::Symbol>().is_err() {
                return Err(format!("symbols.{sym}: not a symbol"));
            }
            for (field, v) in [
                ("lot_weak", s.lot_weak),
                ("lot_moderate", s.lot_moderate),
                ("lot_strong", s.lot_strong),
            ] {
                if let Some(x) = v
                    && !lot_ok(x)
                {
                    return Err(format!(
                        "symbols.{sym}.{field}: {x} is not a lot size > 0 and <= 1000"
                    ));
                }
            }
        }
        if !self.risk.is_empty() {
            Command::SetRiskLimits(self.risk)
                .validate()
                .map_err(|r| format!("risk: {r}"))?;
        }
        Ok(())
    }

    /// Records what a settings command or a pause changes. Returns false for a command that
    /// changes no setting (the overlay is then left as it was).
    pub fn record(&mut self, id: &CommandId, command: &Command, t: &str) -> bool {
        match command {
            Command::SetLots {
                symbol,
                lot_weak,
                lot_moderate,
                lot_strong,
            } => {
                let s = self.symbols.entry(symbol.to_string()).or_default();
                s.lot_weak = Some(*lot_weak);
                s.lot_moderate = Some(*lot_moderate);
                s.lot_strong = Some(*lot_strong);
            }
            Command::SetEnabled { symbol, enabled } => {
                self.symbols.entry(symbol.to_string()).or_default().enabled = Some(*enabled);
            }
            Command::SetRiskLimits(r) => {
                let o = &mut self.risk;
                o.max_daily_loss_pct = r.max_daily_loss_pct.or(o.max_daily_loss_pct);
                o.max_total_loss_pct = r.max_total_loss_pct.or(o.max_total_loss_pct);
                o.min_equity = r.min_equity.or(o.min_equity);
                o.max_open_positions = r.max_open_positions.or(o.max_open_positions);
                o.max_total_lots = r.max_total_lots.or(o.max_total_lots);
            }
            Command::Pause | Command::Flatten { .. } => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Reload | Command::Status => return false,
        }
        self.changes.push(Change {
            id: id.clone(),
            op: command.op().to_string(),
            t: t.to_string(),
        });
        let extra = self.changes.len().saturating_sub(CHANGES_KEPT);
        self.changes.drain(..extra);
        true
    }

    /// Applies the overlay to a config just loaded from its file. Returns a note for each entry
    /// that names a symbol the config no longer has (kept in the file, not applied).
    pub fn apply_to(&self, cfg: &mut ExecutorConfig) -> Vec<String> {
        let mut notes = Vec::new();
        for (name, o) in &self.symbols {
            let Some(sc) = name
                .parse::<protocol::Symbol>()
                .ok()
                .and_then(|s| cfg.symbols.get_mut(&s))
            else {
                notes.push(format!(
                    "{FILE_NAME}: {name} is not in the config any more; its overlay entry is kept but not applied"
                ));
                continue;
            };
            if let Some(e) = o.enabled {
                sc.enabled = e;
                sc.enabled_defaulted = false;
            }
            sc.lots.weak = o.lot_weak.unwrap_or(sc.lots.weak);
            sc.lots.moderate = o.lot_moderate.unwrap_or(sc.lots.moderate);
            sc.lots.strong = o.lot_strong.unwrap_or(sc.lots.strong);
        }
        let r = &self.risk;
        let risk = &mut cfg.risk;
        risk.max_daily_loss_pct = r.max_daily_loss_pct.unwrap_or(risk.max_daily_loss_pct);
        risk.max_total_loss_pct = r.max_total_loss_pct.unwrap_or(risk.max_total_loss_pct);
        risk.min_equity = r.min_equity.unwrap_or(risk.min_equity);
        if let Some(n) = r.max_open_positions {
            risk.max_open_positions = n as usize;
        }
        risk.max_total_lots = r.max_total_lots.unwrap_or(risk.max_total_lots);
        notes
    }

    /// Every value the overlay sets that differs from `file` (the config as its file says it).
    pub fn overrides(&self, file: &ExecutorConfig) -> Vec<Override> {
        let mut out = Vec::new();
        let mut push = |field: String, overlay: String, config: String| {
            if overlay != config {
                out.push(Override {
                    field,
                    overlay,
                    config,
                });
            }
        };
        if self.paused {
            push("paused".into(), "true".into(), "false".into());
        }
        for (name, o) in &self.symbols {
            let base = name
                .parse::<protocol::Symbol>()
                .ok()
                .and_then(|s| file.symbols.get(&s));
            let shown = |v: Option<String>| v.unwrap_or_else(|| "(no entry)".into());
            if let Some(e) = o.enabled {
                push(
                    format!("{name}.enabled"),
                    e.to_string(),
                    shown(base.map(|b| b.enabled.to_string())),
                );
            }
            for (key, v, b) in [
                ("lot_weak", o.lot_weak, base.map(|b| b.lots.weak)),
                (
                    "lot_moderate",
                    o.lot_moderate,
                    base.map(|b| b.lots.moderate),
                ),
                ("lot_strong", o.lot_strong, base.map(|b| b.lots.strong)),
            ] {
                if let Some(v) = v {
                    push(
                        format!("{name}.{key}"),
                        v.to_string(),
                        shown(b.map(|x| x.to_string())),
                    );
                }
            }
        }
        let (r, f) = (&self.risk, &file.risk);
        for (key, v, b) in [
            (
                "max_daily_loss_pct",
                r.max_daily_loss_pct,
                f.max_daily_loss_pct,
            ),
            (
                "max_total_loss_pct",
                r.max_total_loss_pct,
                f.max_total_loss_pct,
            ),
            ("min_equity", r.min_equity, f.min_equity),
            (
                "max_open_positions",
                r.max_open_positions.map(f64::from),
                f.max_open_positions as f64,
            ),
            ("max_total_lots", r.max_total_lots, f.max_total_lots),
        ] {
            if let Some(v) = v {
                push(format!("risk.{key}"), v.to_string(), b.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
