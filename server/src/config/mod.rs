//! Configuration: the settings table, wire options from every source, and resolved settings.
//!
//! Sources, from weakest to strongest: built-in defaults, environment variables, command-line
//! flags, then the editor (`initializationOptions`, `workspace/configuration`,
//! `didChangeConfiguration`). Wire options are all optional; resolving never fails: a bad key or
//! value is reported as a [`Problem`] and the default stays in force, except for the few settings
//! whose default is costly ([`NO_FALLBACK`]: the model), where the bad value is kept as an empty
//! one that their reader reports.

use serde_json::{Map, Value};

mod settings;

pub use crate::prompt::FimMode;
pub use settings::{Download, Remote, RemoteApi, Sampling, Settings, DEFAULT_MODEL, SETTINGS};

/// The kind of value a setting takes, for validation and for generating editor schemas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    String,
    Bool,
    /// An integer with an inclusive range.
    Integer {
        min: i64,
        max: i64,
    },
    /// A number with an inclusive range.
    Number {
        min: f64,
        max: f64,
    },
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A list of strings.
    StringList,
}

/// One entry of the settings table.
#[derive(Debug)]
pub struct SettingDef {
    /// Dotted camelCase key, as editors spell it: `fim.mode`.
    pub key: &'static str,
    pub kind: Kind,
    /// The default as JSON text, so the table can stay `const`.
    pub default: &'static str,
    pub description: &'static str,
    /// Environment variable that sets it, if any.
    pub env: Option<&'static str>,
}

/// A key or value that was ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// Settings whose default must not stand in for a bad value, because using it costs what nobody
/// asked for (the default model is a 4.4 GB download). A bad value becomes the empty string, which
/// the setting's reader reports as an error (`ModelSpec::parse` for the model).
const NO_FALLBACK: &[&str] = &["model"];

/// Wire options: every key optional, values already checked against the table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    values: Map<String, Value>,
}

impl Options {
    /// Reads options from JSON (nested objects or dotted keys), collecting problems.
    ///
    /// `source` names where they came from, for messages. A `mistral-lsp` or `mistralLsp` wrapper
    /// object, as editors send under their section name, is unwrapped.
    pub fn from_json(value: &Value, source: &str, problems: &mut Vec<Problem>) -> Options {
        let mut options = Options::default();
        let value = unwrap_section(value);
        match value {
            Value::Null => {}
            Value::Object(map) => {
                let mut flat = Vec::new();
                flatten("", map, &mut flat);
                for (key, value) in flat {
                    options.set(source, &key, value, problems);
                }
            }
            other => problems.push(Problem {
                source: source.to_owned(),
                message: format!("expected an object of settings, got {other}"),
            }),
        }
        options
    }

    /// Reads the environment variables named in the table.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) -> Options {
        let mut options = Options::default();
        for def in SETTINGS {
            let Some(var) = def.env else { continue };
            let Some(raw) = lookup(var) else { continue };
            if raw.is_empty() {
                continue;
            }
            let value = parse_text(def.kind, &raw);
            options.set(&format!("environment variable {var}"), def.key, value, problems);
        }
        options
    }

    /// Sets one dotted key from text, as a command-line flag gives it.
    pub fn set_text(&mut self, source: &str, key: &str, raw: &str, problems: &mut Vec<Problem>) {
        match find(key) {
            Some(def) => self.set(source, key, parse_text(def.kind, raw), problems),
            None => self.set(source, key, Value::String(raw.to_owned()), problems),
        }
    }

    fn set(&mut self, source: &str, key: &str, value: Value, problems: &mut Vec<Problem>) {
        let Some(def) = find(key) else {
            problems.push(Problem { source: source.to_owned(), message: format!("unknown setting `{key}` ignored") });
            return;
        };
        if value.is_null() {
            return;
        }
        match check(def.kind, &value) {
            Ok(()) => {
                let value = match def.key {
                    "threads" => {
                        let (value, clamped) = cap_threads(value, thread_limit());
                        problems.extend(clamped.map(|message| Problem { source: source.to_owned(), message }));
                        value
                    }
                    _ => value,
                };
                self.values.insert(def.key.to_owned(), value);
            }
            Err(expected) if NO_FALLBACK.contains(&def.key) => {
                problems.push(Problem {
                    source: source.to_owned(),
                    message: format!("`{key}` must be {expected}, got {value}; nothing is used until it is fixed"),
                });
                self.values.insert(def.key.to_owned(), Value::String(String::new()));
            }
            Err(expected) => problems.push(Problem {
                source: source.to_owned(),
                message: format!("`{key}` must be {expected}, got {value}; using the default"),
            }),
        }
    }

    /// Layers `other` on top of `self`: keys set in `other` win.
    pub fn merge(&mut self, other: &Options) {
        for (key, value) in &other.values {
            self.values.insert(key.clone(), value.clone());
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn unwrap_section(value: &Value) -> &Value {
    if let Value::Object(map) = value {
        if map.len() == 1 {
            for section in ["mistral-lsp", "mistralLsp"] {
                if let Some(inner) = map.get(section) {
                    return inner;
                }
            }
        }
    }
    value
}

fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (key, value) in map {
        let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            // An object is a group of settings unless the table knows the key itself.
            Value::Object(inner) if find(&full).is_none() => flatten(&full, inner, out),
            _ => out.push((full, value.clone())),
        }
    }
}

fn find(key: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|def| def.key == key)
}

fn parse_text(kind: Kind, raw: &str) -> Value {
    match kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Value::Bool(true),
            "0" | "false" | "no" | "off" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        Kind::Integer { .. } => {
            raw.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.to_owned()))
        }
        Kind::Number { .. } => {
            raw.trim().parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.to_owned()))
        }
        Kind::StringList => Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        ),
        Kind::String | Kind::Enum(_) => Value::String(raw.to_owned()),
    }
}

/// The most model threads worth starting: one per hardware thread this process may use (CPU
/// affinity and cgroup quotas included). More only wait for each other, and each is a real thread.
fn thread_limit() -> Option<u64> {
    std::thread::available_parallelism().ok().map(|threads| threads.get() as u64)
}

/// Clamps a `threads` value to `limit`, with the message that says so; an unknown limit clamps
/// nothing.
fn cap_threads(value: Value, limit: Option<u64>) -> (Value, Option<String>) {
    match (value.as_u64(), limit) {
        (Some(threads), Some(limit)) if threads > limit => (
            Value::from(limit),
            Some(format!("`threads` is {threads} but this machine runs {limit} threads at once; clamped to {limit}")),
        ),
        _ => (value, None),
    }
}

fn check(kind: Kind, value: &Value) -> Result<(), String> {
    match kind {
        Kind::String if value.is_string() => Ok(()),
        Kind::String => Err("a string".into()),
        Kind::Bool if value.is_boolean() => Ok(()),
        Kind::Bool => Err("true or false".into()),
        Kind::Integer { min, max } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("an integer from {min} to {max}")),
        },
        Kind::Number { min, max } => match value.as_f64() {
            Some(n) if n >= min && n <= max => Ok(()),
            _ => Err(format!("a number from {min} to {max}")),
        },
        Kind::Enum(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(()),
            _ => Err(format!("one of {}", choices.join(", "))),
        },
        Kind::StringList => match value.as_array() {
            Some(items) if items.iter().all(Value::is_string) => Ok(()),
            _ => Err("a list of strings".into()),
        },
    }
}

#[cfg(test)]
mod tests;

/// The settings as VS Code `contributes.configuration.properties`, keyed `mistralLsp.KEY`.
///
/// Editor clients generate their settings from this, and a test fails when they drift.
pub fn editor_schema() -> Value {
    let mut properties = Map::new();
    for def in SETTINGS {
        let mut entry = Map::new();
        let (kind, extra): (&str, Vec<(&str, Value)>) = match def.kind {
            Kind::String => ("string", vec![]),
            Kind::Bool => ("boolean", vec![]),
            Kind::Integer { min, max } => ("integer", vec![("minimum", min.into()), ("maximum", max.into())]),
            Kind::Number { min, max } => ("number", vec![("minimum", min.into()), ("maximum", max.into())]),
            Kind::Enum(choices) => ("string", vec![("enum", choices.iter().map(|c| Value::from(*c)).collect())]),
            Kind::StringList => ("array", vec![("items", serde_json::json!({"type": "string"}))]),
        };
        entry.insert("type".into(), kind.into());
        entry.insert("default".into(), serde_json::from_str(def.default).unwrap_or(Value::Null));
        let mut description = def.description.to_owned();
        if let Some(var) = def.env {
            description.push_str(&format!(" Environment variable: {var}."));
        }
        entry.insert("markdownDescription".into(), description.into());
        for (key, value) in extra {
            entry.insert(key.into(), value);
        }
        properties.insert(format!("mistralLsp.{}", def.key), Value::Object(entry));
    }
    Value::Object(properties)
}
