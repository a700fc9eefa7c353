//! One symbol's live twin without I/O: warmup from HISTORY, resume from persisted state, per-bar step.
//!
//! The async shell ([`crate::live`]) feeds it bars and persists/sends what it returns, so every rule
//! about which bars are decided, replayed or skipped lives here and is testable without a socket.

use std::sync::Arc;

use protocol::Timeframe;

use crate::bars::{Bar, BarError, format_time};
use crate::fifo::{BarFifo, FifoError, Push};
use crate::live_window::LiveWindow;
use crate::model::{InferenceError, Model};
use crate::state::{PersistedState, StateError, StateStore};
use crate::twin::{Decision, TwinState, Window};

/// Bars replayed from FLAT before the first live decision when there is no usable persisted state.
///
/// Why 1000: a replay from FLAT and a backtest from the series start decide identically from the first
/// bar at which their virtual positions (direction, intensity, entry) coincide, because the observation
/// depends only on the window and the position. `preditor bench` measures that lag from 19 start points
/// spread over a 5000-bar file; on the demo models with their own bars the longest lag seen was 256 bars
/// (GBPUSD; EURUSD 55, XAUUSD 80, US500 63), and 506 for a model run on another symbol's bars. 1000 bars
/// keeps about 4x margin over the matched worst case; the cost is paid only when no state exists
/// (~3 s for 20 models in a release build; a resume from state replays only the missed bars).
/// The realised PnL of a fast-forward starts at 0: only the position is reconstructed.
pub const REPLAY_SPAN: usize = 1000;

/// The wall clock in Unix seconds, injected so tests can stand at any time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The machine's clock (the one the executor publishes bars by).
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

/// How the twin starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// A persisted state for this model: continue after its last bar.
    Resume,
    /// No state (or one for another model): replay the fetched history from FLAT.
    FastForward,
}

/// What a HISTORY block produced.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryOutcome {
    pub mode: StartMode,
    /// Decisions taken while consuming the history.
    pub replayed: usize,
    /// Decided bars that lie beyond the history's reach (a resume after a very long outage).
    pub unreachable_gap: bool,
    /// Signals to send now: the missed bars after a resume (or a resend of the last decision when
    /// nothing was missed, which the executor deduplicates by `B:`), or the last decision of a
    /// fast-forward warmup.
    pub signals: Vec<Decision>,
}

/// What a live bar produced.
#[derive(Debug, Clone, PartialEq)]
pub enum BarOutcome {
    /// Decided: persist the new state, then send the signal.
    Decided(Decision),
    /// Stored; fewer than `W` bars so far.
    WarmingUp { have: usize, need: usize },
    /// Already decided before (a resend after reconnect); nothing to do.
    AlreadyDecided,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Fifo(#[from] FifoError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// One symbol's twin: model, FIFO, state.
pub struct SymbolTwin {
    pub model: Arc<Model>,
    /// The model's timeframe (`None` for a name that is not one: then only the bar itself is
    /// checked, not its time).
    timeframe: Option<Timeframe>,
    fifo: BarFifo,
    state: TwinState,
    mode: StartMode,
    /// Cached emission rows and the next bar's prepared recursions.
    live: LiveWindow,
    clock: Clock,
}

impl std::fmt::Debug for SymbolTwin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymbolTwin")
            .field("symbol", &self.model.symbol)
            .field("state", &self.state)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl SymbolTwin {
    /// The twin of `model` from what `store` holds for it, checked against `clock`: a state of
    /// this model that no twin could be in (an intensity of 9, a last bar in 2099, a PnL of
    /// 1e300) or a corrupt file is an error, and the caller holds the symbol rather than start
    /// it from FLAT: the broker may hold the position that state describes.
    pub fn open(model: Arc<Model>, store: &StateStore, clock: Clock) -> Result<Self, StateError> {
        let persisted = store.load(&model.symbol, &model.timeframe)?;
        if let Some(p) = &persisted
            && p.model_fingerprint == model.fingerprint
        {
            p.check(&model.symbol, &model.timeframe, &model.spec, clock())
                .map_err(|problem| StateError::Invalid {
                    path: store.path_for(&model.symbol, &model.timeframe),
                    problem,
                })?;
        }
        Ok(Self::new(model, persisted).with_clock(clock))
    }

    /// Judges bar times by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks a bar from the executor (live or history) before it is used: [`Bar::validate_at`]
    /// the clock, and in phase with the bars already held (a bar off the grid of the others is
    /// not one of this series).
    pub fn check_bar(&self, bar: &Bar) -> Result<(), BarError> {
        match self.timeframe {
            Some(tf) => bar.validate_at(tf, (self.clock)())?,
            None => bar.validate()?,
        }
        if let (Some(tf), Some(last)) = (self.bar_secs(), self.fifo.last())
            && (bar.time - last.time).rem_euclid(tf) != 0
        {
            return Err(BarError::Time {
                time: format_time(bar.time),
                why: format!(
                    "off the grid of the bars held (the last opened at {}, every {tf} s)",
                    format_time(last.time)
                ),
            });
        }
        Ok(())
    }

    /// Room to reserve for a HISTORY block announcing `count` bars: never more than a WARMUP
    /// asks for, whatever the announcement says (`u32::MAX` once asked for 206 GB).
    pub fn history_capacity(&self, count: u32) -> usize {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.warmup_count())
    }

    /// Starts from a persisted state when it belongs to this model, otherwise from FLAT. The state
    /// is trusted as it is: [`SymbolTwin::open`] checks it first.
    pub fn new(model: Arc<Model>, persisted: Option<PersistedState>) -> Self {
        let (state, mode) = match persisted {
            Some(p)
                if p.model_fingerprint == model.fingerprint && p.twin.last_bar_time.is_some() =>
            {
                (p.twin, StartMode::Resume)
            }
            _ => (TwinState::START, StartMode::FastForward),
        };
        let timeframe = model.timeframe.parse::<Timeframe>().ok();
        let bar_secs = timeframe
            .and_then(|tf| tf.duration_secs())
            .and_then(|s| i64::try_from(s).ok());
        let fifo = BarFifo::new(model.spec.window, bar_secs);
        let live = LiveWindow::new(&model.spec);
        Self {
            live,
            model,
            timeframe,
            fifo,
            state,
            mode,
            clock: system_clock(),
        }
    }

    /// A bar's fixed length in seconds (`None` for MN1, whose months differ).
    fn bar_secs(&self) -> Option<i64> {
        self.timeframe?.duration_secs()?.try_into().ok()
    }

    pub fn state(&self) -> &TwinState {
        &self.state
    }

    pub fn mode(&self) -> StartMode {
        self.mode
    }

    /// The record to persist for the current state.
    pub fn persisted(&self) -> PersistedState {
        PersistedState {
            symbol: self.model.symbol.clone(),
            timeframe: self.model.timeframe.clone(),
            model_fingerprint: self.model.fingerprint.clone(),
            twin: self.state,
        }
    }

    /// Bars to ask for with WARMUP: the window plus the replay span.
    pub fn warmup_count(&self) -> usize {
        self.model.spec.window + REPLAY_SPAN
    }

    /// Consumes a HISTORY block (oldest first). Rebuilds the FIFO; decides every bar after the
    /// persisted last bar (resume) or every decidable bar from FLAT (fast-forward).
    pub fn on_history(&mut self, bars: &[Bar]) -> Result<HistoryOutcome, SessionError> {
        self.fifo.clear();
        self.live.clear();
        let w = self.model.spec.window;
        let mut decided = Vec::new();
        let last_done = self.state.last_bar_time;
        let mut unreachable_gap = false;
        // The last bar that cannot be decided (the window before it is not full yet).
        if let (Some(t), Some(undecidable), Some(first_decidable)) =
            (last_done, bars.get(w.saturating_sub(2)), bars.get(w - 1))
            && t < undecidable.time
        {
            // Bars between the persisted one and the first we can decide are lost for good.
            unreachable_gap = true;
            tracing::warn!(
                symbol = %self.model.symbol,
                last_decided = %format_time(t),
                first_decidable = %format_time(first_decidable.time),
                "missed more bars than the history holds; resuming from the persisted state"
            );
        }
        // The FIFO takes the bars in order (a repeated bar is skipped); a bar is decided once its window
        // is full and if it lies after the persisted last bar. The decided bars are a suffix of the
        // accepted ones (times increase), replayed in one pass (crate::series).
        let mut accepted = Vec::with_capacity(bars.len());
        let mut refused = None;
        for bar in bars {
            match self.fifo.push(*bar) {
                Ok(_) => accepted.push(*bar),
                Err(FifoError::Duplicate { .. }) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let first_end = accepted
            .iter()
            .position(|b| last_done.is_none_or(|t| b.time > t))
            .unwrap_or(accepted.len())
            .max(w - 1);
        let model = Arc::clone(&self.model);
        let rows = crate::series::run(
            &model.spec,
            model.as_ref(),
            &accepted,
            first_end,
            &mut self.state,
            &mut decided,
        )?;
        if let Some(e) = refused {
            return Err(e.into());
        }
        // The last window's rows from the pass, and the first live bar's recursions prepared.
        let (s, k) = (model.spec.hmm_len(), model.spec.n_states);
        let reaches_the_end = rows.rows.len() == accepted.len().saturating_sub(rows.first_bar) * k;
        if self.fifo.is_full() && reaches_the_end && rows.first_bar + s <= accepted.len() {
            let from = (accepted.len() - s - rows.first_bar) * k;
            self.live
                .seed(&model.spec, self.fifo.as_slice(), &rows.rows[from..]);
        }
        self.prepare_next();
        let signals = match self.mode {
            StartMode::Resume if decided.is_empty() => {
                self.state.last_decision().into_iter().collect()
            }
            StartMode::Resume => decided.clone(),
            StartMode::FastForward => decided.last().copied().into_iter().collect(),
        };
        let outcome = HistoryOutcome {
            mode: self.mode,
            replayed: decided.len(),
            unreachable_gap,
            signals,
        };
        // After the first history the twin is live; a reconnect resumes from its own state.
        if self.state.last_bar_time.is_some() {
            self.mode = StartMode::Resume;
        }
        Ok(outcome)
    }

    /// One live bar.
    pub fn on_bar(&mut self, bar: Bar) -> Result<BarOutcome, SessionError> {
        if self.state.last_bar_time.is_some_and(|t| bar.time <= t) {
            return Ok(BarOutcome::AlreadyDecided);
        }
        if let Push::Gap {
            missing_from,
            missing_secs,
        } = self.fifo.push(bar)?
        {
            tracing::info!(
                symbol = %self.model.symbol,
                from = %format_time(missing_from),
                missing_secs,
                "gap in bars (market closed or outage); accepted"
            );
        }
        if !self.fifo.is_full() {
            return Ok(BarOutcome::WarmingUp {
                have: self.fifo.len(),
                need: self.model.spec.window,
            });
        }
        Ok(BarOutcome::Decided(self.decide()?))
    }

    /// Runs the next bar's recursions ahead (see [`LiveWindow`]); call it once the current bar's signal
    /// is out. Skipping it costs only time on the next bar.
    pub fn prepare_next(&mut self) {
        if !self.fifo.is_full() {
            return;
        }
        let window = self.fifo.as_slice();
        if let Err(e) = self
            .live
            .prepare(&self.model.spec, self.model.as_ref(), window)
        {
            tracing::warn!(symbol = %self.model.symbol, error = %e, "preparing the next bar failed; it will be computed in full");
        }
    }

    fn decide(&mut self) -> Result<Decision, SessionError> {
        let bars = self.fifo.as_slice();
        let window = match Window::new(bars, &self.model.spec) {
            Ok(w) => w,
            Err(e) => unreachable!("the FIFO is full: {e}"),
        };
        let (decision, next, _) =
            self.live
                .decide(&self.model.spec, self.model.as_ref(), &window, &self.state)?;
        self.state = next;
        Ok(decision)
    }
}
