//! What a desk must not forget across restarts, and where it is kept.
//!
//! The loss limits are measured from reference points (the initial balance, the trading day's
//! starting equity) and the control line's kill switch is a decision an operator took: losing
//! either silently would defeat the limits (delete the file, restart, and the day's loss starts
//! again from zero). So they are kept twice: in `<book>_desk.json` (atomic writes) and as a `guard`
//! entry in the journal, fsynced, every time they change. At startup:
//!
//! | desk file | journal's last guard | outcome |
//! |---|---|---|
//! | valid | any | the file, unless the journal's is newer (a later trading day, or written after a crash cut the file's save short); a kill switch set in either stays set |
//! | missing | present | restored from the journal (logged), and the file written again |
//! | missing | none, but the book has journal entries | refused: the baseline is lost (restore the file from a backup) |
//! | missing | none, and no entry of the book | first start: the baseline is taken from the account |
//! | corrupt | any | refused (restore it from a backup, or move it aside to restore from the journal) |

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::desk::risk::RiskState;
use crate::desk::{Desk, DeskError};
use crate::journal::{Entry, Journal};
use crate::orders::{Book, Leg};
use crate::state;

/// What a desk persists besides its broker's own state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeskState {
    pub risk: Option<RiskState>,
    /// Realised PnL per symbol from this desk's closing fills, account currency.
    pub realized: BTreeMap<String, f64>,
    /// Set by `CONTROL|KILL_SWITCH|ON`, cleared by `OFF`: no new opens until then, restarts
    /// included.
    #[serde(default)]
    pub kill_switch: bool,
}

/// The part of a desk's state the risk limits depend on (a journal `guard` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub risk: Option<RiskState>,
    pub kill_switch: bool,
}

impl Guard {
    pub fn of(state: &DeskState) -> Guard {
        Guard {
            risk: state.risk.clone(),
            kill_switch: state.kill_switch,
        }
    }

    fn entry(&self, book: Book, now: DateTime<Utc>) -> Entry {
        Entry::Guard {
            t: now,
            book,
            risk: self.risk.clone(),
            kill_switch: self.kill_switch,
        }
    }
}

/// The last `guard` entry of `book`, and whether the book ever journaled an open. An open needs
/// the risk guard's approval, hence a baseline, and the desk journals a new baseline ahead of the
/// first intent that relies on it: an open without any guard entry means the baseline was lost
/// (or kept only by a version that did not journal it).
pub fn last_guard(entries: &[Entry], book: Book) -> (Option<Guard>, bool) {
    let mut last = None;
    let mut opened = false;
    for e in entries {
        match e {
            Entry::Guard {
                book: b,
                risk,
                kill_switch,
                ..
            } if *b == book => {
                last = Some(Guard {
                    risk: risk.clone(),
                    kill_switch: *kill_switch,
                });
            }
            Entry::Intent {
                book: b,
                leg: Leg::Open,
                ..
            } if *b == book => opened = true,
            _ => {}
        }
    }
    (last, opened)
}

/// How a desk starts, from its file (`None` when missing) and its journal (see the module table).
#[derive(Debug, Clone, PartialEq)]
pub enum Restore {
    /// Keep what the file holds.
    File,
    /// Take this from the journal (the file is missing, or older).
    Journal(Guard),
    /// Nothing was ever kept: a first start.
    Fresh,
    /// The book ran before, but neither the file nor the journal has its baseline.
    Lost,
}

/// The rule of the module table, without I/O.
pub fn restore(file: Option<&DeskState>, journal: Option<&Guard>, book_has_run: bool) -> Restore {
    match (file, journal) {
        (Some(f), Some(j)) => {
            let newer_day = match (&f.risk, &j.risk) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b.day > a.day,
                _ => false,
            };
            if newer_day || (j.kill_switch && !f.kill_switch) {
                // A kill switch set in either stays set: clearing it is a deliberate OFF, which
                // writes both.
                Restore::Journal(Guard {
                    risk: if newer_day {
                        j.risk.clone()
                    } else {
                        f.risk.clone()
                    },
                    kill_switch: f.kill_switch || j.kill_switch,
                })
            } else {
                Restore::File
            }
        }
        (Some(_), None) => Restore::File,
        (None, Some(j)) => Restore::Journal(j.clone()),
        (None, None) if book_has_run => Restore::Lost,
        (None, None) => Restore::Fresh,
    }
}

impl<B: Broker> Desk<B> {
    /// Startup, before any signal: the risk baseline and kill switch from the file or the journal
    /// (module table). Refuses to start when the book ran before and its baseline is lost; writes
    /// whatever one copy lacks so both hold it again.
    pub fn restore_guard(
        &mut self,
        entries: &[Entry],
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<(), DeskError> {
        let (journaled, has_run) = last_guard(entries, self.book);
        let before = self.state.clone();
        let file = self.state_file_found.then_some(&before);
        match restore(file, journaled.as_ref(), has_run) {
            Restore::File | Restore::Fresh => {}
            Restore::Journal(g) => {
                tracing::warn!(book = %self.book, file_found = self.state_file_found, risk = ?g.risk,
                    kill_switch = g.kill_switch, "risk baseline and kill switch restored from the journal");
                self.state.risk = g.risk;
                self.state.kill_switch = g.kill_switch;
            }
            Restore::Lost => {
                return Err(DeskError::BaselineLost {
                    book: self.book,
                    path: self
                        .state_path
                        .as_deref()
                        .unwrap_or(Path::new("(none)"))
                        .display()
                        .to_string(),
                });
            }
        }
        self.engine.risk.state = self.state.risk.clone();
        self.engine.risk.kill_switch = self.state.kill_switch;
        if self.state.kill_switch {
            tracing::warn!(
                book = %self.book,
                "kill switch ON (set by a control line before the restart): no new opens until CONTROL|KILL_SWITCH|OFF"
            );
        }
        self.journaled_guard = journaled;
        let guard = Guard::of(&self.state);
        let file_behind = !self.state_file_found || self.state != before;
        let worth_keeping = guard.risk.is_some() || guard.kill_switch;
        if worth_keeping && (self.journaled_guard.as_ref() != Some(&guard) || file_behind) {
            self.persist(journal, now)?;
        }
        Ok(())
    }

    /// Sets the control line's kill switch and keeps it (file and journal). In force at once even
    /// if it cannot be saved; the error says it would not survive a restart.
    pub fn set_kill_switch(
        &mut self,
        on: bool,
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<(), DeskError> {
        self.engine.risk.kill_switch = on;
        self.persist(journal, now)
    }

    /// Writes the state: a `guard` journal entry first when the risk baseline or the kill switch
    /// changed (fsynced), then the file. Both are attempted; the first error is returned.
    pub(crate) fn persist(
        &mut self,
        journal: &mut Journal,
        now: DateTime<Utc>,
    ) -> Result<(), DeskError> {
        self.state.risk = self.engine.risk.state.clone();
        self.state.kill_switch = self.engine.risk.kill_switch;
        let guard = Guard::of(&self.state);
        let journaled = if self.journaled_guard.as_ref() == Some(&guard) {
            Ok(())
        } else {
            journal.append(&guard.entry(self.book, now)).map(|()| {
                self.journaled_guard = Some(guard);
            })
        };
        let saved = match &self.state_path {
            Some(p) => state::write_json_atomic(p, &self.state),
            None => Ok(()),
        };
        if saved.is_ok() {
            self.state_file_found = true;
        }
        journaled?;
        saved?;
        Ok(())
    }

    /// Writes the engine's guard to the journal without waiting for the disk, if it changed:
    /// the intents' fsync that follows makes it durable before their orders go out.
    pub(crate) fn journal_guard_lazily(&mut self, journal: &mut Journal, now: DateTime<Utc>) {
        let guard = Guard {
            risk: self.engine.risk.state.clone(),
            kill_switch: self.engine.risk.kill_switch,
        };
        if self.journaled_guard.as_ref() == Some(&guard) {
            return;
        }
        match journal.append_lazy(&[guard.entry(self.book, now)]) {
            Ok(()) => self.journaled_guard = Some(guard),
            Err(e) => {
                tracing::error!(book = %self.book, error = %e, "cannot journal the risk baseline")
            }
        }
    }

    /// Saves the desk state once orders may have gone out. A failure cannot undo a fill, so it
    /// is logged and the save retried after the next signal; the ACKs stay what the broker did.
    pub(crate) fn save_after_orders(&mut self, journal: &mut Journal, now: DateTime<Utc>) {
        match self.persist(journal, now) {
            Ok(()) => self.save_due = false,
            Err(e) => {
                self.save_due = true;
                tracing::error!(book = %self.book, error = %e,
                    "cannot save the desk state (risk baseline, realised PnL) after the orders; the ACKs report the broker's results; retrying after the next signal");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn risk(day: u32, start: f64) -> Option<RiskState> {
        Some(RiskState {
            initial_balance: 100_000.0,
            day: NaiveDate::from_ymd_opt(2026, 2, day).unwrap(),
            day_start_equity: start,
        })
    }

    fn file(day: u32, kill: bool) -> DeskState {
        DeskState {
            risk: risk(day, 99_000.0),
            realized: BTreeMap::new(),
            kill_switch: kill,
        }
    }

    fn guard(day: u32, kill: bool) -> Guard {
        Guard {
            risk: risk(day, 98_000.0),
            kill_switch: kill,
        }
    }

    #[test]
    fn the_table_of_the_module_doc() {
        assert_eq!(restore(Some(&file(3, false)), None, true), Restore::File);
        assert_eq!(
            restore(Some(&file(3, false)), Some(&guard(3, false)), true),
            Restore::File,
            "same day: the file"
        );
        assert_eq!(
            restore(Some(&file(3, false)), Some(&guard(4, false)), true),
            Restore::Journal(guard(4, false)),
            "the journal's day is later (the file's save was cut short)"
        );
        assert_eq!(
            restore(Some(&file(3, false)), Some(&guard(3, true)), true),
            Restore::Journal(Guard {
                risk: risk(3, 99_000.0),
                kill_switch: true
            }),
            "a kill switch set in either stays set"
        );
        assert_eq!(
            restore(None, Some(&guard(3, true)), true),
            Restore::Journal(guard(3, true))
        );
        assert_eq!(restore(None, None, true), Restore::Lost);
        assert_eq!(restore(None, None, false), Restore::Fresh);
    }
}
