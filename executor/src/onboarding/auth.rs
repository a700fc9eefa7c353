//! `executor auth`: the cTrader Open API's OAuth2 authorization-code flow, ending in the config's
//! 0600 token file (written atomically by [`ctrader::client::TokenStore`]).
//!
//! As documented by Spotware (help.ctrader.com/open-api/account-authentication/, and the older
//! spotware.github.io/open-api-docs/account-authentication/ it replaced) and implemented by the
//! official SDKs (spotware/OpenApiPy `ctrader_open_api/auth.py`, `endpoints.py` and
//! `docs/authentication.md`; spotware/OpenAPI.Net `src/OpenAPI.Net/Auth/TokenFactory.cs`):
//! 1. The user opens `https://openapi.ctrader.com/apps/auth?client_id=…&redirect_uri=…&scope=trading`
//!    (`scope=accounts` would only read), logs in with the cTrader ID and allows access.
//! 2. The browser is sent to the redirect URI with `?code=…`. The code lives one minute.
//! 3. The code is exchanged by an HTTP **GET** of `https://openapi.ctrader.com/apps/token` with the
//!    query `grant_type=authorization_code&code=…&redirect_uri=…&client_id=…&client_secret=…`
//!    (OpenApiPy `requests.get(baseUri, params=…)`; OpenAPI.Net `client.GetAsync(uri)`).
//! 4. The answer is JSON with `accessToken`, `refreshToken`, `expiresIn` (seconds, 2 628 000 ≈ 30
//!    days), `tokenType` ("bearer"), and `errorCode` / `description` when something went wrong
//!    (the old docs' example also repeats the tokens as `access_token`, … ; they are ignored).
//!    OpenAPI.Net treats a non-empty `errorCode` as the failure, and a success without
//!    `accessToken` or `refreshToken` as a malformed answer; so does [`parse_token_answer`].
//! 5. A refresh is the same GET with `grant_type=refresh_token&refresh_token=…&client_id=…&
//!    client_secret=…`. A refresh token never expires but works once: the answer's pair replaces it.
//!
//! HTTP: `ureq` 3 (blocking, rustls with the webpki roots, like the rest of the workspace; a CLI
//! doing one request needs no async runtime). Its own logging is switched off by the binary so the
//! query (code, secret, refresh token) never reaches a log, whatever `RUST_LOG` says.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use ctrader::client::{TokenStore, TokenStoreError, Tokens};
use serde::Deserialize;

use crate::config::CtraderConfig;
use crate::secrets::{SecretError, read_secret};

/// Spotware's authorization page (OpenApiPy `EndPoints.AUTH_URI`).
pub const AUTH_URL: &str = "https://openapi.ctrader.com/apps/auth";
/// Spotware's token endpoint (OpenApiPy `EndPoints.TOKEN_URI`).
pub const TOKEN_URL: &str = "https://openapi.ctrader.com/apps/token";
/// The scope that allows trading (OpenApiPy `getAuthUri(scope="trading")`).
pub const SCOPE: &str = "trading";
/// The whole exchange, connect to last byte.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token answer read; the documented one is a few hundred bytes.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Longest line read from standard input (a redirect URL with its code).
const MAX_INPUT_BYTES: u64 = 8 * 1024;

/// Why `executor auth` stopped. The token file is untouched in every case but
/// [`AuthError::Save`] after a successful exchange.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cTrader client secret: {0}")]
    Secret(SecretError),
    #[error("{0}")]
    Tokens(TokenStoreError),
    #[error("{what} {url:?} is not usable: {why}")]
    Url {
        what: &'static str,
        url: String,
        why: String,
    },
    #[error(
        "{0} (fix: paste the whole address the browser was sent to, or the value of its code= parameter)"
    )]
    Input(String),
    #[error("the authorization page refused: {error}{} (fix: open the URL again and allow access)", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("the token endpoint refused: {code}{} ({fix})", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
        fix: &'static str,
    },
    #[error(
        "the token endpoint answered HTTP {status} without an error code (fix: retry later; if it persists, check --token-url)"
    )]
    Status { status: u16 },
    #[error("the token endpoint's answer is not the documented token JSON: {0}")]
    Malformed(String),
    #[error("no answer from the token endpoint: {0} (fix: check the network, then retry)")]
    Http(String),
    #[error(
        "the new tokens could not be saved: {0}. The old refresh token is spent: fix the file's directory, then run `executor auth` (without --refresh) again"
    )]
    Save(TokenStoreError),
}

/// What the user gave back: the redirect URL, or the bare code.
pub fn parse_redirect(input: &str) -> Result<String, AuthError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AuthError::Input("nothing was entered".into()));
    }
    if !input.contains('?') && !input.contains("code=") && !input.contains("://") {
        return bare_code(input);
    }
    let query = input
        .split_once('?')
        .map_or(input, |(_, q)| q)
        .split('#')
        .next()
        .unwrap_or_default();
    let mut code = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            _ => {}
        }
    }
    match (code, error) {
        (Some(c), _) => bare_code(&c),
        (None, Some(error)) => Err(AuthError::Denied { error, description }),
        (None, None) => Err(AuthError::Input(
            "the address has no code= parameter".into(),
        )),
    }
}

fn bare_code(code: &str) -> Result<String, AuthError> {
    let ok = code.len() <= 2048 && code.chars().all(|c| c.is_ascii_graphic() && c != '&');
    if ok {
        Ok(code.to_string())
    } else {
        Err(AuthError::Input(
            "that is not an authorization code (printable characters, no spaces)".into(),
        ))
    }
}

/// A plain-http endpoint is accepted on loopback only (a local test endpoint): the query carries
/// the client secret.
fn check_endpoint(what: &'static str, url: &str) -> Result<(), AuthError> {
    let bad = |why: &str| AuthError::Url {
        what,
        url: url.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit_once('@')
        .map_or_else(
            || rest.split(['/', '?', '#']).next().unwrap_or_default(),
            |(_, h)| h,
        );
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() || url.contains('?') {
        return Err(bad(
            "give the endpoint without a query, e.g. https://host/apps/token",
        ));
    }
    match scheme {
        "https" => Ok(()),
        "http"
            if host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()) =>
        {
            Ok(())
        }
        "http" => Err(bad(
            "plain http would send the client secret in clear; use https (http is accepted on loopback only)",
        )),
        _ => Err(bad("use an https:// address")),
    }
}

/// The authorization page's address for the user to open.
pub fn authorization_url(
    auth_url: &str,
    client_id: &str,
    redirect_uri: &str,
) -> Result<String, AuthError> {
    check_endpoint("--auth-url", auth_url)?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPE)
        .finish();
    Ok(format!("{auth_url}?{query}"))
}

/// What is exchanged at the token endpoint.
#[derive(Clone)]
pub enum Grant {
    /// `grant_type=authorization_code` with the code and the redirect URI it was sent to.
    Code { code: String, redirect_uri: String },
    /// `grant_type=refresh_token` with the stored refresh token.
    Refresh { refresh_token: String },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grant::Code { .. } => "Grant::Code(<redacted>)",
            Grant::Refresh { .. } => "Grant::Refresh(<redacted>)",
        })
    }
}

impl Grant {
    /// The documented query parameters, in the documented order.
    fn query(&self, client_id: &str, client_secret: &str) -> Vec<(&'static str, String)> {
        let mut q = match self {
            Grant::Code { code, redirect_uri } => vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code.clone()),
                ("redirect_uri", redirect_uri.clone()),
            ],
            Grant::Refresh { refresh_token } => vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh_token.clone()),
            ],
        };
        q.push(("client_id", client_id.to_string()));
        q.push(("client_secret", client_secret.to_string()));
        q
    }
}

/// The token endpoint's JSON, field names as documented.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    token_type: Option<String>,
    error_code: Option<String>,
    description: Option<String>,
}

/// The fix for a documented refusal: a spent code or refresh token needs the browser step again.
fn refusal_fix(code: &str, grant: &Grant) -> &'static str {
    match (code, grant) {
        (c, _) if c.contains("CLIENT") => {
            "fix: check broker.ctrader.client_id and the secret file against your application's Credentials at openapi.ctrader.com/apps"
        }
        (_, Grant::Refresh { .. }) => {
            "fix: refresh tokens work once; run `executor auth` without --refresh to grant access again"
        }
        (_, Grant::Code { .. }) => {
            "fix: a code works once and for one minute, with the same redirect URI; open the URL again"
        }
    }
}

/// The tokens in a token-endpoint answer (`now`: Unix seconds, for `expires_at`). A non-empty
/// `errorCode` is a refusal whatever the HTTP status; a success must carry both tokens.
pub fn parse_token_answer(
    status: u16,
    body: &str,
    grant: &Grant,
    now: i64,
) -> Result<Tokens, AuthError> {
    let answer: Option<TokenAnswer> = serde_json::from_str(body).ok();
    if let Some(a) = &answer
        && let Some(code) = a.error_code.as_deref().filter(|c| !c.trim().is_empty())
    {
        return Err(AuthError::Refused {
            code: code.to_string(),
            description: a.description.clone().filter(|d| !d.is_empty()),
            fix: refusal_fix(code, grant),
        });
    }
    if !(200..300).contains(&status) {
        return Err(AuthError::Status { status });
    }
    let a = answer.ok_or_else(|| AuthError::Malformed("not a JSON object".into()))?;
    let token = |t: Option<String>, name: &str| {
        t.filter(|t| !t.trim().is_empty())
            .ok_or_else(|| AuthError::Malformed(format!("no {name}")))
    };
    let access_token = token(a.access_token, "accessToken")?;
    let refresh_token = token(a.refresh_token, "refreshToken")?;
    if let Some(t) = a.token_type.as_deref()
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(AuthError::Malformed(format!("tokenType {t:?}, not bearer")));
    }
    let expires_at = match a.expires_in {
        Some(s) if s > 0 => Some(now.saturating_add(s)),
        Some(s) => return Err(AuthError::Malformed(format!("expiresIn {s}"))),
        None => None,
    };
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_at,
    })
}

/// One GET of the token endpoint; the status and the body (bounded).
fn get_token(
    token_url: &str,
    query: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(u16, String), AuthError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // A refusal's errorCode may come with a 4xx: read the body whatever the status.
        .http_status_as_error(false)
        // A redirect is not part of the documented exchange; following one could carry the
        // secret elsewhere.
        .max_redirects(0)
        .build()
        .into();
    let mut res = agent
        .get(token_url)
        .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
        .header("Accept", "application/json")
        .call()
        .map_err(|e| AuthError::Http(scrub(&e.to_string(), query)))?;
    let status = res.status().as_u16();
    let body = res
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| AuthError::Http(scrub(&e.to_string(), query)))?;
    Ok((status, body))
}

/// An HTTP error's text with every query value cut out (some errors quote the URL).
fn scrub(text: &str, query: &[(&'static str, String)]) -> String {
    let mut out = text.to_string();
    for (_, v) in query {
        if !v.is_empty() {
            let encoded: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            out = out
                .replace(&encoded, "<redacted>")
                .replace(v.as_str(), "<redacted>");
        }
    }
    out
}

/// Where `executor auth` talks and what it exchanges.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub auth_url: String,
    pub token_url: String,
    /// `None` with `refresh`.
    pub redirect_uri: Option<String>,
    /// The code given on the command line; otherwise it is read from `input`.
    pub code: Option<String>,
    pub refresh: bool,
    pub timeout: Duration,
}

/// Fails now, before any request, if the token file cannot be replaced: a refresh spends the old
/// refresh token, so the new pair must be storable.
fn check_writable(store: &TokenStore) -> Result<(), AuthError> {
    let path = store.path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".executor-auth-probe{}", std::process::id()));
    let io = |source| {
        AuthError::Tokens(TokenStoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(io)?;
    std::fs::remove_file(&probe).map_err(io)
}

/// The whole flow: print the authorization URL, read the code (unless given or refreshing),
/// exchange it, save the tokens. `out` gets what the user must see (never a token or the secret);
/// `now` gives Unix seconds.
pub fn run(
    ct: &CtraderConfig,
    req: &AuthRequest,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    now: impl Fn() -> i64,
) -> Result<Tokens, AuthError> {
    check_endpoint("--token-url", &req.token_url)?;
    let secret = read_secret(&ct.secret_file).map_err(AuthError::Secret)?;
    let store = TokenStore::new(&ct.token_file);
    let say = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    let grant = if req.refresh {
        let old = store.load().map_err(AuthError::Tokens)?;
        Grant::Refresh {
            refresh_token: old.refresh_token,
        }
    } else {
        let redirect_uri = req.redirect_uri.clone().ok_or_else(|| {
            AuthError::Input(
                "--redirect-uri is required (one of your application's redirect URIs)".into(),
            )
        })?;
        let url = authorization_url(&req.auth_url, &ct.client_id, &redirect_uri)?;
        say(
            out,
            "1. Open this address in a browser, log in with your cTrader ID, tick the account(s) and allow access:",
        );
        say(out, &format!("   {url}"));
        say(
            out,
            &format!(
                "2. The browser is sent to {redirect_uri}?code=… (the page itself may not load)."
            ),
        );
        let code = match &req.code {
            Some(c) => parse_redirect(c)?,
            None => {
                say(
                    out,
                    "   Paste that whole address (or just the code) here within a minute, then press Enter:",
                );
                let mut line = String::new();
                std::io::Read::take(input, MAX_INPUT_BYTES)
                    .read_line(&mut line)
                    .map_err(|e| AuthError::Input(format!("reading standard input: {e}")))?;
                parse_redirect(&line)?
            }
        };
        Grant::Code { code, redirect_uri }
    };
    check_writable(&store)?;
    let query = grant.query(&ct.client_id, &secret);
    let (status, body) = get_token(&req.token_url, &query, req.timeout)?;
    let tokens = parse_token_answer(status, &body, &grant, now())?;
    store.save(&tokens).map_err(AuthError::Save)?;
    let expiry = tokens
        .expires_at
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "an unstated time".to_string(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        );
    say(
        out,
        &format!(
            "Saved the access and refresh tokens to {} (mode 0600). The access token expires at {expiry}; the executor refreshes it itself.",
            store.path().display()
        ),
    );
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_grant() -> Grant {
        Grant::Code {
            code: "c0de".into(),
            redirect_uri: "http://localhost/cb".into(),
        }
    }

    #[test]
    fn the_redirect_url_or_the_bare_code() {
        assert_eq!(
            parse_redirect("https://example.com/cb?code=abc123&state=x\n").unwrap(),
            "abc123"
        );
        assert_eq!(parse_redirect("  abc123  ").unwrap(), "abc123");
        assert_eq!(
            parse_redirect("http://localhost/?code=a%2Fb#frag").unwrap(),
            "a/b"
        );
        assert!(matches!(
            parse_redirect("https://example.com/cb?error=access_denied&error_description=User+denied"),
            Err(AuthError::Denied { ref error, description: Some(ref d) }) if error == "access_denied" && d == "User denied"
        ));
        for bad in ["", "https://example.com/cb", "two words", "a\u{7f}b"] {
            assert!(parse_redirect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_authorization_url_is_the_documented_one_encoded() {
        let u = authorization_url(AUTH_URL, "7_abc", "http://www.spotware.com/").unwrap();
        assert_eq!(
            u,
            "https://openapi.ctrader.com/apps/auth?client_id=7_abc&redirect_uri=http%3A%2F%2Fwww.spotware.com%2F&scope=trading"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_endpoint("t", "http://127.0.0.1:9/apps/token").is_ok());
        assert!(check_endpoint("t", "http://localhost:9/apps/token").is_ok());
        assert!(check_endpoint("t", "http://[::1]:9/apps/token").is_ok());
        assert!(check_endpoint("t", TOKEN_URL).is_ok());
        assert!(check_endpoint("t", "http://openapi.ctrader.com/apps/token").is_err());
        assert!(check_endpoint("t", "http://127.0.0.1.evil.example/apps/token").is_err());
        assert!(check_endpoint("t", "ftp://127.0.0.1/").is_err());
        assert!(check_endpoint("t", "https://h/apps/token?x=1").is_err());
    }

    #[test]
    fn the_documented_answer_and_its_refusals() {
        // Spotware's example answer (old docs), snake_case duplicates included.
        let ok = r#"{"accessToken":"mos8","tokenType":"bearer","expiresIn":2628000,"refreshToken":"VCua","errorCode":null,"access_token":"mos8","refresh_token":"VCua","expires_in":2628000}"#;
        let t = parse_token_answer(200, ok, &code_grant(), 1_000).unwrap();
        assert_eq!(
            (t.access_token.as_str(), t.refresh_token.as_str()),
            ("mos8", "VCua")
        );
        assert_eq!(t.expires_at, Some(2_629_000));

        let refused = r#"{"accessToken":null,"errorCode":"ACCESS_DENIED","description":"Authorization code is expired"}"#;
        for status in [200, 400] {
            let e = parse_token_answer(status, refused, &code_grant(), 0).unwrap_err();
            let s = e.to_string();
            assert!(
                s.contains("ACCESS_DENIED") && s.contains("Authorization code is expired"),
                "{s}"
            );
            assert!(s.contains("open the URL again"), "{s}");
        }
        let e = parse_token_answer(
            200,
            refused,
            &Grant::Refresh {
                refresh_token: "r".into(),
            },
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("without --refresh"), "{e}");

        assert!(matches!(
            parse_token_answer(500, "<html>oops</html>", &code_grant(), 0),
            Err(AuthError::Status { status: 500 })
        ));
        assert!(matches!(
            parse_token_answer(200, "<html>", &code_grant(), 0),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_answer(200, r#"{"accessToken":"a"}"#, &code_grant(), 0),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_answer(
                200,
                r#"{"accessToken":"a","refreshToken":"r","tokenType":"mac"}"#,
                &code_grant(),
                0
            ),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_answer(
                200,
                r#"{"accessToken":"a","refreshToken":"r","expiresIn":-5}"#,
                &code_grant(),
                0
            ),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn the_query_is_the_documented_one_and_debug_hides_it() {
        let q = code_grant().query("id", "sec");
        let keys: Vec<&str> = q.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "grant_type",
                "code",
                "redirect_uri",
                "client_id",
                "client_secret"
            ]
        );
        assert_eq!(q[0].1, "authorization_code");
        let q = Grant::Refresh {
            refresh_token: "r".into(),
        }
        .query("id", "sec");
        let keys: Vec<&str> = q.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            ["grant_type", "refresh_token", "client_id", "client_secret"]
        );
        assert_eq!(q[0].1, "refresh_token");
        assert!(!format!("{:?}", code_grant()).contains("c0de"));
        assert_eq!(
            scrub(
                "GET http://h/t?code=c0de&client_secret=s%2F1",
                &[("code", "c0de".into()), ("client_secret", "s/1".into())]
            ),
            "GET http://h/t?code=<redacted>&client_secret=<redacted>"
        );
    }
}
