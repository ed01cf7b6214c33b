//! The `sendmail` transport: pipes each message to a local command (by default
//! `/usr/sbin/sendmail -t -i`, which takes the recipients from the headers). The command's
//! exit status decides success and its stderr is quoted on failure.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};
use tokio::io::AsyncWriteExt;

use crate::message;
use crate::settings::Settings;

/// The command used when the account sets none.
pub const DEFAULT_COMMAND: &str = "/usr/sbin/sendmail -t -i";

/// How much of the command's output is quoted in an error or receipt.
const OUTPUT_LIMIT: usize = 2000;

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: "sendmail".into(),
        description: "pipes each message to a local sendmail-compatible command".into(),
        settings: vec![SettingSpec::new(
            "command",
            SettingType::String,
            "the command and its arguments (shell-style quoting, no shell); it reads the message on stdin",
        )
        .default_value(DEFAULT_COMMAND)],
    }
}

/// Splits and checks `command`; finds the program now so `postflight check` reports a typo.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    let settings = Settings::new(&request.settings, &request.account);
    let line = settings
        .string("command")?
        .unwrap_or_else(|| DEFAULT_COMMAND.to_string());
    let words = shell_words::split(&line).map_err(|e| {
        settings.error(
            "command",
            format!("cannot split '{line}' into words: {e}"),
            "close the quotes, e.g. command = \"/usr/sbin/sendmail -t -i\"",
        )
    })?;
    let Some((program, args)) = words.split_first() else {
        return Err(settings.error(
            "command",
            "the command is empty",
            format!("remove `command` to use {DEFAULT_COMMAND}"),
        ));
    };
    let program = find_program(program).ok_or_else(|| {
        settings.error(
            "command",
            format!("cannot find the program '{program}'"),
            "install a sendmail-compatible mailer (postfix, exim, msmtp-mta, ...) or give the full path of one in `command`",
        )
    })?;
    Ok(Opened::new(SendmailConnection {
        program,
        args: args.to_vec(),
        display: line,
        timeout: Duration::from_millis(request.send_timeout_ms.max(1)),
    }))
}

/// Resolves a program name like the shell would: a path as given, a bare name through `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    let is_executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

struct SendmailConnection {
    program: PathBuf,
    args: Vec<String>,
    /// The command as configured, for messages.
    display: String,
    timeout: Duration,
}

/// What the command did.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl SendmailConnection {
    async fn run(&self, input: Vec<u8>) -> Result<Outcome, DeliveryError> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                DeliveryError::permanent(
                    ErrorKind::Command,
                    format!("cannot start `{}`: {e}", self.display),
                )
                .with_hint("check `command`: the program must exist and be executable")
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Feed stdin while the output is collected, so a command that writes a lot before
        // reading cannot deadlock against us.
        let feed = async move {
            // A command that exits without reading everything closes the pipe; its exit
            // status then tells what happened.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| {
            DeliveryError::transient(
                ErrorKind::Command,
                format!("lost track of `{}`: {e}", self.display),
            )
        })?;
        Ok(Outcome {
            status: output.status,
            stdout: clip(&output.stdout),
            stderr: clip(&output.stderr),
        })
    }
}

impl Connection for SendmailConnection {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let message = message::build(email)?;
        // sendmail reads a local file format: lines end in LF, not SMTP's CRLF.
        let input = crlf_to_lf(&message.formatted());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                DeliveryError::transient(ErrorKind::Plugin, format!("cannot start a runtime: {e}"))
            })?;
        let outcome = runtime
            .block_on(async { tokio::time::timeout(self.timeout, self.run(input)).await })
            .map_err(|_| {
                DeliveryError::transient(
                    ErrorKind::Timeout,
                    format!(
                        "`{}` did not finish within send_timeout ({:.1} s) and was killed",
                        self.display,
                        self.timeout.as_secs_f64()
                    ),
                )
                .with_hint("the local mailer is stuck (often waiting on its relay); the notification stays queued and is retried")
            })??;
        if outcome.status.success() {
            let said = [outcome.stdout.trim(), outcome.stderr.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            return Ok(Receipt {
                message_id: email.message_id.clone(),
                server_id: None,
                reply: (!said.is_empty()).then_some(said),
                location: None,
                refused: Vec::new(),
            });
        }
        Err(self.failure(&outcome))
    }
}

impl SendmailConnection {
    fn failure(&self, outcome: &Outcome) -> DeliveryError {
        use std::os::unix::process::ExitStatusExt;
        let (how, permanent) = match (outcome.status.code(), outcome.status.signal()) {
            (Some(code), _) => (
                format!("exited with status {code}"),
                is_permanent_exit(code),
            ),
            (None, Some(signal)) => (format!("was killed by signal {signal}"), false),
            (None, None) => ("failed".to_string(), false),
        };
        let said = if outcome.stderr.trim().is_empty() {
            outcome.stdout.trim()
        } else {
            outcome.stderr.trim()
        };
        let mut error = DeliveryError::new(
            ErrorKind::Command,
            permanent,
            format!("`{}` {how}", self.display),
        );
        if !said.is_empty() {
            error = error.with_reply(said.to_string());
        }
        error.with_hint(if permanent {
            "the mailer refused the message (see its output); check the addresses and the mailer's configuration"
        } else {
            "the mailer reported a temporary problem; the notification stays queued and is retried"
        })
    }
}

/// sysexits codes that say retrying the same message cannot help.
fn is_permanent_exit(code: i32) -> bool {
    matches!(
        code,
        64 /* usage */ | 65 /* data */ | 66 /* no input */ | 67 /* no user */ | 68 /* no host */
            | 76 /* protocol */ | 77 /* permission */ | 78 /* config */
    )
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter().peekable();
    while let Some(&b) = iter.next() {
        if b == b'\r' && iter.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

fn clip(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= OUTPUT_LIMIT {
        return text.into_owned();
    }
    let mut end = OUTPUT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(settings: serde_json::Value) -> OpenRequest {
        OpenRequest {
            transport: "sendmail".into(),
            account: "local".into(),
            send_timeout_ms: 1000,
            settings: settings.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn commands_are_checked_at_open() {
        let err = open(&request(json!({"command": "/nonexistent/sendmail -t"})))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("/nonexistent/sendmail"));
        assert!(open(&request(json!({"command": "\"unclosed"}))).is_err());
        assert!(open(&request(json!({"command": "sh -c 'cat >/dev/null'"}))).is_ok());
    }

    #[test]
    fn exit_codes_and_line_ends() {
        assert!(is_permanent_exit(67));
        assert!(!is_permanent_exit(75));
        assert!(!is_permanent_exit(1));
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
        assert_eq!(clip("é".repeat(1500).as_bytes()).len(), 2000 + 3);
    }
}
