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
//! - The machine-readable status of a bounce or read receipt is not listed either: the
//!   report's first part says the same for people.

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
        let listed = matches!(part.role(), PartRole::Attachment | PartRole::MediaBody)
            && !is_machine_report(&part)
            && !is_html_decoration(message, &part, &mut cid_urls);
        if listed {
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

/// Whether `part` is the nameless machine-readable half of a report (a bounce's
/// `message/delivery-status`, a read receipt's `message/disposition-notification`): RFC 6522
/// puts the same news for people in the report's first part, which is the text, and
/// "📎 attachment (167 B)" would only be noise.
fn is_machine_report(part: &MessagePart<'_>) -> bool {
    let report = part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("message")
            && ct.subtype().is_some_and(|s| {
                ["delivery-status", "global-delivery-status", "disposition-notification", "global-disposition-notification"]
                    .iter()
                    .any(|r| s.eq_ignore_ascii_case(r))
            })
    });
    report && named(part).is_empty()
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
        let (ctype, subtype) = (ct.ctype(), ct.subtype().unwrap_or_default());
        (ctype.eq_ignore_ascii_case("text")
            && (subtype.eq_ignore_ascii_case("calendar") || subtype.eq_ignore_ascii_case("x-vcalendar")))
            || (ctype.eq_ignore_ascii_case("application") && subtype.eq_ignore_ascii_case("ics"))
    });
    // A file name says "calendar" too (application/octet-stream invite.ics). mail-parser's
    // reading of the name is enough for its ASCII suffix, and cheaper than `named`; a body
    // text part is not asked (this runs for every part of every mail).
    by_type
        || (!part.in_text_body()
            && part.attachment_name().is_some_and(|name| {
                let name = name.trim_end().as_bytes();
                name.len() >= 4 && {
                    let suffix = &name[name.len() - 4..];
                    suffix.eq_ignore_ascii_case(b".ics") || suffix.eq_ignore_ascii_case(b".vcs")
                }
            }))
}

// ---------------------------------------------------------------- related images

/// Whether `part` is a nameless part of a `multipart/related` that the message's HTML shows
/// through a `cid:` URL: part of the HTML's look, not a file the sender attached.
fn is_html_decoration(message: &Message<'_>, part: &MessagePart<'_>, cid_urls: &mut Option<Vec<String>>) -> bool {
    let in_related = part
        .parent()
        .and_then(|p| p.content_type())
        .and_then(|ct| ct.subtype())
        .is_some_and(|s| s.eq_ignore_ascii_case("related"));
    if !in_related || part.is_text() {
        return false;
    }
    let Some(id) = part.content_id().and_then(clean_content_id) else {
        return false;
    };
    if !named(part).is_empty() {
        return false;
    }
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

#[cfg(test)]
mod tests {
    use super::super::{parse, parse_message};

    use crate::mail::tests::{crlf, listed};

    // ------------------------------------------------------------ forwards and digests

    /// Outlook's "Forward as attachment": a short note, and the original mail as a
    /// message/rfc822 part named after its subject, with its own PDF attachment.
    const OUTLOOK_FORWARD: &[u8] = b"From: \"Nowak, Anna\" <anna.nowak@example.pl>\n\
        To: ops@example.com\n\
        Subject: FW: Raport kwartalny\n\
        Date: Tue, 8 Apr 2025 09:12:44 +0000\n\
        Message-ID: <AM0PR01MB1234ABCD@example.prod.outlook.com>\n\
        Content-Type: multipart/mixed;\n\tboundary=\"_004_AM0PR01MB1234ABCD_\"\n\
        MIME-Version: 1.0\n\
        \n\
        --_004_AM0PR01MB1234ABCD_\n\
        Content-Type: multipart/alternative;\n\tboundary=\"_000_AM0PR01MB1234ABCD_\"\n\
        \n\
        --_000_AM0PR01MB1234ABCD_\n\
        Content-Type: text/plain; charset=\"iso-8859-2\"\n\
        Content-Transfer-Encoding: quoted-printable\n\
        \n\
        Prosz=EA o przejrzenie.\n\
        \n\
        Anna\n\
        \n\
        --_000_AM0PR01MB1234ABCD_\n\
        Content-Type: text/html; charset=\"iso-8859-2\"\n\
        Content-Transfer-Encoding: quoted-printable\n\
        \n\
        <html><body><p class=3D\"MsoNormal\">Prosz=EA o przejrzenie.</p><p class=3D\"MsoNormal\">Anna</p></body></html>\n\
        \n\
        --_000_AM0PR01MB1234ABCD_--\n\
        \n\
        --_004_AM0PR01MB1234ABCD_\n\
        Content-Type: message/rfc822\n\
        Content-Disposition: attachment;\n\tcreation-date=\"Tue, 08 Apr 2025 09:12:40 GMT\";\n\tmodification-date=\"Tue, 08 Apr 2025 09:12:44 GMT\"\n\
        \n\
        From: \"Kowalski, Jan\" <jan.kowalski@example.pl>\n\
        To: \"Nowak, Anna\" <anna.nowak@example.pl>\n\
        Subject: =?iso-8859-2?Q?Raport_kwartalny_=B6wi=EAty?=\n\
        Date: Mon, 7 Apr 2025 17:03:10 +0200\n\
        Message-ID: <VI1PR02MB5678EFGH@example.prod.outlook.com>\n\
        Content-Type: multipart/mixed; boundary=\"_inner_\"\n\
        MIME-Version: 1.0\n\
        \n\
        --_inner_\n\
        Content-Type: text/plain; charset=\"utf-8\"\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        V8WCxIVjemFtIHJhcG9ydCB6YSBJIGt3YXJ0YcWCLgpKYW4K\n\
        \n\
        --_inner_\n\
        Content-Type: application/pdf; name=\"Raport Q1.pdf\"\n\
        Content-Disposition: attachment; filename=\"Raport Q1.pdf\"; size=9\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        JVBERi0xLjQK\n\
        \n\
        --_inner_--\n\
        \n\
        --_004_AM0PR01MB1234ABCD_--\n";

    #[test]
    fn a_forward_as_attachment_shows_the_original_mail() {
        let notice = parse(&crlf(OUTLOOK_FORWARD));
        assert_eq!(notice.subject, "FW: Raport kwartalny");
        assert_eq!(
            notice.text,
            "Proszę o przejrzenie.\n\nAnna\n\n\
             ---------- Forwarded message ----------\n\
             From: Kowalski, Jan <jan.kowalski@example.pl>\n\
             Date: Mon, 7 Apr 2025 17:03:10 +0200\n\
             Subject: Raport kwartalny święty\n\
             \n\
             Włączam raport za I kwartał.\nJan"
        );
        // The original's own attachment is listed; the original itself is not a file here.
        assert_eq!(listed(&notice), vec![("Raport Q1.pdf", "application/pdf", 9)]);
        // Neither the inner Message-ID nor its raw headers leak into the text.
        assert!(!notice.text.contains("VI1PR02MB5678EFGH") && !notice.text.contains("Content-Type"));
        assert_eq!(notice.message_id, "AM0PR01MB1234ABCD@example.prod.outlook.com");
    }

    #[test]
    fn a_base64_encoded_attached_message_is_read_too() {
        // Some mailers transfer-encode the attached message (RFC 2046 forbids it; it happens).
        let raw = crlf(
            b"Subject: Fwd: ping\n\
              Content-Type: multipart/mixed; boundary=m\n\
              \n\
              --m\n\
              Content-Type: message/rfc822; name=\"ping.eml\"\n\
              Content-Transfer-Encoding: base64\n\
              \n\
              RnJvbTogYm90QGV4YW1wbGUuY29tDQpTdWJqZWN0OiBwaW5nDQoNCnBvbmcNCg==\n\
              --m--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "---------- Forwarded message ----------\nFrom: bot@example.com\nSubject: ping\n\npong");
        assert_eq!(listed(&notice), vec![]);
    }

    /// A bounce as Postfix writes one: multipart/report with the explanation, the
    /// machine-readable status, and the returned message.
    const BOUNCE: &[u8] = b"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\n\
        Subject: Undelivered Mail Returned to Sender\n\
        To: alerts@example.com\n\
        Date: Wed, 9 Apr 2025 03:00:01 +0900 (JST)\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"8F2A41C0123.1744135201/mx.example.com\"\n\
        \n\
        This is a MIME-encapsulated message.\n\
        \n\
        --8F2A41C0123.1744135201/mx.example.com\n\
        Content-Description: Notification\n\
        Content-Type: text/plain; charset=us-ascii\n\
        \n\
        I'm sorry to have to inform you that your message could not\n\
        be delivered to one or more recipients.\n\
        \n\
        <oncall@example.net>: host mx.example.net[192.0.2.7] said: 550 5.1.1 User\n\
        \x20   unknown (in reply to RCPT TO command)\n\
        \n\
        --8F2A41C0123.1744135201/mx.example.com\n\
        Content-Description: Delivery report\n\
        Content-Type: message/delivery-status\n\
        \n\
        Reporting-MTA: dns; mx.example.com\n\
        Arrival-Date: Wed,  9 Apr 2025 03:00:00 +0900 (JST)\n\
        \n\
        Final-Recipient: rfc822; oncall@example.net\n\
        Action: failed\n\
        Status: 5.1.1\n\
        \n\
        --8F2A41C0123.1744135201/mx.example.com\n\
        Content-Description: Undelivered Message\n\
        Content-Type: message/rfc822\n\
        \n\
        Return-Path: <alerts@example.com>\n\
        From: Zabbix <alerts@example.com>\n\
        To: oncall@example.net\n\
        Subject: Problem: Disk space is low on db01\n\
        Date: Wed, 9 Apr 2025 02:59:58 +0900\n\
        Content-Type: text/plain; charset=utf-8\n\
        \n\
        Problem started at 02:59:41 on 2025.04.09\n\
        Host: db01\n\
        \n\
        --8F2A41C0123.1744135201/mx.example.com--\n";

    #[test]
    fn a_bounce_shows_the_returned_message() {
        let notice = parse(&crlf(BOUNCE));
        assert_eq!(
            notice.text,
            "I'm sorry to have to inform you that your message could not\n\
             be delivered to one or more recipients.\n\
             \n\
             <oncall@example.net>: host mx.example.net[192.0.2.7] said: 550 5.1.1 User\n\
             \x20   unknown (in reply to RCPT TO command)\n\
             \n\
             ---------- Original message ----------\n\
             From: Zabbix <alerts@example.com>\n\
             Date: Wed, 9 Apr 2025 02:59:58 +0900\n\
             Subject: Problem: Disk space is low on db01\n\
             \n\
             Problem started at 02:59:41 on 2025.04.09\nHost: db01"
        );
        assert!(!notice.text.contains("Return-Path"));
        // Neither the returned message nor the machine-readable status is a file to list.
        assert_eq!(listed(&notice), vec![]);
    }

    #[test]
    fn a_bounce_returning_only_headers_shows_them() {
        let raw = crlf(
            b"Subject: Delivery Status Notification (Failure)\n\
              Content-Type: multipart/report; report-type=delivery-status; boundary=r\n\
              \n\
              --r\n\
              Content-Type: text/plain\n\
              \n\
              Delivery to oncall@example.net failed permanently.\n\
              --r\n\
              Content-Type: text/rfc822-headers\n\
              \n\
              From: Jenkins <jenkins@example.com>\n\
              Subject: =?UTF-8?Q?Build_#42_failed_=E2=9C=97?=\n\
              Date: Thu, 10 Apr 2025 12:00:00 +0000\n\
              --r--\n",
        );
        let notice = parse(&raw);
        assert_eq!(
            notice.text,
            "Delivery to oncall@example.net failed permanently.\n\n\
             ---------- Original message ----------\n\
             From: Jenkins <jenkins@example.com>\n\
             Date: Thu, 10 Apr 2025 12:00:00 +0000\n\
             Subject: Build #42 failed ✗"
        );
        assert!(!listed(&notice).iter().any(|(_, ct, _)| ct.contains("rfc822")), "{:?}", listed(&notice));
    }

    /// A Mailman 2 MIME digest: masthead, table of contents, the messages in a
    /// multipart/digest (whose parts are message/rfc822 without saying so), and a footer.
    const DIGEST: &[u8] = b"From: users-request@lists.example.org\n\
        Subject: Users Digest, Vol 12, Issue 3\n\
        To: users@lists.example.org\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/mixed; boundary=\"===============1234567890==\"\n\
        \n\
        --===============1234567890==\n\
        Content-Type: text/plain; charset=\"us-ascii\"\n\
        Content-Description: Users Digest, Vol 12, Issue 3\n\
        \n\
        Send Users mailing list submissions to\n\
        \tusers@lists.example.org\n\
        \n\
        --===============1234567890==\n\
        Content-Type: text/plain; charset=\"us-ascii\"\n\
        Content-Description: Today's Topics (2 messages)\n\
        \n\
        Today's Topics:\n\
        \n\
        \x20  1. Backup window (Alice)\n\
        \x20  2. Re: Backup window (Bob)\n\
        \n\
        --===============1234567890==\n\
        Content-Type: multipart/digest; boundary=\"===============0987654321==\"\n\
        \n\
        --===============0987654321==\n\
        \n\
        From: Alice <alice@example.org>\n\
        Subject: Backup window\n\
        Date: Fri, 11 Apr 2025 08:00:00 +0900\n\
        Message-ID: <a1@example.org>\n\
        Content-Type: text/plain; charset=\"us-ascii\"\n\
        \n\
        Can we move the backup to 02:00?\n\
        \n\
        --===============0987654321==\n\
        \n\
        From: Bob <bob@example.org>\n\
        Subject: Re: Backup window\n\
        Date: Fri, 11 Apr 2025 08:30:00 +0900\n\
        Content-Type: text/plain; charset=\"utf-8\"\n\
        Content-Transfer-Encoding: 8bit\n\
        \n\
        > Can we move the backup to 02:00?\n\
        Fine by me \xe2\x80\x94 Bob\n\
        \n\
        --===============0987654321==--\n\
        \n\
        --===============1234567890==\n\
        Content-Type: text/plain; charset=\"us-ascii\"\n\
        Content-Description: Digest Footer\n\
        \n\
        _______________________________________________\n\
        Users mailing list\n\
        \n\
        --===============1234567890==--\n";

    #[test]
    fn a_digest_shows_each_message_in_order() {
        let notice = parse(&crlf(DIGEST));
        assert_eq!(
            notice.text,
            "Send Users mailing list submissions to\n\tusers@lists.example.org\n\n\
             Today's Topics:\n\n   1. Backup window (Alice)\n   2. Re: Backup window (Bob)\n\n\
             ---------- Message 1 ----------\n\
             From: Alice <alice@example.org>\n\
             Date: Fri, 11 Apr 2025 08:00:00 +0900\n\
             Subject: Backup window\n\
             \n\
             Can we move the backup to 02:00?\n\n\
             ---------- Message 2 ----------\n\
             From: Bob <bob@example.org>\n\
             Date: Fri, 11 Apr 2025 08:30:00 +0900\n\
             Subject: Re: Backup window\n\
             \n\
             > Can we move the backup to 02:00?\nFine by me \u{2014} Bob\n\n\
             _______________________________________________\nUsers mailing list"
        );
        assert_eq!(listed(&notice), vec![]);
    }

    /// A forward of a forward of ..., each level one more message/rfc822.
    fn nested_forwards(levels: usize) -> Vec<u8> {
        let mut mail = b"From: origin@example.com\nSubject: level 0\n\nthe original text\n".to_vec();
        for level in 1..=levels {
            let mut outer = format!(
                "From: fwd{level}@example.com\nSubject: level {level}\nContent-Type: multipart/mixed; boundary=b{level}\n\n\
                 --b{level}\nContent-Type: text/plain\n\nnote {level}\n--b{level}\nContent-Type: message/rfc822\n\n"
            )
            .into_bytes();
            outer.extend_from_slice(&mail);
            outer.extend_from_slice(format!("--b{level}--\n").as_bytes());
            mail = outer;
        }
        crlf(&mail)
    }

    #[test]
    fn nested_forwards_recurse_up_to_the_depth_limit() {
        let notice = parse(&nested_forwards(2));
        assert_eq!(
            notice.text,
            "note 2\n\n\
             ---------- Forwarded message ----------\nFrom: fwd1@example.com\nSubject: level 1\n\n\
             note 1\n\n\
             ---------- Forwarded message ----------\nFrom: origin@example.com\nSubject: level 0\n\n\
             the original text"
        );
        // Four levels: the three nearest are shown, the fourth is listed as an attachment.
        let notice = parse(&nested_forwards(4));
        assert!(notice.text.contains("Subject: level 1") && notice.text.contains("note 1"), "{}", notice.text);
        assert!(!notice.text.contains("level 0") && !notice.text.contains("the original text"), "{}", notice.text);
        assert_eq!(listed(&notice).iter().map(|a| a.1).collect::<Vec<_>>(), vec!["message/rfc822"]);
    }

    #[test]
    fn deep_and_broken_nesting_does_not_panic() {
        // parse_message, not parse: parse's catch_unwind would hide a panic.
        let _ = parse_message(&nested_forwards(300));
        let mut deep = Vec::new();
        for _ in 0..2000 {
            deep.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        let _ = parse_message(&deep);
        for sample in [
            &b"Content-Type: message/rfc822\r\n\r\n"[..],
            b"Content-Type: message/rfc822\r\n\r\nnot a header line\r\n",
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!",
            b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n--d\r\n\r\n\r\n--d--",
            b"Content-Type: text/rfc822-headers\r\n\r\n",
        ] {
            let notice = parse_message(sample);
            assert!(!notice.text.contains("Forwarded"), "{sample:?}: {}", notice.text);
        }
        let forward = crlf(OUTLOOK_FORWARD);
        for end in (0..forward.len()).step_by(3) {
            let _ = parse_message(&forward[..end]);
        }
    }

    // ------------------------------------------------------------ stub alternatives

    /// A newsletter's HTML with this much text (the table of a release note, say).
    const NEWSLETTER_HTML: &str = "<html><head><style>.x{color:red}</style></head><body>\
        <table><tr><td><h1>April release notes</h1>\
        <p>Backups now run incrementally, which cuts the nightly window from four hours to forty minutes on a typical cluster.</p>\
        <p>The dashboard shows per-volume usage, and alerts fire at 85% instead of 90% by default.</p>\
        </td></tr></table></body></html>";

    fn alternative(plain: &str, html: &str) -> Vec<u8> {
        crlf(
            format!(
                "From: news@example.com\nSubject: April\nContent-Type: multipart/alternative; boundary=a\n\n\
                 --a\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n\
                 --a\nContent-Type: text/html; charset=utf-8\n\n{html}\n--a--\n"
            )
            .as_bytes(),
        )
    }

    const NEWSLETTER_TEXT: &str = "April release notes\n\n\
        Backups now run incrementally, which cuts the nightly window from four hours to forty minutes on a typical cluster.\n\n\
        The dashboard shows per-volume usage, and alerts fire at 85% instead of 90% by default.";

    #[test]
    fn a_stub_text_alternative_gives_way_to_the_html() {
        for stub in [
            "Your email client cannot display this message.\nPlease use an HTML-capable client.",
            "This is an HTML email. To view it, open it in a web browser.",
            "View this email in your browser: https://news.example.com/v/123",
            "このメールはHTML形式で配信しています。",
            "",
            "April release notes", // far shorter than the HTML's text
        ] {
            let notice = parse(&alternative(stub, NEWSLETTER_HTML));
            assert_eq!(notice.text, NEWSLETTER_TEXT, "{stub:?}");
        }
    }

    #[test]
    fn a_real_text_alternative_is_kept() {
        // A full text that also carries a "view in browser" line is not a stub.
        let full = format!("View this email in your browser: https://news.example.com/v/123\n\n{NEWSLETTER_TEXT}");
        assert_eq!(parse(&alternative(&full, NEWSLETTER_HTML)).text, full);
        // A short plain text with a short HTML: the plain one, as always.
        assert_eq!(parse(&alternative("Disk full on db01", "<p>Disk <b>full</b> on db01</p>")).text, "Disk full on db01");
        // A stub phrase, but the HTML says no more than the text does.
        let text = "This is an HTML email.";
        assert_eq!(parse(&alternative(text, "<p>This is an HTML email.</p>")).text, text);
        // An empty plain text and a short HTML: the HTML's text, not nothing.
        assert_eq!(parse(&alternative("", "<p>Disk full on db01</p>")).text, "Disk full on db01");
    }

    // ------------------------------------------------------------ calendars

    /// An invitation as Google Calendar sends one: plain and HTML descriptions, the event as
    /// a text/calendar alternative, and the same event as invite.ics.
    const INVITATION: &[u8] = b"From: Sato Hanako <hanako@example.jp>\n\
        To: you@example.com\n\
        Subject: Invitation: Weekly sync @ Mon Mar 10, 2025 10am - 10:30am (JST)\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/mixed; boundary=\"000000000000mixed\"\n\
        \n\
        --000000000000mixed\n\
        Content-Type: multipart/alternative; boundary=\"000000000000alt\"\n\
        \n\
        --000000000000alt\n\
        Content-Type: text/plain; charset=\"UTF-8\"; format=flowed; delsp=yes\n\
        \n\
        You have been invited to the following event.\n\
        \n\
        --000000000000alt\n\
        Content-Type: text/html; charset=\"UTF-8\"\n\
        \n\
        <p>You have been invited to the following event.</p>\n\
        --000000000000alt\n\
        Content-Type: text/calendar; charset=\"UTF-8\"; method=REQUEST\n\
        Content-Transfer-Encoding: 7bit\n\
        \n\
        BEGIN:VCALENDAR\n\
        METHOD:REQUEST\n\
        BEGIN:VEVENT\n\
        DTSTART;TZID=Asia/Tokyo:20250310T100000\n\
        DTEND;TZID=Asia/Tokyo:20250310T103000\n\
        SUMMARY:Weekly sync\n\
        LOCATION:Room 4B\\, Tokyo office\n\
        BEGIN:VALARM\n\
        DESCRIPTION:This is an event reminder\n\
        END:VALARM\n\
        END:VEVENT\n\
        END:VCALENDAR\n\
        --000000000000alt--\n\
        --000000000000mixed\n\
        Content-Type: application/ics; name=\"invite.ics\"\n\
        Content-Disposition: attachment; filename=\"invite.ics\"\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        QkVHSU46VkNBTEVOREFSDQpNRVRIT0Q6UkVRVUVTVA0KQkVHSU46VkVWRU5UDQpEVFNUQVJUO1RaSUQ9QXNp\n\
        YS9Ub2t5bzoyMDI1MDMxMFQxMDAwMDANCkRURU5EO1RaSUQ9QXNpYS9Ub2t5bzoyMDI1MDMxMFQxMDMwMDAN\n\
        ClNVTU1BUlk6V2Vla2x5IHN5bmMNCkxPQ0FUSU9OOlJvb20gNEJcLCBUb2t5byBvZmZpY2UNCkVORDpWRVZF\n\
        TlQNCkVORDpWQ0FMRU5EQVINCg==\n\
        --000000000000mixed--\n";

    #[test]
    fn a_calendar_invitation_is_summarised_once() {
        let notice = parse(&crlf(INVITATION));
        assert_eq!(
            notice.text,
            "You have been invited to the following event.\n\n\
             📅 Weekly sync\n\
             Start: 2025-03-10 10:00 (Asia/Tokyo)\n\
             End: 2025-03-10 10:30 (Asia/Tokyo)\n\
             Where: Room 4B, Tokyo office"
        );
        assert!(!notice.text.contains("BEGIN:") && !notice.text.contains("reminder"));
        // The nameless alternative is not listed; the named file is (it can be imported).
        assert_eq!(listed(&notice), vec![("invite.ics", "application/ics", 208)]);
    }

    #[test]
    fn a_calendar_without_an_event_is_listed_as_before() {
        let raw = crlf(
            b"Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nsee invite\n\
              --m\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\nBEGIN:VTODO\n--m--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "see invite");
        assert_eq!(listed(&notice), vec![("attachment", "text/calendar", 28)]);
    }

    #[test]
    fn an_ics_file_of_any_type_is_summarised_and_still_listed() {
        // A booking site's confirmation: the event only as a generic file, cut short.
        let raw = crlf(
            b"Subject: Booking confirmed\n\
              Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nSee you soon.\n\
              --m\nContent-Type: application/octet-stream; name=booking.ICS\n\
              Content-Disposition: attachment; filename=booking.ICS\n\n\
              BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Dentist\nDTSTART:20250415T060000Z\nLOCA\n--m--\n",
        );
        let notice = parse(&raw);
        assert_eq!(notice.text, "See you soon.\n\n📅 Dentist\nStart: 2025-04-15 06:00 (UTC)");
        assert_eq!(listed(&notice), vec![("booking.ICS", "application/octet-stream", 78)]);
    }

    // ------------------------------------------------------------ related images

    /// A newsletter: the HTML shows a nameless logo and spacer by cid:, a named chart by
    /// cid:, and a nameless image it never shows.
    const RELATED: &[u8] = b"From: Monitoring <noreply@example.com>\n\
        Subject: Weekly report\n\
        Content-Type: multipart/related; boundary=r; type=\"text/html\"\n\
        \n\
        --r\n\
        Content-Type: text/html; charset=utf-8\n\
        \n\
        <img src=\"cid:logo@news\" width=120><p>Traffic is up 12%.</p><img src=\"CID:chart%40news\">\n\
        <table style=\"background:url(cid:spacer@news)\"><tr><td>&nbsp;</td></tr></table>\n\
        --r\n\
        Content-Type: image/png\n\
        Content-ID: <logo@news>\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        iVBORw0KGgo=\n\
        --r\n\
        Content-Type: image/gif\n\
        Content-ID: <spacer@news>\n\
        Content-Disposition: inline\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        R0lGODlhAQABAAAAACw=\n\
        --r\n\
        Content-Type: image/png; name=\"chart.png\"\n\
        Content-ID: <chart@news>\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        iVBORw0KGgo=\n\
        --r\n\
        Content-Type: image/jpeg\n\
        Content-ID: <unused@news>\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        /9j/\n\
        --r--\n";

    #[test]
    fn nameless_images_shown_by_the_html_are_not_listed() {
        let notice = parse(&crlf(RELATED));
        assert_eq!(notice.text, "Traffic is up 12%.");
        assert_eq!(
            listed(&notice),
            vec![("chart.png", "image/png", 8), ("attachment", "image/jpeg", 3)]
        );
    }

    // ------------------------------------------------------------ attachment names

    #[test]
    fn folded_encoded_attachment_names_have_no_stray_spaces() {
        let raw = crlf(
            b"Subject: names\n\
              Content-Type: multipart/mixed; boundary=m\n\
              \n\
              --m\n\
              Content-Type: text/plain\n\
              \n\
              files\n\
              --m\n\
              Content-Type: application/pdf; name=\"=?UTF-8?Q?Solidarno=C5=9B?= =?UTF-8?Q?=C4=87.pdf?=\"\n\
              Content-Disposition: attachment; filename=\"=?UTF-8?Q?Solidarno=C5=9B?= =?UTF-8?Q?=C4=87.pdf?=\"\n\
              \n\
              a\n\
              --m\n\
              Content-Type: application/pdf\n\
              Content-Disposition: attachment;\n filename*0*=UTF-8''Sprawozdanie%20z%20dzia%C5%82alno;\n filename*1*=%C5%9Bci%20Solidarno%C5%9B%C4%87.pdf\n\
              \n\
              b\n\
              --m\n\
              Content-Type: application/vnd.ms-excel;\n name==?ISO-2022-JP?B?GyRCOzNFRBsoQg==?=\n =?ISO-2022-JP?B?GyRCSnM5cBsoQg==?=.xls\n\
              \n\
              c\n\
              --m\n\
              Content-Type: text/plain; name=\"=?UTF-8?B?5pel5pys6Kqe44Gu44OV44Kh?=\n\t=?UTF-8?B?44Kk44OrLnR4dA==?=\"\n\
              Content-Disposition: attachment\n\
              \n\
              d\n\
              --m--\n",
        );
        let notice = parse(&raw);
        assert_eq!(
            listed(&notice),
            vec![
                ("Solidarność.pdf", "application/pdf", 1),
                ("Sprawozdanie z działalności Solidarność.pdf", "application/pdf", 1),
                ("山田報告.xls", "application/vnd.ms-excel", 1),
                ("日本語のファイル.txt", "text/plain", 1),
            ]
        );
    }
}
