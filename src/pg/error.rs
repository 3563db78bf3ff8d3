//! `PgError`, the one error of the PostgreSQL store, and the redaction that keeps the password
//! out of it.
//!
//! The driver's own texts are useful ("password authentication failed for user …", "Connection
//! refused") and are kept, but only after [`Redactor::text`] has replaced every form of the
//! password it was given (as written in the URL, percent-decoded, or passed separately): a
//! driver or server that one day echoes it back must still not put it in our logs.

use std::fmt::Display;

/// Why the PostgreSQL store could not do what was asked. Every message says what to do next
/// and never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    #[error("the PostgreSQL URL cannot be read: {reason}; write it as postgres://user@host:5432/dbname (the password separately, or percent-encoded after `user:`)")]
    Url { reason: String },

    #[error("the PostgreSQL password is given twice, in the URL and separately; keep only one of them")]
    PasswordTwice,

    #[error("cannot set up TLS for PostgreSQL: {reason}; connect without `sslmode=require`, or report this as a bug")]
    Tls { reason: String },

    #[error("cannot reach PostgreSQL at {target}: {reason}; check that the server runs and listens on that address and port (listen_addresses, pg_hba.conf), and that no firewall is in the way")]
    Unreachable { target: String, reason: String },

    #[error("no TLS connection to PostgreSQL at {target}: {reason}; the URL says sslmode=require, so the server needs `ssl = on` and a certificate for this host name from a public CA (a private CA cannot be verified yet); on a trusted network, leave sslmode out")]
    TlsFailed { target: String, reason: String },

    #[error("PostgreSQL at {target} refused the login of user {user:?}: {reason}; check the user name and its password (and the pg_hba.conf line that matches this client)")]
    Login { target: String, user: String, reason: String },

    #[error("PostgreSQL at {target} refused the connection: {reason}; check the database name in the URL and the server's log")]
    Refused { target: String, reason: String },

    #[error("PostgreSQL at {target} has {setting} = {value}: a commit could return before it is on disk, and mail2line answers 250 only for mail that is committed; set it back for this database and user (for example `ALTER DATABASE <db> RESET {setting}`, `ALTER ROLE <user> RESET {setting}`, or in postgresql.conf){hint}")]
    NotDurable { target: String, setting: &'static str, value: String, hint: &'static str },

    #[error("the database's schema is at version {found}, newer than this mail2line knows ({known}): a newer mail2line has migrated it, and this one must not write to it; run that newer version (or a later one) on every node")]
    SchemaTooNew { found: i64, known: i64 },

    #[error("PostgreSQL failed while {what}: {reason}; check the server's log (is the disk full, or the database read-only?)")]
    Query { what: String, reason: String },
}

/// Replaces the password, in every form it was given, with `<redacted>`.
#[derive(Clone, Default)]
pub(super) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Adds one form of a secret; empty ones are ignored (they would match everywhere).
    pub(super) fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so that a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `what` as text, with every secret replaced.
    pub(super) fn text(&self, what: impl Display) -> String {
        let mut text = what.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }
}

/// The password as written in a URL (`scheme://user:PASSWORD@host…`), before any decoding: a
/// URL that fails to parse has given us no password yet, but its text may be quoted back.
pub(super) fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    // The authority ends at the first '/', '?' or '#'; the user info at its last '@'.
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password)
}

/// `%XX` sequences decoded, as the driver does for a URL's password (lossy for bad UTF-8).
pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_url_is_found_before_parsing() {
        assert_eq!(url_password("postgres://u:pw@h:5432/db"), Some("pw"));
        assert_eq!(url_password("postgresql://u:p%40ss:w@h/db?sslmode=require"), Some("p%40ss:w"));
        assert_eq!(url_password("postgres://u:a@b@h/db"), Some("a@b"), "the last @ ends the user info");
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db?user=x"), None);
        assert_eq!(url_password("host=h user=u password=x"), None, "key=value form has no user info");
    }

    #[test]
    fn percent_decoding_matches_the_driver() {
        assert_eq!(percent_decoded("p%40ss%3aw"), "p@ss:w");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
    }

    #[test]
    fn every_form_of_the_secret_is_redacted() {
        let mut r = Redactor::default();
        r.add("");
        r.add("p%40ss");
        r.add("p@ss");
        assert_eq!(r.text("a p@ss b p%40ss c"), "a <redacted> b <redacted> c");
        assert_eq!(Redactor::default().text("nothing"), "nothing");
        assert!(!format!("{r:?}").contains("ss"));
    }
}
