//! Operator commands: the config reload (SIGHUP) and the kill switch (the preditor's control
//! line). Each reaches the books through [`Core::command`], whatever asked for it.

use protocol::{ErrorCode, ErrorLine, Line};

use super::Core;
use super::event::{Command, CommandOutcome, CommandRequest};
use super::sink::Report;
use crate::broker::Broker;
use crate::config::ExecutorConfig;

impl<B: Broker> Core<B> {
    pub(super) fn on_command(&mut self, req: CommandRequest) {
        let outcome = self.command(req.command);
        if let Some(reply) = req.reply {
            let _ = reply.send(outcome);
        }
    }

    /// `CONTROL|KILL_SWITCH|ON` / `OFF` from the preditor; anything else is refused. The preditor
    /// is told when the switch could not be kept (it would not survive a restart).
    pub(super) fn on_control(&mut self, text: &str) {
        let on = match text {
            "KILL_SWITCH|ON" => true,
            "KILL_SWITCH|OFF" => false,
            _ => {
                self.preditor.send(&Line::Error(ErrorLine::new(
                    ErrorCode::Malformed,
                    "control lines are CONTROL|KILL_SWITCH|ON and CONTROL|KILL_SWITCH|OFF",
                )));
                return;
            }
        };
        tracing::warn!(on, "kill switch set by control line");
        if let CommandOutcome::Failed(why) = self.command(Command::KillSwitch { on }) {
            self.preditor
                .send(&Line::Error(ErrorLine::new(ErrorCode::Internal, why)));
        }
    }

    /// Carries out one command.
    pub(super) fn command(&mut self, command: Command) -> CommandOutcome {
        match command {
            Command::Reload => {
                self.report(Report::Reloading);
                let outcome = self.reload();
                let status = self.status_line();
                self.report(Report::Ready(&status));
                self.status = status;
                outcome
            }
            Command::KillSwitch { on } => {
                // Kept in each desk's file and the journal, so a restart does not forget it. In
                // force at once even if it cannot be saved.
                let now = self.clock.now();
                let failed = self.books.set_kill_switch(on, now);
                if failed.is_empty() {
                    return CommandOutcome::Done;
                }
                tracing::error!(on, errors = ?failed, "kill switch set but not saved: a restart would forget it");
                CommandOutcome::Failed(format!(
                    "kill switch set in memory but not saved (a restart would forget it): {}",
                    failed.join("; ")
                ))
            }
        }
    }

    /// A valid new config replaces symbols, risk limits and staleness; an invalid one is refused
    /// with its problems logged and the running config kept. Broker, IPC and directories need a
    /// restart (a warning says so when they changed).
    fn reload(&mut self) -> CommandOutcome {
        let loaded = ExecutorConfig::load(&self.cfg.path).map(ExecutorConfig::with_model_defaults);
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running config");
                return CommandOutcome::Failed(format!(
                    "config reload refused, the running config is kept: {e}"
                ));
            }
        };
        if new.broker != self.cfg.broker
            || new.ipc != self.cfg.ipc
            || new.http != self.cfg.http
            || new.state_dir != self.cfg.state_dir
            || new.log_dir != self.cfg.log_dir
            || new.hub != self.cfg.hub
        {
            tracing::warn!(
                "broker/ipc/http/hub/state_dir/log_dir changes need a restart; they are not applied"
            );
        }
        self.cfg.symbols = new.symbols;
        self.cfg.risk = new.risk;
        self.cfg.stale_signal_max_age_secs = new.stale_signal_max_age_secs;
        self.cfg.models_dir = new.models_dir;
        self.cfg.notes = new.notes;
        // What operator commands set (the settings overlay) goes on top again, then to the books.
        self.apply_overlay();
        tracing::info!(symbols = self.cfg.symbols.len(), "config reloaded");
        CommandOutcome::Done
    }
}
