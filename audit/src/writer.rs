//! The single writer: one background worker owns the chain heads and
//! commits rows in groups. `write` resolves only after the row's transaction
//! has committed (fsynced with `sync = full`, see [`crate::store`]), so the
//! proxy can hold back the final byte of a response until its audit row is
//! durable.
//!
//! On SQLite the worker is a dedicated thread with its own connection: a
//! group is one synchronous call (BEGIN, the inserts, COMMIT), and each
//! caller is answered from that thread through its oneshot, with no task
//! or pool worker in between. WAL checkpoints run on a second thread and
//! connection, so a commit does not wait for one (see `writer/sqlite.rs`). On
//! PostgreSQL the worker is a task on the runtime, using the store's pool.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::chain::{compute_hash, sha256_hex, GENESIS};
use crate::cost::{PriceTable, Usage};
use crate::record::{column_list, placeholders};
use crate::store::{bind_record, on_pool, AuditStore};
use crate::{AuditError, AuditRecord};

mod sqlite;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Used when a record arrives without a machine id.
    pub machine_id: String,
    /// Fills `cost_usd` when the proxy left it empty.
    pub prices: Arc<PriceTable>,
    /// Bodies are dropped unless capture is on (defence in depth: the proxy
    /// should not send them either).
    pub capture_bodies: bool,
    /// Captured bodies are cut to this many bytes.
    pub capture_max_bytes: usize,
    /// Most rows committed in one transaction.
    pub max_batch: usize,
}

impl WriterOptions {
    pub fn new(machine_id: impl Into<String>) -> WriterOptions {
        WriterOptions {
            machine_id: machine_id.into(),
            prices: Arc::new(PriceTable::builtin().clone()),
            capture_bodies: false,
            capture_max_bytes: 256 * 1024,
            max_batch: 512,
        }
    }
}

type Reply = oneshot::Sender<Result<i64, AuditError>>;
type Job = (AuditRecord, Reply);

/// Cheap-clone handle on the writer. The writer ends when every handle is
/// dropped, after committing what was queued.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    queue: mpsc::Sender<Job>,
}

impl AuditWriter {
    /// Starts the writer: a thread for a SQLite store, a task on the
    /// current tokio runtime for PostgreSQL.
    pub fn spawn(store: AuditStore, options: WriterOptions) -> AuditWriter {
        let (queue, rx) = mpsc::channel(8192);
        match store.sqlite_file() {
            Some((path, sync)) => sqlite::spawn(path.to_path_buf(), sync, options, rx),
            None => {
                tokio::spawn(run(store, options, rx));
            }
        }
        AuditWriter { queue }
    }

    /// Queues `rec` and waits until it is committed; returns its row id.
    /// `id`, `prev_hash`, `hash` and the body digests are set by the writer.
    pub async fn write(&self, rec: AuditRecord) -> Result<i64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((rec, reply))
            .await
            .map_err(|_| AuditError::WriterClosed)?;
        answer.await.map_err(|_| AuditError::WriterClosed)?
    }
}

#[derive(Default)]
struct ChainState {
    /// machine_id -> hash of its last committed row (of this store's install).
    heads: HashMap<String, String>,
    next_id: i64,
    /// The store's install id, read once.
    install_id: Option<String>,
}

/// Everything that queued while the previous commit was fsyncing goes into
/// the next transaction, up to `max` rows.
fn take_queued(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

async fn run(store: AuditStore, options: WriterOptions, mut rx: mpsc::Receiver<Job>) {
    let mut state = ChainState::default();
    let mut batch = Vec::with_capacity(options.max_batch);
    while let Some(job) = rx.recv().await {
        batch.push(job);
        take_queued(&mut rx, &mut batch, options.max_batch);
        let (records, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match commit(&store, &options, &mut state, records).await {
            Ok(ids) => {
                for (reply, id) in replies.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit rows could not be committed");
                // Heads may be ahead of the database now; reload on next batch.
                state = ChainState {
                    install_id: state.install_id.take(),
                    ..ChainState::default()
                };
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(AuditError::Write(message.clone())));
                }
            }
        }
    }
}

fn prepare(options: &WriterOptions, rec: &mut AuditRecord) {
    if rec.machine_id.is_empty() {
        rec.machine_id = options.machine_id.clone();
    }
    rec.sanitize();
    if rec.ts.is_empty() {
        rec.ts = crate::time::now_ts();
    }
    if rec.cost_usd.is_none() {
        if let (Some(provider), Some(model)) = (&rec.provider, &rec.model) {
            let usage = Usage {
                input_tokens: rec.input_tokens,
                output_tokens: rec.output_tokens,
                cache_read_tokens: rec.cache_read_tokens,
                cache_write_tokens: rec.cache_write_tokens,
            };
            rec.cost_usd = options.prices.estimate(provider, model, usage);
        }
    }
    for (body, digest) in [
        (&mut rec.request_body, &mut rec.request_body_sha256),
        (&mut rec.response_body, &mut rec.response_body_sha256),
    ] {
        if !options.capture_bodies {
            *body = None;
        }
        if let Some(text) = body {
            truncate_at_char_boundary(text, options.capture_max_bytes);
        }
        *digest = body.as_ref().map(|b| sha256_hex(b.as_bytes()));
    }
}

fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("\n[promptwall: truncated {dropped} bytes]"));
}

async fn commit(
    store: &AuditStore,
    options: &WriterOptions,
    state: &mut ChainState,
    mut records: Vec<AuditRecord>,
) -> Result<Vec<i64>, AuditError> {
    let insert = format!("INSERT INTO audit_log ({}) VALUES ({})", column_list(), placeholders(1));
    // The transaction reads the chain head, then writes: it must hold the
    // write lock from the start, or a concurrent writer (the shipper's mark,
    // another agent on a shared store) makes the upgrade fail with
    // SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry.
    let (begin, pg_lock) = match &store.pool {
        crate::store::Pool::Sqlite(_) => ("BEGIN IMMEDIATE", false),
        crate::store::Pool::Postgres(_) => ("BEGIN", true),
    };
    on_pool!(&store.pool, p => {
        let mut tx = p.begin_with(begin).await?;
        if pg_lock {
            // One writer at a time per database keeps ids and chains gap-free.
            sqlx::query("SELECT pg_advisory_xact_lock(7242001)").execute(&mut *tx).await?;
        }
        // The database max guards against rows written by anyone else (a
        // previous run, or an inserted row that verify must then expose).
        // One statement: every round trip to the database worker is a thread hop.
        let (db_max, pruned_max): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM audit_log), (SELECT MAX(last_id) FROM audit_checkpoint)")
            .fetch_one(&mut *tx).await?;
        let mut next_id = state.next_id.max(db_max.unwrap_or(0) + 1).max(pruned_max.unwrap_or(0) + 1);
        let install_id = match &state.install_id {
            Some(id) => id.clone(),
            None => sqlx::query_scalar::<_, String>("SELECT value FROM audit_meta WHERE key = 'install_id'")
                .fetch_optional(&mut *tx).await?.unwrap_or_default(),
        };
        let mut heads: HashMap<String, String> = HashMap::new();
        let mut ids = Vec::with_capacity(records.len());
        for rec in &mut records {
            prepare(options, rec);
            rec.install_id = install_id.clone();
            let prev = match heads.get(&rec.machine_id).or_else(|| state.heads.get(&rec.machine_id)) {
                Some(h) => h.clone(),
                None => {
                    let last: Option<String> = sqlx::query_scalar(
                        "SELECT hash FROM audit_log WHERE machine_id = $1 AND install_id = $2 ORDER BY id DESC LIMIT 1")
                        .bind(&rec.machine_id).bind(&install_id).fetch_optional(&mut *tx).await?;
                    let checkpoint: Option<String> = match last {
                        Some(_) => None,
                        None => sqlx::query_scalar(
                            "SELECT last_hash FROM audit_checkpoint WHERE machine_id = $1 AND install_id = $2")
                            .bind(&rec.machine_id).bind(&install_id).fetch_optional(&mut *tx).await?,
                    };
                    last.or(checkpoint).unwrap_or_else(|| GENESIS.to_string())
                }
            };
            rec.id = next_id;
            next_id += 1;
            rec.prev_hash = prev;
            rec.hash = compute_hash(&rec.prev_hash, rec);
            bind_record!(sqlx::query(&insert), bind, &*rec).execute(&mut *tx).await?;
            heads.insert(rec.machine_id.clone(), rec.hash.clone());
            ids.push(rec.id);
        }
        tx.commit().await?;
        state.heads.extend(heads);
        state.next_id = next_id;
        state.install_id = Some(install_id);
        Ok(ids)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_utf8_and_says_so() {
        let mut s = "ééééé".to_string(); // 10 bytes
        truncate_at_char_boundary(&mut s, 5);
        assert!(s.starts_with("éé\n[promptwall: truncated 6 bytes]"), "{s}");
    }

    #[test]
    fn bodies_are_dropped_unless_capture_is_on() {
        let mut rec = AuditRecord {
            request_body: Some("x".into()),
            ..Default::default()
        };
        prepare(&WriterOptions::new("m"), &mut rec);
        assert_eq!((rec.request_body, rec.request_body_sha256), (None, None));
        let mut rec = AuditRecord {
            request_body: Some("x".into()),
            ..Default::default()
        };
        prepare(
            &WriterOptions {
                capture_bodies: true,
                ..WriterOptions::new("m")
            },
            &mut rec,
        );
        assert_eq!(rec.request_body_sha256.as_deref(), Some(sha256_hex(b"x").as_str()));
        assert_eq!(rec.machine_id, "m");
    }
}
