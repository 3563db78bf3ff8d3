//! Self-tests for `tests/support`: proves the spec checks reject what LINE
//! rejects (and accept what it accepts), and that the stand-in server
//! records, polices and scripts requests as documented.
//!
//! The spec tests run against the real LINE OpenAPI files; without them they
//! are skipped with a notice (or fail, with `MAIL2LINE_REQUIRE_SPEC=1`).

mod support;

use serde_json::{json, Value};
use support::spec::Spec;

fn messaging() -> Option<Spec> {
    Spec::load("messaging-api.yml")
}

fn text(t: &str) -> Value {
    json!({ "type": "text", "text": t })
}

fn push_body() -> Value {
    json!({
        "to": "U4af4980629a1b2c3d4e5f60718293a4b",
        "messages": [{
            "type": "text",
            "text": "hi",
            "emojis": [{ "index": 0, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001" }]
        }]
    })
}

/// Asserts the body is rejected and returns the errors (printed on failure).
fn rejects(spec: &Spec, path: &str, body: &Value) -> Vec<String> {
    match spec.validate_request("POST", path, body) {
        Ok(()) => panic!("expected {path} to reject {body}"),
        Err(errors) => {
            assert!(!errors.is_empty());
            errors
        }
    }
}

#[test]
fn valid_push_passes() {
    let Some(spec) = messaging() else { return };
    spec.validate_request("POST", "/v2/bot/message/push", &push_body()).unwrap();
}

#[test]
fn valid_reply_and_multicast_pass() {
    let Some(spec) = messaging() else { return };
    let reply = json!({ "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", "messages": [text("hello")] });
    spec.validate_request("POST", "/v2/bot/message/reply", &reply).unwrap();
    let multicast = json!({ "to": ["U1", "U2"], "messages": [text("hello")], "notificationDisabled": true });
    spec.validate_request("POST", "/v2/bot/message/multicast", &multicast).unwrap();
}

#[test]
fn push_missing_to_fails() {
    let Some(spec) = messaging() else { return };
    let mut body = push_body();
    body.as_object_mut().unwrap().remove("to");
    let errors = rejects(&spec, "/v2/bot/message/push", &body);
    assert!(errors.iter().any(|e| e.contains("\"to\"")), "{errors:?}");
}

#[test]
fn push_with_no_messages_fails() {
    let Some(spec) = messaging() else { return };
    rejects(&spec, "/v2/bot/message/push", &json!({ "to": "U1", "messages": [] }));
}

#[test]
fn push_with_six_messages_fails() {
    let Some(spec) = messaging() else { return };
    let messages: Vec<Value> = (0..6).map(|i| text(&format!("m{i}"))).collect();
    rejects(&spec, "/v2/bot/message/push", &json!({ "to": "U1", "messages": messages }));
    // five is the documented maximum and must still pass
    let five: Vec<Value> = (0..5).map(|i| text(&format!("m{i}"))).collect();
    spec.validate_request("POST", "/v2/bot/message/push", &json!({ "to": "U1", "messages": five })).unwrap();
}

#[test]
fn text_message_without_text_fails() {
    let Some(spec) = messaging() else { return };
    let errors = rejects(&spec, "/v2/bot/message/push", &json!({ "to": "U1", "messages": [{ "type": "text" }] }));
    assert!(errors.iter().any(|e| e.contains("/messages/0") && e.contains("text")), "{errors:?}");
}

#[test]
fn unknown_message_type_fails() {
    let Some(spec) = messaging() else { return };
    let body = json!({ "to": "U1", "messages": [{ "type": "txt", "text": "hi" }] });
    let errors = rejects(&spec, "/v2/bot/message/push", &body);
    assert!(errors.iter().any(|e| e.contains("txt")), "{errors:?}");
}

#[test]
fn misspelled_properties_fail() {
    let Some(spec) = messaging() else { return };
    let emoji = json!({ "index": 0, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001" });
    let singular = json!({ "to": "U1", "messages": [{ "type": "text", "text": "hi", "emoji": [emoji] }] });
    let errors = rejects(&spec, "/v2/bot/message/push", &singular);
    assert!(errors.iter().any(|e| e.contains("emoji")), "{errors:?}");
    let capital = json!({ "to": "U1", "messages": [{ "type": "text", "Text": "hi" }] });
    rejects(&spec, "/v2/bot/message/push", &capital);
    // Base-schema properties (quickReply, sender) must still count as known
    // across the allOf, or strictness would reject valid messages.
    let with_sender = json!({ "to": "U1", "messages": [{ "type": "text", "text": "hi", "sender": { "name": "Mail" } }] });
    spec.validate_request("POST", "/v2/bot/message/push", &with_sender).unwrap();
}

#[test]
fn other_message_types_are_checked_against_their_subtype() {
    let Some(spec) = messaging() else { return };
    let sticker = json!({ "to": "U1", "messages": [{ "type": "sticker", "packageId": "446", "stickerId": "1988" }] });
    spec.validate_request("POST", "/v2/bot/message/push", &sticker).unwrap();
    let sticker_with_text = json!({ "to": "U1", "messages": [{ "type": "sticker", "packageId": "446", "stickerId": "1988", "text": "x" }] });
    rejects(&spec, "/v2/bot/message/push", &sticker_with_text);
}

#[test]
fn emoji_index_as_string_fails() {
    let Some(spec) = messaging() else { return };
    let mut body = push_body();
    body["messages"][0]["emojis"][0]["index"] = json!("0");
    let errors = rejects(&spec, "/v2/bot/message/push", &body);
    assert!(errors.iter().any(|e| e.contains("/messages/0/emojis/0/index")), "{errors:?}");
    // the nested failure must not also be reported as "every property unexpected"
    assert!(!errors.iter().any(|e| e.contains("Unevaluated")), "{errors:?}");
}

#[test]
fn nested_discriminators_are_not_over_strict() {
    let Some(spec) = messaging() else { return };
    // Flex and template messages nest further discriminated types (FlexContainer,
    // FlexComponent, Action); valid ones must pass the strict subtypes.
    let flex = json!({ "type": "flex", "altText": "x", "contents": { "type": "bubble", "body": {
        "type": "box", "layout": "vertical", "contents": [
            { "type": "text", "text": "hello", "wrap": true },
            { "type": "button", "action": { "type": "uri", "label": "Open", "uri": "https://example.com" } }
        ] } } });
    let template = json!({ "type": "template", "altText": "x", "template": { "type": "buttons", "text": "t",
        "actions": [{ "type": "message", "label": "a", "text": "b" }, { "type": "postback", "label": "p", "data": "d" }] } });
    let quick = json!({ "type": "text", "text": "hi", "quickReply": { "items": [
        { "type": "action", "action": { "type": "message", "label": "a", "text": "b" } }] } });
    let body = json!({ "to": "U1", "messages": [flex, template, quick] });
    spec.validate_request("POST", "/v2/bot/message/push", &body).unwrap();
    // ... and a misspelling deep inside is still caught
    let mut bad = body.clone();
    bad["messages"][0]["contents"]["body"]["contents"][0]["wrapp"] = json!(true);
    let errors = rejects(&spec, "/v2/bot/message/push", &bad);
    assert!(errors.iter().any(|e| e.contains("wrapp")), "{errors:?}");
}

#[test]
fn multicast_limits() {
    let Some(spec) = messaging() else { return };
    let ids: Vec<String> = (0..501).map(|i| format!("U{i:032}")).collect();
    rejects(&spec, "/v2/bot/message/multicast", &json!({ "to": ids, "messages": [text("hi")] }));
    rejects(&spec, "/v2/bot/message/multicast", &json!({ "to": "U1", "messages": [text("hi")] }));
}

#[test]
fn unknown_path_or_method_fails() {
    let Some(spec) = messaging() else { return };
    let errors = spec.validate_request("POST", "/v2/bot/message/pushh", &push_body()).unwrap_err();
    assert!(errors[0].contains("no path"), "{errors:?}");
    let errors = spec.validate_request("GET", "/v2/bot/message/push", &Value::Null).unwrap_err();
    assert!(errors[0].contains("not an operation"), "{errors:?}");
}

#[test]
fn templated_paths_match() {
    let Some(spec) = messaging() else { return };
    spec.validate_request("GET", "/v2/bot/profile/U4af4980629", &Value::Null).unwrap();
    spec.validate_request("GET", "/v2/bot/message/quota/consumption?x=1", &Value::Null).unwrap();
    // a GET has no JSON body; sending one is flagged
    assert!(spec.validate_request("GET", "/v2/bot/profile/U1", &json!({})).is_err());
    // and a POST that requires a body must have one
    assert!(spec.validate_request("POST", "/v2/bot/message/push", &Value::Null).is_err());
}

#[test]
fn named_component_schemas() {
    let Some(spec) = messaging() else { return };
    spec.validate_schema("ErrorResponse", &json!({ "message": "x", "details": [{ "message": "m", "property": "p" }] })).unwrap();
    spec.validate_schema("PushMessageResponse", &json!({ "sentMessages": [{ "id": "1", "quoteToken": "q" }] })).unwrap();
    assert!(spec.validate_schema("PushMessageResponse", &json!({ "sentMessages": [] })).is_err());
    assert!(spec.validate_schema("ErrorResponse", &json!({ "details": [] })).is_err());
    assert!(spec.validate_schema("NoSuchSchema", &json!({})).is_err());
}

#[test]
fn other_specs_load_and_discriminators_work_there_too() {
    let Some(webhook) = Spec::load("webhook.yml") else { return };
    let ok = json!({ "type": "user", "userId": "U1" });
    webhook.validate_schema("Source", &ok).unwrap();
    assert!(webhook.validate_schema("Source", &json!({ "type": "usr", "userId": "U1" })).is_err());
    assert!(Spec::load("channel-access-token.yml").is_some());
}

#[test]
fn spec_is_cached() {
    let (Some(a), Some(b)) = (messaging(), messaging()) else { return };
    assert!(std::ptr::eq(a.file(), b.file()));
}
