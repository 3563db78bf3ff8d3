//! `mail2line send --to <id|alias> [--subject S] TEXT|-`: a text message to a LINE id or alias,
//! from the shell, through the running gateway (so it tests SMTP, the spool and LINE together).
//!
//! The mail is built with lettre's builder (UTF-8 text/plain, encoded as needed, with Date and
//! Message-ID) and submitted by the same code as `sendmail`, with the same exit statuses.

use std::io::Read;
use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Address, Message};

use super::client::{self, EX_DATAERR, EX_IOERR, EX_USAGE};
use crate::config::Config;
use crate::envelope::Recipient;

/// The command line of `send`.
#[derive(Debug, Clone)]
pub struct SendArgs {
    pub config: Option<PathBuf>,
    pub to: Vec<String>,
    pub subject: Option<String>,
    /// The text, or `-` for stdin.
    pub text: String,
}

/// Runs `send`; returns the exit status.
pub fn main(args: SendArgs) -> u8 {
    let prog = "mail2line send";
    let (cfg, server) = match super::load(args.config.as_deref(), prog) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut recipients = Vec::new();
    for to in &args.to {
        match target(to, &cfg) {
            Ok(a) => recipients.push(a),
            Err(e) => {
                eprintln!("{prog}: --to {e}");
                return EX_USAGE;
            }
        }
    }
    let text = if args.text == "-" {
        let mut raw = Vec::new();
        if let Err(e) = std::io::stdin().lock().read_to_end(&mut raw) {
            eprintln!("{prog}: cannot read the text from stdin: {e}");
            return EX_IOERR;
        }
        match String::from_utf8(raw) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("{prog}: the text on stdin is not UTF-8");
                return EX_DATAERR;
            }
        }
    } else {
        args.text.clone()
    };
    let ctx = super::context(&cfg);
    let sender: Address = ctx
        .default_sender
        .as_deref()
        .and_then(|s| s.parse().ok())
        .or_else(|| format!("mail2line@{}", ctx.hostname).parse().ok())
        .unwrap_or_else(|| Address::new("mail2line", "localhost").expect("a valid literal address"));
    let data = match build(&sender, &recipients, args.subject.as_deref(), text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return EX_DATAERR;
        }
    };
    let report = client::submit(&server, Some(&sender), &recipients, &data);
    for (to, reply) in &report.delivered {
        println!("sent to {}: {reply}", to.join(", "));
    }
    super::print_failures(prog, &report);
    report.exit_code()
}

/// `--to`'s value as an address at `smtp.domain`: a LINE id, an alias, or the followers address.
pub fn target(to: &str, cfg: &Config) -> Result<Address, String> {
    let to = to.trim();
    // `<id>+urgent` marks the mail urgent (never held for coalescing; may use the month's
    // reserve); the gateway strips it, any id, alias or followers may carry it.
    let base = match to.len().checked_sub("+urgent".len()) {
        Some(at) if to.is_char_boundary(at) && to[at..].eq_ignore_ascii_case("+urgent") => &to[..at],
        _ => to,
    };
    let known = Recipient::from_line_id(base).is_some() || cfg.aliases.contains_key(base) || base == cfg.routing.followers_address;
    if !known {
        let aliases: Vec<&str> = cfg.aliases.keys().map(String::as_str).collect();
        let listed = if aliases.is_empty() { "none".to_owned() } else { aliases.join(", ") };
        return Err(format!(
            "{to:?}: not a LINE id (U, C or R + 32 lowercase hex), an alias from [aliases] ({listed}), nor {:?} (every follower)",
            cfg.routing.followers_address
        ));
    }
    Address::new(to, &cfg.smtp.domain).map_err(|e| format!("{to:?}@{}: {e}", cfg.smtp.domain))
}

/// The mail: From the sender, To the recipients, the subject, the text as UTF-8 text/plain.
pub fn build(sender: &Address, recipients: &[Address], subject: Option<&str>, text: String) -> Result<Vec<u8>, String> {
    // A Message-ID gives the gateway its LINE retry key for this mail.
    let mut b = Message::builder().from(Mailbox::new(None, sender.clone())).message_id(None);
    for r in recipients {
        b = b.to(Mailbox::new(None, r.clone()));
    }
    if let Some(s) = subject {
        b = b.subject(s);
    }
    let message = b.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| format!("cannot build the mail: {e}"))?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Purpose;

    fn cfg() -> Config {
        let text = "[smtp]\ndomain = \"text.line.example.com\"\n[aliases]\nops = [\"U0123456789abcdef0123456789abcdef\"]\n";
        Config::parse(text, "c.toml", Purpose::Client, &|_| None).unwrap()
    }

    #[test]
    fn targets() {
        let c = cfg();
        let id = "C0123456789abcdef0123456789abcdef";
        assert_eq!(target(id, &c).unwrap().to_string(), format!("{id}@text.line.example.com"));
        assert_eq!(target("ops", &c).unwrap().to_string(), "ops@text.line.example.com");
        assert_eq!(target("followers", &c).unwrap().to_string(), "followers@text.line.example.com");
        let e = target("root", &c).unwrap_err();
        assert!(e.contains("\"root\": not a LINE id") && e.contains("[aliases] (ops)"), "{e}");
        assert!(target("U0123", &c).is_err());
        assert_eq!(target("ops+urgent", &c).unwrap().to_string(), "ops+urgent@text.line.example.com");
        assert_eq!(target(&format!("{id}+URGENT"), &c).unwrap().to_string(), format!("{id}+URGENT@text.line.example.com"));
        assert!(target("+urgent", &c).is_err());
        assert!(target("ops+other", &c).is_err());
        assert!(target("ops@text.line.example.com", &c).is_err());
    }

    #[test]
    fn builds_utf8_text_mail() {
        let from: Address = "me@host.example".parse().unwrap();
        let to: Address = "ops@text.line.example.com".parse().unwrap();
        let data = build(&from, &[to], Some("バックアップ"), "完了しました\n".into()).unwrap();
        let parsed = mail_parser::MessageParser::new().parse(&data).unwrap();
        assert_eq!(parsed.subject(), Some("バックアップ"));
        // lettre writes CRLF line ends, as SMTP wants.
        assert_eq!(parsed.body_text(0).as_deref(), Some("完了しました\r\n"));
        assert_eq!(parsed.from().unwrap().first().unwrap().address(), Some("me@host.example"));
        assert!(parsed.date().is_some() && parsed.message_id().is_some());
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"), "{text}");
    }
}
