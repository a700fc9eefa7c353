//! The digital twin (ENV.md §6-§7): the virtual position, the observation and the pure per-bar step.
//!
//! The twin follows the model whatever the broker did: its position is what the policy was trained to
//! believe it holds, so the observation never leaves the training distribution.

use serde::{Deserialize, Serialize};

use crate::bars::Bar;
use crate::features::{ema_close, hmm_observations, normalise, policy_features_with, wilder_atr};
use crate::hmm::{argmax_f64, forward_filter, scaled_emission_row};
use crate::model::{ACTION_TABLE, Costs, EnvSpec, InferenceError, Model};

/// The virtual position: direction `d`, intensity `q` and entry fill price `e` (ENV.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VirtualPosition {
    pub direction: i8,
    pub intensity: u8,
    pub entry: f64,
}

impl VirtualPosition {
    pub const FLAT: Self = Self {
        direction: 0,
        intensity: 0,
        entry: 0.0,
    };
}

/// The seed's `execute_action` at close `c`: same target keeps the position; any change closes
/// everything (realising PnL into `realised`) and then opens the target unless it is WAIT.
pub fn execute_action(
    pos: &mut VirtualPosition,
    realised: &mut f64,
    target_direction: i8,
    target_intensity: u8,
    close: f64,
    costs: &Costs,
) {
    if pos.direction == target_direction && pos.intensity == target_intensity {
        return;
    }
    let h = costs.half_cost();
    if pos.direction != 0 {
        let d = f64::from(pos.direction);
        let lots = costs.lot_sizes[usize::from(pos.intensity)];
        let exit = close - d * h;
        *realised += d * (exit - pos.entry) * lots * costs.value_per_price_unit()
            - costs.commission_per_lot * lots;
        *pos = VirtualPosition::FLAT;
    }
    if target_direction != 0 {
        pos.entry = close + f64::from(target_direction) * h;
        pos.direction = target_direction;
        pos.intensity = target_intensity;
    }
}

/// The twin's state between bars (what `state/` persists).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwinState {
    pub position: VirtualPosition,
    /// Realised virtual PnL `R`, account currency.
    pub realised_pnl: f64,
    /// Bars the last action has been held (`N:`), 0 before the first decision.
    pub held: u32,
    /// Action index of the last decision, `None` before the first.
    pub last_action: Option<u8>,
    /// Open time (Unix s) of the last decided bar.
    pub last_bar_time: Option<i64>,
    /// Regime of the last decision (lets a restart resend the last signal).
    #[serde(default)]
    pub last_regime: Option<u16>,
}

impl TwinState {
    /// Flat, `R = 0`, nothing decided yet.
    pub const START: Self = Self {
        position: VirtualPosition::FLAT,
        realised_pnl: 0.0,
        held: 0,
        last_action: None,
        last_bar_time: None,
        last_regime: None,
    };

    /// The last decision as a [`Decision`] (for resending its signal), if any.
    pub fn last_decision(&self) -> Option<Decision> {
        Some(Decision {
            time: self.last_bar_time?,
            regime: self.last_regime?,
            action: self.last_action?,
            direction: self.position.direction,
            intensity: self.position.intensity,
            realised_pnl: self.realised_pnl,
            held: self.held,
        })
    }
}

impl Default for TwinState {
    fn default() -> Self {
        Self::START
    }
}

/// What the twin decided on one bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The decision bar's open time (Unix s).
    pub time: i64,
    pub regime: u16,
    /// Action index 0..=6 (ENV.md §6).
    pub action: u8,
    /// Position after the action.
    pub direction: i8,
    pub intensity: u8,
    /// `R` after the action.
    pub realised_pnl: f64,
    pub held: u32,
}

/// Everything computed on the way to a decision (parity tests compare each stage).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    pub raw: [f64; 5],
    pub z: [f64; 5],
    pub atr: f64,
    /// Unscaled HMM features of the last window position.
    pub hmm_last: [f64; 3],
    pub regime: u16,
    pub obs: Vec<f32>,
    pub logits: [f32; 7],
}

/// A window of exactly `W` bars ending at the decision bar.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    bars: &'a [Bar],
}

/// The slice handed to [`Window::new`] is not `W` bars long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a window needs exactly {expected} bars, got {got} (still warming up?)")]
pub struct WindowLengthError {
    pub expected: usize,
    pub got: usize,
}

impl<'a> Window<'a> {
    pub fn new(bars: &'a [Bar], spec: &EnvSpec) -> Result<Self, WindowLengthError> {
        if bars.len() != spec.window {
            return Err(WindowLengthError {
                expected: spec.window,
                got: bars.len(),
            });
        }
        Ok(Self { bars })
    }

    pub fn bars(&self) -> &'a [Bar] {
        self.bars
    }

    pub fn last(&self) -> &'a Bar {
        &self.bars[self.bars.len() - 1]
    }
}

/// The inference the step needs; [`Model`] implements it with its plans, tests with closed forms.
pub trait Inference {
    /// `[S, K]` log emissions of `S` scaled observations (`x` is `[S, 3]`).
    fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError>;
    fn logits(&self, obs: &[f32]) -> Result<[f32; 7], InferenceError>;
    /// `[K]` log emissions of one observation into `out`; must equal the matching row of
    /// `log_emissions` bit for bit (tests/emission_rows.rs checks it for the shipped models).
    fn log_emission_row(&self, x: &[f64; 3], out: &mut [f64]) -> Result<(), InferenceError> {
        let row = self.log_emissions(x)?;
        if row.len() != out.len() {
            return Err(InferenceError {
                symbol: String::new(),
                stage: "hmm",
                message: format!("{} log emissions for {} states", row.len(), out.len()),
            });
        }
        out.copy_from_slice(&row);
        Ok(())
    }
    /// Observations one [`Inference::logits_rows`] call evaluates for about the price of one.
    fn policy_rows(&self) -> usize {
        1
    }
    /// Logits of consecutive observations of `d` values each, appended to `out`; each row must get the
    /// bits [`Inference::logits`] gives it alone.
    fn logits_rows(
        &self,
        obs: &[f32],
        d: usize,
        out: &mut Vec<[f32; 7]>,
    ) -> Result<(), InferenceError> {
        for row in obs.chunks(d) {
            out.push(self.logits(row)?);
        }
        Ok(())
    }
}

impl Inference for Model {
    fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
        Model::log_emissions(self, x)
    }
    fn log_emission_row(&self, x: &[f64; 3], out: &mut [f64]) -> Result<(), InferenceError> {
        Model::log_emission_row(self, x, out)
    }
    fn logits(&self, obs: &[f32]) -> Result<[f32; 7], InferenceError> {
        Model::logits(self, obs)
    }
    fn policy_rows(&self) -> usize {
        Model::policy_rows(self)
    }
    fn logits_rows(
        &self,
        obs: &[f32],
        _: usize,
        out: &mut Vec<[f32; 7]>,
    ) -> Result<(), InferenceError> {
        Model::logits_rows(self, obs, out)
    }
}

/// `argmax` over logits, the lowest index on a tie.
pub fn argmax_logits(logits: &[f32; 7]) -> u8 {
    let mut best = 0usize;
    for i in 1..7 {
        if logits[i] > logits[best] {
            best = i;
        }
    }
    best as u8
}

/// The observation of ENV.md §7: `[z_0…z_4, onehot_K(regime), d, q/3, u]`, each computed in f64 then
/// cast to f32.
pub fn observation(
    z: &[f64; 5],
    regime: usize,
    k: usize,
    pos: &VirtualPosition,
    close: f64,
    atr: f64,
    uclip: f64,
) -> Vec<f32> {
    let mut obs = Vec::with_capacity(5 + k + 3);
    push_observation(&mut obs, z, regime, k, pos, close, atr, uclip);
    obs
}

/// [`observation`] appended to `obs` (no allocation once `obs` has the room).
#[allow(clippy::too_many_arguments)]
pub fn push_observation(
    obs: &mut Vec<f32>,
    z: &[f64; 5],
    regime: usize,
    k: usize,
    pos: &VirtualPosition,
    close: f64,
    atr: f64,
    uclip: f64,
) {
    obs.extend(z.iter().map(|v| *v as f32));
    obs.extend((0..k).map(|i| if i == regime { 1.0f32 } else { 0.0 }));
    let d = f64::from(pos.direction);
    let u = if pos.direction != 0 && atr > 0.0 {
        (d * (close - pos.entry) / atr).clamp(-uclip, uclip)
    } else {
        0.0
    };
    obs.push(d as f32);
    obs.push((f64::from(pos.intensity) / 3.0) as f32);
    obs.push(u as f32);
}

/// What a window alone determines (ENV.md §4-§5), before the position enters the observation (§7).
/// Every path to a decision (the per-window reference, the live twin, the series) builds one of these
/// and hands it to [`WindowFacts::observe`] and [`act`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFacts {
    /// The decision bar's open time and close.
    pub time: i64,
    pub close: f64,
    pub raw: [f64; 5],
    pub z: [f64; 5],
    pub atr: f64,
    pub regime: u16,
}

impl WindowFacts {
    /// From the window's bars, its `ATR_{W−1}` and `E_{W−1}` ([`wilder_atr`], [`ema_close`] or their
    /// incremental forms) and its regime.
    pub fn new(spec: &EnvSpec, bars: &[Bar], atr: f64, ema: f64, regime: u16) -> Self {
        let pf = policy_features_with(bars, atr, ema, &spec.policy);
        let last = &bars[bars.len() - 1];
        Self {
            time: last.time,
            close: last.close,
            raw: pf.raw,
            z: normalise(&pf.raw, &spec.norm_mean, &spec.norm_std, spec.norm_clip),
            atr: pf.atr,
            regime,
        }
    }

    /// Appends the observation with `pos` held before the action (ENV.md §7).
    pub fn observe(&self, spec: &EnvSpec, pos: &VirtualPosition, obs: &mut Vec<f32>) {
        push_observation(
            obs,
            &self.z,
            usize::from(self.regime),
            spec.n_states,
            pos,
            self.close,
            self.atr,
            spec.unrealized_clip,
        );
    }
}

/// The action of the logits, executed at the decision bar's close (ENV.md §6-§7): the decision and the
/// state after it.
pub fn act(
    spec: &EnvSpec,
    facts: &WindowFacts,
    state: &TwinState,
    logits: &[f32; 7],
) -> (Decision, TwinState) {
    let action = argmax_logits(logits);
    let (_, direction, intensity) = ACTION_TABLE[usize::from(action)];
    let mut next = *state;
    execute_action(
        &mut next.position,
        &mut next.realised_pnl,
        direction,
        intensity,
        facts.close,
        &spec.costs,
    );
    next.held = match state.last_action {
        Some(prev) if prev == action => state.held.saturating_add(1),
        _ => 1,
    };
    next.last_action = Some(action);
    next.last_bar_time = Some(facts.time);
    next.last_regime = Some(facts.regime);
    let decision = Decision {
        time: facts.time,
        regime: facts.regime,
        action,
        direction: next.position.direction,
        intensity: next.position.intensity,
        realised_pnl: next.realised_pnl,
        held: next.held,
    };
    (decision, next)
}

/// One decision bar, pure: `(window, state) → (decision, next state)` (ENV.md §7, order of operations).
pub fn step(
    model: &Model,
    window: &Window<'_>,
    state: &TwinState,
) -> Result<(Decision, TwinState), InferenceError> {
    step_with(&model.spec, model, window, state).map(|(d, s, _)| (d, s))
}

/// [`step`] over any [`Inference`], also returning the intermediate values.
pub fn step_with<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    window: &Window<'_>,
    state: &TwinState,
) -> Result<(Decision, TwinState, StepTrace), InferenceError> {
    let x = hmm_observations(
        window.bars(),
        &spec.hmm_periods,
        &spec.hmm_mean,
        &spec.hmm_std,
    );
    let emissions = inference
        .log_emissions(&x)?
        .chunks(spec.n_states)
        .flat_map(scaled_emission_row)
        .collect();
    decide(spec, inference, window, state, emissions)
}

fn decide<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    window: &Window<'_>,
    state: &TwinState,
    scaled_emissions: Vec<f64>,
) -> Result<(Decision, TwinState, StepTrace), InferenceError> {
    let bars = window.bars();
    let k = spec.n_states;
    if scaled_emissions.len() != spec.hmm_len() * k {
        return Err(InferenceError {
            symbol: String::new(),
            stage: "hmm",
            message: format!(
                "emission matrix has {} values, expected {}",
                scaled_emissions.len(),
                spec.hmm_len() * k
            ),
        });
    }
    let posterior = forward_filter(&scaled_emissions, k, &spec.startprob, &spec.transmat);
    let regime = argmax_f64(&posterior) as u16;
    let facts = WindowFacts::new(
        spec,
        bars,
        wilder_atr(bars, spec.policy.atr),
        ema_close(bars, spec.policy.ema),
        regime,
    );
    let mut obs = Vec::with_capacity(spec.obs_dim());
    facts.observe(spec, &state.position, &mut obs);
    let logits = inference.logits(&obs)?;
    let (decision, next) = act(spec, &facts, state, &logits);
    let trace = StepTrace {
        raw: facts.raw,
        z: facts.z,
        atr: facts.atr,
        hmm_last: crate::features::hmm_features_at(bars, bars.len() - 1, &spec.hmm_periods),
        regime,
        obs,
        logits,
    };
    Ok((decision, next, trace))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's demo costs (EURUSD): point 1e-5, pip 1e-4, $10/pip/lot, spread 7, slippage 2, $7/lot.
    fn eurusd() -> Costs {
        Costs {
            point: 0.00001,
            pip_size: 0.0001,
            pip_value: 10.0,
            spread_points: 7.0,
            slippage_points: 2.0,
            commission_per_lot: 7.0,
            lot_sizes: [0.0, 0.01, 0.03, 0.05],
        }
    }

    #[test]
    fn same_action_keeps_the_position() {
        let c = eurusd();
        let mut pos = VirtualPosition::FLAT;
        let mut r = 0.0;
        execute_action(&mut pos, &mut r, 1, 1, 1.1000, &c);
        let opened = pos;
        execute_action(&mut pos, &mut r, 1, 1, 1.2000, &c);
        assert_eq!(pos, opened);
        assert_eq!(r, 0.0);
        // h = (3.5 + 2) · 1e-5 = 5.5e-5
        assert!((opened.entry - 1.100055).abs() < 1e-12);
    }

    #[test]
    fn a_change_of_intensity_is_a_close_and_an_open() {
        let c = eurusd();
        let mut pos = VirtualPosition::FLAT;
        let mut r = 0.0;
        execute_action(&mut pos, &mut r, 1, 1, 1.1000, &c); // LONG_WEAK, e = 1.100055
        execute_action(&mut pos, &mut r, 1, 2, 1.1010, &c); // → LONG_MODERATE: close 0.01 lot then open 0.03
        // exit 1.1010 − 0.000055 = 1.100945; (1.100945 − 1.100055) · 0.01 · 100000 − 7 · 0.01 = 0.89 − 0.07
        assert!((r - 0.82).abs() < 1e-9, "{r}");
        assert_eq!((pos.direction, pos.intensity), (1, 2));
        assert!((pos.entry - 1.101055).abs() < 1e-12);
        execute_action(&mut pos, &mut r, 0, 0, 1.1010, &c); // WAIT: close 0.03, lose 2h and commission
        // (1.100945 − 1.101055) · 0.03 · 1e5 − 0.21 = −0.33 − 0.21
        assert!((r - (0.82 - 0.54)).abs() < 1e-9, "{r}");
        assert_eq!(pos, VirtualPosition::FLAT);
    }

    #[test]
    fn reversal_closes_then_opens_the_other_side() {
        let c = eurusd();
        let mut pos = VirtualPosition::FLAT;
        let mut r = 0.0;
        execute_action(&mut pos, &mut r, -1, 3, 1.2000, &c); // SHORT_STRONG, e = 1.199945
        execute_action(&mut pos, &mut r, 1, 1, 1.1900, &c); // close short at 1.190055: −1 · (1.190055 − 1.199945) · 0.05 · 1e5 − 0.35
        assert!((r - (49.45 - 0.35)).abs() < 1e-9, "{r}");
        assert_eq!((pos.direction, pos.intensity), (1, 1));
    }

    /// A closed-form inference: emissions favour state 1; the policy goes long unless already long.
    #[derive(Debug)]
    struct Scripted;
    impl Inference for Scripted {
        fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
            Ok((0..x.len() / 3).flat_map(|_| [-2.0, -1.0]).collect())
        }
        fn logits(&self, obs: &[f32]) -> Result<[f32; 7], InferenceError> {
            let d = obs[obs.len() - 3];
            Ok(if d > 0.0 {
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
            } else {
                [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
            })
        }
    }

    /// Log emissions that depend on the observation (a Gaussian-like score per state), so every row
    /// differs; the default `log_emission_row` runs the same code on one row.
    #[derive(Debug)]
    struct ObservationDependent;
    impl Inference for ObservationDependent {
        fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
            Ok(x.chunks(3)
                .flat_map(|r| {
                    let d = r[0] * 100.0 + r[1] - r[2];
                    [-(d + 0.5) * (d + 0.5), -(d - 0.5) * (d - 0.5) - 0.1]
                })
                .collect())
        }
        fn logits(&self, _: &[f32]) -> Result<[f32; 7], InferenceError> {
            Ok([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        }
    }

    /// The live step (cached rows, recursions prepared between bars) decides exactly (bit for bit) as
    /// the per-window path, across consecutive windows with and without preparation, a gap (rows
    /// rebuilt) and a jump back to an earlier window (a restart).
    #[test]
    fn live_window_is_bit_identical_to_the_per_window_step() {
        let mut spec = spec();
        spec.transmat = vec![0.9, 0.1, 0.3, 0.7];
        spec.startprob = vec![0.2, 0.8];
        let bars: Vec<Bar> = (0..40)
            .map(|i| {
                let c = 1.1 + 0.003 * ((i * 7 % 11) as f64 - 5.0);
                Bar {
                    time: i * 3600,
                    open: c,
                    high: c + 0.002,
                    low: c - 0.001 * (1 + i % 3) as f64,
                    close: c,
                    volume: 10 + (i % 4) as u64,
                }
            })
            .collect();
        let mut live = crate::live_window::LiveWindow::new(&spec);
        // 8..20 consecutive, then a jump (20 → 27), then back to an earlier window (restart).
        let ends: Vec<usize> = (8..=20).chain(27..=40).chain([15, 16]).collect();
        let mut regimes = std::collections::BTreeSet::new();
        let mut prepared = 0;
        let mut state = TwinState::START;
        for (n, end) in ends.into_iter().enumerate() {
            let w = Window::new(&bars[end - 8..end], &spec).unwrap();
            let (dl, sl, facts) = live
                .decide(&spec, &ObservationDependent, &w, &state)
                .unwrap();
            let (du, su, tu) = step_with(&spec, &ObservationDependent, &w, &state).unwrap();
            assert_eq!((dl, sl), (du, su), "window ending {end}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&facts.raw), bits(&tu.raw), "window ending {end}");
            assert_eq!(bits(&facts.z), bits(&tu.z), "window ending {end}");
            assert_eq!(facts.atr.to_bits(), tu.atr.to_bits(), "window ending {end}");
            assert_eq!(facts.regime, tu.regime, "window ending {end}");
            regimes.insert(tu.regime);
            state = su;
            // Prepare after most bars, as the live loop does; skip some to take the full path too.
            if n % 5 != 3 {
                live.prepare(&spec, &ObservationDependent, w.bars())
                    .unwrap();
                prepared += 1;
            }
        }
        assert_eq!(regimes.len(), 2, "the data must exercise both states");
        assert!(prepared > 10);
        assert!(
            state.position.direction != 0,
            "the position must enter the observation"
        );
    }

    fn spec() -> EnvSpec {
        use crate::features::{HmmPeriods, PolicyPeriods};
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
            n_states: 2,
            norm_mean: [0.0; 5],
            norm_std: [1.0; 5],
            norm_clip: 5.0,
            unrealized_clip: 5.0,
            hmm_mean: [0.0; 3],
            hmm_std: [1.0; 3],
            startprob: vec![0.5; 2],
            transmat: vec![0.5; 4],
            costs: eurusd(),
        }
    }

    #[test]
    fn step_follows_the_policy_and_counts_held_bars() {
        let spec = spec();
        let bars: Vec<Bar> = (0..10)
            .map(|i| Bar {
                time: i * 3600,
                open: 1.1,
                high: 1.11 + 0.001 * i as f64,
                low: 1.09,
                close: 1.1 + 0.001 * i as f64,
                volume: 10,
            })
            .collect();
        let w0 = Window::new(&bars[0..8], &spec).unwrap();
        let (d0, s0, t0) = step_with(&spec, &Scripted, &w0, &TwinState::START).unwrap();
        assert_eq!(t0.regime, 1);
        assert_eq!(t0.obs.len(), 10);
        assert_eq!(&t0.obs[5..7], &[0.0, 1.0]);
        assert_eq!(
            (d0.action, d0.direction, d0.intensity, d0.held),
            (1, 1, 1, 1)
        );
        let w1 = Window::new(&bars[1..9], &spec).unwrap();
        let (d1, s1, t1) = step_with(&spec, &Scripted, &w1, &s0).unwrap();
        // Long before the action: d = 1, q/3, positive unrealised term.
        assert_eq!(t1.obs[7], 1.0);
        assert_eq!(t1.obs[8], (1.0f64 / 3.0) as f32);
        assert!(t1.obs[9] > 0.0);
        assert_eq!(
            (d1.action, d1.direction, d1.intensity, d1.held),
            (6, -1, 3, 1)
        );
        assert!(d1.realised_pnl != 0.0);
        let w2 = Window::new(&bars[2..10], &spec).unwrap();
        let (d2, _, _) = step_with(&spec, &Scripted, &w2, &s1).unwrap();
        assert_eq!((d2.action, d2.held), (1, 1));
        assert!(Window::new(&bars[0..7], &spec).is_err());
    }

    #[test]
    fn held_grows_while_the_action_repeats() {
        let spec = spec();
        let bars: Vec<Bar> = (0..10)
            .map(|i| Bar {
                time: i,
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 0,
            })
            .collect();
        #[derive(Debug)]
        struct AlwaysWait;
        impl Inference for AlwaysWait {
            fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
                Ok(vec![0.0; x.len() / 3 * 2])
            }
            fn logits(&self, _: &[f32]) -> Result<[f32; 7], InferenceError> {
                Ok([1.0; 7])
            }
        }
        let mut state = TwinState::START;
        for t in 7..10 {
            let w = Window::new(&bars[t - 7..=t], &spec).unwrap();
            let (d, s, tr) = step_with(&spec, &AlwaysWait, &w, &state).unwrap();
            assert_eq!(d.action, 0, "ties pick WAIT");
            assert_eq!(tr.regime, 0, "ties pick state 0");
            assert_eq!(d.held as usize, t - 6);
            state = s;
        }
        assert_eq!(state.realised_pnl, 0.0);
    }
}
