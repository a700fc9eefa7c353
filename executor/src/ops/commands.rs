//! Operator commands as pure logic: which command runs, which is answered at once, and what a
//! command that runs changes. No I/O and no clock of its own: the core loop gathers a [`View`] of
//! the executor, asks [`CommandDesk::decide`], journals a command that runs *before* it acts,
//! applies its [`Effect`], and hands the answer back to [`CommandDesk::finish`].
//!
//! The rules (docs/OPERATIONS.md, "Operator commands"):
//! - a command id answered before gets the same answer again and is never run twice — a refusal
//!   included, and across restarts (the journal keeps the answers; a command a crash cut short is
//!   answered as interrupted);
//! - field ranges first ([`fleet::Command::validate`]), then what needs the executor: a symbol it
//!   does not trade, a book it does not run, a lot size the symbol's volume rules cannot trade;
//! - the kill switch (the KILL file or the control line) wins: Resume is refused while it is on,
//!   and nothing a command changes can open a position past it (the risk guard checks it on every
//!   open);
//! - Flatten asks for a confirmation first ([`fleet::Confirmations`]): a fat finger cannot flatten;
//! - Status answers from the state in force and is neither journaled nor remembered (it changes
//!   nothing, and a monitor polling it must not fill the journal).

use std::collections::{BTreeMap, HashMap, VecDeque};

use ctrader::domain::SymbolVolume;
use fleet::{
    Books, Command, CommandId, CommandResult, Confirmations, Gate, Nonce, Refusal, RefusalCode,
};
use protocol::Symbol;

use crate::config::SymbolConfig;

/// How many answered command ids are remembered (in memory; the journal keeps
/// [`crate::journal::COMMANDS_KEPT`] across rotations).
pub const ANSWERS_KEPT: usize = 1024;
/// Flatten confirmations pending at once, and how long a nonce stays valid.
pub const CONFIRMATIONS_PENDING: usize = 16;
pub const CONFIRMATION_TTL_MS: i64 = 60_000;

/// What the checks of a command need to know about the running executor, gathered by the caller.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The symbols in force (config file with the overlay applied).
    pub symbols: &'a BTreeMap<Symbol, SymbolConfig>,
    /// Each symbol's volume rules at the live broker (empty in paper mode, where the paper book
    /// takes any lot size the config accepts).
    pub volume_rules: &'a BTreeMap<Symbol, SymbolVolume>,
    /// Books this executor runs.
    pub live: bool,
    pub paper: bool,
    pub kill: KillSwitch,
    pub paused: bool,
    /// Unix milliseconds (confirmation expiry).
    pub now_ms: i64,
}

/// The two kill switches (either one refuses every open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KillSwitch {
    /// `risk.kill_switch_file` exists.
    pub file: bool,
    /// `CONTROL|KILL_SWITCH|ON` is in force.
    pub control: bool,
}

impl KillSwitch {
    pub fn on(self) -> bool {
        self.file || self.control
    }
}

/// What a command that runs does, for the core loop to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Pause,
    Resume,
    /// Pause, then close every position of `symbols` (every configured symbol when `None`) in
    /// `books`. Nothing is reopened.
    Flatten {
        symbol: Option<Symbol>,
        books: Books,
    },
    /// SetLots, SetEnabled or SetRiskLimits: the overlay changes (`crate::ops::overlay`).
    Settings(Command),
    Reload,
    Status,
}

/// The answer to a command, or what to run for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing runs: send this answer (already remembered under the command's id when it should be).
    Answer(CommandResult),
    /// Journal the command, apply this, then call [`CommandDesk::finish`] with the answer.
    Run(Effect),
}

/// Remembers answered command ids and pending Flatten confirmations.
#[derive(Debug)]
pub struct CommandDesk {
    answers: HashMap<CommandId, CommandResult>,
    order: VecDeque<CommandId>,
    confirmations: Confirmations,
}

impl Default for CommandDesk {
    fn default() -> Self {
        Self {
            answers: HashMap::new(),
            order: VecDeque::new(),
            confirmations: Confirmations::new(CONFIRMATIONS_PENDING, CONFIRMATION_TTL_MS),
        }
    }
}

/// The answer a command gets when a crash cut it short (journaled, never answered).
pub fn interrupted() -> CommandResult {
    CommandResult::Refused(Refusal::new(
        RefusalCode::Failed,
        "interrupted by a restart before it finished; it is not run again: check `executor ctl status`",
    ))
}

impl CommandDesk {
    /// From the journal's `command` and `command_result` entries, oldest first: every id with its
    /// answer, or [`interrupted`] when it has none.
    pub fn restore<'a>(
        commands: impl IntoIterator<Item = (&'a CommandId, Option<&'a CommandResult>)>,
    ) -> Self {
        let mut desk = Self::default();
        for (id, result) in commands {
            desk.remember(id, result.cloned().unwrap_or_else(interrupted));
        }
        desk
    }

    /// Whether `id` was answered before (the hub's replay check uses it too).
    pub fn seen(&self, id: &CommandId) -> bool {
        self.answers.contains_key(id)
    }

    /// Decides a command. `fresh_nonce` is called only when a Flatten needs its confirmation.
    pub fn decide(
        &mut self,
        id: &CommandId,
        command: &Command,
        confirm: Option<&Nonce>,
        view: &View<'_>,
        fresh_nonce: impl FnOnce() -> Nonce,
    ) -> Step {
        if let Some(answer) = self.answers.get(id) {
            return Step::Answer(answer.clone());
        }
        if let Err(refusal) = command.validate().and_then(|()| check(command, view)) {
            let answer = CommandResult::Refused(refusal);
            self.remember(id, answer.clone());
            return Step::Answer(answer);
        }
        match self
            .confirmations
            .gate(command, confirm, view.now_ms, fresh_nonce)
        {
            Gate::Answer(answer) => {
                self.remember(id, answer.clone());
                Step::Answer(answer)
            }
            Gate::Execute => Step::Run(effect(command, view)),
        }
    }

    /// Records the answer of a command that ran (Status is not remembered: it changes nothing).
    pub fn finish(&mut self, id: &CommandId, command: &Command, answer: &CommandResult) {
        if !matches!(command, Command::Status) {
            self.remember(id, answer.clone());
        }
    }

    fn remember(&mut self, id: &CommandId, answer: CommandResult) {
        if self.answers.insert(id.clone(), answer).is_none() {
            self.order.push_back(id.clone());
        }
        while self.order.len() > ANSWERS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// Whether a command is journaled before it acts (all but Status).
pub fn journaled(command: &Command) -> bool {
    !matches!(command, Command::Status)
}

fn effect(command: &Command, view: &View<'_>) -> Effect {
    match command {
        Command::Pause => Effect::Pause,
        Command::Resume => Effect::Resume,
        Command::Flatten { symbol, books } => Effect::Flatten {
            symbol: symbol.clone(),
            books: effective_books(*books, view),
        },
        Command::SetLots { .. } | Command::SetEnabled { .. } | Command::SetRiskLimits(_) => {
            Effect::Settings(command.clone())
        }
        Command::Reload => Effect::Reload,
        Command::Status => Effect::Status,
    }
}

/// `all` names the books this executor runs; one it does not run was refused by [`check`].
fn effective_books(books: Books, view: &View<'_>) -> Books {
    match (books, view.live, view.paper) {
        (Books::All, true, false) => Books::Live,
        (Books::All, false, true) => Books::Paper,
        (b, _, _) => b,
    }
}

/// The checks that need the executor's state; the refusal names the field.
fn check(command: &Command, view: &View<'_>) -> Result<(), Refusal> {
    let known = |symbol: &Symbol| -> Result<&SymbolConfig, Refusal> {
        view.symbols.get(symbol).ok_or_else(|| Refusal {
            code: RefusalCode::UnknownSymbol,
            field: Some("symbol".into()),
            message: format!(
                "{symbol} is not in this executor's config (it trades {}); add it to the config and reload",
                list(view.symbols.keys())
            ),
        })
    };
    match command {
        Command::Resume if view.kill.on() => Err(Refusal::new(
            RefusalCode::KillSwitch,
            format!(
                "the kill switch is on ({}): it wins over Resume; remove it first, then resume",
                match (view.kill.file, view.kill.control) {
                    (true, true) => "the KILL file and the control line",
                    (true, false) => "the KILL file",
                    _ => "set by CONTROL|KILL_SWITCH|ON",
                }
            ),
        )),
        Command::Flatten { symbol, books } => {
            if let Some(s) = symbol {
                known(s)?;
            }
            let missing = match books {
                Books::Live if !view.live => Some("live"),
                Books::Paper if !view.paper => Some("paper"),
                _ => None,
            };
            match missing {
                Some(b) => Err(Refusal::field(
                    "books",
                    format!(
                        "this executor runs no {b} book (books: {}); use books={} or all",
                        running(view),
                        running(view)
                    ),
                )),
                None => Ok(()),
            }
        }
        Command::SetLots {
            symbol,
            lot_weak,
            lot_moderate,
            lot_strong,
        } => {
            known(symbol)?;
            if let Some(rules) = view.volume_rules.get(symbol) {
                for (field, lots) in [
                    ("lot_weak", *lot_weak),
                    ("lot_moderate", *lot_moderate),
                    ("lot_strong", *lot_strong),
                ] {
                    tradable(symbol, field, lots, rules)?;
                }
            }
            Ok(())
        }
        Command::SetEnabled { symbol, .. } => known(symbol).map(|_| ()),
        _ => Ok(()),
    }
}

/// A lot size the broker takes exactly: within the symbol's min and max, on its step.
fn tradable(symbol: &Symbol, field: &str, lots: f64, rules: &SymbolVolume) -> Result<(), Refusal> {
    let range = format!(
        "{symbol} trades {} to {} lots in steps of {}",
        rules.volume_to_lots(rules.min_volume),
        rules.volume_to_lots(rules.max_volume),
        rules.volume_to_lots(rules.step_volume)
    );
    match rules.lots_to_volume(lots) {
        Err(e) => Err(Refusal::field(field, format!("{e}; {range}"))),
        Ok(v) if (rules.volume_to_lots(v) - lots).abs() > 1e-9 => Err(Refusal::field(
            field,
            format!(
                "{lots} lots is not on the volume step (the broker would trade {}); {range}",
                rules.volume_to_lots(v)
            ),
        )),
        Ok(_) => Ok(()),
    }
}

fn running(view: &View<'_>) -> &'static str {
    match (view.live, view.paper) {
        (true, true) => "live, paper",
        (true, false) => "live",
        _ => "paper",
    }
}

fn list<'a>(symbols: impl Iterator<Item = &'a Symbol>) -> String {
    let names: Vec<&str> = symbols.map(Symbol::as_str).take(24).collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(" ")
    }
}

#[cfg(test)]
mod tests;
