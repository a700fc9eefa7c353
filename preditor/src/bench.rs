//! `preditor bench`: the in-process figures of BENCHMARKS.md, printed (run it from a release build).
//!
//! Not a test: it measures, it does not assert. Wall-clock figures depend on the machine's load; the
//! instruction counts behind BENCHMARKS.md come from running this same command under
//! `valgrind --tool=callgrind` (see there).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use preditor::backtest;
use preditor::bars::{Bar, read_bars_csv};
use preditor::model::Model;
use preditor::session::{BarOutcome, REPLAY_SPAN, SymbolTwin};
use preditor::twin::{TwinState, VirtualPosition, Window, step};

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        percentile(samples, 1.0)
    )
}

pub fn run(models_dir: &Path, bars_path: &Path, symbols: usize) -> anyhow::Result<()> {
    let mut zips: Vec<PathBuf> = std::fs::read_dir(models_dir)
        .with_context(|| format!("list {}", models_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    if zips.is_empty() {
        bail!("no model zip in {}", models_dir.display());
    }
    let bars = read_bars_csv(bars_path)?;
    let rss0 = rss_kib();

    // Load `symbols` independent models (cycling through the zips when there are fewer).
    let t = Instant::now();
    let mut models = Vec::with_capacity(symbols);
    for i in 0..symbols {
        models.push(Arc::new(Model::load(&zips[i % zips.len()])?));
    }
    let load_ms = ms(t);
    let rss_loaded = rss_kib();
    // The model that belongs to the bars file (by symbol in the file name) for the backtest and the
    // replay-convergence figures; any model for the rest.
    let stem = bars_path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let own = models
        .iter()
        .position(|m| stem.starts_with(&m.symbol))
        .unwrap_or(0);
    let spec = models[own].spec.clone();
    let w = spec.window;
    let warm_len = (w + REPLAY_SPAN).min(bars.len());
    if bars.len() < warm_len + 50 {
        bail!(
            "need at least {} bars, the file has {}",
            warm_len + 50,
            bars.len()
        );
    }

    // Warmup: every twin replays W + REPLAY_SPAN bars from FLAT.
    let mut twins: Vec<SymbolTwin> = models
        .iter()
        .map(|m| SymbolTwin::new(Arc::clone(m), None))
        .collect();
    let t = Instant::now();
    for twin in &mut twins {
        twin.on_history(&bars[..warm_len])?;
    }
    let warm_ms = ms(t);

    // Warmup after a restart with persisted state (the normal case): the history only refills the
    // FIFO, and the one bar missed while down is decided.
    let mut ff: Vec<SymbolTwin> = models
        .iter()
        .map(|m| SymbolTwin::new(Arc::clone(m), None))
        .collect();
    for twin in &mut ff {
        twin.on_history(&bars[..warm_len - 1])?;
    }
    let mut resumed: Vec<SymbolTwin> = ff
        .iter()
        .map(|tw| SymbolTwin::new(Arc::clone(&tw.model), Some(tw.persisted())))
        .collect();
    let t = Instant::now();
    for twin in &mut resumed {
        let out = twin.on_history(&bars[..warm_len])?;
        if out.replayed != 1 {
            bail!("resume replayed {} bars, expected 1", out.replayed);
        }
    }
    let resume_ms = ms(t);
    drop((ff, resumed));

    // One bar across all symbols, as the live loop runs it: every twin decides (the signals' critical
    // path, timed), then every twin prepares its next bar (after the signals are out, timed apart).
    let mut decide_us = Vec::new();
    let mut prepare_us = Vec::new();
    for bar in &bars[warm_len..] {
        let t = Instant::now();
        for twin in &mut twins {
            match twin.on_bar(*bar)? {
                BarOutcome::Decided(_) => {}
                other => bail!("unexpected {other:?}"),
            }
        }
        decide_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        for twin in &mut twins {
            twin.prepare_next();
        }
        prepare_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rss_run = rss_kib();

    // Backtest speed, one model over the whole file.
    let t = Instant::now();
    let (decisions, _) = backtest::run(&spec, models[own].as_ref(), &bars, TwinState::START)?;
    let bt_s = t.elapsed().as_secs_f64();

    let fmt_rss = |v: Option<u64>| {
        v.map_or("n/a".to_string(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "models: {} twins from {} zip(s); bars file {} ({} bars); HMM emissions {}, policy {} ({} rows per call)",
        symbols,
        zips.len(),
        bars_path.display(),
        bars.len(),
        models[own].emission_evaluator(),
        models[own].policy_evaluator(),
        models[own].policy_rows()
    );
    println!(
        "rss: before load {}, {} models loaded {}, after running {}",
        fmt_rss(rss0),
        symbols,
        fmt_rss(rss_loaded),
        fmt_rss(rss_run)
    );
    println!("load {symbols} models: {load_ms:.1} ms");
    println!(
        "warmup {} models, fast-forward from FLAT ({} bars each, {} decisions each): {:.1} ms",
        symbols,
        warm_len,
        warm_len + 1 - w,
        warm_ms
    );
    println!(
        "warmup {symbols} models, resume from persisted state ({warm_len} bars each, 1 missed bar decided): {resume_ms:.1} ms"
    );
    println!(
        "one bar across {} symbols ({} samples), decided: {}; then preparing the next bar (off the signal path): {}",
        symbols,
        decide_us.len(),
        summary(&mut decide_us),
        summary(&mut prepare_us)
    );
    println!(
        "backtest ({}): {} decisions in {:.4} s = {:.0} bars/s",
        models[own].symbol,
        decisions.len(),
        bt_s,
        decisions.len() as f64 / bt_s
    );
    println!(
        "model for the figures below: {}",
        models[own].path.display()
    );
    breakdown(&models[own], &bars)?;
    replay_convergence(&models[own], &bars)?;
    Ok(())
}

/// Mean microseconds of `f` over `n` runs.
fn time_us(n: usize, f: &mut dyn FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Where one decision's time goes, per stage (mean over repeated runs on the last window), and how
/// far the series pass's filters run before they join the previous window's.
fn breakdown(model: &Model, bars: &[Bar]) -> anyhow::Result<()> {
    use preditor::features::{atr_ema_step, hmm_features_at, hmm_observations, policy_features};
    use preditor::hmm::{Chain, forward_filter, scaled_emission_row};
    use std::hint::black_box;
    let spec = &model.spec;
    let window = &bars[bars.len() - spec.window..];
    let n = 2000;
    let k = spec.n_states;
    let full_features = time_us(n, &mut || {
        black_box(policy_features(black_box(window), &spec.policy));
        Ok(())
    })?;
    let last = &window[spec.window - 1];
    let prev = window[spec.window - 2].close;
    let step_features = time_us(n, &mut || {
        black_box(atr_ema_step(
            black_box((0.001, 1.1)),
            last,
            prev,
            &spec.policy,
        ));
        Ok(())
    })?;
    let hmm_row = time_us(n, &mut || {
        black_box(hmm_features_at(window, spec.window - 1, &spec.hmm_periods));
        Ok(())
    })?;
    let x = hmm_observations(window, &spec.hmm_periods, &spec.hmm_mean, &spec.hmm_std);
    let mut log_b = vec![0.0; k];
    let emission_row = time_us(n, &mut || {
        model.log_emission_row(&[x[0], x[1], x[2]], &mut log_b)?;
        black_box(&log_b);
        Ok(())
    })?;
    let e: Vec<f64> = model
        .log_emissions(&x)?
        .chunks(k)
        .flat_map(scaled_emission_row)
        .collect();
    let filter = time_us(n, &mut || {
        black_box(forward_filter(&e, k, &spec.startprob, &spec.transmat));
        Ok(())
    })?;
    let chain = Chain::new(&spec.startprob, &spec.transmat);
    let (mut alpha, mut scratch) = (vec![0.0; k], vec![0.0; k]);
    let filter_step = time_us(n, &mut || {
        chain.step(&mut alpha, &e[..k], &mut scratch);
        black_box(&alpha);
        Ok(())
    })?;
    let obs = vec![0.0f32; spec.obs_dim()];
    let policy = time_us(n, &mut || {
        black_box(model.logits(&obs)?);
        Ok(())
    })?;
    let rows = vec![0.0f32; spec.obs_dim() * model.policy_rows()];
    let mut out = Vec::new();
    let policy_full = time_us(n, &mut || {
        out.clear();
        model.logits_rows(&rows, &mut out)?;
        Ok(())
    })?;
    println!(
        "one decision, per stage: policy features over the window {full_features:.2} us (one step of ATR and EMA {step_features:.3} us), \
         HMM features of one bar {hmm_row:.3} us, HMM emissions of one bar ({}) {emission_row:.3} us, \
         forward filter over the window {filter:.2} us (one step {filter_step:.3} us), \
         policy ({} rows per call) {policy:.2} us per call with 1 row, {policy_full:.2} us with {}",
        model.emission_evaluator(),
        model.policy_rows(),
        model.policy_rows()
    );
    coalescence(&chain, model, bars)?;
    Ok(())
}

/// For consecutive windows of the series, the rows a window's filter runs before its `α` has the bits
/// of the previous window's at the same row (from there on they are the same; `preditor::hmm`
/// `series_regimes`).
fn coalescence(chain: &preditor::hmm::Chain, model: &Model, bars: &[Bar]) -> anyhow::Result<()> {
    let spec = &model.spec;
    let (k, s) = (spec.n_states, spec.hmm_len());
    let x = preditor::features::hmm_observations(
        bars,
        &spec.hmm_periods,
        &spec.hmm_mean,
        &spec.hmm_std,
    );
    let e: Vec<f64> = model
        .log_emissions(&x)?
        .chunks(k)
        .flat_map(preditor::hmm::scaled_emission_row)
        .collect();
    let rows = e.len() / k;
    let trajectory = |start: usize| -> Vec<Vec<f64>> {
        let (mut a, mut scratch) = (vec![0.0; k], vec![0.0; k]);
        chain.start(&mut a, &e[start * k..(start + 1) * k]);
        let mut out = vec![a.clone()];
        for r in start + 1..start + s {
            chain.step(&mut a, &e[r * k..(r + 1) * k], &mut scratch);
            out.push(a.clone());
        }
        out
    };
    let mut lengths = Vec::new();
    let mut never = 0;
    let windows = rows.saturating_sub(s);
    for w in 1..windows.min(2000) {
        let (before, this) = (trajectory(w - 1), trajectory(w));
        match (0..s - 1).find(|&i| {
            this[i]
                .iter()
                .zip(&before[i + 1])
                .all(|(a, b)| a.to_bits() == b.to_bits())
        }) {
            Some(i) => lengths.push(i as f64 + 1.0),
            None => never += 1,
        }
    }
    let mean = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
    lengths.sort_by(f64::total_cmp);
    println!(
        "series pass: a window's filter joins the previous window's after {mean:.1} rows on average (p99 {:.0}, max {:.0}, never {never}) of {s}, over {} windows",
        percentile(&lengths, 0.99),
        percentile(&lengths, 1.0),
        lengths.len() + never
    );
    Ok(())
}

/// How many bars a replay from FLAT needs before its position equals the backtest's from the series
/// start. Once the positions (direction, intensity, entry) are equal after some bar, every later
/// decision is equal too (the observation depends on the window and the position only).
fn replay_convergence(model: &Model, bars: &[Bar]) -> anyhow::Result<()> {
    let spec = &model.spec;
    let w = spec.window;
    // Positions after each decision of the backtest from the series start.
    let mut reference: Vec<VirtualPosition> = Vec::new();
    let mut state = TwinState::START;
    for end in w..=bars.len() {
        let win = Window::new(&bars[end - w..end], spec)?;
        let (_, next) = step(model, &win, &state)?;
        reference.push(next.position);
        state = next;
    }
    let n = reference.len();
    let starts: Vec<usize> = (1..20).map(|k| k * n / 20).collect();
    let mut lags = Vec::new();
    for &s in &starts {
        let mut state = TwinState::START;
        let mut lag = None;
        for (i, end) in (s + w..=bars.len()).enumerate() {
            let win = Window::new(&bars[end - w..end], spec)?;
            let (_, next) = step(model, &win, &state)?;
            state = next;
            if state.position == reference[s + i] {
                lag = Some(i + 1);
                break;
            }
        }
        lags.push(lag);
    }
    let converged: Vec<usize> = lags.iter().flatten().copied().collect();
    println!(
        "replay-from-FLAT convergence over {} start points: bars until identical position: max {:?}, all {:?}{}",
        starts.len(),
        converged.iter().max(),
        lags,
        if converged.len() < lags.len() {
            " (None = never within the file)"
        } else {
            ""
        }
    );
    Ok(())
}
