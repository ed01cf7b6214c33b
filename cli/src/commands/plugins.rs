//! `postflight plugins [--json]`: what was found, where, each transport's settings schema,
//! and why candidates were rejected.

use serde::Serialize;

use postflight_core::plugin::{SettingSpec, TransportSpec};

use crate::app::Context;
use crate::args::JsonArg;
use crate::exit::{self, Failure};
use crate::output;

/// `--json` output: stable for scripts.
#[derive(Serialize)]
struct PluginsJson<'a> {
    searched: Vec<SearchedJson>,
    plugins: Vec<PluginJson<'a>>,
    rejected: Vec<RejectedJson>,
    conflicts: Vec<ConflictJson>,
    /// `[plugins] prefer` entries that did not apply as written.
    warnings: &'a [String],
}

#[derive(Serialize)]
struct SearchedJson {
    path: String,
    origin: &'static str,
    exists: bool,
}

#[derive(Serialize)]
struct PluginJson<'a> {
    name: &'a str,
    version: &'a str,
    abi_version: u32,
    path: String,
    description: &'a str,
    transports: &'a [TransportSpec],
}

#[derive(Serialize)]
struct RejectedJson {
    path: String,
    reason: String,
}

#[derive(Serialize)]
struct ConflictJson {
    transport: String,
    paths: Vec<String>,
    /// The `prefer` entry that names none of the paths, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    unmatched_preference: Option<String>,
}

/// Lists plugins; always exits 0 (a rejected candidate is information, not an error).
pub fn run(ctx: &Context, args: JsonArg) -> Result<i32, Failure> {
    let registry = ctx.registry();
    if args.json {
        output::print_json(&PluginsJson {
            searched: registry
                .searched
                .iter()
                .map(|d| SearchedJson {
                    path: d.path.display().to_string(),
                    origin: d.origin,
                    exists: d.path.is_dir(),
                })
                .collect(),
            plugins: registry
                .plugins
                .iter()
                .map(|p| PluginJson {
                    name: &p.manifest.name,
                    version: &p.manifest.version,
                    abi_version: p.manifest.abi_version,
                    path: p.path.display().to_string(),
                    description: &p.manifest.description,
                    transports: &p.manifest.transports,
                })
                .collect(),
            rejected: registry
                .rejected
                .iter()
                .map(|r| RejectedJson {
                    path: r.path.display().to_string(),
                    reason: r.reason.clone(),
                })
                .collect(),
            conflicts: registry
                .conflicts
                .iter()
                .map(|c| ConflictJson {
                    transport: c.transport.clone(),
                    paths: c.paths.iter().map(|p| p.display().to_string()).collect(),
                    unmatched_preference: c.unmatched_preference.clone(),
                })
                .collect(),
            warnings: &registry.warnings,
        });
        return Ok(exit::OK);
    }
    let mut text = String::new();
    if registry.plugins.is_empty() {
        text.push_str("No plugins found.\n");
    }
    for plugin in &registry.plugins {
        let m = &plugin.manifest;
        text.push_str(&format!(
            "{} {} (ABI {})  {}\n",
            m.name,
            m.version,
            m.abi_version,
            plugin.path.display()
        ));
        for t in &m.transports {
            text.push_str(&format!("    {:<10} {}\n", t.name, t.description));
            text.push_str(&settings_table(&t.settings));
        }
    }
    for conflict in &registry.conflicts {
        text.push_str(&format!("\nConflict: {conflict}\n"));
    }
    for warning in &registry.warnings {
        text.push_str(&format!("\nWarning: {warning}\n"));
    }
    if !registry.rejected.is_empty() {
        text.push_str("\nRejected:\n");
        for rejected in &registry.rejected {
            text.push_str(&format!(
                "    {}\n        {}\n",
                rejected.path.display(),
                rejected.reason
            ));
        }
    }
    text.push_str("\nSearched, in order:\n");
    for dir in &registry.searched {
        let state = if dir.path.is_dir() { "" } else { "  (absent)" };
        text.push_str(&format!(
            "    {}  [{}]{state}\n",
            dir.path.display(),
            dir.origin
        ));
    }
    output::print(&text);
    Ok(exit::OK)
}

/// One line per setting, aligned: `name  type, required, secret, default X  help`.
fn settings_table(settings: &[SettingSpec]) -> String {
    let described: Vec<(String, String, &str)> = settings
        .iter()
        .map(|s| {
            let mut traits = vec![s.kind.as_str().to_string()];
            if s.required {
                traits.push("required".into());
            }
            if s.secret {
                traits.push("secret".into());
            }
            if let Some(default) = &s.default {
                traits.push(format!("default {default}"));
            }
            (s.name.clone(), traits.join(", "), s.help.as_str())
        })
        .collect();
    let name_width = described.iter().map(|d| d.0.len()).max().unwrap_or(0);
    let traits_width = described.iter().map(|d| d.1.len()).max().unwrap_or(0);
    described
        .iter()
        .map(|(name, traits, help)| {
            let line = format!(
                "{:15}{name:<name_width$}  {traits:<traits_width$}  {help}",
                ""
            );
            format!("{}\n", line.trim_end())
        })
        .collect()
}
