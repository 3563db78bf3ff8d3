//! Old webhook events (issue 16): a captured, validly signed request replayed after the gateway
//! forgot its event ids (two days) is refused and logged; an old `unfollow` replayed after a newer
//! `follow` does not unfollow. The signature is LINE's (HMAC-SHA256 with the channel secret),
//! computed here with `hmac` directly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail2line::followers::Registry;
use serde_json::{json, Value};
use tokio::task::block_in_place;

use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::standin::StandIn;
use crate::support::webhook::{post_to, sign};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn event(kind: &str, id: &str, user_id: &str, ts: i64) -> Value {
    let mut e = json!({
        "type": kind, "mode": "active", "timestamp": ts, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": user_id},
    });
    if kind == "follow" {
        e["replyToken"] = json!(format!("rt-{id}"));
        e["follow"] = json!({"isUnblocked": false});
    }
    e
}

async fn post(gw: &GatewayProcess, events: Vec<Value>) -> u16 {
    let body = serde_json::to_vec(&json!({"destination": "U0000000000000000000000000000b0t0", "events": events})).unwrap();
    let signature = sign(&body);
    post_to(gw, "/webhook", body, Some(signature), "application/json").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_old_events_are_refused_and_never_override_newer_ones() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, ..Default::default() }));
    let registry = || Registry::open_existing(&gw.dir.path().join("data")).unwrap();
    let now = now_ms();

    // A follow captured three days ago, replayed now: its id is forgotten, its age is not.
    let (stale, fresh) = (user(1), user(2));
    assert_eq!(post(&gw, vec![event("follow", "01HOLDREPLAY00000000000001", &stale, now - 3 * DAY_MS)]).await, 200);
    assert!(block_in_place(|| gw.wait_for_log("possibly a replay", Duration::from_secs(10))), "{}", gw.logs());
    assert!(registry().get(&stale).unwrap().is_none(), "the replayed follow was applied");

    // A user follows now; the unfollow they sent an hour earlier is replayed afterwards.
    assert_eq!(post(&gw, vec![event("follow", "01HNEWFOLLOW00000000000002", &fresh, now)]).await, 200);
    assert!(registry().is_active(&fresh).unwrap());
    assert_eq!(post(&gw, vec![event("unfollow", "01HOLDUNFOLLOW000000000003", &fresh, now - 3_600_000)]).await, 200);
    assert!(block_in_place(|| gw.wait_for_log("has a newer event already", Duration::from_secs(10))), "{}", gw.logs());
    assert!(registry().is_active(&fresh).unwrap(), "an old unfollow undid a newer follow");

    // Mail to the follower still goes through during the attack.
    block_in_place(|| gw.send_raw("normal@example.com", &[&addr(&fresh)], b"Subject: still here\r\n\r\nhello\r\n")).unwrap();
    let start = std::time::Instant::now();
    while !line.requests_to("/v2/bot/message/push").iter().any(|r| r.body.to_string().contains("still here")) {
        assert!(start.elapsed() < Duration::from_secs(60), "the mail never reached LINE: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A newer unfollow is applied as before.
    assert_eq!(post(&gw, vec![event("unfollow", "01HNEWUNFOLLOW000000000004", &fresh, now + 1)]).await, 200);
    assert!(!registry().is_active(&fresh).unwrap());
}
