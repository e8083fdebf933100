//! Filters and the security team's questions: who sent what, with which
//! tool, at what cost, and what was stopped. Same SQL on SQLite and
//! PostgreSQL (`$N` placeholders work on both).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::record::COLUMNS;
use crate::rollup::{self, Grain, TOTALS};
use crate::store::{decode_record, on_pool, AuditStore};
use crate::time::parse_time_spec;
use crate::{AuditError, AuditRecord};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryFilter {
    /// RFC3339, a date, or a relative age (`1h`, `7d`).
    pub since: Option<String>,
    pub until: Option<String>,
    pub machine: Option<String>,
    pub user: Option<String>,
    /// Full path, or a file name matching any directory.
    pub exe: Option<String>,
    pub tool: Option<String>,
    pub provider: Option<String>,
    /// Model name prefix (`claude-sonnet-4` matches dated versions).
    pub model: Option<String>,
    pub status: Option<u16>,
    pub verdict: Option<String>,
    /// Detector kind present in the row's findings.
    pub kind: Option<String>,
    /// The exchange's request id (indexed): the row with this id, and the
    /// rows of a WebSocket's messages (`<id>-<n>`) when it names an upgrade.
    pub request_id: Option<String>,
    /// Name of the routing rule that matched (exact; indexed). `""` finds
    /// the rows no rule routed.
    pub route: Option<String>,
    /// Rows with a greater id. Ids grow in commit order within one store
    /// (a machine's spool), so this finds what was committed since; in the
    /// fleet store ids are per machine and this means little.
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) enum BindValue {
    Text(String),
    Int(i64),
}

macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut q = $query;
        for v in $values {
            q = match v {
                BindValue::Text(s) => q.bind(s.clone()),
                BindValue::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// Conditions joined by AND, with `$N` placeholders numbered in order.
#[derive(Default)]
pub(crate) struct Where {
    pub(crate) conds: Vec<String>,
    pub(crate) values: Vec<BindValue>,
}

impl Where {
    /// Each `?` in `cond` becomes the next `$N`.
    pub(crate) fn add<const N: usize>(&mut self, cond: &str, values: [BindValue; N]) {
        self.add_all(cond, values.into());
    }

    pub(crate) fn add_all(&mut self, cond: &str, values: Vec<BindValue>) {
        let mut out = String::new();
        let mut parts = cond.split('?');
        out.push_str(parts.next().unwrap_or(""));
        for part in parts {
            out.push_str(&format!("${}", self.values.len() + 1 + out.matches('$').count()));
            out.push_str(part);
        }
        self.conds.push(out);
        self.values.extend(values);
    }

    /// ` WHERE ...`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
}

/// ` WHERE ...` (or nothing) with `extra` added: written exactly so, the
/// partial indexes on rows with findings or fingerprints serve it.
fn also(cond: &str, extra: &str) -> String {
    if cond.is_empty() {
        format!(" WHERE {extra}")
    } else {
        format!("{cond} AND {extra}")
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl QueryFilter {
    /// `WHERE ...` (possibly empty) and its values, placeholders from `$1`.
    pub(crate) fn where_clause(&self, now: DateTime<Utc>) -> Result<(String, Vec<BindValue>), AuditError> {
        let mut w = Where::default();
        if let Some(s) = &self.since {
            w.add("ts >= ?", [BindValue::Text(parse_time_spec(s, now)?)]);
        }
        if let Some(s) = &self.until {
            w.add("ts < ?", [BindValue::Text(parse_time_spec(s, now)?)]);
        }
        self.add_attributes(&mut w);
        self.add_row_only(&mut w);
        Ok((w.sql(), w.values))
    }

    /// Conditions on the attributes the usage rollups keep as well: the
    /// same SQL filters any of those tables.
    pub(crate) fn add_attributes(&self, w: &mut Where) {
        if let Some(v) = &self.machine {
            w.add("machine_id = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = &self.user {
            w.add("\"user\" = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = &self.exe {
            if v.contains('/') {
                w.add("exe = ?", [BindValue::Text(v.clone())]);
            } else {
                w.add(
                    "(exe = ? OR exe LIKE ? ESCAPE '\\')",
                    [
                        BindValue::Text(v.clone()),
                        BindValue::Text(format!("%/{}", like_escape(v))),
                    ],
                );
            }
        }
        if let Some(v) = &self.tool {
            w.add("tool = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = &self.provider {
            w.add("provider = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = &self.model {
            w.add(
                "model LIKE ? ESCAPE '\\'",
                [BindValue::Text(format!("{}%", like_escape(v)))],
            );
        }
    }

    /// Conditions only single rows can answer.
    fn add_row_only(&self, w: &mut Where) {
        if let Some(v) = &self.verdict {
            w.add("verdict = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = self.status {
            w.add("status = ?", [BindValue::Int(i64::from(v))]);
        }
        if let Some(v) = &self.kind {
            // findings is a JSON object with the kinds as keys.
            w.add(
                "findings LIKE ? ESCAPE '\\'",
                [BindValue::Text(format!("%\"{}\":%", like_escape(v)))],
            );
        }
        if let Some(v) = &self.request_id {
            // `<id>-` < `<id>-<n>` < `<id>.`: a range the index serves.
            w.add(
                "(request_id = ? OR (request_id > ? AND request_id < ?))",
                [
                    BindValue::Text(v.clone()),
                    BindValue::Text(format!("{v}-")),
                    BindValue::Text(format!("{v}.")),
                ],
            );
        }
        if let Some(v) = &self.route {
            w.add("route = ?", [BindValue::Text(v.clone())]);
        }
        if let Some(v) = self.after_id {
            w.add("id > ?", [BindValue::Int(v)]);
        }
    }

    /// Whether every condition is one the usage rollups can answer.
    pub(crate) fn only_attributes(&self) -> bool {
        self.verdict.is_none()
            && self.status.is_none()
            && self.kind.is_none()
            && self.request_id.is_none()
            && self.route.is_none()
            && self.after_id.is_none()
    }

    fn limit_clause(&self) -> Result<String, AuditError> {
        match self.limit {
            Some(n) if n < 0 => Err(AuditError::BadFilter(format!("--limit {n} must be 0 or more"))),
            Some(n) => Ok(format!(" LIMIT {n}")),
            None => Ok(String::new()),
        }
    }
}

/// One line of the connected-agents overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSummary {
    /// None: traffic not attributed to a known tool.
    pub tool: Option<String>,
    pub requests: i64,
    pub users: i64,
    pub machines: i64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    User,
    Tool,
    Model,
    Machine,
    Exe,
    Kind,
}

impl TopBy {
    pub fn parse(s: &str) -> Result<TopBy, AuditError> {
        Ok(match s {
            "user" => TopBy::User,
            "tool" => TopBy::Tool,
            "model" => TopBy::Model,
            "machine" => TopBy::Machine,
            "exe" => TopBy::Exe,
            "kind" => TopBy::Kind,
            other => {
                return Err(AuditError::BadFilter(format!(
                    "--by {other:?}: use one of user, tool, model, machine, exe, kind"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TopBy::User => "user",
            TopBy::Tool => "tool",
            TopBy::Model => "model",
            TopBy::Machine => "machine",
            TopBy::Exe => "exe",
            TopBy::Kind => "kind",
        }
    }

    fn column(self) -> &'static str {
        match self {
            TopBy::User => "\"user\"",
            TopBy::Tool => "tool",
            TopBy::Model => "model",
            TopBy::Machine => "machine_id",
            TopBy::Exe => "exe",
            TopBy::Kind => unreachable!("kind is aggregated from the findings JSON"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopRow {
    /// None: rows where the attribute is unknown.
    pub key: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub blocked: i64,
    pub redacted: i64,
}

/// Width of a [`SeriesPoint`]'s bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// Characters of the RFC3339 `ts` that name the bucket
    /// (`2025-01-31T12` / `2025-01-31`): a prefix both databases cut alike.
    fn prefix_len(self) -> i64 {
        match self {
            Bucket::Hour => 13,
            Bucket::Day => 10,
        }
    }
}

/// Requests, tokens, cost, blocks and redactions of one key in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// `2025-01-31T12` (hour) or `2025-01-31` (day), UTC.
    pub bucket: String,
    pub key: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub blocked: i64,
    pub redacted: i64,
}

/// A blocked secret's fingerprint seen more than once: the same credential
/// pasted again (never its value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepeatedFingerprint {
    pub kind: String,
    pub fingerprint: String,
    pub times: i64,
    pub users: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
}

/// bucket, key, requests, input, output, cost, blocked, redacted.
type SeriesSqlRow = (String, Option<String>, i64, i64, i64, f64, i64, i64);

/// key, requests, input, output, cost, blocked, redacted.
type TopSqlRow = (Option<String>, i64, i64, i64, f64, i64, i64);

fn top_row((key, requests, input_tokens, output_tokens, cost_usd, blocked, redacted): TopSqlRow) -> TopRow {
    TopRow {
        key,
        requests,
        input_tokens,
        output_tokens,
        cost_usd,
        blocked,
        redacted,
    }
}

/// findings, input, output, cost, verdict.
type KindSqlRow = (String, Option<i64>, Option<i64>, Option<f64>, String);

impl AuditStore {
    /// Matching rows, newest first.
    pub async fn query(&self, filter: &QueryFilter) -> Result<Vec<AuditRecord>, AuditError> {
        self.select(filter, "ts DESC, machine_id, id DESC").await
    }

    /// Matching rows, oldest first (for export).
    pub async fn export(&self, filter: &QueryFilter) -> Result<Vec<AuditRecord>, AuditError> {
        self.select(filter, "ts, machine_id, id").await
    }

    async fn select(&self, filter: &QueryFilter, order: &str) -> Result<Vec<AuditRecord>, AuditError> {
        let (cond, values) = filter.where_clause(Utc::now())?;
        let sql = format!(
            "SELECT {} FROM audit_log{cond} ORDER BY {order}{}",
            COLUMNS.join(", "),
            filter.limit_clause()?
        );
        on_pool!(&self.pool, p => {
            let rows = bind_values!(sqlx::query(&sql), &values).fetch_all(p).await?;
            rows.iter().map(|r| decode_record!(r)).collect()
        })
    }

    pub async fn count(&self, filter: &QueryFilter) -> Result<i64, AuditError> {
        let (cond, values) = filter.where_clause(Utc::now())?;
        let sql = format!("SELECT COUNT(*) FROM audit_log{cond}");
        let n: i64 = on_pool!(&self.pool, p => bind_values!(sqlx::query_scalar(&sql), &values).fetch_one(p).await?);
        Ok(n)
    }

    /// One row in full. On a fleet store ids repeat across machines: pass
    /// `machine` when more than one machine has this id.
    pub async fn show(&self, id: i64, machine: Option<&str>) -> Result<AuditRecord, AuditError> {
        let mut sql = format!("SELECT {} FROM audit_log WHERE id = $1", COLUMNS.join(", "));
        if machine.is_some() {
            sql.push_str(" AND machine_id = $2");
        }
        let mut rows: Vec<AuditRecord> = on_pool!(&self.pool, p => {
            let mut q = sqlx::query(&sql).bind(id);
            if let Some(m) = machine {
                q = q.bind(m.to_string());
            }
            let rows = q.fetch_all(p).await?;
            rows.iter().map(|r| decode_record!(r)).collect::<Result<Vec<_>, AuditError>>()?
        });
        match rows.len() {
            0 => Err(AuditError::NotFound(id)),
            1 => Ok(rows.remove(0)),
            n => Err(AuditError::BadFilter(format!(
                "row {id} exists {n} times ({}); pass --machine ID, or list them all with \
                 `promptwall audit export --machine ID` (rows of one machine with the same id come from \
                 different installs, or conflict: see `promptwall audit verify`)",
                rows.iter()
                    .map(|r| if r.install_id.is_empty() {
                        format!("machine {}", r.machine_id)
                    } else {
                        format!("machine {} install {}", r.machine_id, r.install_id)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Per tool: requests, distinct users and machines, first and last seen.
    pub async fn agents(&self, filter: &QueryFilter) -> Result<Vec<AgentSummary>, AuditError> {
        let (source, values) = rollup::usage_source(filter, Grain::Day, Utc::now())?;
        let sql = format!(
            "SELECT tool, CAST(SUM(requests) AS BIGINT), COUNT(DISTINCT \"user\"), COUNT(DISTINCT machine_id), \
             MIN(first_ts), MAX(last_ts) FROM {source} GROUP BY tool ORDER BY 2 DESC, tool{}",
            filter.limit_clause()?
        );
        let rows: Vec<(Option<String>, i64, i64, i64, String, String)> =
            on_pool!(&self.pool, p => bind_values!(sqlx::query_as(&sql), &values).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(
                |(tool, requests, users, machines, first_seen, last_seen)| AgentSummary {
                    tool,
                    requests,
                    users,
                    machines,
                    first_seen,
                    last_seen,
                },
            )
            .collect())
    }

    /// Requests, tokens, estimated cost, blocks and redactions per `by`,
    /// most requests first.
    pub async fn top(&self, by: TopBy, filter: &QueryFilter) -> Result<Vec<TopRow>, AuditError> {
        let mut rows = if by == TopBy::Kind {
            self.top_by_kind(filter).await?
        } else {
            self.top_by_column(by, filter).await?
        };
        rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
        if let Some(n) = filter.limit {
            rows.truncate(n.max(0) as usize);
        }
        Ok(rows)
    }

    async fn top_by_column(&self, by: TopBy, filter: &QueryFilter) -> Result<Vec<TopRow>, AuditError> {
        let (source, values) = rollup::usage_source(filter, Grain::Day, Utc::now())?;
        let col = by.column();
        let sql = format!("SELECT {col}, {TOTALS} FROM {source} GROUP BY {col}");
        let rows: Vec<TopSqlRow> =
            on_pool!(&self.pool, p => bind_values!(sqlx::query_as(&sql), &values).fetch_all(p).await?);
        Ok(rows.into_iter().map(top_row).collect())
    }

    /// [`top`](Self::top) per time bucket (`by` a column, not `Kind`),
    /// oldest bucket first.
    pub async fn series(
        &self,
        by: TopBy,
        bucket: Bucket,
        filter: &QueryFilter,
    ) -> Result<Vec<SeriesPoint>, AuditError> {
        if by == TopBy::Kind {
            return Err(AuditError::BadFilter(
                "a time series by kind is not kept; use by user, tool, model, machine or exe".into(),
            ));
        }
        let grain = match bucket {
            Bucket::Hour => Grain::Hour,
            Bucket::Day => Grain::Day,
        };
        let (source, values) = rollup::usage_source(filter, grain, Utc::now())?;
        let col = by.column();
        let n = bucket.prefix_len();
        let sql = format!(
            "SELECT substr(t, 1, {n}) AS b, {col}, {TOTALS} \
             FROM {source} GROUP BY b, {col} ORDER BY b, {col}"
        );
        let rows: Vec<SeriesSqlRow> =
            on_pool!(&self.pool, p => bind_values!(sqlx::query_as(&sql), &values).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(
                |(bucket, key, requests, input_tokens, output_tokens, cost_usd, blocked, redacted)| SeriesPoint {
                    bucket,
                    key,
                    requests,
                    input_tokens,
                    output_tokens,
                    cost_usd,
                    blocked,
                    redacted,
                },
            )
            .collect())
    }

    /// Blocked secrets whose fingerprint appears more than once, most
    /// repeated first; users by name.
    pub async fn repeated_fingerprints(&self, filter: &QueryFilter) -> Result<Vec<RepeatedFingerprint>, AuditError> {
        let sources = rollup::fingerprint_sources(filter, Utc::now())?;
        let mut seen: BTreeMap<(String, String), RepeatedFingerprint> = BTreeMap::new();
        let mut count = |kind: String, fp: String, user: Option<String>, times: i64, first: String, last: String| {
            let entry = seen
                .entry((kind.clone(), fp.clone()))
                .or_insert_with(|| RepeatedFingerprint {
                    kind,
                    fingerprint: fp,
                    times: 0,
                    users: Vec::new(),
                    first_seen: first.clone(),
                    last_seen: last.clone(),
                });
            entry.times += times;
            if let Some(u) = user {
                if !entry.users.contains(&u) {
                    entry.users.push(u);
                }
            }
            if first < entry.first_seen {
                entry.first_seen = first;
            }
            if last > entry.last_seen {
                entry.last_seen = last;
            }
        };
        if let Some((sql, values)) = &sources.rolled {
            let rows: Vec<(String, String, Option<String>, i64, String, String)> =
                on_pool!(&self.pool, p => bind_values!(sqlx::query_as(sql), values).fetch_all(p).await?);
            for (kind, fp, user, times, first, last) in rows {
                count(kind, fp, user, times, first, last);
            }
        }
        if let Some((cond, values)) = sources.rows {
            let cond = also(&cond, "fingerprints <> '[]'");
            let sql = format!("SELECT fingerprints, \"user\", ts FROM audit_log{cond}");
            let rows: Vec<(String, Option<String>, String)> =
                on_pool!(&self.pool, p => bind_values!(sqlx::query_as(&sql), &values).fetch_all(p).await?);
            for (fingerprints, user, ts) in rows {
                let fps: Vec<crate::Fingerprint> = serde_json::from_str(&fingerprints).map_err(|e| {
                    AuditError::BadFilter(format!(
                        "unreadable fingerprints {fingerprints:?}: {e}; run `promptwall audit verify`"
                    ))
                })?;
                for fp in fps {
                    count(fp.kind, fp.fp, user.clone(), 1, ts.clone(), ts.clone());
                }
            }
        }
        for f in seen.values_mut() {
            f.users.sort();
        }
        let mut out: Vec<RepeatedFingerprint> = seen.into_values().filter(|f| f.times > 1).collect();
        out.sort_by(|a, b| b.times.cmp(&a.times).then_with(|| a.fingerprint.cmp(&b.fingerprint)));
        Ok(out)
    }

    /// Whole hours from `kinds_hourly`; rows (the edges, or all when a
    /// filter needs them) by their findings JSON, aggregated in Rust so the
    /// SQL stays portable. A request counts once per kind it contains.
    async fn top_by_kind(&self, filter: &QueryFilter) -> Result<Vec<TopRow>, AuditError> {
        let sources = rollup::kind_sources(filter, Utc::now())?;
        let mut by_kind: BTreeMap<String, TopRow> = BTreeMap::new();
        if let Some((sql, values)) = &sources.rolled {
            let rows: Vec<TopSqlRow> =
                on_pool!(&self.pool, p => bind_values!(sqlx::query_as(sql), values).fetch_all(p).await?);
            for row in rows.into_iter().map(top_row) {
                if let Some(kind) = row.key.clone() {
                    by_kind.insert(kind, row);
                }
            }
        }
        let Some((cond, values)) = sources.rows else {
            return Ok(by_kind.into_values().collect());
        };
        let cond = also(&cond, "findings <> '{}'");
        let sql = format!("SELECT findings, input_tokens, output_tokens, cost_usd, verdict FROM audit_log{cond}");
        let rows: Vec<KindSqlRow> =
            on_pool!(&self.pool, p => bind_values!(sqlx::query_as(&sql), &values).fetch_all(p).await?);
        for (findings, input, output, cost, verdict) in rows {
            let kinds: BTreeMap<String, u32> = serde_json::from_str(&findings).map_err(|e| {
                AuditError::BadFilter(format!(
                    "unreadable findings {findings:?}: {e}; run `promptwall audit verify`"
                ))
            })?;
            for kind in kinds.into_keys() {
                let row = by_kind.entry(kind.clone()).or_insert_with(|| TopRow {
                    key: Some(kind),
                    requests: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: 0.0,
                    blocked: 0,
                    redacted: 0,
                });
                row.requests += 1;
                row.input_tokens += input.unwrap_or(0);
                row.output_tokens += output.unwrap_or(0);
                row.cost_usd += cost.unwrap_or(0.0);
                row.blocked += i64::from(verdict == "blocked");
                row.redacted += i64::from(verdict == "redacted");
            }
        }
        Ok(by_kind.into_values().collect())
    }
}
