//! Test harness shared by the hub's and the executor's tests: a real Mosquitto started from the
//! shipped `hub/mosquitto/` config on a free port in a private temp dir, a throwaway fleet CA, an
//! MQTT v5 test client over the fleet's own connection options, and processes stopped by their
//! own pid. Nothing here touches a process it did not start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

pub mod mqtt;
pub mod pki;
pub mod procs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use procs::Stopper;

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finds a binary on PATH or Debian's locations.
pub fn which(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A Mosquitto started from hub/mosquitto/oracle-fleet.conf and its ACL, with only the paths and
/// the listener rewritten to a private dir and a free loopback port.
pub struct Mosquitto {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub passwd: PathBuf,
    pub tokens: PathBuf,
    pub hub_password: String,
    pub pki: pki::Pki,
    child: Option<Child>,
    stopper: Stopper,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let bin = which("mosquitto", &["/usr/sbin"]).expect(
            "mosquitto is needed: apt-get install -y mosquitto (scripts/test.sh installs it)",
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pki = pki::Pki::create(d);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/mosquitto");
        let conf = std::fs::read_to_string(repo.join("oracle-fleet.conf")).unwrap();
        std::fs::copy(repo.join("acl"), d.join("acl")).unwrap();
        let passwd = d.join("passwd");
        let tokens = d.join("instances");
        let files = hub::broker::BrokerFiles {
            password_file: passwd.clone(),
            token_dir: tokens.clone(),
            hub_username: "hub".into(),
            mosquitto_passwd: which("mosquitto_passwd", &["/usr/bin"]).unwrap(),
        };
        let hub_pw_file = d.join("hub_password");
        hub::broker::set_hub_user(&files, &hub_pw_file).unwrap();
        let hub_password = hub::config::read_secret(&hub_pw_file).unwrap();
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let text = conf
                .replace("/etc/mosquitto/oracle/", &format!("{}/", d.display()))
                .replace("/etc/mosquitto/certs/", &format!("{}/", d.display()))
                .replace("listener 8883", &format!("listener {port} 127.0.0.1"));
            assert!(text.contains(&format!("listener {port} 127.0.0.1")));
            let conf_path = d.join("mosquitto.conf");
            std::fs::write(&conf_path, format!("{text}\nlog_dest stderr\nlog_type all\npersistence true\npersistence_location {}/\n", d.display())).unwrap();
            let log = d.join("mosquitto.log");
            let mut cmd = Command::new(&bin);
            cmd.arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            procs::as_unprivileged(&mut cmd, d, "mosquitto");
            let mut child = cmd.spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            if up {
                let stopper = Stopper::new(child.id());
                return Mosquitto {
                    dir,
                    port,
                    passwd,
                    tokens,
                    hub_password,
                    pki,
                    child: Some(child),
                    stopper,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("mosquitto did not start: {last_log}");
    }

    pub fn url(&self) -> String {
        format!("mqtts://localhost:{}", self.port)
    }

    pub fn files(&self) -> hub::broker::BrokerFiles {
        hub::broker::BrokerFiles {
            password_file: self.passwd.clone(),
            token_dir: self.tokens.clone(),
            hub_username: "hub".into(),
            mosquitto_passwd: which("mosquitto_passwd", &["/usr/bin"]).unwrap(),
        }
    }

    /// `hub add-instance`, then SIGHUP so the running broker reads the password file again.
    pub fn add_instance(&self, id: &str) -> String {
        let id = fleet::InstanceId::new(id).unwrap();
        let token_path = hub::broker::add_instance(&self.files(), &id, false).unwrap();
        self.reload();
        hub::config::read_secret(&token_path).unwrap()
    }

    pub fn reload(&self) {
        self.stopper.signal(nix::sys::signal::Signal::SIGHUP);
        // The reload is asynchronous in the broker's loop; it logs when done.
        let log = self.dir.path().join("mosquitto.log");
        let before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("Reloading")
            .count();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let now = std::fs::read_to_string(&log).unwrap_or_default();
            if now.matches("Reloading").count() > before || now.contains("Reloading config") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn ca(&self) -> PathBuf {
        self.pki.ca.clone()
    }

    /// Stops the broker (SIGTERM, by pid) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.stopper.terminate();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and files (its persistence file keeps sessions).
    pub fn restart(&mut self) {
        self.stop();
        let bin = which("mosquitto", &["/usr/sbin"]).unwrap();
        let d = self.dir.path();
        let log = d.join("mosquitto.log");
        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(d.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap());
        procs::as_unprivileged(&mut cmd, d, "mosquitto");
        let mut child = cmd.spawn().unwrap();
        wait_port(self.port, &mut child, &log, "mosquitto");
        self.stopper = Stopper::new(child.id());
        self.child = Some(child);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
