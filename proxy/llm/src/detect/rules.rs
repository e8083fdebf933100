//! The built-in credential detectors, as data. Each rule names the literal
//! keywords that must occur near a match (the prefilter), the regex that
//! finds it, and a check that rejects placeholders and bad checksums.

use super::validate::{self, char_classes, is_placeholder, shannon_entropy, token_body_ok};

/// What a check sees of a regex match.
pub(crate) struct Candidate<'a> {
    /// The secret itself (capture group `s`, else the whole match).
    pub value: &'a str,
    /// The value was opened by a quote.
    pub quoted: bool,
    /// All text before the value (checks look at the key or the document).
    pub before: &'a str,
    /// Text right after the value (a few bytes).
    pub after: &'a str,
}

pub(crate) type Check = fn(&Candidate) -> bool;

pub(crate) struct SecretRule {
    pub kind: &'static str,
    pub description: &'static str,
    /// Literal keywords (found case-insensitively; the regex decides case);
    /// a match starts at most `back` bytes before one and ends at most
    /// `span` bytes after it.
    pub keywords: &'static [&'static str],
    pub pattern: String,
    pub back: usize,
    pub span: usize,
    /// The value must not continue a word on either side.
    pub bounded: bool,
    pub check: Check,
    /// Specificity when matches overlap: higher wins, then longer.
    pub tier: u8,
}

fn tok(c: &Candidate) -> bool {
    token_body_ok(c.value)
}

fn tok_mixed(c: &Candidate) -> bool {
    token_body_ok(c.value) && char_classes(c.value) >= 2
}

fn github(c: &Candidate) -> bool {
    validate::github_token_ok(c.value)
}

/// A random-looking body in GitHub's or npm's token format whose CRC32 does
/// not match: a fixture, a typo or a token cut short. Not provably live, so
/// never blocked (see [`at_most_reversible`]), but too close to one to send.
fn checksum_mismatch(c: &Candidate) -> bool {
    !validate::github_token_ok(c.value) && token_body_ok(&c.value[4..]) && char_classes(&c.value[4..]) >= 2
}

/// Kinds found on shape alone, whose check cannot prove a live credential:
/// under the default policy they are redacted reversibly instead of blocked,
/// so a test fixture in a file an agent reads does not stop the agent, and
/// a mistyped or truncated token still does not leave. `[pipeline.actions]`
/// naming the kind overrides this.
pub(crate) fn at_most_reversible(kind: &str) -> bool {
    matches!(kind, "github_token_unverified" | "npm_token_unverified")
}

/// Twitter/X app bearer tokens start with 21 or 22 `A`s (a zero-padded
/// id), so only the rest must look random.
fn twitter_bearer(c: &Candidate) -> bool {
    let rest = c.value.trim_start_matches('A');
    rest.len() >= 70 && token_body_ok(rest) && char_classes(rest) >= 2
}

/// A value indented under `data:` (or `binaryData:`) of a manifest whose
/// `kind` is `Secret`, that decodes to something worth hiding.
fn kubernetes_secret_data(c: &Candidate) -> bool {
    if !validate::kubernetes_data_value_ok(c.value) {
        return false;
    }
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
    let line_start = c.before.rfind('\n').map_or(0, |i| i + 1);
    let mut own = indent(&c.before[line_start..]);
    let mut stepped_over_block_key = false;
    let mut under_data = false;
    for line in c.before[..line_start].lines().rev().take(200) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || indent(line) >= own {
            continue;
        }
        // A block scalar's value (`.dockercfg: |` then the base64) sits
        // under its own key: step up to that key once.
        if !stepped_over_block_key && trimmed.ends_with(['|', '>', '-', '+']) && !trimmed.starts_with("data:") {
            own = indent(line);
            stepped_over_block_key = true;
            continue;
        }
        under_data = trimmed == "data:" || trimmed == "binaryData:";
        break;
    }
    let kind_secret = |s: &str| {
        s.lines().any(|l| {
            l.trim()
                .strip_prefix("kind:")
                .is_some_and(|kind| kind.trim().trim_matches(['"', '\'']).eq_ignore_ascii_case("secret"))
        })
    };
    // The manifest's own lines: at most 4,000 bytes either side.
    let before = &c.before[c.before.ceil_char_boundary(c.before.len().saturating_sub(4000))..];
    let after = &c.after[..c.after.floor_char_boundary(c.after.len().min(4000))];
    under_data && (kind_secret(before) || kind_secret(after))
}

/// The key a generic value is assigned to names something other than the
/// secret itself: its id, name, file, URL or path (`credentialsId`,
/// `LLM_SECRET_NAME`, `TokenFile`, `credentials.url`), or a key made to be
/// public (`publicToken`, `publishable_key`).
fn key_is_reference(before: &str) -> bool {
    let glue = |ch: char| {
        matches!(
            ch,
            ' ' | '\t' | '"' | '\'' | '`' | '=' | ':' | '>' | ',' | '\\' | '?' | '.' | '('
        )
    };
    let head = before.trim_end_matches(glue);
    let start = head
        .char_indices()
        .rev()
        .find(|&(_, ch)| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')))
        .map_or(0, |(i, ch)| i + ch.len_utf8());
    let key = &head[start..];
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("public") || lower.contains("publishable") {
        return true;
    }
    // The last word of the key, split at `_ - .` and at a lower→upper step.
    let mut last = key;
    for (i, ch) in key.char_indices().rev() {
        if matches!(ch, '_' | '-' | '.') {
            last = &key[i + 1..];
            break;
        }
        if ch.is_ascii_uppercase() && i > 0 && key.as_bytes()[i - 1].is_ascii_lowercase() {
            last = &key[i..];
            break;
        }
    }
    matches!(
        last.to_ascii_lowercase().as_str(),
        "id" | "ids" | "name" | "names" | "file" | "files" | "path" | "url" | "uri" | "ref" | "arn" | "type" | "dir"
    )
}

/// The part of a Slack webhook URL after `/services/` (`T…/B…/secret`, or a
/// workflow's id and secret): random with digits, not a documentation
/// stand-in.
fn slack_hook_path(c: &Candidate) -> bool {
    let v = c.value;
    !is_placeholder(v) && shannon_entropy(v) >= 3.5 && v.bytes().any(|b| b.is_ascii_digit()) && char_classes(v) >= 2
}

fn jwt(c: &Candidate) -> bool {
    validate::jwt_ok(c.value)
}

fn aws_key_id(c: &Candidate) -> bool {
    !c.value.ends_with("EXAMPLE") && token_body_ok(&c.value[4..])
}

fn aws_secret(c: &Candidate) -> bool {
    !c.value.contains("EXAMPLE")
        && token_body_ok(c.value)
        && shannon_entropy(c.value) >= 4.0
        && char_classes(c.value) >= 2
}

/// PEM/OpenSSH/PGP bodies: enough base64 and no documentation ellipsis.
fn key_block(c: &Candidate) -> bool {
    let b64 = c
        .value
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .count();
    b64 >= 64 && !c.value.contains("...") && !c.value.to_ascii_lowercase().contains("example")
}

const WEAK_PASSWORDS: &[&str] = &[
    "password", "pass", "passwd", "pwd", "secret", "token", "admin", "root", "user", "test", "guest", "x",
];

/// Passwords in URLs: anything but obvious placeholders.
fn url_password(c: &Candidate) -> bool {
    let v = c.value;
    !is_placeholder(v) && !WEAK_PASSWORDS.iter().any(|w| v.eq_ignore_ascii_case(w)) && !v.starts_with('*')
}

/// `password = value` style assignments.
fn generic_value(c: &Candidate, min_entropy: f64) -> bool {
    let v = c.value;
    // A value in a checksummed token format that fails its checksum is a
    // fake or a typo, not a credential.
    let checksummed = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "npm_"]
        .iter()
        .any(|p| v.starts_with(p));
    if checksummed && !validate::github_token_ok(v) {
        return false;
    }
    // Publishable keys (made to ship in web pages) and encrypted values
    // (sops `ENC[…]`, ansible-vault) are not secrets.
    if ["pk_live_", "pk_test_", "ENC[", "$ANSIBLE_VAULT"]
        .iter()
        .any(|p| v.starts_with(p))
    {
        return false;
    }
    if key_is_reference(c.before) {
        return false;
    }
    if v.len() < 8
        || is_placeholder(v)
        || v.contains("://")
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("~/")
    {
        return false;
    }
    if shannon_entropy(v) < min_entropy || char_classes(v) < 2 {
        return false;
    }
    // Default and dummy credentials name themselves (`Password1`,
    // `mypassword!`): not a secret anyone chose.
    let lower = v.to_ascii_lowercase();
    if ["password", "passwd"].iter().any(|w| lower.contains(w)) {
        return false;
    }
    let has_digit = v.bytes().any(|b| b.is_ascii_digit());
    let mixed_case = v.bytes().any(|b| b.is_ascii_lowercase()) && v.bytes().any(|b| b.is_ascii_uppercase());
    let long_mixed = mixed_case && v.len() >= 16 && shannon_entropy(v) >= 3.5;
    // Password-shaped: both cases and a symbol (`JpHHA%=VjVJ!pQKVe!`).
    let symbol = v
        .bytes()
        .any(|b| b.is_ascii_punctuation() && !matches!(b, b'_' | b'-' | b'.' | b'/'));
    if !(has_digit || long_mixed || (mixed_case && symbol && v.len() >= 10)) {
        return false;
    }
    if !c.quoted {
        // Unquoted letters and underscores: an identifier or a type name.
        if v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
            return false;
        }
        // Code, not a literal: calls, member access, type names, paths.
        if c.after.starts_with(['(', '[', '<', '{']) || v.contains("::") {
            return false;
        }
        if v.contains('.')
            && v.split('.')
                .all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return false;
        }
    }
    true
}

fn basic_auth(c: &Candidate) -> bool {
    validate::basic_credentials_ok(c.value)
}

fn base64_key(c: &Candidate) -> bool {
    validate::base64_private_key_ok(c.value)
}

fn sas_sig(c: &Candidate) -> bool {
    validate::sas_signature_ok(c.value)
}

/// A password given on a command line (`curl -u user:pass`): not a
/// placeholder, not a `uid:gid` pair.
fn cli_password(c: &Candidate) -> bool {
    let v = c.value;
    url_password(c)
        && v.len() >= 4
        && !v.bytes().all(|b| b.is_ascii_digit())
        && !(v.starts_with('[') && v.ends_with(']'))
}

/// A bearer/API token in an `Authorization` header: random-looking.
fn header_token(c: &Candidate) -> bool {
    let v = c.value;
    v.len() >= 16
        && !is_placeholder(v)
        && token_body_ok(v)
        && char_classes(v) >= 2
        && shannon_entropy(v) >= 3.0
        && v.bytes().any(|b| b.is_ascii_digit())
}

/// A hex key next to its vendor's name: hex with letters and digits.
fn hex_key(c: &Candidate) -> bool {
    token_body_ok(c.value)
        && c.value.bytes().any(|b| b.is_ascii_digit())
        && c.value.bytes().any(|b| b.is_ascii_alphabetic())
}

fn generic_password(c: &Candidate) -> bool {
    generic_value(c, 2.8)
}

fn generic_secret(c: &Candidate) -> bool {
    generic_value(c, 3.0)
}

/// Assignment glue between a key name and its value: `: `, ` = `, `=>`,
/// JSON-escaped quotes included (the raw body is scanned too).
///
/// Also: a type between name and `=` (`var apiToken string = "…"`), Make
/// and PHP operators (`::=`, `:::=`, `?=`, `.=`, `??=`), a quoted key and
/// value separated by a comma (`setProperty("API_TOKEN", "…")`) and an XML
/// element's text (`<apiToken>…</apiToken>`, the value maybe on its own
/// line).
const ASSIGN: &str = r#"[A-Za-z0-9_.\-]{0,20}(?:\\?["']?[\t ]*(?:=|:=|::=|:::=|\?=|\.=|\?\?=|:|=>)[\t ]*\\?["'`]?|[\t ]+[A-Za-z]{3,8}[\t ]*=[\t ]*\\?["'`]?|\\?["'][\t ]*,[\t ]*\\?["']|>[\t ]*(?:\r?\n[\t ]*)?)"#;

/// A password key's glue also takes .NET settings and form fields
/// (`<add key="DbPassword" value="…" />`, `name="password" value="…"`);
/// other keys do not (`name="csrf_token" value="…"` is no credential).
const ASSIGN_ATTR: &str = r#"[A-Za-z0-9_.\-]{0,20}\\?["'][\t ]+value[\t ]*=[\t ]*\\?["']"#;

struct R {
    kind: &'static str,
    description: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    back: usize,
    span: usize,
    check: Check,
}

/// Distinctive-prefix tokens: case-sensitive keyword, bounded, tier 5.
const PREFIXED: &[R] = &[
    R {
        kind: "aws_access_key_id",
        description: "AWS access key id",
        keywords: &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
        pattern: r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}",
        back: 0,
        span: 20,
        check: aws_key_id,
    },
    R {
        kind: "gcp_api_key",
        description: "Google Cloud / Gemini API key",
        keywords: &["AIza"],
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        back: 0,
        span: 39,
        check: tok,
    },
    R {
        kind: "gcp_oauth_client_secret",
        description: "Google OAuth client secret",
        keywords: &["GOCSPX-"],
        pattern: r"GOCSPX-[A-Za-z0-9_\-]{28}",
        back: 0,
        span: 35,
        check: tok,
    },
    R {
        kind: "google_oauth_access_token",
        description: "Google OAuth access token",
        keywords: &["ya29."],
        pattern: r"ya29\.[0-9A-Za-z_\-]{30,512}",
        back: 0,
        span: 520,
        check: tok,
    },
    R {
        kind: "google_oauth_refresh_token",
        description: "Google OAuth refresh token",
        keywords: &["1//0"],
        pattern: r"1//0[0-9A-Za-z_\-]{40,256}",
        back: 0,
        span: 260,
        check: tok_mixed,
    },
    R {
        kind: "azure_storage_account_key",
        description: "Azure storage account key",
        keywords: &["AccountKey="],
        pattern: r"AccountKey=(?P<s>[A-Za-z0-9+/]{86}==)",
        back: 0,
        span: 100,
        check: tok,
    },
    R {
        kind: "azure_ad_client_secret",
        description: "Azure AD (Entra) client secret",
        keywords: &["Q~"],
        pattern: r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
        back: 4,
        span: 40,
        check: tok_mixed,
    },
    R {
        kind: "digitalocean_token",
        description: "DigitalOcean personal access token",
        keywords: &["dop_v1_"],
        pattern: r"dop_v1_[a-f0-9]{64}",
        back: 0,
        span: 71,
        check: tok,
    },
    R {
        kind: "digitalocean_oauth_token",
        description: "DigitalOcean OAuth token",
        keywords: &["doo_v1_"],
        pattern: r"doo_v1_[a-f0-9]{64}",
        back: 0,
        span: 71,
        check: tok,
    },
    R {
        kind: "digitalocean_refresh_token",
        description: "DigitalOcean refresh token",
        keywords: &["dor_v1_"],
        pattern: r"dor_v1_[a-f0-9]{64}",
        back: 0,
        span: 71,
        check: tok,
    },
    R {
        kind: "alibaba_access_key_id",
        description: "Alibaba Cloud AccessKey id",
        keywords: &["LTAI"],
        pattern: r"LTAI[A-Za-z0-9]{12,20}",
        back: 0,
        span: 24,
        check: tok_mixed,
    },
    R {
        kind: "github_pat",
        description: "GitHub personal access token (classic), CRC32-checked",
        keywords: &["ghp_"],
        pattern: r"ghp_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "github_oauth_token",
        description: "GitHub OAuth access token, CRC32-checked",
        keywords: &["gho_"],
        pattern: r"gho_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "github_user_token",
        description: "GitHub App user-to-server token, CRC32-checked",
        keywords: &["ghu_"],
        pattern: r"ghu_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "github_app_token",
        description: "GitHub App installation token, CRC32-checked",
        keywords: &["ghs_"],
        pattern: r"ghs_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "github_refresh_token",
        description: "GitHub refresh token, CRC32-checked",
        keywords: &["ghr_"],
        pattern: r"ghr_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "github_fine_grained_pat",
        description: "GitHub fine-grained personal access token",
        keywords: &["github_pat_"],
        pattern: r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
        back: 0,
        span: 93,
        check: tok,
    },
    R {
        kind: "gitlab_pat",
        description: "GitLab personal/project/group access token",
        keywords: &["glpat-"],
        pattern: r"glpat-[A-Za-z0-9_\-]{20,}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?",
        back: 0,
        span: 120,
        check: tok,
    },
    R {
        kind: "gitlab_pipeline_trigger_token",
        description: "GitLab pipeline trigger token",
        keywords: &["glptt-"],
        pattern: r"glptt-[0-9a-f]{40}",
        back: 0,
        span: 46,
        check: tok,
    },
    R {
        kind: "gitlab_runner_token",
        description: "GitLab runner authentication token",
        keywords: &["glrt-"],
        pattern: r"glrt-[A-Za-z0-9_\-]{20,}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?",
        back: 0,
        span: 120,
        check: tok,
    },
    R {
        kind: "gitlab_deploy_token",
        description: "GitLab deploy token",
        keywords: &["gldt-"],
        pattern: r"gldt-[A-Za-z0-9_\-]{20,}",
        back: 0,
        span: 120,
        check: tok,
    },
    R {
        kind: "gitlab_feed_token",
        description: "GitLab feed token",
        keywords: &["glft-"],
        pattern: r"glft-[A-Za-z0-9_\-]{20,}",
        back: 0,
        span: 120,
        check: tok,
    },
    R {
        kind: "gitlab_oauth_app_secret",
        description: "GitLab OAuth application secret",
        keywords: &["gloas-"],
        pattern: r"gloas-[A-Za-z0-9_\-]{64}",
        back: 0,
        span: 70,
        check: tok,
    },
    R {
        kind: "gitlab_ci_job_token",
        description: "GitLab CI/CD job token",
        keywords: &["glcbt-"],
        pattern: r"glcbt-[0-9a-zA-Z]{1,5}_[0-9a-zA-Z_\-]{20}",
        back: 0,
        span: 40,
        check: tok,
    },
    R {
        kind: "bitbucket_app_password",
        description: "Bitbucket app password",
        keywords: &["ATBB"],
        pattern: r"ATBB[A-Za-z0-9_=.\-]{32}",
        back: 0,
        span: 36,
        check: tok_mixed,
    },
    R {
        kind: "atlassian_api_token",
        description: "Atlassian (Jira/Confluence) API token",
        keywords: &["ATATT3"],
        pattern: r"ATATT3[A-Za-z0-9_\-=]{50,300}",
        back: 0,
        span: 310,
        check: tok,
    },
    R {
        kind: "slack_bot_token",
        description: "Slack bot token",
        keywords: &["xoxb-"],
        pattern: r"xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24,34}",
        back: 0,
        span: 70,
        check: tok,
    },
    R {
        kind: "slack_user_token",
        description: "Slack user token",
        keywords: &["xoxp-"],
        pattern: r"xoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[a-f0-9]{32}",
        back: 0,
        span: 90,
        check: tok,
    },
    R {
        kind: "slack_app_token",
        description: "Slack app-level token",
        keywords: &["xapp-"],
        pattern: r"xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,13}-[a-f0-9]{64}",
        back: 0,
        span: 100,
        check: tok,
    },
    R {
        kind: "slack_legacy_token",
        description: "Slack legacy/workspace/refresh token",
        keywords: &["xoxa-", "xoxo-", "xoxr-", "xoxs-", "xoxe-", "xoxe."],
        pattern: r"xox(?:[aors]|e\.xox[bp]|e)-[0-9A-Za-z\-]{20,200}",
        back: 0,
        span: 210,
        check: tok,
    },
    R {
        kind: "slack_webhook_url",
        description: "Slack incoming webhook URL",
        keywords: &["hooks.slack.com/"],
        pattern: r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/_\-]{24,120})",
        back: 8,
        span: 150,
        check: slack_hook_path,
    },
    R {
        kind: "discord_webhook_url",
        description: "Discord webhook URL",
        keywords: &["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        pattern: r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,72}",
        back: 15,
        span: 140,
        check: tok,
    },
    R {
        kind: "telegram_bot_token",
        description: "Telegram bot token",
        keywords: &[":AA"],
        pattern: r"[0-9]{8,10}:AA[0-9A-Za-z_\-]{33}",
        back: 10,
        span: 36,
        check: tok,
    },
    R {
        kind: "stripe_secret_key",
        description: "Stripe live secret key",
        keywords: &["sk_live_"],
        pattern: r"sk_live_[0-9a-zA-Z]{24,99}",
        back: 0,
        span: 110,
        check: tok,
    },
    R {
        kind: "stripe_restricted_key",
        description: "Stripe live restricted key",
        keywords: &["rk_live_"],
        pattern: r"rk_live_[0-9a-zA-Z]{24,99}",
        back: 0,
        span: 110,
        check: tok,
    },
    R {
        kind: "stripe_test_key",
        description: "Stripe test-mode secret/restricted key (reads test data; policy as any secret)",
        keywords: &["sk_test_", "rk_test_"],
        pattern: r"[rs]k_test_[0-9a-zA-Z]{24,99}",
        back: 0,
        span: 110,
        check: tok,
    },
    R {
        kind: "stripe_webhook_secret",
        description: "Stripe webhook signing secret",
        keywords: &["whsec_"],
        pattern: r"whsec_[A-Za-z0-9+/=]{32,64}",
        back: 0,
        span: 70,
        check: tok,
    },
    R {
        kind: "square_access_token",
        description: "Square access token",
        keywords: &["EAAA", "sq0atp-"],
        pattern: r"EAAA[A-Za-z0-9_\-]{60}|sq0atp-[0-9A-Za-z_\-]{22}",
        back: 0,
        span: 66,
        check: tok_mixed,
    },
    R {
        kind: "square_oauth_secret",
        description: "Square OAuth secret",
        keywords: &["sq0csp-"],
        pattern: r"sq0csp-[0-9A-Za-z_\-]{43}",
        back: 0,
        span: 50,
        check: tok,
    },
    R {
        kind: "paypal_braintree_access_token",
        description: "PayPal Braintree production access token",
        keywords: &["access_token$production$"],
        pattern: r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}",
        back: 0,
        span: 80,
        check: tok,
    },
    R {
        kind: "npm_token",
        description: "npm access token, CRC32-checked",
        keywords: &["npm_"],
        pattern: r"npm_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: github,
    },
    R {
        kind: "pypi_token",
        description: "PyPI upload token",
        keywords: &["pypi-AgEIcHlwaS5vcmc"],
        pattern: r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,300}",
        back: 0,
        span: 320,
        check: tok,
    },
    R {
        kind: "rubygems_api_key",
        description: "RubyGems API key",
        keywords: &["rubygems_"],
        pattern: r"rubygems_[a-f0-9]{48}",
        back: 0,
        span: 57,
        check: tok,
    },
    R {
        kind: "nuget_api_key",
        description: "NuGet API key",
        keywords: &["oy2"],
        pattern: r"oy2[a-z0-9]{43}",
        back: 0,
        span: 46,
        check: tok_mixed,
    },
    R {
        kind: "dockerhub_pat",
        description: "Docker Hub personal access token",
        keywords: &["dckr_pat_"],
        pattern: r"dckr_pat_[A-Za-z0-9_\-]{27}",
        back: 0,
        span: 36,
        check: tok,
    },
    R {
        kind: "crates_io_token",
        description: "crates.io API token",
        keywords: &["cio"],
        pattern: r"cio[a-zA-Z0-9]{32}",
        back: 0,
        span: 35,
        check: tok_mixed,
    },
    R {
        kind: "anthropic_api_key",
        description: "Anthropic API key",
        keywords: &["sk-ant-api03-"],
        pattern: r"sk-ant-api03-[A-Za-z0-9_\-]{93}AA",
        back: 0,
        span: 108,
        check: tok,
    },
    R {
        kind: "anthropic_admin_key",
        description: "Anthropic Admin API key",
        keywords: &["sk-ant-admin01-"],
        pattern: r"sk-ant-admin01-[A-Za-z0-9_\-]{93}AA",
        back: 0,
        span: 110,
        check: tok,
    },
    R {
        kind: "anthropic_oauth_token",
        description: "Anthropic OAuth access/refresh token",
        keywords: &["sk-ant-oat01-", "sk-ant-ort01-"],
        pattern: r"sk-ant-o(?:at|rt)01-[A-Za-z0-9_\-]{80,120}",
        back: 0,
        span: 135,
        check: tok,
    },
    R {
        kind: "openai_project_key",
        description: "OpenAI project API key",
        keywords: &["sk-proj-"],
        pattern: r"sk-proj-[A-Za-z0-9_\-]{40,250}",
        back: 0,
        span: 260,
        check: tok_mixed,
    },
    R {
        kind: "openai_service_account_key",
        description: "OpenAI service-account key",
        keywords: &["sk-svcacct-"],
        pattern: r"sk-svcacct-[A-Za-z0-9_\-]{40,250}",
        back: 0,
        span: 262,
        check: tok_mixed,
    },
    R {
        kind: "openai_admin_key",
        description: "OpenAI admin key",
        keywords: &["sk-admin-"],
        pattern: r"sk-admin-[A-Za-z0-9_\-]{40,250}",
        back: 0,
        span: 260,
        check: tok_mixed,
    },
    R {
        kind: "openai_api_key",
        description: "OpenAI user API key (legacy format)",
        keywords: &["T3BlbkFJ"],
        pattern: r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
        back: 23,
        span: 30,
        check: tok,
    },
    R {
        kind: "huggingface_token",
        description: "Hugging Face access token",
        keywords: &["hf_", "api_org_"],
        pattern: r"(?:hf|api_org)_[A-Za-z]{34}",
        back: 0,
        span: 37,
        check: tok_mixed,
    },
    R {
        kind: "groq_api_key",
        description: "Groq API key",
        keywords: &["gsk_"],
        pattern: r"gsk_[A-Za-z0-9]{52}",
        back: 0,
        span: 56,
        check: tok_mixed,
    },
    R {
        kind: "replicate_api_token",
        description: "Replicate API token",
        keywords: &["r8_"],
        pattern: r"r8_[A-Za-z0-9]{37}",
        back: 0,
        span: 40,
        check: tok_mixed,
    },
    R {
        kind: "xai_api_key",
        description: "xAI API key",
        keywords: &["xai-"],
        pattern: r"xai-[A-Za-z0-9]{80}",
        back: 0,
        span: 84,
        check: tok_mixed,
    },
    R {
        kind: "perplexity_api_key",
        description: "Perplexity API key",
        keywords: &["pplx-"],
        pattern: r"pplx-[A-Za-z0-9]{48}",
        back: 0,
        span: 53,
        check: tok_mixed,
    },
    R {
        kind: "openrouter_api_key",
        description: "OpenRouter API key",
        keywords: &["sk-or-v1-"],
        pattern: r"sk-or-v1-[a-f0-9]{64}",
        back: 0,
        span: 73,
        check: tok,
    },
    R {
        kind: "langsmith_api_key",
        description: "LangSmith API key",
        keywords: &["lsv2_pt_", "lsv2_sk_"],
        pattern: r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",
        back: 0,
        span: 51,
        check: tok,
    },
    R {
        kind: "sendgrid_api_key",
        description: "SendGrid API key",
        keywords: &["SG."],
        pattern: r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        back: 0,
        span: 69,
        check: tok,
    },
    R {
        kind: "mailchimp_api_key",
        description: "Mailchimp API key",
        keywords: &["-us"],
        pattern: r"[0-9a-f]{32}-us[0-9]{1,2}",
        back: 32,
        span: 5,
        check: tok,
    },
    R {
        kind: "twilio_api_key",
        description: "Twilio API key SID+secret pair (SK…)",
        keywords: &["SK"],
        pattern: r"SK[0-9a-f]{32}",
        back: 0,
        span: 34,
        check: tok,
    },
    R {
        kind: "shopify_access_token",
        description: "Shopify access token",
        keywords: &["shpat_", "shpca_", "shppa_"],
        pattern: r"shp(?:at|ca|pa)_[a-fA-F0-9]{32}",
        back: 0,
        span: 38,
        check: tok,
    },
    R {
        kind: "shopify_shared_secret",
        description: "Shopify app shared secret",
        keywords: &["shpss_"],
        pattern: r"shpss_[a-fA-F0-9]{32}",
        back: 0,
        span: 38,
        check: tok,
    },
    R {
        kind: "linear_api_key",
        description: "Linear API key",
        keywords: &["lin_api_"],
        pattern: r"lin_api_[A-Za-z0-9]{40}",
        back: 0,
        span: 48,
        check: tok_mixed,
    },
    R {
        kind: "notion_api_key",
        description: "Notion integration token",
        keywords: &["secret_", "ntn_"],
        pattern: r"secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35}",
        back: 0,
        span: 50,
        check: tok_mixed,
    },
    R {
        kind: "new_relic_user_api_key",
        description: "New Relic user API key",
        keywords: &["NRAK-"],
        pattern: r"NRAK-[A-Z0-9]{27}",
        back: 0,
        span: 32,
        check: tok,
    },
    R {
        kind: "new_relic_insert_key",
        description: "New Relic insert key",
        keywords: &["NRII-"],
        pattern: r"NRII-[A-Za-z0-9_\-]{32}",
        back: 0,
        span: 37,
        check: tok,
    },
    R {
        kind: "sentry_auth_token",
        description: "Sentry organization/user auth token",
        keywords: &["sntrys_", "sntryu_"],
        pattern: r"sntrys_eyJ[A-Za-z0-9+/=_\-]{60,300}|sntryu_[a-f0-9]{64}",
        back: 0,
        span: 310,
        check: tok,
    },
    R {
        kind: "postman_api_key",
        description: "Postman API key",
        keywords: &["PMAK-"],
        pattern: r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
        back: 0,
        span: 64,
        check: tok,
    },
    R {
        kind: "vault_token",
        description: "HashiCorp Vault service/batch token",
        keywords: &["hvs.", "hvb."],
        pattern: r"hv[sb]\.[A-Za-z0-9_\-]{90,300}",
        back: 0,
        span: 305,
        check: tok,
    },
    R {
        kind: "terraform_cloud_token",
        description: "Terraform Cloud / HCP API token",
        keywords: &[".atlasv1."],
        pattern: r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}",
        back: 14,
        span: 80,
        check: tok,
    },
    R {
        kind: "doppler_token",
        description: "Doppler token",
        keywords: &["dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."],
        pattern: r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_\-]{40,44}",
        back: 0,
        span: 55,
        check: tok_mixed,
    },
    R {
        kind: "pulumi_access_token",
        description: "Pulumi access token",
        keywords: &["pul-"],
        pattern: r"pul-[a-f0-9]{40}",
        back: 0,
        span: 44,
        check: tok,
    },
    R {
        kind: "heroku_api_key",
        description: "Heroku API key",
        keywords: &["HRKU-"],
        pattern: r"HRKU-[A-Za-z0-9_\-]{58,60}",
        back: 0,
        span: 66,
        check: tok,
    },
    R {
        kind: "netlify_token",
        description: "Netlify personal access token",
        keywords: &["nfp_"],
        pattern: r"nfp_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: tok_mixed,
    },
    R {
        kind: "supabase_access_token",
        description: "Supabase management access token",
        keywords: &["sbp_"],
        pattern: r"sbp_[a-f0-9]{40}",
        back: 0,
        span: 44,
        check: tok,
    },
    R {
        kind: "supabase_secret_key",
        description: "Supabase secret API key",
        keywords: &["sb_secret_"],
        pattern: r"sb_secret_[A-Za-z0-9_\-]{31,64}",
        back: 0,
        span: 75,
        check: tok,
    },
    R {
        kind: "planetscale_token",
        description: "PlanetScale service token/password",
        keywords: &["pscale_tkn_", "pscale_pw_", "pscale_oauth_"],
        pattern: r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.]{32,64}",
        back: 0,
        span: 80,
        check: tok,
    },
    R {
        kind: "databricks_token",
        description: "Databricks personal access token",
        keywords: &["dapi"],
        pattern: r"dapi[a-f0-9]{32}(?:-[0-9])?",
        back: 0,
        span: 38,
        check: tok,
    },
    R {
        kind: "grafana_cloud_token",
        description: "Grafana Cloud access policy token",
        keywords: &["glc_"],
        pattern: r"glc_[A-Za-z0-9+/]{32,400}={0,2}",
        back: 0,
        span: 410,
        check: tok_mixed,
    },
    R {
        kind: "grafana_service_account_token",
        description: "Grafana service account token",
        keywords: &["glsa_"],
        pattern: r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
        back: 0,
        span: 46,
        check: tok,
    },
    R {
        kind: "flyio_token",
        description: "Fly.io access token",
        keywords: &["fo1_"],
        pattern: r"fo1_[A-Za-z0-9_\-]{43}",
        back: 0,
        span: 47,
        check: tok,
    },
    R {
        kind: "age_secret_key",
        description: "age encryption secret key",
        keywords: &["AGE-SECRET-KEY-1"],
        pattern: r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        back: 0,
        span: 74,
        check: tok,
    },
    R {
        kind: "figma_token",
        description: "Figma personal access token",
        keywords: &["figd_"],
        pattern: r"figd_[A-Za-z0-9_\-]{40}",
        back: 0,
        span: 45,
        check: tok,
    },
    R {
        kind: "dynatrace_token",
        description: "Dynatrace API token",
        keywords: &["dt0c01."],
        pattern: r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",
        back: 0,
        span: 96,
        check: tok,
    },
    R {
        kind: "mapbox_secret_token",
        description: "Mapbox secret token",
        keywords: &["sk.eyJ"],
        pattern: r"sk\.eyJ[A-Za-z0-9_\-]{50,300}\.[A-Za-z0-9_\-]{20,100}",
        back: 0,
        span: 410,
        check: tok,
    },
    R {
        kind: "shippo_api_token",
        description: "Shippo API token",
        keywords: &["shippo_live_", "shippo_test_"],
        pattern: r"shippo_(?:live|test)_[a-f0-9]{40}",
        back: 0,
        span: 52,
        check: tok,
    },
    R {
        kind: "flutterwave_secret_key",
        description: "Flutterwave secret key",
        keywords: &["FLWSECK"],
        pattern: r"FLWSECK(?:_TEST)?-[a-h0-9]{32}-X",
        back: 0,
        span: 50,
        check: tok,
    },
    R {
        kind: "prefect_api_key",
        description: "Prefect Cloud API key",
        keywords: &["pnu_"],
        pattern: r"pnu_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: tok_mixed,
    },
    R {
        kind: "onepassword_service_account_token",
        description: "1Password service account token",
        keywords: &["ops_eyJ"],
        pattern: r"ops_eyJ[A-Za-z0-9+/=_\-]{100,}",
        back: 0,
        span: 1210,
        check: tok,
    },
    R {
        kind: "cloudflare_origin_ca_key",
        description: "Cloudflare Origin CA key",
        keywords: &["v1.0-"],
        pattern: r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
        back: 0,
        span: 180,
        check: tok,
    },
    R {
        kind: "base64_private_key",
        description: "Base64-encoded PEM private key (e.g. a Kubernetes secret)",
        keywords: &["LS0tLS1CRUdJTi"],
        pattern: r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{80,}={0,2}",
        back: 0,
        span: 16000,
        check: base64_key,
    },
    R {
        kind: "github_token_unverified",
        description: "Token in GitHub's format whose checksum does not match (redacted, not blocked)",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        pattern: r"gh[pousr]_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: checksum_mismatch,
    },
    R {
        kind: "npm_token_unverified",
        description: "Token in npm's format whose checksum does not match (redacted, not blocked)",
        keywords: &["npm_"],
        pattern: r"npm_[A-Za-z0-9]{36}",
        back: 0,
        span: 40,
        check: checksum_mismatch,
    },
    R {
        kind: "onepassword_secret_key",
        description: "1Password account secret key",
        keywords: &["A3-"],
        pattern: r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
        back: 0,
        span: 45,
        check: tok_mixed,
    },
    R {
        kind: "twitter_bearer_token",
        description: "Twitter/X app bearer token",
        keywords: &["AAAAAAAAAAAAAAAAAAAA"],
        pattern: r"A{20,24}[A-Za-z0-9%]{70,120}",
        back: 0,
        span: 146,
        check: twitter_bearer,
    },
    R {
        kind: "harness_api_key",
        description: "Harness personal or service account token",
        keywords: &["pat.", "sat."],
        pattern: r"[ps]at\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}",
        back: 0,
        span: 72,
        check: tok_mixed,
    },
    R {
        kind: "sourcegraph_token",
        description: "Sourcegraph access token",
        keywords: &["sgp_"],
        pattern: r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}",
        back: 0,
        span: 66,
        check: tok,
    },
    R {
        kind: "easypost_api_key",
        description: "EasyPost API key (production or test)",
        keywords: &["EZAK", "EZTK"],
        pattern: r"EZ[AT]K[A-Za-z0-9]{54}",
        back: 0,
        span: 58,
        check: tok_mixed,
    },
    R {
        kind: "flyio_token",
        description: "Fly.io macaroon token",
        keywords: &["fm1a_", "fm1r_", "fm2_"],
        pattern: r"fm(?:1[ar]|2)_[A-Za-z0-9+/]{100,2000}={0,3}",
        back: 0,
        span: 2010,
        check: tok,
    },
    R {
        kind: "jwt",
        description: "JSON Web Token (header validated)",
        keywords: &["eyJ"],
        pattern: r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}",
        back: 0,
        span: 8192,
        check: jwt,
    },
];

/// Secrets recognised by a nearby key name (no distinctive prefix);
/// case-insensitive keyword, tier 4.
const CONTEXTUAL: &[(&str, &str, &[&str], &str, Check)] = &[
    (
        "aws_secret_access_key",
        "AWS secret access key (next to its key name)",
        &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "aws_secret",
            "aws-secret",
            "awssecret",
        ],
        r"(?i:aws[_\-.]?secret(?:[_\-.]?access)?(?:[_\-.]?key)?|secret[_\-.]?access[_\-.]?key)ASSIGN(?P<s>[A-Za-z0-9/+]{40})",
        aws_secret,
    ),
    (
        "ibm_cloud_api_key",
        "IBM Cloud API key",
        &["ibm"],
        r"(?i:ibm)[A-Za-z0-9_.\-]{0,20}(?i:api[_\-]?key)ASSIGN(?P<s>[A-Za-z0-9_\-]{44})",
        tok_mixed,
    ),
    (
        "discord_bot_token",
        "Discord bot token",
        &["discord"],
        r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}",
        tok_mixed,
    ),
    (
        "cohere_api_key",
        "Cohere API key",
        &["cohere"],
        r"(?i:cohere)ASSIGN(?P<s>[A-Za-z0-9]{40})",
        tok_mixed,
    ),
    (
        "mailgun_api_key",
        "Mailgun API key",
        &["mailgun"],
        r"(?i:mailgun)[\s\S]{0,80}?(?P<s>key-[0-9a-f]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})",
        tok,
    ),
    (
        "twilio_auth_token",
        "Twilio auth token",
        &["twilio"],
        r"(?i:twilio)[A-Za-z0-9_.\-]{0,20}(?i:auth|token|secret)ASSIGN(?P<s>[a-f0-9]{32})",
        tok,
    ),
    (
        "datadog_api_key",
        "Datadog API/application key",
        &["datadog", "dd_api", "dd_app", "dd-api", "dd-app"],
        r"(?i:datadog|dd)[_\-.]?(?i:api|app(?:lication)?)[_\-.]?(?i:key)ASSIGN(?P<s>[a-f0-9]{40}|[a-f0-9]{32})",
        tok,
    ),
    (
        "heroku_api_key",
        "Heroku API key (legacy UUID form)",
        &["heroku"],
        r"(?i:heroku)ASSIGN(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        tok,
    ),
    (
        "netlify_token",
        "Netlify access token",
        &["netlify"],
        r"(?i:netlify)ASSIGN(?P<s>[A-Za-z0-9_\-]{40,46})",
        tok_mixed,
    ),
    (
        "vercel_token",
        "Vercel access token",
        &["vercel"],
        r"(?i:vercel)ASSIGN(?P<s>[A-Za-z0-9]{24})",
        tok_mixed,
    ),
    (
        "okta_api_token",
        "Okta API token",
        &["okta"],
        r"(?:(?:\b|_|\\[nrt])(?i:okta)|Okta|OKTA)ASSIGN(?P<s>00[A-Za-z0-9_\-]{40})",
        tok_mixed,
    ),
    (
        "cloudflare_api_token",
        "Cloudflare API token",
        &["cloudflare", "cf_api", "cf-api"],
        r"(?i:cloudflare|cf)[A-Za-z0-9_.\-]{0,20}(?i:token|key)ASSIGN(?P<s>[A-Za-z0-9_\-]{40})",
        tok_mixed,
    ),
    (
        "aws_session_token",
        "AWS temporary session token (next to its key name)",
        &[
            "session_token",
            "sessiontoken",
            "session-token",
            "security_token",
            "security-token",
        ],
        r"(?i:session[_\-.]?token|security[_\-.]?token)ASSIGN(?P<s>[A-Za-z0-9/+]{100,2000}={0,2})",
        tok,
    ),
    (
        "datadog_api_key",
        "Datadog API/application key (near the word datadog)",
        &["datadog"],
        r"(?i:datadog)[\s\S]{0,60}?(?P<s>[a-f0-9]{40}|[a-f0-9]{32})",
        hex_key,
    ),
    (
        "docker_registry_auth",
        "Docker config.json registry auth (base64 of user:password)",
        &["\"auth\"", "\\\"auth\\\""],
        r#"\\?"auth\\?"[\t ]*:[\t ]*\\?"(?P<s>[A-Za-z0-9+/]{8,}={0,2})\\?""#,
        basic_auth,
    ),
    (
        "http_basic_auth",
        "HTTP basic auth credentials (Authorization: Basic base64(user:password))",
        &["basic "],
        r"(?i:basic)[\t ]+(?P<s>[A-Za-z0-9+/]{8,}={0,2})",
        basic_auth,
    ),
    (
        "http_basic_auth",
        "HTTP basic auth password on a command line (curl -u user:password)",
        &["-u ", "-u=", "--user ", "--user=", "--user\t"],
        r#"(?:-u|--user)[\t =]+["']?[^\s:"']{0,64}["']?:["']?(?P<s>[^\s"']{3,128})"#,
        cli_password,
    ),
    (
        "bearer_token",
        "Bearer token (Authorization: Bearer …)",
        &["bearer "],
        r"(?i:bearer)[\t ]+(?P<s>[A-Za-z0-9_\-.~+/]{16,}={0,2})",
        header_token,
    ),
    (
        "bearer_token",
        "Token in an Authorization header",
        &["authorization"],
        r#"(?i:authorization)\\?["']?[\t ]*[:=][\t ]*\\?["']?(?:(?i:token|api-token|apikey|sso-key|ssws)[\t ]+)?(?P<s>[A-Za-z0-9_\-.~+/]{16,}={0,2})"#,
        header_token,
    ),
    (
        "okta_api_token",
        "Okta API token (SSWS header)",
        &["ssws "],
        r"(?i:ssws)[\t ]+(?P<s>00[A-Za-z0-9_\-]{40})",
        tok_mixed,
    ),
    (
        "azure_sas_token",
        "Azure shared access signature (sig= of a SAS URL or connection string)",
        &["sig="],
        r"sig=(?P<s>(?:[A-Za-z0-9+/]|%2[BbFf]){40,90}(?:%3[Dd]|=){0,2})",
        sas_sig,
    ),
    (
        "snyk_api_token",
        "Snyk API token (next to its key name)",
        &["snyk"],
        r"(?i:snyk)[A-Za-z0-9_.\-]{0,20}?(?i:key|token)ASSIGN(?P<s>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})",
        tok,
    ),
    (
        "sonar_token",
        "SonarQube/SonarCloud token (next to its key name)",
        &["sonar"],
        r"(?i:sonar)[A-Za-z0-9_.\-]{0,20}?(?i:login|token)ASSIGN(?P<s>(?:squ_|sqp_|sqa_)?[A-Za-z0-9]{40})",
        tok_mixed,
    ),
    (
        "kubernetes_secret",
        "Value under data: of a Kubernetes Secret manifest",
        &["kind: secret", "kind: \"secret\"", "kind: 'secret'", "kind:secret"],
        r#"(?m)^[\t ]+[A-Za-z0-9_.\-]+:[\t ]*(?:[|>][\-+]?[\t ]*\r?\n[\t ]+)?["']?(?P<s>[A-Za-z0-9+/]{8,}={0,2})["']?[\t ]*\r?$"#,
        kubernetes_secret_data,
    ),
    (
        "connection_string",
        "Database/broker URL with a password",
        &["://"],
        r#"(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|jdbc:[a-z]+|clickhouse|cockroachdb)://[^\s:@/'"\\<>]{0,64}:(?P<s>[^\s@/'"\\<>]{3,128})@"#,
        url_password,
    ),
];

/// Key blocks; keyword `-----BEGIN`, tier 5.
const KEY_BLOCKS: &[(&str, &str, &str)] = &[
    ("rsa_private_key", "RSA private key (PEM)", "RSA PRIVATE KEY"),
    ("ec_private_key", "EC private key (PEM)", "EC PRIVATE KEY"),
    ("dsa_private_key", "DSA private key (PEM)", "DSA PRIVATE KEY"),
    ("pkcs8_private_key", "PKCS#8 private key (PEM)", "PRIVATE KEY"),
    (
        "encrypted_private_key",
        "Encrypted PKCS#8 private key (PEM)",
        "ENCRYPTED PRIVATE KEY",
    ),
    ("openssh_private_key", "OpenSSH private key", "OPENSSH PRIVATE KEY"),
    ("pgp_private_key", "PGP private key block", "PGP PRIVATE KEY BLOCK"),
];

pub(crate) fn builtin_rules() -> Vec<SecretRule> {
    let mut rules = Vec::new();
    for r in PREFIXED {
        rules.push(SecretRule {
            kind: r.kind,
            description: r.description,
            keywords: r.keywords,
            pattern: r.pattern.to_string(),
            back: r.back,
            span: r.span,
            bounded: true,
            check: r.check,
            tier: 5,
        });
    }
    for &(kind, description, keywords, pattern, check) in CONTEXTUAL {
        rules.push(SecretRule {
            kind,
            description,
            keywords,
            pattern: pattern.replace("ASSIGN", ASSIGN),
            // Discord tokens are recognised anywhere near the word.
            back: match kind {
                "datadog_api_key" | "http_basic_auth" | "bearer_token" | "azure_sas_token" => 0,
                "docker_registry_auth" => 2,
                "discord_bot_token" => 150,
                // A manifest's data may come before or after its kind.
                "kubernetes_secret" => 4000,
                _ => 12,
            },
            span: match kind {
                "aws_session_token" => 2100,
                "kubernetes_secret" => 4000,
                _ => 260,
            },
            bounded: true,
            check,
            // A token after a generic header word yields to a vendor's rule.
            tier: if kind == "bearer_token" { 3 } else { 4 },
        });
    }
    for &(kind, description, label) in KEY_BLOCKS {
        // A complete block, or (pasted truncated) the header plus a body.
        let pattern = format!(
            r"-----BEGIN {label}-----(?:[\s\S]{{40,}}?-----END {label}-----|(?:\\[nr]|[A-Za-z0-9+/=\s:,\-]){{64,}})"
        );
        rules.push(SecretRule {
            kind,
            description,
            keywords: &["-----BEGIN"],
            pattern,
            back: 0,
            span: 16100,
            bounded: false,
            check: key_block,
            tier: 5,
        });
    }
    rules.push(SecretRule {
        kind: "putty_private_key",
        description: "PuTTY private key file",
        keywords: &["PuTTY-User-Key-File-"],
        pattern: r"PuTTY-User-Key-File-[23]: [A-Za-z0-9\-]+[\s\S]*?Private-Lines: [0-9]+(?:\\r)?(?:\\n|\r?\n)(?:\\[nr]|[A-Za-z0-9+/=\r\n])+".into(),
        back: 0,
        span: 8000,
        bounded: false,
        check: key_block,
        tier: 5,
    });
    rules.push(SecretRule {
        kind: "gcp_service_account_key",
        description: "Google Cloud service-account JSON private key",
        keywords: &["private_key"],
        pattern: r#"\\?"private_key\\?"[\t ]*:[\t ]*\\?"(?P<s>-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]{64,}?-----END (?:RSA )?PRIVATE KEY-----(?:\\\\?n)*)"#.into(),
        back: 2,
        span: 8200,
        bounded: false,
        check: key_block,
        tier: 6,
    });
    rules.push(SecretRule {
        kind: "azure_storage_connection_string",
        description: "Azure storage connection string",
        keywords: &["AccountKey="],
        pattern: r"DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9]{3,24};AccountKey=(?P<s>[A-Za-z0-9+/]{86}==)"
            .into(),
        back: 90,
        span: 100,
        bounded: true,
        check: tok,
        tier: 6,
    });
    rules.push(SecretRule {
        kind: "url_credentials",
        description: "Password embedded in a URL (scheme://user:pass@host)",
        keywords: &["://"],
        pattern:
            r#"[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:@/'"\\<>]{0,64}:(?P<s>[^\s@/'"\\<>]{3,128})@[A-Za-z0-9.\-_\[\]]+"#
                .into(),
        back: 24,
        span: 300,
        bounded: false,
        check: url_password,
        tier: 3,
    });
    let generic = |kind, description, keywords: &'static [&'static str], key: &str, check| SecretRule {
        kind,
        description,
        keywords,
        // `&` ends the value: query strings (`?token=…&color=…`) and Rust references.
        pattern: if kind == "generic_password" {
            format!(r#"{key}(?:{ASSIGN}|{ASSIGN_ATTR})(?P<s>[^\s'"`\\,;<>(){{}}\[\]&]{{6,200}})"#)
        } else {
            format!(r#"{key}{ASSIGN}(?P<s>[^\s'"`\\,;<>(){{}}\[\]&]{{6,200}})"#)
        },
        back: 0,
        span: 260,
        bounded: false,
        check,
        tier: 2,
    };
    rules.push(generic(
        "generic_password",
        "High-entropy value assigned to a password key",
        &["passw", "pwd", "passphrase"],
        r"(?i:pass(?:word|wd|phrase)|pwd)",
        generic_password,
    ));
    rules.push(generic(
        "generic_secret",
        "High-entropy value assigned to a secret/token/api_key key",
        &[
            "secret",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "access_key",
            "accesskey",
            "auth_key",
            "private_key",
            "credential",
        ],
        r"(?i:secret|token|api[_\-]?key|access[_\-]?key|auth[_\-]?key|private[_\-]?key|credentials?)",
        generic_secret,
    ));
    rules
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use crate::detect::{DetectPolicy, Detector};

    fn found(text: &str) -> Vec<(String, String)> {
        Detector::new(&DetectPolicy::default())
            .expect("default policy")
            .scan(text)
            .iter()
            .filter(|f| f.category == crate::detect::Category::Secret)
            .map(|f| (f.kind.to_string(), f.value(text).to_string()))
            .collect()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    const SESSION: &str = "IQoJb3JpZ2luX2VjEHwaCXVzLWVhc3QtMSJHMEUCIQDx8Kf2nJ3mP1qZ7vR4tY9wB6cL0sH5gA2eD8uN3oKj4QIgVb7Xy2Zc9Wq1Rt5Ym8Pn3Lk6Jh0Gf4Ds7As2Qw9Er5TyUi8Op1Aa2Sd3Fg4Hj5Kl6Zx7Cv8Bn9Mm0";

    fn with_actions(text: &str) -> Vec<(String, crate::detect::Action)> {
        Detector::new(&DetectPolicy::default())
            .expect("default policy")
            .scan(text)
            .iter()
            .map(|f| (f.kind.to_string(), f.action))
            .collect()
    }

    #[test]
    fn a_github_or_npm_token_with_a_wrong_checksum_is_redacted_reversibly_not_blocked() {
        use crate::detect::Action;
        let random = "a31ciirduf5qzpk68746djddn3553p";
        let good = format!("ghp_{random}{}", crate::detect::github_checksum(random));
        assert_eq!(
            with_actions(&format!("token {good}")),
            vec![("github_pat".into(), Action::Block)]
        );
        for bad in [
            "ghp_a31ciirduf5qzpk68746djddn3553p22fv73",
            "ghs_emske4y71mtwt9d0g4ol06y8b9taxshmdkym",
        ] {
            assert_eq!(
                with_actions(&format!("githubToken=\"{bad}\"")),
                vec![("github_token_unverified".into(), Action::Reversible)],
                "{bad}"
            );
        }
        assert_eq!(
            with_actions("npm_4nocs2bqe4p17c1l68ybmwxt7k3k5563tgbb"),
            vec![("npm_token_unverified".into(), Action::Reversible)]
        );
        // Naming the kind in the policy restores blocking.
        let mut policy = DetectPolicy::default();
        policy.actions.insert("github_token_unverified".into(), Action::Block);
        let hits = Detector::new(&policy)
            .unwrap()
            .scan("ghp_a31ciirduf5qzpk68746djddn3553p22fv73");
        assert_eq!(hits[0].action, Action::Block);
        // A pattern is still no token.
        assert!(found("ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_empty());
    }

    #[test]
    fn a_twitter_bearer_token_is_found_despite_its_run_of_as() {
        let t = "AAAAAAAAAAAAAAAAAAAAAAgEWjWSOuM1WXOox74eWYsdCIQCnxgmgJGDYywrCNzBNZfph3jO062Oge0gqziafqD5ZvaDH8ScYIzRPY3F4W";
        assert_eq!(
            found(&format!("Authorization: Bearer {t}")),
            vec![("twitter_bearer_token".into(), t.into())]
        );
        assert!(found(&"A".repeat(120)).is_empty());
    }

    #[test]
    fn vendor_tokens_harness_sourcegraph_easypost_flyio_onepassword_and_hugging_face_orgs_are_found() {
        for (kind, t) in [
            (
                "harness_api_key",
                "pat.11noislffkzc30flvpyz8q.gz7mkbka16sxc3hc91wx96f5.5e1ayl7kxnckn4r6az37",
            ),
            (
                "sourcegraph_token",
                "sgp_AaD80dc6E02eCAE1_d3cba16CC0F18fA14A2EFB61CbDFceEBf9fAD16b",
            ),
            (
                "sourcegraph_token",
                "sgp_local_bcD1DA18de0d6476Be0f3BD7Ef9Da4f09b479aE5",
            ),
            (
                "easypost_api_key",
                "EZTKcJtkVMvhrYAR5cqKYt4EtUe7vifkrZi8iU1OpEcQHdZHRfXGvRGHNS",
            ),
            ("onepassword_secret_key", "A3-ASWWYB-798JRY-LJVD4-23DC2-86TVM-H43EB"),
            ("huggingface_token", "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"),
        ] {
            assert_eq!(found(&format!("value: {t}\n")), vec![(kind.into(), t.into())], "{kind}");
        }
    }

    #[test]
    fn a_slack_webhook_url_is_found_in_its_service_and_workflow_forms() {
        for (url, secret) in [
            (
                "https://hooks.slack.com/services/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",
                "T0ABCD1EF/B0GH2IJKL/q8Zr3mTn5Vx7Ya9Bc1De3Fg5",
            ),
            (
                "http://hooks.slack.com/workflows/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",
                "T2H71EFLK/A047FK946NN/430780826188280067/LfFz5RekA2J0WOGJyKsiOjjg",
            ),
        ] {
            assert_eq!(
                found(&format!("curl -X POST {url} -d @msg.json")),
                vec![("slack_webhook_url".into(), secret.into())]
            );
        }
        assert!(found("https://hooks.slack.com/services/XXXXXXXXX/YYYYYYYYY/ZZZZZZZZZZZZZZZZ").is_empty());
    }

    #[test]
    fn values_under_a_kubernetes_secrets_data_are_found_and_other_manifests_are_not() {
        let secret = "apiVersion: v1\ndata:\n\textra: UyFCXCpkJHpEc2I9\n\tusername: YWRtaW4=\nkind: Secret\nmetadata:\n\tname: db-user-pass\n";
        assert_eq!(
            found(secret),
            vec![("kubernetes_secret".into(), "UyFCXCpkJHpEc2I9".into())]
        );
        let block =
            "apiVersion: v1\nkind: Secret\ntype: Opaque\ndata:\n  tls.key: |\n    c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0\n";
        assert_eq!(
            found(block),
            vec![("kubernetes_secret".into(), "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0".into())]
        );
        // The same values in a ConfigMap, in a SopsSecret, under metadata, or too short to hide anything.
        assert!(found(&secret.replace("kind: Secret", "kind: ConfigMap")).is_empty());
        assert!(found(&secret.replace("kind: Secret", "kind: SopsSecret")).is_empty());
        assert!(found("kind: Secret\nmetadata:\n  annotations:\n    note: UyFCXCpkJHpEc2I9\n").is_empty());
        assert!(found("kind: secret\ndata:\n\textra: YmFyCg==\n").is_empty());
    }

    #[test]
    fn a_kubernetes_value_without_a_data_parent_or_far_from_multibyte_text_edges_does_not_panic_or_match() {
        // Indented, base64, a Secret nearby, but no `data:` above it.
        assert!(found("kind: Secret\n  extra: UyFCXCpkJHpEc2I9\n").is_empty());
        // The 4,000-byte windows start inside multi-byte characters.
        let wide = "é".repeat(3000);
        let text = format!("x{wide}\nkind: Secret\ndata:\n  extra: UyFCXCpkJHpEc2I9\n{wide}");
        assert_eq!(
            found(&text),
            vec![("kubernetes_secret".into(), "UyFCXCpkJHpEc2I9".into())]
        );
    }

    #[test]
    fn a_key_that_names_a_secret_rather_than_holding_it_is_not_a_finding() {
        for text in [
            "credentialsId: 'ff083f76-7804-4ef1-80e4-fe975bb9141b'",
            "environment {\n\tCREDENTIALS_ID = \"K8S_CRED\"\n}",
            "dev.credentials.url=dev-lb1.api.f4ke.com:5215",
            "LLM_SECRET_NAME = \"NEXUS-GPT4-API-KEY\"",
            "<SourceFile SourceLocation=\"F:\\Extracts\\\" TokenFile=\"RTL_INST_CODE.cer\">",
            "publicToken = \"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\"",
        ] {
            assert!(found(text).is_empty(), "{text}");
        }
        // Right after a multi-byte character too (no panic at its edge).
        assert_eq!(
            found("«apiToken = \"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\"»").len(),
            1
        );
        // The value itself is still found under a plain key.
        assert_eq!(
            found("apiToken = \"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\"").len(),
            1
        );
    }

    #[test]
    fn typed_filler_in_a_vendor_format_is_not_a_finding() {
        assert!(found("sk-ant-api03-abc123xyz-456def789ghij-klmnopqrstuvwx-3456yza789bcde-1234fghijklmnopby56aaaogaopaaaabc123xyzAA").is_empty());
    }

    #[test]
    fn okta_must_start_a_word_of_the_key() {
        assert!(found("rookTable = 0023452Lllk2KqjLBvaxANWEgTd7bqjsxjo8aZj0wd").is_empty());
        assert_eq!(
            found("OKTA_API_TOKEN = 0023452Lllk2KqjLBvaxANWEgTd7bqjsxjo8aZj0wd"),
            vec![(
                "okta_api_token".into(),
                "0023452Lllk2KqjLBvaxANWEgTd7bqjsxjo8aZj0wd".into()
            )]
        );
    }

    #[test]
    fn an_aws_session_token_next_to_its_name_is_found_whole() {
        for text in [
            format!("aws_session_token = {SESSION}\n"),
            format!("export AWS_SESSION_TOKEN=\"{SESSION}\""),
            format!("  \"SessionToken\": \"{SESSION}\","),
        ] {
            assert_eq!(
                found(&text),
                vec![("aws_session_token".into(), SESSION.into())],
                "{text}"
            );
        }
    }

    #[test]
    fn an_azure_sas_signature_is_found_and_a_short_sig_is_not() {
        let sig = "kX9pQ2rT5vB1nM3cH7yJ4sD6fL8gA0eW2uZ5oI1xY3c%3D";
        let url = format!("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2026-01-01&sig={sig}");
        assert_eq!(found(&url), vec![("azure_sas_token".into(), sig.into())]);
        assert!(found("https://example.net/?sig=abc123&x=1").is_empty());
    }

    #[test]
    fn basic_auth_in_an_authorization_header_is_found_when_it_decodes_to_user_and_password() {
        let v = b64("deploy:Zr8#kQ2vLx9pW");
        assert_eq!(
            found(&format!("Authorization: Basic {v}\r\n")),
            vec![("http_basic_auth".into(), v.clone())]
        );
        // Not base64 of user:password: a word, an empty password.
        assert!(found("uses Basic authentication for everything").is_empty());
        assert!(found(&format!("Authorization: Basic {}", b64("browser:"))).is_empty());
    }

    #[test]
    fn a_curl_user_password_is_found_and_uid_gid_pairs_and_placeholders_are_not() {
        assert_eq!(
            found("curl -s --user 'api:d2LkV78zLx!t' https://api.mailgun.net/v3"),
            vec![("http_basic_auth".into(), "d2LkV78zLx!t".into())]
        );
        assert!(found("docker run -u 1000:1000 image").is_empty());
        assert!(found("curl --user neo4j:[PASSWORD] http://db:7474/").is_empty());
        assert!(found("curl -u admin:$ADMIN_PASSWORD https://x").is_empty());
    }

    #[test]
    fn a_bearer_token_in_an_authorization_header_is_found() {
        let t = "cfcabd11c7ed9a41b1a3e063c32d5114";
        assert_eq!(
            found(&format!("curl -H \"Authorization: Bearer {t}\" http://localhost/api")),
            vec![("bearer_token".into(), t.into())]
        );
        assert_eq!(
            found(&format!("Authorization: Token {t}")),
            vec![("bearer_token".into(), t.into())]
        );
        assert!(found("Authorization: Bearer <your-token-here>").is_empty());
        assert!(found("Authorization: Bearer ${ACCESS_TOKEN}").is_empty());
    }

    #[test]
    fn a_docker_config_auth_is_found_when_it_decodes_to_user_and_password() {
        let v = b64("robot$ci:Hq7vT2mZ9xKp4Lw");
        let text = format!(r#"{{"auths":{{"registry.example.org":{{"auth":"{v}"}}}}}}"#);
        assert_eq!(found(&text), vec![("docker_registry_auth".into(), v)]);
        assert!(found(r#"{"auth": "c29tZXRleHQ="}"#).is_empty());
    }

    #[test]
    fn a_base64_encoded_pem_private_key_is_found() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\n";
        let v = b64(pem);
        assert_eq!(
            found(&format!("  tls.key: {v}\n")),
            vec![("base64_private_key".into(), v.clone())]
        );
        // A base64 certificate is public.
        assert!(found(&format!(
            "  tls.crt: {}\n",
            b64(&pem.replace("RSA PRIVATE KEY", "CERTIFICATE"))
        ))
        .is_empty());
    }

    #[test]
    fn a_datadog_key_near_the_word_datadog_is_found() {
        let k = "9f3a1c7e2b8d4f6a0c5e7b9d1f3a5c7e";
        assert_eq!(
            found(&format!("datadog:\n  apiKey: {k}\n")),
            vec![("datadog_api_key".into(), k.into())]
        );
    }

    #[test]
    fn an_okta_token_in_an_ssws_header_is_found() {
        let t = "00ebObu4zSNkyc6dimLvUwq4KpTEop-PCEnnfSTpD3";
        assert_eq!(
            found(&format!("Authorization: SSWS {t}")),
            vec![("okta_api_token".into(), t.into())]
        );
    }

    #[test]
    fn secrets_are_found_in_typed_make_php_setproperty_and_xml_assignments() {
        let v = "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB";
        for text in [
            format!("var apiToken string = \"{v}\""),
            format!("API_TOKEN ::= \"{v}\""),
            format!("API_TOKEN ?= \"{v}\""),
            format!("$apiToken .= \"{v}\""),
            format!("System.setProperty(\"API_TOKEN\", \"{v}\")"),
            format!("<apiToken>\n    {v}\n</apiToken>"),
            format!("<add key=\"DbPassword\" value=\"{v}\" />"),
        ] {
            assert_eq!(found(&text).len(), 1, "{text}");
            assert_eq!(found(&text)[0].1, v, "{text}");
        }
    }

    #[test]
    fn publishable_keys_and_encrypted_values_are_not_secrets() {
        assert!(found("STRIPE_PUBLISHABLE_KEY=pk_live_51H8xYzAbCdEf0123456789GhIj").is_empty());
        assert!(found("api_token: ENC[AES256_GCM,data:Zm9vYmFy,iv:abc,tag:def,type:str]").is_empty());
    }
}
