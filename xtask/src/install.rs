//! `cargo xtask build` and `cargo xtask install`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::util::{self, cargo};

/// The plugin libraries the workspace builds.
pub const PLUGINS: [&str; 2] = [
    "libpostflight_transport_smtp.so",
    "libpostflight_transport_api.so",
];

/// Builds the CLI and the plugins.
pub fn build(release: bool) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--exclude", "xtask"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)
}

/// Release build, then `PREFIX/bin/postflight` and `PREFIX/lib/postflight/plugins/*.so`.
pub fn install(args: &[&str]) -> Result<()> {
    let prefix = match args {
        [] => default_prefix()?,
        ["--prefix", dir] => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask install [--prefix DIR]"),
    };
    build(true)?;
    let release = util::target_dir().join("release");
    let bin_dir = prefix.join("bin");
    let plugin_dir = prefix.join("lib").join("postflight").join("plugins");
    for dir in [&bin_dir, &plugin_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // The host refuses plugin directories others can write to; make ours safe even under a
    // permissive umask.
    for dir in [prefix.join("lib").join("postflight"), plugin_dir.clone()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    copy(&release.join("postflight"), &bin_dir.join("postflight"))?;
    for plugin in PLUGINS {
        copy(&release.join(plugin), &plugin_dir.join(plugin))?;
    }
    eprintln!(
        "installed {}/postflight and {} plugins into {}",
        bin_dir.display(),
        PLUGINS.len(),
        plugin_dir.display()
    );
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d == bin_dir))
        .unwrap_or(false);
    if !on_path {
        eprintln!(
            "note: {} is not on your PATH; add it, e.g. export PATH=\"{}:$PATH\"",
            bin_dir.display(),
            bin_dir.display()
        );
    }
    Ok(())
}

fn default_prefix() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --prefix DIR")?;
    Ok(PathBuf::from(home).join(".local"))
}

/// Copies via a temporary name and renames, so a running postflight never sees a half-written
/// binary or library, and sets mode 0755.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp-install");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))?;
    Ok(())
}
