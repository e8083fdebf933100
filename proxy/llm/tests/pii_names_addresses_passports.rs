//! Names, street addresses and passport numbers go upstream as reversible
//! placeholders (`[[NAME_001]]`, `[[ADDRESS_001]]`, `[[PASSPORT_001]]`) and
//! come back restored in the answer.

use bytes::Bytes;
use promptwall_llm::detect::{DetectPolicy, Detector};
use promptwall_llm::{ApiShape, Pipeline, PipelineSettings, RequestContext, RequestOutcome};
use serde_json::json;

const CTX: RequestContext<'static> = RequestContext {
    fingerprint_salt: "s",
    owner: None,
    content_type: None,
};

#[test]
fn a_name_an_address_and_a_passport_are_redacted_upstream_and_restored_in_the_answer() {
    // The real detector with the default policy (personal data reversible).
    let p = Pipeline::new(
        Detector::new(&DetectPolicy::default()).unwrap(),
        PipelineSettings::default(),
    );
    let body = json!({"model":"m","messages":[{"role":"user","content":
        "Draft a reply to Anna Kowalski, 221B Baker Street, London NW1 6XE, passport number 123456789.\n\nBest,\nPierre"}]});
    let RequestOutcome::Forward { body, restorer, .. } =
        p.inspect_request(ApiShape::ANTHROPIC_MESSAGES, body.to_string().as_bytes(), &CTX)
    else {
        panic!("expected forward");
    };
    let sent = String::from_utf8(body.expect("changed").to_vec()).unwrap();
    assert!(
        sent.contains(
            "Draft a reply to [[NAME_001]], [[ADDRESS_001]], passport number [[PASSPORT_001]].\\n\\nBest,\\n[[NAME_002]]"
        ),
        "{sent}"
    );
    for value in ["Anna", "Kowalski", "Baker Street", "123456789", "Pierre"] {
        assert!(!sent.contains(value), "{value} went upstream: {sent}");
    }

    let restorer = restorer.expect("placeholders issued");
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text",
        "text":"Dear [[NAME_001]], your passport [[PASSPORT_001]] goes to [[ADDRESS_001]]. [[NAME_002]]"}],
        "stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}});
    let mut processor = restorer.response_processor("application/json", ApiShape::ANTHROPIC_MESSAGES);
    let mut out = processor.push(Bytes::from(answer.to_string())).to_vec();
    out.extend_from_slice(&processor.finish());
    let restored = String::from_utf8(out).unwrap();
    assert!(
        restored
            .contains("Dear Anna Kowalski, your passport 123456789 goes to 221B Baker Street, London NW1 6XE. Pierre"),
        "{restored}"
    );
}
