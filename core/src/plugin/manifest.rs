//! The manifest a plugin returns from `describe`, and the settings schema each transport
//! declares. `postflight check` validates accounts against these schemas, and core resolves
//! `X_env`/`X_file`/`X_command` only for settings declared `secret`.

use serde::{Deserialize, Serialize};

/// What a plugin says about itself (plugin ABI v1 "manifest" object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name, e.g. `smtp`.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    /// The ABI version it implements; must equal the table's header.
    pub abi_version: u32,
    /// One line on what it is.
    #[serde(default)]
    pub description: String,
    /// The transports it provides.
    pub transports: Vec<TransportSpec>,
}

/// One transport a plugin provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransportSpec {
    /// The name accounts use in `transport = "..."`.
    pub name: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// The settings an account for this transport may have (besides `transport` and `from`).
    #[serde(default)]
    pub settings: Vec<SettingSpec>,
}

/// The JSON type a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// true/false.
    Boolean,
    /// A humane duration such as `30s` (given to the plugin as a string).
    Duration,
    /// A list of strings.
    List,
}

impl SettingType {
    /// The word used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Integer => "integer",
            SettingType::Boolean => "boolean",
            SettingType::Duration => "duration",
            SettingType::List => "list",
        }
    }
}

/// One setting of a transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingSpec {
    /// The key in the account table.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// Whether an account must set it (or a preset must fill it).
    #[serde(default)]
    pub required: bool,
    /// Whether it is a secret: never printed, and may be given as `NAME_env`, `NAME_file` or
    /// `NAME_command`, resolved by the host just before use.
    #[serde(default)]
    pub secret: bool,
    /// The default, as JSON, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// One line of help.
    #[serde(default)]
    pub help: String,
}

impl SettingSpec {
    /// A setting with the given name, type and help; optional, not secret, no default.
    pub fn new(name: &str, kind: SettingType, help: &str) -> Self {
        SettingSpec {
            name: name.to_string(),
            kind,
            required: false,
            secret: false,
            default: None,
            help: help.to_string(),
        }
    }

    /// Marks the setting required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the setting secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Sets the default.
    pub fn default_value(mut self, value: impl Into<serde_json::Value>) -> Self {
        self.default = Some(value.into());
        self
    }
}

impl TransportSpec {
    /// The spec of one setting by name.
    pub fn setting(&self, name: &str) -> Option<&SettingSpec> {
        self.settings.iter().find(|s| s.name == name)
    }
}
