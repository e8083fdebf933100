//! Containers (issue 16): clients in their own network namespaces, wired
//! like Docker's default bridge (veth pair, bridge, NAT) and placed in a
//! `docker-<id>.scope` cgroup under the intercepted one, are redirected to
//! a listener the agent opens inside their namespace, inspected, and
//! attributed to the container by id, name and image. A namespace the
//! agent cannot serve, or whose trust store lacks the org CA, is passed
//! through and reported, never broken. Real eBPF, real TLS, real curl and
//! the real Python SDK; the fake provider is the only stand-in.

use std::time::{Duration, Instant};

use promptwall_e2e::container::{Container, Loopback, Trust, IMAGE};
use promptwall_e2e::transparent::CONTAINER_FAKE_IP;
use promptwall_e2e::{AuditRow, TestClients, TransparentEnv, TransparentOptions};
use serde_json::Value;

const EMAIL: &str = "lena.park@example.org";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn env() -> Option<TransparentEnv> {
    TransparentEnv::start_or_skip(TransparentOptions {
        container: true,
        ..Default::default()
    })
}

fn curl_messages(prompt: &str, extra: &str) -> String {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
    });
    format!(
        "exec curl -sS --max-time 20 {extra} -w '\\nHTTP %{{http_code}}' https://api.anthropic.com/v1/messages \
         -H 'x-api-key: sk-ant-api03-e2e-container' -H 'anthropic-version: 2023-06-01' \
         -H 'content-type: application/json' -d '{}'",
        body.to_string().replace('\'', "'\\''")
    )
}

/// `promptwall status --json`'s interception section.
fn intercept_status(env: &TransparentEnv) -> Value {
    let out = env.cli(&["status", "--json"]);
    out.expect_success("promptwall status --json");
    out.last_json()["intercept"].clone()
}

/// Waits (bounded) until the agent serves the namespace of `c`.
fn wait_served(env: &TransparentEnv, c: &Container) {
    let deadline = Instant::now() + secs(10);
    loop {
        let status = intercept_status(env);
        let served = status["namespaces"]["served"].as_array().cloned().unwrap_or_default();
        if served.iter().any(|s| s["container_id"].as_str() == Some(&c.id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never served container {}: {status:#}\nagent log:\n{}",
            c.short_id(),
            env.agent_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rows_of(env: &TransparentEnv, container: &Container) -> Vec<AuditRow> {
    env.audit_rows()
        .into_iter()
        .filter(|r| r.rest.get("container_id").and_then(Value::as_str) == Some(&container.id))
        .collect()
}

#[test]
fn a_client_in_a_bridged_container_is_intercepted_inspected_and_attributed_to_its_container() {
    let Some(env) = env() else { return };
    let c = Container::start(&env, 1, Trust::OrgCa, Loopback::Up);
    wait_served(&env, &c);

    // curl: PII redacted on the way out and restored on the way back.
    let out = c.sh(&env, &curl_messages(&format!("write to {EMAIL}"), ""), secs(30));
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    assert!(
        out.stdout.contains(EMAIL),
        "the answer is restored for the client: {out:?}"
    );
    let seen = env.container_fake_requests();
    let bodies: Vec<&str> = seen.iter().filter_map(|r| r["body"].as_str()).collect();
    assert!(
        bodies.iter().any(|b| b.contains("[[EMAIL_001]]")),
        "the provider got a placeholder: {bodies:?}"
    );
    assert!(
        !bodies.iter().any(|b| b.contains(EMAIL)),
        "the raw address never left: {bodies:?}"
    );

    // A secret is blocked in the client's own format and never reaches the provider.
    let key = format!("AKIA{}", "Q3EGUX7MZPW5KD4N");
    let out = c.sh(&env, &curl_messages(&format!("deploy with {key}"), ""), secs(30));
    assert!(out.stdout.ends_with("HTTP 422"), "{out:?}");
    assert!(out.stdout.contains("\"type\":\"error\""), "{out:?}");
    assert!(!out.stdout.contains(&key), "never echoed: {out:?}");
    assert!(!env
        .container_fake_requests()
        .iter()
        .any(|r| r.to_string().contains(&key)));

    // The official Python SDK, unmodified, in the same container.
    if let Some(clients) = TestClients::find() {
        let script = format!(
            "import anthropic\nc = anthropic.Anthropic(api_key='sk-ant-api03-e2e-container')\n\
             m = c.messages.create(model='claude-sonnet-4-5', max_tokens=64, messages=[{{'role':'user','content':'mail {EMAIL} now'}}])\n\
             print(m.content[0].text)\n"
        );
        let python = clients.python();
        let out = c.run(&env, &python.to_string_lossy(), &["-c", &script], secs(60));
        out.expect_success("the Python SDK in a container");
        assert!(out.stdout.contains(EMAIL), "{out:?}");
    } else {
        assert_ne!(
            std::env::var("PROMPTWALL_REQUIRE_CLIENTS").as_deref(),
            Ok("1"),
            "the Python SDK is missing; run `cargo xtask setup`"
        );
    }

    let rows = env.wait_audit_rows(2);
    let ours = rows_of(&env, &c);
    assert!(ours.len() >= 2, "rows attributed to the container: {rows:#?}");
    for row in &ours {
        assert_eq!(row.listener, "transparent", "{row:#?}");
        assert_eq!(
            row.rest.get("container_name").and_then(Value::as_str),
            Some(c.name.as_str()),
            "{row:#?}"
        );
        assert_eq!(
            row.rest.get("container_image").and_then(Value::as_str),
            Some(IMAGE),
            "{row:#?}"
        );
        assert_eq!(
            row.rest.get("original_dst").and_then(Value::as_str),
            Some(format!("{CONTAINER_FAKE_IP}:443").as_str()),
            "{row:#?}"
        );
    }
    let curl_rows: Vec<&AuditRow> = ours.iter().filter(|r| r.tool.as_deref() == Some("curl")).collect();
    assert_eq!(curl_rows.len(), 2, "{ours:#?}");
    assert!(curl_rows.iter().any(|r| r.verdict == "redacted"), "{curl_rows:#?}");
    assert!(curl_rows.iter().any(|r| r.verdict == "blocked"), "{curl_rows:#?}");
    assert_eq!(intercept_status(&env)["counters"]["skipped_other_netns"], 0);
}

#[test]
fn two_containers_connecting_from_the_same_loopback_port_are_told_apart() {
    let Some(env) = env() else { return };
    let a = Container::start(&env, 1, Trust::OrgCa, Loopback::Up);
    let b = Container::start(&env, 2, Trust::OrgCa, Loopback::Up);
    wait_served(&env, &a);
    wait_served(&env, &b);
    // Both connect at once from 127.0.0.1:40000 to their own listener:
    // the same peer address, told apart by namespace.
    let slow = "--local-port 40000 -H 'x-fake-slow: 1'";
    std::thread::scope(|s| {
        let ta = s.spawn(|| a.sh(&env, &curl_messages("from box A", slow), secs(30)));
        let tb = s.spawn(|| b.sh(&env, &curl_messages("from box B", slow), secs(30)));
        for out in [ta.join().unwrap(), tb.join().unwrap()] {
            assert!(
                out.stdout.ends_with("HTTP 200"),
                "{out:?}\nagent log:\n{}",
                env.agent_log()
            );
        }
    });
    for (c, marker) in [(&a, "box A"), (&b, "box B")] {
        let rows = rows_of(&env, c);
        assert_eq!(rows.len(), 1, "{:#?}", env.audit_rows());
        let sent: Vec<Value> = env
            .container_fake_requests()
            .into_iter()
            .filter(|r| r["body"].as_str().is_some_and(|b| b.contains(marker)))
            .collect();
        assert_eq!(sent.len(), 1, "{marker} reached the provider once");
        assert_eq!(
            rows[0].rest.get("container_name").and_then(Value::as_str),
            Some(c.name.as_str())
        );
    }
}

#[test]
fn a_container_that_cannot_be_served_or_lacks_the_org_ca_is_passed_through_and_reported() {
    let Some(env) = env() else { return };
    // Loopback down: no listener can live there; its connections pass and are counted.
    let unserved = Container::start(&env, 1, Trust::ProvidersOnly, Loopback::Down);
    // Loopback up but an image without the org CA.
    let untrusting = Container::start(&env, 2, Trust::ProvidersOnly, Loopback::Up);
    wait_served(&env, &untrusting);

    let out = unserved.sh(&env, &curl_messages("unserved box says hi", ""), secs(30));
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "not broken: {out:?}\nagent log:\n{}",
        env.agent_log()
    );
    let status = intercept_status(&env);
    assert!(
        status["counters"]["skipped_other_netns"].as_u64() >= Some(1),
        "{status:#}"
    );
    assert_eq!(
        status["namespaces"]["unserved"].as_object().map(|m| m.len()),
        Some(1),
        "{status:#}"
    );

    // The first connections fail the certificate check; once learned
    // (3 rejections, the default), the container's curl is spliced
    // through to the provider, and doctor says why and what to do.
    let mut codes = Vec::new();
    for _ in 0..4 {
        let out = untrusting.sh(&env, &curl_messages("untrusting box says hi", ""), secs(30));
        codes.push(out.status.and_then(|s| s.code()));
    }
    assert_eq!(
        &codes[..3],
        &[Some(60); 3],
        "curl's certificate error, three times: {codes:?}"
    );
    assert_eq!(codes[3], Some(0), "then passed through: {codes:?}\n{}", env.agent_log());
    let rows = rows_of(&env, &untrusting);
    assert!(rows.iter().any(|r| r.verdict == "passthrough"), "{rows:#?}");
    let doctor = env.cli(&["doctor", "--no-ebpf", "--json"]);
    let checks = doctor.last_json();
    let text = checks.to_string();
    assert!(text.contains(&format!("container {}", untrusting.short_id())), "{text}");
    assert!(
        text.contains("update-ca-certificates"),
        "the fix names the image step: {text}"
    );
    assert!(
        text.contains("NOT served"),
        "the unserved namespace is reported: {text}"
    );
    // Its loopback comes up: the agent tries again and serves it.
    unserved.loopback_up(&env);
    wait_served(&env, &unserved);
    // (Its image lacks the org CA: this client is given it explicitly.)
    let trust_org = format!("--cacert {}", promptwall_e2e::transparent::ANCHOR);
    let out = unserved.sh(
        &env,
        &curl_messages(&format!("now served, write to {EMAIL}"), &trust_org),
        secs(30),
    );
    assert!(out.stdout.ends_with("HTTP 200"), "{out:?}");
    assert!(
        rows_of(&env, &unserved).iter().any(|r| r.verdict == "redacted"),
        "inspected once served: {:#?}",
        env.audit_rows()
    );
    // The host's own curl, same uid, is still inspected.
    let out = env.sh_in_cgroup(&curl_messages(&format!("host writes {EMAIL}"), ""), secs(30));
    assert!(out.stdout.ends_with("HTTP 200"), "{out:?}");
    let host_row = env.audit_rows().into_iter().last().unwrap();
    assert_eq!(host_row.verdict, "redacted", "{host_row:#?}");
}

#[test]
fn a_client_started_by_runc_in_a_bridged_container_is_intercepted_and_attributed() {
    let Some(env) = env() else { return };
    let have_runc = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_runc {
        assert_ne!(
            std::env::var("PROMPTWALL_REQUIRE_CLIENTS").as_deref(),
            Ok("1"),
            "runc is missing; run `cargo xtask setup`"
        );
        eprintln!("SKIPPED: runc is not installed");
        return;
    }
    let c = Container::start(&env, 1, Trust::OrgCa, Loopback::Up);
    wait_served(&env, &c);
    let script = curl_messages(&format!("write to {EMAIL}"), "");
    let out = c.run_with_runc(&env, &["bash", "-c", &script], secs(60));
    assert!(
        out.stdout.ends_with("HTTP 200"),
        "{out:?}\nagent log:\n{}",
        env.agent_log()
    );
    assert!(out.stdout.contains(EMAIL), "restored for the client: {out:?}");
    let bodies: Vec<String> = env
        .container_fake_requests()
        .iter()
        .filter_map(|r| r["body"].as_str().map(str::to_string))
        .collect();
    assert!(bodies.iter().any(|b| b.contains("[[EMAIL_001]]")), "{bodies:?}");
    assert!(!bodies.iter().any(|b| b.contains(EMAIL)));
    let rows = env.wait_audit_rows(1);
    let ours = rows_of(&env, &c);
    assert_eq!(
        ours.len(),
        1,
        "the runc container's row, by its cgroupfs path /docker/<id>: {rows:#?}"
    );
    let row = &ours[0];
    assert_eq!(row.tool.as_deref(), Some("curl"), "{row:#?}");
    assert_eq!(row.verdict, "redacted", "{row:#?}");
    assert_eq!(
        row.rest.get("container_image").and_then(Value::as_str),
        Some(IMAGE),
        "{row:#?}"
    );
    assert!(row.exe.as_deref().is_some_and(|e| e.ends_with("/curl")), "{row:#?}");
}

#[test]
fn a_direct_connection_to_a_containers_listener_is_refused_not_lent_a_host_sockets_identity() {
    let Some(env) = env() else { return };
    let c = Container::start(&env, 1, Trust::OrgCa, Loopback::Up);
    wait_served(&env, &c);
    let status = intercept_status(&env);
    let listener = status["namespaces"]["served"][0]["listener"]
        .as_str()
        .unwrap()
        .to_string();
    let port = listener.rsplit(':').next().unwrap().to_string();

    // The exploit: a host socket (nobody's) with the very addresses the
    // container will use, 127.0.0.1:40001 -> 127.0.0.1:<port>. A /proc/net/tcp
    // lookup in the host's namespace would find it and lend the
    // container's request nobody's identity.
    let decoy = format!(
        "import socket,time\nl=socket.socket();l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         l.bind(('127.0.0.1',{port}));l.listen()\nc=socket.socket();c.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         c.bind(('127.0.0.1',40001));c.connect(('127.0.0.1',{port}))\na=l.accept()\nprint('ready',flush=True)\ntime.sleep(30)\n"
    );
    let mut holder = env.ns_command("setpriv");
    holder
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &decoy,
        ])
        .stdout(std::process::Stdio::piped());
    let mut decoy = holder.spawn().expect("cannot start the decoy");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(decoy.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    // Straight to the container's listener, not through the redirect.
    let extra = format!("--local-port 40001 --resolve api.anthropic.com:{port}:127.0.0.1");
    let script = curl_messages("DIRECTMARKER hello", &extra).replace(
        "https://api.anthropic.com/v1/messages",
        &format!("https://api.anthropic.com:{port}/v1/messages"),
    );
    let out = c.sh(&env, &script, secs(30));
    let _ = decoy.kill();
    let _ = decoy.wait();
    assert!(!out.stdout.ends_with("HTTP 200"), "refused: {out:?}");
    assert!(
        !env.container_fake_requests()
            .iter()
            .any(|r| r.to_string().contains("DIRECTMARKER")),
        "nothing reached the provider"
    );
    let rows = env.wait_audit_rows(1);
    let row = rows.last().unwrap();
    assert_eq!(row.verdict, "blocked", "{row:#?}");
    assert!(
        row.rest
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains("no redirect record")),
        "{row:#?}"
    );
    assert_ne!(
        row.user.as_deref(),
        Some("nobody"),
        "never the decoy's identity: {row:#?}"
    );
}
