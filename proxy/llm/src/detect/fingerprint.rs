//! Salted fingerprints of blocked secrets: the audit log can say "the same
//! key leaked 5 times" without holding anything that reveals the key.

use hmac::{Hmac, Mac};

/// HMAC-SHA256(salt, value), hex, first 32 hex chars (128 bits: no two
/// distinct secrets share one by chance). `salt` is a secret key: whoever
/// knows it can test guesses.
pub fn fingerprint(salt: &str, value: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    let mut out = hex::encode(mac.finalize().into_bytes());
    out.truncate(32);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_salted_and_short() {
        let a = fingerprint("salt-1", "AKIA...");
        assert_eq!(a.len(), 32);
        assert_eq!(a, fingerprint("salt-1", "AKIA..."));
        assert_ne!(a, fingerprint("salt-2", "AKIA..."));
        assert_ne!(a, fingerprint("salt-1", "AKIB..."));
        // RFC 4231 test case 2, truncated.
        assert_eq!(
            fingerprint("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }
}
