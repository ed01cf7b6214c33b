//! Provider presets: the server each well-known provider uses, the username it expects, and
//! what to do when it refuses the login (almost always: it wants an app password, not the
//! account's normal one).
//!
//! This module knows nothing about sockets; it only holds the providers' rules.

use crate::smtp::Security;

/// A mail provider with known SMTP settings and login rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Gmail and Google Workspace.
    Gmail,
    /// iCloud Mail.
    Icloud,
    /// Yahoo Mail.
    Yahoo,
    /// AT&T Mail (currently hosted by Yahoo).
    Att,
    /// Outlook.com / Hotmail (and Microsoft 365 by host).
    Outlook,
}

impl Provider {
    /// Every provider, in the order the documentation lists them.
    pub const ALL: [Provider; 5] = [
        Provider::Gmail,
        Provider::Icloud,
        Provider::Yahoo,
        Provider::Att,
        Provider::Outlook,
    ];

    /// The preset's name as written in `provider = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gmail => "gmail",
            Provider::Icloud => "icloud",
            Provider::Yahoo => "yahoo",
            Provider::Att => "att",
            Provider::Outlook => "outlook",
        }
    }

    /// The provider's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Provider::Gmail => "Gmail",
            Provider::Icloud => "iCloud Mail",
            Provider::Yahoo => "Yahoo Mail",
            Provider::Att => "AT&T Mail",
            Provider::Outlook => "Outlook.com",
        }
    }

    /// Parses a preset name (case-insensitive).
    pub fn parse(name: &str) -> Option<Provider> {
        let name = name.trim().to_ascii_lowercase();
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The provider's submission server: host, port and security.
    pub fn server(self) -> (&'static str, u16, Security) {
        match self {
            Provider::Gmail => ("smtp.gmail.com", 587, Security::StartTls),
            Provider::Icloud => ("smtp.mail.me.com", 587, Security::StartTls),
            Provider::Yahoo => ("smtp.mail.yahoo.com", 465, Security::Tls),
            Provider::Att => ("smtp.mail.att.net", 465, Security::Tls),
            Provider::Outlook => ("smtp-mail.outlook.com", 587, Security::StartTls),
        }
    }

    /// Recognises a provider by its SMTP host name, so an account configured by hand still
    /// gets the provider's advice.
    pub fn from_host(host: &str) -> Option<Provider> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let provider = match host.as_str() {
            "smtp.gmail.com" | "smtp.googlemail.com" | "smtp-relay.gmail.com" => Provider::Gmail,
            "smtp.mail.me.com" | "smtp.me.com" | "smtp.mac.com" => Provider::Icloud,
            "smtp.mail.att.net" | "outbound.att.net" => Provider::Att,
            "smtp-mail.outlook.com"
            | "smtp.office365.com"
            | "smtp.live.com"
            | "smtp.outlook.com"
            | "smtp.hotmail.com" => Provider::Outlook,
            h if h.starts_with("smtp.mail.yahoo.") => Provider::Yahoo,
            _ => return None,
        };
        Some(provider)
    }

    /// Whether the provider's app passwords are 16 letters shown in four groups separated by
    /// spaces that are not part of the password (Google, Yahoo).
    pub fn has_grouped_app_passwords(self) -> bool {
        matches!(self, Provider::Gmail | Provider::Yahoo)
    }

    /// What the username must look like, for messages.
    pub fn username_form(self) -> &'static str {
        match self {
            Provider::Gmail => {
                "the full Gmail address (name@gmail.com), or your Google Workspace address"
            }
            Provider::Icloud => {
                "your iCloud Mail address ending in @icloud.com, @me.com or @mac.com (not another email address registered with your Apple Account)"
            }
            Provider::Yahoo => "the full Yahoo Mail address (for example name@yahoo.com)",
            Provider::Att => {
                "the full AT&T email address (for example name@att.net or name@sbcglobal.net)"
            }
            Provider::Outlook => {
                "the full Outlook.com address (name@outlook.com, @hotmail.com or @live.com)"
            }
        }
    }

    /// A warning when `username` does not have the form the provider requires.
    pub fn check_username(self, username: &str) -> Option<String> {
        let username = username.trim().to_ascii_lowercase();
        let domain = username.rsplit_once('@').map(|(_, d)| d);
        let fits = match (self, domain) {
            (_, None) => false,
            (Provider::Icloud, Some(d)) => matches!(d, "icloud.com" | "me.com" | "mac.com"),
            // A Google Workspace account logs in with its own domain, so only a bare name
            // is certainly wrong for Gmail; the same holds for the other providers.
            (_, Some(d)) => !d.is_empty(),
        };
        (!fits).then(|| {
            format!(
                "{} expects the username to be {}; '{}' does not look like that",
                self.title(),
                self.username_form(),
                username
            )
        })
    }

    /// What to do when the provider refused the login: where to create the app password
    /// (AT&T: secure mail key), that it replaces the account password, and the username form.
    pub fn auth_hint(self) -> String {
        let steps = match self {
            Provider::Gmail => {
                "Gmail does not accept your Google account password from mail programs. Turn on 2-Step Verification for the account, then create an App Password at https://myaccount.google.com/apppasswords and put those 16 letters in `password` instead of the account password (the spaces Google shows between the groups are removed for you)."
            }
            Provider::Icloud => {
                "iCloud Mail does not accept your Apple Account password from mail programs. Sign in at https://account.apple.com, open Sign-In and Security > App-Specific Passwords, create one for postflight and put it in `password` instead of the account password."
            }
            Provider::Yahoo => {
                "Yahoo Mail does not accept your account password from mail programs. Open https://login.yahoo.com/account/security, choose to generate an app password, and put those 16 letters in `password` instead of the account password (spaces are removed for you)."
            }
            Provider::Att => {
                "AT&T Mail does not accept your account password from mail programs: it wants a secure mail key. Sign in to your AT&T profile, open Sign-in info > Secure mail key, create a key for postflight and put it in `password` instead of the account password."
            }
            Provider::Outlook => {
                "Outlook.com does not accept your normal password when two-step verification is on. Create an app password under Microsoft account > Security > Advanced security options > App passwords (https://account.live.com/proofs/AppPassword) and put it in `password` instead of the account password. For a Microsoft 365 work account, your administrator must also allow SMTP AUTH for the mailbox."
            }
        };
        format!("{steps} The username must be {}.", self.username_form())
    }
}

/// Removes the spaces a provider shows inside an app password (`abcd efgh ijkl mnop`),
/// including the non-breaking spaces a copy from a web page can bring along.
pub fn strip_app_password_spaces(password: &str) -> String {
    password.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_hosts_are_recognised() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.name()), Some(provider));
            let (host, _, _) = provider.server();
            assert_eq!(Provider::from_host(host), Some(provider), "{host}");
        }
        assert_eq!(Provider::parse("GMAIL"), Some(Provider::Gmail));
        assert_eq!(Provider::parse("aol"), None);
        assert_eq!(
            Provider::from_host("smtp.office365.com"),
            Some(Provider::Outlook)
        );
        assert_eq!(
            Provider::from_host("SMTP.Gmail.com."),
            Some(Provider::Gmail)
        );
        assert_eq!(Provider::from_host("mail.example.com"), None);
    }

    #[test]
    fn presets_use_the_documented_servers() {
        assert_eq!(
            Provider::Gmail.server(),
            ("smtp.gmail.com", 587, Security::StartTls)
        );
        assert_eq!(
            Provider::Icloud.server(),
            ("smtp.mail.me.com", 587, Security::StartTls)
        );
        assert_eq!(Provider::Yahoo.server().1, 465);
        assert_eq!(Provider::Att.server().0, "smtp.mail.att.net");
    }

    #[test]
    fn username_rules() {
        assert!(Provider::Gmail.check_username("me@gmail.com").is_none());
        assert!(Provider::Gmail
            .check_username("me@company.example")
            .is_none());
        assert!(Provider::Gmail.check_username("me").is_some());
        assert!(Provider::Icloud.check_username("me@icloud.com").is_none());
        assert!(Provider::Icloud.check_username("me@Mac.com").is_none());
        let warning = Provider::Icloud.check_username("me@gmail.com").unwrap();
        assert!(warning.contains("@icloud.com"), "{warning}");
        assert!(Provider::Att.check_username("me").is_some());
    }

    #[test]
    fn auth_hints_say_what_to_create_and_which_username() {
        let gmail = Provider::Gmail.auth_hint();
        assert!(gmail.contains("App Password") && gmail.contains("@gmail.com"));
        let icloud = Provider::Icloud.auth_hint();
        assert!(icloud.contains("App-Specific") && icloud.contains("@me.com"));
        assert!(Provider::Att.auth_hint().contains("secure mail key"));
        assert!(Provider::Yahoo.auth_hint().contains("app password"));
        assert!(Provider::Outlook.auth_hint().contains("app password"));
    }

    #[test]
    fn app_password_spaces_are_removed() {
        assert_eq!(
            strip_app_password_spaces("abcd efgh\u{a0}ijkl  mnop"),
            "abcdefghijklmnop"
        );
    }
}
