use promptwall_proxy::config::Config;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Show status.
    Status,
}

pub async fn run(_cmd: AuditCommand, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
