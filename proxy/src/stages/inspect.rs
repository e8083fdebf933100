//! Inspect: secrets block the request, personal data is replaced by
//! placeholders, and the response stage that restores them is prepared.
//! The decisions themselves are the pure pipeline's (`promptwall-llm`),
//! reached through [`Inspector`].

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{Refusal, Stage};
use crate::exchange::{Exchange, Verdict};
use crate::pipeline::{Decision, Inspector, ResponseStage};

pub struct Inspect<'a> {
    pub inspector: &'a Inspector,
    /// `[audit] capture_bodies`: the byte limit of the body kept in the row.
    pub capture: Option<usize>,
}

/// What goes on: the body to forward and the stage for its answer.
pub struct Inspected {
    pub body: Bytes,
    pub response: ResponseStage,
}

impl<'a> Stage for Inspect<'a> {
    /// The whole body and the request's headers (whose credential names
    /// the conversation's owner).
    type Input = (Bytes, &'a HeaderMap);
    type Output = Inspected;

    async fn run(&self, ex: &mut Exchange, (bytes, headers): Self::Input) -> Result<Inspected, Refusal> {
        self.inspect(ex, bytes, headers)
    }
}

impl Inspect<'_> {
    pub fn inspect(&self, ex: &mut Exchange, bytes: Bytes, headers: &HeaderMap) -> Result<Inspected, Refusal> {
        let shape = ex.shape();
        match self
            .inspector
            .inspect_request(shape, &bytes, headers, ex.client.identity.as_ref())
        {
            Decision::Reject { status, body, report } => {
                ex.record_report(&report);
                if report.verdict != promptwall_llm::Verdict::Blocked {
                    ex.verdict = Verdict::Error;
                }
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                // Outside the known shapes the pipeline cannot tell the
                // client's error format; the addressed provider can.
                let body = if shape.is_llm() {
                    body
                } else {
                    let envelope = crate::inspect::error_shape(shape, ex.target.as_ref().map(|t| t.provider.as_str()));
                    crate::inspect::reshape_error(envelope, status.as_u16(), &body)
                };
                let message = report
                    .message
                    .clone()
                    .unwrap_or_else(|| "refused by the inspection pipeline".into());
                ex.error = report.message;
                Err(Refusal {
                    body: Some(body),
                    ..Refusal::new(status, message)
                })
            }
            Decision::Forward { body, stage, report } => {
                ex.record_report(&report);
                let body = body.unwrap_or(bytes);
                if let Some(limit) = self.capture {
                    ex.request_body = Some(String::from_utf8_lossy(&body[..body.len().min(limit)]).into_owned());
                }
                Ok(Inspected { body, response: stage })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::exchange::{Client, Listener, Traffic};
    use promptwall_llm::ApiShape;

    fn stage_for(config: &Config) -> Inspector {
        Inspector::new(config).unwrap()
    }

    fn exchange(shape: ApiShape) -> Exchange {
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        ex.traffic = Traffic::Api(shape);
        ex
    }

    #[test]
    fn a_secret_in_a_prompt_is_blocked_with_422_in_the_clients_envelope_and_never_echoed() {
        let inspector = stage_for(&Config::default());
        let stage = Inspect {
            inspector: &inspector,
            capture: None,
        };
        let key = "AKIAQ3EGVP7XWJ4LN2TZ";
        let body =
            format!(r#"{{"model":"claude-x","max_tokens":5,"messages":[{{"role":"user","content":"aws {key}"}}]}}"#);
        let mut ex = exchange(ApiShape::ANTHROPIC_MESSAGES);
        let Err(refusal) = stage.inspect(&mut ex, Bytes::from(body), &HeaderMap::new()) else {
            panic!("not blocked")
        };
        assert_eq!(refusal.status, StatusCode::UNPROCESSABLE_ENTITY);
        let sent = String::from_utf8(refusal.body.unwrap().to_vec()).unwrap();
        assert!(sent.contains(r#""type":"error""#), "{sent}");
        assert!(!sent.contains(key));
        assert_eq!(ex.verdict, Verdict::Blocked);
        assert_eq!(ex.model.as_deref(), Some("claude-x"));
    }

    #[test]
    fn a_gemini_request_is_audited_with_the_model_its_path_names_and_blocked_in_googles_envelope() {
        let inspector = stage_for(&Config::default());
        let stage = Inspect {
            inspector: &inspector,
            capture: None,
        };
        let mut ex = exchange(ApiShape::GEMINI_GENERATE);
        ex.path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent".into();
        let body = r#"{"contents":[{"role":"user","parts":[{"text":"mail ann@example.com"}]}]}"#;
        let Ok(out) = stage.inspect(&mut ex, Bytes::from_static(body.as_bytes()), &HeaderMap::new()) else {
            panic!("not forwarded")
        };
        assert!(std::str::from_utf8(&out.body).unwrap().contains("[[EMAIL_001]]"));
        assert_eq!(ex.model.as_deref(), Some("gemini-2.5-pro"));

        let key = "AKIAQ3EGVP7XWJ4LN2TZ";
        let body = format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"aws {key}"}}]}}]}}"#);
        let mut ex = exchange(ApiShape::GEMINI_GENERATE);
        ex.path = "/v1beta/models/gemini-2.5-flash:generateContent".into();
        let Err(refusal) = stage.inspect(&mut ex, Bytes::from(body), &HeaderMap::new()) else {
            panic!("not blocked")
        };
        assert_eq!(refusal.status, StatusCode::UNPROCESSABLE_ENTITY);
        let sent: serde_json::Value = serde_json::from_slice(&refusal.body.unwrap()).unwrap();
        assert_eq!(sent["error"]["code"], 422);
        assert_eq!(sent["error"]["status"], "INVALID_ARGUMENT");
        assert!(!sent.to_string().contains(key));
        assert_eq!(ex.model.as_deref(), Some("gemini-2.5-flash"));
    }

    #[test]
    fn an_email_is_forwarded_as_a_placeholder_and_the_exchange_is_redacted() {
        let inspector = stage_for(&Config::default());
        let stage = Inspect {
            inspector: &inspector,
            capture: Some(1 << 20),
        };
        let body = r#"{"model":"gpt-x","messages":[{"role":"user","content":"mail ann@example.com"}]}"#;
        let mut ex = exchange(ApiShape::OPENAI_CHAT);
        let Ok(out) = stage.inspect(&mut ex, Bytes::from_static(body.as_bytes()), &HeaderMap::new()) else {
            panic!("not forwarded")
        };
        let sent = std::str::from_utf8(&out.body).unwrap();
        assert!(
            !sent.contains("ann@example.com") && sent.contains("[[EMAIL_001]]"),
            "{sent}"
        );
        assert_eq!(ex.verdict, Verdict::Redacted);
        assert_eq!(ex.findings.get("email"), Some(&1));
        assert_eq!(
            ex.request_body.as_deref(),
            Some(sent),
            "the row keeps what the provider saw"
        );
    }
}
