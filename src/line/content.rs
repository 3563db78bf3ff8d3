//! What a follower sent as a photo, video, audio or file, as LINE's content API
//! (`GET /v2/bot/message/{messageId}/content` on `api-data.line.me`) hands it out, and why it
//! could not be had. The fetch itself is [`LineClient::content`](super::LineClient::content);
//! what each answer means is decided here, without a server, so every branch is unit-tested.

/// The bytes of one message's content and the type LINE gave them (`Content-Type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub bytes: Vec<u8>,
    /// `application/octet-stream` when LINE named none.
    pub content_type: String,
}

/// Why no content came back. The answer's sender decides what to do with each kind: drop the
/// file with a line saying so, or try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Larger than the caller takes (`[replies] max_attachment_bytes`); reading stopped there.
    #[error("the content is larger than {limit} bytes; raise [replies] max_attachment_bytes to take it")]
    TooLarge { limit: u64 },
    /// LINE will never hand it out: gone (content is kept for a limited time), not a message of
    /// this channel, or not an id at all. Trying again does not help.
    #[error("LINE has no content for this message: {0}")]
    Permanent(String),
    /// Worth trying again later: no connection, LINE's 5xx or 429, a token LINE refused (the
    /// operator fixes that), or 202 while LINE is still preparing a video or audio.
    #[error("cannot fetch the content now, will try again: {0}")]
    Retry(String),
}

/// The MIME type for content whose answer named none.
pub const UNKNOWN_TYPE: &str = "application/octet-stream";

/// What a status other than 200 means for a content request. `None` for 200: the body is the
/// content. `message` is LINE's error text (see [`error_message`](super::outcome::error_message)).
pub fn refusal(status: u16, message: &str) -> Option<ContentError> {
    let with = |what: &str| if message.is_empty() { format!("{what} ({status})") } else { format!("{what} ({status}: {message})") };
    Some(match status {
        200 => return None,
        // LINE answers 202 while a video or audio is being prepared (the content API reference,
        // "Verify video or audio preparation status"): the same request succeeds later.
        202 => ContentError::Retry(format!("LINE is still preparing the video or audio ({status})")),
        // Anything else that is "fine" has no documented body: not content we can use.
        201..=299 => ContentError::Permanent(with("LINE answered without content")),
        401 | 403 => ContentError::Retry(with("LINE refused the channel access token; check the [line] token settings")),
        // Timeouts and rate limits pass; the content is still there (for a while).
        408 | 429 => ContentError::Retry(with("LINE asks to slow down")),
        500..=599 => ContentError::Retry(with("LINE's content API failed")),
        // 400 (an id LINE does not take), 404 (expired or not this channel's), 410 and the rest.
        _ => ContentError::Permanent(with("LINE refused the request")),
    })
}

/// Whether `id` is a message id as LINE gives them (digits only). It goes into a URL path, so
/// anything else is refused before a request is made.
pub fn is_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_or_permanent() {
        assert_eq!(refusal(200, ""), None);
        for status in [202, 401, 403, 408, 429, 500, 502, 503, 504] {
            assert!(matches!(refusal(status, "x"), Some(ContentError::Retry(_))), "{status}");
        }
        for status in [204, 400, 404, 410, 413] {
            assert!(matches!(refusal(status, "x"), Some(ContentError::Permanent(_))), "{status}");
        }
        let Some(ContentError::Permanent(text)) = refusal(404, "Not found") else { panic!() };
        assert_eq!(text, "LINE refused the request (404: Not found)");
        let Some(ContentError::Retry(text)) = refusal(202, "") else { panic!() };
        assert!(text.contains("still preparing"), "{text}");
    }

    #[test]
    fn message_ids_are_digits_only() {
        assert!(is_message_id("325708"));
        assert!(is_message_id("444573844083572737"));
        for bad in ["", "12a", "1/../2", "12 3", "１２", "-1", &"9".repeat(33)] {
            assert!(!is_message_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        assert_eq!(
            ContentError::TooLarge { limit: 10 }.to_string(),
            "the content is larger than 10 bytes; raise [replies] max_attachment_bytes to take it"
        );
    }
}
