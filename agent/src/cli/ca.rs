use promptwall_proxy::config::Config;

#[derive(clap::Subcommand)]
pub enum CaCommand {
    /// Show status.
    Status,
}

pub async fn run(_cmd: CaCommand, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
