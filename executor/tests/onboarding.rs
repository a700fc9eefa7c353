//! A new user's first steps, with the real binaries: `executor auth` against a local token endpoint
//! that answers in Spotware's documented shape (and with refusals, HTTP 500, garbage and silence),
//! `executor accounts` against ctrader-sim, and `executor run` with a wrong account, a wrong
//! secret, or a SIGTERM while the broker connection is still being set up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::system::{
    ACCOUNT, SIM_ACCESS_TOKEN, SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_REFRESH_TOKEN, Sim, secret,
};
use ctrader::client::{TokenStore, Tokens};
use executor::config::ExecutorConfig;
use executor::onboarding::auth::{self, AuthError, AuthRequest};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CLIENT_SECRET: &str = "s3cret-Client/Secret";
const CODE: &str = "AuThCoDe-0123456789";
const ACCESS: &str = "new-access-token-abcdef";
const REFRESH: &str = "new-refresh-token-ghijkl";

/// What the local token endpoint does with one request.
#[derive(Clone)]
enum Answer {
    /// `HTTP/1.1 <status>` with this body.
    Http(u16, &'static str),
    /// Reads the request, then says nothing (the client must time out).
    Silence,
}

/// A token endpoint on 127.0.0.1:0: answers each request with the next [`Answer`] and records
/// the request lines (method, path and query).
struct TokenEndpoint {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TokenEndpoint {
    fn start(answers: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/apps/token", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for answer in answers {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.lock().unwrap().push(line.trim_end().to_string());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                match answer {
                    Answer::Http(status, body) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Answer::Silence => held.push(s),
                }
            }
            std::thread::sleep(Duration::from_secs(30));
            drop(held);
        });
        TokenEndpoint { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The query of a recorded request line, decoded.
fn query(request_line: &str) -> Vec<(String, String)> {
    let target = request_line.split(' ').nth(1).unwrap();
    let q = target.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// A live-mode config naming `host:port`, its secret and token files in `dir`.
fn config(
    dir: &Path,
    host: &str,
    port: u16,
    client_secret: &str,
    account_id: i64,
    ca: Option<&Path>,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    secret(
        &dir.join("secrets/ct_secret"),
        &format!("{client_secret}\n"),
    );
    let mut ct = serde_json::json!({
        "host": host, "port": port, "client_id": SIM_CLIENT_ID,
        "secret_file": "secrets/ct_secret", "token_file": "secrets/ct_tokens.json",
        "account_id": account_id, "request_timeout_ms": 3000
    });
    if let Some(ca) = ca {
        ct["ca_file"] = serde_json::json!(ca);
    }
    let cfg = serde_json::json!({
        "timeframe": "H1", "log_dir": "log", "state_dir": "state", "clock": "feed",
        "ipc": { "bind": "127.0.0.1:0", "token_file": "secrets/ipc.token" },
        "broker": { "mode": "live", "ctrader": ct },
        "symbols": { "EURUSD": { "enabled": true } }
    });
    common::write_config(dir, &serde_json::to_string_pretty(&cfg).unwrap())
}

fn tokens_file(dir: &Path, access: &str, refresh: &str) {
    TokenStore::new(dir.join("secrets/ct_tokens.json"))
        .save(&Tokens {
            access_token: access.into(),
            refresh_token: refresh.into(),
            expires_at: None,
        })
        .unwrap();
}

/// `executor <args>` with `stdin`, at `RUST_LOG=trace` (to catch a secret logged at any level).
fn executor(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(args)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_no_secret(out: &str, extra: &[&str]) {
    for s in [CLIENT_SECRET, CODE, ACCESS, REFRESH].iter().chain(extra) {
        assert!(!out.contains(s), "{s:?} leaked:\n{out}");
    }
}

#[test]
fn auth_exchanges_the_pasted_redirect_for_tokens_with_the_documented_get() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "demo.ctraderapi.com",
        5035,
        CLIENT_SECRET,
        0,
        None,
    );
    let ok = r#"{"accessToken":"new-access-token-abcdef","tokenType":"bearer","expiresIn":2628000,"refreshToken":"new-refresh-token-ghijkl","errorCode":null,"description":null}"#;
    let ep = TokenEndpoint::start(vec![Answer::Http(200, ok)]);
    let cfg_s = cfg.to_str().unwrap();
    let before = chrono::Utc::now().timestamp();
    let out = executor(
        &[
            "auth",
            "--config",
            cfg_s,
            "--redirect-uri",
            "http://localhost:8080/cb",
            "--token-url",
            &ep.url,
        ],
        &format!("http://localhost:8080/cb?code={CODE}\n"),
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    // The authorization URL, as OpenApiPy's Auth.getAuthUri builds it (values encoded).
    assert!(
        so.contains(&format!(
            "https://openapi.ctrader.com/apps/auth?client_id={SIM_CLIENT_ID}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcb&scope=trading"
        )),
        "{so}"
    );
    assert!(so.contains("executor accounts"), "{so}");
    assert_no_secret(&format!("{so}{se}"), &[]);

    let reqs = ep.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].starts_with("GET /apps/token?"), "{reqs:?}");
    let q = query(&reqs[0]);
    let want: Vec<(String, String)> = [
        ("grant_type", "authorization_code"),
        ("code", CODE),
        ("redirect_uri", "http://localhost:8080/cb"),
        ("client_id", SIM_CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(q, want);

    let path = dir.path().join("secrets/ct_tokens.json");
    let t = TokenStore::new(&path).load().unwrap();
    assert_eq!(
        (t.access_token.as_str(), t.refresh_token.as_str()),
        (ACCESS, REFRESH)
    );
    let exp = t.expires_at.unwrap();
    assert!(
        (before + 2_628_000..=before + 2_628_000 + 60).contains(&exp),
        "{exp}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn auth_refresh_spends_the_stored_refresh_token_and_code_can_be_given_inline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "demo.ctraderapi.com",
        5035,
        CLIENT_SECRET,
        0,
        None,
    );
    tokens_file(dir.path(), "old-access", "old-refresh");
    let ok = r#"{"accessToken":"new-access-token-abcdef","tokenType":"bearer","expiresIn":2628000,"refreshToken":"new-refresh-token-ghijkl","errorCode":null,"description":null}"#;
    let ep = TokenEndpoint::start(vec![Answer::Http(200, ok), Answer::Http(200, ok)]);
    let cfg_s = cfg.to_str().unwrap();
    let out = executor(
        &[
            "auth",
            "--config",
            cfg_s,
            "--refresh",
            "--token-url",
            &ep.url,
        ],
        "",
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert_no_secret(&format!("{so}{se}"), &["old-refresh", "old-access"]);
    let q = query(&ep.requests()[0]);
    let keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["grant_type", "refresh_token", "client_id", "client_secret"]
    );
    assert_eq!(
        (q[0].1.as_str(), q[1].1.as_str()),
        ("refresh_token", "old-refresh")
    );
    let t = TokenStore::new(dir.path().join("secrets/ct_tokens.json"))
        .load()
        .unwrap();
    assert_eq!(t.refresh_token, REFRESH);

    // --code takes the bare code; nothing is read from standard input.
    let out = executor(
        &[
            "auth",
            "--config",
            cfg_s,
            "--redirect-uri",
            "https://example.com/cb",
            "--code",
            CODE,
            "--token-url",
            &ep.url,
        ],
        "",
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        query(&ep.requests()[1])[1],
        ("code".to_string(), CODE.to_string())
    );
}

#[test]
fn auth_errors_leave_the_token_file_untouched_and_print_the_description() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "demo.ctraderapi.com",
        5035,
        CLIENT_SECRET,
        0,
        None,
    );
    tokens_file(dir.path(), "kept-access", "kept-refresh");
    let path = dir.path().join("secrets/ct_tokens.json");
    let before = std::fs::read(&path).unwrap();
    let refused = r#"{"accessToken":null,"tokenType":null,"expiresIn":null,"refreshToken":null,"errorCode":"ACCESS_DENIED","description":"The authorization code is expired"}"#;
    let ep = TokenEndpoint::start(vec![
        Answer::Http(200, refused),
        Answer::Http(400, refused),
        Answer::Http(500, "<html>Internal Server Error</html>"),
        Answer::Http(200, "not json at all"),
        Answer::Http(200, r#"{"accessToken":"only-access"}"#),
    ]);
    let cfg_s = cfg.to_str().unwrap();
    let run = |code: &str| {
        executor(
            &[
                "auth",
                "--config",
                cfg_s,
                "--redirect-uri",
                "https://example.com/cb",
                "--code",
                code,
                "--token-url",
                &ep.url,
            ],
            "",
        )
    };
    for (i, want) in [
        "The authorization code is expired",
        "The authorization code is expired",
        "HTTP 500",
        "not the documented token JSON",
        "no refreshToken",
    ]
    .iter()
    .enumerate()
    {
        let out = run(CODE);
        let (so, se) = text(&out);
        assert!(!out.status.success(), "answer {i}: {so}\n{se}");
        assert!(se.contains(want), "answer {i}: {se}");
        assert_eq!(
            se.lines().filter(|l| l.starts_with("executor:")).count(),
            1,
            "{se}"
        );
        assert_no_secret(
            &format!("{so}{se}"),
            &["kept-access", "kept-refresh", "only-access"],
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "answer {i} touched the token file"
        );
    }

    // A browser sent back with an error instead of a code: nothing is sent at all.
    let n = ep.requests().len();
    let out = executor(
        &[
            "auth",
            "--config",
            cfg_s,
            "--redirect-uri",
            "https://example.com/cb",
            "--token-url",
            &ep.url,
        ],
        "https://example.com/cb?error=access_denied&error_description=The+user+denied+access\n",
    );
    let (_, se) = text(&out);
    assert!(
        !out.status.success() && se.contains("The user denied access"),
        "{se}"
    );
    assert_eq!(ep.requests().len(), n);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn auth_times_out_on_a_silent_endpoint_and_refuses_plain_http_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = config(
        dir.path(),
        "demo.ctraderapi.com",
        5035,
        CLIENT_SECRET,
        0,
        None,
    );
    let ct = ExecutorConfig::load_ctrader(&cfg_path).unwrap();
    let ep = TokenEndpoint::start(vec![Answer::Silence]);
    let req = AuthRequest {
        auth_url: auth::AUTH_URL.into(),
        token_url: ep.url.clone(),
        redirect_uri: Some("https://example.com/cb".into()),
        code: Some(CODE.into()),
        refresh: false,
        timeout: Duration::from_millis(500),
    };
    let start = Instant::now();
    let e = auth::run(&ct, &req, &mut std::io::empty(), &mut Vec::new(), || 0).unwrap_err();
    assert!(matches!(e, AuthError::Http(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        !e.to_string().contains(CLIENT_SECRET) && !e.to_string().contains(CODE),
        "{e}"
    );
    assert!(!dir.path().join("secrets/ct_tokens.json").exists());

    let req = AuthRequest {
        token_url: "http://openapi.ctrader.com/apps/token".into(),
        ..req
    };
    let e = auth::run(&ct, &req, &mut std::io::empty(), &mut Vec::new(), || 0).unwrap_err();
    assert!(matches!(e, AuthError::Url { .. }), "{e:?}");
}

/// The simulator with its default credentials (the system tests' ones).
fn sim(dir: &Path) -> Sim {
    std::fs::create_dir_all(dir.join("simdata")).unwrap();
    let csv =
        std::fs::read_to_string(common::system::repo_root().join("data/demo/EURUSD.csv")).unwrap();
    let head: Vec<&str> = csv.lines().take(760).collect();
    std::fs::write(dir.join("simdata/EURUSD.csv"), head.join("\n") + "\n").unwrap();
    Sim::start(&dir.join("simdata"), &dir.join("sim.pem"), &[], None)
}

#[test]
fn accounts_lists_the_tokens_accounts_before_account_id_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let cfg = config(
        dir.path(),
        "127.0.0.1",
        sim.port,
        SIM_CLIENT_SECRET,
        0,
        Some(&sim.cert),
    );
    tokens_file(dir.path(), SIM_ACCESS_TOKEN, SIM_REFRESH_TOKEN);
    let out = executor(&["accounts", "--config", cfg.to_str().unwrap()], "");
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    let row = so
        .lines()
        .find(|l| l.starts_with(&ACCOUNT.to_string()))
        .unwrap_or_else(|| panic!("no row for {ACCOUNT}:\n{so}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    let login = ctrader_sim::core::trader_login(ACCOUNT).to_string();
    assert_eq!(
        cols[..4],
        [
            ACCOUNT.to_string().as_str(),
            "demo",
            login.as_str(),
            ctrader_sim::core::BROKER_TITLE
        ]
    );
    assert_no_secret(
        &format!("{so}{se}"),
        &[SIM_ACCESS_TOKEN, SIM_REFRESH_TOKEN, SIM_CLIENT_SECRET],
    );

    // Without a token file: the fix is to run `executor auth`.
    std::fs::remove_file(dir.path().join("secrets/ct_tokens.json")).unwrap();
    let out = executor(&["accounts", "--config", cfg.to_str().unwrap()], "");
    let (_, se) = text(&out);
    assert!(
        !out.status.success() && se.contains("executor auth"),
        "{se}"
    );
}

/// `executor run --config <cfg>`, its exit status and stderr, and how long it ran (at most 20 s).
fn run_until_exit(cfg: &Path) -> (std::process::ExitStatus, String, Duration) {
    let log = cfg.with_file_name("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, std::fs::read_to_string(&log).unwrap(), start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after 20 s:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exit_message(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("executor: "))
        .collect();
    assert_eq!(lines.len(), 1, "one exit message:\n{stderr}");
    lines[0]
}

#[test]
fn a_wrong_account_stops_at_once_naming_the_accounts_the_token_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let cfg = config(
        dir.path(),
        "127.0.0.1",
        sim.port,
        SIM_CLIENT_SECRET,
        999,
        Some(&sim.cert),
    );
    tokens_file(dir.path(), SIM_ACCESS_TOKEN, SIM_REFRESH_TOKEN);
    let (status, stderr, took) = run_until_exit(&cfg);
    assert!(!status.success());
    // The first refusal ends startup (the 30 s ready window is not waited out).
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let msg = exit_message(&stderr);
    assert!(
        msg.contains("CH_CTID_TRADER_ACCOUNT_NOT_FOUND") && msg.contains("999"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{ACCOUNT} (demo")),
        "names the reachable account: {msg}"
    );
    assert!(
        msg.contains("broker.ctrader.account_id") && msg.contains("executor accounts"),
        "{msg}"
    );
    assert_eq!(msg.matches("not found").count(), 1, "told once: {msg}");
    assert!(!msg.contains("outcome is unknown"), "{msg}");
    assert_eq!(
        stderr.matches("event=SetupFailed").count(),
        1,
        "not retried:\n{stderr}"
    );
}

#[test]
fn a_wrong_client_secret_stops_with_the_cause_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let cfg = config(
        dir.path(),
        "127.0.0.1",
        sim.port,
        "wrong-secret",
        ACCOUNT,
        Some(&sim.cert),
    );
    tokens_file(dir.path(), SIM_ACCESS_TOKEN, SIM_REFRESH_TOKEN);
    let (status, stderr, took) = run_until_exit(&cfg);
    assert!(
        !status.success() && took < Duration::from_secs(10),
        "{took:?}\n{stderr}"
    );
    let msg = exit_message(&stderr);
    assert!(
        msg.contains("CH_CLIENT_AUTH_FAILURE") && msg.contains("client_id"),
        "{msg}"
    );
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
}

#[test]
fn sigterm_while_the_broker_connection_is_being_set_up_ends_the_executor_at_once() {
    // A server that accepts and never speaks: the TLS handshake waits out its 10 s timeout, and
    // the executor would wait 30 s for a ready connection.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "127.0.0.1",
        port,
        SIM_CLIENT_SECRET,
        ACCOUNT,
        None,
    );
    tokens_file(dir.path(), SIM_ACCESS_TOKEN, SIM_REFRESH_TOKEN);
    let log = dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while held.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the executor never dialled the broker"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "SIGTERM during setup unanswered after 5 s:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("SIGTERM during startup"), "{stderr}");
}
