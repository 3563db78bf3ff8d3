//! Sending a built reply to `[replies] relay`: the one place that talks SMTP to it.
//!
//! lettre's blocking SMTP client does the protocol; each call runs on tokio's blocking pool
//! (`spawn_blocking`), so the async gateway never waits on a socket, and the client steps
//! through the connection itself (connect and EHLO, STARTTLS, AUTH, then the transaction) so
//! that every failure says at which step it happened. One connection per mail: answers are
//! few, and a fresh connection cannot inherit a broken state from the last one.
//!
//! `smtp://` never uses TLS, `smtp+starttls://` refuses to go on without STARTTLS (a relay
//! that stops offering it is not silently sent the password in clear), `smtps://` speaks TLS
//! from the first byte. Certificates are checked against the public web roots.
//!
//! Failures are split the way the outbox needs them ([`SendError`]): a relay refusing *this
//! mail* (5xx to MAIL, RCPT or DATA) is permanent; anything else is temporary: 4xx answers, a
//! relay that is down, and problems with the connection itself (TLS, a refused login, 530 "log
//! in first"), which refuse every mail alike and which an admin can fix before the answer's
//! `max_age` runs out.
//! No message ever holds the password: lettre keeps it out of its errors, and whatever a
//! relay echoes back is cut out (`Relay::redact`).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};

use super::settings::{RelayUrl, Security};
use crate::secret::Secret;

/// How long connecting, and then each command, may take before the relay counts as down.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The AUTH mechanisms offered, best first: both send the password as is (which is why they
/// belong on TLS or loopback), and every relay speaks one of them.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// A configured relay; cheap to clone, one connection per [`Relay::send`].
#[derive(Clone)]
pub struct Relay {
    url: RelayUrl,
    username: String,
    password: Option<Secret>,
    hello: ClientId,
    /// For STARTTLS and implicit TLS; `None` for `smtp://`.
    tls: Option<TlsParameters>,
    timeout: Duration,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: the TLS parameters are noise, and the password must never be printed.
        f.debug_struct("Relay").field("url", &self.url.to_string()).field("username", &self.username).finish_non_exhaustive()
    }
}

/// Why the relay could not be used (set up, reached, or logged into). Says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("replies.username is set but there is no password: set replies.password, replies.password_file or $MAIL2LINE_REPLIES_PASSWORD")]
    NoPassword,
    #[error("{relay}: cannot set up TLS: {why}")]
    TlsSetup { relay: String, why: String },
    #[error("{relay}: cannot connect: {why}; check replies.relay's host and port, and that the relay runs and this machine may reach it")]
    Unreachable { relay: String, why: String },
    #[error("{relay}: TLS failed: {why}; check that the relay's certificate is valid for this host name, or use smtp:// on loopback")]
    Tls { relay: String, why: String },
    #[error("{relay} does not offer STARTTLS; use smtps:// if it speaks TLS on another port, or smtp:// only on loopback or a trusted network")]
    NoStartTls { relay: String },
    #[error("{relay} refused {stage}: {answer}")]
    Refused { relay: String, stage: &'static str, answer: String },
    #[error("{relay} offers no AUTH mechanism that mail2line speaks (PLAIN, LOGIN), or no AUTH at all without TLS; use smtp+starttls:// or smtps://, or remove replies.username")]
    NoAuthMechanism { relay: String },
    #[error("{relay} refused the login {username:?}: {answer}; check replies.username and the password (replies.password, replies.password_file or $MAIL2LINE_REPLIES_PASSWORD)")]
    AuthRefused { relay: String, username: String, answer: String },
    #[error("{relay}: {why}")]
    Internal { relay: String, why: String },
}

impl RelayError {
    /// True when the relay could not be reached at all (down, unreachable, timed out), as
    /// opposed to reached and refusing: `check-config` exits 69 for those, 78 for the rest.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RelayError::Unreachable { .. })
    }
}

/// Why one mail was not sent. The text never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx answer, the relay down or unreachable, or a connection problem an
    /// admin can fix (TLS, the login).
    #[error("{0}")]
    Temporary(String),
    /// The relay refused this mail for good (5xx to MAIL FROM, RCPT TO or the data): sending it
    /// again would be refused again.
    #[error("{0}")]
    Permanent(String),
}

impl Relay {
    /// A relay at `url`, logging in as `username` (when not empty) with `password`; `hello_name`
    /// is what EHLO says (the gateway's host name).
    pub fn new(url: &RelayUrl, username: &str, password: Option<Secret>, hello_name: &str) -> Result<Relay, RelayError> {
        let password = password.filter(|p| !p.is_empty());
        if !username.is_empty() && password.is_none() {
            return Err(RelayError::NoPassword);
        }
        let tls = match url.security {
            Security::Plain => None,
            Security::StartTls | Security::Tls => Some(
                TlsParameters::new(url.host.clone()).map_err(|e| RelayError::TlsSetup { relay: url.to_string(), why: e.to_string() })?,
            ),
        };
        let hello = if hello_name.trim().is_empty() { ClientId::default() } else { ClientId::Domain(hello_name.trim().to_owned()) };
        Ok(Relay { url: url.clone(), username: username.to_owned(), password, hello, tls, timeout: DEFAULT_TIMEOUT })
    }

    /// Trusts the PEM certificate(s) in `pem` instead of the public web roots: a relay with a
    /// private CA or a self-signed certificate (and the tests). Without effect for `smtp://`.
    pub fn with_root_certificate(mut self, pem: &[u8]) -> Result<Relay, RelayError> {
        if self.url.security == Security::Plain {
            return Ok(self);
        }
        let setup = |why: String| RelayError::TlsSetup { relay: self.url.to_string(), why };
        let cert = Certificate::from_pem(pem).map_err(|e| setup(e.to_string()))?;
        let params = TlsParameters::builder(self.url.host.clone()).add_root_certificate(cert).build().map_err(|e| setup(e.to_string()))?;
        self.tls = Some(params);
        Ok(self)
    }

    /// How long connecting and each command may take ([`DEFAULT_TIMEOUT`] unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Relay {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// Sends `bytes` to the envelope's recipients. `Ok` means the relay answered 250 to the data.
    pub async fn send(&self, envelope: Envelope, bytes: Vec<u8>) -> Result<(), SendError> {
        let relay = self.clone();
        tokio::task::spawn_blocking(move || relay.send_blocking(&envelope, &bytes))
            .await
            .unwrap_or_else(|e| Err(SendError::Temporary(format!("{}: the sending thread failed: {e}", self.url))))
    }

    /// Connects, says EHLO, switches to TLS and logs in as configured, then says QUIT; tells
    /// what it saw (the relay's name, TLS, the login).
    pub async fn probe(&self) -> Result<String, RelayError> {
        let relay = self.clone();
        tokio::task::spawn_blocking(move || relay.probe_blocking())
            .await
            .unwrap_or_else(|e| Err(RelayError::Internal { relay: self.url.to_string(), why: format!("the probing thread failed: {e}") }))
    }

    fn send_blocking(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SendError> {
        let mut conn = self.connect().map_err(|e| SendError::Temporary(e.to_string()))?;
        match conn.send(envelope, bytes) {
            Ok(_) => {
                // The mail is the relay's now; a failing QUIT changes nothing about that.
                let _ = conn.quit();
                Ok(())
            }
            Err(e) => {
                conn.abort();
                let text = format!("{}: {}", self.url, self.redact(&e.to_string()));
                Err(if e.is_permanent() && !wants_login(&e) { SendError::Permanent(text) } else { SendError::Temporary(text) })
            }
        }
    }

    fn probe_blocking(&self) -> Result<String, RelayError> {
        let mut conn = self.connect()?;
        let info = conn.server_info();
        let mut saw = format!("{} answered EHLO as {}", self.url, info.name());
        let offered: Vec<String> = [Extension::StartTls, Extension::EightBitMime, Extension::SmtpUtfEight]
            .into_iter()
            .chain(MECHANISMS.map(Extension::Authentication))
            .filter(|x| info.supports_feature(*x))
            .map(|x| x.to_string())
            .collect();
        if !offered.is_empty() {
            saw.push_str(&format!(" (offering {})", offered.join(", ")));
        }
        saw.push_str(if conn.is_encrypted() { ", over TLS" } else { ", without TLS" });
        if !self.username.is_empty() {
            saw.push_str(&format!(", logged in as {:?}", self.username));
        }
        let _ = conn.quit();
        Ok(saw)
    }

    /// A connection ready for MAIL FROM: greeted, EHLO said, TLS and AUTH done as configured.
    fn connect(&self) -> Result<SmtpConnection, RelayError> {
        let relay = || self.url.to_string();
        let wrapper = if self.url.security == Security::Tls { self.tls.as_ref() } else { None };
        let mut conn = SmtpConnection::connect((self.url.host.as_str(), self.url.port), Some(self.timeout), &self.hello, wrapper, None)
            .map_err(|e| self.failure(&e, "the connection (greeting or EHLO)"))?;
        if let (Security::StartTls, Some(params)) = (self.url.security, &self.tls) {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                conn.abort();
                return Err(RelayError::NoStartTls { relay: relay() });
            }
            if let Err(e) = conn.starttls(params, &self.hello) {
                conn.abort();
                return Err(self.failure(&e, "STARTTLS"));
            }
        }
        if let Some(password) = &self.password {
            if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
                conn.abort();
                return Err(RelayError::NoAuthMechanism { relay: relay() });
            }
            let credentials = Credentials::new(self.username.clone(), password.expose().to_owned());
            if let Err(e) = conn.auth(&MECHANISMS, &credentials) {
                conn.abort();
                return Err(match self.failure(&e, "AUTH") {
                    RelayError::Refused { answer, .. } => RelayError::AuthRefused { relay: relay(), username: self.username.clone(), answer },
                    other => other,
                });
            }
        }
        Ok(conn)
    }

    /// A lettre error at `stage` as a [`RelayError`]: an answer, TLS, or the network.
    fn failure(&self, e: &lettre::transport::smtp::Error, stage: &'static str) -> RelayError {
        let relay = self.url.to_string();
        let why = self.redact(&e.to_string());
        if e.is_transient() || e.is_permanent() {
            RelayError::Refused { relay, stage, answer: why }
        } else if e.is_tls() || is_tls_failure(e) {
            RelayError::Tls { relay, why }
        } else {
            RelayError::Unreachable { relay, why }
        }
    }

    /// `text` without the password, as typed or as AUTH PLAIN and LOGIN encode it, in case a
    /// relay quotes what it was sent.
    fn redact(&self, text: &str) -> String {
        let Some(password) = &self.password else { return text.to_owned() };
        let b64 = base64::engine::general_purpose::STANDARD;
        let forms = [
            b64.encode(format!("\0{}\0{}", self.username, password.expose())),
            b64.encode(password.expose()),
            password.expose().to_owned(),
        ];
        forms.iter().fold(text.to_owned(), |out, form| out.replace(form.as_str(), "<redacted>"))
    }
}

/// Whether a failure came from TLS (a certificate not trusted, a handshake refused): lettre
/// reports a handshake failure during STARTTLS as a network error, with rustls' error inside.
fn is_tls_failure(e: &lettre::transport::smtp::Error) -> bool {
    use tokio_rustls::rustls;
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        let inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if err.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        source = err.source();
    }
    false
}

/// 530 at MAIL FROM: the relay wants a login (replies.username is missing). That refuses every
/// mail alike and is fixed in the configuration, so it is no reason to give this one up.
fn wants_login(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|code| code.to_string() == "530")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RelayUrl {
        s.parse().unwrap()
    }

    #[test]
    fn a_username_needs_a_password() {
        assert_eq!(Relay::new(&url("smtp://localhost"), "bot", None, "gw").unwrap_err(), RelayError::NoPassword);
        assert_eq!(Relay::new(&url("smtp://localhost"), "bot", Some(Secret::default()), "gw").unwrap_err(), RelayError::NoPassword);
        assert!(Relay::new(&url("smtp://localhost"), "", None, "gw").is_ok());
        assert!(Relay::new(&url("smtps://mail.example.com"), "bot", Some(Secret::new("pw")), "gw").is_ok());
    }

    #[test]
    fn the_password_is_cut_out_of_messages_and_debug() {
        let relay = Relay::new(&url("smtp://localhost"), "bot", Some(Secret::new("hunter2-pw")), "gw").unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode("\0bot\0hunter2-pw");
        let text = relay.redact(&format!("535 you sent {plain} and hunter2-pw"));
        assert_eq!(text, "535 you sent <redacted> and <redacted>");
        let debug = format!("{relay:?}");
        assert!(!debug.contains("hunter2") && debug.contains("smtp://localhost:25"), "{debug}");
    }
}
