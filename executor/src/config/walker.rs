//! The config's walker: collects every problem (field, what is wrong, the fix) instead of stopping
//! at the first, and reads typed fields out of a `serde_json::Value` with their defaults.

use std::path::{Path, PathBuf};

use protocol::Timeframe;
use serde_json::{Map, Value};

use super::{ConfigProblem, PLACEHOLDER};
use crate::secrets::{self, SecretError};

pub(super) struct Walker {
    pub(super) problems: Vec<ConfigProblem>,
    pub(super) notes: Vec<String>,
    pub(super) base: PathBuf,
}

impl Walker {
    /// Relative paths are resolved against the config file's directory.
    pub(super) fn new(path: &Path) -> Self {
        Walker {
            problems: Vec::new(),
            notes: Vec::new(),
            base: path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    pub(super) fn problem(
        &mut self,
        field: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(ConfigProblem {
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(super) fn object<'a>(
        &mut self,
        v: &'a Value,
        field: &str,
    ) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.problem(
                    field,
                    format!("expected an object, found {}", kind(other)),
                    "write a JSON object { ... }",
                );
                None
            }
        }
    }

    pub(super) fn unknown_keys(&mut self, m: &Map<String, Value>, prefix: &str, allowed: &[&str]) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.problem(
                    &join(prefix, k),
                    "unknown key",
                    format!("remove it or use one of: {}", allowed.join(", ")),
                );
            }
        }
    }

    pub(super) fn f64_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
        default: f64,
        check: fn(f64) -> bool,
        rule: &str,
    ) -> f64 {
        let field = join(prefix, key);
        match m.get(key) {
            None => default,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && check(x) => x,
                _ => {
                    self.problem(&field, format!("{n} is out of range"), rule.to_string());
                    default
                }
            },
            Some(other) => {
                self.problem(
                    &field,
                    format!("expected a number, found {}", kind(other)),
                    rule.to_string(),
                );
                default
            }
        }
    }

    pub(super) fn opt_f64_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
        check: fn(f64) -> bool,
        rule: &str,
    ) -> Option<f64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(_) => Some(self.f64_field(m, prefix, key, 0.0, check, rule)),
        }
    }

    pub(super) fn u64_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
        default: u64,
    ) -> u64 {
        let field = join(prefix, key);
        match m.get(key) {
            None => default,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(default),
            Some(other) => {
                self.problem(
                    &field,
                    format!("expected a non-negative integer, found {other}"),
                    "write a whole number such as 60",
                );
                default
            }
        }
    }

    pub(super) fn bool_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Option<bool> {
        match m.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    &join(prefix, key),
                    format!("expected true or false, found {}", kind(other)),
                    "write true or false (no quotes)",
                );
                None
            }
        }
    }

    pub(super) fn str_field<'a>(
        &mut self,
        m: &'a Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Option<&'a str> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.problem(
                    &join(prefix, key),
                    format!("expected a string, found {}", kind(other)),
                    "write a quoted string",
                );
                None
            }
        }
    }

    pub(super) fn path_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Option<PathBuf> {
        self.str_field(m, prefix, key).map(|s| self.resolve(s))
    }

    pub(super) fn resolve(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn timeframe(
        &mut self,
        s: Option<&str>,
        field: &str,
        default: Timeframe,
    ) -> Timeframe {
        let Some(s) = s else { return default };
        match s.parse::<Timeframe>() {
            Ok(tf) if tf.duration_secs().is_some() => tf,
            Ok(_) => {
                self.problem(
                    field,
                    format!("{s} has no fixed length: the live bar builder (and the CSV replay) close bars by a fixed period"),
                    "use M1..W1",
                );
                default
            }
            Err(_) => {
                self.problem(
                    field,
                    format!("{s:?} is not a timeframe"),
                    "use one of M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1",
                );
                default
            }
        }
    }

    /// Values still holding a shipped example's placeholder (`REPLACE_WITH_…`, as in
    /// systemd/*.example.json): a config that looks complete but would be refused by the broker.
    pub(super) fn placeholders(&mut self, v: &Value, field: &str) {
        match v {
            Value::String(s) if s.to_ascii_uppercase().starts_with(PLACEHOLDER) => {
                let fix = match field {
                    "broker.ctrader.client_id" => "the Client ID of your Open API application (openapi.ctrader.com/apps, \"Credentials\"); see docs/OPERATIONS.md, \"From the demo to a cTrader demo account\"".to_string(),
                    _ => format!("replace {s:?} with your own value"),
                };
                self.problem(field, format!("{s:?} is the example's placeholder"), fix);
            }
            Value::Object(m) => {
                for (k, v) in m {
                    if k != "_comment" {
                        self.placeholders(v, &join(field, k));
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.placeholders(v, &format!("{field}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// A secret file: must exist and be 0600 (or stricter).
    pub(super) fn secret_file(&mut self, field: &str, path: &Path) {
        if let Err(e) = secrets::check_secret_file(path) {
            self.secret_problem(field, path, &e);
        }
    }

    pub(super) fn secret_problem(&mut self, field: &str, path: &Path, e: &SecretError) {
        let fix = match e {
            SecretError::LoosePermissions { .. } => format!("chmod 600 {}", path.display()),
            SecretError::Empty { .. } => format!("write the secret into {}", path.display()),
            SecretError::Read { .. } => {
                format!("create {} with the secret and chmod 600 it", path.display())
            }
            SecretError::NotAFile { .. } => {
                format!("point {field} at the file holding the secret")
            }
            SecretError::TooLarge { .. } => {
                format!("put only the secret in {}", path.display())
            }
        };
        self.problem(field, e.to_string(), fix);
    }
}

pub(super) fn valid_lot(x: f64) -> bool {
    x > 0.0 && x <= 1000.0
}

pub(super) fn valid_pct(x: f64) -> bool {
    x > 0.0 && x <= 100.0
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
