//! One mail's messages → the message batches of its requests. LINE takes at most 5
//! messages a request; a mail with more (text, stickers, then its images) is sent as
//! several requests to the same recipients, in order. Each batch then goes through
//! [`route::plan`](super::route::plan) like a single-request mail.

use crate::line::message::Message;
use super::text::MAX_MESSAGES_PER_REQUEST;

/// Splits a mail's messages into request batches of at most 5, keeping their order: the
/// body (text and sticker messages, normally at most 5 from
/// [`body_messages`](super::body::body_messages)) first, then the images, which fill the
/// rest of the first request and go on in follow-up requests. Empty when both are empty.
pub fn batches(body: Vec<Message>, images: Vec<Message>) -> Vec<Vec<Message>> {
    let mut all = body;
    all.extend(images);
    // Moved, not cloned: a text message can be 5,000 chars with 20 emoji entries.
    let mut rest = all.into_iter().peekable();
    let mut out = Vec::new();
    while rest.peek().is_some() {
        out.push(rest.by_ref().take(MAX_MESSAGES_PER_REQUEST).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::message::{ImageMessage, StickerMessage, TextMessage};

    fn text(i: usize) -> Message {
        Message::Text(TextMessage {
            text: format!("t{i}"),
            emojis: Vec::new(),
        })
    }

    fn image(i: usize) -> Message {
        Message::Image(ImageMessage {
            original_content_url: format!("https://gw.example.com/media/{i:032x}.png"),
            preview_image_url: format!("https://gw.example.com/media/{:032x}.png", i + 1000),
        })
    }

    fn sticker() -> Message {
        Message::Sticker(StickerMessage {
            package_id: "446".into(),
            sticker_id: "1988".into(),
        })
    }

    /// Batch sizes, and every message in its original order when the batches are joined.
    fn check(body: Vec<Message>, images: Vec<Message>, sizes: &[usize]) {
        let expected: Vec<Message> = body.iter().chain(&images).cloned().collect();
        let got = batches(body, images);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), sizes);
        assert_eq!(got.concat(), expected);
    }

    #[test]
    fn text_only_is_one_batch() {
        check(vec![text(1)], vec![], &[1]);
        check((0..5).map(text).collect(), vec![], &[5]);
    }

    #[test]
    fn images_fill_the_first_request_then_follow() {
        check(vec![text(1), sticker()], (0..3).map(image).collect(), &[5]);
        check(vec![text(1)], (0..4).map(image).collect(), &[5]);
        check(vec![text(1)], (0..5).map(image).collect(), &[5, 1]);
        check(
            vec![text(1), text(2)],
            (0..12).map(image).collect(),
            &[5, 5, 4],
        );
    }

    #[test]
    fn full_text_sends_all_images_in_follow_ups() {
        check(
            (0..5).map(text).collect(),
            (0..7).map(image).collect(),
            &[5, 5, 2],
        );
        let got = batches((0..5).map(text).collect(), (0..7).map(image).collect());
        assert!(got[0].iter().all(|m| matches!(m, Message::Text(_))));
        assert!(got[1..]
            .iter()
            .flatten()
            .all(|m| matches!(m, Message::Image(_))));
    }

    #[test]
    fn nothing_gives_no_batch() {
        assert_eq!(batches(vec![], vec![]), Vec::<Vec<Message>>::new());
        check(vec![], (0..6).map(image).collect(), &[5, 1]);
    }
}
