//! `mail2line sendmail` (also run as `sendmail` through a symlink) and `mail2line send`: the
//! commands that hand a mail to the running gateway. This file owns the glue: the configuration
//! (`Purpose::Client`: no gateway secrets), stdin, the mail from [`crate::submit`] (`args`,
//! `message`, `send`), the submission, and what is printed and returned: the exit statuses are
//! sendmail's (sysexits), decided by `submit::client` from the gateway's replies.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use lettre::Address;

use super::{output, Error};
use crate::config::{Config, Purpose};
use crate::submit::client::{self, Report, Server, EX_CONFIG, EX_NOUSER, EX_USAGE};
use crate::submit::{args, context, message, send};

/// The command line of `send`.
#[derive(Debug, Clone)]
pub struct SendArgs {
    pub config: Option<PathBuf>,
    pub to: Vec<String>,
    pub subject: Option<String>,
    /// The text, or `-` for stdin.
    pub text: String,
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
        Err(e) => {
            eprintln!("{prog}: {e}");
            return e.exit_code();
        }
    };
    let ctx = context(&cfg.smtp.domain);
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
    let (path, cfg) = output::load_config(flag, Purpose::Client, prog)?;
    match Server::new(&cfg.sendmail, cfg.smtp.listen) {
        Ok(s) => Ok((cfg, s)),
        Err(e) => {
            eprintln!("{prog}: {}: {e}", path.display());
            Err(EX_CONFIG)
        }
    }
}

/// All of stdin, refusing more than the gateway takes (`smtp.max_message_bytes`, plus room for
/// the headers mail2line may add): no reason to hold gigabytes in memory for a certain refusal.
fn read_stdin(cfg: &Config) -> Result<Vec<u8>, Error> {
    let limit = cfg.smtp.max_message_bytes;
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut input)
        .map_err(|source| Error::Stdin { what: "the mail", source })?;
    if input.len() > limit {
        return Err(Error::TooLarge { limit });
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

/// Runs `send`; returns the exit status.
pub fn main(args: SendArgs) -> u8 {
    let prog = "mail2line send";
    let (cfg, server) = match load(args.config.as_deref(), prog) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let known = send::Targets {
        domain: cfg.smtp.domain.clone(),
        aliases: cfg.aliases.keys().cloned().collect(),
        followers: cfg.routing.followers_address.clone(),
    };
    let mut recipients = Vec::new();
    for to in &args.to {
        match send::target(to, &known) {
            Ok(a) => recipients.push(a),
            Err(e) => {
                eprintln!("{prog}: --to {e}");
                return EX_USAGE;
            }
        }
    }
    let text = if args.text == "-" {
        match read_text() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{prog}: {e}");
                return e.exit_code();
            }
        }
    } else {
        args.text.clone()
    };
    let ctx = context(&cfg.smtp.domain);
    let sender: Address = ctx
        .default_sender
        .as_deref()
        .and_then(|s| s.parse().ok())
        .or_else(|| format!("mail2line@{}", ctx.hostname).parse().ok())
        .unwrap_or_else(|| Address::new("mail2line", "localhost").expect("a valid literal address"));
    let data = match send::build(&sender, &recipients, args.subject.as_deref(), text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return output::EX_DATAERR;
        }
    };
    let report = client::submit(&server, Some(&sender), &recipients, &data);
    for (to, reply) in &report.delivered {
        println!("sent to {}: {reply}", to.join(", "));
    }
    print_failures(prog, &report);
    report.exit_code()
}

/// `send -`: the text on stdin, which must be UTF-8.
fn read_text() -> Result<String, Error> {
    let mut raw = Vec::new();
    std::io::stdin().lock().read_to_end(&mut raw).map_err(|source| Error::Stdin { what: "the text", source })?;
    String::from_utf8(raw).map_err(|_| Error::NotUtf8)
}
