//! The request path shared by the explicit and the transparent listener:
//! route → read body → inspect → forward upstream → stream back → audit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::audit_sink::{AuditSink, RequestLog};
use crate::body::{self, BoxError, ProxyBody};
use crate::config::{Config, ProviderConfig};
use crate::inspect;
use crate::origin::ConnectionOrigin;
use crate::pipeline::{Decision, Inspector, ResponseStage};
use crate::upstream::Upstream;
use promptwall_llm::ApiShape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Explicit,
    Transparent,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Explicit => "explicit",
            Listener::Transparent => "transparent",
        }
    }
}

/// Per-connection facts the request handler needs.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub listener: Listener,
    pub peer: SocketAddr,
    /// TLS server name the client asked for (transparent and explicit-TLS).
    pub server_name: Option<String>,
    pub origin: Option<ConnectionOrigin>,
    /// The local client process, when known without a redirect record
    /// (explicit listener: found through /proc/net/tcp).
    pub identity: Option<crate::origin::ClientIdentity>,
}

/// Everything shared by all requests.
pub struct Proxy {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub audit: AuditSink,
    pub inspector: Arc<Inspector>,
    pub stats: crate::stats::Stats,
    /// Memory budgets of inspected exchanges.
    pub admission: crate::admission::Admission,
    /// Free space on the audit store's disk.
    pub audit_space: crate::audit_space::AuditSpace,
}

struct Route {
    provider: ProviderConfig,
    /// Absolute upstream URI.
    uri: Uri,
    host: String,
    path: String,
}

impl Proxy {
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnContext>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        self.stats.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut log = RequestLog {
            ts: now_rfc3339(),
            listener: conn.listener.as_str(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            identity: conn
                .origin
                .as_ref()
                .map(|o| o.identity.clone())
                .or_else(|| conn.identity.clone()),
            socket_cookie: conn.origin.as_ref().and_then(|o| o.socket_cookie),
            original_dst: conn.origin.as_ref().map(|o| o.original_dst.to_string()),
            verdict: "allowed".into(),
            ..Default::default()
        };
        log.tool = crate::attribution::identify_tool(log.identity.as_ref(), req.headers()).to_string();
        if req.method() == http::Method::CONNECT {
            let msg = "promptwall: this listener is a base URL, not an HTTP proxy; set ANTHROPIC_BASE_URL=http://<listen.explicit> or OPENAI_BASE_URL=http://<listen.explicit>/v1 instead of HTTPS_PROXY";
            return Ok(self
                .finish_local(
                    log,
                    started,
                    envelope_guess(req.headers()),
                    StatusCode::METHOD_NOT_ALLOWED,
                    msg,
                )
                .await);
        }
        // Classified and forwarded in one canonical form: what is inspected
        // is what the provider reads (crate docs of promptwall_llm::path).
        let fallback_envelope = envelope_guess(req.headers());
        let req = match with_canonical_path(req) {
            Ok(req) => req,
            Err(e) => {
                let msg = format!(
                    "promptwall: refused request path: {e}; send the path without dot segments or encoded separators"
                );
                return Ok(self
                    .finish_local(log, started, fallback_envelope, StatusCode::BAD_REQUEST, &msg)
                    .await);
            }
        };
        log.path = req.uri().path().to_string();
        let shape = inspect::classify(req.method(), req.uri().path());
        log.shape = shape.as_str().into();
        log.llm = shape.is_llm();
        let route = match self.route(&conn, &req) {
            Ok(r) => r,
            Err(message) => {
                return Ok(self
                    .finish_local(
                        log,
                        started,
                        inspect::error_shape(shape, None),
                        StatusCode::NOT_FOUND,
                        &message,
                    )
                    .await);
            }
        };
        log.provider = route.provider.name.clone();
        log.host = route.host.clone();
        log.path = route.path.clone();
        let error_shape = inspect::error_shape(shape, Some(&route.provider.name));

        if is_websocket_upgrade(req.headers()) {
            if self.audit_unhealthy() {
                return Ok(self.refuse_unaudited(log, started, error_shape).await);
            }
            return Ok(self.websocket(conn, req, route, log, started, error_shape).await);
        }

        let (parts, incoming) = req.into_parts();
        let mut upstream_headers = parts.headers.clone();
        strip_hop_by_hop(&mut upstream_headers);
        upstream_headers.remove(header::HOST);

        // LLM calls are read whole (bounded) so the pipeline can inspect them,
        // and so are other bodies that may carry text (checked for
        // credentials); uploads and bodiless requests stream through untouched.
        let mut stage: Option<ResponseStage> = None;
        // Inspected exchanges hold memory: each charges its body to the
        // global budget as it arrives, then takes a slot (crate::admission).
        // The slot lives as long as the exchange, the charge until the body
        // has been sent upstream.
        let mut ticket: Option<crate::admission::Ticket> = None;
        let upstream_body: ProxyBody = if shape.is_llm() || inspect::checks_other_body(&parts.method, parts.uri.path())
        {
            let limit = self.config.limits.max_request_bytes;
            let read_timeout = Duration::from_secs(self.config.limits.client_read_timeout_secs.max(1));
            let admitted = ticket.insert(Default::default());
            let collected =
                tokio::time::timeout(read_timeout, self.admission.read_body(admitted, incoming, limit)).await;
            let bytes = match collected {
                Err(_) => {
                    let msg = format!(
                        "promptwall: the request body did not arrive within {} s; the client is too slow or stalled — retry",
                        read_timeout.as_secs()
                    );
                    return Ok(self
                        .finish_local(log, started, error_shape, StatusCode::REQUEST_TIMEOUT, &msg)
                        .await);
                }
                Ok(Err(crate::admission::BodyError::Busy(busy))) => {
                    return Ok(self.busy(log, started, error_shape, busy).await);
                }
                Ok(Err(crate::admission::BodyError::TooLarge(_))) => {
                    let msg = format!(
                        "promptwall: request body exceeds the {limit}-byte limit ([limits] max_request_bytes); shorten the conversation or raise the limit"
                    );
                    return Ok(self
                        .finish_local(log, started, error_shape, StatusCode::PAYLOAD_TOO_LARGE, &msg)
                        .await);
                }
                Ok(Err(e)) => {
                    log.error = Some(format!("client aborted while sending the body: {e}"));
                    let msg = "promptwall: the request body could not be read (client aborted); retry";
                    return Ok(self
                        .finish_local(log, started, error_shape, StatusCode::BAD_REQUEST, msg)
                        .await);
                }
                Ok(Ok(bytes)) => bytes,
            };
            if let Err(busy) = self.admission.admit(admitted) {
                return Ok(self.busy(log, started, error_shape, busy).await);
            }
            log.request_bytes = bytes.len() as u64;
            // What is inspected is what is forwarded: a compressed body goes
            // on decoded (every provider accepts identity).
            let compressed = bytes.len();
            let mut grow = |decoded: usize| {
                self.admission
                    .charge(admitted, compressed + decoded)
                    .map_err(|busy| busy.to_string())
            };
            let bytes = match crate::encoding::decode_request_body(&parts.headers, &bytes, limit, &mut grow) {
                Ok(None) => bytes,
                Ok(Some(decoded)) => {
                    upstream_headers.remove(header::CONTENT_ENCODING);
                    decoded
                }
                Err(crate::encoding::EncodingError::OverBudget(busy)) => {
                    let msg = format!("promptwall: {busy}");
                    let resp = self
                        .finish_local(log, started, error_shape, StatusCode::SERVICE_UNAVAILABLE, &msg)
                        .await;
                    return Ok(crate::admission::with_retry_after(resp));
                }
                Err(e) => {
                    let status = match e {
                        crate::encoding::EncodingError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        crate::encoding::EncodingError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                        crate::encoding::EncodingError::Corrupt { .. }
                        | crate::encoding::EncodingError::OverBudget(_) => StatusCode::BAD_REQUEST,
                    };
                    let msg = format!("promptwall: {e}");
                    return Ok(self.finish_local(log, started, error_shape, status, &msg).await);
                }
            };
            match self
                .inspector
                .inspect_request(shape, &bytes, &parts.headers, log.identity.as_ref())
            {
                Decision::Reject { status, body, report } => {
                    // Outside the known shapes the pipeline cannot tell the
                    // client's error format; the route can.
                    let body = if shape.is_llm() {
                        body
                    } else {
                        inspect::reshape_error(error_shape, status, &body)
                    };
                    log.verdict = if report.verdict == "blocked" {
                        "blocked".into()
                    } else {
                        "error".into()
                    };
                    log.findings = report.counts;
                    log.fingerprints = report.fingerprints;
                    log.status = status;
                    log.error = report.message;
                    log.model = report.model;
                    log.duration_ms = ms(started.elapsed());
                    self.write_audit(log).await;
                    return Ok(json_response(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                        body,
                    ));
                }
                Decision::Forward {
                    body,
                    stage: response_stage,
                    report,
                } => {
                    log.verdict = report.verdict.to_string();
                    log.findings = report.counts;
                    log.model = report.model;
                    if self.config.audit.capture_bodies {
                        log.request_body = Some(capture(
                            &body.clone().unwrap_or_else(|| bytes.clone()),
                            self.config.audit.capture_max_bytes,
                        ));
                    }
                    stage = Some(response_stage);
                    // We restore placeholders and read usage from the answer, so ask
                    // for it uncompressed.
                    upstream_headers.remove(header::ACCEPT_ENCODING);
                    upstream_headers.remove(header::CONTENT_LENGTH);
                    // The body is already here: nothing left to wait for upstream.
                    upstream_headers.remove(header::EXPECT);
                    admitted.charge_body(body::full(body.unwrap_or(bytes)))
                }
            }
        } else {
            incoming.map_err(|e| Box::new(e) as BoxError).boxed()
        };

        if self.audit_unhealthy() {
            return Ok(self.refuse_unaudited(log, started, error_shape).await);
        }
        let mut upstream_req = Request::builder().method(parts.method.clone()).uri(route.uri.clone());
        *upstream_req.headers_mut().expect("builder has no error yet") = upstream_headers;
        let upstream_req = upstream_req
            .body(upstream_body)
            .expect("method, uri and headers are valid");

        let response_timeout = Duration::from_secs(self.config.limits.upstream_response_timeout_secs.max(1));
        let mut on_drop = RowOnDrop {
            proxy: self.clone(),
            log: Some(log),
            started,
        };
        let answer = tokio::time::timeout(response_timeout, self.upstream.client.request(upstream_req)).await;
        let mut log = on_drop.log.take().expect("the row is only taken here or on drop");
        let resp = match answer {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                let detail = error_chain(&e);
                log.error = Some(format!("upstream {} unreachable: {detail}", route.host));
                let msg = format!(
                    "promptwall: cannot reach the provider at {} ({detail}); check the network or [upstream] settings and retry",
                    route.host
                );
                log.verdict = "error".into();
                return Ok(self
                    .finish_local(log, started, error_shape, StatusCode::BAD_GATEWAY, &msg)
                    .await);
            }
            Err(_) => {
                log.error = Some(format!(
                    "upstream {} sent no response within {} s",
                    route.host,
                    response_timeout.as_secs()
                ));
                let msg = format!(
                    "promptwall: the provider at {} did not answer within {} s; retry later",
                    route.host,
                    response_timeout.as_secs()
                );
                log.verdict = "error".into();
                return Ok(self
                    .finish_local(log, started, error_shape, StatusCode::GATEWAY_TIMEOUT, &msg)
                    .await);
            }
        };
        log.ttfb_ms = Some(ms(started.elapsed()));
        log.status = resp.status().as_u16();

        let (mut resp_parts, resp_body) = resp.into_parts();
        strip_hop_by_hop(&mut resp_parts.headers);
        let content_type = resp_parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let compressed = resp_parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let stage = stage.map(|s| s.for_response(resp_parts.status.as_u16(), &content_type, compressed));
        if stage.as_ref().is_some_and(|s| s.may_change_length()) {
            resp_parts.headers.remove(header::CONTENT_LENGTH);
        }
        // A stream that breaks off ends with an error event the client's SDK
        // understands, instead of a truncated body.
        let sse_error = (shape.is_llm()
            && resp_parts.status.is_success()
            && content_type.to_ascii_lowercase().contains("text/event-stream"))
        .then_some(shape);
        let mut body = self.clone().relay_response(resp_body, stage, log, started, sse_error);
        if let Some(ticket) = ticket {
            body = ticket.hold(body);
        }
        Ok(Response::from_parts(resp_parts, body))
    }

    /// Streams the upstream body to the client through the response stage,
    /// and commits the audit row before the end of the body is sent.
    fn relay_response(
        self: Arc<Self>,
        mut upstream: Incoming,
        mut stage: Option<ResponseStage>,
        mut log: RequestLog,
        started: Instant,
        sse_error: Option<ApiShape>,
    ) -> ProxyBody {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(32);
        let capture_limit = self
            .config
            .audit
            .capture_bodies
            .then_some(self.config.audit.capture_max_bytes);
        // With a Content-Length the client knows the answer is complete at
        // its last byte, so that byte waits for the audit commit.
        let exact_len = upstream.size_hint().exact();
        tokio::spawn(async move {
            let mut client_gone = false;
            let mut upstream_error: Option<String> = None;
            let mut captured: Vec<u8> = Vec::new();
            let mut held = Bytes::new();
            loop {
                // A client hang-up ends the upstream request at once (the
                // provider stops generating) instead of at its next frame,
                // which may be a long thinking pause away.
                let next = tokio::select! {
                    biased;
                    _ = tx.closed() => None,
                    next = upstream.frame() => Some(next),
                };
                let Some(next) = next else {
                    // A client that read a Content-Length body to its end may
                    // close before the upstream's end-of-stream is seen:
                    // that is a complete exchange, not a hang-up.
                    client_gone = !upstream.is_end_stream();
                    break;
                };
                match next {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            log.response_bytes += data.len() as u64;
                            if let Some(limit) = capture_limit {
                                let room = limit.saturating_sub(captured.len());
                                captured.extend_from_slice(&data[..data.len().min(room)]);
                            }
                            let out = match stage.as_mut() {
                                Some(s) => s.push(data),
                                None => data,
                            };
                            if exact_len.is_some_and(|n| log.response_bytes >= n) {
                                held = out;
                                continue;
                            }
                            if !out.is_empty() && tx.send(Ok(Frame::data(out))).await.is_err() {
                                client_gone = true;
                                break;
                            }
                        }
                        Err(frame) => {
                            if tx.send(Ok(frame)).await.is_err() {
                                client_gone = true;
                                break;
                            }
                        }
                    },
                    Some(Err(e)) => {
                        upstream_error = Some(error_chain(&e));
                        break;
                    }
                    None => break,
                }
            }
            let tail = stage.as_mut().map(|s| s.finish()).unwrap_or_default();
            let tail = if held.is_empty() {
                tail
            } else if tail.is_empty() {
                held
            } else {
                Bytes::from([held.as_ref(), tail.as_ref()].concat())
            };
            if let (Some(s), false, None) = (stage.as_ref(), client_gone, &upstream_error) {
                self.inspector.conclude(s);
            }
            if let Some(s) = stage.as_ref() {
                let usage = s.usage();
                log.model = usage.model.or(log.model.take());
                log.input_tokens = usage.input_tokens;
                log.output_tokens = usage.output_tokens;
                log.cache_read_tokens = usage.cache_read_tokens;
                log.cache_write_tokens = usage.cache_write_tokens;
                if let Some(err) = usage.stream_error {
                    log.error
                        .get_or_insert(format!("provider sent an error event mid-stream: {err}"));
                }
            }
            if capture_limit.is_some() {
                log.response_body = Some(String::from_utf8_lossy(&captured).into_owned());
            }
            if client_gone {
                log.error = Some(format!(
                    "client disconnected after {} response bytes",
                    log.response_bytes
                ));
            }
            if let Some(e) = &upstream_error {
                log.error = Some(format!("upstream response broke off: {e}"));
            }
            log.duration_ms = ms(started.elapsed());
            if !self.write_audit(log).await {
                // No answer completes without its audit row: the client sees
                // a broken response (and retries) instead of a clean one.
                let _ = tx
                    .send(Err(
                        "promptwall could not write the audit row; see the agent's log".into()
                    ))
                    .await;
                return;
            }
            if !client_gone {
                if !tail.is_empty() {
                    let _ = tx.send(Ok(Frame::data(tail))).await;
                }
                if let Some(e) = upstream_error {
                    match sse_error {
                        Some(shape) => {
                            let msg = format!("promptwall: the provider's stream broke off ({e}); retry the request");
                            let _ = tx.send(Ok(Frame::data(inspect::sse_error_event(shape, &msg)))).await;
                        }
                        None => {
                            let _ = tx.send(Err(format!("upstream response broke off: {e}").into())).await;
                        }
                    }
                }
            }
        });
        ChannelBody { rx }.boxed()
    }

    async fn websocket(
        self: Arc<Self>,
        _conn: Arc<ConnContext>,
        mut req: Request<Incoming>,
        route: Route,
        mut log: RequestLog,
        started: Instant,
        error_shape: ApiShape,
    ) -> Response<ProxyBody> {
        // Responses over WebSocket: api.openai.com/v1/responses (API key) and
        // chatgpt.com/backend-api/codex/responses (ChatGPT sign-in).
        if inspect::classify(&http::Method::POST, req.uri().path().trim_end_matches('/')) == ApiShape::OPENAI_RESPONSES
        {
            log.shape = ApiShape::OPENAI_RESPONSES.as_str().into();
            log.llm = true;
            log.status = 101;
            let mut ticket = crate::admission::Ticket::default();
            if let Err(busy) = self.admission.admit(&mut ticket) {
                return self.busy(log, started, error_shape, busy).await;
            }
            let session = Box::new(
                self.inspector
                    .websocket_session(log.clone(), self.audit.clone())
                    .holding(ticket),
            );
            return match crate::websocket::relay(
                &self.upstream,
                req,
                route.uri.clone(),
                &route.host,
                session,
                self.config.limits.max_request_bytes,
            )
            .await
            {
                Ok(resp) => resp,
                Err(crate::websocket::WsError::Refused(resp)) => {
                    // The provider said no (e.g. 426): pass its answer on so the
                    // client falls back to HTTP + SSE exactly as it would direct.
                    let (parts, body) = resp.into_parts();
                    log.status = parts.status.as_u16();
                    log.verdict = "allowed".into();
                    log.duration_ms = ms(started.elapsed());
                    self.write_audit(log).await;
                    let mut out = Response::from_parts(parts, body::full(body.unwrap_or_default()));
                    strip_hop_by_hop(out.headers_mut());
                    out
                }
                Err(e) => {
                    let msg = format!("promptwall: {e}; retry (clients fall back to HTTP streaming)");
                    self.finish_local(log, started, error_shape, StatusCode::BAD_GATEWAY, &msg)
                        .await
                }
            };
        }
        let path = req.uri().path();
        if !self
            .config
            .limits
            .websocket_passthrough_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            // A WebSocket we cannot inspect (Chat/Messages, Realtime, an API
            // we do not know yet) is refused, never passed through: the
            // client then falls back to HTTP, which we inspect.
            let msg = "promptwall: WebSocket transport for this API is not inspected; use HTTP streaming (clients fall back automatically), \
                       or list the path in [limits] websocket_passthrough_paths to relay it uninspected";
            log.verdict = "error".into();
            return self
                .finish_local(log, started, error_shape, StatusCode::UPGRADE_REQUIRED, msg)
                .await;
        }
        // Upgrades the operator chose to pass through are relayed as bytes.
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(up) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, up.clone());
        }
        let mut upstream_req = Request::builder().method(parts.method).uri(route.uri.clone());
        *upstream_req.headers_mut().expect("valid builder") = headers;
        let upstream_req = upstream_req.body(body::empty()).expect("valid request");
        let mut resp = match self.upstream.client.request(upstream_req).await {
            Ok(r) => r,
            Err(e) => {
                let detail = error_chain(&e);
                log.error = Some(format!("upstream {} unreachable: {detail}", route.host));
                let msg = format!(
                    "promptwall: cannot reach the provider at {} ({detail}); retry",
                    route.host
                );
                return self
                    .finish_local(log, started, error_shape, StatusCode::BAD_GATEWAY, &msg)
                    .await;
            }
        };
        log.status = resp.status().as_u16();
        log.ttfb_ms = Some(ms(started.elapsed()));
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            log.duration_ms = ms(started.elapsed());
            let (p, b) = resp.into_parts();
            let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            self.write_audit(log).await;
            return Response::from_parts(p, body::full(bytes));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let this = self.clone();
        tokio::spawn(async move {
            if let (Ok(client), Ok(server)) = (client_upgrade.await, upstream_upgrade.await) {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut server = hyper_util::rt::TokioIo::new(server);
                if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    log.request_bytes = up;
                    log.response_bytes = down;
                }
            }
            log.duration_ms = ms(started.elapsed());
            this.write_audit(log).await;
        });
        let mut out = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        out.body(body::empty()).expect("valid response")
    }

    fn route(&self, conn: &ConnContext, req: &Request<Incoming>) -> Result<Route, String> {
        let path_and_query = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        // Transparent (and explicit TLS): the host is the TLS server name.
        if let Some(name) = conn.server_name.as_deref() {
            let provider = self.config.provider_for_host(name).cloned().ok_or_else(|| {
                format!("promptwall: {name} is not a configured provider host; add it to [[providers]] hosts")
            })?;
            let port = conn
                .origin
                .as_ref()
                .map(|o| o.original_dst.port())
                .filter(|p| *p != 443);
            let authority = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.to_string(),
            };
            let uri = format!("https://{authority}{path_and_query}")
                .parse::<Uri>()
                .map_err(|e| e.to_string())?;
            return Ok(Route {
                provider,
                uri,
                host: name.to_string(),
                path: req.uri().path().to_string(),
            });
        }
        // Explicit base-URL mode: `/<provider>/...` prefix, then headers, then paths.
        let path = req.uri().path();
        let mut chosen: Option<(&ProviderConfig, &str)> = None;
        for p in &self.config.providers {
            let prefix = format!("/{}/", p.name);
            if path.starts_with(&prefix) {
                chosen = Some((p, &path_and_query[prefix.len() - 1..]));
                break;
            }
        }
        if chosen.is_none() && req.headers().contains_key("anthropic-version") {
            chosen = self
                .config
                .providers
                .iter()
                .find(|p| p.name == "anthropic")
                .map(|p| (p, path_and_query));
        }
        if chosen.is_none() {
            chosen = self
                .config
                .providers
                .iter()
                .find(|p| p.paths.iter().any(|prefix| path.starts_with(prefix.as_str())))
                .map(|p| (p, path_and_query));
        }
        let (provider, rest) = chosen.ok_or_else(|| {
            format!(
                "promptwall: no provider serves path {path}; use a provider's API path or prefix it with /<provider>/"
            )
        })?;
        let base: Uri = provider
            .upstream
            .parse()
            .map_err(|e| format!("provider {} upstream is not a URI: {e}", provider.name))?;
        let host = base.host().unwrap_or_default().to_string();
        let base_str = provider.upstream.trim_end_matches('/');
        let uri = format!("{base_str}{rest}").parse::<Uri>().map_err(|e| e.to_string())?;
        let path = uri.path().to_string();
        Ok(Route {
            provider: provider.clone(),
            uri,
            host,
            path,
        })
    }

    /// 503 before anything leaves, while the audit store refuses rows.
    async fn refuse_unaudited(&self, log: RequestLog, started: Instant, shape: ApiShape) -> Response<ProxyBody> {
        let msg = "promptwall cannot write its audit log (see the agent's log: disk full or store unreachable; \
                   [audit] min_free_bytes), so nothing was sent to the provider; retry once the audit store is writable";
        self.finish_local(log, started, shape, StatusCode::SERVICE_UNAVAILABLE, msg)
            .await
    }

    /// Answers locally (error) and writes the audit row first.
    async fn finish_local(
        &self,
        mut log: RequestLog,
        started: Instant,
        shape: ApiShape,
        status: StatusCode,
        message: &str,
    ) -> Response<ProxyBody> {
        log.status = status.as_u16();
        if log.verdict == "allowed" {
            log.verdict = "error".into();
        }
        log.error.get_or_insert_with(|| message.to_string());
        log.duration_ms = ms(started.elapsed());
        self.write_audit(log).await;
        json_response(status, inspect::error_body(shape, status.as_u16(), message))
    }

    /// Whether the audit store refused its last row: then nothing new may
    /// reach a provider (it would leave unaudited). A refusal's own row is
    /// the probe that closes the gate again once the store recovers.
    fn audit_unhealthy(&self) -> bool {
        self.stats.audit_unhealthy.load(std::sync::atomic::Ordering::Relaxed) || self.audit_space.is_low()
    }

    /// 503 with Retry-After: a memory budget is exhausted (crate::admission).
    async fn busy(
        &self,
        log: RequestLog,
        started: Instant,
        shape: ApiShape,
        busy: crate::admission::Busy,
    ) -> Response<ProxyBody> {
        let msg = format!("promptwall: {busy}");
        let resp = self
            .finish_local(log, started, shape, StatusCode::SERVICE_UNAVAILABLE, &msg)
            .await;
        crate::admission::with_retry_after(resp)
    }

    /// Commits the row; false (and logged, counted) if the store refused it.
    async fn write_audit(&self, log: RequestLog) -> bool {
        let result = (self.audit)(log).await;
        self.stats
            .audit_unhealthy
            .store(result.is_err(), std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(()) => true,
            Err(e) => {
                self.stats
                    .audit_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("audit row could not be written: {e}; check the audit store (disk space, permissions)");
                false
            }
        }
    }
}

/// The error envelope for a request refused before its path is classified.
fn envelope_guess(headers: &HeaderMap) -> ApiShape {
    if headers.contains_key("anthropic-version") {
        ApiShape::ANTHROPIC_MESSAGES
    } else {
        ApiShape::OPENAI_CHAT
    }
}

/// `req` with its path in canonical form (query untouched).
fn with_canonical_path(req: Request<Incoming>) -> Result<Request<Incoming>, promptwall_llm::path::PathError> {
    let canonical = promptwall_llm::path::normalize(req.uri().path())?;
    if canonical == req.uri().path() {
        return Ok(req);
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.into_owned(),
    };
    let (mut parts, body) = req.into_parts();
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| promptwall_llm::path::PathError::ForbiddenByte)?,
    );
    parts.uri = Uri::from_parts(uri).map_err(|_| promptwall_llm::path::PathError::ForbiddenByte)?;
    Ok(Request::from_parts(parts, body))
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-promptwall", "1")
        .body(body::full(body))
        .expect("static parts are valid")
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including any the
/// Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn capture(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes the request's audit row if the handler is dropped while it waits
/// for the provider: hyper drops it when the client hangs up before the
/// response starts, and the request may already be at the provider.
struct RowOnDrop {
    proxy: Arc<Proxy>,
    log: Option<RequestLog>,
    started: Instant,
}

impl Drop for RowOnDrop {
    fn drop(&mut self) {
        let Some(mut log) = self.log.take() else { return };
        log.status = 499; // nginx's "client closed request"
        log.error = Some("client disconnected before the provider answered".into());
        log.duration_ms = ms(self.started.elapsed());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let proxy = self.proxy.clone();
            rt.spawn(async move { proxy.write_audit(log).await });
        }
    }
}

/// A response body fed by the relay task.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
