//! A borrowed JSON tree that remembers where every string literal sits in the
//! source, so the pipeline can rewrite single strings and copy every other
//! byte unchanged (signed thinking blocks, number formats, key order and
//! duplicate keys all survive because they are never re-serialized).

use std::borrow::Cow;
use std::ops::Range;

/// Deeper nesting is refused (same limit as serde_json) to bound recursion.
const MAX_DEPTH: usize = 128;

/// Values in one document, at most. Each costs 32 to 64 bytes of tree (plus
/// vector slack), against as little as 2 bytes of input (`[0,0,0,...]`):
/// without a cap a 32 MiB body becomes a tree of more than a gigabyte.
/// Real requests have a few thousand to tens of thousands (long transcripts,
/// tool schemas); OpenAI caps an embeddings request at 300,000 tokens.
pub const MAX_NODES: usize = 1_000_000;

/// `JsonError::what` when a document has more than [`MAX_NODES`] values.
pub const TOO_MANY_NODES: &str =
    "the body has more than 1000000 JSON values (promptwall's limit on what it inspects); split the request";

/// A string literal in the source: `raw` is the text between the quotes.
#[derive(Debug, Clone, Copy)]
pub struct Lit<'a> {
    /// Byte offset of the opening quote.
    pub start: usize,
    pub raw: &'a str,
    pub escaped: bool,
}

impl<'a> Lit<'a> {
    /// Byte range of the whole literal, quotes included.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.raw.len() + 2
    }

    /// The decoded string value.
    pub fn decode(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        Cow::Owned(unescape(self.raw))
    }

    /// Offsets in `raw` of ascending byte offsets in the decoded string;
    /// None for an offset inside the output of one escape (mid-character)
    /// or past the end. Lets a rewrite replace a few spans of a literal and
    /// keep every other byte (and escape) as the client sent it.
    pub fn raw_offsets(&self, decoded: &[usize]) -> Vec<Option<usize>> {
        let b = self.raw.as_bytes();
        let next_escape = |from: usize| {
            if self.escaped {
                memchr::memchr(b'\\', &b[from..]).map_or(b.len(), |i| from + i)
            } else {
                b.len()
            }
        };
        // Invariant: decoding raw[..r] gives d bytes.
        let (mut r, mut d) = (0, 0);
        let mut esc = next_escape(0);
        let mut out = Vec::with_capacity(decoded.len());
        for &t in decoded {
            out.push(loop {
                if t < d {
                    break None;
                }
                if t - d <= esc - r {
                    break Some(r + (t - d));
                }
                if esc >= b.len() {
                    break None;
                }
                let (raw_len, decoded_len) = escape_lengths(&b[esc..]);
                d += esc - r + decoded_len;
                r = esc + raw_len;
                esc = next_escape(r);
            });
        }
        out
    }

    pub fn eq_str(&self, s: &str) -> bool {
        if self.escaped {
            self.decode() == s
        } else {
            self.raw == s
        }
    }
}

#[derive(Debug)]
pub enum Node<'a> {
    Obj(Vec<(Lit<'a>, Node<'a>)>),
    Arr(Vec<Node<'a>>),
    Str(Lit<'a>),
    /// Number, boolean or null.
    Scalar(Range<usize>),
}

impl<'a> Node<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            // Last one wins, like serde_json and most upstream parsers.
            Node::Obj(fields) => fields.iter().rev().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_lit(&self) -> Option<&Lit<'a>> {
        match self {
            Node::Str(l) => Some(l),
            _ => None,
        }
    }

    /// The decoded string value of `key`, if it is a string.
    pub fn str_field(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(|n| n.as_lit()).map(|l| l.decode())
    }

    /// Whether `key` is a string equal to `value`.
    pub fn field_is(&self, key: &str, value: &str) -> bool {
        self.get(key).and_then(|n| n.as_lit()).is_some_and(|l| l.eq_str(value))
    }

    /// Visit every string literal below this node (values only, not keys).
    pub fn for_each_string<'s>(&'s self, f: &mut impl FnMut(&'s Lit<'a>)) {
        match self {
            Node::Obj(fields) => fields.iter().for_each(|(_, v)| v.for_each_string(f)),
            Node::Arr(items) => items.iter().for_each(|v| v.for_each_string(f)),
            Node::Str(l) => f(l),
            Node::Scalar(_) => {}
        }
    }
}

/// Why a body is not JSON, with the position, for the client's 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} at line {line} column {column}")]
pub struct JsonError {
    pub what: &'static str,
    pub line: usize,
    pub column: usize,
}

impl JsonError {
    /// The document was refused for its size, not for its syntax.
    pub fn is_too_many_nodes(&self) -> bool {
        self.what == TOO_MANY_NODES
    }
}

const ESCAPED_KEY: &str = "an object key spells plain characters with escapes (\\u0065), which no serializer does; \
                           send keys unescaped";

/// A key whose escapes stand for printable ASCII (`"m\u0065ssages"`):
/// servers read it as `messages`, while matching the raw text would not;
/// serializers only escape quotes, backslashes, controls and non-ASCII.
fn escapes_plain_text(key: &Lit<'_>) -> bool {
    let raw = key.raw.as_bytes();
    let mut i = 0;
    while i + 1 < raw.len() {
        if raw[i] == b'\\' {
            match raw[i + 1] {
                b'/' => return true,
                b'u' if i + 6 <= raw.len() => {
                    let hex = std::str::from_utf8(&raw[i + 2..i + 6]).ok();
                    if let Some(c) = hex.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                        if (0x20..0x7f).contains(&c) && c != 0x22 && c != 0x5c {
                            return true;
                        }
                    }
                    i += 6;
                    continue;
                }
                _ => {}
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    false
}

pub fn parse(src: &str) -> Result<Node<'_>, JsonError> {
    parse_counted(src).map(|(node, _)| node)
}

/// [`parse`], also counting the document's values (what [`MAX_NODES`]
/// bounds).
pub(crate) fn parse_counted(src: &str) -> Result<(Node<'_>, usize), JsonError> {
    let mut p = Parser {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        nodes: 0,
    };
    p.ws();
    let node = p.value(0)?;
    p.ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok((node, p.nodes))
}

/// The rest of an array of `src`, read as [`parse`] reads it: from `from`,
/// just past the `[` (`after_item` false) or just past an item (`after_item`
/// true), items parsed at nesting `depth`, up to the closing `]`.
pub(crate) struct ArrayRest<'a> {
    pub items: Vec<Node<'a>>,
    /// Offset just past each item.
    pub ends: Vec<usize>,
    /// Offset of the closing `]`.
    pub close: usize,
    /// Values parsed.
    pub nodes: usize,
}

pub(crate) fn parse_array_rest(
    src: &str,
    from: usize,
    after_item: bool,
    depth: usize,
) -> Result<ArrayRest<'_>, JsonError> {
    let mut p = Parser {
        src,
        bytes: src.as_bytes(),
        pos: from,
        nodes: 0,
    };
    let mut rest = ArrayRest {
        items: Vec::new(),
        ends: Vec::new(),
        close: 0,
        nodes: 0,
    };
    p.ws();
    let mut more = match (p.bytes.get(p.pos), after_item) {
        (Some(b']'), _) => false,
        (Some(b','), true) => {
            p.pos += 1;
            true
        }
        (_, true) => return Err(p.err("expected ',' or ']' in an array")),
        (_, false) => true,
    };
    while more {
        p.ws();
        rest.items.push(p.value(depth)?);
        rest.ends.push(p.pos);
        p.ws();
        match p.bytes.get(p.pos) {
            Some(b',') => p.pos += 1,
            Some(b']') => more = false,
            _ => return Err(p.err("expected ',' or ']' in an array")),
        }
    }
    rest.close = p.pos;
    rest.nodes = p.nodes;
    Ok(rest)
}

/// Where the items of the array whose `[` is at `open` end, and where its
/// `]` is, in a document that [`parse`] accepted (None otherwise). Skips
/// values without building them.
pub(crate) fn array_layout(src: &str, open: usize) -> Option<(Vec<usize>, usize)> {
    let b = src.as_bytes();
    let ws = |mut i: usize| {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
            i += 1;
        }
        i
    };
    if b.get(open) != Some(&b'[') {
        return None;
    }
    let mut ends = Vec::new();
    let mut i = ws(open + 1);
    if b.get(i) == Some(&b']') {
        return Some((ends, i));
    }
    loop {
        i = skip_value(b, ws(i))?;
        ends.push(i);
        i = ws(i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Some((ends, i)),
            _ => return None,
        }
    }
}

/// The end of the (valid) value starting at `i`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let skip_string = |i: usize| {
        let mut j = i + 1;
        loop {
            j = next_special(b, j);
            match b.get(j)? {
                b'"' => return Some(j + 1),
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
    };
    match b.get(i)? {
        b'"' => skip_string(i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => i = skip_string(i)?,
                    b'{' | b'[' => {
                        depth += 1;
                        i += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        i += 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => i += 1,
                }
            }
        }
        _ => {
            while !matches!(b.get(i), None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            Some(i)
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &'static str) -> JsonError {
        let before = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        JsonError { what, line, column }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.err(TOO_MANY_NODES));
        }
        match self.bytes.get(self.pos) {
            None => Err(self.err("unexpected end of JSON")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Node::Str(self.string()?)),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<Node<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(word) {
            let start = self.pos;
            self.pos += word.len();
            Ok(Node::Scalar(start..self.pos))
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Node<'a>, JsonError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > s
        };
        if !digits(self) {
            return Err(self.err("invalid number"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        Ok(Node::Scalar(start..self.pos))
    }

    fn string(&mut self) -> Result<Lit<'a>, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos = next_special(self.bytes, self.pos);
            match self.bytes.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let raw = &self.src[start + 1..self.pos];
                    self.pos += 1;
                    return Ok(Lit { start, raw, escaped });
                }
                Some(b'\\') => {}
                Some(_) => return Err(self.err("control character inside a string")),
            }
            escaped = true;
            match self.bytes.get(self.pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') => {
                    let hex = self.bytes.get(self.pos + 2..self.pos + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.err("invalid \\u escape"));
                    }
                    self.pos += 6;
                }
                _ => return Err(self.err("invalid escape in string")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node<'a>, JsonError> {
        self.pos += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Node::Obj(fields));
        }
        loop {
            self.ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            if key.escaped && escapes_plain_text(&key) {
                return Err(self.err(ESCAPED_KEY));
            }
            self.ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.err("expected ':' after an object key"));
            }
            self.pos += 1;
            self.ws();
            let value = self.value(depth + 1)?;
            fields.push((key, value));
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Obj(fields));
                }
                _ => return Err(self.err("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node<'a>, JsonError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Node::Arr(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Arr(items));
                }
                _ => return Err(self.err("expected ',' or ']' in an array")),
            }
        }
    }
}

/// Index of the first `"`, `\\` or control byte at or after `i` (or the
/// length): eight bytes per step (SWAR). Each test flags its lowest
/// matching byte exactly (a borrow only starts at a true match), which is
/// the only one used.
fn next_special(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = x ^ (u64::from(b'"') * LO);
        let backslash = x ^ (u64::from(b'\\') * LO);
        let found = ((quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (x.wrapping_sub(0x20 * LO) & !x))
            & HI;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}

/// The code point of the `\\u` escape (or surrogate pair) at the start of
/// `b` and the raw bytes it takes; a lone surrogate is U+FFFD (the text
/// scanned and restored stays valid UTF-8; the raw bytes are never
/// rewritten unless a finding covers them).
fn unicode_escape(b: &[u8]) -> (char, usize) {
    let hi = b.get(2..6).and_then(hex4).unwrap_or(0xFFFD);
    let pair = match hi {
        0xD800..=0xDBFF if b.get(6..8) == Some(b"\\u") => {
            b.get(8..12).and_then(hex4).filter(|lo| (0xDC00..=0xDFFF).contains(lo))
        }
        _ => None,
    };
    match pair {
        Some(lo) => (
            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).unwrap_or('\u{FFFD}'),
            12,
        ),
        None => (char::from_u32(hi).unwrap_or('\u{FFFD}'), 6),
    }
}

/// (raw length, decoded length) of the escape at the start of `b`.
fn escape_lengths(b: &[u8]) -> (usize, usize) {
    match b.get(1) {
        Some(b'u') => {
            let (c, raw) = unicode_escape(b);
            (raw, c.len_utf8())
        }
        _ => (2, 1),
    }
}

/// Decode the escapes of a literal's raw text (already validated by the
/// parser).
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\\', &b[at..]) {
        let i = at + i;
        out.push_str(&raw[at..i]);
        at = i + 2;
        match b.get(i + 1) {
            Some(b'"') => out.push('"'),
            Some(b'\\') => out.push('\\'),
            Some(b'/') => out.push('/'),
            Some(b'b') => out.push('\u{8}'),
            Some(b'f') => out.push('\u{c}'),
            Some(b'n') => out.push('\n'),
            Some(b'r') => out.push('\r'),
            Some(b't') => out.push('\t'),
            Some(b'u') => {
                let (c, len) = unicode_escape(&b[i..]);
                out.push(c);
                at = i + len;
            }
            // Not produced by the parser; keep the bytes.
            _ => {
                out.push('\\');
                at = i + 1;
            }
        }
    }
    out.push_str(&raw[at..]);
    out
}

/// `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

/// `s` escaped for use inside a JSON string literal (no quotes).
pub fn escape_inner(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        return Cow::Borrowed(s);
    }
    let q = quote(s);
    Cow::Owned(q[1..q.len() - 1].to_string())
}

/// Apply non-overlapping `(range, replacement)` edits to `src`.
pub fn splice(src: &str, edits: &mut [(Range<usize>, String)]) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = String::with_capacity(src.len() + extra);
    let mut at = 0;
    for (range, text) in edits.iter() {
        out.push_str(&src[at..range.start]);
        out.push_str(text);
        at = range.end;
    }
    out.push_str(&src[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_offsets_point_at_the_literal() {
        let src = r#"{"a": ["x\ny", 1.5e3, true], "b":"plain"}"#;
        let node = parse(src).unwrap();
        let mut seen = Vec::new();
        node.for_each_string(&mut |l| seen.push((src[l.range()].to_string(), l.decode().into_owned())));
        assert_eq!(
            seen,
            vec![
                (r#""x\ny""#.into(), "x\ny".into()),
                (r#""plain""#.into(), "plain".into())
            ]
        );
    }

    #[test]
    fn malformed_json_reports_position() {
        let e = parse("{\n  \"a\": tru }").unwrap_err();
        assert_eq!((e.what, e.line), ("invalid literal", 2));
        assert!(parse("[1,]").is_err());
        assert!(parse("{\"a\":1} x").is_err());
        assert!(parse("\"\\x\"").is_err());
        assert!(parse("\"a\nb\"").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn decode_matches_serde_json() {
        let cases = [
            r#"plain"#,
            r#"a\nb\t\"q\"\\ \/ \b\f\r"#,
            r#"\u00e9\u0041"#,
            r#"\ud83d\ude00 smile"#,
            r#"x\u0000y"#,
            "日本\\n語",
        ];
        for raw in cases {
            let src = format!("\"{raw}\"");
            let lit = *parse(&src).unwrap().as_lit().unwrap();
            assert_eq!(lit.decode(), serde_json::from_str::<String>(&src).unwrap(), "{raw}");
        }
        // serde_json refuses lone surrogates; they decode to U+FFFD here.
        for (raw, want) in [
            (r#"a\ud800b"#, "a\u{FFFD}b"),
            (r#"\udc00"#, "\u{FFFD}"),
            (r#"\ud800\u0041"#, "\u{FFFD}A"),
        ] {
            let src = format!("\"{raw}\"");
            assert_eq!(parse(&src).unwrap().as_lit().unwrap().decode(), want, "{raw}");
        }
    }

    #[test]
    fn raw_offsets_map_decoded_positions_back() {
        let src = r#""ab\ncd\u00e9f\ud83d\ude00g\ud800h""#;
        let lit = *parse(src).unwrap().as_lit().unwrap();
        let decoded = lit.decode();
        assert_eq!(decoded, "ab\ncd\u{e9}f\u{1F600}g\u{FFFD}h");
        // Every char boundary of the decoded text maps to the raw escape (or byte) it starts at.
        let bounds: Vec<usize> = decoded.char_indices().map(|(i, _)| i).chain([decoded.len()]).collect();
        let raw: Vec<usize> = lit.raw_offsets(&bounds).into_iter().map(Option::unwrap).collect();
        assert_eq!(raw, vec![0, 1, 2, 4, 5, 6, 12, 13, 25, 26, 32, 33]);
        // Inside one escape's output, or past the end: None.
        assert_eq!(lit.raw_offsets(&[6, 9, 40]), vec![None, None, None]);
    }

    proptest::proptest! {
        #[test]
        fn raw_offsets_agree_with_decoding_prefixes(s in "\\PC{0,40}", cut in 0usize..200) {
            let src = quote(&s);
            let lit = *parse(&src).unwrap().as_lit().unwrap();
            let decoded = lit.decode();
            let mut t = cut.min(decoded.len());
            while !decoded.is_char_boundary(t) {
                t -= 1;
            }
            let r = lit.raw_offsets(&[t])[0].unwrap();
            proptest::prop_assert_eq!(unescape(&lit.raw[..r]), &decoded[..t]);
        }
    }

    #[test]
    fn strings_end_and_fail_where_expected_at_every_alignment() {
        // The eight-byte scan must find the first special byte wherever it sits.
        for pad in 0..20 {
            let body = "x".repeat(pad);
            let src = format!("[\"{body}\\n{body}\\u00e9\\\"\\\\\", \"{body}\"]");
            let node = parse(&src).unwrap();
            let mut seen = Vec::new();
            node.for_each_string(&mut |l| seen.push(l.decode().into_owned()));
            assert_eq!(seen, vec![format!("{body}\n{body}é\"\\"), body.clone()]);
            let bad = format!("\"{body}\u{1}{body}\"");
            assert_eq!(
                parse(&bad).unwrap_err(),
                JsonError {
                    what: "control character inside a string",
                    line: 1,
                    column: pad + 2
                }
            );
            assert_eq!(parse(&format!("\"{body}")).unwrap_err().what, "unterminated string");
            assert!(parse(&format!("\"{body}\u{7f}é\"")).is_ok());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips_through_parse_and_decode(s in "\\PC*", ascii_only in proptest::bool::ANY) {
            // serde_json's escaping, or every non-ASCII char as \uXXXX (surrogate pairs included).
            let src = if ascii_only {
                let mut q = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => q.push_str("\\\""),
                        '\\' => q.push_str("\\\\"),
                        c if c.is_ascii() && !c.is_ascii_control() => q.push(c),
                        c => {
                            let mut buf = [0u16; 2];
                            for unit in c.encode_utf16(&mut buf) {
                                q.push_str(&format!("\\u{unit:04X}"));
                            }
                        }
                    }
                }
                q.push('"');
                q
            } else {
                quote(&s)
            };
            let node = parse(&src).unwrap();
            proptest::prop_assert_eq!(node.as_lit().unwrap().decode(), s);
        }
    }

    #[test]
    fn a_key_that_escapes_plain_letters_is_refused_and_real_escapes_are_kept() {
        for body in [r#"{"m\u0065ssages":[]}"#, r#"{"a\/b":1}"#] {
            let err = parse(body).unwrap_err();
            assert!(err.what.contains("escapes"), "{body}: {err}");
        }
        // What serializers really escape: non-ASCII (Python's ensure_ascii),
        // quotes, backslashes, controls.
        for body in [
            r#"{"pr\u00e9nom":1}"#,
            r#"{"a\"b":1}"#,
            r#"{"a\\b":1}"#,
            r#"{"a\nb":1}"#,
            r#"{"x":"m\u0065"}"#,
        ] {
            assert!(parse(body).is_ok(), "{body}");
        }
    }

    #[test]
    fn a_wide_json_bomb_is_refused_at_the_node_cap() {
        assert!(TOO_MANY_NODES.contains(&MAX_NODES.to_string()));
        // Two bytes of input per value: the cheapest way to a huge tree.
        let at_cap = format!("[{}0]", "0,".repeat(MAX_NODES - 2));
        assert!(parse(&at_cap).is_ok());
        for bomb in [
            format!("[{}0]", "0,".repeat(MAX_NODES)),
            format!("[{}[]]", "[],".repeat(MAX_NODES)),
            format!("{{{}\"k\":1}}", "\"k\":{},".repeat(MAX_NODES)),
        ] {
            let e = parse(&bomb).unwrap_err();
            assert!(e.is_too_many_nodes(), "{e}");
        }
        // Deep nesting stays refused by depth.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(&deep).unwrap_err().what, "JSON nested too deeply");
    }

    #[test]
    fn an_arrays_layout_and_its_rest_agree_with_the_full_parse() {
        let src = r#"{"m": [ {"a":"x]}\"y"} , [1,[2]], "s,]" ,3.5e1,true ,null], "t": 1}"#;
        let (_, nodes) = parse_counted(src).unwrap();
        assert_eq!(nodes, 13);
        let open = src.find('[').unwrap();
        let (ends, close) = array_layout(src, open).unwrap();
        assert_eq!(src.as_bytes()[close], b']');
        let items: Vec<&str> = std::iter::once(open + 1)
            .chain(ends.iter().map(|e| e + 1))
            .zip(&ends)
            .map(|(s, e)| src[s..*e].trim_start_matches([' ', ',']).trim())
            .collect();
        assert_eq!(
            items,
            [r#"{"a":"x]}\"y"}"#, "[1,[2]]", r#""s,]""#, "3.5e1", "true", "null"]
        );
        // The rest after any item, parsed, ends where the layout says.
        for k in 0..=ends.len() {
            let from = if k == 0 { open + 1 } else { ends[k - 1] };
            let rest = parse_array_rest(src, from, k > 0, 2).unwrap();
            assert_eq!(rest.ends, ends[k..]);
            assert_eq!(rest.close, close);
            assert_eq!(rest.items.len(), ends.len() - k);
        }
        assert!(array_layout("[]", 0).unwrap().0.is_empty());
        assert!(parse_array_rest("[1 2]", 2, true, 2).is_err());
        assert!(parse_array_rest("[1,]", 2, true, 2).is_err());
    }

    #[test]
    fn last_duplicate_key_wins_like_serde() {
        let node = parse(r#"{"k":"first","k":"second"}"#).unwrap();
        assert_eq!(node.str_field("k").unwrap(), "second");
    }
}
