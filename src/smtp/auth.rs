//! SMTP AUTH: decoding the PLAIN and LOGIN exchanges (RFC 4616, the de-facto LOGIN), checking a
//! password against the argon2 hashes of `[[smtp.users]]`, and making such a hash for
//! `mail2line hash-password`.
//!
//! Decoding is pure; checking a password costs ~20 ms of CPU and 19 MiB on purpose (argon2), so
//! the driver runs [`Users::verify`] on one of the few check threads of `checks.rs`. Passwords
//! live in [`Secret`] from the moment they are decoded, so no log line or error can carry one.

use std::cell::RefCell;
use std::collections::HashMap;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;

use crate::secret::Secret;

/// A decoded login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// Why a client's SASL data was not usable (answered 501 5.5.2 by the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    NotBase64,
    /// PLAIN needs `authzid NUL authcid NUL password`.
    Malformed,
    /// The authorisation identity differs from the login: we do not let one user act as another.
    ProxyNotAllowed,
}

impl SaslError {
    pub fn message(&self) -> &'static str {
        match self {
            SaslError::NotBase64 => "Cannot decode the response: it is not base64",
            SaslError::Malformed => "Malformed AUTH PLAIN response: expected authzid NUL user NUL password",
            SaslError::ProxyNotAllowed => "Authorization identity must be empty or the same as the user",
        }
    }
}

fn b64(text: &str) -> Result<Vec<u8>, SaslError> {
    // RFC 4954: "=" is an empty initial response.
    if text == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| SaslError::NotBase64)
}

/// Decodes a base64 PLAIN response.
pub fn decode_plain(text: &str) -> Result<Credentials, SaslError> {
    let raw = b64(text)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::Malformed);
    };
    let user = String::from_utf8(user.to_vec()).map_err(|_| SaslError::Malformed)?;
    if user.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return Err(SaslError::ProxyNotAllowed);
    }
    let password = String::from_utf8(password.to_vec()).map_err(|_| SaslError::Malformed)?;
    Ok(Credentials { user, password: Secret::new(password) })
}

/// Decodes one base64 LOGIN answer (the user name or the password).
pub fn decode_login_field(text: &str) -> Result<String, SaslError> {
    String::from_utf8(b64(text)?).map_err(|_| SaslError::Malformed)
}

/// `[[smtp.users]]`: login name → argon2 PHC hash.
#[derive(Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are as good as passwords to an offline cracker: never printed.
        f.debug_struct("Users").field("names", &self.hashes.keys().collect::<Vec<_>>()).finish()
    }
}

/// A hash that is checked when the login name is unknown, so an unknown name costs as much as
/// a wrong password and the timing does not tell which names exist.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YlvFJ0c1d5ZQ0H2YxTqVf2c4u9x0yJm2a6H3wUGvUjs";

impl Users {
    pub fn new() -> Users {
        Users::default()
    }

    /// Adds a user; the hash must be a PHC string argon2 can read (the error says why not,
    /// without quoting the hash).
    pub fn add(&mut self, name: &str, hash: &Secret) -> Result<(), HashError> {
        check_hash(hash.expose())?;
        self.hashes.insert(name.to_owned(), hash.expose().to_owned());
        Ok(())
    }

    /// Whether the credentials match a configured user. Slow on purpose; call off the async
    /// threads.
    pub fn verify(&self, creds: &Credentials) -> bool {
        let (hash, known) = match self.hashes.get(&creds.user) {
            Some(h) => (h.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let ok = matches(creds.password.expose().as_bytes(), &parsed).unwrap_or(false);
        ok && known
    }
}

thread_local! {
    /// The argon2 working memory of this thread, kept for its next check. Allocating 19 MiB
    /// afresh for every check let glibc's heap grow by about that much per check under a burst
    /// (325 MiB with two checks at a time in `tests/hostile/auth.rs`); reused, a check thread
    /// holds one block, sized for the largest hash it has checked.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to `hash` (what `PasswordVerifier::verify_password` does, with the
/// thread's reused memory). `None` when the hash's parameters are unusable.
fn matches(password: &[u8], hash: &PasswordHash<'_>) -> Option<bool> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(hash).ok()?;
    let expected = hash.hash?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out.get_mut(..expected.len())?;
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]).ok()
    })?;
    // `Output`'s equality is constant-time.
    Some(Output::new(out).ok()? == expected)
}

/// Why a password hash cannot be used, or made; never quotes the hash or the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("is not a password hash; make one with: echo -n PASSWORD | mail2line hash-password")]
    NotAHash,
    #[error("uses {0}, not argon2; make a new one with: echo -n PASSWORD | mail2line hash-password")]
    NotArgon2(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// Checks that `hash` is an argon2 PHC string.
pub fn check_hash(hash: &str) -> Result<(), HashError> {
    let parsed = PasswordHash::new(hash).map_err(|_| HashError::NotAHash)?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(HashError::NotArgon2(parsed.algorithm.to_string()));
    }
    Ok(())
}

/// Hashes a password with argon2id, the default parameters and a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::EmptyPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn plain_decoding() {
        let c = decode_plain(&enc(b"\0cms\0s3cret")).unwrap();
        assert_eq!((c.user.as_str(), c.password.expose()), ("cms", "s3cret"));
        let c = decode_plain(&enc(b"cms\0cms\0pw")).unwrap();
        assert_eq!(c.user, "cms");
        assert_eq!(decode_plain(&enc(b"admin\0cms\0pw")), Err(SaslError::ProxyNotAllowed));
        assert_eq!(decode_plain(&enc(b"cms\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc(b"\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc(b"\0a\0b\0c")), Err(SaslError::Malformed));
        assert_eq!(decode_plain("***"), Err(SaslError::NotBase64));
        assert_eq!(decode_plain("="), Err(SaslError::Malformed));
    }

    #[test]
    fn login_fields() {
        assert_eq!(decode_login_field(&enc(b"cms")).unwrap(), "cms");
        assert_eq!(decode_login_field("=").unwrap(), "");
        assert!(decode_login_field("%%").is_err());
    }

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let mut users = Users::new();
        users.add("cms", &Secret::new(hash)).unwrap();
        let good = Credentials { user: "cms".into(), password: Secret::new("correct horse") };
        assert!(users.verify(&good));
        let wrong = Credentials { user: "cms".into(), password: Secret::new("battery staple") };
        assert!(!users.verify(&wrong));
        let unknown = Credentials { user: "nobody".into(), password: Secret::new("correct horse") };
        assert!(!users.verify(&unknown));
        assert!(!format!("{users:?}").contains("argon2"));
    }

    #[test]
    fn reused_memory_gives_the_same_answers_as_argon2s_own_verifier() {
        use argon2::PasswordVerifier;
        let hash = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        // Several checks on this thread, right and wrong interleaved, share one buffer.
        for (password, right) in [("correct horse", true), ("wrong", false), ("correct horse", true), ("correct hors", false)] {
            assert_eq!(matches(password.as_bytes(), &parsed), Some(right), "{password}");
            assert_eq!(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(), right);
        }
        // Other parameters (a smaller hash after a bigger one) and argon2i.
        let small = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(64, 3, 1, Some(16)).unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let other = small.hash_password(b"pw", &salt).unwrap().to_string();
        let parsed = PasswordHash::new(&other).unwrap();
        assert_eq!(matches(b"pw", &parsed), Some(true));
        assert_eq!(matches(b"pv", &parsed), Some(false));
        assert_eq!(MEMORY.with(|m| m.borrow().len()), Params::DEFAULT_M_COST as usize, "kept at the largest size");
    }

    #[test]
    fn decoy_hash_is_well_formed() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }

    #[test]
    fn bad_hashes_are_explained() {
        assert!(check_hash("plaintext").unwrap_err().to_string().contains("hash-password"));
        let bcrypt_like = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0MTIzNDU";
        assert!(check_hash(bcrypt_like).unwrap_err().to_string().contains("not argon2"));
        assert!(hash_password("").is_err());
    }
}
