//! The common model every codec decodes into and encodes from: one request,
//! one response, one stream of events, one error. A pair of shapes is
//! translated through it (`decode` in the source shape, `encode` in the
//! target's), so a new shape is one codec, not one converter per pair.
//!
//! Conventions all codecs share:
//! - Order is kept: system text, then turns in order, parts in order.
//! - Tool-call arguments are carried as the JSON *text* the model produced
//!   (`"{}"` when empty), never re-parsed, so placeholders in them survive.
//! - Token counts follow Anthropic's split: `input_tokens` excludes cache
//!   reads and writes (OpenAI's `prompt_tokens` includes them; the OpenAI
//!   codecs subtract on decode and add on encode).
//! - Nothing here is dropped silently: a codec that cannot carry something
//!   says so in [`Notes`], when decoding as when encoding (by field name,
//!   never content).
//! - Freeform (Codex `custom`) tools are [`ToolKind::Freeform`]; their
//!   `parameters` are the function form every other API is offered (one
//!   string parameter `input`, see [`freeform_parameters`]) and their calls'
//!   arguments are `{"input": <raw text>}`.

use serde_json::Value;

/// A request in no particular API's shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub model: String,
    /// System and developer instructions, in order (Anthropic `system`,
    /// Chat `system`/`developer` messages, Responses `instructions` and
    /// `system`/`developer` input items).
    pub system: Vec<Text>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// None: the API's default (parallel calls allowed).
    pub parallel_tool_calls: Option<bool>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub reasoning: Option<Reasoning>,
    /// An end-user id for the provider's abuse tracking (Anthropic
    /// `metadata.user_id`, OpenAI `user`/`safety_identifier`).
    pub user: Option<String>,
}

/// Text with its prompt-cache marker, if the source had one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text {
    pub text: String,
    /// Anthropic `cache_control`, kept for an Anthropic target only.
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn. Tool results are parts of a user turn (Anthropic's model);
/// the OpenAI codecs split them into `tool` messages / output items.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(Text),
    Image(Image),
    /// A call the model made. `arguments` is JSON text.
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// Model reasoning. `signature` (Anthropic) or `encrypted` (OpenAI
    /// reasoning items) only means something to the provider that made it;
    /// codecs for another provider drop the part and note it.
    Thinking(Thinking),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Base64 { media_type: String, data: String },
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments object (`"{}"` when the model sent none).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// Text and images; most results are one text part.
    pub content: Vec<Part>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Thinking {
    pub text: String,
    /// Which API made it (`anthropic`, `openai`): a signature or
    /// encrypted content is only valid there.
    pub origin: &'static str,
    /// Anthropic `signature`, byte for byte.
    pub signature: Option<String>,
    /// Anthropic `redacted_thinking.data` or OpenAI `encrypted_content`.
    pub encrypted: Option<String>,
    /// The Responses reasoning item's id (`rs_…`), which OpenAI wants back
    /// with the item.
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments (`{"type":"object"}` when absent; for a
    /// freeform tool the one-string-`input` schema of [`freeform_parameters`]).
    pub parameters: Value,
    pub cache_control: Option<Value>,
    pub kind: ToolKind,
    /// OpenAI's `strict` (schema-constrained arguments), when the source said.
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum ToolKind {
    #[default]
    Function,
    /// Takes raw text, not JSON (Codex `custom` tools such as `apply_patch`);
    /// `format` is the Responses `format` object (a grammar), verbatim.
    Freeform { format: Option<Value> },
}

/// The function schema a freeform tool is offered as to APIs that have only
/// function tools: one string `input`, described by the tool's grammar when
/// it has one.
pub fn freeform_parameters(format: Option<&Value>) -> Value {
    let mut description = "The tool's raw input text.".to_string();
    if let Some(f) = format.filter(|f| f.get("type").and_then(Value::as_str) == Some("grammar")) {
        let syntax = f.get("syntax").and_then(Value::as_str).unwrap_or("grammar");
        if let Some(def) = f.get("definition").and_then(Value::as_str) {
            description = format!("The tool's raw input text, in this {syntax} grammar:\n{def}");
        }
    }
    serde_json::json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"],
        "additionalProperties": false
    })
}

/// A freeform call's raw text from its function-form arguments
/// (`{"input": "..."}`); None when the arguments are not of that form.
pub fn freeform_input(arguments: &str) -> Option<String> {
    match serde_json::from_str::<Value>(arguments).ok()? {
        Value::Object(mut o) => match o.remove("input")? {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// A freeform call's raw text as function-form arguments.
pub fn freeform_arguments(input: &str) -> String {
    serde_json::json!({ "input": input }).to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called (Anthropic `any`, OpenAI `required`).
    Required,
    Tool(String),
}

/// The OpenAI effort a thinking budget stands for, in one place for every
/// codec. The bounds sit between the budgets the Anthropic codec writes for
/// each effort (low 2,048, medium 8,192, high 24,576), so an effort that
/// crosses to Anthropic and back is unchanged.
pub fn effort_for_budget(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..=4_096 => "low",
        4_097..=16_384 => "medium",
        _ => "high",
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reasoning {
    /// OpenAI `reasoning.effort` / `reasoning_effort`: `low`, `medium`, `high`, ...
    pub effort: Option<String>,
    /// Anthropic `thinking.budget_tokens`.
    pub budget_tokens: Option<u64>,
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub id: String,
    pub model: String,
    /// Text, tool calls and thinking, in the order the model produced them.
    pub parts: Vec<Part>,
    pub stop: Option<StopReason>,
    pub usage: TokenUsage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    /// Stopped by the provider's content filter or a refusal.
    ContentFilter,
    /// A reason no other API has a name for, kept as the source said it.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// Input not read from or written to the cache.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    /// Of the output, how much was reasoning (OpenAI reports it).
    pub reasoning_tokens: Option<u64>,
}

impl TokenUsage {
    /// All input, cached or not (OpenAI's `prompt_tokens`).
    pub fn total_input(&self) -> Option<u64> {
        let parts = [self.input_tokens, self.cache_read_tokens, self.cache_write_tokens];
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    }
}

/// One step of a streamed answer. A decoder emits a well-formed sequence:
/// `Start`, then parts one at a time (`PartStart`, its deltas, `PartStop`,
/// indices 0, 1, 2, ... with at most one part open), then `Finish`; or
/// `Error` at any point, which ends the stream. Encoders may rely on it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The answer began. `usage` holds what is known this early (input
    /// tokens, when the provider says them up front).
    Start {
        id: String,
        model: String,
        usage: TokenUsage,
    },
    PartStart {
        index: usize,
        part: PartStart,
    },
    Delta {
        index: usize,
        delta: Delta,
    },
    PartStop {
        index: usize,
    },
    /// The answer ended: why, and the final usage (decoders merge what
    /// the stream reported anywhere).
    Finish {
        stop: Option<StopReason>,
        usage: TokenUsage,
    },
    /// The provider reported an error inside the stream.
    Error(ApiError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PartStart {
    Text,
    /// Reasoning. `origin` is as [`Thinking::origin`]: an encoder drops
    /// (and notes) the signature and encrypted content of another origin;
    /// `id` is the Responses reasoning item's id.
    Thinking {
        origin: &'static str,
        id: Option<String>,
    },
    ToolCall {
        id: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Thinking(String),
    /// Anthropic's thinking signature (one `signature_delta`).
    Signature(String),
    /// Opaque reasoning, whole (Anthropic `redacted_thinking.data`, OpenAI
    /// `encrypted_content`), only valid at its origin.
    Encrypted(String),
    /// A fragment of a tool call's JSON arguments text.
    ToolArguments(String),
}

impl Delta {
    /// The delta's text, whatever its kind.
    pub fn text(&self) -> &str {
        match self {
            Delta::Text(s)
            | Delta::Thinking(s)
            | Delta::Signature(s)
            | Delta::Encrypted(s)
            | Delta::ToolArguments(s) => s,
        }
    }
}

/// A provider error, by kind rather than by any one API's `type` names.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status to answer with (a stream's in-band error keeps 200
    /// on the wire; this is the status the error stands for).
    pub status: u16,
    pub kind: ErrorKind,
    pub message: String,
    /// The provider's error code in OpenAI's vocabulary (the only API with
    /// codes): `context_length_exceeded`, `insufficient_quota`,
    /// `rate_limit_exceeded`, ...
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Overloaded,
    Timeout,
    Server,
}

impl ApiError {
    /// A stream that ended before the provider said why it stopped: the
    /// client gets an error (and retries) rather than a half answer passed
    /// off as complete (a tool call whose arguments were cut is not JSON).
    pub fn stream_cut() -> ApiError {
        ApiError {
            status: 502,
            kind: ErrorKind::Server,
            message: "the provider's stream was cut off before it ended; retry the request".into(),
            code: None,
        }
    }
}

impl ErrorKind {
    /// The kind a bare status stands for.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            529 | 503 => ErrorKind::Overloaded,
            504 | 408 => ErrorKind::Timeout,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Server,
        }
    }
}

/// What a translation could not carry, for the audit row and the logs
/// (never the client's data: names of fields and kinds only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notes(pub Vec<String>);

impl Notes {
    pub fn dropped(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.0.contains(&what) {
            self.0.push(what);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another's notes after these (no duplicates).
    pub fn extend(&mut self, other: &Notes) {
        for n in &other.0 {
            self.dropped(n.clone());
        }
    }
}
