//! The SQLite writer: a dedicated thread with its own connection commits
//! each group in one synchronous call and answers every caller through its
//! oneshot; a second thread checkpoints the WAL.
//!
//! Why not sqlx's pool: every statement there is a round trip to the pool's
//! worker thread (a group of N rows took N + 3 of them, each two thread
//! wake-ups on a loaded machine), and SQLite's automatic checkpoint runs
//! inside the COMMIT that crosses 1,000 WAL pages, so every row queued
//! behind that commit waited for a copy of the WAL into the database and
//! its fsync. Here the writer's connection has `wal_autocheckpoint = 0`
//! and the checkpointer copies committed pages concurrently (a PASSIVE
//! checkpoint takes no writer lock). Only when the WAL has grown past
//! [`WAL_PAGES_LIMIT`] (the checkpointer never found a moment between two
//! commits to finish) does the writer checkpoint itself after a commit, so
//! the next transaction can restart the WAL from its beginning.
//!
//! Durability is unchanged: a row is acknowledged only after COMMIT has
//! returned, and with `synchronous = FULL` that COMMIT fsyncs the WAL.
//! Checkpoints never hold acknowledged data the WAL does not.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::mpsc;

use super::{prepare, ChainState, Job, WriterOptions};
use crate::chain::{compute_hash, GENESIS};
use crate::record::{column_list, placeholders};
use crate::store::{bind_record, SyncMode};
use crate::{AuditError, AuditRecord};

/// How often the checkpointer looks for committed pages to copy.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL size (pages) past which the writer checkpoints itself after a
/// commit: about 64 MiB at SQLite's 4 KiB pages, 16 times the size at which
/// SQLite's automatic checkpoint would have run.
const WAL_PAGES_LIMIT: i64 = 16_000;

/// What the writer and the checkpointer share.
#[derive(Default)]
struct Shared {
    /// Groups committed so far: the checkpointer skips a round without any.
    commits: AtomicU64,
    /// Pages in the WAL at the checkpointer's last round.
    wal_pages: AtomicI64,
    /// The writer has ended.
    stopped: AtomicBool,
}

pub(super) fn spawn(path: PathBuf, sync: SyncMode, options: WriterOptions, rx: mpsc::Receiver<Job>) {
    let shared = Arc::new(Shared::default());
    let checkpointer = {
        let (path, shared) = (path.clone(), shared.clone());
        std::thread::Builder::new()
            .name("audit-checkpoint".into())
            .spawn(move || checkpoint_loop(&path, sync, &shared))
            .expect("the OS refused to start the audit checkpoint thread")
    };
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || {
            write_loop(&path, sync, &options, rx, &shared);
            shared.stopped.store(true, Ordering::Relaxed);
            checkpointer.thread().unpark();
        })
        .expect("the OS refused to start the audit writer thread");
}

fn open(path: &Path, sync: SyncMode, role: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The same as the store's pool (crate::store::open_sqlite): other
    // connections (shipper, retention, outbox) may hold the write lock.
    conn.busy_timeout(Duration::from_secs(30))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "the audit store is not in WAL mode for the {role}");
    }
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

fn write_loop(path: &Path, sync: SyncMode, options: &WriterOptions, mut rx: mpsc::Receiver<Job>, shared: &Shared) {
    let mut conn: Option<Connection> = None;
    let mut state = ChainState::default();
    let mut batch = Vec::with_capacity(options.max_batch);
    while let Some(job) = rx.blocking_recv() {
        batch.push(job);
        super::take_queued(&mut rx, &mut batch, options.max_batch);
        let (records, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let result = match conn.as_mut() {
            Some(c) => Ok(c),
            None => open(path, sync, "audit writer").map(|c| conn.insert(c)),
        }
        .and_then(|c| commit(c, options, &mut state, records));
        match result {
            Ok(ids) => {
                for (reply, id) in replies.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
                shared.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "audit rows could not be committed");
                // Heads may be ahead of the database now; reload on next
                // batch, on a fresh connection.
                state = ChainState::default();
                conn = None;
                let message = format!("audit database error: {e}");
                for reply in replies {
                    let _ = reply.send(Err(AuditError::Write(message.clone())));
                }
            }
        }
        if shared.wal_pages.load(Ordering::Relaxed) > WAL_PAGES_LIMIT {
            if let Some(c) = &conn {
                // With no commit running beside it this one finishes, and the
                // next transaction starts the WAL over.
                if let Err(e) = checkpoint(c) {
                    tracing::warn!(error = %e, "audit WAL checkpoint failed; retried later");
                }
                shared.wal_pages.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// A PASSIVE checkpoint: copies what it can without waiting for anyone.
/// Returns (pages in the WAL, pages copied).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

fn checkpoint_loop(path: &Path, sync: SyncMode, shared: &Shared) {
    let mut conn: Option<Connection> = None;
    let mut seen = 0;
    loop {
        std::thread::park_timeout(CHECKPOINT_EVERY);
        if shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let commits = shared.commits.load(Ordering::Relaxed);
        if commits == seen {
            continue;
        }
        seen = commits;
        let c = match conn.as_ref() {
            Some(c) => c,
            None => match open(path, sync, "audit checkpointer") {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the audit store to checkpoint its WAL; retried later");
                    continue;
                }
            },
        };
        // What was committed while a round copied is copied by the next,
        // which has less to do; a few rounds usually catch up.
        for _ in 0..4 {
            match checkpoint(c) {
                Ok((in_wal, copied)) => {
                    shared.wal_pages.store(in_wal, Ordering::Relaxed);
                    if copied >= in_wal {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit WAL checkpoint failed; retried later");
                    conn = None;
                    break;
                }
            }
        }
    }
}

/// Binds a row's values in [`crate::record::COLUMNS`] order.
#[derive(Default)]
struct Values(Vec<rusqlite::types::Value>);

impl Values {
    fn bind(mut self, v: impl Into<rusqlite::types::Value>) -> Self {
        self.0.push(v.into());
        self
    }
}

/// One group in one transaction; the same chain rules as the PostgreSQL
/// path (`super::commit`).
fn commit(
    conn: &mut Connection,
    options: &WriterOptions,
    state: &mut ChainState,
    mut records: Vec<AuditRecord>,
) -> rusqlite::Result<Vec<i64>> {
    // IMMEDIATE: the transaction reads the chain head, then writes; see
    // super::commit for why it must hold the write lock from the start.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (db_max, pruned_max): (Option<i64>, Option<i64>) = tx.query_row(
        "SELECT (SELECT MAX(id) FROM audit_log), (SELECT MAX(last_id) FROM audit_checkpoint)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut next_id = state
        .next_id
        .max(db_max.unwrap_or(0) + 1)
        .max(pruned_max.unwrap_or(0) + 1);
    let install_id = match &state.install_id {
        Some(id) => id.clone(),
        None => tx
            .query_row("SELECT value FROM audit_meta WHERE key = 'install_id'", [], |r| {
                r.get::<_, String>(0)
            })
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(String::new()),
                e => Err(e),
            })?,
    };
    let mut heads = std::collections::HashMap::new();
    let mut ids = Vec::with_capacity(records.len());
    {
        let insert = format!("INSERT INTO audit_log ({}) VALUES ({})", column_list(), placeholders(1));
        let mut insert = tx.prepare_cached(&insert)?;
        let mut last_hash = tx.prepare_cached(
            "SELECT hash FROM audit_log WHERE machine_id = ?1 AND install_id = ?2 ORDER BY id DESC LIMIT 1",
        )?;
        let mut checkpointed =
            tx.prepare_cached("SELECT last_hash FROM audit_checkpoint WHERE machine_id = ?1 AND install_id = ?2")?;
        for rec in &mut records {
            prepare(options, rec);
            rec.install_id = install_id.clone();
            let prev = match heads.get(&rec.machine_id).or_else(|| state.heads.get(&rec.machine_id)) {
                Some(h) => String::clone(h),
                None => {
                    let key = (&rec.machine_id, &install_id);
                    let last: Option<String> = optional(last_hash.query_row(key, |r| r.get(0)))?;
                    let from_checkpoint = match last {
                        Some(_) => None,
                        None => optional(checkpointed.query_row(key, |r| r.get(0)))?,
                    };
                    last.or(from_checkpoint).unwrap_or_else(|| GENESIS.to_string())
                }
            };
            rec.id = next_id;
            next_id += 1;
            rec.prev_hash = prev;
            rec.hash = compute_hash(&rec.prev_hash, rec);
            let values = bind_record!(Values::default(), bind, &*rec);
            insert.execute(rusqlite::params_from_iter(values.0))?;
            heads.insert(rec.machine_id.clone(), rec.hash.clone());
            ids.push(rec.id);
        }
    }
    tx.commit()?;
    state.heads.extend(heads);
    state.next_id = next_id;
    state.install_id = Some(install_id);
    Ok(ids)
}

fn optional<T>(result: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}
