//! Read: the request body, whole and bounded, when it will be inspected.
//!
//! LLM calls are read whole so the pipeline can inspect them, and so are
//! other bodies that may carry text (checked for credentials); bodiless and
//! read-only requests stream through untouched. Every byte read is charged
//! to the shared memory budget as it arrives ([`crate::admission`]); a
//! compressed body is decoded (what is inspected is what is forwarded, and
//! every provider accepts identity), the decoded bytes charged as they grow.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{Refusal, Stage};
use crate::admission::{Admission, BodyError, Ticket};
use crate::body::{BoxError, ProxyBody};
use crate::config::LimitsConfig;
use crate::encoding::EncodingError;
use crate::exchange::Exchange;

/// Generic over the body type so the stage can be tested without a socket.
pub struct Read<'a, B = Incoming> {
    pub limits: &'a LimitsConfig,
    pub admission: &'a Admission,
    pub body: PhantomData<fn(B)>,
}

impl<'a> Read<'a> {
    pub fn new(limits: &'a LimitsConfig, admission: &'a Admission) -> Self {
        Read {
            limits,
            admission,
            body: PhantomData,
        }
    }
}

/// The request body after the read stage.
pub enum RequestBody {
    /// Read whole (and decoded): it goes through inspect. The ticket holds
    /// the exchange's memory charge and slot for as long as it lives.
    Whole { bytes: Bytes, ticket: Ticket },
    /// Not inspected: relayed as it arrives.
    Streamed(ProxyBody),
}

/// Whether the read stage reads this request whole. `client_path` is the
/// path as the client sent it (canonical), not the upstream's: the
/// sign-in exemption must not depend on a provider's base URL.
pub fn reads_whole(ex: &Exchange, method: &http::Method, client_path: &str) -> bool {
    ex.shape().is_llm() || crate::inspect::checks_other_body(method, client_path)
}

impl<'a, B> Stage for Read<'a, B>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// The request's method, canonical path and head (its
    /// `Content-Encoding` is removed once decoded), and its body.
    type Input = (&'a http::Method, &'a str, &'a mut HeaderMap, B);
    type Output = RequestBody;

    async fn run(
        &self,
        ex: &mut Exchange,
        (method, path, headers, incoming): Self::Input,
    ) -> Result<RequestBody, Refusal> {
        if !reads_whole(ex, method, path) {
            return Ok(RequestBody::Streamed(incoming.map_err(Into::into).boxed()));
        }
        let limit = self.limits.max_request_bytes;
        let read_timeout = Duration::from_secs(self.limits.client_read_timeout_secs.max(1));
        let mut ticket = Ticket::default();
        let collected =
            tokio::time::timeout(read_timeout, self.admission.read_body(&mut ticket, incoming, limit)).await;
        let bytes = match collected {
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "promptwall: the request body did not arrive within {} s; the client is too slow or stalled — retry",
                        read_timeout.as_secs()
                    ),
                ))
            }
            Ok(Err(BodyError::Busy(busy))) => return Err(Refusal::busy(busy)),
            Ok(Err(BodyError::TooLarge(_))) => {
                return Err(Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("promptwall: request body exceeds the {limit}-byte limit ([limits] max_request_bytes); shorten the conversation or raise the limit"),
                ))
            }
            Ok(Err(e)) => {
                ex.error = Some(format!("client aborted while sending the body: {e}"));
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "promptwall: the request body could not be read (client aborted); retry",
                ));
            }
            Ok(Ok(bytes)) => bytes,
        };
        self.admission.admit(&mut ticket).map_err(Refusal::busy)?;
        ex.request_bytes = bytes.len() as u64;
        let compressed = bytes.len();
        let mut grow = |decoded: usize| {
            self.admission
                .charge(&mut ticket, compressed + decoded)
                .map_err(|busy| busy.to_string())
        };
        let bytes = match crate::encoding::decode_request_body(headers, &bytes, limit, &mut grow) {
            Ok(None) => bytes,
            Ok(Some(decoded)) => {
                headers.remove(header::CONTENT_ENCODING);
                decoded
            }
            Err(EncodingError::OverBudget(busy)) => {
                return Err(Refusal {
                    retry_after: Some(crate::admission::RETRY_AFTER_SECS),
                    ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, format!("promptwall: {busy}"))
                })
            }
            Err(e) => {
                let status = match e {
                    EncodingError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    EncodingError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    EncodingError::Corrupt { .. } | EncodingError::OverBudget(_) => StatusCode::BAD_REQUEST,
                };
                return Err(Refusal::new(status, format!("promptwall: {e}")));
            }
        };
        Ok(RequestBody::Whole { bytes, ticket })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener, Traffic};
    use http_body_util::Full;
    use promptwall_llm::ApiShape;

    fn llm_exchange() -> Exchange {
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.traffic = Traffic::Api(ApiShape::OPENAI_CHAT);
        ex
    }

    async fn read(
        limits: &LimitsConfig,
        headers: &mut HeaderMap,
        body: &'static [u8],
    ) -> (Exchange, Result<RequestBody, Refusal>) {
        let admission = Admission::new(limits);
        let stage: Read<'_, Full<Bytes>> = Read {
            limits,
            admission: &admission,
            body: PhantomData,
        };
        let mut ex = llm_exchange();
        let out = stage
            .run(
                &mut ex,
                (
                    &http::Method::POST,
                    "/v1/chat/completions",
                    headers,
                    Full::new(Bytes::from_static(body)),
                ),
            )
            .await;
        (ex, out)
    }

    #[tokio::test]
    async fn an_llm_body_is_read_whole_and_counted() {
        let (ex, out) = read(&LimitsConfig::default(), &mut HeaderMap::new(), b"{\"model\":\"m\"}").await;
        match out {
            Ok(RequestBody::Whole { bytes, .. }) => assert_eq!(&bytes[..], b"{\"model\":\"m\"}"),
            _ => panic!("not read whole"),
        }
        assert_eq!(ex.request_bytes, 13);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        let limits = LimitsConfig {
            max_request_bytes: 4,
            ..Default::default()
        };
        let (_, out) = read(&limits, &mut HeaderMap::new(), b"0123456789").await;
        assert_eq!(out.err().map(|r| r.status), Some(StatusCode::PAYLOAD_TOO_LARGE));
    }

    #[tokio::test]
    async fn a_gzip_body_is_decoded_and_its_encoding_header_dropped() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"input\":\"hi\"}").unwrap();
        let packed: &'static [u8] = Box::leak(gz.finish().unwrap().into_boxed_slice());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let (_, out) = read(&LimitsConfig::default(), &mut headers, packed).await;
        match out {
            Ok(RequestBody::Whole { bytes, .. }) => assert_eq!(&bytes[..], b"{\"input\":\"hi\"}"),
            _ => panic!("not decoded"),
        }
        assert!(!headers.contains_key(header::CONTENT_ENCODING));
    }

    #[tokio::test]
    async fn an_unknown_encoding_is_refused_with_415() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "lzma".parse().unwrap());
        let (_, out) = read(&LimitsConfig::default(), &mut headers, b"xx").await;
        assert_eq!(out.err().map(|r| r.status), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }

    #[test]
    fn the_sign_in_exemption_follows_the_clients_path_not_the_upstreams() {
        let ex = Exchange::new(Listener::Explicit, Client::default());
        assert!(!reads_whole(&ex, &http::Method::POST, "/v1/oauth/token"));
        // An upstream base like https://gw.corp/oauth/proxy must not exempt uploads.
        assert!(reads_whole(&ex, &http::Method::POST, "/v1/files"));
    }

    #[tokio::test]
    async fn a_read_only_request_streams_through_unread() {
        let limits = LimitsConfig::default();
        let admission = Admission::new(&limits);
        let stage: Read<'_, Full<Bytes>> = Read {
            limits: &limits,
            admission: &admission,
            body: PhantomData,
        };
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let out = stage
            .run(
                &mut ex,
                (
                    &http::Method::GET,
                    "/v1/models",
                    &mut HeaderMap::new(),
                    Full::new(Bytes::new()),
                ),
            )
            .await;
        assert!(matches!(out, Ok(RequestBody::Streamed(_))));
    }
}
