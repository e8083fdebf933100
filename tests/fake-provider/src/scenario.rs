//! How a request steers the fake: trigger words in the last user text and
//! `x-fake-*` headers. Kept in one place so tests and docs agree.
//!
//! | trigger | effect |
//! |---|---|
//! | `TOOLTEST` | answer with a tool call (`echo hello-from-tool`) to the tool [`pick_tool`] chooses (Gemini: a `functionCall` with a `thoughtSignature`, arguments fitted to the declaration) |
//! | `ECHOARGS` | answer with a tool call whose arguments contain the user's text |
//! | a tool result last (`tool_result`, `role: tool`, `function_call_output`, `functionResponse`) | answer `Tool said: <output>` |
//! | Gemini `generationConfig.responseMimeType: application/json` | answer a minimal JSON object fitting `responseJsonSchema`/`responseSchema` (before any tool trigger: Gemini CLI's router carries the prompt) |
//! | `MIDSTREAMERROR` | streamed answers end with an `error` event after two deltas (Gemini: `data: {"error": {"code": 500, .., "status": "INTERNAL"}}`) |
//! | `SLOWSTREAM` / `x-fake-slow: 1` | pause `slow_delay_ms` between streamed events |
//! | `BIGANSWER` | 200 text deltas |
//! | `FAKESTATUS<nnn>` / `x-fake-status: nnn` | answer status nnn in the provider's error format |
//! | `x-fake-events: N` | N text deltas |
//! | `x-fake-body-bytes: N` | pad the answer by about N bytes |
//! | `x-fake-chunk-chars: N` | stream the answer text in N-character deltas (splits words and placeholders) |
//! | `x-fake-split-bytes: N` | write the response body in N-byte pieces (events split across reads) |
//! | `FAKESTATUS<nnn>` in the API key (`x-api-key`, `authorization`, `api-key`, `x-goog-api-key`, Gemini's `?key=`) | answer status nnn: one account of several fails (routing tests) |
//! | `FAKERETRY<n>` in the API key | a `retry-after` of n seconds on an injected 429/503/529 (default 1) |

use http::HeaderMap;

pub const BIG_ANSWER_EVENTS: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scenario {
    pub status: Option<u16>,
    pub tool: bool,
    pub echo_args: bool,
    pub midstream_error: bool,
    pub slow: bool,
    pub events: Option<usize>,
    pub pad_bytes: usize,
    pub chunk_chars: Option<usize>,
}

fn header_num<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Scenario {
    pub fn from(headers: &HeaderMap, user_text: &str) -> Scenario {
        Scenario::from_key(headers, &api_key(headers), user_text)
    }

    /// As [`Scenario::from`], with the API key given (Gemini's may come as `?key=`).
    pub fn from_key(headers: &HeaderMap, key: &str, user_text: &str) -> Scenario {
        let status = header_num::<u16>(headers, "x-fake-status")
            .or_else(|| status_trigger(key))
            .or_else(|| status_trigger(user_text));
        let events = header_num::<usize>(headers, "x-fake-events")
            .or_else(|| user_text.contains("BIGANSWER").then_some(BIG_ANSWER_EVENTS));
        Scenario {
            status: status.filter(|s| (100..=999).contains(s)),
            tool: user_text.contains("TOOLTEST"),
            echo_args: user_text.contains("ECHOARGS"),
            midstream_error: user_text.contains("MIDSTREAMERROR"),
            slow: user_text.contains("SLOWSTREAM") || header_num::<u8>(headers, "x-fake-slow").is_some_and(|v| v != 0),
            events,
            pad_bytes: header_num(headers, "x-fake-body-bytes").unwrap_or(0),
            chunk_chars: header_num::<usize>(headers, "x-fake-chunk-chars").filter(|n| *n > 0),
        }
    }

    /// The answer text as streamed deltas: by word (see [`answer_chunks`]),
    /// or in `chunk_chars`-character pieces.
    pub fn text_chunks(&self, answer: &str) -> Vec<String> {
        match self.chunk_chars {
            Some(n) => split_n(answer, answer.chars().count().div_ceil(n)),
            None => answer_chunks(answer, self.events),
        }
    }

    pub fn wants_tool(&self) -> bool {
        self.tool || self.echo_args
    }
}

/// The request's API key, whichever header carries it ("" without one).
pub fn api_key(headers: &HeaderMap) -> String {
    ["x-api-key", "authorization", "api-key", "x-goog-api-key"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `FAKERETRY30` in the API key: the injected error's `retry-after`.
pub fn retry_after_trigger(headers: &HeaderMap) -> Option<u64> {
    retry_in_key(&api_key(headers))
}

/// `FAKERETRY30` in `key`: the injected error's `retry-after`.
pub fn retry_in_key(key: &str) -> Option<u64> {
    let at = key.find("FAKERETRY")? + "FAKERETRY".len();
    let digits: String = key[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// `FAKESTATUS429` anywhere in the text.
fn status_trigger(text: &str) -> Option<u16> {
    let at = text.find("FAKESTATUS")? + "FAKESTATUS".len();
    text.get(at..at + 3)?.parse().ok()
}

/// The answer text: the echo, stretched or squeezed into `events` deltas.
pub fn answer_chunks(answer: &str, events: Option<usize>) -> Vec<String> {
    let mut chunks = split_words(answer);
    if let Some(n) = events {
        let n = n.max(1);
        let mut i = 0;
        while chunks.len() < n {
            chunks.push(format!(" filler{i}"));
            i += 1;
        }
        if chunks.len() > n {
            let tail: String = chunks.drain(n - 1..).collect();
            chunks.push(tail);
        }
    }
    chunks
}

/// Splits after each space so the chunks concatenate back to `text`.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits a string into `n` roughly equal pieces (JSON argument deltas).
pub fn split_n(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The echo answer every shape uses.
pub fn echo(user_text: &str) -> String {
    format!("You said: {user_text}")
}

pub fn tool_said(result: &str) -> String {
    format!("Tool said: {result}")
}

/// Token count the fake reports for a request: a quarter of its bytes.
pub fn input_tokens(body_len: usize) -> u64 {
    (body_len as u64 / 4).max(1)
}

/// The arguments a tool call of the fake carries for a tool whose
/// parameters are `schema`, so the real client can run it whatever shape
/// the request was translated through: Claude Code's Bash gets a command,
/// a Codex freeform tool offered as a function (one string `input`, as
/// promptwall's translation offers it) gets Codex's exec input, anything
/// else the text and an echo command.
pub fn tool_arguments(name: &str, schema: &serde_json::Value, text: &str) -> serde_json::Value {
    let props = &schema["properties"];
    if name == "Bash" {
        return serde_json::json!({"command": format!("echo {}", shell_quote(text)), "description": "Print the text"});
    }
    if name == "bash" {
        // Copilot CLI's shell tool requires a description; its `mode` and
        // `initial_wait` (30..600) are set when offered, so it runs to completion.
        let mut args =
            serde_json::json!({"command": format!("echo {}", shell_quote(text)), "description": "Print the text"});
        if props.get("mode").is_some() {
            args["mode"] = "sync".into();
        }
        if props.get("initial_wait").is_some() {
            args["initial_wait"] = 30.into();
        }
        return args;
    }
    let only_input = props
        .as_object()
        .is_some_and(|p| p.len() == 1 && p.contains_key("input"));
    if only_input {
        return serde_json::json!({"input": format!("text({})", serde_json::Value::String(text.to_string()))});
    }
    serde_json::json!({"text": text, "command": format!("echo {}", shell_quote(text))})
}

/// Which of the offered tools (name, parameter schema) the fake calls:
/// the first offered of Bash (Claude Code), exec (Codex), bash (Copilot
/// CLI), run_shell_command and list_directory (Gemini CLI: its shell tool is
/// offered only with `--yolo`, list_directory always), else the first.
pub fn pick_tool<'a>(tools: &[(&'a str, &'a serde_json::Value)]) -> Option<(&'a str, &'a serde_json::Value)> {
    ["Bash", "exec", "bash", "run_shell_command", "list_directory"]
        .iter()
        .find_map(|want| tools.iter().find(|(n, _)| n == want))
        .or_else(|| tools.first())
        .copied()
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Deterministic "signature" over a thinking text, so a follow-up can check
/// the block came back byte-exact (the real API rejects altered blocks).
pub fn thinking_signature(thinking: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in thinking.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("EqFake+{h:016x}/sig==")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_back_and_honour_counts() {
        let text = "You said: hello big world";
        assert_eq!(split_words(text).concat(), text);
        assert_eq!(answer_chunks(text, None).len(), 5);
        let ten = answer_chunks(text, Some(10));
        assert_eq!(ten.len(), 10);
        assert!(ten.concat().starts_with(text));
        let two = answer_chunks(text, Some(2));
        assert_eq!(two.len(), 2);
        assert_eq!(two.concat(), text);
    }

    #[test]
    fn triggers_from_text_and_headers() {
        let mut h = HeaderMap::new();
        let s = Scenario::from(&h, "please FAKESTATUS529 now TOOLTEST");
        assert_eq!(s.status, Some(529));
        assert!(s.tool && !s.echo_args);
        h.insert("x-fake-status", "429".parse().unwrap());
        h.insert("x-fake-events", "7".parse().unwrap());
        let s = Scenario::from(&h, "BIGANSWER");
        assert_eq!(s.status, Some(429));
        assert_eq!(s.events, Some(7));
        assert_eq!(
            Scenario::from(&HeaderMap::new(), "BIGANSWER").events,
            Some(BIG_ANSWER_EVENTS)
        );
        assert_eq!(Scenario::from(&HeaderMap::new(), "hi"), Scenario::default());
    }

    #[test]
    fn chunk_chars_splits_inside_words() {
        let mut h = HeaderMap::new();
        h.insert("x-fake-chunk-chars", "3".parse().unwrap());
        let sc = Scenario::from(&h, "hi");
        let chunks = sc.text_chunks("You said: [[EMAIL_001]]");
        assert_eq!(chunks.concat(), "You said: [[EMAIL_001]]");
        assert!(chunks.iter().all(|c| c.chars().count() <= 3), "{chunks:?}");
    }

    #[test]
    fn split_n_keeps_text() {
        let s = r#"{"command":"echo hi"}"#;
        assert_eq!(split_n(s, 3).concat(), s);
        assert_eq!(split_n(s, 3).len(), 3);
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("it's"), r#"'it'\''s'"#);
    }
}
