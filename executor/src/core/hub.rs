//! Commands from the hub (`oracle/{id}/commands`): checked here, on the loop, then run by the
//! same path as `executor ctl` ([`Core::operator_command`], origin `hub`). The checks
//! (`fleet::verify`, pure, this loop's wall clock): size before parsing, the hub's ed25519
//! signature, this instance, expiry and clock skew, a repeated id. The ids already answered are
//! the command desk's — the journal keeps every command that changed something, so a repeat is
//! refused across restarts too — plus every hub id seen in this run. A refused command changes
//! nothing; its refusal is journaled and published on `commands/result` like any answer.

use fleet::{CommandId, CommandOutcome, CommandResult, Origin, Rejected, VerifyPolicy};

use super::Core;
use super::sink::Report;
use crate::broker::Broker;
use crate::journal::Entry;

/// Hub command ids remembered in memory besides the desk's (a Status, which the desk does not keep).
pub const HUB_IDS_KEPT: usize = 1024;

impl<B: Broker> Core<B> {
    pub(super) async fn on_hub_command(&mut self, raw: Vec<u8>) {
        let Some(hub) = self.cfg.hub.clone() else {
            return;
        };
        let now_ms = self.clock.wall().timestamp_millis();
        let desk = &self.ops.commands;
        let seen = &self.ops.hub_ids;
        let verified = fleet::verify(
            &raw,
            &hub.hub_public_key,
            &hub.instance_id,
            now_ms,
            VerifyPolicy::default(),
            |id| desk.seen(id) || seen.contains(id),
        );
        let outcome = match verified {
            Err(Rejected { id, op, refusal }) => {
                tracing::warn!(id = ?id.as_ref().map(CommandId::as_str), op, %refusal, "hub command refused");
                let result = CommandResult::Refused(refusal);
                self.journal_refusal(id.as_ref(), &result);
                CommandOutcome {
                    command_id: id,
                    origin: Origin::Hub,
                    op: op.map(str::to_string),
                    result,
                }
            }
            Ok(env) => {
                self.ops.remember_hub_id(&env.id);
                self.operator_command(&env.id, Origin::Hub, &env.command, env.confirm.as_ref())
                    .await
            }
        };
        self.ops.metrics.on_command(
            outcome.op.as_deref().unwrap_or("unknown"),
            outcome.result.kind(),
        );
        self.report(Report::CommandResult(&outcome));
        self.refresh_metrics();
    }

    /// A refusal in the journal under an id of its own: the command's id (when trusted) must keep
    /// the answer it got, and an untrusted one must not be recorded as answered.
    fn journal_refusal(&mut self, id: Option<&CommandId>, result: &CommandResult) {
        let mut b = [0u8; 16];
        let _ = getrandom::fill(&mut b);
        let local = CommandId::from_random(b);
        let result = match (result, id) {
            (CommandResult::Refused(r), Some(id)) => {
                let mut r = r.clone();
                r.message = format!("hub command {id}: {}", r.message);
                CommandResult::Refused(r)
            }
            _ => result.clone(),
        };
        let entry = Entry::CommandResult {
            t: self.clock.now(),
            id: local,
            result,
        };
        if let Err(e) = self.books.journal.append_lazy(&[entry]) {
            tracing::error!(error = %e, "cannot journal a refused hub command");
        }
    }
}
