//! Where to break a long text: the window that fits LINE's limits, and the break point
//! inside it (last newline, else last whitespace, else a hard break at a unit boundary that
//! does not tear a visible character apart). Works on [`Unit`]s, so a surrogate pair or an
//! emoji token can never be split.

use super::emoji::Unit;

const ZWJ: char = '\u{200D}';

/// A chosen break: the chunk is `start..end`, the next chunk starts at `next`. `next` is
/// `end + 1` when the break consumed a separator (the newline or space is replaced by the
/// message boundary), else `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cut {
    pub end: usize,
    pub next: usize,
}

/// The largest `w` such that `units[start..w]` is at most `max_utf16` UTF-16 units wide and
/// holds at most `max_emoji` emoji. Always `> start` when `start < units.len()` and
/// `max_utf16 >= 2`, `max_emoji >= 1` (every unit is 1 or 2 wide), so callers always progress.
pub(super) fn window_end(
    units: &[Unit],
    start: usize,
    max_utf16: usize,
    max_emoji: usize,
) -> usize {
    let mut width = 0;
    let mut emoji = 0;
    let mut i = start;
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

/// Chooses the break for a chunk starting at `start` whose window ends at `w` (from
/// [`window_end`]). A separator at index `w` itself is allowed: it is dropped, so the chunk
/// still fits. Separator breaks must leave the chunk ending at or after `min_end`; the
/// truncating caller uses that to avoid throwing away most of the last message for the sake
/// of a tidy break.
pub(super) fn choose_cut(units: &[Unit], start: usize, w: usize, min_end: usize) -> Cut {
    if w >= units.len() {
        return Cut {
            end: units.len(),
            next: units.len(),
        };
    }
    let lo = min_end.max(start + 1);
    let is_sep =
        |pred: fn(char) -> bool| move |&i: &usize| matches!(units[i], Unit::Char(c) if pred(c));
    if lo <= w {
        if let Some(i) = (lo..=w).rev().find(is_sep(|c| c == '\n')) {
            return Cut {
                end: i,
                next: i + 1,
            };
        }
        if let Some(i) = (lo..=w).rev().find(is_sep(is_break_space)) {
            return Cut {
                end: i,
                next: i + 1,
            };
        }
    }
    // Hard break: step back over a grapheme's tail when we can; if the whole window is one
    // giant cluster (say, thousands of combining marks), break at `w` anyway: a message
    // LINE accepts beats a perfect one it rejects.
    let mut b = w;
    while b > lo && !safe_boundary(units, b) {
        b -= 1;
    }
    if !safe_boundary(units, b) {
        b = w;
    }
    Cut { end: b, next: b }
}

/// Whitespace we may break at. No-break spaces are excluded: the writer asked for them not
/// to be broken.
fn is_break_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{00A0}' | '\u{2007}' | '\u{202F}')
}

/// Whether breaking between `units[b - 1]` and `units[b]` keeps visible characters whole.
/// This is an approximation of grapheme clusters without a Unicode table (no new crates):
/// not after a ZWJ, not before a combining mark / variation selector / emoji modifier / tag /
/// ZWJ, and not between the two regional indicators of a flag.
fn safe_boundary(units: &[Unit], b: usize) -> bool {
    let (Some(prev), Some(next)) = (b.checked_sub(1).and_then(|p| units.get(p)), units.get(b))
    else {
        return true;
    };
    let (prev, next) = (prev.as_char(), next.as_char());
    if prev == ZWJ || is_extend(next) {
        return false;
    }
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        // Flags pair up from the start of a run: an odd run length before `b` is mid-flag.
        let run = units[..b]
            .iter()
            .rev()
            .take_while(|u| is_regional_indicator(u.as_char()))
            .count();
        return run % 2 == 0;
    }
    true
}

/// Chars that attach to the char before them.
fn is_extend(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'     // combining diacritical marks
        | '\u{1AB0}'..='\u{1AFF}'   // … extended
        | '\u{1DC0}'..='\u{1DFF}'   // … supplement
        | '\u{20D0}'..='\u{20FF}'   // … for symbols (incl. the keycap U+20E3)
        | '\u{FE20}'..='\u{FE2F}'   // combining half marks
        | '\u{3099}'..='\u{309A}'   // combining kana (semi-)voiced sound marks
        | '\u{FE00}'..='\u{FE0F}'   // variation selectors (VS16 makes ❤ an emoji)
        | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        | '\u{1F3FB}'..='\u{1F3FF}' // emoji skin-tone modifiers
        | '\u{E0020}'..='\u{E007F}' // tags (subdivision flags)
        | '\u{200D}'                // ZWJ itself belongs to the char before it
    )
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::emoji::tokenize;

    #[test]
    fn window_counts_utf16_and_emoji() {
        // 🍎 is 2 units wide: "a🍎b" is 4 units; a window of 3 stops before 'b'.
        let u = tokenize("a🍎b");
        assert_eq!(window_end(&u, 0, 3, 20), 2);
        assert_eq!(window_end(&u, 0, 2, 20), 1);
        assert_eq!(window_end(&u, 0, 4, 20), 3);
        let u =
            tokenize("[emoji:5ac1bfd5040ab6b5d9a3b0fc:001]x[emoji:5ac1bfd5040ab6b5d9a3b0fc:002]");
        assert_eq!(window_end(&u, 0, 100, 1), 2);
    }

    #[test]
    fn cut_prefers_newline_then_space_then_hard() {
        let u = tokenize("ab\ncd ef");
        // window 0..7 ("ab\ncd e"), more follows: newline at 2 wins over the later space.
        assert_eq!(choose_cut(&u, 0, 7, 0), Cut { end: 2, next: 3 });
        let u = tokenize("abcd efgh");
        assert_eq!(choose_cut(&u, 0, 7, 0), Cut { end: 4, next: 5 });
        let u = tokenize("abcdefgh");
        assert_eq!(choose_cut(&u, 0, 7, 0), Cut { end: 7, next: 7 });
        // Separator right after the window is usable.
        let u = tokenize("abc\nd");
        assert_eq!(choose_cut(&u, 0, 3, 0), Cut { end: 3, next: 4 });
        // min_end rules out an early separator.
        let u = tokenize("a bcdefgh");
        assert_eq!(choose_cut(&u, 0, 7, 4), Cut { end: 7, next: 7 });
    }

    #[test]
    fn hard_cut_keeps_clusters() {
        // e + combining acute: do not break between them.
        let u = tokenize("abe\u{301}x");
        assert_eq!(choose_cut(&u, 0, 3, 0), Cut { end: 2, next: 2 });
        // not right after a ZWJ, nor before one
        let u = tokenize("a👨\u{200D}👩b");
        assert_eq!(choose_cut(&u, 0, 3, 0), Cut { end: 1, next: 1 });
        assert_eq!(choose_cut(&u, 0, 2, 0), Cut { end: 1, next: 1 });
        // flags: 🇯🇵🇺🇸 may break between flags, not inside one
        let u = tokenize("🇯🇵🇺🇸");
        assert_eq!(choose_cut(&u, 0, 3, 0), Cut { end: 2, next: 2 });
        assert_eq!(choose_cut(&u, 0, 2, 0), Cut { end: 2, next: 2 });
        // One giant cluster: break at the window anyway.
        let u = tokenize("e\u{301}\u{301}\u{301}\u{301}");
        assert_eq!(choose_cut(&u, 0, 3, 0), Cut { end: 3, next: 3 });
    }
}
