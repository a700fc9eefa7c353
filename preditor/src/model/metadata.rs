//! The model's metadata (the zip comment's JSON, ENV.md §8) as `scripts/export.py` writes it, and
//! its validation into the [`EnvSpec`] the twin runs on: every length and period the twin indexes
//! with is checked here, once, so the per-bar path cannot meet a malformed model.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ACTION_TABLE, Costs, EnvSpec};
use crate::features::{HmmPeriods, PolicyPeriods};

// Unknown keys are ignored on purpose: forward compatibility.

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub format_version: String,
    pub generated_at: String,
    pub symbol: SymbolMeta,
    pub training_config: TrainingConfig,
    pub hmm_config: HmmConfig,
    pub rl_config: RlConfig,
    pub actions: BTreeMap<String, ActionMeta>,
    pub env: EnvMeta,
    pub observation: ObservationMeta,
    pub hmm: HmmMeta,
    pub ppo: PpoMeta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SymbolMeta {
    pub name: String,
    pub clean: String,
    pub timeframe: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrainingConfig {
    pub point: f64,
    pub pip_size: f64,
    pub pip_value: f64,
    pub spread_points: f64,
    pub slippage_points: f64,
    pub commission_per_lot: f64,
    pub digits: u32,
    pub lot_sizes: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HmmConfig {
    pub n_states: usize,
    pub momentum_period: usize,
    pub consistency_period: usize,
    pub range_period: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RlConfig {
    pub roc_period: usize,
    pub atr_period: usize,
    pub ema_period: usize,
    pub range_period: usize,
    pub volume_ma_period: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionMeta {
    pub name: String,
    pub direction: i64,
    pub intensity: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvMeta {
    pub window: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ObservationMeta {
    pub features: Vec<String>,
    pub norm: NormMeta,
    pub unrealized_clip: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NormMeta {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub clip: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HmmMeta {
    pub features: Vec<String>,
    pub scaler: ScalerMeta,
    pub startprob: Vec<f64>,
    pub transmat: Vec<Vec<f64>>,
    pub onnx: OnnxMeta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScalerMeta {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OnnxMeta {
    pub member: String,
    pub input: String,
    pub output: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PpoMeta {
    pub onnx: OnnxMeta,
    pub obs_dim: usize,
}

/// Longest `env.window` accepted. A twin decides only with a full window and warms up from
/// `window + REPLAY_SPAN` bars of history: 10,000 H1 bars are already more than a year, and the
/// FIFO, the HMM's `W − H` rows per decision and the WARMUP all grow with it. The seed uses 350.
pub const MAX_WINDOW: usize = 10_000;

fn check_period(name: &str, p: usize, window: usize) -> Result<(), String> {
    if p == 0 || p >= window {
        return Err(format!(
            "`{name}` = {p} must be ≥ 1 and < env.window ({window})"
        ));
    }
    Ok(())
}

fn fixed<const N: usize>(name: &str, v: &[f64]) -> Result<[f64; N], String> {
    if v.len() != N {
        return Err(format!("`{name}` has {} values, expected {N}", v.len()));
    }
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        return Err(format!("`{name}` holds a non-finite value ({x})"));
    }
    let mut a = [0.0; N];
    a.copy_from_slice(v);
    Ok(a)
}

/// Checks the metadata against ENV.md §2, §6, §8 and builds the [`EnvSpec`].
pub fn validate(m: &Metadata) -> Result<EnvSpec, String> {
    if m.format_version != "2.0" {
        return Err(format!(
            "`format_version` is {:?}, this preditor reads \"2.0\"",
            m.format_version
        ));
    }
    let w = m.env.window;
    if w < 2 {
        return Err(format!("`env.window` = {w} is too small"));
    }
    if w > MAX_WINDOW {
        return Err(format!(
            "`env.window` = {w} is too large: at most {MAX_WINDOW} bars (the twin decides only once it holds a full window, and asks for window + {} bars of history); the seed's models use 350",
            crate::session::REPLAY_SPAN
        ));
    }
    let rl = &m.rl_config;
    check_period("rl_config.roc_period", rl.roc_period, w)?;
    check_period("rl_config.atr_period", rl.atr_period, w)?;
    check_period("rl_config.ema_period", rl.ema_period, w)?;
    check_period("rl_config.range_period", rl.range_period, w)?;
    check_period("rl_config.volume_ma_period", rl.volume_ma_period, w)?;
    let hc = &m.hmm_config;
    check_period("hmm_config.momentum_period", hc.momentum_period, w)?;
    check_period("hmm_config.consistency_period", hc.consistency_period, w)?;
    check_period("hmm_config.range_period", hc.range_period, w)?;
    let k = hc.n_states;
    if k == 0 {
        return Err("`hmm_config.n_states` must be ≥ 1".into());
    }

    // Actions: exactly the table of ENV.md §6.
    if m.actions.len() != 7 {
        return Err(format!(
            "`actions` has {} entries, expected exactly 7 (\"0\"…\"6\")",
            m.actions.len()
        ));
    }
    for (i, (name, dir, inten)) in ACTION_TABLE.iter().enumerate() {
        let key = i.to_string();
        let a = m
            .actions
            .get(&key)
            .ok_or_else(|| format!("`actions.{key}` is missing"))?;
        if a.name != *name || a.direction != i64::from(*dir) || a.intensity != i64::from(*inten) {
            return Err(format!(
                "`actions.{key}` is {{name: {:?}, direction: {}, intensity: {}}}, expected {{name: {name:?}, direction: {dir}, intensity: {inten}}}",
                a.name, a.direction, a.intensity
            ));
        }
    }

    let tc = &m.training_config;
    let lots = fixed::<4>("training_config.lot_sizes", &tc.lot_sizes)?;
    if lots[0] != 0.0 {
        return Err(format!(
            "`training_config.lot_sizes[0]` = {}, must be 0 (WAIT holds nothing)",
            lots[0]
        ));
    }
    if lots.iter().any(|l| *l < 0.0) {
        return Err("`training_config.lot_sizes` holds a negative lot size".into());
    }
    for (name, v) in [
        ("training_config.point", tc.point),
        ("training_config.pip_size", tc.pip_size),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("`{name}` = {v} must be finite and > 0"));
        }
    }
    for (name, v) in [
        ("training_config.pip_value", tc.pip_value),
        ("training_config.spread_points", tc.spread_points),
        ("training_config.slippage_points", tc.slippage_points),
        ("training_config.commission_per_lot", tc.commission_per_lot),
    ] {
        if !v.is_finite() {
            return Err(format!("`{name}` = {v} must be finite"));
        }
    }

    let obs_dim = 5 + k + 3;
    if m.ppo.obs_dim != obs_dim {
        return Err(format!(
            "`ppo.obs_dim` = {} but 5 + n_states ({k}) + 3 = {obs_dim}",
            m.ppo.obs_dim
        ));
    }
    if m.observation.features.len() != obs_dim {
        return Err(format!(
            "`observation.features` lists {} names, expected obs_dim = {obs_dim}",
            m.observation.features.len()
        ));
    }
    let norm_mean = fixed::<5>("observation.norm.mean", &m.observation.norm.mean)?;
    let norm_std = fixed::<5>("observation.norm.std", &m.observation.norm.std)?;
    if let Some(s) = norm_std.iter().find(|s| **s <= 0.0) {
        return Err(format!(
            "`observation.norm.std` holds {s}; every std must be > 0"
        ));
    }
    let clip = m.observation.norm.clip;
    if !(clip.is_finite() && clip > 0.0) {
        return Err(format!(
            "`observation.norm.clip` = {clip} must be finite and > 0"
        ));
    }
    let uclip = m.observation.unrealized_clip;
    if !(uclip.is_finite() && uclip > 0.0) {
        return Err(format!(
            "`observation.unrealized_clip` = {uclip} must be finite and > 0"
        ));
    }

    let h = &m.hmm;
    if h.features != ["momentum", "consistency", "range"] {
        return Err(format!(
            "`hmm.features` is {:?}, expected [\"momentum\", \"consistency\", \"range\"]",
            h.features
        ));
    }
    let hmm_mean = fixed::<3>("hmm.scaler.mean", &h.scaler.mean)?;
    let hmm_std = fixed::<3>("hmm.scaler.std", &h.scaler.std)?;
    if let Some(s) = hmm_std.iter().find(|s| **s <= 0.0) {
        return Err(format!("`hmm.scaler.std` holds {s}; every std must be > 0"));
    }
    if h.startprob.len() != k {
        return Err(format!(
            "`hmm.startprob` has {} values, expected n_states = {k}",
            h.startprob.len()
        ));
    }
    check_distribution("hmm.startprob", &h.startprob)?;
    if h.transmat.len() != k {
        return Err(format!(
            "`hmm.transmat` has {} rows, expected {k}",
            h.transmat.len()
        ));
    }
    for (i, row) in h.transmat.iter().enumerate() {
        if row.len() != k {
            return Err(format!(
                "`hmm.transmat[{i}]` has {} values, expected {k}",
                row.len()
            ));
        }
        check_distribution(&format!("hmm.transmat[{i}]"), row)?;
    }
    let stem = format!("{}_{}", m.symbol.name, m.symbol.timeframe);
    for (key, onnx, kind) in [
        ("ppo.onnx.member", &m.ppo.onnx, "ppo"),
        ("hmm.onnx.member", &m.hmm.onnx, "hmm"),
    ] {
        let expected = format!("{stem}_{kind}.onnx");
        if onnx.member != expected {
            return Err(format!(
                "`{key}` is {:?}, expected {expected:?} (symbol.name _ symbol.timeframe)",
                onnx.member
            ));
        }
    }
    if m.hmm.onnx.input != "x" || m.hmm.onnx.output != "log_emission" {
        return Err(format!(
            "`hmm.onnx` names input {:?} / output {:?}, expected \"x\" / \"log_emission\"",
            m.hmm.onnx.input, m.hmm.onnx.output
        ));
    }
    if m.ppo.onnx.input != "obs" || m.ppo.onnx.output != "logits" {
        return Err(format!(
            "`ppo.onnx` names input {:?} / output {:?}, expected \"obs\" / \"logits\"",
            m.ppo.onnx.input, m.ppo.onnx.output
        ));
    }

    let hmm_periods = HmmPeriods {
        momentum: hc.momentum_period,
        consistency: hc.consistency_period,
        range: hc.range_period,
    };
    Ok(EnvSpec {
        window: w,
        policy: PolicyPeriods {
            roc: rl.roc_period,
            atr: rl.atr_period,
            ema: rl.ema_period,
            range: rl.range_period,
            volume_ma: rl.volume_ma_period,
        },
        hmm_periods,
        n_states: k,
        norm_mean,
        norm_std,
        norm_clip: clip,
        unrealized_clip: uclip,
        hmm_mean,
        hmm_std,
        startprob: h.startprob.clone(),
        transmat: h.transmat.iter().flatten().copied().collect(),
        costs: Costs {
            point: tc.point,
            pip_size: tc.pip_size,
            pip_value: tc.pip_value,
            spread_points: tc.spread_points,
            slippage_points: tc.slippage_points,
            commission_per_lot: tc.commission_per_lot,
            lot_sizes: lots,
        },
    })
}

fn check_distribution(name: &str, p: &[f64]) -> Result<(), String> {
    if let Some(x) = p.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
        return Err(format!(
            "`{name}` holds {x}; probabilities must be finite and ≥ 0"
        ));
    }
    let sum: f64 = p.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(format!("`{name}` sums to {sum}, expected 1 (±1e-6)"));
    }
    Ok(())
}
