//! Transparent interception: eBPF redirect (default) or nftables fallback.
use promptwall_proxy::config::Config;

#[derive(clap::Args)]
pub struct CleanupArgs {}

pub async fn cleanup(_args: CleanupArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
