//! Property tests (proptest, bounded case counts so CI runs them every time)
//! for the two places an attacker shapes what promptwall reads: the request
//! path (is the body read and inspected?) and the JSON body (is every
//! string, keys included, scanned?).

mod common;

use promptwall_llm::path::{classification_key, normalize};
use promptwall_llm::{ApiShape, RequestContext, RequestOutcome};
use proptest::prelude::*;

const CTX: RequestContext<'static> = RequestContext {
    fingerprint_salt: "s",
    owner: None,
    content_type: None,
};
const SECRET: &str = "AKIAZ7QK3MPLW2XQ4R5T";

/// An aggressive model of what some server in front of the provider might
/// make of a path: every escape decoded (`%2F` included), backslashes as
/// slashes, case folded, `;parameters` dropped, dot segments resolved,
/// slashes collapsed.
fn provider_reading(raw: &str) -> String {
    let decoded = {
        let b = raw.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).replace('\\', "/").to_ascii_lowercase()
    };
    let mut segs: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

fn provider_sees_llm_endpoint(raw: &str) -> bool {
    let p = provider_reading(raw);
    [
        "/v1/messages",
        "/messages/count_tokens",
        "/chat/completions",
        "/responses",
        "/embeddings",
    ]
    .iter()
    .any(|end| p.ends_with(end))
}

fn hostile_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("v1".to_string()),
        Just("messages".to_string()),
        Just("MESSAGES".to_string()),
        Just("oauth".to_string()),
        Just("..".to_string()),
        Just("..;".to_string()),
        Just("..;x".to_string()),
        Just(".%2e;a".to_string()),
        Just("..%3B".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("%2e%2e".to_string()),
        Just(".%2E".to_string()),
        Just("%6dessages".to_string()),
        Just("chat".to_string()),
        Just("completions".to_string()),
        Just("responses".to_string()),
        Just("count_tokens".to_string()),
        Just("token".to_string()),
        Just("messages;oauth".to_string()),
        Just("messages%3B".to_string()),
        Just("%2f".to_string()),
        Just("a%5Cb".to_string()),
        "[a-z%0-9;.]{0,6}",
    ];
    proptest::collection::vec(segment, 0..8).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The property behind the `--path-as-is` bypass: whatever a server may
    /// read as an LLM endpoint is either refused or inspected as one.
    #[test]
    fn no_path_a_server_reads_as_an_llm_endpoint_is_forwarded_unread(raw in hostile_path()) {
        if provider_sees_llm_endpoint(&raw) {
            if let Ok(canonical) = normalize(&raw) {
                let shape = ApiShape::classify("POST", &canonical);
                prop_assert!(shape.is_llm(), "{raw} -> {canonical} classified {shape:?}");
            }
        }
    }

    #[test]
    fn normalisation_is_idempotent_and_leaves_no_dot_or_empty_segments(raw in hostile_path()) {
        if let Ok(canonical) = normalize(&raw) {
            let again = normalize(&canonical).unwrap().into_owned();
            prop_assert_eq!(again.as_str(), canonical.as_ref());
            prop_assert!(!canonical.contains("//"));
            prop_assert!(canonical.split('/').all(|s| s != "." && s != ".."));
            let _ = classification_key(&canonical);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_path_code(raw in ".{0,64}") {
        let _ = normalize(&raw).map(|c| ApiShape::classify("POST", &c));
    }
}

/// Arbitrary JSON with one secret planted as a value or as a key somewhere.
fn json_with_secret() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|n| serde_json::json!(n)),
        "[a-z ]{0,12}".prop_map(serde_json::Value::String),
    ];
    let tree = leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    (tree, any::<bool>(), any::<u64>()).prop_map(|(mut v, as_key, seed)| {
        plant(&mut v, as_key, seed);
        v.to_string()
    })
}

fn plant(v: &mut serde_json::Value, as_key: bool, seed: u64) {
    use serde_json::Value;
    match v {
        Value::Object(m) if !m.is_empty() && !seed.is_multiple_of(3) => {
            let i = (seed as usize / 3) % m.len();
            let k = m.keys().nth(i).unwrap().clone();
            plant(m.get_mut(&k).unwrap(), as_key, seed / 7);
        }
        Value::Array(a) if !a.is_empty() && !seed.is_multiple_of(3) => {
            let i = (seed as usize / 3) % a.len();
            plant(&mut a[i], as_key, seed / 7);
        }
        other => {
            *other = if as_key {
                serde_json::json!({ SECRET: "x", "note": other.clone() })
            } else {
                serde_json::json!(["note", format!("key {SECRET} here")])
            };
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every string of a body, keys included, is scanned for credentials,
    /// whatever the shape's walker knows about its fields; and the refusal
    /// never echoes the value.
    #[test]
    fn a_secret_anywhere_in_a_json_body_blocks_it_without_echo(body in json_with_secret()) {
        let pipeline = common::pipeline();
        for shape in [ApiShape::OTHER, ApiShape::ANTHROPIC_MESSAGES, ApiShape::OPENAI_CHAT, ApiShape::OPENAI_RESPONSES, ApiShape::OPENAI_EMBEDDINGS] {
            match pipeline.inspect_request(shape, body.as_bytes(), &CTX) {
                RequestOutcome::Block { body: answer, .. } => {
                    prop_assert!(!String::from_utf8_lossy(&answer).contains(SECRET), "echoed: {}", String::from_utf8_lossy(&answer));
                }
                other => prop_assert!(false, "{shape:?} let a planted secret through: {body}\n{other:?}"),
            }
        }
    }
}
