//! From a registered Open API application to a running executor (docs/OPERATIONS.md, "From the demo
//! to a cTrader demo account"):
//! - [`auth`]: `executor auth`, the OAuth2 authorization-code flow that writes the token file.
//! - [`accounts`]: `executor accounts`, the trading accounts the token reaches; and what a refused
//!   connection setup means and how to fix it.
//!
//! Both read only `broker.ctrader` of the config ([`crate::config::ExecutorConfig::load_ctrader`]):
//! they run before the token file exists and before the account id is known.

pub mod accounts;
pub mod auth;

use std::error::Error;

/// An error and its sources as one line, each cause once: a source whose text the message already
/// carries is skipped (thiserror messages often embed their source, and `{:#}` would repeat it).
pub fn describe_error(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunError;
    use crate::broker::ctrader::CtraderStartError;

    #[test]
    fn each_cause_is_told_once() {
        let client = ctrader::client::ClientError::NotReady {
            addr: "demo.ctraderapi.com:5035".into(),
            within: std::time::Duration::from_secs(30),
            last: Some(
                "connect failed: cannot connect to demo.ctraderapi.com:5035: refused".into(),
            ),
        };
        let e = anyhow::Error::from(RunError::Ctrader(CtraderStartError::Client(client)));
        let s = describe_error(e.as_ref());
        assert_eq!(s.matches("refused").count(), 1, "{s}");
        // What `{:#}` printed before: the client's message twice.
        assert_eq!(format!("{e:#}").matches("refused").count(), 2);

        let io = std::io::Error::other("disk on fire");
        let wrapped = anyhow::Error::from(io).context("writing the journal");
        assert_eq!(
            describe_error(wrapped.as_ref()),
            "writing the journal: disk on fire"
        );
    }
}
