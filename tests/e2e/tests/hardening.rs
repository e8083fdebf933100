//! Exploits against inspection, each written as the attack and asserted as
//! refused: the key never reaches the provider, the client gets an answer in
//! its own API format, and the audit has a row. (Issue: security hardening.)

use std::io::Write;

use promptwall_e2e::process::curl_status;
use promptwall_e2e::{start_fake, Agent, FakeHandle};
use serde_json::{json, Value};

/// An AWS key id the detectors block (not a documented example).
fn aws_key() -> String {
    ["AKIA", "Z7QK3MPL", "W2XQ4R5T"].concat()
}

fn messages_body(text: &str) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}).to_string()
}

fn assert_key_never_reached(fake: &FakeHandle) {
    let key = aws_key();
    let leaked: Vec<_> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.body_text().contains(&key))
        .collect();
    assert!(leaked.is_empty(), "the key reached the provider: {leaked:#?}");
}

#[test]
fn dot_segments_and_escapes_in_the_path_do_not_skip_inspection() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let body = messages_body(&format!("deploy with {}", aws_key()));
    let base = agent.anthropic_base_url();
    for path in [
        "/v1/oauth/../messages",
        "/v1/oauth/%2e%2e/messages",
        "/v1/%6dessages",
        "/v1//messages",
        "/V1/Messages",
    ] {
        let url = format!("{base}{path}");
        let (status, answer) = curl_status(&[
            "--path-as-is",
            "-H",
            "content-type: application/json",
            "-H",
            "anthropic-version: 2023-06-01",
            "--data-binary",
            &body,
            &url,
        ]);
        assert_eq!(status, 422, "{path}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["type"], "error", "{path}: Anthropic envelope expected: {v}");
        assert!(!answer.contains(&aws_key()), "{path}: the refusal echoed the key");
    }
    // An encoded separator is refused outright, in the client's format.
    let url = format!("{base}/v1/oauth%2f..%2fmessages");
    let (status, answer) = curl_status(&[
        "--path-as-is",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &body,
        &url,
    ]);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("\"type\":\"error\""), "{answer}");
    assert_key_never_reached(&fake);
    let rows = agent.wait_audit_rows(6);
    assert_eq!(rows.iter().filter(|r| r.verdict == "blocked").count(), 5, "{rows:#?}");
    assert!(
        rows.iter().all(|r| r.path.as_deref() != Some("/v1/oauth/../messages")),
        "rows carry the path as forwarded"
    );
}

#[test]
fn a_compressed_or_binary_labelled_body_on_another_endpoint_is_still_checked() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/complete", agent.anthropic_base_url());
    let payload = json!({"model": "claude-2", "prompt": format!("Human: use {} Assistant:", aws_key())}).to_string();

    let gz = agent.dir.path().join("body.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(payload.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let at = format!("@{}", gz.display());
    let (status, answer) = curl_status(&[
        "-H",
        "content-type: application/json",
        "-H",
        "content-encoding: gzip",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &at,
        &url,
    ]);
    assert_eq!(status, 422, "gzip: {answer}");

    let (status, answer) = curl_status(&[
        "-H",
        "content-type: application/octet-stream",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &payload,
        &url,
    ]);
    assert_eq!(status, 422, "octet-stream: {answer}");

    let (status, answer) = curl_status(&[
        "-H",
        "content-type: application/json",
        "-H",
        "content-encoding: compress",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &payload,
        &url,
    ]);
    assert_eq!(status, 415, "an encoding promptwall cannot read is refused: {answer}");
    assert_key_never_reached(&fake);
}

#[test]
fn personal_data_in_a_batch_or_legacy_completion_is_redacted() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/messages/batches", agent.anthropic_base_url());
    let batch = json!({"requests": [{"custom_id": "a", "params": {"model": "claude-sonnet-4-5", "max_tokens": 16,
        "messages": [{"role": "user", "content": "write to maria.gonzalez@example.org"}]}}]})
    .to_string();
    let (status, _) = curl_status(&[
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "--data-binary",
        &batch,
        &url,
    ]);
    assert!(status < 500, "{status}");
    let seen: Vec<_> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.path.contains("batches"))
        .collect();
    assert_eq!(seen.len(), 1, "{:#?}", fake.recorded());
    let text = seen[0].body_text();
    assert!(
        !text.contains("maria.gonzalez@example.org") && text.contains("[[EMAIL_001]]"),
        "{text}"
    );
}

fn compressed(agent: &Agent, name: &str, encoding: &str, data: &[u8]) -> String {
    let path = agent.dir.path().join(name);
    match encoding {
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            std::fs::write(&path, enc.finish().unwrap()).unwrap();
        }
        "zstd" => {
            let plain = agent.dir.path().join(format!("{name}.plain"));
            std::fs::write(&plain, data).unwrap();
            let out = std::process::Command::new("zstd")
                .args(["-q", "-f", "-o"])
                .arg(&path)
                .arg(&plain)
                .output()
                .expect("zstd is installed");
            assert!(out.status.success(), "zstd: {out:?}");
        }
        other => panic!("no encoder for {other}"),
    }
    format!("@{}", path.display())
}

#[test]
fn compressed_messages_are_inspected_redacted_restored_and_a_bomb_gets_a_413_in_the_clients_format() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/messages", agent.anthropic_base_url());
    let post = |encoding: &str, at: &str| {
        curl_status(&[
            "-H",
            "content-type: application/json",
            "-H",
            &format!("content-encoding: {encoding}"),
            "-H",
            "anthropic-version: 2023-06-01",
            "--data-binary",
            at,
            &url,
        ])
    };

    // gzip carrying an AWS key: blocked, never forwarded.
    let at = compressed(
        &agent,
        "key.gz",
        "gzip",
        messages_body(&format!("use {}", aws_key())).as_bytes(),
    );
    let (status, answer) = post("gzip", &at);
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer.contains("\"type\":\"error\"") && !answer.contains(&aws_key()),
        "{answer}"
    );
    assert_key_never_reached(&fake);

    // zstd carrying an email: the provider sees a placeholder, the client the address.
    let email = "ines.moreau@example.org";
    let at = compressed(
        &agent,
        "mail.zst",
        "zstd",
        messages_body(&format!("write to {email}")).as_bytes(),
    );
    let (status, answer) = post("zstd", &at);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(email), "restored: {answer}");
    let sent: Vec<String> = fake.recorded().iter().map(|r| r.body_text()).collect();
    assert!(sent.iter().any(|b| b.contains("[[EMAIL_001]]")), "{sent:?}");
    assert!(!sent.iter().any(|b| b.contains(email)), "the address never left");

    // A bomb: 40 MiB of zeros inside a few KB of gzip, past the 32 MiB limit.
    let mut bomb = messages_body("x").into_bytes();
    bomb.truncate(bomb.len() - 1);
    let padding = vec![b' '; 40 << 20];
    let mut data = bomb;
    data.extend_from_slice(&padding);
    data.push(b'}');
    let at = compressed(&agent, "bomb.gz", "gzip", &data);
    assert!(std::fs::metadata(agent.dir.path().join("bomb.gz")).unwrap().len() < 200 << 10);
    let (status, answer) = post("gzip", &at);
    assert_eq!(status, 413, "{answer}");
    let v: Value = serde_json::from_str(&answer).expect("a JSON error body");
    assert_eq!(v["type"], "error", "Anthropic's envelope: {answer}");
    assert_eq!(v["error"]["type"], "request_too_large", "{answer}");
    let rows = agent.wait_audit_rows(3);
    assert!(rows.iter().any(|r| r.status == 413), "{rows:#?}");
}

#[test]
fn an_upload_is_inspected_part_by_part_and_its_binary_parts_are_audited_as_unscanned() {
    let fake = start_fake(false);
    let agent = Agent::start_explicit(&fake);
    let url = format!("{}/v1/files", agent.openai_base_url());
    let dir = agent.dir.path();
    std::fs::write(dir.join("notes.txt"), format!("deploy with {}\n", aws_key())).unwrap();
    std::fs::write(dir.join("clean.txt"), "nothing to see\n").unwrap();
    std::fs::write(
        dir.join("pixel.png"),
        [0x89u8, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0xff, 0xfe],
    )
    .unwrap();
    let file = |name: &str| format!("file=@{}", dir.join(name).display());
    let png = format!("image=@{};type=image/png", dir.join("pixel.png").display());

    // curl -F: a real multipart body. The key in the text part is refused.
    let (status, answer) = curl_status(&["-F", "purpose=assistants", "-F", &png, "-F", &file("notes.txt"), &url]);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"error\"") && !answer.contains(&aws_key()), "{answer}");
    assert_key_never_reached(&fake);

    // A clean upload goes through; its image part is on the row as unscanned.
    let (status, answer) = curl_status(&["-F", "purpose=assistants", "-F", &png, "-F", &file("clean.txt"), &url]);
    assert_ne!(status, 422, "{answer}");
    let sent = fake.recorded();
    assert!(
        sent.iter().any(|r| r.body_text().contains("nothing to see")),
        "forwarded"
    );
    let rows = agent.wait_audit_rows(2);
    let clean = rows.last().unwrap();
    assert_eq!(
        clean.rest["findings"]["binary_part_unscanned"], 1,
        "the image part is audited as unscanned: {clean:#?}"
    );
}
