//! MIME → [`Notice`]: what a mail says, independent of LINE. Pure functions, no I/O.
//!
//! mail-parser does the MIME work: header decoding (RFC 2047/2231), multipart structure,
//! transfer encodings and charsets, and a first choice of body parts. This module owns what
//! the gateway adds on top: display forms of subject and addresses, the body text as LINE
//! should show it (flowed text joined by `flowed`, HTML made readable by `html`, line
//! ends and control characters cleaned), and the attachments with their decoded bytes, so
//! later steps can host images and files without parsing the mail again. Which parts make
//! the text and which are listed is `parts`' walk (attached messages shown in the text,
//! stub text alternatives, `calendar` summaries); encoded file names are read by `names`.

mod calendar;
mod flowed;
mod html;
pub mod lenient;
mod names;
mod noise;
mod parts;
pub mod priority;
#[cfg(test)]
mod sender_tests;
mod sloppy;

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::{
    AddressList, Charset, HeaderForm, HeaderName, Mailbox, Message, MessageParser, MessagePart, PartKind,
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
    /// Parts that are not the body text, with those of attached messages shown in the text;
    /// not the nameless images an HTML body shows by `cid:`, nor summarised nameless calendars.
    pub attachments: Vec<Attachment>,
    /// The Message-ID without its angle brackets, empty if absent: what makes a resent mail
    /// recognisable as the same mail (the retry keys of its LINE requests derive from it).
    pub message_id: String,
    /// The bare address an answer goes to: the first of Reply-To, else of From; empty when
    /// neither has one. Answers from LINE (`[replies]`, `crate::replies`) are mailed here.
    pub reply_to: String,
    /// The top-level headers mark the mail urgent (`X-Priority: 1`, `Importance: high`, ...;
    /// the rule is [`priority::is_urgent`]): it is not held for coalescing. A mail attached
    /// inside this one does not count, nor does the `+urgent` recipient form, which the SMTP
    /// session reports on its own (`smtp::Mail::urgent`).
    pub urgent: bool,
}

/// An attachment or inline part that is not the body text.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name for display (RFC 2231/2047 decoded), `attachment` when the part has none.
    pub name: String,
    /// `type/subtype` in lower case, parameters dropped.
    pub content_type: String,
    /// Shown in the body rather than offered as a file: `Content-Disposition: inline`, or no
    /// disposition but a Content-ID (what HTML mail uses for `<img src="cid:...">`).
    pub inline: bool,
    /// The Content-ID without its angle brackets, as `cid:` URLs name it (RFC 2392).
    pub content_id: Option<String>,
    /// The content after transfer decoding. Text parts are held in UTF-8, the form
    /// mail-parser converts them to, whatever charset the part declared.
    pub data: Vec<u8>,
}

impl Attachment {
    /// Size in bytes after transfer decoding.
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

/// The bytes are left out: a failing test or a debug log line should not dump an image.
impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("inline", &self.inline)
            .field("content_id", &self.content_id)
            .field("size", &self.data.len())
            .finish()
    }
}

/// Parses raw RFC 5322 bytes into a [`Notice`]. Never fails, never panics.
pub fn parse(raw: &[u8]) -> Notice {
    // mail-parser is fuzzed, but it is third-party code fed by strangers: if it ever panics,
    // the gateway still delivers the bytes as text rather than dropping the mail.
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or_else(|_| fallback(raw))
}

fn parse_message(raw: &[u8]) -> Notice {
    // Sloppy senders' header/body split made what mail-parser expects (a no-op on mail whose
    // headers end with an empty line).
    let repaired = sloppy::repair(raw);
    let raw = &*repaired;
    if !starts_with_header_section(raw) {
        return fallback(raw);
    }
    // A last header line without a line end (a mail not handed over by SMTP) is read as a
    // header by mail-parser 1.0; 0.11 dropped it, and this module appended a CRLF.
    match PARSER.parse(raw) {
        Some(message) => notice_from(&message, 0),
        None => fallback(raw),
    }
}

/// mail-parser set up to parse only the headers this module reads, and to skip the rest.
///
/// By default it parses every header it knows: each `Received:` line into its parts, dates,
/// every address list. A relayed mail carries many of those and nothing here reads them;
/// skipping them roughly halves the header work of a typical mail (`bench/mime-instructions.sh`).
/// mail-parser always parses the MIME headers it needs itself (Content-Type,
/// Content-Disposition, Content-Transfer-Encoding), whatever the form set here; the fields this
/// module reads (Subject, From, To, Reply-To, Message-ID, Content-ID) keep their default forms; the
/// priority fields are read from their raw bytes ([`priority`]), which a skipped field keeps. Known
/// fields are only skipped when named: `unknown_headers` covers the names mail-parser does not
/// know (and its vendor `X-` names), not Date, Cc or Received.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    let unread = [
        // Parsed by default (addresses, dates, ids, lists, decoded text), never read here.
        HeaderName::Received,
        HeaderName::Date,
        HeaderName::Cc,
        HeaderName::Bcc,
        HeaderName::Sender,
        HeaderName::InReplyTo,
        HeaderName::References,
        HeaderName::ReturnPath,
        HeaderName::Keywords,
        HeaderName::Comments,
        HeaderName::ContentDescription,
        HeaderName::ContentLocation,
        HeaderName::ContentLanguage,
        HeaderName::ResentTo,
        HeaderName::ResentFrom,
        HeaderName::ResentCc,
        HeaderName::ResentBcc,
        HeaderName::ResentSender,
        HeaderName::ResentDate,
        HeaderName::ResentMessageId,
        HeaderName::ListArchive,
        HeaderName::ListHelp,
        HeaderName::ListId,
        HeaderName::ListOwner,
        HeaderName::ListPost,
        HeaderName::ListSubscribe,
        HeaderName::ListUnsubscribe,
    ];
    unread
        .into_iter()
        .fold(MessageParser::new(), |parser, name| parser.header(name, HeaderForm::Ignore))
        .unknown_headers(HeaderForm::Ignore)
});

/// Whether the bytes start like a mail: a header field (`Name: ...`, RFC 5322 §2.2) or the
/// empty line of a mail without headers. mail-parser takes any first line for a header,
/// which would silently drop the first line of plain text piped into the gateway.
fn starts_with_header_section(raw: &[u8]) -> bool {
    let first_line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    if first_line.is_empty() {
        return true;
    }
    match first_line.iter().position(|&b| b == b':') {
        Some(colon) => colon > 0 && first_line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        None => false,
    }
}

/// What is left when the bytes are not a message at all: show them as text.
fn fallback(raw: &[u8]) -> Notice {
    Notice {
        text: finish_text(normalize_line_ends(&String::from_utf8_lossy(raw))),
        ..Notice::default()
    }
}

/// The notice of a mail, or of a mail attached `depth` levels deep inside one ([`parts`]
/// shows attached messages in the text by calling this again).
fn notice_from(message: &Message<'_>, depth: usize) -> Notice {
    // The text and the parts that are not text, in the order of the mail: the structure walk
    // is `parts`. mail-parser's own `attachments()` (RFC 8621) leaves out inline images shown
    // in the body; for LINE they are attachments like any other, since the text carries no
    // image.
    let (text, attachments) = parts::text_and_attachments(message, depth);
    Notice {
        subject: subject(message),
        from: addresses(message, HeaderName::From),
        to: addresses(message, HeaderName::To),
        text,
        attachments,
        message_id: message.message_id().map(str::to_owned).unwrap_or_default(),
        reply_to: reply_address(message),
        // Raw values: X-Priority and X-MSMail-Priority are vendor names PARSER skips, and a
        // skipped field still keeps its bytes; Importance and Priority are read the same way.
        urgent: priority::is_urgent(message.headers().iter().map(|h| (h.raw_name(), h.raw_value()))),
    }
}

// ---------------------------------------------------------------- headers

/// The first address of Reply-To, else of From: where the sender wants answers. Only the bare
/// `local@domain` is kept, without a display name, and only if it has no space or control
/// character, so what is stored can be used as an envelope recipient as it is.
fn reply_address(message: &Message<'_>) -> String {
    fn first(list: Option<AddressList<'_>>) -> Option<String> {
        let address = list?.mailboxes().find_map(|m| m.address())?.trim();
        let usable = address.contains('@') && !address.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        usable.then(|| address.to_owned())
    }
    first(message.reply_to()).or_else(|| first(message.from())).unwrap_or_default()
}

/// One header line for display: control characters dropped, ASCII whitespace runs (folding
/// included) made one space. U+3000 (ideographic space) is content in Japanese subjects
/// and is kept.
fn clean_line(text: &str) -> String {
    // Most header values are clean already (no control character, no space to collapse or
    // trim): a plain copy then, not a rebuild char by char. 0xC2 leads C1 controls (and
    // other Latin-1 characters, which take the slow path for nothing).
    let b = text.as_bytes();
    let clean = b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && !b.iter().any(|&x| x < 0x20 || x == 0x7f || x == 0xc2)
        && !b.windows(2).any(|pair| pair == b"  ");
    if clean {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| c.is_ascii_whitespace()) {
        let mut visible = word.chars().filter(|c| !c.is_control()).peekable();
        if visible.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(visible);
    }
    out
}

/// The subject for display.
fn subject(message: &Message<'_>) -> String {
    let subject = message.subject().unwrap_or_default();
    if let Some(value) = value_to_parse_again(message, HeaderName::Subject, subject) {
        return clean_line(HeaderForm::Text.parse(&value).value().as_text().unwrap_or_default());
    }
    clean_line(subject)
}

/// An address header (the last of its name, as mail-parser's getters read) for display.
fn addresses(message: &Message<'_>, name: HeaderName<'static>) -> String {
    let Some(header) = message.headers().get(name.clone()) else {
        return String::new();
    };
    let shown = header.value().as_address().map(display_addresses).unwrap_or_default();
    match value_to_parse_again(message, name, &shown) {
        Some(value) => HeaderForm::Addresses
            .parse(&value)
            .value()
            .as_address()
            .map(display_addresses)
            .unwrap_or_default(),
        None => shown,
    }
}

/// The raw value of header `name` made ready to be parsed again, when mail-parser's decoded
/// form `decoded` is not what the mail means; `None` when there is nothing to redo (almost
/// always). Two things are redone:
/// - what [`lenient::header_value`] repairs: raw 8-bit bytes that are not UTF-8 (read in the
///   charset of the body text, or as chardetng guesses) and encoded words whose charset label
///   only the lenient table knows (`=?cp932?B?...?=`);
/// - ISO-2022-JP encoded words that mail-parser joined ([`iso_2022_jp_words_apart`]), when
///   the decoded text has a U+FFFD or the first step gave a new value.
fn value_to_parse_again(message: &Message<'_>, name: HeaderName<'static>, decoded: &str) -> Option<Vec<u8>> {
    let raw = message.headers().get(name)?.raw_value();
    let repaired = lenient::header_value(raw, || body_charset(message));
    if repaired.is_none() && !decoded.contains('\u{FFFD}') {
        return None;
    }
    let mut value = repaired.unwrap_or_else(|| raw.to_vec());
    iso_2022_jp_words_apart(&mut value);
    Some(value)
}

/// The charset the (first) body text is read in: what raw 8-bit headers are most likely in.
fn body_charset(message: &Message<'_>) -> Charset {
    message
        .text_body()
        .next()
        .map(|part| lenient::body_charset(charset_label(&part), &part.decoded()))
        .unwrap_or_default()
}

/// A raw header value with its ISO-2022-JP encoded words kept apart.
///
/// mail-parser 1.0 joins adjacent encoded words of one charset label before converting them
/// (so that a UTF-8 character split across two words decodes). ISO-2022-JP words each end
/// back in ASCII (`ESC ( B`, RFC 1468), and the WHATWG decoder takes an escape sequence
/// right after another (`ESC ( B ESC $ B`) for an error: every fold of a long Japanese
/// subject got a U+FFFD. It joins only words with the same label, so every other
/// ISO-2022-JP word gets the other WHATWG label of that charset, `csISO2022JP`, of the same
/// length; parsed again, each word is decoded alone, and everything else (whitespace rules,
/// other charsets) stays as mail-parser does it.
fn iso_2022_jp_words_apart(value: &mut [u8]) {
    const LABEL: &[u8] = b"iso-2022-jp";
    const OTHER_LABEL: &[u8] = b"csISO2022JP";
    // `=?label?` or `=?label*language?` (RFC 2231 §5).
    let starts: Vec<usize> = memchr::memmem::find_iter(value, b"=?")
        .filter(|&i| {
            value.get(i + 2..i + 2 + LABEL.len()).is_some_and(|l| l.eq_ignore_ascii_case(LABEL))
                && matches!(value.get(i + 2 + LABEL.len()), Some(b'?' | b'*'))
        })
        .collect();
    for &i in starts.iter().skip(1).step_by(2) {
        value[i + 2..i + 2 + LABEL.len()].copy_from_slice(OTHER_LABEL);
    }
}

/// An address header for display: `Name <addr>` or `addr`, joined with ", ". Group
/// members are listed like any other address.
fn display_addresses(list: AddressList<'_>) -> String {
    let mut out = String::new();
    for shown in list.mailboxes().filter_map(display_mailbox) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&shown);
    }
    out
}

fn display_mailbox(mailbox: Mailbox<'_>) -> Option<String> {
    let name = clean_line(mailbox.name().unwrap_or_default());
    let email = clean_line(mailbox.address().unwrap_or_default());
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

/// The text of a part of the text body: text/plain with format=flowed joined, HTML made
/// readable; `None` for media. Which parts are text body is `parts`' walk.
fn body_piece(part: &MessagePart<'_>) -> Option<String> {
    match part.kind() {
        PartKind::Text => Some(plain_text(part, &part_text(part))),
        PartKind::Html => Some(html::html_to_text(&normalize_line_ends(&part_text(part)))),
        _ => None,
    }
}

/// The text of a text or HTML part in UTF-8: transfer-decoded, then converted from the
/// charset [`lenient::body_charset`] picks: the one its Content-Type declares, UTF-8 when its
/// bytes are UTF-8 under an 8-bit label, chardetng's guess for unlabelled text that is not
/// UTF-8 (invalid sequences become U+FFFD). Borrowed when the body needs no conversion; empty
/// for a part that is not text.
///
/// The one place where a part's bytes become text, body and text attachments alike.
fn part_text<'m>(part: &MessagePart<'m>) -> Cow<'m, str> {
    if !part.is_text() {
        return Cow::Borrowed("");
    }
    // The charset the label names (lenient: vendor names, quotes, any case), unless the bytes
    // say otherwise: valid UTF-8 under an 8-bit label, unlabelled legacy text (`lenient`).
    let bytes = part.decoded();
    let charset = lenient::body_charset(charset_label(part), &bytes);
    if charset == Charset::Utf8 {
        return match bytes {
            Cow::Borrowed(bytes) => Charset::Utf8.decode(bytes),
            // mail-parser checks a transfer-decoded body under 4 KiB with std's scalar
            // UTF-8 check, several instructions a byte on non-ASCII text (emoji, Japanese);
            // simdutf8's check and a copy cost a fraction of that. Invalid sequences become
            // U+FFFD either way.
            Cow::Owned(bytes) => Cow::Owned(match simdutf8::basic::from_utf8(&bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            }),
        };
    }
    // Everything else, the Japanese charsets included, through mail-parser's encoding_rs
    // decoders (WHATWG: CP932 and NEC extensions, half-width katakana, U+FFFD for invalid
    // bytes).
    match bytes {
        Cow::Borrowed(bytes) => charset.decode(bytes),
        Cow::Owned(bytes) => Cow::Owned(charset.decode_owned(bytes)),
    }
}

/// The charset parameter of a part's Content-Type, as written.
fn charset_label<'p>(part: &'p MessagePart<'_>) -> Option<&'p str> {
    part.content_type().and_then(|ct| ct.attribute("charset"))
}

fn plain_text(part: &MessagePart<'_>, text: &str) -> String {
    let text = normalize_line_ends(text);
    match flowed_delsp(part) {
        Some(delsp) => flowed::unflow(&text, delsp),
        None => text,
    }
}

/// `Some(delsp)` when the part is `text/plain; format=flowed`. mail-parser lowercases the
/// type, subtype and parameter names (RFC 2045 §5.1: they are case-insensitive); values are
/// compared without regard to case here.
fn flowed_delsp(part: &MessagePart<'_>) -> Option<bool> {
    let ct = part.content_type()?;
    let plain = ct.ctype() == "text" && ct.subtype().is_none_or(|s| s == "plain");
    let flowed = ct.attribute("format").is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
    (plain && flowed).then(|| ct.attribute("delsp").is_some_and(|d| d.eq_ignore_ascii_case("yes")))
}

/// CRLF and lone CR become LF.
fn normalize_line_ends(text: &str) -> String {
    // One pass, finding each CR with memchr (this runs on every mail's text). `start` moves
    // past a CR and at most one LF, so it never passes the next CR.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    for cr in memchr::memchr_iter(b'\r', bytes) {
        out.push_str(&text[start..cr]);
        out.push('\n');
        start = if bytes.get(cr + 1) == Some(&b'\n') { cr + 2 } else { cr + 1 };
    }
    out.push_str(&text[start..]);
    out
}

/// Whether `text` has a control character (Unicode Cc: U+0000–U+001F, U+007F–U+009F) other
/// than `\n` and `\t`, decided on the UTF-8 bytes: C0 and DEL are single bytes, C1 is 0xC2
/// followed by 0x80–0x9F. Same answer as `char::is_control`, without decoding chars.
fn has_control_besides_lf_and_tab(text: &str) -> bool {
    let b = text.as_bytes();
    let control = |i: usize, x: u8| {
        (x < 0x20 && x != b'\n' && x != b'\t') || x == 0x7f || (x == 0xc2 && matches!(b.get(i + 1), Some(0x80..=0x9f)))
    };
    // A branch-free test per block of 32 (vectorized by the compiler) rules out nearly every
    // block; only a block with a suspect byte (a control, or a 0xC2 lead, rare outside
    // Latin-1 text) is looked at byte by byte.
    b.chunks(32).enumerate().any(|(k, block)| {
        let suspect = block.iter().fold(false, |acc, &x| acc | ((x < 0x20) & (x != b'\n') & (x != b'\t')) | (x == 0x7f) | (x == 0xc2));
        suspect && block.iter().enumerate().any(|(i, &x)| control(k * 32 + i, x))
    })
}

/// Drops control characters other than `\n` and `\t` (LINE shows them as boxes) and the
/// whitespace at the very end. Nothing else is removed: signatures and quotes stay.
fn finish_text(text: String) -> String {
    // Terminal codes first: their ESC is a control character dropped below.
    let mut text = noise::clean(text);
    let dropped = |c: char| c.is_control() && c != '\n' && c != '\t';
    // Most texts have no control character to drop: then the text is kept as it is, not
    // rebuilt char by char (this runs for every mail).
    if has_control_besides_lf_and_tab(&text) {
        text.retain(|c| !dropped(c));
    }
    text.truncate(text.trim_end().len());
    text
}

// ---------------------------------------------------------------- attachments

/// One attachment: a part mail-parser lists as an attachment (attached files and messages,
/// text parts that are not body text, images of a multipart/related) or an inline image or
/// other media shown in the body.
fn attachment(part: &MessagePart<'_>) -> Attachment {
    let name = named(part);
    let content_id = part.content_id().and_then(clean_content_id);
    let inline = match part.content_disposition() {
        Some(disposition) => disposition.is_inline(),
        // Apple Mail and others leave the disposition out of multipart/related images.
        None => content_id.is_some(),
    };
    Attachment {
        name: if name.is_empty() {
            "attachment".to_string()
        } else {
            name
        },
        content_type: content_type(part),
        inline,
        content_id,
        data: decoded_bytes(part),
    }
}

/// The part's file name for display, empty when it has none. An RFC 2047 or RFC 2231 encoded
/// name is read by [`names`] (mail-parser leaves stray spaces in folded ones).
fn named(part: &MessagePart<'_>) -> String {
    match names::encoded_attachment_name(part) {
        Some(name) => clean_line(&name),
        None => part.attachment_name().map(clean_line).unwrap_or_default(),
    }
}

/// A Content-ID as `cid:` URLs write it: no angle brackets (RFC 2392 §2), no spaces.
fn clean_content_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    (!id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| id.to_string())
}

/// `type/subtype` in lower case; an absent Content-Type means text/plain (RFC 2045 §5.2), or
/// message/rfc822 in a multipart/digest.
fn content_type(part: &MessagePart<'_>) -> String {
    let Some(ct) = part.content_type() else {
        return match part.kind() {
            PartKind::Message(_) => "message/rfc822".to_string(),
            _ => "text/plain".to_string(),
        };
    };
    let mut full = match ct.subtype() {
        Some(subtype) => format!("{}/{}", ct.ctype(), subtype),
        None => ct.ctype().to_string(),
    };
    // mail-parser lowercases both already; this keeps the promise if that ever changes.
    full.make_ascii_lowercase();
    full
}

/// The content after transfer decoding, decoded only now (mail-parser decodes on access).
/// Text parts are converted to UTF-8 whatever charset they declared, as for the body; an
/// attached message is its bytes as they came (transfer-decoded if it was encoded).
fn decoded_bytes(part: &MessagePart<'_>) -> Vec<u8> {
    match part.kind() {
        PartKind::Text | PartKind::Html => part_text(part).into_owned().into_bytes(),
        _ => part.decoded().into_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn control_detection_on_bytes_agrees_with_char_is_control() {
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            let expected = c.is_control() && c != '\n' && c != '\t';
            assert_eq!(has_control_besides_lf_and_tab(&format!("a{c}b")), expected, "U+{:04X}", c as u32);
        }
        assert!(!has_control_besides_lf_and_tab("日本語 ¢ é\n\t"));
        // At every offset of the 32-byte blocks, a C1 control split across two blocks
        // included ("x" * 31 then U+0085: its 0xC2 ends the first block).
        for pad in 0..70 {
            for (c, expected) in [('\u{1}', true), ('\u{85}', true), ('\u{7f}', true), ('\u{a2}', false), ('\n', false)] {
                let text = format!("{}{c}{}", "x".repeat(pad), "日".repeat(20));
                assert_eq!(has_control_besides_lf_and_tab(&text), expected, "U+{:04X} after {pad}", c as u32);
            }
        }
    }

    /// What `clean_line` means, written plainly (it has a fast path for clean values).
    fn clean_line_reference(text: &str) -> String {
        let visible: String = text.chars().filter(|&c| !c.is_control() || c.is_ascii_whitespace()).collect();
        visible.split(|c: char| c.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn clean_line_agrees_with_its_definition() {
        // Every string of up to 5 of these characters.
        const ALPHABET: &[char] = &[' ', '\t', '\n', 'a', '\u{7}', '\u{85}', '¥', '\u{3000}'];
        for len in 0..=5u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                let mut text = String::new();
                for _ in 0..len {
                    text.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                assert_eq!(clean_line(&text), clean_line_reference(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn line_ends_become_lf() {
        assert_eq!(normalize_line_ends("a\r\nb\rc\n\r\r\nd\r"), "a\nb\nc\n\n\nd\n");
        assert_eq!(normalize_line_ends("日本\r\n"), "日本\n");
        assert_eq!(normalize_line_ends(""), "");
    }

    /// Test mails are written with LF for legibility; real SMTP input has CRLF. (Shared with
    /// the other test modules of `mail`.)
    pub(crate) fn crlf(lf: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(lf.len() + lf.len() / 16);
        for &b in lf {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }

    /// Name, content type and size of each attachment, for tests about the listing.
    pub(crate) fn listed(notice: &Notice) -> Vec<(&str, &str, usize)> {
        notice
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.content_type.as_str(), a.size()))
            .collect()
    }

    /// Parses `raw` and checks the notice's subject, sender and text.
    pub(crate) fn assert_parsed(raw: &[u8], subject: &str, from: &str, text: &str) {
        let notice = parse(raw);
        assert_eq!(notice.subject, subject);
        assert_eq!(notice.from, from);
        assert_eq!(notice.text, text);
    }

    /// A `multipart/mixed` mail (boundary `m`) of `parts`, each its headers, a blank line and
    /// its body, with CRLF line ends.
    fn mixed(parts: &[&str]) -> Vec<u8> {
        let mut lf = String::from("Content-Type: multipart/mixed; boundary=m\n\n");
        for part in parts {
            lf.push_str("--m\n");
            lf.push_str(part);
        }
        lf.push_str("--m--\n");
        crlf(lf.as_bytes())
    }

    /// Parses `raw` and checks the notice's subject and text.
    pub(crate) fn assert_subject_and_text(raw: &[u8], subject: &str, text: &str) {
        let notice = parse(raw);
        assert_eq!(notice.subject, subject);
        assert_eq!(notice.text, text);
    }

    /// Parses `raw` and checks that the notice is `text` and nothing else: every other field
    /// (subject, sender, attachments, priority, …) is left empty.
    fn assert_only_text(raw: &[u8], text: &str) {
        assert_eq!(parse(raw), Notice { text: text.to_string(), ..Notice::default() });
    }

    /// Parses `raw` and checks the notice's text and the attachments it lists.
    fn assert_text_and_listed(raw: &[u8], text: &str, attachments: &[(&str, &str, usize)]) {
        let notice = parse(raw);
        assert_eq!(notice.text, text);
        assert_eq!(listed(&notice), attachments);
    }

    /// Found by the `mime` fuzz target: on this broken nested multipart mail-parser 0.11.9
    /// hit `debug_assert!(false, "Invalid part ID, could not find multipart.")`, a panic in
    /// builds with debug assertions (tests, fuzzing), which `parse` turned into the fallback to
    /// the raw bytes. mail-parser 1.0 parses it without panicking (its changelog lists this
    /// input's shape as fixed), so `parse_message` is called directly, outside the
    /// `catch_unwind`: the headers are read, and the attached message is shown in the text
    /// (with the message attached inside it, its Subject field cut by a NUL byte, and that
    /// one's broken multipart listed as an attachment).
    /// "see below" follows a broken delimiter (`-\xd5outer`), so it is the multipart's
    /// preamble, which RFC 2046 §5.1.1 says to ignore.
    #[test]
    fn a_mail_parser_panic_input_parses_as_a_mail() {
        let input = include_bytes!("../../fuzz/regressions/mime/mail_parser_panic_nested_multipart.eml");
        let raw = &input[1..]; // the fuzz input's first byte is the target's selector
        let notice = parse_message(raw);
        assert_eq!(notice, parse(raw));
        assert_eq!(notice.subject, "Fwd: original");
        assert_eq!(notice.from, "fwd@example.com");
        assert_eq!(
            notice.text,
            "---------- Forwarded message ----------\nFrom: orig@exouter\n\n\
             ---------- Forwarded message ----------\nFrom: orig@example.com\nSubject: original Subject: u"
        );
        assert!(!notice.text.contains("see below"));
        // The innermost message's broken multipart, listed as its attachment.
        assert_eq!(listed(&notice), vec![("attachment", "application/oun\"=adyrq", 94)]);
    }

    #[test]
    fn iso_2022_jp_subject_and_7bit_body() {
        let raw = crlf(
            b"From: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?= <taro@example.jp>\n\
              To: hanako@example.jp\n\
              Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\n\
              MIME-Version: 1.0\n\
              Content-Type: text/plain; charset=ISO-2022-JP\n\
              Content-Transfer-Encoding: 7bit\n\
              \n\
              \x1b$B$3$s$K$A$O\x1b(B\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.subject, "こんにちは");
        assert_eq!(notice.from, "こんにちは <taro@example.jp>");
        assert_eq!(notice.to, "hanako@example.jp");
        assert_eq!(notice.text, "こんにちは");
        assert_eq!(notice.attachments, vec![]);
    }

    /// Japanese mailers split a long ISO-2022-JP subject or name into several encoded words,
    /// each ending back in ASCII (`ESC ( B`) as RFC 1468 asks. mail-parser 1.0 joins adjacent
    /// words of one charset before decoding, and the WHATWG decoder reports the escape right
    /// after an escape (`ESC ( B ESC $ B`) as an error: a U+FFFD between the words.
    #[test]
    fn iso_2022_jp_words_split_across_a_fold_decode_without_a_replacement_character() {
        let raw = crlf(
            b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?=\n =?iso-2022-jp?B?GyRCQkBPOhsoQg==?= <taro@example.jp>\n\
              To: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= =?ISO-2022-JP?B?GyRCQkBPOhsoQg==?= <a@example.jp>,\n\
              \x20=?ISO-2022-JP?B?GyRCQkBPOhsoQg==?= <b@example.jp>\n\
              Subject: =?ISO-2022-JP?B?GyRCb2dDTSRyRDYkKCReGyhC?=\n =?ISO-2022-JP?B?GyRCJDckPxsoQg==?=\n\
              \x20=?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= (=?ISO-2022-JP?B?GyRCQkBPOhsoQg==?=)\n\
              \n\
              x\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.subject, "閾値を超えました山田 (太郎)");
        assert_eq!(notice.from, "山田太郎 <taro@example.jp>");
        assert_eq!(notice.to, "山田太郎 <a@example.jp>, 太郎 <b@example.jp>");
    }

    /// A U+FFFD that the mail itself carries stays: only the joining is undone.
    #[test]
    fn a_real_decoding_error_in_an_iso_2022_jp_subject_is_kept() {
        // The second word is JIS X 0208 bytes with no escape into it: not valid ISO-2022-JP.
        let raw = crlf(b"Subject: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= =?ISO-2022-JP?B?gYI=?=\n\nx\n");
        assert_eq!(parse(&raw).subject, "山田\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn shift_jis_q_subject_and_base64_body() {
        let raw = crlf(
            b"Subject: =?Shift_JIS?Q?=82=A8=92=6D=82=E7=82=B9?=\n\
              Content-Type: text/plain; charset=Shift_JIS\n\
              Content-Transfer-Encoding: base64\n\
              \n\
              k/qWe4zqgsyDgYFbg4s=\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.subject, "お知らせ");
        assert_eq!(notice.text, "日本語のメール");
    }

    #[test]
    fn euc_jp_b_subject_and_quoted_printable_body() {
        let raw = crlf(
            b"Subject: =?EUC-JP?B?xbe1pM29yvM=?=\n\
              Content-Type: text/plain; charset=EUC-JP\n\
              Content-Transfer-Encoding: quoted-printable\n\
              \n\
              =C5=EC=B5=FE=A4=CE=C5=B7=B5=A4=A4=CF=C0=B2=A4=EC=A4=C7=A4=B9=A1=A3\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.subject, "天気予報");
        assert_eq!(notice.text, "東京の天気は晴れです。");
    }

    /// The Japanese charsets decode as encoding_rs (WHATWG) decodes them, which is what mail
    /// from Japanese systems needs: the NEC special characters (row 13: ①, ㈱, ㍉) and the
    /// CP932 extensions (髙, 﨑), half-width katakana in each charset's own way, and U+FFFD for
    /// an invalid or truncated sequence, never a lost line. (These once went through a fast path
    /// of our own, `charset.rs`, held to encoding_rs's output; issue #18 removed it.)
    #[test]
    fn japanese_charsets_decode_nec_cp932_and_half_width_katakana_and_mark_bad_bytes() {
        let body = |label: &str, bytes: &[u8]| {
            let raw = [
                format!("Subject: x\r\nContent-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
                    .as_bytes(),
                bytes,
            ]
            .concat();
            parse(&raw).text
        };
        // Shift_JIS, and its Microsoft label (CP932 is what Windows and most Japanese systems
        // send under either).
        let sjis = b"\x87\x40\x87\x8a\x87\x5f \xb6\xc0\xb6\xc5 \xfb\xfc\xed\x95 \x82\xa0";
        for label in ["Shift_JIS", "windows-31j", "cp932", "\"x-sjis\""] {
            assert_eq!(body(label, sjis), "①㈱㍉ ｶﾀｶﾅ 髙﨑 あ", "{label}");
        }
        // A byte no code starts with, and a pair cut short at the end.
        assert_eq!(body("Shift_JIS", b"a\xa0b \x82"), "a\u{FFFD}b \u{FFFD}");
        // ISO-2022-JP: row 13 through ESC $ B, half-width katakana through ESC ( I, JIS X 0201
        // Roman through ESC ( J; then a pair cut short by the escape back to ASCII.
        assert_eq!(
            body("ISO-2022-JP", b"\x1b$B-!-j\x1b(B \x1b(I6@6E\x1b(B \x1b(Jabc\x1b(B \x1b$B$\"\x1b(B"),
            "①㈱ ｶﾀｶﾅ abc あ"
        );
        assert_eq!(body("ISO-2022-JP", b"a\x1b$B%\x1b(Bb"), "a\u{FFFD}b");
        // EUC-JP: row 13, half-width katakana after 0x8E, a truncated pair.
        assert_eq!(body("EUC-JP", b"\xad\xa1\xad\xea \x8e\xb6\x8e\xc0 \xa4\xa2"), "①㈱ ｶﾀ あ");
        assert_eq!(body("EUC-JP", b"a \xa4"), "a \u{FFFD}");
    }

    #[test]
    fn folded_utf8_subject_words_join_and_whitespace_collapses() {
        // Adjacent encoded words join without the folding whitespace (RFC 2047 §6.2);
        // plain folded text keeps one space.
        let raw = crlf(
            b"Subject: =?UTF-8?B?44GC44KK44GM44Go44GG?=\n =?UTF-8?B?44GU44GW44GE44G+44GZ?=\n\
              \t and  =?UTF-8?Q?caf=C3=A9_au_lait?=  \n\
              \n\
              body\n",
        );
        assert_eq!(parse(&raw).subject, "ありがとうございます and café au lait");
    }

    #[test]
    fn ideographic_space_in_subject_is_kept() {
        let raw = crlf("Subject: 【重要】\u{3000}お知らせ\n\nx\n".as_bytes());
        assert_eq!(parse(&raw).subject, "【重要】\u{3000}お知らせ");
    }

    #[test]
    fn address_lists_and_encoded_names() {
        let raw = crlf(
            b"From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <yamada@example.jp>\n\
              To: alice@example.com, \"Bob Smith\" <bob@example.com>,\n  carol@example.com <carol@example.com>\n\
              Subject: hi\n\
              \n\
              x\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.from, "山田 太郎 <yamada@example.jp>");
        assert_eq!(
            notice.to,
            "alice@example.com, Bob Smith <bob@example.com>, carol@example.com"
        );
    }

    #[test]
    fn group_members_are_listed() {
        let raw = crlf(b"To: Team: a@example.com, B <b@example.com>;\n\nx\n");
        assert_eq!(parse(&raw).to, "a@example.com, B <b@example.com>");
    }

    #[test]
    fn latin1_quoted_printable_with_soft_breaks() {
        let raw = crlf(
            b"Content-Type: text/plain; charset=ISO-8859-1\n\
              Content-Transfer-Encoding: quoted-printable\n\
              \n\
              Un caf=E9 tr=E8s long qui continue =\n\
              sur la ligne suivante, 1+1=3D2.\n\
              Fin.\n",
        );
        assert_eq!(
            parse(&raw).text,
            "Un café très long qui continue sur la ligne suivante, 1+1=2.\nFin."
        );
    }

    #[test]
    fn base64_utf8_body() {
        let raw = crlf(
            b"Content-Type: text/plain; charset=utf-8\n\
              Content-Transfer-Encoding: base64\n\
              \n\
              44GT44KT44Gr44Gh44Gv44CB5LiW55WM77yBCuS6jOihjOebruOBp+OBmeOAggo=\n",
        );
        assert_eq!(parse(&raw).text, "こんにちは、世界！\n二行目です。");
    }

    #[test]
    fn invalid_utf8_in_an_encoded_utf8_body_becomes_replacement_characters() {
        // "caf\xe9 ☕ ok\xf0\x9f": a Latin-1 byte and a cut-off emoji in a UTF-8 part.
        let raw = crlf(
            b"Content-Type: text/plain; charset=utf-8\n\
              Content-Transfer-Encoding: base64\n\
              \n\
              Y2Fm6SDimJUgb2vwnw==\n",
        );
        assert_eq!(parse(&raw).text, "caf\u{FFFD} ☕ ok\u{FFFD}");
    }

    #[test]
    fn html_only_mail_becomes_readable_text() {
        let raw = crlf(
            b"Subject: Your order\n\
              Content-Type: text/html; charset=utf-8\n\
              \n\
              <html><head><title>Order</title><style>td{color:red}</style></head>\n\
              <body><h1>Thanks &amp; welcome</h1><p>Items:</p>\n\
              <ul><li>Tea</li><li>Caf&eacute;</li></ul>\n\
              <div>Total:&nbsp;&#165;1,200</div><script>track()</script></body></html>\n",
        );
        assert_eq!(
            parse(&raw).text,
            "Thanks & welcome\n\nItems:\n\n• Tea\n• Café\nTotal: ¥1,200"
        );
    }

    #[test]
    fn multipart_alternative_prefers_plain() {
        let raw = crlf(
            b"Subject: alt\n\
              MIME-Version: 1.0\n\
              Content-Type: multipart/alternative; boundary=\"b1\"\n\
              \n\
              --b1\n\
              Content-Type: text/html; charset=utf-8\n\
              \n\
              <p>HTML version</p>\n\
              --b1\n\
              Content-Type: text/plain; charset=utf-8\n\
              \n\
              Plain version\n\
              --b1--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "Plain version");
        assert_eq!(notice.attachments, vec![]);
    }

    #[test]
    fn alternative_without_plain_uses_html() {
        let raw = crlf(
            b"Content-Type: multipart/alternative; boundary=b1\n\
              \n\
              --b1\n\
              Content-Type: text/html; charset=utf-8\n\
              \n\
              <div>only</div><div>html</div>\n\
              --b1--\n",
        );
        assert_eq!(parse(&raw).text, "only\nhtml");
    }

    /// multipart/mixed [ multipart/alternative [ text/plain,
    ///   multipart/related [ text/html, inline image ] ], PDF attachment ]
    const NESTED: &[u8] = b"From: Shop <shop@example.com>\n\
        To: you@example.com\n\
        Subject: Invoice\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/mixed; boundary=\"outer\"\n\
        \n\
        This is a multi-part message.\n\
        --outer\n\
        Content-Type: multipart/alternative; boundary=\"alt\"\n\
        \n\
        --alt\n\
        Content-Type: text/plain; charset=utf-8\n\
        Content-Transfer-Encoding: quoted-printable\n\
        \n\
        Your invoice is =\n\
        attached. Thank you.\n\
        --alt\n\
        Content-Type: multipart/related; boundary=\"rel\"\n\
        \n\
        --rel\n\
        Content-Type: text/html; charset=utf-8\n\
        \n\
        <p>Your invoice is attached.</p><img src=\"cid:logo\">\n\
        --rel\n\
        Content-Type: image/png; name=\"=?UTF-8?B?55S75YOPLnBuZw==?=\"\n\
        Content-Transfer-Encoding: base64\n\
        Content-ID: <logo>\n\
        Content-Disposition: inline\n\
        \n\
        iVBORw0KGgo=\n\
        --rel--\n\
        --alt--\n\
        --outer\n\
        Content-Type: application/pdf\n\
        Content-Transfer-Encoding: base64\n\
        Content-Disposition: attachment;\n filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf\n\
        \n\
        JVBERi0xLjQK\n\
        --outer--\n";

    #[test]
    fn nested_multipart_takes_plain_and_lists_attachments() {
        let notice = parse(&crlf(NESTED));
        assert_eq!(notice.subject, "Invoice");
        assert_eq!(notice.from, "Shop <shop@example.com>");
        assert_eq!(notice.text, "Your invoice is attached. Thank you.");
        assert_eq!(
            listed(&notice),
            vec![
                ("画像.png", "image/png", 8),
                ("請求書.pdf", "application/pdf", 9)
            ]
        );
    }

    #[test]
    fn attachment_without_name_and_attached_message() {
        let raw = mixed(&[
            "Content-Type: text/plain\n\nsee attached\n",
            "Content-Type: APPLICATION/Octet-Stream\nContent-Transfer-Encoding: base64\n\nAAECAw==\n",
            "Content-Type: message/rfc822\n\nSubject: inner\n\nhello\n",
        ]);
        // The attached message is shown in the text, not listed.
        assert_text_and_listed(
            &raw,
            "see attached\n\n---------- Forwarded message ----------\nSubject: inner\n\nhello",
            &[("attachment", "application/octet-stream", 4)],
        );
    }

    #[test]
    fn text_attachment_is_not_body() {
        let raw = mixed(&[
            "Content-Type: text/plain\n\nbody\n",
            "Content-Type: text/csv; name=data.csv\nContent-Disposition: attachment; filename=data.csv\n\na,b\n",
        ]);
        assert_text_and_listed(&raw, "body", &[("data.csv", "text/csv", 3)]);
    }

    #[test]
    fn mixed_inline_texts_join_and_inline_image_is_listed() {
        let raw = mixed(&[
            "Content-Type: text/plain\n\nbefore\n",
            "Content-Type: image/jpeg\nContent-Disposition: inline; filename=photo.jpg\n\
             Content-Transfer-Encoding: base64\n\n/9j/\n",
            "Content-Type: text/plain\n\nafter\n",
        ]);
        assert_text_and_listed(&raw, "before\n\nafter", &[("photo.jpg", "image/jpeg", 3)]);
    }

    /// A mail built by Python's `email` package the way desktop clients build one (see
    /// testdata/make_rich_mail.py), and the files that went into it.
    const RICH: &[u8] = include_bytes!("testdata/rich.eml");
    const LOGO_PNG: &[u8] = include_bytes!("testdata/logo.png");
    const CHART_PNG: &[u8] = include_bytes!("testdata/chart.png");
    const SNAPSHOT_JPG: &[u8] = include_bytes!("testdata/snapshot.jpg");
    const SCAN_PDF: &[u8] = include_bytes!("testdata/scan.pdf");

    #[test]
    fn rich_mail_keeps_each_attachment_bytes_and_kind() {
        let notice = parse(RICH);
        assert_eq!(notice.subject, "Disk usage report");
        assert_eq!(
            notice.text,
            "Disk usage is at 91%.\nSee the attached chart."
        );
        let got: Vec<(&str, &str, bool, Option<&str>, &[u8])> = notice
            .attachments
            .iter()
            .map(|a| {
                let cid = a.content_id.as_deref();
                (
                    a.name.as_str(),
                    a.content_type.as_str(),
                    a.inline,
                    cid,
                    a.data.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "logo.png",
                    "image/png",
                    true,
                    Some("logo@example.com"),
                    LOGO_PNG
                ),
                ("chart.png", "image/png", false, None, CHART_PNG),
                ("snapshot.jpg", "image/jpeg", false, None, SNAPSHOT_JPG),
                ("scan.pdf", "application/pdf", false, None, SCAN_PDF),
            ]
        );
        assert_eq!(notice.attachments[2].size(), SNAPSHOT_JPG.len());
    }

    #[test]
    fn rich_mail_with_lf_line_ends_gives_the_same_bytes() {
        // Mail handed to the gateway by a local program often has bare LF line ends.
        let lf: Vec<u8> = String::from_utf8_lossy(RICH)
            .replace("\r\n", "\n")
            .into_bytes();
        let notice = parse(&lf);
        let data: Vec<&[u8]> = notice
            .attachments
            .iter()
            .map(|a| a.data.as_slice())
            .collect();
        assert_eq!(data, vec![LOGO_PNG, CHART_PNG, SNAPSHOT_JPG, SCAN_PDF]);
    }

    #[test]
    fn related_image_without_disposition_is_inline_by_its_content_id() {
        let raw = crlf(
            b"Content-Type: multipart/related; boundary=r; type=\"text/html\"\n\
              \n\
              --r\n\
              Content-Type: text/html; charset=utf-8\n\
              \n\
              <p>chart</p><img src=\"cid:part1.06090408.01060107@example.jp\">\n\
              --r\n\
              Content-Type: image/png; name=\"chart.png\"\n\
              Content-Transfer-Encoding: base64\n\
              Content-ID: < part1.06090408.01060107@example.jp >\n\
              \n\
              iVBORw0KGgo=\n\
              --r\n\
              Content-Type: image/png; name=\"other.png\"\n\
              Content-Transfer-Encoding: base64\n\
              Content-ID: <bad id>\n\
              Content-Disposition: attachment\n\
              \n\
              iVBORw0KGgo=\n\
              --r--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "chart");
        let a = &notice.attachments[0];
        assert_eq!(a.name, "chart.png");
        assert!(a.inline);
        assert_eq!(
            a.content_id.as_deref(),
            Some("part1.06090408.01060107@example.jp")
        );
        assert_eq!(a.data, b"\x89PNG\r\n\x1a\n");
        // An explicit attachment disposition wins; an id with a space cannot be a cid: URL.
        let b = &notice.attachments[1];
        assert!(!b.inline);
        assert_eq!(b.content_id, None);
    }

    #[test]
    fn attachment_debug_leaves_the_bytes_out() {
        let notice = parse(RICH);
        let debug = format!("{:?}", notice.attachments[1]);
        assert_eq!(
            debug,
            format!(
                "Attachment {{ name: \"chart.png\", content_type: \"image/png\", inline: false, \
                 content_id: None, size: {} }}",
                CHART_PNG.len()
            )
        );
    }

    #[test]
    fn format_flowed_without_delsp() {
        let raw = crlf(
            b"Content-Type: text/plain; charset=utf-8; format=flowed\n\
              \n\
              This paragraph was \n\
              wrapped by the sender.\n\
              \n\
              > quoted and \n\
              > wrapped\n\
               From stuffed\n",
        );
        assert_eq!(
            parse(&raw).text,
            "This paragraph was wrapped by the sender.\n\n> quoted and wrapped\nFrom stuffed"
        );
    }

    #[test]
    fn format_flowed_with_delsp() {
        let raw = crlf(
            "Content-Type: text/plain; charset=utf-8; Format=Flowed; DelSp=Yes\n\
             \n\
             こんにち \n\
             は、世界。\n"
                .as_bytes(),
        );
        assert_eq!(parse(&raw).text, "こんにちは、世界。");
    }

    #[test]
    fn fixed_text_keeps_its_line_breaks() {
        let raw = crlf(b"Content-Type: text/plain\n\nline one \nline two\n");
        assert_eq!(parse(&raw).text, "line one \nline two");
    }

    #[test]
    fn missing_subject_is_empty() {
        let raw = crlf(b"From: a@example.com\nTo: b@example.com\n\nHello\n");
        assert_parsed(&raw, "", "a@example.com", "Hello");
    }

    #[test]
    fn missing_headers_leave_fields_empty() {
        assert_only_text(b"\r\nJust a body\r\nsecond line\r\n", "Just a body\nsecond line");
    }

    #[test]
    fn answers_go_to_reply_to_else_from_as_a_bare_address() {
        let both = parse(b"From: Zabbix <zabbix@example.com>\r\nReply-To: \"Ops desk\" <ops@example.com>, b@example.com\r\n\r\nx");
        assert_eq!(both.reply_to, "ops@example.com");
        let from_only = parse(b"From: =?UTF-8?B?5L2Q6Jek?= <sato@example.jp>\r\n\r\nx");
        assert_eq!(from_only.reply_to, "sato@example.jp");
        // A group or a name without an address gives nothing to answer to, not a broken one.
        assert_eq!(parse(b"From: undisclosed-recipients:;\r\n\r\nx").reply_to, "");
        assert_eq!(parse(b"From: nobody\r\n\r\nx").reply_to, "");
        assert_eq!(parse(b"\r\nbody").reply_to, "");
    }

    #[test]
    fn empty_input_gives_an_empty_notice() {
        assert_eq!(parse(b""), Notice::default());
    }

    #[test]
    fn bare_lf_input() {
        let raw = b"Subject: bare\nFrom: Al <al@example.com>\n\nfirst\nsecond\n\nthird\n";
        assert_parsed(raw, "bare", "Al <al@example.com>", "first\nsecond\n\nthird");
    }

    #[test]
    fn control_characters_and_trailing_whitespace_are_dropped() {
        let raw = b"Subject: a\x07b\x1bc\r\n\r\n  indented\tkept\x00\x08\r\nbell\x07\rlone cr\r\n \t \r\n\r\n";
        assert_subject_and_text(raw, "abc", "  indented\tkept\nbell\nlone cr");
    }

    #[test]
    fn garbage_input_does_not_panic() {
        // parse_message, not parse: parse's catch_unwind would hide the panic we look for.
        let samples: &[&[u8]] = &[
            b"\xff\xfe\x00\x00garbage",
            b":::\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--",
            b"Subject: =?UTF-8?B?####?= =?x?Q?=ZZ?=\r\n\r\n",
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!!",
            b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xa4\xa2",
            b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
        ];
        for sample in samples {
            let _ = parse_message(sample);
        }
        // Every prefix of a real nested mail, and deterministic pseudo-random bytes.
        let nested = crlf(NESTED);
        for end in 0..nested.len() {
            let _ = parse_message(&nested[..end]);
        }
        for end in (0..RICH.len()).step_by(7) {
            let _ = parse_message(&RICH[..end]);
        }
        // Bytes that mean something to a MIME parser, so the noise reaches deep code paths.
        for bytes in noise(b"\r\n:=?-<>\"; abBQ\x1b\xff", 0x1234_5678, 300) {
            let _ = parse_message(&bytes);
        }
    }

    /// Deterministic strings of `alphabet`'s bytes, one of each length below `lengths`
    /// (a linear congruential generator from `seed`), for no-panic tests.
    pub(crate) fn noise(alphabet: &'static [u8], seed: u32, lengths: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut state = seed;
        (0..lengths).map(move |len| {
            (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    alphabet[(state >> 16) as usize % alphabet.len()]
                })
                .collect()
        })
    }

    #[test]
    fn garbage_bytes_become_replacement_text() {
        // No header/body split and invalid UTF-8 still reach LINE as something readable.
        assert_only_text(b"no headers here\xff", "no headers here\u{FFFD}");
    }

    #[test]
    fn text_without_a_header_section_is_all_body() {
        // mail-parser would take "hello world" for a header and drop it.
        let notice = parse(b"hello world\r\n\r\nbody\r\n");
        assert_eq!(notice.subject, "");
        assert_eq!(notice.text, "hello world\n\nbody");
    }

    #[test]
    fn last_header_without_a_line_end_is_read() {
        assert_parsed(b"Subject: x\r\nFrom: a@example.com", "x", "a@example.com", "");
    }

    #[test]
    fn priority_headers_make_the_notice_urgent() {
        for header in [
            "X-Priority: 1 (Highest)",
            "X-Priority: 2 (High)",
            "x-priority: 1",
            "Importance: High",
            "IMPORTANCE: high",
            "Priority: Urgent",
            "X-MSMail-Priority: High",
            "X-Priority:\n 1 (Highest)",
            "Importance:\n\thigh",
        ] {
            let raw = crlf(format!("From: a@example.com\n{header}\nSubject: disk full\n\nbody\n").as_bytes());
            let notice = parse(&raw);
            assert!(notice.urgent, "{header:?}");
            assert_eq!((notice.subject.as_str(), notice.text.as_str()), ("disk full", "body"), "{header:?}");
        }
    }

    #[test]
    fn routine_and_odd_priority_headers_leave_the_notice_routine() {
        for header in [
            "X-Priority: 3 (Normal)",
            "X-Priority: 5",
            "X-Priority: high",
            "Importance: normal",
            "Importance: low",
            "Priority: non-urgent",
            "Priority: normal",
            "X-MSMail-Priority: Normal",
            "X-Priority: =?utf-8?q?1?=",
            "X-Priority:",
            "Subject: URGENT",
        ] {
            let raw = crlf(format!("From: a@example.com\n{header}\n\nbody\n").as_bytes());
            assert!(!parse(&raw).urgent, "{header:?}");
        }
        assert!(!parse(b"X-Priority: \xff\xfe\r\n\r\nbody\r\n").urgent);
        assert!(!parse(&crlf(b"Subject: hi\n\nX-Priority: 1\n")).urgent, "a body line is not a header");
    }

    #[test]
    fn lf_only_mail_with_a_priority_header_is_urgent() {
        assert!(parse(b"Subject: x\nX-Priority: 1\n\nbody\n").urgent);
        assert!(parse(b"Subject: x\nX-Priority: 1").urgent, "a last header without a line end");
    }

    #[test]
    fn only_the_top_level_headers_count() {
        // An urgent mail forwarded as an attachment, or a part with its own priority header,
        // does not make the mail around it urgent.
        let raw = crlf(
            b"Content-Type: multipart/mixed; boundary=m\n\
              Subject: fwd\n\
              \n\
              --m\n\
              Content-Type: text/plain\n\
              X-Priority: 1\n\
              \n\
              see attached\n\
              --m\n\
              Content-Type: message/rfc822\n\
              \n\
              Subject: inner\n\
              Importance: high\n\
              X-Priority: 1 (Highest)\n\
              \n\
              hello\n\
              --m--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "see attached\n\n---------- Forwarded message ----------\nSubject: inner\n\nhello");
        assert!(!notice.urgent);
    }

    #[test]
    fn text_without_headers_is_routine() {
        assert!(!parse(b"just text\r\n").urgent);
        assert!(!parse(b"").urgent);
    }
}
