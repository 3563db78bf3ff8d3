//! The `X-Line-Signature` check: the only thing that tells a webhook from LINE apart from a
//! forged one.
//!
//! LINE signs the raw request body: `Base64(HMAC-SHA256(channel secret, body))`. The check runs
//! on the bytes exactly as received, before any parsing, and compares in constant time
//! (`verify_slice`) so response timing leaks nothing about the expected value.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Whether `signature` (the header's Base64 text) is LINE's signature of `body` under `secret`.
/// An empty secret never verifies anything: the caller refuses to run without one.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature LINE would send for `body` (for tests and tools that post webhooks).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"destination":"U1","events":[]}"#;
    const SECRET: &[u8] = b"test-secret";

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        let hex: String = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
    }

    #[test]
    fn accepts_only_the_exact_body_and_secret() {
        // Computed independently: printf '%s' '{"destination":"U1","events":[]}' |
        //   openssl dgst -sha256 -hmac 'test-secret' -binary | base64
        let sig = "OzN94e/FEMYFwmSKWAMQvIRSX2uF8YrFG8hH52Oc3/Y=";
        assert_eq!(sign(SECRET, BODY), sig);
        assert!(verify(SECRET, BODY, sig));
        assert!(verify(SECRET, BODY, &format!(" {sig}\t")), "header whitespace is not part of the value");
        assert!(!verify(b"other-secret", BODY, sig));
        assert!(!verify(SECRET, br#"{"destination":"U1","events":[] }"#, sig), "one byte changed");
        assert!(!verify(SECRET, BODY, ""));
        assert!(!verify(SECRET, BODY, "not base64!"));
        assert!(!verify(SECRET, BODY, &sig[..sig.len() - 4]), "truncated signature");
        assert!(!verify(b"", BODY, &sign(b"", BODY)), "an empty secret verifies nothing");
    }
}
