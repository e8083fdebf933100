//! The request path as stages, run in this fixed order by the driver
//! (`Proxy::handle` in `forward.rs`):
//!
//! | stage | module | reads → produces |
//! |---|---|---|
//! | admit | [`admit`] | method, path, TLS name → shape and the addressed provider |
//! | read | [`read`] | the body stream → the whole body, bounded and decoded |
//! | inspect | [`inspect`] | the body → the body to forward, or a block |
//! | route | [`route`] | the addressed provider → the upstream chosen by `[routing]` |
//! | budget | [`budget`] | the client's identity and the request's estimate → a reservation, or a 429 |
//! | translate | [`translate`] | the body in the client's shape → the upstream's shape |
//! | dispatch | [`dispatch`] | the request → the provider's response head |
//! | respond | [`respond`] | the response → the client's stream (restore, usage) |
//!
//! A WebSocket upgrade leaves after route for [`upgrade`], where every
//! message runs inspect and respond on its own.
//!
//! Every stage reads and writes the one [`Exchange`]. A stage ends the
//! exchange early by returning a [`Refusal`]; the driver, never the stage,
//! answers it in the client's error envelope and commits the audit row
//! ([`crate::audit_sink::Recorder`]). A streamed answer outlives the
//! driver: the relay the driver starts ([`respond::Relay::start`]) commits
//! it before the answer's end, and a WebSocket session commits each
//! message's row.
//!
//! To add a stage: a module here implementing [`Stage`], a call in the
//! driver at its place in the order, and a test of the stage on its own.

use std::future::Future;

use bytes::Bytes;
use http::StatusCode;

use crate::exchange::Exchange;

pub mod admit;
pub mod budget;
pub mod dispatch;
pub mod inspect;
pub mod read;
pub mod respond;
pub mod route;
pub mod translate;
pub mod upgrade;

/// One step of the request path.
pub trait Stage {
    type Input;
    type Output;

    fn run(&self, ex: &mut Exchange, input: Self::Input) -> impl Future<Output = Result<Self::Output, Refusal>> + Send;
}

/// Why a stage ended the exchange, for the client and the audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    /// What the client is told (and the row records unless the stage set
    /// `Exchange::error` with more detail).
    pub message: String,
    /// A body already in the client's envelope (the pipeline renders its
    /// own blocks); otherwise the driver renders `message`.
    pub body: Option<Bytes>,
    /// Ask the client to retry after this many seconds (`Retry-After`): a
    /// budget is full, or every upstream of its route cools down.
    pub retry_after: Option<u64>,
    /// More headers for the answer (a limit's `x-ratelimit-*`); a list,
    /// not a map, to keep refusals small.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Refusal {
    /// Nothing may leave for a provider while its row could not be written.
    pub fn audit_unavailable() -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "promptwall cannot write its audit log (see the agent's log: disk full or store unreachable; \
             [audit] min_free_bytes), so nothing was sent to the provider; retry once the audit store is writable",
        )
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            body: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// The value of header `name` among [`Self::headers`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn busy(busy: crate::admission::Busy) -> Self {
        Refusal {
            retry_after: Some(crate::admission::RETRY_AFTER_SECS),
            ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, format!("promptwall: {busy}"))
        }
    }
}

/// The error chain of `e` as one line, sources that repeat their cause
/// left out.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
