//! The LINE webhook end to end: signed event JSON (shaped like `webhook.yml`'s examples and
//! validated against its `CallbackRequest` schema) posted with reqwest to the real binary's
//! `[http] listen` address → the follower registry on disk, and replies/profile lookups at a
//! stand-in LINE API that checks them against `messaging-api.yml`.

mod support;

use std::time::Duration;

use mail2line::followers::{Kind, Registry};
use serde_json::{json, Value};
use support::gateway::{addr, user, GatewayProcess, Options, SECRET, TOKEN};
use support::spec::Spec;
use support::standin::StandIn;
use support::webhook::{post as post_signed, post_to, sign};
use tokio::task::block_in_place;

/// The bot's own user id (`destination`).
const BOT: &str = "Uf0000000000000000000000000000b07";
const GROUP: &str = "Ca56f94637c30000000000000000000a1";
const ROOM: &str = "Ra8dbf4673c40000000000000000000b2";

async fn setup() -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, ..Default::default() }));
    (line, gw)
}

fn registry(gw: &GatewayProcess) -> Registry {
    Registry::open_existing(&gw.dir.path().join("data")).expect("the gateway created the registry")
}

/// An event time `offset_ms` after a base taken once per test binary: recent, since the
/// gateway refuses events older than its event-id memory (two days) as replays.
fn ts(offset_ms: i64) -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        now - now % 1000 - 3_600_000
    }) + offset_ms
}

fn user_source(id: &str) -> Value {
    json!({"type": "user", "userId": id})
}

/// One event with the fields every event has; `extra` adds the type-specific ones.
fn event(kind: &str, event_id: &str, timestamp: i64, source: Value, extra: Value) -> Value {
    let mut e = json!({
        "type": kind,
        "mode": "active",
        "timestamp": timestamp,
        "source": source,
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": false},
    });
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e
}

fn follow(id: &str, event_id: &str, ts: i64, reply_token: &str, unblocked: bool) -> Value {
    event("follow", event_id, ts, user_source(id), json!({"replyToken": reply_token, "follow": {"isUnblocked": unblocked}}))
}

fn text_message(source: Value, event_id: &str, reply_token: &str, text: &str) -> Value {
    event(
        "message",
        event_id,
        ts(0),
        source,
        json!({"replyToken": reply_token, "message": {"id": "444573844083572737", "type": "text", "quoteToken": "q3Plxr4AgKd", "text": text}}),
    )
}

/// `{destination, events}`, checked against webhook.yml so the inputs are real LINE shapes.
fn callback(events: Vec<Value>) -> Vec<u8> {
    let body = json!({"destination": BOT, "events": events});
    if let Some(spec) = Spec::load("webhook.yml") {
        if let Err(e) = spec.validate_schema("CallbackRequest", &body) {
            panic!("test input is not a LINE webhook body: {e:#?}\n{body:#}");
        }
    }
    serde_json::to_vec(&body).unwrap()
}

/// POSTs `body` to the webhook; `signature` None sends no header.
async fn post(gw: &GatewayProcess, body: Vec<u8>, signature: Option<String>, content_type: &str) -> (u16, String) {
    post_to(gw, "/webhook", body, signature, content_type).await
}


fn welcome(name: &str, address: &str) -> String {
    format!("Hello {name}! Mail sent to {address} reaches you here on LINE.")
}

fn reply_body(token: &str, text: &str) -> Value {
    json!({"replyToken": token, "messages": [{"type": "text", "text": text}]})
}

/// Waits until the stand-in saw `n` requests, then a little longer to catch any extra ones.
async fn settle(line: &StandIn, n: usize) -> Vec<support::standin::Recorded> {
    line.wait_for(n, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    line.requests()
}

fn assert_no_secrets(gw: &GatewayProcess, signatures: &[&str]) {
    let logs = gw.logs();
    assert!(!logs.contains(TOKEN), "token in the logs");
    assert!(!logs.contains(SECRET), "channel secret in the logs");
    for s in signatures {
        assert!(!logs.contains(s), "signature {s} in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_unfollow_refollow_with_welcome_and_redelivery() {
    let (line, gw) = setup().await;
    let u = user(1);

    let first = follow(&u, "01HZFOLLOW00000000000000A1", ts(0), "rtFollow1", false);
    let (status, _) = post_signed(&gw, callback(vec![first.clone()])).await;
    assert_eq!(status, 200);
    // Recorded before the 200.
    let f = registry(&gw).get(&u).unwrap().expect("follower recorded");
    assert_eq!((f.kind, f.active, f.followed_at), (Kind::User, true, ts(0)));

    // Profile lookup, then the welcome reply with the profile's name and the address.
    let reqs = settle(&line, 2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.clone()), ("GET", format!("/v2/bot/profile/{u}")));
    assert_eq!(reqs[1].path, "/v2/bot/message/reply");
    assert_eq!(reqs[1].body, reply_body("rtFollow1", &welcome("User U00000", &addr(&u))));
    assert_eq!(registry(&gw).get(&u).unwrap().unwrap().display_name, "User U00000");

    // LINE redelivers the same event: nothing changes, no second reply.
    let mut again = first.clone();
    again["deliveryContext"]["isRedelivery"] = json!(true);
    assert_eq!(post_signed(&gw, callback(vec![again])).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(line.requests().len(), 2, "a redelivery is not answered again");

    // Blocked: kept, inactive.
    let unfollow = event("unfollow", "01HZUNFOLLOW000000000000A2", ts(100000), user_source(&u), json!({}));
    assert_eq!(post_signed(&gw, callback(vec![unfollow])).await.0, 200);
    let f = registry(&gw).get(&u).unwrap().unwrap();
    assert_eq!((f.active, f.unfollowed_at, f.display_name.as_str()), (false, Some(ts(100000)), "User U00000"));

    // Unblocked: active again, greeted again.
    let unblock = follow(&u, "01HZFOLLOW00000000000000A3", ts(200000), "rtFollow2", true);
    assert_eq!(post_signed(&gw, callback(vec![unblock])).await.0, 200);
    let f = registry(&gw).get(&u).unwrap().unwrap();
    assert_eq!((f.active, f.followed_at, f.unfollowed_at), (true, ts(200000), None));
    let reqs = settle(&line, 4).await;
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[3].body, reply_body("rtFollow2", &welcome("User U00000", &addr(&u))));

    line.assert_all_valid();
    assert_no_secrets(&gw, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_groups_and_rooms() {
    let (line, gw) = setup().await;
    let join_group = event("join", "01HZJOIN0000000000000000B1", ts(0), json!({"type": "group", "groupId": GROUP}), json!({"replyToken": "rtJoinG"}));
    let join_room = event("join", "01HZJOIN0000000000000000B2", ts(1), json!({"type": "room", "roomId": ROOM}), json!({"replyToken": "rtJoinR"}));
    assert_eq!(post_signed(&gw, callback(vec![join_group, join_room])).await.0, 200);
    let reg = registry(&gw);
    let g = reg.get(GROUP).unwrap().unwrap();
    let r = reg.get(ROOM).unwrap().unwrap();
    assert_eq!((g.kind, g.active, r.kind, r.active), (Kind::Group, true, Kind::Room, true));

    // No profile lookup for groups; the welcome has an empty name and the group's address.
    let reqs = settle(&line, 2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let mut bodies: Vec<Value> = reqs.iter().map(|r| r.body.clone()).collect();
    bodies.sort_by_key(|b| b["replyToken"].as_str().unwrap().to_owned());
    assert_eq!(bodies, vec![reply_body("rtJoinG", &welcome("", &addr(GROUP))), reply_body("rtJoinR", &welcome("", &addr(ROOM)))]);

    let leave = event("leave", "01HZLEAVE000000000000000B3", ts(300000), json!({"type": "group", "groupId": GROUP}), json!({}));
    assert_eq!(post_signed(&gw, callback(vec![leave])).await.0, 200);
    let g = registry(&gw).get(GROUP).unwrap().unwrap();
    assert_eq!((g.active, g.unfollowed_at), (false, Some(ts(300000))));
    assert!(registry(&gw).is_active(ROOM).unwrap());
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_keyword_is_answered_and_unknown_events_are_skipped() {
    let (line, gw) = setup().await;
    let u = user(2);
    let sticker = event(
        "message",
        "01HZMSG00000000000000000C3",
        ts(0),
        user_source(&u),
        json!({"replyToken": "rtSticker", "message": {"id": "1", "type": "sticker", "packageId": "446", "stickerId": "1988", "stickerResourceType": "STATIC", "quoteToken": "q"}}),
    );
    let unsend = event("unsend", "01HZUNSEND00000000000000C4", ts(0), user_source(&u), json!({"unsend": {"messageId": "325708"}}));
    let events = vec![
        text_message(user_source(&u), "01HZMSG00000000000000000C1", "rtAsk", "What is my ADDRESS?"),
        text_message(user_source(&u), "01HZMSG00000000000000000C2", "rtChat", "hello there"),
        sticker,
        unsend,
        text_message(json!({"type": "group", "groupId": GROUP, "userId": u}), "01HZMSG00000000000000000C6", "rtGroup", "メールアドレスは？"),
    ];
    // An event type LINE may add in future is not in webhook.yml, so it joins after the check.
    let mut body: Value = serde_json::from_slice(&callback(events)).unwrap();
    let mut future = event("someFutureEvent", "01HZFUTURE00000000000000C5", ts(0), user_source(&u), json!({"brandNew": {"x": 1}}));
    future["anotherNewField"] = json!(true);
    body["events"].as_array_mut().unwrap().insert(2, future);
    body["events"].as_array_mut().unwrap().insert(3, json!({"type": "follow", "malformed": true}));
    let (status, _) = post_signed(&gw, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 200);
    let reqs = settle(&line, 2).await;
    assert_eq!(reqs.len(), 2, "only the two questions are answered: {reqs:#?}");
    let mut bodies: Vec<Value> = reqs.iter().map(|r| r.body.clone()).collect();
    bodies.sort_by_key(|b| b["replyToken"].as_str().unwrap().to_owned());
    assert_eq!(
        bodies,
        vec![
            reply_body("rtAsk", &format!("Your mail2line address: {}", addr(&u))),
            reply_body("rtGroup", &format!("Your mail2line address: {}", addr(GROUP))),
        ]
    );
    assert!(gw.logs().contains("skipping a follow event that does not match LINE's format"), "{}", gw.logs());
    // Messages register nobody.
    assert!(registry(&gw).get(&u).unwrap().is_none());
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_change_nothing() {
    let (line, gw) = setup().await;
    let u = user(3);
    let body = callback(vec![follow(&u, "01HZFOLLOW00000000000000D1", ts(0), "rtD1", false)]);
    let good_sig = sign(&body);

    // Unsigned, wrongly signed, and a tampered body under the original signature.
    assert_eq!(post(&gw, body.clone(), None, "application/json").await.0, 401);
    assert_eq!(post(&gw, body.clone(), Some(sign(b"something else")), "application/json").await.0, 401);
    assert_eq!(post(&gw, body.clone(), Some("not base64!".into()), "application/json").await.0, 401);
    let tampered = String::from_utf8(body.clone()).unwrap().replace(&u, &user(4)).into_bytes();
    assert_eq!(post(&gw, tampered, Some(good_sig.clone()), "application/json").await.0, 401);
    assert!(registry(&gw).list(true).unwrap().is_empty(), "nothing recorded");

    // Signed but not JSON, or not a callback request.
    assert_eq!(post(&gw, b"destination=x".to_vec(), Some(sign(b"destination=x")), "application/x-www-form-urlencoded").await.0, 415);
    assert_eq!(post(&gw, body.clone(), Some(good_sig.clone()), "text/plain").await.0, 415);
    assert_eq!(post_signed(&gw, b"{\"destination\":".to_vec()).await.0, 400);
    assert_eq!(post_signed(&gw, b"{\"events\":[]}".to_vec()).await.0, 400);
    // Over 1 MiB.
    let big = format!("{{\"destination\":\"{BOT}\",\"events\":[],\"pad\":\"{}\"}}", "x".repeat(1024 * 1024)).into_bytes();
    assert_eq!(post_signed(&gw, big).await.0, 413);
    assert!(registry(&gw).list(true).unwrap().is_empty(), "nothing recorded");

    // LINE's connectivity check.
    let (status, text) = post_signed(&gw, callback(vec![])).await;
    assert_eq!((status, text.trim()), (200, "OK"));

    // The original, untouched request still works afterwards.
    assert_eq!(post(&gw, body, Some(good_sig.clone()), "application/json").await.0, 200);
    assert!(registry(&gw).is_active(&u).unwrap());
    settle(&line, 2).await;
    line.assert_all_valid();
    assert_no_secrets(&gw, &[&good_sig]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_channel_secret_refuses_every_webhook() {
    let (line, mut gw) = setup().await;
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let config = config.replace(&format!("channel_secret = \"{SECRET}\""), "channel_secret = \"\"");
    std::fs::write(&gw.config_path, config).unwrap();
    block_in_place(|| gw.restart());

    let body = callback(vec![follow(&user(5), "01HZFOLLOW00000000000000E1", 1, "rtE1", false)]);
    for sig in [None, Some(sign(&body))] {
        let (status, text) = post(&gw, body.clone(), sig, "application/json").await;
        assert_eq!(status, 503);
        assert!(text.contains("line.channel_secret"), "{text}");
    }
    assert!(registry(&gw).list(true).unwrap().is_empty());
    // The log is read from the process's output by a thread of its own: it may trail the 503.
    assert!(block_in_place(|| gw.wait_for_log("line.channel_secret is empty", Duration::from_secs(10))), "{}", gw.logs());
    assert_eq!(gw.logs().matches("line.channel_secret is empty").count(), 1, "logged once:\n{}", gw.logs());
    assert!(line.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_followers_without_calling_line() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let mut gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, dry_run: true, token: None, ..Default::default() }));
    let u = user(6);
    let body = callback(vec![follow(&u, "01HZFOLLOW00000000000000F1", ts(1), "rtF1", false)]);
    assert_eq!(post_signed(&gw, body).await.0, 200);
    assert!(registry(&gw).is_active(&u).unwrap());
    assert!(gw.wait_for_log("dry run, not sending the welcome reply", Duration::from_secs(5)), "{}", gw.logs());
    assert!(line.requests().is_empty());

    // SIGTERM stops the HTTP server along with SMTP.
    let status = block_in_place(|| gw.terminate());
    assert!(status.success(), "{status:?}\n{}", gw.logs());
    assert!(gw.logs().contains("stopped"));
}
