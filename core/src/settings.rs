//! Effective settings: what a task or account amounts to once defaults, built-ins and
//! command-line overrides are applied (DESIGN section 4, "Built-in defaults").

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{
    Config, ConfigError, Recipients, DEFAULT_ACCOUNT, DEFAULT_LEVEL, DEFAULT_SEND_TIMEOUT,
};
use crate::model::Level;

/// What `run`/`report` can override per invocation.
#[derive(Debug, Clone, Default)]
pub struct TaskOverrides {
    /// `--level`.
    pub level: Option<Level>,
    /// `--to` (already split).
    pub to: Vec<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--subject`.
    pub subject: Option<String>,
    /// `--body`.
    pub body: Option<String>,
}

/// A task's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// The key (`--task`), used for history.
    pub key: String,
    /// `##Task Name##`.
    pub name: String,
    /// Notification level.
    pub level: Level,
    /// Recipients (never empty).
    pub to: Vec<String>,
    /// Account name.
    pub account: String,
    /// Subject template (`None`: built-in).
    pub subject: Option<String>,
    /// Body template (`None`: built-in).
    pub body: Option<String>,
    /// Exit codes meaning success.
    pub success_codes: Vec<i32>,
    /// Exit codes meaning warning.
    pub warning_codes: Vec<i32>,
    /// Reminder interval for level `changes`.
    pub remind_every: Option<Duration>,
    /// One delivery attempt's limit.
    pub send_timeout: Duration,
}

/// An account's effective settings (secrets not yet resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    /// The account's name.
    pub name: String,
    /// Transport name.
    pub transport: String,
    /// Sender.
    pub from: String,
    /// Transport settings as written.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// `true` for the built-in `default` account (file transport into the state dir).
    pub builtin: bool,
}

/// The login name of the user running postflight: `$USER`, else `$LOGNAME`, else the
/// password database's name for the effective uid (systemd units and `env -i` set neither
/// variable). `None` only when the uid has no entry at all (an arbitrary uid in a container).
pub fn login_name() -> Option<String> {
    login_name_from(
        |name| std::env::var(name).ok(),
        nix::unistd::Uid::effective().as_raw(),
    )
}

/// [`login_name`] with the environment and the uid given.
fn login_name_from(var: impl Fn(&str) -> Option<String>, uid: u32) -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| var(name).filter(|s| !s.is_empty()))
        .or_else(|| passwd_name(uid))
}

/// The password database's name for `uid` (`getpwuid_r`, so NSS sources count too).
pub fn passwd_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
        .filter(|name| !name.is_empty())
}

/// `##User Name##`: [`login_name`], else `uid N`.
pub fn user_name() -> String {
    login_name().unwrap_or_else(|| format!("uid {}", nix::unistd::Uid::effective()))
}

/// `user@host` for the user running postflight, as cron's mail uses ([`login_name`]; `uid-N`
/// for a uid without a name).
pub fn local_address() -> String {
    let user = login_name().unwrap_or_else(|| format!("uid-{}", nix::unistd::Uid::effective()));
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    format!("{user}@{host}")
}

impl Config {
    /// The account used when neither the task, `[defaults]` nor the command line names one:
    /// the only configured account if there is exactly one, else `default`.
    pub fn default_account_name(&self) -> String {
        if let Some(name) = &self.defaults.account {
            return name.clone();
        }
        if self.accounts.len() == 1 {
            return self.accounts.keys().next().cloned().unwrap_or_default();
        }
        DEFAULT_ACCOUNT.to_string()
    }

    /// The effective settings of task `key` (which need not be configured: an unknown key is
    /// an ad-hoc task with the defaults).
    pub fn task(&self, key: &str, overrides: &TaskOverrides) -> TaskSettings {
        let task = self.tasks.get(key).cloned().unwrap_or_default();
        let defaults = &self.defaults;
        let to = if !overrides.to.is_empty() {
            Recipients::parse(overrides.to.iter().map(String::as_str)).0
        } else {
            task.to
                .clone()
                .or_else(|| defaults.to.clone())
                .map(|r| r.0)
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| vec![local_address()])
        };
        TaskSettings {
            key: key.to_string(),
            name: task.name.clone().unwrap_or_else(|| key.to_string()),
            level: overrides
                .level
                .or(task.level)
                .or(defaults.level)
                .unwrap_or(DEFAULT_LEVEL),
            to,
            account: overrides
                .account
                .clone()
                .or(task.account.clone())
                .unwrap_or_else(|| self.default_account_name()),
            subject: overrides
                .subject
                .clone()
                .or(task.subject.clone())
                .or(defaults.subject.clone()),
            body: overrides
                .body
                .clone()
                .or(task.body.clone())
                .or(defaults.body.clone()),
            success_codes: task.success_codes.clone().unwrap_or_else(|| vec![0]),
            warning_codes: task.warning_codes.clone().unwrap_or_default(),
            remind_every: task.remind_every.or(defaults.remind_every),
            send_timeout: task
                .send_timeout
                .or(defaults.send_timeout)
                .unwrap_or(DEFAULT_SEND_TIMEOUT),
        }
    }

    /// The effective settings of account `name`. The name `default`, when not configured, is
    /// the built-in account: the `file` transport into `<state dir>/mail`.
    pub fn account(&self, name: &str, state_dir: &Path) -> Result<AccountSettings, ConfigError> {
        if let Some(account) = self.accounts.get(name) {
            return Ok(AccountSettings {
                name: name.to_string(),
                transport: account.transport.clone(),
                from: account.from.clone().unwrap_or_else(local_address),
                settings: account.settings.clone(),
                builtin: false,
            });
        }
        if name == DEFAULT_ACCOUNT {
            let mut settings = BTreeMap::new();
            settings.insert(
                "dir".to_string(),
                serde_json::Value::String(state_dir.join("mail").display().to_string()),
            );
            return Ok(AccountSettings {
                name: name.to_string(),
                transport: "file".to_string(),
                from: local_address(),
                settings,
                builtin: true,
            });
        }
        let known: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        let hint = match crate::suggest::closest(name, known.iter().copied()) {
            Some(s) => {
                format!("did you mean '{s}'? Accounts are [accounts.NAME] tables in the config")
            }
            None if known.is_empty() => {
                "no account is configured: add an [accounts.NAME] table to the config".to_string()
            }
            None => format!("configured accounts: {}", known.join(", ")),
        };
        Err(
            ConfigError::new(format!("there is no account named '{name}'"))
                .at_key(format!("accounts.{name}"))
                .with_hint(hint),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        use figment::providers::{Format, Toml};
        figment::Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .unwrap()
    }

    #[test]
    fn task_inherits_defaults_and_overrides_win() {
        let c = config(
            "[defaults]\nlevel = \"always\"\nto = \"a@x.org, b@x.org\"\n[accounts.main]\ntransport = \"smtp\"\n[tasks.nightly]\nname = \"Nightly\"\nwarning_codes = [24]\n",
        );
        let t = c.task("nightly", &TaskOverrides::default());
        assert_eq!(
            (t.name.as_str(), t.level, t.account.as_str()),
            ("Nightly", Level::Always, "main")
        );
        assert_eq!(t.to, ["a@x.org", "b@x.org"]);
        assert_eq!((t.success_codes, t.warning_codes), (vec![0], vec![24]));
        let o = TaskOverrides {
            level: Some(Level::Never),
            to: vec!["c@x.org\nd@x.org".into()],
            ..Default::default()
        };
        let t = c.task("nightly", &o);
        assert_eq!(
            (t.level, t.to),
            (
                Level::Never,
                vec!["c@x.org".to_string(), "d@x.org".to_string()]
            )
        );
    }

    #[test]
    fn builtin_default_account_writes_files_into_the_state_dir() {
        let c = Config::default();
        let a = c
            .account(&c.default_account_name(), Path::new("/state"))
            .unwrap();
        assert!(a.builtin);
        assert_eq!(a.transport, "file");
        assert_eq!(a.settings["dir"], "/state/mail");
        let err = c.account("mian", Path::new("/state")).unwrap_err();
        assert!(err.to_string().contains("no account named 'mian'"), "{err}");
    }

    #[test]
    fn the_login_name_falls_back_to_the_password_database() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            login_name_from(env(&[("USER", "alice"), ("LOGNAME", "bob")]), 0).as_deref(),
            Some("alice")
        );
        assert_eq!(
            login_name_from(env(&[("USER", ""), ("LOGNAME", "bob")]), 0).as_deref(),
            Some("bob")
        );
        // Neither variable: the name of the uid, never a made-up "root".
        assert_eq!(
            login_name_from(env(&[]), 0).as_deref(),
            Some("root"),
            "uid 0 is root"
        );
        // A non-root account from the password file, looked up by its uid.
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let other = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let uid: u32 = fields.get(2)?.parse().ok()?;
            (uid != 0 && !fields[0].is_empty()).then(|| (fields[0].to_string(), uid))
        });
        if let Some((name, uid)) = other {
            assert_eq!(login_name_from(env(&[]), uid), Some(name));
        }
        // A uid nobody has: no name rather than someone else's.
        assert_eq!(login_name_from(env(&[]), 3_999_999_999), None);
    }
}
