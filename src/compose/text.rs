//! Text → LINE text messages: `[emoji:…]` tokens become `$` + emoji entries, a long text is
//! split within LINE's per-message limits (5,000 UTF-16 units, 20 emoji), and what does not
//! fit in the allowed number of messages is cut with a visible marker.
//!
//! Finding tokens lives in `emoji.rs` and break points in `split.rs`; this file owns the policy
//! (how many messages, what to drop, the empty and truncated cases) and builds the messages.

use crate::line::message::{Emoji, Message, TextMessage};
use super::split::{choose_cut, utf16_len, window_end, Units};

/// LINE's limits for text messages in one request.
pub const MAX_TEXT_UTF16: usize = 5000;
pub const MAX_EMOJI_PER_TEXT: usize = 20;
pub const MAX_MESSAGES_PER_REQUEST: usize = 5;

/// Appended to the last message when the text did not fit; counts toward its 5,000 units.
pub const TRUNCATION_MARKER: &str = "\n…(truncated)";

/// Sent instead of an empty or whitespace-only text, which LINE rejects.
pub const EMPTY_TEXT: &str = "(empty message)";

/// The result of turning a text into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessages {
    pub messages: Vec<Message>,
    /// True when the text did not fit in `max_messages` and was cut with a visible marker.
    pub truncated: bool,
}

/// Turns `text` into at most `max_messages` (clamped to 1..=5) LINE text messages.
///
/// Every message has 1..=5,000 UTF-16 units of text that is not whitespace-only and at most
/// 20 emoji whose indexes point at `$`s of that message's own text. Never panics.
pub fn to_messages(text: &str, max_messages: usize) -> TextMessages {
    to_messages_before_more(text, max_messages, false)
}

/// [`to_messages`] for a text that more messages follow (a sticker, more text). With
/// `more_follows`, running into the last allowed message counts as not fitting even when
/// this text alone would fit: the last message then ends in the truncation marker, so the
/// reader sees that what came after was cut.
pub(super) fn to_messages_before_more(
    text: &str,
    max_messages: usize,
    more_follows: bool,
) -> TextMessages {
    let max_messages = max_messages.clamp(1, MAX_MESSAGES_PER_REQUEST);
    if let Some(one) = whole_in_one(text, max_messages, more_follows) {
        return one;
    }
    split_units(text, max_messages, more_follows)
}

/// The common case without the splitting: a text with no emoji token that fits one message
/// is that message, its trailing whitespace trimmed. `None` when the general path is needed.
/// Must give exactly what [`split_units`] gives (a unit test compares the two).
fn whole_in_one(text: &str, max_messages: usize, more_follows: bool) -> Option<TextMessages> {
    // With one slot and more to come, even a fitting text ends in the truncation marker.
    if more_follows && max_messages == 1 {
        return None;
    }
    let trimmed = text.trim_end();
    // Every token starts with this; a stray "[emoji:" that is no token only costs the slow path.
    if trimmed.is_empty() || trimmed.len() > 4 * MAX_TEXT_UTF16 {
        return None;
    }
    if trimmed.match_indices('[').any(|(i, _)| trimmed[i..].starts_with("[emoji:")) {
        return None;
    }
    // No char is wider in UTF-16 units than in bytes: a short text fits without counting.
    let fits = trimmed.len() <= MAX_TEXT_UTF16 || utf16_len(trimmed) <= MAX_TEXT_UTF16;
    fits.then(|| TextMessages {
        messages: vec![Message::Text(TextMessage { text: trimmed.to_string(), emojis: Vec::new() })],
        truncated: false,
    })
}

/// The general path: tokens, windows, tidy breaks, truncation. Offsets are bytes of the
/// trimmed text and always unit boundaries (see [`Units`]).
fn split_units(text: &str, max_messages: usize, more_follows: bool) -> TextMessages {
    // Trailing whitespace carries nothing, and dropping it up front means "does the rest
    // fit?" is never fooled by a tail of blank lines. (A token ends in `]`: never trimmed.)
    let text = text.trim_end();
    if text.is_empty() {
        return TextMessages { messages: vec![plain_message(EMPTY_TEXT)], truncated: false };
    }
    let units = Units::new(text);
    let marker_utf16 = utf16_len(TRUNCATION_MARKER);
    let mut messages = Vec::new();
    let mut truncated = false;
    let mut start = 0;
    while start < text.len() {
        if start > 0 {
            // The break we took is the message boundary; blank lines at the top of the next
            // message would only show as empty space. Skip whole blank lines (newlines and
            // whitespace-only lines) but keep the indentation of the first line with content.
            let from = start;
            for (i, c) in text[from..].char_indices().take_while(|&(_, c)| c.is_whitespace()) {
                if c == '\n' {
                    start = from + i + 1;
                }
            }
        }
        let w = window_end(&units, start, MAX_TEXT_UTF16, MAX_EMOJI_PER_TEXT);
        if messages.len() + 1 == max_messages && (w < text.len() || more_follows) {
            // Last slot and the rest does not fit: keep what fits beside the marker.
            let w = window_end(&units, start, MAX_TEXT_UTF16 - marker_utf16, MAX_EMOJI_PER_TEXT);
            // Only take a tidy break in the back half of the window, so we do not drop
            // thousands of characters to avoid cutting a word.
            let half = units.nth_unit(start, units.unit_count(start, w) / 2);
            let cut = choose_cut(&units, start, w, half);
            let end = trim_end(text, start, cut.end);
            let marker = if end > start { TRUNCATION_MARKER } else { TRUNCATION_MARKER.trim_start() };
            messages.push(text_message(&units, start, end, marker));
            truncated = true;
            break;
        }
        let cut = choose_cut(&units, start, w, start);
        let end = trim_end(text, start, cut.end);
        // A chunk that is only whitespace (a long blank run) is skipped, not sent.
        if end > start {
            messages.push(text_message(&units, start, end, ""));
        }
        start = cut.next;
    }
    if messages.is_empty() {
        // Unreachable (the trimmed text ends in a non-blank unit), kept so the
        // "never an empty request" promise does not rest on that reasoning alone.
        messages.push(plain_message(EMPTY_TEXT));
    }
    TextMessages { messages, truncated }
}

/// The end of `text[start..end]` with trailing whitespace removed.
fn trim_end(text: &str, start: usize, end: usize) -> usize {
    start + text[start..end].trim_end().len()
}

fn plain_message(text: &str) -> Message {
    Message::Text(TextMessage { text: text.to_string(), emojis: Vec::new() })
}

/// Builds one message from the units of `start..end` followed by the plain text `suffix`:
/// each token becomes a `$` with its emoji entry, whose index is counted from the start of
/// this message's text in UTF-16 units, as LINE wants. Plain runs are copied whole.
fn text_message(units: &Units, start: usize, end: usize, suffix: &str) -> Message {
    let src = units.text();
    let mut text = String::with_capacity(end - start + suffix.len());
    let mut emojis = Vec::new();
    let mut pos = start;
    let mut index = 0;
    for token in units.tokens_in(start, end) {
        let run = &src[pos..token.start];
        text.push_str(run);
        index += utf16_len(run);
        emojis.push(Emoji {
            index: index as u32,
            product_id: token.product_id.to_string(),
            emoji_id: token.emoji_id.to_string(),
        });
        text.push('$');
        index += 1;
        pos = token.end();
    }
    text.push_str(&src[pos..end]);
    text.push_str(suffix);
    Message::Text(TextMessage { text, emojis })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "5ac1bfd5040ab6b5d9a3b0fc";

    fn tok(id: &str) -> String {
        format!("[emoji:{P}:{id}]")
    }

    fn emoji(index: u32, id: &str) -> Emoji {
        Emoji {
            index,
            product_id: P.to_string(),
            emoji_id: id.to_string(),
        }
    }

    fn text_msg(m: &Message) -> &TextMessage {
        match m {
            Message::Text(t) => t,
            other => panic!("not a text message: {other:?}"),
        }
    }

    fn text_of(m: &Message) -> &str {
        &text_msg(m).text
    }

    fn emojis_of(m: &Message) -> &[Emoji] {
        &text_msg(m).emojis
    }

    fn texts(r: &TextMessages) -> Vec<&str> {
        r.messages.iter().map(text_of).collect()
    }

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// The fast path must be invisible: on texts around its edges (tokens, near-tokens,
    /// blank tails, the 5,000 limit, astral chars, one slot with more to come) it gives
    /// exactly what the general path gives, or declines.
    #[test]
    fn the_one_message_fast_path_agrees_with_the_general_path() {
        let near_limit = |n: usize| "a".repeat(n);
        let mut cases: Vec<String> = vec![
            "".into(),
            " \n\t ".into(),
            "Hello".into(),
            "  indented\n\n  text \n\n\n".into(),
            "price $5 [emoji:nope] [emoji:".into(),
            format!("hi {}", tok("001")),
            near_limit(5000),
            near_limit(5001),
            format!("{}   \n", near_limit(5000)),
            "😀".repeat(2500),
            "😀".repeat(2501),
            format!("{}a", "😀".repeat(2500)),
            "日本語のテキスト\r\n".repeat(300),
            "x\u{3000}".into(),
        ];
        let mut x: u32 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..300 {
            let mut t = String::new();
            for _ in 0..next() % 40 {
                let x = next();
                t.push_str(["a", " ", "\n", "😀", "日", "$", "[emoji", "\u{3000}", "word "][(x % 9) as usize]);
            }
            cases.push(t.repeat(1 + (next() % 150) as usize));
        }
        let mut fast = 0;
        for t in &cases {
            for max in 1..=5 {
                for more in [false, true] {
                    if let Some(r) = whole_in_one(t, max, more) {
                        fast += 1;
                        assert_eq!(r, split_units(t, max, more), "{t:?} max {max} more {more}");
                    }
                }
            }
        }
        assert!(fast > 500, "the fast path was taken {fast} times");
    }

    /// The byte-offset splitter must split exactly like the per-char one it replaced
    /// (`compose::reference`), on texts built to hit every rule: tokens (also adjacent, over 20,
    /// malformed), surrogate pairs at the limit, combining marks, ZWJ sequences, flags,
    /// ideographic and no-break spaces, CRLF, blank runs, and lengths from a few chars to
    /// several messages' worth, for every slot count and with or without more to follow.
    #[test]
    fn the_byte_offset_splitter_agrees_with_the_per_char_one() {
        let pieces: &[&str] = &[
            "a", "word ", " ", "\n", "\r\n", "\n\n  ", "😀", "日本語", "\u{3000}", "\u{00A0}", "e\u{301}",
            "👨\u{200D}👩", "🇯🇵", "🇺", "$", "[", "[emoji:", "[emoji:5ac1bfd5040ab6b5d9a3b0fc:01]", "\t",
            "\u{FE0F}", "🏻",
        ];
        let mut x: u32 = 2024;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut cases: Vec<String> = vec![
            "".into(),
            tok("001").repeat(45),
            format!("{} {}", "a".repeat(4990), tok("002").repeat(30)),
            "日".repeat(5000) + &"😀".repeat(3000),
            format!("{}\n{}", "x".repeat(4999), "y".repeat(9000)),
            "🇯🇵".repeat(3000),
            format!("a{}", "\u{301}".repeat(6000)),
        ];
        for _ in 0..400 {
            let mut t = String::new();
            for _ in 0..1 + next() % 60 {
                let r = next() as usize;
                if r % 7 == 0 {
                    t.push_str(&tok(&format!("{:03}", r % 1000)));
                } else {
                    t.push_str(pieces[r % pieces.len()]);
                }
            }
            // From one copy to several messages' worth.
            let copies = [1, 2, 10, 60, 200, 600][(next() % 6) as usize];
            cases.push(t.repeat(copies));
        }
        let mut split = 0;
        for t in &cases {
            for max in 1..=5 {
                for more in [false, true] {
                    let got = split_units(t, max, more);
                    assert_eq!(got, crate::compose::reference::split_units(t, max, more), "{t:?} max {max} more {more}");
                    split += usize::from(got.messages.len() > 1);
                }
            }
        }
        assert!(split > 1000, "only {split} cases needed more than one message");
    }

    /// One message, not truncated; returns it.
    fn single(input: &str) -> TextMessage {
        let r = to_messages(input, 5);
        assert!(!r.truncated);
        assert_eq!(r.messages.len(), 1, "{:?}", texts(&r));
        text_msg(&r.messages[0]).clone()
    }

    #[test]
    fn plain_text_is_one_message() {
        let t = single("Hello\nworld");
        assert_eq!(t.text, "Hello\nworld");
        assert_eq!(t.emojis, vec![]);
    }

    #[test]
    fn emoji_index_after_ascii() {
        let t = single(&format!("a{}", tok("001")));
        assert_eq!(t.text, "a$");
        assert_eq!(t.emojis, vec![emoji(1, "001")]);
    }

    #[test]
    fn emoji_index_after_hiragana() {
        let t = single(&format!("あ{}", tok("002")));
        assert_eq!(t.text, "あ$");
        assert_eq!(t.emojis, vec![emoji(1, "002")]);
    }

    #[test]
    fn emoji_index_after_astral_counts_two() {
        let t = single(&format!("🍎{}", tok("003")));
        assert_eq!(t.text, "🍎$");
        assert_eq!(t.emojis, vec![emoji(2, "003")]);
    }

    #[test]
    fn several_emoji() {
        let t = single(&format!("{}x{}🍎{}", tok("001"), tok("002"), tok("003")));
        assert_eq!(t.text, "$x$🍎$");
        assert_eq!(
            t.emojis,
            vec![emoji(0, "001"), emoji(2, "002"), emoji(5, "003")]
        );
    }

    #[test]
    fn malformed_tokens_stay_literal() {
        let input = "[emoji:5AC1BFD5040AB6B5D9A3B0FC:001] [emoji:5ac1bfd5040ab6b5d9a3b0f:001] \
                     [emoji:5ac1bfd5040ab6b5d9a3b0fc:01] [emoji:5ac1bfd5040ab6b5d9a3b0fc:001";
        let t = single(input);
        assert_eq!(t.text, input);
        assert_eq!(t.emojis, vec![]);
    }

    #[test]
    fn literal_dollar_is_not_indexed() {
        let t = single(&format!("price $5 {}", tok("010")));
        assert_eq!(t.text, "price $5 $");
        assert_eq!(t.emojis, vec![emoji(9, "010")]);
    }

    #[test]
    fn empty_and_blank_text() {
        for input in ["", "   ", " \n\t\r\n ", "\u{3000}"] {
            let r = to_messages(input, 5);
            assert_eq!(texts(&r), vec!["(empty message)"]);
            assert_eq!(emojis_of(&r.messages[0]), &[]);
            assert!(!r.truncated);
        }
    }

    #[test]
    fn trailing_whitespace_dropped() {
        assert_eq!(single("hi \n\n ").text, "hi");
    }

    #[test]
    fn exactly_5000_units_fit_in_one() {
        assert_eq!(single(&"a".repeat(5000)).text.len(), 5000);
        assert_eq!(utf16(&single(&"あ".repeat(5000)).text), 5000);
        assert_eq!(utf16(&single(&"🍎".repeat(2500)).text), 5000);
    }

    #[test]
    fn units_5001_split_in_two() {
        let r = to_messages(&"a".repeat(5001), 5);
        assert!(!r.truncated);
        assert_eq!(texts(&r), vec!["a".repeat(5000), "a".to_string()]);
    }

    #[test]
    fn split_at_newline() {
        let input = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["a".repeat(3000), "b".repeat(3000)]
        );
    }

    #[test]
    fn newline_preferred_over_later_space() {
        let input = format!(
            "{}\n{} {}",
            "a".repeat(1000),
            "b".repeat(2000),
            "c".repeat(2000)
        );
        let expected2 = format!("{} {}", "b".repeat(2000), "c".repeat(2000));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["a".repeat(1000), expected2]
        );
    }

    #[test]
    fn split_at_space() {
        let input = format!("{} {}", "a".repeat(3000), "b".repeat(3000));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["a".repeat(3000), "b".repeat(3000)]
        );
    }

    #[test]
    fn split_at_ideographic_space() {
        let input = format!("{}\u{3000}{}", "あ".repeat(3000), "い".repeat(3000));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["あ".repeat(3000), "い".repeat(3000)]
        );
    }

    #[test]
    fn hard_split_without_separators() {
        let r = to_messages(&"あ".repeat(6000), 5);
        assert_eq!(texts(&r), vec!["あ".repeat(5000), "あ".repeat(1000)]);
    }

    #[test]
    fn crlf_break_leaves_no_carriage_return() {
        let input = format!("{}\r\ny", "x".repeat(4998));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["x".repeat(4998), "y".to_string()]
        );
    }

    #[test]
    fn continuation_drops_leading_blank_lines_keeps_indent() {
        let input = format!("{}\n\n\n  b", "a".repeat(5000));
        assert_eq!(
            texts(&to_messages(&input, 5)),
            vec!["a".repeat(5000), "  b".to_string()]
        );
        let input = format!("a\n{}\n  b", " ".repeat(6000));
        assert_eq!(texts(&to_messages(&input, 5)), vec!["a", "  b"]);
    }

    #[test]
    fn astral_char_straddling_the_limit_is_not_split() {
        let input = format!("{}🍎b", "a".repeat(4999));
        let r = to_messages(&input, 5);
        assert_eq!(texts(&r), vec!["a".repeat(4999), "🍎b".to_string()]);
        assert_eq!(utf16(text_of(&r.messages[0])), 4999);
        assert_eq!(utf16(text_of(&r.messages[1])), 3);
    }

    #[test]
    fn combining_mark_stays_with_its_base() {
        let input = format!("{}e\u{301}b", "a".repeat(4999));
        let r = to_messages(&input, 5);
        assert_eq!(texts(&r), vec!["a".repeat(4999), "e\u{301}b".to_string()]);
    }

    #[test]
    fn zwj_sequence_is_not_split() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let input = format!("{}{family}", "a".repeat(4996));
        let r = to_messages(&input, 5);
        assert_eq!(texts(&r), vec!["a".repeat(4996), family.to_string()]);
    }

    #[test]
    fn variation_selector_stays_with_its_base() {
        let input = format!("{}❤\u{FE0F}", "a".repeat(4999));
        let r = to_messages(&input, 5);
        assert_eq!(texts(&r), vec!["a".repeat(4999), "❤\u{FE0F}".to_string()]);
    }

    #[test]
    fn emoji_indexes_are_per_message() {
        let input = format!("{} xy{}", "a".repeat(4999), tok("007"));
        let r = to_messages(&input, 5);
        assert_eq!(texts(&r), vec!["a".repeat(4999), "xy$".to_string()]);
        assert_eq!(emojis_of(&r.messages[0]), &[]);
        assert_eq!(emojis_of(&r.messages[1]), &[emoji(2, "007")]);
    }

    #[test]
    fn twenty_one_emoji_separated_by_spaces() {
        let ids: Vec<String> = (1..=21).map(|i| format!("{i:03}")).collect();
        let input = ids.iter().map(|id| tok(id)).collect::<Vec<_>>().join(" ");
        let r = to_messages(&input, 5);
        assert!(!r.truncated);
        let first = "$ ".repeat(19) + "$";
        assert_eq!(texts(&r), vec![first.as_str(), "$"]);
        let expected: Vec<Emoji> = (0..20).map(|i| emoji(2 * i as u32, &ids[i])).collect();
        assert_eq!(emojis_of(&r.messages[0]), expected.as_slice());
        assert_eq!(emojis_of(&r.messages[1]), &[emoji(0, "021")]);
    }

    #[test]
    fn twenty_one_emoji_on_lines() {
        let input: String = (1..=21).map(|i| tok(&format!("{i:03}")) + "\n").collect();
        let r = to_messages(&input, 5);
        let first = "$\n".repeat(19) + "$";
        assert_eq!(texts(&r), vec![first.as_str(), "$"]);
        assert_eq!(emojis_of(&r.messages[0]).len(), 20);
        assert_eq!(emojis_of(&r.messages[0])[19], emoji(38, "020"));
        assert_eq!(emojis_of(&r.messages[1]), &[emoji(0, "021")]);
    }

    #[test]
    fn twenty_one_emoji_adjacent_break_right_before_the_21st() {
        let input: String = "ab".to_string()
            + &(1..=21)
                .map(|i| tok(&format!("{i:03}")))
                .collect::<String>();
        let r = to_messages(&input, 5);
        let first = "ab".to_string() + &"$".repeat(20);
        assert_eq!(texts(&r), vec![first.as_str(), "$"]);
        assert_eq!(emojis_of(&r.messages[0])[0], emoji(2, "001"));
        assert_eq!(emojis_of(&r.messages[0])[19], emoji(21, "020"));
        assert_eq!(emojis_of(&r.messages[1]), &[emoji(0, "021")]);
    }

    #[test]
    fn too_long_is_truncated_with_marker() {
        let r = to_messages(&"a".repeat(30000), 5);
        assert!(r.truncated);
        assert_eq!(r.messages.len(), 5);
        for m in &r.messages[..4] {
            assert_eq!(text_of(m), "a".repeat(5000));
        }
        let last = text_of(&r.messages[4]);
        assert_eq!(last, "a".repeat(4987) + "\n…(truncated)");
        assert!(last.ends_with("\n…(truncated)"));
        assert_eq!(utf16(last), 5000);
    }

    #[test]
    fn max_messages_is_clamped() {
        let r = to_messages(&"a".repeat(6000), 0);
        assert!(r.truncated);
        assert_eq!(texts(&r), vec!["a".repeat(4987) + "\n…(truncated)"]);
        let r = to_messages(&"a".repeat(30000), 9);
        assert_eq!(r.messages.len(), 5);
        assert!(r.truncated);
    }

    #[test]
    fn truncation_prefers_a_word_break_near_the_end() {
        let r = to_messages(&"abcd ".repeat(2000), 1);
        assert!(r.truncated);
        let expected = "abcd ".repeat(996) + "abcd" + "\n…(truncated)";
        assert_eq!(texts(&r), vec![expected]);
    }

    #[test]
    fn truncation_drops_emoji_past_the_cut() {
        let input: String = (1..=25).map(|i| tok(&format!("{i:03}"))).collect();
        let r = to_messages(&input, 1);
        assert!(r.truncated);
        assert_eq!(texts(&r), vec!["$".repeat(20) + "\n…(truncated)"]);
        let emojis = emojis_of(&r.messages[0]);
        assert_eq!(emojis.len(), 20);
        assert_eq!(emojis[0], emoji(0, "001"));
        assert_eq!(emojis[19], emoji(19, "020"));
    }

    #[test]
    fn fits_exactly_in_max_messages_is_not_truncated() {
        let input = ["a".repeat(5000), "b".repeat(5000)].join("\n");
        let r = to_messages(&input, 2);
        assert!(!r.truncated);
        assert_eq!(texts(&r), vec!["a".repeat(5000), "b".repeat(5000)]);
    }

    /// xorshift64: deterministic, no crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random input plus what it should show as: valid tokens as `$`, and their ids in order.
    /// Built from the pieces, independently of the code under test.
    fn generate(rng: &mut Rng, pieces: u64) -> (String, String, Vec<String>) {
        const MALFORMED: [&str; 4] = [
            "[emoji:5AC1BFD5040AB6B5D9A3B0FC:001]",
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:01]",
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:001",
            "[emoji:",
        ];
        let (mut input, mut shown, mut ids) = (String::new(), String::new(), Vec::new());
        for _ in 0..pieces {
            let piece: String = match rng.below(18) {
                0 => (0..1 + rng.below(12))
                    .map(|i| (b'a' + ((i * 7 + rng.below(26)) % 26) as u8) as char)
                    .collect(),
                1 => " ".into(),
                2 => "\n".into(),
                3 => "あいう".into(),
                4 => "🍎".into(),
                5 => {
                    let id = format!("{:03}", rng.below(1000));
                    input.push_str(&format!("[emoji:{P}:{id}]"));
                    shown.push('$');
                    ids.push(id);
                    continue;
                }
                6 => MALFORMED[rng.below(4) as usize].into(),
                7 => "$".into(),
                8 => "👨\u{200D}👩\u{200D}👧".into(),
                9 => "e\u{301}".into(),
                10 => "❤\u{FE0F}".into(),
                11 => "\r\n".into(),
                12 => {
                    let n = 1 + rng.below(4000) as usize;
                    ["x", "あ", " ", "🍎", "\n"][rng.below(5) as usize].repeat(n)
                }
                13 => "🇯🇵".into(),
                14 => "[".into(),
                15 => "\u{3000}".into(),
                16 => "\u{A0}".into(),
                _ => "\t".into(),
            };
            input.push_str(&piece);
            shown.push_str(&piece);
        }
        (input, shown, ids)
    }

    fn visible(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn invariants_hold_on_generated_inputs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut truncations = 0;
        let mut splits = 0;
        for case in 0..600 {
            let pieces = match case % 3 {
                0 => rng.below(20),
                1 => rng.below(300),
                _ => rng.below(500),
            };
            let (input, shown, ids) = generate(&mut rng, pieces);
            let max = rng.below(8) as usize;
            let r = to_messages(&input, max);
            let limit = max.clamp(1, 5);
            assert!(
                !r.messages.is_empty() && r.messages.len() <= limit,
                "case {case}"
            );
            for m in &r.messages {
                let t = text_msg(m);
                let units: Vec<u16> = t.text.encode_utf16().collect();
                assert!(
                    (1..=5000).contains(&units.len()),
                    "case {case}: {} units",
                    units.len()
                );
                assert!(!t.text.trim().is_empty(), "case {case}: blank message");
                assert!(t.emojis.len() <= 20, "case {case}");
                for (k, e) in t.emojis.iter().enumerate() {
                    assert_eq!(
                        units.get(e.index as usize),
                        Some(&(b'$' as u16)),
                        "case {case}"
                    );
                    if k > 0 {
                        assert!(t.emojis[k - 1].index < e.index, "case {case}");
                    }
                    assert_eq!(e.product_id, P);
                }
            }
            let got_ids: Vec<&str> = r
                .messages
                .iter()
                .flat_map(emojis_of)
                .map(|e| e.emoji_id.as_str())
                .collect();
            let got_visible: String = r.messages.iter().map(|m| visible(text_of(m))).collect();
            if visible(&shown).is_empty() {
                assert_eq!(texts(&r), vec!["(empty message)"], "case {case}");
            } else if r.truncated {
                truncations += 1;
                assert_eq!(r.messages.len(), limit, "case {case}");
                let last = text_of(r.messages.last().unwrap());
                assert!(last.ends_with("…(truncated)"), "case {case}");
                let kept = got_visible.strip_suffix("…(truncated)").unwrap();
                assert!(visible(&shown).starts_with(kept), "case {case}");
                assert!(ids.starts_with(&got_ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
            } else {
                // Nothing visible is lost or reordered; only whitespace at breaks may go.
                assert_eq!(got_visible, visible(&shown), "case {case}");
                assert_eq!(got_ids, ids, "case {case}");
                if r.messages.len() > 1 {
                    splits += 1;
                }
            }
        }
        // The generator must actually exercise the interesting paths.
        assert!(
            truncations > 20 && splits > 20,
            "truncations {truncations}, splits {splits}"
        );
    }
}
