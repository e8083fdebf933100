//! `promptwall route explain`: which rule a request would match and which
//! upstreams it would try, in order, from the config alone (nothing sent,
//! no key read). Cooldowns are the running agent's live state and are not
//! shown here.

use std::path::PathBuf;

use anyhow::Context;
use promptwall_llm::{ApiShape, Shapes};
use promptwall_proxy::routing::{Candidate, Decision, Destination, Features, RouteQuery, Router};
use serde_json::{json, Value};

use crate::config::AgentConfig;

#[derive(clap::Subcommand)]
pub enum RouteCommand {
    /// Show the rule a request matches and the upstreams it would try.
    Explain(ExplainArgs),
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// A request body (JSON) to read the model and features from; `-` for stdin.
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// The model the client asks for (overrides the request's).
    #[arg(long)]
    pub model: Option<String>,
    /// The client's API shape: anthropic.messages, anthropic.count_tokens,
    /// openai.chat, openai.responses (default: guessed from the request).
    #[arg(long)]
    pub shape: Option<String>,
    /// The coding tool as the audit names it (claude-code, codex, ...).
    #[arg(long, default_value = "")]
    pub tool: String,
    #[arg(long)]
    pub user: Option<String>,
    /// The client's executable path.
    #[arg(long)]
    pub executable: Option<String>,
    #[arg(long, default_value = "transparent")]
    pub listener: String,
    /// Estimated input tokens (overrides the request's estimate).
    #[arg(long)]
    pub input_tokens: Option<u64>,
    #[arg(long)]
    pub stream: bool,
    #[arg(long)]
    pub has_tools: bool,
    #[arg(long)]
    pub has_images: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: RouteCommand, config: &AgentConfig) -> anyhow::Result<()> {
    match cmd {
        RouteCommand::Explain(args) => explain(args, config),
    }
}

fn explain(args: ExplainArgs, config: &AgentConfig) -> anyhow::Result<()> {
    let router = Router::for_explain(&config.routing).map_err(|e| anyhow::anyhow!("[routing] is invalid: {e}"))?;
    let body: Option<Value> = match &args.request {
        None => None,
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read the request from stdin")?
            } else {
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
            };
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not JSON; pass the request body as the client sends it",
                    path.display()
                )
            })?)
        }
    };
    let shape = match &args.shape {
        Some(name) => Shapes::builtin().iter().find(|s| s.as_str() == name).with_context(|| {
            format!("unknown shape {name:?}; use anthropic.messages, openai.chat or openai.responses")
        })?,
        None => guess_shape(body.as_ref(), args.model.as_deref()),
    };
    let mut features = body.as_ref().map(Features::of).unwrap_or_default();
    features.stream |= args.stream;
    features.has_tools |= args.has_tools;
    features.has_images |= args.has_images;
    if let Some(n) = args.input_tokens {
        features.input_tokens = n;
    }
    let model = args
        .model
        .clone()
        .or_else(|| body.as_ref()?.get("model")?.as_str().map(str::to_string));
    let query = RouteQuery {
        listener: &args.listener,
        shape: Some(shape),
        model: model.as_deref(),
        tool: &args.tool,
        user: args.user.as_deref(),
        executable: args.executable.as_deref(),
        features,
    };
    let decision = router.explain(&query);
    let doc = document(&decision, shape, model.as_deref(), features);
    if args.json {
        println!("{doc}");
        return Ok(());
    }
    print_table(&doc);
    Ok(())
}

/// The client's API from its body (or, without one, its model's name):
/// Responses has `input`/`instructions`; Chat has system, developer or tool
/// roles or `tool_calls` among its messages; Messages has a top-level
/// `system` or content blocks; else by the model.
fn guess_shape(body: Option<&Value>, model: Option<&str>) -> ApiShape {
    let Some(b) = body else {
        return if model.is_some_and(|m| m.starts_with("claude")) {
            ApiShape::ANTHROPIC_MESSAGES
        } else {
            ApiShape::OPENAI_CHAT
        };
    };
    if b.get("input").is_some() || b.get("instructions").is_some() {
        return ApiShape::OPENAI_RESPONSES;
    }
    let messages = b
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let chat = messages.iter().any(|m| {
        matches!(m.get("role").and_then(Value::as_str), Some("developer" | "tool"))
            || m.get("tool_calls").is_some()
            || m.get("role").and_then(Value::as_str) == Some("system") && b.get("system").is_none()
    });
    let blocks = messages.iter().any(|m| {
        m.get("content").and_then(Value::as_array).is_some_and(|c| {
            c.iter().any(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("tool_use" | "tool_result" | "image")
                )
            })
        })
    });
    if chat {
        ApiShape::OPENAI_CHAT
    } else if b.get("system").is_some() || blocks {
        ApiShape::ANTHROPIC_MESSAGES
    } else {
        guess_shape(None, b.get("model").and_then(Value::as_str).or(model))
    }
}

fn document(decision: &Decision, client: ApiShape, model: Option<&str>, f: Features) -> Value {
    let request = json!({
        "shape": client.as_str(), "model": model, "input_tokens": f.input_tokens,
        "stream": f.stream, "has_tools": f.has_tools, "has_images": f.has_images,
    });
    match decision {
        Decision::Direct => json!({"request": request, "route": null, "candidates": []}),
        Decision::Routed(plan) => json!({
            "request": request,
            "route": plan.route,
            "candidates": plan.candidates.iter().map(|c| candidate(c, client, model)).collect::<Vec<_>>(),
        }),
    }
}

fn candidate(c: &Candidate, client: ApiShape, model: Option<&str>) -> Value {
    let shape = c.shape_for(client);
    let (url, credential) = match &c.destination {
        Destination::Client => ("where the client addressed it".to_string(), "the client's own"),
        Destination::Upstream { upstream, account } => (
            upstream.url(shape),
            if upstream.accounts.get(*account).is_some() {
                "the account's key"
            } else {
                "none"
            },
        ),
    };
    let local = client == ApiShape::ANTHROPIC_COUNT_TOKENS && shape != client;
    json!({
        "upstream": c.label(),
        "model": c.model.as_deref().or(model),
        "api": shape.as_str(),
        "translated": shape != client,
        "url": if local { "answered locally (tokenizer estimate)".to_string() } else { url },
        "credential": credential,
    })
}

fn print_table(doc: &Value) {
    let r = &doc["request"];
    println!(
        "request: {} model {} · ~{} input tokens · stream {} · tools {} · images {}",
        r["shape"].as_str().unwrap_or("?"),
        r["model"].as_str().unwrap_or("(none)"),
        r["input_tokens"],
        r["stream"],
        r["has_tools"],
        r["has_images"]
    );
    let Some(route) = doc["route"].as_str() else {
        println!("no rule matches: the request goes where the client addressed it, untouched");
        return;
    };
    println!("rule: {route} — tried in this order until one answers:");
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["#", "upstream", "model", "api", "url", "credential"]);
    for (i, c) in doc["candidates"].as_array().into_iter().flatten().enumerate() {
        let api = match c["translated"].as_bool() {
            Some(true) => format!("{} (translated)", c["api"].as_str().unwrap_or("")),
            _ => c["api"].as_str().unwrap_or("").to_string(),
        };
        table.add_row(vec![
            (i + 1).to_string(),
            c["upstream"].as_str().unwrap_or("").to_string(),
            c["model"].as_str().unwrap_or("").to_string(),
            api,
            c["url"].as_str().unwrap_or("").to_string(),
            c["credential"].as_str().unwrap_or("").to_string(),
        ]);
    }
    println!("{table}");
}
