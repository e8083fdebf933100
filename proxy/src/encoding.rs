//! Request bodies a client compressed: inspected (and forwarded) decoded,
//! because a scan of compressed bytes finds nothing. An encoding promptwall
//! cannot decode is refused rather than forwarded unread.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    #[error(
        "request Content-Encoding {0:?} cannot be inspected; send the body uncompressed, gzip, deflate, br or zstd"
    )]
    Unsupported(String),
    #[error("the decompressed request body exceeds the {0}-byte limit ([limits] max_request_bytes)")]
    TooLarge(usize),
    #[error("the request body is not valid {encoding} data: {detail}")]
    Corrupt { encoding: String, detail: String },
    /// The caller's memory budget refused the decoded bytes.
    #[error("{0}")]
    OverBudget(String),
}

/// Told the decoded size so far, before it grows further; an `Err` stops
/// decoding (the caller's memory budget, crate::admission).
pub type Grow<'a> = &'a mut dyn FnMut(usize) -> Result<(), String>;

/// The body with every `Content-Encoding` undone (last applied, first
/// undone), or None when it was not encoded. Decoding stops at `limit`
/// bytes, so a small bomb cannot grow past the request limit.
pub fn decode_request_body(
    headers: &HeaderMap,
    body: &Bytes,
    limit: usize,
    grow: Grow<'_>,
) -> Result<Option<Bytes>, EncodingError> {
    let codings: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
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
            "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&data[..]), coding, limit, grow)?,
            // RFC 9110 deflate is zlib-wrapped; some clients send it raw.
            "deflate" => match inflate(flate2::read::ZlibDecoder::new(&data[..]), coding, limit, grow) {
                Err(EncodingError::Corrupt { .. }) => {
                    inflate(flate2::read::DeflateDecoder::new(&data[..]), coding, limit, grow)?
                }
                other => other?,
            },
            // Codex CLI compresses its request bodies with zstd.
            "zstd" => {
                let decoder =
                    ruzstd::decoding::StreamingDecoder::new(&data[..]).map_err(|e| EncodingError::Corrupt {
                        encoding: coding.clone(),
                        detail: e.to_string(),
                    })?;
                inflate(decoder, coding, limit, grow)?
            }
            "br" => inflate(
                brotli_decompressor::Decompressor::new(&data[..], 4096),
                coding,
                limit,
                grow,
            )?,
            other => return Err(EncodingError::Unsupported(other.to_string())),
        };
    }
    Ok(Some(data))
}

/// Reads `reader` in chunks, telling `grow` the size before each step, so
/// memory is charged before it is taken.
fn inflate(mut reader: impl Read, coding: &str, limit: usize, grow: Grow<'_>) -> Result<Bytes, EncodingError> {
    const STEP: usize = 64 * 1024;
    let mut out = Vec::new();
    loop {
        let at = out.len();
        if at > limit {
            return Err(EncodingError::TooLarge(limit));
        }
        grow(at + STEP).map_err(EncodingError::OverBudget)?;
        out.resize(at + STEP, 0);
        let n = reader.read(&mut out[at..]).map_err(|e| EncodingError::Corrupt {
            encoding: coding.to_string(),
            detail: e.to_string(),
        })?;
        out.truncate(at + n);
        if n == 0 {
            return Ok(Bytes::from(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn decode(h: &HeaderMap, body: &Bytes, limit: usize) -> Result<Option<Bytes>, EncodingError> {
        decode_request_body(h, body, limit, &mut |_| Ok(()))
    }

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
            decode(&headers("gzip"), &body, 1 << 20).unwrap().as_deref(),
            Some(&b"token=AKIA..."[..])
        );
        assert_eq!(decode(&HeaderMap::new(), &body, 1 << 20).unwrap(), None);
        assert_eq!(decode(&headers("identity"), &body, 1 << 20).unwrap(), None);
    }

    #[test]
    fn zstd_and_brotli_bodies_are_inspected_decoded() {
        let zstd = Bytes::from(ruzstd::encoding::compress_to_vec(
            &b"token=AKIA..."[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        ));
        assert_eq!(
            decode(&headers("zstd"), &zstd, 1 << 20).unwrap().as_deref(),
            Some(&b"token=AKIA..."[..])
        );
        // node -e 'zlib.brotliCompressSync("token=AKIA...")'
        let br = Bytes::from_static(b"\x0b\x06\x80\x74\x6f\x6b\x65\x6e\x3d\x41\x4b\x49\x41\x2e\x2e\x2e\x03");
        assert_eq!(
            decode(&headers("br"), &br, 1 << 20).unwrap().as_deref(),
            Some(&b"token=AKIA..."[..])
        );
        let bomb = Bytes::from(ruzstd::encoding::compress_to_vec(
            &vec![b'a'; 1 << 20][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        ));
        assert_eq!(
            decode(&headers("zstd"), &bomb, 1000),
            Err(EncodingError::TooLarge(1000))
        );
    }

    #[test]
    fn decoding_stops_when_the_memory_budget_refuses_to_grow() {
        let body = gzip(&vec![b'a'; 1 << 20]);
        let mut seen = 0;
        let got = decode_request_body(&headers("gzip"), &body, 1 << 22, &mut |n| {
            seen = n;
            if n > 256 * 1024 {
                Err("busy".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(got, Err(EncodingError::OverBudget("busy".into())));
        assert!(seen <= 256 * 1024 + 64 * 1024, "asked before growing: {seen}");
    }

    #[test]
    fn stacked_encodings_are_undone_in_reverse_order() {
        let body = gzip(&gzip(b"hello"));
        assert_eq!(
            decode(&headers("gzip, gzip"), &body, 1 << 20).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
    }

    #[test]
    fn unknown_encodings_and_bombs_are_refused_not_forwarded() {
        assert!(matches!(
            decode(&headers("compress"), &Bytes::from_static(b"x"), 100),
            Err(EncodingError::Unsupported(_))
        ));
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert_eq!(
            decode(&headers("gzip"), &bomb, 1000),
            Err(EncodingError::TooLarge(1000))
        );
        assert!(matches!(
            decode(&headers("gzip"), &Bytes::from_static(b"not gzip"), 100),
            Err(EncodingError::Corrupt { .. })
        ));
    }
}
