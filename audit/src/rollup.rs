//! Where usage questions (`agents`, `top`, `series`) read their rows from.
//!
//! Migration `20261212000001_usage_rollup` keeps, by trigger, the requests,
//! tokens, cost, blocks and redactions of `audit_log` per day
//! (`usage_daily`) and per hour (`usage_hourly`), each per machine, tool,
//! user, exe, provider and model; and per hour and detector kind
//! (`kinds_hourly`); and blocked secrets' fingerprints per day and user
//! (`fingerprints_daily`). A window reads whole days from the first, the whole
//! hours around them from the second, and the partial hours at its edges
//! from `audit_log` through its `ts` index: exactly what a scan of
//! `audit_log` gives, from a few thousand rows instead of a million. A
//! filter on something a rollup does not keep (verdict, status, kind,
//! request id, route, id) reads `audit_log` alone.
//!
//! Every usage source is one relation `u` with the columns `t` (a day, an
//! hour `2025-01-31T12` or a full timestamp: its first 13 or 10 characters
//! name its hour or day), the attributes, `requests`, `input_tokens`,
//! `output_tokens`, `cost_usd`, `blocked`, `redacted`, `first_ts`, `last_ts`.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::query::{BindValue, QueryFilter, Where};
use crate::time::{format_ts, parse_time_spec};
use crate::AuditError;

/// requests, input, output, cost, blocked, redacted of a group of source
/// rows, typed alike on SQLite and PostgreSQL.
pub(crate) const TOTALS: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT), \
     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION), \
     CAST(COALESCE(SUM(blocked), 0) AS BIGINT), CAST(COALESCE(SUM(redacted), 0) AS BIGINT)";

const FROM_ROWS: &str = "SELECT ts AS t, machine_id, tool, \"user\", exe, provider, model, \
     1 AS requests, COALESCE(input_tokens, 0) AS input_tokens, COALESCE(output_tokens, 0) AS output_tokens, \
     COALESCE(cost_usd, 0.0) AS cost_usd, CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END AS blocked, \
     CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END AS redacted, ts AS first_ts, ts AS last_ts FROM audit_log";

fn from_rollup(bucket: &str, table: &str) -> String {
    format!(
        "SELECT {bucket} AS t, machine_id, NULLIF(tool, '') AS tool, NULLIF(\"user\", '') AS \"user\", \
         NULLIF(exe, '') AS exe, NULLIF(provider, '') AS provider, NULLIF(model, '') AS model, \
         requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts FROM {table}"
    )
}

/// The finest time a question needs its rows cut to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    /// Per-hour series: whole days cannot answer it.
    Hour,
    /// Totals and per-day series.
    Day,
}

/// A range of bucket names (`from <= bucket < to`), unbounded where None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// How a filter's window splits between the tables: a decision made apart
/// from the SQL, so each case is tested on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Every matching row from `audit_log`: the filter needs a column the
    /// rollups lack, or the window holds no whole hour.
    Rows,
    Rolled {
        /// Whole days from `usage_daily`.
        days: Option<Span>,
        /// Whole hours from `usage_hourly` (or `kinds_hourly`).
        hours: Vec<Span>,
        /// `start <= ts < end` from `audit_log`.
        rows: Vec<(String, String)>,
    },
}

fn hour_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn day_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn parse(spec: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AuditError> {
    let ts = parse_time_spec(spec, now)?;
    DateTime::parse_from_rfc3339(&ts)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| AuditError::BadFilter(format!("time {spec:?} did not normalise ({e}); give an RFC3339 time")))
}

/// `t` rounded down and up to a multiple of `unit`.
fn floor(t: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    t.duration_trunc(unit).expect("hours and days divide any UTC time")
}

fn ceil(t: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    let down = floor(t, unit);
    if down == t {
        t
    } else {
        down + unit
    }
}

/// The `ts` ranges a window has beyond its whole buckets `[from, to)`:
/// `[since, from)` and `[to, until)`, where not empty.
fn edges(
    since: Option<DateTime<Utc>>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if let (Some(since), Some(from)) = (since, from) {
        if since < from {
            rows.push((format_ts(since), format_ts(from)));
        }
    }
    if let (Some(until), Some(to)) = (until, to) {
        if to < until {
            rows.push((format_ts(to), format_ts(until)));
        }
    }
    rows
}

/// Splits `[since, until)` into whole days (when `grain` allows), whole
/// hours and edge rows. `usable` is false when the filter needs a column
/// the rollup lacks.
pub(crate) fn plan_window(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    grain: Grain,
    usable: bool,
) -> Plan {
    if !usable {
        return Plan::Rows;
    }
    let (hour, day) = (TimeDelta::hours(1), TimeDelta::days(1));
    // Whole hours start at or after `since` and end at or before `until`.
    let hour_from = since.map(|s| ceil(s, hour));
    let hour_to = until.map(|u| floor(u, hour));
    if let (Some(from), Some(to)) = (hour_from, hour_to) {
        if from >= to {
            return Plan::Rows;
        }
    }
    let rows = edges(since, hour_from, until, hour_to);
    let all_hours = || Span {
        from: hour_from.map(hour_name),
        to: hour_to.map(hour_name),
    };
    if grain == Grain::Hour {
        return Plan::Rolled {
            days: None,
            hours: vec![all_hours()],
            rows,
        };
    }
    let day_from = hour_from.map(|h| ceil(h, day));
    let day_to = hour_to.map(|h| floor(h, day));
    if let (Some(from), Some(to)) = (day_from, day_to) {
        if from >= to {
            return Plan::Rolled {
                days: None,
                hours: vec![all_hours()],
                rows,
            };
        }
    }
    let mut hours = Vec::new();
    if let (Some(hf), Some(df)) = (hour_from, day_from) {
        if hf < df {
            hours.push(Span {
                from: Some(hour_name(hf)),
                to: Some(hour_name(df)),
            });
        }
    }
    if let (Some(dt), Some(ht)) = (day_to, hour_to) {
        if dt < ht {
            hours.push(Span {
                from: Some(hour_name(dt)),
                to: Some(hour_name(ht)),
            });
        }
    }
    Plan::Rolled {
        days: Some(Span {
            from: day_from.map(day_name),
            to: day_to.map(day_name),
        }),
        hours,
        rows,
    }
}

/// A filter's `since` and `until`, either unbounded.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn window(filter: &QueryFilter, now: DateTime<Utc>) -> Result<Window, AuditError> {
    let since = filter.since.as_deref().map(|s| parse(s, now)).transpose()?;
    let until = filter.until.as_deref().map(|s| parse(s, now)).transpose()?;
    Ok((since, until))
}

/// `(a <= col AND col < b) OR ...` for `spans`, into `w`.
fn add_spans(w: &mut Where, col: &str, spans: &[Span]) {
    let mut conds = Vec::new();
    let mut values = Vec::new();
    for span in spans {
        let mut parts = Vec::new();
        if let Some(from) = &span.from {
            parts.push(format!("{col} >= ?"));
            values.push(BindValue::Text(from.clone()));
        }
        if let Some(to) = &span.to {
            parts.push(format!("{col} < ?"));
            values.push(BindValue::Text(to.clone()));
        }
        if parts.is_empty() {
            return; // unbounded: every bucket
        }
        conds.push(format!("({})", parts.join(" AND ")));
    }
    if !conds.is_empty() {
        w.add_all(&format!("({})", conds.join(" OR ")), values);
    }
}

fn add_rows(w: &mut Where, rows: &[(String, String)]) {
    let ranges = vec!["(ts >= ? AND ts < ?)"; rows.len()].join(" OR ");
    let bounds = rows
        .iter()
        .flat_map(|(start, end)| [BindValue::Text(start.clone()), BindValue::Text(end.clone())])
        .collect();
    w.add_all(&format!("({ranges})"), bounds);
}

/// A union's parts, each with its own conditions, numbered in one sequence.
#[derive(Default)]
struct Parts {
    sql: Vec<String>,
    values: Vec<BindValue>,
}

impl Parts {
    fn push(&mut self, select: &str, build: impl FnOnce(&mut Where)) {
        let mut w = Where {
            conds: Vec::new(),
            values: std::mem::take(&mut self.values),
        };
        build(&mut w);
        self.sql.push(format!("{select}{}", w.sql()));
        self.values = w.values;
    }
}

/// `(SELECT ...) AS u`, the usage source for `filter` cut to `grain`, and
/// its values, placeholders from `$1`.
pub(crate) fn usage_source(
    filter: &QueryFilter,
    grain: Grain,
    now: DateTime<Utc>,
) -> Result<(String, Vec<BindValue>), AuditError> {
    let (since, until) = window(filter, now)?;
    let mut parts = Parts::default();
    match plan_window(since, until, grain, filter.only_attributes()) {
        Plan::Rows => {
            let (cond, values) = filter.where_clause(now)?;
            parts.sql.push(format!("{FROM_ROWS}{cond}"));
            parts.values = values;
        }
        Plan::Rolled { days, hours, rows } => {
            if let Some(days) = days {
                parts.push(&from_rollup("day", "usage_daily"), |w| {
                    add_spans(w, "day", std::slice::from_ref(&days));
                    filter.add_attributes(w);
                });
            }
            if !hours.is_empty() {
                parts.push(&from_rollup("hour", "usage_hourly"), |w| {
                    add_spans(w, "hour", &hours);
                    filter.add_attributes(w);
                });
            }
            if !rows.is_empty() {
                parts.push(FROM_ROWS, |w| {
                    add_rows(w, &rows);
                    filter.add_attributes(w);
                });
            }
        }
    }
    Ok((format!("({}) AS u", parts.sql.join(" UNION ALL ")), parts.values))
}

/// Where a question the rollups answer only in part reads: a rollup's
/// query (its SQL and values) for what it covers, and conditions
/// (` WHERE ...`) on `audit_log` for the rows to count one by one.
pub(crate) struct Sources {
    pub rolled: Option<(String, Vec<BindValue>)>,
    pub rows: Option<(String, Vec<BindValue>)>,
}

/// Whether the filter names nothing but a window and a machine: all that
/// `kinds_hourly` and `fingerprints_daily` keep of a row.
fn window_and_machine_only(filter: &QueryFilter) -> bool {
    filter.only_attributes()
        && filter.user.is_none()
        && filter.exe.is_none()
        && filter.tool.is_none()
        && filter.provider.is_none()
        && filter.model.is_none()
}

/// `top --by kind`: whole hours from `kinds_hourly` (one row per kind),
/// the edge rows by their findings JSON; or rows only.
pub(crate) fn kind_sources(filter: &QueryFilter, now: DateTime<Utc>) -> Result<Sources, AuditError> {
    let (since, until) = window(filter, now)?;
    match plan_window(since, until, Grain::Hour, window_and_machine_only(filter)) {
        Plan::Rows => Ok(Sources {
            rolled: None,
            rows: Some(filter.where_clause(now)?),
        }),
        Plan::Rolled { hours, rows, .. } => {
            let mut w = Where::default();
            add_spans(&mut w, "hour", &hours);
            filter.add_attributes(&mut w);
            let rolled = (
                format!("SELECT kind, {TOTALS} FROM kinds_hourly{} GROUP BY kind", w.sql()),
                w.values,
            );
            let rows = if rows.is_empty() {
                None
            } else {
                let mut w = Where::default();
                add_rows(&mut w, &rows);
                filter.add_attributes(&mut w);
                Some((w.sql(), w.values))
            };
            Ok(Sources {
                rolled: Some(rolled),
                rows,
            })
        }
    }
}

/// The repeated-secrets list: whole days from `fingerprints_daily` (kind,
/// fingerprint, user, times, first and last seen), the rows of the partial
/// days at the edges by their fingerprints JSON; or rows only.
pub(crate) fn fingerprint_sources(filter: &QueryFilter, now: DateTime<Utc>) -> Result<Sources, AuditError> {
    let (since, until) = window(filter, now)?;
    let usable = window_and_machine_only(filter);
    let day = TimeDelta::days(1);
    let from = since.map(|s| ceil(s, day));
    let to = until.map(|u| floor(u, day));
    let empty = matches!((from, to), (Some(f), Some(t)) if f >= t);
    if !usable || empty {
        return Ok(Sources {
            rolled: None,
            rows: Some(filter.where_clause(now)?),
        });
    }
    let mut w = Where::default();
    add_spans(
        &mut w,
        "day",
        &[Span {
            from: from.map(day_name),
            to: to.map(day_name),
        }],
    );
    filter.add_attributes(&mut w);
    let rolled = (
        format!(
            "SELECT kind, fp, NULLIF(\"user\", ''), CAST(SUM(times) AS BIGINT), MIN(first_ts), MAX(last_ts) \
             FROM fingerprints_daily{} GROUP BY kind, fp, \"user\"",
            w.sql()
        ),
        w.values,
    );
    let rows = edges(since, from, until, to);
    let rows = (!rows.is_empty()).then(|| {
        let mut w = Where::default();
        add_rows(&mut w, &rows);
        filter.add_attributes(&mut w);
        (w.sql(), w.values)
    });
    Ok(Sources {
        rolled: Some(rolled),
        rows,
    })
}

/// After rows of machine `$1` were deleted: drop the hours and days they
/// were in (`$2 <= bucket <= $3`) from the rollups ...
pub(crate) const FORGET: [&str; 4] = [
    "DELETE FROM usage_hourly WHERE machine_id = $1 AND hour >= $2 AND hour <= $3",
    "DELETE FROM kinds_hourly WHERE machine_id = $1 AND hour >= $2 AND hour <= $3",
    "DELETE FROM usage_daily WHERE machine_id = $1 AND day >= substr($2, 1, 10) AND day <= substr($3, 1, 10)",
    "DELETE FROM fingerprints_daily WHERE machine_id = $1 AND day >= substr($2, 1, 10) AND day <= substr($3, 1, 10)",
];

const USAGE_COLUMNS: &str = "machine_id, tool, \"user\", exe, provider, model, requests, input_tokens, \
     output_tokens, cost_usd, blocked, redacted, first_ts, last_ts";

fn recount_usage(table: &str, bucket: &str, len: usize) -> String {
    format!(
        "INSERT INTO {table} ({bucket}, {USAGE_COLUMNS}) \
         SELECT substr(ts, 1, {len}), machine_id, COALESCE(tool, ''), COALESCE(\"user\", ''), COALESCE(exe, ''), \
         COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)), \
         SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), \
         SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END), SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), \
         MIN(ts), MAX(ts) FROM audit_log WHERE machine_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )
}

/// ... and count again what is left in them (`$2 <= ts < $3`): usage per
/// hour, usage per day. Kinds and fingerprints need the JSON functions
/// each database spells its own way: [`recount_kinds_sql`],
/// [`recount_fingerprints_sql`].
pub(crate) fn recount_usage_sql() -> [String; 2] {
    [
        recount_usage("usage_hourly", "hour", 13),
        recount_usage("usage_daily", "day", 10),
    ]
}

const KINDS_COLUMNS: &str =
    "hour, machine_id, kind, requests, input_tokens, output_tokens, cost_usd, blocked, redacted";
const KINDS_TOTALS: &str = "COUNT(*), SUM(COALESCE(a.input_tokens, 0)), SUM(COALESCE(a.output_tokens, 0)), \
     SUM(COALESCE(a.cost_usd, 0.0)), SUM(CASE WHEN a.verdict = 'blocked' THEN 1 ELSE 0 END), \
     SUM(CASE WHEN a.verdict = 'redacted' THEN 1 ELSE 0 END)";

pub(crate) fn recount_kinds_sql(postgres: bool) -> String {
    let from = if postgres {
        "audit_log AS a CROSS JOIN LATERAL jsonb_object_keys(a.findings::jsonb) AS f(key)"
    } else {
        "audit_log AS a, json_each(a.findings) AS f"
    };
    format!(
        "INSERT INTO kinds_hourly ({KINDS_COLUMNS}) SELECT substr(a.ts, 1, 13), a.machine_id, f.key, {KINDS_TOTALS} \
         FROM {from} WHERE a.machine_id = $1 AND a.ts >= $2 AND a.ts < $3 AND a.findings <> '{{}}' GROUP BY 1, 2, 3"
    )
}

pub(crate) fn recount_fingerprints_sql(postgres: bool) -> String {
    let (from, kind, fp) = if postgres {
        (
            "audit_log AS a CROSS JOIN LATERAL jsonb_array_elements(a.fingerprints::jsonb) AS f(v)",
            "f.v->>'kind'",
            "f.v->>'fp'",
        )
    } else {
        (
            "audit_log AS a, json_each(a.fingerprints) AS f",
            "json_extract(f.value, '$.kind')",
            "json_extract(f.value, '$.fp')",
        )
    };
    format!(
        "INSERT INTO fingerprints_daily (day, machine_id, kind, fp, \"user\", times, first_ts, last_ts) \
         SELECT substr(a.ts, 1, 10), a.machine_id, {kind}, {fp}, COALESCE(a.\"user\", ''), COUNT(*), MIN(a.ts), \
         MAX(a.ts) FROM {from} WHERE a.machine_id = $1 AND a.ts >= $2 AND a.ts < $3 AND a.fingerprints <> '[]' \
         GROUP BY 1, 2, 3, 4, 5"
    )
}

/// The buckets rows from `oldest` to `newest` fall in, widened to whole
/// days (the daily rollup is recounted too), and the `ts` range covering
/// them: `(first hour, last hour, start, end)` for [`FORGET`] and the
/// recounts.
pub(crate) fn touched(oldest: &str, newest: &str) -> Option<(String, String, String, String)> {
    let first = format!("{}T00", oldest.get(..10)?);
    let last = format!("{}T23", newest.get(..10)?);
    // Every ts in hour H sorts after "H" and before "H;" (':' < ';').
    let end = format!("{last};");
    Some((first.clone(), last, first, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    fn span(from: Option<&str>, to: Option<&str>) -> Span {
        Span {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        }
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_long_window_reads_whole_days_then_the_hours_around_them_then_the_edge_rows() {
        let p = plan_window(at("2025-03-01T10:15:00Z"), at("2025-03-05T08:30:00Z"), Grain::Day, true);
        assert_eq!(
            p,
            Plan::Rolled {
                days: Some(span(Some("2025-03-02"), Some("2025-03-05"))),
                hours: vec![
                    span(Some("2025-03-01T11"), Some("2025-03-02T00")),
                    span(Some("2025-03-05T00"), Some("2025-03-05T08")),
                ],
                rows: rows(&[
                    ("2025-03-01T10:15:00.000Z", "2025-03-01T11:00:00.000Z"),
                    ("2025-03-05T08:00:00.000Z", "2025-03-05T08:30:00.000Z"),
                ]),
            }
        );
    }

    #[test]
    fn a_relative_window_runs_to_the_end_of_the_rollups_which_the_trigger_keeps_current() {
        // 7d before 14:25 is 14:25 a week ago: the rest of its hour from rows,
        // the rest of its day from hours, every later day (today too) from days.
        let now = Utc.with_ymd_and_hms(2025, 3, 10, 14, 25, 0).unwrap();
        let since = now - TimeDelta::days(7);
        let p = plan_window(Some(since), None, Grain::Day, true);
        assert_eq!(
            p,
            Plan::Rolled {
                days: Some(span(Some("2025-03-04"), None)),
                hours: vec![span(Some("2025-03-03T15"), Some("2025-03-04T00"))],
                rows: rows(&[("2025-03-03T14:25:00.000Z", "2025-03-03T15:00:00.000Z")]),
            }
        );
    }

    #[test]
    fn an_hourly_series_never_reads_days() {
        let p = plan_window(
            at("2025-03-01T10:15:00Z"),
            at("2025-03-05T08:30:00Z"),
            Grain::Hour,
            true,
        );
        let Plan::Rolled { days, hours, rows } = p else {
            panic!("{p:?}")
        };
        assert_eq!(days, None);
        assert_eq!(hours, vec![span(Some("2025-03-01T11"), Some("2025-03-05T08"))]);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn whole_day_bounds_need_neither_hours_nor_rows() {
        let p = plan_window(at("2025-03-01T00:00:00Z"), at("2025-03-02T00:00:00Z"), Grain::Day, true);
        assert_eq!(
            p,
            Plan::Rolled {
                days: Some(span(Some("2025-03-01"), Some("2025-03-02"))),
                hours: vec![],
                rows: vec![],
            }
        );
    }

    #[test]
    fn no_bounds_read_every_day() {
        let p = plan_window(None, None, Grain::Day, true);
        assert_eq!(
            p,
            Plan::Rolled {
                days: Some(span(None, None)),
                hours: vec![],
                rows: vec![],
            }
        );
    }

    #[test]
    fn a_window_without_a_whole_day_reads_hours() {
        let p = plan_window(at("2025-03-01T10:15:00Z"), at("2025-03-02T08:30:00Z"), Grain::Day, true);
        let Plan::Rolled { days, hours, .. } = p else {
            panic!("{p:?}")
        };
        assert_eq!(days, None);
        assert_eq!(hours, vec![span(Some("2025-03-01T11"), Some("2025-03-02T08"))]);
    }

    #[test]
    fn an_end_mid_hour_with_no_start_reads_every_day_before_it() {
        let p = plan_window(None, at("2025-03-02T08:30:00Z"), Grain::Day, true);
        assert_eq!(
            p,
            Plan::Rolled {
                days: Some(span(None, Some("2025-03-02"))),
                hours: vec![span(Some("2025-03-02T00"), Some("2025-03-02T08"))],
                rows: rows(&[("2025-03-02T08:00:00.000Z", "2025-03-02T08:30:00.000Z")]),
            }
        );
    }

    #[test]
    fn a_window_inside_one_hour_or_across_two_partial_hours_reads_rows_only() {
        let p = plan_window(at("2025-03-02T08:10:00Z"), at("2025-03-02T08:50:00Z"), Grain::Day, true);
        assert_eq!(p, Plan::Rows);
        let p = plan_window(at("2025-03-02T08:10:00Z"), at("2025-03-02T09:50:00Z"), Grain::Day, true);
        assert_eq!(p, Plan::Rows, "no whole hour between 08:10 and 09:50");
    }

    #[test]
    fn filters_the_rollups_do_not_keep_read_rows_only() {
        for f in [
            QueryFilter {
                verdict: Some("blocked".into()),
                ..QueryFilter::default()
            },
            QueryFilter {
                status: Some(500),
                ..QueryFilter::default()
            },
            QueryFilter {
                kind: Some("email".into()),
                ..QueryFilter::default()
            },
            QueryFilter {
                request_id: Some("r".into()),
                ..QueryFilter::default()
            },
            QueryFilter {
                route: Some("".into()),
                ..QueryFilter::default()
            },
            QueryFilter {
                after_id: Some(3),
                ..QueryFilter::default()
            },
        ] {
            let (sql, _) = usage_source(&f, Grain::Day, Utc::now()).unwrap();
            assert!(!sql.contains("usage_"), "{f:?}: {sql}");
        }
        let f = QueryFilter {
            user: Some("alice".into()),
            tool: Some("claude-code".into()),
            model: Some("claude".into()),
            exe: Some("node".into()),
            provider: Some("anthropic".into()),
            machine: Some("m".into()),
            ..QueryFilter::default()
        };
        let (sql, _) = usage_source(&f, Grain::Day, Utc::now()).unwrap();
        assert!(sql.contains("FROM usage_daily"), "{sql}");
    }

    #[test]
    fn every_part_gets_the_attribute_filter_with_its_own_placeholders() {
        let now = Utc.with_ymd_and_hms(2025, 3, 10, 14, 25, 0).unwrap();
        let f = QueryFilter {
            since: Some("2025-03-08T10:15:00Z".into()),
            user: Some("alice".into()),
            ..QueryFilter::default()
        };
        let (sql, values) = usage_source(&f, Grain::Day, now).unwrap();
        assert!(
            sql.contains("FROM usage_daily WHERE ((day >= $1)) AND \"user\" = $2"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM usage_hourly WHERE ((hour >= $3 AND hour < $4)) AND \"user\" = $5"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM audit_log WHERE ((ts >= $6 AND ts < $7)) AND \"user\" = $8"),
            "{sql}"
        );
        assert_eq!(values.len(), 8);
    }

    #[test]
    fn kinds_come_from_the_rollup_only_for_a_window_and_a_machine() {
        let now = Utc::now();
        let by_window = QueryFilter {
            since: Some("7d".into()),
            machine: Some("m".into()),
            ..QueryFilter::default()
        };
        let k = kind_sources(&by_window, now).unwrap();
        assert!(k.rolled.is_some() && k.rows.is_some());
        let by_user = QueryFilter {
            user: Some("alice".into()),
            ..by_window
        };
        let k = kind_sources(&by_user, now).unwrap();
        assert!(k.rolled.is_none() && k.rows.is_some());
    }

    #[test]
    fn a_prune_recounts_whole_days_of_what_it_touched() {
        assert_eq!(
            touched("2025-03-01T10:15:00.000Z", "2025-03-03T08:30:00.000Z"),
            Some((
                "2025-03-01T00".into(),
                "2025-03-03T23".into(),
                "2025-03-01T00".into(),
                "2025-03-03T23;".into()
            ))
        );
    }
}
