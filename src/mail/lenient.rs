//! Charsets as senders actually label them (issue #18, class 4): which decoder reads a text
//! part's bytes, and what to do with header bytes that no RFC 2047 word labels.
//!
//! mail-parser resolves a charset label with its own table (WHATWG's labels and a few more) and
//! reads anything else, and any unlabelled 8-bit byte, as UTF-8. Real mail is sloppier:
//! - labels outside WHATWG's table: Microsoft's and PHP's names for the Japanese charsets
//!   (`cp932`, `cp50220`, `cp51932`, `eucjp-ms`, ...), any label with stray quotes or spaces;
//! - text that says nothing of its charset: a cron mail with a raw UTF-8 subject, an old
//!   Japanese system sending raw Shift_JIS with no MIME headers at all;
//! - text whose label is wrong: a Windows tool writing UTF-8 and calling it `iso-8859-1` or
//!   `us-ascii`.
//!
//! The rules, in order:
//! 1. A label is resolved with mail-parser's table, then encoding_rs's (`Encoding::for_label`),
//!    then [`EXTRA_LABELS`], after trimming whitespace and quotes; case never matters.
//! 2. Bytes that are valid UTF-8 and not plain ASCII are read as UTF-8 whatever 8-bit charset
//!    the label names: real text in a legacy charset is practically never valid UTF-8, while
//!    UTF-8 under a legacy label is a common mistake. So an `iso-8859-1` label on real Latin-1
//!    text still reads as Latin-1 (`caf\xe9` is not UTF-8).
//! 3. Plain ASCII with ISO-2022-JP's escape sequences (`ESC $ B`, `ESC $ @`) and no
//!    ISO-2022-JP label is ISO-2022-JP: old Japanese systems send it unlabelled.
//! 4. Text with no usable label (none, or one no table knows) whose bytes are mostly not
//!    UTF-8 is given to chardetng, Mozilla's detector for unlabelled legacy text (built on
//!    encoding_rs, which mail-parser decodes with); a few broken bytes in otherwise UTF-8 text
//!    stay U+FFFD rather than turning the whole text into another charset.
//!
//! Well-formed mail (a known label on text of that charset) is decoded exactly as before.

use std::borrow::Cow;

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::Encoding;
use mail_parser::Charset;

/// Common labels that neither mail-parser nor encoding_rs (WHATWG) knows, and the WHATWG
/// encoding that decodes them. Compared without regard to case.
///
/// The Japanese ones are vendor names of the charsets WHATWG's decoders already are:
/// WHATWG's Shift_JIS is Microsoft's code page 932 (NEC and IBM extensions included), its
/// EUC-JP is what cp51932/eucJP-ms senders write, and its ISO-2022-JP decoder reads the
/// JIS X 0208 text of cp50220/cp50221 and ISO-2022-JP-2/-3 mail (PHP's mb_send_mail and
/// .NET name them so).
pub const EXTRA_LABELS: &[(&str, &str)] = &[
    ("cp932", "shift_jis"),
    ("windows-932", "shift_jis"),
    ("x-ms-cp932", "shift_jis"),
    ("ms-932", "shift_jis"),
    ("cp943", "shift_jis"),
    ("cp943c", "shift_jis"),
    ("ibm-943", "shift_jis"),
    ("sjis-win", "shift_jis"),
    ("sjis-open", "shift_jis"),
    ("shift_jis-2004", "shift_jis"),
    ("shift_jisx0213", "shift_jis"),
    ("x-sjis-cp932", "shift_jis"),
    ("cp50220", "iso-2022-jp"),
    ("cp50221", "iso-2022-jp"),
    ("cp50222", "iso-2022-jp"),
    ("iso-2022-jp-ms", "iso-2022-jp"),
    ("iso-2022-jp-1", "iso-2022-jp"),
    ("iso-2022-jp-2", "iso-2022-jp"),
    ("iso-2022-jp-3", "iso-2022-jp"),
    ("iso-2022-jp-2004", "iso-2022-jp"),
    ("jis", "iso-2022-jp"),
    ("cp51932", "euc-jp"),
    ("eucjp-ms", "euc-jp"),
    ("eucjp-win", "euc-jp"),
    ("eucjp-open", "euc-jp"),
    ("euc-jp-ms", "euc-jp"),
    ("x-euc-jp", "euc-jp"),
    ("x-eucjp", "euc-jp"),
    ("eucjp", "euc-jp"),
    ("euc-jisx0213", "euc-jp"),
    ("euc-jis-2004", "euc-jp"),
    ("cp20932", "euc-jp"),
    ("utf8", "utf-8"),
    ("utf_8", "utf-8"),
    ("x-utf-8", "utf-8"),
    ("latin-1", "windows-1252"),
];

/// A label as it stands in a header, without the whitespace and quotes senders put around it.
fn trim_label(label: &str) -> &str {
    label.trim_matches(|c: char| c.is_ascii_whitespace() || c == '"' || c == '\'')
}

/// The charset a MIME charset label names (rule 1), `None` when no table knows it.
pub fn charset_for_label(label: &str) -> Option<Charset> {
    let label = trim_label(label);
    if let Some(charset) = Charset::from_label(label.as_bytes()) {
        return Some(charset);
    }
    canonical_label(label).and_then(|name| Charset::from_label(name.as_bytes()))
}

/// For a label mail-parser does not know, the name of its encoding that mail-parser does.
fn canonical_label(label: &str) -> Option<&'static str> {
    if let Some(encoding) = Encoding::for_label(label.as_bytes()) {
        return Some(encoding.name());
    }
    EXTRA_LABELS
        .iter()
        .find(|(extra, _)| extra.eq_ignore_ascii_case(label))
        .map(|&(_, name)| name)
}

/// The mail-parser charset for an encoding_rs encoding (chardetng's answers).
fn charset_of(encoding: &'static Encoding) -> Charset {
    Charset::from_label(encoding.name().as_bytes()).unwrap_or_default()
}

/// Charsets whose bytes are not ASCII-compatible, or that mean "do not decode": rule 2 (valid
/// UTF-8 wins) must not apply to them (UTF-16 text of ASCII letters is valid UTF-8).
fn not_ascii_compatible(charset: Charset) -> bool {
    matches!(
        charset,
        Charset::Utf16 | Charset::Utf16Le | Charset::Utf16Be | Charset::Utf7 | Charset::Replacement
    )
}

/// Multi-byte legacy charsets: reading other bytes with them reliably shows errors.
fn is_multi_byte(charset: Charset) -> bool {
    matches!(
        charset,
        Charset::ShiftJis
            | Charset::EucJp
            | Charset::Iso2022Jp
            | Charset::EucKr
            | Charset::Gbk
            | Charset::Gb18030
            | Charset::Big5
    )
}

/// Whether plain ASCII bytes hold ISO-2022-JP's switches to JIS X 0208 (rule 3).
fn has_iso_2022_jp_escapes(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\x1b$B").is_some() || memchr::memmem::find(bytes, b"\x1b$@").is_some()
}

/// Whether bytes that are not valid UTF-8 are mostly not UTF-8 at all: more invalid
/// sequences than valid non-ASCII characters (rule 4). UTF-8 text cut short or with a stray
/// byte has a few errors among many characters; Shift_JIS or Latin-1 read as UTF-8 has
/// hardly a valid character.
fn mostly_not_utf8(bytes: &[u8]) -> bool {
    let (mut valid, mut invalid) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        valid += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    invalid > valid
}

/// How much of a text chardetng reads: enough to tell, and a bound on the work.
const DETECT_LIMIT: usize = 64 * 1024;

/// The charset chardetng guesses for bytes that are not UTF-8 (never UTF-8 itself), from
/// their first `DETECT_LIMIT` bytes.
pub fn detect(bytes: &[u8]) -> Charset {
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Allow);
    detector.feed(&bytes[..bytes.len().min(DETECT_LIMIT)], true);
    charset_of(detector.guess(None, Utf8Detection::Deny))
}

/// The charset to read a text part's transfer-decoded `bytes` with, given the charset label
/// of its Content-Type (rules 1–4); [`Charset::Utf8`] means UTF-8 with invalid sequences
/// made U+FFFD, as mail-parser reads text.
pub fn body_charset(label: Option<&str>, bytes: &[u8]) -> Charset {
    let labelled = label.and_then(charset_for_label);
    match labelled {
        Some(charset) if not_ascii_compatible(charset) => charset,
        // A declared UTF-8 is taken at its word: its invalid bytes become U+FFFD.
        Some(Charset::Utf8) => Charset::Utf8,
        None => {
            if simdutf8::basic::from_utf8(bytes).is_ok() {
                if bytes.is_ascii() && has_iso_2022_jp_escapes(bytes) {
                    return Charset::Iso2022Jp;
                }
                Charset::Utf8
            } else if mostly_not_utf8(bytes) {
                detect(bytes)
            } else {
                Charset::Utf8
            }
        }
        Some(charset) => {
            if bytes.is_ascii() {
                if charset != Charset::Iso2022Jp && has_iso_2022_jp_escapes(bytes) {
                    return Charset::Iso2022Jp;
                }
                charset
            } else if simdutf8::basic::from_utf8(bytes).is_ok() {
                Charset::Utf8
            } else {
                charset
            }
        }
    }
}

/// A header's raw value made ready for mail-parser to parse again, or `None` when it needs
/// nothing (nearly always):
/// - raw 8-bit bytes that are not UTF-8 (RFC 6532 allows only UTF-8 there) are converted to
///   UTF-8: with the charset of the mail's body text (`hint`, asked for only then) when that
///   is a legacy charset that reads them without error and chardetng does not say they are
///   in a multi-byte charset, else with chardetng's guess;
/// - the labels of RFC 2047 encoded words that only rule 1 knows (`=?cp932?B?...?=`) are
///   replaced with a name mail-parser knows.
pub fn header_value(raw: &[u8], hint: impl FnOnce() -> Charset) -> Option<Vec<u8>> {
    let converted: Option<Cow<'_, str>> = if raw.is_ascii() || simdutf8::basic::from_utf8(raw).is_ok() {
        None
    } else {
        let guess = detect(raw);
        let hint = hint();
        let charset = if hint != Charset::Utf8
            && !not_ascii_compatible(hint)
            && (is_multi_byte(hint) || !is_multi_byte(guess))
            && !hint.decode_checked(raw).1
        {
            hint
        } else {
            guess
        };
        Some(charset.decode(raw))
    };
    let value: &[u8] = converted.as_deref().map_or(raw, str::as_bytes);
    match relabel_encoded_words(value) {
        Some(relabelled) => Some(relabelled),
        None => converted.map(|text| text.into_owned().into_bytes()),
    }
}

/// `value` with the label of each encoded word (`=?label?` or `=?label*lang?`) that
/// mail-parser does not know but [`canonical_label`] does replaced; `None` if there is none.
fn relabel_encoded_words(value: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for start in memchr::memmem::find_iter(value, b"=?") {
        let label_start = start + 2;
        if label_start < copied {
            continue;
        }
        let Some(len) = value[label_start..].iter().take(64).position(|&b| b == b'?' || b == b'*') else {
            continue;
        };
        let label = &value[label_start..label_start + len];
        if label.is_empty() || Charset::from_label(label).is_some() {
            continue;
        }
        let Some(name) = std::str::from_utf8(label).ok().and_then(canonical_label) else {
            continue;
        };
        let out = out.get_or_insert_with(|| Vec::with_capacity(value.len() + 16));
        out.extend_from_slice(&value[copied..label_start]);
        out.extend_from_slice(name.as_bytes());
        copied = label_start + len;
    }
    let mut out = out?;
    out.extend_from_slice(&value[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_the_issue_resolve() {
        for (label, expected) in [
            ("cp932", Charset::ShiftJis),
            ("CP932", Charset::ShiftJis),
            ("Windows-31J", Charset::ShiftJis),
            ("\"cp932\"", Charset::ShiftJis),
            (" 'Shift_JIS' ", Charset::ShiftJis),
            ("cp50220", Charset::Iso2022Jp),
            ("CP50221", Charset::Iso2022Jp),
            ("ISO-2022-JP-MS", Charset::Iso2022Jp),
            ("cp51932", Charset::EucJp),
            ("eucJP-ms", Charset::EucJp),
            ("x-euc-jp", Charset::EucJp),
            ("X-EUC-JP", Charset::EucJp),
            ("utf8", Charset::Utf8),
            ("UTF8", Charset::Utf8),
            (" \"UTF-8\" ", Charset::Utf8),
            ("iso-8859-1", Charset::Windows1252),
            ("us-ascii", Charset::Windows1252),
            ("ks_c_5601-1987", Charset::EucKr),
            ("utf-16le", Charset::Utf16Le),
        ] {
            assert_eq!(charset_for_label(label), Some(expected), "{label}");
        }
        assert_eq!(charset_for_label("x-unknown"), None);
        assert_eq!(charset_for_label("unknown-8bit"), None);
        assert_eq!(charset_for_label(""), None);
    }

    /// Every encoding encoding_rs has, by its name and by a label only WHATWG lists, reaches a
    /// mail-parser charset that decodes like it (so any label `Encoding::for_label` knows does).
    #[test]
    fn every_encoding_rs_encoding_has_a_charset() {
        let all = [
            encoding_rs::BIG5, encoding_rs::EUC_JP, encoding_rs::EUC_KR, encoding_rs::GBK,
            encoding_rs::GB18030, encoding_rs::IBM866, encoding_rs::ISO_2022_JP,
            encoding_rs::ISO_8859_10, encoding_rs::ISO_8859_13, encoding_rs::ISO_8859_14,
            encoding_rs::ISO_8859_15, encoding_rs::ISO_8859_16, encoding_rs::ISO_8859_2,
            encoding_rs::ISO_8859_3, encoding_rs::ISO_8859_4, encoding_rs::ISO_8859_5,
            encoding_rs::ISO_8859_6, encoding_rs::ISO_8859_7, encoding_rs::ISO_8859_8,
            encoding_rs::ISO_8859_8_I, encoding_rs::KOI8_R, encoding_rs::KOI8_U,
            encoding_rs::MACINTOSH, encoding_rs::REPLACEMENT, encoding_rs::SHIFT_JIS,
            encoding_rs::UTF_16BE, encoding_rs::UTF_16LE, encoding_rs::UTF_8,
            encoding_rs::WINDOWS_1250, encoding_rs::WINDOWS_1251, encoding_rs::WINDOWS_1252,
            encoding_rs::WINDOWS_1253, encoding_rs::WINDOWS_1254, encoding_rs::WINDOWS_1255,
            encoding_rs::WINDOWS_1256, encoding_rs::WINDOWS_1257, encoding_rs::WINDOWS_1258,
            encoding_rs::WINDOWS_874, encoding_rs::X_MAC_CYRILLIC, encoding_rs::X_USER_DEFINED,
        ];
        // Two non-ASCII bytes, read by each: the same text from both sides.
        for encoding in all {
            let charset = charset_for_label(encoding.name()).unwrap_or_else(|| panic!("{}", encoding.name()));
            if encoding == encoding_rs::UTF_8 || !encoding.is_ascii_compatible() {
                continue;
            }
            let sample = b"a\xa4\xa2\xb0\xa1z";
            assert_eq!(
                charset.decode(sample),
                encoding.decode_without_bom_handling(sample).0,
                "{}",
                encoding.name()
            );
        }
        for label in ["sjis", "ms932", "x-sjis", "csshiftjis", "x-gbk", "unicode-1-1-utf-8", "iso8859-15", "l9", "dos-874"] {
            assert!(charset_for_label(label).is_some(), "{label}");
        }
    }

    #[test]
    fn valid_utf8_beats_an_8bit_label_but_not_real_latin1() {
        let utf8 = "Café crème – 42 €".as_bytes();
        assert_eq!(body_charset(Some("iso-8859-1"), utf8), Charset::Utf8);
        assert_eq!(body_charset(Some("us-ascii"), utf8), Charset::Utf8);
        assert_eq!(body_charset(Some("windows-1251"), utf8), Charset::Utf8);
        assert_eq!(body_charset(Some("iso-8859-1"), b"Caf\xe9 cr\xe8me"), Charset::Windows1252);
        assert_eq!(body_charset(Some("iso-8859-1"), b"plain ascii"), Charset::Windows1252);
        // UTF-16 text of ASCII letters is valid UTF-8 too: its label stands.
        assert_eq!(body_charset(Some("utf-16le"), b"h\0i\0"), Charset::Utf16Le);
    }

    #[test]
    fn unlabelled_legacy_text_is_detected() {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("サーバーの応答がありません。至急確認してください。");
        assert_eq!(body_charset(None, &sjis), Charset::ShiftJis);
        // A declared UTF-8 stands (its bytes become U+FFFD where they are not UTF-8).
        assert_eq!(body_charset(Some("utf-8"), &sjis), Charset::Utf8);
        assert_eq!(body_charset(Some("x-unknown"), &sjis), Charset::ShiftJis);
        let (euc, _, _) = encoding_rs::EUC_JP.encode("サーバーの応答がありません。至急確認してください。");
        assert_eq!(body_charset(None, &euc), Charset::EucJp);
        // UTF-8 with one broken byte stays UTF-8.
        assert_eq!(body_charset(None, "日本語のテキスト\u{1}".as_bytes().iter().chain(b"\xff").copied().collect::<Vec<_>>().as_slice()), Charset::Utf8);
        // Unlabelled ISO-2022-JP.
        let (jis, _, _) = encoding_rs::ISO_2022_JP.encode("こんにちは");
        assert_eq!(body_charset(None, &jis), Charset::Iso2022Jp);
        assert_eq!(body_charset(Some("us-ascii"), &jis), Charset::Iso2022Jp);
        assert_eq!(body_charset(None, b"plain"), Charset::Utf8);
    }

    #[test]
    fn raw_header_bytes() {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("【警告】ディスク残量不足");
        let fixed = header_value(&sjis, || Charset::Utf8).unwrap();
        assert_eq!(String::from_utf8(fixed).unwrap(), "【警告】ディスク残量不足");
        // Valid UTF-8 and ASCII need nothing.
        assert_eq!(header_value("日本語".as_bytes(), || unreachable!()), None);
        assert_eq!(header_value(b"=?utf-8?q?x?=", || unreachable!()), None);
        // A body hint in a multi-byte charset is taken when it reads the bytes.
        let (euc, _, _) = encoding_rs::EUC_JP.encode("障害");
        assert_eq!(header_value(&euc, || Charset::EucJp).unwrap(), "障害".as_bytes());
        assert_eq!(header_value(b"Caf\xe9", || Charset::Utf8).unwrap(), "Café".as_bytes());
    }

    #[test]
    fn encoded_word_labels_are_relabelled() {
        assert_eq!(
            header_value(b"=?CP932?B?gqA=?= and =?utf-8?q?x?= =?cp50220*ja?B?x?=", || unreachable!()).unwrap(),
            b"=?shift_jis?B?gqA=?= and =?utf-8?q?x?= =?iso-2022-jp*ja?B?x?=".to_vec()
        );
        assert_eq!(header_value(b"=?", || unreachable!()), None);
        assert_eq!(header_value(b"=?x-nothing?q?a?=", || unreachable!()), None);
    }
}
