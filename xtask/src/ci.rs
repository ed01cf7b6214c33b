//! `cargo xtask ci`: everything CI checks, from one entry point, in the order that fails
//! fastest: formatting, lints, the test servers' environment, plugins, tests, leak check.

use anyhow::Result;

use crate::util::{self, cargo};
use crate::{install, plugins};

/// Runs the whole check.
pub fn run() -> Result<()> {
    let root = util::root();
    util::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let python = util::ensure_test_python()?;
    // Tests load the plugins from next to the binary, so build them all first.
    install::build(false)?;
    let external = plugins::build_external_plugins(&root)?;
    eprintln!(
        "external plugins built: {}",
        external
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    util::run(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .env("POSTFLIGHT_TEST_PYTHON", &python),
    )?;
    let smtp_plugin = util::target_dir().join("debug").join(install::PLUGINS[0]);
    plugins::leak_check(&root, &smtp_plugin)?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}
