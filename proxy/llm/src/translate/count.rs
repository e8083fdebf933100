//! Input tokens of a request, estimated with a real tokenizer, for
//! `count_tokens` calls routed away from Anthropic (whose own count needs
//! its API). OpenAI's o200k encoding counts the text; Claude's tokenizer
//! is not public, so the figure is an estimate, good for what clients use
//! it for: deciding when to compact the conversation.

use super::ir::{Image, Part, Request};

/// Per message: the role and the separators around it (OpenAI's cookbook
/// figure for its chat format).
const PER_MESSAGE: u64 = 3;
/// An image of unknown size (Anthropic: width × height / 750; a typical
/// screenshot is around this).
const PER_IMAGE: u64 = 1_600;

/// Text is tokenized in pieces of at most this many bytes: BPE merging is
/// quadratic in the length of one pre-token, and a hostile request can make
/// a 32 MB pre-token (one long run of letters). A cut between pieces costs
/// at most a token or two per piece.
const PIECE: usize = 2048;
/// Past this much text the rest is counted as bytes / 4: the estimate stays
/// bounded in time (about 10 ms of tokenizing) whatever the request.
const TOKENIZED_BYTES: usize = 1 << 20;

/// The estimated input tokens of `req`: system, messages, tool calls and
/// results, tool definitions.
pub fn estimate_input_tokens(req: &Request) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let budget = std::cell::Cell::new(TOKENIZED_BYTES);
    let count = |s: &str| -> u64 {
        let mut n = 0u64;
        let mut rest = s;
        while !rest.is_empty() {
            let left = budget.get();
            if left == 0 {
                return n + (rest.len() as u64).div_ceil(4);
            }
            let mut cut = rest.len().min(PIECE).min(left);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 {
                // A character longer than the budget left: count it as bytes.
                cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
                n += (cut as u64).div_ceil(4);
            } else {
                n += bpe.encode_ordinary(&rest[..cut]).len() as u64;
            }
            budget.set(left.saturating_sub(cut));
            rest = &rest[cut..];
        }
        n
    };
    let mut n = 0u64;
    for t in &req.system {
        n += count(&t.text) + PER_MESSAGE;
    }
    for m in &req.messages {
        n += PER_MESSAGE;
        for p in &m.parts {
            n += part(p, &count);
        }
    }
    for t in &req.tools {
        n += count(&t.name) + t.description.as_deref().map_or(0, count) + count(&t.parameters.to_string());
    }
    n
}

fn part(p: &Part, count: &dyn Fn(&str) -> u64) -> u64 {
    match p {
        Part::Text(t) => count(&t.text),
        Part::Image(Image::Base64 { .. } | Image::Url(..)) => PER_IMAGE,
        Part::ToolCall(c) => count(&c.name) + count(&c.arguments),
        Part::ToolResult(r) => r.content.iter().map(|p| part(p, count)).sum::<u64>() + count(&r.call_id),
        Part::Thinking(t) => count(&t.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::ir::{Message, Role, Text};

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            parts: vec![Part::Text(Text {
                text: text.into(),
                cache_control: None,
            })],
        }
    }

    #[test]
    fn a_short_sentence_counts_as_its_tokens_plus_the_message_overhead() {
        let req = Request {
            messages: vec![user("Hello world")],
            ..Request::default()
        };
        // "Hello world" is 2 tokens in o200k.
        assert_eq!(estimate_input_tokens(&req), 2 + PER_MESSAGE);
    }

    #[test]
    fn a_hostile_run_of_one_letter_is_counted_in_bounded_time() {
        // One 4 MB pre-token: unchunked BPE would take minutes on it.
        let req = Request {
            messages: vec![user(&"x".repeat(4 << 20))],
            ..Request::default()
        };
        let n = estimate_input_tokens(&req);
        assert!(n > (4 << 20) / 16 && n < (4 << 20), "{n}");
    }

    #[test]
    fn a_longer_conversation_counts_more_than_a_shorter_one_and_roughly_a_quarter_of_its_bytes() {
        let text = "fn main() { println!(\"hello, promptwall\"); } // a line of code\n".repeat(100);
        let req = Request {
            messages: vec![user(&text), user("and one more")],
            ..Request::default()
        };
        let n = estimate_input_tokens(&req);
        let bytes = text.len() as u64;
        assert!(n > bytes / 8 && n < bytes / 2, "{n} tokens for {bytes} bytes");
    }
}
