//! Placeholder until the benchmark lands; fails loudly rather than pretending.

/// Runs the benchmark.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("this benchmark is not implemented yet")
}
