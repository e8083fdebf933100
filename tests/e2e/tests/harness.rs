//! The harness itself: bounded runs, config text, and the namespace runner.

use std::process::Command;
use std::time::Duration;

use promptwall_e2e::agent::AgentConfig;
use promptwall_e2e::paths::fake_provider_bin;
use promptwall_e2e::{run_bounded, start_fake, Namespace};

#[test]
fn bounded_run_kills_on_timeout_and_keeps_output() {
    let out = run_bounded(
        Command::new("bash").args(["-c", "echo started; sleep 30 & sleep 30"]),
        Duration::from_millis(300),
    );
    assert!(out.timed_out);
    assert!(!out.success());
    assert_eq!(out.stdout.trim(), "started");
    let ok = run_bounded(
        Command::new("bash").args(["-c", "echo '{\"a\":1}'"]),
        Duration::from_secs(20),
    );
    assert_eq!(ok.last_json()["a"], 1);
}

#[test]
fn config_maps_every_provider_host_to_the_fake() {
    let fake = start_fake(false);
    let cfg = AgentConfig::explicit_to(&fake);
    let text = cfg.to_toml(std::path::Path::new("/tmp/x"));
    assert!(
        text.contains(&format!("\"api.anthropic.com\" = \"{}\"", fake.addr)),
        "{text}"
    );
    assert!(text.contains(&format!("\"api.openai.com\" = \"{}\"", fake.addr)));
    assert!(text.contains(&format!("extra_roots = [\"{}\"]", fake.ca_pem_path.display())));
    assert!(text.contains("url = \"sqlite:///tmp/x/audit.db\""));
    assert!(text.contains("[intercept]\nenabled = false"));
}

#[test]
fn namespace_has_private_hosts_and_only_loopback() {
    if !Namespace::available() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let hosts_before = std::fs::read("/etc/hosts").unwrap();
    let mut ns = Namespace::new();
    ns.env("FAKE_BIN", fake_provider_bin().display().to_string());
    let script = r#"
getent hosts api.anthropic.com
"$FAKE_BIN" --bind 127.0.0.1:8443 --ca-dir "$NS_DIR/fakeca" --log "$NS_DIR/fake.jsonl" > "$NS_DIR/ready" &
for i in $(seq 100); do [ -s "$NS_DIR/ready" ] && break; sleep 0.05; done
curl -sS --max-time 10 --cacert "$NS_DIR/fakeca/ca.pem" https://api.anthropic.com:8443/v1/messages \
  -H 'content-type: application/json' -d '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"in ns"}]}'
echo
ip -o link show | wc -l
kill %1
"#;
    let out = ns.run(script, Duration::from_secs(60));
    out.expect_success("namespace script");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("127.0.0.1"), "{}", out.stdout);
    assert!(out.stdout.contains("You said: in ns"), "{}", out.stdout);
    assert_eq!(
        lines.last().unwrap().trim(),
        "1",
        "only lo in the namespace: {}",
        out.stdout
    );
    assert_eq!(
        std::fs::read("/etc/hosts").unwrap(),
        hosts_before,
        "the host's /etc/hosts must stay untouched"
    );
    assert!(ns.dir().join("fake.jsonl").exists());
}
