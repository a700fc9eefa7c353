//! `preditor bench`: the figures of DESIGN.md §8, printed (run it from a release build).
//!
//! Not a test: it measures, it does not assert.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use preditor::backtest;
use preditor::bars::read_bars_csv;
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
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
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
    let warm_ms = t.elapsed().as_secs_f64() * 1e3;

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
    let resume_ms = t.elapsed().as_secs_f64() * 1e3;
    drop((ff, resumed));

    // One bar across all symbols.
    let mut per_bar_us = Vec::new();
    for bar in &bars[warm_len..] {
        let t = Instant::now();
        for twin in &mut twins {
            match twin.on_bar(*bar)? {
                BarOutcome::Decided(_) => {}
                other => bail!("unexpected {other:?}"),
            }
        }
        per_bar_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rss_run = rss_kib();
    per_bar_us.sort_by(f64::total_cmp);

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
        "models: {} twins from {} zip(s); bars file {} ({} bars)",
        symbols,
        zips.len(),
        bars_path.display(),
        bars.len()
    );
    println!(
        "rss: before load {}, {} models loaded {}, after running {}",
        fmt_rss(rss0),
        symbols,
        fmt_rss(rss_loaded),
        fmt_rss(rss_run)
    );
    println!("load {} models: {:.1} ms", symbols, load_ms);
    println!(
        "warmup {} models, fast-forward from FLAT ({} bars each, {} decisions each): {:.1} ms",
        symbols,
        warm_len,
        warm_len + 1 - w,
        warm_ms
    );
    println!(
        "warmup {} models, resume from persisted state ({} bars each, 1 missed bar decided): {:.1} ms",
        symbols, warm_len, resume_ms
    );
    println!(
        "one bar across {} symbols ({} samples): p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        symbols,
        per_bar_us.len(),
        percentile(&per_bar_us, 0.5),
        percentile(&per_bar_us, 0.99),
        percentile(&per_bar_us, 1.0)
    );
    println!(
        "backtest ({}): {} decisions in {:.3} s = {:.0} bars/s",
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

/// Where one decision's time goes (mean over repeated runs on the last window).
fn breakdown(model: &Model, bars: &[preditor::bars::Bar]) -> anyhow::Result<()> {
    use preditor::features::{hmm_observations, policy_features};
    use preditor::hmm::{forward_filter, scaled_emission_row};
    let spec = &model.spec;
    let window = &bars[bars.len() - spec.window..];
    let n = 300;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            f()?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    let feats = time(&mut || {
        std::hint::black_box(policy_features(std::hint::black_box(window), &spec.policy));
        Ok(())
    })?;
    let mut x = Vec::new();
    let hmm_x = time(&mut || {
        x = hmm_observations(window, &spec.hmm_periods, &spec.hmm_mean, &spec.hmm_std);
        Ok(())
    })?;
    let mut e = Vec::new();
    let emis = time(&mut || {
        e = model.log_emissions(&x)?;
        Ok(())
    })?;
    let mut scaled = Vec::new();
    let scale = time(&mut || {
        scaled = e
            .chunks(spec.n_states)
            .flat_map(scaled_emission_row)
            .collect();
        Ok(())
    })?;
    let filt = time(&mut || {
        std::hint::black_box(forward_filter(
            &scaled,
            spec.n_states,
            &spec.startprob,
            &spec.transmat,
        ));
        Ok(())
    })?;
    let obs = vec![0.0f32; spec.obs_dim()];
    let pol = time(&mut || {
        std::hint::black_box(model.logits(&obs)?);
        Ok(())
    })?;
    println!(
        "one decision: policy features {feats:.1} us, HMM features {hmm_x:.1} us, HMM emissions (tract) {emis:.1} us, scaled emissions e_s (all rows; cached per bar live) {scale:.1} us, forward filter {filt:.1} us, policy (tract) {pol:.1} us"
    );
    Ok(())
}

/// How many bars a replay from FLAT needs before its position equals the backtest's from the series
/// start. Once the positions (direction, intensity, entry) are equal after some bar, every later
/// decision is equal too (the observation depends on the window and the position only).
fn replay_convergence(model: &Model, bars: &[preditor::bars::Bar]) -> anyhow::Result<()> {
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
