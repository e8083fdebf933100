//! `promptwall token create|list|revoke`: tokens for the explicit
//! listener. The token is printed once; the store keeps its SHA-256. The
//! running daemon picks changes up within seconds.

use promptwall_audit::tokens::{StoredToken, TokenStore};
use promptwall_audit::AuditStore;
use promptwall_proxy::tokens::{hash, mint, SCOPES};

use crate::config::AgentConfig;

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a token for a user; it is shown once.
    Create(CreateArgs),
    /// List tokens (never the tokens themselves).
    List(ListArgs),
    /// Revoke a token by id; requests with it get 401 from then on.
    Revoke(RevokeArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The user requests with this token are attributed to.
    #[arg(long)]
    pub user: String,
    /// APIs it may call: messages, count_tokens, chat, responses, embeddings, other, or * for all.
    #[arg(long, value_delimiter = ',', default_value = "messages,count_tokens,chat,responses")]
    pub scopes: Vec<String>,
    /// A label for people (`ci`, `laptop-bob`).
    #[arg(long)]
    pub name: Option<String>,
    /// At most this many requests per minute.
    #[arg(long)]
    pub rate: Option<f64>,
    /// At most this many tokens (input + output) per day (UTC).
    #[arg(long)]
    pub budget: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    pub id: String,
}

pub async fn run(cmd: TokenCommand, config: &AgentConfig) -> anyhow::Result<()> {
    let store = AuditStore::open(&config.audit.url).await?;
    let tokens = TokenStore::new(&store);
    match cmd {
        TokenCommand::Create(a) => {
            if a.user.trim().is_empty() {
                anyhow::bail!("--user must name someone; requests with the token are attributed to them");
            }
            if let Some(bad) = a.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                anyhow::bail!("unknown scope {bad:?}; use any of {}", SCOPES.join(", "));
            }
            for (flag, v) in [("--rate", a.rate), ("--budget", a.budget)] {
                if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    anyhow::bail!("{flag} must be a number ≥ 0");
                }
            }
            let (token, id) = mint();
            tokens
                .insert(&StoredToken {
                    id: id.clone(),
                    hash: hash(&token),
                    user_name: a.user.clone(),
                    scopes: a.scopes.join(","),
                    name: a.name.clone(),
                    rate_per_minute: a.rate,
                    tokens_per_day: a.budget,
                    created_at: promptwall_audit::time::now_ts(),
                    revoked_at: None,
                })
                .await?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "token": token, "user": a.user, "scopes": a.scopes})
                );
            } else {
                println!("{token}");
                eprintln!(
                    "token {id} for {} (scopes {}). It is shown this once: store it now. \
                     Send it as `x-promptwall-token: <token>` (or as the API key, with a route to an org account).",
                    a.user,
                    a.scopes.join(",")
                );
            }
        }
        TokenCommand::List(a) => {
            let rows = tokens.list().await?;
            if a.json {
                println!("{}", serde_json::to_string(&rows)?);
                return Ok(());
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(vec![
                "id",
                "user",
                "name",
                "scopes",
                "rate/min",
                "tokens/day",
                "created",
                "revoked",
            ]);
            let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v}"));
            for r in rows {
                t.add_row(vec![
                    r.id,
                    r.user_name,
                    r.name.unwrap_or_default(),
                    r.scopes,
                    opt(r.rate_per_minute),
                    opt(r.tokens_per_day),
                    r.created_at,
                    r.revoked_at.unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
        }
        TokenCommand::Revoke(a) => {
            if !tokens.revoke(&a.id, &promptwall_audit::time::now_ts()).await? {
                anyhow::bail!("no live token with id {:?}; see `promptwall token list`", a.id);
            }
            println!("token {} revoked", a.id);
        }
    }
    store.close().await;
    Ok(())
}

/// Keeps the daemon's token table in step with the store.
pub fn spawn_refresher(
    store: AuditStore,
    proxy: std::sync::Arc<promptwall_proxy::forward::Proxy>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tokens = TokenStore::new(&store);
        loop {
            match tokens.list().await {
                Ok(rows) => {
                    let table = promptwall_proxy::tokens::TokenTable::new(rows.iter().map(|r| {
                        promptwall_proxy::tokens::Stored {
                            id: &r.id,
                            hash: &r.hash,
                            user: &r.user_name,
                            scopes: &r.scopes,
                            rate_per_minute: r.rate_per_minute,
                            tokens_per_day: r.tokens_per_day,
                            revoked_at: r.revoked_at.as_deref(),
                        }
                    }));
                    *proxy.tokens.write().expect("token table lock") = table;
                }
                Err(e) => tracing::warn!("cannot refresh explicit-listener tokens: {e}; keeping the last table"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    })
}
