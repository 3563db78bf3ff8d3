//! TLS for SMTP: the certificate and key from `smtp.tls_cert_file` / `smtp.tls_key_file`,
//! shared by STARTTLS and the implicit-TLS listener, and replaced in place on SIGHUP.
//!
//! A reload that fails (a half-written file during renewal, a key that does not match) keeps
//! the previous certificate serving: a bad renewal must not take mail down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used. Each names the file and its key in `[smtp]`;
/// none quotes the key's content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the certificate {} (smtp.tls_cert_file): {detail}", file.display())]
    ReadCert { file: PathBuf, detail: String },
    #[error("{} (smtp.tls_cert_file) is not a PEM certificate chain: {detail}", file.display())]
    NotPem { file: PathBuf, detail: String },
    #[error("{} (smtp.tls_cert_file) holds no certificate; expected PEM blocks \"-----BEGIN CERTIFICATE-----\"", .0.display())]
    NoCert(PathBuf),
    #[error("cannot use the key {} (smtp.tls_key_file): {why}", file.display())]
    Key { file: PathBuf, why: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
    #[error("the key {} does not fit the certificate {} ({detail}); check smtp.tls_cert_file and smtp.tls_key_file", key.display(), cert.display())]
    Mismatch { key: PathBuf, cert: PathBuf, detail: String },
}

/// The current TLS configuration and where it came from.
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert_file", &self.cert_file).field("key_file", &self.key_file).finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate chain and key; errors name the file and say what is wrong.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Tls, Error> {
        let config = build(cert_file, key_file)?;
        Ok(Tls { cert_file: cert_file.to_owned(), key_file: key_file.to_owned(), current: RwLock::new(Arc::new(config)) })
    }

    /// Reads the files again (SIGHUP); on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), Error> {
        let config = build(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// An acceptor for one handshake, with the configuration current at this moment.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn build(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| Error::ReadCert { file: cert_file.to_owned(), detail: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::NotPem { file: cert_file.to_owned(), detail: e.to_string() })?;
    if certs.is_empty() {
        return Err(Error::NoCert(cert_file.to_owned()));
    }
    // The key's own parse error could quote part of the file; say only what kind of problem.
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::Io(io) => io.to_string(),
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".to_owned(),
            _ => "not a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
        };
        Error::Key { file: key_file.to_owned(), why }
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Mismatch { key: key_file.to_owned(), cert: cert_file.to_owned(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn loads_reloads_and_keeps_the_old_config_on_a_bad_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a.example");
        let tls = Tls::load(&cert, &key).unwrap();
        let before = Arc::as_ptr(&tls.current.read().unwrap());
        tls.reload().unwrap();
        let after = Arc::as_ptr(&tls.current.read().unwrap());
        assert_ne!(before, after, "reload installs a new configuration");
        std::fs::write(&cert, "garbage").unwrap();
        let err = tls.reload().unwrap_err().to_string();
        assert!(err.contains("smtp.tls_cert_file"), "{err}");
        assert_eq!(after, Arc::as_ptr(&tls.current.read().unwrap()), "a failed reload keeps the old one");
    }

    #[test]
    fn errors_name_the_file_and_never_quote_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a.example");
        let (_, other_key) = self_signed(dir.path(), "b.example");
        let err = Tls::load(&cert, &other_key).err().unwrap().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let missing = dir.path().join("missing.pem");
        assert!(Tls::load(&missing, &key).err().unwrap().to_string().contains("missing.pem"));
        let key_text = std::fs::read_to_string(&key).unwrap();
        let broken = dir.path().join("broken.key");
        let body: String = key_text.lines().filter(|l| !l.starts_with("-----")).collect();
        std::fs::write(&broken, format!("-----BEGIN PRIVATE KEY-----\n{}!!\n-----END PRIVATE KEY-----\n", &body[..20])).unwrap();
        let err = Tls::load(&cert, &broken).err().unwrap().to_string();
        assert!(err.contains("smtp.tls_key_file") && !err.contains(&body[..20]), "{err}");
        std::fs::write(&broken, "").unwrap();
        assert!(Tls::load(&cert, &broken).err().unwrap().to_string().contains("no PEM private key"));
    }
}
