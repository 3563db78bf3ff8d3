//! The mail that carries a follower's answer back to the mail's sender: pure, no I/O.
//!
//! [`build`] turns a [`Letter`] (who answered, to whom, in which thread, what) into the SMTP
//! envelope and the bytes of a reply that threads in every mail client: `From: "<name> via
//! LINE" <from>`, `Subject: Re: …`, `In-Reply-To` and `References` naming the original
//! Message-ID, a Message-ID derived from the webhook event (so a retry writes the very same
//! mail), `X-Mail2line-Chat` for filtering, the text as `text/plain; charset=utf-8` and the
//! files as attachments after it. lettre's builder writes the MIME and encodes every header, so
//! Unicode names and subjects survive and a quote or line break in them cannot start a header of
//! its own; control characters are turned into spaces before that anyway, because a name that
//! reaches a mail client as two lines is wrong even when it is safely encoded.
//!
//! The recipient is whatever the caller chose (the router, from mail the gateway itself
//! pushed); nothing in the answer's text can change it.

use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use lettre::address::Envelope;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

/// The name shown when LINE did not tell us the follower's (a group member who hides it).
const UNKNOWN_NAME: &str = "LINE user";

/// The subject written when the original mail had none.
const NO_SUBJECT: &str = "(no subject)";

/// A file name is cut to this many characters (its extension kept): mail clients and file
/// systems cope with 255 bytes at most, and a UTF-8 character may take 4.
const MAX_NAME_CHARS: usize = 60;

/// One answer from LINE, ready to be mailed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Letter {
    /// The follower's LINE display name; `""` when unknown (the mail then says "LINE user").
    pub display_name: String,
    /// `[replies] from`: the envelope sender and the From address.
    pub from: String,
    /// The recipient, chosen by the router (never taken from the text).
    pub to: String,
    /// The original mail's subject; `""` when it had none.
    pub subject: String,
    /// The original mail's Message-ID, with or without `<>`; `None` when unknown.
    pub in_reply_to: Option<String>,
    /// The LINE chat the answer came from (a user, group or room id): `X-Mail2line-Chat`.
    pub chat: String,
    /// The webhook event's `webhookEventId`; the Message-ID is made from it.
    pub event_id: String,
    /// The event's timestamp in unix milliseconds: the Date header.
    pub at_ms: i64,
    /// The body, already rendered (text, sticker and location lines, notes about files).
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// A file fetched from LINE's content API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the mail shows (see [`attachment_name`]).
    pub name: String,
    /// The type LINE served it with, e.g. `image/jpeg`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a letter could not be written. Each is a bug or a configuration problem upstream (the
/// addresses are checked when the configuration is loaded, the ids come from LINE), so the
/// message says which value was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LetterError {
    #[error("the sender address {0:?} is not a mail address; check [replies] from")]
    From(String),
    #[error("the recipient address {0:?} is not a mail address; the answer cannot be mailed there")]
    To(String),
    #[error("the chat id {0:?} is not a LINE user, group or room id")]
    Chat(String),
    #[error("the webhook event id {0:?} cannot make a Message-ID (letters, digits, - and _ only)")]
    EventId(String),
    #[error("the mail could not be written: {0}")]
    Mime(String),
}

/// The envelope (MAIL FROM = `from`, RCPT = `to`) and the bytes of the reply mail.
pub fn build(letter: &Letter) -> Result<(Envelope, Vec<u8>), LetterError> {
    let from = Address::from_str(letter.from.trim()).map_err(|_| LetterError::From(letter.from.clone()))?;
    let to = Address::from_str(letter.to.trim()).map_err(|_| LetterError::To(letter.to.clone()))?;
    if !is_id(&letter.chat) {
        return Err(LetterError::Chat(letter.chat.clone()));
    }
    if !is_id(&letter.event_id) {
        return Err(LetterError::EventId(letter.event_id.clone()));
    }
    let name = match one_line(&letter.display_name) {
        n if n.is_empty() => UNKNOWN_NAME.to_owned(),
        n => n,
    };
    let envelope = Envelope::new(Some(from.clone()), vec![to.clone()]).map_err(|e| LetterError::Mime(e.to_string()))?;
    let mut builder = Message::builder()
        .from(Mailbox::new(Some(format!("{name} via LINE")), from.clone()))
        .to(Mailbox::new(None, to))
        .subject(reply_subject(&letter.subject))
        .date(UNIX_EPOCH + Duration::from_millis(u64::try_from(letter.at_ms).unwrap_or(0)))
        .message_id(Some(format!("<line-{}@{}>", letter.event_id, from.domain())))
        .header(ChatHeader(letter.chat.clone()))
        .envelope(envelope);
    if let Some(id) = letter.in_reply_to.as_deref().and_then(thread_id) {
        builder = builder.in_reply_to(id.clone()).references(id);
    }
    let text = SinglePart::plain(letter.text.clone());
    let message = if letter.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let parts = letter.attachments.iter().fold(MultiPart::mixed().singlepart(text), |parts, a| {
            let content_type = ContentType::parse(&a.content_type).unwrap_or_else(|_| octet_stream());
            parts.singlepart(MimeAttachment::new(safe_file_name(&a.name, "attachment.bin")).body(a.bytes.clone(), content_type))
        });
        builder.multipart(parts)
    }
    .map_err(|e| LetterError::Mime(e.to_string()))?;
    Ok((message.envelope().clone(), message.formatted()))
}

/// A sensible file name for a file from LINE: the file's own name for `kind` `"file"` (made
/// safe: no directories, no control characters), else `photo-<id>.jpg`, `video-<id>.mp4`,
/// `audio-<id>.m4a`… with the extension taken from the content type.
pub fn attachment_name(kind: &str, message_id: &str, file_name: Option<&str>, content_type: &str) -> String {
    let id: String = message_id.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let stem = match kind {
        "image" => "photo",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    };
    let generated = if id.is_empty() { format!("{stem}.{}", extension(content_type)) } else { format!("{stem}-{id}.{}", extension(content_type)) };
    match file_name {
        Some(name) => safe_file_name(name, &generated),
        None => generated,
    }
}

/// The extension for a content type LINE serves; `bin` for any other.
fn extension(content_type: &str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "audio/x-m4a" | "audio/mp4" | "audio/m4a" => "m4a",
        _ => "bin",
    }
}

/// `name` without any directory part, control characters or leading dots (a hidden file, `..`),
/// cut to [`MAX_NAME_CHARS`] keeping its extension; `fallback` when nothing is left.
fn safe_file_name(name: &str, fallback: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim().trim_start_matches('.').trim();
    if clean.is_empty() {
        return fallback.to_owned();
    }
    if clean.chars().count() <= MAX_NAME_CHARS {
        return clean.to_owned();
    }
    let ext: String = match clean.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() && ext.chars().count() <= 10 => format!(".{ext}"),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count();
    format!("{}{ext}", clean.chars().take(keep).collect::<String>().trim_end())
}

/// `Re: <subject>`, without doubling a `Re:` the subject already has.
fn reply_subject(subject: &str) -> String {
    let subject = one_line(subject);
    if subject.is_empty() {
        return format!("Re: {NO_SUBJECT}");
    }
    let lower = subject.to_ascii_lowercase();
    // "Re:", "RE :", "Re[2]:" all already mark a reply.
    let is_reply = lower.strip_prefix("re").is_some_and(|rest| {
        let rest = rest.trim_start_matches(|c: char| c == '[' || c == ']' || c.is_ascii_digit()).trim_start();
        rest.starts_with(':')
    });
    if is_reply {
        subject
    } else {
        format!("Re: {subject}")
    }
}

/// The original Message-ID as `<id>`, or `None` when it cannot be one (empty, spaces, control
/// or non-ASCII characters, angle brackets inside): then the mail goes without threading rather
/// than with a broken header.
fn thread_id(original: &str) -> Option<String> {
    let t = original.trim();
    let inner = t.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(t);
    let usable = !inner.is_empty() && inner.len() <= 900 && inner.chars().all(|c| c.is_ascii_graphic() && c != '<' && c != '>');
    usable.then(|| format!("<{inner}>"))
}

/// `s` on one line: control characters (line breaks, tabs) become spaces, then trimmed.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// A LINE id or webhook event id: letters, digits, `-` and `_`, at most 100 of them.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn octet_stream() -> ContentType {
    ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN)
}

/// `X-Mail2line-Chat: <chat id>`, so recipients can filter answers by chat.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChatHeader(String);

impl Header for ChatHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Mail2line-Chat")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ChatHeader(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    const CHAT: &str = "U0123456789abcdef0123456789abcdef";

    fn letter() -> Letter {
        Letter {
            display_name: "Hanako".into(),
            from: "line@gw.example.com".into(),
            to: "ops@example.org".into(),
            subject: "Server web-3 down".into(),
            in_reply_to: Some("20261206.abc@mail.example.org".into()),
            chat: CHAT.into(),
            event_id: "01FZ74A0TDDPYRVKNK77XKC3ZR".into(),
            at_ms: 1_700_000_000_000,
            text: "On it, restarting\nnow.".into(),
            attachments: Vec::new(),
        }
    }

    fn built(l: &Letter) -> (Envelope, Vec<u8>) {
        build(l).unwrap()
    }

    #[test]
    fn headers_thread_and_envelope() {
        let (envelope, bytes) = built(&letter());
        assert_eq!(envelope.from().map(|a| a.to_string()).as_deref(), Some("line@gw.example.com"));
        assert_eq!(envelope.to().iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["ops@example.org"]);
        let m = MessageParser::default().parse(&bytes).unwrap();
        let from = m.from().unwrap().first().unwrap();
        assert_eq!((from.name(), from.address()), (Some("Hanako via LINE"), Some("line@gw.example.com")));
        assert_eq!(m.to().unwrap().first().unwrap().address(), Some("ops@example.org"));
        assert_eq!(m.subject(), Some("Re: Server web-3 down"));
        assert_eq!(m.in_reply_to().and_then(|l| l.first()), Some("20261206.abc@mail.example.org"));
        assert_eq!(m.references().and_then(|l| l.first()), Some("20261206.abc@mail.example.org"));
        assert_eq!(m.message_id(), Some("line-01FZ74A0TDDPYRVKNK77XKC3ZR@gw.example.com"));
        assert_eq!(m.headers().get("X-Mail2line-Chat").and_then(|h| h.value().as_text()), Some(CHAT));
        assert_eq!(m.date().map(|d| d.to_timestamp()), Some(1_700_000_000));
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype(), ct.attribute("charset")), ("text", Some("plain"), Some("utf-8")));
        assert_eq!(m.body_text(0).as_deref().map(|t| t.replace("\r\n", "\n")), Some("On it, restarting\nnow.\n".to_owned()));
        // The same event writes the same mail (a retry must not make a second thread entry).
        assert_eq!(built(&letter()).1, bytes);
        // The bytes are ASCII: any relay takes them, 8BITMIME or not.
        assert!(bytes.is_ascii());
    }

    #[test]
    fn message_id_with_brackets_and_without_threading() {
        let l = Letter { in_reply_to: Some(" <abc@x.example> ".into()), ..letter() };
        let m_bytes = built(&l).1;
        let m = MessageParser::default().parse(&m_bytes).unwrap();
        assert_eq!(m.in_reply_to().and_then(|l| l.first()), Some("abc@x.example"));
        for unusable in [None, Some(""), Some("<>"), Some("a b@c"), Some("x@y\r\nBcc: evil@example.net"), Some("日本@example.jp")] {
            let l = Letter { in_reply_to: unusable.map(str::to_owned), ..letter() };
            let bytes = built(&l).1;
            let m = MessageParser::default().parse(&bytes).unwrap();
            assert!(m.in_reply_to().is_none_or(|l| l.is_empty()) && m.references().is_none_or(|l| l.is_empty()), "{unusable:?}");
            assert!(!String::from_utf8_lossy(&bytes).to_ascii_lowercase().contains("bcc:"), "{unusable:?}");
        }
    }

    #[test]
    fn subjects() {
        for (original, expected) in [
            ("Server down", "Re: Server down"),
            ("Re: Server down", "Re: Server down"),
            ("RE: Server down", "RE: Server down"),
            ("Re[2]: Server down", "Re[2]: Server down"),
            ("Regarding the server", "Re: Regarding the server"),
            ("", "Re: (no subject)"),
            ("  \r\n ", "Re: (no subject)"),
            ("サーバー停止のお知らせ", "Re: サーバー停止のお知らせ"),
        ] {
            let bytes = built(&Letter { subject: original.into(), ..letter() }).1;
            assert_eq!(MessageParser::default().parse(&bytes).unwrap().subject(), Some(expected), "{original:?}");
        }
    }

    #[test]
    fn japanese_and_unknown_display_names() {
        let bytes = built(&Letter { display_name: "山田 花子 🌸".into(), ..letter() }).1;
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.from().unwrap().first().unwrap().name(), Some("山田 花子 🌸 via LINE"));
        let bytes = built(&Letter { display_name: " ".into(), ..letter() }).1;
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.from().unwrap().first().unwrap().name(), Some("LINE user via LINE"));
        let bytes = built(&Letter { display_name: "O'Brien \"Ops\" <boss@evil.example>, x@evil.example".into(), ..letter() }).1;
        let m = MessageParser::default().parse(&bytes).unwrap();
        let from = m.from().unwrap();
        assert_eq!(from.mailboxes().count(), 1, "one From mailbox");
        let only = from.first().unwrap();
        assert_eq!(only.address(), Some("line@gw.example.com"));
        assert_eq!(only.name(), Some("O'Brien \"Ops\" <boss@evil.example>, x@evil.example via LINE"));
    }

    #[test]
    fn header_injection_in_name_subject_and_text_fails() {
        let l = Letter {
            display_name: "Eve\r\nBcc: victim@evil.example\r\nX-Evil: 1".into(),
            subject: "Hi\nBcc: victim2@evil.example\r\n\r\nfake body".into(),
            text: "Bcc: victim3@evil.example\r\n\r\nto: someone@evil.example".into(),
            ..letter()
        };
        let (envelope, bytes) = built(&l);
        assert_eq!(envelope.to().len(), 1);
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert!(m.bcc().is_none() && !m.headers().contains("X-Evil"), "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(m.to().unwrap().mailboxes().count(), 1);
        assert_eq!(m.from().unwrap().first().unwrap().name(), Some("Eve  Bcc: victim@evil.example  X-Evil: 1 via LINE"));
        assert_eq!(m.subject(), Some("Re: Hi Bcc: victim2@evil.example    fake body"));
        // The text stays in the body, whole.
        assert!(m.body_text(0).unwrap().contains("to: someone@evil.example"));
        let header_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&bytes[..header_end]).to_ascii_lowercase();
        assert!(!headers.contains("\nbcc") && !headers.contains("\nx-evil"), "{headers}");
    }

    #[test]
    fn attachments_come_after_the_text_with_their_bytes_intact() {
        let jpeg: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let l = Letter {
            attachments: vec![
                Attachment { name: "photo-123.jpg".into(), content_type: "image/jpeg".into(), bytes: jpeg.clone() },
                Attachment { name: "見積書.pdf".into(), content_type: "application/pdf".into(), bytes: b"%PDF-1.4 \x00\xff".to_vec() },
                Attachment { name: "x".into(), content_type: "not a type".into(), bytes: vec![1, 2, 3] },
            ],
            ..letter()
        };
        let bytes = built(&l).1;
        assert!(bytes.is_ascii());
        let m = MessageParser::default().parse(&bytes).unwrap();
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("mixed")));
        // In a multipart the last line break belongs to the boundary that follows.
        assert_eq!(m.body_text(0).as_deref().map(|t| t.replace("\r\n", "\n")), Some("On it, restarting\nnow.".to_owned()));
        let parts: Vec<_> = m.attachments().collect();
        assert_eq!(parts.len(), 3);
        let a = &parts[0];
        assert_eq!((a.attachment_name(), a.content_type().map(|c| (c.ctype(), c.subtype()))), (Some("photo-123.jpg"), Some(("image", Some("jpeg")))));
        assert_eq!(&a.decoded()[..], &jpeg[..]);
        let b = &parts[1];
        assert_eq!((b.attachment_name(), &b.decoded()[..]), (Some("見積書.pdf"), &b"%PDF-1.4 \x00\xff"[..]));
        let c = &parts[2];
        assert_eq!(c.content_type().map(|c| (c.ctype(), c.subtype())), Some(("application", Some("octet-stream"))));
        assert_eq!(&c.decoded()[..], &[1, 2, 3]);
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let cases = [
            (Letter { from: "not an address".into(), ..letter() }, "[replies] from"),
            (Letter { to: "".into(), ..letter() }, "recipient address"),
            (Letter { chat: "U1 2".into(), ..letter() }, "chat id"),
            (Letter { chat: "".into(), ..letter() }, "chat id"),
            (Letter { event_id: "a@b>".into(), ..letter() }, "Message-ID"),
        ];
        for (l, says) in cases {
            let e = build(&l).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        // A clock before 1970 is the epoch, not a panic.
        assert!(build(&Letter { at_ms: -5, ..letter() }).is_ok());
    }

    #[test]
    fn attachment_names() {
        assert_eq!(attachment_name("image", "468789577898262530", None, "image/jpeg"), "photo-468789577898262530.jpg");
        assert_eq!(attachment_name("image", "1", None, "image/png"), "photo-1.png");
        assert_eq!(attachment_name("video", "2", None, "video/mp4"), "video-2.mp4");
        assert_eq!(attachment_name("audio", "3", None, "audio/x-m4a"), "audio-3.m4a");
        assert_eq!(attachment_name("audio", "3", None, "audio/mp4; codecs=mp4a"), "audio-3.m4a");
        assert_eq!(attachment_name("image", "4", None, "application/x-unknown"), "photo-4.bin");
        assert_eq!(attachment_name("file", "5", Some("report.pdf"), "application/pdf"), "report.pdf");
        assert_eq!(attachment_name("file", "5", Some("../../etc/passwd"), "text/plain"), "passwd");
        assert_eq!(attachment_name("file", "5", Some("C:\\Users\\a\\見積書.xlsx"), ""), "見積書.xlsx");
        assert_eq!(attachment_name("file", "5", Some("a\r\nb.txt"), ""), "a  b.txt");
        assert_eq!(attachment_name("file", "5", Some(".."), "application/pdf"), "file-5.bin");
        assert_eq!(attachment_name("file", "5", Some(".bashrc"), ""), "bashrc");
        assert_eq!(attachment_name("file", "../x", None, "image/jpeg"), "file-x.jpg");
        let long = format!("{}.pdf", "あ".repeat(200));
        let name = attachment_name("file", "6", Some(&long), "application/pdf");
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with("あ.pdf"), "{name}");
    }
}
