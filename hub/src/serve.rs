//! `hub serve`.
pub fn run(_config: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
