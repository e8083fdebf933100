//! `promptwall audit ...`: the security team's questions over the local
//! store or, with `--db postgres://...`, the fleet store. Formatting lives in
//! `promptwall_audit::render` so it is tested without the binary.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentConfig;
use anyhow::Context;
use promptwall_audit::render::{self, Format};
use promptwall_audit::CentralConfig;
use promptwall_audit::{
    AuditError, AuditStore, CentralShipper, PriceTable, QueryFilter, RetentionPolicy, ShipperHandle, TopBy,
    WriterOptions,
};

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// List requests (newest first) matching the filters.
    #[command(visible_alias = "list")]
    Query(QueryArgs),
    /// Connected-agents overview per tool: requests, users, machines, last seen.
    Agents(AgentsArgs),
    /// Top users/tools/models/machines/exes/detector kinds by requests, with tokens, cost, blocks, redactions.
    Top(TopArgs),
    /// One request in full (bodies only if capture was on).
    Show(ShowArgs),
    /// Export rows (oldest first) as JSON lines or CSV, bodies included.
    Export(ExportArgs),
    /// Walk the hash chains and report the first broken link per machine.
    Verify(VerifyArgs),
    /// Delete rows older than an age, keeping the chain verifiable.
    Prune(PruneArgs),
    /// Create or upgrade the schema of a store (run once on a central PostgreSQL as its owner).
    Migrate(DbArg),
}

#[derive(clap::Args)]
pub struct DbArg {
    /// Store to use instead of the config's audit.url, e.g. postgres://promptwall_auditor@db/promptwall.
    #[arg(long, value_name = "URL", env = "PROMPTWALL_AUDIT_DB")]
    pub db: Option<String>,
}

#[derive(clap::Args, Default)]
pub struct FilterArgs {
    /// From this time: RFC3339, a date (2025-01-31) or an age (30m, 1h, 7d, 2w).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Machine id (fleet store).
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Executable: full path, or a file name matching any directory.
    #[arg(long)]
    pub exe: Option<String>,
    /// Coding tool (claude-code, cursor, aider, ...).
    #[arg(long)]
    pub tool: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    /// Model name prefix.
    #[arg(long)]
    pub model: Option<String>,
    /// HTTP status returned to the client (0: no response).
    #[arg(long)]
    pub status: Option<u16>,
    /// allowed | redacted | blocked | error | passthrough.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Detector kind found in the request (e.g. aws_access_key_id, email).
    #[arg(long)]
    pub kind: Option<String>,
    /// Request id, as sent to the client in promptwall's response header.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Routing rule that matched (exact name; "" for requests no rule routed).
    #[arg(long, value_name = "NAME")]
    pub route: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self, limit: Option<i64>) -> QueryFilter {
        QueryFilter {
            since: self.since.clone(),
            until: self.until.clone(),
            machine: self.machine.clone(),
            user: self.user.clone(),
            exe: self.exe.clone(),
            tool: self.tool.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            status: self.status,
            verdict: self.verdict.clone(),
            kind: self.kind.clone(),
            request_id: self.request_id.clone(),
            route: self.route.clone(),
            after_id: None,
            limit,
        }
    }
}

#[derive(clap::Args)]
pub struct OutputArgs {
    /// One JSON object per line (same as --format jsonl).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// table (default), jsonl or csv.
    #[arg(long, value_parser = ["table", "jsonl", "csv"])]
    pub format: Option<String>,
}

impl OutputArgs {
    fn format(&self) -> anyhow::Result<Format> {
        if self.json {
            return Ok(Format::Jsonl);
        }
        Ok(Format::parse(self.format.as_deref().unwrap_or("table"))?)
    }
}

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many rows (0: no limit).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Window when --since is not given.
    #[arg(long, default_value = "7d")]
    pub window: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// user, tool, model, machine, exe or kind.
    #[arg(long, value_parser = ["user", "tool", "model", "machine", "exe", "kind"])]
    pub by: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub db: DbArg,
    pub id: i64,
    /// Machine id, when the fleet store has this id from several machines.
    #[arg(long)]
    pub machine: Option<String>,
    /// The row as one JSON object, bodies included.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    pub format: String,
    /// Write here instead of stdout: a new file (mode 0600); an existing
    /// file or symlink is refused.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Only this machine's chain.
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Delete rows older than this age or time (e.g. 90d, 2025-01-01).
    #[arg(long)]
    pub older_than: String,
    /// Only drop captured bodies; keep the rows.
    #[arg(long)]
    pub bodies_only: bool,
    /// Prune even when the chain in the pruned range is broken (destroys evidence).
    #[arg(long)]
    pub force: bool,
}

fn store_url(db: &DbArg, config: &AgentConfig) -> String {
    db.db.clone().unwrap_or_else(|| config.audit.url.clone())
}

/// Read-only: never creates or migrates, so auditors need only read access.
async fn open_for_reading(db: &DbArg, config: &AgentConfig) -> anyhow::Result<AuditStore> {
    Ok(AuditStore::open_read_only(&store_url(db, config)).await?)
}

fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // `promptwall audit query | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// Creates `path` for an export: exclusively (an existing file, or a
/// symlink planted in a shared directory such as /tmp, is refused rather
/// than followed or overwritten) and readable by the caller only, since the
/// rows name users and may carry captured bodies.
fn write_new_file(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists (or is a symlink); export writes only new files: remove it or choose another name",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
        })?;
    file.write_all(data)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn table_line(text: String) -> String {
    if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    }
}

pub async fn run(cmd: AuditCommand, config: &AgentConfig) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Query(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let limit = (args.limit > 0).then_some(args.limit);
            let rows = store.query(&args.filter.to_filter(limit)).await?;
            let format = args.output.format()?;
            if rows.is_empty() && format == Format::Table {
                eprintln!("no matching requests in {}", store.url());
                return Ok(());
            }
            emit(&table_line(render::records(&rows, format)))
        }
        AuditCommand::Agents(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let mut filter = args.filter.to_filter(None);
            filter.since.get_or_insert(args.window.clone());
            let rows = store.agents(&filter).await?;
            emit(&table_line(render::agents(&rows, args.output.format()?)))
        }
        AuditCommand::Top(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let by = TopBy::parse(&args.by)?;
            let limit = (args.limit > 0).then_some(args.limit);
            let rows = store.top(by, &args.filter.to_filter(limit)).await?;
            emit(&table_line(render::top(by, &rows, args.output.format()?)))
        }
        AuditCommand::Show(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let row = store.show(args.id, args.machine.as_deref()).await?;
            if args.json {
                emit(&format!("{}\n", render::record_json(&row, true)))
            } else {
                emit(&render::record_detail(&row))
            }
        }
        AuditCommand::Export(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let rows = store.export(&args.filter.to_filter(None)).await?;
            let text = match args.format.as_str() {
                "csv" => render::records_csv(&rows, true),
                _ => render::records_jsonl(&rows, true),
            };
            match args.output {
                Some(path) => {
                    write_new_file(&path, text.as_bytes())?;
                    eprintln!("exported {} rows to {}", rows.len(), path.display());
                    Ok(())
                }
                None => emit(&text),
            }
        }
        AuditCommand::Verify(args) => {
            let store = open_for_reading(&args.db, config).await?;
            let report = store.verify(args.machine.as_deref()).await?;
            if args.json {
                emit(&format!("{}\n", serde_json::to_string(&report)?))?;
            } else {
                emit(&render::verify(&report))?;
            }
            if let Some(b) = report.first_break() {
                let machine = render::for_terminal(&b.machine_id, false);
                anyhow::bail!(
                    "audit chain of machine {machine} is broken at row {}; inspect it with `promptwall audit show {} --machine {machine}` \
                     and compare with the central store",
                    b.id,
                    b.id,
                );
            }
            Ok(())
        }
        AuditCommand::Prune(args) => {
            let store = AuditStore::open(&store_url(&args.db, config)).await?;
            let cutoff = promptwall_audit::time::parse_time_spec(&args.older_than, chrono_now())?;
            if args.bodies_only {
                let n = store.purge_bodies(&cutoff).await?;
                return emit(&format!("dropped captured bodies of {n} rows older than {cutoff}\n"));
            }
            if let (Some(central), true) = (&config.audit.central, args.db.db.is_none() && store.is_sqlite()) {
                // Rows not yet shipped are kept even before the daemon's first batch.
                CentralShipper::new(store.clone(), &central.url, 1, Duration::from_secs(1))?
                    .register()
                    .await?;
            }
            let reports = store.prune(&cutoff, args.force).await?;
            emit(&render::prune(&reports))
        }
        AuditCommand::Migrate(db) => {
            let store = AuditStore::open(&store_url(&db, config)).await?;
            emit(&format!("audit schema of {} is up to date\n", store.url()))
        }
    }
}

fn chrono_now() -> promptwall_audit::time::Now {
    promptwall_audit::time::now()
}

/// Writer settings from `[audit]`: capture, caps and the price table.
pub fn writer_options(config: &AgentConfig, machine_id: &str) -> anyhow::Result<WriterOptions> {
    let prices = PriceTable::load(config.audit.price_table.as_deref())?;
    Ok(WriterOptions {
        prices: Arc::new(prices),
        capture_bodies: config.audit.capture_bodies,
        capture_max_bytes: config.audit.capture_max_bytes,
        ..WriterOptions::new(machine_id)
    })
}

/// Retention from `[audit]` (retention_days, body_retention_days), hourly.
pub fn start_retention(store: &AuditStore, config: &AgentConfig) -> Option<tokio::task::JoinHandle<()>> {
    RetentionPolicy {
        rows_days: config.audit.retention_days,
        bodies_days: config.audit.body_retention_days,
    }
    .spawn(store.clone(), Duration::from_secs(3600))
}

/// Starts shipping the local spool to `[audit.central]`. Rows are never lost
/// while the central store is down: they stay in the spool until it returns.
pub async fn start_shipper(
    store: &AuditStore,
    central: &CentralConfig,
    machine_id: &str,
) -> anyhow::Result<ShipperHandle> {
    let shipper = CentralShipper::new(
        store.clone(),
        &central.url,
        central.batch_size,
        Duration::from_millis(central.interval_ms.max(100)),
    )
    .map_err(|e: AuditError| anyhow::anyhow!(e))
    .context("[audit.central] is misconfigured")?
    // Row-level security binds each agent role to its machine: by default
    // the agent logs in as the role named after its machine id.
    .default_user(machine_id);
    shipper
        .register()
        .await
        .context("cannot record the central store in the local spool")?;
    tracing::info!(machine_id, central = %promptwall_audit::store::redact_url(&central.url), "shipping audit rows to the central store");
    Ok(shipper.spawn())
}
