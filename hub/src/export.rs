//! `hub export-bars`.
pub fn run(
    _config: &std::path::Path,
    _instance: &fleet::InstanceId,
    _symbol: &str,
    _timeframe: &str,
    _out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
