//! What a LINE answer means for the mail: delivered, try again, or give up.
//!
//! Pure: status code + body in, decision out, so every branch is unit-tested without a server.

use std::time::Duration;

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// LINE accepted the request (2xx), or already had it (409 for a retry key it accepted).
    /// `sent` holds the ids LINE gave the messages (`sentMessages[].id`, in request order): a
    /// push answers them, and repeats them in its 409; multicast answers none. A follower's
    /// answer that quotes one of our messages names its id, which is how the answer finds the
    /// mail it belongs to (issue #20).
    Delivered { request_id: Option<String>, duplicate: bool, sent: Vec<String> },
    /// Worth trying again later: network error, timeout, 5xx, 429.
    Retry { reason: RetryReason, detail: String, after: Option<Duration> },
    /// LINE will never accept this request as it is (400, 404, 413, 415…).
    Permanent { status: u16, message: String },
    /// The channel token was refused (401/403): the operator must fix the configuration; mail
    /// is not the sender's fault, so it is kept/retried rather than bounced.
    Unauthorized { status: u16, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// No connection could be made: the request never left.
    Unreachable,
    /// No answer in time: LINE may or may not have acted on it.
    Timeout,
    /// The connection broke after the request was sent: LINE may have acted on it.
    ConnectionLost,
    ServerError,
    RateLimited,
    /// 429 "You have reached your monthly limit.": retrying before the quota resets is useless.
    QuotaExhausted,
    /// LINE's token endpoint answered but issued no channel access token (v2.1 or stateless),
    /// so the request was not sent. Usually a configuration problem the log explains.
    NoAccessToken,
}

impl RetryReason {
    /// Whether LINE may have acted on the request although we did not learn that it did: the
    /// request left and no clear "not done" came back.
    pub fn leaves_doubt(self) -> bool {
        matches!(self, RetryReason::Timeout | RetryReason::ConnectionLost | RetryReason::ServerError)
    }
}

impl Outcome {
    /// Whether LINE delivered the request or may have: only a "no" that leaves no doubt
    /// (refused, unreachable, rate limited) proves the messages were not sent.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Outcome::Delivered { .. } => true,
            Outcome::Retry { reason, .. } => reason.leaves_doubt(),
            Outcome::Permanent { .. } | Outcome::Unauthorized { .. } => false,
        }
    }
}

/// LINE's error body: `{"message": "...", "details": [{"message","property"}]}`.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    property: String,
}

/// Longest error text taken from LINE into an SMTP reply or a log line.
const MAX_DETAIL: usize = 300;

/// LINE's error message with its details, e.g. `The request body has 1 error(s): messages[0].text: May not be empty`.
pub fn error_message(body: &[u8]) -> String {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let mut text = if parsed.message.is_empty() {
        String::from_utf8_lossy(&body[..body.len().min(MAX_DETAIL)]).trim().to_owned()
    } else {
        parsed.message
    };
    for d in parsed.details {
        text.push_str("; ");
        if !d.property.is_empty() {
            text.push_str(&d.property);
            text.push_str(": ");
        }
        text.push_str(&d.message);
    }
    if text.chars().count() > MAX_DETAIL {
        text = text.chars().take(MAX_DETAIL).collect::<String>() + "…";
    }
    text
}

/// `{"sentMessages": [{"id": "…", "quoteToken": "…"}, …]}`, the part of a push's answer we keep.
#[derive(Debug, Default, serde::Deserialize)]
struct SentBody {
    #[serde(default, rename = "sentMessages")]
    sent_messages: Vec<SentMessage>,
}

#[derive(Debug, serde::Deserialize)]
struct SentMessage {
    id: String,
}

/// The ids in an accepting answer's `sentMessages`; none for a body without them (multicast) or
/// one that is not what LINE documents: the delivery stands either way.
fn sent_ids(body: &[u8]) -> Vec<String> {
    let parsed: SentBody = serde_json::from_slice(body).unwrap_or_default();
    parsed.sent_messages.into_iter().map(|m| m.id).collect()
}

/// Classifies an HTTP answer from LINE.
pub fn classify(status: u16, body: &[u8], retry_after: Option<Duration>, request_id: Option<String>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { request_id, duplicate: false, sent: sent_ids(body) },
        // LINE answers 409 when a request with the same X-Line-Retry-Key was already accepted:
        // the messages went out, which is exactly what we wanted.
        409 => Outcome::Delivered { request_id, duplicate: true, sent: sent_ids(body) },
        429 => {
            let message = error_message(body);
            let reason = if message.to_ascii_lowercase().contains("monthly limit") {
                RetryReason::QuotaExhausted
            } else {
                RetryReason::RateLimited
            };
            Outcome::Retry { reason, detail: message, after: retry_after }
        }
        401 | 403 => Outcome::Unauthorized { status, message: error_message(body) },
        500..=599 => Outcome::Retry {
            reason: RetryReason::ServerError,
            detail: format!("LINE answered {status}: {}", error_message(body)),
            after: retry_after,
        },
        _ => Outcome::Permanent { status, message: error_message(body) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clear_no_proves_nothing_was_sent() {
        let answer = |status| classify(status, b"{\"message\":\"x\"}", None, None).may_have_been_sent();
        assert!(answer(200) && answer(409), "delivered");
        assert!(answer(500) && answer(503), "a 5xx may come after LINE acted");
        assert!(!answer(400) && !answer(401) && !answer(429), "refused before acting");
        let retry = |reason| Outcome::Retry { reason, detail: String::new(), after: None }.may_have_been_sent();
        assert!(retry(RetryReason::Timeout) && retry(RetryReason::ConnectionLost));
        assert!(!retry(RetryReason::Unreachable) && !retry(RetryReason::NoAccessToken) && !retry(RetryReason::QuotaExhausted));
    }

    #[test]
    fn success_and_duplicate() {
        assert_eq!(
            classify(200, b"{}", None, Some("abc".into())),
            Outcome::Delivered { request_id: Some("abc".into()), duplicate: false, sent: vec![] }
        );
        assert_eq!(
            classify(409, br#"{"message":"The retry key is already accepted"}"#, None, None),
            Outcome::Delivered { request_id: None, duplicate: true, sent: vec![] }
        );
    }

    #[test]
    fn the_ids_of_sent_messages_are_kept_in_order() {
        let body = br#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"},{"id":"461230966842064898","quoteToken":"x"}]}"#;
        let Outcome::Delivered { sent, duplicate: false, .. } = classify(200, body, None, None) else { panic!() };
        assert_eq!(sent, ["461230966842064897", "461230966842064898"]);
        // A push sent again with its retry key: LINE repeats the original ids in the 409.
        let again = br#"{"message":"The retry key is already accepted","sentMessages":[{"id":"7","quoteToken":"q"}]}"#;
        let Outcome::Delivered { sent, duplicate: true, .. } = classify(409, again, None, None) else { panic!() };
        assert_eq!(sent, ["7"]);
    }

    #[test]
    fn an_answer_without_usable_ids_is_still_delivered() {
        for body in [&b"{}"[..], b"", b"not json", br#"{"sentMessages":"x"}"#, br#"{"sentMessages":[{"quoteToken":"q"}]}"#] {
            let Outcome::Delivered { sent, .. } = classify(200, body, None, None) else { panic!("{body:?}") };
            assert!(sent.is_empty(), "{body:?}");
        }
    }

    #[test]
    fn bad_request_is_permanent_with_details() {
        let body = br#"{"message":"The request body has 1 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"}]}"#;
        assert_eq!(
            classify(400, body, None, None),
            Outcome::Permanent {
                status: 400,
                message: "The request body has 1 error(s); messages[0].text: May not be empty".into()
            }
        );
    }

    #[test]
    fn rate_limit_vs_quota() {
        assert!(matches!(
            classify(429, br#"{"message":"Too Many Requests"}"#, Some(Duration::from_secs(3)), None),
            Outcome::Retry { reason: RetryReason::RateLimited, after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(429, br#"{"message":"You have reached your monthly limit."}"#, None, None),
            Outcome::Retry { reason: RetryReason::QuotaExhausted, .. }
        ));
    }

    #[test]
    fn server_errors_and_auth() {
        assert!(matches!(classify(503, b"oops", None, None), Outcome::Retry { reason: RetryReason::ServerError, detail, .. } if detail == "LINE answered 503: oops"));
        assert!(matches!(classify(401, br#"{"message":"Authentication failed"}"#, None, None), Outcome::Unauthorized { status: 401, .. }));
    }

    #[test]
    fn long_messages_are_cut() {
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        let Outcome::Permanent { message, .. } = classify(400, long.as_bytes(), None, None) else { panic!() };
        assert_eq!(message.chars().count(), MAX_DETAIL + 1);
    }
}
