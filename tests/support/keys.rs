//! Test RSA key pairs for v2.1 channel access tokens: generated at run time (no key material in
//! the repository), written the ways an admin would have them — the private JWK that LINE's
//! console flow has you generate in the browser (`crypto.subtle.exportKey("jwk")`: kty, n, e,
//! d, p, q, dp, dq, qi, alg, ext, key_ops; no kid), and PEM (PKCS#8 and PKCS#1) — plus the
//! public half the stand-in verifies assertions with.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde_json::{json, Value};

use super::standin::Channel;

/// The channel every token test uses.
pub const CHANNEL_ID: &str = "1234567890";
/// The key id "LINE" assigned to the test public key.
pub const KID: &str = "test-kid-3fa85f64";

pub struct TestKey {
    pub private: rsa::RsaPrivateKey,
}

fn b64(n: &rsa::BigUint) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_bytes_be())
}

impl TestKey {
    /// One 2048-bit key per test binary (generation takes a moment).
    pub fn shared() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey {
            private: rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate an RSA key"),
        })
    }

    /// The private JWK as LINE's console flow produces it.
    pub fn jwk(&self) -> Value {
        let k = &self.private;
        let (p, q) = (&k.primes()[0], &k.primes()[1]);
        let one = rsa::BigUint::from(1u8);
        json!({
            "alg": "RS256", "d": b64(k.d()), "dp": b64(&(k.d() % (p - &one))), "dq": b64(&(k.d() % (q - &one))),
            "e": b64(k.e()), "ext": true, "key_ops": ["sign"], "kty": "RSA", "n": b64(k.n()),
            "p": b64(p), "q": b64(q), "qi": b64(&k.crt_coefficient().expect("qi")),
        })
    }

    pub fn pkcs8_pem(&self) -> String {
        self.private.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM").to_string()
    }

    pub fn pkcs1_pem(&self) -> String {
        self.private.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM").to_string()
    }

    /// The public key as registered with "LINE".
    pub fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        jsonwebtoken::DecodingKey::from_rsa_components(&b64(self.private.n()), &b64(self.private.e())).expect("public key")
    }

    /// The stand-in channel this key belongs to, with `secret` as its channel secret.
    pub fn channel(&self, secret: &str) -> Channel {
        Channel { id: CHANNEL_ID.into(), secret: secret.into(), kid: KID.into(), public_key: self.decoding_key() }
    }

    /// Writes `content` to `dir/name` and returns the path.
    pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write key file");
        path
    }

    /// Pieces of the private key that must never appear in a log: the JWK's private members
    /// and every base64 line of the PEM bodies.
    pub fn secret_fragments(&self) -> Vec<String> {
        let jwk = self.jwk();
        let mut out: Vec<String> =
            ["d", "p", "q", "dp", "dq", "qi"].iter().map(|m| jwk[m].as_str().unwrap_or_default()[..24].to_owned()).collect();
        for pem in [self.pkcs8_pem(), self.pkcs1_pem()] {
            out.extend(pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 20).map(str::to_owned));
        }
        out
    }
}
