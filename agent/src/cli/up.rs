use promptwall_proxy::config::Config;

#[derive(clap::Args)]
pub struct UpArgs {}

pub async fn run(_args: UpArgs, _config: Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
