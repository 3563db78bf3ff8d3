//! One request to LINE's message endpoints as this gateway makes it: where it goes
//! ([`Endpoint`]: push or multicast), the messages it carries ([`Request`]), the API path of
//! each endpoint, and the JSON body LINE reads ([`Body`], the bytes the spool stores, the client
//! sends and the dry run logs). `compose` plans requests; the client and the spool send them.

use serde::Serialize;

use super::message::Message;

/// LINE's limit on ids in one multicast request.
pub const MAX_MULTICAST_IDS: usize = 500;

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v2/bot/message/push` to one user, group or room.
    Push { to: String },
    /// `POST /v2/bot/message/multicast` to up to 500 users.
    Multicast { to: Vec<String> },
}

/// One request to LINE: a destination and at most 5 messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub endpoint: Endpoint,
    pub messages: Vec<Message>,
}

/// The JSON body LINE expects for a request, borrowed from the planned [`Request`]; written
/// by [`Body::to_json`].
#[derive(Serialize)]
#[serde(untagged)]
pub enum Body<'a> {
    Push { to: &'a str, messages: &'a [Message] },
    Multicast { to: &'a [String], messages: &'a [Message] },
}

impl<'a> Body<'a> {
    pub fn of(req: &'a Request) -> Body<'a> {
        match &req.endpoint {
            Endpoint::Push { to } => Body::Push { to, messages: &req.messages },
            Endpoint::Multicast { to } => Body::Multicast { to, messages: &req.messages },
        }
    }

    /// The body as LINE gets it (and as the spool and the dry-run log keep it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a request body is strings, arrays and objects with string keys")
    }
}

/// The API path of an endpoint.
pub fn path(endpoint: &Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Push { .. } => "/v2/bot/message/push",
        Endpoint::Multicast { .. } => "/v2/bot/message/multicast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::message::{Emoji, TextMessage};

    #[test]
    fn bodies_have_line_shape() {
        let messages = vec![Message::Text(TextMessage {
            text: "$ hi".into(),
            emojis: vec![Emoji { index: 0, product_id: "5ac1bfd5040ab15980c9b435".into(), emoji_id: "001".into() }],
        })];
        let push = Request { endpoint: Endpoint::Push { to: "Uabc".into() }, messages: messages.clone() };
        assert_eq!(
            serde_json::to_value(Body::of(&push)).unwrap(),
            serde_json::json!({"to":"Uabc","messages":[{"type":"text","text":"$ hi","emojis":[{"index":0,"productId":"5ac1bfd5040ab15980c9b435","emojiId":"001"}]}]})
        );
        let multi = Request { endpoint: Endpoint::Multicast { to: vec!["U1".into(), "U2".into()] }, messages };
        assert_eq!(serde_json::to_value(Body::of(&multi)).unwrap()["to"], serde_json::json!(["U1", "U2"]));
        assert_eq!(path(&multi.endpoint), "/v2/bot/message/multicast");
    }
}
