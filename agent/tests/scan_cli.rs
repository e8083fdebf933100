//! `promptwall scan` as a pre-commit hook uses it: stdin or a file, JSON
//! lines, exit status 1 only for a blocking finding, values hidden unless
//! `--show`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const AWS_KEY: &str = "AKIAQ3EGVP7XWJ4LN2TZ";

fn scan(args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    // An empty config: the default policy, whatever /etc/promptwall holds.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptwall"))
        .arg("--config")
        .arg(&config)
        .arg("scan")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_secret_on_stdin_blocks_with_status_1_and_is_never_printed() {
    let text = format!("deploy:\n  aws_key = \"{AWS_KEY}\"\n  owner = ann@example.com\n");
    let out = scan(&["--json", "-"], &text);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(AWS_KEY) && !stdout.contains("ann@example.com"),
        "a value was printed: {stdout}"
    );
    let findings = json_lines(&out);
    let aws = findings
        .iter()
        .find(|f| f["action"] == "block")
        .expect("the key is a blocking finding");
    let (start, end) = (
        aws["start"].as_u64().unwrap() as usize,
        aws["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], AWS_KEY, "offsets point at the value: {aws}");
    assert_eq!(aws["category"], "secret");
    let email = findings
        .iter()
        .find(|f| f["kind"] == "email")
        .expect("the email is found");
    assert_eq!(email["action"], "reversible");
}

#[test]
fn show_prints_values_and_a_clean_file_exits_0() {
    let out = scan(&["--json", "--show", "-"], &format!("k={AWS_KEY}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_lines(&out).iter().any(|f| f["value"] == AWS_KEY),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.rs");
    // Tempting non-secrets: a UUID, a git SHA and the documented example key.
    std::fs::write(&clean, "let id = \"3f2c1a9e-7b4d-4c1e-9a0f-2b6d8e4c1a7f\"; // 9fceb02d0ae598e95dc970b74767f19372d61af8 AKIAIOSFODNN7EXAMPLE\n").unwrap();
    let out = scan(&[clean.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no findings");
}

#[test]
fn an_unreadable_file_exits_2_with_a_hint() {
    let out = scan(&["/nonexistent/promptwall-scan-input"], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/promptwall-scan-input") && stderr.contains("pass an existing file"),
        "{stderr}"
    );
}
