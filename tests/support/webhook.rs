//! LINE webhook requests as LINE sends them, for the tests of answers from LINE (issue #20).
//!
//! Owns: building message events (text, optionally quoting one of our messages; image, video,
//! audio, file; sticker; location) from a user, a group member or a room member, with a given
//! `webhookEventId` and `isRedelivery`; wrapping them in a `CallbackRequest`; signing the body
//! as LINE does (`x-line-signature`: base64 of HMAC-SHA256 over the body with the channel
//! secret, computed here with `hmac` directly, not with the gateway's code); and posting it.
//!
//! Every body built here is validated against `webhook.yml`'s `CallbackRequest` schema
//! ([`callback`] panics otherwise), so a test can only feed the gateway shapes LINE really sends;
//! a test that needs something LINE does not send (a future event type, a malformed event)
//! edits the JSON after [`callback`], in plain sight. Without `../shared/line-openapi/` the check
//! is skipped with a notice, as the stand-in's are (and fails under `MAIL2LINE_REQUIRE_SPEC=1`).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use super::gateway::{GatewayProcess, SECRET};
use super::spec::Spec;

/// The bot's own user id, the `destination` of every request (`U` and 32 hex digits).
pub const BOT: &str = "Uf0000000000000000000000000000b07";

/// Who sent a message: the `source` of its event.
#[derive(Clone, Debug)]
pub enum Sender {
    /// A 1:1 chat with a follower.
    User(String),
    /// A member of a group (`C…`).
    Group { group: String, user: String },
    /// A member of a room (`R…`).
    Room { room: String, user: String },
}

impl Sender {
    /// The chat answers go back to: the user, the group or the room.
    pub fn chat(&self) -> &str {
        match self {
            Sender::User(user) => user,
            Sender::Group { group, .. } => group,
            Sender::Room { room, .. } => room,
        }
    }

    /// The user who wrote.
    pub fn user(&self) -> &str {
        match self {
            Sender::User(user) | Sender::Group { user, .. } | Sender::Room { user, .. } => user,
        }
    }

    fn source(&self) -> Value {
        match self {
            Sender::User(user) => json!({ "type": "user", "userId": user }),
            Sender::Group { group, user } => json!({ "type": "group", "groupId": group, "userId": user }),
            Sender::Room { room, user } => json!({ "type": "room", "roomId": room, "userId": user }),
        }
    }
}

/// One message event, built with one of the constructors and then adjusted.
#[derive(Clone, Debug)]
pub struct Message {
    sender: Sender,
    event_id: String,
    redelivery: bool,
    timestamp: i64,
    /// The `message` object.
    message: Value,
}

impl Message {
    fn new(sender: &Sender, event_id: &str, message: Value) -> Message {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64;
        let mut message = message;
        // Every message type may carry one (webhook.yml); tests of `acknowledge` read it back.
        message["markAsReadToken"] = json!(Message::mark_as_read_token_for(event_id));
        Message { sender: sender.clone(), event_id: event_id.to_owned(), redelivery: false, timestamp: now, message }
    }

    /// The `markAsReadToken` the event with `event_id` carries.
    pub fn mark_as_read_token_for(event_id: &str) -> String {
        format!("mr-{event_id}")
    }

    /// A text message; `id` is its message id (digits).
    pub fn text(sender: &Sender, event_id: &str, id: &str, text: &str) -> Message {
        Message::new(sender, event_id, json!({ "type": "text", "id": id, "quoteToken": quote_token(id), "text": text }))
    }

    /// A photo LINE holds (`contentProvider.type` `line`): fetched from the content API by `id`.
    pub fn image(sender: &Sender, event_id: &str, id: &str) -> Message {
        Message::new(sender, event_id, json!({ "type": "image", "id": id, "quoteToken": quote_token(id), "contentProvider": { "type": "line" } }))
    }

    /// A video LINE holds, `duration_ms` long.
    pub fn video(sender: &Sender, event_id: &str, id: &str, duration_ms: u64) -> Message {
        Message::new(
            sender,
            event_id,
            json!({ "type": "video", "id": id, "quoteToken": quote_token(id), "duration": duration_ms, "contentProvider": { "type": "line" } }),
        )
    }

    /// A voice message or other audio LINE holds, `duration_ms` long.
    pub fn audio(sender: &Sender, event_id: &str, id: &str, duration_ms: u64) -> Message {
        Message::new(sender, event_id, json!({ "type": "audio", "id": id, "duration": duration_ms, "contentProvider": { "type": "line" } }))
    }

    /// A file, as the follower's device named it.
    pub fn file(sender: &Sender, event_id: &str, id: &str, file_name: &str, file_size: u64) -> Message {
        Message::new(sender, event_id, json!({ "type": "file", "id": id, "fileName": file_name, "fileSize": file_size }))
    }

    /// A sticker; `keywords` may be empty (LINE then leaves them out).
    pub fn sticker(sender: &Sender, event_id: &str, id: &str, package_id: &str, sticker_id: &str, keywords: &[&str]) -> Message {
        let mut m = json!({
            "type": "sticker", "id": id, "quoteToken": quote_token(id),
            "packageId": package_id, "stickerId": sticker_id, "stickerResourceType": "STATIC",
        });
        if !keywords.is_empty() {
            m["keywords"] = json!(keywords);
        }
        Message::new(sender, event_id, m)
    }

    /// A location with its title and address.
    pub fn location(sender: &Sender, event_id: &str, id: &str, title: &str, address: &str, latitude: f64, longitude: f64) -> Message {
        Message::new(
            sender,
            event_id,
            json!({ "type": "location", "id": id, "title": title, "address": address, "latitude": latitude, "longitude": longitude }),
        )
    }

    /// The follower quoted message `message_id` (one of ours): `quotedMessageId`. LINE sends it
    /// on text and sticker messages only; on another type this panics, since LINE never does.
    pub fn quoting(mut self, message_id: &str) -> Message {
        let kind = self.message["type"].as_str().unwrap_or_default().to_owned();
        assert!(kind == "text" || kind == "sticker", "LINE quotes only in text and sticker messages, not {kind}");
        self.message["quotedMessageId"] = json!(message_id);
        self
    }

    /// LINE sends it again (`deliveryContext.isRedelivery`): the same event, the same
    /// `webhookEventId`.
    pub fn redelivered(mut self) -> Message {
        self.redelivery = true;
        self
    }

    /// The event's `timestamp` (Unix ms; now unless set).
    pub fn at(mut self, timestamp_ms: i64) -> Message {
        self.timestamp = timestamp_ms;
        self
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The event's `replyToken`.
    pub fn reply_token(&self) -> String {
        format!("rt-{}", self.event_id)
    }

    /// The event as JSON.
    pub fn event(&self) -> Value {
        json!({
            "type": "message",
            "mode": "active",
            "timestamp": self.timestamp,
            "source": self.sender.source(),
            "webhookEventId": self.event_id,
            "deliveryContext": { "isRedelivery": self.redelivery },
            "replyToken": self.reply_token(),
            "message": self.message,
        })
    }
}

fn quote_token(id: &str) -> String {
    format!("q{id}")
}

/// Why `body` is not a webhook request LINE would send: `webhook.yml`'s `CallbackRequest`
/// schema. `Ok` without the spec (see the module docs).
pub fn validate(body: &Value) -> Result<(), Vec<String>> {
    match Spec::load("webhook.yml") {
        Some(spec) => spec.validate_schema("CallbackRequest", body),
        None => Ok(()),
    }
}

/// `{destination, events}` as bytes, checked against `webhook.yml` (panics when it breaks it).
pub fn callback(messages: &[Message]) -> Vec<u8> {
    let body = json!({ "destination": BOT, "events": messages.iter().map(Message::event).collect::<Vec<_>>() });
    if let Err(e) = validate(&body) {
        panic!("test input is not a LINE webhook body: {e:#?}\n{body:#}");
    }
    serde_json::to_vec(&body).expect("JSON")
}

/// LINE's `x-line-signature` for `body` with the test channel's secret ([`SECRET`]).
pub fn sign(body: &[u8]) -> String {
    sign_with(SECRET, body)
}

/// LINE's signature with another channel secret.
pub fn sign_with(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// POSTs `body`, signed, to the gateway's webhook (`/webhook`) as LINE does; the answer's
/// status and text.
pub async fn post(gw: &GatewayProcess, body: Vec<u8>) -> (u16, String) {
    let signature = sign(&body);
    post_to(gw, "/webhook", body, Some(signature), "application/json; charset=utf-8").await
}

/// POSTs `body` to `path` of the gateway's HTTP listener with `signature` as
/// `x-line-signature` (None: no header, as a forger might) and `content_type`; the answer's
/// status and text. The one webhook poster of the tests, for bodies LINE would not send too.
pub async fn post_to(gw: &GatewayProcess, path: &str, body: Vec<u8>, signature: Option<String>, content_type: &str) -> (u16, String) {
    let url = format!("http://{}{path}", gw.http.expect("the gateway logged its HTTP address"));
    let mut request = reqwest::Client::new().post(url).header("content-type", content_type).body(body);
    if let Some(signature) = signature {
        request = request.header("x-line-signature", signature);
    }
    let response = request.send().await.expect("webhook request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// [`callback`] of `messages`, [`post`]ed.
pub async fn deliver(gw: &GatewayProcess, messages: &[Message]) -> (u16, String) {
    post(gw, callback(messages)).await
}
