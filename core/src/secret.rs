//! Secret indirection (DESIGN section 4): any setting a transport declares `secret` may be
//! given as `X`, `X_env`, `X_file` or `X_command`. Core resolves them just before use, so
//! plugins never run commands and no secret is ever written to the outbox.
//!
//! This module also checks an account's settings against the transport's schema, since both
//! walk the same keys.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::plugin::manifest::{SettingSpec, SettingType, TransportSpec};

/// The suffixes that turn a secret setting into a reference.
pub const SECRET_SUFFIXES: [&str; 3] = ["_env", "_file", "_command"];

/// A resolved secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (plugins use this for a secret they derive, e.g. a cleaned password).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Settings ready for a plugin, plus the secret values so callers can scrub them from any
/// text that comes back.
#[derive(Debug, Clone, Default)]
pub struct ResolvedSettings {
    /// The settings to send in the open request.
    pub settings: Map<String, Value>,
    /// Every secret value that was resolved or given inline.
    pub secrets: Vec<Secret>,
}

impl ResolvedSettings {
    /// Replaces every secret value in `text` with `********`.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }
}

/// Replaces every occurrence of a secret (of 4 characters or more, so a trivial value does
/// not garble the message) with `********`.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let value = secret.expose();
        if value.chars().count() >= 4 {
            out = out.replace(value, "********");
        }
    }
    out
}

/// A problem with an account's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The key (as written).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Checks settings against the transport's schema without resolving secrets: unknown keys
/// (with a did-you-mean), wrong types, a secret given twice, missing required settings.
pub fn validate(settings: &BTreeMap<String, Value>, spec: &TransportSpec) -> Vec<SettingProblem> {
    let mut problems = Vec::new();
    let mut given = std::collections::BTreeSet::new();
    for (key, value) in settings {
        if let Some(setting) = spec.setting(key) {
            given.insert(setting.name.clone());
            if let Err(message) = coerce_setting(value, setting) {
                problems.push(SettingProblem {
                    key: key.clone(),
                    message,
                });
            }
            continue;
        }
        if let Some((base, _)) = split_reference(key, spec) {
            if !given.insert(base.to_string()) || settings.contains_key(base) {
                problems.push(SettingProblem {
                    key: key.clone(),
                    message: format!("`{base}` is given more than once; keep only one of {base}, {base}_env, {base}_file, {base}_command"),
                });
            }
            if !value.is_string() {
                problems.push(SettingProblem {
                    key: key.clone(),
                    message: "expected a string".into(),
                });
            }
            continue;
        }
        let mut names: Vec<String> = spec.settings.iter().map(|s| s.name.clone()).collect();
        for s in spec.settings.iter().filter(|s| s.secret) {
            names.extend(
                SECRET_SUFFIXES
                    .iter()
                    .map(|suffix| format!("{}{suffix}", s.name)),
            );
        }
        let suggestion = crate::suggest::closest(key, names.iter().map(String::as_str));
        problems.push(SettingProblem {
            key: key.clone(),
            message: match suggestion {
                Some(s) => format!(
                    "unknown setting for transport '{}'; did you mean `{s}`?",
                    spec.name
                ),
                None => format!(
                    "unknown setting for transport '{}' (it takes: {})",
                    spec.name,
                    spec.settings
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        });
    }
    for setting in spec.settings.iter().filter(|s| s.required) {
        if !given.contains(&setting.name) {
            problems.push(SettingProblem {
                key: setting.name.clone(),
                message: format!("required by transport '{}': {}", spec.name, setting.help),
            });
        }
    }
    problems
}

/// `password_env` -> (`password`, `_env`) when `password` is a secret setting of `spec`.
fn split_reference<'a>(key: &'a str, spec: &TransportSpec) -> Option<(&'a str, &'static str)> {
    SECRET_SUFFIXES.iter().find_map(|suffix| {
        let base = key.strip_suffix(suffix)?;
        spec.setting(base)
            .filter(|s| s.secret)
            .map(|_| (base, *suffix))
    })
}

/// [`coerce`], with a message that never quotes the value of a secret setting.
fn coerce_setting(value: &Value, setting: &SettingSpec) -> Result<Value, String> {
    coerce(value, setting.kind).map_err(|message| {
        if setting.secret {
            format!(
                "expected {} (the value is not shown: it is a secret)",
                setting.kind.as_str()
            )
        } else {
            message
        }
    })
}

/// Converts a value to the declared type, accepting the string forms environment variables
/// produce (`"587"` for an integer, `"true"` for a boolean) and numbers where text is wanted.
fn coerce(value: &Value, kind: SettingType) -> Result<Value, String> {
    let wrong = || format!("expected {} but found {value}", kind.as_str());
    match (kind, value) {
        (SettingType::String | SettingType::Duration, Value::String(_)) => Ok(value.clone()),
        (SettingType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (SettingType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        (SettingType::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| wrong()),
        (SettingType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (SettingType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        (SettingType::List, Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(value.clone())
        }
        (SettingType::List, Value::String(s)) => Ok(Value::Array(
            s.split(',')
                .map(|x| Value::String(x.trim().to_string()))
                .collect(),
        )),
        (SettingType::Duration, Value::Number(_)) => Err(format!(
            "expected a duration string such as \"30s\" but found {value}"
        )),
        _ => Err(wrong()),
    }
}

/// Why a secret could not be resolved. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    /// The setting (e.g. `password_env`).
    pub key: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for SecretError {}

/// Resolves secret references and coerces types. Unknown keys are passed through untouched
/// (`validate` reports them; failing a 3 a.m. notification over a stray key would lose it).
pub fn resolve(
    settings: &BTreeMap<String, Value>,
    spec: &TransportSpec,
) -> Result<ResolvedSettings, SecretError> {
    let mut resolved = ResolvedSettings::default();
    for (key, value) in settings {
        if let Some(setting) = spec.setting(key) {
            let coerced = coerce_setting(value, setting).map_err(|message| SecretError {
                key: key.clone(),
                message,
            })?;
            if setting.secret {
                if let Some(s) = coerced.as_str() {
                    resolved.secrets.push(Secret(s.to_string()));
                }
            }
            resolved.settings.insert(key.clone(), coerced);
        } else if let Some((base, suffix)) = split_reference(key, spec) {
            let reference = value.as_str().ok_or_else(|| SecretError {
                key: key.clone(),
                message: "expected a string".into(),
            })?;
            let secret = resolve_reference(key, suffix, reference)?;
            resolved
                .settings
                .insert(base.to_string(), Value::String(secret.expose().to_string()));
            resolved.secrets.push(secret);
        } else {
            resolved.settings.insert(key.clone(), value.clone());
        }
    }
    Ok(resolved)
}

fn resolve_reference(key: &str, suffix: &str, reference: &str) -> Result<Secret, SecretError> {
    let error = |message: String| SecretError {
        key: key.to_string(),
        message,
    };
    let value = match suffix {
        "_env" => std::env::var(reference).map_err(|_| {
            error(format!(
                "the environment variable {reference} is not set (or not UTF-8); export it where postflight runs (cron and systemd start with a minimal environment)"
            ))
        })?,
        "_file" => std::fs::read_to_string(reference)
            .map_err(|e| error(format!("cannot read {reference}: {e}")))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        _ => run_secret_command(key, reference).map_err(error)?,
    };
    if value.is_empty() {
        return Err(error(match suffix {
            // A command line may hold a secret itself: never quote it.
            "_command" => format!("the `{key}` command printed nothing"),
            _ => format!("{reference} gave an empty value"),
        }));
    }
    Ok(Secret(value))
}

/// Runs a `X_command` with `/bin/sh -c`. Its errors name the setting, never the command line,
/// which may hold a secret (`echo hunter22`, a token passed to a vault client).
fn run_secret_command(key: &str, command: &str) -> Result<String, String> {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the `{key}` command with /bin/sh: {e}"))?;
    if !output.status.success() {
        // stderr is the command's own diagnostics; show its first line only.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
        let how = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => output.status.to_string(),
        };
        return Err(match first {
            Some(first) => format!("the `{key}` command failed ({how}): {first}"),
            None => format!(
                "the `{key}` command failed ({how}) without a message; run it by hand to see why"
            ),
        });
    }
    let stdout = String::from_utf8(output.stdout)
        .map_err(|_| format!("the `{key}` command printed something that is not UTF-8"))?;
    Ok(stdout.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::manifest::SettingSpec;
    use serde_json::json;

    fn spec() -> TransportSpec {
        TransportSpec {
            name: "smtp".into(),
            description: String::new(),
            settings: vec![
                SettingSpec::new("host", SettingType::String, "server").required(),
                SettingSpec::new("port", SettingType::Integer, "port"),
                SettingSpec::new("password", SettingType::String, "password").secret(),
                SettingSpec::new("ca_file", SettingType::String, "extra CA"),
            ],
        }
    }

    fn map(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resolves_env_file_and_command_references() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        std::env::set_var("POSTFLIGHT_TEST_SECRET_X", "from-env");
        for (settings, expected) in [
            (
                json!({"host": "h", "password_env": "POSTFLIGHT_TEST_SECRET_X"}),
                "from-env",
            ),
            (
                json!({"host": "h", "password_file": file.to_str().unwrap()}),
                "from-file",
            ),
            (
                json!({"host": "h", "password_command": "printf 'from-command\\n'"}),
                "from-command",
            ),
        ] {
            let resolved = resolve(&map(settings), &spec()).unwrap();
            assert_eq!(resolved.settings["password"], expected);
            assert_eq!(resolved.redact(&format!("x {expected} y")), "x ******** y");
        }
    }

    #[test]
    fn ca_file_is_not_a_secret_reference() {
        let resolved =
            resolve(&map(json!({"host": "h", "ca_file": "/etc/x.pem"})), &spec()).unwrap();
        assert_eq!(resolved.settings["ca_file"], "/etc/x.pem");
        assert!(resolved.secrets.is_empty());
    }

    #[test]
    fn errors_never_contain_the_secret_and_say_what_to_do() {
        for (command, expected) in [
            (
                "echo hunter22; echo 'vault: permission denied' >&2; exit 3",
                "the `password_command` command failed (exit status 3): vault: permission denied",
            ),
            (
                "echo hunter22; exit 3",
                "the `password_command` command failed (exit status 3) without a message",
            ),
            (
                "printf '' # hunter22",
                "the `password_command` command printed nothing",
            ),
            (
                "kill -9 $$ # hunter22",
                "the `password_command` command failed (killed by signal 9)",
            ),
            (
                "printf '\\377' # hunter22",
                "the `password_command` command printed something that is not UTF-8",
            ),
        ] {
            let err = resolve(&map(json!({ "password_command": command })), &spec()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected), "{command}: {text}");
            assert!(!text.contains("hunter22"), "{command}: {text}");
            assert!(!text.contains(command), "{command}: {text}");
        }
        let err = resolve(
            &map(json!({"password_env": "POSTFLIGHT_TEST_UNSET_VAR"})),
            &spec(),
        )
        .unwrap_err();
        assert!(err.message.contains("not set"), "{err}");
    }

    #[test]
    fn validation_finds_unknown_missing_wrong_type_and_duplicates() {
        let problems = validate(
            &map(json!({"hots": "h", "port": "abc", "password": "x", "password_env": "Y"})),
            &spec(),
        );
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("`hots`") && t.contains("did you mean `host`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("`port`") && t.contains("expected integer")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("more than once")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("`host`: required")),
            "{text:?}"
        );
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_reported_without_its_value() {
        let problems = validate(
            &map(json!({"host": "h", "password": ["hunter22"]})),
            &spec(),
        );
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("`password`: expected string")),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("hunter22")), "{text:?}");
    }

    #[test]
    fn env_strings_are_coerced_to_declared_types() {
        let resolved = resolve(
            &map(json!({"host": "h", "port": "2525", "password": 1234})),
            &spec(),
        )
        .unwrap();
        assert_eq!(resolved.settings["port"], 2525);
        assert_eq!(resolved.settings["password"], "1234");
    }
}
