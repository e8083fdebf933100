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
//! `1012 AB Amsterdam`, `75002 Paris`, `28013 Madrid`). Nordic, Finnish,
//! Baltic, Hungarian and Slavic street words count too (`Koskikatu 25`,
//! `Rákóczi út 13`, `ul. Narewska 94`).
//!
//! Then `blocks`: the lines of a postal block after a street (unit, city,
//! region, country, postcode), and addresses with no street word (military
//! APO/FPO/DPO, a street line above a unit or a `Country 12345` line, an
//! intersection, a street after an address cue).
//!
//! Cost: an Aho-Corasick pass finds the street words (case-insensitive);
//! the grammar (one linear regex, no backtracking) runs only in a window
//! around each hit. Bounded length: at most four name words per street.
//! The block anchors run only where a unit word, a line ending in a
//! postcode or a cue word is.

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
    // pl, ro, cs/sk, hr.
    "ul.",
    "al.",
    "ulica",
    "aleja",
    "strada",
    "aleea",
    "bulevardul",
    "calea",
];
/// Street words glued to or following the street's name (de, nl).
/// Also the Nordic, Finnish, Baltic and Icelandic ones (Faker's street
/// suffixes for those locales, and what their postal services print):
/// `Koskikatu 25`, `Östbygatan 14`, `Vesterskovvej 79`, `Beiteveien 2`.
const SUFFIX_WORDS: &[&str] = &[
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "damm", "ufer", "chaussee", "straat", "laan",
    "plein", "gracht", "kade", "singel", "dijk", "steeg", "baan", "katu", "tie", "kuja", "polku", "gatan", "vägen",
    "stigen", "gränd", "torget", "gade", "vej", "stræde", "veien", "vegen", "gata", "gaten", "braut", "vegur",
    "stígur", "iela", "tänav",
];

/// Street words written apart and lowercase after the street's name (hu,
/// cs, sk, pl, hr, Nordic): `Rákóczi út 13`, `Stensås terrasse 38`.
const AFTER_WORDS: &str = "út|utca|tér|köz|körút|sétány|kapu|ulice|třída|náměstí|ulica|cesta|terrasse|vej|gade|allé|vei|veien|gata|gate|vägen|gatan|tie|katu|kuja|iela";

static PREFILTER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let words: Vec<&str> = EN_WORDS
        .iter()
        .chain(LEAD_WORDS)
        .chain(SUFFIX_WORDS)
        .copied()
        .chain(AFTER_WORDS.split('|'))
        .collect();
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
        r"(?:{lead_title})\.?\s{link}{{0,2}}{w}(?:\s{link}{{0,2}}{w}){{0,3}},?\s(?:n\.?[º°o]?\.?\s?)?{num}(?:,?\s[0-9]{{1,2}}[º°ª]\s?[A-Za-z]?)?{unit}?{post_tail}",
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
    let compound = format!(r"(?:{w}\s)?[{UP}](?:{letter}|-){{2,}}(?i:{suffix})\.?\s{num}{unit}?{post_tail}");
    let separate = format!(
        r"(?:{w}\s)?{w}\s(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Damm|Ufer|Chaussee|Baan|{AFTER_WORDS})\.?\s{num}\.?{unit}?{post_tail}"
    );
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
        // Compound suffixes end a word (`Koskikatu`); the separate words
        // after a street's name (`út`, `gate`) stand alone.
        let suffix = (EN_WORDS.len() + LEAD_WORDS.len()..EN_WORDS.len() + LEAD_WORDS.len() + SUFFIX_WORDS.len())
            .contains(&pattern);
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
    let mut spans: Vec<(usize, usize)> = Vec::new();
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
                spans.push((s, e));
                last_end = e;
            }
        }
    }
    blocks::anchored(text, &mut spans);
    spans.sort_unstable();
    let mut last: Option<(usize, usize)> = None;
    for (s, e) in spans {
        let (s, e) = (blocks::extend_back(text, s), blocks::extend_forward(text, e));
        match last.as_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => {
                if let Some((ls, le)) = last.take() {
                    out(ls, le);
                }
                last = Some((s, e));
            }
        }
    }
    if let Some((ls, le)) = last {
        out(ls, le);
    }
}

/// Postal blocks: the lines after a street (unit, city, region, country,
/// postcode), and addresses found without a street word: military
/// (`PSC 0413, Box 8144 / APO AA 42323`), a street line above a unit or a
/// `Country 12345` line, a street after an address cue, an intersection.
mod blocks {
    use std::collections::HashSet;
    use std::sync::LazyLock;

    use regex::Regex;

    static COUNTRIES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        include_str!("../../data/names/countries.txt")
            .lines()
            .filter(|l| !l.is_empty())
            .collect()
    });

    const CITY: &str =
        r"\p{Lu}[\p{L}'’.\-]*(?:\s(?:\p{Lu}[\p{L}'’.\-]*|\([\p{L} ]+\)|de|la|do|da|am|an|upon|sur)){0,3}";

    /// One line or comma segment of a postal block after the street.
    static PART: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            r"^(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Room)\.?\s?#?[0-9]{{1,5}}[A-Za-z]?|(?:PSC|CMR|Unit)\s[0-9]{{3,5}},?\sBox\s[0-9]{{3,5}}|(?:APO|FPO|DPO)\s(?:AA|AE|AP)\s[0-9]{{5}}|[0-9]{{3,6}}(?:-[0-9]{{3,4}})?|[A-Z]{{2}}\.?|[0-9]{{4,5}}\s{CITY}|{CITY}(?:,?\s[A-Z]{{2}}\.?)?(?:\s[0-9]{{3,6}}(?:-[0-9]{{4}})?)?)$"
        ))
        .expect("postal part regex compiles")
    });

    /// A unit line that anchors a block when a street line is above it.
    static UNIT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^[\t >]*(?:Apt|Apartment|Suite|Unit|Flat)\.?\s?#?[0-9]{1,5}[A-Za-z]?\s*$")
            .expect("unit regex compiles")
    });

    /// `Estonia 62488`, `United Kingdom 75419`: a listed country and a postcode.
    static COUNTRY_POST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^[\t >]*(\p{Lu}[\p{L} ]{2,40}?)(?:\s\([\p{L} ]+\))?\s[0-9]{3,6}\s*$")
            .expect("country regex compiles")
    });

    /// A street line without a street word: a name and a house number
    /// (`Allika 46`, `ul. Narewska 94`), maybe after a building number.
    static STREET_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:[0-9]{1,6}\s)?(?:(?:ul|al|u)\.\s)?\p{Lu}[\p{L}'’.\-]*(?:\s[\p{L}'’.\-]+){0,3}\s[0-9]{1,5}[A-Za-z]?\.?(?:\s(?:Apt|Suite|Unit)\.?\s[0-9]{1,5})?$|^[0-9]{1,6}\s\p{Lu}[\p{L}'’\-]+(?:\s\p{Lu}[\p{L}'’\-]+){0,2}$")
            .expect("street line regex compiles")
    });

    static MILITARY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:(?:PSC|CMR|Unit)\s[0-9]{3,5},?\sBox\s[0-9]{3,5}|(?:USS|USNS|USNV|USCGC)\s\p{Lu}\p{Ll}+(?:\s\p{Lu}\p{Ll}+)?)[\t ,]*(?:\r?\n|\\n)?[\t >]*(?:APO|FPO|DPO)\s(?:AA|AE|AP)\s[0-9]{5}")
            .expect("military regex compiles")
    });

    /// Phrases after which a street line is an address (`lives at`,
    /// `billing address with`, `send a new one to`).
    static CUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(?:address(?:es)?(?:\s(?:is|to|with|of\s[^,.\n]{1,40}\sis))?:?|lives?\s(?:at|on)|located\sat|return\s(?:it\s)?to|send\s(?:it|them|a\snew\sone|the\s\w+)\sto|ship\s(?:it\s)?to|deliver(?:ed)?\sto|moved\sto|stop\sat|meet\s(?:you|me)\sat)[\t ]*(?:\r?\n|\\n)?[\t ]*")
            .expect("cue regex compiles")
    });

    /// The first word of every cue, for the prefilter.
    static CUE_WORDS: LazyLock<aho_corasick::AhoCorasick> = LazyLock::new(|| {
        aho_corasick::AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build([
                "address", "lives ", "live ", "located ", "return ", "send ", "ship ", "deliver", "moved ", "stop ",
                "meet ",
            ])
            .expect("cue words automaton builds")
    });

    static CORNER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:[Tt]he\s)?corner\sof\s(?:[\p{L}0-9'’.\-]+\s){1,5}and\s\p{Lu}[\p{L}'’.\-]*(?:\s\p{Lu}[\p{L}'’.\-]*){0,3}")
            .expect("corner regex compiles")
    });

    fn trim_quote(line: &str) -> (usize, &str) {
        let t = line.trim_start_matches([' ', '\t', '>']);
        (line.len() - t.len(), t.trim_end())
    }

    fn street_line_at(text: &str, line_start: usize, line_end: usize) -> Option<usize> {
        let (skip, t) = trim_quote(&text[line_start..line_end]);
        (!t.is_empty() && STREET_LINE.is_match(t)).then_some(line_start + skip)
    }

    /// Start of the line above the one starting at `line_start` (skipping
    /// one blank line), with its end.
    fn previous_line(text: &str, line_start: usize) -> Option<(usize, usize)> {
        let mut end = line_start.checked_sub(1)?;
        if text.as_bytes().get(end) != Some(&b'\n') {
            return None;
        }
        for _ in 0..2 {
            let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
            if !text[start..end].trim().is_empty() {
                return Some((start, end));
            }
            end = start.checked_sub(1)?;
        }
        None
    }

    pub(super) fn anchored(text: &str, spans: &mut Vec<(usize, usize)>) {
        let b = text.as_bytes();
        let has = |w: &str| memchr::memmem::find(b, w.as_bytes()).is_some();
        if has("APO ") || has("FPO ") || has("DPO ") {
            spans.extend(MILITARY.find_iter(text).map(|m| (m.start(), m.end())));
        }
        if has("corner of") {
            spans.extend(CORNER.find_iter(text).map(|m| (m.start(), m.end())));
        }
        // A unit line or a country-and-postcode line with a street line
        // above. The regexes run only on lines that can match: a unit word
        // somewhere, a line ending in a postcode.
        let mut anchors: Vec<usize> = Vec::new();
        if ["Apt", "Suite", "Unit", "Flat"].iter().any(|w| has(w)) {
            anchors.extend(UNIT.find_iter(text).map(|m| m.start()));
        }
        let mut line_start = 0;
        for nl in memchr::memchr_iter(b'\n', b).chain(std::iter::once(b.len())) {
            let line = text[line_start..nl].trim_end();
            let digits = line.len() - line.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if (3..=6).contains(&digits) && line.len() > digits && line.as_bytes()[line.len() - digits - 1] == b' ' {
                if let Some(c) = COUNTRY_POST.captures(line) {
                    if COUNTRIES.contains(c[1].trim()) {
                        anchors.push(line_start + c.get(0).expect("whole").start());
                    }
                }
            }
            line_start = nl + 1;
        }
        anchors.sort_unstable();
        for at in anchors {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let mut cursor = line_start;
            for _ in 0..4 {
                let Some((s, e)) = previous_line(text, cursor) else {
                    break;
                };
                if let Some(street) = street_line_at(text, s, e) {
                    spans.push((street, e));
                    break;
                }
                // Only other postal parts may sit between.
                let (_, t) = trim_quote(&text[s..e]);
                if !PART.is_match(t) {
                    break;
                }
                cursor = s;
            }
        }
        // A street line right after a cue: the cue regex runs only from a
        // cue word on.
        let mut cue_from = 0;
        for hit in CUE_WORDS.find_iter(text) {
            if hit.start() < cue_from {
                continue;
            }
            let from = text.floor_char_boundary(hit.start().saturating_sub(1));
            let to = text.ceil_char_boundary((hit.start() + 200).min(text.len()));
            if let Some(m) = CUE.find(&text[from..to]).filter(|m| m.start() <= 1) {
                let m_end = from + m.end();
                cue_from = m_end;
                let rest = &text[m_end..];
                let stop = rest.find(['\n', ',', '?', '!', ';']).unwrap_or(rest.len()).min(80);
                let stop = rest.floor_char_boundary(stop);
                let lead = stop - rest[..stop].trim_start_matches("the ").len();
                let from = m_end + lead;
                if let Some(found) = STREET_PREFIX.find(&rest[lead..stop]) {
                    let first = found
                        .as_str()
                        .split(' ')
                        .find(|w| !w.bytes().all(|b| b.is_ascii_digit()));
                    if first.is_some_and(|w| !NOT_STREETS.contains(&w.trim_end_matches('.'))) {
                        spans.push((from, from + found.end()));
                    }
                }
            }
        }
    }

    /// Words that take a number in documents and code, never streets:
    /// `return to Step 3`, `moved to Python 3`, `located at Line 12`.
    const NOT_STREETS: &[&str] = &[
        "Step",
        "Section",
        "Chapter",
        "Page",
        "Line",
        "Lines",
        "Item",
        "Part",
        "Phase",
        "Stage",
        "Level",
        "Round",
        "Task",
        "Issue",
        "Table",
        "Figure",
        "Fig",
        "Appendix",
        "Option",
        "Rule",
        "Test",
        "Case",
        "Column",
        "Row",
        "Port",
        "Version",
        "Release",
        "Build",
        "Sprint",
        "Milestone",
        "Day",
        "Week",
        "Year",
        "Slide",
        "Question",
        "Exercise",
        "Episode",
        "Season",
        "Volume",
        "Vol",
        "Python",
        "Java",
        "Node",
        "Ruby",
        "Perl",
        "PHP",
        "Go",
        "Rust",
        "Swift",
        "Kotlin",
        "Scala",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Windows",
        "Android",
        "iOS",
        "macOS",
        "React",
        "Angular",
        "Vue",
        "Next",
        "Django",
        "Rails",
        "Spring",
        "Postgres",
        "PostgreSQL",
        "MySQL",
        "Redis",
        "Kubernetes",
        "Docker",
        "Terminal",
        "Tab",
        "Window",
        "Node",
        "Gen",
        "Tier",
        "Plan",
        "Model",
        "Claude",
        "Opus",
        "Sonnet",
        "Haiku",
        "Gemini",
        "GPT",
    ];

    static STREET_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^(?:[0-9]{1,6}\s)?(?:(?:ul|al|u)\.\s)?\p{Lu}[\p{L}'’.\-]*(?:\s[\p{L}'’.\-]+){0,3}\s[0-9]{1,5}[A-Za-z]?\b",
        )
        .expect("street prefix regex compiles")
    });

    /// A bare building number before the street on its line (`6750 Koskikatu 25`).
    pub(super) fn extend_back(text: &str, s: usize) -> usize {
        let head = &text[..s];
        let t = head.trim_end_matches([' ', '\t']);
        if t.len() == head.len() {
            return s;
        }
        let digits = t.len() - t.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if (1..=6).contains(&digits) {
            let start = t.len() - digits;
            let before = t[..start].chars().last();
            if before.is_none_or(|c| matches!(c, ' ' | '\t' | '\n' | '>' | ':')) {
                return start;
            }
        }
        s
    }

    /// Take the following lines or comma segments while they read as
    /// postal parts (at most six, one blank line allowed).
    pub(super) fn extend_forward(text: &str, mut e: usize) -> usize {
        for _ in 0..6 {
            let rest = &text[e..];
            let mut i = 0;
            let rb = rest.as_bytes();
            let mut seps = 0;
            let mut newlines = 0;
            loop {
                match rb.get(i) {
                    Some(b' ' | b'\t' | b'>' | b'\r') => i += 1,
                    Some(b',') => {
                        seps += 1;
                        i += 1
                    }
                    Some(b'\n') => {
                        seps += 1;
                        newlines += 1;
                        i += 1
                    }
                    Some(b'\\') if rb.get(i + 1) == Some(&b'n') => {
                        seps += 1;
                        newlines += 1;
                        i += 2
                    }
                    _ => break,
                }
            }
            if seps == 0 || newlines > 3 {
                break;
            }
            let seg_end = rest[i..].find(['\n', ',', '\\']).map_or(rest.len(), |j| i + j);
            let seg = rest[i..seg_end].trim_end_matches([' ', '\t', '\r', '.']);
            if seg.is_empty() || seg.len() > 48 || !PART.is_match(seg) {
                break;
            }
            e += i + seg.len();
        }
        e
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
    fn postal_blocks_take_their_unit_city_region_country_and_postcode_lines() {
        assert_eq!(
            found("The address of Persint is 6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677"),
            vec!["6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677"]
        );
        assert_eq!(
            found("> Alma Jensen\n> 91215 Harjukuja 54\n> Suite 318\n> SEINÄJOKI\n> Finland 38524"),
            vec!["91215 Harjukuja 54\n> Suite 318\n> SEINÄJOKI\n> Finland 38524"]
        );
        // No street word: the unit and country lines below make it a street.
        assert_eq!(
            found("William Hughes\n\n20789 Allika 46\n Suite 501\n Riisa\n\n Estonia 62488"),
            vec!["20789 Allika 46\n Suite 501\n Riisa\n\n Estonia 62488"]
        );
        assert_eq!(
            found(r#"{"note": "Rákóczi út 13. Suite 104 Veszprém"}"#),
            vec!["Rákóczi út 13. Suite 104"]
        );
    }

    #[test]
    fn military_addresses_intersections_and_streets_after_a_cue_are_found() {
        assert_eq!(
            found("located at PSC 9009, Box 9725\nAPO AA 33274. It serves"),
            vec!["PSC 9009, Box 9725\nAPO AA 33274"]
        );
        assert_eq!(
            found("it is USNV Vincent\nFPO AA 68422"),
            vec!["USNV Vincent\nFPO AA 68422"]
        );
        assert_eq!(
            found("Our offices are at the corner of Östbygatan 14 and Sigurmundsson Greens"),
            vec!["the corner of Östbygatan 14 and Sigurmundsson Greens"]
        );
        assert_eq!(
            found("Cendrillon lives at 333 Golfskálinn 78, Borgarnes"),
            vec!["333 Golfskálinn 78, Borgarnes"]
        );
    }

    #[test]
    fn numbered_document_and_tool_words_after_a_cue_or_above_a_unit_are_not_addresses() {
        for neg in [
            "please return to Step 3 and retry",
            "we moved to Python 3 last year",
            "the address is 0x7fff5fbff8c8",
            "the bug is on Windows 11",
            "Suite 4\nall tests pass",
            "see the Test Suite 4 results",
        ] {
            assert!(found(neg).is_empty(), "{neg}: {:?}", found(neg));
        }
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
