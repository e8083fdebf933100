//! Personal-data detectors: email, phone, payment card, IBAN, US SSN and IP
//! addresses. Each validates its candidates (Luhn, mod-97, SSN rules, country
//! codes, address ranges) so IDs, dates, versions and hashes do not match.
//!
//! IP policy: by default only addresses a third party could route to count
//! as personal data: IPv4 outside private (RFC 1918), loopback, link-local,
//! CGNAT, documentation, benchmarking, multicast and reserved ranges; IPv6
//! inside global unicast 2000::/3 minus documentation 2001:db8::/32 and the
//! IETF protocol block 2001::/23. With `private_ips_are_pii` every valid
//! address except the unspecified (0.0.0.0, ::) and broadcast ones counts.

use std::net::{Ipv4Addr, Ipv6Addr};

use memchr::memchr_iter;
use regex::Regex;

use super::validate::{card_iin_ok, country_code_len, iban_length, iban_ok, luhn_ok, ssn_ok, TEST_CARD_NUMBERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PiiKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
    Name,
    Address,
    Passport,
    NationalId,
}

impl PiiKind {
    pub const ALL: [PiiKind; 11] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::UsSsn,
        PiiKind::Ipv4,
        PiiKind::Ipv6,
        PiiKind::Name,
        PiiKind::Address,
        PiiKind::Passport,
        PiiKind::NationalId,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Iban => "iban",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::Ipv6 => "ipv6",
            PiiKind::Name => "name",
            PiiKind::Address => "address",
            PiiKind::Passport => "passport",
            PiiKind::NationalId => "national_id",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PiiKind::Email => "Email address",
            PiiKind::Phone => "Phone number (E.164 with valid country code, or US/national formats)",
            PiiKind::CreditCard => "Payment card number (Luhn + issuer ranges; published test numbers excluded)",
            PiiKind::Iban => "IBAN (country length + mod-97)",
            PiiKind::UsSsn => "US Social Security number (area/group/serial rules)",
            PiiKind::Ipv4 => "Public IPv4 address",
            PiiKind::Ipv6 => "Public IPv6 address",
            PiiKind::Name => {
                "Person name (embedded name lists + context cues: titles, field keys, headers, signatures)"
            }
            PiiKind::Address => {
                "Postal street address (house number + street word, en/de/fr/es/it/nl/pt, optional postcode and city)"
            }
            PiiKind::Passport => {
                "Passport number near a passport keyword, or a machine-readable zone (ICAO 9303 check digits)"
            }
            PiiKind::NationalId => {
                "National id with a check digit (ES DNI/NIE, IT codice fiscale, FI HETU, FR NIR, BE; NL BSN, PL PESEL, SE, NO, DE Steuer-ID and UK NINO after their keyword)"
            }
        }
    }
}

pub(crate) struct PiiScanner {
    phone_us: Regex,
    phone_national: Regex,
    ssn: Regex,
    card: Regex,
    ipv4: Regex,
    private_ips_are_pii: bool,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// No word character before `start`, except the letter of a JSON escape
/// (`\n`, `\t`, `\r`) since raw request bodies are scanned too.
pub(crate) fn left_ok(b: &[u8], start: usize) -> bool {
    if start == 0 || !is_word(b[start - 1]) {
        return true;
    }
    start >= 2
        && b[start - 2] == b'\\'
        && matches!(b[start - 1], b'n' | b't' | b'r')
        && (start < 3 || b[start - 3] != b'\\')
}

pub(crate) fn right_ok(b: &[u8], end: usize) -> bool {
    end >= b.len() || !is_word(b[end])
}

/// Numbers continue through `.`/`-` followed by a digit (versions, IDs).
fn number_right_ok(b: &[u8], end: usize) -> bool {
    right_ok(b, end) && !(end + 1 < b.len() && matches!(b[end], b'.' | b'-' | b'/') && b[end + 1].is_ascii_digit())
}

fn number_left_ok(b: &[u8], start: usize) -> bool {
    left_ok(b, start)
        && !(start >= 1 && matches!(b[start - 1], b'.' | b'-' | b'+' | b'/' | b'#' | b'$'))
        && !(start >= 2
            && b[start - 1] == b' '
            && b[start - 2].is_ascii_digit()
            && b.get(start.wrapping_sub(3)) == Some(&b' '))
}

const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "mjs", "cjs", "ts", "tsx", "jsx", "json", "css", "scss",
    "html", "txt", "lock", "toml", "yaml", "yml", "map", "wasm", "rs", "py", "go", "rb", "java", "kt", "md",
];

impl PiiScanner {
    pub fn new(private_ips_are_pii: bool) -> PiiScanner {
        let re = |p: &str| Regex::new(p).expect("built-in PII pattern compiles");
        PiiScanner {
            // Digit-first so the regex prefilter skips text without digits;
            // `(415) ` and a leading `1-` are added back by hand.
            phone_us: re(r"[2-9][0-9]{2}(?:[ .\-]|\) ?)[2-9][0-9]{2}[ .\-][0-9]{4}"),
            phone_national: re(r"0[1-9][0-9]{1,3}[ \-][0-9]{3,4}[ \-][0-9]{3,4}"),
            ssn: re(r"[0-9]{3}[\- ][0-9]{2}[\- ][0-9]{4}"),
            card: re(r"[0-9](?:[0-9]|[ \-][0-9]){12,22}"),
            ipv4: re(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"),
            private_ips_are_pii,
        }
    }

    pub fn scan(&self, text: &str, enabled: impl Fn(PiiKind) -> bool, out: &mut impl FnMut(PiiKind, usize, usize)) {
        let b = text.as_bytes();
        if enabled(PiiKind::Email) {
            scan_emails(b, |s, e| out(PiiKind::Email, s, e));
        }
        if enabled(PiiKind::Phone) {
            scan_intl_phones(b, |s, e| out(PiiKind::Phone, s, e));
        }
        // One pass finds runs of digits and separators; the per-kind regexes
        // then run only inside runs long enough to hold their kind.
        let (phone, ssn, card, iban, ipv4) = (
            enabled(PiiKind::Phone),
            enabled(PiiKind::UsSsn),
            enabled(PiiKind::CreditCard),
            enabled(PiiKind::Iban),
            enabled(PiiKind::Ipv4),
        );
        if phone || ssn || card || iban || ipv4 {
            for Run {
                range: run,
                digits,
                dots,
            } in (NumericRuns { b, pos: 0 })
            {
                let base = run.start;
                // IBAN check digits follow two capitals; the rest may be letters.
                if iban && base >= 2 && b[base - 2].is_ascii_uppercase() && b[base - 1].is_ascii_uppercase() {
                    self.scan_iban(text, base - 2, out);
                }
                if ipv4 && digits >= 4 && dots >= 3 {
                    self.scan_ipv4(text, run.clone(), out);
                }
                if phone && (7..=15).contains(&digits) && dots == 0 && phone_cue(b, run.start) {
                    let start = if base > 0 && b[base - 1] == b'(' {
                        base - 1
                    } else {
                        base
                    };
                    if number_left_ok(b, start) && number_right_ok(b, run.end) && !date_like(&b[run.clone()]) {
                        out(PiiKind::Phone, start, run.end);
                    }
                }
                if digits >= 9 {
                    self.scan_long_numbers(text, run, phone, ssn, card, out);
                }
            }
        }
        if enabled(PiiKind::Ipv6) {
            scan_ipv6(b, self.private_ips_are_pii, |s, e| out(PiiKind::Ipv6, s, e));
        }
        if enabled(PiiKind::Name) {
            super::names::scan_names(text, |s, e| out(PiiKind::Name, s, e));
        }
        if enabled(PiiKind::Address) {
            super::address::scan_addresses(text, |s, e| out(PiiKind::Address, s, e));
        }
        if enabled(PiiKind::Passport) {
            super::passport::scan_passports(text, |s, e| out(PiiKind::Passport, s, e));
        }
        if enabled(PiiKind::NationalId) {
            super::national_id::scan_national_ids(text, |s, e| out(PiiKind::NationalId, s, e));
        }
    }

    fn scan_long_numbers(
        &self,
        text: &str,
        run: std::ops::Range<usize>,
        phone: bool,
        ssn: bool,
        card: bool,
        out: &mut impl FnMut(PiiKind, usize, usize),
    ) {
        let b = text.as_bytes();
        let hay = &text[..run.end];
        if phone {
            let mut pos = run.start;
            while let Some(m) = self.phone_us.find_at(hay, pos) {
                pos = m.end();
                let mut start = m.start();
                if m.as_str().contains(')') {
                    if start == 0 || b[start - 1] != b'(' {
                        continue;
                    }
                    start -= 1;
                } else if start >= 2 && b[start - 2] == b'1' && matches!(b[start - 1], b' ' | b'.' | b'-') {
                    // `1-415-…` is the trunk prefix; `+1 415 …` was seen as international.
                    if !number_left_ok(b, start - 2) {
                        continue;
                    }
                    start -= 2;
                }
                if number_left_ok(b, start) && number_right_ok(b, m.end()) {
                    out(PiiKind::Phone, start, m.end());
                }
            }
            let mut pos = run.start;
            while let Some(m) = self.phone_national.find_at(hay, pos) {
                pos = m.end();
                let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
                if (10..=11).contains(&digits) && number_left_ok(b, m.start()) && number_right_ok(b, m.end()) {
                    out(PiiKind::Phone, m.start(), m.end());
                }
            }
        }
        if ssn {
            let mut pos = run.start;
            while let Some(m) = self.ssn.find_at(hay, pos) {
                pos = m.end();
                let v = m.as_str();
                let (area, sep1, group, sep2, serial) = (&v[..3], &v[3..4], &v[4..6], &v[6..7], &v[7..]);
                if sep1 == sep2
                    && ssn_ok(area, group, serial)
                    && number_left_ok(b, m.start())
                    && number_right_ok(b, m.end())
                {
                    out(PiiKind::UsSsn, m.start(), m.end());
                }
            }
        }
        if card {
            let mut pos = run.start;
            while let Some(m) = self.card.find_at(hay, pos) {
                pos = m.end();
                if !number_left_ok(b, m.start()) {
                    continue;
                }
                if let Some(len) = card_prefix(m.as_str()) {
                    if number_right_ok(b, m.start() + len) {
                        out(PiiKind::CreditCard, m.start(), m.start() + len);
                    }
                }
            }
        }
    }

    fn scan_ipv4(&self, text: &str, run: std::ops::Range<usize>, out: &mut impl FnMut(PiiKind, usize, usize)) {
        let b = text.as_bytes();
        let mut pos = run.start;
        while let Some(m) = self.ipv4.find_at(&text[..run.end], pos) {
            pos = m.end();
            let (s, e) = (m.start(), m.end());
            if !(number_left_ok(b, s) && number_right_ok(b, e))
                || (s > 0 && b[s - 1] == b'.')
                || looks_like_version(b, s)
            {
                continue;
            }
            // `8.1.3.3`: clause numbers of specs (X.690, RFCs) share the shape.
            let small_tail = m.as_str().split('.').skip(1).all(|o| o.len() == 1);
            if small_tail || looks_like_oid(m.as_str()) || WELL_KNOWN_PUBLIC_IPS.contains(&m.as_str()) {
                continue;
            }
            if let Ok(ip) = m.as_str().parse::<Ipv4Addr>() {
                if ipv4_counts(ip, self.private_ips_are_pii) {
                    out(PiiKind::Ipv4, s, e);
                }
            }
        }
    }

    fn scan_iban(&self, text: &str, start: usize, out: &mut impl FnMut(PiiKind, usize, usize)) {
        let b = text.as_bytes();
        if !left_ok(b, start) {
            return;
        }
        let window = &text[start..ceil_char(text, (start + 48).min(text.len()))];
        if let Some(len) = iban_prefix(window) {
            if right_ok(b, start + len) {
                out(PiiKind::Iban, start, start + len);
            }
        }
    }
}

/// Words that label the number after them as a phone number (`Phone:`,
/// `Tel.`, `Telefon`, `téléphone`, `call me at`), within 24 bytes before.
fn phone_cue(b: &[u8], start: usize) -> bool {
    const CUES: &[&str] = &[
        "phone",
        "tel",
        "telefon",
        "téléphone",
        "teléfono",
        "telefono",
        "telefone",
        "mobile",
        "mobil",
        "cell",
        "fax",
        "whatsapp",
        "call me at",
        "call me on",
        "handy",
        "portable",
        "móvil",
        "cellulare",
        "telefoon",
    ];
    let from = start.saturating_sub(24);
    let before = String::from_utf8_lossy(&b[from..start]).to_lowercase();
    let before = before.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '.' | '#' | '-' | '='));
    let before = before
        .trim_end_matches(['\\', 'n'])
        .trim_end_matches(|c: char| c.is_whitespace() || c == ':');
    CUES.iter().any(|c| {
        before.ends_with(c) || before.ends_with(&format!("{c} number")) || before.ends_with(&format!("{c} no"))
    })
}

/// `2024-01-15`, `12-31-2024`: dates share the digit-and-dash shape.
fn date_like(run: &[u8]) -> bool {
    let groups: Vec<usize> = run
        .split(|c| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(<[u8]>::len)
        .collect();
    groups.len() == 3 && (groups[0] == 4 || groups[2] == 4) && groups.iter().all(|&g| g == 2 || g == 4)
}

/// Maximal runs of digits and number punctuation (` .()-`) that start and
/// end with a digit, found eight bytes at a time.
struct NumericRuns<'a> {
    b: &'a [u8],
    pos: usize,
}

struct Run {
    range: std::ops::Range<usize>,
    digits: usize,
    /// Dots in the run (an IPv4 address needs three).
    dots: usize,
}

impl Iterator for NumericRuns<'_> {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        let b = self.b;
        let start = next_digit(b, self.pos)?;
        let (mut end, mut last_digit, mut digits, mut dots) = (start, start, 0, 0);
        while let Some(&c) = b.get(end) {
            match c {
                b'0'..=b'9' => {
                    last_digit = end;
                    digits += 1;
                }
                b'.' => dots += 1,
                b' ' | b'(' | b')' | b'-' => {}
                _ => break,
            }
            end += 1;
        }
        self.pos = end;
        // Trailing separators are not part of the run (a trailing dot counts
        // only towards the cheap IPv4 pre-check, never a finding).
        Some(Run {
            range: start..last_digit + 1,
            digits,
            dots,
        })
    }
}

/// Index of the next ASCII digit at or after `i` (SWAR: a word of eight
/// bytes is skipped unless one of them, xor '0', is below 10).
fn next_digit(b: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let t = x ^ (0x30 * LO);
        if t.wrapping_sub(10 * LO) & !t & HI != 0 {
            break;
        }
        i += 8;
    }
    (i..b.len()).find(|&j| b[j].is_ascii_digit())
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `version 1.2.3.4`, `v1.2.3.4`, `==1.2.3.4`: version strings, not hosts.
fn looks_like_version(b: &[u8], start: usize) -> bool {
    let from = start.saturating_sub(12);
    let before = String::from_utf8_lossy(&b[from..start]).to_ascii_lowercase();
    let before = before.trim_end();
    before.ends_with("version")
        || before.ends_with("ver")
        || before.ends_with("==")
        || before.ends_with("@")
        || before.ends_with("v")
        || before.ends_with("release")
        || before.ends_with("build")
        || before.ends_with('§')
        || before.ends_with("section")
        || before.ends_with("sec.")
        || before.ends_with("oid")
}

/// ASN.1 object identifiers share the dotted-quad shape; these arcs
/// (iso.member-body, iso.org, joint-iso-itu-t.ds, …) start almost all of them.
fn looks_like_oid(s: &str) -> bool {
    ["1.2.", "1.3.", "2.5.", "2.16.", "2.23."]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Public resolvers named in docs and configs everywhere: infrastructure,
/// not anyone's personal data.
const WELL_KNOWN_PUBLIC_IPS: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
    "2620:fe::9",
    "2620:fe::fe:9",
];

/// Longest prefix (by separator groups) of `s` that is a valid card number.
fn card_prefix(s: &str) -> Option<usize> {
    let sep = s.bytes().find(|b| *b == b' ' || *b == b'-');
    let mut ends: Vec<usize> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| Some(*b) == sep)
        .map(|(i, _)| i)
        .collect();
    ends.push(s.len());
    if let Some(sep) = sep {
        // One separator kind throughout.
        if s.bytes().any(|b| !b.is_ascii_digit() && b != sep) {
            let other = s.bytes().position(|b| !b.is_ascii_digit() && b != sep).expect("found");
            ends.retain(|&e| e <= other);
        }
    }
    for &end in ends.iter().rev() {
        let cand = &s[..end];
        let digits: String = cand.bytes().filter(u8::is_ascii_digit).map(char::from).collect();
        if !(13..=19).contains(&digits.len()) {
            continue;
        }
        let groups: Vec<usize> = cand.split(|c: char| !c.is_ascii_digit()).map(str::len).collect();
        let grouping_ok = groups.len() == 1
            || groups.iter().all(|&g| g == 4) && groups.len() >= 4
            || groups == [4, 4, 4, 4, 3]
            || groups == [4, 6, 5]
            || groups == [4, 6, 4];
        if grouping_ok && luhn_ok(&digits) && card_iin_ok(&digits) && !TEST_CARD_NUMBERS.contains(&digits.as_str()) {
            return Some(end);
        }
    }
    None
}

/// Byte length of the IBAN at the start of `s` (walks to the country's length).
fn iban_prefix(s: &str) -> Option<usize> {
    let want = iban_length(&s[..2])?;
    let mut compact = String::with_capacity(want);
    let mut prev_space = false;
    for (i, c) in s.char_indices() {
        if c == ' ' && !prev_space && i > 0 {
            prev_space = true;
            continue;
        }
        prev_space = false;
        if !(c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return None;
        }
        compact.push(c);
        if compact.len() == want {
            return iban_ok(&compact).then_some(i + 1);
        }
    }
    None
}

/// No-reply, bounce and bot senders (`noreply@…`, `mailer-daemon@…`,
/// `…@users.noreply.github.com`, `github-actions@github.com`): nobody's
/// personal address.
fn automated_address(local: &[u8], domain: &[u8]) -> bool {
    let local = String::from_utf8_lossy(local).to_ascii_lowercase();
    let domain = String::from_utf8_lossy(domain).to_ascii_lowercase();
    matches!(
        local.as_str(),
        "noreply"
            | "no-reply"
            | "no_reply"
            | "donotreply"
            | "do-not-reply"
            | "do_not_reply"
            | "mailer-daemon"
            | "bounce"
            | "bounces"
            | "notifications"
            | "notification"
    ) || domain == "users.noreply.github.com"
        || domain.starts_with("noreply.")
        || (domain == "github.com" && local == "github-actions")
        || local.ends_with("[bot]")
        || local.ends_with("-bot") && domain.ends_with("github.com")
}

fn scan_emails(b: &[u8], mut out: impl FnMut(usize, usize)) {
    let local_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut last_end = 0;
    for at in memchr_iter(b'@', b) {
        if at < last_end || at == 0 {
            continue;
        }
        let mut start = at;
        while start > last_end && at - start < 64 && local_char(b[start - 1]) {
            start -= 1;
        }
        if start >= 2 && b[start - 1] == b'\\' && matches!(b[start], b'n' | b't' | b'r') && b[start - 2] != b'\\' {
            start += 1;
        }
        while start < at && matches!(b[start], b'.' | b'-' | b'+') {
            start += 1;
        }
        if start == at || b[at - 1] == b'.' {
            continue;
        }
        // Domain: dot-separated labels, alphabetic TLD.
        let mut end = at + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'-' || b[end] == b'.') && end - at < 255 {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &b[at + 1..end];
        let labels: Vec<&[u8]> = domain.split(|c| *c == b'.').collect();
        let tld = labels.last().copied().unwrap_or_default();
        let ok = labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-')
            && (2..=24).contains(&tld.len())
            && tld.iter().all(u8::is_ascii_alphabetic)
            && !FILE_EXTENSIONS.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(tld))
            // logo@2x.png-style asset names
            && !(labels[0].len() <= 2 && labels[0][0].is_ascii_digit());
        if !ok || (end < b.len() && (is_word(b[end]) || b[end] == b'@')) {
            continue;
        }
        // scp-style git remotes (git@host:org/repo) are not personal.
        if &b[start..at] == b"git" && end < b.len() && b[end] == b':' {
            continue;
        }
        if automated_address(&b[start..at], domain) {
            last_end = end;
            continue;
        }
        out(start, end);
        last_end = end;
    }
}

fn scan_intl_phones(b: &[u8], mut out: impl FnMut(usize, usize)) {
    let mut last_end = 0;
    for plus in memchr_iter(b'+', b) {
        if plus < last_end || plus + 1 >= b.len() || !matches!(b[plus + 1], b'1'..=b'9') {
            continue;
        }
        if plus > 0 && (is_word(b[plus - 1]) || b[plus - 1] == b'+') && !left_ok(b, plus) {
            continue;
        }
        let mut end = plus + 1;
        while end < b.len() && end - plus < 26 && matches!(b[end], b'0'..=b'9' | b' ' | b'(' | b')' | b'.' | b'-') {
            end += 1;
        }
        while end > plus + 1 && !b[end - 1].is_ascii_digit() {
            end -= 1;
        }
        let s = &b[plus + 1..end];
        let digits: String = s.iter().filter(|c| c.is_ascii_digit()).map(|&c| c as char).collect();
        if !(8..=15).contains(&digits.len())
            || !right_ok(b, end)
            || (end < b.len() && matches!(b[end], b'.' | b'-') && b.get(end + 1).is_some_and(u8::is_ascii_digit))
        {
            continue;
        }
        // Separators single, parentheses balanced, and the country code valid.
        let seps_ok = s
            .windows(2)
            .all(|w| w[0].is_ascii_digit() || w[1].is_ascii_digit() || matches!(w, [b')', b' '] | [b' ', b'(']));
        let opens = s.iter().filter(|c| **c == b'(').count();
        let closes = s.iter().filter(|c| **c == b')').count();
        if !seps_ok || opens != closes || opens > 1 || country_code_len(&digits).is_none() {
            continue;
        }
        // `+9999-12-31 23:59`: a signed date-time, not a number to call.
        let date_like = s.splitn(4, |c| *c == b'-').map(<[u8]>::len).collect::<Vec<_>>();
        if (end < b.len() && b[end] == b':') || (date_like.len() >= 3 && date_like[1] == 2 && date_like[0] >= 4) {
            continue;
        }
        out(plus, end);
        last_end = end;
    }
}

fn ipv4_counts(ip: Ipv4Addr, private_too: bool) -> bool {
    let o = ip.octets();
    if ip.is_unspecified() || ip.is_broadcast() {
        return false;
    }
    if private_too {
        return true;
    }
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0))
}

fn ipv6_counts(ip: Ipv6Addr, private_too: bool) -> bool {
    if ip.is_unspecified() {
        return false;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_counts(v4, private_too);
    }
    if private_too {
        return true;
    }
    let s = ip.segments();
    (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8) && !(s[0] == 0x2001 && s[1] < 0x0200)
}

fn scan_ipv6(b: &[u8], private_too: bool, mut out: impl FnMut(usize, usize)) {
    let ip_char = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut last_end = 0;
    for colon in memchr_iter(b':', b) {
        if colon < last_end {
            continue;
        }
        // `key: value`: a lone colon cannot be part of an address.
        if !b.get(colon + 1).is_some_and(|&c| ip_char(c)) && (colon == 0 || !ip_char(b[colon - 1])) {
            last_end = colon + 1;
            continue;
        }
        let mut start = colon;
        while start > 0 && ip_char(b[start - 1]) && colon - start < 45 {
            start -= 1;
        }
        let mut end = colon;
        while end < b.len() && ip_char(b[end]) && end - start < 45 {
            end += 1;
        }
        last_end = end;
        while end > start && matches!(b[end - 1], b'.' | b':') && !(end - start >= 2 && &b[end - 2..end] == b"::") {
            end -= 1;
        }
        while start < end && b[start] == b'.' {
            start += 1;
        }
        if !left_ok(b, start) || !right_ok(b, end) {
            continue;
        }
        let cand = &b[start..end];
        let groups = cand.split(|c| *c == b':').filter(|g| !g.is_empty()).count();
        if groups < 3 || cand.iter().filter(|c| **c == b':').count() < 2 {
            continue;
        }
        let Ok(s) = std::str::from_utf8(cand) else { continue };
        if let Ok(ip) = s.parse::<Ipv6Addr>() {
            if ipv6_counts(ip, private_too) && !WELL_KNOWN_PUBLIC_IPS.contains(&s) {
                out(start, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, private: bool) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        PiiScanner::new(private).scan(text, |_| true, &mut |k: PiiKind, s, e| {
            v.push((k.kind(), text[s..e].to_string()))
        });
        v
    }

    fn kinds(text: &str) -> Vec<&'static str> {
        found(text, false).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn numeric_runs() {
        let text = b"ab 12 (415) 555-2671x 9.9.9.9; 7";
        let runs: Vec<&[u8]> = NumericRuns { b: text, pos: 0 }.map(|r| &text[r.range]).collect();
        assert_eq!(runs, vec![&b"12 (415) 555-2671"[..], b"9.9.9.9", b"7"]);
        assert_eq!(next_digit(b"abcdefghijklmnopq5", 0), Some(17));
        assert_eq!(next_digit(b"abcdefghijklmnopq", 3), None);
    }

    #[test]
    fn emails() {
        assert_eq!(
            found("mail alice.smith+tag@mail.example.co.uk now", false),
            vec![("email", "alice.smith+tag@mail.example.co.uk".into())]
        );
        assert_eq!(
            found(r#"{"text":"hi\nbob@corp.io"}"#, false),
            vec![("email", "bob@corp.io".into())]
        );
        for neg in [
            "@types/node",
            "logo@2x.png",
            "lodash@4.17.21",
            "git@github.com:org/repo.git",
            "@Override",
            "user@localhost",
            "a@b.c1",
            "noreply@github.com",
            "No-Reply@accounts.example.io",
            "mailer-daemon@mx.corp.de",
            "49699333+dependabot[bot]@users.noreply.github.com",
            "octocat@users.noreply.github.com",
            "github-actions@github.com",
        ] {
            assert!(kinds(neg).is_empty(), "{neg}: {:?}", found(neg, false));
        }
    }

    #[test]
    fn phones() {
        for p in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+49 (30) 901820",
            "+14155552671",
            "(415) 555-2671",
            "415-555-2671",
            "020 7946 0958",
        ] {
            assert_eq!(kinds(&format!("call {p} today")), vec!["phone"], "{p}");
        }
        for n in [
            "datetime!(+9999-12-31 23:59:59)",
            "+999999-12-31",
            "2024-01-15",
            "v1.2.3",
            "build 20240115123045",
            "+0 123 456",
            "x+12345678",
            "id 123-456-78901",
            "1.415.555.2671.5",
            "+999 12",
        ] {
            assert!(!kinds(n).contains(&"phone"), "{n}: {:?}", found(n, false));
        }
    }

    #[test]
    fn cards() {
        assert_eq!(
            found("card 4539 1488 0343 6467 exp", false),
            vec![("credit_card", "4539 1488 0343 6467".into())]
        );
        assert_eq!(
            kinds("amex 3714-496353-98431? no: 3782-822463-10005"),
            Vec::<&str>::new()
        );
        assert_eq!(kinds("ts 1700000000000 and 4539148803436468"), Vec::<&str>::new());
        assert_eq!(kinds("stripe test 4242 4242 4242 4242"), Vec::<&str>::new());
    }

    #[test]
    fn iban_and_ssn() {
        assert_eq!(
            found("IBAN DE89 3704 0044 0532 0130 00 thanks", false),
            vec![("iban", "DE89 3704 0044 0532 0130 00".into())]
        );
        assert!(kinds("DE89 3704 0044 0532 0130 01").is_empty());
        assert_eq!(found("ssn 536-22-1234.", false), vec![("us_ssn", "536-22-1234".into())]);
        for n in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "536-00-1234",
            "536-22-0000",
            "536-22 1234",
        ] {
            assert!(kinds(n).is_empty(), "{n}");
        }
    }

    #[test]
    fn ips() {
        assert_eq!(kinds("connect to 81.2.69.160 now"), vec!["ipv4"]);
        for n in [
            "8.8.8.8",
            "\"1.3.101.112\".parse()",
            "RFC 5280 §5.1.2.4",
            "Section 5.1.2.1",
            "(X.690 8.1.3.3)",
            "10.1.2.3",
            "127.0.0.1",
            "192.168.1.20",
            "169.254.1.1",
            "192.0.2.55",
            "version 1.2.3.4",
            "1.3.6.1.4.1",
            "999.1.1.1",
        ] {
            assert!(kinds(n).is_empty(), "{n}");
        }
        assert_eq!(found("host 10.20.30.40", true), vec![("ipv4", "10.20.30.40".into())]);
        assert_eq!(
            found("v6 [2606:4700:4700::1234]:53", false),
            vec![("ipv6", "2606:4700:4700::1234".into())]
        );
        for n in [
            "2001:4860:4860::8888",
            "::1",
            "fe80::1%eth0",
            "2001:db8::1",
            "12:30:45",
            "std::io::Result",
            "00:1a:2b:3c:4d:5e",
            "fd00::1:2:3",
        ] {
            assert!(kinds(n).is_empty(), "{n}");
        }
    }
}
