use promptwall_proxy::config::Config;

#[derive(clap::Args)]
pub struct ScanArgs {
    /// File to scan, or - for stdin.
    pub file: Option<std::path::PathBuf>,
}

pub async fn run(_args: ScanArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
