//! Limits by identity end to end, explicit mode: the official Python SDK
//! against `promptwall up` with a `[quota]` limit, and `promptwall limits`
//! reading the daemon's counters.

use std::time::Duration;

use promptwall_e2e::{run_bounded, start_fake, Agent, AgentConfig, TestClients};
use serde_json::Value;

/// Three calls inside one calendar minute (the script waits for a minute
/// with room for them), the third refused; then a client with retries
/// waits out the `Retry-After` by itself and succeeds in the next minute.
const PY_RATE: &str = r#"
import json, time, anthropic
if time.time() % 60 > 40:
    time.sleep(61 - time.time() % 60)
body = dict(model="claude-sonnet-4-5", max_tokens=20)
c = anthropic.Anthropic(max_retries=0, timeout=60)
ok = [c.messages.create(messages=[{"role": "user", "content": f"hello {i}"}], **body).content[0].text for i in range(2)]
refused = None
try:
    c.messages.create(messages=[{"role": "user", "content": "hello 2"}], **body)
except anthropic.RateLimitError as e:
    h = e.response.headers
    refused = {"status": e.status_code, "message": e.message, "retry_after": h.get("retry-after"),
               "should_retry": h.get("x-should-retry"), "limit": h.get("x-promptwall-limit"),
               "remaining": h.get("x-ratelimit-remaining-requests")}
t0 = time.time()
patient = anthropic.Anthropic(max_retries=2, timeout=120)
after = patient.messages.create(messages=[{"role": "user", "content": "hello after"}], **body).content[0].text
print(json.dumps({"ok": ok, "refused": refused, "after": after, "waited": time.time() - t0}))
"#;

#[test]
fn a_python_sdk_over_a_request_rate_gets_a_429_with_retry_after_and_succeeds_after_the_window() {
    let Some(clients) = TestClients::find() else { return };
    let fake = start_fake(false);
    let mut config = AgentConfig::explicit_to(&fake);
    config.toml_extra = r#"
[[quota.limits]]
name = "sdk-rpm"
per = "user"
measure = "requests"
max = 2
window = "minute"
"#
    .into();
    let agent = Agent::start(&config);
    let mut cmd = clients.python_cmd(PY_RATE);
    cmd.env("ANTHROPIC_BASE_URL", agent.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-test-key");
    let out = run_bounded(&mut cmd, Duration::from_secs(150));
    out.expect_success("python anthropic SDK");
    let r = out.last_json();
    assert_eq!(r["ok"][1], "You said: hello 1");
    let refused = &r["refused"];
    assert_eq!(refused["status"], 429, "{r}");
    assert!(
        refused["message"].as_str().unwrap().contains("\"sdk-rpm\""),
        "the SDK's error carries the reason: {refused}"
    );
    let retry: u64 = refused["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{refused}");
    assert_eq!(
        refused["should_retry"],
        Value::Null,
        "a minute's limit is left to the SDK's retry"
    );
    assert_eq!(refused["limit"], "sdk-rpm");
    assert_eq!(refused["remaining"], "0");
    assert_eq!(r["after"], "You said: hello after");
    let waited = r["waited"].as_f64().unwrap();
    assert!(
        waited + 1.5 >= retry as f64,
        "the SDK waited for Retry-After ({retry} s), not {waited} s"
    );

    // Exactly the admitted calls reached the provider.
    let hellos = fake
        .recorded_for("/v1/messages")
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("hello"))
        .count();
    assert_eq!(hellos, 3, "two before the refusal and one after");
    let limited = agent.audit_rows(&["--verdict", "limited"]);
    assert!(
        (2..=3).contains(&limited.len()),
        "the refused call and the patient client's first try: {limited:#?}"
    );
    assert!(limited.iter().all(|row| row.status == 429));

    // The daemon's counters, for people and for scripts.
    let table = agent.cli(&["limits"]);
    table.expect_success("promptwall limits");
    assert!(
        table.stdout.contains("sdk-rpm") && table.stdout.contains("user "),
        "{}",
        table.stdout
    );
    let json = agent.cli(&["limits", "--json"]);
    json.expect_success("promptwall limits --json");
    let standings: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let s = &standings[0];
    assert_eq!(s["limit"], "sdk-rpm");
    assert_eq!(s["measure"], "requests");
    assert_eq!(s["max"], 2.0);
    assert_eq!(s["used"], 1.0, "the new minute holds the patient call: {standings}");
}

/// `curl` to the explicit listener with `headers`; (status, body).
fn post(agent: &Agent, path: &str, headers: &[&str], body: &Value) -> (u16, String) {
    let mut args: Vec<String> = vec!["-H".into(), "content-type: application/json".into()];
    for h in headers {
        args.push("-H".into());
        args.push(h.to_string());
    }
    args.push("-d".into());
    args.push(body.to_string());
    args.push(format!("http://{}{path}", agent.explicit));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    promptwall_e2e::process::curl_status(&refs)
}

#[test]
fn an_explicit_listener_token_names_its_user_keeps_to_its_scopes_and_limits_and_dies_when_revoked() {
    let fake = start_fake(false);
    let agent = Agent::start(&AgentConfig::explicit_to(&fake));
    let created = agent.cli(&[
        "token", "create", "--user", "carol", "--scopes", "messages", "--rate", "1", "--name", "ci", "--json",
    ]);
    created.expect_success("promptwall token create");
    let created = created.last_json();
    let (token, id) = (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    );
    assert!(token.starts_with("pw_live_"));
    let with_token = format!("x-promptwall-token: {token}");
    let anthropic = ["anthropic-version: 2023-06-01", "x-api-key: sk-ant-e2e-test-key"];
    let messages = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                                      "messages": [{"role": "user", "content": "token hello"}]});
    // The daemon reads new tokens within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let got = post(
            &agent,
            "/v1/messages",
            &[&with_token, anthropic[0], anthropic[1]],
            &messages,
        );
        if got.0 != 401 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "{body}");
    let seen = fake.recorded_for("/v1/messages");
    assert!(
        seen.iter().all(|r| r.header("x-promptwall-token").is_none()),
        "the token never leaves"
    );
    assert!(!seen.iter().any(|r| String::from_utf8_lossy(&r.body).contains(&token)));
    let rows = agent.audit_rows(&["--user", "carol"]);
    assert!(
        rows.iter().any(|r| r.status == 200),
        "attributed to the token's user: {rows:#?}"
    );

    // Its own rate: one request a minute (a third try covers a minute boundary).
    let limited = (0..2)
        .map(|_| {
            post(
                &agent,
                "/v1/messages",
                &[&with_token, anthropic[0], anthropic[1]],
                &messages,
            )
        })
        .find(|(s, _)| *s == 429);
    let (_, body) = limited.expect("the token's rate refuses within the minute");
    assert!(body.contains(&format!("token:{id}:rate")), "{body}");

    // Outside its scopes: 403 in the OpenAI envelope.
    let chat = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(
        &agent,
        "/v1/chat/completions",
        &[&with_token, "authorization: Bearer sk-x"],
        &chat,
    );
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--scopes chat"),
        "{body}"
    );

    // Unknown, then revoked: 401 in the Anthropic envelope.
    let (status, body) = post(
        &agent,
        "/v1/messages",
        &["x-promptwall-token: pw_live_nope", anthropic[0], anthropic[1]],
        &messages,
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["type"], "error");
    agent
        .cli(&["token", "revoke", &id])
        .expect_success("promptwall token revoke");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = post(
            &agent,
            "/v1/messages",
            &[&with_token, anthropic[0], anthropic[1]],
            &messages,
        );
        if status == 401 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after revocation: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("revoked"), "{body}");
    let listed: Value = serde_json::from_str(agent.cli(&["token", "list", "--json"]).stdout.trim()).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["revoked_at"].is_string());
    assert!(listed[0].get("hash").is_none(), "{listed}");
}

/// Two agents sharing a real PostgreSQL enforce one org budget together;
/// with the database down each goes on only within its allowance, and
/// they reconcile when it returns.
#[test]
fn two_agents_share_an_org_budget_through_postgresql_and_survive_it_going_away() {
    let Some(mut pg) =
        promptwall_audit::testing::PgCluster::start_unless_skipped().expect("PostgreSQL for the fleet test")
    else {
        return;
    };
    let fake = start_fake(false);
    let extra = format!(
        r#"
[audit.central]
url = "{}"

[quota]
fleet_allowance = 0.2
fleet_stale_secs = 2

[[quota.limits]]
name = "org-daily"
per = "org"
measure = "requests"
max = 10
window = "day"
fleet = true
"#,
        pg.url("postgres")
    );
    let agent_on = |machine: &str| {
        let mut c = AgentConfig::explicit_to(&fake);
        c.toml_extra = extra.clone();
        c.env = vec![("PROMPTWALL_MACHINE_ID".into(), machine.into())];
        Agent::start(&c)
    };
    let (a, b) = (agent_on("fleet-a"), agent_on("fleet-b"));
    let ask = |agent: &Agent| {
        post(
            agent,
            "/v1/messages",
            &["anthropic-version: 2023-06-01", "x-api-key: sk-ant-e2e-test-key"],
            &serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
                                "messages": [{"role": "user", "content": "fleet"}]}),
        )
    };
    let settle = || std::thread::sleep(Duration::from_millis(2500));
    settle();
    for agent in [&a, &a, &b, &b] {
        assert_eq!(ask(agent).0, 200);
    }
    settle();

    // The database goes away: each agent has 2 (20 % of 10) beyond what it
    // confirmed, then refuses, saying why.
    pg.stop().unwrap();
    settle();
    for agent in [&a, &b] {
        assert_eq!(ask(agent).0, 200);
        assert_eq!(ask(agent).0, 200);
        let (status, body) = ask(agent);
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("central store"), "{body}");
    }

    // Back: 8 used in all, so the fleet has exactly 2 left.
    pg.start_server().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ask(&a).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "agent a never reconciled; log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    settle();
    assert_eq!(ask(&b).0, 200, "the 10th");
    settle();
    for agent in [&a, &b] {
        let (status, body) = ask(agent);
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("org-daily") && !body.contains("central store"), "{body}");
    }
    let standings: Value = serde_json::from_str(a.cli(&["limits", "--json"]).stdout.trim()).unwrap();
    assert_eq!(standings[0]["used"], 10.0, "{standings}");
}
