//! The atomic model (`models/<SYM>_<TF>.zip`, ENV.md §8): load, validate, and prepare both ONNX graphs
//! ([`crate::plans`]).
//!
//! Validation happens once at load so the per-bar path cannot meet a malformed model: every length and
//! period the twin indexes with is checked by `metadata.rs` (the JSON's types and `validate`).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::features::{HmmPeriods, PolicyPeriods};
use crate::plans::Plans;

mod metadata;

pub use metadata::{
    ActionMeta, EnvMeta, HmmConfig, HmmMeta, MAX_WINDOW, Metadata, NormMeta, ObservationMeta,
    OnnxMeta, PpoMeta, RlConfig, ScalerMeta, SymbolMeta, TrainingConfig, validate,
};

/// The action table every model must carry (ENV.md §6): name, direction, intensity.
pub const ACTION_TABLE: [(&str, i8, u8); 7] = [
    ("WAIT", 0, 0),
    ("LONG_WEAK", 1, 1),
    ("LONG_MODERATE", 1, 2),
    ("LONG_STRONG", 1, 3),
    ("SHORT_WEAK", -1, 1),
    ("SHORT_MODERATE", -1, 2),
    ("SHORT_STRONG", -1, 3),
];

/// A model zip was refused. Always names the file; `what` names the field or member and the problem.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {what}")]
pub struct ModelError {
    pub path: PathBuf,
    pub what: String,
}

impl ModelError {
    pub(crate) fn new(path: &Path, what: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Trading costs (`training_config`), ready for the PnL rule of ENV.md §6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    pub point: f64,
    pub pip_size: f64,
    pub pip_value: f64,
    pub spread_points: f64,
    pub slippage_points: f64,
    pub commission_per_lot: f64,
    pub lot_sizes: [f64; 4],
}

impl Costs {
    /// `V = pip_value / pip_size`: account currency per price unit per lot.
    pub fn value_per_price_unit(&self) -> f64 {
        self.pip_value / self.pip_size
    }

    /// `h = (spread_points / 2 + slippage_points) · point`: half the round-trip cost, in price.
    pub fn half_cost(&self) -> f64 {
        (self.spread_points / 2.0 + self.slippage_points) * self.point
    }
}

/// Everything numeric the twin needs from the metadata, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    pub window: usize,
    pub policy: PolicyPeriods,
    pub hmm_periods: HmmPeriods,
    pub n_states: usize,
    pub norm_mean: [f64; 5],
    pub norm_std: [f64; 5],
    pub norm_clip: f64,
    pub unrealized_clip: f64,
    pub hmm_mean: [f64; 3],
    pub hmm_std: [f64; 3],
    /// `π`.
    pub startprob: Vec<f64>,
    /// `A`, row-major `[K, K]`.
    pub transmat: Vec<f64>,
    pub costs: Costs,
}

impl EnvSpec {
    /// `S = W − H`: HMM observations per window.
    pub fn hmm_len(&self) -> usize {
        self.window - self.hmm_periods.lookback()
    }

    /// `5 + K + 3`.
    pub fn obs_dim(&self) -> usize {
        5 + self.n_states + 3
    }
}

/// A loaded, validated model: metadata, the twin's parameters and both graphs ready to run.
pub struct Model {
    pub path: PathBuf,
    /// Hex sha256 of the zip bytes: the persisted twin state is only valid for the same model.
    pub fingerprint: String,
    pub symbol: String,
    pub timeframe: String,
    pub meta: Metadata,
    pub spec: EnvSpec,
    plans: Plans,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("symbol", &self.symbol)
            .field("timeframe", &self.timeframe)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Inference failed at run time (tract error); carries the model symbol for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{symbol}: {stage} inference failed: {message}")]
pub struct InferenceError {
    pub symbol: String,
    pub stage: &'static str,
    pub message: String,
}

impl Model {
    /// Loads and validates one model zip.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes =
            std::fs::read(path).map_err(|e| ModelError::new(path, format!("cannot read: {e}")))?;
        Self::from_bytes(path, &bytes)
    }

    /// Loads a model from zip bytes; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let fingerprint = hex(&Sha256::digest(bytes));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| ModelError::new(path, format!("not a zip archive: {e}")))?;
        if let Some(what) = crate::v1::v1_description(path, archive.file_names()) {
            return Err(ModelError::new(path, what));
        }
        let comment = std::str::from_utf8(archive.comment())
            .map_err(|_| ModelError::new(path, "zip comment (metadata) is not UTF-8"))?
            .to_string();
        if comment.trim().is_empty() {
            return Err(ModelError::new(
                path,
                "zip comment is empty: the JSON metadata is missing",
            ));
        }
        let de = &mut serde_json::Deserializer::from_str(&comment);
        let meta: Metadata = serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner().to_string();
            // serde names a missing field in the message, its parent in the path: join them.
            let what = match inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split_once('`'))
            {
                Some((field, _)) if e.path().to_string() == "." => {
                    format!("metadata field `{field}` is missing")
                }
                Some((field, _)) => format!("metadata field `{}.{field}` is missing", e.path()),
                None => format!("metadata field `{}`: {inner}", e.path()),
            };
            ModelError::new(path, what)
        })?;
        let spec = validate(&meta).map_err(|what| ModelError::new(path, what))?;

        let ppo_bytes = read_member(&mut archive, &meta.ppo.onnx.member, path)?;
        let hmm_bytes = read_member(&mut archive, &meta.hmm.onnx.member, path)?;
        let plans = Plans::build(
            path,
            &meta.symbol.name,
            spec.obs_dim(),
            spec.n_states,
            (&ppo_bytes, &meta.ppo.onnx),
            (&hmm_bytes, &meta.hmm.onnx),
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            fingerprint,
            symbol: meta.symbol.name.clone(),
            timeframe: meta.symbol.timeframe.clone(),
            meta,
            spec,
            plans,
        })
    }

    /// The policy's 7 logits for one observation (`obs` has `5 + K + 3` values).
    pub fn logits(&self, obs: &[f32]) -> Result<[f32; 7], InferenceError> {
        if let Some(l) = self.plans.native_logits(obs) {
            return Ok(l);
        }
        let mut out = Vec::with_capacity(1);
        self.plans.logits_rows(obs, &mut out)?;
        out.first().copied().ok_or_else(|| InferenceError {
            symbol: self.symbol.clone(),
            stage: "policy",
            message: format!("{} values are not one observation", obs.len()),
        })
    }

    /// The policy's logits for several observations (row-major, `5 + K + 3` values each), appended to
    /// `out`; each row's logits are the bits [`Model::logits`] gives for it alone.
    pub fn logits_rows(&self, obs: &[f32], out: &mut Vec<[f32; 7]>) -> Result<(), InferenceError> {
        self.plans.logits_rows(obs, out)
    }

    /// Rows one policy call evaluates.
    pub fn policy_rows(&self) -> usize {
        self.plans.policy_rows()
    }

    /// Log emission densities `[S, K]` (row-major) for the scaled HMM observations `x` (`[S, 3]`).
    pub fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
        self.plans.log_emissions(x)
    }

    /// Log emission densities `[K]` of one scaled HMM observation into `out`.
    pub fn log_emission_row(&self, x: &[f64; 3], out: &mut [f64]) -> Result<(), InferenceError> {
        self.plans.log_emission_row(x, out)
    }

    /// `"native"` (the export.py graph, evaluated with tract's arithmetic) or `"tract"`: the policy.
    pub fn policy_evaluator(&self) -> &'static str {
        self.plans.policy_evaluator()
    }

    /// The policy's tract plan on rows of observations, whichever evaluator is in use (the native
    /// evaluator's reference).
    pub fn tract_logits_rows(
        &self,
        obs: &[f32],
        out: &mut Vec<[f32; 7]>,
    ) -> Result<(), InferenceError> {
        self.plans.tract_logits_rows(obs, out)
    }

    /// `"native"` (the export.py graph, evaluated with tract's arithmetic) or `"tract"`.
    pub fn emission_evaluator(&self) -> &'static str {
        self.plans.emission_evaluator()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_member(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    path: &Path,
) -> Result<Vec<u8>, ModelError> {
    let mut file = archive
        .by_name(name)
        .map_err(|e| ModelError::new(path, format!("member `{name}` missing: {e}")))?;
    let mut buf = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut buf)
        .map_err(|e| ModelError::new(path, format!("member `{name}` unreadable: {e}")))?;
    Ok(buf)
}

/// Loading a directory: every good model, and one error per bad zip (that symbol stays disabled).
#[derive(Debug, Default)]
pub struct ModelSet {
    pub models: Vec<Model>,
    pub refused: Vec<ModelError>,
}

/// Loads every `*.zip` in `dir` (sorted by file name). A bad zip never stops the others.
pub fn load_dir(dir: &Path) -> Result<ModelSet, ModelError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ModelError::new(dir, format!("cannot list models directory: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip") && p.is_file())
        .collect();
    paths.sort();
    let mut set = ModelSet::default();
    for p in paths {
        match Model::load(&p) {
            Ok(m) => {
                if set
                    .models
                    .iter()
                    .any(|o| o.symbol == m.symbol && o.timeframe == m.timeframe)
                {
                    set.refused.push(ModelError::new(
                        &p,
                        format!(
                            "duplicate model for {} {}: an earlier zip already serves it",
                            m.symbol, m.timeframe
                        ),
                    ));
                } else {
                    set.models.push(m);
                }
            }
            Err(e) => set.refused.push(e),
        }
    }
    Ok(set)
}
