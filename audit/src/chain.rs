//! Tamper evidence: each row's `hash` = SHA-256(prev_hash || canonical JSON
//! of the row without `prev_hash`, `hash` and the body texts; the body
//! digests are covered instead, so retention may purge bodies). Chains are
//! per (machine, install), in id order, starting at [`GENESIS`] or at the
//! checkpoint left by `prune`. The install id, the request id and the
//! routing fields (route, upstream, routing detail) are covered when they
//! are set (rows written before those columns have none and hash as before).
//!
//! An unkeyed chain proves order and integrity of what lies between anchors:
//! an edit, a deletion or an insertion in the middle breaks a link. Rows
//! appended or truncated at the very end are caught by comparing with the
//! central store, which holds a copy of every shipped row.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::record::COLUMNS;
use crate::rollup;
use crate::store::{decode_record, on_pool, AuditStore};
use crate::{AuditError, AuditRecord};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Keys sorted recursively, compact: independent of struct field order.
pub fn canonical_json(rec: &AuditRecord) -> String {
    let mut value = serde_json::to_value(rec).expect("record serialises");
    if let Value::Object(map) = &mut value {
        for key in ["prev_hash", "hash", "request_body", "response_body"] {
            map.remove(key);
        }
        // Rows from before these columns existed hash without them.
        if rec.install_id.is_empty() {
            map.remove("install_id");
        }
        if rec.request_id.is_empty() {
            map.remove("request_id");
        }
        if rec.route.is_empty() {
            map.remove("route");
        }
        if rec.upstream.is_empty() {
            map.remove("upstream");
        }
        if rec.routing.is_none() {
            map.remove("routing");
        }
        for (key, value) in [
            ("container_name", &rec.container_name),
            ("container_image", &rec.container_image),
        ] {
            if value.is_none() {
                map.remove(key);
            }
        }
    }
    serde_json::to_string(&sorted(value)).expect("value serialises")
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

pub fn compute_hash(prev_hash: &str, rec: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_json(rec).as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakKind {
    /// The row's content no longer matches its own hash.
    Edited,
    /// One or more rows are missing before this row.
    Deleted,
    /// The row before this one does not belong to the chain.
    Inserted,
    /// Two different rows claim the same (machine, install, id): a cloned
    /// install (VM image copied with its store) or a forged row. Both are
    /// kept in the store.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub machine_id: String,
    pub install_id: String,
    /// The offending row (edited/inserted) or the first row after the gap (deleted).
    pub id: i64,
    pub kind: BreakKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineVerify {
    pub machine_id: String,
    /// Empty for rows written before install ids existed.
    pub install_id: String,
    pub rows_checked: i64,
    /// Rows pruned before the checkpoint the chain starts from.
    pub pruned_rows: i64,
    pub first_break: Option<ChainBreak>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// One entry per chain: (machine, install).
    pub machines: Vec<MachineVerify>,
    /// Rows the shipper could not store centrally (local spool only).
    pub quarantined: Vec<QuarantinedRow>,
}

/// A row a central store rejected; the shipper skipped it and went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct QuarantinedRow {
    /// The central store (URL without password).
    pub central: String,
    pub id: i64,
    pub machine_id: String,
    pub install_id: String,
    /// PostgreSQL's error code, e.g. 22021 (invalid byte sequence).
    pub sqlstate: Option<String>,
    pub reason: String,
    pub ts: String,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.machines.iter().all(|m| m.first_break.is_none())
    }

    pub fn first_break(&self) -> Option<&ChainBreak> {
        self.machines.iter().find_map(|m| m.first_break.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub machine_id: String,
    pub install_id: String,
    pub deleted: u64,
    /// Last pruned row: the chain now continues from its hash.
    pub checkpoint_id: i64,
}

pub(crate) struct Checkpoint {
    pub last_id: i64,
    pub last_hash: String,
    pub pruned_rows: i64,
}

const VERIFY_PAGE: i64 = 2000;

/// One hash chain: a machine's rows from one install.
type Chain = (String, String);

impl AuditStore {
    pub async fn machines(&self) -> Result<Vec<String>, AuditError> {
        let sql = "SELECT machine_id FROM audit_log GROUP BY machine_id UNION SELECT machine_id FROM audit_checkpoint ORDER BY 1";
        let ids: Vec<String> = on_pool!(&self.pool, p => sqlx::query_scalar(sql).fetch_all(p).await?);
        Ok(ids)
    }

    /// Every (machine_id, install_id) with rows or a checkpoint.
    async fn chains(&self, machine: Option<&str>) -> Result<Vec<Chain>, AuditError> {
        let sql = "SELECT machine_id, install_id FROM audit_log GROUP BY machine_id, install_id \
                   UNION SELECT machine_id, install_id FROM audit_checkpoint ORDER BY 1, 2";
        let chains: Vec<Chain> = on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_all(p).await?);
        Ok(chains
            .into_iter()
            .filter(|(m, _)| machine.is_none_or(|want| want == m))
            .collect())
    }

    /// Rows a shipper quarantined (SQLite spool; empty elsewhere), oldest first.
    pub async fn quarantined(&self) -> Result<Vec<QuarantinedRow>, AuditError> {
        let crate::store::Pool::Sqlite(p) = &self.pool else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_as(
            "SELECT central, id, machine_id, install_id, sqlstate, reason, ts FROM audit_quarantine ORDER BY id, central",
        )
        .fetch_all(p)
        .await?)
    }

    pub(crate) async fn checkpoint(&self, (machine_id, install_id): &Chain) -> Result<Option<Checkpoint>, AuditError> {
        let sql =
            "SELECT last_id, last_hash, pruned_rows FROM audit_checkpoint WHERE machine_id = $1 AND install_id = $2";
        let row: Option<(i64, String, i64)> = on_pool!(&self.pool, p => sqlx::query_as(sql)
            .bind(machine_id).bind(install_id).fetch_optional(p).await?);
        Ok(row.map(|(last_id, last_hash, pruned_rows)| Checkpoint {
            last_id,
            last_hash,
            pruned_rows,
        }))
    }

    /// Rows of a chain with id > `after_id` (and the rest of `after_id` past
    /// `after_hash`, for pages that end inside a conflicting pair).
    async fn rows_after(
        &self,
        (machine_id, install_id): &Chain,
        after_id: i64,
        after_hash: &str,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let sql = format!(
            "SELECT {} FROM audit_log WHERE machine_id = $1 AND install_id = $2 AND (id > $3 OR (id = $3 AND hash > $4)) \
             ORDER BY id, hash LIMIT $5",
            COLUMNS.join(", ")
        );
        on_pool!(&self.pool, p => {
            let rows = sqlx::query(&sql).bind(machine_id).bind(install_id).bind(after_id).bind(after_hash)
                .bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| decode_record!(r)).collect()
        })
    }

    /// Walks every chain (or one machine's) and reports the first broken
    /// link of each, plus the rows a shipper had to quarantine.
    pub async fn verify(&self, machine: Option<&str>) -> Result<VerifyReport, AuditError> {
        let mut report = VerifyReport {
            machines: Vec::new(),
            quarantined: self.quarantined().await?,
        };
        for chain in self.chains(machine).await? {
            report.machines.push(self.verify_chain(&chain, i64::MAX).await?);
        }
        if let Some(m) = machine {
            if report.machines.is_empty() {
                report.machines.push(MachineVerify {
                    machine_id: m.to_string(),
                    install_id: String::new(),
                    rows_checked: 0,
                    pruned_rows: 0,
                    first_break: None,
                });
            }
            report.quarantined.retain(|q| q.machine_id == m);
        }
        Ok(report)
    }

    /// Verifies rows with id <= `upto_id`.
    async fn verify_chain(&self, chain: &Chain, upto_id: i64) -> Result<MachineVerify, AuditError> {
        let (machine_id, install_id) = chain;
        let checkpoint = self.checkpoint(chain).await?;
        let (mut after_id, mut expected_prev, pruned_rows) = match &checkpoint {
            Some(c) => (c.last_id, c.last_hash.clone(), c.pruned_rows),
            None => (i64::MIN, GENESIS.to_string(), 0),
        };
        // The previous row's own prev_hash: tells an inserted row from a deleted one.
        let mut before_prev: Option<String> = None;
        let mut prev_id: Option<i64> = None;
        let mut checked = 0i64;
        let mut after_hash = String::new();
        let brk = |id: i64, kind: BreakKind, detail: String| ChainBreak {
            machine_id: machine_id.clone(),
            install_id: install_id.clone(),
            id,
            kind,
            detail,
        };
        let mut result = MachineVerify {
            machine_id: machine_id.to_string(),
            install_id: install_id.to_string(),
            rows_checked: 0,
            pruned_rows,
            first_break: None,
        };
        'pages: loop {
            let page = self.rows_after(chain, after_id, &after_hash, VERIFY_PAGE).await?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                if row.id > upto_id {
                    break 'pages;
                }
                checked += 1;
                if prev_id == Some(row.id) {
                    result.first_break = Some(brk(
                        row.id,
                        BreakKind::Conflict,
                        format!(
                            "two different rows claim id {} (hashes {} and {}): a cloned install (a VM image \
                             copied with its audit store) or a forged row; both are kept, compare them with \
                             `promptwall audit query --machine {machine_id}`",
                            row.id,
                            short(&expected_prev),
                            short(&row.hash)
                        ),
                    ));
                    break 'pages;
                }
                if let Some((kind, id, detail)) = link_break(row, &expected_prev, before_prev.as_deref(), prev_id) {
                    result.first_break = Some(brk(id, kind, detail));
                    break 'pages;
                }
                if let Some(detail) = content_break(row) {
                    result.first_break = Some(brk(row.id, BreakKind::Edited, detail));
                    break 'pages;
                }
                before_prev = Some(row.prev_hash.clone());
                expected_prev = row.hash.clone();
                prev_id = Some(row.id);
                after_id = row.id;
                after_hash = row.hash.clone();
            }
        }
        result.rows_checked = checked;
        Ok(result)
    }

    /// Deletes each machine's rows older than `cutoff_ts` (an RFC3339 UTC
    /// timestamp, see [`crate::time`]) as a prefix of its chain, and records
    /// the last deleted row's hash as the checkpoint the chain continues
    /// from. Refuses when the part to be deleted fails verification (that
    /// would destroy the evidence) unless `force`. Never deletes rows the
    /// spool has not yet shipped to a central store.
    pub async fn prune(&self, cutoff_ts: &str, force: bool) -> Result<Vec<PruneReport>, AuditError> {
        let mut reports = Vec::new();
        let shipped_upto = self.min_shipped_upto().await?;
        for chain in self.chains(None).await? {
            let (machine_id, install_id) = &chain;
            let first_kept: Option<i64> = on_pool!(&self.pool, p => sqlx::query_scalar(
                "SELECT MIN(id) FROM audit_log WHERE machine_id = $1 AND install_id = $2 AND ts >= $3")
                .bind(machine_id).bind(install_id).bind(cutoff_ts).fetch_one(p).await?);
            let mut cutoff_id = match first_kept {
                Some(id) => id - 1,
                None => on_pool!(&self.pool, p => sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT MAX(id) FROM audit_log WHERE machine_id = $1 AND install_id = $2")
                    .bind(machine_id).bind(install_id).fetch_one(p).await?)
                .unwrap_or(i64::MIN),
            };
            if let Some(upto) = shipped_upto {
                cutoff_id = cutoff_id.min(upto);
            }
            let last: Option<(i64, String)> = on_pool!(&self.pool, p => sqlx::query_as(
                "SELECT id, hash FROM audit_log WHERE machine_id = $1 AND install_id = $2 AND id <= $3 \
                 ORDER BY id DESC, hash DESC LIMIT 1")
                .bind(machine_id).bind(install_id).bind(cutoff_id).fetch_optional(p).await?);
            let Some((last_id, last_hash)) = last else { continue };
            if !force {
                if let Some(b) = self.verify_chain(&chain, last_id).await?.first_break {
                    return Err(AuditError::BadFilter(format!(
                        "refusing to prune machine {machine_id}: the chain is broken at row {} ({:?}: {}); \
                         pruning would destroy the evidence — investigate with `promptwall audit verify`, \
                         or pass --force to prune anyway",
                        b.id, b.kind, b.detail
                    )));
                }
            }
            let now = crate::time::now_ts();
            let postgres = !self.is_sqlite();
            let deleted = on_pool!(&self.pool, p => {
                let mut tx = p.begin().await?;
                let span: (Option<String>, Option<String>) = sqlx::query_as(
                    "SELECT MIN(ts), MAX(ts) FROM audit_log WHERE machine_id = $1 AND install_id = $2 AND id <= $3")
                    .bind(machine_id).bind(install_id).bind(last_id).fetch_one(&mut *tx).await?;
                let deleted = sqlx::query("DELETE FROM audit_log WHERE machine_id = $1 AND install_id = $2 AND id <= $3")
                    .bind(machine_id).bind(install_id).bind(last_id).execute(&mut *tx).await?.rows_affected();
                // The rollups counted the deleted rows: count their days again.
                if let Some((first, last, start, end)) =
                    span.0.zip(span.1).and_then(|(oldest, newest)| rollup::touched(&oldest, &newest))
                {
                    for forget in rollup::FORGET {
                        sqlx::query(forget).bind(machine_id).bind(&first).bind(&last).execute(&mut *tx).await?;
                    }
                    let [hourly, daily] = rollup::recount_usage_sql();
                    for recount in [
                        hourly,
                        daily,
                        rollup::recount_kinds_sql(postgres),
                        rollup::recount_fingerprints_sql(postgres),
                    ] {
                        sqlx::query(&recount).bind(machine_id).bind(&start).bind(&end).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO audit_checkpoint (machine_id, install_id, last_id, last_hash, pruned_rows, ts) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (machine_id, install_id) DO UPDATE SET last_id = excluded.last_id, \
                     last_hash = excluded.last_hash, \
                     pruned_rows = audit_checkpoint.pruned_rows + excluded.pruned_rows, ts = excluded.ts")
                    .bind(machine_id).bind(install_id).bind(last_id).bind(&last_hash).bind(deleted as i64).bind(&now)
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                deleted
            });
            reports.push(PruneReport {
                machine_id: machine_id.clone(),
                install_id: install_id.clone(),
                deleted,
                checkpoint_id: last_id,
            });
        }
        Ok(reports)
    }

    /// Body retention: drops captured bodies older than `cutoff_ts`. The chain
    /// covers the body digests, so verification still passes.
    pub async fn purge_bodies(&self, cutoff_ts: &str) -> Result<u64, AuditError> {
        let sql = "UPDATE audit_log SET request_body = NULL, response_body = NULL \
                   WHERE ts < $1 AND (request_body IS NOT NULL OR response_body IS NOT NULL)";
        let n = on_pool!(&self.pool, p => sqlx::query(sql).bind(cutoff_ts).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Lowest shipping high-water mark on a spool; None when nothing ships.
    async fn min_shipped_upto(&self) -> Result<Option<i64>, AuditError> {
        if !self.is_sqlite() {
            return Ok(None);
        }
        let v: Option<i64> = on_pool!(&self.pool, p => sqlx::query_scalar("SELECT MIN(shipped_upto) FROM audit_shipping").fetch_one(p).await?);
        Ok(v)
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn link_break(
    row: &AuditRecord,
    expected_prev: &str,
    before_prev: Option<&str>,
    prev_id: Option<i64>,
) -> Option<(BreakKind, i64, String)> {
    if row.prev_hash == expected_prev {
        return None;
    }
    match (before_prev, prev_id) {
        (Some(bp), Some(pid)) if bp == row.prev_hash => Some((
            BreakKind::Inserted,
            pid,
            format!("row {pid} is not part of the chain: row {} links to the row before it", row.id),
        )),
        (_, Some(pid)) => Some((
            BreakKind::Deleted,
            row.id,
            format!("row {} does not link to row {pid}: the row(s) between were deleted, or row {pid} was rewritten", row.id),
        )),
        (_, None) => Some((
            BreakKind::Deleted,
            row.id,
            format!("row {} does not link to the start of the chain (genesis or prune checkpoint): earlier rows were deleted", row.id),
        )),
    }
}

fn content_break(row: &AuditRecord) -> Option<String> {
    for (body, digest, name) in [
        (&row.request_body, &row.request_body_sha256, "request body"),
        (&row.response_body, &row.response_body_sha256, "response body"),
    ] {
        if let Some(body) = body {
            if digest.as_deref() != Some(sha256_hex(body.as_bytes()).as_str()) {
                return Some(format!("row {}: the stored {name} does not match its digest", row.id));
            }
        }
    }
    (compute_hash(&row.prev_hash, row) != row.hash)
        .then(|| format!("row {}: its content does not match its hash", row.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_field_order_and_bodies_but_covers_content() {
        let mut rec = AuditRecord {
            id: 1,
            machine_id: "m".into(),
            verdict: "allowed".into(),
            ..Default::default()
        };
        let h = compute_hash(GENESIS, &rec);
        rec.request_body = Some("purged later".into());
        assert_eq!(
            compute_hash(GENESIS, &rec),
            h,
            "bodies are covered via their digests only"
        );
        rec.request_body_sha256 = Some(sha256_hex(b"purged later"));
        assert_ne!(compute_hash(GENESIS, &rec), h);
        let h2 = compute_hash(GENESIS, &rec);
        rec.status = 200;
        assert_ne!(compute_hash(GENESIS, &rec), h2);
        assert_ne!(compute_hash(&"1".repeat(64), &rec), compute_hash(GENESIS, &rec));
    }

    #[test]
    fn canonical_json_is_sorted_and_omits_chain_fields() {
        let rec = AuditRecord {
            id: 7,
            ..Default::default()
        };
        let json = canonical_json(&rec);
        assert!(json.starts_with("{\"cache_read_tokens\":null"), "{json}");
        assert!(!json.contains("\"hash\"") && !json.contains("prev_hash") && !json.contains("\"request_body\""));
    }

    /// A row as the writer before routing stored it: every field it knew.
    fn row_before_routing() -> AuditRecord {
        AuditRecord {
            id: 42,
            machine_id: "m-1".into(),
            ts: "2026-12-01T10:00:00.123Z".into(),
            listener: "explicit".into(),
            provider: Some("anthropic".into()),
            model: Some("claude-sonnet-4-5".into()),
            status: 200,
            input_tokens: Some(1000),
            duration_ms: 812.5,
            verdict: "redacted".into(),
            findings: [("email".to_string(), 2)].into(),
            llm: true,
            prev_hash: GENESIS.into(),
            install_id: "5f0c3a9e2b7d4e1f8a6c0b9d3e2f1a7c".into(),
            request_id: "01JF3Z9K8M2V7Q4XN6T5R0W1YA".into(),
            ..Default::default()
        }
    }

    /// The hashes below were computed by the code before the routing columns
    /// existed: rows stored then must verify unchanged forever.
    #[test]
    fn a_row_without_routing_hashes_exactly_as_before_routing_existed() {
        assert_eq!(
            compute_hash(GENESIS, &row_before_routing()),
            "e6d15aa79939ece97e029a8fbd6edd58e2ec223605a3f4f7ee1f1aa054864707"
        );
        let bare = AuditRecord {
            id: 1,
            machine_id: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            compute_hash(GENESIS, &bare),
            "41579c06304f47ed46792d3854fc11514f125d860baf885a6e2fd9c30783d1c9"
        );
        let json = canonical_json(&row_before_routing());
        assert!(
            !json.contains("\"route\"") && !json.contains("\"upstream\"") && !json.contains("\"routing\""),
            "{json}"
        );
    }

    #[test]
    fn each_routing_field_is_covered_by_the_hash_once_set() {
        let old = compute_hash(GENESIS, &row_before_routing());
        let mut rec = row_before_routing();
        rec.route = "claude-via-openai".into();
        let with_route = compute_hash(GENESIS, &rec);
        assert_ne!(with_route, old);
        rec.upstream = "openai/main".into();
        let with_upstream = compute_hash(GENESIS, &rec);
        assert_ne!(with_upstream, with_route);
        rec.routing = Some("{\"requested_model\":\"claude-x\"}".into());
        let with_detail = compute_hash(GENESIS, &rec);
        assert_ne!(with_detail, with_upstream);
        rec.routing = Some("{\"requested_model\":\"claude-y\"}".into());
        assert_ne!(compute_hash(GENESIS, &rec), with_detail, "the detail's text is covered");
    }
}
