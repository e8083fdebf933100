//! Where usage questions (`agents`, `top`, `series`) read their rows from.
//!
//! `usage_hourly` (migration `20261212000001`) holds, per hour and per
//! machine, tool, user, exe, provider, model and verdict, the requests,
//! tokens and cost of `audit_log`, kept by a trigger. A window of whole
//! hours reads it; the partial hours at the window's edges read
//! `audit_log` through its `ts` index. So the answer is exactly what a scan
//! of `audit_log` gives, from a few thousand rows instead of a million.
//! A filter on something the rollup does not keep (status, kind, request
//! id, route, id) reads `audit_log` alone.
//!
//! Both sources are presented as one relation `u` with the columns `t`
//! (an hour `2025-01-31T12` or a full timestamp:
//! either cut to 13 or 10 characters names its bucket), the attributes,
//! and `requests`, tokens, cost, `first_ts`, `last_ts`.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::query::{BindValue, QueryFilter, Where};
use crate::time::{format_ts, parse_time_spec};
use crate::AuditError;

/// requests, input, output, cost, blocked, redacted of a group of source
/// rows, typed alike on SQLite and PostgreSQL.
pub(crate) const TOTALS: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT), \
     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION), \
     CAST(COALESCE(SUM(CASE WHEN verdict = 'blocked' THEN requests ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN verdict = 'redacted' THEN requests ELSE 0 END), 0) AS BIGINT)";

const FROM_ROWS: &str = "SELECT ts AS t, machine_id, tool, \"user\", exe, provider, model, verdict, \
     1 AS requests, COALESCE(input_tokens, 0) AS input_tokens, COALESCE(output_tokens, 0) AS output_tokens, \
     COALESCE(cost_usd, 0.0) AS cost_usd, ts AS first_ts, ts AS last_ts FROM audit_log";

const FROM_HOURS: &str = "SELECT hour AS t, machine_id, NULLIF(tool, '') AS tool, NULLIF(\"user\", '') AS \"user\", \
     NULLIF(exe, '') AS exe, NULLIF(provider, '') AS provider, NULLIF(model, '') AS model, verdict, \
     requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts FROM usage_hourly";

/// After rows of machine `$1` were deleted: drop the hours they were in
/// (`$2 <= hour <= $3`) from the rollup ...
pub(crate) const FORGET_HOURS: &str = "DELETE FROM usage_hourly WHERE machine_id = $1 AND hour >= $2 AND hour <= $3";
/// ... and count again what is left in them (`$2 <= ts < $3`).
pub(crate) const RECOUNT_HOURS: &str = "INSERT INTO usage_hourly (hour, machine_id, tool, \"user\", exe, provider, \
     model, verdict, requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts) \
     SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE(\"user\", ''), COALESCE(exe, ''), \
     COALESCE(provider, ''), COALESCE(model, ''), verdict, COUNT(*), SUM(COALESCE(input_tokens, 0)), \
     SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), MIN(ts), MAX(ts) \
     FROM audit_log WHERE machine_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8";

/// The hours (first and last, `2025-01-31T12`) rows from `oldest` to
/// `newest` fall in, and the `ts` range covering them whole:
/// `(first, last, start, end)` for [`FORGET_HOURS`] and [`RECOUNT_HOURS`].
pub(crate) fn touched_hours(oldest: &str, newest: &str) -> Option<(String, String, String, String)> {
    let first = oldest.get(..13)?.to_string();
    let last = newest.get(..13)?.to_string();
    // Every ts in hour H sorts after "H" and before "H;" (':' < ';').
    let end = format!("{last};");
    Some((first.clone(), last, first, end))
}

/// How a filter's window splits between the two tables: a decision made
/// apart from the SQL, so each case is tested on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Every matching row from `audit_log`: the filter needs a column the
    /// rollup lacks, or the window holds no whole hour.
    Rows,
    /// Whole hours `from <= hour < to` (unbounded when None) from
    /// `usage_hourly`; rows with `start <= ts < end` from `audit_log`.
    Hours {
        from: Option<String>,
        to: Option<String>,
        edges: Vec<(String, String)>,
    },
}

fn hour_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn parse(spec: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AuditError> {
    let ts = parse_time_spec(spec, now)?;
    DateTime::parse_from_rfc3339(&ts)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| AuditError::BadFilter(format!("time {spec:?} did not normalise ({e}); give an RFC3339 time")))
}

pub(crate) fn plan(filter: &QueryFilter, now: DateTime<Utc>) -> Result<Plan, AuditError> {
    if !filter.only_attributes() {
        return Ok(Plan::Rows);
    }
    let hour = TimeDelta::hours(1);
    let trunc = |t: DateTime<Utc>| t.duration_trunc(hour).expect("an hour divides any UTC time");
    let since = filter.since.as_deref().map(|s| parse(s, now)).transpose()?;
    let until = filter.until.as_deref().map(|s| parse(s, now)).transpose()?;
    // Whole hours start at or after `since` and end at or before `until`.
    let from = since.map(|s| if trunc(s) == s { s } else { trunc(s) + hour });
    let to = until.map(trunc);
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Ok(Plan::Rows);
        }
    }
    let mut edges = Vec::new();
    if let (Some(since), Some(from)) = (since, from) {
        if since < from {
            edges.push((format_ts(since), format_ts(from)));
        }
    }
    if let (Some(until), Some(to)) = (until, to) {
        if to < until {
            edges.push((format_ts(to), format_ts(until)));
        }
    }
    Ok(Plan::Hours {
        from: from.map(hour_name),
        to: to.map(hour_name),
        edges,
    })
}

/// `(SELECT ...) AS u` with [`SOURCE_COLUMNS`] and its values, placeholders
/// from `$1`.
pub(crate) fn source(filter: &QueryFilter, now: DateTime<Utc>) -> Result<(String, Vec<BindValue>), AuditError> {
    let mut w = Where::default();
    let sql = match plan(filter, now)? {
        Plan::Rows => {
            let (cond, values) = filter.where_clause(now)?;
            w.values = values;
            format!("{FROM_ROWS}{cond}")
        }
        Plan::Hours { from, to, edges } => {
            if let Some(from) = from {
                w.add("hour >= ?", [BindValue::Text(from)]);
            }
            if let Some(to) = to {
                w.add("hour < ?", [BindValue::Text(to)]);
            }
            filter.add_attributes(&mut w);
            let mut sql = format!("{FROM_HOURS}{}", w.sql());
            if !edges.is_empty() {
                // The rows part numbers its placeholders after the hours part's.
                let mut rows = Where {
                    conds: Vec::new(),
                    values: std::mem::take(&mut w.values),
                };
                let ranges = vec!["(ts >= ? AND ts < ?)"; edges.len()].join(" OR ");
                let bounds = edges
                    .into_iter()
                    .flat_map(|(start, end)| [BindValue::Text(start), BindValue::Text(end)])
                    .collect();
                rows.add_all(&format!("({ranges})"), bounds);
                filter.add_attributes(&mut rows);
                sql = format!("{sql} UNION ALL {FROM_ROWS}{}", rows.sql());
                w.values = rows.values;
            }
            sql
        }
    };
    Ok((format!("({sql}) AS u"), w.values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 10, 14, 25, 0).unwrap()
    }

    fn window(since: Option<&str>, until: Option<&str>) -> QueryFilter {
        QueryFilter {
            since: since.map(str::to_string),
            until: until.map(str::to_string),
            ..QueryFilter::default()
        }
    }

    #[test]
    fn a_window_starting_mid_hour_reads_that_hours_rest_from_rows_and_the_rest_from_hours() {
        let p = plan(&window(Some("2025-03-09T10:15:00Z"), None), now()).unwrap();
        assert_eq!(
            p,
            Plan::Hours {
                from: Some("2025-03-09T11".into()),
                to: None,
                edges: vec![("2025-03-09T10:15:00.000Z".into(), "2025-03-09T11:00:00.000Z".into())],
            }
        );
    }

    #[test]
    fn a_relative_window_ends_at_now_and_the_current_hour_comes_from_hours() {
        // 7d before 14:25 is 14:25 a week ago: its hour's rest from rows,
        // everything after (the current hour too) from the rollup, which the
        // trigger keeps up to the last committed row.
        let p = plan(&window(Some("7d"), None), now()).unwrap();
        let Plan::Hours { from, to, edges } = p else {
            panic!("{p:?}")
        };
        assert_eq!(from.as_deref(), Some("2025-03-03T15"));
        assert_eq!(to, None);
        assert_eq!(
            edges,
            vec![("2025-03-03T14:25:00.000Z".into(), "2025-03-03T15:00:00.000Z".into())]
        );
    }

    #[test]
    fn whole_hour_bounds_need_no_rows() {
        let p = plan(&window(Some("2025-03-01"), Some("2025-03-02")), now()).unwrap();
        assert_eq!(
            p,
            Plan::Hours {
                from: Some("2025-03-01T00".into()),
                to: Some("2025-03-02T00".into()),
                edges: vec![],
            }
        );
    }

    #[test]
    fn an_end_mid_hour_reads_that_hours_start_from_rows() {
        let p = plan(&window(None, Some("2025-03-02T08:30:00Z")), now()).unwrap();
        assert_eq!(
            p,
            Plan::Hours {
                from: None,
                to: Some("2025-03-02T08".into()),
                edges: vec![("2025-03-02T08:00:00.000Z".into(), "2025-03-02T08:30:00.000Z".into())],
            }
        );
    }

    #[test]
    fn a_window_inside_one_hour_reads_rows_only() {
        let p = plan(
            &window(Some("2025-03-02T08:10:00Z"), Some("2025-03-02T08:50:00Z")),
            now(),
        )
        .unwrap();
        assert_eq!(p, Plan::Rows);
        let p = plan(
            &window(Some("2025-03-02T08:10:00Z"), Some("2025-03-02T09:50:00Z")),
            now(),
        )
        .unwrap();
        assert_eq!(p, Plan::Rows, "no whole hour between 08:10 and 09:50");
    }

    #[test]
    fn filters_the_rollup_does_not_keep_read_rows_only() {
        for f in [
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
            assert_eq!(plan(&f, now()).unwrap(), Plan::Rows, "{f:?}");
        }
        let f = QueryFilter {
            user: Some("alice".into()),
            tool: Some("claude-code".into()),
            model: Some("claude".into()),
            exe: Some("node".into()),
            provider: Some("anthropic".into()),
            verdict: Some("blocked".into()),
            machine: Some("m".into()),
            ..QueryFilter::default()
        };
        assert!(matches!(plan(&f, now()).unwrap(), Plan::Hours { .. }));
    }

    #[test]
    fn both_parts_get_the_attribute_filter_with_their_own_placeholders() {
        let f = QueryFilter {
            since: Some("2025-03-09T10:15:00Z".into()),
            user: Some("alice".into()),
            ..QueryFilter::default()
        };
        let (sql, values) = source(&f, now()).unwrap();
        assert!(
            sql.contains("FROM usage_hourly WHERE hour >= $1 AND \"user\" = $2"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM audit_log WHERE ((ts >= $3 AND ts < $4)) AND \"user\" = $5"),
            "{sql}"
        );
        assert_eq!(values.len(), 5);
    }
}
