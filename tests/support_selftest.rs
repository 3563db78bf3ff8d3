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
    let with_sender =
        json!({ "to": "U1", "messages": [{ "type": "text", "text": "hi", "sender": { "name": "Mail" } }] });
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
    spec.validate_schema("ErrorResponse", &json!({ "message": "x", "details": [{ "message": "m", "property": "p" }] }))
        .unwrap();
    spec.validate_schema("PushMessageResponse", &json!({ "sentMessages": [{ "id": "1", "quoteToken": "q" }] }))
        .unwrap();
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

// ---------------------------------------------------------------------------
// Token requests: forms against channel-access-token.yml
// ---------------------------------------------------------------------------

fn tokens_spec() -> Option<Spec> {
    Spec::load("channel-access-token.yml")
}

const V21: &str = "/oauth2/v2.1/token";
const V3: &str = "/oauth2/v3/token";
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

#[test]
fn forms_decode_strictly() {
    use support::spec::decode_form;
    assert_eq!(decode_form(b"a=1&b=x+y%21&c=").unwrap(), json!({ "a": "1", "b": "x y!", "c": "" }));
    assert_eq!(decode_form(b"").unwrap(), json!({}));
    assert_eq!(decode_form(b"k=%E3%81%82").unwrap(), json!({ "k": "あ" }));
    for bad in [&b"a=1&a=2"[..], b"a", b"a=%zz", b"a=%4", b"a=%+1", b"=1", b"a=%ff"] {
        assert!(decode_form(bad).is_err(), "{:?} must not decode", String::from_utf8_lossy(bad));
    }
}

#[test]
fn v21_token_request_must_carry_a_client_assertion() {
    let Some(spec) = tokens_spec() else { return };
    let good = format!("grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion=eyJ.eyJ.sig");
    spec.validate_form_request("POST", V21, good.as_bytes()).unwrap();
    let missing = format!("grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}");
    let errors = spec.validate_form_request("POST", V21, missing.as_bytes()).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("client_assertion")), "{errors:?}");
    let errors = spec.validate_form_request("POST", V21, b"").unwrap_err();
    assert!(errors.iter().any(|e| e.contains("grant_type")), "{errors:?}");
    // A form that does not decode is refused before the schema.
    let errors = spec.validate_form_request("POST", V21, format!("{good}&grant_type=client_credentials").as_bytes()).unwrap_err();
    assert!(errors[0].contains("more than once"), "{errors:?}");
    // The operation takes a form, not JSON; and JSON operations take no form.
    let as_json = json!({ "grant_type": "client_credentials", "client_assertion_type": "x", "client_assertion": "y" });
    let errors = spec.validate_request("POST", V21, &as_json).unwrap_err();
    assert!(errors[0].contains("takes no application/json body"), "{errors:?}");
    let Some(messaging) = messaging() else { return };
    let errors = messaging.validate_form_request("POST", "/v2/bot/message/push", b"to=U1").unwrap_err();
    assert!(errors[0].contains("takes no application/x-www-form-urlencoded body"), "{errors:?}");
}

#[test]
fn stateless_token_request_takes_exactly_one_of_its_two_forms() {
    let Some(spec) = tokens_spec() else { return };
    spec.validate_form_request("POST", V3, b"grant_type=client_credentials&client_id=1234567890&client_secret=abc").unwrap();
    let assertion = format!("grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion=eyJ.eyJ.sig");
    spec.validate_form_request("POST", V3, assertion.as_bytes()).unwrap();
    assert!(spec.validate_form_request("POST", V3, b"grant_type=client_credentials&client_id=1234567890").is_err());
    assert!(spec.validate_form_request("POST", V3, b"grant_type=password&client_id=1&client_secret=s").is_err(), "grant_type is an enum here");
    // Both at once matches both alternatives, which oneOf forbids.
    let both = format!("{assertion}&client_id=1&client_secret=s");
    assert!(spec.validate_form_request("POST", V3, both.as_bytes()).is_err());
}

#[test]
fn token_responses_per_spec() {
    let Some(spec) = tokens_spec() else { return };
    let v21 = json!({ "access_token": "t", "expires_in": 2592000, "token_type": "Bearer", "key_id": "k" });
    spec.validate_response("POST", V21, 200, &v21).unwrap();
    assert!(spec.validate_response("POST", V21, 200, &json!({ "access_token": "t", "expires_in": 1, "token_type": "Bearer" })).is_err());
    spec.validate_response("POST", V3, 200, &json!({ "access_token": "t", "expires_in": 899, "token_type": "Bearer" })).unwrap();
    spec.validate_schema("ErrorResponse", &json!({ "error": "invalid_client", "error_description": "x" })).unwrap();
}

#[test]
fn spec_is_cached() {
    let (Some(a), Some(b)) = (messaging(), messaging()) else { return };
    assert!(std::ptr::eq(a.file(), b.file()));
}

// ---------------------------------------------------------------------------
// Stand-in LINE API server
// ---------------------------------------------------------------------------

mod standin {
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use super::support::spec::Spec;
    use super::support::standin::{Behaviour, Fault, Faults, StandIn, DEFAULT_MEMBER_COUNT, MONTHLY_LIMIT_MESSAGE};
    use super::{push_body, text};

    const TOKEN: &str = "test-channel-token";
    const KEY: &str = "123e4567-e89b-12d3-a456-426614174000";

    /// POSTs `body` with the test token; returns (status, headers, JSON answer).
    async fn post(
        line: &StandIn,
        path: &str,
        body: &Value,
        retry_key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = reqwest::Client::new().post(format!("{}{path}", line.base_url())).bearer_auth(TOKEN).json(body);
        if let Some(key) = retry_key {
            req = req.header("X-Line-Retry-Key", key);
        }
        let resp = req.send().await.expect("stand-in answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.expect("JSON answer"))
    }

    async fn get(line: &StandIn, path: &str) -> (u16, Value) {
        let resp =
            reqwest::Client::new().get(format!("{}{path}", line.base_url())).bearer_auth(TOKEN).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// The stand-in's own answers must match what the spec documents.
    fn check_response(method: &str, path: &str, status: u16, body: &Value) {
        if let Some(spec) = Spec::load("messaging-api.yml") {
            spec.validate_response(method, path, status, body).unwrap_or_else(|e| {
                panic!("stand-in answer to {method} {path} ({status}) breaks the spec: {e:?}\n{body}")
            });
        }
    }

    #[tokio::test]
    async fn push_is_recorded_and_answered_like_line() {
        let line = StandIn::start().await;
        assert!(line.base_url().starts_with("http://127.0.0.1:"));
        let mut body = push_body();
        body["messages"].as_array_mut().unwrap().push(text("second"));
        let (status, headers, answer) = post(&line, "/v2/bot/message/push", &body, None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({ "sentMessages": [{ "id": "1", "quoteToken": "q1" }, { "id": "2", "quoteToken": "q2" }] })
        );
        assert!(headers.contains_key("x-line-request-id"));
        check_response("POST", "/v2/bot/message/push", status, &answer);

        let recorded = line.requests_to("/v2/bot/message/push");
        assert_eq!(recorded.len(), 1);
        let r = &recorded[0];
        assert_eq!((r.method.as_str(), r.status, r.dropped), ("POST", 200, false));
        assert_eq!(r.body, body);
        assert_eq!(serde_json::from_slice::<Value>(&r.raw).unwrap(), body);
        assert_eq!(r.header("Authorization"), Some("Bearer test-channel-token"));
        assert!(r.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()));
        assert!(r.spec_errors.is_empty(), "{:?}", r.spec_errors);
        assert_eq!(line.accepted().len(), 1);
        line.assert_all_valid();

        // ids keep increasing across requests
        let (_, _, answer) = post(&line, "/v2/bot/message/push", &push_body(), None).await;
        assert_eq!(answer["sentMessages"][0]["id"], "3");
    }

    #[tokio::test]
    async fn other_routes_answer_per_spec() {
        let line = StandIn::start().await;
        let (status, answer) = get(&line, "/v2/bot/profile/U4af4980629a1b2").await;
        assert_eq!((status, &answer), (200, &json!({ "displayName": "User U4af49", "userId": "U4af4980629a1b2" })));
        check_response("GET", "/v2/bot/profile/U4af4980629a1b2", status, &answer);

        let (status, answer) = get(&line, "/v2/bot/info").await;
        assert_eq!((status, &answer["displayName"], &answer["basicId"]), (200, &json!("Stand-in bot"), &json!("@standin")));
        check_response("GET", "/v2/bot/info", status, &answer);

        let (status, answer) = get(&line, "/v2/bot/message/quota/consumption").await;
        assert_eq!((status, &answer), (200, &json!({ "totalUsage": 0 })));
        check_response("GET", "/v2/bot/message/quota/consumption", status, &answer);

        let multicast = json!({ "to": ["U1", "U2"], "messages": [text("hi")] });
        let (status, _, answer) = post(&line, "/v2/bot/message/multicast", &multicast, Some(KEY)).await;
        assert_eq!((status, &answer), (200, &json!({})));
        check_response("POST", "/v2/bot/message/multicast", status, &answer);

        let reply = json!({ "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", "messages": [text("hi")] });
        let (status, _, answer) = post(&line, "/v2/bot/message/reply", &reply, None).await;
        assert_eq!(status, 200);
        assert_eq!(answer["sentMessages"].as_array().unwrap().len(), 1);
        check_response("POST", "/v2/bot/message/reply", status, &answer);

        let (status, answer) = get(&line, "/v2/bot/nonsense").await;
        assert_eq!((status, &answer), (404, &json!({ "message": "Not found" })));
        // Six requests; the quota read is kept apart (`quota_reads`), like the gateway's own.
        line.wait_for(5, Duration::from_secs(5)).await;
        assert_eq!(line.quota_reads().len(), 1);
        if line.spec_checked() {
            // the unknown path is also flagged, since the spec does not know it
            let bad = line.requests_to("/v2/bot/nonsense");
            assert!(bad[0].spec_errors[0].contains("no path"), "{:?}", bad[0].spec_errors);
        }
        assert_eq!(line.accepted().len(), 4, "profile, info, multicast, reply (the quota read is apart)");
    }

    #[tokio::test]
    async fn invalid_body_gets_400_and_fails_assert_all_valid() {
        let line = StandIn::start().await;
        if !line.spec_checked() {
            return;
        }
        let body = json!({ "to": "U1", "messages": [{ "type": "text", "text": "hi", "emojis": [{ "index": "0" }] }] });
        let (status, _, answer) = post(&line, "/v2/bot/message/push", &body, None).await;
        assert_eq!(status, 400);
        assert_eq!(answer["message"], "The request body has 1 error(s)");
        assert_eq!(answer["details"][0]["property"], "messages[0].emojis[0].index");
        check_response("POST", "/v2/bot/message/push", status, &answer);

        let r = &line.requests()[0];
        assert_eq!(r.status, 400);
        assert!(r.spec_errors[0].contains("/messages/0/emojis/0/index"), "{:?}", r.spec_errors);
        assert!(line.accepted().is_empty());
        let panic = std::panic::catch_unwind(|| line.assert_all_valid()).expect_err("must panic");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("POST /v2/bot/message/push") && message.contains("index"), "{message}");
    }

    #[tokio::test]
    async fn bearer_token_is_required() {
        let line = StandIn::start().await;
        let url = format!("{}/v2/bot/message/push", line.base_url());
        let resp = reqwest::Client::new().post(&url).json(&push_body()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let answer: Value = resp.json().await.unwrap();
        assert!(answer["message"].as_str().unwrap().starts_with("Authentication failed"));

        line.expected_token("right");
        let resp = reqwest::Client::new().post(&url).bearer_auth("wrong").json(&push_body()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let resp = reqwest::Client::new().post(&url).bearer_auth("right").json(&push_body()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);

        let errors: Vec<Vec<String>> = line.requests().into_iter().map(|r| r.spec_errors).collect();
        assert!(errors[0][0].contains("Authorization"), "{errors:?}");
        assert!(errors[1][0].contains("wrong bearer token"), "{errors:?}");
        assert!(errors[2].is_empty(), "{errors:?}");
        assert_eq!(line.accepted().len(), 1);

        // GETs are held to the same token: /v2/bot/info is what `check-config --online` asks.
        let info = format!("{}/v2/bot/info", line.base_url());
        let resp = reqwest::Client::new().get(&info).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let resp = reqwest::Client::new().get(&info).bearer_auth("right").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn retry_key_reuse_gets_409_with_original_sent_messages() {
        let line = StandIn::start().await;
        let (status, headers, first) = post(&line, "/v2/bot/message/push", &push_body(), Some(KEY)).await;
        assert_eq!(status, 200);
        let first_id = headers["x-line-request-id"].to_str().unwrap().to_string();

        let (status, headers, again) = post(&line, "/v2/bot/message/push", &push_body(), Some(KEY)).await;
        assert_eq!(status, 409);
        assert_eq!(again["message"], "The retry key is already accepted");
        assert_eq!(again["sentMessages"], first["sentMessages"]);
        assert_eq!(headers["x-line-accepted-request-id"].to_str().unwrap(), first_id);
        check_response("POST", "/v2/bot/message/push", status, &again);

        assert_eq!(line.requests().len(), 2);
        assert_eq!(line.accepted().len(), 1, "a 409 is not a new delivery");
        line.assert_all_valid();

        // a key that is not a UUID is refused like LINE does
        let (status, _, _) = post(&line, "/v2/bot/message/push", &push_body(), Some("not-a-uuid")).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn failed_attempt_does_not_burn_the_retry_key() {
        let line = StandIn::start().await;
        line.push_behaviour(Behaviour::Status(500, json!({ "message": "Internal Server Error" })));
        let (status, _, _) = post(&line, "/v2/bot/message/push", &push_body(), Some(KEY)).await;
        assert_eq!(status, 500);
        let (status, _, _) = post(&line, "/v2/bot/message/push", &push_body(), Some(KEY)).await;
        assert_eq!(status, 200);
        assert_eq!(line.accepted().len(), 1);
    }

    // --- counting and the monthly quota (issue #17) ---------------------------

    const USER: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const GROUP: &str = "Ca56f94637c4b2a3e9d8f7e6d5c4b3a21";
    const ROOM: &str = "Rb1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6";

    fn push_to(to: &str, messages: usize) -> Value {
        let messages: Vec<Value> = (0..messages).map(|i| text(&format!("m{i}"))).collect();
        json!({ "to": to, "messages": messages })
    }

    fn multicast_to(ids: &[&str]) -> Value {
        json!({ "to": ids, "messages": [text("a"), text("b")] })
    }

    async fn total_usage(line: &StandIn) -> i64 {
        let (status, answer) = get(line, "/v2/bot/message/quota/consumption").await;
        assert_eq!(status, 200, "{answer}");
        check_response("GET", "/v2/bot/message/quota/consumption", status, &answer);
        answer["totalUsage"].as_i64().expect("totalUsage")
    }

    /// LINE bills recipients, not message objects: a push of five to a user costs 1, a
    /// multicast to three costs 3, a push to a group or room its member count; a reply is free.
    #[tokio::test]
    async fn line_counts_one_message_per_recipient_per_request() {
        let line = StandIn::start().await;
        line.set_quota(None, 100);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(USER, 5), None).await.0, 200);
        assert_eq!((line.messages_counted(), line.messages_to(USER)), (1, 1), "five message objects, one recipient");

        let ids = ["U11111111111111111111111111111111", "U22222222222222222222222222222222", USER];
        assert_eq!(post(&line, "/v2/bot/message/multicast", &multicast_to(&ids), None).await.0, 200);
        assert_eq!(line.messages_counted(), 4);
        assert_eq!((line.messages_to(ids[0]), line.messages_to(ids[1]), line.messages_to(USER)), (1, 1, 2));

        line.set_member_count(GROUP, 7);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(GROUP, 2), None).await.0, 200);
        assert_eq!((line.messages_counted(), line.messages_to(GROUP)), (11, 7), "a group costs its members");
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(ROOM, 1), None).await.0, 200);
        assert_eq!(line.messages_to(ROOM), DEFAULT_MEMBER_COUNT, "an unset room has the default");
        assert_eq!(line.messages_counted(), 11 + DEFAULT_MEMBER_COUNT);

        let reply = json!({ "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", "messages": [text("hi")] });
        assert_eq!(post(&line, "/v2/bot/message/reply", &reply, None).await.0, 200);
        assert_eq!(line.messages_counted(), 11 + DEFAULT_MEMBER_COUNT, "replies are free");

        // totalUsage is the month's usage: what set_quota started from plus what was counted.
        assert_eq!(total_usage(&line).await, 100 + 11 + DEFAULT_MEMBER_COUNT);
        assert_eq!(line.quota_used(), 100 + 11 + DEFAULT_MEMBER_COUNT);
        line.assert_all_valid();
    }

    /// A retry answered 409 was paid for by the request LINE accepted: it costs nothing.
    #[tokio::test]
    async fn a_duplicate_answered_409_costs_nothing() {
        let line = StandIn::start().await;
        line.set_quota(Some(1000), 0);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(GROUP, 1), Some(KEY)).await.0, 200);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(GROUP, 1), Some(KEY)).await.0, 409);
        let other = "123e4567-e89b-12d3-a456-426614174001";
        let ids = ["U11111111111111111111111111111111", USER];
        assert_eq!(post(&line, "/v2/bot/message/multicast", &multicast_to(&ids), Some(other)).await.0, 200);
        assert_eq!(post(&line, "/v2/bot/message/multicast", &multicast_to(&ids), Some(other)).await.0, 409);
        assert_eq!(line.messages_counted(), DEFAULT_MEMBER_COUNT + 2);
        assert_eq!((line.messages_to(GROUP), line.messages_to(USER)), (DEFAULT_MEMBER_COUNT, 1));
        assert_eq!(total_usage(&line).await, DEFAULT_MEMBER_COUNT + 2);
        // Still a duplicate once the quota is spent: LINE recognises the key first.
        line.set_quota(Some(1000), 1000);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(GROUP, 1), Some(KEY)).await.0, 409);
        assert_eq!(line.accepted().iter().filter(|r| r.method == "POST").count(), 2);
        line.assert_all_valid();
    }

    /// Past the limit, push and multicast get LINE's monthly-limit 429 (the one the gateway
    /// tells from a rate limit), nothing is counted, and a request that costs more than is
    /// left is refused whole.
    #[tokio::test]
    async fn past_the_monthly_limit_push_and_multicast_get_429_and_cost_nothing() {
        use mail2line::line::outcome::{classify, Outcome, RetryReason};

        let line = StandIn::start().await;
        line.set_quota(Some(10), 8);
        let ids = ["U11111111111111111111111111111111", "U22222222222222222222222222222222", USER];
        let (status, headers, answer) = post(&line, "/v2/bot/message/multicast", &multicast_to(&ids), Some(KEY)).await;
        assert_eq!((status, &answer), (429, &json!({ "message": "You have reached your monthly limit." })));
        assert_eq!(answer["message"], MONTHLY_LIMIT_MESSAGE);
        assert!(headers.contains_key("x-line-request-id"));
        check_response("POST", "/v2/bot/message/multicast", status, &answer);
        let body = serde_json::to_vec(&answer).unwrap();
        assert!(matches!(
            classify(status, &body, None, None),
            Outcome::Retry { reason: RetryReason::QuotaExhausted, .. }
        ));
        assert_eq!(total_usage(&line).await, 8, "a refused request costs nothing");
        assert_eq!((line.messages_counted(), line.messages_to(USER)), (0, 0));

        // A group of 3 with 2 left is refused whole; two users fit, a third does not.
        let (status, _, answer) = post(&line, "/v2/bot/message/push", &push_to(GROUP, 1), None).await;
        assert_eq!((status, answer["message"].as_str()), (429, Some(MONTHLY_LIMIT_MESSAGE)));
        check_response("POST", "/v2/bot/message/push", status, &answer);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(USER, 5), None).await.0, 200);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(ids[0], 1), None).await.0, 200);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(ids[1], 1), None).await.0, 429);
        assert_eq!(total_usage(&line).await, 10);
        assert_eq!(line.messages_counted(), 2);

        // Refusals are not accepted, and the refused key was not burned: with room again
        // (next month), the same retry key is accepted.
        let pushes = line.requests_to("/v2/bot/message/push");
        let statuses: Vec<u16> = pushes.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200, 200, 429]);
        assert_eq!(line.requests_to("/v2/bot/message/multicast")[0].status, 429);
        assert_eq!(line.accepted().iter().filter(|r| r.method == "POST").count(), 2);
        line.set_quota(Some(10), 0);
        assert_eq!(post(&line, "/v2/bot/message/multicast", &multicast_to(&ids), Some(KEY)).await.0, 200);
        assert_eq!((line.messages_counted(), total_usage(&line).await), (5, 3));

        // A scripted refusal is answered as scripted; a scripted acceptance meets the quota.
        line.set_quota(Some(10), 10);
        line.push_behaviour(Behaviour::Status(500, json!({ "message": "Internal Server Error" })));
        line.push_behaviour(Behaviour::AcceptThenDrop);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_to(USER, 1), None).await.0, 500);
        let (status, _, answer) = post(&line, "/v2/bot/message/push", &push_to(USER, 1), None).await;
        assert_eq!((status, answer["message"].as_str()), (429, Some(MONTHLY_LIMIT_MESSAGE)), "answered, not dropped");
        assert_eq!(line.messages_counted(), 5);
        line.assert_all_valid();
    }

    /// `members/count` for groups and rooms: per spec, the set count or the default, behind
    /// the bearer token, and recorded so tests can tell how often the gateway asked.
    #[tokio::test]
    async fn members_count_answers_per_spec() {
        let line = StandIn::start().await;
        line.set_member_count(GROUP, 12);
        let group_path = format!("/v2/bot/group/{GROUP}/members/count");
        let (status, answer) = get(&line, &group_path).await;
        assert_eq!((status, &answer), (200, &json!({ "count": 12 })));
        check_response("GET", &group_path, status, &answer);

        let room_path = format!("/v2/bot/room/{ROOM}/members/count");
        let (status, answer) = get(&line, &room_path).await;
        assert_eq!((status, &answer), (200, &json!({ "count": DEFAULT_MEMBER_COUNT })));
        check_response("GET", &room_path, status, &answer);
        line.set_member_count(ROOM, 2);
        assert_eq!(get(&line, &room_path).await, (200, json!({ "count": 2 })));

        let resp = reqwest::Client::new().get(format!("{}{group_path}", line.base_url())).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "the bearer token is required");
        assert_eq!(get(&line, "/v2/bot/group//members/count").await.0, 404);

        assert_eq!(line.requests_to(&group_path).len(), 2);
        assert_eq!(line.requests_to(&room_path).len(), 2);
        assert_eq!(line.messages_counted(), 0, "asking costs nothing");
        // Member-count reads are quota reads, kept out of `requests()`.
        assert!(line.requests().iter().all(|r| !r.path.ends_with("/members/count")));
        let errors: Vec<Vec<String>> = line.quota_reads().into_iter().map(|r| r.spec_errors).collect();
        assert!(errors[..3].iter().all(Vec::is_empty), "{errors:?}");
        assert!(errors[3][0].contains("Authorization"), "{errors:?}");
    }

    #[tokio::test]
    async fn scripted_statuses_then_ok() {
        let line = StandIn::start().await;
        let too_many = json!({ "message": "Too Many Requests" });
        let invalid = json!({ "message": "The property, 'to', in the request body is invalid (line: -, column: -)" });
        line.push_behaviour(Behaviour::Status(429, too_many.clone()));
        line.push_behaviour(Behaviour::Status(400, invalid.clone()));
        line.push_behaviour(Behaviour::Status(500, json!({ "message": "Internal Server Error" })));

        // a profile lookup in between does not consume the delivery script
        assert_eq!(get(&line, "/v2/bot/profile/U1").await.0, 200);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, _, answer) = post(&line, "/v2/bot/message/push", &push_body(), None).await;
            if status == 429 {
                assert_eq!(answer, too_many);
            }
            if status == 400 {
                assert_eq!(answer, invalid);
            }
            if status == 200 {
                check_response("POST", "/v2/bot/message/push", status, &answer);
            } else if let Some(spec) = Spec::load("messaging-api.yml") {
                // 500 is not documented for push, but LINE's error shape is
                spec.validate_schema("ErrorResponse", &answer).unwrap();
            }
            statuses.push(status);
        }
        assert_eq!(statuses, [429, 400, 500, 200]);
        assert_eq!(line.accepted().len(), 2); // the profile GET and the final push
        line.assert_all_valid(); // scripted failures are not the client's fault
    }

    #[tokio::test]
    async fn default_behaviour_applies_to_every_request() {
        let line = StandIn::start().await;
        line.set_default(Behaviour::Status(503, json!({ "message": "Service Unavailable" })));
        assert_eq!(get(&line, "/v2/bot/profile/U1").await.0, 503);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_body(), None).await.0, 503);
        line.set_default(Behaviour::Ok);
        assert_eq!(post(&line, "/v2/bot/message/push", &push_body(), None).await.0, 200);
    }

    #[tokio::test]
    async fn delay_then_ok() {
        let line = StandIn::start().await;
        line.push_behaviour(Behaviour::Delay(Duration::from_millis(300)));
        let started = Instant::now();
        let (status, _, _) = post(&line, "/v2/bot/message/push", &push_body(), None).await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn accept_then_drop_closes_without_answer_but_counts_as_delivered() {
        let line = StandIn::start().await;
        line.push_behaviour(Behaviour::AcceptThenDrop);
        let client = reqwest::Client::new();
        let url = format!("{}/v2/bot/message/push", line.base_url());
        let send = || client.post(&url).bearer_auth(TOKEN).header("X-Line-Retry-Key", KEY).json(&push_body()).send();

        let err = send().await.expect_err("connection must close without a response");
        assert!(!err.is_timeout(), "{err:?}");
        let accepted = line.accepted();
        assert_eq!(accepted.len(), 1);
        assert!(accepted[0].dropped);

        // the client's retry with the same key learns it was delivered
        let resp = send().await.expect("server still serves after a drop");
        assert_eq!(resp.status().as_u16(), 409);
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["sentMessages"][0]["id"], "1");
        assert_eq!(line.accepted().len(), 1);
    }

    /// The fault mix: seeded, every kind at rate 1, a late answer is accepted before it is
    /// due (a retry meanwhile gets 409), scripted behaviours come first, and only deliveries draw.
    #[tokio::test]
    async fn random_faults_are_seeded_counted_and_late_ones_are_accepted_at_once() {
        let faults = Faults { rate: 1.0, seed: 5, slow: Duration::from_millis(10), late: Duration::from_millis(1500) };
        let line = StandIn::start().await;
        line.set_faults(Some(faults.clone()));
        line.push_behaviour(Behaviour::Status(503, json!({"message": "scripted"})));
        let url = format!("{}/v2/bot/message/push", line.base_url());
        let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
        let key = |n: u32| format!("123e4567-e89b-12d3-a456-{n:012}");
        let send = |k: String| client.post(&url).bearer_auth(TOKEN).header("X-Line-Retry-Key", k).json(&push_body()).send();
        let first = send(key(0)).await.unwrap();
        assert_eq!(first.status().as_u16(), 503, "the script comes before the faults");
        client.get(format!("{}/v2/bot/info", line.base_url())).bearer_auth(TOKEN).send().await.unwrap();
        let mut late_key = None;
        for n in 1..=40 {
            let _ = send(key(n)).await;
            let last = line.requests_to("/v2/bot/message/push").pop();
            if let Some(r) = last.filter(|r| r.fault == Some(Fault::Late)) {
                late_key = Some(key(n));
                assert!(r.is_accepted());
            }
        }
        let (draws, drawn) = line.faults_drawn();
        assert_eq!(draws, 40, "the scripted push and the GET draw nothing");
        assert_eq!(drawn.values().sum::<u64>(), 40, "rate 1: every draw is a fault");
        assert_eq!(drawn.len(), Fault::ALL.len(), "40 draws hit every kind: {drawn:?}");
        // A late answer is past the client's timeout, but LINE took it: the retry gets 409.
        let late_key = late_key.expect("a late fault among 40");
        let retry = send(late_key).await.unwrap();
        assert_eq!(retry.status().as_u16(), 409);

        // The same seed draws the same faults.
        let again = StandIn::start().await;
        again.set_faults(Some(faults));
        let url2 = format!("{}/v2/bot/message/push", again.base_url());
        for n in 1..=10 {
            let _ = client.post(&url2).bearer_auth(TOKEN).header("X-Line-Retry-Key", key(n)).json(&push_body()).send().await;
        }
        let kinds = |l: &StandIn| l.requests_to("/v2/bot/message/push").iter().filter_map(|r| r.fault).take(10).collect::<Vec<_>>();
        let first_ten: Vec<Fault> = kinds(&line).into_iter().take(10).collect();
        assert_eq!(kinds(&again), first_ten);
        line.assert_all_valid();
    }

    #[tokio::test]
    async fn wait_for_sees_requests_made_concurrently() {
        let line = StandIn::start().await;
        let url = format!("{}/v2/bot/message/push", line.base_url());
        tokio::spawn(async move {
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                reqwest::Client::new().post(&url).bearer_auth(TOKEN).json(&push_body()).send().await.unwrap();
            }
        });
        let got = line.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn wait_for_panics_on_timeout() {
        let line = StandIn::start().await;
        line.wait_for(1, Duration::from_millis(50)).await;
    }

    // --- token endpoints --------------------------------------------------

    use super::support::keys::{TestKey, CHANNEL_ID, KID};

    const CHANNEL_SECRET: &str = "selftest-channel-secret";

    /// A client assertion as the gateway builds it, with `edit` applied to the claims.
    fn assertion(kid: &str, edit: impl FnOnce(&mut Value)) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut claims = json!({ "iss": CHANNEL_ID, "sub": CHANNEL_ID, "aud": "https://api.line.me/", "exp": now + 1500, "token_exp": 86400 });
        edit(&mut claims);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(TestKey::shared().pkcs1_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    async fn token_line() -> StandIn {
        let line = StandIn::start().await;
        line.set_channel(TestKey::shared().channel(CHANNEL_SECRET));
        line
    }

    async fn post_form(line: &StandIn, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = reqwest::Client::new().post(format!("{}{path}", line.base_url())).form(form).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn issue_v21(line: &StandIn, jwt: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", jwt),
        ];
        post_form(line, "/oauth2/v2.1/token", &form).await
    }

    async fn push_with(line: &StandIn, token: &str) -> u16 {
        let url = format!("{}/v2/bot/message/push", line.base_url());
        reqwest::Client::new().post(url).bearer_auth(token).json(&push_body()).send().await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn issued_v21_tokens_are_what_message_requests_need() {
        let line = token_line().await;
        let (status, answer) = issue_v21(&line, &assertion(KID, |_| {})).await;
        assert_eq!(status, 200, "{answer}");
        if let Some(spec) = Spec::load("channel-access-token.yml") {
            spec.validate_response("POST", "/oauth2/v2.1/token", 200, &answer).unwrap();
        }
        assert_eq!(answer["expires_in"], 86400, "LINE grants the asked token_exp");
        let token = answer["access_token"].as_str().unwrap().to_owned();
        let issued = line.issued_tokens();
        assert_eq!((issued.len(), issued[0].token.as_str(), issued[0].kind), (1, token.as_str(), "v2.1"));
        let recorded = &line.token_requests()[0];
        assert_eq!(recorded.body["grant_type"], "client_credentials", "the form is recorded decoded");

        assert_eq!(push_with(&line, &token).await, 200);
        assert_eq!(push_with(&line, "never-issued").await, 401);
        line.revoke_tokens();
        assert_eq!(push_with(&line, &token).await, 401);
        let pushes = line.requests_to("/v2/bot/message/push");
        assert!(pushes[1].spec_errors[0].contains("never issued"), "{:?}", pushes[1].spec_errors);
        assert!(pushes[2].spec_errors.is_empty() && pushes[2].notes[0].contains("revoked"), "{:?}", pushes[2]);
    }

    #[tokio::test]
    async fn tokens_expire_after_expires_in() {
        let line = token_line().await;
        line.set_token_expires_in(1);
        let (_, answer) = post_form(
            &line,
            "/oauth2/v3/token",
            &[("grant_type", "client_credentials"), ("client_id", CHANNEL_ID), ("client_secret", CHANNEL_SECRET)],
        )
        .await;
        assert_eq!(answer["expires_in"], 1);
        let token = answer["access_token"].as_str().unwrap().to_owned();
        assert_eq!(push_with(&line, &token).await, 200);
        while line.issued_tokens()[0].is_valid() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(push_with(&line, &token).await, 401);
        assert!(line.requests_to("/v2/bot/message/push")[1].notes[0].contains("expired"));
        line.assert_all_valid();
    }

    #[tokio::test]
    async fn bad_token_requests_are_refused_like_line() {
        let line = token_line().await;
        let expect = |status: u16, answer: &Value, code: &str| {
            assert_eq!((status, answer["error"].as_str()), (400, Some(code)), "{answer}");
        };
        // Missing client_assertion: the spec check.
        let (status, answer) = post_form(
            &line,
            "/oauth2/v2.1/token",
            &[("grant_type", "client_credentials"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")],
        )
        .await;
        expect(status, &answer, "invalid_request");
        if line.spec_checked() {
            let errors = &line.token_requests()[0].spec_errors;
            assert!(errors.iter().any(|e| e.contains("client_assertion")), "{errors:?}");
        }
        // Wrong kid, a tampered signature, an assertion living too long, a missing token_exp.
        let (status, answer) = issue_v21(&line, &assertion("other-kid", |_| {})).await;
        expect(status, &answer, "invalid_client");
        assert!(answer["error_description"].as_str().unwrap().contains("kid"), "{answer}");
        // Flip the signature's first character: every bit of it is significant, unlike the
        // last one, whose low bits are padding and may make the base64 itself invalid.
        let mut tampered = assertion(KID, |_| {});
        let at = tampered.rfind('.').unwrap() + 1;
        let first = if tampered[at..].starts_with('A') { "B" } else { "A" };
        tampered.replace_range(at..at + 1, first);
        let (status, answer) = issue_v21(&line, &tampered).await;
        expect(status, &answer, "invalid_client");
        assert!(answer["error_description"].as_str().unwrap().contains("InvalidSignature"), "{answer}");
        let (status, answer) = issue_v21(&line, &assertion(KID, |c| c["exp"] = json!(c["exp"].as_u64().unwrap() + 3600))).await;
        expect(status, &answer, "invalid_client");
        assert!(answer["error_description"].as_str().unwrap().contains("30 minutes"), "{answer}");
        let (status, answer) = issue_v21(&line, &assertion(KID, |c| drop(c.as_object_mut().unwrap().remove("token_exp")))).await;
        expect(status, &answer, "invalid_client");
        let (status, answer) = issue_v21(&line, &assertion(KID, |c| c["aud"] = json!("https://api.line.me"))).await;
        expect(status, &answer, "invalid_client");
        // Wrong channel secret for a stateless token; JSON instead of a form.
        let (status, answer) = post_form(
            &line,
            "/oauth2/v3/token",
            &[("grant_type", "client_credentials"), ("client_id", CHANNEL_ID), ("client_secret", "wrong")],
        )
        .await;
        expect(status, &answer, "invalid_client");
        let resp = reqwest::Client::new()
            .post(format!("{}/oauth2/v3/token", line.base_url()))
            .json(&json!({ "grant_type": "client_credentials", "client_id": CHANNEL_ID, "client_secret": CHANNEL_SECRET }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        assert!(line.issued_tokens().is_empty());
        let panic = std::panic::catch_unwind(|| line.assert_all_valid()).expect_err("refused token requests are violations");
        assert!(panic.downcast_ref::<String>().is_some_and(|m| m.contains("/oauth2/")));
    }

    #[tokio::test]
    async fn token_script_does_not_touch_deliveries() {
        let line = token_line().await;
        line.push_token_behaviour(Behaviour::Status(503, json!({ "error": "server_error" })));
        line.set_default(Behaviour::Status(500, json!({ "message": "Internal Server Error" })));
        let (status, _) = issue_v21(&line, &assertion(KID, |_| {})).await;
        assert_eq!(status, 503);
        let (status, answer) = issue_v21(&line, &assertion(KID, |_| {})).await;
        assert_eq!(status, 200, "token requests ignore set_default: {answer}");
    }

    #[tokio::test]
    async fn wrong_content_type_is_a_violation() {
        let line = StandIn::start().await;
        let resp = reqwest::Client::new()
            .post(format!("{}/v2/bot/message/push", line.base_url()))
            .bearer_auth(TOKEN)
            .body(push_body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        assert!(line.requests()[0].spec_errors[0].contains("Content-Type"));
    }

    /// A GET with the test token; status, `Content-Type` and the raw body.
    async fn get_raw(line: &StandIn, path: &str) -> (u16, String, Vec<u8>) {
        let resp = reqwest::Client::new().get(format!("{}{path}", line.base_url())).bearer_auth(TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, content_type, resp.bytes().await.unwrap().to_vec())
    }

    /// Content by message id: the registered bytes and type, 404 for an unknown id (LINE's
    /// answer, not a client error), its own script, and the path checked against the spec.
    #[tokio::test]
    async fn content_is_served_by_id_and_scripted_on_its_own() {
        let line = StandIn::start().await;
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        line.put_content("325708", "image/jpeg", &bytes);
        let path = "/v2/bot/message/325708/content";
        assert_eq!(get_raw(&line, path).await, (200, "image/jpeg".to_owned(), bytes.clone()));

        let (status, _, body) = get_raw(&line, "/v2/bot/message/999/content").await;
        assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (404, json!({ "message": "Not found" })));

        // Two 500s, then LINE's 202 while a video is prepared, then the content. A delivery
        // in between neither eats the content script nor is touched by it.
        line.push_content_behaviour(Behaviour::Status(500, json!({ "message": "Internal server error" })));
        line.push_content_behaviour(Behaviour::Status(500, json!({ "message": "Internal server error" })));
        line.push_content_behaviour(Behaviour::Status(202, json!({})));
        assert_eq!(post(&line, "/v2/bot/message/push", &push_body(), None).await.0, 200);
        let statuses: Vec<u16> = [get_raw(&line, path).await.0, get_raw(&line, path).await.0, get_raw(&line, path).await.0, get_raw(&line, path).await.0].into();
        assert_eq!(statuses, [500, 500, 202, 200]);
        line.push_behaviour(Behaviour::Status(503, json!({ "message": "x" })));
        assert_eq!(get_raw(&line, path).await.0, 200, "the delivery script is not the content's");

        let resp = reqwest::Client::new().get(format!("{}{path}", line.base_url())).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "the bearer token is required");
        let errors: Vec<(u16, Vec<String>)> = line.requests_to(path).into_iter().map(|r| (r.status, r.spec_errors)).collect();
        assert!(errors.iter().all(|(status, e)| if *status == 401 { e[0].contains("Authorization") } else { e.is_empty() }), "{errors:?}");
        // Content requests are checked against messaging-api.yml, which documents them:
        // the path is a known operation there, not exempt from the check.
        if let Some(spec) = Spec::load("messaging-api.yml") {
            assert_eq!(spec.operation_template("GET", path).as_deref(), Ok("/v2/bot/message/{messageId}/content"));
        }

        if line.spec_checked() {
            // A path next to it that LINE does not have is still a client bug.
            assert_eq!(get_raw(&line, "/v2/bot/message/325708/contents").await.0, 404);
            let bad = line.requests_to("/v2/bot/message/325708/contents");
            assert!(bad[0].spec_errors[0].contains("no path"), "{:?}", bad[0].spec_errors);
        }
    }

    /// `POST /v2/bot/chat/markAsRead`: 200 `{}` for the documented body, 400 and a spec error
    /// for another; it costs nothing and is not a delivery.
    #[tokio::test]
    async fn mark_as_read_is_checked_like_every_post() {
        let line = StandIn::start().await;
        let path = "/v2/bot/chat/markAsRead";
        line.push_behaviour(Behaviour::Status(500, json!({ "message": "for the next delivery" })));
        let (status, _, answer) = post(&line, path, &json!({ "markAsReadToken": "30yhdy232" }), None).await;
        assert_eq!((status, &answer), (200, &json!({})));
        // The spec documents a 200 without a body; LINE answers `{}`, as the stand-in does.
        check_response("POST", path, status, &Value::Null);
        assert_eq!(line.messages_counted(), 0);
        line.assert_all_valid();
        assert_eq!(post(&line, "/v2/bot/message/push", &push_body(), None).await.0, 500, "the script was left to the delivery");

        if line.spec_checked() {
            let (status, _, _) = post(&line, path, &json!({ "token": "30yhdy232" }), None).await;
            assert_eq!(status, 400);
            let r = line.requests_to(path).pop().unwrap();
            assert!(r.spec_errors.iter().any(|e| e.contains("markAsReadToken")), "{:?}", r.spec_errors);
        }
    }

    /// Names: the profile answers a set name (else `User <prefix>`); the member routes answer it
    /// per spec and 404 for a user without one.
    #[tokio::test]
    async fn member_names_are_the_names_set() {
        let line = StandIn::start().await;
        let taro = "U4af4980629a1b2c3d4e5f60718293a4b";
        line.set_display_name(taro, "LINE taro");
        for path in [format!("/v2/bot/group/{GROUP}/member/{taro}"), format!("/v2/bot/room/{ROOM}/member/{taro}"), format!("/v2/bot/profile/{taro}")] {
            let (status, answer) = get(&line, &path).await;
            assert_eq!((status, &answer), (200, &json!({ "displayName": "LINE taro", "userId": taro })), "{path}");
            check_response("GET", &path, status, &answer);
        }
        let (status, answer) = get(&line, "/v2/bot/profile/U99aa00").await;
        assert_eq!((status, &answer["displayName"]), (200, &json!("User U99aa0")));
        let unknown = format!("/v2/bot/group/{GROUP}/member/U99aa00");
        assert_eq!(get(&line, &unknown).await, (404, json!({ "message": "Not found" })));
        line.assert_all_valid();
    }
}

// ---------------------------------------------------------------------------
// Webhook bodies
// ---------------------------------------------------------------------------

mod webhook_bodies {
    use mail2line::line::events::{CallbackRequest, Event, EventKind, MessageContent, Source};
    use serde_json::{json, Value};

    use super::support::spec::Spec;
    use super::support::webhook::{callback, validate, Message, Sender, BOT};

    const USER: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const GROUP: &str = "Ca56f94637c4b2a3e9d8f7e6d5c4b3a21";
    const ROOM: &str = "Rb1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6";

    fn senders() -> [Sender; 3] {
        [
            Sender::User(USER.into()),
            Sender::Group { group: GROUP.into(), user: USER.into() },
            Sender::Room { room: ROOM.into(), user: USER.into() },
        ]
    }

    /// The one event of a body built by `callback`, as the gateway parses it.
    fn parsed(body: &[u8]) -> Event {
        let request: CallbackRequest = serde_json::from_slice(body).unwrap();
        assert_eq!((request.destination.as_str(), request.events.len()), (BOT, 1));
        serde_json::from_value(request.events[0].clone()).unwrap()
    }

    /// Each builder's body passes `webhook.yml` (`callback` panics otherwise) and is what the
    /// gateway's parser reads as the intended message, from the intended chat.
    #[test]
    fn every_builder_makes_a_valid_body_the_gateway_reads_as_meant() {
        for sender in senders() {
            let messages = [
                Message::text(&sender, "01HZTEXT000000000000000001", "100", "On it").quoting("42"),
                Message::text(&sender, "01HZTEXT000000000000000002", "101", "unquoted"),
                Message::image(&sender, "01HZIMAGE00000000000000001", "102"),
                Message::video(&sender, "01HZVIDEO00000000000000001", "103", 12_000),
                Message::audio(&sender, "01HZAUDIO00000000000000001", "104", 3_000),
                Message::file(&sender, "01HZFILE000000000000000001", "105", "report.pdf", 2138),
                Message::sticker(&sender, "01HZSTICKER000000000000001", "106", "11537", "52002734", &["Hello", "wave"]).quoting("43"),
                Message::sticker(&sender, "01HZSTICKER000000000000002", "107", "446", "1988", &[]),
                Message::location(&sender, "01HZLOCATION00000000000001", "108", "my location", "1-3 Kioicho, Tokyo", 35.67966, 139.73669),
            ];
            for m in messages {
                let e = parsed(&callback(std::slice::from_ref(&m)));
                assert_eq!(e.webhook_event_id, m.event_id());
                assert!(!e.delivery_context.as_ref().unwrap().is_redelivery);
                let source = e.source.clone().unwrap();
                assert_eq!(source.chat_id(), Some(sender.chat()));
                let user = match &source {
                    Source::User { user_id } | Source::Group { user_id, .. } | Source::Room { user_id, .. } => user_id.clone(),
                };
                assert_eq!(user.as_deref(), Some(USER));
                let EventKind::Message { reply_token, message } = e.kind else { panic!("{:?}", e.kind) };
                assert_eq!(reply_token, Some(m.reply_token()));
                let expected_token = Message::mark_as_read_token_for(m.event_id());
                assert_eq!(message.mark_as_read_token(), Some(expected_token.as_str()));
                match (m.event_id(), &message) {
                    ("01HZTEXT000000000000000001", MessageContent::Text { id, text, quoted_message_id, .. }) => {
                        assert_eq!((id.as_str(), text.as_str(), quoted_message_id.as_deref()), ("100", "On it", Some("42")))
                    }
                    ("01HZTEXT000000000000000002", MessageContent::Text { quoted_message_id: None, .. }) => {}
                    ("01HZIMAGE00000000000000001", MessageContent::Image { id, .. }) => assert_eq!(id, "102"),
                    ("01HZVIDEO00000000000000001", MessageContent::Video { duration: Some(12_000), .. }) => {}
                    ("01HZAUDIO00000000000000001", MessageContent::Audio { duration: Some(3_000), .. }) => {}
                    ("01HZFILE000000000000000001", MessageContent::File { file_name, file_size: 2138, .. }) => assert_eq!(file_name, "report.pdf"),
                    ("01HZSTICKER000000000000001", MessageContent::Sticker { keywords, quoted_message_id, .. }) => {
                        assert_eq!((keywords.len(), quoted_message_id.as_deref()), (2, Some("43")))
                    }
                    ("01HZSTICKER000000000000002", MessageContent::Sticker { keywords, .. }) => assert!(keywords.is_empty()),
                    ("01HZLOCATION00000000000001", MessageContent::Location { latitude, longitude, .. }) => {
                        assert_eq!((*latitude, *longitude), (35.67966, 139.73669))
                    }
                    (event, other) => panic!("{event}: parsed as {other:?}"),
                }
            }
        }
        // Redelivered, and several events in one request.
        let [user, group, _] = senders();
        let again = Message::text(&user, "01HZTEXT000000000000000009", "109", "again").redelivered().at(1_462_629_479_859);
        let e = parsed(&callback(&[again]));
        assert!(e.delivery_context.unwrap().is_redelivery);
        assert_eq!(e.timestamp, 1_462_629_479_859);
        let two = callback(&[Message::image(&user, "01HZIMAGE00000000000000002", "110"), Message::image(&group, "01HZIMAGE00000000000000003", "111")]);
        assert_eq!(serde_json::from_slice::<CallbackRequest>(&two).unwrap().events.len(), 2);
    }

    /// The check bites: bodies LINE would not send are refused by `webhook.yml`'s schema.
    #[test]
    fn a_wrong_body_fails_the_schema() {
        if Spec::load("webhook.yml").is_none() {
            return;
        }
        let sender = Sender::Group { group: GROUP.into(), user: USER.into() };
        let good = |m: Message| -> Value { serde_json::from_slice(&callback(&[m])).unwrap() };
        let breakages: Vec<(&str, Value)> = vec![
            ("an image without its contentProvider", {
                let mut b = good(Message::image(&sender, "01HZIMAGE00000000000000004", "1"));
                b["events"][0]["message"].as_object_mut().unwrap().remove("contentProvider");
                b
            }),
            ("a provider LINE does not have", {
                let mut b = good(Message::video(&sender, "01HZVIDEO00000000000000004", "1", 5));
                b["events"][0]["message"]["contentProvider"]["type"] = json!("cloud");
                b
            }),
            ("a sticker without stickerResourceType", {
                let mut b = good(Message::sticker(&sender, "01HZSTICKER000000000000004", "1", "1", "2", &[]));
                b["events"][0]["message"].as_object_mut().unwrap().remove("stickerResourceType");
                b
            }),
            ("a location without its latitude", {
                let mut b = good(Message::location(&sender, "01HZLOCATION00000000000004", "1", "t", "a", 1.0, 2.0));
                b["events"][0]["message"].as_object_mut().unwrap().remove("latitude");
                b
            }),
            ("a quoted id misspelled", {
                let mut b = good(Message::text(&sender, "01HZTEXT000000000000000004", "1", "x"));
                b["events"][0]["message"]["quotedMessageID"] = json!("42");
                b
            }),
            ("a group source without its groupId", {
                let mut b = good(Message::text(&sender, "01HZTEXT000000000000000005", "1", "x"));
                b["events"][0]["source"].as_object_mut().unwrap().remove("groupId");
                b
            }),
            ("no deliveryContext", {
                let mut b = good(Message::file(&sender, "01HZFILE000000000000000004", "1", "a.txt", 1));
                b["events"][0].as_object_mut().unwrap().remove("deliveryContext");
                b
            }),
            ("a destination that is not a user id", {
                let mut b = good(Message::audio(&sender, "01HZAUDIO00000000000000004", "1", 1));
                b["destination"] = json!("bot");
                b
            }),
        ];
        for (what, body) in breakages {
            assert!(validate(&body).is_err(), "{what} passed the schema: {body:#}");
        }
    }

    #[test]
    #[should_panic(expected = "LINE quotes only in text and sticker messages")]
    fn only_text_and_stickers_quote() {
        let _ = Message::image(&Sender::User(USER.into()), "01HZIMAGE00000000000000005", "1").quoting("42");
    }
}
