//! Splitting a byte stream into Server-Sent Events without copying more than
//! the one event in progress, and taking events apart / putting them back.

/// Accumulates bytes and yields complete events (terminator included).
#[derive(Default)]
pub(crate) struct SseSplitter {
    buf: Vec<u8>,
    /// Parse state inside `buf`: start of the current line, scan position.
    line_start: usize,
    pos: usize,
}

impl SseSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes buffered but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<Vec<u8>> {
        loop {
            let rest = &self.buf[self.pos..];
            let i = self.pos + memchr::memchr2(b'\n', b'\r', rest)?;
            let term_end = if self.buf[i] == b'\r' {
                match self.buf.get(i + 1) {
                    None => return None, // a '\n' may follow in the next chunk
                    Some(b'\n') => i + 2,
                    Some(_) => i + 1,
                }
            } else {
                i + 1
            };
            let empty_line = i == self.line_start;
            self.line_start = term_end;
            self.pos = term_end;
            if empty_line {
                let event: Vec<u8> = self.buf.drain(..term_end).collect();
                self.line_start = 0;
                self.pos = 0;
                return Some(event);
            }
        }
    }

    /// Whatever is left at the end of the stream (an unterminated event).
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.line_start = 0;
        self.pos = 0;
        std::mem::take(&mut self.buf)
    }
}

/// The parts of one event the pipeline needs.
pub(crate) struct ParsedEvent<'e> {
    pub name: Option<&'e str>,
    /// Joined `data:` lines.
    pub data: std::borrow::Cow<'e, str>,
    /// Byte range of the value of the only `data:` line (None when there are
    /// several, or none).
    pub single_data: Option<std::ops::Range<usize>>,
    pub has_data: bool,
}

pub(crate) fn parse_event(raw: &[u8]) -> Option<ParsedEvent<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut name = None;
    let mut data_ranges = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive(['\n', '\r']) {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.is_empty() || content.starts_with(':') {
            continue;
        }
        let (field, value, value_off) = match content.find(':') {
            Some(c) => {
                let v = &content[c + 1..];
                let skip = usize::from(v.starts_with(' '));
                (&content[..c], &v[skip..], c + 1 + skip)
            }
            None => (content, "", content.len()),
        };
        match field {
            "event" => name = Some(value),
            "data" => data_ranges.push(start + value_off..start + value_off + value.len()),
            _ => {}
        }
    }
    let has_data = !data_ranges.is_empty();
    let (data, single_data) = match data_ranges.len() {
        0 => (std::borrow::Cow::Borrowed(""), None),
        1 => (
            std::borrow::Cow::Borrowed(&text[data_ranges[0].clone()]),
            Some(data_ranges[0].clone()),
        ),
        _ => {
            let joined: Vec<&str> = data_ranges.iter().map(|r| &text[r.clone()]).collect();
            (std::borrow::Cow::Owned(joined.join("\n")), None)
        }
    };
    Some(ParsedEvent {
        name,
        data,
        single_data,
        has_data,
    })
}

/// `raw` with its data replaced by `data`.
pub(crate) fn rewrite_event(raw: &[u8], parsed: &ParsedEvent<'_>, data: &str) -> Vec<u8> {
    if let Some(r) = &parsed.single_data {
        let mut out = Vec::with_capacity(raw.len() + data.len());
        out.extend_from_slice(&raw[..r.start]);
        out.extend_from_slice(data.as_bytes());
        out.extend_from_slice(&raw[r.end..]);
        return out;
    }
    format_event(parsed.name, data).into_bytes()
}

pub(crate) fn format_event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_every_line_ending_style_across_chunks() {
        let input = b"event: a\r\ndata: 1\r\n\r\ndata: 2\n\n: comment\r\rdata: 3\n\n";
        for split in 0..input.len() {
            let mut s = SseSplitter::default();
            let mut events = Vec::new();
            for part in [&input[..split], &input[split..]] {
                s.push(part);
                while let Some(e) = s.next_event() {
                    events.push(e);
                }
            }
            let joined: Vec<u8> = events.concat();
            assert_eq!(joined, input.to_vec(), "split at {split}");
            assert_eq!(events.len(), 4, "split at {split}");
        }
    }

    #[test]
    fn parses_name_and_data() {
        let e = parse_event(b"event: message_start\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!(e.name, Some("message_start"));
        assert_eq!(e.data, "{\"a\":1}");
        let raw = b"event: x\ndata: old\n\n";
        let p = parse_event(raw).unwrap();
        assert_eq!(rewrite_event(raw, &p, "new"), b"event: x\ndata: new\n\n".to_vec());
    }
}
