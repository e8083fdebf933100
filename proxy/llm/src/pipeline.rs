//! The request side: parse the body for its API shape, scan every text
//! place (cached per block), then forward unchanged, forward with
//! placeholders, or block with an error in the client's own format.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::errors;
use crate::json::{self, Lit};
use crate::multipart;
use crate::restore::Restorer;
use crate::scan::{Action, BlockKey, Category, Hit, ScanCache, Scanner, SubHit};
use crate::shape::{ApiShape, NonJsonBody};
use crate::stream::EventRestorer;
use crate::vault::{self, ConversationOwner, Vault};
use crate::walk::{Mode, Place, Walk};

mod turns;

/// Knobs of the pipeline itself (detector policy lives in the detector).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Text blocks whose scan results are remembered (0 disables the cache).
    pub cache_entries: usize,
    /// Locations named in a block message before "and N more".
    pub max_locations_in_message: usize,
    /// Memory for the incremental next turn: the last requests of each
    /// owner, so a request extending one is inspected only where it is new
    /// (0 disables it).
    pub turn_memory_bytes: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            cache_entries: 100_000,
            max_locations_in_message: 5,
            turn_memory_bytes: 64 << 20,
        }
    }
}

/// Per-request inputs that are not in the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    /// Salt for the audit fingerprints of secrets.
    pub fingerprint_salt: &'a str,
    /// Who sent the request. A Responses follow-up continues only a
    /// conversation of the same owner; without one it starts afresh.
    pub owner: Option<ConversationOwner>,
    /// The request's Content-Type: a `multipart/form-data` body outside the
    /// JSON shapes is inspected part by part.
    pub content_type: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    #[default]
    Allowed,
    Redacted,
    Blocked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Redacted => "redacted",
            Verdict::Blocked => "blocked",
        }
    }
}

/// One finding, for the audit row. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRecord {
    pub kind: String,
    pub location: String,
    pub action: Action,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// Findings per detector kind.
    pub counts: BTreeMap<String, u32>,
    /// `(kind, salted fingerprint)` of each distinct secret.
    pub fingerprints: Vec<(String, String)>,
    pub findings: Vec<FindingRecord>,
    /// `model` from the request body.
    pub model: Option<String>,
    /// Why the request was blocked or rejected (what the client was told).
    pub message: Option<String>,
}

impl Report {
    /// Records the salted fingerprint of a secret once per distinct value.
    fn add_fingerprint(&mut self, kind: &str, salt: &str, value: &str) {
        let fp = (kind.to_string(), crate::detect_api::fingerprint(salt, value));
        if !self.fingerprints.contains(&fp) {
            self.fingerprints.push(fp);
        }
    }
}

#[derive(Debug)]
pub enum RequestOutcome {
    /// Send upstream: `body` None means the original bytes unchanged.
    /// `restorer` is Some when reversible placeholders were issued.
    Forward {
        body: Option<Bytes>,
        restorer: Option<Restorer>,
        report: Report,
    },
    /// Policy block: answer locally (422) in the client's error format.
    Block { status: u16, body: Bytes, report: Report },
    /// The body cannot be inspected (not JSON / not UTF-8): answer 400.
    Reject { status: u16, body: Bytes, report: Report },
}

impl RequestOutcome {
    pub fn report(&self) -> &Report {
        match self {
            RequestOutcome::Forward { report, .. }
            | RequestOutcome::Block { report, .. }
            | RequestOutcome::Reject { report, .. } => report,
        }
    }
}

/// What a WebSocket client message turned into.
#[derive(Debug)]
pub enum WsClientOutcome {
    /// Send upstream: `text` None means unchanged.
    Forward {
        text: Option<String>,
        report: Report,
    },
    /// Do not send; answer the client with this `error` event frame.
    Block {
        frame: String,
        report: Report,
    },
    Reject {
        frame: String,
        report: Report,
    },
}

/// The shape of WebSocket messages: the Codex Responses transport is the
/// only WebSocket API inspected.
const WS_SHAPE: ApiShape = ApiShape::OPENAI_RESPONSES;

/// Blocks only when a text block is at least this long are cached; shorter
/// ones are cheaper to scan than to look up.
const CACHE_MIN_LEN: usize = 24;

pub struct Pipeline {
    scanner: Arc<dyn Scanner>,
    cache: ScanCache,
    conversations: vault::ConversationMemory,
    turns: turns::TurnMemory,
    settings: PipelineSettings,
}

/// Responses API conversations remembered for `previous_response_id`.
const CONVERSATIONS: usize = 4096;

/// Findings one request may have. Each costs a few hundred bytes of
/// records, placeholders and restore map: 30 MiB of e-mail addresses (1.4
/// million) took a gigabyte to inspect, so a few such requests at once
/// killed the agent. Past the cap the request is refused, never forwarded.
pub const MAX_FINDINGS: usize = 100_000;

fn too_many_findings() -> Core {
    Core::Malformed {
        message: format!(
            "the body has more than {MAX_FINDINGS} findings (credentials, personal data), more than promptwall inspects in one request; split it"
        ),
    }
}

/// Pass 1's running state over places in walk order.
#[derive(Default)]
struct Pass1 {
    report: Report,
    blocked: Vec<(String, String)>,
    any_secret_block: bool,
    needs_edit: bool,
}

impl Pass1 {
    fn mark(&self, found: usize) -> turns::Mark {
        turns::Mark {
            found,
            findings: self.report.findings.len(),
            fingerprints: self.report.fingerprints.len(),
            needs_edit: self.needs_edit,
            issued: 0,
        }
    }
}

/// What [`Pipeline::finish`] decided, with what a passed request's next
/// turn can reuse.
enum Outcome {
    Core(Core),
    Pass {
        body: Option<String>,
        report: Report,
        /// Placeholders typed literally, by position.
        literals: Vec<(usize, String)>,
        /// The rewrites, sorted by position.
        edits: Vec<(Range<usize>, String)>,
    },
    /// The reused results do not hold: inspect the whole body.
    Retry,
}

impl Outcome {
    fn core(self) -> Core {
        match self {
            Outcome::Core(core) => core,
            Outcome::Pass { body, report, .. } => Core::Pass { body, report },
            Outcome::Retry => unreachable!("a full inspection never retries"),
        }
    }
}

enum Core {
    Pass {
        body: Option<String>,
        report: Report,
    },
    Blocked {
        message: String,
        any_secret: bool,
        report: Report,
    },
    Malformed {
        message: String,
    },
}

impl Pipeline {
    pub fn new(scanner: impl Scanner + 'static, settings: PipelineSettings) -> Self {
        Pipeline {
            scanner: Arc::new(scanner),
            cache: ScanCache::new(settings.cache_entries),
            conversations: vault::ConversationMemory::new(CONVERSATIONS),
            turns: turns::TurnMemory::new(settings.turn_memory_bytes),
            settings,
        }
    }

    /// Records the placeholders behind a Responses API answer, so a request
    /// of the same `owner` naming it as `previous_response_id` keeps their
    /// numbers (and only such a request can have them restored).
    pub fn remember_response(&self, owner: ConversationOwner, response_id: &str, restorer: &Restorer) {
        self.conversations.remember(owner, response_id, restorer.map.clone());
    }

    /// Number of remembered Responses conversations.
    pub fn remembered_responses(&self) -> usize {
        self.conversations.len()
    }

    /// The vault a request starts from: a Responses follow-up continues the
    /// numbering of the answer it names if the same owner got that answer;
    /// everything else starts empty.
    fn starting_vault(&self, shape: ApiShape, body: &[u8], owner: Option<ConversationOwner>) -> Vault {
        let (Some(owner), Some(field)) = (owner, shape.continuation_field()) else {
            return Vault::new();
        };
        if memchr::memmem::find(body, format!("\"{field}\"").as_bytes()).is_none() {
            return Vault::new();
        }
        let previous = std::str::from_utf8(body)
            .ok()
            .and_then(|t| json::parse(t).ok())
            .and_then(|root| root.str_field(field).map(Cow::into_owned));
        match previous.and_then(|id| self.conversations.get(owner, &id)) {
            Some(map) => Vault::continuing(&map),
            None => Vault::new(),
        }
    }

    pub fn inspect_request(&self, shape: ApiShape, body: &[u8], ctx: &RequestContext) -> RequestOutcome {
        let mut vault = self.starting_vault(shape, body, ctx.owner);
        let scan_as_text = shape.non_json_body() == NonJsonBody::ScanAsText;
        // Uploads: each part on its own. One that does not parse is scanned
        // whole below, as any other text.
        if let Some(boundary) = ctx.content_type.filter(|_| scan_as_text).and_then(multipart::boundary) {
            if let Ok(parts) = multipart::parts(body, boundary) {
                return self.inspect_multipart(shape, body, &parts, ctx);
            }
        }
        // The restore map of an inspection that kept its vault for the next turn.
        let mut turn_map = None;
        let core = match std::str::from_utf8(body) {
            // Unknown endpoints (legacy completions, telemetry, new APIs) are
            // still checked for credentials: every JSON string, secrets only.
            // Other text (form posts, plain text) is checked as a whole.
            // A JSON-looking body we could not parse (too deep, too large,
            // NDJSON) is scanned through a view with its escapes undone, so
            // `\u0041KIA…` is still seen; such a view cannot be rewritten.
            Ok(t) if scan_as_text && json::parse(t).is_err() => match unescaped_view(t) {
                Cow::Borrowed(_) => self.inspect_opaque(t, true, ctx),
                Cow::Owned(view) => self.inspect_opaque(&view, false, ctx),
            },
            // A request of a known owner may extend its previous one.
            Ok(t) => match ctx
                .owner
                .filter(|_| vault.is_empty() && self.settings.turn_memory_bytes > 0)
            {
                Some(owner) => {
                    let (core, map) = self.inspect_turn(shape, t, ctx, owner);
                    turn_map = Some(map);
                    core
                }
                None => self.inspect_core(shape, t, ctx, &mut vault),
            },
            Err(_) if scan_as_text => self.inspect_opaque(&String::from_utf8_lossy(body), false, ctx),
            Err(_) => return self.reject(shape, "the request body is not valid UTF-8".into()),
        };
        match core {
            Core::Pass { body, report } => RequestOutcome::Forward {
                body: body.map(Bytes::from),
                restorer: turn_map
                    .unwrap_or_else(|| vault.restore_map())
                    .map(|map| Restorer { map }),
                report,
            },
            Core::Blocked {
                message,
                any_secret,
                report,
            } => block_outcome(shape, &message, any_secret, report),
            Core::Malformed { message } => self.reject(shape, message),
        }
    }

    /// A multipart body: text parts are scanned like any opaque text (a
    /// credential to redact is replaced in place), base64 parts are decoded
    /// and scanned (a credential there blocks: the encoding cannot be kept
    /// in a rewrite), and binary parts are scanned as bytes for credentials
    /// and counted as `binary_part_unscanned` on the row: nothing else in
    /// them (images, audio, PDFs) is read.
    fn inspect_multipart(
        &self,
        shape: ApiShape,
        body: &[u8],
        parts: &[multipart::Part],
        ctx: &RequestContext,
    ) -> RequestOutcome {
        let mut report = Report::default();
        let mut out: Vec<u8> = Vec::with_capacity(body.len());
        let mut copied = 0;
        let mut changed = false;
        for part in parts {
            let bytes = &body[part.content.clone()];
            // What base64 hides is scanned besides the part itself (text
            // that merely looks like base64 is still scanned as written).
            let mut views = Vec::with_capacity(2);
            if let Some(text) = decoded_base64_text(part, bytes) {
                views.push((self.inspect_opaque(&text, false, ctx), false));
            }
            views.push(match std::str::from_utf8(bytes) {
                Ok(text) => (self.inspect_opaque(text, true, ctx), true),
                Err(_) => {
                    *report.counts.entry("binary_part_unscanned".into()).or_default() += 1;
                    (self.inspect_opaque(&String::from_utf8_lossy(bytes), false, ctx), false)
                }
            });
            for (core, rewritable) in views {
                match core {
                    Core::Pass { body: new, report: r } => {
                        merge(&mut report, r);
                        if let (Some(new), true) = (new, rewritable) {
                            out.extend_from_slice(&body[copied..part.content.start]);
                            out.extend_from_slice(new.as_bytes());
                            copied = part.content.end;
                            changed = true;
                        }
                    }
                    Core::Blocked {
                        message,
                        any_secret,
                        report: r,
                    } => {
                        merge(&mut report, r);
                        report.verdict = Verdict::Blocked;
                        report.message = Some(message.clone());
                        return block_outcome(shape, &message, any_secret, report);
                    }
                    Core::Malformed { message } => return self.reject(shape, message),
                }
            }
        }
        let body = changed.then(|| {
            out.extend_from_slice(&body[copied..]);
            Bytes::from(out)
        });
        RequestOutcome::Forward {
            body,
            restorer: None,
            report,
        }
    }

    /// A body outside the JSON shapes: blocked when it carries a credential
    /// whose action is `block`; a credential whose action is `redact` or
    /// `reversible` is replaced by `[[REDACTED_KIND]]` (there is no structure
    /// to restore into, so never reversibly); otherwise forwarded byte for
    /// byte. `lossless` is false when `text` is a lossy view of a body that
    /// is not UTF-8: a finding to rewrite there blocks instead (the bytes
    /// cannot be rewritten without changing the rest).
    fn inspect_opaque(&self, text: &str, lossless: bool, ctx: &RequestContext) -> Core {
        let mut report = Report::default();
        let mut blocked = Vec::new();
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        let hits = self.scanner.scan(text);
        if hits.len() > MAX_FINDINGS {
            return too_many_findings();
        }
        for hit in hits {
            if hit.category != Category::Secret || hit.action == Action::Off {
                continue;
            }
            *report.counts.entry(hit.kind.to_string()).or_default() += 1;
            report.findings.push(FindingRecord {
                kind: hit.kind.to_string(),
                location: "body".into(),
                action: hit.action,
            });
            report.add_fingerprint(&hit.kind, ctx.fingerprint_salt, &text[hit.start..hit.end]);
            if hit.action == Action::Block || !lossless {
                blocked.push((hit.kind.to_string(), "body".to_string()));
            } else {
                edits.push((hit.start..hit.end, vault::redacted_placeholder(&hit.kind)));
            }
        }
        if !blocked.is_empty() {
            return self.blocked(blocked, true, report);
        }
        if edits.is_empty() {
            return Core::Pass { body: None, report };
        }
        // Overlapping hits: keep the first of each overlapping run.
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (range, placeholder) in edits {
            if range.start < at {
                continue;
            }
            out.push_str(&text[at..range.start]);
            out.push_str(&placeholder);
            at = range.end;
        }
        out.push_str(&text[at..]);
        report.verdict = Verdict::Redacted;
        Core::Pass {
            body: Some(out),
            report,
        }
    }

    fn reject(&self, shape: ApiShape, what: String) -> RequestOutcome {
        let message = format!(
            "promptwall could not inspect this request: {what}. It was not sent to the provider; send a valid JSON body."
        );
        let body = errors::error_body_with_code(shape, 400, "invalid_request_error", Some("invalid_json"), &message);
        RequestOutcome::Reject {
            status: 400,
            body,
            report: Report {
                message: Some(message),
                ..Default::default()
            },
        }
    }

    /// Inspect one client message of a Codex Responses WebSocket. The vault
    /// keeps placeholders across the connection's messages.
    ///
    /// Every message is read as a Responses request whatever its `type`:
    /// `response.create` is, other client events (`response.steer`, types
    /// added later) can carry `input` too, and the walk scans any other
    /// field for secrets as the generic walk does.
    pub fn inspect_ws_client_message(&self, text: &str, vault: &mut Vault, ctx: &RequestContext) -> WsClientOutcome {
        match self.inspect_core(WS_SHAPE, text, ctx, vault) {
            Core::Pass { body, report } => WsClientOutcome::Forward { text: body, report },
            Core::Blocked {
                message,
                any_secret,
                report,
            } => {
                let code = if any_secret {
                    "secret_detected"
                } else {
                    "sensitive_data_detected"
                };
                WsClientOutcome::Block {
                    frame: errors::ws_error_frame(422, "invalid_request_error", code, &message),
                    report,
                }
            }
            Core::Malformed { message } => {
                let message = format!("promptwall could not inspect this message: {message}. It was not sent.");
                WsClientOutcome::Reject {
                    frame: errors::ws_error_frame(400, "invalid_request_error", "invalid_json", &message),
                    report: Report {
                        message: Some(message),
                        ..Default::default()
                    },
                }
            }
        }
    }

    /// Restore placeholders in one server event frame of a Responses
    /// WebSocket. Returns the frames to send, in order (usually exactly one;
    /// a held-back partial placeholder may be flushed as an extra delta).
    pub fn restore_ws_server_message(&self, text: &str, vault: &mut Vault) -> Vec<String> {
        crate::response::observe_event(&mut vault.ws_usage, WS_SHAPE, None, text);
        let Some(map) = vault.restore_map() else {
            return vec![text.to_string()];
        };
        let events = vault.ws_events.get_or_insert_with(|| EventRestorer::new(map.clone()));
        events.set_map(map);
        let result = WS_SHAPE.restore_event(events, None, text);
        let mut out: Vec<String> = result.before.into_iter().map(|e| e.data).collect();
        out.push(result.replaced.unwrap_or_else(|| text.to_string()));
        out
    }

    fn inspect_core(&self, shape: ApiShape, text: &str, ctx: &RequestContext, vault: &mut Vault) -> Core {
        self.inspect_full(shape, text, ctx, vault, false).0
    }

    /// The whole body, walked, scanned and rewritten; with `record`, also
    /// what a next turn extending it can reuse (when its walk allows).
    fn inspect_full(
        &self,
        shape: ApiShape,
        text: &str,
        ctx: &RequestContext,
        vault: &mut Vault,
        record: bool,
    ) -> (Core, Option<turns::Turn>) {
        let (root, nodes) = match json::parse_counted(text) {
            Ok(r) => r,
            Err(e) if e.is_too_many_nodes() => return (Core::Malformed { message: e.what.into() }, None),
            Err(e) => {
                let message = format!("the body is not valid JSON ({e})");
                return (Core::Malformed { message }, None);
            }
        };
        let model = root.str_field("model").map(Cow::into_owned);
        let mut walk = Walk::new(text);
        shape.walk(&mut walk, &root);
        let results = self.scan_places(&walk.places);
        let found: usize = results.iter().map(|hits| hits.len()).sum();
        if found > MAX_FINDINGS {
            return (too_many_findings(), None);
        }
        // A mark after the places before the conversation and after each of
        // its items.
        let conversation = if record { walk.conversation() } else { None };
        let bounds: Vec<usize> = match &conversation {
            Some(c) => c.item_starts.iter().copied().chain([walk.places.len()]).collect(),
            None => Vec::new(),
        };

        let mut st = Pass1 {
            report: Report {
                model,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut marks = self.pass1(&walk, &walk.places, &results, &mut st, ctx, &bounds, 0);
        let literals = |protected: &[Range<usize>]| vault::literal_placeholders_at(text, protected);
        let outcome = self.finish(
            &walk.places,
            &results,
            st,
            vault,
            &bounds,
            &mut marks,
            text,
            literals,
            Vec::new(),
            |_| true,
        );
        match (outcome, conversation) {
            (
                Outcome::Pass {
                    body,
                    report,
                    literals,
                    edits,
                },
                Some(c),
            ) => {
                let turn = turns::Turn::new(text, c.key, nodes, marks, &report, literals, edits, vault);
                (Core::Pass { body, report }, turn)
            }
            (outcome, _) => (outcome.core(), None),
        }
    }

    /// Pass 1 over `places` from `st`: which findings apply, and does any
    /// of them block? Returns a mark at each of `bounds` (place indexes);
    /// `found` counts the findings of the places before these.
    #[allow(clippy::too_many_arguments)]
    fn pass1(
        &self,
        walk: &Walk<'_, '_>,
        places: &[Place<'_, '_>],
        results: &[Arc<[SubHit]>],
        st: &mut Pass1,
        ctx: &RequestContext,
        bounds: &[usize],
        mut found: usize,
    ) -> Vec<turns::Mark> {
        let mut marks = Vec::with_capacity(bounds.len());
        let mut next = 0;
        for (i, (place, hits)) in places.iter().zip(results).enumerate() {
            while bounds.get(next) == Some(&i) {
                marks.push(st.mark(found));
                next += 1;
            }
            found += hits.len();
            if !hits.is_empty() {
                self.note_place(walk, place, hits, st, ctx);
            }
        }
        while next < bounds.len() {
            marks.push(st.mark(found));
            next += 1;
        }
        marks
    }

    fn note_place(
        &self,
        walk: &Walk<'_, '_>,
        place: &Place<'_, '_>,
        hits: &[SubHit],
        st: &mut Pass1,
        ctx: &RequestContext,
    ) {
        let report = &mut st.report;
        // A location names object keys, and a key may be the secret
        // itself: it goes back to the client and into the audit only
        // with findings replaced.
        let location = walk.location(place.path);
        let location = crate::scan::scrub(self.scanner.as_ref(), &location).unwrap_or(location);
        for seg in segments(place, hits) {
            let mut decoded: Option<Cow<'_, str>> = None;
            for hit in applicable(place.mode, &seg.hits) {
                let action = effective_action(place.mode, hit);
                *report.counts.entry(hit.kind.to_string()).or_default() += 1;
                report.findings.push(FindingRecord {
                    kind: hit.kind.to_string(),
                    location: location.clone(),
                    action,
                });
                if hit.category == Category::Secret {
                    let text: &str = match &seg.text {
                        Some(t) => t,
                        None => decoded.get_or_insert_with(|| place.lit.decode()),
                    };
                    report.add_fingerprint(&hit.kind, ctx.fingerprint_salt, &text[hit.start..hit.end]);
                }
                match action {
                    Action::Block => {
                        st.any_secret_block |= hit.category == Category::Secret;
                        let where_ = if place.mode == Mode::Protected {
                            format!("{location} (a signed thinking block, which cannot be redacted)")
                        } else {
                            location.clone()
                        };
                        st.blocked.push((hit.kind.to_string(), where_));
                    }
                    Action::Redact | Action::Reversible => st.needs_edit = true,
                    Action::Off => {}
                }
            }
        }
    }

    /// After pass 1: block, pass unchanged, or pass 2: rewrite the
    /// affected strings, in walk order so placeholder numbers follow first
    /// appearance. `edits` holds the rewrites of earlier places (sorted by
    /// position); `literals` finds the placeholders typed literally given
    /// the protected ranges of `places`; a rewrite happens only if
    /// `taken_ok` accepts the set of them (else [`Outcome::Retry`]).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        places: &[Place<'_, '_>],
        results: &[Arc<[SubHit]>],
        mut st: Pass1,
        vault: &mut Vault,
        bounds: &[usize],
        marks: &mut [turns::Mark],
        text: &str,
        literals: impl FnOnce(&[Range<usize>]) -> Vec<(usize, String)>,
        mut edits: Vec<(Range<usize>, String)>,
        taken_ok: impl FnOnce(&std::collections::HashSet<String>) -> bool,
    ) -> Outcome {
        if !st.blocked.is_empty() {
            return Outcome::Core(self.blocked(st.blocked, st.any_secret_block, st.report));
        }
        // Placeholders inside signed model output (thinking) are the model
        // quoting ours from an earlier turn; they cannot be restored there,
        // and counting them as typed would renumber the next turn.
        let mut protected: Vec<Range<usize>> = places
            .iter()
            .filter(|p| p.mode == Mode::Protected)
            .map(|p| p.lit.range())
            .collect();
        protected.sort_by_key(|r| r.start);
        let literals = literals(&protected);
        if !st.needs_edit {
            return Outcome::Pass {
                body: None,
                report: st.report,
                literals,
                edits,
            };
        }
        let taken: std::collections::HashSet<String> = literals.iter().map(|(_, p)| p.clone()).collect();
        if !taken_ok(&taken) {
            return Outcome::Retry;
        }
        let mut next = 0;
        for (i, (place, hits)) in places.iter().zip(results).enumerate() {
            while bounds.get(next) == Some(&i) {
                marks[next].issued = vault.len();
                next += 1;
            }
            if !hits.is_empty() {
                rewrite_place(place, hits, vault, &taken, &mut edits);
            }
        }
        while next < bounds.len() {
            marks[next].issued = vault.len();
            next += 1;
        }
        st.report.verdict = Verdict::Redacted;
        let body = json::splice(text, &mut edits);
        Outcome::Pass {
            body: Some(body),
            report: st.report,
            literals,
            edits,
        }
    }

    /// The block outcome: the report says why, in the words the client gets.
    fn blocked(&self, blocked: Vec<(String, String)>, any_secret: bool, mut report: Report) -> Core {
        report.verdict = Verdict::Blocked;
        let message = self.block_message(&blocked);
        report.message = Some(message.clone());
        Core::Blocked {
            message,
            any_secret,
            report,
        }
    }

    fn block_message(&self, blocked: &[(String, String)]) -> String {
        let max = self.settings.max_locations_in_message.max(1);
        let mut listed: Vec<String> = blocked.iter().take(max).map(|(k, l)| format!("{k} at {l}")).collect();
        if blocked.len() > max {
            listed.push(format!("and {} more", blocked.len() - max));
        }
        format!(
            "promptwall blocked this request: it contains data that policy forbids sending to the model provider ({}). \
             Nothing was sent. Remove the value from the prompt, files or tool output (rotate the credential if it is real) and retry.",
            listed.join(", ")
        )
    }

    /// Scan results for every place, from the cache where possible.
    fn scan_places(&self, places: &[Place<'_, '_>]) -> Vec<Arc<[SubHit]>> {
        let keys: Vec<Option<BlockKey>> = places
            .iter()
            .map(|p| (p.lit.raw.len() >= CACHE_MIN_LEN).then(|| self.cache.key(p.lit.raw, p.mode == Mode::JsonText)))
            .collect();
        let cached = self.cache.get_many(&keys);
        let mut fresh = Vec::new();
        let results = places
            .iter()
            .zip(keys)
            .zip(cached)
            .map(|((place, key), cached)| {
                cached.unwrap_or_else(|| {
                    let hits: Arc<[SubHit]> = self.scan_place(place).into();
                    if let Some(k) = key {
                        fresh.push((k, hits.clone()));
                    }
                    hits
                })
            })
            .collect();
        self.cache.insert_many(fresh);
        results
    }

    fn scan_place(&self, place: &Place<'_, '_>) -> Vec<SubHit> {
        let text = place.lit.decode();
        if place.mode == Mode::JsonText {
            if let Ok(inner) = json::parse(&text) {
                let mut out = Vec::new();
                let mut i = 0u32;
                inner.for_each_string(&mut |lit| {
                    let leaf = lit.decode();
                    out.extend(self.scanner.scan(&leaf).into_iter().map(|hit| SubHit { sub: i, hit }));
                    i += 1;
                });
                return out;
            }
        }
        // Past the cap the request is refused: keep only enough to say so.
        self.scanner
            .scan(&text)
            .into_iter()
            .take(MAX_FINDINGS + 1)
            .map(|hit| SubHit { sub: u32::MAX, hit })
            .collect()
    }
}

/// `text` with JSON string escapes undone wherever they appear (lossy:
/// invalid escapes stay as written, lone surrogates become U+FFFD).
fn unescaped_view(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, n)| n) {
            Some('u') => {
                let hex = text.get(i + 2..i + 6).and_then(|h| u32::from_str_radix(h, 16).ok());
                match hex {
                    Some(unit) => {
                        out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        for _ in 0..5 {
                            chars.next();
                        }
                    }
                    None => out.push('\\'),
                }
            }
            Some(e @ ('n' | 't' | 'r' | 'b' | 'f' | '/' | '"' | '\\')) => {
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    other => other,
                });
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A scanned piece of a place: the whole string, or one string inside
/// JSON-text arguments.
struct Segment<'s> {
    /// Decoded text of an inner string; None for the place's own string
    /// (decoded only when needed: most findings are rewritten in place).
    text: Option<Cow<'s, str>>,
    /// Range of the inner literal inside the decoded arguments.
    inner: Option<Range<usize>>,
    hits: Vec<Hit>,
}

fn segments<'s>(place: &Place<'s, '_>, hits: &[SubHit]) -> Vec<Segment<'s>> {
    let whole: Vec<Hit> = hits
        .iter()
        .filter(|h| h.sub == u32::MAX)
        .map(|h| h.hit.clone())
        .collect();
    let mut out = Vec::new();
    if !whole.is_empty() || hits.is_empty() {
        out.push(Segment {
            text: None,
            inner: None,
            hits: whole,
        });
    }
    if hits.iter().any(|h| h.sub != u32::MAX) {
        let args = place.lit.decode();
        if let Ok(inner) = json::parse(&args) {
            let mut i = 0u32;
            let mut leaves: Vec<(Lit<'_>, u32)> = Vec::new();
            inner.for_each_string(&mut |lit| {
                leaves.push((*lit, i));
                i += 1;
            });
            for (lit, idx) in leaves {
                let leaf_hits: Vec<Hit> = hits.iter().filter(|h| h.sub == idx).map(|h| h.hit.clone()).collect();
                if !leaf_hits.is_empty() {
                    out.push(Segment {
                        text: Some(Cow::Owned(lit.decode().into_owned())),
                        inner: Some(lit.range()),
                        hits: leaf_hits,
                    });
                }
            }
        }
    }
    out
}

/// Hits that apply in this mode, valid and non-overlapping, in text order.
fn applicable(mode: Mode, hits: &[Hit]) -> Vec<&Hit> {
    let mut v: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.action != Action::Off && h.start < h.end)
        .filter(|h| matches!(mode, Mode::Text | Mode::JsonText) || h.category == Category::Secret)
        .collect();
    v.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
    let mut end = 0;
    v.retain(|h| {
        let keep = h.start >= end;
        if keep {
            end = h.end;
        }
        keep
    });
    v
}

fn effective_action(mode: Mode, hit: &Hit) -> Action {
    if mode == Mode::Protected {
        Action::Block
    } else {
        hit.action
    }
}

/// Replace the hits of `text` with placeholders.
fn redact_text(
    text: &str,
    hits: &[&Hit],
    vault: &mut Vault,
    taken: &std::collections::HashSet<String>,
) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = false;
    for hit in hits {
        if hit.end > text.len() || !text.is_char_boundary(hit.start) || !text.is_char_boundary(hit.end) {
            continue;
        }
        let Some(new) = replacement(hit, &text[hit.start..hit.end], vault, taken) else {
            continue;
        };
        out.push_str(&text[at..hit.start]);
        out.push_str(&new);
        at = hit.end;
        changed = true;
    }
    out.push_str(&text[at..]);
    changed.then_some(out)
}

/// The placeholder that replaces `value`, if the hit rewrites.
fn replacement(hit: &Hit, value: &str, vault: &mut Vault, taken: &std::collections::HashSet<String>) -> Option<String> {
    match hit.action {
        Action::Reversible => Some(vault.placeholder_for(&hit.kind, value, taken)),
        Action::Redact => Some(vault::redacted_placeholder(&hit.kind)),
        Action::Block | Action::Off => None,
    }
}

/// Body edits for a place's rewritten findings. Findings in the string
/// itself are replaced where they sit in the raw literal: every other byte
/// (and escape) stays as the client sent it, and a long tool result with
/// one email costs a few small edits instead of decoding and re-encoding
/// it. Findings inside JSON-text arguments rewrite the whole literal.
fn rewrite_place(
    place: &Place<'_, '_>,
    hits: &[SubHit],
    vault: &mut Vault,
    taken: &std::collections::HashSet<String>,
    edits: &mut Vec<(Range<usize>, String)>,
) {
    if place.mode == Mode::Protected {
        return;
    }
    let segs = segments(place, hits);
    let mut inner_edits: Vec<(Range<usize>, String)> = Vec::new();
    for seg in &segs {
        let hs = applicable(place.mode, &seg.hits);
        match (&seg.text, &seg.inner) {
            (Some(text), Some(range)) => {
                if let Some(new) = redact_text(text, &hs, vault, taken) {
                    inner_edits.push((range.clone(), json::quote(&new)));
                }
            }
            _ => {
                let bounds: Vec<usize> = hs.iter().flat_map(|h| [h.start, h.end]).collect();
                let raw = place.lit.raw_offsets(&bounds);
                // Content starts after the opening quote.
                let base = place.lit.start + 1;
                for (hit, pair) in hs.iter().zip(raw.chunks(2)) {
                    let (Some(start), Some(end)) = (pair[0], pair[1]) else {
                        continue;
                    };
                    let Some(raw_value) = place.lit.raw.get(start..end) else {
                        continue;
                    };
                    let value = json::Lit {
                        start: 0,
                        raw: raw_value,
                        escaped: raw_value.contains('\\'),
                    }
                    .decode();
                    if let Some(new) = replacement(hit, &value, vault, taken) {
                        edits.push((base + start..base + end, json::escape_inner(&new).into_owned()));
                    }
                }
            }
        }
    }
    if inner_edits.is_empty() {
        return;
    }
    let args = place.lit.decode();
    edits.push((place.lit.range(), json::quote(&json::splice(&args, &mut inner_edits))));
}

/// The answer to a blocked request, in its shape's envelope.
fn block_outcome(shape: ApiShape, message: &str, any_secret: bool, report: Report) -> RequestOutcome {
    let code = if any_secret {
        "secret_detected"
    } else {
        "sensitive_data_detected"
    };
    let body = errors::error_body_with_code(shape, 422, "invalid_request_error", Some(code), message);
    RequestOutcome::Block {
        status: 422,
        body,
        report,
    }
}

/// Adds one part's findings to the request's report.
fn merge(into: &mut Report, part: Report) {
    for (kind, n) in part.counts {
        *into.counts.entry(kind).or_default() += n;
    }
    for fp in part.fingerprints {
        if !into.fingerprints.contains(&fp) {
            into.fingerprints.push(fp);
        }
    }
    into.findings.extend(part.findings);
    if part.verdict == Verdict::Redacted && into.verdict == Verdict::Allowed {
        into.verdict = Verdict::Redacted;
    }
}

/// A part whose text hides behind base64: declared so
/// (`Content-Transfer-Encoding: base64`), or a body of nothing but base64
/// that decodes to UTF-8 text. Bounded: parts over 16 MiB are not decoded.
fn decoded_base64_text(part: &crate::multipart::Part, bytes: &[u8]) -> Option<String> {
    use base64::Engine as _;
    const MAX: usize = 16 << 20;
    let declared = part.transfer_encoding.as_deref() == Some("base64");
    let looks = bytes.len() >= 16
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n'));
    if bytes.len() > MAX || !(declared || looks) {
        return None;
    }
    let compact: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
    String::from_utf8(raw).ok()
}
