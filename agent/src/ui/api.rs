//! The UI's data: JSON from the audit store's own queries (the ones the CLI
//! uses, so a page and `promptwall audit …` always agree), and the Live
//! stream.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use promptwall_audit::{AuditError, AuditRecord, Bucket, QueryFilter, TopBy};
use serde_json::{json, Value};

use super::{full, Body, Ui, Viewer, LIVE_POLL};

/// Most rows one list answers with.
const MAX_ROWS: i64 = 500;
/// How far back each Live poll looks: a row is stamped with its request's
/// start, so one that ran long lands behind newer ones.
const LIVE_LOOKBACK_SECS: i64 = 15 * 60;

/// The filters every page shares, from the query string.
fn filter(params: &HashMap<String, String>) -> QueryFilter {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    QueryFilter {
        since: get("since"),
        until: get("until"),
        machine: get("machine"),
        user: get("user"),
        tool: get("tool"),
        provider: get("provider"),
        model: get("model"),
        verdict: get("verdict"),
        kind: get("kind"),
        request_id: get("request_id"),
        limit: Some(
            get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, MAX_ROWS),
        ),
        ..Default::default()
    }
}

/// A row as lists show it: who, what, verdict and cost; no text.
pub fn summary(r: &AuditRecord) -> Value {
    json!({
        "key": row_key(r),
        "machine_id": r.machine_id,
        "id": r.id,
        "ts": r.ts,
        "request_id": r.request_id,
        "listener": r.listener,
        "user": r.user,
        "tool": r.tool,
        "exe": r.exe,
        "pid": r.pid,
        "provider": r.provider,
        "model": r.model,
        "verdict": r.verdict,
        "status": r.status,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": r.cost_usd,
        "duration_ms": r.duration_ms,
        "findings": r.findings,
        "route": r.route,
    })
}

fn row_key(r: &AuditRecord) -> String {
    format!("{}/{}/{}", r.machine_id, r.install_id, r.id)
}

fn ok(v: Value) -> Response<Body> {
    full(StatusCode::OK, "application/json", v.to_string())
}

fn bad(why: impl std::fmt::Display) -> Response<Body> {
    full(
        StatusCode::BAD_REQUEST,
        "application/json",
        json!({"error": why.to_string()}).to_string(),
    )
}

fn failed(e: AuditError) -> Response<Body> {
    match e {
        AuditError::BadFilter(why) => bad(why),
        AuditError::NotFound(id) => full(
            StatusCode::NOT_FOUND,
            "application/json",
            json!({"error": format!("no audit row {id}")}).to_string(),
        ),
        other => {
            tracing::warn!("UI query failed: {other}");
            full(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                json!({"error": format!("the audit store did not answer ({other}); retry, or check the store")})
                    .to_string(),
            )
        }
    }
}

/// `?bucket=hour|day` (hour when absent).
fn bucket(params: &HashMap<String, String>) -> Result<Bucket, String> {
    match params.get("bucket").map(String::as_str) {
        Some("day") => Ok(Bucket::Day),
        None | Some("hour") => Ok(Bucket::Hour),
        Some(other) => Err(format!("bucket {other:?}: use hour or day")),
    }
}

pub async fn json(ui: &Ui, viewer: &Viewer, path: &str, params: &HashMap<String, String>) -> Response<Body> {
    let f = filter(params);
    let by = |default: &str| TopBy::parse(params.get("by").map(String::as_str).unwrap_or(default));
    match path {
        "/api/me" => ok(json!({"viewer": match viewer {
            Viewer::TokenHolder => "local token".to_string(),
            Viewer::LocalUser(uid) => promptwall_proxy::attribution::user_name(*uid).unwrap_or_else(|| format!("uid {uid}")),
            Viewer::Named(n) => n.clone(),
        }, "store": promptwall_audit::store::redact_url(ui.store.url()), "show_bodies": ui.show_bodies})),
        "/api/rows" => match ui.store.query(&f).await {
            Ok(rows) => ok(json!({"rows": rows.iter().map(summary).collect::<Vec<_>>()})),
            Err(e) => failed(e),
        },
        "/api/row" => {
            let Some(id) = params.get("id").and_then(|i| i.parse::<i64>().ok()) else {
                return bad("give ?id=<row id>&machine=<machine id>");
            };
            match ui.store.show(id, params.get("machine").map(String::as_str)).await {
                Ok(row) => ok(detail(row, ui.show_bodies)),
                Err(e) => failed(e),
            }
        }
        "/api/agents" => match ui.store.agents(&QueryFilter { limit: None, ..f }).await {
            Ok(agents) => ok(json!({ "agents": agents })),
            Err(e) => failed(e),
        },
        "/api/top" => match by("user") {
            Ok(by) => match ui
                .store
                .top(
                    by,
                    &QueryFilter {
                        limit: f.limit.map(|l| l.min(50)),
                        ..f
                    },
                )
                .await
            {
                Ok(rows) => ok(json!({"by": by.name(), "rows": rows})),
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        },
        "/api/series" => {
            let bucket = match bucket(params) {
                Ok(b) => b,
                Err(why) => return bad(why),
            };
            match by("tool") {
                Ok(by) => match ui.store.series(by, bucket, &QueryFilter { limit: None, ..f }).await {
                    Ok(points) => ok(json!({"by": by.name(), "points": points})),
                    Err(e) => failed(e),
                },
                Err(e) => failed(e),
            }
        }
        "/api/protection" => {
            let all = QueryFilter { limit: None, ..f };
            let kinds = ui.store.top(TopBy::Kind, &all).await;
            let repeated = ui.store.repeated_fingerprints(&all).await;
            let bucket = match bucket(params) {
                Ok(b) => b,
                Err(why) => return bad(why),
            };
            let over_time = ui.store.series(TopBy::Tool, bucket, &all).await;
            match (kinds, repeated, over_time) {
                (Ok(kinds), Ok(repeated), Ok(points)) => ok(json!({
                    "kinds": kinds,
                    "repeated": repeated,
                    "points": points,
                })),
                (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => failed(e),
            }
        }
        "/api/setup" => ok(setup(ui).await),
        // `promptwall doctor`'s checks but eBPF loading, on demand; on a
        // fleet store they describe the machine serving the UI.
        "/api/doctor" => {
            let Ok(_running) = ui.doctor.try_lock() else {
                return full(
                    StatusCode::TOO_MANY_REQUESTS,
                    "application/json",
                    json!({"error": "the checks are already running; wait for them to finish"}).to_string(),
                );
            };
            let config = ui.config.clone();
            // The TLS checks run real clients and wait on them: off the runtime's workers.
            let checks = tokio::task::spawn_blocking(move || {
                tokio::runtime::Handle::current().block_on(crate::cli::doctor::collect(
                    &crate::cli::doctor::DoctorArgs::for_ui(),
                    &config,
                ))
            })
            .await;
            match checks {
                Ok(checks) => ok(json!({ "checks": checks })),
                Err(e) => full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    json!({"error": format!("the checks stopped: {e}; run `promptwall doctor` in a shell")})
                        .to_string(),
                ),
            }
        }
        // The running daemon's own state (this machine only): limits and
        // their use, learned passthroughs.
        "/api/daemon" => {
            let socket = &ui.config.listen.admin_socket;
            let limits = crate::admin::query(socket, "limits").await;
            let status = crate::admin::query(socket, "status").await;
            match (limits, status) {
                (Ok(limits), Ok(status)) => ok(json!({
                    "limits": limits["limits"],
                    "learned_passthrough": status["learned_passthrough"],
                })),
                (Err(e), _) | (_, Err(e)) => ok(json!({"error": format!("{e:#}")})),
            }
        }
        _ => full(
            StatusCode::NOT_FOUND,
            "application/json",
            json!({"error": format!("no API {path}")}).to_string(),
        ),
    }
}

/// One row for its page: everything but the hash chain's internals, and
/// the bodies only when `--show-bodies` allows. Never a secret value: the
/// row never held one.
fn detail(mut row: AuditRecord, show_bodies: bool) -> Value {
    if !show_bodies {
        row.request_body = None;
        row.response_body = None;
    }
    let routing = row.routing_detail().and_then(Result::ok);
    let mut v = serde_json::to_value(&row).unwrap_or(Value::Null);
    v["key"] = row_key(&row).into();
    v["routing"] = serde_json::to_value(routing).unwrap_or(Value::Null);
    v["bodies_hidden"] = (!show_bodies).into();
    v
}

async fn setup(ui: &Ui) -> Value {
    let config = &ui.config;
    let ca = match promptwall_ca::OrgCa::load(&config.ca.dir) {
        Ok(ca) => serde_json::to_value(ca.status()).unwrap_or(Value::Null),
        Err(e) => json!({"error": e.to_string()}),
    };
    let daemon = match crate::admin::query(&config.listen.admin_socket, "status").await {
        Ok(status) => status,
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    json!({
        "ca": ca,
        "daemon": daemon,
        "intercept": {"enabled": config.intercept.enabled, "fail": config.intercept.fail},
        "store": promptwall_audit::store::redact_url(ui.store.url()),
        "install": [
            "sudo dpkg -i promptwall_<version>_amd64.deb",
            "sudo promptwall ca import --cert org-ca.pem --key org-ca.key   # or: sudo promptwall ca init",
            "sudo promptwall ca install",
            "sudo systemctl enable --now promptwall",
            "promptwall doctor",
        ],
    })
}

/// Server-sent events: the newest rows first as a backlog, then each new
/// row as it is committed (found by polling; a row appears within about
/// [`LIVE_POLL`] of its commit).
pub fn live(ui: &Ui, params: HashMap<String, String>) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let store = ui.store.clone();
    let base = filter(&params);
    tokio::spawn(async move {
        let mut seen: HashSet<String> = HashSet::new();
        let mut order: VecDeque<String> = VecDeque::new();
        let mut backlog = true;
        let mut beat = tokio::time::Instant::now();
        // A machine's own store numbers rows in commit order: each poll
        // reads only what is new. The fleet store has no such order, so it
        // re-reads a recent window and skips what was sent.
        let by_id = store.is_sqlite();
        let mut last_id: Option<i64> = None;
        loop {
            let (since, after_id) = match (backlog, by_id) {
                (true, _) => (base.since.clone(), None),
                (false, true) => (None, Some(last_id.unwrap_or(0))),
                (false, false) => (
                    Some(promptwall_audit::time::format_ts(
                        chrono::Utc::now() - chrono::Duration::seconds(LIVE_LOOKBACK_SECS),
                    )),
                    None,
                ),
            };
            let f = QueryFilter {
                since,
                after_id,
                limit: Some(if backlog { base.limit.unwrap_or(100) } else { MAX_ROWS }),
                ..base.clone()
            };
            if by_id && last_id.is_none() {
                // The newest id now, whatever the filters: later polls start there.
                let newest = QueryFilter {
                    limit: Some(1),
                    ..Default::default()
                };
                last_id = Some(
                    store
                        .query(&newest)
                        .await
                        .ok()
                        .and_then(|r| r.first().map(|r| r.id))
                        .unwrap_or(0),
                );
            }
            match store.query(&f).await {
                Ok(mut rows) => {
                    rows.reverse(); // oldest first, so the page prepends in order
                    if let Some(max) = rows.iter().map(|r| r.id).max().filter(|_| !backlog) {
                        last_id = Some(last_id.unwrap_or(0).max(max));
                    }
                    for row in rows {
                        let key = row_key(&row);
                        if !seen.insert(key.clone()) {
                            continue;
                        }
                        order.push_back(key);
                        if order.len() > 20_000 {
                            if let Some(old) = order.pop_front() {
                                seen.remove(&old);
                            }
                        }
                        let event = format!("event: row\ndata: {}\n\n", summary(&row));
                        if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let event = format!("event: problem\ndata: {}\n\n", json!({"error": e.to_string()}));
                    if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                        return;
                    }
                }
            }
            backlog = false;
            if beat.elapsed() > std::time::Duration::from_secs(15) {
                beat = tokio::time::Instant::now();
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b": still here\n\n"))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LIVE_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static parts are valid")
}

/// An mpsc receiver as a stream of frames.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
