//! Broker credentials: `hub add-instance` / `hub remove-instance` (docs/HUB.md §Adding an instance).
//!
//! The broker is Mosquitto with a `password_file` and a static `pattern` ACL (hub/mosquitto/), so an
//! instance is one password-file line: its username is its instance id, its password a random
//! token. The line is written by Mosquitto's own `mosquitto_passwd` (mosquitto_passwd(1); the token
//! goes on its standard input, never on a command line other users can read in /proc). A running
//! broker reads the file again on SIGHUP: mosquitto.conf(5), `password_file`: "Reloaded on reload
//! signal. The currently loaded username and password data will be freed and reloaded. Clients that
//! are already connected will not be affected." (`systemctl reload mosquitto` sends it on Debian.)

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fleet::InstanceId;

use crate::keys::{random_token, write_secret};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("instance id {0:?} is the hub's own broker username; choose another id")]
    Reserved(String),
    #[error(
        "{0} exists: instance already added (use --rotate to give it a new token, or remove-instance)"
    )]
    Exists(PathBuf),
    #[error(
        "cannot run {tool}: {source} (fix: apt-get install mosquitto, or pass --mosquitto-passwd)"
    )]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the executor needs to join the fleet, as the instance will see it.
#[derive(Debug, Clone)]
pub struct InstanceLink {
    /// `mqtts://host:8883`.
    pub broker: String,
    pub ca_file: Option<String>,
    /// Where the token file will be on the instance.
    pub token_file: String,
    pub hub_public_key: String,
    pub telemetry_secs: u64,
}

/// The executor config `hub` section (docs/HUB.md §Executor config).
pub fn executor_snippet(id: &InstanceId, link: &InstanceLink) -> String {
    let mut hub = serde_json::Map::new();
    hub.insert("broker".into(), link.broker.clone().into());
    if let Some(ca) = &link.ca_file {
        hub.insert("ca_file".into(), ca.clone().into());
    }
    hub.insert("instance_id".into(), id.as_str().into());
    hub.insert("token_file".into(), link.token_file.clone().into());
    hub.insert("hub_public_key".into(), link.hub_public_key.clone().into());
    hub.insert("telemetry_secs".into(), link.telemetry_secs.into());
    let doc = serde_json::json!({ "hub": hub });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The broker-side files.
#[derive(Debug, Clone)]
pub struct BrokerFiles {
    /// Mosquitto's `password_file`.
    pub password_file: PathBuf,
    /// Where the hub keeps one `<id>.token` per instance (0600), to hand to the instance.
    pub token_dir: PathBuf,
    /// The hub's own username (refused as an instance id).
    pub hub_username: String,
    /// `mosquitto_passwd` (found on PATH by default).
    pub mosquitto_passwd: PathBuf,
}

impl BrokerFiles {
    pub fn token_path(&self, id: &InstanceId) -> PathBuf {
        self.token_dir.join(format!("{id}.token"))
    }
}

/// Runs `mosquitto_passwd` with `args`, feeding `stdin`; keeps the password file's owner, group and
/// mode (mosquitto_passwd rewrites the file; the broker, running as `mosquitto`, must still read it).
fn passwd_tool(files: &BrokerFiles, args: &[&str], stdin: &str) -> Result<(), BrokerError> {
    let pf = &files.password_file;
    if !pf.exists() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(pf)
            .map_err(io(pf))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(io(pf))?;
    }
    let meta = std::fs::metadata(pf).map_err(io(pf))?;
    let tool = files.mosquitto_passwd.display().to_string();
    let mut child = Command::new(&files.mosquitto_passwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BrokerError::Spawn {
            tool: tool.clone(),
            source,
        })?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).map_err(io(pf))?;
    }
    let out = child.wait_with_output().map_err(io(pf))?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        stderr.truncate(500);
        return Err(BrokerError::Tool {
            tool,
            status: out.status.to_string(),
            stderr,
        });
    }
    std::fs::set_permissions(pf, std::fs::Permissions::from_mode(meta.mode() & 0o777))
        .map_err(io(pf))?;
    // Restoring the owner needs the privilege that wrote the file in the first place; an operator
    // without it keeps the file as mosquitto_passwd left it (their own).
    let _ = std::os::unix::fs::chown(pf, Some(meta.uid()), Some(meta.gid()));
    Ok(())
}

/// Creates (or with `rotate`, replaces) an instance's broker credential and its 0600 token file.
/// Returns the token file's path.
pub fn add_instance(
    files: &BrokerFiles,
    id: &InstanceId,
    rotate: bool,
) -> Result<PathBuf, BrokerError> {
    if id.as_str() == files.hub_username {
        return Err(BrokerError::Reserved(id.to_string()));
    }
    let token_path = files.token_path(id);
    if token_path.exists() && !rotate {
        return Err(BrokerError::Exists(token_path));
    }
    std::fs::create_dir_all(&files.token_dir).map_err(io(&files.token_dir))?;
    let token = random_token();
    let pf = files.password_file.display().to_string();
    // Interactive mode reads the password twice from standard input (mosquitto_passwd(1)).
    passwd_tool(files, &[&pf, id.as_str()], &format!("{token}\n{token}\n"))?;
    write_secret(&token_path, &token, true).map_err(io(&token_path))?;
    Ok(token_path)
}

/// Sets the hub's own broker credential: a fresh token in `password_out` (0600, the hub config's
/// `broker.password_file`) and its line in the broker's password file.
pub fn set_hub_user(files: &BrokerFiles, password_out: &Path) -> Result<(), BrokerError> {
    let token = random_token();
    let pf = files.password_file.display().to_string();
    passwd_tool(
        files,
        &[&pf, &files.hub_username],
        &format!("{token}\n{token}\n"),
    )?;
    write_secret(password_out, &token, true).map_err(io(password_out))
}

/// Deletes an instance's credential (`mosquitto_passwd -D`) and its token file.
pub fn remove_instance(files: &BrokerFiles, id: &InstanceId) -> Result<(), BrokerError> {
    let pf = files.password_file.display().to_string();
    passwd_tool(files, &["-D", &pf, id.as_str()], "")?;
    let tp = files.token_path(id);
    match std::fs::remove_file(&tp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&tp)(e)),
        _ => Ok(()),
    }
}
