//! The inspection pipeline as the HTTP layer sees it: one decision per
//! request, and a response stage that restores placeholders and reads usage.
//! The logic itself is pure and lives in `promptwall-llm`.

use bytes::Bytes;
use http::HeaderMap;
use promptwall_llm::{
    ApiShape, ConversationOwner, Pipeline, PipelineSettings, Report, RequestContext, RequestOutcome, ResponseProcessor,
    Restorer, Scanner, Usage,
};

use crate::config::Config;

#[allow(clippy::large_enum_variant)] // one per request, moved once
pub enum Decision {
    /// Forward `body` (None: the original bytes, unchanged).
    Forward {
        body: Option<Bytes>,
        stage: ResponseStage,
        report: Report,
    },
    /// Answer locally with `status` and a client-format error `body`.
    Reject { status: u16, body: Bytes, report: Report },
}

pub struct Inspector {
    pub(crate) pipeline: Option<Pipeline>,
    /// The same detector, for scrubbing audit metadata (kept even when the
    /// pipeline is off: the audit log must never hold a secret).
    scanner: std::sync::Arc<dyn Scanner>,
    pub(crate) salt: String,
}

impl Inspector {
    pub fn new(config: &Config) -> Result<Self, String> {
        let scanner = crate::detectors::build(&config.pipeline)?;
        Self::with_scanner(config, scanner)
    }

    pub fn with_scanner(config: &Config, scanner: impl Scanner + 'static) -> Result<Self, String> {
        let scanner: std::sync::Arc<dyn Scanner> = std::sync::Arc::new(scanner);
        let shared = scanner.clone();
        let pipeline = config
            .pipeline
            .enabled
            .then(|| Pipeline::new(move |t: &str| shared.scan(t), PipelineSettings::default()));
        let salt = crate::fingerprint_key::salt(config).map_err(|e| e.to_string())?;
        Ok(Inspector {
            pipeline,
            scanner,
            salt,
        })
    }

    /// `text` with every secret and personal datum replaced by a placeholder.
    pub fn scrub(&self, text: &str) -> Option<String> {
        promptwall_llm::scrub(self.scanner.as_ref(), text)
    }

    /// Removes secrets and personal data from what the audit row records
    /// about the client process: `curl -d '…'` or `claude -p "…"` carry the
    /// prompt on the command line, and any user can name an executable (so
    /// its path and task name) as they like. The user name stays: it is who
    /// the row is about.
    pub fn scrub_record(&self, row: &mut promptwall_audit::AuditRecord) {
        for field in [&mut row.cmdline, &mut row.exe] {
            if let Some(clean) = field.as_deref().and_then(|c| self.scrub(c)) {
                *field = Some(clean);
            }
        }
    }

    /// Decides on one request. The client process's user (when known) and
    /// the provider credential in `headers` name whose Responses
    /// conversation a `previous_response_id` may continue.
    pub fn inspect_request(
        &self,
        shape: ApiShape,
        body: &[u8],
        headers: &HeaderMap,
        client: Option<&crate::origin::ClientIdentity>,
    ) -> Decision {
        let Some(pipeline) = &self.pipeline else {
            let model = model_field(body);
            return Decision::Forward {
                body: None,
                stage: ResponseStage::new(shape, None, None),
                report: Report {
                    model,
                    ..Default::default()
                },
            };
        };
        let owner = conversation_owner(client.and_then(|c| c.uid), headers);
        let ctx = RequestContext {
            fingerprint_salt: &self.salt,
            owner,
            content_type: headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        };
        match pipeline.inspect_request(shape, body, &ctx) {
            RequestOutcome::Forward { body, restorer, report } => Decision::Forward {
                body,
                stage: ResponseStage::new(shape, restorer, owner),
                report,
            },
            RequestOutcome::Block { status, body, report } | RequestOutcome::Reject { status, body, report } => {
                Decision::Reject { status, body, report }
            }
        }
    }

    /// After a complete answer: a Responses answer's placeholders are kept
    /// for follow-ups that name it as `previous_response_id`.
    /// They are kept under the request's owner: only the same user with
    /// the same credential can continue them.
    pub fn conclude(&self, stage: &ResponseStage) {
        let (Some(pipeline), Some(restorer), Some(owner)) = (&self.pipeline, &stage.restorer, stage.owner) else {
            return;
        };
        if stage.shape.continuation_field().is_none() || restorer.is_empty() {
            return;
        }
        if let Some(id) = stage.processor.as_ref().and_then(|p| p.usage().response_id) {
            pipeline.remember_response(owner, &id, restorer);
        }
    }
}

/// The body's `model`, through the node-capped parser (a serde_json tree of
/// a JSON bomb would be unbounded).
fn model_field(body: &[u8]) -> Option<String> {
    let root = promptwall_llm::json::parse(std::str::from_utf8(body).ok()?).ok()?;
    root.str_field("model").map(|m| m.into_owned())
}

/// Headers that authenticate to a provider; a conversation belongs to
/// whoever holds them (only their digest is kept).
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// None when neither the user nor a credential is known: such requests
/// would all share one owner, so their follow-ups start afresh instead.
fn conversation_owner(uid: Option<u32>, headers: &HeaderMap) -> Option<ConversationOwner> {
    let has_credential = CREDENTIAL_HEADERS.iter().any(|name| headers.contains_key(*name));
    if uid.is_none() && !has_credential {
        return None;
    }
    let credentials = CREDENTIAL_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name).iter().map(move |v| (*name, v.as_bytes())));
    Some(ConversationOwner::new(uid, credentials))
}

/// Per-response processing; `for_response` picks the mode once headers arrive.
pub struct ResponseStage {
    shape: ApiShape,
    restorer: Option<Restorer>,
    /// Who sent the request, for remembering a Responses answer.
    owner: Option<ConversationOwner>,
    processor: Option<ResponseProcessor>,
}

impl ResponseStage {
    fn new(shape: ApiShape, restorer: Option<Restorer>, owner: Option<ConversationOwner>) -> Self {
        ResponseStage {
            shape,
            restorer,
            owner,
            processor: None,
        }
    }

    /// Restores only in successful answers: provider errors go back unmodified.
    pub fn for_response(mut self, status: u16, content_type: &str, compressed: bool) -> ResponseStage {
        let processor = match (&self.restorer, (200..300).contains(&status), compressed) {
            (_, _, true) => None,
            (Some(r), true, false) if !r.is_empty() => Some(r.response_processor(content_type, self.shape)),
            _ => Some(ResponseProcessor::observe_only(self.shape, content_type)),
        };
        self.processor = processor;
        self
    }

    pub fn may_change_length(&self) -> bool {
        self.processor.as_ref().is_some_and(|p| p.may_change_body())
    }

    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        match &mut self.processor {
            Some(p) => p.push(chunk),
            None => chunk,
        }
    }

    pub fn finish(&mut self) -> Bytes {
        self.processor.as_mut().map(|p| p.finish()).unwrap_or_default()
    }

    /// Usage read from the answer (with the error event a stream ended with).
    pub fn usage(&self) -> Usage {
        self.processor.as_ref().map(|p| p.usage()).unwrap_or_default()
    }
}
