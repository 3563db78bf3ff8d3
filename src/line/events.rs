//! The webhook's JSON, as LINE's `webhook.yml` (`CallbackRequest`, `Event`, `Source`,
//! `MessageContent`) defines it: only the parts the gateway acts on, and [`describe`], the one
//! line of text a sticker or a location becomes in a mail.
//!
//! LINE adds event types and fields over time, so unknown fields are ignored and unknown event
//! (or message) types parse as `Other` instead of failing the whole request. Events are parsed
//! one by one from the raw `events` array, so one malformed event is logged and skipped while
//! the others in the same request are still handled.

use serde::Deserialize;
use serde_json::Value;

/// The request body: `{destination, events}`. An empty `events` is LINE's connectivity check.
#[derive(Debug, Deserialize)]
pub struct CallbackRequest {
    /// The bot's own user id.
    pub destination: String,
    /// Kept raw so each event is parsed (and possibly skipped) on its own.
    pub events: Vec<Value>,
}

/// One webhook event: the fields every event has, plus its type-specific part.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unix ms of the event at LINE.
    pub timestamp: i64,
    /// ULID; the same for a redelivery of the same event.
    pub webhook_event_id: String,
    #[serde(default)]
    pub delivery_context: Option<DeliveryContext>,
    /// Absent on some channel-level events (e.g. `activated`).
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryContext {
    pub is_redelivery: bool,
}

/// The `type`-tagged part of an event.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EventKind {
    /// Added as a friend, or unblocked (`follow.isUnblocked`).
    Follow {
        reply_token: String,
        #[serde(default)]
        follow: Option<FollowDetail>,
    },
    /// Blocked.
    Unfollow,
    /// The bot joined a group or room.
    Join { reply_token: String },
    /// The bot left (or was removed from) a group or room.
    Leave,
    Message {
        #[serde(default)]
        reply_token: Option<String>,
        message: MessageContent,
    },
    /// Any other event type: logged and skipped.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowDetail {
    pub is_unblocked: bool,
}

/// A message event's `message`, as `webhook.yml`'s `MessageContent` and its subtypes define it:
/// what an answer from LINE needs to reach the mail's sender (issue #20). Every subtype may carry
/// a `markAsReadToken` (see [`MessageContent::mark_as_read_token`]); text and stickers may quote
/// one of our messages (`quotedMessageId`). Photos, videos, audio and files carry only their id:
/// the bytes come from the content API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum MessageContent {
    Text {
        id: String,
        text: String,
        /// The id of the message this one quotes, when the follower quoted one.
        #[serde(default)]
        quoted_message_id: Option<String>,
        /// Required by `webhook.yml`, but absent from events sent before LINE had quote
        /// tokens (a redelivery can be old), and the gateway never needs it to route.
        #[serde(default)]
        quote_token: Option<String>,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    Image {
        id: String,
        content_provider: ContentProvider,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    Video {
        id: String,
        content_provider: ContentProvider,
        /// Milliseconds.
        #[serde(default)]
        duration: Option<u64>,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    Audio {
        id: String,
        content_provider: ContentProvider,
        /// Milliseconds.
        #[serde(default)]
        duration: Option<u64>,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    File {
        id: String,
        /// As the follower's device named it: not a safe path, only a suggestion.
        file_name: String,
        file_size: u64,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    Sticker {
        id: String,
        package_id: String,
        sticker_id: String,
        /// Words describing the sticker (experimental at LINE; up to 15, a random pick).
        #[serde(default)]
        keywords: Vec<String>,
        /// What the follower typed into a message sticker.
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        quoted_message_id: Option<String>,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    Location {
        id: String,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        address: Option<String>,
        latitude: f64,
        longitude: f64,
        #[serde(default)]
        mark_as_read_token: Option<String>,
    },
    /// A message type LINE adds later: nothing to answer.
    #[serde(other)]
    Other,
}

/// `contentProvider`: whether LINE holds the file (fetch it from the content API) or the
/// follower's app only sent links to it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentProvider {
    #[serde(rename = "type")]
    pub kind: Provider,
    /// Only for `external`: where the file is.
    #[serde(default)]
    pub original_content_url: Option<String>,
    /// Only for `external`: a preview image.
    #[serde(default)]
    pub preview_image_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    /// LINE holds the content: `GET /v2/bot/message/{id}/content`.
    Line,
    /// Elsewhere, at `originalContentUrl`; the content API has nothing.
    External,
    /// A provider LINE adds later: treated as "not fetchable", not as a malformed event.
    #[serde(other)]
    Unknown,
}

impl MessageContent {
    /// The message's id (none for a type the gateway does not know).
    pub fn id(&self) -> Option<&str> {
        match self {
            MessageContent::Text { id, .. }
            | MessageContent::Image { id, .. }
            | MessageContent::Video { id, .. }
            | MessageContent::Audio { id, .. }
            | MessageContent::File { id, .. }
            | MessageContent::Sticker { id, .. }
            | MessageContent::Location { id, .. } => Some(id),
            MessageContent::Other => None,
        }
    }

    /// The id of the message this one quotes: how an answer names the mail it belongs to.
    pub fn quoted_message_id(&self) -> Option<&str> {
        match self {
            MessageContent::Text { quoted_message_id, .. } | MessageContent::Sticker { quoted_message_id, .. } => quoted_message_id.as_deref(),
            _ => None,
        }
    }

    /// The event's `markAsReadToken`, which `webhook.yml` puts in the message object of every
    /// message type (for `POST /v2/bot/chat/markAsRead`).
    pub fn mark_as_read_token(&self) -> Option<&str> {
        match self {
            MessageContent::Text { mark_as_read_token, .. }
            | MessageContent::Image { mark_as_read_token, .. }
            | MessageContent::Video { mark_as_read_token, .. }
            | MessageContent::Audio { mark_as_read_token, .. }
            | MessageContent::File { mark_as_read_token, .. }
            | MessageContent::Sticker { mark_as_read_token, .. }
            | MessageContent::Location { mark_as_read_token, .. } => mark_as_read_token.as_deref(),
            MessageContent::Other => None,
        }
    }

    /// The provider of a photo, video or audio; `None` for the other types. A file is always
    /// LINE's (it has no provider in `webhook.yml`).
    pub fn content_provider(&self) -> Option<&ContentProvider> {
        match self {
            MessageContent::Image { content_provider, .. }
            | MessageContent::Video { content_provider, .. }
            | MessageContent::Audio { content_provider, .. } => Some(content_provider),
            _ => None,
        }
    }
}

/// The one line of text that stands for a message in a mail: the text itself, a sticker as
/// `[sticker 11537/52002734]` (with what the follower typed and the keywords, when LINE sent
/// them), a location as `[location] title, address (lat, lon) https://maps.google.com/?q=lat,lon`,
/// and a short mark for the kinds whose content goes as an attachment. Control characters
/// (newlines in a place's title, say) become spaces so a description stays one line; a text
/// message is returned as it is, line breaks and all.
pub fn describe(message: &MessageContent) -> String {
    match message {
        MessageContent::Text { text, .. } => text.clone(),
        MessageContent::Sticker { package_id, sticker_id, keywords, text, .. } => {
            let mut line = format!("[sticker {package_id}/{sticker_id}]");
            if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                line.push_str(&format!(" \"{}\"", text.trim()));
            }
            if !keywords.is_empty() {
                line.push_str(&format!(" ({})", keywords.join(", ")));
            }
            one_line(&line)
        }
        MessageContent::Location { title, address, latitude, longitude, .. } => {
            let named: Vec<&str> = [title, address].into_iter().filter_map(|p| p.as_deref().map(str::trim)).filter(|p| !p.is_empty()).collect();
            let mut line = "[location] ".to_owned();
            if !named.is_empty() {
                line.push_str(&named.join(", "));
                line.push(' ');
            }
            line.push_str(&format!("({latitude}, {longitude}) https://maps.google.com/?q={latitude},{longitude}"));
            one_line(&line)
        }
        MessageContent::Image { .. } => "[photo]".to_owned(),
        MessageContent::Video { duration, .. } => with_duration("[video", *duration),
        MessageContent::Audio { duration, .. } => with_duration("[audio", *duration),
        MessageContent::File { file_name, file_size, .. } => one_line(&format!("[file {file_name}, {file_size} bytes]")),
        MessageContent::Other => "[a kind of message mail2line does not forward]".to_owned(),
    }
}

/// `[video 12 s]`, or `[video]` without a duration.
fn with_duration(open: &str, ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{open} {} s]", ms.div_ceil(1000)),
        None => format!("{open}]"),
    }
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Source {
    User {
        #[serde(default)]
        user_id: Option<String>,
    },
    Group {
        group_id: String,
        #[serde(default)]
        user_id: Option<String>,
    },
    Room {
        room_id: String,
        #[serde(default)]
        user_id: Option<String>,
    },
}

impl Source {
    /// The chat a reply or a mail reaches: the user for 1:1, else the group or room.
    pub fn chat_id(&self) -> Option<&str> {
        match self {
            Source::User { user_id } => user_id.as_deref(),
            Source::Group { group_id, .. } => Some(group_id),
            Source::Room { room_id, .. } => Some(room_id),
        }
    }
}

/// An event's `type` for log lines, read from the raw JSON (works for unparseable events too).
pub fn type_name(raw: &Value) -> &str {
    raw.get("type").and_then(Value::as_str).unwrap_or("(no type)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common(kind: &str) -> Value {
        json!({
            "type": kind, "mode": "active", "timestamp": 1462629479859i64,
            "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
            "deliveryContext": {"isRedelivery": false},
            "source": {"type": "user", "userId": "U4af4980629c1eb4a2c6d4b0c3e2fc8f0"}
        })
    }

    fn with(kind: &str, extra: Value) -> Event {
        let mut v = common(kind);
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn follow_with_unblock() {
        let e = with("follow", json!({"replyToken": "rt1", "follow": {"isUnblocked": true}}));
        assert_eq!(e.timestamp, 1462629479859);
        assert_eq!(e.webhook_event_id, "01FZ74A0TDDPYRVKNK77XKC3ZR");
        assert!(!e.delivery_context.unwrap().is_redelivery);
        assert_eq!(e.source.unwrap().chat_id(), Some("U4af4980629c1eb4a2c6d4b0c3e2fc8f0"));
        match e.kind {
            EventKind::Follow { reply_token, follow } => {
                assert_eq!(reply_token, "rt1");
                assert!(follow.unwrap().is_unblocked);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn group_text_message_and_unknown_fields() {
        let mut e = common("message");
        e["source"] = json!({"type": "group", "groupId": "Ca56f94637c", "userId": "U1"});
        e["replyToken"] = json!("rt2");
        e["message"] = json!({"type": "text", "id": "444", "text": "my Address?", "quoteToken": "q", "brandNew": 1});
        e["someFutureField"] = json!({"x": 1});
        let e: Event = serde_json::from_value(e).unwrap();
        assert_eq!(e.source.unwrap(), Source::Group { group_id: "Ca56f94637c".into(), user_id: Some("U1".into()) });
        match e.kind {
            EventKind::Message { reply_token, message: MessageContent::Text { text, .. } } => {
                assert_eq!((reply_token.as_deref(), text.as_str()), (Some("rt2"), "my Address?"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_types_parse_as_other() {
        let e = with("memberJoined", json!({"replyToken": "rt", "joined": {"members": []}}));
        assert!(matches!(e.kind, EventKind::Other));
        let e = with("message", json!({"message": {"type": "hologram", "id": "1", "depth": 3}}));
        assert!(matches!(e.kind, EventKind::Message { message: MessageContent::Other, .. }));
        let e = with("unfollow", json!({}));
        assert!(matches!(e.kind, EventKind::Unfollow));
    }

    #[test]
    fn room_join_and_missing_fields() {
        let mut v = common("join");
        v["source"] = json!({"type": "room", "roomId": "Ra8dbf4673c"});
        v["replyToken"] = json!("rt3");
        let e: Event = serde_json::from_value(v).unwrap();
        assert_eq!(e.source.as_ref().and_then(Source::chat_id), Some("Ra8dbf4673c"));
        assert!(matches!(e.kind, EventKind::Join { .. }));
        // A follow without its reply token is not a LINE follow event.
        assert!(serde_json::from_value::<Event>(common("follow")).is_err());
        let mut v = common("follow");
        v.as_object_mut().unwrap().remove("webhookEventId");
        v["replyToken"] = json!("rt");
        assert!(serde_json::from_value::<Event>(v).is_err());
        assert_eq!(type_name(&json!({"x": 1})), "(no type)");
    }

    /// The `message` of a message event from a user, parsed.
    fn message(content: Value) -> (Option<String>, MessageContent) {
        match with("message", json!({"replyToken": "rtM", "message": content})).kind {
            EventKind::Message { reply_token, message } => (reply_token, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_text_that_quotes_one_of_ours() {
        let (reply_token, m) = message(json!({
            "type": "text", "id": "468789577898262530", "quotedMessageId": "468789532432007169",
            "quoteToken": "q3Plxr4AgKd", "text": "Chicken, please.", "markAsReadToken": "30yhdy232"
        }));
        assert_eq!(reply_token.as_deref(), Some("rtM"));
        assert_eq!(
            m,
            MessageContent::Text {
                id: "468789577898262530".into(),
                text: "Chicken, please.".into(),
                quoted_message_id: Some("468789532432007169".into()),
                quote_token: Some("q3Plxr4AgKd".into()),
                mark_as_read_token: Some("30yhdy232".into()),
            }
        );
        assert_eq!((m.id(), m.quoted_message_id(), m.mark_as_read_token()), (Some("468789577898262530"), Some("468789532432007169"), Some("30yhdy232")));
        assert_eq!(describe(&m), "Chicken, please.");
        // Unquoted, and without the quote token events had before LINE introduced it.
        let (_, m) = message(json!({"type": "text", "id": "1", "text": "hi\nthere"}));
        assert_eq!((m.quoted_message_id(), m.mark_as_read_token(), describe(&m).as_str()), (None, None, "hi\nthere"));
    }

    #[test]
    fn photos_videos_audio_and_files() {
        let (_, m) = message(json!({
            "type": "image", "id": "354718705033693859", "quoteToken": "q3Plxr4AgKd",
            "contentProvider": {"type": "line"},
            "imageSet": {"id": "E005D41A7288F41B65593ED38FF6E9834B046AB36A37921A56BC236F13A91855", "index": 1, "total": 2}
        }));
        assert_eq!(m, MessageContent::Image { id: "354718705033693859".into(), content_provider: ContentProvider { kind: Provider::Line, original_content_url: None, preview_image_url: None }, mark_as_read_token: None });
        assert_eq!(describe(&m), "[photo]");

        let (_, m) = message(json!({
            "type": "video", "id": "325708", "quoteToken": "q", "duration": 60000, "markAsReadToken": "t",
            "contentProvider": {"type": "external", "originalContentUrl": "https://example.com/original.mp4", "previewImageUrl": "https://example.com/preview.jpg"}
        }));
        let MessageContent::Video { ref content_provider, duration, .. } = m else { panic!("{m:?}") };
        assert_eq!((content_provider.kind, content_provider.original_content_url.as_deref(), duration), (Provider::External, Some("https://example.com/original.mp4"), Some(60000)));
        assert_eq!((describe(&m).as_str(), m.mark_as_read_token()), ("[video 60 s]", Some("t")));
        assert_eq!(m.content_provider().map(|p| p.preview_image_url.as_deref()), Some(Some("https://example.com/preview.jpg")));

        let (_, m) = message(json!({"type": "audio", "id": "325709", "duration": 1500, "contentProvider": {"type": "line"}}));
        assert!(matches!(&m, MessageContent::Audio { id, duration: Some(1500), .. } if id == "325709"), "{m:?}");
        assert_eq!(describe(&m), "[audio 2 s]");

        let (_, m) = message(json!({"type": "file", "id": "325710", "fileName": "report.pdf", "fileSize": 2138}));
        assert_eq!(m, MessageContent::File { id: "325710".into(), file_name: "report.pdf".into(), file_size: 2138, mark_as_read_token: None });
        assert_eq!((describe(&m).as_str(), m.content_provider()), ("[file report.pdf, 2138 bytes]", None));

        // A provider LINE may add later is not a malformed event; a missing one is.
        let (_, m) = message(json!({"type": "image", "id": "1", "quoteToken": "q", "contentProvider": {"type": "hologram"}}));
        assert_eq!(m.content_provider().map(|p| p.kind), Some(Provider::Unknown));
        let mut v = common("message");
        v["message"] = json!({"type": "image", "id": "1", "quoteToken": "q"});
        assert!(serde_json::from_value::<Event>(v).is_err());
    }

    #[test]
    fn stickers_are_one_line() {
        let (_, m) = message(json!({
            "type": "sticker", "id": "1501597916", "quoteToken": "q", "stickerId": "52002738", "packageId": "11537",
            "stickerResourceType": "ANIMATION", "keywords": ["cony", "sally", "Staring"], "quotedMessageId": "77"
        }));
        assert_eq!(m.quoted_message_id(), Some("77"));
        assert_eq!(describe(&m), "[sticker 11537/52002738] (cony, sally, Staring)");

        let (_, m) = message(json!({"type": "sticker", "id": "2", "quoteToken": "q", "stickerId": "52002734", "packageId": "11537", "stickerResourceType": "STATIC"}));
        assert_eq!(describe(&m), "[sticker 11537/52002734]");

        let (_, m) = message(json!({
            "type": "sticker", "id": "3", "quoteToken": "q", "stickerId": "738839", "packageId": "12287",
            "stickerResourceType": "MESSAGE", "keywords": ["Anticipation"], "text": "Let's\nhang out"
        }));
        assert_eq!(describe(&m), "[sticker 12287/738839] \"Let's hang out\" (Anticipation)");
    }

    #[test]
    fn locations_are_one_line_with_a_map_link() {
        let (_, m) = message(json!({
            "type": "location", "id": "325708", "title": "my location",
            "address": "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan", "latitude": 35.67966, "longitude": 139.73669
        }));
        assert_eq!(
            describe(&m),
            "[location] my location, 1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan (35.67966, 139.73669) https://maps.google.com/?q=35.67966,139.73669"
        );
        let (_, m) = message(json!({"type": "location", "id": "9", "latitude": -33.5, "longitude": 151, "title": "A\r\nB"}));
        assert_eq!(describe(&m), "[location] A  B (-33.5, 151) https://maps.google.com/?q=-33.5,151");
        // Latitude and longitude are required.
        let mut v = common("message");
        v["message"] = json!({"type": "location", "id": "9", "title": "x"});
        assert!(serde_json::from_value::<Event>(v).is_err());
    }
}
