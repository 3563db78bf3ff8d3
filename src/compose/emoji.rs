//! `[emoji:<productId>:<emojiId>]` tokens: turns a text into a sequence of [`Unit`]s where
//! each well-formed token is one unit that will be rendered as a `$` with a LINE emoji
//! entry. Splitting works on units, so a break can never fall inside a token or between a
//! token's `$` and its emoji entry, and a literal `$` of the mail stays plain text.

/// `[emoji:` + 24 hex + `:` + 3 digits + `]`.
const PREFIX: &[u8] = b"[emoji:";
const PRODUCT_LEN: usize = 24;
const EMOJI_LEN: usize = 3;
const TOKEN_LEN: usize = PREFIX.len() + PRODUCT_LEN + 1 + EMOJI_LEN + 1;

/// One indivisible piece of text: a char, or an emoji token that will become `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit<'a> {
    Char(char),
    Emoji {
        product_id: &'a str,
        emoji_id: &'a str,
    },
}

impl Unit<'_> {
    /// The char this unit shows as in the message text.
    pub(super) fn as_char(self) -> char {
        match self {
            Unit::Char(c) => c,
            Unit::Emoji { .. } => '$',
        }
    }

    /// Width in UTF-16 code units, the measure LINE uses for both the 5,000 limit and indexes.
    pub(super) fn utf16_len(self) -> usize {
        self.as_char().len_utf16()
    }

    pub(super) fn is_emoji(self) -> bool {
        matches!(self, Unit::Emoji { .. })
    }

    /// Whitespace that carries no content (an emoji is never blank, even though it is `$`).
    pub(super) fn is_blank(self) -> bool {
        matches!(self, Unit::Char(c) if c.is_whitespace())
    }
}

/// Splits `text` into units, recognising well-formed emoji tokens; anything malformed
/// (wrong lengths, uppercase hex, missing parts, no closing bracket) stays literal text,
/// because guessing at a half-token would send an emoji the user did not ask for.
pub(super) fn tokenize(text: &str) -> Vec<Unit<'_>> {
    let mut units = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some((product_id, emoji_id)) = match_token(rest) {
                units.push(Unit::Emoji {
                    product_id,
                    emoji_id,
                });
                rest = &rest[TOKEN_LEN..];
                continue;
            }
        }
        units.push(Unit::Char(c));
        rest = &rest[c.len_utf8()..];
    }
    units
}

/// If `s` starts with a well-formed token, its product id and emoji id.
fn match_token(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.len() < TOKEN_LEN || !b.starts_with(PREFIX) {
        return None;
    }
    let product = PREFIX.len()..PREFIX.len() + PRODUCT_LEN;
    let sep = product.end;
    let emoji = sep + 1..sep + 1 + EMOJI_LEN;
    let ok = b[product.clone()]
        .iter()
        .all(|&c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && b[sep] == b':'
        && b[emoji.clone()].iter().all(u8::is_ascii_digit)
        && b[emoji.end] == b']';
    // Every byte checked is ASCII, so these byte ranges are char boundaries.
    ok.then(|| (&s[product], &s[emoji]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "5ac1bfd5040ab6b5d9a3b0fc";

    #[test]
    fn well_formed_token_is_one_unit() {
        let text = format!("a[emoji:{P}:001]b");
        assert_eq!(
            tokenize(&text),
            vec![
                Unit::Char('a'),
                Unit::Emoji {
                    product_id: P,
                    emoji_id: "001"
                },
                Unit::Char('b'),
            ]
        );
    }

    #[test]
    fn bracket_before_token() {
        let text = format!("[[emoji:{P}:120]");
        assert_eq!(
            tokenize(&text),
            vec![
                Unit::Char('['),
                Unit::Emoji {
                    product_id: P,
                    emoji_id: "120"
                }
            ]
        );
    }

    #[test]
    fn malformed_tokens_stay_chars() {
        for bad in [
            "[emoji:5AC1BFD5040AB6B5D9A3B0FC:001]",  // uppercase
            "[emoji:5ac1bfd5040ab6b5d9a3b0f:001]",   // 23 chars
            "[emoji:5ac1bfd5040ab6b5d9a3b0fcd:001]", // 25 chars
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:01]",   // 2 digits
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:0001]", // 4 digits
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:00a]",  // not digits
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc:001",   // unclosed
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc]",      // no emoji id
            "[emoji:5ac1bfd5040ab6b5d9a3b0fc;001]",  // wrong separator
            "[Emoji:5ac1bfd5040ab6b5d9a3b0fc:001]",  // prefix case
            "[emoji:]",
            "[emoji:5ac1bfd5040ab6b5d9a3b0gc:001]", // g is not hex
            "[emoji:5ac1bfd5040ab6b5d9a3bあ:001]",  // non-ASCII inside
        ] {
            let units = tokenize(bad);
            assert!(units.iter().all(|u| !u.is_emoji()), "{bad}");
            assert_eq!(units.len(), bad.chars().count(), "{bad}");
        }
    }
}
