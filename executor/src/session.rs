//! One preditor connection's line handling, pure and synchronous: authentication, framing of a
//! WebSocket message into lines, and what to answer to bad input. The socket task
//! ([`crate::server`]) only moves bytes and acts on the [`SessionAction`]s.
//!
//! Rules: the first line must be `HELLO|preditor|<version>|<token>` with the right token; any other
//! line before it gets `ERROR|UNAUTHENTICATED`, a bad token gets the same and closes the connection.
//! After HELLO, a line that does not parse gets `ERROR|<code>|<why>` (or `ACK|..|FAIL|MALFORMED`
//! when it is recognisably a SIGNAL) and the connection stays up. `CONTROL|...` lines (kill switch)
//! are for the executor itself and never reach the protocol parser.

use protocol::{Ack, ErrorCode, ErrorLine, Hello, Line, MAX_LINE_LEN, Reason, signal_identity};

use crate::secrets::constant_time_eq;

/// Lines that may arrive before HELLO before the connection is dropped as hostile.
pub const MAX_UNAUTHENTICATED_LINES: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum SessionAction {
    /// Send this line back on this connection.
    Reply(String),
    /// The token was right: this connection is now the preditor.
    Authenticated { version: String },
    /// A valid line for the executor's core.
    Forward(Line),
    /// An executor control line (`CONTROL|KILL_SWITCH|ON`), for the core.
    Control(String),
    /// Close the connection (after sending any replies before it).
    Close,
}

#[derive(Debug)]
pub struct Session {
    token: String,
    authenticated: bool,
    strikes: u32,
}

fn error(code: ErrorCode, text: impl Into<String>) -> SessionAction {
    SessionAction::Reply(Line::Error(ErrorLine::new(code, text)).to_string())
}

impl Session {
    pub fn new(token: String) -> Self {
        Session {
            token,
            authenticated: false,
            strikes: 0,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated
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
            return self.strike(error(
                ErrorCode::TooLong,
                format!("line of {} bytes; the limit is {MAX_LINE_LEN}", line.len()),
            ));
        }
        if !self.authenticated {
            return self.before_hello(line);
        }
        if let Some(rest) = line.strip_prefix("CONTROL|") {
            return vec![SessionAction::Control(rest.to_string())];
        }
        match line.parse::<Line>() {
            Ok(Line::Hello(_)) => vec![error(ErrorCode::Malformed, "already authenticated")],
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

    fn strike(&mut self, reply: SessionAction) -> Vec<SessionAction> {
        if self.authenticated {
            return vec![reply];
        }
        self.strikes += 1;
        if self.strikes >= MAX_UNAUTHENTICATED_LINES {
            vec![reply, SessionAction::Close]
        } else {
            vec![reply]
        }
    }

    fn before_hello(&mut self, line: &str) -> Vec<SessionAction> {
        match line.parse::<Line>() {
            Ok(Line::Hello(Hello::Preditor { version, token })) => {
                if constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
                    self.authenticated = true;
                    vec![SessionAction::Authenticated { version }]
                } else {
                    vec![
                        error(ErrorCode::Unauthenticated, "bad token"),
                        SessionAction::Close,
                    ]
                }
            }
            Ok(Line::Hello(Hello::Executor { .. })) => self.strike(error(
                ErrorCode::Unauthenticated,
                "expected HELLO|preditor|<version>|<token>",
            )),
            Err(e) if line.starts_with("HELLO|") => self.strike(SessionAction::Reply(
                Line::Error(e.to_error_line()).to_string(),
            )),
            _ => self.strike(error(
                ErrorCode::Unauthenticated,
                "send HELLO|preditor|<version>|<token> first",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authed() -> Session {
        let mut s = Session::new("s3cret".into());
        assert_eq!(
            s.on_line("HELLO|preditor|0.1.0|s3cret"),
            vec![SessionAction::Authenticated {
                version: "0.1.0".into()
            }]
        );
        s
    }

    fn reply(a: &[SessionAction]) -> &str {
        match a.first() {
            Some(SessionAction::Reply(r)) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn line_before_hello_is_unauthenticated() {
        let mut s = Session::new("s3cret".into());
        let a = s.on_line("SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1");
        assert!(reply(&a).starts_with("ERROR|UNAUTHENTICATED|"));
        assert!(!s.is_authenticated());
    }

    #[test]
    fn bad_token_replies_and_closes() {
        let mut s = Session::new("s3cret".into());
        let a = s.on_line("HELLO|preditor|0.1.0|wrong");
        assert_eq!(
            a,
            vec![
                SessionAction::Reply("ERROR|UNAUTHENTICATED|bad token".into()),
                SessionAction::Close
            ]
        );
    }

    #[test]
    fn too_many_lines_before_hello_close_the_connection() {
        let mut s = Session::new("s3cret".into());
        for _ in 1..MAX_UNAUTHENTICATED_LINES {
            assert!(!s.on_line("garbage").contains(&SessionAction::Close));
        }
        assert!(s.on_line("garbage").contains(&SessionAction::Close));
    }

    #[test]
    fn after_hello_garbage_gets_error_and_signal_like_lines_get_ack_malformed() {
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
