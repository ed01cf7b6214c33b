//! postflight's own exit codes, in one place (sysexits.h values; DESIGN section 3). `run`
//! exits with the task's code instead; these are for postflight's own errors.

/// Everything went as asked.
pub const OK: i32 = 0;
/// The command line was wrong.
pub const USAGE: i32 = 64;
/// Input data was wrong (a bad address, a bad `--started` time, an unreadable output file).
pub const DATAERR: i32 = 65;
/// A service or plugin is unavailable (server refused, TLS failed, plugin missing).
pub const UNAVAILABLE: i32 = 69;
/// An internal error (a bug).
pub const SOFTWARE: i32 = 70;
/// A file could not be written (state directory, outbox).
pub const CANTCREAT: i32 = 73;
/// A temporary failure: try again later (timeout, connection refused, 4xx).
pub const TEMPFAIL: i32 = 75;
/// Permission or authentication denied.
pub const NOPERM: i32 = 77;
/// The configuration is wrong.
pub const CONFIG: i32 = 78;
/// `run`: the command was found but could not be executed (as a shell does).
pub const CANNOT_EXECUTE: i32 = 126;
/// `run`: the command was not found (as a shell does).
pub const NOT_FOUND: i32 = 127;
/// `run --timeout`: the task was killed for taking too long (as timeout(1) does).
pub const TIMED_OUT: i32 = 124;

/// An error that ends the command with a specific exit code. Its message is already
/// complete (what, where, how to fix).
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// The message printed to stderr.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<postflight_core::config::ConfigError> for Failure {
    fn from(error: postflight_core::config::ConfigError) -> Self {
        Failure::new(CONFIG, format!("configuration error: {error}"))
    }
}

/// The exit code for a delivery error (`postflight test`, `outbox flush`).
pub fn for_delivery(error: &postflight_core::DeliveryError) -> i32 {
    use postflight_core::ErrorKind as K;
    match error.kind {
        K::Config | K::InsecureAuth => CONFIG,
        K::Auth | K::Permission => NOPERM,
        K::SenderRejected | K::RecipientRejected | K::MessageRejected => DATAERR,
        // Retried by the outbox, but an operator running `test` must fix something first.
        K::Certificate | K::Tls | K::StarttlsUnavailable => UNAVAILABLE,
        _ if error.is_transient() => TEMPFAIL,
        _ => UNAVAILABLE,
    }
}
