//! Admission control: bounds on what in-flight requests hold in memory.
//!
//! Inspected request bodies are read whole. Without a global bound, a flood
//! of large bodies grows the agent until the kernel kills it, and with
//! `fail = "open"` traffic then goes to the provider uninspected. So every
//! inspected exchange charges its body, as the bytes arrive (a declared
//! `Content-Length` at once), to one shared budget ([limits]
//! max_inflight_request_bytes), then takes one of a fixed number of slots
//! ([limits] max_inspected_exchanges) for the rest of the exchange. When
//! either is exhausted the client gets 503 with `Retry-After` in its own
//! error format (the SDKs retry it) instead of the agent growing or the
//! request waiting.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::{BoxError, ProxyBody};
use crate::config::LimitsConfig;

/// Seconds a refused client is asked to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The shared budgets; one per proxy.
pub struct Admission {
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    exchanges: Arc<Semaphore>,
    max_exchanges: usize,
}

/// Why a request was not admitted (the message goes to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("promptwall is at its limit of {0} inspected requests in flight ([limits] max_inspected_exchanges); retry in a moment")]
    Exchanges(usize),
    #[error("promptwall's {0}-byte budget for request bodies in flight is in use ([limits] max_inflight_request_bytes); retry in a moment")]
    Bytes(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the {0}-byte limit")]
    TooLarge(usize),
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error("the request body could not be read: {0}")]
    Read(BoxError),
}

/// One exchange's claims: the body bytes it has charged and, once admitted,
/// its slot. Dropping it gives both back.
#[derive(Default)]
pub struct Ticket {
    slot: Option<OwnedSemaphorePermit>,
    bytes: Option<OwnedSemaphorePermit>,
}

impl Admission {
    pub fn new(limits: &LimitsConfig) -> Self {
        let max_bytes = limits.max_inflight_request_bytes.min(Semaphore::MAX_PERMITS);
        let max_exchanges = limits.max_inspected_exchanges.min(Semaphore::MAX_PERMITS);
        Admission {
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            exchanges: Arc::new(Semaphore::new(max_exchanges)),
            max_exchanges,
        }
    }

    /// A slot for the exchange, or `Busy` at once (never waits). Taken once
    /// the body is in: a client that opens requests and stalls before
    /// sending a body holds no slot, and its bytes are charged as they come.
    pub fn admit(&self, ticket: &mut Ticket) -> Result<(), Busy> {
        if ticket.slot.is_none() {
            let slot = self
                .exchanges
                .clone()
                .try_acquire_owned()
                .map_err(|_| Busy::Exchanges(self.max_exchanges))?;
            ticket.slot = Some(slot);
        }
        Ok(())
    }

    /// Reads `body` whole, charging its bytes to the budget before they are
    /// buffered: a declared `Content-Length` up front, then chunk by chunk.
    /// The charge stays on `ticket` (see [`Ticket::charge_body`]).
    pub async fn read_body<B>(&self, ticket: &mut Ticket, body: B, limit: usize) -> Result<Bytes, BodyError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let hint = body.size_hint();
        if hint.lower() as usize > limit {
            return Err(BodyError::TooLarge(limit));
        }
        let declared = hint.exact().map(|n| n as usize);
        if let Some(n) = declared {
            self.charge(ticket, n)?;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
            let Ok(data) = frame.into_data() else { continue };
            let total = buf.len() + data.len();
            if total > limit {
                return Err(BodyError::TooLarge(limit));
            }
            self.charge(ticket, total)?;
            if buf.is_empty() && declared.is_none_or(|n| n == data.len()) {
                // One chunk is the whole body (small requests): no copy.
                if body.is_end_stream() {
                    return Ok(data);
                }
            }
            buf.extend_from_slice(&data);
        }
        Ok(Bytes::from(buf))
    }

    /// Makes `ticket`'s charge at least `total` bytes (also used while a
    /// compressed body is decoded, before each step of growth).
    pub fn charge(&self, ticket: &mut Ticket, total: usize) -> Result<(), Busy> {
        let held = ticket.bytes.as_ref().map_or(0, |p| p.num_permits());
        if total <= held {
            return Ok(());
        }
        let more = u32::try_from(total - held).map_err(|_| Busy::Bytes(self.max_bytes))?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| Busy::Bytes(self.max_bytes))?;
        match &mut ticket.bytes {
            Some(p) => p.merge(permit),
            None => ticket.bytes = Some(permit),
        }
        Ok(())
    }

    /// Request-body bytes charged right now.
    pub fn in_flight_bytes(&self) -> usize {
        self.max_bytes - self.bytes.available_permits()
    }

    /// Inspected exchanges admitted right now.
    pub fn in_flight_exchanges(&self) -> usize {
        self.max_exchanges - self.exchanges.available_permits()
    }
}

impl Ticket {
    /// Moves the body charge onto the body sent upstream: it is given back
    /// when the HTTP client has sent (or dropped) those bytes.
    pub fn charge_body(&mut self, body: ProxyBody) -> ProxyBody {
        match self.bytes.take() {
            Some(permit) => Held {
                inner: body,
                _guard: permit,
            }
            .boxed(),
            None => body,
        }
    }

    /// Keeps the exchange's slot until `body` (the answer streamed to the
    /// client) ends or is dropped.
    pub fn hold(self, body: ProxyBody) -> ProxyBody {
        Held {
            inner: body,
            _guard: self,
        }
        .boxed()
    }
}

/// A server-side TLS handshake bounded by [limits] tls_handshake_timeout_secs:
/// a client that opens connections and never finishes them would otherwise
/// hold a task, a socket and the handshake state forever.
pub async fn tls_accept<S>(
    limits: &LimitsConfig,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: S,
) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let limit = std::time::Duration::from_secs(limits.tls_handshake_timeout_secs.max(1));
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client did not complete the TLS handshake within {} s ([limits] tls_handshake_timeout_secs)",
                limit.as_secs()
            ),
        )),
    }
}

/// The 503 answer: `Retry-After` on a response already in the client's format.
pub fn with_retry_after(mut resp: Response<ProxyBody>, secs: u64) -> Response<ProxyBody> {
    resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    resp
}

pin_project_lite::pin_project! {
    /// A body that keeps `guard` alive for as long as it exists.
    struct Held<G> {
        #[pin]
        inner: ProxyBody,
        _guard: G,
    }
}

impl<G> Body for Held<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn limits(bytes: usize, exchanges: usize) -> LimitsConfig {
        LimitsConfig {
            max_inflight_request_bytes: bytes,
            max_inspected_exchanges: exchanges,
            ..Default::default()
        }
    }

    fn chunked(parts: Vec<&'static [u8]>) -> impl Body<Data = Bytes, Error = BoxError> + Unpin {
        StreamBody::new(futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p)))),
        ))
    }

    #[tokio::test]
    async fn bodies_are_charged_while_held_and_refused_past_the_budget() {
        let a = Admission::new(&limits(100, 8));
        let mut first = Ticket::default();
        let body = a
            .read_body(&mut first, chunked(vec![&[1; 30], &[2; 30]]), 1000)
            .await
            .unwrap();
        assert_eq!(body.len(), 60);
        assert_eq!(a.in_flight_bytes(), 60);

        // A declared length is charged before a byte is read.
        let mut second = Ticket::default();
        let err = a
            .read_body(&mut second, Full::new(Bytes::from_static(&[0; 50])), 1000)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Busy(Busy::Bytes(100))), "{err}");
        // A chunked body is refused at the chunk that crosses the budget.
        let err = a
            .read_body(&mut second, chunked(vec![&[3; 20], &[4; 30]]), 1000)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Busy(Busy::Bytes(100))), "{err}");
        drop(second);
        assert_eq!(a.in_flight_bytes(), 60, "a refused body gives its partial charge back");

        // The charge moves with the upstream body and ends with it.
        let upstream = first.charge_body(crate::body::full(body));
        drop(first);
        assert_eq!(a.in_flight_bytes(), 60);
        drop(upstream);
        assert_eq!(a.in_flight_bytes(), 0);
    }

    #[tokio::test]
    async fn exchanges_past_the_cap_are_refused_until_one_ends() {
        let a = Admission::new(&limits(100, 2));
        let admitted = || {
            let mut t = Ticket::default();
            a.admit(&mut t).map(|()| t)
        };
        let one = admitted().unwrap();
        let two = admitted().unwrap();
        assert_eq!(admitted().err(), Some(Busy::Exchanges(2)));
        let answer = one.hold(crate::body::empty());
        assert_eq!(a.in_flight_exchanges(), 2, "the slot lives as long as the answer");
        drop(answer);
        let _three = admitted().unwrap();
        drop(two);
        assert_eq!(a.in_flight_exchanges(), 1);
    }

    #[tokio::test]
    async fn a_declared_or_streamed_length_over_the_limit_is_too_large() {
        let a = Admission::new(&limits(1000, 2));
        let mut t = Ticket::default();
        let err = a
            .read_body(&mut t, Full::new(Bytes::from_static(&[0; 11])), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge(10)));
        let err = a
            .read_body(&mut t, chunked(vec![&[0; 6], &[0; 6]]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge(10)));
    }
}
