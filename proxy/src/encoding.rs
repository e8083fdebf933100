//! Request bodies a client compressed: inspected (and forwarded) decoded,
//! because a scan of compressed bytes finds nothing. An encoding promptwall
//! cannot decode is refused rather than forwarded unread.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    #[error("request Content-Encoding {0:?} cannot be inspected; send the body uncompressed, gzip or deflate")]
    Unsupported(String),
    #[error("the decompressed request body exceeds the {0}-byte limit ([limits] max_request_bytes)")]
    TooLarge(usize),
    #[error("the request body is not valid {encoding} data: {detail}")]
    Corrupt { encoding: String, detail: String },
}

/// The body with every `Content-Encoding` undone (last applied, first
/// undone), or None when it was not encoded. Decoding stops at `limit`
/// bytes, so a small bomb cannot grow past the request limit.
pub fn decode_request_body(headers: &HeaderMap, body: &Bytes, limit: usize) -> Result<Option<Bytes>, EncodingError> {
    let codings: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .into_owned()
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return Ok(None);
    }
    let mut data = body.clone();
    for coding in codings.iter().rev() {
        data = match coding.as_str() {
            "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&data[..]), coding, limit)?,
            // RFC 9110 deflate is zlib-wrapped; some clients send it raw.
            "deflate" => inflate(flate2::read::ZlibDecoder::new(&data[..]), coding, limit)
                .or_else(|_| inflate(flate2::read::DeflateDecoder::new(&data[..]), coding, limit))?,
            other => return Err(EncodingError::Unsupported(other.to_string())),
        };
    }
    Ok(Some(data))
}

fn inflate(reader: impl Read, coding: &str, limit: usize) -> Result<Bytes, EncodingError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| EncodingError::Corrupt {
            encoding: coding.to_string(),
            detail: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(EncodingError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, encoding.parse().unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn a_gzip_body_is_inspected_decoded() {
        let body = gzip(b"token=AKIA...");
        assert_eq!(
            decode_request_body(&headers("gzip"), &body, 1 << 20)
                .unwrap()
                .as_deref(),
            Some(&b"token=AKIA..."[..])
        );
        assert_eq!(decode_request_body(&HeaderMap::new(), &body, 1 << 20).unwrap(), None);
        assert_eq!(decode_request_body(&headers("identity"), &body, 1 << 20).unwrap(), None);
    }

    #[test]
    fn stacked_encodings_are_undone_in_reverse_order() {
        let body = gzip(&gzip(b"hello"));
        assert_eq!(
            decode_request_body(&headers("gzip, gzip"), &body, 1 << 20)
                .unwrap()
                .as_deref(),
            Some(&b"hello"[..])
        );
    }

    #[test]
    fn unknown_encodings_and_bombs_are_refused_not_forwarded() {
        assert!(matches!(
            decode_request_body(&headers("br"), &Bytes::from_static(b"x"), 100),
            Err(EncodingError::Unsupported(_))
        ));
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert_eq!(
            decode_request_body(&headers("gzip"), &bomb, 1000),
            Err(EncodingError::TooLarge(1000))
        );
        assert!(matches!(
            decode_request_body(&headers("gzip"), &Bytes::from_static(b"not gzip"), 100),
            Err(EncodingError::Corrupt { .. })
        ));
    }
}
