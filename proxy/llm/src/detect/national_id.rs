//! National identity numbers with a check digit, so that a random number
//! of the same shape is rejected most of the time.
//!
//! Found anywhere (the format and its check are specific enough):
//! - ES DNI `12345678Z` and NIE `X1234567L` (letter = number mod 23);
//! - IT codice fiscale `RSSMRA85T10A562S` (odd/even table check letter);
//! - FI henkilötunnus `131052-308T` (a valid date, a century sign, mod 31);
//! - FR NIR `1 84 12 76 451 089 46` (sex digit, month, key = 97 − n mod 97);
//! - BE national number written `85.07.30-033.28` (mod 97, 1900s or 2000s).
//!
//! Only after a keyword (pure digits are too common otherwise):
//! - NL BSN (9 digits, the "11-proef"), PL PESEL (11 digits, weights
//!   1-3-7-9), SE personnummer (a date and a Luhn digit), NO
//!   fødselsnummer (two mod-11 digits), DE Steuer-ID (ISO 7064 mod 11,10),
//!   UK National Insurance number (prefix rules; no check digit).
//!
//! Cost: the anywhere-formats run one ASCII regex over the text (when it
//! holds two digits in a row); the keyword formats run only in a window
//! after an Aho-Corasick keyword hit.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

static ANYWHERE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:",
        r"(?P<dni>[0-9]{8}[A-Z])",
        r"|(?P<nie>[XYZ][0-9]{7}[A-Z])",
        r"|(?P<cf>[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z])",
        r"|(?P<hetu>[0-3][0-9][01][0-9][0-9]{2}[-+ABCDEFUVWXY][0-9]{3}[0-9A-Y])",
        r"|(?P<nir>[12] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2})",
        r"|(?P<be>[0-9]{2}\.[0-9]{2}\.[0-9]{2}-[0-9]{3}\.[0-9]{2})",
        r")(?-u:\b)"
    ))
    .expect("national id regex compiles")
});

/// Keyword formats: the number within a few words after the keyword.
static AFTER_KEYWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^[^0-9A-Z\n]{0,30}?(?:",
        r"(?P<digits>[0-9]{3}[ .\-]?[0-9]{2,3}[ .\-]?[0-9]{3,4}(?:[ .\-+]?[0-9]{1,4})?)",
        r"|(?P<nino>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D])",
        r")(?-u:\b)"
    ))
    .expect("national id keyword regex compiles")
});

#[derive(Clone, Copy)]
enum Keyed {
    Bsn,
    Pesel,
    Personnummer,
    Fodselsnummer,
    SteuerId,
    Nino,
}

const KEYWORDS: &[(&str, Keyed)] = &[
    ("bsn", Keyed::Bsn),
    ("burgerservicenummer", Keyed::Bsn),
    ("sofinummer", Keyed::Bsn),
    ("pesel", Keyed::Pesel),
    ("personnummer", Keyed::Personnummer),
    ("personnr", Keyed::Personnummer),
    ("fødselsnummer", Keyed::Fodselsnummer),
    ("fodselsnummer", Keyed::Fodselsnummer),
    ("steuer-id", Keyed::SteuerId),
    ("steuerid", Keyed::SteuerId),
    ("steueridentifikationsnummer", Keyed::SteuerId),
    ("national insurance", Keyed::Nino),
    ("nino", Keyed::Nino),
    ("ni number", Keyed::Nino),
];

static KEYWORD_AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(KEYWORDS.iter().map(|(k, _)| k))
        .expect("national id keywords automaton builds")
});

fn digits(s: &str) -> Vec<u32> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| (b - b'0') as u32)
        .collect()
}

fn valid_date(day: u32, month: u32) -> bool {
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

fn dni_ok(number: u32, letter: u8) -> bool {
    b"TRWAGMYFPDXBNJZSQVHLCKE"[(number % 23) as usize] == letter
}

fn codice_fiscale_ok(cf: &[u8]) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
    ];
    let mut sum = 0;
    for (i, &c) in cf[..15].iter().enumerate() {
        let v = if c.is_ascii_digit() {
            (c - b'0') as usize
        } else {
            (c - b'A') as usize
        };
        // Positions are counted from 1: odd ones use the table.
        sum += if i % 2 == 0 { ODD[v] } else { v as u32 };
    }
    cf[15] == b'A' + (sum % 26) as u8
}

fn hetu_ok(h: &str) -> bool {
    let b = h.as_bytes();
    let d = |i: usize| (b[i] - b'0') as u32;
    if !valid_date(d(0) * 10 + d(1), d(2) * 10 + d(3)) {
        return false;
    }
    let n: u32 = h[0..6].parse::<u32>().unwrap_or(0) * 1000 + h[7..10].parse::<u32>().unwrap_or(0);
    b"0123456789ABCDEFHJKLMNPRSTUVWXY"[(n % 31) as usize] == b[10]
}

fn nir_ok(n: &str) -> bool {
    let compact: String = n.chars().filter(|c| *c != ' ').collect();
    // Corsica's 2A/2B count as 19/18 for the key.
    let body = compact[..13].replace("2A", "19").replace("2B", "18");
    let (Ok(body), Ok(key)) = (body.parse::<u64>(), compact[13..].parse::<u64>()) else {
        return false;
    };
    97 - body % 97 == key
}

fn belgian_ok(n: &str) -> bool {
    let d = digits(n);
    // Month 0 is an unknown birth date; bis numbers add 20 or 40.
    if (d[2] * 10 + d[3]) % 20 > 12 {
        return false;
    }
    let body = d[..9].iter().fold(0u64, |a, &x| a * 10 + x as u64);
    let check = (d[9] * 10 + d[10]) as u64;
    // Born from 2000 on: the body is prefixed with a 2.
    97 - body % 97 == check || 97 - (2_000_000_000 + body) % 97 == check
}

fn bsn_ok(d: &[u32]) -> bool {
    d.len() == 9 && {
        let s: i64 = d[..8]
            .iter()
            .enumerate()
            .map(|(i, &x)| (9 - i as i64) * x as i64)
            .sum::<i64>()
            - d[8] as i64;
        s % 11 == 0 && s != 0
    }
}

fn pesel_ok(d: &[u32]) -> bool {
    d.len() == 11 && {
        let w = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
        let s: u32 = d[..10].iter().zip(w).map(|(x, w)| x * w).sum();
        (10 - s % 10) % 10 == d[10] && (d[2] * 10 + d[3]) % 20 >= 1 && (d[2] * 10 + d[3]) % 20 <= 12
    }
}

fn luhn(d: &[u32]) -> bool {
    let s: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| if i % 2 == 1 { (x * 2) / 10 + (x * 2) % 10 } else { x })
        .sum();
    s % 10 == 0
}

fn personnummer_ok(d: &[u32]) -> bool {
    let d = match d.len() {
        10 => d,
        12 => &d[2..],
        _ => return false,
    };
    valid_date((d[4] * 10 + d[5]) % 60, d[2] * 10 + d[3]) && luhn(d)
}

fn fodselsnummer_ok(d: &[u32]) -> bool {
    d.len() == 11 && {
        let k = |w: &[u32], n: usize| {
            let r = 11 - d[..n].iter().zip(w).map(|(x, w)| x * w).sum::<u32>() % 11;
            if r == 11 {
                Some(0)
            } else if r == 10 {
                None
            } else {
                Some(r)
            }
        };
        k(&[3, 7, 6, 1, 8, 9, 4, 5, 2], 9) == Some(d[9]) && k(&[5, 4, 3, 2, 7, 6, 5, 4, 3, 2], 10) == Some(d[10])
    }
}

fn steuer_id_ok(d: &[u32]) -> bool {
    d.len() == 11 && d[0] != 0 && {
        let mut product = 10;
        for &x in &d[..10] {
            let mut sum = (x + product) % 10;
            if sum == 0 {
                sum = 10;
            }
            product = (sum * 2) % 11;
        }
        let check = (11 - product) % 10;
        check == d[10]
    }
}

/// Every national id number in `text`: `(start, end)` byte ranges.
pub(crate) fn scan_national_ids(text: &str, mut out: impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    // The anywhere-formats all hold two digits in a row.
    let has_run = b.windows(2).any(|w| w[0].is_ascii_digit() && w[1].is_ascii_digit());
    if has_run {
        for caps in ANYWHERE.captures_iter(text) {
            let m = caps.get(0).expect("whole");
            // Not inside a word; the letter of a JSON escape (`\n12345678Z`) is no word.
            if !super::pii::left_ok(b, m.start()) {
                continue;
            }
            let s = m.as_str();
            let ok = if caps.name("dni").is_some() {
                dni_ok(s[..8].parse().unwrap_or(0), s.as_bytes()[8])
            } else if caps.name("nie").is_some() {
                let lead = (s.as_bytes()[0] - b'X') as u32;
                dni_ok(lead * 10_000_000 + s[1..8].parse::<u32>().unwrap_or(0), s.as_bytes()[8])
            } else if caps.name("cf").is_some() {
                codice_fiscale_ok(s.as_bytes())
            } else if caps.name("hetu").is_some() {
                hetu_ok(s)
            } else if caps.name("nir").is_some() {
                nir_ok(s)
            } else {
                belgian_ok(s)
            };
            if ok {
                out(m.start(), m.end());
            }
        }
    }
    for hit in KEYWORD_AUTOMATON.find_iter(text) {
        let kind = KEYWORDS[hit.pattern().as_usize()].1;
        let from = hit.end();
        let to = text.floor_char_boundary((from + 80).min(text.len()));
        let Some(caps) = AFTER_KEYWORD.captures(&text[from..to]) else {
            continue;
        };
        let (m, ok) = match (caps.name("digits"), caps.name("nino")) {
            (Some(m), _) => {
                let d = digits(m.as_str());
                let ok = match kind {
                    Keyed::Bsn => bsn_ok(&d),
                    Keyed::Pesel => pesel_ok(&d),
                    Keyed::Personnummer => personnummer_ok(&d),
                    Keyed::Fodselsnummer => fodselsnummer_ok(&d),
                    Keyed::SteuerId => steuer_id_ok(&d),
                    Keyed::Nino => false,
                };
                (m, ok)
            }
            (None, Some(m)) => (m, matches!(kind, Keyed::Nino)),
            (None, None) => continue,
        };
        if ok {
            out(from + m.start(), from + m.end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        scan_national_ids(text, |s, e| v.push(&text[s..e]));
        v
    }

    #[test]
    fn ids_with_a_valid_check_are_found_anywhere() {
        for id in [
            "12345678Z",
            "X1234567L",
            "RSSMRA85T10A562S",
            "131052-308T",
            "1 84 12 76 451 089 46",
            "85.07.30-033.28",
        ] {
            assert_eq!(found(&format!("my id is {id}, thanks")), vec![id], "{id}");
        }
    }

    #[test]
    fn the_same_shapes_with_a_wrong_check_are_not() {
        for id in [
            "12345678A",
            "X1234567A",
            "RSSMRA85T10A562T",
            "131052-308U",
            "1 84 12 76 451 089 47",
            "85.07.30-033.29",
        ] {
            assert!(found(&format!("my id is {id}, thanks")).is_empty(), "{id}");
        }
    }

    #[test]
    fn pure_digit_ids_need_their_keyword_and_a_valid_check() {
        assert_eq!(found("BSN: 111222333"), vec!["111222333"]);
        assert_eq!(found("PESEL 44051401359"), vec!["44051401359"]);
        assert_eq!(found("personnummer 811218-9876"), vec!["811218-9876"]);
        assert_eq!(found("Steuer-ID: 86095742719"), vec!["86095742719"]);
        assert_eq!(found("fødselsnummer 01010750160"), vec!["01010750160"]);
        assert_eq!(found("National Insurance number: AB 12 34 56 C"), vec!["AB 12 34 56 C"]);
        // The same numbers without a keyword, or with a wrong check.
        assert!(found("order 111222333 shipped; id 44051401359").is_empty());
        assert!(found("build A12345678Z and x12345678Z").is_empty());
        assert_eq!(found(r#"{"text": "the record says\n51349749H ok"}"#), vec!["51349749H"]);
        assert!(found("BSN: 111222334, PESEL 44051401358").is_empty());
    }
}
