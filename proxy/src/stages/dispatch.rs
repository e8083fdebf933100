//! Dispatch: the request goes to the chosen upstream, and the stage waits
//! (bounded) for its response head. Retries and failover across a route's
//! upstreams (issue: routing and failover) belong here.

use std::time::Duration;

use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{error_chain, Refusal, Stage};
use crate::body::ProxyBody;
use crate::exchange::{Exchange, Target};
use crate::upstream::Upstream;

pub struct Dispatch<'a> {
    pub upstream: &'a Upstream,
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
    pub body: ProxyBody,
    /// The body was read and inspected: it is complete, and its answer is
    /// restored and read, so it is asked for uncompressed.
    pub inspected: bool,
}

impl Stage for Dispatch<'_> {
    type Input = (Target, Outbound);
    type Output = Response<Incoming>;

    async fn run(&self, ex: &mut Exchange, (target, out): Self::Input) -> Result<Response<Incoming>, Refusal> {
        if !self.audit_ready {
            return Err(Refusal::audit_unavailable());
        }
        let mut headers = out.headers;
        prepare_headers(&mut headers, out.inspected);
        let mut req = Request::builder().method(out.method).uri(target.uri.clone());
        *req.headers_mut().expect("builder has no error yet") = headers;
        let req = req.body(out.body).expect("method, uri and headers are valid");
        ex.dispatched = true;
        let answer = tokio::time::timeout(self.response_timeout, self.upstream.client.request(req)).await;
        match answer {
            Ok(Ok(resp)) => {
                ex.ttfb = Some(ex.started.elapsed());
                ex.status = resp.status().as_u16();
                Ok(resp)
            }
            Ok(Err(e)) => {
                let detail = error_chain(&e);
                ex.error = Some(format!("upstream {} unreachable: {detail}", target.host));
                Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "promptwall: cannot reach the provider at {} ({detail}); check the network or [upstream] settings and retry",
                        target.host
                    ),
                ))
            }
            Err(_) => {
                let secs = self.response_timeout.as_secs();
                ex.error = Some(format!("upstream {} sent no response within {secs} s", target.host));
                Err(Refusal::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "promptwall: the provider at {} did not answer within {secs} s; retry later",
                        target.host
                    ),
                ))
            }
        }
    }
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
    use super::*;
    use crate::config::Config;
    use crate::exchange::{Client, Listener};

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

    #[tokio::test]
    async fn an_unreachable_provider_is_a_502_that_names_it() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let upstream = Upstream::new(&Config::default()).unwrap();
        let stage = Dispatch {
            upstream: &upstream,
            response_timeout: Duration::from_secs(5),
            audit_ready: true,
        };
        let target = Target {
            provider: "openai".into(),
            uri: format!("http://127.0.0.1:{port}/v1/chat/completions").parse().unwrap(),
            host: "127.0.0.1".into(),
        };
        let out = Outbound {
            method: Method::POST,
            headers: HeaderMap::new(),
            body: crate::body::full("{}"),
            inspected: true,
        };
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let refusal = stage.run(&mut ex, (target, out)).await.expect_err("unreachable");
        assert_eq!(refusal.status, StatusCode::BAD_GATEWAY);
        assert!(refusal.message.contains("127.0.0.1"), "{}", refusal.message);
        assert!(ex.error.unwrap().contains("unreachable"));
        assert!(ex.dispatched);
    }

    #[tokio::test]
    async fn nothing_is_sent_while_the_audit_store_refuses_rows() {
        let upstream = Upstream::new(&Config::default()).unwrap();
        let stage = Dispatch {
            upstream: &upstream,
            response_timeout: Duration::from_secs(5),
            audit_ready: false,
        };
        let target = Target {
            provider: "openai".into(),
            uri: "http://127.0.0.1:9/v1/chat/completions".parse().unwrap(),
            host: "127.0.0.1".into(),
        };
        let out = Outbound {
            method: Method::POST,
            headers: HeaderMap::new(),
            body: crate::body::full("{}"),
            inspected: true,
        };
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let refusal = stage.run(&mut ex, (target, out)).await.expect_err("refused");
        assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!ex.dispatched);
    }
}
