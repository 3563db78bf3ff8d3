//! The `sendmail` command line, as real callers write it. Pure: arguments in, an
//! [`Invocation`] or a usage message out.
//!
//! clap cannot parse it: sendmail's options are getopt-style letters that take their value
//! attached or as the next argument and may be bundled (`-ti`, `-FCronDaemon`, `-oem`, `-f root`,
//! `-fCronDaemon`), and callers pass options that mean something only to a full MTA. What they
//! send, and what happens to it:
//!
//! - cron (Debian): `-FCronDaemon -i -B8BITMIME -oem USER`; cronie: `-FCronDaemon -i -odi -oem
//!   -oi -t -f USER`; PHP `mail()`: `-t -i [-f FROM]`; mail(1), git: `-i [-f FROM] [--] RCPT…`.
//! - Acted on: `-t` (recipients from the headers), `-i`/`-oi` (a lone `.` line does not end the
//!   mail), `-f`/`-r` (envelope sender), `-F` (full name for an added `From:`), `-v` (print the
//!   gateway's replies), `-C PATH`/`--config PATH` (configuration file), `-bm` (the default mode).
//! - Ignored because they only tune what an MTA does with its queue or reports: `-B` (body type),
//!   `-o` e/d/m/o/s options (error and delivery modes), `-e`, `-m`, `-n`, `-G`, `-U`, `-L`, `-N`,
//!   `-R`, `-V`, `-O`, `-A`, `-h`, `-p`. mail2line always delivers at once and reports on stderr
//!   and in the exit status.
//! - Refused with EX_USAGE (64): every other mode (`-bs`, `-bp`, `-bi`, `-bd`, `-bv`, `-q`, …),
//!   and any option not listed here, so a caller never believes something happened that did not.

use std::path::PathBuf;

use super::Error;

/// What one `sendmail` run should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// `-t`: take recipients from To/Cc/Bcc (in addition to those on the command line).
    pub from_headers: bool,
    /// `-i`/`-oi`: a line holding only `.` is part of the mail, not its end.
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender; `Some("")` for the null sender (`-f ''` or `-f '<>'`).
    pub sender: Option<String>,
    /// `-F`: the full name for a `From:` header mail2line adds.
    pub full_name: Option<String>,
    /// `-C`/`--config`: the configuration file.
    pub config: Option<PathBuf>,
    /// `-v`: print each reply of the gateway on stderr.
    pub verbose: bool,
    /// Recipient arguments as written (each may hold a comma-separated list).
    pub recipients: Vec<String>,
}

/// The outcome of parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Invocation),
    /// `--help`: print [`USAGE`].
    Help,
}

pub const USAGE: &str = "\
usage: mail2line sendmail [-t] [-i] [-f FROM] [-F NAME] [-C CONFIG] [-v] [--] [RCPT...]
       (or through a symlink named sendmail: sendmail [-t] [-i] [-f FROM] [RCPT...])

Reads one mail (RFC 5322: headers, blank line, body; or just text) on stdin and submits it to
the mail2line gateway over SMTP.

  -t           recipients from the To, Cc and Bcc headers too; Bcc is removed before sending
  -i, -oi      a line with only \".\" does not end the mail
  -f FROM, -r FROM
               envelope sender (default: the From header, else USER@HOSTNAME); -f '' for <>
  -F NAME      full name for the From header added when the mail has none
  -C CONFIG, --config CONFIG
               configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it
               exists, else /etc/mail2line/config.toml)
  -v           print the gateway's replies
  -bm          read the mail from stdin (the default; other -b modes are not supported)
  Ignored: -B TYPE, -oem and other -oe/-od/-om options, -em, -m, -n, -G, -U, -L TAG, -N DSN,
  -R RET, -V ENVID, -O OPT, -A c|m, -h N, -p PROTO.

A recipient without @ is taken as RCPT@<smtp.domain> (an alias, a LINE id, or refused).
Exit status: 0 sent; 64 bad usage; 65 mail refused; 67 a recipient refused; 74 cannot read
stdin; 75 try again later (gateway down or answered 4xx); 77 gateway refused us (5.7.x);
78 configuration problem.
";

/// Parses the arguments after the program name.
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Parsed, Error> {
    let mut inv = Invocation::default();
    let mut i = 0;
    let mut only_recipients = false;
    while i < args.len() {
        let arg = args[i].as_ref();
        i += 1;
        if only_recipients || arg == "-" || !arg.starts_with('-') {
            inv.recipients.push(arg.to_owned());
            continue;
        }
        if arg == "--" {
            only_recipients = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some(("config", path)) => inv.config = Some(nonempty_path(path, "--config")?),
                None if long == "config" => {
                    let path = args.get(i).map(AsRef::as_ref).ok_or(Error::NeedsFileName("--config"))?;
                    i += 1;
                    inv.config = Some(nonempty_path(path, "--config")?);
                }
                None if long == "help" => return Ok(Parsed::Help),
                _ => return Err(Error::UnknownOption(arg.to_owned())),
            }
            continue;
        }
        // A cluster of letters: flags, until one that takes a value (the rest of the cluster, or
        // the next argument).
        let cluster = &arg[1..];
        for (pos, letter) in cluster.char_indices() {
            if !takes_value(letter) {
                flag(&mut inv, letter)?;
                continue;
            }
            let attached = &cluster[pos + letter.len_utf8()..];
            let value = if !attached.is_empty() {
                attached.to_owned()
            } else {
                let v = args.get(i).map(|s| s.as_ref().to_owned()).ok_or(Error::NeedsValue(letter))?;
                i += 1;
                v
            };
            option(&mut inv, letter, &value)?;
            break;
        }
    }
    Ok(Parsed::Run(inv))
}

fn takes_value(letter: char) -> bool {
    "ABCFLNORVXbdefhopr".contains(letter)
}

fn flag(inv: &mut Invocation, letter: char) -> Result<(), Error> {
    match letter {
        't' => inv.from_headers = true,
        'i' => inv.ignore_dots = true,
        'v' => inv.verbose = true,
        // metoo, no aliasing, gateway/initial submission: MTA tuning with nothing to tune here.
        'm' | 'n' | 'G' | 'U' => {}
        'q' => return Err(Error::Unsupported("-q is not supported: mail2line has no queue; the gateway's spool is `mail2line queue`".into())),
        'I' => {
            return Err(Error::Unsupported(
                "-I (newaliases) is not supported: mail2line has no alias database; aliases are in [aliases] of the configuration".into(),
            ))
        }
        other => return Err(Error::UnknownOption(format!("-{other}"))),
    }
    Ok(())
}

fn option(inv: &mut Invocation, letter: char, value: &str) -> Result<(), Error> {
    match letter {
        'f' | 'r' => {
            let v = value.trim();
            inv.sender = Some(if v == "<>" { String::new() } else { v.to_owned() });
        }
        'F' => inv.full_name = Some(value.to_owned()),
        'C' => inv.config = Some(nonempty_path(value, "-C")?),
        'b' => {
            if value != "m" {
                return Err(Error::Unsupported(format!(
                    "-b{value} is not supported: mail2line only submits one mail read from stdin (-bm); it has no queue, alias database, daemon or SMTP-on-stdin mode (for Symfony Mailer or Laravel, use the command \"sendmail -t -i\")"
                )));
            }
        }
        'o' => match value {
            "i" => inv.ignore_dots = true,
            // Error reporting (-oem, -oep, ...), delivery mode (-odi, -odb, ...), metoo, old
            // headers, save empty: mail2line always delivers at once and reports on stderr.
            v if v.starts_with('e') || v.starts_with('d') || matches!(v, "m" | "o" | "s") => {}
            v => return Err(Error::UnknownOption(format!("-o{v}"))),
        },
        // Body type (lettre declares 8BITMIME when the mail needs it), error mode, syslog tag,
        // DSN options, envelope id, MTA options, submit/MTA config choice, hop count, protocol.
        'B' | 'e' | 'L' | 'N' | 'R' | 'V' | 'O' | 'A' | 'h' | 'p' => {}
        'd' => return Err(Error::Unsupported("-d (debugging) is not supported; use -v to see the gateway's replies".into())),
        'X' => return Err(Error::Unsupported("-X (traffic log) is not supported; use -v to see the gateway's replies".into())),
        other => return Err(Error::UnknownOption(format!("-{other}"))),
    }
    Ok(())
}

fn nonempty_path(value: &str, option: &'static str) -> Result<PathBuf, Error> {
    if value.is_empty() {
        return Err(Error::NeedsFileName(option));
    }
    Ok(PathBuf::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Invocation {
        match parse(args) {
            Ok(Parsed::Run(inv)) => inv,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn refused(args: &[&str]) -> String {
        parse(args).expect_err(&format!("{args:?} should be refused")).to_string()
    }

    #[test]
    fn what_cron_sends() {
        // Debian cron.
        let inv = run(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]);
        assert_eq!(
            inv,
            Invocation { ignore_dots: true, full_name: Some("CronDaemon".into()), recipients: vec!["root".into()], ..Default::default() }
        );
        // cronie.
        let inv = run(&["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"]);
        assert!(inv.from_headers && inv.ignore_dots);
        assert_eq!((inv.sender.as_deref(), inv.recipients.len()), (Some("root"), 0));
    }

    #[test]
    fn what_php_mail_and_git_send() {
        let inv = run(&["-t", "-i"]);
        assert!(inv.from_headers && inv.ignore_dots && inv.recipients.is_empty() && inv.sender.is_none());
        let inv = run(&["-t", "-i", "-fwebmaster@example.com"]);
        assert_eq!(inv.sender.as_deref(), Some("webmaster@example.com"));
        let inv = run(&["-i", "-f", "dev@example.com", "--", "U0@x", "-odd@x"]);
        assert_eq!(inv.recipients, vec!["U0@x", "-odd@x"]);
        assert_eq!(inv.sender.as_deref(), Some("dev@example.com"));
    }

    #[test]
    fn bundles_attached_and_separate_values() {
        let inv = run(&["-ti", "-F", "Backup Job", "-r", "<>", "-bm", "-v", "a@x", "b@x"]);
        assert!(inv.from_headers && inv.ignore_dots && inv.verbose);
        assert_eq!(inv.full_name.as_deref(), Some("Backup Job"));
        assert_eq!(inv.sender.as_deref(), Some(""));
        assert_eq!(inv.recipients, vec!["a@x", "b@x"]);
        // The value ends the cluster: `-tfroot` is -t and -f root.
        let inv = run(&["-tfroot"]);
        assert!(inv.from_headers);
        assert_eq!(inv.sender.as_deref(), Some("root"));
        assert_eq!(run(&["-f", ""]).sender.as_deref(), Some(""));
        // Options after recipients still count (GNU getopt permutes too); `-` is a recipient.
        let inv = run(&["a@x", "-i", "-"]);
        assert!(inv.ignore_dots);
        assert_eq!(inv.recipients, vec!["a@x", "-"]);
    }

    #[test]
    fn config_file() {
        for args in [&["-C", "/etc/m.toml"][..], &["-C/etc/m.toml"], &["--config", "/etc/m.toml"], &["--config=/etc/m.toml"]] {
            assert_eq!(run(args).config, Some(PathBuf::from("/etc/m.toml")), "{args:?}");
        }
        assert_eq!(refused(&["--config"]), "--config needs a file name");
        assert_eq!(refused(&["--config="]), "--config needs a file name");
    }

    #[test]
    fn harmless_mta_options_are_ignored() {
        let inv = run(&[
            "-odb", "-oee", "-om", "-em", "-m", "-n", "-G", "-U", "-L", "tag", "-N", "never", "-R", "hdrs", "-V", "id1", "-O", "DeliveryMode=b",
            "-Am", "-h", "5", "-pesmtp", "-B", "7BIT", "x@y",
        ]);
        assert_eq!(inv, Invocation { recipients: vec!["x@y".into()], ..Default::default() });
    }

    #[test]
    fn unsupported_and_unknown_options_are_refused_with_a_reason() {
        assert!(refused(&["-bs"]).contains("-bs is not supported") && refused(&["-bs"]).contains("sendmail -t -i"));
        assert!(refused(&["-bp"]).starts_with("-bp is not supported"));
        assert!(refused(&["-q"]).contains("no queue"));
        assert!(refused(&["-q1h"]).contains("no queue"));
        assert!(refused(&["-I"]).contains("newaliases"));
        assert!(refused(&["-d0.1"]).contains("-v"));
        assert!(refused(&["-X", "/tmp/log"]).contains("traffic log"));
        assert_eq!(refused(&["-k"]), "unknown option -k");
        assert_eq!(refused(&["-tk"]), "unknown option -k");
        assert_eq!(refused(&["-oA/etc/aliases"]), "unknown option -oA/etc/aliases");
        assert_eq!(refused(&["--verbose"]), "unknown option --verbose");
        assert_eq!(refused(&["-f"]), "-f needs a value");
        assert_eq!(refused(&["-é"]), "unknown option -é");
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert_eq!(parse::<&str>(&[]), Ok(Parsed::Run(Invocation::default())));
    }
}
