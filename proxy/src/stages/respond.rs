//! Respond: the provider's answer streams back to the client through the
//! response stage (placeholders restored, usage read), and the exchange's
//! audit row is committed before the answer's end is sent, so no answer
//! completes without its row.
//!
//! [`Respond::run`] decides how the answer is treated from its head;
//! [`Relay::start`] streams it (the only part with I/O).

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self};
use http::response::Parts;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use promptwall_llm::ApiShape;
use tokio::sync::mpsc;

use super::{error_chain, Refusal, Stage};
use crate::audit_sink::Recorder;
use crate::body::{BoxError, ProxyBody};
use crate::exchange::Exchange;
use crate::pipeline::{Inspector, ResponseStage};
use promptwall_llm::translate::{ResponseContext, ResponseTranslator};

/// How one answer is relayed, decided from its head.
pub struct Relay<B = Incoming> {
    pub parts: Parts,
    pub body: B,
    pub stage: Option<ResponseStage>,
    /// A stream that breaks off ends with an error event in this shape's
    /// stream format (its SDK understands it) instead of a truncated body.
    pub sse_error: Option<ApiShape>,
    /// The upstream speaks another shape: its answer is translated into
    /// the client's before anything else reads it.
    pub translator: Option<ResponseTranslator>,
    /// The request's reservation under `[quota]`, settled with its usage
    /// before the row is committed.
    pub metered: Option<crate::stages::budget::Metered>,
}

/// Generic over the body so the stage can be tested without a socket.
pub struct Respond<B = Incoming>(PhantomData<fn(B)>);

impl<B> Default for Respond<B> {
    fn default() -> Self {
        Respond(PhantomData)
    }
}

impl<B: Send> Stage for Respond<B> {
    /// The provider's response and, for an inspected request, its stage.
    type Input = (Response<B>, Option<ResponseStage>);
    type Output = Relay<B>;

    async fn run(&self, ex: &mut Exchange, (resp, stage): Self::Input) -> Result<Relay<B>, Refusal> {
        let (mut parts, body) = resp.into_parts();
        crate::headers::strip_hop_by_hop(&mut parts.headers);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let compressed = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if let Some(rec) = ex.routing.as_ref().filter(|r| r.price_provider.is_some()) {
            // Another account's session and organisation are not the client's.
            for name in [
                "set-cookie",
                "openai-organization",
                "openai-project",
                "anthropic-organization-id",
            ] {
                parts.headers.remove(name);
            }
            if matches!(parts.status.as_u16(), 401 | 403) {
                // The org's key was refused: the client's own credential is
                // fine, so it must not be told to sign in again (and the
                // provider's message may quote part of the org's key).
                let upstream = rec.upstream.clone();
                ex.error = Some(format!(
                    "upstream {upstream} refused the organisation's credential ({})",
                    parts.status
                ));
                return Err(Refusal::new(
                    http::StatusCode::BAD_GATEWAY,
                    format!(
                        "promptwall: the routed upstream {upstream} refused the organisation's credential; \
                         this is promptwall's configuration, not your key: tell your administrator"
                    ),
                ));
            }
        }
        let translator = match ex.routing.as_ref().and_then(|r| r.translation) {
            Some((client, upstream)) if !compressed => {
                let rec = ex.routing.as_ref().expect("checked above");
                let ctx = ResponseContext {
                    client_model: rec.requested_model.clone().unwrap_or_default(),
                    created: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default(),
                    id_seed: ex.id.as_str().replace('-', ""),
                    stream_usage: rec.client_stream_usage,
                    freeform_tools: rec.freeform_tools.clone(),
                };
                let t = ResponseTranslator::new(upstream, client, parts.status.as_u16(), &content_type, &ctx)
                    .map_err(|e| Refusal::new(http::StatusCode::BAD_GATEWAY, format!("promptwall: {e}")))?;
                parts.headers.remove(header::CONTENT_LENGTH);
                if !t.is_streamed() {
                    parts
                        .headers
                        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                }
                Some(t)
            }
            Some((client, upstream)) => {
                // Asked uncompressed; an upstream that compresses anyway
                // cannot be translated on the fly.
                ex.error = Some(format!(
                    "{upstream} answered compressed; cannot translate it to {client}"
                ));
                return Err(Refusal::new(
                    http::StatusCode::BAD_GATEWAY,
                    "promptwall: the routed provider answered compressed although asked not to, so its answer cannot be translated; retry or change the route",
                ));
            }
            None => None,
        };
        // What the response stage reads is the client's shape of the answer.
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let stage = stage.map(|s| s.for_response(parts.status.as_u16(), &content_type, compressed));
        if stage.as_ref().is_some_and(|s| s.may_change_length()) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let shape = ex.shape();
        let sse_error = (shape.is_llm()
            && parts.status.is_success()
            && content_type.to_ascii_lowercase().contains("text/event-stream"))
        .then_some(shape);
        Ok(Relay {
            parts,
            body,
            stage,
            sse_error,
            translator,
            metered: None,
        })
    }
}

impl<B> Relay<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    /// Charges the answer's usage to the request's reservation, and tells
    /// the client where its limits stand.
    pub fn metered(mut self, metered: crate::stages::budget::Metered) -> Self {
        metered.add_headers(&mut self.parts.headers);
        self.metered = Some(metered);
        self
    }

    /// Streams the answer to the client and commits `ex` before its end.
    /// `capture` is `[audit] capture_bodies`' byte limit.
    pub fn start(
        self,
        mut ex: Exchange,
        recorder: Recorder,
        inspector: Arc<Inspector>,
        capture: Option<usize>,
    ) -> Response<ProxyBody> {
        let Relay {
            parts,
            body: mut upstream,
            mut stage,
            sse_error,
            mut translator,
            metered,
        } = self;
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(32);
        // With a Content-Length the client knows the answer is complete at
        // its last byte, so that byte waits for the audit commit.
        let exact_len = upstream.size_hint().exact();
        let streamed = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
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
                                ex.response_bytes += data.len() as u64;
                                if let Some(limit) = capture {
                                    let room = limit.saturating_sub(captured.len());
                                    captured.extend_from_slice(&data[..data.len().min(room)]);
                                }
                                let data = match translator.as_mut() {
                                    Some(t) => Bytes::from(t.push(&data)),
                                    None => data,
                                };
                                let out = match stage.as_mut() {
                                    Some(s) => s.push(data),
                                    None => data,
                                };
                                if exact_len.is_some_and(|n| ex.response_bytes >= n) {
                                    held = out;
                                    continue;
                                }
                                if !out.is_empty() {
                                    if streamed && ex.first_chunk.is_none() {
                                        ex.first_chunk = Some(ex.started.elapsed());
                                    }
                                    if tx.send(Ok(Frame::data(out))).await.is_err() {
                                        client_gone = true;
                                        break;
                                    }
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
                            let e: BoxError = e.into();
                            upstream_error = Some(error_chain(&*e));
                            break;
                        }
                        None => break,
                    }
                }
                // A translated answer's last events come at its end (a whole
                // body all of it); they pass the response stage like the rest.
                let translated_tail = match translator.as_mut() {
                    Some(t) if upstream_error.is_none() && !client_gone => Bytes::from(t.finish()),
                    _ => Bytes::new(),
                };
                // What the answer's translation could not carry, for the row.
                if let (Some(t), Some(rec)) = (translator.as_ref(), ex.routing.as_mut()) {
                    for note in t.notes().0 {
                        if !rec.notes.contains(&note) {
                            rec.notes.push(note);
                        }
                    }
                }
                let translated_tail = match stage.as_mut() {
                    Some(s) if !translated_tail.is_empty() => s.push(translated_tail),
                    _ => translated_tail,
                };
                let tail = stage.as_mut().map(|s| s.finish()).unwrap_or_default();
                let tail = match (translated_tail.is_empty(), tail.is_empty()) {
                    (true, _) => tail,
                    (false, true) => translated_tail,
                    (false, false) => Bytes::from([translated_tail.as_ref(), tail.as_ref()].concat()),
                };
                let tail = match (held.is_empty(), tail.is_empty()) {
                    (true, _) => tail,
                    (false, true) => held,
                    (false, false) => Bytes::from([held.as_ref(), tail.as_ref()].concat()),
                };
                if let (Some(s), false, None) = (stage.as_ref(), client_gone, &upstream_error) {
                    inspector.conclude(s);
                }
                if let Some(s) = stage.as_ref() {
                    ex.usage = s.usage();
                    if let Some(err) = ex.usage.stream_error.clone() {
                        ex.error
                            .get_or_insert(format!("provider sent an error event mid-stream: {err}"));
                    }
                }
                // A translated answer's tokens are the upstream's own report
                // (the client's shape may not carry them all), in the
                // convention of the provider that counted them.
                if let (Some(u), Some(rec)) = (translator.as_ref().and_then(|t| t.usage()), ex.routing.as_ref()) {
                    let openai = rec.price_provider.as_deref() == Some("openai");
                    ex.usage.input_tokens = if openai { u.total_input() } else { u.input_tokens };
                    ex.usage.output_tokens = u.output_tokens;
                    ex.usage.cache_read_tokens = u.cache_read_tokens;
                    ex.usage.cache_write_tokens = u.cache_write_tokens;
                }
                if capture.is_some() {
                    ex.response_body = Some(String::from_utf8_lossy(&captured).into_owned());
                }
                if client_gone {
                    ex.error = Some(format!(
                        "client disconnected after {} response bytes",
                        ex.response_bytes
                    ));
                }
                if let Some(e) = &upstream_error {
                    ex.error = Some(format!("upstream response broke off: {e}"));
                }
                ex.duration = Some(ex.started.elapsed());
                if let Some(m) = metered {
                    m.settle(&ex);
                }
                if let Err(e) = recorder.commit(ex).await {
                    // No answer completes without its audit row: the client sees
                    // a broken response (and retries) instead of a clean one.
                    let _ = tx.send(Err(e.to_string().into())).await;
                    return;
                }
                if client_gone {
                    return;
                }
                if !tail.is_empty() {
                    let _ = tx.send(Ok(Frame::data(tail))).await;
                }
                if let Some(e) = upstream_error {
                    match sse_error {
                        Some(shape) => {
                            let msg = format!("promptwall: the provider's stream broke off ({e}); retry the request");
                            let _ = tx
                                .send(Ok(Frame::data(crate::inspect::sse_error_event(shape, &msg))))
                                .await;
                        }
                        None => {
                            let _ = tx.send(Err(format!("upstream response broke off: {e}").into())).await;
                        }
                    }
                }
            },
            span,
        ));
        Response::from_parts(parts, ChannelBody { rx }.boxed())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_sink::AuditSink;
    use crate::config::Config;
    use crate::exchange::{Client, Listener, Traffic};
    use crate::stages::inspect::Inspect;
    use http_body_util::Full;
    use promptwall_audit::AuditRecord;
    use std::sync::Mutex;

    type Rows = Arc<Mutex<Vec<AuditRecord>>>;

    fn recorder(store_works: bool) -> (Recorder, Rows) {
        let rows: Rows = Default::default();
        let seen = rows.clone();
        let sink: AuditSink = Arc::new(move |row| {
            let seen = seen.clone();
            Box::pin(async move {
                if !store_works {
                    return Err("disk full".to_string());
                }
                seen.lock().unwrap().push(row);
                Ok(())
            })
        });
        let recorder = Recorder::new(
            sink,
            Arc::new(|_| {}),
            crate::stats::Stats::default(),
            crate::audit_space::AuditSpace::new("", 0),
        );
        (recorder, rows)
    }

    /// Inspect a Chat request carrying an email, then relay `answer` to it.
    async fn relay(answer: &'static str, store_works: bool) -> (Result<Bytes, BoxError>, Rows) {
        let inspector = Arc::new(Inspector::new(&Config::default()).unwrap());
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.traffic = Traffic::Api(ApiShape::OPENAI_CHAT);
        let request = r#"{"model":"gpt-x","messages":[{"role":"user","content":"write to ann@example.com"}]}"#;
        let Ok(inspected) = (Inspect {
            inspector: &inspector,
            capture: None,
        })
        .inspect(&mut ex, Bytes::from_static(request.as_bytes()), &http::HeaderMap::new()) else {
            panic!("the request was not forwarded")
        };
        let resp = Response::builder()
            .header("content-type", "application/json")
            .header("content-length", answer.len())
            .body(Full::new(Bytes::from_static(answer.as_bytes())))
            .unwrap();
        let relay = Respond::default()
            .run(&mut ex, (resp, Some(inspected.response)))
            .await
            .unwrap_or_else(|_| panic!("respond refused"));
        assert!(
            !relay.parts.headers.contains_key("content-length"),
            "restoring changes the length"
        );
        let (recorder, rows) = recorder(store_works);
        let body = relay.start(ex, recorder, inspector, None).into_body();
        (body.collect().await.map(|c| c.to_bytes()), rows)
    }

    const ANSWER: &str = r#"{"model":"gpt-x-1","choices":[{"index":0,"message":{"role":"assistant","content":"Sent to [[EMAIL_001]]."}}],"usage":{"prompt_tokens":7,"completion_tokens":4}}"#;

    #[tokio::test]
    async fn the_answer_is_restored_and_its_row_committed_with_the_usage_it_reported() {
        let (body, rows) = relay(ANSWER, true).await;
        let body = String::from_utf8(body.expect("a complete answer").to_vec()).unwrap();
        assert!(body.contains("Sent to ann@example.com."), "{body}");
        let rows = rows.lock().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (Some(7), Some(4)));
        assert_eq!(rows[0].model.as_deref(), Some("gpt-x-1"));
        assert_eq!(rows[0].verdict, "redacted");
    }

    #[tokio::test]
    async fn an_answer_whose_row_cannot_be_committed_never_completes() {
        let (body, rows) = relay(ANSWER, false).await;
        let err = body.expect_err("the client must not see a clean answer");
        assert!(err.to_string().contains("audit row"), "{err}");
        assert!(rows.lock().unwrap().is_empty());
    }
}
