//! Held mails → as few push requests as LINE's limits allow (issue #17).
//!
//! LINE counts one message per recipient per push request, whether it carries 1 or 5 message
//! objects ("bubbles"), so the spool holds a chat's mail for a few seconds and sends it
//! together. This module owns how: a mail's first text bubble joins the bubble before it when
//! that is text of an earlier mail and the two fit in one message (5,000 UTF-16 units, 20
//! emoji), with [`DIVIDER`] between them; every other bubble keeps its place, and the bubbles
//! go out five to a request, in order. Nothing is dropped. Pure, no I/O.
//!
//! The spool keeps held mail as the request bodies they would have been sent as;
//! [`pack_bodies`] reads them back, packs them and writes the packed requests' bodies.

use crate::line::message::{Emoji, Message, TextMessage};
use crate::line::request::{Body, Endpoint, Request};
use super::split::utf16_len;
use super::text::{MAX_EMOJI_PER_TEXT, MAX_MESSAGES_PER_REQUEST, MAX_TEXT_UTF16};

/// Put between two mails that share a text bubble. Each mail's text starts with its subject
/// line, so a rule on a line of its own is enough to tell them apart; ten box-drawing chars
/// fit a phone's narrowest bubble without wrapping and cost 12 of the 5,000 units.
pub const DIVIDER: &str = "\n──────────\n";

/// One push request: its 1..=5 messages and the held mails (indexes into [`pack`]'s input)
/// whose bubbles it carries, ascending. A mail whose bubbles span two requests is in both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRequest {
    pub messages: Vec<Message>,
    pub mails: Vec<usize>,
}

/// Packs held mails (in arrival order, each as the messages it would have been sent as) into
/// requests. A mail's first bubble, if text, is appended to the previous bubble when that is
/// a text within LINE's limits and the result stays within them; a mail's own later bubbles
/// were split on purpose and images and stickers cannot hold text, so those are never joined.
/// Order is kept exactly. Mails with no messages are skipped; no mails, no requests.
///
/// Text already over a limit, or with an emoji index outside its text, is passed through
/// untouched and nothing is joined to it: LINE will refuse it either way, and joining would
/// only take the next mail down with it. Never panics.
pub fn pack(mails: &[Vec<Message>]) -> Vec<PackedRequest> {
    // Every bubble with the mails in it, in order.
    let mut bubbles: Vec<(Message, Vec<usize>)> = Vec::new();
    // The UTF-16 length of the last bubble when it is a text that another mail may join.
    let mut open: Option<usize> = None;
    for (i, mail) in mails.iter().enumerate() {
        for (k, message) in mail.iter().enumerate() {
            let Message::Text(text) = message else {
                bubbles.push((message.clone(), vec![i]));
                open = None;
                continue;
            };
            let len = joinable_len(text);
            if let (0, Some(prev_len), Some(len), Some((Message::Text(prev), in_it))) =
                (k, open, len, bubbles.last_mut())
            {
                if let Some(joined) = join(prev, prev_len, text, len) {
                    in_it.push(i);
                    open = Some(joined);
                    continue;
                }
            }
            bubbles.push((message.clone(), vec![i]));
            open = len;
        }
    }

    let mut requests = Vec::new();
    let mut rest = bubbles.into_iter().peekable();
    while rest.peek().is_some() {
        let mut request = PackedRequest { messages: Vec::new(), mails: Vec::new() };
        for (message, in_it) in rest.by_ref().take(MAX_MESSAGES_PER_REQUEST) {
            request.messages.push(message);
            // Bubbles never go back to an earlier mail, so a repeat can only be the last one.
            for i in in_it {
                if request.mails.last() != Some(&i) {
                    request.mails.push(i);
                }
            }
        }
        requests.push(request);
    }
    requests
}

/// The UTF-16 length of a text that may be joined to or joined onto: within LINE's limits,
/// and every emoji index inside its own text, so shifting keeps each emoji on its own char.
fn joinable_len(text: &TextMessage) -> Option<usize> {
    let len = utf16_len(&text.text);
    let fits = len <= MAX_TEXT_UTF16 && text.emojis.len() <= MAX_EMOJI_PER_TEXT;
    let inside = text.emojis.iter().all(|e| (e.index as usize) < len);
    (fits && inside).then_some(len)
}

/// Appends the divider and `next` to `prev` if the result fits in one message; its length.
/// Both lengths come from [`joinable_len`], so the shifted indexes stay below 5,000.
fn join(prev: &mut TextMessage, prev_len: usize, next: &TextMessage, next_len: usize) -> Option<usize> {
    let shift = prev_len + utf16_len(DIVIDER);
    let len = shift + next_len;
    if len > MAX_TEXT_UTF16 || prev.emojis.len() + next.emojis.len() > MAX_EMOJI_PER_TEXT {
        return None;
    }
    let shift = u32::try_from(shift).ok()?;
    prev.text.push_str(DIVIDER);
    prev.text.push_str(&next.text);
    // LINE's emoji index is the UTF-16 offset of the `$` in the whole text.
    prev.emojis.extend(next.emojis.iter().map(|e| Emoji { index: e.index + shift, ..e.clone() }));
    Some(len)
}

/// Why held request bodies could not be packed (the spool then leaves them held and logs it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeldBodyError {
    #[error("held request unreadable: {0}")]
    Unreadable(String),
    #[error("held request without a recipient")]
    NoRecipient,
}

/// [`pack`] on held request bodies (the JSON each held mail would have been sent as, all to
/// one chat): the packed requests' bodies, each with the indexes of the held bodies whose
/// bubbles it carries. Every request goes to the first body's recipients (a push stays a push,
/// a multicast keeps its ids).
pub fn pack_bodies(bodies: &[&str]) -> Result<Vec<(String, Vec<usize>)>, HeldBodyError> {
    #[derive(serde::Deserialize)]
    struct Held {
        to: serde_json::Value,
        messages: Vec<Message>,
    }
    let mut endpoint = None;
    let mut mails = Vec::with_capacity(bodies.len());
    for body in bodies {
        let held: Held = serde_json::from_str(body).map_err(|e| HeldBodyError::Unreadable(e.to_string()))?;
        if endpoint.is_none() {
            endpoint = Some(match held.to {
                serde_json::Value::String(to) => Endpoint::Push { to },
                serde_json::Value::Array(ids) => {
                    Endpoint::Multicast { to: ids.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect() }
                }
                _ => return Err(HeldBodyError::NoRecipient),
            });
        }
        mails.push(held.messages);
    }
    let Some(endpoint) = endpoint else { return Ok(Vec::new()) };
    Ok(pack(&mails)
        .into_iter()
        .map(|r| (Body::of(&Request { endpoint: endpoint.clone(), messages: r.messages }).to_json(), r.mails))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::message::{ImageMessage, StickerMessage};

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    fn text(s: &str) -> Message {
        Message::Text(TextMessage { text: s.to_string(), emojis: Vec::new() })
    }

    /// A text with an emoji on every `$`, ids `{tag}-0`, `{tag}-1`, … in order.
    fn emoji_text(s: &str, tag: &str) -> Message {
        let mut emojis = Vec::new();
        let mut at = 0;
        for c in s.chars() {
            if c == '$' {
                emojis.push(Emoji {
                    index: at as u32,
                    product_id: "5ac1bfd5040ab15980c9b435".into(),
                    emoji_id: format!("{tag}-{}", emojis.len()),
                });
            }
            at += c.len_utf16();
        }
        Message::Text(TextMessage { text: s.to_string(), emojis })
    }

    fn image(i: usize) -> Message {
        Message::Image(ImageMessage {
            original_content_url: format!("https://gw.example.com/media/{i:032x}.png"),
            preview_image_url: format!("https://gw.example.com/media/{:032x}.png", i + 1000),
        })
    }

    fn sticker() -> Message {
        Message::Sticker(StickerMessage { package_id: "446".into(), sticker_id: "1988".into() })
    }

    fn as_text(m: &Message) -> &TextMessage {
        match m {
            Message::Text(t) => t,
            other => panic!("not a text: {other:?}"),
        }
    }

    fn flat(requests: &[PackedRequest]) -> Vec<Message> {
        requests.iter().flat_map(|r| r.messages.iter().cloned()).collect()
    }

    /// Every emoji index is the UTF-16 offset of a `$`.
    fn assert_emoji_on_dollars(t: &TextMessage) {
        let text: Vec<u16> = t.text.encode_utf16().collect();
        for e in &t.emojis {
            assert_eq!(text.get(e.index as usize), Some(&(b'$' as u16)), "{e:?} in {:?}", t.text);
        }
    }

    /// The inverse of joining: each text cut at the dividers, each piece with the emoji that
    /// fall in it, indexes counted from the piece's start again.
    fn unpack(messages: &[Message]) -> Vec<Message> {
        let mut out = Vec::new();
        for m in messages {
            let Message::Text(t) = m else {
                out.push(m.clone());
                continue;
            };
            let mut start = 0;
            for piece in t.text.split(DIVIDER) {
                let end = start + units(piece) as u32;
                let emojis = t.emojis.iter().filter(|e| (start..end).contains(&e.index));
                let emojis = emojis.map(|e| Emoji { index: e.index - start, ..e.clone() }).collect();
                out.push(Message::Text(TextMessage { text: piece.to_string(), emojis }));
                start = end + units(DIVIDER) as u32;
            }
        }
        out
    }

    #[test]
    fn twenty_small_mails_share_one_bubble() {
        let texts: Vec<String> = (0..20).map(|i| format!("Subject: backup {i} done\nexit 0")).collect();
        let mails: Vec<Vec<Message>> = texts.iter().map(|t| vec![text(t)]).collect();
        let requests = pack(&mails);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].messages.len(), 1);
        assert_eq!(requests[0].mails, (0..20).collect::<Vec<_>>());
        let got = &as_text(&requests[0].messages[0]).text;
        assert_eq!(got.matches(DIVIDER).count(), 19);
        // Every mail's text, in order, and nothing else but dividers.
        let mut rest = got.as_str();
        for (i, t) in texts.iter().enumerate() {
            rest = rest.strip_prefix(t.as_str()).unwrap_or_else(|| panic!("mail {i} in {got:?}"));
            if i < 19 {
                rest = rest.strip_prefix(DIVIDER).unwrap();
            }
        }
        assert_eq!(rest, "");
    }

    /// A subject line, then '日' (1 unit, 3 bytes) and '😀' (2 units, 4 bytes) to `n` units.
    fn filler(n: usize) -> String {
        let mut s = String::from("Subject: big\n");
        s.push_str(&"日".repeat(1000));
        let rest = n - units(&s);
        s.push_str(&"😀".repeat(rest / 2));
        s.push_str(&"日".repeat(rest % 2));
        assert_eq!(units(&s), n);
        s
    }

    #[test]
    fn joins_only_within_5000_utf16_units() {
        let small = "Subject: small";
        let room = 5000 - units(DIVIDER) - units(small);
        // Exactly full: joined (counting bytes would refuse this one).
        let requests = pack(&[vec![text(&filler(room))], vec![text(small)]]);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].messages.len(), 1);
        assert_eq!(units(&as_text(&requests[0].messages[0]).text), 5000);
        // One unit more: not joined, both unchanged (counting chars would join this one).
        for mails in [
            vec![vec![text(&filler(room + 1))], vec![text(small)]],
            vec![vec![text(small)], vec![text(&filler(room + 1))]],
        ] {
            let requests = pack(&mails);
            assert_eq!(requests.len(), 1);
            assert_eq!(requests[0].messages, mails.concat());
            assert_eq!(requests[0].mails, [0, 1]);
        }
    }

    #[test]
    fn joins_at_most_20_emoji_and_shifts_their_indexes() {
        // 3 emoji a mail, after non-BMP chars so UTF-16 and char offsets differ.
        let mail = |i| vec![emoji_text(&format!("Subject: 😀{i}\n$ 日 $ 😀😀 $"), &format!("{i}"))];
        let mails: Vec<Vec<Message>> = (0..7).map(mail).collect();
        let requests = pack(&mails);
        assert_eq!(requests.len(), 1);
        let bubbles: Vec<&TextMessage> = requests[0].messages.iter().map(as_text).collect();
        assert_eq!(bubbles.iter().map(|t| t.emojis.len()).collect::<Vec<_>>(), [18, 3]);
        for t in &bubbles {
            assert_emoji_on_dollars(t);
        }
        let ids: Vec<&str> = bubbles.iter().flat_map(|t| &t.emojis).map(|e| e.emoji_id.as_str()).collect();
        let expected: Vec<String> = (0..7).flat_map(|i| (0..3).map(move |k| format!("{i}-{k}"))).collect();
        assert_eq!(ids, expected);
        assert_eq!(unpack(&requests[0].messages), mails.concat());

        // Exactly 20: one bubble.
        let mails: Vec<Vec<Message>> =
            (0..4).map(|i| vec![emoji_text("$$ 😀 $$ $", &format!("{i}"))]).collect();
        let requests = pack(&mails);
        assert_eq!(requests[0].messages.len(), 1);
        assert_eq!(as_text(&requests[0].messages[0]).emojis.len(), 20);
        assert_emoji_on_dollars(as_text(&requests[0].messages[0]));
    }

    #[test]
    fn images_and_stickers_keep_their_bubbles_and_the_order() {
        for mails in [
            vec![vec![text("Subject: a"), image(1)], vec![text("Subject: b")]],
            vec![vec![text("Subject: a"), sticker()], vec![text("Subject: b")]],
            vec![vec![text("Subject: a")], vec![image(1), text("Subject: b")]],
        ] {
            let requests = pack(&mails);
            assert_eq!(requests.len(), 1);
            assert_eq!(requests[0].messages, mails.concat());
            assert_eq!(requests[0].mails, [0, 1]);
        }
    }

    #[test]
    fn a_mail_keeps_its_own_bubbles_and_the_next_joins_its_last() {
        let mails = vec![
            vec![text("Subject: a\npart 1"), text("part 2")],
            vec![text("Subject: b")],
            vec![sticker()],
        ];
        let requests = pack(&mails);
        let joined = format!("part 2{DIVIDER}Subject: b");
        assert_eq!(requests[0].messages, [text("Subject: a\npart 1"), text(&joined), sticker()]);
        assert_eq!(requests[0].mails, [0, 1, 2]);
    }

    #[test]
    fn more_than_five_bubbles_go_in_more_requests() {
        let mails: Vec<Vec<Message>> = (0..4).map(|i| vec![text(&format!("Subject: {i}")), image(i)]).collect();
        let requests = pack(&mails);
        assert_eq!(requests.iter().map(|r| r.messages.len()).collect::<Vec<_>>(), [5, 3]);
        assert_eq!(flat(&requests), mails.concat());
        assert_eq!(requests[0].mails, [0, 1, 2]);
        assert_eq!(requests[1].mails, [2, 3]);

        let mails = vec![(0..12).map(image).collect::<Vec<_>>(), vec![text("Subject: after")]];
        let requests = pack(&mails);
        assert_eq!(requests.iter().map(|r| r.messages.len()).collect::<Vec<_>>(), [5, 5, 3]);
        assert_eq!(flat(&requests), mails.concat());
        let mails_of: Vec<&[usize]> = requests.iter().map(|r| r.mails.as_slice()).collect();
        assert_eq!(mails_of, [&[0][..], &[0], &[0, 1]]);
    }

    #[test]
    fn empty_input_and_empty_mails() {
        assert_eq!(pack(&[]), []);
        assert_eq!(pack(&[vec![], vec![]]), []);
        let requests = pack(&[vec![], vec![text("a")], vec![], vec![text("b")]]);
        let joined = text(&format!("a{DIVIDER}b"));
        assert_eq!(requests, [PackedRequest { messages: vec![joined], mails: vec![1, 3] }]);
    }

    #[test]
    fn text_over_the_limits_passes_through_and_takes_nothing() {
        let long = text(&"x".repeat(6000));
        let many = emoji_text(&"$".repeat(21), "m");
        let mut stray = emoji_text("a$", "s");
        if let Message::Text(t) = &mut stray {
            t.emojis[0].index = 100;
        }
        let mut huge = emoji_text("$", "h");
        if let Message::Text(t) = &mut huge {
            t.emojis[0].index = u32::MAX;
        }
        for bad in [long, many, stray, huge] {
            for mails in [vec![vec![bad.clone()], vec![text("b")]], vec![vec![text("a")], vec![bad.clone()]]] {
                let requests = pack(&mails);
                assert_eq!(requests.len(), 1);
                assert_eq!(requests[0].messages, mails.concat());
            }
        }
    }

    /// A small deterministic generator (an LCG), so no crate is needed and failures repeat.
    struct Gen(u64);

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }

        /// A text within LINE's limits, mostly short, sometimes nearly full; emoji on `$`s.
        fn text(&mut self, tag: &str) -> Message {
            let target = match self.below(4) {
                0 => self.below(5),
                1 | 2 => self.below(300),
                _ => 4000 + self.below(1001),
            };
            let mut s = String::new();
            let (mut len, mut dollars) = (0, 0);
            loop {
                // `$` rarely, or the 20-emoji limit alone would keep most texts apart.
                let c = if self.below(50) == 0 { '$' } else { ['a', ' ', '\n', '日', '😀'][self.below(5)] };
                let c = if c == '$' && dollars == MAX_EMOJI_PER_TEXT { 'z' } else { c };
                if len + c.len_utf16() > target {
                    break;
                }
                len += c.len_utf16();
                dollars += usize::from(c == '$');
                s.push(c);
            }
            emoji_text(&s, tag)
        }

        /// Mostly what composing gives (text bubbles, then images or stickers), sometimes
        /// any mixture or nothing.
        fn mails(&mut self) -> Vec<Vec<Message>> {
            (0..1 + self.below(12))
                .map(|i| {
                    let any = |g: &mut Self, k| match g.below(4) {
                        0 => image(i * 10 + k),
                        1 => sticker(),
                        _ => g.text(&format!("{i}.{k}")),
                    };
                    match self.below(10) {
                        0 => Vec::new(),
                        1 | 2 => (0..1 + self.below(4)).map(|k| any(self, k)).collect(),
                        3 | 4 => {
                            let mut mail = vec![self.text(&format!("{i}.0")), self.text(&format!("{i}.1"))];
                            mail.extend((0..self.below(3)).map(|k| image(i * 10 + k)));
                            mail
                        }
                        _ => vec![self.text(&format!("{i}.0"))],
                    }
                })
                .collect()
        }
    }

    #[test]
    fn generated_mails_pack_within_the_limits_and_lose_nothing() {
        let mut g = Gen(17);
        let (mut bubbles_in, mut bubbles_out) = (0, 0);
        for case in 0..400 {
            let mails = g.mails();
            let requests = pack(&mails);
            bubbles_in += mails.iter().map(Vec::len).sum::<usize>();
            bubbles_out += requests.iter().map(|r| r.messages.len()).sum::<usize>();
            for r in &requests {
                assert!((1..=5).contains(&r.messages.len()), "case {case}");
                for t in r.messages.iter().filter(|m| matches!(m, Message::Text(_))).map(as_text) {
                    assert!(units(&t.text) <= 5000, "case {case}");
                    assert!(t.emojis.len() <= 20, "case {case}");
                    assert_emoji_on_dollars(t);
                }
                assert!(r.mails.windows(2).all(|w| w[0] < w[1]), "case {case}");
            }
            // Cut at the dividers, the output is exactly the input, emoji and all, in order.
            assert_eq!(unpack(&flat(&requests)), mails.concat(), "case {case}");
            // Every mail with messages is accounted for, and only those.
            let mut counted: Vec<usize> = requests.iter().flat_map(|r| r.mails.iter().copied()).collect();
            counted.dedup();
            let sent: Vec<usize> = (0..mails.len()).filter(|&i| !mails[i].is_empty()).collect();
            assert_eq!(counted, sent, "case {case}");
        }
        // The generator does make mails that share bubbles, and ones that cannot.
        assert!(bubbles_out < bubbles_in * 9 / 10, "{bubbles_out} of {bubbles_in}");
    }

    #[test]
    fn held_bodies_are_packed_into_one_request_to_the_same_recipients() {
        let body = |endpoint: Endpoint, t: &str| Body::of(&Request { endpoint, messages: vec![text(t)] }).to_json();
        let users = vec![format!("U{}", "a".repeat(32)), format!("U{}", "b".repeat(32))];
        let multi = |t| body(Endpoint::Multicast { to: users.clone() }, t);
        let held = [multi("Disk full\n\nweb-1"), multi("Disk full\n\nweb-2")];
        let packed = pack_bodies(&[&held[0], &held[1]]).unwrap();
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].1, [0, 1]);
        let v: serde_json::Value = serde_json::from_str(&packed[0].0).unwrap();
        assert_eq!(v["to"], serde_json::json!(users));
        let bubble = v["messages"][0]["text"].as_str().unwrap();
        assert_eq!(bubble, format!("Disk full\n\nweb-1{DIVIDER}Disk full\n\nweb-2"));
        // A push stays a push.
        let to = users[0].clone();
        let push = body(Endpoint::Push { to: to.clone() }, "x");
        let v: serde_json::Value = serde_json::from_str(&pack_bodies(&[&push]).unwrap()[0].0).unwrap();
        assert_eq!(v["to"], serde_json::json!(to));
        assert!(matches!(pack_bodies(&["not json"]), Err(HeldBodyError::Unreadable(_))));
        assert_eq!(pack_bodies(&[r#"{"to":5,"messages":[]}"#]), Err(HeldBodyError::NoRecipient));
        assert_eq!(pack_bodies(&[]), Ok(Vec::new()));
    }
}
