#!/usr/bin/env python3
"""Extract gitleaks' per-rule true/false-positive examples into JSONL.

Reads the rule definitions (cmd/generate/config/rules/*.go) of a gitleaks
git checkout at one commit and writes one JSON object per example:

    {"id", "text", "kind_expected", "source_rule", "source", "how"}

kind_expected: a promptwall kind (see KIND_MAP), "secret" (any credential
finding counts: gitleaks has a rule for it, promptwall has no kind of that
name), "not_scored" (the rule's example is not a credential by promptwall's
definition; see NOT_CREDENTIAL), or null for a false-positive example.

Nothing is filtered by whether promptwall detects it. Each `tps`/`fps`
element is evaluated as a Go expression:
  * string literals and their `+` concatenations are taken verbatim (how=literal);
  * utils.GenerateSampleSecrets(id, s) is expanded with the template table
    parsed from cmd/generate/config/utils/generate.go (how=templates);
  * secrets.NewSecret(re) / newPlausibleSecret(re) and the utils pattern
    helpers (AlphaNumeric, Hex, ...) are sampled from the regex with a
    deterministic RNG seeded by file, rule and element index (how=generated);
  * anything else is skipped and counted on stderr.

Usage:
  python3 extract_gitleaks.py GIT_DIR COMMIT > secrets/gitleaks.jsonl
"""

import hashlib
import json
import random
import re
import subprocess
import sys

try:
    import re._parser as sre_parse  # Python >= 3.11
    import re._constants as sre_c
except ImportError:  # pragma: no cover
    import sre_parse
    import sre_constants as sre_c

# gitleaks rule id -> promptwall kind, where promptwall has the same kind.
KIND_MAP = {
    "1password-service-account-token": "onepassword_service_account_token",
    "age-secret-key": "age_secret_key",
    "alibaba-access-key-id": "alibaba_access_key_id",
    "anthropic-api-key": "anthropic_api_key",
    "anthropic-admin-api-key": "anthropic_admin_key",
    "atlassian-api-token": "atlassian_api_token",
    "aws-access-token": "aws_access_key_id",
    "azure-ad-client-secret": "azure_ad_client_secret",
    "bitbucket-client-secret": "secret",
    "clojars-api-token": "secret",
    "cloudflare-api-key": "cloudflare_api_token",
    "cloudflare-origin-ca-key": "cloudflare_origin_ca_key",
    "cohere-api-token": "cohere_api_key",
    "curl-auth-header": "bearer_token",
    "curl-auth-user": "http_basic_auth",
    "databricks-api-token": "databricks_token",
    "datadog-access-token": "datadog_api_key",
    "digitalocean-access-token": "digitalocean_oauth_token",
    "digitalocean-pat": "digitalocean_token",
    "digitalocean-refresh-token": "digitalocean_refresh_token",
    "discord-api-token": "secret",
    "doppler-api-token": "doppler_token",
    "dynatrace-api-token": "dynatrace_token",
    "flutterwave-secret-key": "flutterwave_secret_key",
    "flyio-access-token": "flyio_token",
    "gcp-api-key": "gcp_api_key",
    "generic-api-key": "generic_secret",
    "github-app-token": "github_app_token",
    "github-fine-grained-pat": "github_fine_grained_pat",
    "github-oauth": "github_oauth_token",
    "github-pat": "github_pat",
    "github-refresh-token": "github_refresh_token",
    "gitlab-pat": "gitlab_pat",
    "gitlab-ptt": "gitlab_pipeline_trigger_token",
    "gitlab-rrt": "gitlab_runner_token",
    "gitlab-runner-authentication-token": "gitlab_runner_token",
    "gitlab-deploy-token": "gitlab_deploy_token",
    "gitlab-feed-token": "gitlab_feed_token",
    "gitlab-cicd-job-token": "gitlab_ci_job_token",
    "grafana-cloud-api-token": "grafana_cloud_token",
    "grafana-service-account-token": "grafana_service_account_token",
    "hashicorp-tf-api-token": "terraform_cloud_token",
    "heroku-api-key": "heroku_api_key",
    "heroku-api-key-v2": "heroku_api_key",
    "huggingface-access-token": "huggingface_token",
    "jwt": "jwt",
    "linear-api-key": "linear_api_key",
    "mailchimp-api-key": "mailchimp_api_key",
    "mailgun-private-api-token": "mailgun_api_key",
    "mapbox-api-token": "secret",
    "netlify-access-token": "netlify_token",
    "new-relic-user-api-key": "new_relic_user_api_key",
    "new-relic-insert-key": "new_relic_insert_key",
    "npm-access-token": "npm_token",
    "nuget-config-password": "generic_password",
    "okta-access-token": "okta_api_token",
    "openai-api-key": "openai_api_key",
    "perplexity-api-key": "perplexity_api_key",
    "planetscale-api-token": "planetscale_token",
    "planetscale-password": "planetscale_token",
    "planetscale-oauth-token": "planetscale_token",
    "postman-api-token": "postman_api_key",
    "prefect-api-token": "prefect_api_key",
    "private-key": "private_key",
    "pulumi-api-token": "pulumi_access_token",
    "pypi-upload-token": "pypi_token",
    "rubygems-api-token": "rubygems_api_key",
    "sendgrid-api-token": "sendgrid_api_key",
    "sentry-org-token": "sentry_auth_token",
    "sentry-user-token": "sentry_auth_token",
    "shippo-api-token": "shippo_api_token",
    "shopify-access-token": "shopify_access_token",
    "shopify-custom-access-token": "shopify_access_token",
    "shopify-private-app-access-token": "shopify_access_token",
    "shopify-shared-secret": "shopify_shared_secret",
    "slack-app-token": "slack_app_token",
    "slack-bot-token": "slack_bot_token",
    "slack-user-token": "slack_user_token",
    "slack-legacy-token": "slack_legacy_token",
    "slack-legacy-bot-token": "slack_legacy_token",
    "slack-legacy-workspace-token": "slack_legacy_token",
    "slack-config-access-token": "slack_legacy_token",
    "slack-config-refresh-token": "slack_legacy_token",
    "slack-webhook-url": "slack_webhook_url",
    "square-access-token": "square_access_token",
    "square-secret": "square_oauth_secret",
    "stripe-access-token": "stripe_secret_key",
    "telegram-bot-api-token": "telegram_bot_token",
    "twilio-api-key": "twilio_api_key",
    "vault-service-token": "vault_token",
    "vault-batch-token": "vault_token",
}

# Rules whose examples are identifiers or non-secret values by promptwall's
# definition (an id that is useless without its secret, a public key, a
# file path rule): kept in the corpus, scored neither as positive nor negative.
NOT_CREDENTIAL = {
    "pkcs12-file",  # matched by file path, the example text is empty
    "sumologic-access-id",  # an access id (the access key is the secret)
}


def git_show(git_dir, commit, path):
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")


# ---------------------------------------------------------------- Go lexer

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<rune>'(?:\\.|[^'\\\n])+')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<num>[0-9][0-9a-fA-FxX_.]*)
  | (?P<op>\.\.\.|:=|[-+*/%&|^<>=!]=?|[()\[\]{},;:.])
    """,
    re.S | re.X,
)


def lex(src):
    out = []
    pos = 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            raise ValueError(f"lex error at {src[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def go_string(tok):
    kind, text = tok
    if kind == "raw":
        return text[1:-1].replace("\r", "")
    # Interpreted string: Go escapes are a superset-compatible subset of JSON's
    # for the characters used in these files; decode by hand.
    body = text[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif n == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif n == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif n in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"escape \\{n}")
    return "".join(out)


class Unsupported(Exception):
    pass


# ------------------------------------------------------- regex sampling

def sample_regex(pattern, rng):
    """A string matching `pattern` (Go RE2 syntax that Python also parses)."""
    tree = sre_parse.parse(pattern)
    return "".join(_gen(tree, rng))


CAT = {
    sre_c.CATEGORY_DIGIT: "0123456789",
    sre_c.CATEGORY_WORD: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    sre_c.CATEGORY_SPACE: " ",
}


def _charset(items):
    chars = []
    negate = False
    for op, av in items:
        if op == sre_c.NEGATE:
            negate = True
        elif op == sre_c.LITERAL:
            chars.append(chr(av))
        elif op == sre_c.RANGE:
            chars.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif op == sre_c.CATEGORY:
            chars.extend(CAT[av])
        else:
            raise Unsupported(f"charset op {op}")
    if negate:
        allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        chars = [c for c in allowed if c not in chars]
    # Sorted, deduplicated: sampling does not depend on set order.
    return sorted(set(chars))


def _gen(tree, rng):
    out = []
    for op, av in tree:
        if op == sre_c.LITERAL:
            out.append(chr(av))
        elif op == sre_c.NOT_LITERAL:
            out.append("a" if chr(av) != "a" else "b")
        elif op == sre_c.IN:
            out.append(rng.choice(_charset(av)))
        elif op == sre_c.ANY:
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789"))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            if hi == sre_c.MAXREPEAT:
                hi = lo + 8
            for _ in range(rng.randint(lo, hi)):
                out.extend(_gen(sub, rng))
        elif op == sre_c.SUBPATTERN:
            out.extend(_gen(av[-1], rng))
        elif op == sre_c.BRANCH:
            out.extend(_gen(rng.choice(av[1]), rng))
        elif op == sre_c.AT:
            pass
        elif op == sre_c.CATEGORY:
            out.append(rng.choice(CAT[av]))
        else:
            raise Unsupported(f"regex op {op}")
    return out


PATTERN_HELPERS = {
    "utils.Numeric": "[0-9]{%s}",
    "utils.Hex": "[a-f0-9]{%s}",
    "utils.AlphaNumeric": "[a-z0-9]{%s}",
    "utils.AlphaNumericExtendedShort": "[a-z0-9_-]{%s}",
    "utils.AlphaNumericExtended": "[a-z0-9=_\\-]{%s}",
    "utils.AlphaNumericExtendedLong": "[a-z0-9\\/=_\\+\\-]{%s}",
}


# ------------------------------------------------------- Go evaluation

class Evaluator:
    """Evaluates the few Go expression forms the rule files use for examples."""

    def __init__(self, toks, templates, rng):
        self.t = toks
        self.i = 0
        self.templates = templates
        self.rng = rng
        self.how = "literal"

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", "")

    def next(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, text):
        tok = self.next()
        if tok[1] != text:
            raise Unsupported(f"expected {text!r}, got {tok[1]!r}")

    def expr(self):
        """Returns a str or a list of str (GenerateSampleSecrets)."""
        val = self.term()
        while self.peek()[1] == "+":
            self.next()
            rhs = self.term()
            if isinstance(val, list) or isinstance(rhs, list):
                raise Unsupported("list concatenation")
            val = val + rhs
        return val

    def args(self):
        self.expect("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.expr())
            if self.peek()[1] == ",":
                self.next()
        self.expect(")")
        return out

    def term(self):
        kind, text = self.peek()
        if kind in ("raw", "str"):
            self.next()
            return go_string((kind, text))
        if kind == "ident":
            self.next()
            if self.peek()[1] != "(":
                raise Unsupported(f"identifier {text}")
            args = self.args()
            if text in ("secrets.NewSecret", "newPlausibleSecret"):
                self.how = "generated"
                for _ in range(1000):
                    s = sample_regex(args[0], self.rng)
                    # newPlausibleSecret retries until a digit 1-9 appears.
                    if text == "secrets.NewSecret" or re.search("[1-9]", s):
                        return s
                return s
            if text in PATTERN_HELPERS:
                return PATTERN_HELPERS[text] % args[0]
            if text == "utils.Hex8_4_4_4_12":
                return "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
            if text == "strings.Repeat":
                return args[0] * int(args[1])
            if text == "utils.GenerateSampleSecrets":
                if self.how == "literal":
                    self.how = "templates"
                ident, secret = args
                return [
                    t.replace("{i}", ident).replace("{I}", ident.upper()).replace("{s}", secret)
                    for t in self.templates
                ]
            if text in ("utils.GenerateSampleSecret", "generateSampleSecret"):
                if self.how == "literal":
                    self.how = "templates"
                return f'{args[0]}_api_token = "{args[1]}"'
            raise Unsupported(f"call {text}")
        raise Unsupported(f"token {text!r}")


def skip_balanced(toks, i):
    """Index after the balanced group opening at toks[i]."""
    depth = 0
    while i < len(toks):
        t = toks[i][1]
        if t in "([{" and toks[i][0] == "op":
            depth += 1
        elif t in ")]}" and toks[i][0] == "op":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced")


def split_elements(toks, lo, hi):
    """Top-level comma-separated token ranges in toks[lo:hi]."""
    out = []
    start = lo
    i = lo
    while i < hi:
        t = toks[i]
        if t[0] == "op" and t[1] in "([{":
            i = skip_balanced(toks, i)
            continue
        if t[0] == "op" and t[1] == ",":
            if i > start:
                out.append((start, i))
            start = i + 1
        i += 1
    if hi > start:
        out.append((start, hi))
    return out


def parse_templates(src):
    body = src[src.index("func GenerateSampleSecrets"):]
    body = body[: body.index("replacer :=")]
    templates = []
    for line in body.splitlines():
        s = line.strip()
        if s.startswith("//"):
            continue
        toks = lex(s) if s else []
        if len(toks) >= 3 and toks[0][0] in ("str", "raw") and toks[1][1] == ":" and toks[2][0] in ("str", "raw"):
            templates.append(go_string(toks[2]))
    return templates


def funcs(toks):
    """(name, start, end) of each top-level func body."""
    out = []
    i = 0
    while i < len(toks):
        if toks[i] == ("ident", "func") and toks[i + 1][0] == "ident":
            name = toks[i + 1][1]
            j = i + 2
            while toks[j][1] != "{":
                j = skip_balanced(toks, j) if toks[j][1] in "([" else j + 1
            end = skip_balanced(toks, j)
            out.append((name, j, end))
            i = end
        else:
            i += 1
    return out


def extract_file(path, src, templates, commit, stats):
    toks = lex(src)
    items = []
    for fname, lo, hi in funcs(toks):
        rule_id = None
        for k in range(lo, hi - 2):
            if toks[k] == ("ident", "RuleID") and toks[k + 1][1] == ":":
                rule_id = go_string(toks[k + 2])
                break
        if rule_id is None:
            continue
        counters = {"tps": 0, "fps": 0}
        k = lo
        while k < hi:
            tok = toks[k]
            if tok[0] == "ident" and tok[1] in ("tps", "fps") and toks[k + 1][1] in (":=", "="):
                var = tok[1]
                k += 2
                # The right-hand side: []string{...}, map[string]string{...},
                # append(var, ...), or a call.
                if toks[k][1] == "append":
                    close = skip_balanced(toks, k + 1)
                    elems = split_elements(toks, k + 2, close - 1)[1:]
                    # Drop the `...` of a spread argument.
                    ranges = [(a, b - 1) if toks[b - 1][1] == "..." else (a, b) for a, b in elems]
                    k = close
                elif toks[k][1] == "[" or toks[k][1] == "map":
                    is_map = toks[k][1] == "map"
                    j = k
                    while toks[j][1] != "{":
                        j += 1
                    close = skip_balanced(toks, j)
                    ranges = split_elements(toks, j + 1, close - 1)
                    if is_map:
                        # "path": content  -> content
                        ranges = [(next(x for x in range(a, b) if toks[x][1] == ":") + 1, b) for a, b in ranges]
                    k = close
                else:
                    end = k
                    while toks[end][1] not in (";",) and not (toks[end][0] == "ident" and toks[end][1] in ("tps", "fps", "return")):
                        if toks[end][1] in "([{":
                            end = skip_balanced(toks, end)
                        else:
                            end += 1
                    ranges = [(k, end)]
                    k = end
                for a, b in ranges:
                    idx = counters[var]
                    counters[var] += 1
                    seed = hashlib.sha256(f"{path}|{rule_id}|{var}|{idx}".encode()).digest()
                    ev = Evaluator(toks[a:b], templates, random.Random(seed))
                    try:
                        val = ev.expr()
                        if ev.peek()[0] != "eof":
                            raise Unsupported("trailing tokens")
                    except (Unsupported, ValueError, IndexError, KeyError) as e:
                        stats["skipped"] += 1
                        print(f"skip {path} {rule_id} {var}[{idx}]: {e}", file=sys.stderr)
                        continue
                    texts = val if isinstance(val, list) else [val]
                    for n, text in enumerate(texts):
                        if not text.strip():
                            continue
                        if var == "fps":
                            kind = None
                        elif rule_id in NOT_CREDENTIAL:
                            kind = "not_scored"
                        else:
                            kind = KIND_MAP.get(rule_id, "secret")
                        suffix = f".{n}" if isinstance(val, list) else ""
                        items.append(
                            {
                                "id": f"gitleaks:{rule_id}:{var}[{idx}]{suffix}",
                                "text": text,
                                "kind_expected": kind,
                                "source_rule": rule_id,
                                "source": f"gitleaks/gitleaks@{commit}:{path}",
                                "how": ev.how,
                            }
                        )
                        stats[ev.how] = stats.get(ev.how, 0) + 1
            else:
                k += 1
    return items


def main():
    git_dir, commit = sys.argv[1], sys.argv[2]
    templates = parse_templates(git_show(git_dir, commit, "cmd/generate/config/utils/generate.go"))
    listing = subprocess.run(
        ["git", "--git-dir", git_dir, "ls-tree", "--name-only", commit, "cmd/generate/config/rules/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    stats = {"skipped": 0}
    seen = set()
    for path in sorted(listing):
        if not path.endswith(".go") or path.endswith("_test.go"):
            continue
        for item in extract_file(path, git_show(git_dir, commit, path), templates, commit, stats):
            # Identical texts under one rule (a template expanded twice) once.
            key = (item["source_rule"], item["kind_expected"] is None, item["text"])
            if key in seen:
                stats["duplicate"] = stats.get("duplicate", 0) + 1
                continue
            seen.add(key)
            print(json.dumps(item, ensure_ascii=False))
    print(f"templates: {len(templates)}; {stats}", file=sys.stderr)


if __name__ == "__main__":
    main()
