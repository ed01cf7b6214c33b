//! `postflight check`: validates the config, addresses, templates, secrets' sources, and that
//! each account's transport plugin is found and accepts the account's settings.

use std::collections::BTreeSet;

use postflight_core::config::DEFAULT_SEND_TIMEOUT;
use postflight_core::plugin::OpenRequest;
use postflight_core::secret;
use postflight_core::settings::TaskOverrides;
use postflight_template::Template;

use crate::app::Context;
use crate::exit::{self, Failure};
use crate::output;

#[derive(Default)]
struct Findings {
    errors: Vec<String>,
    warnings: Vec<String>,
    ok: Vec<String>,
}

/// Exit 0 when there is no error (warnings allowed), 78 otherwise.
pub fn run(ctx: &Context) -> Result<i32, Failure> {
    let mut f = Findings::default();
    match &ctx.config_file {
        Some(file) => f.ok.push(format!("config file {} parsed", file.display())),
        None => f.warnings.push(format!(
            "no config file at {}: notifications go to the built-in 'default' account ({} transport into {})",
            ctx.config_path_for_messages(),
            "file",
            ctx.state_dir.join("mail").display()
        )),
    }
    check_templates(ctx, &mut f);
    check_tasks(ctx, &mut f);
    check_accounts(ctx, &mut f);

    let mut text = String::new();
    for line in &f.ok {
        text.push_str(&format!("ok       {line}\n"));
    }
    for line in &f.warnings {
        text.push_str(&format!("warning  {line}\n"));
    }
    for line in &f.errors {
        text.push_str(&format!("error    {line}\n"));
    }
    text.push_str(&format!(
        "\n{} error(s), {} warning(s)\n",
        f.errors.len(),
        f.warnings.len()
    ));
    output::print(&text);
    Ok(if f.errors.is_empty() {
        exit::OK
    } else {
        exit::CONFIG
    })
}

fn check_templates(ctx: &Context, f: &mut Findings) {
    let mut templates: Vec<(String, &str)> = Vec::new();
    let d = &ctx.config.defaults;
    templates.extend(
        d.subject
            .as_deref()
            .map(|t| ("defaults.subject".to_string(), t)),
    );
    templates.extend(d.body.as_deref().map(|t| ("defaults.body".to_string(), t)));
    for (key, task) in &ctx.config.tasks {
        templates.extend(
            task.subject
                .as_deref()
                .map(|t| (format!("tasks.{key}.subject"), t)),
        );
        templates.extend(
            task.body
                .as_deref()
                .map(|t| (format!("tasks.{key}.body"), t)),
        );
    }
    for (key, source) in templates {
        match Template::parse(source) {
            Ok(_) => f.ok.push(format!("template `{key}`")),
            Err(e) => f.errors.push(format!("template `{key}`: {e}")),
        }
    }
}

/// A light syntactic check; the transport parses addresses for real when sending.
fn address_problem(address: &str) -> Option<&'static str> {
    let addr = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        (None, None) => address,
        _ => return Some("unbalanced angle brackets"),
    };
    match addr.trim().rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !addr.trim().contains(char::is_whitespace) =>
        {
            None
        }
        _ => Some("not of the form user@domain"),
    }
}

fn check_address(f: &mut Findings, key: &str, address: &str) {
    if let Some(problem) = address_problem(address) {
        f.errors.push(format!("`{key}`: '{address}' is {problem}"));
    }
}

fn check_tasks(ctx: &Context, f: &mut Findings) {
    let mut keys: Vec<String> = ctx.config.tasks.keys().cloned().collect();
    keys.insert(0, String::new());
    for key in keys {
        let (label, task) = if key.is_empty() {
            (
                "defaults".to_string(),
                ctx.config.task("(defaults)", &TaskOverrides::default()),
            )
        } else {
            (
                format!("tasks.{key}"),
                ctx.config.task(&key, &TaskOverrides::default()),
            )
        };
        for address in &task.to {
            check_address(f, &format!("{label}.to"), address);
        }
        if let Err(e) = ctx.config.account(&task.account, &ctx.state_dir) {
            f.errors.push(format!(
                "`{label}` uses account '{}': {}",
                task.account, e.message
            ));
        }
        if task.remind_every.is_some()
            && task.level != postflight_core::Level::Changes
            && !key.is_empty()
        {
            f.warnings.push(format!(
                "`{label}.remind_every` only matters with level = \"changes\""
            ));
        }
    }
}

fn check_accounts(ctx: &Context, f: &mut Findings) {
    let registry = ctx.registry();
    for rejected in &registry.rejected {
        f.warnings.push(format!(
            "plugin candidate {} rejected: {}",
            rejected.path.display(),
            rejected.reason
        ));
    }
    for warning in &registry.warnings {
        f.warnings.push(warning.clone());
    }
    // A conflict is an error where an account uses the transport (reported below) and a
    // warning otherwise: it would become one as soon as an account did.
    let used: BTreeSet<String> = ctx
        .config
        .accounts
        .values()
        .map(|a| a.transport.clone())
        .collect();
    for conflict in registry
        .conflicts
        .iter()
        .filter(|c| !used.contains(&c.transport))
    {
        f.warnings.push(conflict.to_string());
    }
    let mut names: BTreeSet<String> = ctx.config.accounts.keys().cloned().collect();
    names.insert(ctx.config.default_account_name());
    for name in names {
        let Ok(account) = ctx.config.account(&name, &ctx.state_dir) else {
            continue; // reported by check_tasks where it is used
        };
        let label = if account.builtin {
            format!("account '{name}' (built-in)")
        } else {
            format!("account '{name}'")
        };
        check_address(f, &format!("accounts.{name}.from"), &account.from);
        let (plugin, spec) = match registry.transport(&account.transport) {
            Ok(found) => found,
            Err(e) => {
                f.errors.push(format!("{label}: {e}"));
                continue;
            }
        };
        let problems = secret::validate(&account.settings, spec);
        for problem in &problems {
            f.errors.push(format!("{label}: accounts.{name}.{problem}"));
        }
        if !problems.is_empty() {
            continue;
        }
        let resolved = match secret::resolve(&account.settings, spec) {
            Ok(resolved) => resolved,
            Err(e) => {
                f.errors.push(format!("{label}: accounts.{name}.{e}"));
                continue;
            }
        };
        let timeout = ctx
            .config
            .defaults
            .send_timeout
            .unwrap_or(DEFAULT_SEND_TIMEOUT);
        let request = OpenRequest {
            transport: account.transport.clone(),
            account: name.clone(),
            send_timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            settings: resolved.settings.clone(),
        };
        // `open` must not touch the network, but a broken plugin must not hang `check` either.
        match plugin.open_blocking(request, timeout) {
            Ok((_session, warnings)) => {
                for warning in warnings {
                    f.warnings
                        .push(format!("{label}: {}", resolved.redact(&warning)));
                }
                f.ok.push(format!(
                    "{label}: transport '{}' from plugin '{}' {} ({}) accepts the settings",
                    account.transport,
                    plugin.manifest.name,
                    plugin.manifest.version,
                    plugin.path.display()
                ));
            }
            Err(e) => {
                let hint = e
                    .hint
                    .as_ref()
                    .map(|h| format!(" (hint: {h})"))
                    .unwrap_or_default();
                f.errors
                    .push(resolved.redact(&format!("{label}: {}{hint}", e.message)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::address_problem;

    #[test]
    fn address_check_table() {
        for (address, ok) in [
            ("ops@example.com", true),
            ("Ops Team <ops@example.com>", true),
            ("ops@example.com <nobody>", false),
            ("nobody", false),
            ("<ops@example.com", false),
            ("@example.com", false),
            ("ops@", false),
            ("o ps@example.com", false),
        ] {
            assert_eq!(address_problem(address).is_none(), ok, "{address}");
        }
    }
}
