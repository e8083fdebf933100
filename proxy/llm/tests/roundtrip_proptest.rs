//! Property: for random text with random personal data, what the provider
//! receives holds none of the values, and restoring what comes back (as a
//! JSON body or as an SSE stream cut at random points) gives the original.

mod common;

use bytes::Bytes;
use promptwall_llm::{ApiShape, RequestContext, RequestOutcome};
use proptest::prelude::*;

fn piece() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        3 => "[a-z ,.!?\\[\\]{}\"\\\\]{0,12}".prop_map(|s| (s, false)),
        1 => ("[a-z]{1,8}", "[a-z]{2,8}", "(com|org|io)").prop_map(|(u, d, t)| (format!("{u}@{d}.{t}"), true)),
        1 => ("[0-9]{3}", "[0-9]{3}", "[0-9]{4}").prop_map(|(a, b, c)| (format!("+1 {a} {b} {c}"), true)),
    ]
}

fn text_with_pii() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec(piece(), 1..12).prop_map(|pieces| {
        let mut text = String::new();
        let mut values = Vec::new();
        for (p, sensitive) in pieces {
            // Separate values so the regex sees each one whole.
            text.push(' ');
            text.push_str(&p);
            if sensitive {
                values.push(p);
            }
        }
        (text, values)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn restore_of_redact_is_identity((text, values) in text_with_pii(), cuts in prop::collection::vec(0usize..4000, 0..6)) {
        let pipeline = common::pipeline();
        let body = serde_json::json!({"model":"m","messages":[{"role":"user","content":text}]}).to_string();
        let outcome = pipeline.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.as_bytes(), &RequestContext::default());
        let RequestOutcome::Forward { body: provider, restorer, .. } = outcome else { panic!("unexpected block") };
        let provider = provider.map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or(body.clone());
        for v in &values {
            prop_assert!(!provider.contains(v.as_str()), "{} leaked in {}", v, provider);
        }
        let sent: serde_json::Value = serde_json::from_str(&provider).unwrap();
        let redacted = sent["messages"][0]["content"].as_str().unwrap().to_string();
        let Some(restorer) = restorer else {
            prop_assert!(values.is_empty());
            prop_assert_eq!(redacted, text);
            return Ok(());
        };

        // JSON response echoing the redacted text.
        let json_body = serde_json::json!({"content":[{"type":"text","text":redacted}],"usage":{"input_tokens":1}}).to_string();
        let mut p = restorer.response_processor("application/json", ApiShape::ANTHROPIC_MESSAGES);
        let mut out = p.push(Bytes::from(json_body)).to_vec();
        out.extend_from_slice(&p.finish());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(v["content"][0]["text"].as_str().unwrap(), text.as_str());

        // SSE stream: the redacted text as text deltas of random sizes.
        let mut sse = String::new();
        let chars: Vec<char> = redacted.chars().collect();
        let mut i = 0;
        let mut step = 1;
        while i < chars.len() {
            let piece: String = chars[i..(i + step).min(chars.len())].iter().collect();
            let ev = serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":piece}});
            sse.push_str(&format!("event: content_block_delta\ndata: {ev}\n\n"));
            i += step;
            step = step % 7 + 1;
        }
        sse.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
        let bytes = sse.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort();
        let mut p = restorer.response_processor("text/event-stream", ApiShape::ANTHROPIC_MESSAGES);
        let mut out = Vec::new();
        let mut at = 0;
        for c in points.into_iter().chain([bytes.len()]) {
            out.extend_from_slice(&p.push(Bytes::copy_from_slice(&bytes[at..c])));
            at = c;
        }
        out.extend_from_slice(&p.finish());
        let out = String::from_utf8(out).unwrap();
        let mut restored = String::new();
        for line in out.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let ev: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = ev["delta"]["text"].as_str() {
                restored.push_str(t);
            }
        }
        prop_assert_eq!(restored, text);
    }
}
