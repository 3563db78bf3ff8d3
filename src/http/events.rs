//! The webhook's JSON, as LINE's `webhook.yml` (`CallbackRequest`, `Event`, `Source`) defines
//! it: only the parts the gateway acts on.
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

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum MessageContent {
    Text { id: String, text: String },
    /// Images, stickers, …: nothing to answer.
    #[serde(other)]
    Other,
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
        let e = with("message", json!({"message": {"type": "sticker", "id": "1", "packageId": "1", "stickerId": "2"}}));
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
}
