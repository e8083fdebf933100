//! Dispatch: the request goes to the chosen upstream, and the stage waits
//! (bounded) for its response head. Retries and failover across a route's
//! upstreams (issue: routing and failover) belong here.

use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::translate::Attempt;
use super::{error_chain, Refusal, Stage};
use crate::body::ProxyBody;
use crate::exchange::{AttemptRecord, Exchange, RouteRecord, Target};
use crate::routing::cooldown::asked_wait;
use crate::routing::Router;
use crate::upstream::Upstream;

pub struct Dispatch<'a> {
    pub upstream: &'a Upstream,
    pub router: &'a Router,
    pub response_timeout: Duration,
    /// False while the audit store refuses rows or its disk is nearly full:
    /// then nothing leaves (read as late as possible, just before sending).
    pub audit_ready: bool,
}

/// The request as it leaves for the provider.
pub struct Outbound {
    pub method: Method,
    /// The client's headers (hop-by-hop and `Host` are dropped here).
    pub headers: HeaderMap,
    pub body: Sending,
}

pub enum Sending {
    /// Not inspected (bodiless or a read-only path): relayed as it arrives,
    /// to where the client addressed it, once.
    Streamed(Target, ProxyBody),
    /// Inspected: the translate stage's attempts, tried in order. The
    /// answer is restored and read, so it is asked for uncompressed.
    Attempts(Vec<Attempt>),
}

/// An upstream answer that sends a routed request to its next candidate
/// (when there is one): rate limited, overloaded, or failing.
fn moves_on(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504 | 529)
}

impl Stage for Dispatch<'_> {
    type Input = Outbound;
    type Output = Response<ProxyBody>;

    async fn run(&self, ex: &mut Exchange, out: Outbound) -> Result<Response<ProxyBody>, Refusal> {
        if !self.audit_ready {
            return Err(Refusal::audit_unavailable());
        }
        let attempts = match out.body {
            Sending::Streamed(target, body) => {
                let mut headers = out.headers;
                prepare_headers(&mut headers, false);
                return self
                    .send(ex, &target, out.method, headers, body, self.response_timeout)
                    .await
                    .map_err(|(_, refusal)| refusal);
            }
            Sending::Attempts(a) => a,
        };
        let started = Instant::now();
        let budget = self.router.attempt_budget;
        let limit = (self.router.max_attempts as usize).max(1);
        let total = attempts.len().min(limit);
        let mut last: Option<Refusal> = None;
        let mut tried: Vec<String> = Vec::new();
        for (i, a) in attempts.into_iter().take(total).enumerate() {
            if i > 0 && started.elapsed() >= budget {
                break;
            }
            if let Some(answer) = &a.local_answer {
                record(ex, &a, 200, Duration::ZERO, "answered locally".into());
                answered_by(ex, &a);
                ex.status = 200;
                return Ok(Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(crate::body::full(answer.clone()))
                    .expect("static parts are valid"));
            }
            let mut headers = a.headers.clone().unwrap_or_else(|| out.headers.clone());
            prepare_headers(&mut headers, true);
            // Least-used counts this attempt until its answer ends.
            let in_flight = a.candidate.as_ref().map(|(route, c)| self.router.in_flight(route, c));
            let at = Instant::now();
            let sent = self
                .send(
                    ex,
                    &a.target,
                    out.method.clone(),
                    headers,
                    crate::body::full(a.body.clone()),
                    self.response_timeout,
                )
                .await;
            if !a.routed {
                return sent.map_err(|(_, refusal)| refusal);
            }
            let took = at.elapsed();
            tried.push(a.label.clone());
            let next_possible = i + 1 < total && started.elapsed() < budget;
            match sent {
                Ok(resp) if moves_on(resp.status()) && next_possible => {
                    let asked = asked_wait(resp.headers(), self.router.cooldowns.clock().wall());
                    let why = self.cool(&a, asked);
                    let status = resp.status().as_u16();
                    record(ex, &a, status, took, format!("next: {status} {why}"));
                    ex.ttfb = None;
                }
                Ok(resp) => {
                    if moves_on(resp.status()) {
                        let asked = asked_wait(resp.headers(), self.router.cooldowns.clock().wall());
                        self.cool(&a, asked);
                    } else if a.cools_down {
                        self.router.cooldowns.succeeded(&a.label);
                    }
                    record(ex, &a, resp.status().as_u16(), took, "answered".into());
                    answered_by(ex, &a);
                    return Ok(resp.map(|body| match in_flight {
                        Some(guard) => body
                            .map_frame(move |frame| {
                                let _held = &guard;
                                frame
                            })
                            .boxed(),
                        None => body,
                    }));
                }
                // Never sent: the next candidate may take it.
                Err((Failure::Connect, refusal)) => {
                    let why = self.cool(&a, None);
                    let detail = ex.error.take().unwrap_or_default();
                    record(ex, &a, 0, took, format!("{detail} {why}"));
                    ex.target = Some(a.target.clone());
                    last = Some(refusal);
                    if !next_possible {
                        break;
                    }
                }
                // Sent, and maybe being answered (a slow completion, a
                // connection lost midway): another try could run and bill
                // it twice, so the client decides.
                Err((Failure::AfterSending, refusal)) => {
                    let detail = ex.error.clone().unwrap_or_default();
                    record(ex, &a, 0, took, detail);
                    ex.target = Some(a.target.clone());
                    return Err(refusal);
                }
            }
        }
        let mut refusal = last.unwrap_or_else(|| {
            Refusal::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "promptwall: the route's upstreams did not answer within [routing] attempt_budget_secs = {} s; retry later",
                    budget.as_secs()
                ),
            )
        });
        ex.error = Some(format!(
            "every attempt failed: {}",
            ex.routing
                .as_ref()
                .map(|r| r
                    .attempts
                    .iter()
                    .map(|a| format!("{} {}", a.upstream, a.outcome))
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        ));
        // Every candidate tried failed: the client may come back when the
        // first of them is out of its cooldown.
        refusal.retry_after = tried
            .iter()
            .filter_map(|label| self.router.cooldowns.remaining(label))
            .min()
            .map(|d| d.as_secs().max(1));
        Err(refusal)
    }
}

/// How a send failed, for whether another candidate may take the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection: nothing reached the provider.
    Connect,
    /// The request may have reached the provider (timeout waiting for the
    /// head, connection lost after sending).
    AfterSending,
}

impl Dispatch<'_> {
    /// Sends one request and waits (bounded) for its response head.
    async fn send(
        &self,
        ex: &mut Exchange,
        target: &Target,
        method: Method,
        headers: HeaderMap,
        body: ProxyBody,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, (Failure, Refusal)> {
        let mut req = Request::builder().method(method).uri(target.uri.clone());
        *req.headers_mut().expect("builder has no error yet") = headers;
        let req = req.body(body).expect("method, uri and headers are valid");
        ex.dispatched = true;
        let sent = std::time::Instant::now();
        let client = self.upstream.client_for(target.dial);
        let answer = tokio::time::timeout(timeout, client.request(req)).await;
        ex.upstream_wait += sent.elapsed();
        match answer {
            Ok(Ok(resp)) => {
                ex.ttfb = Some(ex.started.elapsed());
                ex.status = resp.status().as_u16();
                Ok(resp.map(|b: Incoming| b.map_err(Into::into).boxed()))
            }
            Ok(Err(e)) => {
                let failure = if e.is_connect() {
                    Failure::Connect
                } else {
                    Failure::AfterSending
                };
                let detail = error_chain(&e);
                ex.error = Some(format!("upstream {} unreachable: {detail}", target.host));
                Err((
                    failure,
                    Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "promptwall: cannot reach the provider at {} ({detail}); check the network or [upstream] settings and retry",
                        target.host
                    ),
                    ),
                ))
            }
            Err(_) => {
                let secs = timeout.as_secs();
                ex.error = Some(format!("upstream {} sent no response within {secs} s", target.host));
                Err((
                    Failure::AfterSending,
                    Refusal::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "promptwall: the provider at {} did not answer within {secs} s; retry later",
                            target.host
                        ),
                    ),
                ))
            }
        }
    }

    /// Cools `a` down (if it cools at all); says for how long, for the row.
    fn cool(&self, a: &Attempt, asked: Option<Duration>) -> String {
        if !a.cools_down {
            return String::new();
        }
        let wait = self.router.cooldowns.failed(&a.label, asked);
        format!("(cooling {} s)", wait.as_secs())
    }
}

fn record(ex: &mut Exchange, a: &Attempt, status: u16, took: Duration, outcome: String) {
    let rec = ex.routing.get_or_insert_with(RouteRecord::default);
    rec.attempts.push(AttemptRecord {
        upstream: a.label.clone(),
        model: a.model.clone(),
        status,
        duration: took,
        outcome: outcome.trim().to_string(),
    });
}

/// The row says who answered, and the respond stage translates back when
/// the answering upstream speaks another shape.
fn answered_by(ex: &mut Exchange, a: &Attempt) {
    let client = ex.shape();
    ex.target = Some(a.target.clone());
    let rec = ex.routing.get_or_insert_with(RouteRecord::default);
    rec.upstream = a.label.clone();
    rec.price_provider = match a.candidate.as_ref().map(|(_, c)| &c.destination) {
        Some(crate::routing::Destination::Upstream { upstream, .. }) => Some(upstream.kind.price_family().to_string()),
        _ => None,
    };
    rec.upstream_model = a.model.clone().or_else(|| rec.requested_model.clone());
    rec.translation = (a.shape != client).then_some((client, a.shape));
}

/// The client's headers as the upstream gets them.
pub fn prepare_headers(headers: &mut HeaderMap, inspected: bool) {
    crate::headers::strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    if inspected {
        // Placeholders are restored and usage read from the answer.
        headers.remove(header::ACCEPT_ENCODING);
        // The body may have changed length (placeholders, decoding).
        headers.remove(header::CONTENT_LENGTH);
        // The body is already here: nothing left to wait for upstream.
        headers.remove(header::EXPECT);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use promptwall_llm::ApiShape;

    use super::*;
    use crate::config::Config;
    use crate::exchange::{Client, Listener};
    use crate::routing::cooldown::tests::ManualClock;
    use crate::routing::RoutingConfig;

    #[test]
    fn an_inspected_request_asks_for_an_uncompressed_answer_and_sends_its_own_length() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("accept-encoding", "gzip"),
            ("content-length", "10"),
            ("expect", "100-continue"),
            ("host", "api.openai.com"),
            ("authorization", "Bearer k"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let mut streamed = h.clone();
        prepare_headers(&mut h, true);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["authorization"]);
        prepare_headers(&mut streamed, false);
        assert!(streamed.contains_key("accept-encoding") && streamed.contains_key("content-length"));
        assert!(!streamed.contains_key("host"));
    }

    fn stage<'a>(upstream: &'a Upstream, router: &'a Router, response_timeout: Duration) -> Dispatch<'a> {
        Dispatch {
            upstream,
            router,
            response_timeout,
            audit_ready: true,
        }
    }

    fn router() -> (Router, Arc<ManualClock>) {
        let clock = ManualClock::new();
        (
            Router::compile(&RoutingConfig::default(), clock.clone()).unwrap(),
            clock,
        )
    }

    fn target(port: u16) -> Target {
        Target {
            provider: "openai".into(),
            uri: format!("http://127.0.0.1:{port}/v1/chat/completions").parse().unwrap(),
            host: "127.0.0.1".into(),
            dial: None,
        }
    }

    fn attempt(label: &str, port: u16, routed: bool) -> Attempt {
        Attempt {
            label: label.into(),
            routed,
            cools_down: routed,
            target: target(port),
            shape: ApiShape::OPENAI_CHAT,
            model: None,
            body: Bytes::from_static(b"{}"),
            headers: None,
            local_answer: None,
            candidate: None,
        }
    }

    fn outbound(attempts: Vec<Attempt>) -> Outbound {
        Outbound {
            method: Method::POST,
            headers: HeaderMap::new(),
            body: Sending::Attempts(attempts),
        }
    }

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A local server answering each request with the next of `answers`
    /// (status, Retry-After), counting requests.
    async fn server(answers: Vec<(u16, Option<&'static str>)>) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = hits.clone();
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        let (status, retry) = answers[n.min(answers.len() - 1)];
                        async move {
                            let mut r = Response::builder().status(status);
                            if let Some(v) = retry {
                                r = r.header("retry-after", v);
                            }
                            Ok::<_, std::convert::Infallible>(r.body(crate::body::full("{}")).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_502_that_names_it() {
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, _) = router();
        let stage = stage(&upstream, &router, Duration::from_secs(5));
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let refusal = stage
            .run(&mut ex, outbound(vec![attempt("", closed_port(), false)]))
            .await
            .expect_err("unreachable");
        assert_eq!(refusal.status, StatusCode::BAD_GATEWAY);
        assert!(refusal.message.contains("127.0.0.1"), "{}", refusal.message);
        assert!(ex.error.unwrap().contains("unreachable"));
        assert!(ex.dispatched);
    }

    #[tokio::test]
    async fn nothing_is_sent_while_the_audit_store_refuses_rows() {
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, _) = router();
        let stage = Dispatch {
            upstream: &upstream,
            router: &router,
            response_timeout: Duration::from_secs(5),
            audit_ready: false,
        };
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let refusal = stage
            .run(&mut ex, outbound(vec![attempt("", 9, false)]))
            .await
            .expect_err("refused");
        assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!ex.dispatched);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_moves_to_the_next_account_and_cools_the_first_for_that_long() {
        let (first, first_hits) = server(vec![(429, Some("30"))]).await;
        let (second, second_hits) = server(vec![(200, None)]).await;
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, clock) = router();
        let stage = stage(&upstream, &router, Duration::from_secs(5));
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let resp = stage
            .run(
                &mut ex,
                outbound(vec![attempt("up/a", first, true), attempt("up/b", second, true)]),
            )
            .await
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            (first_hits.load(Ordering::SeqCst), second_hits.load(Ordering::SeqCst)),
            (1, 1)
        );
        assert_eq!(router.cooldowns.remaining("up/a"), Some(Duration::from_secs(30)));
        assert_eq!(router.cooldowns.remaining("up/b"), None);
        let rec = ex.routing.unwrap();
        assert_eq!(rec.upstream, "up/b");
        let statuses: Vec<u16> = rec.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [429, 200]);
        assert!(
            rec.attempts[0].outcome.contains("cooling 30 s"),
            "{:?}",
            rec.attempts[0]
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(router.cooldowns.remaining("up/a"), None);
    }

    #[tokio::test]
    async fn a_connect_failure_moves_on_and_the_last_candidates_own_error_reaches_the_client() {
        let (busy, _) = server(vec![(529, None)]).await;
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, _) = router();
        let stage = stage(&upstream, &router, Duration::from_secs(5));
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let resp = stage
            .run(
                &mut ex,
                outbound(vec![attempt("up/a", closed_port(), true), attempt("up/b", busy, true)]),
            )
            .await
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(resp.status().as_u16(), 529, "the last answer is the provider's own");
        assert_eq!(router.cooldowns.remaining("up/a"), Some(Duration::from_secs(15)));
        assert_eq!(router.cooldowns.remaining("up/b"), Some(Duration::from_secs(15)));
        assert_eq!(ex.routing.unwrap().attempts.len(), 2);
    }

    #[tokio::test]
    async fn a_request_no_rule_routed_is_sent_once_even_when_the_provider_is_rate_limited() {
        let (limited, hits) = server(vec![(429, Some("1"))]).await;
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, _) = router();
        let stage = stage(&upstream, &router, Duration::from_secs(5));
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let resp = stage
            .run(&mut ex, outbound(vec![attempt("", limited, false)]))
            .await
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(ex.routing.is_none());
    }

    #[tokio::test]
    async fn a_provider_slow_to_answer_is_not_asked_again_elsewhere_and_not_cooled_down() {
        // Accepts and reads, never answers: the request may be running there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slow = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let (fast, fast_hits) = server(vec![(200, None)]).await;
        let upstream = Upstream::new(&Config::default()).unwrap();
        let (router, _) = router();
        let stage = stage(&upstream, &router, Duration::from_secs(1));
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let refusal = stage
            .run(
                &mut ex,
                outbound(vec![attempt("up/slow", slow, true), attempt("up/fast", fast, true)]),
            )
            .await
            .expect_err("the slow one's timeout is the answer");
        assert_eq!(refusal.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            fast_hits.load(Ordering::SeqCst),
            0,
            "a second provider would bill it twice"
        );
        assert_eq!(router.cooldowns.remaining("up/slow"), None);
    }
}
