//! Postal street addresses: a small grammar per language family.
//!
//! - number first (en, fr): `221B Baker Street`, `1600 Pennsylvania Ave NW`,
//!   `12 rue de la Paix`, then optionally `, Apt 4`, a city, a state and a
//!   ZIP or a UK postcode;
//! - street word first (es, it, pt, fr): `Calle Mayor 5`, `Via Roma, 12`,
//!   `Rua Augusta 100`, `Avenida da Liberdade 110`;
//! - compound street (de, nl): `Hauptstraße 5`, `Berliner Straße 12a`,
//!   `Keizersgracht 123`, `Dorpsstraat 4-2`;
//!
//! each optionally followed by a postcode and a city (`10115 Berlin`,
//! `1012 AB Amsterdam`, `75002 Paris`, `28013 Madrid`).
//!
//! Cost: an Aho-Corasick pass finds the street words (case-insensitive);
//! the grammar (one linear regex, no backtracking) runs only in a window
//! around each hit. Bounded length: at most four name words per street.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// Street words of the number-first grammar (whole words).
const EN_WORDS: &[&str] = &[
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Lane",
    "Ln",
    "Boulevard",
    "Blvd",
    "Drive",
    "Dr",
    "Way",
    "Court",
    "Ct",
    "Place",
    "Pl",
    "Terrace",
    "Square",
    "Sq",
    "Parkway",
    "Pkwy",
    "Highway",
    "Hwy",
    "Circle",
    "Crescent",
    "Close",
    "Row",
    "Trail",
    "Alley",
    "Plaza",
    "Gardens",
    "Grove",
    "Walk",
    "Mews",
    "Loop",
    "Streets",
    "Squares",
];
/// Street words that start the street (es, it, pt, fr, nl, de).
const LEAD_WORDS: &[&str] = &[
    "rue",
    "avenue",
    "boulevard",
    "bd",
    "chemin",
    "place",
    "allée",
    "allee",
    "impasse",
    "quai",
    "route",
    "cours",
    "calle",
    "avenida",
    "avda",
    "plaza",
    "paseo",
    "camino",
    "carrer",
    "carrera",
    "ronda",
    "via",
    "viale",
    "piazza",
    "piazzale",
    "corso",
    "largo",
    "vicolo",
    "rua",
    "travessa",
    "praça",
    "praca",
    "estrada",
    "alameda",
];
/// Street words glued to or following the street's name (de, nl).
const SUFFIX_WORDS: &[&str] = &[
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "damm", "ufer", "chaussee", "straat", "laan",
    "plein", "gracht", "kade", "singel", "dijk", "steeg",
];

static PREFILTER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let words: Vec<&str> = EN_WORDS.iter().chain(LEAD_WORDS).chain(SUFFIX_WORDS).copied().collect();
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(words)
        .expect("street words automaton builds")
});

/// The grammar per family: number first (en), street word first
/// (fr/es/it/pt), compound or separate suffix (de/nl). Letters are Latin,
/// Greek and Cyrillic ranges instead of Unicode classes: small automata,
/// fast windows.
static GRAMMARS: LazyLock<[Regex; 3]> = LazyLock::new(|| {
    const UP: &str = "A-ZÀ-ÖØ-ÞĀ-ɏΆ-ώЀ-ӿḀ-ỿ";
    const LO: &str = "a-zß-öø-ÿĀ-ɏΆ-ώЀ-ӿḀ-ỿ";
    let letter = "[A-Za-zÀ-ÖØ-öø-ÿĀ-ɏΆ-ώЀ-ӿḀ-ỿ]";
    // A capitalised word of a street's name, or an ordinal (`5th`).
    let w = format!(r"(?:[{UP}][A-Za-zÀ-ÖØ-öø-ÿĀ-ɏΆ-ώЀ-ӿḀ-ỿ'’\-]*\.?|[0-9]{{1,3}}(?:st|nd|rd|th))");
    let num = r"[0-9]{1,5}[A-Za-z]?(?:[\-/][0-9]{1,5}[A-Za-z]?)?";
    let en = EN_WORDS.join("|");
    let lead = LEAD_WORDS.join("|");
    let link = r"(?:(?:de|del|della|dei|degli|delle|di|da|do|dos|das|du|des|la|le|les|los|las|van|der|den)\s|d['’]|dell['’]|l['’])";
    let unit = r"(?:,?\s(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|#)\.?\s?#?[0-9A-Za-z\-]{1,6})";
    let city = format!(
        r"(?:[{UP}][{LO}][A-Za-zÀ-ÖØ-öø-ÿĀ-ɏΆ-ώЀ-ӿḀ-ỿ'’\-]*(?:\s[{UP}][{LO}][A-Za-zÀ-ÖØ-öø-ÿĀ-ɏΆ-ώЀ-ӿḀ-ỿ'’\-]*){{0,2}})"
    );
    let post_tail =
        format!(r"(?:,?\s(?:(?:[A-Z]{{1,2}}-)?[0-9]{{4,5}}(?:-[0-9]{{3,4}})?|[0-9]{{4}}\s?[A-Z]{{2}})\s{city})?");
    let uk_post = r"[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][A-Z]{2}";
    let us_tail = format!(
        r"(?:,\s{city}(?:,?\s(?:{uk_post}|[A-Z]{{2}}\b(?:\s[0-9]{{5}}(?:-[0-9]{{4}})?)?|[0-9]{{5}}))?|,?\s{uk_post})?"
    );
    let number_first =
        format!(r"{num},?\s(?:{w}\s){{1,4}}(?:{en})\b\.?(?:\s(?:N|S|E|W|NE|NW|SE|SW)\b)?{unit}?{us_tail}");
    let fr_number_first = format!(
        r"[0-9]{{1,4}}(?:\s?(?:bis|ter|[A-Za-z]))?,?\s(?i:{lead})\.?\s{link}{{0,2}}{w}(?:\s{link}{{0,2}}{w}){{0,3}}{post_tail}"
    );
    let lead_first = format!(
        r"(?:{lead_title})\.?\s{link}{{0,2}}{w}(?:\s{link}{{0,2}}{w}){{0,3}},?\s(?:n\.?[º°o]?\.?\s?)?{num}(?:,?\s[0-9]{{1,2}}[º°ª]\s?[A-Za-z]?)?{post_tail}",
        lead_title = LEAD_WORDS
            .iter()
            .map(|l| {
                let mut c = l.chars();
                let first = c.next().expect("word").to_uppercase().collect::<String>();
                format!("{first}{}", c.as_str())
            })
            .collect::<Vec<_>>()
            .join("|")
    );
    let suffix = SUFFIX_WORDS
        .iter()
        .map(|s| regex::escape(s))
        .collect::<Vec<_>>()
        .join("|");
    let compound = format!(r"(?:{w}\s)?[{UP}](?:{letter}|-){{2,}}(?i:{suffix})\.?\s{num}{post_tail}");
    let separate =
        format!(r"(?:{w}\s)?{w}\s(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Damm|Ufer|Chaussee)\s{num}{post_tail}");
    let re = |p: String| Regex::new(&p).expect("address grammar compiles");
    [
        re(number_first),
        re(format!("{fr_number_first}|{lead_first}")),
        re(format!("{compound}|{separate}")),
    ]
});

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Every street address in `text`: `(start, end)` byte ranges.
pub(crate) fn scan_addresses(text: &str, mut out: impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    // Merged windows around street words that stand on their own (or, for
    // the de/nl suffixes, end a word).
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for m in PREFILTER.find_iter(text) {
        let (s, e) = (m.start(), m.end());
        let pattern = m.pattern().as_usize();
        let suffix = pattern >= EN_WORDS.len() + LEAD_WORDS.len();
        let left = s == 0 || !word_byte(b[s - 1]) || escaped(b, s);
        let right = e >= b.len() || !word_byte(b[e]) || b[e - 1] == b'.';
        if !(right && (left || suffix)) {
            continue;
        }
        // The street's number is within a few words on either side.
        let from = text.floor_char_boundary(s.saturating_sub(96));
        let to = text.ceil_char_boundary((e + 96).min(text.len()));
        if !b[from..to].iter().any(u8::is_ascii_digit) {
            continue;
        }
        match windows.last_mut() {
            Some(w) if w.1 >= from => w.1 = to,
            _ => windows.push((from, to)),
        }
    }
    // Every family's grammar in every window: street words are shared
    // (`avenue`, `place`, `plaza`, `allee`) and the automata are small.
    for (from, to) in windows {
        for grammar in GRAMMARS.iter() {
            let mut last_end = 0;
            for m in grammar.find_iter(&text[from..to]) {
                let (s, e) = (from + m.start(), from + m.end());
                if s < last_end || e - s < 6 {
                    continue;
                }
                // Numbers glued to words, code or versions are not house
                // numbers (the letter of a JSON escape, `\n12 Main St`, is).
                if s > 0
                    && !escaped(b, s)
                    && (word_byte(b[s - 1]) || matches!(b[s - 1], b'.' | b'-' | b'_' | b'/' | b'#' | b'$' | b'='))
                {
                    continue;
                }
                let e = trim_end(text, s, e);
                out(s, e);
                last_end = e;
            }
        }
    }
}

/// `b[s]` follows the letter of a JSON escape (`\nCalle`).
fn escaped(b: &[u8], s: usize) -> bool {
    s >= 2 && b[s - 2] == b'\\' && matches!(b[s - 1], b'n' | b't' | b'r')
}

fn trim_end(text: &str, s: usize, mut e: usize) -> usize {
    while e > s && matches!(text.as_bytes()[e - 1], b' ' | b',' | b'\'' | b'-') {
        e -= 1;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        scan_addresses(text, |s, e| v.push(&text[s..e]));
        v
    }

    #[test]
    fn english_addresses_with_unit_city_state_and_zip_are_found() {
        assert_eq!(
            found("ship to 1600 Pennsylvania Ave NW, Washington, DC 20500 today"),
            vec!["1600 Pennsylvania Ave NW, Washington, DC 20500"]
        );
        assert_eq!(
            found("lives at 221B Baker Street, London NW1 6XE."),
            vec!["221B Baker Street, London NW1 6XE"]
        );
        assert_eq!(found("\"address\": \"1668 Glyn St\""), vec!["1668 Glyn St"]);
        assert_eq!(found("42 Main St Apt 4B"), vec!["42 Main St Apt 4B"]);
    }

    #[test]
    fn european_street_first_and_compound_forms_are_found() {
        assert_eq!(
            found("Hauptstraße 5, 10115 Berlin"),
            vec!["Hauptstraße 5, 10115 Berlin"]
        );
        assert_eq!(found("wohnt Berliner Straße 12a"), vec!["Berliner Straße 12a"]);
        assert_eq!(
            found("12 rue de la Paix, 75002 Paris"),
            vec!["12 rue de la Paix, 75002 Paris"]
        );
        assert_eq!(
            found("Calle Mayor 5, 28013 Madrid"),
            vec!["Calle Mayor 5, 28013 Madrid"]
        );
        assert_eq!(found("Via Roma, 12"), vec!["Via Roma, 12"]);
        assert_eq!(found("Rua Augusta 100"), vec!["Rua Augusta 100"]);
        assert_eq!(found("Avenida da Liberdade 110"), vec!["Avenida da Liberdade 110"]);
        assert_eq!(
            found("Keizersgracht 123, 1015 CJ Amsterdam"),
            vec!["Keizersgracht 123, 1015 CJ Amsterdam"]
        );
        assert_eq!(found("Dorpsstraat 4"), vec!["Dorpsstraat 4"]);
    }

    #[test]
    fn code_versions_and_prose_are_not_addresses() {
        for neg in [
            "sent via Slack 3 times",
            "Spring 5 and Spring Boot 3.2",
            "step 3 way forward",
            "let st = 5; x.street(2)",
            "use version 1.2 Street",
            "Chapter 4: the road ahead",
            "2 ways to go",
        ] {
            assert!(found(neg).is_empty(), "{neg}: {:?}", found(neg));
        }
    }
}
