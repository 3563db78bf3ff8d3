//! Text → LINE text messages: emoji tokens, splitting, truncation.

use super::message::Message;

/// LINE's limits for text messages in one request.
pub const MAX_TEXT_UTF16: usize = 5000;
pub const MAX_EMOJI_PER_TEXT: usize = 20;
pub const MAX_MESSAGES_PER_REQUEST: usize = 5;

/// The result of turning a text into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessages {
    pub messages: Vec<Message>,
    /// True when the text did not fit in `max_messages` and was cut with a visible marker.
    pub truncated: bool,
}

/// Turns `text` into at most `max_messages` (1..=5) LINE text messages.
pub fn to_messages(text: &str, max_messages: usize) -> TextMessages {
    let _ = (text, max_messages);
    TextMessages { messages: vec![], truncated: false }
}
