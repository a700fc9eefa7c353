//! The live twin's step: what a new bar needs after the previous one, and nothing it does not.
//!
//! A window shares all but its last bar with the window of the next bar, and every recursion of the
//! definition (ATR, EMA, forward filter) runs over a window from its start. So between two bars
//! [`LiveWindow::prepare`] runs them over the next window's first `W − 1` bars, and when the bar comes
//! [`LiveWindow::decide`] takes the one remaining step of each: the same operations in the same order
//! as the per-window path ([`crate::twin::step_with`]), split in two (`tests/live_window.rs` and the
//! unit tests below compare the two bit for bit). Without a matching preparation (the first bar after a
//! history, or `prepare` not called) it computes the window in full. The scaled emission rows are kept
//! per bar, as they depend only on their bar and the `H` before it (ENV.md §5).

use std::collections::VecDeque;

use crate::bars::Bar;
use crate::features::{atr_ema_head, atr_ema_step, ema_close, hmm_features_at, wilder_atr};
use crate::hmm::{Chain, argmax_f64, scale_emission_row};
use crate::model::{EnvSpec, InferenceError};
use crate::twin::{Decision, Inference, TwinState, Window, WindowFacts, act};

/// The next window's recursions, run up to (not including) its last bar.
#[derive(Debug, Clone)]
struct Prepared {
    /// The next window's first bar, and the bar before its last (this window's last bar): the FIFO
    /// must have moved by exactly one bar for the preparation to apply.
    first_time: i64,
    before_last_time: i64,
    atr_ema: (f64, f64),
    /// `α` after the next window's second-to-last observation is in `LiveWindow::prepared_alpha`;
    /// false when a window has a single observation (`S = 1`).
    has_alpha: bool,
}

/// One symbol's cached rows and prepared recursions.
#[derive(Debug, Clone)]
pub struct LiveWindow {
    chain: Chain,
    k: usize,
    /// Bar times of the rows held, oldest first: the current window's positions `H …`.
    times: VecDeque<i64>,
    /// Their scaled emission rows, `K` values per bar, same order.
    rows: VecDeque<f64>,
    prepared: Option<Prepared>,
    prepared_alpha: Vec<f64>,
    alpha: Vec<f64>,
    scratch: Vec<f64>,
    log_b: Vec<f64>,
    e: Vec<f64>,
    obs: Vec<f32>,
}

impl LiveWindow {
    pub fn new(spec: &EnvSpec) -> Self {
        let k = spec.n_states;
        Self {
            chain: Chain::new(&spec.startprob, &spec.transmat),
            k,
            times: VecDeque::with_capacity(spec.hmm_len() + 1),
            rows: VecDeque::with_capacity((spec.hmm_len() + 1) * k),
            prepared: None,
            prepared_alpha: vec![0.0; k],
            alpha: vec![0.0; k],
            scratch: vec![0.0; k],
            log_b: vec![0.0; k],
            e: vec![0.0; k],
            obs: Vec::with_capacity(spec.obs_dim()),
        }
    }

    /// Forgets every row and preparation (the FIFO was rebuilt).
    pub fn clear(&mut self) {
        self.times.clear();
        self.rows.clear();
        self.prepared = None;
    }

    /// Takes the rows of `window`'s positions `H …` from a series pass (`rows` holds `K` values per bar,
    /// for exactly those bars).
    pub fn seed(&mut self, spec: &EnvSpec, window: &[Bar], rows: &[f64]) {
        self.clear();
        let h = spec.hmm_periods.lookback();
        if window.len() == spec.window && rows.len() == (window.len() - h) * self.k {
            self.times.extend(window[h..].iter().map(|b| b.time));
            self.rows.extend(rows.iter().copied());
        }
    }

    /// Brings the rows in line with `bars` (a full window): drops rows that left it, adds the new bars'
    /// rows; anything else (a gap in the cached sequence, a rebuilt FIFO) recomputes every row.
    fn sync_rows<I: Inference + ?Sized>(
        &mut self,
        spec: &EnvSpec,
        inference: &I,
        bars: &[Bar],
    ) -> Result<(), InferenceError> {
        let h = spec.hmm_periods.lookback();
        let first = bars[h].time;
        while self.times.front().is_some_and(|t| *t < first) {
            self.times.pop_front();
            self.rows.drain(..self.k);
        }
        let usable = self.times.front() == Some(&first)
            && self.times.len() <= bars.len() - h
            && self.times.iter().zip(&bars[h..]).all(|(t, b)| *t == b.time);
        if !usable {
            self.times.clear();
            self.rows.clear();
        }
        for j in h + self.times.len()..bars.len() {
            let f = hmm_features_at(bars, j, &spec.hmm_periods);
            let mut x = [0.0; 3];
            for d in 0..3 {
                x[d] = (f[d] - spec.hmm_mean[d]) / spec.hmm_std[d];
            }
            inference.log_emission_row(&x, &mut self.log_b)?;
            scale_emission_row(&self.log_b, &mut self.e);
            self.rows.extend(self.e.iter().copied());
            self.times.push_back(bars[j].time);
        }
        Ok(())
    }

    /// Runs the next window's recursions over its first `W − 1` bars, which are `window`'s last
    /// `W − 1`. Skipping it costs only time: [`LiveWindow::decide`] then computes the window in full.
    pub fn prepare<I: Inference + ?Sized>(
        &mut self,
        spec: &EnvSpec,
        inference: &I,
        window: &[Bar],
    ) -> Result<(), InferenceError> {
        self.prepared = None;
        let w = spec.window;
        if window.len() != w {
            return Ok(());
        }
        self.sync_rows(spec, inference, window)?;
        let s = spec.hmm_len();
        let atr_ema = atr_ema_head(&window[1..], &spec.policy);
        let has_alpha = s >= 2;
        if has_alpha {
            let rows = self.rows.make_contiguous();
            // The next window's observations `H … W−2` are this window's `H+1 … W−1`.
            self.chain
                .filter(&rows[self.k..], &mut self.prepared_alpha, &mut self.scratch);
        }
        self.prepared = Some(Prepared {
            first_time: window[1].time,
            before_last_time: window[w - 1].time,
            atr_ema,
            has_alpha,
        });
        Ok(())
    }

    /// One decision on `window` from `state`: the same bits as [`crate::twin::step_with`].
    pub fn decide<I: Inference + ?Sized>(
        &mut self,
        spec: &EnvSpec,
        inference: &I,
        window: &Window<'_>,
        state: &TwinState,
    ) -> Result<(Decision, TwinState, WindowFacts), InferenceError> {
        let bars = window.bars();
        let w = bars.len();
        self.sync_rows(spec, inference, bars)?;
        let prepared = self
            .prepared
            .take()
            .filter(|p| p.first_time == bars[0].time && p.before_last_time == bars[w - 2].time);
        let k = self.k;
        let (atr, ema) = match prepared {
            Some(p) => {
                let last = self.rows.len() - k;
                for (slot, v) in self.e.iter_mut().zip(self.rows.range(last..)) {
                    *slot = *v;
                }
                if p.has_alpha {
                    self.alpha.copy_from_slice(&self.prepared_alpha);
                    self.chain.step(&mut self.alpha, &self.e, &mut self.scratch);
                } else {
                    self.chain.start(&mut self.alpha, &self.e);
                }
                atr_ema_step(p.atr_ema, &bars[w - 1], bars[w - 2].close, &spec.policy)
            }
            None => {
                let rows = self.rows.make_contiguous();
                self.chain.filter(rows, &mut self.alpha, &mut self.scratch);
                (
                    wilder_atr(bars, spec.policy.atr),
                    ema_close(bars, spec.policy.ema),
                )
            }
        };
        let regime = argmax_f64(&self.alpha) as u16;
        let facts = WindowFacts::new(spec, bars, atr, ema, regime);
        self.obs.clear();
        facts.observe(spec, &state.position, &mut self.obs);
        let logits = inference.logits(&self.obs)?;
        let (decision, next) = act(spec, &facts, state, &logits);
        Ok((decision, next, facts))
    }
}
