//! `[replies]`: where answers from LINE are mailed and how, as written in the configuration
//! file and checked when it is loaded. The relay URL, the addresses and `max_age` are parsed by
//! the check and kept ([`Settings::relay_url`], [`Settings::max_age_parsed`]), so nothing
//! parses them again. The password is resolved by `config` like every other secret
//! (`$MAIL2LINE_REPLIES_PASSWORD`, else `password` or `password_file`, else the systemd
//! credential `replies-password`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::DurationValue;
use crate::secret::Secret;

/// The longest `window_hours` accepted: a year. Entries live `window_hours` × 7, and a bigger
/// window would keep every mail's sender for years.
const MAX_WINDOW_HOURS: u64 = 24 * 366;

/// `[replies]`: answers from LINE are mailed back through this relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `""` (off), `"smtp://host[:port]"`, `"smtp+starttls://host[:port]"` or `"smtps://host[:port]"`.
    pub relay: String,
    /// AUTH login at the relay; empty: no AUTH.
    pub username: String,
    /// `$MAIL2LINE_REPLIES_PASSWORD` overrides it.
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    /// The envelope sender and From address of every answer; required with `relay`.
    pub from: String,
    /// Where answers that belong to no mail go; empty: they are only logged.
    pub to: String,
    /// An unquoted answer goes to the last mail pushed to that chat within this many hours.
    pub window_hours: u64,
    /// Files from LINE larger than this are not attached (a line in the text says so).
    pub max_attachment_bytes: u64,
    /// Answers mailed per chat and hour at most.
    pub max_per_hour: u32,
    /// Mark the chat read once its answer is stored (costs no quota).
    pub acknowledge: bool,
    /// An answer not mailed after this long is given up (a dead entry `mail2line queue` lists).
    pub max_age: DurationValue,
    /// `relay` parsed; `None` while it is empty. Filled in by [`Settings::validate`].
    #[serde(skip)]
    pub relay_url: Option<RelayUrl>,
    /// `max_age` parsed; filled in by [`Settings::validate`].
    #[serde(skip)]
    pub max_age_parsed: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            relay: String::new(),
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            from: String::new(),
            to: String::new(),
            window_hours: 24,
            max_attachment_bytes: 10_485_760,
            max_per_hour: 60,
            acknowledge: false,
            max_age: DurationValue::Text("3d".into()),
            relay_url: None,
            max_age_parsed: Duration::from_secs(3 * 86400),
        }
    }
}

impl Settings {
    /// Whether answers are mailed at all (`relay` is set).
    pub fn enabled(&self) -> bool {
        !self.relay.trim().is_empty()
    }

    /// How long a remembered mail (its sender, subject and Message-ID) is kept: `window_hours`
    /// × 7, so a quoted answer to last week's mail still finds its thread.
    pub fn memory(&self) -> Duration {
        Duration::from_secs(self.window_hours.saturating_mul(7 * 3600))
    }

    /// Checks the values and keeps the parsed relay and `max_age`; `(key, message)` problems.
    /// `secrets_resolved` says whether the password was looked up (not for the client commands,
    /// which never read it), so that a username without one can be reported.
    pub fn validate(&mut self, secrets_resolved: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut problem = |key: &str, message: String| p.push((format!("replies.{key}"), message));
        self.relay_url = None;
        if self.enabled() {
            match self.relay.parse::<RelayUrl>() {
                Ok(url) => self.relay_url = Some(url),
                Err(e) => problem("relay", e.to_string()),
            }
            if self.from.trim().is_empty() {
                problem("from", "is required with replies.relay: the envelope sender and From address of the answers, e.g. \"line@example.com\"".into());
            }
        }
        for (key, value) in [("from", &self.from), ("to", &self.to)] {
            if !value.trim().is_empty() {
                if let Err(e) = lettre::Address::from_str(value.trim()) {
                    problem(key, format!("{value:?} is not a mail address ({e}); write it as \"name@example.com\", without a display name or <>"));
                }
            }
        }
        if secrets_resolved && !self.username.is_empty() && self.password.is_empty() {
            problem("password", "is required with replies.username (or password_file, or $MAIL2LINE_REPLIES_PASSWORD)".into());
        }
        if self.username.is_empty() && !self.password.is_empty() {
            problem("username", "is required with a password: the login at the relay".into());
        }
        if self.username.chars().any(char::is_control) {
            problem("username", "must not contain control characters".into());
        }
        if self.window_hours == 0 || self.window_hours > MAX_WINDOW_HOURS {
            problem("window_hours", format!("must be between 1 and {MAX_WINDOW_HOURS} (a year)"));
        }
        if self.max_per_hour == 0 {
            problem("max_per_hour", "must be at least 1".into());
        }
        match self.max_age.parse() {
            Ok(d) if d < Duration::from_secs(60) => problem("max_age", "must be at least one minute".into()),
            Ok(d) => self.max_age_parsed = d,
            Err(e) => problem("max_age", e.to_string()),
        }
        p
    }

    /// `from`, trimmed (checked to be an address when the relay is set).
    pub fn from_address(&self) -> &str {
        self.from.trim()
    }

    /// `to`, trimmed; `None` when it is empty.
    pub fn to_address(&self) -> Option<&str> {
        Some(self.to.trim()).filter(|t| !t.is_empty())
    }
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: no TLS at all (a relay on this machine or a trusted network).
    Plain,
    /// `smtp+starttls://`: plain connect, then STARTTLS, refusing to go on without it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

impl Security {
    fn scheme(self) -> &'static str {
        match self {
            Security::Plain => "smtp",
            Security::StartTls => "smtp+starttls",
            Security::Tls => "smtps",
        }
    }

    /// The port when the URL names none: 25, 587 (submission) or 465 (submissions).
    fn default_port(self) -> u16 {
        match self {
            Security::Plain => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
        }
    }
}

/// `[replies] relay` parsed: `smtp://host:port` and its TLS variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    pub security: Security,
    /// A name or an IP address, IPv6 without its brackets.
    pub host: String,
    pub port: u16,
}

/// Why `[replies] relay` is not a relay URL; says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {why}; write \"smtp://host:port\", \"smtp+starttls://host:port\" or \"smtps://host:port\" (the port may be left out: 25, 587, 465)")]
pub struct RelayUrlError {
    value: String,
    why: &'static str,
}

impl FromStr for RelayUrl {
    type Err = RelayUrlError;

    fn from_str(s: &str) -> Result<RelayUrl, RelayUrlError> {
        // A login written into the URL holds a password: the message never repeats it.
        let shown = match (s.split_once("://"), s.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
            _ => s.to_owned(),
        };
        let bad = |why| RelayUrlError { value: shown.clone(), why };
        let (scheme, rest) = s.trim().split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let security = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => Security::Plain,
            "smtp+starttls" => Security::StartTls,
            "smtps" => Security::Tls,
            _ => return Err(bad("has an unknown scheme")),
        };
        // Credentials in the URL would be printed wherever the URL is: they have keys of their own.
        if rest.contains('@') {
            return Err(bad("holds a login; put it in replies.username and replies.password instead"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad("has a path; only a host and a port belong there"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(|| bad("has text after ]"))?)),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("has no usable host"));
        }
        let port = match port {
            None => security.default_port(),
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("has a port that is not 1-65535"))?,
        };
        Ok(RelayUrl { security, host: host.to_owned(), port })
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.security.scheme(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.security.scheme(), self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<RelayUrl, RelayUrlError> {
        s.parse()
    }

    #[test]
    fn relay_urls_and_their_default_ports() {
        let u = |security, host: &str, port| Ok(RelayUrl { security, host: host.into(), port });
        assert_eq!(url("smtp://localhost"), u(Security::Plain, "localhost", 25));
        assert_eq!(url("smtp://127.0.0.1:2525"), u(Security::Plain, "127.0.0.1", 2525));
        assert_eq!(url("SMTP+STARTTLS://mail.example.com"), u(Security::StartTls, "mail.example.com", 587));
        assert_eq!(url("smtps://mail.example.com/"), u(Security::Tls, "mail.example.com", 465));
        assert_eq!(url("smtps://[::1]:1465"), u(Security::Tls, "::1", 1465));
        assert_eq!(url("smtp://[::1]"), u(Security::Plain, "::1", 25));
        assert_eq!(url("smtps://[::1]:1465").unwrap().to_string(), "smtps://[::1]:1465");
        assert_eq!(url("smtp+starttls://mx").unwrap().to_string(), "smtp+starttls://mx:587");
    }

    #[test]
    fn bad_relay_urls_say_why_and_how() {
        for (s, why) in [
            ("localhost:25", "has no scheme"),
            ("http://localhost", "has an unknown scheme"),
            ("smtp://user:pw@localhost", "holds a login"),
            ("smtp://localhost/path", "has a path"),
            ("smtp://:25", "has no usable host"),
            ("smtp://", "has no usable host"),
            ("smtp://::1:25", "has no usable host"),
            ("smtp://host:1:2", "has a port that is not 1-65535"),
            ("smtp://host:0", "has a port that is not 1-65535"),
            ("smtp://host:99999", "has a port that is not 1-65535"),
            ("smtp://[::1", "has an unclosed ["),
            ("smtp://[::1]x", "has text after ]"),
        ] {
            let e = url(s).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("smtp+starttls://host:port"), "{s}: {e}");
        }
        let e = url("smtp://user:pw-secret@localhost").unwrap_err().to_string();
        assert!(e.contains("\"smtp://…@localhost\" holds a login") && e.contains("replies.username") && !e.contains("pw-secret"), "{e}");
    }

    #[test]
    fn defaults_and_checks() {
        let mut s = Settings::default();
        assert!(!s.enabled());
        assert!(s.validate(true).is_empty());
        assert_eq!(s.relay_url, None);
        assert_eq!(s.memory(), Duration::from_secs(24 * 7 * 3600));
        s.relay = "smtp://127.0.0.1:2525".into();
        s.from = " line@example.com ".into();
        assert!(s.validate(true).is_empty());
        assert_eq!(s.relay_url.as_ref().map(|u| u.port), Some(2525));
        assert_eq!((s.from_address(), s.to_address()), ("line@example.com", None));
        s.max_age = DurationValue::Text("2h".into());
        assert!(s.validate(true).is_empty());
        assert_eq!(s.max_age_parsed, Duration::from_secs(7200));
    }
}
