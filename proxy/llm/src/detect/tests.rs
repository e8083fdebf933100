use super::*;

fn det() -> Detector {
    Detector::new(&DetectPolicy::default()).expect("default policy compiles")
}

fn found(text: &str) -> Vec<(String, String)> {
    det()
        .scan(text)
        .iter()
        .map(|f| (f.kind.to_string(), f.value(text).to_string()))
        .collect()
}

fn kinds(text: &str) -> Vec<String> {
    found(text).into_iter().map(|(k, _)| k).collect()
}

fn gh(prefix: &str) -> String {
    let random = "Xk29fLq0ZpW8rT5vB1nM3cH7yJ4sD6";
    format!("{prefix}{random}{}", github_checksum(random))
}

#[test]
fn default_policy_compiles_and_has_60_secret_kinds() {
    det();
    assert!(KINDS.iter().filter(|k| k.category == Category::Secret).count() >= 60);
}

#[test]
fn github_tokens_need_a_valid_checksum_to_be_blocked() {
    let good = gh("ghp_");
    assert_eq!(
        found(&format!("token {good} here")),
        vec![("github_pat".into(), good.clone())]
    );
    let mut bad = good.clone();
    bad.pop();
    bad.push(if good.ends_with('a') { 'b' } else { 'a' });
    // A wrong checksum is a fixture or a typo: redacted, not blocked (rules.rs).
    assert_eq!(kinds(&format!("token {bad} here")), vec!["github_token_unverified"]);
    assert_eq!(kinds(&format!("x = \"{}\"", gh("npm_"))), vec!["npm_token"]);
    // A word that merely continues into the prefix is not a token.
    assert!(kinds(&format!("xghp_{}", &good[4..])).is_empty());
}

#[test]
fn aws_keys_and_documented_examples() {
    assert_eq!(kinds("id AKIAZ7QWERTYUI2345AB ok"), vec!["aws_access_key_id"]);
    assert!(kinds("id AKIAIOSFODNN7EXAMPLE ok").is_empty());
    let secret = "aws_secret_access_key = Zq3/Xv9+Lm2Kp8Rt4Wy6Bn1Hc5Jd7Fg0Ae2Ts4Uo";
    assert_eq!(
        found(secret),
        vec![(
            "aws_secret_access_key".into(),
            "Zq3/Xv9+Lm2Kp8Rt4Wy6Bn1Hc5Jd7Fg0Ae2Ts4Uo".into()
        )]
    );
    assert!(kinds("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").is_empty());
    // 40 base64 chars without the key name are just a blob.
    assert!(kinds("Zq3/Xv9+Lm2Kp8Rt4Wy6Bn1Hc5Jd7Fg0Ae2Ts4Uo").is_empty());
}

#[test]
fn provider_keys_in_raw_json_bodies() {
    let body: String = "aB3_dE5-gH7jK9mN1pQ3sT5vX7zA9cE1fG".chars().cycle().take(93).collect();
    let key = format!("sk-ant-api03-{body}AA");
    let body = format!(r#"{{"messages":[{{"role":"user","content":"my key:\n{key}\nthanks"}}]}}"#);
    assert_eq!(found(&body), vec![("anthropic_api_key".into(), key)]);
    let openai = "sk-proj-Qw3rTy7UiOp1AsDfGh5JkLzXcVbNm9Qw2ErTy4UiOpAsDf6GhJkLz8XcVbNm0";
    assert_eq!(kinds(&format!("OPENAI_API_KEY={openai}")), vec!["openai_project_key"]);
    assert!(kinds("OPENAI_API_KEY=sk-...").is_empty());
}

#[test]
fn private_keys_with_real_or_escaped_newlines() {
    let body: String = (0..6)
        .map(|i| format!("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{i}x7Hk2Lm9Pq\n"))
        .collect();
    let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
    assert_eq!(
        found(&format!("key:\n{pem}\n")),
        vec![("rsa_private_key".into(), pem.clone())]
    );
    let escaped = pem.replace('\n', "\\n");
    assert_eq!(kinds(&format!(r#"{{"text":"{escaped}"}}"#)), vec!["rsa_private_key"]);
    assert!(kinds("-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----").is_empty());
    assert!(kinds(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"
    )
    .is_empty());
}

#[test]
fn jwt_needs_a_json_header_with_alg() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert_eq!(kinds(&format!("Authorization: Bearer {jwt}")), vec!["jwt"]);
    assert!(kinds("eyJub3RhIjoiand0In0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y").is_empty());
}

#[test]
fn urls_and_connection_strings() {
    assert_eq!(
        found("DATABASE_URL=postgres://app:Vq8rT2mX9kLp@db:5432/app"),
        vec![("connection_string".into(), "Vq8rT2mX9kLp".into())]
    );
    assert_eq!(
        found("git clone https://bot:Zx81mQ0pLr@git.corp.net/r.git"),
        vec![("url_credentials".into(), "Zx81mQ0pLr".into())]
    );
    for neg in [
        "postgres://user:password@localhost/db",
        "redis://:${REDIS_PASSWORD}@cache:6379",
        "https://user:<token>@host/x",
        "mysql://root:****@db",
    ] {
        assert!(kinds(neg).is_empty(), "{neg}: {:?}", found(neg));
    }
}

#[test]
fn generic_assignments_need_entropy_and_no_placeholder() {
    assert_eq!(
        found(r#"DB_PASSWORD="r8#Tq2!mZ7vL""#),
        vec![("generic_password".into(), "r8#Tq2!mZ7vL".into())]
    );
    assert_eq!(kinds("client_secret: 9f2Kq7Lm3Xw8Pz1Rt6Yv4Bn0"), vec!["generic_secret"]);
    for neg in [
        "password = getpass.getpass()",
        "password: ${DB_PASSWORD}",
        "API_KEY=<your-api-key>",
        "SECRET_KEY=changeme",
        "token = os.environ[\"TOKEN\"]",
        "password: \"********\"",
        "api_key: \"xxxxxxxxxxxxxxxxxxxx\"",
        "max_tokens: 4096",
        "tokenizer: bert-base-uncased",
        "secret = config.secret_value",
        "token_url = \"https://oauth2.example.com/token\"",
        "fn parse(tokens: proc_macro2::TokenStream) -> Result<()>",
        "type Token = private::IdentAny;",
        "cancellation_token: &LocalManualResetEvent,",
        "session_token: SessionTokenProvider,",
        "let private_key = pkcs1::RsaPrivateKey {",
    ] {
        assert!(kinds(neg).is_empty(), "{neg}: {:?}", found(neg));
    }
}

#[test]
fn specific_beats_generic_and_secret_beats_pii() {
    let tok = gh("ghp_");
    assert_eq!(kinds(&format!("GITHUB_TOKEN={tok}")), vec!["github_pat"]);
    // The password of a URL is a secret even though it looks like an email's local part.
    assert_eq!(
        kinds("amqp://svc:Pq7xW2zR9m@broker.example.com/vhost"),
        vec!["connection_string"]
    );
}

#[test]
fn findings_are_sorted_and_disjoint() {
    let text = format!(
        "a {} b alice@corp.io c +44 20 7946 0958 d {}",
        gh("ghp_"),
        "4539 1488 0343 6467"
    );
    let f = det().scan(&text);
    assert_eq!(
        f.iter().map(|f| &*f.kind).collect::<Vec<_>>(),
        vec!["github_pat", "email", "phone", "credit_card"]
    );
    assert!(f.windows(2).all(|w| w[0].end <= w[1].start));
    assert_eq!(f[0].action, Action::Block);
    assert_eq!(f[1].action, Action::Reversible);
    assert_eq!(f[1].category, Category::Pii);
}

#[test]
fn policy_actions_custom_detectors_and_allowlists() {
    let mut p = DetectPolicy::default();
    p.actions.insert("email".into(), Action::Off);
    p.actions.insert("github_pat".into(), Action::Redact);
    p.custom.push(CustomDetector {
        kind: "customer_id".into(),
        pattern: r"\bCUST-[0-9]{8}\b".into(),
        action: Action::Reversible,
        secret: false,
    });
    p.custom.push(CustomDetector {
        kind: "internal_key".into(),
        pattern: r"\bIK_[A-Z0-9]{12}\b".into(),
        action: Action::Block,
        secret: true,
    });
    p.allowlist.push("52.14.3.9".into());
    p.allowlist_patterns.push(r"^203\.".into());
    let d = Detector::new(&p).unwrap();
    let text = format!(
        "{} bob@corp.io CUST-12345678 IK_ABCDEF123456 52.14.3.9 203.0.114.7 81.2.69.160",
        gh("ghp_")
    );
    let got: Vec<(String, Category, Action)> = d
        .scan(&text)
        .iter()
        .map(|f| (f.kind.to_string(), f.category, f.action))
        .collect();
    assert_eq!(
        got,
        vec![
            ("github_pat".into(), Category::Secret, Action::Redact),
            ("customer_id".into(), Category::Pii, Action::Reversible),
            ("internal_key".into(), Category::Secret, Action::Block),
            ("ipv4".into(), Category::Pii, Action::Reversible),
        ]
    );
}

#[test]
fn bad_policies_are_errors_that_say_what_to_fix() {
    let mut p = DetectPolicy::default();
    p.actions.insert("emial".into(), Action::Off);
    let e = Detector::new(&p).unwrap_err().to_string();
    assert!(e.contains("emial") && e.contains("promptwall scan --list-kinds"), "{e}");

    let mut p = DetectPolicy::default();
    p.custom.push(CustomDetector {
        kind: "x".into(),
        pattern: "(".into(),
        action: Action::Block,
        secret: true,
    });
    assert!(matches!(Detector::new(&p), Err(DetectError::CustomPattern { .. })));

    let mut p = DetectPolicy::default();
    p.custom.push(CustomDetector {
        kind: "email".into(),
        pattern: "x".into(),
        action: Action::Block,
        secret: true,
    });
    assert!(matches!(Detector::new(&p), Err(DetectError::CustomKind(_))));

    let mut p = DetectPolicy::default();
    p.allowlist_patterns.push("[".into());
    assert!(matches!(Detector::new(&p), Err(DetectError::AllowlistPattern { .. })));
}

#[test]
fn policy_deserializes_from_config_keys() {
    let p: PipelineConfig = serde_json::from_str(
        r#"{"secrets":"redact","pii":"off","actions":{"jwt":"block"},"custom":[{"kind":"cid","pattern":"C-[0-9]+","action":"reversible"}],"private_ips_are_pii":true}"#,
    )
    .unwrap();
    assert_eq!(p.secrets, Action::Redact);
    assert_eq!(p.action_for("jwt", Category::Secret), Action::Block);
    assert_eq!(p.action_for("email", Category::Pii), Action::Off);
    assert!(!p.custom[0].secret);
    assert!(serde_json::from_str::<PipelineConfig>(r#"{"secretz":"block"}"#).is_err());
}

#[test]
fn non_ascii_text_and_offsets_on_char_boundaries() {
    let text = format!("日本語のテキスト {} ünïcödé bob@corp.io — fin", gh("gho_"));
    for f in det().scan(&text) {
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
    }
    assert_eq!(kinds(&text), vec!["github_oauth_token", "email"]);
}

/// Not a test of speed (no timed assertion): prints the figure for the
/// report. Run: cargo test -p promptwall-llm --release -- --ignored scan_speed --nocapture
#[test]
#[ignore]
fn scan_speed_1mb() {
    let chunk = [
        include_str!("mod.rs"),
        include_str!("pii.rs"),
        include_str!("validate.rs"),
        include_str!("fingerprint.rs"),
    ]
    .join("\n");
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 1 << 20 {
        text.push_str(&chunk);
        text.push_str(&format!(
            "\nlet url = \"https://api.service.io/v{i}/items\"; // token count {i}\n"
        ));
        i += 1;
    }
    // SCAN_BENCH_FILE=path: measure on a real file instead (first 1 MiB).
    if let Ok(path) = std::env::var("SCAN_BENCH_FILE") {
        let bytes = std::fs::read(path).expect("SCAN_BENCH_FILE readable");
        text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]).into_owned();
    }
    let d = det();
    let _ = d.scan(&text);
    let runs = 20;
    let t = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..runs {
        n += d.scan(&text).len();
    }
    let per = t.elapsed() / runs;
    println!(
        "scan of {} bytes: {:?} per run ({} findings per run)",
        text.len(),
        per,
        n / runs as usize
    );
    for (name, secrets, pii) in [
        ("secrets only", Action::Block, Action::Off),
        ("pii only", Action::Off, Action::Reversible),
    ] {
        let d = Detector::new(&DetectPolicy {
            secrets,
            pii,
            ..Default::default()
        })
        .unwrap();
        let t = std::time::Instant::now();
        for _ in 0..runs {
            d.scan(&text);
        }
        println!("  {name}: {:?} per run", t.elapsed() / runs);
    }
    let t = std::time::Instant::now();
    let mut hits = 0;
    for _ in 0..runs {
        if let Some(pf) = &d.prefilter {
            pf.each_hit(&text, |_, _| hits += 1);
        }
    }
    println!(
        "  keyword prefilter alone: {:?} per run ({} hits)",
        t.elapsed() / runs,
        hits / runs as usize
    );
    for kind in ["email", "phone", "credit_card", "iban", "us_ssn", "ipv4", "ipv6"] {
        let mut p = DetectPolicy {
            secrets: Action::Off,
            pii: Action::Off,
            ..Default::default()
        };
        p.actions.insert(kind.into(), Action::Reversible);
        let d = Detector::new(&p).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..runs {
            d.scan(&text);
        }
        println!("  {kind}: {:?} per run", t.elapsed() / runs);
    }
}
