//! Test-only oracle: the per-char text splitter that `text.rs` used before it worked on byte
//! offsets. It holds one [`Unit`] per char (an emoji token is one unit), which made the rules
//! easy to read and check but cost ~40 bytes and a dozen instructions per char. The fast
//! splitter must give exactly what this one gives; `text::tests` compares them on generated
//! texts. The rules (window, separators, grapheme-safe hard breaks, truncation) live in the
//! shared predicates of `split.rs`, so only the bookkeeping differs between the two.

use super::emoji::{match_token, TOKEN_LEN};
use crate::line::message::{Emoji, Message, TextMessage};
use super::split::{is_break_space, is_extend, is_regional_indicator, ZWJ};
use super::text::{TextMessages, EMPTY_TEXT, MAX_EMOJI_PER_TEXT, MAX_TEXT_UTF16, TRUNCATION_MARKER};

/// One indivisible piece of text: a char, or an emoji token that will become `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit<'a> {
    Char(char),
    Emoji { product_id: &'a str, emoji_id: &'a str },
}

impl Unit<'_> {
    fn as_char(self) -> char {
        match self {
            Unit::Char(c) => c,
            Unit::Emoji { .. } => '$',
        }
    }
    fn utf16_len(self) -> usize {
        self.as_char().len_utf16()
    }
    fn is_emoji(self) -> bool {
        matches!(self, Unit::Emoji { .. })
    }
    fn is_blank(self) -> bool {
        matches!(self, Unit::Char(c) if c.is_whitespace())
    }
}

fn tokenize(text: &str) -> Vec<Unit<'_>> {
    let mut units = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some((product_id, emoji_id)) = match_token(rest) {
                units.push(Unit::Emoji { product_id, emoji_id });
                rest = &rest[TOKEN_LEN..];
                continue;
            }
        }
        units.push(Unit::Char(c));
        rest = &rest[c.len_utf8()..];
    }
    units
}

struct Cut {
    end: usize,
    next: usize,
}

fn window_end(units: &[Unit], start: usize, max_utf16: usize, max_emoji: usize) -> usize {
    let (mut width, mut emoji, mut i) = (0, 0, start);
    while let Some(&u) = units.get(i) {
        let w = u.utf16_len();
        if width + w > max_utf16 {
            break;
        }
        if u.is_emoji() {
            if emoji == max_emoji {
                break;
            }
            emoji += 1;
        }
        width += w;
        i += 1;
    }
    i
}

fn choose_cut(units: &[Unit], start: usize, w: usize, min_end: usize) -> Cut {
    if w >= units.len() {
        return Cut { end: units.len(), next: units.len() };
    }
    let lo = min_end.max(start + 1);
    let is_sep = |pred: fn(char) -> bool| move |&i: &usize| matches!(units[i], Unit::Char(c) if pred(c));
    if lo <= w {
        if let Some(i) = (lo..=w).rev().find(is_sep(|c| c == '\n')) {
            return Cut { end: i, next: i + 1 };
        }
        if let Some(i) = (lo..=w).rev().find(is_sep(is_break_space)) {
            return Cut { end: i, next: i + 1 };
        }
    }
    let mut b = w;
    while b > lo && !safe_boundary(units, b) {
        b -= 1;
    }
    if !safe_boundary(units, b) {
        b = w;
    }
    Cut { end: b, next: b }
}

fn safe_boundary(units: &[Unit], b: usize) -> bool {
    let (Some(prev), Some(next)) = (b.checked_sub(1).and_then(|p| units.get(p)), units.get(b)) else {
        return true;
    };
    let (prev, next) = (prev.as_char(), next.as_char());
    if prev == ZWJ || is_extend(next) {
        return false;
    }
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        let run = units[..b].iter().rev().take_while(|u| is_regional_indicator(u.as_char())).count();
        return run % 2 == 0;
    }
    true
}

fn trim_end(units: &[Unit], start: usize, mut end: usize) -> usize {
    while end > start && units[end - 1].is_blank() {
        end -= 1;
    }
    end
}

fn text_message(units: &[Unit], suffix: &str) -> Message {
    let mut text = String::new();
    let mut emojis = Vec::new();
    let mut pos: u32 = 0;
    for &u in units {
        if let Unit::Emoji { product_id, emoji_id } = u {
            emojis.push(Emoji { index: pos, product_id: product_id.to_string(), emoji_id: emoji_id.to_string() });
        }
        let c = u.as_char();
        text.push(c);
        pos += c.len_utf16() as u32;
    }
    text.push_str(suffix);
    Message::Text(TextMessage { text, emojis })
}

/// What `text::to_messages_before_more` returned before the byte-offset rewrite (its general
/// path; `max_messages` already clamped by the caller).
pub(super) fn split_units(text: &str, max_messages: usize, more_follows: bool) -> TextMessages {
    let all = tokenize(text);
    let units = &all[..trim_end(&all, 0, all.len())];
    if units.is_empty() {
        return TextMessages { messages: vec![text_message(&[], EMPTY_TEXT)], truncated: false };
    }
    let marker_utf16 = TRUNCATION_MARKER.encode_utf16().count();
    let mut messages = Vec::new();
    let mut truncated = false;
    let mut start = 0;
    while start < units.len() {
        if start > 0 {
            let mut i = start;
            while let Some(u) = units.get(i).filter(|u| u.is_blank()) {
                if u.as_char() == '\n' {
                    start = i + 1;
                }
                i += 1;
            }
        }
        let w = window_end(units, start, MAX_TEXT_UTF16, MAX_EMOJI_PER_TEXT);
        if messages.len() + 1 == max_messages && (w < units.len() || more_follows) {
            let w = window_end(units, start, MAX_TEXT_UTF16 - marker_utf16, MAX_EMOJI_PER_TEXT);
            let cut = choose_cut(units, start, w, start + (w - start) / 2);
            let end = trim_end(units, start, cut.end);
            let marker = if end > start { TRUNCATION_MARKER } else { TRUNCATION_MARKER.trim_start() };
            messages.push(text_message(&units[start..end], marker));
            truncated = true;
            break;
        }
        let cut = choose_cut(units, start, w, start);
        let end = trim_end(units, start, cut.end);
        if end > start {
            messages.push(text_message(&units[start..end], ""));
        }
        start = cut.next;
    }
    if messages.is_empty() {
        messages.push(text_message(&[], EMPTY_TEXT));
    }
    TextMessages { messages, truncated }
}
