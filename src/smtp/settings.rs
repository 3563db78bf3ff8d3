//! `[smtp]`: the server's settings as written in the configuration file, and their checks.
//! The loader (`config`) reads the table and fills in the users' password hashes; what is
//! parsed here (the certificate, the client and sender lists, the users' hashes) is kept, so `serve` uses it as is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::access::{AuthMode, ClientList, SenderList};
use super::auth::Users;
use super::tls::Tls;
use crate::credentials;
use crate::secret::Secret;

/// `[smtp]`: the listeners, limits, TLS, AUTH and allowlists of the SMTP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Recipients must be `<LINE id>@domain`.
    pub domain: String,
    /// Name in the 220 greeting and EHLO reply; defaults to `domain`.
    pub hostname: Option<String>,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    /// Simultaneous SMTP sessions; more are answered 421 and closed.
    pub max_sessions: usize,
    /// Seconds a client may stay silent before we hang up (RFC 5321 suggests 5 minutes).
    pub idle_timeout_secs: u64,
    /// Seconds the whole DATA phase may take, however steadily the client trickles
    /// (RFC 5321 suggests 10 minutes for the terminator).
    pub data_timeout_secs: u64,
    /// NOOP/RSET/VRFY/HELP tolerated between mails before `421 4.7.0` and hang-up.
    pub max_junk_commands: u32,
    /// Mail data held in memory across all sessions, in bytes; past it DATA is written to a
    /// file under `storage.dir` instead (see `smtp/inflight.rs`).
    pub max_inflight_bytes: usize,
    /// Seconds SIGTERM waits for sessions in the middle of a mail.
    pub shutdown_grace_secs: u64,
    /// Refuse (550 5.1.1) user ids that are not active followers of the bot.
    pub require_follower: bool,
    /// PEM certificate chain for STARTTLS and `tls_listen`; reloaded on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// A second listener where clients speak TLS from the first byte (port 465 style).
    pub tls_listen: Option<SocketAddr>,
    /// Refuse MAIL before STARTTLS (530 5.7.0).
    pub require_tls: bool,
    /// "off" | "optional" | "required"; see `smtp/access.rs`.
    pub auth: AuthMode,
    /// Offer AUTH without TLS to clients on 127.0.0.0/8 and ::1.
    pub allow_plaintext_auth_on_loopback: bool,
    /// CIDRs or addresses that may connect; empty: everyone.
    pub allowed_clients: Vec<String>,
    /// `@domain` or address patterns MAIL FROM must match; empty: any sender.
    pub allowed_senders: Vec<String>,
    /// `[[smtp.users]]`: logins for AUTH.
    pub users: Vec<User>,
    /// Sessions at once from one client address; 0: no limit.
    pub max_sessions_per_ip: usize,
    /// Mails (MAIL commands) a minute from one client address; 0: no limit.
    pub max_mails_per_minute_per_ip: u32,
    /// Failed commands (errors, refused recipients, failed AUTH) before the client is dropped.
    pub max_failed_commands: u32,
    /// Delay before answering the first failed AUTH from an address; it doubles with each
    /// further failure, up to 30 s.
    pub auth_failure_delay_ms: u64,
    /// Password checks (argon2, 19 MiB each) run at once; 0: one per core.
    pub max_auth_checks: usize,
    /// Sessions that may wait for a password check; past it AUTH gets 454 4.7.0.
    pub max_auth_queue: usize,
    /// `tls_cert_file` and `tls_key_file` loaded, ready to serve; filled in by [`Settings::validate`].
    #[serde(skip)]
    pub tls: Option<Arc<Tls>>,
    /// `allowed_clients` parsed; filled in by [`Settings::validate`].
    #[serde(skip)]
    pub clients: ClientList,
    /// `allowed_senders` parsed; filled in by [`Settings::validate`].
    #[serde(skip)]
    pub senders: SenderList,
    /// `users` with their hashes checked, as AUTH takes them; filled in by [`Settings::validate`].
    #[serde(skip)]
    pub logins: Arc<Users>,
}

/// `smtp.max_auth_checks` above this would let AUTH alone take gigabytes (19 MiB a check).
const MAX_AUTH_CHECKS: usize = 256;
/// `smtp.max_auth_queue` above this only makes honest logins wait longer behind guesses.
const MAX_AUTH_QUEUE: usize = 100_000;

/// One `[[smtp.users]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// argon2 PHC string from `mail2line hash-password`.
    #[serde(default)]
    pub password_hash: Secret,
    /// A file holding the hash; instead of the inline key.
    #[serde(default)]
    pub password_hash_file: Option<PathBuf>,
}

impl User {
    /// The environment variable that overrides this user's hash:
    /// `MAIL2LINE_SMTP_USER_<NAME>_PASSWORD_HASH`, the name upper-cased with other characters as `_`.
    pub fn env_var(&self) -> String {
        let name: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        format!("MAIL2LINE_SMTP_USER_{name}_PASSWORD_HASH")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:2525".parse().expect("valid literal"),
            domain: String::new(),
            hostname: None,
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            max_sessions: 2000,
            idle_timeout_secs: 300,
            data_timeout_secs: 600,
            max_junk_commands: super::session::DEFAULT_MAX_JUNK_COMMANDS,
            max_inflight_bytes: 128 * 1024 * 1024,
            shutdown_grace_secs: 30,
            require_follower: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_listen: None,
            require_tls: false,
            auth: AuthMode::Off,
            allow_plaintext_auth_on_loopback: false,
            allowed_clients: Vec::new(),
            allowed_senders: Vec::new(),
            users: Vec::new(),
            max_sessions_per_ip: 100,
            max_mails_per_minute_per_ip: 600,
            max_failed_commands: super::session::DEFAULT_MAX_ERRORS,
            auth_failure_delay_ms: 1000,
            max_auth_checks: 0,
            max_auth_queue: 64,
            tls: None,
            clients: ClientList::default(),
            senders: SenderList::default(),
            logins: Arc::default(),
        }
    }
}

impl Settings {
    /// Problems as `(key, message)`: the domain and limits, and with `security` (every command
    /// but the mail clients) TLS, AUTH, the allowlists and the users' hashes.
    pub fn validate(&mut self, security: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let domain = &self.domain;
        if domain.is_empty() {
            p.push(("smtp.domain".to_owned(), "is required: the mail domain recipients use, e.g. \"text.line.example.com\"".into()));
        } else if !is_domain(domain) {
            p.push(("smtp.domain".to_owned(), format!("{domain:?} is not a domain name (letters, digits, '-' and '.', no trailing dot)")));
        }
        if self.max_message_bytes < 1024 {
            p.push(("smtp.max_message_bytes".to_owned(), "must be at least 1024".into()));
        }
        if !(1..=1000).contains(&self.max_recipients) {
            p.push(("smtp.max_recipients".to_owned(), "must be between 1 and 1000".into()));
        }
        if self.max_sessions == 0 {
            p.push(("smtp.max_sessions".to_owned(), "must be at least 1".into()));
        }
        if self.idle_timeout_secs == 0 {
            p.push(("smtp.idle_timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if self.data_timeout_secs == 0 {
            p.push(("smtp.data_timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if self.max_junk_commands == 0 {
            p.push(("smtp.max_junk_commands".to_owned(), "must be at least 1".into()));
        }
        if self.max_inflight_bytes < 2 * self.max_message_bytes.max(1024 * 1024) {
            p.push((
                "smtp.max_inflight_bytes".to_owned(),
                format!(
                    "must be at least twice smtp.max_message_bytes ({} bytes) and 2 MiB: half is for mail being received, half for mail being parsed",
                    self.max_message_bytes
                ),
            ));
        }
        if security {
            p.extend(self.validate_security());
        }
        p
    }

    /// TLS, AUTH, allowlists and per-address limits; keeps the certificate and the lists it
    /// loaded.
    fn validate_security(&mut self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let smtp = &*self;
        let key = |k: &str| format!("smtp.{k}");
        let mut tls_loaded = None;
        match (&smtp.tls_cert_file, &smtp.tls_key_file) {
            (Some(cert), Some(k)) => {
                match Tls::load(cert, k) {
                    Ok(tls) => tls_loaded = Some(Arc::new(tls)),
                    Err(e) => p.push((key("tls_cert_file"), e.to_string())),
                }
            }
            (Some(_), None) => {
                p.push((key("tls_cert_file"), "needs smtp.tls_key_file too (the PEM private key of the certificate)".into()))
            }
            (None, Some(_)) => p.push((key("tls_key_file"), "needs smtp.tls_cert_file too (the PEM certificate chain)".into())),
            (None, None) => {}
        }
        let no_cert = smtp.tls_cert_file.is_none() || smtp.tls_key_file.is_none();
        if smtp.tls_listen.is_some() && no_cert {
            p.push((key("tls_listen"), "needs smtp.tls_cert_file and smtp.tls_key_file".into()));
        }
        if smtp.tls_listen.is_some_and(|t| t == smtp.listen && t.port() != 0) {
            p.push((key("tls_listen"), "must differ from smtp.listen".into()));
        }
        if smtp.require_tls && no_cert {
            p.push((key("require_tls"), "needs smtp.tls_cert_file and smtp.tls_key_file (there is no TLS to require)".into()));
        }
        if smtp.auth != AuthMode::Off {
            if smtp.users.is_empty() {
                p.push((
                    key("auth"),
                    "is on but there are no [[smtp.users]]; add one with name and password_hash (from `mail2line hash-password`)".into(),
                ));
            }
            if no_cert && !smtp.allow_plaintext_auth_on_loopback {
                p.push((
                    key("auth"),
                    "needs TLS (smtp.tls_cert_file and smtp.tls_key_file): passwords are never accepted in the clear, except on loopback with smtp.allow_plaintext_auth_on_loopback = true".into(),
                ));
            }
        }
        let clients = ClientList::parse(&smtp.allowed_clients).map_err(|e| p.push((key("allowed_clients"), e.to_string()))).unwrap_or_default();
        let senders = SenderList::parse(&smtp.allowed_senders).map_err(|e| p.push((key("allowed_senders"), e.to_string()))).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut logins = Users::new();
        for (i, user) in smtp.users.iter().enumerate() {
            if user.name.is_empty() || user.name.chars().any(|c| c.is_control() || c == ' ') {
                p.push((format!("smtp.users[{i}].name"), format!("{:?} is not a usable login (no spaces or control characters)", user.name)));
            } else if !seen.insert(user.name.as_str()) {
                p.push((format!("smtp.users[{i}].name"), format!("{:?} appears twice", user.name)));
            }
            if user.password_hash.is_empty() {
                p.push((
                    format!("smtp.users[{i}].password_hash"),
                    format!(
                        "is required (or password_hash_file, ${}, or the systemd credential {}); make one with: echo -n PASSWORD | mail2line hash-password",
                        user.env_var(),
                        credentials::smtp_user_password_hash(&user.name).unwrap_or_else(|| "smtp-user-<name>-password-hash".into())
                    ),
                ));
            } else if let Err(e) = logins.add(&user.name, &user.password_hash) {
                p.push((format!("smtp.users[{i}].password_hash"), e.to_string()));
            }
        }
        if smtp.max_failed_commands == 0 {
            p.push((key("max_failed_commands"), "must be at least 1".into()));
        }
        if smtp.max_auth_checks > MAX_AUTH_CHECKS {
            p.push((
                key("max_auth_checks"),
                format!("must be at most {MAX_AUTH_CHECKS} (each check holds 19 MiB; 0 = one per core, the usual choice)"),
            ));
        }
        if smtp.max_auth_queue > MAX_AUTH_QUEUE {
            p.push((key("max_auth_queue"), format!("must be at most {MAX_AUTH_QUEUE}")));
        }
        (self.tls, self.clients, self.senders, self.logins) = (tls_loaded, clients, senders, Arc::new(logins));
        p
    }
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
