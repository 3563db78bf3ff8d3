//! Where to break a long text: the window that fits LINE's limits, and the break point
//! inside it (last newline, else last whitespace, else a hard break at a unit boundary that
//! does not tear a visible character apart).
//!
//! The text is addressed by byte offsets, and [`Units`] knows where its emoji tokens are: a
//! unit is a char, or a whole token that will show as `$`. Every offset handed out is a unit
//! boundary, so a surrogate pair or an emoji token can never be split. Plain runs between
//! tokens are measured a chunk at a time from their bytes, not char by char: a mail's text is
//! thousands of chars and only the few at a break need a closer look.

use super::emoji::{tokens, Token, TOKEN_LEN};

pub(super) const ZWJ: char = '\u{200D}';

/// A chosen break: the chunk is `start..end`, the next chunk starts at `next`. `next` is past
/// the separator when the break consumed one (the newline or space is replaced by the
/// message boundary), else `end`. Byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cut {
    pub end: usize,
    pub next: usize,
}

/// A text and its emoji tokens: the sequence of units the splitter works on.
pub(super) struct Units<'a> {
    text: &'a str,
    tokens: Vec<Token<'a>>,
}

impl<'a> Units<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Units { text, tokens: tokens(text) }
    }

    pub(super) fn text(&self) -> &'a str {
        self.text
    }

    /// The tokens that start in `start..end`.
    pub(super) fn tokens_in(&self, start: usize, end: usize) -> &[Token<'a>] {
        let lo = self.tokens.partition_point(|t| t.start < start);
        let hi = self.tokens.partition_point(|t| t.start < end);
        &self.tokens[lo..hi.max(lo)]
    }

    fn token_starting_at(&self, pos: usize) -> Option<&Token<'a>> {
        self.tokens.get(self.tokens.partition_point(|t| t.start < pos)).filter(|t| t.start == pos)
    }

    fn token_ending_at(&self, pos: usize) -> Option<&Token<'a>> {
        self.tokens.get(self.tokens.partition_point(|t| t.end() < pos)).filter(|t| t.end() == pos)
    }

    /// The char the unit at `pos` shows as (`$` for a token); None at the end.
    pub(super) fn char_at(&self, pos: usize) -> Option<char> {
        match self.token_starting_at(pos) {
            Some(_) => Some('$'),
            None => self.text[pos..].chars().next(),
        }
    }

    /// The char the unit ending at `pos` shows as; None at the start.
    fn char_before(&self, pos: usize) -> Option<char> {
        match self.token_ending_at(pos) {
            Some(_) => Some('$'),
            None => self.text[..pos].chars().next_back(),
        }
    }

    /// Where the unit starting at `pos` ends.
    pub(super) fn unit_end(&self, pos: usize) -> usize {
        match self.token_starting_at(pos) {
            Some(t) => t.end(),
            None => pos + self.text[pos..].chars().next().map_or(0, char::len_utf8),
        }
    }

    /// Where the unit ending at `pos` starts.
    fn unit_start_before(&self, pos: usize) -> usize {
        match self.token_ending_at(pos) {
            Some(t) => t.start,
            None => pos - self.text[..pos].chars().next_back().map_or(0, char::len_utf8),
        }
    }

    /// How many units `start..end` holds.
    pub(super) fn unit_count(&self, start: usize, end: usize) -> usize {
        let chars = self.text.as_bytes()[start..end].iter().filter(|&&b| !is_continuation(b)).count();
        // A token is TOKEN_LEN ASCII chars and one unit.
        chars - self.tokens_in(start, end).len() * (TOKEN_LEN - 1)
    }

    /// The offset `n` units after `start` (or the end of the text).
    pub(super) fn nth_unit(&self, start: usize, n: usize) -> usize {
        let mut pos = start;
        for _ in 0..n {
            if pos >= self.text.len() {
                break;
            }
            pos = self.unit_end(pos);
        }
        pos
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xc0 == 0x80
}

/// Length of `s` in UTF-16 code units, LINE's measure, from the bytes: one unit per char
/// (every byte but continuation bytes) and one more per 4-byte char (a surrogate pair).
/// Counted in blocks small enough for a `u8` sum, which the compiler turns into SIMD.
pub(super) fn utf16_len(s: &str) -> usize {
    s.as_bytes()
        .chunks(127)
        .map(|block| {
            let n: u8 = block.iter().map(|&b| u8::from(!is_continuation(b)) + u8::from(b >= 0xf0)).sum();
            usize::from(n)
        })
        .sum()
}

/// The longest prefix of `run` (plain text, no token) made of whole chars and at most
/// `room` UTF-16 units wide: (its length in bytes, its width).
fn fit_run(run: &str, room: usize) -> (usize, usize) {
    // A char is never wider in UTF-16 units than in bytes.
    if run.len() <= room {
        return (run.len(), utf16_len(run));
    }
    let (mut pos, mut width) = (0, 0);
    while pos < run.len() {
        // A block ending on a char boundary, measured whole when it fits.
        let mut end = (pos + 64).min(run.len());
        while !run.is_char_boundary(end) {
            end -= 1;
        }
        let w = utf16_len(&run[pos..end]);
        if width + w > room {
            for c in run[pos..end].chars() {
                if width + c.len_utf16() > room {
                    return (pos, width);
                }
                width += c.len_utf16();
                pos += c.len_utf8();
            }
            return (pos, width);
        }
        width += w;
        pos = end;
    }
    (pos, width)
}

/// The largest end `w` such that the units of `start..w` are at most `max_utf16` UTF-16 units
/// wide and hold at most `max_emoji` emoji. Always `> start` when `start` is not the end and
/// `max_utf16 >= 2`, `max_emoji >= 1` (every unit is 1 or 2 wide), so callers always progress.
pub(super) fn window_end(units: &Units, start: usize, max_utf16: usize, max_emoji: usize) -> usize {
    let text = units.text;
    let mut width = 0;
    let mut emoji = 0;
    let mut pos = start;
    let mut next = units.tokens.partition_point(|t| t.start < start);
    loop {
        let run_end = units.tokens.get(next).map_or(text.len(), |t| t.start);
        let (len, w) = fit_run(&text[pos..run_end], max_utf16 - width);
        pos += len;
        width += w;
        if pos < run_end {
            return pos;
        }
        let Some(token) = units.tokens.get(next) else { return pos };
        // A token shows as one `$`: one unit wide, and one of the message's emoji.
        if width + 1 > max_utf16 || emoji == max_emoji {
            return pos;
        }
        width += 1;
        emoji += 1;
        pos = token.end();
        next += 1;
    }
}

/// Chooses the break for a chunk starting at `start` whose window ends at `w` (from
/// [`window_end`]). A separator at `w` itself is allowed: it is dropped, so the chunk still
/// fits. Separator breaks must leave the chunk ending at or after `min_end`; the truncating
/// caller uses that to avoid throwing away most of the last message for the sake of a tidy
/// break.
pub(super) fn choose_cut(units: &Units, start: usize, w: usize, min_end: usize) -> Cut {
    let text = units.text;
    if w >= text.len() {
        return Cut { end: text.len(), next: text.len() };
    }
    let lo = min_end.max(units.unit_end(start));
    if lo <= w {
        // Tokens hold no whitespace, so a separator found in the raw text is a unit of its own.
        // A newline is one byte: any '\n' byte in lo..=w starts a unit in that range.
        if let Some(i) = text.as_bytes()[lo..=w].iter().rposition(|&b| b == b'\n') {
            return Cut { end: lo + i, next: lo + i + 1 };
        }
        let through_w = units.unit_end(w);
        if let Some((i, c)) = text[lo..through_w].char_indices().rev().find(|&(_, c)| is_break_space(c)) {
            return Cut { end: lo + i, next: lo + i + c.len_utf8() };
        }
    }
    // Hard break: step back over a grapheme's tail when we can; if the whole window is one
    // giant cluster (say, thousands of combining marks), break at `w` anyway: a message
    // LINE accepts beats a perfect one it rejects.
    let mut b = w;
    while b > lo && !safe_boundary(units, b) {
        b = units.unit_start_before(b);
    }
    if !safe_boundary(units, b) {
        b = w;
    }
    Cut { end: b, next: b }
}

/// Whitespace we may break at. No-break spaces are excluded: the writer asked for them not
/// to be broken.
pub(super) fn is_break_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{00A0}' | '\u{2007}' | '\u{202F}')
}

/// Whether breaking between the unit ending at `b` and the one starting there keeps visible
/// characters whole. This is an approximation of grapheme clusters without a Unicode table
/// (no new crates): not after a ZWJ, not before a combining mark / variation selector / emoji
/// modifier / tag / ZWJ, and not between the two regional indicators of a flag.
fn safe_boundary(units: &Units, b: usize) -> bool {
    let (Some(prev), Some(next)) = (units.char_before(b), units.char_at(b)) else {
        return true;
    };
    if prev == ZWJ || is_extend(next) {
        return false;
    }
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        // Flags pair up from the start of a run: an odd run length before `b` is mid-flag.
        // (A token ends in `]`, never an indicator, so the raw text gives the same run.)
        let run = units.text[..b].chars().rev().take_while(|&c| is_regional_indicator(c)).count();
        return run % 2 == 0;
    }
    true
}

/// Chars that attach to the char before them.
pub(super) fn is_extend(c: char) -> bool {
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

pub(super) fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "[emoji:5ac1bfd5040ab6b5d9a3b0fc:001]";

    /// Byte offset of the `n`th char of `s` (units without tokens are chars).
    fn at(s: &str, n: usize) -> usize {
        s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
    }

    #[test]
    fn utf16_len_counts_surrogate_pairs_twice() {
        for s in ["", "a", "é", "日本語", "😀", "a😀b日", &"x😀日é".repeat(100)] {
            assert_eq!(utf16_len(s), s.encode_utf16().count(), "{s}");
        }
    }

    #[test]
    fn window_counts_utf16_and_emoji() {
        // 🍎 is 2 units wide: "a🍎b" is 4 units; a window of 3 stops before 'b'.
        let s = "a🍎b";
        let u = Units::new(s);
        assert_eq!(window_end(&u, 0, 3, 20), at(s, 2));
        assert_eq!(window_end(&u, 0, 2, 20), at(s, 1));
        assert_eq!(window_end(&u, 0, 4, 20), s.len());
        let s = format!("{TOKEN}x{TOKEN}");
        let u = Units::new(&s);
        assert_eq!(window_end(&u, 0, 100, 1), TOKEN.len() + 1);
        assert_eq!(window_end(&u, 0, 2, 20), TOKEN.len() + 1);
        assert_eq!(window_end(&u, 0, 3, 20), s.len());
        // Long plain runs are measured in blocks; the limit still lands on the exact char.
        let s = "日本語😀".repeat(500);
        let u = Units::new(&s);
        for max in [1, 2, 3, 4, 5, 63, 64, 65, 100, 999, 2499, 2500, 2501] {
            let w = window_end(&u, 0, max, 20);
            assert!(utf16_len(&s[..w]) <= max && (w == s.len() || utf16_len(&s[..u.unit_end(w)]) > max), "max {max}");
        }
    }

    #[test]
    fn cut_prefers_newline_then_space_then_hard() {
        let cut = |s: &str, w: usize, min_end: usize| choose_cut(&Units::new(s), 0, w, min_end);
        // window "ab\ncd e", more follows: newline at 2 wins over the later space.
        assert_eq!(cut("ab\ncd ef", 7, 0), Cut { end: 2, next: 3 });
        assert_eq!(cut("abcd efgh", 7, 0), Cut { end: 4, next: 5 });
        assert_eq!(cut("abcdefgh", 7, 0), Cut { end: 7, next: 7 });
        // Separator right after the window is usable.
        assert_eq!(cut("abc\nd", 3, 0), Cut { end: 3, next: 4 });
        // min_end rules out an early separator.
        assert_eq!(cut("a bcdefgh", 7, 4), Cut { end: 7, next: 7 });
        // An ideographic space is a 3-byte separator.
        let s = "日本\u{3000}語です";
        assert_eq!(cut(s, at(s, 4), 0), Cut { end: at(s, 2), next: at(s, 3) });
    }

    #[test]
    fn hard_cut_keeps_clusters_and_tokens() {
        let cut = |s: &str, w: usize| choose_cut(&Units::new(s), 0, at(s, w), 0);
        // e + combining acute: do not break between them.
        let s = "abe\u{301}x";
        assert_eq!(cut(s, 3), Cut { end: at(s, 2), next: at(s, 2) });
        // not right after a ZWJ, nor before one
        let s = "a👨\u{200D}👩b";
        assert_eq!(cut(s, 3), Cut { end: at(s, 1), next: at(s, 1) });
        assert_eq!(cut(s, 2), Cut { end: at(s, 1), next: at(s, 1) });
        // flags: 🇯🇵🇺🇸 may break between flags, not inside one
        let s = "🇯🇵🇺🇸";
        assert_eq!(cut(s, 3), Cut { end: at(s, 2), next: at(s, 2) });
        assert_eq!(cut(s, 2), Cut { end: at(s, 2), next: at(s, 2) });
        // One giant cluster: break at the window anyway.
        let s = "e\u{301}\u{301}\u{301}\u{301}";
        assert_eq!(cut(s, 3), Cut { end: at(s, 3), next: at(s, 3) });
        // A combining mark after a token: step back over the whole token, never into it.
        let s = format!("ab{TOKEN}\u{301}c");
        let u = Units::new(&s);
        let w = 2 + TOKEN.len();
        assert_eq!(choose_cut(&u, 0, w, 0), Cut { end: 2, next: 2 });
    }

    #[test]
    fn unit_counting_treats_a_token_as_one() {
        let s = format!("日{TOKEN}x😀");
        let u = Units::new(&s);
        assert_eq!(u.unit_count(0, s.len()), 4);
        assert_eq!(u.nth_unit(0, 1), "日".len());
        assert_eq!(u.nth_unit(0, 2), "日".len() + TOKEN.len());
        assert_eq!(u.nth_unit(0, 9), s.len());
        assert_eq!(u.char_at("日".len()), Some('$'));
        assert_eq!(u.char_before("日".len() + TOKEN.len()), Some('$'));
    }
}
