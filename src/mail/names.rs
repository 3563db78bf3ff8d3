//! Attachment file names read from the raw Content-Disposition and Content-Type fields,
//! where mail-parser's reading leaves stray spaces or loses part of the name.
//!
//! Mailers encode a non-ASCII file name two ways, and both get split over folded lines:
//!
//! - RFC 2047 encoded words inside the parameter (`name="=?UTF-8?Q?Solidarno=C5=9B?=
//!   =?UTF-8?Q?=C4=87.pdf?="`): not what RFC 2047 allows, but what Outlook, Thunderbird and
//!   most webmails send. The whitespace between two encoded words is not part of the name
//!   (RFC 2047 §6.2), and a character may be split across two words, so the words' bytes
//!   are joined before they are decoded. mail-parser kept the space when the words were not
//!   on separate lines (`Solidarnoś ć.pdf`, a U+FFFD pair for a split character), and cut an
//!   unquoted value at the fold.
//! - RFC 2231 continuations (`filename*0*=UTF-8''Solidarno%C5%9B; filename*1*=%C4%87.pdf`),
//!   joined in their order before the percent-decoded bytes are decoded.
//!
//! Only names that use one of these encodings are read here; a plain name (or raw 8-bit
//! bytes, whose charset is a guess) is left to mail-parser.

use mail_parser::{Charset, HeaderName, MessagePart};

/// The part's file name when its `filename` (Content-Disposition), else `name`
/// (Content-Type), parameter is RFC 2047 or RFC 2231 encoded; `None` otherwise, and then
/// mail-parser's reading stands. Whitespace is not yet collapsed (the caller's `clean_line`).
pub(super) fn encoded_attachment_name(part: &MessagePart<'_>) -> Option<String> {
    let headers = part.headers();
    // The Content-Type `name` counts only when the disposition has no file name, as in
    // mail-parser's `attachment_name`; the last field of each name, as mail-parser reads.
    let disposition = headers.get(HeaderName::ContentDisposition).map(|h| params(h.raw_value()));
    if let Some(params) = &disposition {
        if has_param(params, "filename") {
            return encoded_param(params, "filename");
        }
    }
    let content_type = params(headers.get(HeaderName::ContentType)?.raw_value());
    encoded_param(&content_type, "name")
}

/// One parameter as written: its name (lower case, with any `*N` / `*` suffix) and its
/// value, unquoted.
type Params = Vec<(String, String)>;

fn has_param(params: &Params, name: &str) -> bool {
    params.iter().any(|(n, _)| n == name || n.split('*').next() == Some(name))
}

/// The parameters of a raw Content-Type or Content-Disposition value, unfolded. Tolerant:
/// an unquoted value runs to the next `;` (so an unquoted value with folded encoded words
/// keeps all of them), a quoted one to its closing quote (or the end), with `\x` escapes.
fn params(raw: &[u8]) -> Params {
    // Unfolding removes the line breaks only (RFC 5322 §2.2.3); the folding space stays and
    // is dropped below where it is not part of the name.
    let text: String = String::from_utf8_lossy(raw).chars().filter(|&c| c != '\r' && c != '\n').collect();
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    // The type or disposition value itself comes first.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        while chars.next_if(|&c| c == ';' || c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && c != ';') {
            name.push(c);
        }
        let name = name.trim().to_ascii_lowercase();
        if chars.next_if_eq(&'=').is_none() {
            continue; // no value: `;` or the end
        }
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            // Anything between the closing quote and the next `;` is ignored.
            while chars.next_if(|&c| c != ';').is_some() {}
        } else {
            while let Some(c) = chars.next_if(|&c| c != ';') {
                value.push(c);
            }
            value.truncate(value.trim_end().len());
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// The value of parameter `name`, decoded, when it is RFC 2231 (`name*`, `name*0`,
/// `name*0*`, ...) or holds RFC 2047 encoded words; `None` for a plain value.
fn encoded_param(params: &Params, name: &str) -> Option<String> {
    // RFC 2231 wins over a plain value of the same name (mailers send both, the plain one
    // for old readers).
    let mut sections: Vec<(u32, bool, &str)> = Vec::new();
    for (param, value) in params {
        let Some(rest) = param.strip_prefix(name).and_then(|r| r.strip_prefix('*')) else {
            continue;
        };
        if rest.is_empty() {
            sections.push((0, true, value)); // `name*=charset'lang'value`
            continue;
        }
        let (number, extended) = match rest.strip_suffix('*') {
            Some(number) => (number, true),
            None => (rest, false),
        };
        if let Ok(number) = number.parse::<u32>() {
            sections.push((number, extended, value));
        }
    }
    if !sections.is_empty() {
        return Some(rfc2231(sections));
    }
    let (_, value) = params.iter().find(|(param, _)| param == name)?;
    value.contains("=?").then(|| decode_words(value))
}

/// RFC 2231 sections joined in order; the charset is named by the first section
/// (`charset'language'`), and extended (`*`) sections are percent-encoded bytes.
fn rfc2231(mut sections: Vec<(u32, bool, &str)>) -> String {
    sections.sort_by_key(|&(number, _, _)| number);
    sections.dedup_by_key(|s| s.0);
    let mut charset = None;
    let mut bytes = Vec::new();
    for (i, (_, extended, value)) in sections.into_iter().enumerate() {
        let mut value = value;
        if i == 0 && extended {
            // `charset'language'text`; a value without the two quotes is taken as text.
            let mut fields = value.splitn(3, '\'');
            if let (Some(label), Some(_language), Some(text)) = (fields.next(), fields.next(), fields.next()) {
                charset = Charset::from_label(label.trim().as_bytes());
                value = text;
            }
        }
        if extended {
            percent_decode(value, &mut bytes);
        } else {
            bytes.extend_from_slice(value.as_bytes());
        }
    }
    charset.unwrap_or(Charset::Utf8).decode(&bytes).into_owned()
}

fn percent_decode(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = bytes.get(i + 1..i + 3).and_then(hex_pair) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(*pair.first()?)? * 16 + digit(*pair.get(1)?)?) as u8)
}

/// One `=?charset?B|Q?text?=` word: the charset label (RFC 2231 §5 language dropped) and
/// the decoded bytes, and where the word ends in `text`.
fn encoded_word(text: &str, start: usize) -> Option<(&str, Vec<u8>, usize)> {
    let word = text.get(start..)?;
    let rest = word.strip_prefix("=?")?;
    let (label, rest) = rest.split_once('?')?;
    if label.is_empty() || label.contains(char::is_whitespace) {
        return None;
    }
    let mut after_label = rest.chars();
    let encoding = after_label.next()?.to_ascii_uppercase();
    let payload_and_rest = after_label.as_str().strip_prefix('?')?;
    let end = payload_and_rest.find("?=")?;
    let payload = &payload_and_rest[..end];
    let bytes = match encoding {
        'B' => base64(payload),
        'Q' => q(payload),
        _ => return None,
    };
    let label = label.split('*').next().unwrap_or(label);
    // What follows the word's closing `?=` is a suffix of both `word` and `payload_and_rest`.
    let word_end = start + word.len() - (payload_and_rest.len() - end - 2);
    Some((label, bytes, word_end))
}

/// RFC 2047 words decoded, the whitespace between two words dropped, the bytes of adjacent
/// words of one charset decoded together (a UTF-8 character may be split across them).
/// Text between words, and anything that is not a well-formed word, is kept as written.
fn decode_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The bytes of the run of words not decoded yet, and their charset label.
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut i = 0;
    while i < text.len() {
        if let Some((label, bytes, end)) = encoded_word(text, i) {
            // ISO-2022-JP words each end back in ASCII; joined, the decoder would report the
            // escape right after an escape as an error (see `iso_2022_jp_words_apart`), so
            // they are decoded one by one.
            let joinable = !label.to_ascii_lowercase().starts_with("iso-2022-jp");
            match &mut pending {
                Some((run_label, run)) if joinable && run_label.eq_ignore_ascii_case(label) => run.extend(bytes),
                _ => {
                    flush(&mut pending, &mut out);
                    pending = Some((label.to_string(), bytes));
                }
            }
            i = end;
            // Whitespace up to the next encoded word is folding, not name.
            let gap = text[i..].len() - text[i..].trim_start().len();
            if gap > 0 && encoded_word(text, i + gap).is_some() {
                i += gap;
            }
            continue;
        }
        flush(&mut pending, &mut out);
        let c = text[i..].chars().next().expect("i < len on a char boundary");
        out.push(c);
        i += c.len_utf8();
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(pending: &mut Option<(String, Vec<u8>)>, out: &mut String) {
    if let Some((label, bytes)) = pending.take() {
        let charset = Charset::from_label(label.trim().as_bytes()).unwrap_or(Charset::Utf8);
        out.push_str(&charset.decode(&bytes));
    }
}

/// Q encoding (RFC 2047 §4.2): `_` is a space, `=XX` a byte; a broken `=` is kept.
fn q(payload: &str) -> Vec<u8> {
    let bytes = payload.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                if let Some(byte) = bytes.get(i + 1..i + 3).and_then(hex_pair) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Base64, tolerant: characters outside the alphabet (spaces, a stray `=`) are skipped and
/// missing padding is fine; a last lone 6 bits are dropped.
fn base64(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in payload.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6 | v as u32) & 0xFF_FFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_encoded_words_join_without_the_whitespace() {
        assert_eq!(decode_words("=?UTF-8?Q?Solidarno=C5=9B?= =?UTF-8?Q?=C4=87.pdf?="), "Solidarność.pdf");
        assert_eq!(decode_words("=?UTF-8?Q?Solidarno=C5=9B?=\t  =?utf-8?q?=C4=87.pdf?="), "Solidarność.pdf");
        // A character split across two words.
        assert_eq!(decode_words("=?UTF-8?B?5pel5pys6Kqe44G=?= =?UTF-8?B?rg==?=.pdf"), "日本語の.pdf");
        // Different charsets each decode alone; text between words stays, spaces included.
        assert_eq!(
            decode_words("=?ISO-8859-2?Q?Solidarno=B6=E6?= =?UTF-8?Q?_2025?= and =?UTF-8?Q?x?=.pdf"),
            "Solidarność 2025 and x.pdf"
        );
        // ISO-2022-JP words are decoded one by one.
        assert_eq!(decode_words("=?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= =?ISO-2022-JP?B?GyRCQkBPOhsoQg==?=.pdf"), "山田太郎.pdf");
        // RFC 2231 §5 language in a word.
        assert_eq!(decode_words("=?UTF-8*pl?Q?=C5=81=C3=B3d=C5=BA?=.txt"), "Łódź.txt");
    }

    #[test]
    fn broken_words_are_kept_as_written() {
        for text in ["=?", "=?UTF-8?", "=?UTF-8?X?abc?=", "=?UTF-8?Q?unterminated", "a =?b", "=??Q??=", "=?\u{3042}?B?\u{3042}?="] {
            let _ = decode_words(text);
        }
        assert_eq!(decode_words("=?UTF-8?X?abc?= x"), "=?UTF-8?X?abc?= x");
        assert_eq!(decode_words("=?no-such?Q?a=ZZb?="), "a=ZZb");
    }

    #[test]
    fn parameters_are_read_tolerantly() {
        let got = params(b"attachment;\r\n filename=\"a \\\"b\\\" ; c.pdf\" junk; size=12;\r\n\tname= =?UTF-8?Q?x?=\r\n =?UTF-8?Q?y?= ;flag");
        assert_eq!(
            got,
            vec![
                ("filename".to_string(), "a \"b\" ; c.pdf".to_string()),
                ("size".to_string(), "12".to_string()),
                ("name".to_string(), "=?UTF-8?Q?x?= =?UTF-8?Q?y?=".to_string()),
            ]
        );
        assert_eq!(params(b"attachment; filename=\"open"), vec![("filename".to_string(), "open".to_string())]);
        assert_eq!(params(b""), vec![]);
    }

    #[test]
    fn rfc2231_continuations_join_in_order() {
        let p = params(b"attachment;\r\n filename*1*=%C4%87%20i%20;\r\n filename*0*=UTF-8'pl'Solidarno%C5%9B;\r\n filename*2=\"wolno\"; filename*3*=%C5%9B%C4%87.pdf; filename=\"fallback.pdf\"");
        assert_eq!(encoded_param(&p, "filename").as_deref(), Some("Solidarność i wolność.pdf"));
        let p = params(b"attachment; filename*=iso-8859-2''Solidarno%B6%E6.pdf");
        assert_eq!(encoded_param(&p, "filename").as_deref(), Some("Solidarność.pdf"));
        let p = params(b"attachment; filename*0=\"long name \"; filename*1=\"part two.pdf\"");
        assert_eq!(encoded_param(&p, "filename").as_deref(), Some("long name part two.pdf"));
        // A plain value is left to mail-parser.
        assert_eq!(encoded_param(&params(b"attachment; filename=plain.pdf"), "filename"), None);
        // Broken percent escapes and a missing charset do not panic.
        let p = params(b"attachment; filename*0*=%E6%; filename*1*=%G1%\xe3\x81\x82");
        assert_eq!(encoded_param(&p, "filename").as_deref(), Some("\u{FFFD}%%G1%\u{3042}"));
    }
}
