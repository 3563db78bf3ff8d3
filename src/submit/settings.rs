//! `[sendmail]`: how `mail2line sendmail` and `mail2line send` reach the gateway, and its
//! checks. Owned here, by the client side that reads it; `config` only reads the file into it
//! and resolves its password (`$MAIL2LINE_SENDMAIL_PASSWORD`, `password_file`, a credential).

use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;

/// `[sendmail]`: how `mail2line sendmail` and `mail2line send` reach the gateway. Only those
/// client commands read it (and only they read `password_file`), so a host that merely submits
/// mail can have a configuration with just `[smtp] domain` and this table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `"host:port"` of the gateway; unset: `smtp.listen` (an unspecified address as loopback).
    pub server: Option<String>,
    /// Login for gateways with `smtp.auth`; empty: no AUTH.
    pub username: String,
    /// `$MAIL2LINE_SENDMAIL_PASSWORD` overrides it.
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    pub tls: ClientTls,
    /// PEM certificates to trust instead of the public web roots (e.g. a self-signed gateway).
    pub tls_ca_file: Option<PathBuf>,
    /// Seconds to wait for the gateway to connect or answer one command.
    pub timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: None,
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            tls: ClientTls::Off,
            tls_ca_file: None,
            timeout_secs: 60,
        }
    }
}

/// `[sendmail] tls`: how the client protects the connection to the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTls {
    /// Plain SMTP: fine on loopback, the default server.
    #[default]
    Off,
    /// Plain connect, then STARTTLS (refusing to go on without it).
    Starttls,
    /// TLS from the first byte (`smtp.tls_listen`, port 465 style).
    Tls,
}

impl Settings {
    /// Checks the table; `(key, message)` problems. Whether a login has its password is known
    /// only where it was resolved: for the client commands (`client`).
    pub fn validate(&self, client: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let s = self;
        if let Some(server) = &s.server {
            if let Err(e) = split_host_port(server) {
                p.push(("sendmail.server".to_owned(), e.to_string()));
            }
        }
        if s.timeout_secs == 0 {
            p.push(("sendmail.timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if s.tls_ca_file.is_some() && s.tls == ClientTls::Off {
            p.push(("sendmail.tls_ca_file".to_owned(), "is used only with tls = \"starttls\" or \"tls\"".into()));
        }
        if client {
            if !s.username.is_empty() && s.password.is_empty() {
                p.push((
                    "sendmail.password".to_owned(),
                    "is required with sendmail.username (or password_file, or $MAIL2LINE_SENDMAIL_PASSWORD)".into(),
                ));
            }
            if s.username.is_empty() && !s.password.is_empty() {
                p.push(("sendmail.username".to_owned(), "is required with a password: the login from [[smtp.users]] name".into()));
            }
        }
        p
    }
}

/// A `host:port` that is not one (`[sendmail] server`, see [`split_host_port`]); says how
/// to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not host:port, e.g. \"127.0.0.1:2525\", \"mx.example.com:587\" or \"[::1]:2525\"")]
pub struct HostPortError(pub String);

/// `"host:port"` or `"[v6]:port"` (for `[sendmail] server`): the host (without brackets) and
/// the port.
pub fn split_host_port(s: &str) -> Result<(String, u16), HostPortError> {
    let bad = || HostPortError(s.to_owned());
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("127.0.0.1:2525"), Ok(("127.0.0.1".into(), 2525)));
        assert_eq!(split_host_port("mx.example.com:587"), Ok(("mx.example.com".into(), 587)));
        assert_eq!(split_host_port("[::1]:25"), Ok(("::1".into(), 25)));
        for bad in ["", "host", "host:", ":25", "host:0", "host:99999", "::1:25", "[::1:25", "a b:25"] {
            assert!(split_host_port(bad).is_err(), "{bad:?}");
        }
    }
}
