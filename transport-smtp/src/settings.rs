//! Typed reads of an account's settings (the JSON object core passes to `open`).
//!
//! Values may arrive as JSON strings even when the schema says integer or boolean (an
//! environment override such as `POSTFLIGHT_ACCOUNTS__MAIN__PORT=587` is text), so numbers and
//! booleans are accepted in both forms. Every error names the account and the key.

use postflight_core::{DeliveryError, ErrorKind};
use serde_json::{Map, Value};

/// One account's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    map: &'a Map<String, Value>,
    account: &'a str,
}

impl<'a> Settings<'a> {
    /// Wraps the settings of `account` (the name is only used in messages).
    pub fn new(map: &'a Map<String, Value>, account: &'a str) -> Self {
        Settings { map, account }
    }

    /// The account's name for messages (`(unnamed)` when the host gave none).
    pub fn account(&self) -> &'a str {
        if self.account.is_empty() {
            "(unnamed)"
        } else {
            self.account
        }
    }

    /// A text setting, trimmed; `None` when absent, null or blank.
    pub fn string(&self, key: &str) -> Result<Option<String>, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(other) => Err(self.invalid(key, "text", other)),
        }
    }

    /// A text setting exactly as given (no trimming): for secrets, where a space may matter.
    pub fn raw_string(&self, key: &str) -> Result<Option<String>, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Never echo a secret's value, even a mistyped one.
            Some(_) => Err(DeliveryError::permanent(
                ErrorKind::Config,
                format!(
                    "setting `{key}` of account `{}` must be text",
                    self.account()
                ),
            )
            .with_hint(format!("quote the value: {key} = \"...\""))),
        }
    }

    /// A boolean setting (`true`/`false`, also as text); `None` when absent.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(Some(true)),
                "false" | "no" | "off" | "0" => Ok(Some(false)),
                _ => Err(self.invalid(key, "true or false", &Value::String(s.clone()))),
            },
            Some(other) => Err(self.invalid(key, "true or false", other)),
        }
    }

    /// A TCP port (1-65535, also as text); `None` when absent.
    pub fn port(&self, key: &str) -> Result<Option<u16>, DeliveryError> {
        let value = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n @ 1..=65535) => Ok(Some(n as u16)),
            _ => Err(self.invalid(key, "a port number between 1 and 65535", value)),
        }
    }

    /// A configuration error about `key`, with a hint.
    pub fn error(
        &self,
        key: &str,
        message: impl AsRef<str>,
        hint: impl Into<String>,
    ) -> DeliveryError {
        DeliveryError::permanent(
            ErrorKind::Config,
            format!(
                "account `{}`, setting `{key}`: {}",
                self.account(),
                message.as_ref()
            ),
        )
        .with_hint(hint)
    }

    fn invalid(&self, key: &str, expected: &str, got: &Value) -> DeliveryError {
        DeliveryError::permanent(
            ErrorKind::Config,
            format!(
                "setting `{key}` of account `{}` must be {expected}, not {got}",
                self.account()
            ),
        )
        .with_hint(format!(
            "set `{key}` to {expected}, or remove it to use the default"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(value: Value) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("k".into(), value);
        map
    }

    #[test]
    fn ports_accept_numbers_and_text() {
        for (value, expected) in [
            (json!(587), Some(587)),
            (json!("465"), Some(465)),
            (json!(null), None),
        ] {
            let map = with(value);
            assert_eq!(Settings::new(&map, "a").port("k").unwrap(), expected);
        }
        for bad in [json!(0), json!(70000), json!("smtp"), json!(true)] {
            let map = with(bad);
            let err = Settings::new(&map, "a").port("k").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(err.message.contains("`k`"), "{}", err.message);
        }
    }

    #[test]
    fn booleans_accept_text() {
        for (value, expected) in [
            (json!(true), Some(true)),
            (json!("false"), Some(false)),
            (json!("Yes"), Some(true)),
        ] {
            let map = with(value);
            assert_eq!(Settings::new(&map, "a").boolean("k").unwrap(), expected);
        }
        let map = with(json!("maybe"));
        assert!(Settings::new(&map, "a").boolean("k").is_err());
    }

    #[test]
    fn blank_text_is_absent_and_secrets_are_not_echoed() {
        let map = with(json!("  "));
        assert_eq!(Settings::new(&map, "a").string("k").unwrap(), None);
        let map = with(json!(123456));
        let err = Settings::new(&map, "a").raw_string("k").unwrap_err();
        assert!(!err.message.contains("123456"));
    }
}
