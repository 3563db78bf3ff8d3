//! The mail's text → the first request's messages: text messages with `[sticker:…]` lines
//! turned into sticker messages in their place, all within one request's 5 messages.
//!
//! Text between stickers goes through [`to_messages`] (emoji,
//! splitting). When the whole does not fit, the last message that fits is a text ending in
//! the truncation marker, as for a long text without stickers: the reader must see that
//! something was cut, and a sticker cannot carry that marker.

use super::attachments::with_attachment_list;
use crate::line::message::{Message, TextMessage};
use super::sticker::{segments, Segment};
use super::text::{
    to_messages, to_messages_before_more, TextMessages, MAX_MESSAGES_PER_REQUEST, TRUNCATION_MARKER,
};

/// Turns `text` into at most `max_messages` (clamped to 1..=5) text and sticker messages,
/// in the order the text has them. Never returns an empty list; never panics.
pub fn body_messages(text: &str, max_messages: usize) -> TextMessages {
    let max = max_messages.clamp(1, MAX_MESSAGES_PER_REQUEST);
    // Blank text between stickers would become "(empty message)"; it is only spacing.
    let segs: Vec<Segment<'_>> = segments(text)
        .into_iter()
        .filter_map(|seg| match seg {
            Segment::Text(t) => {
                let t = without_leading_blank_lines(t);
                (!t.trim().is_empty()).then_some(Segment::Text(t))
            }
            sticker => Some(sticker),
        })
        .collect();
    if !segs.iter().any(|s| matches!(s, Segment::Sticker(_))) {
        // No sticker: exactly the plain text behaviour.
        return to_messages(text, max);
    }
    let mut messages = Vec::new();
    let mut truncated = false;
    for (i, seg) in segs.iter().enumerate() {
        let left = max - messages.len();
        let more_follows = i + 1 < segs.len();
        match seg {
            Segment::Text(t) => {
                let r = to_messages_before_more(t, left, more_follows);
                messages.extend(r.messages);
                if r.truncated {
                    truncated = true;
                    break;
                }
            }
            Segment::Sticker(_) if left == 1 && more_follows => {
                messages.push(Message::Text(TextMessage {
                    text: TRUNCATION_MARKER.trim_start().to_string(),
                    emojis: Vec::new(),
                }));
                truncated = true;
                break;
            }
            Segment::Sticker(s) => messages.push(Message::Sticker(s.clone())),
        }
    }
    TextMessages {
        messages,
        truncated,
    }
}

/// [`body_messages`] for `text` followed by the attachment `list`. The list tells the reader
/// what the mail carried, so a text too long for the request must not push it out: the text
/// is then cut one message earlier and the list gets the last message of its own.
pub fn body_messages_with_list(text: &str, list: &str, max_messages: usize) -> TextMessages {
    let max = max_messages.clamp(1, MAX_MESSAGES_PER_REQUEST);
    let whole = body_messages(&with_attachment_list(text, list), max);
    if list.is_empty() || !whole.truncated || max < 2 {
        return whole;
    }
    let mut head = body_messages(text, max - 1);
    head.messages.extend(to_messages(list, 1).messages);
    TextMessages { messages: head.messages, truncated: true }
}

/// Drops whole blank lines at the start (left over from the line end before a sticker) but
/// keeps the indentation of the first line with content.
fn without_leading_blank_lines(t: &str) -> &str {
    let content = t.len() - t.trim_start().len();
    match t[..content].rfind('\n') {
        Some(nl) => &t[nl + 1..],
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::message::StickerMessage;

    fn text(t: &str) -> Message {
        Message::Text(TextMessage {
            text: t.to_string(),
            emojis: Vec::new(),
        })
    }

    fn sticker(p: &str, s: &str) -> Message {
        Message::Sticker(StickerMessage {
            package_id: p.to_string(),
            sticker_id: s.to_string(),
        })
    }

    fn body(t: &str, max: usize) -> (Vec<Message>, bool) {
        let r = body_messages(t, max);
        (r.messages, r.truncated)
    }

    #[test]
    fn sticker_in_place_between_texts() {
        assert_eq!(
            body(
                "Server is back.\n\n[sticker:446:1988]\n\nUptime: 3 days\n",
                5
            ),
            (
                vec![
                    text("Server is back."),
                    sticker("446", "1988"),
                    text("Uptime: 3 days")
                ],
                false
            )
        );
    }

    #[test]
    fn stickers_first_last_and_alone() {
        assert_eq!(
            body("[sticker:446:1988]\nhello\n[sticker:789:10855]", 5),
            (
                vec![
                    sticker("446", "1988"),
                    text("hello"),
                    sticker("789", "10855")
                ],
                false
            )
        );
        assert_eq!(
            body("\n[sticker:446:1988]\n\n", 5),
            (vec![sticker("446", "1988")], false)
        );
    }

    #[test]
    fn indentation_after_a_sticker_is_kept() {
        assert_eq!(
            body("[sticker:1:2]\n\n  - item\n", 5),
            (vec![sticker("1", "2"), text("  - item")], false)
        );
    }

    #[test]
    fn token_inside_a_line_stays_text_and_emoji_still_work() {
        let (messages, truncated) =
            body("ok [sticker:1:2]\n[emoji:5ac1bfd5040ab6b5d9a3b0fc:001]", 5);
        assert!(!truncated);
        let [Message::Text(t)] = messages.as_slice() else {
            panic!("{messages:?}")
        };
        assert_eq!(t.text, "ok [sticker:1:2]\n$");
        assert_eq!(t.emojis.len(), 1);
        assert_eq!(t.emojis[0].index, 17);
    }

    #[test]
    fn without_stickers_it_is_the_plain_text_result() {
        for (t, max) in [("hello", 5), ("", 5), (&*"a".repeat(12_000), 2)] {
            assert_eq!(body_messages(t, max), to_messages(t, max));
        }
    }

    #[test]
    fn five_stickers_fit_and_a_sixth_is_cut_with_a_marker() {
        let five: String = (1..=5).map(|i| format!("[sticker:446:{i}]\n")).collect();
        let (m, truncated) = body(&five, 5);
        assert!(!truncated);
        assert_eq!(
            m,
            (1..=5)
                .map(|i| sticker("446", &i.to_string()))
                .collect::<Vec<_>>()
        );

        let six = five + "[sticker:446:6]\n";
        let (m, truncated) = body(&six, 5);
        assert!(truncated);
        let mut expected: Vec<Message> = (1..=4).map(|i| sticker("446", &i.to_string())).collect();
        expected.push(text("…(truncated)"));
        assert_eq!(m, expected);
    }

    #[test]
    fn text_in_the_last_slot_carries_the_marker_when_more_follows() {
        let t = "one\n[sticker:1:1]\ntwo\n[sticker:1:2]\nthree\n[sticker:1:3]\n";
        assert_eq!(
            body(t, 5),
            (
                vec![
                    text("one"),
                    sticker("1", "1"),
                    text("two"),
                    sticker("1", "2"),
                    text("three\n…(truncated)"),
                ],
                true
            )
        );
    }

    #[test]
    fn long_text_before_a_sticker_is_truncated_in_its_budget() {
        let long = "a".repeat(30_000);
        let (m, truncated) = body(&format!("{long}\n[sticker:1:1]\n"), 5);
        assert!(truncated);
        assert_eq!(m.len(), 5);
        assert!(m.iter().all(|m| matches!(m, Message::Text(_))));
        let Message::Text(last) = &m[4] else {
            unreachable!()
        };
        assert!(last.text.ends_with("\n…(truncated)"));

        // Short enough to leave room: the sticker follows the split text.
        let (m, truncated) = body(&format!("{}\n[sticker:1:1]\n", "a".repeat(6_000)), 5);
        assert!(!truncated);
        assert_eq!(m.len(), 3);
        assert_eq!(m[2], sticker("1", "1"));
    }

    #[test]
    fn max_one_message_with_a_sticker_and_text() {
        assert_eq!(body("[sticker:1:1]", 1), (vec![sticker("1", "1")], false));
        assert_eq!(
            body("[sticker:1:1]\nhi", 1),
            (vec![text("…(truncated)")], true)
        );
        assert_eq!(
            body("hi\n[sticker:1:1]", 1),
            (vec![text("hi\n…(truncated)")], true)
        );
    }

    #[test]
    fn limits_hold_on_generated_inputs() {
        // Deterministic mixes of sticker lines, text lines, blank lines and long runs.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let (mut cut, mut whole_with_stickers) = (0, 0);
        for case in 0..400 {
            let mut input = String::new();
            let mut stickers_in = 0;
            for _ in 0..next(12) {
                match next(5) {
                    0 => {
                        input.push_str(&format!("[sticker:{}:{}]\n", next(1000), next(100000)));
                        stickers_in += 1;
                    }
                    1 => input.push('\n'),
                    2 => input.push_str(&("x".repeat(next(7000) as usize) + "\n")),
                    3 => input.push_str("inline [sticker:1:2] token\n"),
                    _ => input.push_str("line\n"),
                }
            }
            if next(2) == 0 {
                // A last line without its line end.
                input.pop();
            }
            let max = next(7) as usize;
            let r = body_messages(&input, max);
            assert!(
                !r.messages.is_empty() && r.messages.len() <= max.clamp(1, 5),
                "case {case}"
            );
            let stickers_out = r
                .messages
                .iter()
                .filter(|m| matches!(m, Message::Sticker(_)))
                .count();
            if r.truncated {
                let Some(Message::Text(last)) = r.messages.last() else {
                    panic!("case {case}")
                };
                assert!(last.text.ends_with("…(truncated)"), "case {case}");
                cut += 1;
            } else {
                assert_eq!(stickers_out, stickers_in, "case {case}");
                whole_with_stickers += usize::from(stickers_in > 0);
            }
            for m in &r.messages {
                if let Message::Text(t) = m {
                    assert!(
                        (1..=5000).contains(&t.text.encode_utf16().count()),
                        "case {case}"
                    );
                    assert!(!t.text.trim().is_empty(), "case {case}");
                }
            }
        }
        // The generator must reach both the cut and the sticker paths.
        assert!(
            cut > 30 && whole_with_stickers > 30,
            "cut {cut}, whole {whole_with_stickers}"
        );
    }

    fn texts(messages: &[Message]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| match m {
                Message::Text(t) => t.text.as_str(),
                _ => "<not text>",
            })
            .collect()
    }

    #[test]
    fn the_attachment_list_follows_a_text_that_fits() {
        let r = body_messages_with_list("Report attached.", "📎 a.pdf (1.0 KB)", 5);
        assert_eq!(texts(&r.messages), ["Report attached.\n\n📎 a.pdf (1.0 KB)"]);
        assert!(!r.truncated);
        assert_eq!(body_messages_with_list("Hi", "", 5), body_messages("Hi", 5));
    }

    #[test]
    fn a_text_too_long_for_the_request_does_not_push_the_attachment_list_out() {
        let long = "log line with some words in it\n".repeat(1500); // ≈ 46,500 units: 10 messages
        let list = "📎 core.dump (12.0 MB)\n📎 trace.txt (3.1 KB)";
        let r = body_messages_with_list(&long, list, 5);
        assert!(r.truncated);
        let t = texts(&r.messages);
        assert_eq!(t.len(), 5);
        assert!(t[3].ends_with("…(truncated)"), "the text is cut in the 4th message");
        assert_eq!(t[4], list, "the list has the last message");
        // Without room for two messages there is nothing to give the list.
        let one = body_messages_with_list(&long, list, 1);
        assert_eq!(one.messages.len(), 1);
        assert!(one.truncated);
    }

    #[test]
    fn a_list_over_one_message_is_itself_cut_visibly() {
        let long = "x ".repeat(20_000);
        let list: Vec<String> = (0..400).map(|i| format!("📎 file-{i:03}.bin (1 B)")).collect();
        let list = list.join("\n");
        let r = body_messages_with_list(&long, &list, 5);
        let t = texts(&r.messages);
        assert!(t[4].starts_with("📎 file-000.bin (1 B)") && t[4].ends_with("…(truncated)"));
        assert!(r.messages.iter().all(|m| matches!(m, Message::Text(t) if t.text.encode_utf16().count() <= 5000)));
    }
}
