//! Drives a plugin through many open/send/close cycles with the host API, for leak checks
//! (`cargo xtask ci` runs it under valgrind against the `file` transport):
//!
//! ```text
//! plugin_cycles LIBRARY TRANSPORT SETTINGS_JSON [CYCLES]
//! plugin_cycles target/debug/libpostflight_transport_smtp.so file '{"dir":"/tmp/mail"}' 1000
//! ```
//!
//! Every cycle loads nothing new: the library is loaded once (libraries are never unloaded),
//! then each cycle opens a session, sends one email, checks the receipt and closes it. Exits
//! non-zero on the first failure.

use std::path::PathBuf;
use std::process::ExitCode;

use postflight_core::plugin::host::load_file;
use postflight_core::plugin::OpenRequest;
use postflight_core::{Email, EmailParts};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("plugin_cycles: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [library, transport, settings, rest @ ..] = args.as_slice() else {
        return Err("usage: plugin_cycles LIBRARY TRANSPORT SETTINGS_JSON [CYCLES]".into());
    };
    let cycles: u32 = match rest.first() {
        Some(n) => n.parse().map_err(|e| format!("CYCLES: {e}"))?,
        None => 1000,
    };
    let settings: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(settings).map_err(|e| format!("SETTINGS_JSON: {e}"))?;
    let plugin = load_file(&PathBuf::from(library))
        .map_err(|r| format!("{}: {}", r.path.display(), r.reason))?;
    let request = OpenRequest {
        transport: transport.clone(),
        account: "leak-check".into(),
        send_timeout_ms: 30_000,
        settings,
    };
    // The error path allocates too: open once with settings the transport must refuse.
    let mut bad = request.clone();
    bad.settings.clear();
    for cycle in 0..cycles {
        let (mut session, _warnings) = plugin
            .open(&request)
            .map_err(|e| format!("cycle {cycle}: open: {e}"))?;
        let email = Email::new(EmailParts {
            from: "leak@example.com".into(),
            to: vec!["check@example.com".into()],
            subject: format!("cycle {cycle}"),
            text: "x".repeat(1000),
        });
        let receipt = session
            .send(&email)
            .map_err(|e| format!("cycle {cycle}: send: {e}"))?;
        if receipt.message_id != email.message_id {
            return Err(format!("cycle {cycle}: the receipt names another message"));
        }
        drop(session);
        if cycle % 100 == 0 && plugin.open(&bad).is_ok() {
            return Err("open accepted empty settings".into());
        }
    }
    println!(
        "{cycles} open/send/close cycles of '{transport}' through {}",
        plugin.path.display()
    );
    Ok(())
}
