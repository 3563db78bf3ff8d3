//! `[sticker:<packageId>:<stickerId>]` tokens: a token alone on its line (spaces and tabs
//! around it allowed) is a LINE sticker message in that place of the text; anywhere else it
//! is plain text, because a sticker cannot sit inside a text message.

use crate::line::message::StickerMessage;

const PREFIX: &str = "[sticker:";

/// LINE's package and sticker ids are strings of digits (446, 1988, 11537, 52002734...).
/// The cap only keeps a runaway line of digits from being sent as an id LINE must reject.
const MAX_ID_DIGITS: usize = 20;

/// A piece of a text: text to send as text messages, or a sticker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment<'a> {
    /// Text as written, with the line ends around it; may be blank.
    Text(&'a str),
    Sticker(StickerMessage),
}

/// Splits `text` at its sticker lines, in order. The sticker's line (with its line end) is
/// consumed; the text before and after it stays as written.
pub(super) fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let line_end = line_start + line.len();
        if let Some(sticker) = match_line(line) {
            if line_start > text_start {
                out.push(Segment::Text(&text[text_start..line_start]));
            }
            out.push(Segment::Sticker(sticker));
            text_start = line_end;
        }
        line_start = line_end;
    }
    if text_start < text.len() {
        out.push(Segment::Text(&text[text_start..]));
    }
    out
}

/// The sticker when `line` (its line end included) holds a well-formed token and nothing
/// else but spaces and tabs.
fn match_line(line: &str) -> Option<StickerMessage> {
    let token = line.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let ids = token.strip_prefix(PREFIX)?.strip_suffix(']')?;
    let (package_id, sticker_id) = ids.split_once(':')?;
    let is_id =
        |s: &str| (1..=MAX_ID_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    (is_id(package_id) && is_id(sticker_id)).then(|| StickerMessage {
        package_id: package_id.to_string(),
        sticker_id: sticker_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sticker(p: &str, s: &str) -> Segment<'static> {
        Segment::Sticker(StickerMessage {
            package_id: p.to_string(),
            sticker_id: s.to_string(),
        })
    }

    #[test]
    fn sticker_line_between_texts() {
        assert_eq!(
            segments("before\n[sticker:446:1988]\nafter\n"),
            vec![
                Segment::Text("before\n"),
                sticker("446", "1988"),
                Segment::Text("after\n")
            ]
        );
    }

    #[test]
    fn sticker_lines_at_the_ends_and_crlf_and_indent() {
        assert_eq!(
            segments("[sticker:1:2]\r\nmid\r\n \t[sticker:11537:52002734] \r\n"),
            vec![
                sticker("1", "2"),
                Segment::Text("mid\r\n"),
                sticker("11537", "52002734")
            ]
        );
        assert_eq!(
            segments("[sticker:789:10855]"),
            vec![sticker("789", "10855")]
        );
    }

    #[test]
    fn adjacent_sticker_lines_keep_their_order() {
        assert_eq!(
            segments("[sticker:446:1988]\n[sticker:446:1989]\n\n[sticker:446:1990]"),
            vec![
                sticker("446", "1988"),
                sticker("446", "1989"),
                Segment::Text("\n"),
                sticker("446", "1990"),
            ]
        );
    }

    #[test]
    fn token_not_alone_on_its_line_is_text() {
        for text in [
            "see [sticker:446:1988]",
            "[sticker:446:1988] ok",
            "> [sticker:446:1988]",
            "[sticker:446:1988][sticker:446:1989]",
            "x\u{3000}[sticker:446:1988]",
        ] {
            assert_eq!(segments(text), vec![Segment::Text(text)], "{text}");
        }
    }

    #[test]
    fn malformed_tokens_are_text() {
        let too_long = format!("[sticker:{}:1]", "1".repeat(21));
        let longest = format!("[sticker:{}:1]", "1".repeat(20));
        for text in [
            "[sticker:446]",
            "[sticker::1988]",
            "[sticker:446:]",
            "[sticker:44a:1988]",
            "[sticker:446:1988:1]",
            "[sticker:446:-1]",
            "[sticker:446:1988",
            "[Sticker:446:1988]",
            "[sticker: 446:1988]",
            "[sticker:４４６:1988]",
            too_long.as_str(),
        ] {
            assert_eq!(segments(text), vec![Segment::Text(text)], "{text}");
        }
        assert_eq!(segments(&longest).len(), 1);
        assert!(matches!(segments(&longest)[0], Segment::Sticker(_)));
    }

    #[test]
    fn text_without_tokens_is_one_segment_and_empty_is_none() {
        assert_eq!(segments("a\nb"), vec![Segment::Text("a\nb")]);
        assert_eq!(segments(""), vec![]);
    }
}
