//! Plugins built outside the workspace, and the leak check (issue 6's plugin matrix):
//!
//! - [`build_external_plugins`]: the example webhook plugin (its own crate under `examples/`,
//!   built with cargo as a third party would build it) and the C plugin of `test-support/`
//!   (compiled with the system C compiler), into `<target>/external/`.
//! - [`leak_check`]: 1000 open/send/close cycles of a plugin's `file` transport under
//!   valgrind, failing on any definite leak.
//!
//! Both need only cargo, `cc` and valgrind on the PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, run, target_dir};

/// Where the out-of-tree plugins are built: a target directory of their own, so their
/// libraries never land next to the `postflight` binary (which loads `libpostflight_*` files
/// from its own directory) and their dependency versions never mix with the workspace's.
pub fn external_dir() -> PathBuf {
    target_dir().join("external")
}

fn must_exist(path: PathBuf) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("the build succeeded but {} is missing", path.display());
    }
    Ok(path)
}

/// Builds the example webhook plugin (debug) and the C `cfile` plugin; returns their
/// libraries: `<target>/external/debug/libpostflight_webhook.so` and
/// `<target>/external/c-plugin/libpostflight_cfile.so`.
pub fn build_external_plugins(root: &Path) -> Result<Vec<PathBuf>> {
    let out = external_dir();
    run(cargo()
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("examples/webhook-plugin/Cargo.toml"))
        .arg("--target-dir")
        .arg(&out))?;
    let webhook = must_exist(out.join("debug").join(library_file("postflight_webhook")))?;

    let c_out = out.join("c-plugin");
    std::fs::create_dir_all(&c_out)
        .with_context(|| format!("cannot create {}", c_out.display()))?;
    let cfile = c_out.join(library_file("postflight_cfile"));
    let source = root.join("test-support/c-plugin/file_plugin.c");
    run(
        Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
            .args([
                "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&cfile)
            .arg(&source),
    )?;
    Ok(vec![webhook, must_exist(cfile)?])
}

/// `postflight_x` -> `libpostflight_x.so` (the platform's library file name).
fn library_file(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Runs `core/examples/plugin_cycles` under valgrind: 1000 open/send/close cycles of the
/// `file` transport of `plugin` (the smtp plugin's library), failing on a definite leak or
/// any memory error.
pub fn leak_check(root: &Path, plugin: &Path) -> Result<()> {
    run(cargo().current_dir(root).args([
        "build",
        "--package",
        "postflight-core",
        "--example",
        "plugin_cycles",
    ]))?;
    let driver = must_exist(target_dir().join("debug/examples/plugin_cycles"))?;
    let mail = target_dir()
        .join("leak-check")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&mail).with_context(|| format!("cannot create {}", mail.display()))?;
    let settings = format!(
        "{{\"dir\":{}}}",
        json_string(&mail.join("mail").display().to_string())
    );
    let result = run(Command::new("valgrind")
        .args([
            "--leak-check=full",
            // Only definite leaks fail the check, so only they are shown: "possibly lost"
            // blocks are thread-local state of threads still alive at exit.
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=1",
            "--quiet",
        ])
        .arg(&driver)
        .arg(plugin)
        .arg("file")
        .arg(&settings)
        .arg("1000"))
    .context("the leak check failed (valgrind's report is above)");
    // The 1000 .eml files are of no further use, pass or fail.
    let _ = std::fs::remove_dir_all(&mail);
    result
}

/// A JSON string literal (xtask keeps its dependencies to anyhow and std).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
