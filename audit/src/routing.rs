//! The routing detail of an audit row: which model the client asked for and
//! which one answered, the translation between API shapes, and every
//! attempt (failover, retries) in order. The proxy builds a
//! [`RoutingDetail`] and stores [`RoutingDetail::to_json`] in
//! [`AuditRecord::routing`](crate::AuditRecord::routing); the CLI reads it
//! back with [`RoutingDetail::from_json`]. The column holds that JSON text
//! exactly as written (the hash chain covers the text), e.g.
//!
//! ```json
//! {"requested_model":"claude-x","upstream_model":"gpt-y",
//!  "translation":{"from":"anthropic.messages","to":"openai.chat"},
//!  "notes":["..."],
//!  "attempts":[{"upstream":"a/main","model":"gpt-y","status":429,"ms":12.5,
//!               "outcome":"retry: 429, Retry-After 30 s"}]}
//! ```
//!
//! Unset fields are left out of the text. The writer bounds it (see
//! [`MAX_ATTEMPTS`], [`MAX_NOTES`], [`MAX_ROUTING_NOTE`]) and escapes control
//! characters, like every other text of the row.

use serde::{Deserialize, Deserializer, Serialize};

use crate::record::{clean, MAX_SHORT_FIELD};

/// Attempts kept per row: the first `MAX_ATTEMPTS - 1` and the last (the
/// one that answered, or failed for good); a note says how many were left out.
pub const MAX_ATTEMPTS: usize = 32;
/// Notes kept per row.
pub const MAX_NOTES: usize = 16;
/// Longest stored note or attempt outcome, in bytes. Model, upstream and
/// shape names are bounded like the row's other names
/// ([`MAX_SHORT_FIELD`](crate::record::MAX_SHORT_FIELD)).
pub const MAX_ROUTING_NOTE: usize = 1024;

/// How a request was routed; see the module docs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingDetail {
    /// The model the client asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<String>,
    /// The model the upstream that answered was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Set when the request was translated between API shapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translation: Option<TranslationRecord>,
    /// What else the router did or noticed (a dropped parameter, ...), for people.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Every attempt in order, the one that answered last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// A translation between API shapes, e.g. `anthropic.messages` -> `openai.chat`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TranslationRecord {
    /// The shape the client spoke.
    pub from: String,
    /// The shape sent upstream.
    pub to: String,
}

/// One try at an upstream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Attempt {
    /// `<upstream>/<account>` or `<upstream>`.
    pub upstream: String,
    /// The model asked of that upstream; empty when unknown.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// HTTP status the upstream answered; None when there was no answer
    /// (connection refused, timeout, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time from sending the request to the outcome, in milliseconds.
    #[serde(deserialize_with = "finite_or_zero")]
    pub ms: f64,
    /// What the router did with it, for people: `ok`, `retry: 429, Retry-After 30 s`, ...
    pub outcome: String,
}

/// serde_json writes a non-finite number as `null`: read it back as 0.
fn finite_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.filter(|v| v.is_finite()).unwrap_or(0.0))
}

impl RoutingDetail {
    /// Compact JSON text, fields in declaration order, unset ones left out:
    /// what [`AuditRecord::routing`](crate::AuditRecord::routing) stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("routing detail serialises")
    }

    /// Reads the text of [`AuditRecord::routing`](crate::AuditRecord::routing).
    /// Unknown fields (from a newer proxy) are ignored, missing ones default.
    pub fn from_json(text: &str) -> Result<RoutingDetail, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Control characters escaped, texts and lists bounded (see the constants).
    pub(crate) fn sanitize(&mut self) {
        for s in [&mut self.requested_model, &mut self.upstream_model]
            .into_iter()
            .flatten()
        {
            clean(s, MAX_SHORT_FIELD);
        }
        if let Some(t) = &mut self.translation {
            clean(&mut t.from, MAX_SHORT_FIELD);
            clean(&mut t.to, MAX_SHORT_FIELD);
        }
        let omitted = self.attempts.len().saturating_sub(MAX_ATTEMPTS);
        if omitted > 0 {
            let last = self.attempts.pop().expect("more than MAX_ATTEMPTS");
            self.attempts.truncate(MAX_ATTEMPTS - 1);
            self.attempts.push(last);
        }
        for a in &mut self.attempts {
            clean(&mut a.upstream, MAX_SHORT_FIELD);
            clean(&mut a.model, MAX_SHORT_FIELD);
            clean(&mut a.outcome, MAX_ROUTING_NOTE);
            if !a.ms.is_finite() {
                a.ms = 0.0;
            }
        }
        self.notes.truncate(MAX_NOTES);
        if omitted > 0 {
            if self.notes.len() == MAX_NOTES {
                self.notes.pop();
            }
            self.notes.push(format!(
                "{omitted} attempts not recorded: at most {MAX_ATTEMPTS} are kept, the first {} and the last",
                MAX_ATTEMPTS - 1
            ));
        }
        for n in &mut self.notes {
            clean(n, MAX_ROUTING_NOTE);
        }
    }
}

/// The stored form of a row's routing detail: a detail this crate can read
/// is re-encoded bounded and escaped; other text (a foreign or broken
/// writer) is kept as text, escaped and bounded; blank text means none.
pub(crate) fn sanitize_routing(routing: &mut Option<String>) {
    let Some(text) = routing else { return };
    if text.trim().is_empty() {
        *routing = None;
        return;
    }
    match RoutingDetail::from_json(text) {
        Ok(mut detail) => {
            detail.sanitize();
            let json = detail.to_json();
            if json != *text {
                *text = json;
            }
        }
        Err(_) => clean(text, crate::record::MAX_LONG_FIELD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> RoutingDetail {
        RoutingDetail {
            requested_model: Some("claude-x".into()),
            upstream_model: Some("gpt-y".into()),
            translation: Some(TranslationRecord {
                from: "anthropic.messages".into(),
                to: "openai.chat".into(),
            }),
            notes: vec!["thinking budget dropped".into()],
            attempts: vec![
                Attempt {
                    upstream: "a/main".into(),
                    model: "gpt-y".into(),
                    status: Some(429),
                    ms: 12.5,
                    outcome: "retry: 429, Retry-After 30 s".into(),
                },
                Attempt {
                    upstream: "a/backup".into(),
                    model: "gpt-y".into(),
                    status: Some(200),
                    ms: 812.0,
                    outcome: "ok".into(),
                },
            ],
        }
    }

    #[test]
    fn the_detail_is_compact_json_of_the_documented_shape_and_reads_back() {
        let d = example();
        let json = d.to_json();
        assert_eq!(
            json,
            "{\"requested_model\":\"claude-x\",\"upstream_model\":\"gpt-y\",\
             \"translation\":{\"from\":\"anthropic.messages\",\"to\":\"openai.chat\"},\
             \"notes\":[\"thinking budget dropped\"],\
             \"attempts\":[{\"upstream\":\"a/main\",\"model\":\"gpt-y\",\"status\":429,\"ms\":12.5,\
             \"outcome\":\"retry: 429, Retry-After 30 s\"},\
             {\"upstream\":\"a/backup\",\"model\":\"gpt-y\",\"status\":200,\"ms\":812.0,\"outcome\":\"ok\"}]}"
        );
        assert_eq!(RoutingDetail::from_json(&json).unwrap(), d);
    }

    #[test]
    fn unset_fields_are_left_out_and_unknown_ones_ignored() {
        let d = RoutingDetail {
            attempts: vec![Attempt {
                upstream: "local".into(),
                ms: 3.0,
                outcome: "connect: refused".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            d.to_json(),
            "{\"attempts\":[{\"upstream\":\"local\",\"ms\":3.0,\"outcome\":\"connect: refused\"}]}"
        );
        assert_eq!(RoutingDetail::default().to_json(), "{}");
        let newer = "{\"requested_model\":\"m\",\"budget\":{\"usd\":1},\"attempts\":[{\"upstream\":\"u\",\"ms\":null,\"outcome\":\"ok\",\"region\":\"eu\"}]}";
        let read = RoutingDetail::from_json(newer).unwrap();
        assert_eq!(read.requested_model.as_deref(), Some("m"));
        assert_eq!((read.attempts[0].ms, read.attempts[0].status), (0.0, None));
    }

    #[test]
    fn a_detail_is_stored_escaped_and_bounded() {
        let mut d = example();
        d.requested_model = Some("claude\u{1b}[2J".into());
        d.notes = (0..40).map(|i| format!("note {i}")).collect();
        d.notes[0] = "n".repeat(5000);
        d.attempts = (0..50)
            .map(|i| Attempt {
                upstream: format!("up-{i}"),
                ms: if i == 3 { f64::NAN } else { 1.0 },
                outcome: "o".repeat(3000),
                ..Default::default()
            })
            .collect();
        let mut stored = Some(d.to_json());
        sanitize_routing(&mut stored);
        let read = RoutingDetail::from_json(stored.as_deref().unwrap()).unwrap();
        assert_eq!(read.requested_model.as_deref(), Some("claude\\u{1b}[2J"));
        assert_eq!(read.attempts.len(), MAX_ATTEMPTS);
        assert_eq!(read.attempts[MAX_ATTEMPTS - 2].upstream, "up-30");
        assert_eq!(
            read.attempts[MAX_ATTEMPTS - 1].upstream,
            "up-49",
            "the last attempt is kept"
        );
        assert_eq!(read.attempts[3].ms, 0.0);
        assert!(read.attempts.iter().all(|a| a.outcome.len() <= MAX_ROUTING_NOTE));
        assert_eq!(read.notes.len(), MAX_NOTES);
        assert!(read.notes[0].len() <= MAX_ROUTING_NOTE);
        assert!(
            read.notes.last().unwrap().starts_with("18 attempts not recorded"),
            "{:?}",
            read.notes
        );
        // Storing again changes nothing.
        let again = stored.clone();
        sanitize_routing(&mut stored);
        assert_eq!(stored, again);
    }

    #[test]
    fn text_that_is_not_a_detail_is_kept_escaped_and_blank_text_means_none() {
        let mut stored = Some(format!("not json \u{7}{}", "x".repeat(20_000)));
        sanitize_routing(&mut stored);
        let text = stored.unwrap();
        assert!(text.starts_with("not json \\u{7}xx") && text.len() <= crate::record::MAX_LONG_FIELD);
        let mut blank = Some("  ".to_string());
        sanitize_routing(&mut blank);
        assert_eq!(blank, None);
    }
}
