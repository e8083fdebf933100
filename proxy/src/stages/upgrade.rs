//! Upgrade: a WebSocket request, after admit and route. The Responses API's
//! WebSocket transport is terminated on both sides and every message is
//! inspected ([`crate::ws_session`]); an upgrade the operator listed in
//! `[limits] websocket_passthrough_paths` is relayed as bytes; any other is
//! refused, so its client falls back to HTTP, which is inspected.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use promptwall_llm::ApiShape;

use super::{error_chain, Refusal, Stage};
use crate::admission::Admission;
use crate::audit_sink::Recorder;
use crate::body::{self, ProxyBody};
use crate::config::LimitsConfig;
use crate::exchange::{Exchange, Target, Traffic, Verdict};
use crate::pipeline::Inspector;
use crate::upstream::Upstream;

pub struct Upgrade<'a> {
    pub shapes: &'a promptwall_llm::Shapes,
    pub upstream: &'a Upstream,
    pub limits: &'a LimitsConfig,
    pub admission: &'a Admission,
    pub inspector: &'a Arc<Inspector>,
    pub recorder: &'a Recorder,
    /// `[quota]`, applied to each `response.create` of an inspected session.
    pub quota: &'a crate::quota::Quota,
    pub prices: &'a Arc<promptwall_audit::PriceTable>,
    pub machine_id: &'a str,
}

// The audit gate is checked here, before any WebSocket leaves (its
// messages are audited one by one once the session is up).

/// How the upgrade went.
pub enum Upgraded {
    /// Every message is inspected and audited on its own: the upgrade
    /// itself leaves no row.
    Inspected(Response<ProxyBody>),
    /// The provider declined (e.g. 426): its answer goes back as it is, so
    /// the client falls back to HTTP exactly as it would direct.
    Declined(Response<ProxyBody>),
    /// An uninspected byte relay: the driver commits the row, then starts
    /// `relay` and answers with `response`.
    Passthrough {
        response: Response<ProxyBody>,
        relay: BoxFuture<'static, ()>,
    },
}

impl<'a> Stage for Upgrade<'a> {
    type Input = (Request<Incoming>, Target);
    type Output = Upgraded;

    async fn run(&self, ex: &mut Exchange, (mut req, target): Self::Input) -> Result<Upgraded, Refusal> {
        if self.recorder.is_unhealthy() {
            return Err(Refusal::audit_unavailable());
        }
        // Responses over WebSocket: api.openai.com/v1/responses (API key) and
        // chatgpt.com/backend-api/codex/responses (ChatGPT sign-in).
        if crate::inspect::classify(self.shapes, &http::Method::POST, req.uri().path().trim_end_matches('/'))
            == ApiShape::OPENAI_RESPONSES
        {
            ex.traffic = Traffic::Api(ApiShape::OPENAI_RESPONSES);
            ex.status = 101;
            let mut ticket = crate::admission::Ticket::default();
            self.admission.admit(&mut ticket).map_err(Refusal::busy)?;
            let mut session =
                crate::ws_session::WsSession::new(self.inspector.clone(), ex.clone(), self.recorder.clone())
                    .holding(ticket);
            if !self.quota.is_empty() || ex.client.token.is_some() {
                session = session.metered(crate::ws_session::WsMeter {
                    quota: self.quota.clone(),
                    prices: self.prices.clone(),
                    machine_id: self.machine_id.to_string(),
                    target: target.clone(),
                });
            }
            return match crate::websocket::relay(
                self.upstream,
                req,
                target.uri.clone(),
                &target.host,
                Box::new(session),
                self.limits.max_request_bytes,
            )
            .await
            {
                Ok(resp) => Ok(Upgraded::Inspected(resp)),
                Err(crate::websocket::WsError::Refused(resp)) => {
                    let (parts, body) = resp.into_parts();
                    ex.status = parts.status.as_u16();
                    ex.verdict = Verdict::Allowed;
                    let mut out = Response::from_parts(parts, body::full(body.unwrap_or_default()));
                    crate::headers::strip_hop_by_hop(out.headers_mut());
                    Ok(Upgraded::Declined(out))
                }
                Err(e) => Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!("promptwall: {e}; retry (clients fall back to HTTP streaming)"),
                )),
            };
        }
        let path = req.uri().path();
        if !self
            .limits
            .websocket_passthrough_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            return Err(Refusal::new(
                StatusCode::UPGRADE_REQUIRED,
                "promptwall: WebSocket transport for this API is not inspected; use HTTP streaming (clients fall back automatically), \
                 or list the path in [limits] websocket_passthrough_paths to relay it uninspected",
            ));
        }
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let mut headers = parts.headers.clone();
        crate::headers::strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(up) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, up.clone());
        }
        let mut upstream_req = Request::builder().method(parts.method).uri(target.uri.clone());
        *upstream_req.headers_mut().expect("valid builder") = headers;
        let upstream_req = upstream_req.body(body::empty()).expect("valid request");
        let sent = std::time::Instant::now();
        let answer = self.upstream.client_for(target.dial).request(upstream_req).await;
        ex.upstream_wait += sent.elapsed();
        let mut resp = answer.map_err(|e| {
            let detail = error_chain(&e);
            ex.error = Some(format!("upstream {} unreachable: {detail}", target.host));
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "promptwall: cannot reach the provider at {} ({detail}); retry",
                    target.host
                ),
            )
        })?;
        ex.status = resp.status().as_u16();
        ex.ttfb = Some(ex.started.elapsed());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (p, b) = resp.into_parts();
            let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            return Ok(Upgraded::Declined(Response::from_parts(p, body::full(bytes))));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let host = target.host.clone();
        let relay = Box::pin(async move {
            if let (Ok(client), Ok(server)) = (client_upgrade.await, upstream_upgrade.await) {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut server = hyper_util::rt::TokioIo::new(server);
                if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    tracing::debug!(host, up, down, "WebSocket passthrough closed");
                }
            }
        });
        let mut out = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        Ok(Upgraded::Passthrough {
            response: out.body(body::empty()).expect("valid response"),
            relay,
        })
    }
}
