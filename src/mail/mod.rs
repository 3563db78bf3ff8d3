//! MIME → [`Notice`]: what a mail says, independent of LINE. Pure functions, no I/O.
//!
//! mail-parser does the MIME work: header decoding (RFC 2047/2231), multipart structure,
//! transfer encodings and charsets, and the choice of body parts. This module owns what
//! the gateway adds on top: display forms of subject and addresses, the body text as LINE
//! should show it (flowed text joined by [`flowed`], HTML made readable by [`html`], line
//! ends and control characters cleaned), and the list of attachments.

mod flowed;
mod html;

use mail_parser::{
    Addr, Address, ContentType, Encoding, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};

/// What a mail says, decoded to Unicode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    /// Decoded subject (RFC 2047 words decoded), empty if absent.
    pub subject: String,
    /// The From header for display, e.g. `Alice <alice@example.com>`; empty if absent.
    pub from: String,
    /// The To header for display; empty if absent.
    pub to: String,
    /// Readable body text (text/plain preferred, else text from HTML), `\n` line ends.
    pub text: String,
    /// Parts that are not the body text.
    pub attachments: Vec<Attachment>,
}

/// An attachment or inline part that is not the body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// Parses raw RFC 5322 bytes into a [`Notice`]. Never fails, never panics.
pub fn parse(raw: &[u8]) -> Notice {
    // mail-parser is fuzzed, but it is third-party code fed by strangers: if it ever panics,
    // the gateway still delivers the bytes as text rather than dropping the mail.
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or_else(|_| fallback(raw))
}

fn parse_message(raw: &[u8]) -> Notice {
    match MessageParser::default().parse(raw) {
        Some(message) => notice_from(&message),
        None => fallback(raw),
    }
}

/// What is left when the bytes are not a message at all: show them as text.
fn fallback(raw: &[u8]) -> Notice {
    Notice {
        text: finish_text(&normalize_line_ends(&String::from_utf8_lossy(raw))),
        ..Notice::default()
    }
}

fn notice_from(message: &Message<'_>) -> Notice {
    Notice {
        subject: clean_line(message.subject().unwrap_or_default()),
        from: message.from().map(display_addresses).unwrap_or_default(),
        to: message.to().map(display_addresses).unwrap_or_default(),
        text: body_text(message),
        attachments: message.attachments().map(attachment).collect(),
    }
}

// ---------------------------------------------------------------- headers

/// One header line for display: control characters dropped, ASCII whitespace runs (folding
/// included) made one space. U+3000 (ideographic space) is content in Japanese subjects
/// and is kept.
fn clean_line(text: &str) -> String {
    let visible: String = text
        .chars()
        .filter(|&c| !c.is_control() || c.is_ascii_whitespace())
        .collect();
    visible
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address header for display: `Name <addr>` or `addr`, joined with ", ". Group
/// members are listed like any other address.
fn display_addresses(address: &Address<'_>) -> String {
    address
        .iter()
        .filter_map(display_addr)
        .collect::<Vec<_>>()
        .join(", ")
}

fn display_addr(addr: &Addr<'_>) -> Option<String> {
    let name = clean_line(addr.name().unwrap_or_default());
    let email = clean_line(addr.address().unwrap_or_default());
    match (name.is_empty(), email.is_empty()) {
        (true, true) => None,
        (true, false) => Some(email),
        (false, true) => Some(name),
        // "alice@example.com <alice@example.com>" says nothing twice over.
        (false, false) if name == email => Some(email),
        (false, false) => Some(format!("{name} <{email}>")),
    }
}

// ---------------------------------------------------------------- body

/// The body as LINE should show it. mail-parser already chose the parts: text/plain over
/// HTML in multipart/alternative, the HTML part when there is no plain one, and every
/// inline text part of a multipart/mixed in order (those are joined with a blank line).
fn body_text(message: &Message<'_>) -> String {
    let pieces: Vec<String> = message
        .text_bodies()
        .filter_map(part_text)
        .map(|piece| piece.trim_end().to_string())
        .filter(|piece| !piece.is_empty())
        .collect();
    finish_text(&pieces.join("\n\n"))
}

fn part_text(part: &MessagePart<'_>) -> Option<String> {
    match &part.body {
        PartType::Text(text) => Some(plain_text(part, text)),
        PartType::Html(text) => Some(html::html_to_text(&normalize_line_ends(text))),
        _ => None,
    }
}

fn plain_text(part: &MessagePart<'_>, text: &str) -> String {
    let text = normalize_line_ends(text);
    match flowed_delsp(part) {
        Some(delsp) => flowed::unflow(&text, delsp),
        None => text,
    }
}

/// `Some(delsp)` when the part is `text/plain; format=flowed`.
fn flowed_delsp(part: &MessagePart<'_>) -> Option<bool> {
    let ct = part.content_type()?;
    let plain = ct.ctype().eq_ignore_ascii_case("text")
        && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"));
    let flowed = param(ct, "format").is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
    (plain && flowed).then(|| param(ct, "delsp").is_some_and(|d| d.eq_ignore_ascii_case("yes")))
}

/// A Content-Type parameter, its name matched without regard to case (RFC 2045 §5.1).
fn param<'a>(ct: &'a ContentType<'_>, name: &str) -> Option<&'a str> {
    ct.attributes()?
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_ref())
}

/// CRLF and lone CR become LF.
fn normalize_line_ends(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Drops control characters other than `\n` and `\t` (LINE shows them as boxes) and the
/// whitespace at the very end. Nothing else is removed: signatures and quotes stay.
fn finish_text(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
        .collect();
    kept.trim_end().to_string()
}

// ---------------------------------------------------------------- attachments

/// mail-parser lists as attachments exactly the parts that are not body text: attached
/// files, inline images, non-body text parts and attached messages.
fn attachment(part: &MessagePart<'_>) -> Attachment {
    let name = part.attachment_name().map(clean_line).unwrap_or_default();
    Attachment {
        name: if name.is_empty() {
            "attachment".to_string()
        } else {
            name
        },
        content_type: content_type(part),
        size: decoded_size(part),
    }
}

/// `type/subtype` in lower case; an absent Content-Type means text/plain (RFC 2045 §5.2).
fn content_type(part: &MessagePart<'_>) -> String {
    let Some(ct) = part.content_type() else {
        return match part.body {
            PartType::Message(_) => "message/rfc822".to_string(),
            _ => "text/plain".to_string(),
        };
    };
    let full = match ct.subtype() {
        Some(subtype) => format!("{}/{}", ct.ctype(), subtype),
        None => ct.ctype().to_string(),
    };
    full.to_ascii_lowercase()
}

/// Size after transfer decoding. Text parts are counted in UTF-8, the form mail-parser
/// keeps them in. An attached message that was not transfer-encoded is parsed in place
/// and its `raw_message` is the whole outer mail, so its size comes from its offsets.
fn decoded_size(part: &MessagePart<'_>) -> usize {
    match (&part.body, part.encoding) {
        (PartType::Message(_), Encoding::None) => {
            part.offset_end.saturating_sub(part.offset_body) as usize
        }
        _ => part.len(),
    }
}
