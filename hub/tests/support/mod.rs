//! The hub's test harness: the shared one (`testkit`: Mosquitto, the fleet CA, the MQTT test
//! client, processes by pid) and what only the hub's tests need: a private PostgreSQL, a `hub
//! serve` process and its HTTP client, synthetic instances.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod fleet_run;
pub mod web;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Re-exported whole: each test file uses its own part of it.
pub use testkit::{Mosquitto, Stopper, free_port, mqtt, pki, procs, wait_port, which};

/// A private PostgreSQL cluster: `initdb` in a temp dir, the server on a free port, listening
/// only on a Unix socket in that dir. Run as an unprivileged user when the test runs as root
/// (PostgreSQL refuses root).
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    stopper: Stopper,
}

impl Postgres {
    pub fn start() -> Postgres {
        let extra = [
            "/usr/lib/postgresql/15/bin",
            "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/17/bin",
        ];
        let initdb = which("initdb", &extra).expect(
            "initdb is needed: apt-get install -y postgresql (scripts/test.sh installs it)",
        );
        let postgres = initdb.with_file_name("postgres");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = d.join("data");
        let mut init = Command::new(&initdb);
        init.args(["-D"])
            .arg(&data)
            .args(["-U", "hub", "--auth=trust", "-E", "UTF8", "--no-locale"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        procs::as_unprivileged(&mut init, d, "postgres");
        let out = init.output().unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = d.join("postgres.log");
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&postgres);
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", d.display()))
                .args(["-c", "fsync=off"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            procs::as_unprivileged(&mut cmd, d, "postgres");
            let mut child = cmd.spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut up = false;
            while Instant::now() < deadline {
                if std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("ready to accept connections")
                {
                    up = true;
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                let stopper = Stopper::new(child.id());
                return Postgres {
                    dir,
                    port,
                    child: Some(child),
                    stopper,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "postgres did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A URL for a fresh database `name` (created here).
    pub fn database(&self, name: &str) -> String {
        let base = format!("postgres://hub@127.0.0.1:{}/postgres", self.port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::Executor::execute(
                &mut c,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
        });
        format!("postgres://hub@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT: PostgreSQL's "fast shutdown" (postgres(1), server shutdown).
            self.stopper.signal(nix::sys::signal::Signal::SIGINT);
            let _ = c.wait();
        }
    }
}
