//! One preditor connection's line handling, pure and synchronous: the handshake, framing of a
//! WebSocket message into lines, and what to answer to bad input. The socket task
//! ([`crate::ipc`]) only moves bytes and acts on the [`SessionAction`]s.
//!
//! Rules: the first line must be `HELLO|preditor|<version>|<nonce>`; it is answered with the
//! executor's HELLO carrying our nonce and our proof (PROTOCOL.md §7), then the preditor's
//! `AUTH|<proof>` must check out. Any other line before that gets `ERROR|UNAUTHENTICATED`, a bad
//! proof gets the same and closes the connection. After AUTH, a line that does not parse gets
//! `ERROR|<code>|<why>` (or `ACK|..|FAIL|MALFORMED` when it is recognisably a SIGNAL) and the
//! connection stays up. An `ERROR` line is never answered (two peers must not ping-pong).
//! `CONTROL|...` lines (kill switch) are for the executor itself and never reach the protocol parser.

use protocol::handshake::{ExecutorHandshake, IpcKey};
use protocol::{
    Ack, ErrorCode, ErrorLine, Hello, Line, MAX_LINE_LEN, Mode, Reason, signal_identity,
};

/// Lines that may arrive before the handshake is done before the connection is dropped as hostile.
pub const MAX_UNAUTHENTICATED_LINES: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum SessionAction {
    /// Send this line back on this connection.
    Reply(String),
    /// The preditor proved it holds the token: this connection is now the preditor.
    Authenticated { version: String },
    /// A valid line for the executor's core.
    Forward(Line),
    /// An executor control line (`CONTROL|KILL_SWITCH|ON`), for the core.
    Control(String),
    /// Close the connection (after sending any replies before it).
    Close,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the preditor's HELLO.
    Hello,
    /// Our HELLO is sent; waiting for the preditor's AUTH.
    Auth(ExecutorHandshake),
    Authenticated,
}

#[derive(Debug)]
pub struct Session {
    key: IpcKey,
    version: String,
    mode: Mode,
    stage: Stage,
    strikes: u32,
}

fn error(code: ErrorCode, text: impl Into<String>) -> SessionAction {
    SessionAction::Reply(Line::Error(ErrorLine::new(code, text)).to_string())
}

/// An `ERROR` line, well-formed or not: never answered.
fn is_error_line(line: &str) -> bool {
    line == "ERROR" || line.starts_with("ERROR|")
}

impl Session {
    /// A connection of an executor at `version` in `mode`, holding `key`.
    pub fn new(key: IpcKey, version: &str, mode: Mode) -> Self {
        Session {
            key,
            version: version.to_string(),
            mode,
            stage: Stage::Hello,
            strikes: 0,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.stage, Stage::Authenticated)
    }

    /// Handles one WebSocket text message (one or more `\n`-separated lines).
    pub fn on_message(&mut self, msg: &str) -> Vec<SessionAction> {
        let body = msg.strip_suffix('\n').unwrap_or(msg);
        let mut out = Vec::new();
        for line in body.split('\n') {
            out.extend(self.on_line(line));
            if out.last() == Some(&SessionAction::Close) {
                break;
            }
        }
        out
    }

    pub fn on_line(&mut self, line: &str) -> Vec<SessionAction> {
        if line.len() > MAX_LINE_LEN {
            return self.strike(Some(error(
                ErrorCode::TooLong,
                format!("line of {} bytes; the limit is {MAX_LINE_LEN}", line.len()),
            )));
        }
        if !self.is_authenticated() {
            return self.before_auth(line);
        }
        if let Some(rest) = line.strip_prefix("CONTROL|") {
            return vec![SessionAction::Control(rest.to_string())];
        }
        match line.parse::<Line>() {
            Ok(Line::Hello(_) | Line::Auth(_)) => {
                vec![error(ErrorCode::Malformed, "already authenticated")]
            }
            Ok(l @ (Line::Signal(_) | Line::Warmup(_) | Line::Error(_))) => {
                vec![SessionAction::Forward(l)]
            }
            Ok(l) => vec![error(
                ErrorCode::Malformed,
                format!(
                    "{} lines are sent by the executor, not to it",
                    l.line_type()
                ),
            )],
            // A malformed ERROR is dropped (signals.log has it), never answered.
            Err(_) if is_error_line(line) => Vec::new(),
            Err(e) => match signal_identity(line) {
                Some((sym, action)) => vec![SessionAction::Reply(
                    Line::Ack(Ack::fail(sym, action, Reason::Malformed)).to_string(),
                )],
                None => vec![SessionAction::Reply(
                    Line::Error(e.to_error_line()).to_string(),
                )],
            },
        }
    }

    /// A line that does not advance the handshake: counted, and answered unless it is an ERROR.
    fn strike(&mut self, reply: Option<SessionAction>) -> Vec<SessionAction> {
        let mut out: Vec<SessionAction> = reply.into_iter().collect();
        if self.is_authenticated() {
            return out;
        }
        self.strikes += 1;
        if self.strikes >= MAX_UNAUTHENTICATED_LINES {
            out.push(SessionAction::Close);
        }
        out
    }

    fn before_auth(&mut self, line: &str) -> Vec<SessionAction> {
        if is_error_line(line) {
            return self.strike(None);
        }
        let parsed = line.parse::<Line>();
        match (std::mem::replace(&mut self.stage, Stage::Hello), parsed) {
            (Stage::Hello, Ok(Line::Hello(hello @ Hello::Preditor { .. }))) => {
                match ExecutorHandshake::answer(&self.key, &self.version, self.mode, &hello) {
                    Ok((hs, ours)) => {
                        self.stage = Stage::Auth(hs);
                        vec![SessionAction::Reply(Line::Hello(ours).to_string())]
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "handshake could not start");
                        vec![
                            error(ErrorCode::Internal, "the executor cannot draw a nonce"),
                            SessionAction::Close,
                        ]
                    }
                }
            }
            (Stage::Auth(hs), Ok(Line::Auth(auth))) => match hs.finish(&auth) {
                Ok(version) => {
                    self.stage = Stage::Authenticated;
                    vec![SessionAction::Authenticated { version }]
                }
                Err(_) => vec![
                    error(
                        ErrorCode::Unauthenticated,
                        "bad proof: the preditor does not hold this executor's IPC token",
                    ),
                    SessionAction::Close,
                ],
            },
            (stage, parsed) => {
                let expected = match &stage {
                    Stage::Auth(_) => "send AUTH|<proof> (PROTOCOL.md §7)",
                    _ => "send HELLO|preditor|<version>|<nonce> first (PROTOCOL.md §7)",
                };
                self.stage = stage;
                let reply = match parsed {
                    Err(e) if line.starts_with("HELLO|") || line.starts_with("AUTH|") => {
                        SessionAction::Reply(Line::Error(e.to_error_line()).to_string())
                    }
                    _ => error(ErrorCode::Unauthenticated, expected),
                };
                self.strike(Some(reply))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::handshake::PreditorHandshake;

    const TOKEN: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";

    fn key(t: &str) -> IpcKey {
        IpcKey::from_token(t).unwrap()
    }

    fn session() -> Session {
        Session::new(key(TOKEN), "0.9.0", Mode::Paper)
    }

    fn reply(a: &[SessionAction]) -> &str {
        match a.first() {
            Some(SessionAction::Reply(r)) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// Runs the preditor's side of the handshake with `token` against `s`; the executor's actions
    /// on the AUTH.
    fn handshake(s: &mut Session, token: &str) -> Vec<SessionAction> {
        let (p, hello) = PreditorHandshake::start(&key(token), "0.1.0").unwrap();
        let a = s.on_line(&Line::Hello(hello).to_string());
        let ours: Line = reply(&a).parse().unwrap();
        let Line::Hello(ours @ Hello::Executor { .. }) = ours else {
            panic!("expected the executor's HELLO, got {ours:?}")
        };
        match p.finish(&ours) {
            Ok((auth, exec)) => {
                assert_eq!((exec.version.as_str(), exec.mode), ("0.9.0", Mode::Paper));
                s.on_line(&Line::Auth(auth).to_string())
            }
            // A preditor with another token refuses our HELLO; a forged AUTH is what is left.
            Err(_) => s.on_line(&format!("AUTH|{}", "00".repeat(32))),
        }
    }

    fn authed() -> Session {
        let mut s = session();
        assert_eq!(
            handshake(&mut s, TOKEN),
            vec![SessionAction::Authenticated {
                version: "0.1.0".into()
            }]
        );
        s
    }

    #[test]
    fn line_before_the_handshake_is_unauthenticated() {
        let mut s = session();
        let a = s.on_line("SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1");
        assert!(reply(&a).starts_with("ERROR|UNAUTHENTICATED|"));
        assert!(!s.is_authenticated());
        // Between HELLO and AUTH too.
        let (_, hello) = PreditorHandshake::start(&key(TOKEN), "0.1.0").unwrap();
        s.on_line(&Line::Hello(hello).to_string());
        let a = s.on_line("WARMUP|EURUSD|H1|10");
        assert!(reply(&a).contains("AUTH"), "{a:?}");
        assert!(!s.is_authenticated());
    }

    #[test]
    fn a_wrong_proof_replies_and_closes() {
        let mut s = session();
        let a = handshake(&mut s, &"w".repeat(40));
        assert_eq!(a.len(), 2);
        assert!(
            reply(&a).starts_with("ERROR|UNAUTHENTICATED|bad proof"),
            "{a:?}"
        );
        assert_eq!(a[1], SessionAction::Close);
        assert!(!s.is_authenticated());
    }

    #[test]
    fn too_many_lines_before_the_handshake_close_the_connection() {
        let mut s = session();
        for _ in 1..MAX_UNAUTHENTICATED_LINES {
            assert!(!s.on_line("garbage").contains(&SessionAction::Close));
        }
        assert!(s.on_line("garbage").contains(&SessionAction::Close));
    }

    #[test]
    fn an_error_line_is_never_answered() {
        // Before the handshake: counted, never answered.
        let mut s = session();
        for line in [
            "ERROR|UNAUTHENTICATED|who are you",
            "ERROR|bad code|x",
            "ERROR",
        ] {
            assert_eq!(s.on_line(line), Vec::<SessionAction>::new(), "{line}");
        }
        // After it: a valid one goes to the core (which logs it), a malformed one is dropped.
        let mut s = authed();
        assert!(matches!(
            s.on_line("ERROR|MALFORMED|you said something odd")[..],
            [SessionAction::Forward(Line::Error(_))]
        ));
        for line in ["ERROR|bad code|x", "ERROR|MALFORMED", "ERROR", "ERROR||x"] {
            assert_eq!(s.on_line(line), Vec::<SessionAction>::new(), "{line}");
        }
    }

    #[test]
    fn after_the_handshake_garbage_gets_error_and_signal_like_lines_get_ack_malformed() {
        let mut s = authed();
        assert!(reply(&s.on_line("\u{0}\u{1}garbage|||")).starts_with("ERROR|"));
        assert_eq!(
            reply(&s.on_line("SIGNAL|EURUSD|LONG_WEAK|x|0.00")),
            "ACK|EURUSD|LONG_WEAK|FAIL|MALFORMED"
        );
        assert!(
            reply(&s.on_line("BAR|EURUSD|M15|2026-02-03T10:15:00Z|1|1|1|1|1"))
                .starts_with("ERROR|MALFORMED|")
        );
        assert!(reply(&s.on_line(&"X".repeat(MAX_LINE_LEN + 1))).starts_with("ERROR|TOO_LONG|"));
        assert!(matches!(
            s.on_line("SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1")[0],
            SessionAction::Forward(Line::Signal(_))
        ));
        assert_eq!(
            s.on_line("CONTROL|KILL_SWITCH|ON"),
            vec![SessionAction::Control("KILL_SWITCH|ON".into())]
        );
    }

    #[test]
    fn one_message_may_carry_several_lines() {
        let mut s = authed();
        let a = s.on_message("WARMUP|EURUSD|M15|10\nWARMUP|GBPUSD|M15|10\n");
        assert_eq!(a.len(), 2);
        assert!(
            a.iter()
                .all(|x| matches!(x, SessionAction::Forward(Line::Warmup(_))))
        );
    }
}
