//! `[emoji:<productId>:<emojiId>]` tokens: finds the well-formed ones in a text. Each becomes a
//! `$` with a LINE emoji entry; the splitter treats a token as one indivisible unit, so a
//! break can never fall inside a token or between a token's `$` and its emoji entry, and a
//! literal `$` of the mail stays plain text.

/// `[emoji:` + 24 hex + `:` + 3 digits + `]`.
const PREFIX: &[u8] = b"[emoji:";
const PRODUCT_LEN: usize = 24;
const EMOJI_LEN: usize = 3;
pub(super) const TOKEN_LEN: usize = PREFIX.len() + PRODUCT_LEN + 1 + EMOJI_LEN + 1;

/// A well-formed token of a text: bytes `start..start + TOKEN_LEN`, all ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub start: usize,
    pub product_id: &'a str,
    pub emoji_id: &'a str,
}

impl Token<'_> {
    pub(super) fn end(&self) -> usize {
        self.start + TOKEN_LEN
    }
}

/// The well-formed tokens of `text`, in order and never overlapping; anything malformed
/// (wrong lengths, uppercase hex, missing parts, no closing bracket) stays literal text,
/// because guessing at a half-token would send an emoji the user did not ask for.
pub(super) fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    // `from` is always a char boundary: 0, just after a `[`, or just after a token (ASCII).
    while let Some(i) = text[from..].find('[') {
        let start = from + i;
        match match_token(&text[start..]) {
            Some((product_id, emoji_id)) => {
                out.push(Token { start, product_id, emoji_id });
                from = start + TOKEN_LEN;
            }
            None => from = start + 1,
        }
    }
    out
}

/// If `s` starts with a well-formed token, its product id and emoji id.
pub(super) fn match_token(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.len() < TOKEN_LEN || !b.starts_with(PREFIX) {
        return None;
    }
    let product = PREFIX.len()..PREFIX.len() + PRODUCT_LEN;
    let sep = product.end;
    let emoji = sep + 1..sep + 1 + EMOJI_LEN;
    let ok = b[product.clone()].iter().all(|&c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
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
    fn well_formed_token_is_found_with_its_ids() {
        let text = format!("a[emoji:{P}:001]b");
        assert_eq!(tokens(&text), vec![Token { start: 1, product_id: P, emoji_id: "001" }]);
        assert_eq!(tokens(&text)[0].end(), text.len() - 1);
    }

    #[test]
    fn bracket_before_token_and_tokens_back_to_back() {
        let text = format!("[[emoji:{P}:120][emoji:{P}:121]");
        let found = tokens(&text);
        assert_eq!(found.iter().map(|t| (t.start, t.emoji_id)).collect::<Vec<_>>(), vec![(1, "120"), (1 + TOKEN_LEN, "121")]);
    }

    #[test]
    fn after_multibyte_text_offsets_are_bytes() {
        let text = format!("日本[emoji:{P}:007]");
        assert_eq!(tokens(&text), vec![Token { start: "日本".len(), product_id: P, emoji_id: "007" }]);
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
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
            assert_eq!(tokens(bad), vec![], "{bad}");
        }
    }
}
