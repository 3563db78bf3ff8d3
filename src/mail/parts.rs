//! The MIME structure walk: which parts of a message make its text, in what order, and
//! which are listed as attachments.
//!
//! mail-parser classifies the parts the way a JMAP server does (RFC 8621): text/plain over
//! HTML in a `multipart/alternative`, everything else an attachment. A phone reading a
//! notice needs more than that list, and this walk adds it, part by part in the mail's order:
//!
//! - An attached message (`message/rfc822`: a forward as attachment, a bounce's returned
//!   message, each message of a `multipart/digest`, `text/rfc822-headers` of a bounce that
//!   returns only the headers) is shown as a mail client shows it: a separator line, its
//!   From / Date / Subject, then its own text, read by the same code as the outer mail (so
//!   forwards in forwards recurse, up to [`MAX_DEPTH`]). Its attachments join the list.
//! - A `text/plain` alternative that is only a stub ("This is an HTML email, view it in your
//!   browser", or a fraction of the HTML's text) gives way to the HTML's text.
//! - A calendar (`text/calendar` alternative or `.ics` file) is summarised ([`calendar`])
//!   rather than listed as a nameless attachment; a named `.ics` file is listed as well.
//! - A nameless image of a `multipart/related` HTML body that the HTML shows through a `cid:`
//!   URL (logos, spacers, social icons) is part of the HTML's look, not a file: it is not
//!   listed as "attachment (3 KB)". Named ones stay (a Grafana chart is the content).

use mail_parser::{HeaderName, Message, MessagePart, PartKind, PartRole};

use super::{
    attachment, body_piece, calendar, clean_content_id, clean_line, decoded_bytes, finish_text, html, named,
    normalize_line_ends, notice_from, part_text, starts_with_header_section, Attachment, PARSER,
};

/// How many attached messages deep the text goes: a forward of a forward of a forward is
/// shown; a message deeper than that is listed as an attachment. Each level is parsed again
/// from its bytes, so the limit also bounds the work a crafted deep nesting can cause.
const MAX_DEPTH: usize = 3;

/// The text and attachments of a message that is `depth` attached messages deep (0 for the
/// mail itself).
pub(super) fn text_and_attachments(message: &Message<'_>, depth: usize) -> (String, Vec<Attachment>) {
    let root = message.root();
    let mut pieces: Vec<String> = Vec::new();
    let mut attachments = Vec::new();
    // Calendar summaries given so far: Google sends the same event as an alternative and as
    // invite.ics, and it should read once.
    let mut calendars: Vec<String> = Vec::new();
    // The `cid:` URLs of the message's HTML, read only when a nameless related image asks.
    let mut cid_urls: Option<Vec<String>> = None;
    for part in root.parts() {
        if part.is_multipart() {
            continue;
        }
        if is_attached_message(&part) {
            if let Some((text, inner)) = forwarded(&part, depth) {
                pieces.push(text);
                attachments.extend(inner);
                continue;
            }
        } else if is_calendar(&part) {
            let ics = String::from_utf8_lossy(&decoded_bytes(&part)).into_owned();
            if let Some(summary) = calendar::summary(&ics) {
                if !calendars.contains(&summary) {
                    pieces.push(summary.clone());
                    calendars.push(summary);
                }
                if !named(&part).is_empty() {
                    attachments.push(attachment(&part));
                }
                continue;
            }
        }
        if part.in_text_body() {
            pieces.extend(text_piece(&part));
        }
        if matches!(part.role(), PartRole::Attachment | PartRole::MediaBody) && !is_html_decoration(message, &part, &mut cid_urls) {
            attachments.push(attachment(&part));
        }
    }
    let mut text = String::new();
    for mut piece in pieces {
        piece.truncate(piece.trim_end().len());
        if piece.is_empty() {
            continue;
        }
        if text.is_empty() {
            // Most mails have one piece: it becomes the text without a copy.
            text = piece;
        } else {
            text.push_str("\n\n");
            text.push_str(&piece);
        }
    }
    (finish_text(text), attachments)
}

// ---------------------------------------------------------------- attached messages

fn is_attached_message(part: &MessagePart<'_>) -> bool {
    if matches!(part.kind(), PartKind::Message(_)) {
        return true;
    }
    // Not parsed as a message by mail-parser (beyond its own depth limit, say), or a bounce's
    // returned headers: read here from the bytes.
    part.content_type().is_some_and(|ct| {
        let subtype = ct.subtype().unwrap_or_default();
        (ct.ctype().eq_ignore_ascii_case("message")
            && (subtype.eq_ignore_ascii_case("rfc822") || subtype.eq_ignore_ascii_case("global")))
            || (ct.ctype().eq_ignore_ascii_case("text") && subtype.eq_ignore_ascii_case("rfc822-headers"))
    })
}

/// An attached message as text (separator, From / Date / Subject, its text) and its
/// attachments; `None` when it is too deep, not a message, or has nothing to show (then it
/// is listed as an attachment, as before).
fn forwarded(part: &MessagePart<'_>, depth: usize) -> Option<(String, Vec<Attachment>)> {
    if depth >= MAX_DEPTH {
        return None;
    }
    // Transfer-decoded (and, for text/rfc822-headers, charset-decoded) bytes. mail-parser's
    // own nested view is not used: parsing the bytes again gives the inner mail exactly the
    // reading the outer one gets (sloppy headers, charsets, HTML, its own attachments).
    let bytes = decoded_bytes(part);
    if !starts_with_header_section(&bytes) {
        return None;
    }
    let message = PARSER.parse(&bytes[..])?;
    let notice = notice_from(&message, depth + 1);
    // Date is one of the fields PARSER skips; its raw bytes are kept, and a date is shown as
    // the sender wrote it, as mail clients quote it in a forward.
    let date = message
        .headers()
        .get(HeaderName::Date)
        .map(|h| clean_line(&String::from_utf8_lossy(h.raw_value())))
        .unwrap_or_default();
    let nothing = notice.subject.is_empty()
        && notice.from.is_empty()
        && date.is_empty()
        && notice.text.is_empty()
        && notice.attachments.is_empty();
    if nothing {
        return None;
    }
    let mut text = separator(part);
    for (label, value) in [("From", &notice.from), ("Date", &date), ("Subject", &notice.subject)] {
        if !value.is_empty() {
            text.push('\n');
            text.push_str(label);
            text.push_str(": ");
            text.push_str(value);
        }
    }
    if !notice.text.is_empty() {
        text.push_str("\n\n");
        text.push_str(&notice.text);
    }
    Some((text, notice.attachments))
}

/// The line above an attached message: what a mail client writes for a forward, the message
/// number in a digest (Mailman's "Today's Topics" count them the same way), and "Original
/// message" in a delivery report (a bounce).
fn separator(part: &MessagePart<'_>) -> String {
    let parent = part.parent();
    let subtype = parent.and_then(|p| p.content_type()).and_then(|ct| ct.subtype()).unwrap_or_default();
    if subtype.eq_ignore_ascii_case("digest") {
        let siblings = parent.map(|p| p.children().filter(is_attached_message).map(|c| c.id()).collect::<Vec<_>>());
        if let Some(n) = siblings.and_then(|ids| ids.iter().position(|&id| id == part.id())) {
            return format!("---------- Message {} ----------", n + 1);
        }
    }
    if subtype.eq_ignore_ascii_case("report") {
        return "---------- Original message ----------".to_string();
    }
    "---------- Forwarded message ----------".to_string()
}

// ---------------------------------------------------------------- text

/// The text of a body part; a stub text/plain alternative is replaced by its HTML's text.
fn text_piece(part: &MessagePart<'_>) -> Option<String> {
    let piece = body_piece(part)?;
    if matches!(part.kind(), PartKind::Text) {
        if let Some(html) = html_instead_of_stub(part, &piece) {
            return Some(html);
        }
    }
    Some(piece)
}

/// What plain-text alternatives say when they are only there for mail clients without HTML,
/// lower case (the text is compared in lower case, whitespace runs made one space).
const STUB_PHRASES: &[&str] = &[
    "cannot display this message",
    "can't display this message",
    "cannot display this email",
    "can't display this email",
    "unable to display this message",
    "unable to display this email",
    "does not support html",
    "doesn't support html",
    "cannot display html",
    "can't display html",
    "this is an html email",
    "this is an html message",
    "this is a html email",
    "this is a html message",
    "this message is in html format",
    "this email is in html format",
    "this email was sent in html",
    "html-only",
    "requires an html",
    "html-capable",
    "html capable",
    "enable html",
    "view this email in your browser",
    "view this email in a browser",
    "view this email in a web browser",
    "view this message in your browser",
    "view this message in a browser",
    "view it in your browser",
    "open this email in your browser",
    "view the online version",
    "view as a web page",
    "view this email as a web page",
    "html形式",
    "htmlメール",
    "ブラウザで表示",
    "ブラウザでご覧",
];

/// A stub is short: a plain text longer than this is real content even if it also invites
/// to "view this email in your browser" (newsletters put that line atop a full text).
const STUB_MAX_CHARS: usize = 600;

/// The HTML alternative's text when `plain`, the text of `part`, is a stub of it: a known
/// stub phrase in a short text, or under a quarter of the HTML's text when that is over 200
/// characters, or nothing at all. `None` keeps the plain text.
fn html_instead_of_stub(part: &MessagePart<'_>, plain: &str) -> Option<String> {
    let alternative = part.parent().filter(|p| p.content_type().and_then(|ct| ct.subtype()).is_some_and(|s| s.eq_ignore_ascii_case("alternative")))?;
    let mut htmls = Vec::new();
    html_parts(&alternative, &mut htmls, 0);
    if htmls.is_empty() {
        return None;
    }
    let plain_chars = plain.trim().chars().count();
    let phrase = plain_chars <= STUB_MAX_CHARS && {
        let lower = plain.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        STUB_PHRASES.iter().any(|p| lower.contains(p))
    };
    // The HTML's text is never longer than its source: when the plain text is over a
    // quarter of the source, the ratio cannot say "stub", and the HTML is not rendered
    // (this runs for every multipart/alternative mail).
    let html_source: usize = htmls.iter().map(|h| h.raw_body().len()).sum();
    if !phrase && plain_chars != 0 && plain_chars.saturating_mul(4) >= html_source {
        return None;
    }
    let html_text = htmls
        .iter()
        .map(|h| html::html_to_text(&normalize_line_ends(&part_text(h))))
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let html_chars = html_text.trim().chars().count();
    let stub = html_chars > plain_chars
        && (phrase || plain_chars == 0 || (html_chars > 200 && plain_chars.saturating_mul(4) < html_chars));
    stub.then_some(html_text)
}

/// The HTML parts shown for `multipart` (its HTML body), depth first; multiparts nest
/// boundedly in mail-parser, and `depth` bounds this walk too.
fn html_parts<'m>(multipart: &MessagePart<'m>, out: &mut Vec<MessagePart<'m>>, depth: usize) {
    if depth > 16 {
        return;
    }
    for child in multipart.children() {
        match child.kind() {
            PartKind::Html if child.in_html_body() => out.push(child),
            PartKind::Multipart => html_parts(&child, out, depth + 1),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- calendars

fn is_calendar(part: &MessagePart<'_>) -> bool {
    let by_type = part.content_type().is_some_and(|ct| {
        let full = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase();
        matches!(full.as_str(), "text/calendar" | "text/x-vcalendar" | "application/ics")
    });
    by_type || {
        let name = named(part).to_ascii_lowercase();
        name.ends_with(".ics") || name.ends_with(".vcs")
    }
}

// ---------------------------------------------------------------- related images

/// Whether `part` is a nameless part of a `multipart/related` that the message's HTML shows
/// through a `cid:` URL: part of the HTML's look, not a file the sender attached.
fn is_html_decoration(message: &Message<'_>, part: &MessagePart<'_>, cid_urls: &mut Option<Vec<String>>) -> bool {
    if part.is_text() || !named(part).is_empty() {
        return false;
    }
    let in_related = part
        .parent()
        .and_then(|p| p.content_type())
        .and_then(|ct| ct.subtype())
        .is_some_and(|s| s.eq_ignore_ascii_case("related"));
    let Some(id) = part.content_id().and_then(clean_content_id).filter(|_| in_related) else {
        return false;
    };
    let urls = cid_urls.get_or_insert_with(|| {
        let mut urls = Vec::new();
        for html in message.root().parts().filter(|p| matches!(p.kind(), PartKind::Html)) {
            cid_references(&part_text(&html), &mut urls);
        }
        urls
    });
    urls.iter().any(|url| url.eq_ignore_ascii_case(&id))
}

/// The targets of the `cid:` URLs in `html` (RFC 2392: percent-encoded Content-IDs), in
/// `src="cid:..."`, `url(cid:...)` or wherever they are.
fn cid_references(html: &str, out: &mut Vec<String>) {
    let bytes = html.as_bytes();
    for colon in memchr::memchr_iter(b':', bytes) {
        if colon < 3 || !bytes[colon - 3..colon].eq_ignore_ascii_case(b"cid") {
            continue;
        }
        let rest = &bytes[colon + 1..];
        let end = rest
            .iter()
            .position(|b| matches!(b, b'"' | b'\'' | b'(' | b')' | b'<' | b'>' | b'&') || b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let mut id = Vec::with_capacity(end);
        let mut i = 0;
        while i < end {
            let hex = |b: u8| (b as char).to_digit(16);
            match (rest[i], rest.get(i + 1).copied().and_then(hex), rest.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(h), Some(l)) if i + 2 < end => {
                    id.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    id.push(b);
                    i += 1;
                }
            }
        }
        if !id.is_empty() {
            out.push(String::from_utf8_lossy(&id).into_owned());
        }
    }
}
