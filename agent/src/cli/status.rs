//! `promptwall status`: what the running daemon is doing.

use crate::config::AgentConfig;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the raw JSON status document.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs, config: &AgentConfig) -> anyhow::Result<()> {
    let doc = crate::admin::query(&config.listen.admin_socket, "status").await?;
    if args.json {
        println!("{doc}");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["item", "value"]);
    let row = |t: &mut comfy_table::Table, k: &str, v: &serde_json::Value| {
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        t.add_row(vec![k.to_string(), shown]);
    };
    for key in ["version", "pid", "uptime_secs", "machine_id"] {
        row(&mut table, key, &doc[key]);
    }
    for (section, value) in [
        ("listeners", &doc["listeners"]),
        ("counts", &doc["counts"]),
        ("intercept", &doc["intercept"]),
    ] {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    row(&mut table, &format!("{section}.{k}"), v);
                }
            }
            other => row(&mut table, section, other),
        }
    }
    println!("{table}");
    Ok(())
}
