//! TLS and AUTH pieces for tests: a self-signed certificate for `localhost` (rcgen), password
//! hashes made by the real `mail2line hash-password`, and lettre clients that trust the
//! certificate and log in.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::SmtpTransport;

/// A self-signed certificate for `localhost`, written as PEM files into `dir`.
pub struct Cert {
    pub pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn make_cert(dir: &Path) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, ck.cert.pem()).unwrap();
    std::fs::write(&key_file, ck.key_pair.serialize_pem()).unwrap();
    Cert { pem: ck.cert.pem(), cert_file, key_file }
}

/// `echo -n PASSWORD | mail2line hash-password`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mail2line"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

pub fn tls_params(pem: &str) -> TlsParameters {
    TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap()
}

pub fn client(at: SocketAddr, tls: Tls, creds: Option<(&str, &str)>, mechanism: Mechanism) -> SmtpTransport {
    let mut b = SmtpTransport::builder_dangerous("127.0.0.1").port(at.port()).tls(tls).timeout(Some(Duration::from_secs(30)));
    if let Some((u, p)) = creds {
        b = b.credentials(Credentials::new(u.into(), p.into())).authentication(vec![mechanism]);
    }
    b.build()
}
