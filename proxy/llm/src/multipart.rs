//! `multipart/form-data` bodies (file uploads, audio and image edits):
//! where each part starts and ends, so its text can be scanned on its own
//! and rewritten in place, the other parts left byte for byte.
//!
//! Hand-written rather than `multer`: multer streams decoded fields but
//! does not say where in the body each one lies, and a rewrite must keep
//! every other byte. The tests check it agrees with multer on the parts.

use std::ops::Range;

/// One part: its headers (as the client wrote them) and the byte range of
/// its content in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub content: Range<usize>,
    pub name: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// `Content-Transfer-Encoding`, lower-cased (`base64` hides text).
    pub transfer_encoding: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the multipart body has no opening boundary")]
    NoOpening,
    #[error("a multipart part has no end of headers")]
    UnterminatedHeaders,
    #[error("the multipart body has no closing boundary")]
    NoClosing,
}

/// The boundary of a `multipart/form-data` (or `multipart/mixed`)
/// Content-Type, quoted or not; None for other types.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        (!v.is_empty() && v.len() <= 70).then_some(v)
    })
}

/// The parts of `body`, in order. A body that does not parse is an error
/// (the caller then scans it whole, as before: never a way around
/// inspection).
pub fn parts(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter: at the start or after a preamble's line break.
    let mut at = if body.starts_with(delimiter) {
        0
    } else {
        let needle = [b"\r\n".as_slice(), delimiter].concat();
        memchr::memmem::find(body, &needle).ok_or(MultipartError::NoOpening)? + 2
    };
    let next_finder = memchr::memmem::Finder::new(&[b"\n".as_slice(), delimiter].concat()).into_owned();
    let mut out = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            return Ok(out);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let line_end = memchr::memchr(b'\n', &body[at..]).ok_or(MultipartError::NoClosing)?;
        let headers_start = at + line_end + 1;
        let (headers_len, sep) = headers_end(&body[headers_start..]).ok_or(MultipartError::UnterminatedHeaders)?;
        let headers = &body[headers_start..headers_start + headers_len];
        let content_start = headers_start + headers_len + sep;
        let next = next_finder
            .find(&body[content_start..])
            .ok_or(MultipartError::NoClosing)?;
        // The line break before the next delimiter belongs to it.
        let mut content_end = content_start + next;
        if content_end > content_start && body[content_end - 1] == b'\r' {
            content_end -= 1;
        }
        out.push(part(headers, content_start..content_end));
        at = content_start + next + 1;
    }
}

/// Length of the header block and of the blank line after it.
fn headers_end(rest: &[u8]) -> Option<(usize, usize)> {
    if rest.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if rest.starts_with(b"\n") {
        return Some((0, 1));
    }
    let crlf = memchr::memmem::find(rest, b"\r\n\r\n").map(|i| (i + 2, 2));
    let lf = memchr::memmem::find(rest, b"\n\n").map(|i| (i + 1, 1));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn part(headers: &[u8], content: Range<usize>) -> Part {
    let text = String::from_utf8_lossy(headers);
    let mut p = Part {
        content,
        name: None,
        filename: None,
        content_type: None,
        transfer_encoding: None,
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                p.name = param(value, "name");
                p.filename = param(value, "filename");
            }
            "content-type" => p.content_type = Some(value.to_ascii_lowercase()),
            "content-transfer-encoding" => p.transfer_encoding = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    p
}

fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = b"preamble ignored\r\n".to_vec();
        for (headers, content) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(headers.as_bytes());
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    #[test]
    fn boundaries_are_read_quoted_or_not_and_only_from_multipart_types() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; Boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("application/json; boundary=XyZ"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
    }

    #[test]
    fn parts_are_found_with_their_names_types_and_exact_content_ranges() {
        let png: &[u8] = &[0x89, b'P', b'N', b'G', 0, 0xff, b'\r', b'\n', 0x1a];
        let b = body(&[
            ("Content-Disposition: form-data; name=\"purpose\"", b"batch"),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain",
                b"line one\r\nline two",
            ),
            (
                "content-disposition: form-data; name=\"image\"; filename=\"a.png\"\r\ncontent-type: image/png",
                png,
            ),
        ]);
        let parts = parts(&b, "XyZ").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(&b[parts[0].content.clone()], b"batch");
        assert_eq!(parts[0].name.as_deref(), Some("purpose"));
        assert_eq!(&b[parts[1].content.clone()], b"line one\r\nline two");
        assert_eq!(parts[1].filename.as_deref(), Some("notes.txt"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(&b[parts[2].content.clone()], png);
        assert_eq!(parts[2].content_type.as_deref(), Some("image/png"));
    }

    #[test]
    fn a_body_without_its_boundaries_is_an_error_not_zero_parts() {
        assert_eq!(parts(b"no boundary here", "XyZ"), Err(MultipartError::NoOpening));
        assert_eq!(
            parts(b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", "XyZ"),
            Err(MultipartError::NoClosing)
        );
        assert_eq!(
            parts(b"--XyZ\r\nheaders never end", "XyZ"),
            Err(MultipartError::UnterminatedHeaders)
        );
    }

    #[test]
    fn parts_agree_with_multer_on_names_and_contents() {
        let png: &[u8] = &[0x89, b'P', b'N', b'G', 0, 0xff, b'-', b'-', b'X'];
        let b = body(&[
            ("Content-Disposition: form-data; name=\"model\"", b"whisper-1"),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream",
                png,
            ),
            ("Content-Disposition: form-data; name=\"prompt\"", b"--XyZ is not at a line start"),
        ]);
        let ours = parts(&b, "XyZ").unwrap();
        let theirs: Vec<(Option<String>, Vec<u8>)> = futures_executor::block_on(async {
            let stream = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from(b.clone())) });
            let mut m = multer::Multipart::new(stream, "XyZ");
            let mut out = Vec::new();
            while let Some(field) = m.next_field().await.unwrap() {
                let name = field.name().map(str::to_string);
                out.push((name, field.bytes().await.unwrap().to_vec()));
            }
            out
        });
        let ours: Vec<(Option<String>, Vec<u8>)> = ours
            .iter()
            .map(|p| (p.name.clone(), b[p.content.clone()].to_vec()))
            .collect();
        assert_eq!(ours, theirs);
    }
}
