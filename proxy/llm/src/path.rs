//! Request paths as the provider will read them.
//!
//! Provider edges normalise what they receive (dot segments, percent-encoded
//! letters, repeated slashes), so a path classified as sent can name another
//! endpoint by the time it arrives: `/v1/oauth/../messages` looked like a
//! sign-in call and was forwarded unread, and reached the Messages API.
//! [`normalize`] produces the one canonical form that is both classified and
//! forwarded; what cannot be made unambiguous (an encoded `/`, `\` or control
//! byte) is refused rather than guessed.

use std::borrow::Cow;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotAbsolute,
    #[error("the request path has a malformed percent-escape")]
    BadEscape,
    #[error("the request path encodes a '/', '\\' or control character, which servers disagree about")]
    AmbiguousEscape,
    #[error("the request path contains a '\\' or control character")]
    ForbiddenByte,
    #[error("the request path has a dot segment with ;parameters, which some servers resolve as '..'")]
    DotSegmentWithParameters,
}

/// The canonical form of `path` (no query): unreserved characters decoded
/// (RFC 3986 §6.2.2.2), dot segments removed (§5.2.4), repeated slashes
/// collapsed, other escapes kept with upper-case hex. Idempotent.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    if bytes.iter().all(|&b| is_plain(b)) && !has_dot_or_empty_segment(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/');
    for seg in decoded.split('/') {
        // `..;x` is `..` to servers that drop parameters first (Tomcat,
        // Spring): refused rather than guessed either way.
        let bare = seg.split(';').next().unwrap_or("");
        let bare = bare.split("%3B").next().unwrap_or("");
        if bare != seg && (bare == "." || bare == "..") {
            return Err(PathError::DotSegmentWithParameters);
        }
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut canonical = String::with_capacity(decoded.len());
    for seg in &out {
        canonical.push('/');
        canonical.push_str(seg);
    }
    let last_is_dot = decoded.rsplit('/').next().is_some_and(|s| s == "." || s == "..");
    if canonical.is_empty() || ((trailing || last_is_dot) && !out.is_empty()) {
        canonical.push('/');
    }
    Ok(Cow::Owned(canonical))
}

/// The key a normalised path is classified by: case-folded, each segment's
/// `;parameters` dropped (servers that honour matrix parameters ignore them
/// for routing), trailing slashes trimmed. Classification is deliberately
/// looser than any server, so a path some server reads as an LLM endpoint is
/// inspected as one.
pub fn classification_key(normalized: &str) -> String {
    // Escapes left by `normalize` are reserved characters a server might
    // still decode (`%3B` → `;`): decode them for the key only.
    let decoded = percent_decode_lossy(normalized);
    let mut key = String::with_capacity(decoded.len());
    for seg in decoded.split('/') {
        // `/v1/;x/messages` is `/v1/messages` to a server that drops parameters.
        let seg = seg.split(';').next().unwrap_or("");
        if seg.is_empty() {
            continue;
        }
        key.push('/');
        key.extend(seg.chars().map(|c| c.to_ascii_lowercase()));
    }
    if key.is_empty() {
        key.push('/');
    }
    key
}

pub(crate) fn percent_decode_lossy(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some((h, l)) = bytes.get(i + 1).zip(bytes.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex_value(*h), hex_value(*l)) {
                    out.push((h << 4) | l);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Bytes that need no decoding and cannot form a dot segment on their own.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'/' | b'-'
                | b'_'
                | b'~'
                | b'.'
                | b':'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// Anything that might need resolving: an empty segment or one starting with a dot.
fn has_dot_or_empty_segment(path: &str) -> bool {
    path.contains("//") || path.contains("/.")
}

fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = (hex_value(hex[0]).ok_or(PathError::BadEscape)? << 4)
                | hex_value(hex[1]).ok_or(PathError::BadEscape)?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7f {
                return Err(PathError::AmbiguousEscape);
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(value >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(value & 0xf)]));
            }
            i += 3;
            continue;
        }
        if b == b'\\' || b < 0x20 || b == 0x7f {
            return Err(PathError::ForbiddenByte);
        }
        // Non-ASCII (already UTF-8 in a &str) and other bytes pass as they are.
        let ch_len = utf8_len(b);
        let end = (i + ch_len).min(bytes.len());
        out.push_str(std::str::from_utf8(&bytes[i..end]).map_err(|_| PathError::ForbiddenByte)?);
        i = end;
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_escapes_resolve_to_the_endpoint_the_provider_reads() {
        let cases = [
            ("/v1/messages", "/v1/messages"),
            ("/v1/oauth/../messages", "/v1/messages"),
            ("/v1/./messages", "/v1/messages"),
            ("/v1//messages", "/v1/messages"),
            ("//v1/messages", "/v1/messages"),
            ("/v1/%6Dessages", "/v1/messages"),
            ("/v1/oauth/%2e%2E/messages", "/v1/messages"),
            ("/v1/oauth/.%2e/messages", "/v1/messages"),
            ("/v1/messages/", "/v1/messages/"),
            ("/v1/messages/.", "/v1/messages/"),
            ("/../../v1/messages", "/v1/messages"),
            ("/", "/"),
            ("/..", "/"),
            ("/v1/models/a%3Ab", "/v1/models/a%3Ab"),
            ("/v1/models/a%3ab", "/v1/models/a%3Ab"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).unwrap(), want, "{raw}");
            assert_eq!(normalize(want).unwrap(), want, "idempotent on {want}");
        }
    }

    #[test]
    fn encoded_separators_and_control_bytes_are_refused_not_guessed() {
        for raw in [
            "/v1%2fmessages",
            "/v1%5Cmessages",
            "/v1/messages%00",
            "/v1/%zz",
            "/v1/%4",
            "/v1\\messages",
        ] {
            assert!(normalize(raw).is_err(), "{raw}");
        }
        assert_eq!(normalize("v1/messages"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn classification_ignores_case_parameters_and_trailing_slashes() {
        assert_eq!(classification_key("/V1/Messages/"), "/v1/messages");
        assert_eq!(classification_key("/v1/messages;oauth"), "/v1/messages");
        assert_eq!(classification_key("/v1;x/chat/completions"), "/v1/chat/completions");
        assert_eq!(classification_key("/"), "/");
        assert_eq!(classification_key("/v1/messages%3Bx"), "/v1/messages");
        assert_eq!(classification_key("/v1/;/messages"), "/v1/messages");
    }
}
