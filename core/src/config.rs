//! The configuration model (DESIGN section 4) and its loading with figment: the TOML file,
//! then `POSTFLIGHT_<KEY>` environment variables (`__` between levels) on top.
//!
//! Errors name the file, the key and, where the key can be found in the file, the line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer};

use crate::model::Level;
use crate::paths::ConfigLocation;

/// `send_timeout` when nothing sets it.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The level when nothing sets it.
pub const DEFAULT_LEVEL: Level = Level::Errors;
/// The name of the built-in account used when no account is configured.
pub const DEFAULT_ACCOUNT: &str = "default";
/// Top-level keys; environment variables are only taken as config when they start with one.
const TOP_LEVEL_KEYS: [&str; 6] = [
    "plugin_path",
    "defaults",
    "accounts",
    "tasks",
    "plugins",
    "outbox",
];

/// A list of addresses: in the file a list, or one string split on commas and newlines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients(pub Vec<String>);

impl Recipients {
    /// Splits every entry on commas and newlines, trims, drops empties.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Recipients {
        Recipients(
            entries
                .into_iter()
                .flat_map(|entry| entry.split([',', '\n', '\r']))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected an address string (commas or newlines between several) or a list of addresses")
        })? {
            Raw::One(s) => Ok(Recipients::parse([s.as_str()])),
            Raw::Many(list) => Ok(Recipients::parse(list.iter().map(String::as_str))),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Plugin directories searched before the default places.
    #[serde(default)]
    pub plugin_path: Vec<PathBuf>,
    /// What every task inherits.
    #[serde(default)]
    pub defaults: Defaults,
    /// Sending accounts by name.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Tasks by key (`--task KEY`).
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskConfig>,
    /// Plugin selection.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Outbox behaviour.
    #[serde(default)]
    pub outbox: OutboxConfig,
}

/// `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Account name.
    pub account: Option<String>,
    /// Notification level.
    pub level: Option<Level>,
    /// Recipients.
    pub to: Option<Recipients>,
    /// Subject template.
    pub subject: Option<String>,
    /// Body template.
    pub body: Option<String>,
    /// One delivery attempt's limit, connection included.
    #[serde(default, with = "humantime_serde")]
    pub send_timeout: Option<Duration>,
    /// With level `changes`: repeat while still failing.
    #[serde(default, with = "humantime_serde")]
    pub remind_every: Option<Duration>,
}

/// `[accounts.NAME]`: `transport` and `from` are postflight's; every other key belongs to the
/// transport and is checked against the plugin's settings schema.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountConfig {
    /// A transport name some plugin provides.
    pub transport: String,
    /// Sender; the local user at this host when absent.
    pub from: Option<String>,
    /// The transport's settings as written (secrets not yet resolved).
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// `[tasks.KEY]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// `##Task Name##`; the key when absent.
    pub name: Option<String>,
    /// Notification level.
    pub level: Option<Level>,
    /// Recipients.
    pub to: Option<Recipients>,
    /// Account name.
    pub account: Option<String>,
    /// Subject template.
    pub subject: Option<String>,
    /// Body template.
    pub body: Option<String>,
    /// Exit codes that mean success (default `[0]`).
    pub success_codes: Option<Vec<i32>>,
    /// Exit codes that mean "succeeded with warnings".
    pub warning_codes: Option<Vec<i32>>,
    /// With level `changes`: repeat while still failing.
    #[serde(default, with = "humantime_serde")]
    pub remind_every: Option<Duration>,
    /// One delivery attempt's limit for this task's notifications.
    #[serde(default, with = "humantime_serde")]
    pub send_timeout: Option<Duration>,
}

/// `[plugins]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// transport name -> plugin name or library path that wins when several provide it.
    #[serde(default)]
    pub prefer: BTreeMap<String, String>,
}

/// `[outbox]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// How long a queued notification keeps being retried before it moves to `failed/`.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

/// A configuration problem: what, where, how to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// The file, when the problem is in one.
    pub file: Option<PathBuf>,
    /// The dotted key, when known.
    pub key: Option<String>,
    /// The 1-based line, when the key could be found in the file.
    pub line: Option<usize>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            file: None,
            key: None,
            line: None,
            hint: None,
        }
    }

    /// Adds the key.
    pub fn at_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(match self.line {
                Some(line) => format!("{}:{line}", file.display()),
                None => file.display().to_string(),
            });
        }
        if let Some(key) = &self.key {
            place.push(format!("key `{key}`"));
        }
        if !place.is_empty() {
            write!(f, "{}: ", place.join(", "))?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The file it was read from (`None`: no file, built-in defaults and environment only).
    pub file: Option<PathBuf>,
}

/// Loads the file at `location` (a missing file is fine unless it was named explicitly) with
/// `POSTFLIGHT_*` environment overrides.
pub fn load(location: Option<&ConfigLocation>) -> Result<LoadedConfig, ConfigError> {
    let mut figment = Figment::new();
    let mut file = None;
    let mut text = None;
    if let Some(location) = location {
        match std::fs::read_to_string(&location.path) {
            Ok(contents) => {
                // Parse once ourselves: toml's syntax errors carry line and column.
                if let Err(e) = contents.parse::<toml::Table>() {
                    return Err(syntax_error(&location.path, &contents, &e));
                }
                figment = figment.merge(Toml::string(&contents));
                text = Some(contents);
                file = Some(location.path.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !location.explicit => {}
            Err(e) => {
                return Err(ConfigError {
                    message: format!("cannot read the config file: {e}"),
                    file: Some(location.path.clone()),
                    key: None,
                    line: None,
                    hint: Some(
                        "check the path given with --config or POSTFLIGHT_CONFIG (unset it to run with built-in defaults)".into(),
                    ),
                });
            }
        }
    }
    figment = figment.merge(EnvOverrides::new());
    let config: Config = figment
        .extract()
        .map_err(|e| figment_error(e, file.as_deref(), text.as_deref()))?;
    Ok(LoadedConfig { config, file })
}

/// The `POSTFLIGHT_<KEY>` variables (`__` between levels) as figment data. Values under
/// `accounts.` are kept as the strings they are: they belong to a transport, whose schema
/// types them (`core::secret` turns `"587"` and `"true"` into the integer or boolean it
/// declares), and guessing would change them (`0123456` would lose its zero, `true` would stop
/// being text). Every other key is parsed by figment as its `Env` provider does.
struct EnvOverrides(Env);

impl EnvOverrides {
    fn new() -> Self {
        EnvOverrides(Env::prefixed("POSTFLIGHT_").split("__").filter(|key| {
            // POSTFLIGHT_PLUGIN_PATH is a location (paths.rs, colon-separated), never the
            // config key `plugin_path` (a list), which it would otherwise land on as a string.
            if key.as_str().eq_ignore_ascii_case("plugin_path") {
                return false;
            }
            let first = key.as_str().split('.').next().unwrap_or_default();
            TOP_LEVEL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(first))
        }))
    }
}

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        // The environment's own metadata, so errors still say the value came from a variable.
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.0.iter() {
            let value = if key.as_str().starts_with("accounts.") {
                Value::from(raw)
            } else {
                raw.parse().expect("parsing a figment value never fails")
            };
            if let Some(nested) = figment::util::nest(key.as_str(), value).into_dict() {
                merge_dict(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Merges `from` into `into`, table by table; a later value replaces an earlier one.
fn merge_dict(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => {
                merge_dict(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn syntax_error(path: &Path, contents: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| {
        contents[..span.start.min(contents.len())]
            .matches('\n')
            .count()
            + 1
    });
    ConfigError {
        message: format!("invalid TOML: {}", error.message()),
        file: Some(path.to_path_buf()),
        key: None,
        line,
        hint: Some(
            "fix the syntax at that line (strings need double quotes, tables are written [name])"
                .into(),
        ),
    }
}

fn figment_error(error: figment::Error, file: Option<&Path>, text: Option<&str>) -> ConfigError {
    let from_env = matches!(
        error.metadata.as_ref().map(|m| m.name.as_ref()),
        Some(name) if name.contains("environment")
    );
    let key = (!error.path.is_empty()).then(|| error.path.join("."));
    let line = match (text, &key) {
        (Some(text), Some(_)) if !from_env => locate_key(text, &error.path),
        _ => None,
    };
    let hint = match &error.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            let suggestion = crate::suggest::closest(field, expected.iter().copied());
            Some(match suggestion {
                Some(s) => format!(
                    "did you mean `{s}`? (valid keys here: {})",
                    expected.join(", ")
                ),
                None => format!("valid keys here: {}", expected.join(", ")),
            })
        }
        figment::error::Kind::InvalidType(_, expected)
            if expected.contains("Duration") || expected.contains("duration") =>
        {
            Some("write durations as a string such as \"30s\", \"5m\", \"2h\" or \"1d\"".into())
        }
        figment::error::Kind::UnknownVariant(_, expected) => {
            Some(format!("use one of: {}", expected.join(", ")))
        }
        _ => None,
    };
    let mut message = error.kind.to_string();
    if from_env {
        message.push_str(" (from a POSTFLIGHT_* environment variable)");
    }
    ConfigError {
        message,
        file: if from_env {
            None
        } else {
            file.map(Path::to_path_buf)
        },
        key,
        line,
        hint,
    }
}

/// Finds the line of `path` (e.g. `["accounts", "main", "port"]`) in a TOML text: the
/// `[accounts.main]` header, then `port =` inside it. Best effort; dotted keys and inline
/// tables are not followed.
fn locate_key(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // Try the longest table prefix that exists as a header, then the key inside it.
    for split in (0..path.len()).rev() {
        let table = path[..split].join(".");
        let header_line = if split == 0 {
            Some(0)
        } else {
            lines.iter().position(|l| {
                let t = l.trim();
                t.starts_with('[') && t.trim_matches(|c| c == '[' || c == ']').trim() == table
            })
        };
        let Some(start) = header_line else { continue };
        let key = &path[split];
        let body_start = if split == 0 { 0 } else { start + 1 };
        for (offset, line) in lines[body_start..].iter().enumerate() {
            let t = line.trim_start();
            if t.starts_with('[') {
                break;
            }
            if let Some(rest) = t.strip_prefix(key.as_str()) {
                if rest.trim_start().starts_with('=') {
                    return Some(body_start + offset + 1);
                }
            }
        }
        if split > 0 {
            return Some(start + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_split_on_commas_and_newlines() {
        let r = Recipients::parse(["a@x.org, b@x.org\nc@x.org", " ", "d@x.org"]);
        assert_eq!(r.0, ["a@x.org", "b@x.org", "c@x.org", "d@x.org"]);
    }

    #[test]
    fn locates_keys_in_tables() {
        let text = "[defaults]\nlevel = \"x\"\n\n[accounts.main]\nhost = \"h\"\nport = \"x\"\n";
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            locate_key(text, &path(&["accounts", "main", "port"])),
            Some(6)
        );
        assert_eq!(locate_key(text, &path(&["defaults", "level"])), Some(2));
        assert_eq!(
            locate_key(text, &path(&["accounts", "main", "nope"])),
            Some(4)
        );
    }

    /// Account settings from the environment reach the transport as written: a secret with
    /// leading zeros keeps them and `true` stays text where text is wanted (`core::secret`
    /// converts to the types the transport declares). Other keys are still typed by figment.
    #[test]
    fn account_settings_from_the_environment_stay_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[accounts.x]\ntransport = \"sendgrid\"\nport = 587\n",
        )
        .unwrap();
        let vars = [
            ("POSTFLIGHT_ACCOUNTS__X__API_KEY", "0123456"),
            ("POSTFLIGHT_ACCOUNTS__X__PASSWORD", "00000000"),
            ("POSTFLIGHT_ACCOUNTS__X__LABEL", "true"),
            ("POSTFLIGHT_ACCOUNTS__X__FROM", "007@example.com"),
            ("POSTFLIGHT_OUTBOX__MAX_AGE", "2d"),
            ("POSTFLIGHT_TASKS__T__WARNING_CODES", "[24, 25]"),
        ];
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        let loaded = load(Some(&ConfigLocation {
            path: path.clone(),
            explicit: true,
        }));
        for (name, _) in vars {
            std::env::remove_var(name);
        }
        let config = loaded.unwrap().config;
        let account = &config.accounts["x"];
        assert_eq!(account.settings["api_key"], serde_json::json!("0123456"));
        assert_eq!(account.settings["password"], serde_json::json!("00000000"));
        assert_eq!(account.settings["label"], serde_json::json!("true"));
        assert_eq!(account.from.as_deref(), Some("007@example.com"));
        // The file's own values keep their TOML types.
        assert_eq!(account.settings["port"], serde_json::json!(587));
        assert_eq!(account.transport, "sendgrid");
        assert_eq!(config.outbox.max_age, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(config.tasks["t"].warning_codes, Some(vec![24, 25]));
    }
}
