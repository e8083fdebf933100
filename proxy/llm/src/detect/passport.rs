//! Passports and identity documents.
//!
//! - Machine-readable zones (ICAO 9303): TD3 (passports, two lines of 44),
//!   TD2 (two lines of 36) and TD1 (ID cards, three lines of 30), accepted
//!   when the check digits of document number, birth date, expiry and the
//!   composite agree ([`check_digit`]). Lines may be separated by a line
//!   break or its JSON escape.
//! - Passport numbers near a keyword (`passport`, `Reisepass`, `passeport`,
//!   `pasaporte`, `passaporto`, `paspoort`, `passaporte`, `Pass-Nr.`),
//!   within a few words after it (or before it: `AAA123456 es mi número de
//!   pasaporte`): 7–9 letters and digits with at least five digits and at
//!   most three letters, covering the common national formats (US/UK nine
//!   digits, DE `C01X00T41`, FR `12AB34567`, ES `AAA123456`, IT
//!   `YA1234567`, NL `NXC12345H`, PT `N123456`).
//!
//! Cost: MRZ parsing runs only if the text holds `<<`; numbers only in a
//! window after each keyword hit of an Aho-Corasick pass.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;

const KEYWORDS: &[&str] = &[
    "passport",
    "reisepass",
    "passeport",
    "pasaporte",
    "passaporto",
    "paspoort",
    "passaporte",
    "pass-nr",
    "passnummer",
    "passnr",
    "travel document",
];

static KEYWORD_AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(KEYWORDS)
        .expect("passport keywords automaton builds")
});

/// ICAO 9303 check digit: weights 7, 3, 1; digits their value, `A`–`Z`
/// 10–35, `<` zero. `None` for any other character.
pub(crate) fn check_digit(field: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, &c) in field.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            b'<' => 0,
            _ => return None,
        };
        sum += v * [7, 3, 1][i % 3];
    }
    Some(b'0' + (sum % 10) as u8)
}

/// `field` then its check digit `check`; a `<` check passes for a field of
/// fillers only (optional personal number).
fn checks(field: &[u8], check: u8) -> bool {
    if check == b'<' {
        return field.iter().all(|&c| c == b'<');
    }
    check_digit(field) == Some(check)
}

/// A TD3 second line (44): document number, birth date, expiry, personal
/// number and composite checks.
pub(crate) fn td3_line2_ok(l: &[u8]) -> bool {
    l.len() == 44
        && checks(&l[0..9], l[9])
        && checks(&l[13..19], l[19])
        && checks(&l[21..27], l[27])
        && checks(&l[28..42], l[42])
        && {
            let composite: Vec<u8> = [&l[0..10], &l[13..20], &l[21..43]].concat();
            checks(&composite, l[43])
        }
}

/// A TD2 second line (36).
pub(crate) fn td2_line2_ok(l: &[u8]) -> bool {
    l.len() == 36 && checks(&l[0..9], l[9]) && checks(&l[13..19], l[19]) && checks(&l[21..27], l[27]) && {
        let composite: Vec<u8> = [&l[0..10], &l[13..20], &l[21..35]].concat();
        checks(&composite, l[35])
    }
}

/// TD1 lines one and two (30 each).
pub(crate) fn td1_ok(l1: &[u8], l2: &[u8]) -> bool {
    l1.len() == 30
        && l2.len() == 30
        && matches!(l1[0], b'I' | b'A' | b'C')
        && checks(&l1[5..14], l1[14])
        && checks(&l2[0..6], l2[6])
        && checks(&l2[8..14], l2[14])
        && {
            let composite: Vec<u8> = [&l1[5..30], &l2[0..7], &l2[8..15], &l2[18..29]].concat();
            checks(&composite, l2[29])
        }
}

fn mrz_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<'
}

/// Maximal runs of MRZ characters of a zone's line length.
fn mrz_lines(b: &[u8]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !mrz_byte(b[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && mrz_byte(b[i]) {
            i += 1;
        }
        // `\nP<UTO…`: the escape's letter is not part of the line.
        let s = if s > 0 && b[s - 1] == b'\\' && b[s] == b'n' {
            s + 1
        } else {
            s
        };
        if matches!(i - s, 30 | 36 | 44) && b[s..i].contains(&b'<') {
            lines.push((s, i));
        }
    }
    lines
}

/// Whether only a line break (raw or JSON-escaped) and spaces lie between.
fn adjacent(b: &[u8], end: usize, next: usize) -> bool {
    let gap = &b[end..next];
    gap.len() <= 4 && gap.iter().all(|c| matches!(c, b'\n' | b'\r' | b' ' | b'\\')) || gap == b"\\n" || gap == b"\\r\\n"
}

fn scan_mrz(text: &str, out: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    if memmem::find(b, b"<<").is_none() {
        return;
    }
    let lines = mrz_lines(b);
    let mut i = 0;
    while i < lines.len() {
        let (s, e) = lines[i];
        let len = e - s;
        let next = lines
            .get(i + 1)
            .copied()
            .filter(|&(ns, ne)| ne - ns == len && adjacent(b, e, ns));
        match (len, next) {
            (44, Some((ns, ne))) if td3_line2_ok(&b[ns..ne]) => {
                out(s, ne);
                i += 2;
                continue;
            }
            (36, Some((ns, ne))) if td2_line2_ok(&b[ns..ne]) => {
                out(s, ne);
                i += 2;
                continue;
            }
            (30, Some((ns, ne))) if td1_ok(&b[s..e], &b[ns..ne]) => {
                let third = lines
                    .get(i + 2)
                    .copied()
                    .filter(|&(ts, te)| te - ts == 30 && adjacent(b, ne, ts));
                out(s, third.map_or(ne, |t| t.1));
                i += if third.is_some() { 3 } else { 2 };
                continue;
            }
            (44, _) if td3_line2_ok(&b[s..e]) => out(s, e),
            (36, _) if td2_line2_ok(&b[s..e]) => out(s, e),
            _ => {}
        }
        i += 1;
    }
}

/// A passport number's shape: 7–9 letters and digits, at least five
/// digits, at most three letters; all digits only at nine (US, UK).
fn number_shape(t: &[u8]) -> bool {
    let digits = t.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = t.iter().filter(|c| c.is_ascii_alphabetic()).count();
    (7..=9).contains(&t.len())
        && digits + letters == t.len()
        && digits >= 5
        && letters <= 3
        && (letters > 0 || t.len() == 9)
}

/// Alphanumeric tokens of `b[from..to]` (bounded by non-alphanumerics).
fn alnum_tokens(b: &[u8], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut i = from;
    while i < to {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] >= 0x80) {
            i += 1;
        }
        v.push((s, i));
    }
    v
}

fn scan_numbers(text: &str, out: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let mut last_end = 0;
    for m in KEYWORD_AUTOMATON.find_iter(text) {
        // After the keyword: up to five tokens (`number`, `no.`, `n°`, `is`).
        let to = text.ceil_char_boundary((m.end() + 48).min(b.len()));
        let after = alnum_tokens(b, m.end(), to);
        // `passport.authenticate(…)`, `passport-jwt`: code, not a document.
        if b.get(m.end()).is_some_and(|&c| c == b'.' || c == b'_' || c == b'(') {
            continue;
        }
        let shaped = |&(s, e): &(usize, usize)| number_shape(&b[s..e]);
        let mut hits: Vec<(usize, usize)> = after.iter().take(6).copied().filter(shaped).collect();
        if hits.is_empty() {
            let from = text.floor_char_boundary(m.start().saturating_sub(40));
            hits.extend(alnum_tokens(b, from, m.start()).into_iter().rev().take(5).find(shaped));
        }
        for (s, e) in hits {
            if s >= last_end
                && (s == 0 || !matches!(b[s - 1], b'-' | b'.' | b'_' | b'/'))
                && (e >= b.len()
                    || !(matches!(b[e], b'-' | b'_' | b'/')
                        || b[e] == b'.' && b.get(e + 1).is_some_and(u8::is_ascii_digit)))
            {
                out(s, e);
                last_end = e;
            }
        }
    }
}

/// Every passport number and machine-readable zone in `text`.
pub(crate) fn scan_passports(text: &str, mut out: impl FnMut(usize, usize)) {
    scan_mrz(text, &mut out);
    scan_numbers(text, &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        scan_passports(text, |s, e| v.push(&text[s..e]));
        v
    }

    // ICAO 9303 part 4 specimen (Anna Maria Eriksson, Utopia).
    const TD3: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";
    // ICAO 9303 part 5 specimen (TD1).
    const TD1: &str = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<";

    #[test]
    fn check_digits_follow_icao_9303() {
        assert_eq!(check_digit(b"L898902C3"), Some(b'6'));
        assert_eq!(check_digit(b"740812"), Some(b'2'));
        assert_eq!(check_digit(b"120415"), Some(b'9'));
        assert_eq!(check_digit(b"D23145890"), Some(b'7'));
        assert_eq!(check_digit(b"C01X00T4"), Some(b'1'));
        assert_eq!(check_digit(b"ab"), None);
        assert!(td3_line2_ok(TD3.split('\n').nth(1).unwrap().as_bytes()));
        assert!(!td3_line2_ok(b"L898902C37UTO7408122F1204159ZE184226B<<<<<10"));
    }

    #[test]
    fn machine_readable_zones_with_valid_check_digits_are_passports() {
        assert_eq!(found(&format!("scan:\n{TD3}\nend")), vec![TD3]);
        assert_eq!(found(TD1), vec![TD1]);
        let escaped = TD3.replace('\n', "\\n");
        assert_eq!(found(&escaped), vec![escaped.as_str()]);
        // A wrong check digit is not a zone.
        assert!(found(&TD3.replace("C36", "C37")).is_empty());
    }

    #[test]
    fn numbers_near_a_passport_keyword_are_passports() {
        assert_eq!(found("Passport number: 123456789"), vec!["123456789"]);
        assert_eq!(found("Reisepass C01X00T41 ausgestellt"), vec!["C01X00T41"]);
        assert_eq!(found("numéro de passeport 12AB34567"), vec!["12AB34567"]);
        assert_eq!(found("Mi pasaporte es AAA123456"), vec!["AAA123456"]);
        assert_eq!(found("AAA123456 es mi número de pasaporte"), vec!["AAA123456"]);
        assert_eq!(found("passaporto n. YA1234567"), vec!["YA1234567"]);
    }

    #[test]
    fn code_and_unrelated_numbers_are_not_passports() {
        for neg in [
            "passport.authenticate('local', 12345678)",
            "npm i passport@0.7.0 passport-jwt",
            "order 123456789 shipped",
            "passport photo size 35x45",
            "passport expires 2030-01-01",
        ] {
            assert!(found(neg).is_empty(), "{neg}: {:?}", found(neg));
        }
    }
}
