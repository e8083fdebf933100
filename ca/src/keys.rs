//! Private keys from PEM. ring (rcgen's backend) only reads PKCS#8, but org CAs
//! are often stored as SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), so
//! those are wrapped into PKCS#8 here rather than making operators convert.

use std::path::Path;

use rcgen::KeyPair;
use rustls_pki_types::PrivateKeyDer;

use crate::CaError;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const DER_NULL: &[u8] = &[0x05, 0x00];

/// Parses the first private key in `pem` (file `path`, for messages).
pub(crate) fn key_pair_from_pem(pem: &str, path: &Path) -> Result<KeyPair, CaError> {
    let bad = |reason: String| CaError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| bad(format!("unreadable PEM ({e})")))?
        .ok_or_else(|| bad("no PRIVATE KEY block found (encrypted keys are not supported)".into()))?;
    let candidates: Vec<Vec<u8>> = match &key {
        PrivateKeyDer::Pkcs8(k) => vec![k.secret_pkcs8_der().to_vec()],
        PrivateKeyDer::Sec1(k) => [OID_P256, OID_P384]
            .iter()
            .map(|curve| pkcs8_wrap(&[OID_EC_PUBLIC_KEY, curve].concat(), k.secret_sec1_der()))
            .collect(),
        PrivateKeyDer::Pkcs1(k) => vec![pkcs8_wrap(
            &[OID_RSA_ENCRYPTION, DER_NULL].concat(),
            k.secret_pkcs1_der(),
        )],
        _ => return Err(bad("unsupported key format".into())),
    };
    for der in candidates {
        if let Ok(kp) = KeyPair::try_from(der.as_slice()) {
            return Ok(kp);
        }
    }
    Err(bad("unsupported key type; use ECDSA P-256/P-384, RSA or Ed25519".into()))
}

/// PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier, OCTET STRING key }
fn pkcs8_wrap(algorithm_content: &[u8], inner_key: &[u8]) -> Vec<u8> {
    let version = [0x02, 0x01, 0x00];
    let algorithm = tlv(0x30, algorithm_content);
    let key = tlv(0x04, inner_key);
    tlv(0x30, &[&version[..], &algorithm, &key].concat())
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_are_encoded_in_long_form() {
        assert_eq!(tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn pkcs8_keys_round_trip() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let back = key_pair_from_pem(&kp.serialize_pem(), Path::new("k.pem")).unwrap();
        assert_eq!(back.public_key_raw(), kp.public_key_raw());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = key_pair_from_pem("not a key", Path::new("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.pem") && err.contains("PEM"), "{err}");
    }
}
