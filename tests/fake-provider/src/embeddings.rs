//! OpenAI Embeddings: `POST /v1/embeddings`, float or base64 vectors
//! (the Python SDK asks for base64 by default).

use base64::Engine;
use serde_json::{json, Value};

use crate::record::ReplyUsage;
use crate::reply::{error_reply, injected_message, Flavor, Reply};
use crate::scenario::{self, Scenario};
use crate::Incoming;

/// Deterministic 8-dimensional vector for `text` (from the hash digits of
/// its signature, so different texts get different vectors).
pub(crate) fn embed(text: &str) -> Vec<f32> {
    let sig = scenario::thinking_signature(text);
    sig.bytes()
        .skip("EqFake+".len())
        .take(8)
        .enumerate()
        .map(|(i, b)| ((b as f32) + i as f32) / 256.0)
        .collect()
}

pub fn embeddings(inc: &Incoming) -> Reply {
    let Some(body) = inc.json else {
        return error_reply(Flavor::OpenAi, 400, "We could not parse the JSON body of your request.");
    };
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
            .collect(),
        _ => {
            return error_reply(
                Flavor::OpenAi,
                400,
                "'input' is a required property; send a string or an array.",
            )
        }
    };
    let sc = Scenario::from(inc.headers, &inputs.join(" "));
    if let Some(status) = sc.status {
        return error_reply(Flavor::OpenAi, status, &injected_message(status));
    }
    let base64 = body["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embed(text);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = scenario::input_tokens(inc.body.len());
    let usage = ReplyUsage {
        input_tokens: tokens,
        ..Default::default()
    };
    let value = json!({
        "object": "list", "data": data, "model": body["model"].as_str().unwrap_or("text-embedding-fake"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Reply::json_padded(200, value, sc.pad_bytes).with_usage(usage)
}
