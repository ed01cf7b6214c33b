//! Reading and validating an account's settings at `open` time, without touching the network.
//!
//! Every problem becomes a permanent [`ErrorKind::Config`] error whose hint names the setting
//! to change, because `postflight check` shows these errors to the operator as they are.

use std::fmt;

use postflight_core::plugin::{SettingSpec, SettingType};
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, ErrorKind};
use reqwest::Url;
use serde_json::{Map, Value};

/// A permanent configuration error for `transport`, with the operator's next step.
pub fn config_error(
    transport: &str,
    message: impl fmt::Display,
    hint: impl Into<String>,
) -> DeliveryError {
    DeliveryError::permanent(
        ErrorKind::Config,
        format!("transport '{transport}': {message}"),
    )
    .with_hint(hint)
}

/// The setting that permits a plain-http `base_url` to another machine.
pub const ALLOW_INSECURE_HTTP: &str = "allow_insecure_http";

/// The schema entry of [`ALLOW_INSECURE_HTTP`], shared by every API transport.
pub fn allow_insecure_http_spec() -> SettingSpec {
    SettingSpec::new(
        ALLOW_INSECURE_HTTP,
        SettingType::Boolean,
        "allow a plain-http base_url to another machine (the API key travels unencrypted)",
    )
    .default_value(false)
}

/// Typed access to the settings map the host passes to `open`.
pub struct Settings<'a> {
    transport: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Settings<'a> {
    /// Wraps the settings of `transport`.
    pub fn new(transport: &'a str, map: &'a Map<String, Value>) -> Self {
        Settings { transport, map }
    }

    /// The transport name, for messages.
    pub fn transport(&self) -> &'a str {
        self.transport
    }

    /// An optional text setting; a blank value counts as unset.
    pub fn string(&self, key: &str) -> Result<Option<String>, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(config_error(
                self.transport,
                format!("`{key}` must be a string, not {}", json_type(other)),
                format!("write `{key} = \"...\"` in the account"),
            )),
        }
    }

    /// A required text setting; `hint` says how to obtain a value.
    pub fn required(&self, key: &str, hint: &str) -> Result<String, DeliveryError> {
        self.string(key)?.ok_or_else(|| {
            config_error(
                self.transport,
                format!("the setting `{key}` is missing"),
                hint.to_string(),
            )
        })
    }

    /// A secret setting, already resolved by the host from `KEY`, `KEY_env`, `KEY_file` or
    /// `KEY_command`.
    pub fn secret(&self, key: &str) -> Result<Option<Secret>, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(config_error(
                self.transport,
                format!("`{key}` is empty"),
                format!("set `{key}_env`, `{key}_file` or `{key}_command` to a source that gives the value"),
            )),
            Some(Value::String(s)) => Ok(Some(Secret::new(s.trim()))),
            // Never echo the value: it is a secret even when it has the wrong type.
            Some(other) => Err(config_error(
                self.transport,
                format!("`{key}` must be a string, not {}", json_type(other)),
                format!("give `{key}` as text, preferably through `{key}_env` or `{key}_file`"),
            )),
        }
    }

    /// A required secret setting.
    pub fn required_secret(&self, key: &str, hint: &str) -> Result<Secret, DeliveryError> {
        self.secret(key)?.ok_or_else(|| {
            config_error(
                self.transport,
                format!("the setting `{key}` is missing"),
                hint.to_string(),
            )
        })
    }

    /// The provider API key (`api_key`), required, and checked to be sendable in an HTTP
    /// header (a stray newline from a key file would otherwise fail every attempt).
    pub fn api_key(&self, hint: &str) -> Result<Secret, DeliveryError> {
        let key = self.required_secret("api_key", hint)?;
        if !key.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(config_error(
                self.transport,
                "`api_key` contains spaces, line breaks or non-ASCII characters",
                "copy the key again: API keys are a single word of visible ASCII characters",
            ));
        }
        Ok(key)
    }

    /// The `base_url` setting parsed, or `default` when unset.
    ///
    /// Plain http is refused unless the server is this machine or the account says
    /// `allow_insecure_http = true`: the API key would cross the network in clear text (as
    /// the smtp transport refuses AUTH over plaintext unless `allow_insecure_auth`).
    pub fn base_url(&self, default: &str) -> Result<BaseUrl, DeliveryError> {
        let base = match self.string("base_url")? {
            Some(raw) => BaseUrl::parse(self.transport, &raw)?,
            None => BaseUrl::parse(self.transport, default)?,
        };
        if base.plaintext_warning(self.transport).is_some() && !self.boolean(ALLOW_INSECURE_HTTP)? {
            return Err(config_error(
                self.transport,
                format!(
                    "`base_url` uses plain http to {}, so the API key would travel unencrypted",
                    base.host()
                ),
                format!("use https, or set `{ALLOW_INSECURE_HTTP} = true` if the network path is trusted"),
            ));
        }
        Ok(base)
    }

    /// An optional boolean setting (false when unset).
    pub fn boolean(&self, key: &str) -> Result<bool, DeliveryError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(config_error(
                self.transport,
                format!("`{key}` must be true or false, not {}", json_type(other)),
                format!("write `{key} = true` or `{key} = false` in the account"),
            )),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// The root of a provider's API: `https://api.example.com` or a test server's
/// `http://127.0.0.1:PORT`, possibly with a path prefix (a proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
}

impl BaseUrl {
    /// Parses and checks a base URL: http or https, a host, no credentials, query or fragment.
    pub fn parse(transport: &str, raw: &str) -> Result<BaseUrl, DeliveryError> {
        let bad = |why: String| {
            config_error(
                transport,
                format!("`base_url` = \"{raw}\" is not usable: {why}"),
                "set `base_url` to the API root, e.g. \"https://api.example.com\", or remove it to use the provider's default",
            )
        };
        let url = Url::parse(raw).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(bad(format!(
                "the scheme must be https (or http for a local test server), not '{}'",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "it contains credentials; give the key in `api_key` instead".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a query or fragment".into()));
        }
        Ok(BaseUrl { url })
    }

    /// The URL of `segments` below the root (each segment is percent-encoded as needed).
    pub fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("http(s) URLs always have a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// The host (with port when not the default), for messages and SigV4: the URL's
    /// authority, which `parse` made sure carries no credentials.
    pub fn host(&self) -> String {
        self.url.authority().to_string()
    }

    /// A warning when the key would travel unencrypted to anything but this machine.
    pub fn plaintext_warning(&self, transport: &str) -> Option<String> {
        if self.url.scheme() == "https" {
            return None;
        }
        let host = self.url.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (!loopback).then(|| {
            format!(
                "transport '{transport}': `base_url` uses plain http to {}; the API key and the message travel unencrypted (use https)",
                self.host()
            )
        })
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn base_url_joins_segments_below_a_prefix() {
        let base = BaseUrl::parse("t", "http://127.0.0.1:8080/proxy/").unwrap();
        assert_eq!(
            base.join(&["v3", "mail", "send"]).as_str(),
            "http://127.0.0.1:8080/proxy/v3/mail/send"
        );
        assert_eq!(base.host(), "127.0.0.1:8080");
        let base = BaseUrl::parse("t", "https://api.mailgun.net").unwrap();
        assert_eq!(
            base.join(&["v3", "a b/c", "messages"]).as_str(),
            "https://api.mailgun.net/v3/a%20b%2Fc/messages"
        );
        assert_eq!(base.host(), "api.mailgun.net");
    }

    #[test]
    fn base_url_refuses_what_cannot_work() {
        for bad in [
            "api.sendgrid.com",
            "ftp://x",
            "https://user:pw@x",
            "https://x/?a=1",
            "http://",
        ] {
            let e = BaseUrl::parse("sendgrid", bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config, "{bad}");
            assert!(e.permanent);
            assert!(e.hint.unwrap().contains("base_url"));
        }
    }

    #[test]
    fn plain_http_is_fine_on_loopback_only() {
        let t = |u| BaseUrl::parse("t", u).unwrap().plaintext_warning("t");
        assert!(t("http://127.0.0.1:1").is_none());
        assert!(t("http://localhost:1").is_none());
        assert!(t("http://[::1]:1").is_none());
        assert!(t("https://api.example.com").is_none());
        assert!(t("http://api.example.com").unwrap().contains("unencrypted"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_type_errors() {
        let map = settings(serde_json::json!({"api_key": "SG.supersecret", "n": 5}));
        let s = Settings::new("sendgrid", &map);
        let key = s.secret("api_key").unwrap().unwrap();
        assert_eq!(format!("{key:?}"), "Secret(********)");
        assert_eq!(
            postflight_core::secret::redact("bad key SG.supersecret!", &[key]),
            "bad key ********!"
        );
        let map = settings(serde_json::json!({"api_key": ["SG.supersecret"]}));
        let e = Settings::new("sendgrid", &map)
            .secret("api_key")
            .unwrap_err();
        assert!(!format!("{e:?}").contains("supersecret"));
    }

    #[test]
    fn api_keys_must_fit_in_a_header() {
        let map = settings(serde_json::json!({"api_key": "SG.abc def"}));
        let e = Settings::new("sendgrid", &map)
            .api_key("get one")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(!e.message.contains("abc"), "the key is not echoed");
        let map = settings(serde_json::json!({"api_key": "SG.abc.def"}));
        assert!(Settings::new("sendgrid", &map).api_key("get one").is_ok());
    }

    #[test]
    fn blank_strings_count_as_unset() {
        let map = settings(serde_json::json!({"domain": "  "}));
        let e = Settings::new("mailgun", &map)
            .required("domain", "add domain")
            .unwrap_err();
        assert!(e.message.contains("`domain` is missing"));
    }
}
