//! An SMTP account's settings, validated once by `open` (which must not touch the network):
//! provider presets applied, the password normalised, the certificate policy loaded, and the
//! warnings the operator should see on every use collected.

use std::path::Path;
use std::time::Duration;

use lettre::transport::smtp::extension::ClientId;
use postflight_core::plugin::OpenRequest;
use postflight_core::secret::Secret;
use postflight_core::{DeliveryError, ErrorKind};

use super::trust::{self, Fingerprint, Trust};
use crate::presets::{self, Provider};
use crate::settings::Settings;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which is required (never a silent downgrade).
    StartTls,
    /// TLS from the first byte ("implicit TLS", "SMTPS").
    Tls,
    /// No encryption: only for a trusted local relay.
    None,
}

impl Security {
    /// The setting's value for this mode.
    pub fn name(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }

    /// The usual port for this mode (submission, submissions, smtp).
    pub fn default_port(self) -> u16 {
        match self {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }

    fn parse(value: &str) -> Option<Security> {
        match value.to_ascii_lowercase().as_str() {
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            "none" => Some(Security::None),
            _ => None,
        }
    }
}

/// The credentials of an account that logs in.
#[derive(Debug, Clone)]
pub struct Login {
    /// The username, as given.
    pub username: String,
    /// The password (app passwords with their display spaces removed).
    pub password: Secret,
}

/// A validated SMTP account.
#[derive(Debug)]
pub struct SmtpConfig {
    /// The account's name, for messages.
    pub account: String,
    /// Server host name or IP address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Encryption mode.
    pub security: Security,
    /// The provider, from the preset or recognised by host: selects the login advice.
    pub provider: Option<Provider>,
    /// Username and password, when the account logs in.
    pub login: Option<Login>,
    /// Whether AUTH may be sent over an unencrypted connection.
    pub allow_insecure_auth: bool,
    /// The EHLO name.
    pub hello: ClientId,
    /// Which certificates are trusted.
    pub trust: Trust,
    /// One attempt's limit, connection included.
    pub timeout: Duration,
}

impl SmtpConfig {
    /// `host:port` for messages.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Validates the settings of an `smtp` account. Returns the configuration and the warnings to
/// show on every use.
pub fn parse(request: &OpenRequest) -> Result<(SmtpConfig, Vec<String>), DeliveryError> {
    let settings = Settings::new(&request.settings, &request.account);
    let mut warnings = Vec::new();

    let preset = match settings.string("provider")? {
        None => None,
        Some(name) => Some(Provider::parse(&name).ok_or_else(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
            settings.error(
                "provider",
                format!("'{name}' is not a known provider"),
                format!(
                    "use one of {}, or remove `provider` and set host, port and security yourself",
                    names.join(", ")
                ),
            )
        })?),
    };

    let host = match (settings.string("host")?, preset) {
        (Some(host), _) => check_host(&settings, host)?,
        (None, Some(p)) => p.server().0.to_string(),
        (None, None) => {
            return Err(settings.error(
                "host",
                "no SMTP server is configured",
                "set `host = \"smtp.example.com\"` (and port/security), or a preset such as `provider = \"gmail\"`",
            ))
        }
    };
    let explicit_security = match settings.string("security")? {
        None => None,
        Some(value) => Some(Security::parse(&value).ok_or_else(|| {
            let hint = if value.eq_ignore_ascii_case("ssl") {
                "for SSL from the first byte (usually port 465) write `security = \"tls\"`"
            } else {
                "use \"starttls\" (usually port 587), \"tls\" (implicit TLS, usually port 465) or \"none\" (a trusted local relay)"
            };
            settings.error("security", format!("'{value}' is not a security mode"), hint)
        })?),
    };
    let explicit_port = settings.port("port")?;
    // Without an explicit mode, the well-known ports say which one is meant (a preset's
    // mode would otherwise time out against a port chosen for the other one).
    let security = match (explicit_security, explicit_port) {
        (Some(security), _) => security,
        (None, Some(465)) => Security::Tls,
        (None, Some(587)) => Security::StartTls,
        (None, _) => preset.map_or(Security::StartTls, |p| p.server().2),
    };
    let port = match (explicit_port, explicit_security, preset) {
        (Some(port), _, _) => port,
        (None, None, Some(p)) => p.server().1,
        (None, _, _) => security.default_port(),
    };
    let provider = preset.or_else(|| Provider::from_host(&host));

    let login = login(&settings, provider, preset, &mut warnings)?;
    let allow_insecure_auth = settings.boolean("allow_insecure_auth")?.unwrap_or(false);
    if login.is_some() && security == Security::None {
        if !allow_insecure_auth {
            return Err(insecure_auth_error(settings.account()));
        }
        warnings.push(
            "the password is sent unencrypted (security = \"none\" with allow_insecure_auth = true)"
                .to_string(),
        );
    }

    let trust = trust_policy(&settings, security, &mut warnings)?;
    let hello = hello_name(&settings)?;

    let config = SmtpConfig {
        account: settings.account().to_string(),
        host,
        port,
        security,
        provider,
        login,
        allow_insecure_auth,
        hello,
        trust,
        timeout: Duration::from_millis(request.send_timeout_ms.max(1)),
    };
    Ok((config, warnings))
}

/// The refusal to log in over an unencrypted connection.
pub fn insecure_auth_error(account: &str) -> DeliveryError {
    DeliveryError::permanent(
        ErrorKind::InsecureAuth,
        format!(
            "account `{account}` would send its password over an unencrypted connection (security = \"none\")"
        ),
    )
    .with_hint("use `security = \"starttls\"` or `security = \"tls\"` if the server supports it; for a trusted local relay that needs a login without encryption, set `allow_insecure_auth = true`")
}

fn check_host(settings: &Settings<'_>, host: String) -> Result<String, DeliveryError> {
    if let Some((scheme, rest)) = host.split_once("://") {
        return Err(settings.error(
            "host",
            format!("'{host}' is a URL, not a host name"),
            format!("write only the name, `host = \"{rest}\"`, and choose the encryption with `security` (not `{scheme}://`)"),
        ));
    }
    let bare_ipv6 = host.starts_with('[') && host.ends_with(']');
    let host = if bare_ipv6 {
        host[1..host.len() - 1].to_string()
    } else {
        host
    };
    if let Some((name, port)) = host.rsplit_once(':') {
        if !host.contains("::")
            && port.chars().all(|c| c.is_ascii_digit())
            && name.find(':').is_none()
        {
            return Err(settings.error(
                "host",
                format!("'{host}' contains a port"),
                format!("write `host = \"{name}\"` and `port = {port}`"),
            ));
        }
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(settings.error(
            "host",
            format!("'{host}' is not a valid host name"),
            "write a host name such as smtp.example.com or an IP address",
        ));
    }
    Ok(host)
}

fn login(
    settings: &Settings<'_>,
    provider: Option<Provider>,
    preset: Option<Provider>,
    warnings: &mut Vec<String>,
) -> Result<Option<Login>, DeliveryError> {
    let username = settings.string("username")?;
    let password = settings.raw_string("password")?;
    let (username, password) = match (username, password) {
        (None, None) => {
            if let Some(p) = preset {
                return Err(settings.error(
                    "username",
                    format!("{} needs a login", p.title()),
                    format!(
                        "set `username` ({}) and the password (`password_env`, `password_file` or `password_command`; {})",
                        p.username_form(),
                        "an app password, not the account password"
                    ),
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(settings.error(
                "password",
                "a username is set but no password",
                "set `password_env`, `password_file`, `password_command` or `password`, or remove `username` if the server needs no login",
            ))
        }
        (None, Some(_)) => {
            return Err(settings.error(
                "username",
                "a password is set but no username",
                "set `username` (usually the full email address of the account)",
            ))
        }
        (Some(u), Some(p)) => (u, p),
    };
    let password = match provider {
        Some(p) if p.has_grouped_app_passwords() => {
            let stripped = presets::strip_app_password_spaces(&password);
            let length = stripped.chars().count();
            if length != 16 {
                warnings.push(format!(
                    "{} app passwords have 16 letters, but the password has {length} (spaces removed); if the login fails, create a new app password",
                    p.title()
                ));
            }
            stripped
        }
        // Elsewhere a space may be part of the password; only stray line ends from a file or
        // a command's output are removed.
        _ => password.trim_end_matches(['\r', '\n']).to_string(),
    };
    if let Some(warning) = provider.and_then(|p| p.check_username(&username)) {
        warnings.push(warning);
    }
    Ok(Some(Login {
        username,
        password: Secret::new(password),
    }))
}

fn trust_policy(
    settings: &Settings<'_>,
    security: Security,
    warnings: &mut Vec<String>,
) -> Result<Trust, DeliveryError> {
    let accept_invalid = settings.boolean("accept_invalid_certs")?.unwrap_or(false);
    let ca_file = settings.string("ca_file")?;
    let pin = match settings.string("tls_fingerprint")? {
        None => None,
        Some(text) => Some(Fingerprint::parse(&text).ok_or_else(|| {
            settings.error(
                "tls_fingerprint",
                format!("'{text}' is not a SHA-256 fingerprint"),
                "write it as \"sha256:AB:CD:...\" (32 bytes in hex); `postflight test` prints the exact line when a certificate is refused",
            )
        })?),
    };
    if security == Security::None {
        if accept_invalid || ca_file.is_some() || pin.is_some() {
            warnings.push("accept_invalid_certs, ca_file and tls_fingerprint have no effect with security = \"none\"".to_string());
        }
        return Ok(Trust::AcceptAny);
    }
    // Read `ca_file` even when a pin makes it unused, so a wrong path is reported now.
    let extra = match &ca_file {
        None => Vec::new(),
        Some(path) => trust::load_ca_file(Path::new(path)).map_err(|reason| {
            settings.error(
                "ca_file",
                format!("{path}: {reason}"),
                "point ca_file at the server's certificate or its CA in PEM format",
            )
        })?,
    };
    if let Some(pin) = pin {
        if accept_invalid {
            warnings.push(
                "accept_invalid_certs is ignored because tls_fingerprint pins the certificate"
                    .to_string(),
            );
        }
        if ca_file.is_some() {
            warnings.push(
                "ca_file is not used because tls_fingerprint pins the certificate".to_string(),
            );
        }
        return Ok(Trust::Pin(pin));
    }
    if accept_invalid {
        warnings.push("the server's certificate is not checked (accept_invalid_certs = true), so anyone on the network path could read the password and the mail; trust the certificate with `ca_file` or pin it with `tls_fingerprint` instead (`postflight test` shows the line to add)".to_string());
        return Ok(Trust::AcceptAny);
    }
    Ok(Trust::verify(extra))
}

fn hello_name(settings: &Settings<'_>) -> Result<ClientId, DeliveryError> {
    if let Some(name) = settings.string("hello_name")? {
        let literal = name.starts_with('[') && name.ends_with(']');
        let valid = literal
            || name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(settings.error(
                "hello_name",
                format!("'{name}' is not a host name"),
                "use this machine's fully qualified name (letters, digits, dots and dashes) or an address literal such as [192.0.2.1]",
            ));
        }
        return Ok(ClientId::Domain(name));
    }
    // lettre's default is this machine's host name; a name a server would refuse in EHLO
    // (underscores, spaces) falls back to `localhost`.
    let default = ClientId::default();
    let usable = default
        .to_string()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    Ok(if usable {
        default
    } else {
        ClientId::Domain("localhost".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(settings: Value) -> OpenRequest {
        OpenRequest {
            transport: "smtp".into(),
            account: "main".into(),
            send_timeout_ms: 5000,
            settings: settings.as_object().unwrap().clone(),
        }
    }

    fn parsed(settings: Value) -> (SmtpConfig, Vec<String>) {
        parse(&request(settings)).unwrap()
    }

    fn error(settings: Value) -> DeliveryError {
        parse(&request(settings)).unwrap_err()
    }

    #[test]
    fn ports_and_security_default_sensibly() {
        let (c, w) = parsed(json!({"host": "mail.example.com"}));
        assert_eq!((c.port, c.security), (587, Security::StartTls));
        assert!(w.is_empty());
        let (c, _) = parsed(json!({"host": "mail.example.com", "port": 465}));
        assert_eq!(c.security, Security::Tls);
        let (c, _) = parsed(json!({"host": "mail.example.com", "security": "tls"}));
        assert_eq!(c.port, 465);
        let (c, _) = parsed(
            json!({"provider": "yahoo", "port": 587, "username": "me@yahoo.com", "password": "abcdabcdabcdabcd"}),
        );
        assert_eq!((c.port, c.security), (587, Security::StartTls));
        let (c, _) = parsed(json!({"host": "localhost", "security": "none"}));
        assert_eq!(c.port, 25);
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn presets_fill_the_server_and_settings_override_it() {
        let login = json!({"provider": "yahoo", "username": "me@yahoo.com", "password": "abcd efgh ijkl mnop"});
        let (c, w) = parsed(login.clone());
        assert_eq!(
            (c.host.as_str(), c.port, c.security),
            ("smtp.mail.yahoo.com", 465, Security::Tls)
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.login.unwrap().password.expose(), "abcdefghijklmnop");

        let mut overridden = login;
        overridden["host"] = json!("127.0.0.1");
        overridden["security"] = json!("starttls");
        let (c, _) = parsed(overridden);
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 587));
        assert_eq!(c.provider, Some(Provider::Yahoo));
    }

    #[test]
    fn providers_are_recognised_by_host() {
        let (c, _) = parsed(
            json!({"host": "smtp.gmail.com", "username": "me@gmail.com", "password": "abcd efgh ijkl mnop"}),
        );
        assert_eq!(c.provider, Some(Provider::Gmail));
        assert_eq!(c.login.unwrap().password.expose(), "abcdefghijklmnop");
    }

    #[test]
    fn provider_rules_warn() {
        let (_, w) = parsed(json!({"provider": "gmail", "username": "me", "password": "short pw"}));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|w| w.contains("16 letters") && w.contains("has 7")));
        assert!(w.iter().any(|w| w.contains("@gmail.com")));
        assert!(
            !w.iter().any(|w| w.contains("short")),
            "password leaked: {w:?}"
        );
    }

    #[test]
    fn other_passwords_keep_their_spaces() {
        let (c, _) =
            parsed(json!({"host": "mail.example.com", "username": "u", "password": "pass word\n"}));
        assert_eq!(c.login.unwrap().password.expose(), "pass word");
    }

    #[test]
    fn configuration_errors_name_the_setting() {
        for (settings, key) in [
            (json!({}), "host"),
            (json!({"host": "smtp://mail.example.com"}), "host"),
            (json!({"host": "mail.example.com:587"}), "host"),
            (json!({"host": "h", "security": "ssl"}), "security"),
            (json!({"host": "h", "port": "x"}), "port"),
            (json!({"provider": "aol"}), "provider"),
            (json!({"provider": "gmail"}), "username"),
            (json!({"host": "h", "username": "u"}), "password"),
            (
                json!({"host": "h", "tls_fingerprint": "sha256:00"}),
                "tls_fingerprint",
            ),
            (
                json!({"host": "h", "ca_file": "/nonexistent/ca.pem"}),
                "ca_file",
            ),
            (json!({"host": "h", "hello_name": "my host"}), "hello_name"),
        ] {
            let err = error(settings.clone());
            assert_eq!(err.kind, ErrorKind::Config, "{settings}");
            assert!(err.permanent);
            assert!(err.message.contains(key), "{settings}: {}", err.message);
            assert!(err.hint.is_some(), "{settings}");
        }
        let err = error(json!({"host": "h", "security": "ssl"}));
        assert!(err.hint.unwrap().contains("\"tls\""));
    }

    #[test]
    fn plaintext_login_needs_the_explicit_switch() {
        let settings =
            json!({"host": "relay", "security": "none", "username": "u", "password": "secret-pw"});
        let err = error(settings.clone());
        assert_eq!(err.kind, ErrorKind::InsecureAuth);
        assert!(err.hint.as_deref().unwrap().contains("allow_insecure_auth"));
        let mut allowed = settings;
        allowed["allow_insecure_auth"] = json!(true);
        let (c, w) = parsed(allowed);
        assert!(c.allow_insecure_auth);
        assert!(w[0].contains("unencrypted"));
    }

    #[test]
    fn certificate_switches() {
        let (c, w) = parsed(json!({"host": "h", "accept_invalid_certs": true}));
        assert!(matches!(c.trust, Trust::AcceptAny));
        assert!(w[0].contains("accept_invalid_certs") && w[0].contains("tls_fingerprint"));
        let pin = format!("sha256:{}", ["AB"; 32].join(":"));
        let (c, w) =
            parsed(json!({"host": "h", "tls_fingerprint": pin, "accept_invalid_certs": true}));
        assert!(matches!(c.trust, Trust::Pin(_)));
        assert!(w[0].contains("ignored"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let (c, _) = parsed(json!({"host": "h", "username": "u", "password": "hunter2-secret"}));
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("Secret(********)"));
    }
}
