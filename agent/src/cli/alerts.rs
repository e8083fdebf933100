//! `promptwall alerts test`: a signed test event to every configured
//! webhook, now, with each one's answer (no outbox: the operator waits).

use std::time::Instant;

use crate::alerts::deliver::Poster;
use crate::alerts::{AlertEvent, EventKind, Severity, Webhook};
use crate::config::AgentConfig;

#[derive(clap::Subcommand)]
pub enum AlertsCommand {
    /// Send a signed test event to each webhook and show what it answered.
    Test(TestArgs),
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// Only this webhook (by name).
    #[arg(long)]
    pub webhook: Option<String>,
    /// One JSON object per webhook instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: AlertsCommand, config: &AgentConfig) -> anyhow::Result<()> {
    let AlertsCommand::Test(args) = cmd;
    let hooks: Vec<Webhook> = config
        .alerts
        .webhooks
        .iter()
        .filter(|w| args.webhook.as_ref().is_none_or(|n| &w.name == n))
        .map(Webhook::load)
        .collect::<anyhow::Result<_>>()?;
    if hooks.is_empty() {
        anyhow::bail!(match &args.webhook {
            Some(n) => format!("no webhook named {n:?} in [alerts]; check the name"),
            None =>
                "no webhooks configured: add [[alerts.webhooks]] to the config (see deploy/config.example.toml)".into(),
        });
    }
    let poster = Poster::new()?;
    let machine_id = config.machine_id();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["webhook", "url", "answer", "ms"]);
    let mut failed = 0;
    for hook in &hooks {
        let event = AlertEvent::new(
            EventKind::Test,
            Severity::Info,
            &machine_id,
            format!("test event from `promptwall alerts test` for webhook {}", hook.name),
            serde_json::json!({ "webhook": hook.name }),
        );
        let body = crate::alerts::event::render(hook.format, &serde_json::to_string(&event)?);
        let started = Instant::now();
        let outcome = poster.post(hook, &event.id, body).await;
        let ms = started.elapsed().as_millis();
        let ok = matches!(outcome, Ok(s) if (200..300).contains(&s));
        failed += usize::from(!ok);
        let answer = match &outcome {
            Ok(status) => status.to_string(),
            Err(e) => e.clone(),
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({"webhook": hook.name, "id": event.id, "ok": ok, "answer": answer, "ms": ms})
            );
        } else {
            table.add_row(vec![hook.name.clone(), hook.url.to_string(), answer, ms.to_string()]);
        }
    }
    if !args.json {
        println!("{table}");
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} webhooks did not answer 2xx; check their URL, the receiver's logs and its secret",
            hooks.len()
        );
    }
    Ok(())
}
