//! The mail of `mail2line send --to <id|alias> [--subject S] TEXT|-`: a text message to a LINE
//! id or alias, through the running gateway (so it tests SMTP, the spool and LINE together).
//!
//! [`target`] checks each `--to` against the configuration, [`build`] makes the mail with
//! lettre's builder (UTF-8 text/plain, encoded as needed, with Date and Message-ID). The command
//! (`commands/send.rs`) submits it by the same code as `sendmail`, with the same exit statuses.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Address, Message};

use super::Error;
use crate::envelope::Recipient;

/// What `--to` may name, from the gateway's configuration: its domain (`smtp.domain`), its
/// aliases (`[aliases]`) and its followers address (`[routing] followers_address`).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub domain: String,
    pub aliases: Vec<String>,
    pub followers: String,
}

/// `--to`'s value as an address at the gateway's domain: a LINE id, an alias, or the followers
/// address.
pub fn target(to: &str, known: &Targets) -> Result<Address, Error> {
    let to = to.trim();
    // `<id>+urgent` marks the mail urgent (never held for coalescing; may use the month's
    // reserve); the gateway strips it, any id, alias or followers may carry it.
    let base = match to.len().checked_sub("+urgent".len()) {
        Some(at) if to.is_char_boundary(at) && to[at..].eq_ignore_ascii_case("+urgent") => &to[..at],
        _ => to,
    };
    let is_known = Recipient::from_line_id(base).is_some() || known.aliases.iter().any(|a| a == base) || base == known.followers;
    if !is_known {
        let listed = if known.aliases.is_empty() { "none".to_owned() } else { known.aliases.join(", ") };
        return Err(Error::UnknownTarget { to: to.to_owned(), aliases: listed, followers: known.followers.clone() });
    }
    Address::new(to, &known.domain).map_err(|e| Error::BadAddress { to: to.to_owned(), domain: known.domain.clone(), reason: e.to_string() })
}

/// The mail: From the sender, To the recipients, the subject, the text as UTF-8 text/plain.
pub fn build(sender: &Address, recipients: &[Address], subject: Option<&str>, text: String) -> Result<Vec<u8>, Error> {
    // A Message-ID gives the gateway its LINE retry key for this mail.
    let mut b = Message::builder().from(Mailbox::new(None, sender.clone())).message_id(None);
    for r in recipients {
        b = b.to(Mailbox::new(None, r.clone()));
    }
    if let Some(s) = subject {
        b = b.subject(s);
    }
    let message = b.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| Error::Build(e.to_string()))?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Targets {
        Targets { domain: "text.line.example.com".into(), aliases: vec!["ops".into()], followers: "followers".into() }
    }

    #[test]
    fn targets() {
        let c = cfg();
        let id = "C0123456789abcdef0123456789abcdef";
        assert_eq!(target(id, &c).unwrap().to_string(), format!("{id}@text.line.example.com"));
        assert_eq!(target("ops", &c).unwrap().to_string(), "ops@text.line.example.com");
        assert_eq!(target("followers", &c).unwrap().to_string(), "followers@text.line.example.com");
        let e = target("root", &c).unwrap_err().to_string();
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
