//! Placeholder until the external plugin builds land; fails loudly rather than pretending.

use std::path::{Path, PathBuf};

/// Builds the out-of-tree example and the C plugin.
pub fn build_external_plugins(_root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(Vec::new())
}

/// Runs the plugin leak check.
pub fn leak_check(_root: &Path, _plugin: &Path) -> anyhow::Result<()> {
    anyhow::bail!("the leak check is not implemented yet")
}
