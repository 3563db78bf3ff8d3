//! The client side of the gateway, behind `mail2line sendmail` (also run as `sendmail` through a
//! symlink) and `mail2line send` (`commands/send.rs`): both submit a mail to the running gateway
//! over SMTP, so what they test is the whole path: SMTP, the spool and LINE.
//!
//! `args` parses sendmail's command line, `message` prepares the mail (pure), `client` talks SMTP
//! and maps failures to exit statuses, `send` builds a mail from a text for `send`, `error` is
//! why the client refuses before it talks to the gateway, `settings` is `[sendmail]`. This file
//! knows the local identity (user and host name) a mail is sent as. Nothing here reads the
//! configuration file: `commands/send.rs` hands over the pieces it needs.

pub mod args;
pub mod client;
mod error;
pub mod message;
pub mod send;
pub mod settings;

use std::path::Path;

pub use error::Error;
pub use settings::Settings;

/// Whether the program was started under the name `sendmail` (a symlink to mail2line).
pub fn invoked_as_sendmail(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "sendmail")
}

/// The gateway's domain (`smtp.domain`), and who and where we are.
pub fn context(domain: &str) -> message::Context {
    let hostname = hostname();
    let default_sender = login_name()
        .map(|user| format!("{user}@{hostname}"))
        .filter(|a| a.parse::<lettre::Address>().is_ok());
    let mut headers = lettre::message::header::Headers::new();
    headers.set(lettre::message::header::Date::now());
    message::Context {
        domain: domain.to_owned(),
        hostname,
        default_sender,
        date: headers.get_raw("Date").unwrap_or_default().to_owned(),
    }
}

/// This machine's name (the same name lettre says in EHLO), or `localhost`.
fn hostname() -> String {
    match lettre::transport::smtp::extension::ClientId::default() {
        lettre::transport::smtp::extension::ClientId::Domain(d) if !d.is_empty() => d,
        _ => "localhost".into(),
    }
}

/// Who runs us: `$LOGNAME`, `$USER`, else the name of our uid in /etc/passwd (PHP-FPM and some
/// cron daemons clear the environment).
fn login_name() -> Option<String> {
    let usable = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    for var in ["LOGNAME", "USER"] {
        if let Ok(v) = std::env::var(var) {
            if usable(&v) {
                return Some(v);
            }
        }
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_name(&passwd, uid).filter(|n| usable(n))
}

/// The user name of `uid` in a passwd file.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let (name, _, id) = (f.next()?, f.next()?, f.next()?);
        (id.parse() == Ok(uid)).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_name() {
        assert!(invoked_as_sendmail("/usr/sbin/sendmail".as_ref()));
        assert!(invoked_as_sendmail("sendmail".as_ref()));
        assert!(!invoked_as_sendmail("/usr/local/bin/mail2line".as_ref()));
        assert!(!invoked_as_sendmail("/usr/sbin/sendmail.postfix".as_ref()));
    }

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbroken\n";
        assert_eq!(passwd_name(passwd, 33).as_deref(), Some("www-data"));
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000), None);
    }
}
