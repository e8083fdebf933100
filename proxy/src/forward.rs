//! The driver of the request path shared by the explicit and the
//! transparent listener: it runs the stages of [`crate::stages`] in their
//! fixed order over one [`Exchange`], answers a stage's refusal in the
//! client's error envelope, and commits the exchange's audit row through the
//! one [`Recorder`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use promptwall_llm::ApiShape;
use tracing::Instrument;

use crate::audit_sink::Recorder;
use crate::body::{self, ProxyBody};
use crate::config::Config;
pub use crate::exchange::Listener;
use crate::exchange::{Client, ConnContext, Exchange};
use crate::pipeline::Inspector;
use crate::stages::admit::Admit;
use crate::stages::budget::Budget;
use crate::stages::dispatch::{Dispatch, Outbound, Sending};
use crate::stages::inspect::Inspect;
use crate::stages::read::{Read, RequestBody};
use crate::stages::respond::Respond;
use crate::stages::route::{Route, Routing};
use crate::stages::translate::Translate;
use crate::stages::upgrade::{Upgrade, Upgraded};
use crate::stages::{Refusal, Stage};
use crate::upstream::Upstream;

/// Everything shared by all requests.
pub struct Proxy {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    /// The one way rows are committed (HTTP, spliced, refused, WebSocket).
    pub recorder: Recorder,
    pub inspector: Arc<Inspector>,
    /// The API shapes requests are classified into (the builtin registry,
    /// plus any the embedder registers).
    pub shapes: promptwall_llm::Shapes,
    pub stats: crate::stats::Stats,
    /// Memory budgets of inspected exchanges.
    pub admission: crate::admission::Admission,
    /// Response header carrying the exchange's request id (None: not sent).
    pub request_id_header: Option<HeaderName>,
    /// `[routing]`: where requests go, and upstreams' cooldowns.
    pub router: Arc<crate::routing::Router>,
    /// `[quota]`: limits by identity and their counters.
    pub quota: crate::quota::Quota,
    /// The price table cost limits read (the audit's, with `[audit]
    /// price_table`).
    pub prices: Arc<promptwall_audit::PriceTable>,
    /// This machine's id, for limits per machine.
    pub machine_id: String,
    /// Tokens the explicit listener accepts; the agent refreshes it from
    /// the store.
    pub tokens: std::sync::RwLock<crate::tokens::TokenTable>,
}

/// What the stages produced, for the driver to finish.
enum Outcome {
    /// An answer streams back; the relay commits the row before its end.
    Relay(
        Box<crate::stages::respond::Relay<ProxyBody>>,
        Option<crate::admission::Ticket>,
    ),
    Upgraded(Upgraded),
}

impl Proxy {
    /// One request, start to end.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnContext>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        self.stats.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ex = Exchange::new(
            conn.listener,
            Client::from_origin(conn.origin.as_ref(), conn.identity.as_ref()),
        );
        let span =
            tracing::info_span!("exchange", request_id = %ex.id, method = %req.method(), path = %req.uri().path());
        let id = ex.id.clone();
        let mut resp = self.clone().drive(conn, ex, req).instrument(span).await;
        if let Some(name) = &self.request_id_header {
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                resp.headers_mut().insert(name.clone(), value);
            }
        }
        Ok(resp)
    }

    async fn drive(
        self: Arc<Self>,
        conn: Arc<ConnContext>,
        ex: Exchange,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        // Before classification, the error envelope is a guess from headers.
        let fallback = envelope_guess(req.headers());
        let mut row = PendingRow {
            recorder: self.recorder.clone(),
            ex: Some(ex),
        };
        let outcome = self.run_stages(&conn, row.exchange(), req).await;
        let mut ex = row.take();
        match outcome {
            Err(refusal) => self.refuse(ex, refusal, fallback).await,
            Ok(Outcome::Relay(relay, ticket)) => {
                let capture = self
                    .config
                    .audit
                    .capture_bodies
                    .then_some(self.config.audit.capture_max_bytes);
                let resp = relay.start(ex, self.recorder.clone(), self.inspector.clone(), capture);
                match ticket {
                    Some(ticket) => resp.map(|b| ticket.hold(b)),
                    None => resp,
                }
            }
            Ok(Outcome::Upgraded(Upgraded::Inspected(resp))) => resp,
            Ok(Outcome::Upgraded(Upgraded::Declined(resp))) => {
                ex.duration = Some(ex.started.elapsed());
                let envelope = error_envelope(&ex, fallback);
                // The answer is the provider's own; the row is still written
                // first, and an unwritable row turns it into a 503.
                match self.recorder.commit(ex).await {
                    Ok(()) => resp,
                    Err(_) => unaudited(envelope),
                }
            }
            Ok(Outcome::Upgraded(Upgraded::Passthrough { response, relay })) => {
                // Committed before the relay starts (like a splice): the row
                // has the handshake, not the session's byte counts.
                ex.duration = Some(ex.started.elapsed());
                let envelope = error_envelope(&ex, fallback);
                match self.recorder.commit(ex).await {
                    Ok(()) => {
                        tokio::spawn(relay.in_current_span());
                        response
                    }
                    Err(_) => unaudited(envelope),
                }
            }
        }
    }

    /// admit → read → inspect → route → translate → dispatch → respond.
    async fn run_stages(
        &self,
        conn: &ConnContext,
        ex: &mut Exchange,
        req: Request<Incoming>,
    ) -> Result<Outcome, Refusal> {
        let (mut parts, incoming) = req.into_parts();
        let admit = Admit {
            config: &self.config,
            tokens: &self.tokens,
            shapes: &self.shapes,
            conn,
        };
        let admitted = admit.run(ex, &mut parts).await?;
        if crate::headers::is_websocket_upgrade(&parts.headers) {
            // A WebSocket's model is only known per message: not routed.
            let Routing::Direct(target) = self.route().run(ex, (admitted.target, None)).await? else {
                unreachable!("a request without a body is never planned")
            };
            let ws_shape = self.shapes.classify(parts.method.as_str(), parts.uri.path());
            self.decline_websocket_if_routed(ex, ws_shape)?;
            let upgrade = Upgrade {
                shapes: &self.shapes,
                upstream: &self.upstream,
                limits: &self.config.limits,
                admission: &self.admission,
                inspector: &self.inspector,
                recorder: &self.recorder,
                quota: &self.quota,
                prices: &self.prices,
                machine_id: &self.machine_id,
            };
            let req = Request::from_parts(parts, incoming);
            return Ok(Outcome::Upgraded(upgrade.run(ex, (req, target)).await?));
        }
        let mut headers = std::mem::take(&mut parts.headers);
        let body = Read::new(&self.config.limits, &self.admission)
            .run(ex, (&parts.method, parts.uri.path(), &mut headers, incoming))
            .await?;
        let capture = self
            .config
            .audit
            .capture_bodies
            .then_some(self.config.audit.capture_max_bytes);
        let inspected = match body {
            RequestBody::Whole { bytes, ticket } => {
                let inspect = Inspect {
                    inspector: &self.inspector,
                    capture,
                };
                Ok((inspect.run(ex, (bytes, &headers)).await?, ticket))
            }
            RequestBody::Streamed(body) => Err(body),
        };
        let inspected_body = inspected.as_ref().ok().map(|(i, _)| i.body.clone());
        let routing = self.route().run(ex, (admitted.target, inspected_body.clone())).await?;
        let budget = Budget {
            quota: &self.quota,
            prices: &self.prices,
            machine: &self.machine_id,
        };
        let metered = budget.run(ex, inspected_body.as_ref().map(|b| (&routing, b))).await?;
        let (sending, response_stage, ticket) = match (inspected, routing) {
            (Ok((inspected, ticket)), routing) => {
                let attempts = Translate.run(ex, (routing, inspected.body, headers.clone())).await?;
                (Sending::Attempts(attempts), Some(inspected.response), Some(ticket))
            }
            // Not inspected (read-only or bodiless): relayed as it arrives.
            (Err(streamed), Routing::Direct(target)) => (Sending::Streamed(target, streamed), None, None),
            (Err(_), Routing::Planned { .. }) => unreachable!("an uninspected body is never planned"),
        };
        let dispatch = Dispatch {
            upstream: &self.upstream,
            router: &self.router,
            response_timeout: Duration::from_secs(self.config.limits.upstream_response_timeout_secs.max(1)),
            audit_ready: !self.recorder.is_unhealthy(),
        };
        let outbound = Outbound {
            method: parts.method,
            headers,
            body: sending,
        };
        let resp = dispatch.run(ex, outbound).await?;
        let relay = Respond::default()
            .run(ex, (resp, response_stage))
            .await?
            .metered(metered);
        Ok(Outcome::Relay(Box::new(relay), ticket))
    }

    /// Routes apply per request, and a WebSocket carries many: while a
    /// rule may apply to this client, its upgrade is declined (426), and
    /// Codex falls back to HTTP, where each request is routed.
    fn decline_websocket_if_routed(&self, ex: &mut Exchange, shape: ApiShape) -> Result<(), Refusal> {
        let identity = ex.client.identity.as_ref();
        let query = crate::routing::RouteQuery {
            listener: ex.listener.as_str(),
            shape: Some(shape),
            tool: &ex.client.tool,
            user: identity.and_then(|i| i.user.as_deref()),
            executable: identity.and_then(|i| i.exe.as_deref()),
            ..Default::default()
        };
        let Some(route) = self.router.may_route(&query) else {
            return Ok(());
        };
        ex.error = Some(format!(
            "WebSocket declined: route {route} may apply; the client falls back to HTTP"
        ));
        Err(Refusal::new(
            StatusCode::UPGRADE_REQUIRED,
            format!("promptwall: route {route:?} applies to this client, so use HTTP streaming instead of a WebSocket"),
        ))
    }

    fn route(&self) -> Route<'_> {
        Route { router: &self.router }
    }

    /// Answers a refusal locally, in the client's envelope, after its row.
    async fn refuse(&self, mut ex: Exchange, refusal: Refusal, fallback: ApiShape) -> Response<ProxyBody> {
        ex.fail(refusal.status, &refusal.message);
        let envelope = error_envelope(&ex, fallback);
        ex.duration = Some(ex.started.elapsed());
        // A refusal's row is also the probe that reopens the audit gate.
        if let Err(e) = self.recorder.commit(ex).await {
            tracing::warn!("a refusal's audit row failed too: {e}");
        }
        let body = refusal
            .body
            .unwrap_or_else(|| crate::inspect::error_body(envelope, refusal.status.as_u16(), &refusal.message));
        let mut resp = json_response(refusal.status, body);
        for (name, value) in refusal.headers {
            resp.headers_mut().insert(name, value);
        }
        match refusal.retry_after {
            Some(secs) => crate::admission::with_retry_after(resp, secs),
            None => resp,
        }
    }
}

/// 503 for an exchange whose row could not be committed (the store's
/// error is in the agent's log, not in the answer).
fn unaudited(envelope: ApiShape) -> Response<ProxyBody> {
    let msg = "promptwall could not write the audit row for this exchange, so nothing was relayed; \
               see the agent's log (disk full? audit store unreachable?) and retry";
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::inspect::error_body(envelope, 503, msg),
    )
}

/// The envelope a refused client expects: its shape's, the addressed
/// provider's family's, or a guess from its headers before either is known.
fn error_envelope(ex: &Exchange, fallback: ApiShape) -> ApiShape {
    // A routed exchange's target is the upstream's, whose name says nothing
    // of the client: its own shape decides.
    if ex.routing.is_some() && ex.shape().is_llm() {
        return ex.shape();
    }
    let provider = ex.target.as_ref().map(|t| t.provider.as_str());
    if ex.shape().is_llm() || provider.is_some() {
        crate::inspect::error_shape(ex.shape(), provider)
    } else {
        fallback
    }
}

/// The error envelope for a request refused before its path is classified.
fn envelope_guess(headers: &HeaderMap) -> ApiShape {
    if headers.contains_key("anthropic-version") {
        ApiShape::ANTHROPIC_MESSAGES
    } else if headers.contains_key("x-goog-api-key") {
        // The google-genai SDKs' key header (Gemini's OpenAI-compatible
        // layer takes a bearer token).
        ApiShape::GEMINI_GENERATE
    } else {
        ApiShape::OPENAI_CHAT
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-promptwall", "1")
        .body(body::full(body))
        .expect("static parts are valid")
}

/// The exchange while the stages run. If the handler is dropped first
/// (hyper drops it when the client hangs up before the response starts,
/// and the request may already be at the provider), the row is still
/// written, as a 499 that says whether the request had left.
struct PendingRow {
    recorder: Recorder,
    ex: Option<Exchange>,
}

impl PendingRow {
    fn exchange(&mut self) -> &mut Exchange {
        self.ex.as_mut().expect("the exchange is only taken at the end")
    }

    fn take(&mut self) -> Exchange {
        self.ex.take().expect("the exchange is taken once")
    }
}

impl Drop for PendingRow {
    fn drop(&mut self) {
        let Some(mut ex) = self.ex.take() else { return };
        ex.status = 499; // nginx's "client closed request"
        ex.error = Some(if ex.dispatched {
            "client disconnected before the provider answered".into()
        } else {
            // Nothing left: the row must not suggest that data did.
            ex.verdict = crate::exchange::Verdict::Error;
            "client disconnected before the request was sent".into()
        });
        ex.duration = Some(ex.started.elapsed());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(self.recorder.commit(ex));
        }
    }
}
