//! The mail-side entry points: `mail2line sendmail` (also run as `sendmail` through a symlink)
//! and `mail2line send`. Both submit a mail to the running gateway over SMTP, so what they test
//! is the whole path: SMTP, the spool and LINE.
//!
//! `args` parses sendmail's command line, `message` prepares the mail (pure), `client` talks SMTP
//! and maps failures to exit statuses, `send` builds a mail from a text for `send`. This file
//! wires them to the configuration, stdin and the local identity (user and host name).

pub mod args;
pub mod client;
pub mod message;
pub mod send;

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use crate::config::{self, Config, Purpose};
use client::{Report, Server, EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOUSER, EX_USAGE};

/// Whether the program was started under the name `sendmail` (a symlink to mail2line).
pub fn invoked_as_sendmail(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "sendmail")
}

/// `mail2line sendmail ARGS` or `sendmail ARGS`: reads the mail on stdin and submits it.
/// Returns the exit status.
pub fn sendmail_main(raw: Vec<OsString>) -> u8 {
    let prog = "mail2line sendmail";
    let mut args = Vec::with_capacity(raw.len());
    for a in raw {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!("{prog}: argument {a:?} is not UTF-8");
                return EX_USAGE;
            }
        }
    }
    let inv = match args::parse(&args) {
        Ok(args::Parsed::Run(inv)) => inv,
        Ok(args::Parsed::Help) => {
            print!("{}", args::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("{prog}: {e} (see: mail2line sendmail --help)");
            return EX_USAGE;
        }
    };
    let (cfg, server) = match load(inv.config.as_deref(), prog) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let input = match read_stdin(&cfg) {
        Ok(i) => i,
        Err((code, e)) => {
            eprintln!("{prog}: {e}");
            return code;
        }
    };
    let ctx = context(&cfg);
    let prepared = match message::prepare(&input, &inv, &ctx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return EX_USAGE;
        }
    };
    let mut report = if prepared.recipients.is_empty() {
        Report::default()
    } else {
        client::submit(&server, prepared.sender.as_ref(), &prepared.recipients, &prepared.data)
    };
    for bad in prepared.malformed {
        report.failures.push(client::Failure {
            recipient: Some(bad),
            stage: client::Stage::Rcpt,
            text: "not a mail address; nothing sent to it".into(),
            exit: EX_NOUSER,
        });
    }
    if inv.verbose {
        for line in &report.transcript {
            eprintln!("{prog}: {line}");
        }
    }
    print_failures(prog, &report);
    report.exit_code()
}

/// Loads the configuration for a client command; on failure prints why and returns EX_CONFIG.
fn load(flag: Option<&Path>, prog: &str) -> Result<(Config, Server), u8> {
    let (path, cfg) = config::load_or_exit(flag, Purpose::Client, prog)?;
    match Server::from_config(&cfg) {
        Ok(s) => Ok((cfg, s)),
        Err(e) => {
            eprintln!("{prog}: {}: {e}", path.display());
            Err(EX_CONFIG)
        }
    }
}

/// All of stdin, refusing more than the gateway takes (`smtp.max_message_bytes`, plus room for
/// the headers mail2line may add): no reason to hold gigabytes in memory for a certain refusal.
fn read_stdin(cfg: &Config) -> Result<Vec<u8>, (u8, String)> {
    let limit = cfg.smtp.max_message_bytes;
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|e| (EX_IOERR, format!("cannot read the mail from stdin: {e}")))?;
    if input.len() > limit {
        return Err((
            EX_DATAERR,
            format!("the mail is larger than smtp.max_message_bytes ({limit} bytes), so the gateway would refuse it; nothing was sent"),
        ));
    }
    Ok(input)
}

fn print_failures(prog: &str, report: &Report) {
    for f in &report.failures {
        match &f.recipient {
            Some(r) => eprintln!("{prog}: {r}: {}", f.text),
            None => eprintln!("{prog}: {}", f.text),
        }
    }
}

/// The domain from the configuration, and who and where we are.
fn context(cfg: &Config) -> message::Context {
    let hostname = hostname();
    let default_sender = login_name()
        .map(|user| format!("{user}@{hostname}"))
        .filter(|a| a.parse::<lettre::Address>().is_ok());
    let mut headers = lettre::message::header::Headers::new();
    headers.set(lettre::message::header::Date::now());
    message::Context {
        domain: cfg.smtp.domain.clone(),
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
