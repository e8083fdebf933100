//! `promptwall limits`: each `[quota]` limit, its usage and reset time per
//! identity, from the running daemon (counters live in its memory).

use promptwall_proxy::quota::{amount, human, Standing};

use crate::config::AgentConfig;

#[derive(clap::Args)]
pub struct LimitsArgs {
    /// Print the standings as JSON (one array).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: LimitsArgs, config: &AgentConfig) -> anyhow::Result<()> {
    if config.quota.limits.is_empty() {
        if args.json {
            println!("[]");
        } else {
            println!("No limits configured: add [[quota.limits]] to the config (see deploy/config.example.toml).");
        }
        return Ok(());
    }
    let doc = crate::admin::query(&config.listen.admin_socket, "limits").await?;
    if args.json {
        println!("{}", doc["limits"]);
        return Ok(());
    }
    let rows: Vec<Standing> = serde_json::from_value(doc["limits"].clone()).map_err(|e| {
        anyhow::anyhow!("the daemon's limits reply is unreadable ({e}); is it older than this CLI? restart it")
    })?;
    println!("{}", table(&rows));
    Ok(())
}

fn table(rows: &[Standing]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "limit",
        "who",
        "measure",
        "window",
        "used",
        "in flight",
        "max",
        "",
        "resets in",
    ]);
    for r in rows {
        let window = match (r.window, r.rolling) {
            (None, _) => "at once".to_string(),
            (Some(w), true) => format!("rolling {}", w.as_str()),
            (Some(w), false) => w.as_str().to_string(),
        };
        let name = if r.soft {
            format!("{} (soft)", r.limit)
        } else {
            r.limit.clone()
        };
        let percent = if r.max > 0.0 {
            (r.used + r.reserved) / r.max
        } else {
            1.0
        };
        t.add_row(vec![
            name,
            format!("{} {}", r.per.as_str(), r.key),
            r.measure.as_str().replace('_', " "),
            window,
            amount(r.measure, r.used),
            amount(r.measure, r.reserved),
            amount(r.measure, r.max),
            bar(percent),
            if r.used + r.reserved > 0.0 {
                human(r.resets_in)
            } else {
                "-".into()
            },
        ]);
    }
    t
}

/// `███████░░░  70%`
fn bar(fraction: f64) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let filled = (f * 10.0).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled),
        "░".repeat(10 - filled),
        fraction * 100.0
    )
}
