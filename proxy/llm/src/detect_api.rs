//! Stand-in for the detection engine's types until `detect` lands; replaced
//! by re-exports of `crate::detect`.

/// What the pipeline does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Block,
    Redact,
    Reversible,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Secret,
    Pii,
}

/// Salted fingerprint of a secret for audit rows (HMAC-SHA256, hex, 16 bytes).
pub fn fingerprint(salt: &str, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}
