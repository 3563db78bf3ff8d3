//! A request's JSON body, written directly. The bytes are exactly what `serde_json` makes of
//! [`Body`] (a unit test compares the two on generated requests), so the spool, the client
//! and the dry-run log do not change; it only gets there faster.
//!
//! Why not just serde_json: a body is mostly one mail's text, and serde_json escapes a string
//! one byte at a time (a table lookup and a branch per byte, ~7 instructions). Here a block of
//! 8 bytes is tested at once for the three kinds of byte JSON escapes (`"`, `\` and controls
//! below 0x20) and clean blocks are copied whole, which for Japanese or plain text is nearly
//! every block. The structure around the strings is fixed and small, so writing it by hand is
//! a few lines, not a JSON library.

use crate::compose::message::{Emoji, Message};

use super::client::Body;

impl Body<'_> {
    /// The body as LINE gets it, identical to `serde_json::to_string(self)`.
    pub fn to_json(&self) -> String {
        let (to, messages) = match self {
            Body::Push { to, messages } => (Recipients::One(to), *messages),
            Body::Multicast { to, messages } => (Recipients::Many(to), *messages),
        };
        let text_len: usize = messages.iter().map(|m| if let Message::Text(t) = m { t.text.len() } else { 64 }).sum();
        let mut out = String::with_capacity(64 + text_len + text_len / 8);
        out.push_str("{\"to\":");
        match to {
            Recipients::One(id) => string(&mut out, id),
            Recipients::Many(ids) => {
                out.push('[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(&mut out, id);
                }
                out.push(']');
            }
        }
        out.push_str(",\"messages\":[");
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            message(&mut out, m);
        }
        out.push_str("]}");
        out
    }
}

enum Recipients<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// One message object, fields in the order of their struct (and so of serde's output).
fn message(out: &mut String, m: &Message) {
    match m {
        Message::Text(t) => {
            out.push_str("{\"type\":\"text\",\"text\":");
            string(out, &t.text);
            if !t.emojis.is_empty() {
                out.push_str(",\"emojis\":[");
                for (i, e) in t.emojis.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    emoji(out, e);
                }
                out.push(']');
            }
            out.push('}');
        }
        Message::Image(img) => {
            out.push_str("{\"type\":\"image\",\"originalContentUrl\":");
            string(out, &img.original_content_url);
            out.push_str(",\"previewImageUrl\":");
            string(out, &img.preview_image_url);
            out.push('}');
        }
        Message::Sticker(s) => {
            out.push_str("{\"type\":\"sticker\",\"packageId\":");
            string(out, &s.package_id);
            out.push_str(",\"stickerId\":");
            string(out, &s.sticker_id);
            out.push('}');
        }
    }
}

fn emoji(out: &mut String, e: &Emoji) {
    out.push_str("{\"index\":");
    out.push_str(itoa_u32(e.index, &mut [0; 10]));
    out.push_str(",\"productId\":");
    string(out, &e.product_id);
    out.push_str(",\"emojiId\":");
    string(out, &e.emoji_id);
    out.push('}');
}

fn itoa_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// `s` as a JSON string, escaped as serde_json escapes it: `\"`, `\\`, `\b \t \n \f \r`, other
/// controls below 0x20 as `\u00xx`; everything else (DEL, non-ASCII) as is.
fn string(out: &mut String, s: &str) {
    out.push('"');
    let b = s.as_bytes();
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < b.len() {
        // Skip whole clean blocks of 8.
        if i + 8 <= b.len() {
            let mut block = [0; 8];
            block.copy_from_slice(&b[i..i + 8]);
            if !needs_escape(u64::from_le_bytes(block)) {
                i += 8;
                continue;
            }
        }
        let x = b[i];
        let esc: Option<&str> = match x {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => Some(""),
            _ => None,
        };
        if let Some(esc) = esc {
            // Every byte that needs escaping is ASCII, so `run..i` ends on a char boundary.
            out.push_str(&s[run..i]);
            if esc.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(x >> 4)] as char);
                out.push(HEX[usize::from(x & 0xf)] as char);
            } else {
                out.push_str(esc);
            }
            run = i + 1;
        }
        i += 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Whether any of the 8 bytes in `v` is `"`, `\` or below 0x20 (the classic "has a zero
/// byte" bit trick, applied to `v ^ '"'`, `v ^ '\'` and to `v` for bytes below 0x20). Exact
/// as a yes/no answer for the block; the byte loop then finds which bytes.
fn needs_escape(v: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let below_0x20 = v.wrapping_sub(ONES * 0x20) & !v & HIGH != 0;
    below_0x20 || has_zero(v ^ (ONES * u64::from(b'"'))) || has_zero(v ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::message::{ImageMessage, StickerMessage, TextMessage};
    use crate::compose::route::{Endpoint, Request};

    fn same_as_serde(req: &Request) {
        let body = Body::of(req);
        assert_eq!(body.to_json(), serde_json::to_string(&body).unwrap(), "{req:?}");
    }

    #[test]
    fn every_byte_escapes_as_serde_json_escapes_it() {
        // Each ASCII byte and some multi-byte chars, alone, at every offset of an 8-byte block.
        let mut chars: Vec<String> = (0u8..=0x7f).map(|b| (b as char).to_string()).collect();
        chars.extend(["é", "日", "😀", "\u{2028}", "\u{80}", "\u{9f}", "\u{FEFF}"].map(String::from));
        for c in &chars {
            for pad in 0..10 {
                let text = format!("{}{c}{}", "a".repeat(pad), "日".repeat(pad % 3));
                let req = Request {
                    endpoint: Endpoint::Push { to: "U1".into() },
                    messages: vec![Message::Text(TextMessage { text, emojis: vec![] })],
                };
                same_as_serde(&req);
            }
        }
    }

    #[test]
    fn generated_requests_match_serde_json() {
        let mut x: u32 = 99;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let pieces = ["a", "\"", "\\", "\n", "\r\n", "\t", "\u{1}", "\u{1f}", "\u{7f}", "日本", "😀", "$", "é", " ", "/"];
        for _ in 0..500 {
            let mut messages = Vec::new();
            for _ in 0..1 + next() % 5 {
                let mut text = String::new();
                for _ in 0..next() % 300 {
                    text.push_str(pieces[next() as usize % pieces.len()]);
                }
                let emojis = (0..next() % 3)
                    .map(|i| Emoji { index: next() % 70_000, product_id: format!("p{i}\""), emoji_id: format!("{:03}", next() % 1000) })
                    .collect();
                messages.push(match next() % 5 {
                    0 => Message::Image(ImageMessage {
                        original_content_url: format!("https://h/{text}"),
                        preview_image_url: "https://h/p".into(),
                    }),
                    1 => Message::Sticker(StickerMessage { package_id: "446".into(), sticker_id: text }),
                    _ => Message::Text(TextMessage { text, emojis }),
                });
            }
            let endpoint = if next() % 2 == 0 {
                Endpoint::Push { to: format!("U{}", next()) }
            } else {
                Endpoint::Multicast { to: (0..1 + next() % 4).map(|i| format!("U{i}\\")).collect() }
            };
            same_as_serde(&Request { endpoint, messages });
        }
    }

    #[test]
    fn block_test_flags_every_escaped_byte() {
        for x in 0u8..=0xff {
            for pos in 0..8 {
                let mut block = [b'a'; 8];
                block[pos] = x;
                let flagged = needs_escape(u64::from_le_bytes(block));
                if x < 0x20 || x == b'"' || x == b'\\' {
                    assert!(flagged, "byte {x:#x} at {pos}");
                }
            }
        }
        // And never flags a clean block, or the fast path would rarely be taken.
        assert!(!needs_escape(u64::from_le_bytes(*b"abcdefgh")));
        assert!(!needs_escape(u64::from_le_bytes("日本語x".as_bytes()[..8].try_into().unwrap())));
        let clean: Vec<u8> = (0u8..=0xff).filter(|&x| !(x < 0x20 || x == b'"' || x == b'\\')).collect();
        for start in 0..clean.len() - 8 {
            assert!(!needs_escape(u64::from_le_bytes(clean[start..start + 8].try_into().unwrap())), "{:x?}", &clean[start..start + 8]);
        }
    }
}
