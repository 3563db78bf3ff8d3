//! The header/body split of mail written by hand or by scripts (issue #18, class 5): a pure
//! pre-pass on the raw bytes, before mail-parser sees them.
//!
//! mail-parser reads the header section up to the first empty line, as RFC 5322 says it ends.
//! Mail that does not come from a mail client often breaks that:
//! - a script that forgets the blank line after its headers (`printf "Subject: x\nbody"`):
//!   mail-parser reads the body lines as headers too, and the body vanishes;
//! - a separator line that holds spaces or tabs;
//! - a leading mbox `From ` line (`From user@host Mon Jan  1 00:00:00 2024`), from a tool
//!   that hands over a message it took out of an mbox file.
//!
//! [`repair`] reads the header section as Python's `email` package does: a header field is
//! `Name: value` with a valid field name (printable ASCII but `:`, RFC 5322 §2.2), a line
//! starting with a space or tab continues it, and the first line that is neither starts the
//! body. The one place it differs: a line of only spaces and tabs ends the header section
//! (Python reads it as a continuation) unless the next line continues a header. Mail whose
//! header section ends with an empty line comes back unchanged (borrowed), byte for byte.
//!
//! This module owns only where the header section ends; what the first line must look like
//! for the bytes to be a mail at all stays with `mail::starts_with_header_section`.

use std::borrow::Cow;

/// `raw` with the header section ended where a lenient reader would end it: a leading mbox
/// `From ` line dropped, a whitespace-only separator made empty, an empty line inserted
/// before the first line that is neither a header field nor a continuation. Borrowed when
/// there is nothing to repair.
pub fn repair(raw: &[u8]) -> Cow<'_, [u8]> {
    let start = mbox_from_line_end(raw).unwrap_or(0);
    let mut pos = start;
    let mut first = true;
    while pos < raw.len() {
        let (line, end) = line_at(raw, pos);
        if line.is_empty() {
            // The empty line RFC 5322 asks for: the rest is as the sender wrote it.
            break;
        }
        if first {
            // Not a mail's header section at all (plain text, or a mail without headers):
            // that is for the caller to judge.
            if !is_field(line) {
                break;
            }
            first = false;
            pos = end;
            continue;
        }
        if is_blank(line) {
            let next = line_at(raw, end).0;
            if is_continuation(next) && !is_blank(next) {
                pos = end;
                continue;
            }
            // Keep the line end, drop the spaces.
            return joined(&raw[start..pos], &[], &raw[pos + line.len()..]);
        }
        if is_field(line) || is_continuation(line) {
            pos = end;
            continue;
        }
        // The body starts here: an empty line before it, with the line end the mail uses.
        let crlf = raw[..pos].ends_with(b"\r\n");
        return joined(&raw[start..pos], if crlf { b"\r\n" } else { b"\n" }, &raw[pos..]);
    }
    Cow::Borrowed(&raw[start..])
}

fn joined<'a>(head: &[u8], middle: &[u8], tail: &[u8]) -> Cow<'a, [u8]> {
    let mut out = Vec::with_capacity(head.len() + middle.len() + tail.len());
    out.extend_from_slice(head);
    out.extend_from_slice(middle);
    out.extend_from_slice(tail);
    Cow::Owned(out)
}

/// The line starting at `pos` without its line end (LF or CRLF), and where the next starts.
fn line_at(raw: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = raw.get(pos..).unwrap_or_default();
    let (line, end) = match memchr::memchr(b'\n', rest) {
        Some(lf) => (&rest[..lf], pos + lf + 1),
        None => (rest, raw.len()),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), end)
}

/// `Name:` with a field name of printable ASCII other than `:` (RFC 5322 §2.2).
fn is_field(line: &[u8]) -> bool {
    match memchr::memchr(b':', line) {
        Some(colon) => colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        None => false,
    }
}

fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b' ' || b == b'\t')
}

/// Where the line after a leading mbox `From ` line starts: `From `, a sender without spaces,
/// a date, and a header field on the next line (so that plain text that happens to start
/// with "From " is left alone).
fn mbox_from_line_end(raw: &[u8]) -> Option<usize> {
    let rest = raw.strip_prefix(b"From ")?;
    let (line, end) = line_at(raw, 0);
    let sender_len = rest.iter().position(|&b| b == b' ')?;
    let date = line.get(5 + sender_len..)?;
    let looks_like_a_date = date.iter().any(u8::is_ascii_digit);
    (sender_len > 0 && looks_like_a_date && end < raw.len() && is_field(line_at(raw, end).0)).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(raw: &[u8]) -> String {
        String::from_utf8_lossy(&repair(raw)).into_owned()
    }

    #[test]
    fn well_formed_mail_is_borrowed_unchanged() {
        for raw in [
            &b"Subject: x\r\nFrom: a@example.com\r\n\r\nbody\r\nNot: a header\r\n"[..],
            b"Subject: x\n\tfolded\n\nbody",
            b"Subject: only headers\r\nFrom: a@example.com",
            b"\r\nno headers",
            b"",
            b"plain text\nmore text\n",
            b"From now on backups run at 3.\nThanks\n",
        ] {
            assert!(matches!(repair(raw), Cow::Borrowed(b) if b == raw), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn missing_blank_line() {
        assert_eq!(repaired(b"Subject: x\nbody"), "Subject: x\n\nbody");
        assert_eq!(
            repaired(b"Subject: disk\r\nTo: ops@example.com\r\nDisk usage: 91% on /var\r\nok\r\n"),
            "Subject: disk\r\nTo: ops@example.com\r\n\r\nDisk usage: 91% on /var\r\nok\r\n"
        );
        assert_eq!(repaired(b"Subject: a\n b\n\xe6\x97\xa5: x\n"), "Subject: a\n b\n\n日: x\n");
    }

    #[test]
    fn whitespace_separator() {
        assert_eq!(repaired(b"Subject: x\r\n  \t\r\nX-Not: body\r\n"), "Subject: x\r\n\r\nX-Not: body\r\n");
        assert_eq!(repaired(b"Subject: x\n \nbody\n"), "Subject: x\n\nbody\n");
        // A blank line inside a folded value (obsolete syntax) is not a separator.
        assert!(matches!(repair(b"Subject: x\n \n y\n\nbody"), Cow::Borrowed(_)));
    }

    #[test]
    fn mbox_from_line() {
        assert_eq!(
            repaired(b"From user@host Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n"),
            "Subject: x\n\nbody\n"
        );
        assert_eq!(
            repaired(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\r\nSubject: x\r\nbody\r\n"),
            "Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(repaired(b"From a b\nnot a header\n"), "From a b\nnot a header\n");
    }
}
