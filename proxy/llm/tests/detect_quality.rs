//! Detection quality over a generated corpus: deterministic (seeded)
//! positives for every detector kind, embedded in code/log/prose/JSON
//! contexts, and tempting negatives (UUIDs, git SHAs, lockfile hashes,
//! base64 blobs, documented example keys, versions, dates, placeholders).
//! Recall per kind and the false-positive rate must not fall below the
//! floor in tests/detect_baseline.json.

use std::collections::{BTreeMap, BTreeSet};

use promptwall_llm::detect::{github_checksum, Category, DetectPolicy, Detector, KINDS};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn from(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n).map(|_| a[self.below(a.len())] as char).collect()
    }
    /// `{x:N}` placeholders: a alnum, l lower alnum, A upper alnum, h hex,
    /// d digits, u url-safe, b base64, L letters, U upper letters, 3 base32,
    /// B bech32.
    fn fill(&mut self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').expect("closed placeholder");
            let spec = &rest[open + 1..close];
            let (class, n) = spec.split_once(':').expect("class:len");
            let n: usize = n.parse().expect("length");
            let alphabet = match class {
                "a" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "l" => "abcdefghijklmnopqrstuvwxyz0123456789",
                "A" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "h" => "0123456789abcdef",
                "d" => "0123456789",
                "u" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
                "b" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                "L" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "U" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                "3" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                "B" => "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
                "p" => "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*+-=?@^_~",
                other => panic!("unknown class {other}"),
            };
            out.push_str(&self.from(alphabet, n));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// A generated positive: text to embed and the secret inside it.
struct Sample {
    insert: String,
    secret: String,
}

fn plain(v: String) -> Sample {
    Sample {
        secret: v.clone(),
        insert: v,
    }
}

fn github_like(r: &mut Rng, prefix: &str) -> String {
    let random = r.fill("{a:30}");
    format!("{prefix}{random}{}", github_checksum(&random))
}

fn luhn_complete(r: &mut Rng, prefix: &str, len: usize) -> String {
    let mut digits: Vec<u32> = prefix.bytes().map(|b| (b - b'0') as u32).collect();
    while digits.len() < len - 1 {
        digits.push(r.below(10) as u32);
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from(b'0' + *d as u8)).collect()
}

fn iban(r: &mut Rng) -> String {
    let (country, bban) = match r.below(3) {
        0 => ("DE", r.fill("{d:18}")),
        1 => ("GB", format!("{}{}", r.fill("{U:4}"), r.fill("{d:14}"))),
        _ => ("FR", r.fill("{d:23}")),
    };
    let rearranged = format!("{bban}{country}00");
    let mut rem = 0u32;
    for c in rearranged.bytes() {
        let v = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else {
            (c - b'A') as u32 + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    let compact = format!("{country}{:02}{bban}", 98 - rem);
    if r.below(2) == 0 {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        compact
    }
}

fn b64std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn pem(r: &mut Rng, label: &str, json_escaped: bool) -> String {
    let nl = if json_escaped { "\\n" } else { "\n" };
    let lines: Vec<String> = (0..12).map(|_| r.fill("{b:64}")).collect();
    format!(
        "-----BEGIN {label}-----{nl}{}{nl}{}=={nl}-----END {label}-----",
        lines.join(nl),
        r.fill("{b:30}")
    )
}

fn context_sample(r: &mut Rng, contexts: &[&str], value: String) -> Sample {
    let ctx = *r.pick(contexts);
    Sample {
        insert: ctx.replace("{V}", &value),
        secret: value,
    }
}

/// One positive for `kind`.
fn positive(r: &mut Rng, kind: &str) -> Sample {
    let t = |r: &mut Rng, template: &str| plain(r.fill(template));
    match kind {
        "aws_access_key_id" => plain(format!("{}{}", r.pick(&["AKIA", "ASIA"]), r.fill("{3:16}"))),
        "gcp_api_key" => t(r, "AIza{u:35}"),
        "gcp_oauth_client_secret" => t(r, "GOCSPX-{u:28}"),
        "google_oauth_access_token" => t(r, "ya29.{u:120}"),
        "google_oauth_refresh_token" => t(r, "1//0{u:60}"),
        "azure_storage_account_key" => {
            let key = r.fill("{b:86}==");
            Sample { insert: format!("AccountKey={key}"), secret: key }
        }
        "azure_storage_connection_string" => {
            let key = r.fill("{b:86}==");
            Sample {
                insert: format!("DefaultEndpointsProtocol=https;AccountName=acct{};AccountKey={key};EndpointSuffix=core.windows.net", r.fill("{d:4}")),
                secret: key,
            }
        }
        "azure_ad_client_secret" => t(r, "{a:3}{d:1}Q~{a:34}"),
        "digitalocean_token" => t(r, "dop_v1_{h:64}"),
        "digitalocean_oauth_token" => t(r, "doo_v1_{h:64}"),
        "digitalocean_refresh_token" => t(r, "dor_v1_{h:64}"),
        "alibaba_access_key_id" => t(r, "LTAI{a:20}"),
        "github_pat" => plain(github_like(r, "ghp_")),
        "github_oauth_token" => plain(github_like(r, "gho_")),
        "github_user_token" => plain(github_like(r, "ghu_")),
        "github_app_token" => plain(github_like(r, "ghs_")),
        "github_refresh_token" => plain(github_like(r, "ghr_")),
        "npm_token" => plain(github_like(r, "npm_")),
        "github_fine_grained_pat" => t(r, "github_pat_{a:22}_{a:59}"),
        "gitlab_pat" => t(r, "glpat-{u:20}"),
        "gitlab_pipeline_trigger_token" => t(r, "glptt-{h:40}"),
        "gitlab_runner_token" => t(r, "glrt-{u:20}"),
        "gitlab_deploy_token" => t(r, "gldt-{u:20}"),
        "gitlab_feed_token" => t(r, "glft-{u:20}"),
        "gitlab_oauth_app_secret" => t(r, "gloas-{u:64}"),
        "gitlab_ci_job_token" => t(r, "glcbt-{a:2}_{u:20}"),
        "bitbucket_app_password" => t(r, "ATBB{a:32}"),
        "atlassian_api_token" => t(r, "ATATT3{u:180}"),
        "slack_bot_token" => t(r, "xoxb-{d:12}-{d:13}-{a:24}"),
        "slack_user_token" => t(r, "xoxp-{d:12}-{d:12}-{d:13}-{h:32}"),
        "slack_app_token" => t(r, "xapp-1-{A:11}-{d:13}-{h:64}"),
        "slack_legacy_token" => t(r, "xoxs-{d:12}-{a:40}"),
        "slack_webhook_url" => t(r, "https://hooks.slack.com/services/T{A:10}/B{A:10}/{a:24}"),
        "discord_webhook_url" => t(r, "https://discord.com/api/webhooks/1{d:17}/{u:68}"),
        "telegram_bot_token" => t(r, "1{d:9}:AA{u:33}"),
        "stripe_secret_key" => t(r, "sk_live_{a:34}"),
        "stripe_restricted_key" => t(r, "rk_live_{a:34}"),
        "stripe_test_key" => t(r, "sk_test_{a:34}"),
        "stripe_webhook_secret" => t(r, "whsec_{a:32}"),
        "square_access_token" => t(r, "EAAA{u:60}"),
        "square_oauth_secret" => t(r, "sq0csp-{u:43}"),
        "paypal_braintree_access_token" => t(r, "access_token$production${l:16}${h:32}"),
        "pypi_token" => t(r, "pypi-AgEIcHlwaS5vcmc{u:70}"),
        "rubygems_api_key" => t(r, "rubygems_{h:48}"),
        "nuget_api_key" => t(r, "oy2{l:43}"),
        "dockerhub_pat" => t(r, "dckr_pat_{u:27}"),
        "crates_io_token" => t(r, "cio{a:32}"),
        "anthropic_api_key" => t(r, "sk-ant-api03-{u:93}AA"),
        "anthropic_admin_key" => t(r, "sk-ant-admin01-{u:93}AA"),
        "anthropic_oauth_token" => t(r, "sk-ant-oat01-{u:95}"),
        "openai_project_key" => t(r, "sk-proj-{u:156}"),
        "openai_service_account_key" => t(r, "sk-svcacct-{u:156}"),
        "openai_admin_key" => t(r, "sk-admin-{u:100}"),
        "openai_api_key" => t(r, "sk-{a:20}T3BlbkFJ{a:20}"),
        "huggingface_token" => t(r, "hf_{L:34}"),
        "groq_api_key" => t(r, "gsk_{a:52}"),
        "replicate_api_token" => t(r, "r8_{a:37}"),
        "xai_api_key" => t(r, "xai-{a:80}"),
        "perplexity_api_key" => t(r, "pplx-{a:48}"),
        "openrouter_api_key" => t(r, "sk-or-v1-{h:64}"),
        "langsmith_api_key" => t(r, "lsv2_pt_{h:32}_{h:10}"),
        "sendgrid_api_key" => t(r, "SG.{u:22}.{u:43}"),
        "mailchimp_api_key" => t(r, "{h:32}-us{d:2}"),
        "twilio_api_key" => t(r, "SK{h:32}"),
        "shopify_access_token" => t(r, "shpat_{h:32}"),
        "shopify_shared_secret" => t(r, "shpss_{h:32}"),
        "linear_api_key" => t(r, "lin_api_{a:40}"),
        "notion_api_key" => if r.below(2) == 0 { t(r, "ntn_{d:11}{a:35}") } else { t(r, "secret_{a:43}") },
        "new_relic_user_api_key" => t(r, "NRAK-{A:27}"),
        "new_relic_insert_key" => t(r, "NRII-{u:32}"),
        "sentry_auth_token" => t(r, "sntryu_{h:64}"),
        "postman_api_key" => t(r, "PMAK-{h:24}-{h:34}"),
        "vault_token" => t(r, "hvs.{u:95}"),
        "terraform_cloud_token" => t(r, "{a:14}.atlasv1.{u:67}"),
        "doppler_token" => t(r, "dp.pt.{a:43}"),
        "pulumi_access_token" => t(r, "pul-{h:40}"),
        "heroku_api_key" => if r.below(2) == 0 {
            t(r, "HRKU-AA{u:58}")
        } else {
            let v = r.fill("{h:8}-{h:4}-{h:4}-{h:4}-{h:12}");
            context_sample(r, &["HEROKU_API_KEY={V}\n", "heroku_api_key: \"{V}\""], v)
        },
        "netlify_token" => if r.below(2) == 0 {
            t(r, "nfp_{a:36}")
        } else {
            let v = r.fill("{u:43}");
            context_sample(r, &["NETLIFY_AUTH_TOKEN={V}\n", "netlify_token = '{V}'"], v)
        },
        "supabase_access_token" => t(r, "sbp_{h:40}"),
        "supabase_secret_key" => t(r, "sb_secret_{u:31}"),
        "planetscale_token" => t(r, "pscale_tkn_{u:43}"),
        "databricks_token" => t(r, "dapi{h:32}"),
        "grafana_cloud_token" => t(r, "glc_{a:80}"),
        "grafana_service_account_token" => t(r, "glsa_{a:32}_{h:8}"),
        "flyio_token" => if r.below(2) == 0 { t(r, "fo1_{u:43}") } else { t(r, "fm2_{b:180}") },
        // A wrong checksum: the last character of a valid one, changed.
        "github_token_unverified" | "npm_token_unverified" => {
            let prefix = if kind == "npm_token_unverified" { "npm_".to_string() } else { format!("gh{}_", r.pick(&["p", "o", "u", "s", "r"])) };
            let random = r.fill("{a:30}");
            let mut v = format!("{prefix}{random}{}", promptwall_llm::detect::github_checksum(&random));
            let last = v.pop().expect("checksum");
            v.push(if last == 'Z' { 'Y' } else { 'Z' });
            plain(v)
        }
        "twitter_bearer_token" => t(r, "AAAAAAAAAAAAAAAAAAAAA{L:1}{a:90}"),
        "harness_api_key" => t(r, "pat.{u:22}.{a:24}.{a:20}"),
        "sourcegraph_token" => t(r, "sgp_{h:16}_{h:40}"),
        "easypost_api_key" => t(r, "EZAK{a:54}"),
        "onepassword_secret_key" => t(r, "A3-{A:6}-{A:11}-{A:5}-{A:5}-{A:5}"),
        "snyk_api_token" => {
            let v = r.fill("{h:8}-{h:4}-{h:4}-{h:4}-{h:12}");
            context_sample(r, &["SNYK_TOKEN={V}\n", "snyk_api_key: \"{V}\""], v)
        }
        "sonar_token" => {
            let v = r.fill("squ_{h:40}");
            context_sample(r, &["SONAR_TOKEN={V}\n", "sonar.login={V}\n"], v)
        }
        "kubernetes_secret" => {
            let v = b64std(&r.fill("{p:24}"));
            Sample { insert: format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n  token: {v}\n"), secret: v }
        }
        "age_secret_key" => t(r, "AGE-SECRET-KEY-1{B:58}"),
        "figma_token" => t(r, "figd_{u:40}"),
        "dynatrace_token" => t(r, "dt0c01.{A:24}.{A:64}"),
        "mapbox_secret_token" => t(r, "sk.eyJ{u:80}.{u:22}"),
        "shippo_api_token" => t(r, "shippo_live_{h:40}"),
        "flutterwave_secret_key" => t(r, "FLWSECK-{h:32}-X"),
        "prefect_api_key" => t(r, "pnu_{a:36}"),
        "onepassword_service_account_token" => t(r, "ops_eyJ{u:300}"),
        "cloudflare_origin_ca_key" => t(r, "v1.0-{h:24}-{h:146}"),
        "jwt" => {
            let header = b64url(&format!(r#"{{"alg":"{}","typ":"JWT"}}"#, r.pick(&["HS256", "RS256", "ES256"])));
            let payload = b64url(&format!(r#"{{"sub":"{}","iat":{},"name":"user{}"}}"#, r.fill("{d:8}"), r.fill("1{d:9}"), r.fill("{d:3}")));
            plain(format!("{header}.{payload}.{}", r.fill("{u:43}")))
        }
        "rsa_private_key" | "ec_private_key" | "dsa_private_key" | "pkcs8_private_key" | "encrypted_private_key" | "openssh_private_key" | "pgp_private_key" => {
            let label = match kind {
                "rsa_private_key" => "RSA PRIVATE KEY",
                "ec_private_key" => "EC PRIVATE KEY",
                "dsa_private_key" => "DSA PRIVATE KEY",
                "pkcs8_private_key" => "PRIVATE KEY",
                "encrypted_private_key" => "ENCRYPTED PRIVATE KEY",
                "openssh_private_key" => "OPENSSH PRIVATE KEY",
                _ => "PGP PRIVATE KEY BLOCK",
            };
            let json = r.below(2) == 0;
            plain(pem(r, label, json))
        }
        "putty_private_key" => plain(format!(
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy@build\nPublic-Lines: 2\n{}\n{}\nPrivate-Lines: 1\n{}\nPrivate-MAC: {}",
            r.fill("{b:64}"), r.fill("{b:16}"), r.fill("{b:44}"), r.fill("{h:64}")
        )),
        "gcp_service_account_key" => {
            let key = pem(r, "PRIVATE KEY", true) + "\\n";
            Sample {
                insert: format!(
                    r#"{{"type": "service_account", "project_id": "proj-{}", "private_key_id": "{}", "private_key": "{key}", "client_id": "{}"}}"#,
                    r.fill("{d:5}"), r.fill("{h:40}"), r.fill("{d:21}")
                ),
                secret: key,
            }
        }
        "aws_secret_access_key" => {
            let v = r.fill("{b:40}");
            context_sample(r, &["AWS_SECRET_ACCESS_KEY={V}\n", "aws_secret_access_key = {V}\n", r#""SecretAccessKey": "{V}""#], v)
        }
        "ibm_cloud_api_key" => {
            let v = r.fill("{u:44}");
            context_sample(r, &["IBM_CLOUD_API_KEY=\"{V}\"", "ibmcloud_apikey: {V}"], v)
        }
        "discord_bot_token" => {
            let v = r.fill("M{a:25}.{u:6}.{u:38}");
            context_sample(r, &["DISCORD_BOT_TOKEN={V}\n", "client.run('{V}')  # discord bot"], v)
        }
        "cohere_api_key" => {
            let v = r.fill("{a:40}");
            context_sample(r, &["COHERE_API_KEY={V}\n", "cohere_key: \"{V}\""], v)
        }
        "mailgun_api_key" => {
            let v = r.fill("key-{h:32}");
            context_sample(r, &["MAILGUN_API_KEY={V}\n", "mailgun:\n  key: {V}\n"], v)
        }
        "twilio_auth_token" => {
            let v = r.fill("{h:32}");
            context_sample(r, &["TWILIO_AUTH_TOKEN={V}\n", "twilio_auth_token = \"{V}\""], v)
        }
        "datadog_api_key" => {
            let v = r.fill("{h:32}");
            context_sample(r, &["DD_API_KEY={V}\n", "datadog_api_key: {V}\n"], v)
        }
        "vercel_token" => {
            let v = r.fill("{a:24}");
            context_sample(r, &["VERCEL_TOKEN={V}\n", "vercel_token: '{V}'"], v)
        }
        "okta_api_token" => {
            let v = r.fill("00{u:40}");
            context_sample(r, &["OKTA_API_TOKEN={V}\n", "okta_token = \"{V}\""], v)
        }
        "cloudflare_api_token" => {
            let v = r.fill("{u:40}");
            context_sample(r, &["CLOUDFLARE_API_TOKEN={V}\n", "cf_api_token: {V}\n"], v)
        }
        "connection_string" => {
            let pw = r.fill("{a:18}");
            let url = format!(
                "{}://app_user:{pw}@db-{}.internal:5432/app",
                r.pick(&["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp"]),
                r.fill("{d:2}")
            );
            Sample { insert: format!("DATABASE_URL={url}\n"), secret: pw }
        }
        "aws_session_token" => {
            let v = format!("IQoJb3JpZ2luX2Vj{}", r.fill("{b:300}"));
            context_sample(r, &["AWS_SESSION_TOKEN={V}\n", "aws_session_token = {V}\n", "  SessionToken: \"{V}\"\n"], v)
        }
        "docker_registry_auth" => {
            let v = b64std(&format!("ci-bot:{}", r.fill("{a:20}")));
            Sample { insert: format!(r#"{{"auths": {{"registry.corp.net": {{"auth": "{v}"}}}}}}"#), secret: v }
        }
        "http_basic_auth" => {
            if r.below(2) == 0 {
                let v = b64std(&format!("svc:{}", r.fill("{a:16}")));
                Sample { insert: format!("Authorization: Basic {v}\r\n"), secret: v }
            } else {
                let pw = r.fill("{a:16}");
                Sample { insert: format!("curl -u admin:{pw} https://api.corp.net/v1/items"), secret: pw }
            }
        }
        "bearer_token" => {
            let v = r.fill("{u:40}");
            context_sample(r, &["Authorization: Bearer {V}\r\n", "curl -H 'Authorization: Bearer {V}' https://api.corp.net\n"], v)
        }
        "azure_sas_token" => {
            let sig = r.fill("{b:43}=").replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
            Sample {
                insert: format!("https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01T00:00:00Z&sig={sig}"),
                secret: sig,
            }
        }
        "base64_private_key" => {
            let v = b64std(&pem(r, "RSA PRIVATE KEY", false));
            context_sample(r, &["  tls.key: {V}\n", "PRIVATE_KEY_B64={V}\n"], v)
        }
        "url_credentials" => {
            let pw = r.fill("{a:20}");
            Sample { insert: format!("git clone https://deploy:{pw}@git.corp-{}.net/team/repo.git", r.fill("{l:5}")), secret: pw }
        }
        "generic_password" => {
            let pw = r.fill("{p:18}");
            context_sample(r, &["DB_PASSWORD=\"{V}\"\n", "  password: '{V}'\n", r#"{"username": "svc", "password": "{V}"}"#, "smtp_passwd = {V}\n"], pw)
        }
        "generic_secret" => {
            let tpl = *r.pick(&["{a:32}", "{h:40}", "{u:48}"]);
            let v = r.fill(tpl);
            context_sample(r, &["CLIENT_SECRET=\"{V}\"\n", "api_key: {V}\n", r#""auth_token": "{V}""#, "SESSION_SECRET={V}\n"], v)
        }
        "email" => {
            let v = format!(
                "{}.{}{}@{}.{}",
                r.pick(&["alice", "bob", "chen", "dmitri", "eve", "fatima", "giulia"]),
                r.pick(&["smith", "nguyen", "garcia", "okafor", "kim"]),
                r.fill("{d:2}"),
                r.pick(&["gmail", "corp-mail", "example-co", "uni-bonn", "fastmail"]),
                r.pick(&["com", "de", "io", "co.uk", "org"])
            );
            plain(v)
        }
        "phone" => plain(match r.below(5) {
            0 => format!("+1 {}{} {}{} {}", 2 + r.below(8), r.fill("{d:2}"), 2 + r.below(8), r.fill("{d:2}"), r.fill("{d:4}")),
            1 => format!("+44 20 {} {}", r.fill("{d:4}"), r.fill("{d:4}")),
            2 => format!("+49 30 {}", r.fill("{d:7}")),
            3 => format!("({}{}) {}{}-{}", 2 + r.below(8), r.fill("{d:2}"), 2 + r.below(8), r.fill("{d:2}"), r.fill("{d:4}")),
            _ => format!("+33{}{}", 1 + r.below(9), r.fill("{d:8}")),
        }),
        "credit_card" => {
            let (prefix, len) = *r.pick(&[("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]);
            let n = luhn_complete(r, prefix, len);
            plain(match (r.below(3), len) {
                (0, _) => n,
                (_, 15) => format!("{} {} {}", &n[..4], &n[4..10], &n[10..]),
                (sep, _) => {
                    let s = if sep == 1 { " " } else { "-" };
                    format!("{}{s}{}{s}{}{s}{}", &n[..4], &n[4..8], &n[8..12], &n[12..])
                }
            })
        }
        "iban" => plain(iban(r)),
        "us_ssn" => {
            let mut area = 1 + r.below(899);
            if area == 666 {
                area = 667;
            }
            plain(format!("{:03}-{:02}-{:04}", area, 1 + r.below(99), 1 + r.below(9999)))
        }
        "ipv4" => plain(format!(
            "{}.{}.{}.{}",
            r.pick(&[8, 23, 34, 45, 52, 64, 77, 81, 91, 104, 142, 151, 185, 195, 212]),
            r.below(256),
            r.below(256),
            1 + r.below(254)
        )),
        "ipv6" => plain(if r.below(2) == 0 {
            format!("2a00:1450:{}:{}::{}", r.fill("{h:4}"), r.fill("{h:3}"), r.fill("{h:3}"))
        } else {
            format!("2606:4700:{}:{}:{}:{}:{}:{}", r.fill("{h:4}"), r.fill("{h:4}"), r.fill("{h:4}"), r.fill("{h:4}"), r.fill("{h:4}"), r.fill("{h:4}"))
        }),
        "name" => plain(format!(
            "{} {}",
            r.pick(&["Anna", "Pierre", "María", "Giulia", "João", "Klaus", "Sophie", "Lars", "Katarzyna", "Daniel"]),
            r.pick(&["Kowalski", "Dupont", "García López", "Rossi", "van der Berg", "Müller", "Lindqvist", "O'Brien", "Fernandes", "Novak"])
        )),
        "address" => plain(match r.below(5) {
            0 => format!("{} {} Street", 1 + r.below(2000), r.pick(&["Baker", "Elm", "Maple", "High", "Church"])),
            1 => format!("{} {} Ave, Springfield, IL {}", 100 + r.below(9000), r.pick(&["Oak", "Lincoln", "Park"]), r.fill("6{d:4}")),
            2 => format!("{}straße {}, {} Berlin", r.pick(&["Haupt", "Linden", "Garten"]), 1 + r.below(120), r.fill("1{d:4}")),
            3 => format!("{} rue de la {}, 7500{} Paris", 1 + r.below(90), r.pick(&["Paix", "Gare", "Fontaine"]), 1 + r.below(9)),
            _ => format!("{} {} {}", r.pick(&["Calle", "Via", "Rua"]), r.pick(&["Mayor", "Roma", "Augusta"]), 1 + r.below(200)),
        }),
        "national_id" => match r.below(3) {
            // ES DNI: eight digits and their mod-23 letter.
            0 => {
                let n = 10_000_000 + r.below(89_999_999);
                let letter = b"TRWAGMYFPDXBNJZSQVHLCKE"[n % 23] as char;
                plain(format!("{n}{letter}"))
            }
            // NL BSN after its keyword: eight digits, the ninth made to pass the 11-proof.
            1 => loop {
                let d: Vec<usize> = (0..8).map(|i| if i == 0 { 1 + r.below(9) } else { r.below(10) }).collect();
                let s: usize = d.iter().enumerate().map(|(i, x)| (9 - i) * x).sum();
                let last = s % 11;
                if last < 10 {
                    let v: String = d.iter().map(|x| x.to_string()).collect::<String>() + &last.to_string();
                    break context_sample(r, &["BSN: {V}\n", "burgerservicenummer {V}"], v);
                }
            },
            // PL PESEL after its keyword: a date and the weighted check digit.
            _ => {
                let d: Vec<u32> = format!("{:02}{:02}{:02}{:04}", r.below(100), 1 + r.below(12), 1 + r.below(28), r.below(10_000))
                    .bytes()
                    .map(|b| (b - b'0') as u32)
                    .collect();
                let s: u32 = d.iter().zip([1, 3, 7, 9, 1, 3, 7, 9, 1, 3]).map(|(x, w)| x * w).sum();
                let v: String = d.iter().map(|x| x.to_string()).collect::<String>() + &((10 - s % 10) % 10).to_string();
                context_sample(r, &["PESEL: {V}\n", "numer PESEL {V}"], v)
            }
        },
        "passport" => {
            let tpl = *r.pick(&["{d:9}", "{U:2}{d:7}", "{U:3}{d:6}", "{d:2}{U:2}{d:5}"]);
            let v = r.fill(tpl);
            context_sample(r, &["passport number {V}", "Passport No.: {V}", "Reisepass {V}", "numéro de passeport {V}", "pasaporte {V}"], v)
        }
        other => panic!("no generator for detector kind {other}; add one to tests/detect_quality.rs"),
    }
}

const SECRET_CONTEXTS: &[&str] = &[
    "export API_CREDENTIAL={V}\n",
    r#"{"model":"claude-sonnet-4","messages":[{"role":"user","content":"why does this fail?\n{V}\nthanks"}]}"#,
    "const client = new Client(\"{V}\");\n",
    "2024-05-01T12:00:00Z INFO request ok key={V} latency=12ms\n",
    "Hi team, please use {V} for the staging setup.\n",
    "  env:\n    SERVICE_KEY: {V}\n",
    "curl -H 'Authorization: Bearer {V}' https://api.service.io/v1/items\n",
];

const PII_CONTEXTS: &[&str] = &[
    "Please contact the customer at {V} about the refund.\n",
    "| 42 | Jane Doe | {V} | active |\n",
    r#"{"role":"user","content":"the record says\n{V}\nis that valid?"}"#,
    "2024-05-01T12:00:00Z WARN lookup failed for {V} (retrying)\n",
    "customer = {\"name\": \"Jane\", \"value\": \"{V}\"}\n",
];

/// Text a detector must not flag.
fn negative(r: &mut Rng, template: usize) -> String {
    match template {
        0 => r.fill("request_id: {h:8}-{h:4}-4{h:3}-a{h:3}-{h:12}\n"),
        1 => r.fill("commit {h:40}\nAuthor: Dev <dev@localhost>\nMerge: {h:7} {h:7}\n"),
        2 => format!(
            r#""node_modules/left-pad": {{"version": "1.3.0", "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz", "integrity": "sha512-{}=="}}"#,
            r.fill("{b:86}")
        ),
        3 => r.fill("[[package]]\nname = \"serde\"\nversion = \"1.0.{d:3}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{h:64}\"\n"),
        4 => r.fill("background: url(data:image/png;base64,{b:240}=);\n"),
        5 => r.fill("FROM node@sha256:{h:64}\nRUN echo {h:32}\n"),
        6 => "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".to_string(),
        // References to stored credentials, and base64 that is not under a
        // Secret. (A GitHub-shaped token with a wrong checksum used to be
        // here; it is now redacted reversibly: `github_token_unverified`.)
        7 => r.fill("withCredentials([string(credentialsId: '{h:8}-{h:4}-{h:4}-{h:4}-{h:12}', variable: 'GH_TOKEN')])\napiVersion: v1\nkind: ConfigMap\nbinaryData:\n  logo.png: {b:64}\n"),
        8 => format!("version = \"{}.{}.{}\"\nrust-version = \"1.{}\"\npython 3.11.{} on node v18.{}.{}\nversion 1.2.3.4\n", r.below(5), r.below(30), r.below(20), 70 + r.below(20), r.below(9), r.below(20), r.below(9)),
        9 => format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z INFO started at {} epoch_ms={}\n",
            1 + r.below(12), 1 + r.below(28), r.below(24), r.below(60), r.below(60), r.fill("{d:3}"), r.fill("{d:2}/{d:2}/2024"), r.fill("17{d:11}")
        ),
        10 => r.fill("color: #{h:6}; border-color: #{h:3};\n"),
        11 => {
            // 16 digits that fail Luhn.
            let good = luhn_complete(r, "4", 16);
            let last = good.as_bytes()[15] - b'0';
            format!("order number {}{}\n", &good[..15], (last + 1) % 10)
        }
        12 => r.pick(&[
            "API_KEY=<your-api-key>\n",
            "password: ${DB_PASSWORD}\n",
            "token = os.environ[\"GITHUB_TOKEN\"]\n",
            "SECRET_KEY=changeme\n",
            "password: \"********\"\n",
            "api_key: \"xxxxxxxxxxxxxxxxxxxxxxxx\"\n",
            "token: ${{ secrets.GITHUB_TOKEN }}\n",
            "password = getpass.getpass()\n",
            "  password: string;\n",
            "max_tokens: 4096\n",
            "tokenizer: bert-base-uncased\n",
            "secret = process.env.SESSION_SECRET\n",
            "aws_secret_access_key = <YOUR_SECRET_KEY>\n",
            "OPENAI_API_KEY=sk-...\n",
            "ANTHROPIC_API_KEY=your-anthropic-key-here\n",
            "password=$(cat /run/secrets/db_password)\n",
        ])
        .to_string(),
        13 => format!("listen 127.0.0.1:8080; upstream 10.{}.{}.{}; gateway 192.168.1.1; dns ::1; link fe80::1\n", r.below(256), r.below(256), r.below(256)),
        14 => "use std::io::Result;\nfn main() -> Result<()> { let x = std::env::var(\"TOKEN\"); Ok(()) }\n".to_string(),
        15 => r.fill("at 12:{d:2}:{d:2} mac {h:2}:{h:2}:{h:2}:{h:2}:{h:2}:{h:2}\n"),
        16 => r.fill("ETag: \"{h:32}\"\nX-Request-Id: {h:16}\nmd5sum {h:32}  file.tar.gz\n"),
        17 => r.fill("jwt-ish: eyJ{u:30}.{u:40}\nbase64: {b:64}\n"),
        18 => format!("\"sha\": \"{}\", \"tree\": {{\"sha\": \"{}\"}}\n", r.fill("{h:40}"), r.fill("{h:40}")),
        19 => format!("ISBN 978-{}-{}-{}-{}; build {}-{}\n", r.below(10), r.fill("{d:2}"), r.fill("{d:6}"), r.below(10), r.fill("{d:4}"), r.fill("{d:6}")),
        20 => r.fill("user@example in docs, @types/node, logo@2x.png, lodash@4.17.{d:2}, git@github.com:org/repo.git\n"),
        21 => r.fill("Stripe test card 4242 4242 4242 4242, AMEX test 378282246310005\n"),
        22 => r.fill("const key = cacheKey(\"{l:12}\"); // key-{l:8}\nlet secretName = \"prod-db-credentials\";\n"),
        23 => r.fill("  \"input_tokens\": {d:5},\n  \"output_tokens\": {d:4},\n  \"cache_read_input_tokens\": {d:6}\n"),
        24 => r.fill("pip install requests==2.{d:2}.{d:1}  # sha256:{h:64}\n"),
        25 => r.pick(&[
            "pub fn parse2(tokens: proc_macro2::TokenStream) -> Result<()> {\n",
            "impl Peek for PeekFn { type Token = private::IdentAny; }\n",
            "fn try_from(private_key_info: pkcs8::PrivateKeyInfo<'_>) -> Result<Self> {\n",
            "let private_key = pkcs1::RsaPrivateKey { modulus, exponent };\n",
            "fn search(cancellation_token: &LocalManualResetEvent) -> SearchResult {\n",
            "/// Definite form (X.690 8.1.3.3)\n",
        ])
        .to_string(),
        26 => format!(
            "assert_eq!(oid, \"1.3.101.{}\".parse().unwrap()); // RFC 5280 §5.1.2.{} and Section 4.2.1.{}\n",
            100 + r.below(20), 1 + r.below(7), 1 + r.below(13)
        ),
        27 => format!(
            "utc_datetime!(+{}-12-31 23:59:59); resolvers 8.8.8.8, 1.1.1.1, 2001:4860:4860::8888 (public DNS)\n",
            r.pick(&["9999", "999999", "10000"])
        ),
        28 => r.pick(&[
            "Visual Studio Code 1.85 on Ubuntu 22.04 with Docker Desktop 4.26\n",
            "Use Ruby on Rails 7 or Spring Boot 3.2 behind Apache Kafka\n",
            "Co-Authored-By: Claude <noreply@anthropic.com>\n",
            "app.use(passport.initialize()); passport.use(new JwtStrategy(opts, verify));\n",
            "Step 3: Open Settings > General > About This Mac\n",
            "impl Display for HashMap<String, Vec<u8>> { fn fmt(&self) }\n",
            "Will Return an Error if the Mark Bit is set; May Contain nulls.\n",
            "## Release Notes\nVersion 2 Street View API, Main Road Map v3\n",
        ])
        .to_string(),
        _ => unreachable!(),
    }
}

const NEGATIVE_TEMPLATES: usize = 29;

#[derive(serde::Deserialize)]
struct Baseline {
    seed: u64,
    positives_per_kind: usize,
    negatives_per_template: usize,
    min_recall_per_kind: f64,
    max_false_positive_rate: f64,
    min_secret_kinds: usize,
    recall_overrides: BTreeMap<String, f64>,
}

fn baseline() -> Baseline {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/detect_baseline.json"))
        .expect("baseline file");
    serde_json::from_str(&text).expect("baseline parses")
}

#[test]
fn catalogue_has_enough_secret_kinds_and_a_generator_for_each() {
    let b = baseline();
    let secret = KINDS.iter().filter(|k| k.category == Category::Secret).count();
    assert!(
        secret >= b.min_secret_kinds,
        "{secret} secret kinds < {}",
        b.min_secret_kinds
    );
    let unique: BTreeSet<_> = KINDS.iter().map(|k| k.kind).collect();
    assert_eq!(unique.len(), KINDS.len(), "duplicate kinds in catalogue");
    let mut r = Rng(b.seed);
    for k in KINDS.iter() {
        let s = positive(&mut r, k.kind);
        assert!(s.insert.contains(&s.secret), "{}", k.kind);
    }
}

#[test]
fn recall_and_false_positive_rate_do_not_regress() {
    let b = baseline();
    let detector = Detector::new(&DetectPolicy::default()).expect("default policy");
    // DETECT_CORPUS_SEED explores other corpora locally; CI uses the baseline's.
    let seed = std::env::var("DETECT_CORPUS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(b.seed);
    let mut r = Rng(seed);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for k in KINDS.iter() {
        let mut hit = 0;
        let mut misses = Vec::new();
        for _ in 0..b.positives_per_kind {
            let s = positive(&mut r, k.kind);
            let ctx = *r.pick(if k.category == Category::Pii {
                PII_CONTEXTS
            } else {
                SECRET_CONTEXTS
            });
            let doc = ctx.replace("{V}", &s.insert);
            let at = doc.find(&s.insert).unwrap() + s.insert.find(&s.secret).unwrap();
            let span = at..at + s.secret.len();
            let found = detector.scan(&doc);
            if found
                .iter()
                .any(|f| &*f.kind == k.kind && f.start < span.end && span.start < f.end)
            {
                hit += 1;
            } else {
                let got: Vec<String> = found
                    .iter()
                    .map(|f| format!("{}@{}..{}", f.kind, f.start, f.end))
                    .collect();
                misses.push(format!("{doc:?} -> {got:?}"));
            }
        }
        let recall = hit as f64 / b.positives_per_kind as f64;
        let floor = b.recall_overrides.get(k.kind).copied().unwrap_or(b.min_recall_per_kind);
        report.push(format!(
            "{:<36} {:<6} recall {:.3}",
            k.kind,
            k.category.as_str(),
            recall
        ));
        if recall < floor {
            failures.push(format!(
                "{}: recall {recall:.3} < {floor}; e.g. {}",
                k.kind,
                misses.first().cloned().unwrap_or_default()
            ));
        }
    }
    let mut fp_docs = 0;
    let mut total = 0;
    let mut fp_examples = Vec::new();
    for template in 0..NEGATIVE_TEMPLATES {
        for _ in 0..b.negatives_per_template {
            let doc = negative(&mut r, template);
            total += 1;
            let found = detector.scan(&doc);
            if !found.is_empty() {
                fp_docs += 1;
                if fp_examples.len() < 10 {
                    let got: Vec<String> = found
                        .iter()
                        .map(|f| format!("{}={:?}", f.kind, &doc[f.start..f.end]))
                        .collect();
                    fp_examples.push(format!("template {template}: {got:?}"));
                }
            }
        }
    }
    let fp_rate = fp_docs as f64 / total as f64;
    println!("{}", report.join("\n"));
    println!("false positives: {fp_docs}/{total} documents = {fp_rate:.4}");
    for e in &fp_examples {
        println!("  FP {e}");
    }
    if fp_rate > b.max_false_positive_rate {
        failures.push(format!(
            "false-positive rate {fp_rate:.4} > {}; {fp_examples:?}",
            b.max_false_positive_rate
        ));
    }
    assert!(
        failures.is_empty(),
        "detection quality regressed:\n{}",
        failures.join("\n")
    );
}
