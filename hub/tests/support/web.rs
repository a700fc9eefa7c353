//! A `hub serve` process for tests (its own config dir, SQLite or a given database), and an HTTP
//! client that keeps the session cookie and CSRF token by hand (so tests can also omit them).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Mosquitto, Stopper};

pub struct HubProc {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub url: String,
    pub password: String,
    pub public_key: String,
    child: Option<Child>,
    stopper: Option<Stopper>,
}

impl HubProc {
    /// Writes a config (loopback on a free port, cookie_secure as in production) and starts it.
    pub fn start(broker: &Mosquitto, database: Option<String>) -> HubProc {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = hub::keys::create_signing_key(&d.join("hub_key")).unwrap();
        hub::keys::write_secret(&d.join("broker_password"), &broker.hub_password, false).unwrap();
        let password = hub::keys::random_token();
        let hash = hub::auth::hash_password(&password).unwrap();
        let database =
            database.unwrap_or_else(|| format!("sqlite://{}", d.join("hub.db").display()));
        let cfg = json!({
            "listen": "127.0.0.1:0",
            "database": database,
            "broker": {
                "url": broker.url(),
                "ca_file": broker.ca(),
                "username": "hub",
                "password_file": "broker_password",
                "client_id": "oracle-hub-test"
            },
            "operator": { "username": "operator", "password_hash": hash },
            "key_file": "hub_key",
            "command_ttl_secs": 30
        });
        let config = d.join("hub.json");
        std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let mut h = HubProc {
            dir,
            config,
            url: String::new(),
            password,
            public_key: fleet::signed::encode_public_key(&key.verifying_key()),
            child: None,
            stopper: None,
        };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hub.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("hub: dashboard on ") {
                    let _ = tx.send(rest.trim_end_matches('/').to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.url = url,
            Err(_) => panic!("hub did not start: {}", self.log()),
        }
        self.stopper = Some(Stopper::new(child.id()));
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    /// SIGTERM by pid, then wait (SIGKILL after 15 s, so a hung hub fails its test instead of
    /// hanging it).
    pub fn stop(&mut self) {
        if let (Some(mut c), Some(s)) = (self.child.take(), self.stopper.take()) {
            s.terminate();
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            s.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM by pid at once, then its exit status (`None`: still running 15 s later, then
    /// SIGKILLed).
    pub fn terminate_now(&mut self) -> Option<std::process::ExitStatus> {
        let (mut c, s) = (self.child.take()?, self.stopper.take()?);
        s.terminate();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        s.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = c.wait();
        None
    }

    /// SIGKILL by pid: the worst moment, whatever it is doing.
    pub fn kill(&mut self) {
        if let (Some(mut c), Some(s)) = (self.child.take(), self.stopper.take()) {
            s.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// Starts it again on the same config and database (a new port).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn pid(&self) -> Option<i32> {
        self.stopper.map(|s| s.pid())
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP client with an optional session.
pub struct Web {
    agent: ureq::Agent,
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Web {
    pub fn new(base: &str) -> Web {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Web {
            agent,
            base: base.to_string(),
            cookie: None,
            csrf: None,
        }
    }

    fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let r = r.unwrap();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.into_body().read_to_string().unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        Self::reply(req.call())
    }

    /// POST JSON with the session and CSRF token this client holds (either may be None).
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, body, &[])
    }

    pub fn post_with(&self, path: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("X-CSRF-Token", t);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        Self::reply(req.send_json(body))
    }

    pub fn login_raw(&self, user: &str, password: &str) -> Reply {
        Self::reply(
            self.agent
                .post(format!("{}/login", self.base))
                .send_form([("username", user), ("password", password)]),
        )
    }

    /// Logs in and fetches the CSRF token.
    pub fn login(&mut self, password: &str) {
        let r = self.login_raw("operator", password);
        assert_eq!(r.status, 303, "{}", r.body);
        let set = r
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict"),
            "{set}"
        );
        self.cookie = Some(set.split(';').next().unwrap().to_string());
        let s = self.get("/api/session");
        assert_eq!(s.status, 200);
        self.csrf = Some(s.json()["csrf"].as_str().unwrap().to_string());
    }

    /// Polls `f` on GET `path` until it returns Some, up to `secs`.
    pub fn wait<T>(
        &self,
        path: &str,
        secs: u64,
        mut f: impl FnMut(&Value) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            let r = self.get(path);
            if r.status == 200
                && let Some(t) = f(&r.json())
            {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}
