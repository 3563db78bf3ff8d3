//! The one entry point of composition: a parsed mail ([`Notice`]), its recipients and what the
//! media host made of its attachments → [`Outbound`], the LINE requests the mail becomes and
//! the facts the gateway logs and decides by. Pure and without I/O; the gateway, the fuzz
//! targets (`fuzzing::check_mime`) and `benches/mime.rs` all call [`compose`], so what they
//! check and measure is what the gateway sends.

use crate::envelope::Recipient;
use crate::line::message::{ImageMessage, Message};
use crate::line::request::Request;
use crate::mail::{Attachment, Notice};

use super::attachments::attachment_list;
use super::batch::batches;
use super::body::body_messages_with_list;
use super::route::plan;
use super::template::Template;
use super::text::MAX_MESSAGES_PER_REQUEST;

/// What a mail becomes before it is sent: its requests, and a few facts for logs and for the
/// spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub requests: Vec<Request>,
    /// The Message-ID without angle brackets, empty without one (retry keys derive from it).
    pub message_id: String,
    /// The decoded subject, and the address answers go to (Reply-To, else From): kept with the
    /// spooled mail so that a follower's answer in LINE can be mailed back (`[replies]`).
    pub subject: String,
    pub reply_to: String,
    /// The text was longer than one request holds; the rest was cut and marked.
    pub truncated: bool,
    /// The headers mark it urgent (`X-Priority: 1`, `Importance: high`, …): never held for
    /// coalescing, and it may use the month's reserve.
    pub urgent: bool,
}

/// A mail's attachments after the media host took its part (the I/O of storing them is the
/// gateway's; this is what it found out).
#[derive(Debug, Default)]
pub struct Hosted {
    /// Image messages for the images, in the mail's order.
    pub images: Vec<ImageMessage>,
    /// The attachments still listed in the text …
    pub listed: Vec<Attachment>,
    /// … and, by the same index, a download link for those stored.
    pub links: Vec<Option<String>>,
}

/// Composes one mail for `rcpts`: the text rendered with `template`, the attachment list (with
/// the download links `hosted` has), text bubbles first and then images, at most 5 messages a
/// request (more go on in follow-up requests to the same recipients, each batch planned like a
/// mail of its own, in order).
///
/// `hosted` is None without a media host: every attachment of `notice`, images included, is
/// then listed by name and size so the reader knows the mail carried it. With Some, the
/// attachments are those in `hosted` (the host took them out of the notice).
pub fn compose(template: &Template, notice: Notice, rcpts: &[Recipient], hosted: Option<Hosted>) -> Outbound {
    let text = template.render(&notice.subject, &notice.text, &notice.from, &notice.to);
    let (subject, reply_to) = (notice.subject.clone(), notice.reply_to.clone());
    let hosted = hosted.unwrap_or_else(|| Hosted { listed: notice.attachments, ..Hosted::default() });
    let list = attachment_list(&hosted.listed, |i, _| hosted.links.get(i).cloned().flatten());
    let body = body_messages_with_list(&text, &list, MAX_MESSAGES_PER_REQUEST);
    let images = hosted.images.into_iter().map(Message::Image).collect();
    let requests = batches(body.messages, images).into_iter().flat_map(|batch| plan(rcpts, batch)).collect();
    Outbound { requests, message_id: notice.message_id, subject, reply_to, truncated: body.truncated, urgent: notice.urgent }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::request::Endpoint;

    fn compose_raw(raw: &[u8], rcpts: &[Recipient]) -> Outbound {
        compose(&Template::default(), crate::mail::parse(raw), rcpts, None)
    }

    #[test]
    fn without_media_attachments_are_listed_and_every_recipient_planned() {
        let raw = b"From: a@example.com\r\nSubject: Report\r\nMessage-ID: <r1@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSales are up.\r\n\
--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=chart.png\r\n\
Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";
        let user = |c: char| Recipient::User(format!("U{}", c.to_string().repeat(32)));
        let one = compose_raw(raw, &[user('a')]);
        assert_eq!(one.message_id, "r1@example.com");
        assert!(!one.truncated);
        assert_eq!(one.requests.len(), 1);
        assert_eq!(one.requests[0].endpoint, Endpoint::Push { to: user('a').id().to_owned() });
        // Without a media host the image is not an image message: it is listed in the text.
        match one.requests[0].messages.as_slice() {
            [Message::Text(t)] => assert_eq!(t.text, "Report\n\nSales are up.\n\n📎 chart.png (5 B)"),
            other => panic!("expected one text message, got {other:?}"),
        }
        let two = compose_raw(raw, &[user('a'), user('b')]);
        assert_eq!(two.requests.len(), 1);
        assert!(matches!(&two.requests[0].endpoint, Endpoint::Multicast { to } if to.len() == 2));
        assert_eq!(two.requests[0].messages, one.requests[0].messages);
    }

    #[test]
    fn message_id_is_read_from_headers() {
        let rcpts = [Recipient::User(format!("U{}", "a".repeat(32)))];
        let composed = |raw: &[u8]| compose_raw(raw, &rcpts);
        assert_eq!(composed(b"Message-ID: <abc@example.com>\r\nSubject: x\r\n\r\nbody").message_id, "abc@example.com");
        assert_eq!(composed(b"Subject: x\r\n\r\nbody").message_id, "");
        // Not a mail (no header section): shown as text, and it has no Message-ID.
        assert_eq!(composed(b"Message-ID <abc@example.com>\r\n").message_id, "");
    }
}
