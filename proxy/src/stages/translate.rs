//! Translate: the inspected body becomes what each candidate of the route
//! is sent: the client's bytes when the candidate speaks the client's shape
//! (only `model` changed, if the route names one, so signed thinking stays
//! byte-exact), else the body translated through the shapes' codecs
//! ([`promptwall_llm::translate`]). Redaction ran before, so placeholders
//! are translated like any text. The answer is translated back in the
//! respond stage.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use promptwall_llm::translate::Notes;
use promptwall_llm::ApiShape;

use super::route::Routing;
use super::{Refusal, Stage};
use crate::exchange::{Exchange, Target};
use crate::routing::{Candidate, Destination};

#[derive(Debug, Default)]
pub struct Translate;

/// One way to send the request: where, in which shape, with which body and
/// headers.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `client`, `upstream/account`; empty for a request no rule routed.
    pub label: String,
    /// False for a request no rule routed: it is never retried elsewhere.
    pub routed: bool,
    /// Whether a failure cools this candidate down (not the client's own
    /// provider: the client's credential is the client's business).
    pub cools_down: bool,
    pub target: Target,
    /// The shape the upstream is spoken to in.
    pub shape: ApiShape,
    /// The model asked of the upstream, when the route changed it.
    pub model: Option<String>,
    pub body: Bytes,
    /// Replaces the client's headers (another provider's credential and
    /// nothing of the client's); None sends the client's own.
    pub headers: Option<HeaderMap>,
    /// Answered here, nothing sent: a `count_tokens` call routed to a
    /// provider without one gets an estimate from a real tokenizer.
    pub local_answer: Option<Bytes>,
    /// The route and candidate, for least-used's count of requests in flight.
    pub candidate: Option<(String, Candidate)>,
}

impl Stage for Translate {
    /// The route's decision and the inspected body, in the client's shape.
    type Input = (Routing, Bytes, HeaderMap);
    /// In the order to try them.
    type Output = Vec<Attempt>;

    async fn run(&self, ex: &mut Exchange, (routing, body, headers): Self::Input) -> Result<Vec<Attempt>, Refusal> {
        let (route, candidates, addressed) = match routing {
            Routing::Direct(target) => {
                return Ok(vec![Attempt {
                    label: String::new(),
                    routed: false,
                    cools_down: false,
                    shape: ex.shape(),
                    target,
                    model: None,
                    body,
                    headers: None,
                    local_answer: None,
                    candidate: None,
                }])
            }
            Routing::Planned {
                route,
                candidates,
                addressed,
            } => (route, candidates, addressed),
        };
        let client = ex.shape();
        let mut attempts = Vec::new();
        let mut skipped = Vec::new();
        let mut notes = Notes::default();
        let mut freeform = Vec::new();
        for c in candidates {
            match attempt(client, &c, &addressed, &body, &headers, &mut notes, &mut freeform) {
                Ok(mut a) => {
                    a.candidate = Some((route.clone(), c));
                    attempts.push(a)
                }
                Err(why) => skipped.push(format!("{}: {why}", c.label())),
            }
        }
        if let Some(rec) = ex.routing.as_mut() {
            rec.freeform_tools = freeform;
            rec.notes = notes.0;
            rec.notes.extend(skipped.iter().map(|s| format!("skipped {s}")));
        }
        if attempts.is_empty() {
            let why = skipped.join("; ");
            ex.error = Some(format!("no candidate of the route can take this request: {why}"));
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("promptwall: the route for this request has no upstream that can take it ({why}); change the request or the route"),
            ));
        }
        Ok(attempts)
    }
}

/// The attempt at `c`, or why it cannot take the request.
fn attempt(
    client: ApiShape,
    c: &Candidate,
    addressed: &Target,
    body: &Bytes,
    headers: &HeaderMap,
    notes: &mut Notes,
    freeform: &mut Vec<String>,
) -> Result<Attempt, String> {
    let shape = c.shape_for(client);
    let (target, out_headers, cools_down) = match &c.destination {
        Destination::Client => (addressed.clone(), None, false),
        Destination::Upstream { upstream, account } => {
            // count_tokens is Anthropic's alone: sent elsewhere it would run
            // (and bill) a completion, so it is answered here.
            if client == ApiShape::ANTHROPIC_COUNT_TOKENS && shape != client {
                return count_locally(c, addressed, body, notes);
            }
            let url = upstream.url(shape);
            let uri: Uri = url.parse().map_err(|e| format!("upstream URL {url}: {e}"))?;
            let target = Target {
                provider: upstream.name.clone(),
                host: uri.host().unwrap_or_default().to_string(),
                uri,
                // Another upstream: its own name's addresses.
                dial: None,
            };
            (target, Some(upstream.outbound_headers(headers, *account)), true)
        }
    };
    let body = if shape == client {
        match &c.model {
            Some(m) => replace_model(body, m).ok_or("the body has no top-level model to replace")?,
            None => body.clone(),
        }
    } else {
        let (Some(src), Some(dst)) = (client.codec(), shape.codec()) else {
            return Err(format!("no translation from {client} to {shape}"));
        };
        let mut req = src.decode_request(body, notes).map_err(|e| e.to_string())?;
        if freeform.is_empty() {
            *freeform = promptwall_llm::translate::freeform_tools(&req);
        }
        if let Some(m) = &c.model {
            req.model = m.clone();
        }
        Bytes::from(dst.encode_request(&req, notes))
    };
    Ok(Attempt {
        label: c.label(),
        routed: true,
        cools_down,
        target,
        shape,
        model: c.model.clone(),
        body,
        headers: out_headers,
        local_answer: None,
        candidate: None,
    })
}

/// The count_tokens answer for a candidate that has no such endpoint.
fn count_locally(c: &Candidate, addressed: &Target, body: &Bytes, notes: &mut Notes) -> Result<Attempt, String> {
    let codec = ApiShape::ANTHROPIC_MESSAGES
        .codec()
        .ok_or("no Messages codec to read the count_tokens body")?;
    let req = codec.decode_request(body, notes).map_err(|e| e.to_string())?;
    let n = promptwall_llm::translate::estimate_input_tokens(&req);
    notes.dropped("count_tokens answered locally with an o200k estimate");
    Ok(Attempt {
        label: c.label(),
        routed: true,
        cools_down: false,
        target: addressed.clone(),
        shape: ApiShape::ANTHROPIC_COUNT_TOKENS,
        model: c.model.clone(),
        body: Bytes::new(),
        headers: None,
        local_answer: Some(Bytes::from(serde_json::json!({ "input_tokens": n }).to_string())),
        candidate: None,
    })
}

/// `body` with its top-level `model` replaced, every other byte kept (a
/// signed thinking block must reach Anthropic byte for byte).
fn replace_model(body: &[u8], model: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let root = promptwall_llm::json::parse(text).ok()?;
    let lit = root.get("model")?.as_lit()?;
    let new = serde_json::to_string(model).ok()?;
    Some(Bytes::from(promptwall_llm::json::splice(
        text,
        &mut [(lit.range(), new)],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener, Traffic};

    fn addressed() -> Target {
        Target {
            provider: "anthropic".into(),
            uri: "https://api.anthropic.com/v1/messages".parse().unwrap(),
            host: "api.anthropic.com".into(),
            dial: None,
        }
    }

    #[tokio::test]
    async fn a_request_no_rule_routed_is_sent_byte_for_byte_with_the_clients_headers() {
        let body = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let attempts = Translate
            .run(&mut ex, (Routing::Direct(addressed()), body.clone(), HeaderMap::new()))
            .await
            .unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].body, body);
        assert!(attempts[0].headers.is_none() && !attempts[0].routed);
    }

    #[tokio::test]
    async fn a_model_remap_on_the_same_api_changes_only_the_model_bytes() {
        let body = Bytes::from_static(
            br#"{"model" : "claude-sonnet-4-5","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"c2ln+/="}]}]}"#,
        );
        let mut ex = Exchange::new(Listener::Transparent, Client::default());
        ex.traffic = Traffic::Api(ApiShape::ANTHROPIC_MESSAGES);
        let planned = Routing::Planned {
            route: "r".into(),
            candidates: vec![Candidate {
                destination: Destination::Client,
                model: Some("claude-haiku-4-5".into()),
            }],
            addressed: addressed(),
        };
        let attempts = Translate.run(&mut ex, (planned, body, HeaderMap::new())).await.unwrap();
        assert_eq!(
            attempts[0].body,
            Bytes::from_static(
                br#"{"model" : "claude-haiku-4-5","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"c2ln+/="}]}]}"#
            )
        );
        assert!(!attempts[0].cools_down && attempts[0].headers.is_none());
    }
}
