//! Inference for one model: the policy's tract plan and the HMM emission evaluator (ENV.md §5, §7, §8).
//!
//! **One plan shape per graph, whatever the number of rows.** A row's result must never depend on how
//! many rows are evaluated together, or the backtest (many rows at once) and the live twin (one row)
//! could disagree in the last bit and, on a near tie, in a decision. tract picks its matrix kernels by
//! shape (batch 1 and batch 8 of the policy differ in the last bit on most logits), so:
//! - the policy runs through one plan of [`POLICY_BATCH`] rows; a single observation is padded. Within
//!   one plan a row's logits do not depend on its position or on the other rows (a kernel computes every
//!   output column with the same instruction sequence); `tests/policy_batch.rs` checks it;
//! - the HMM emissions of the export.py graph are evaluated natively with tract's arithmetic
//!   ([`crate::emission`]), after checking on probe rows that they equal tract's `[1, 3]` plan bit for
//!   bit; any other emission graph runs through that `[1, 3]` plan, one row per call;
//! - the policy of the export.py graph is evaluated natively the same way ([`crate::policy`]), after
//!   checking on probe rows that it gives the plan's bits; otherwise through the plan.

use std::path::Path;

use tract_onnx::prelude::*;

use crate::emission::GaussianEmission;
use crate::model::{InferenceError, ModelError, OnnxMeta};
use crate::policy::{BiasOrder, NativePolicy};

type Plan = TypedRunnableModel<TypedModel>;

/// Rows per policy call. Live decisions use one row; the backtest and the warm-up fill the others with
/// the bars that follow under the assumption that the position does not change ([`crate::series`]).
/// 4 is the cheapest per decision on the shipped models (callgrind, tract 0.22, EURUSD's policy: a call
/// costs about 38k instructions with 1 row per plan, 39k with 2, 46k with 4, 67k with 8, and the backtest
/// fills 1.0, 1.7, 2.7 and 3.7 rows per call on average), at 46k for a live bar's single row.
pub const POLICY_BATCH: usize = 4;

/// How the HMM emission graph is evaluated.
enum Emission {
    Native(GaussianEmission),
    Tract(Plan),
}

/// The two graphs of one model, ready to run.
pub struct Plans {
    symbol: String,
    obs_dim: usize,
    n_states: usize,
    policy: Plan,
    /// Rows of `policy`: [`POLICY_BATCH`], or 1 for a graph whose batch dimension is fixed at 1.
    policy_rows: usize,
    /// The policy evaluated natively, when it gave the plan's bits on the probe rows.
    native_policy: Option<NativePolicy>,
    emission: Emission,
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans")
            .field("symbol", &self.symbol)
            .field("emission", &self.emission_evaluator())
            .field("policy", &self.policy_evaluator())
            .finish_non_exhaustive()
    }
}

/// Rows the native emission evaluator must reproduce bit for bit before it is used: the origin, unit
/// steps, the extremes the scaler can produce, and a fixed pseudo-random spread. A different order of
/// operations shows on almost every row; `tests/emission_rows.rs` compares every golden row.
fn probe_rows() -> Vec<[f64; 3]> {
    let mut rows = vec![
        [0.0, 0.0, 0.0],
        [1.0, -1.0, 0.5],
        [-7.5, 3.25, 12.0],
        [40.0, -40.0, 1e-3],
    ];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..12 {
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // 53 random bits scaled to [−6, 6).
            (s >> 11) as f64 / (1u64 << 53) as f64 * 12.0 - 6.0
        };
        rows.push([next(), next(), next()]);
    }
    rows
}

/// Observations the native policy must reproduce bit for bit before it is used: ENV.md §7's
/// values (features within the clip, a one-hot regime, a position, an unrealised PnL), the edges
/// tract's tanh clamps at, and a fixed pseudo-random spread over every input.
fn policy_probe_rows(obs_dim: usize) -> Vec<Vec<f32>> {
    let k = obs_dim.saturating_sub(8);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut rows = vec![
        vec![0.0f32; obs_dim],
        vec![1.0f32; obs_dim],
        vec![-9.5f32; obs_dim],
    ];
    for r in 0..40 {
        let mut row = vec![0.0f32; obs_dim];
        if r < 24 {
            for v in row.iter_mut().take(5) {
                *v = next() * 10.0 - 5.0;
            }
            if k > 0 {
                row[5 + r % k] = 1.0;
            }
            let dir = (r % 3) as f32 - 1.0;
            row[5 + k] = dir;
            row[6 + k] = if dir == 0.0 {
                0.0
            } else {
                (1 + r % 3) as f32 / 3.0
            };
            row[7 + k] = if dir == 0.0 {
                0.0
            } else {
                next() * 20.0 - 10.0
            };
        } else {
            for v in &mut row {
                *v = next() * 24.0 - 12.0;
            }
        }
        rows.push(row);
    }
    rows
}

impl Plans {
    pub fn build(
        path: &Path,
        symbol: &str,
        obs_dim: usize,
        n_states: usize,
        (ppo, ppo_meta): (&[u8], &OnnxMeta),
        (hmm, hmm_meta): (&[u8], &OnnxMeta),
    ) -> Result<Self, ModelError> {
        // A graph exported with a fixed batch of 1 still loads (and runs one row per call).
        let (policy, policy_rows) = match build_plan(
            ppo,
            ppo_meta,
            f32::fact([POLICY_BATCH, obs_dim]).into(),
            &[POLICY_BATCH, 7],
            path,
        ) {
            Ok(plan) => (plan, POLICY_BATCH),
            Err(batched) => {
                let plan =
                    build_plan(ppo, ppo_meta, f32::fact([1, obs_dim]).into(), &[1, 7], path)?;
                tracing::info!(model = %path.display(), reason = %batched, "policy graph runs one row per call");
                (plan, 1)
            }
        };
        let row = build_plan(
            hmm,
            hmm_meta,
            f64::fact([1, 3]).into(),
            &[1, n_states],
            path,
        )?;
        let mut plans = Self {
            symbol: symbol.to_string(),
            obs_dim,
            n_states,
            policy,
            policy_rows,
            native_policy: None,
            emission: Emission::Tract(row),
        };
        plans.native_policy = plans.checked_native_policy(ppo, path)?;
        match GaussianEmission::from_onnx(hmm, n_states) {
            Ok(native) => {
                let mut ours = vec![0.0; n_states];
                for x in probe_rows() {
                    let theirs = plans
                        .log_emission_row_vec(&x)
                        .map_err(|e| ModelError::new(path, e.to_string()))?;
                    native.log_emission_row(&x, &mut ours);
                    if ours
                        .iter()
                        .zip(&theirs)
                        .any(|(a, b)| a.to_bits() != b.to_bits())
                    {
                        tracing::warn!(model = %path.display(), row = ?x, native = ?ours, tract = ?theirs,
                            "native HMM emissions differ from tract's; using tract");
                        return Ok(plans);
                    }
                }
                plans.emission = Emission::Native(native);
            }
            Err(e) => {
                tracing::info!(model = %path.display(), reason = %e, "HMM emissions through tract");
            }
        }
        Ok(plans)
    }

    /// The native policy in the bias order that gives the plan's bits on every probe row, if any.
    fn checked_native_policy(
        &self,
        ppo: &[u8],
        path: &Path,
    ) -> Result<Option<NativePolicy>, ModelError> {
        let native = match NativePolicy::from_onnx(ppo, self.obs_dim) {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(model = %path.display(), reason = %e, "policy through tract");
                return Ok(None);
            }
        };
        let probes = policy_probe_rows(self.obs_dim);
        let mut theirs = Vec::with_capacity(probes.len());
        self.logits_rows(&probes.concat(), &mut theirs)
            .map_err(|e| ModelError::new(path, e.to_string()))?;
        for order in [BiasOrder::After, BiasOrder::First] {
            let candidate = native.clone().with_bias(order);
            let same = probes.iter().zip(&theirs).all(|(row, t)| {
                let ours = candidate.logits_row(row);
                ours.iter().zip(t).all(|(a, b)| a.to_bits() == b.to_bits())
            });
            if same {
                return Ok(Some(candidate));
            }
        }
        let (row, t) = (&probes[0], &theirs[0]);
        tracing::warn!(model = %path.display(), row = ?row, native = ?native.logits_row(row), tract = ?t,
            "native policy differs from tract's plan; using the plan");
        Ok(None)
    }

    /// `"native"` or `"tract"`: which evaluator computes the policy's logits.
    pub fn policy_evaluator(&self) -> &'static str {
        if self.native_policy.is_some() {
            "native"
        } else {
            "tract"
        }
    }

    /// The plan's logits for rows of observations, whichever evaluator is in use (the loader's and
    /// the tests' reference).
    pub fn tract_logits_rows(
        &self,
        obs: &[f32],
        out: &mut Vec<[f32; 7]>,
    ) -> Result<(), InferenceError> {
        self.plan_logits_rows(obs, out)
    }

    /// Rows one policy call evaluates (the batch the series path fills): 1 when native (a row costs
    /// the same alone as in a batch, so nothing is evaluated ahead).
    pub fn policy_rows(&self) -> usize {
        if self.native_policy.is_some() {
            1
        } else {
            self.policy_rows
        }
    }

    /// One observation's logits when the policy is native (no allocation); `None` otherwise.
    pub fn native_logits(&self, obs: &[f32]) -> Option<[f32; 7]> {
        let native = self.native_policy.as_ref()?;
        (obs.len() == self.obs_dim).then(|| native.logits_row(obs))
    }

    /// `"native"` or `"tract"`: which evaluator computes the HMM emissions.
    pub fn emission_evaluator(&self) -> &'static str {
        match self.emission {
            Emission::Native(_) => "native",
            Emission::Tract(_) => "tract",
        }
    }

    fn err(&self, stage: &'static str, message: impl std::fmt::Display) -> InferenceError {
        InferenceError {
            symbol: self.symbol.clone(),
            stage,
            message: message.to_string(),
        }
    }

    /// The policy's logits for `obs.len() / obs_dim` observations (row-major), appended to `out`.
    pub fn logits_rows(&self, obs: &[f32], out: &mut Vec<[f32; 7]>) -> Result<(), InferenceError> {
        match &self.native_policy {
            Some(native) => {
                let d = self.obs_dim;
                if !obs.len().is_multiple_of(d) {
                    return Err(self.err(
                        "policy",
                        format!("{} values are not rows of {d}", obs.len()),
                    ));
                }
                out.extend(obs.chunks_exact(d).map(|row| native.logits_row(row)));
                Ok(())
            }
            None => self.plan_logits_rows(obs, out),
        }
    }

    fn plan_logits_rows(&self, obs: &[f32], out: &mut Vec<[f32; 7]>) -> Result<(), InferenceError> {
        let d = self.obs_dim;
        if !obs.len().is_multiple_of(d) {
            return Err(self.err(
                "policy",
                format!("{} values are not rows of {d}", obs.len()),
            ));
        }
        let rows = self.policy_rows;
        let mut padded = vec![0.0f32; rows * d];
        for chunk in obs.chunks(rows * d) {
            padded[..chunk.len()].copy_from_slice(chunk);
            padded[chunk.len()..].fill(0.0);
            let input =
                Tensor::from_shape(&[rows, d], &padded).map_err(|e| self.err("policy", e))?;
            let result = self
                .policy
                .run(tvec!(input.into_tvalue()))
                .map_err(|e| self.err("policy", e))?;
            let view = result[0]
                .as_slice::<f32>()
                .map_err(|e| self.err("policy", e))?;
            if view.len() != rows * 7 {
                return Err(self.err(
                    "policy",
                    format!("expected {} logits, got {}", rows * 7, view.len()),
                ));
            }
            for row in view.chunks_exact(7).take(chunk.len() / d) {
                let mut l = [0.0f32; 7];
                l.copy_from_slice(row);
                out.push(l);
            }
        }
        Ok(())
    }

    /// `[K]` log emissions of one scaled HMM observation into `out`.
    pub fn log_emission_row(&self, x: &[f64; 3], out: &mut [f64]) -> Result<(), InferenceError> {
        if out.len() != self.n_states {
            return Err(self.err(
                "hmm",
                format!("{} output slots for {} states", out.len(), self.n_states),
            ));
        }
        match &self.emission {
            Emission::Native(n) => n.log_emission_row(x, out),
            Emission::Tract(_) => out.copy_from_slice(&self.log_emission_row_vec(x)?),
        }
        Ok(())
    }

    /// tract's `[1, 3]` plan on one row (only while it is the evaluator, or to check the native one).
    fn log_emission_row_vec(&self, x: &[f64; 3]) -> Result<Vec<f64>, InferenceError> {
        let Emission::Tract(plan) = &self.emission else {
            return Err(self.err("hmm", "no tract emission plan"));
        };
        let input = Tensor::from_shape(&[1, 3], x).map_err(|e| self.err("hmm", e))?;
        let out = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| self.err("hmm", e))?;
        let view = out[0].as_slice::<f64>().map_err(|e| self.err("hmm", e))?;
        if view.len() != self.n_states {
            return Err(self.err(
                "hmm",
                format!(
                    "expected {} log emissions, got {}",
                    self.n_states,
                    view.len()
                ),
            ));
        }
        Ok(view.to_vec())
    }

    /// `[S, K]` log emissions (row-major) of `S` scaled observations (`x` is `[S, 3]`).
    pub fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
        if !x.len().is_multiple_of(3) {
            return Err(self.err("hmm", format!("{} values are not rows of 3", x.len())));
        }
        let k = self.n_states;
        let mut out = vec![0.0; x.len() / 3 * k];
        for (row, slot) in x.chunks_exact(3).zip(out.chunks_exact_mut(k)) {
            self.log_emission_row(&[row[0], row[1], row[2]], slot)?;
        }
        Ok(out)
    }
}

fn build_plan(
    bytes: &[u8],
    onnx: &OnnxMeta,
    input_fact: InferenceFact,
    expect_out: &[usize],
    path: &Path,
) -> Result<Plan, ModelError> {
    let member = &onnx.member;
    let fail = |stage: &str, e: TractError| {
        ModelError::new(path, format!("member `{member}`: {stage}: {e:#}"))
    };
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| fail("not a loadable ONNX graph", e))?;
    let inputs = model
        .input_outlets()
        .map_err(|e| fail("inputs", e))?
        .to_vec();
    if inputs.len() != 1 {
        return Err(ModelError::new(
            path,
            format!(
                "member `{member}`: expected 1 input, found {}",
                inputs.len()
            ),
        ));
    }
    let input_name = model.node(inputs[0].node).name.clone();
    if input_name != onnx.input {
        return Err(ModelError::new(
            path,
            format!(
                "member `{member}`: input is named `{input_name}`, metadata says `{}`",
                onnx.input
            ),
        ));
    }
    model
        .set_output_names([onnx.output.as_str()])
        .map_err(|e| fail(&format!("output `{}`", onnx.output), e))?;
    let model = model
        .with_input_fact(0, input_fact)
        .map_err(|e| fail("input fact", e))?
        .into_optimized()
        .map_err(|e| fail("optimisation (an op tract does not support?)", e))?;
    let shape = model
        .output_fact(0)
        .map_err(|e| fail("output fact", e))?
        .shape
        .as_concrete()
        .map(<[usize]>::to_vec);
    if shape.as_deref() != Some(expect_out) {
        return Err(ModelError::new(
            path,
            format!(
                "member `{member}`: output `{}` has shape {shape:?}, expected {expect_out:?}",
                onnx.output
            ),
        ));
    }
    model.into_runnable().map_err(|e| fail("plan", e))
}
