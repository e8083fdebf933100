//! PEM in and out for certificates.

use std::path::Path;

use base64::Engine;
use rustls_pki_types::CertificateDer;

use crate::CaError;

/// All CERTIFICATE blocks in `text`, in order; at least one.
pub(crate) fn parse_certs(text: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = rustls_pemfile::certs(&mut text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::BadCertificate {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(CaError::BadCertificate {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

pub fn encode_cert(der: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
