//! Broadcasting to every follower as a stranger (issue 16, hole 2): `followers@` and protected
//! aliases against the real binary, followers registered through signed webhook events, LINE
//! played by the stand-in that checks every body against LINE's OpenAPI spec.
//!
//! Direct mode throughout: the reply to DATA comes only after LINE answered, so "the stand-in
//! saw nothing" is final when the client has its reply. In every case a normal mail to a plain
//! user id goes through in the same transaction, and another from a second client at the same
//! time: refusing the broadcast must not cost the legit mail.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::task::block_in_place;

use crate::support::gateway::{user, GatewayProcess, Options, DOMAIN, TOKEN};
use crate::support::webhook::{post_to, sign};
use crate::support::raw::Raw;
use crate::support::standin::{Recorded, StandIn};
use crate::support::tls::hash_password;

const PASSWORD: &str = "correct horse battery staple";

/// The ids that follow the bot in every test.
fn followers() -> Vec<String> {
    (1..=3).map(user).collect()
}

/// The plain user id each normal mail goes to (not a follower: a push, never a multicast).
fn plain() -> String {
    user(900)
}

/// Starts the gateway with `extra` TOML (after `[delivery] mode = "direct"`), AUTH offered on
/// loopback with logins `cms` and `printer`, and registers [`followers`] by webhook.
async fn start(routing: &str) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let hash = hash_password(PASSWORD);
    let extra = format!(
        "[delivery]\nmode = \"direct\"\n\n{routing}\n\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n\n[[smtp.users]]\nname = \"printer\"\npassword_hash = \"{hash}\"\n"
    );
    let smtp_extra = "auth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n";
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, smtp_extra, extra: &extra, ..Default::default() }));
    follow(&gw, &followers()).await;
    // Each follow costs a profile lookup and a welcome reply; wait for them all, so that what
    // the stand-in sees from here on is mail.
    let greetings = line.wait_for(2 * followers().len(), Duration::from_secs(10)).await;
    assert_eq!(greetings.len(), 2 * followers().len(), "{greetings:#?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    (line, gw)
}

/// One signed webhook body with a follow event per id, as LINE sends it.
async fn follow(gw: &GatewayProcess, ids: &[String]) {
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            json!({
                "type": "follow",
                "mode": "active",
                "timestamp": now_ms() - 1000 + n as i64,
                "source": {"type": "user", "userId": id},
                "webhookEventId": format!("01HZBROADCASTFOLLOW000{n:04}"),
                "deliveryContext": {"isRedelivery": false},
                "replyToken": format!("rtBroadcast{n}"),
                "follow": {"isUnblocked": false},
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({"destination": "Uf0000000000000000000000000000b07", "events": events})).unwrap();
    let signature = sign(&body);
    let (status, text) = post_to(gw, "/webhook", body, Some(signature), "application/json").await;
    assert_eq!(status, 200, "{text}");
}

/// Milliseconds since the epoch: recent events, whatever the window for old ones becomes.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What one SMTP transaction got: the reply to each RCPT, then to the end of DATA (`None` when
/// DATA was refused because no recipient was accepted).
struct Outcome {
    rcpts: Vec<String>,
    data: Option<String>,
}

/// One transaction over a raw connection: AUTH PLAIN first when `login` is given, then MAIL
/// FROM `from`, a RCPT per local part in `to`, and DATA with a small mail.
fn transaction(gw: &GatewayProcess, login: Option<&str>, from: &str, to: &[&str]) -> Outcome {
    let mut c = Raw::greeted(gw.smtp);
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    if let Some(user) = login {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        let auth = c.cmd(&format!("AUTH PLAIN {token}"));
        assert!(auth.starts_with("235"), "AUTH as {user}: {auth}");
    }
    let mail = c.cmd(&format!("MAIL FROM:<{from}>"));
    assert!(mail.starts_with("250"), "{mail}");
    let rcpts: Vec<String> = to.iter().map(|local| c.cmd(&format!("RCPT TO:<{local}@{DOMAIN}>"))).collect();
    let data = if rcpts.iter().any(|r| r.starts_with("250")) {
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(format!("From: {from}\r\nSubject: broadcast test\r\n\r\nfrom {from}\r\n.\r\n").as_bytes());
        Some(c.reply())
    } else {
        assert!(c.cmd("DATA").starts_with("554"));
        None
    };
    c.cmd("QUIT");
    Outcome { rcpts, data }
}

/// Runs `attempt` while a second client sends a normal mail to [`plain`], which must get 250.
fn with_a_normal_mail_alongside<T: Send>(gw: &GatewayProcess, attempt: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let normal = s.spawn(|| transaction(gw, None, "monitor@elsewhere.example", &[&plain()]));
        let got = attempt();
        let normal = normal.join().unwrap();
        assert!(normal.rcpts[0].starts_with("250"), "{:?}", normal.rcpts);
        assert!(normal.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", normal.data);
        got
    })
}

/// Message requests (push, multicast) the stand-in got after the first `skip` requests.
fn messages_since(line: &StandIn, skip: usize) -> Vec<Recorded> {
    line.requests().into_iter().skip(skip).filter(|r| r.path.starts_with("/v2/bot/message/")).collect()
}

/// The ids each request went to, one sorted list per request, by path.
fn destinations(reqs: &[Recorded]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = reqs
        .iter()
        .map(|r| {
            let mut to: Vec<String> = match &r.body["to"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
                other => panic!("{} without a recipient: {other}", r.path),
            };
            to.sort();
            (r.path.clone(), to)
        })
        .collect();
    out.sort();
    out
}

fn push_to(id: &str) -> (String, Vec<String>) {
    ("/v2/bot/message/push".into(), vec![id.to_owned()])
}

/// A multicast to `ids` and `plus` (users of one mail share one multicast).
fn multicast_to(ids: &[String], plus: &str) -> (String, Vec<String>) {
    let mut ids = ids.to_vec();
    ids.push(plus.to_owned());
    ids.sort();
    ("/v2/bot/message/multicast".into(), ids)
}

fn assert_refused_broadcast(reply: &str, key: &str) {
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");
    assert!(reply.contains(key), "the refusal tells the admin which key to set: {reply}");
}

/// `mail2line_mails_rejected_total{reason="broadcast_not_allowed"}` from /metrics.
async fn broadcast_refusals(gw: &GatewayProcess) -> f64 {
    let url = format!("http://{}/metrics", gw.http.unwrap());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("mail2line_mails_rejected_total{reason=\"broadcast_not_allowed\"}"))
        .unwrap_or_else(|| panic!("no broadcast_not_allowed sample in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_is_closed_to_strangers_and_open_to_listed_senders() {
    let (line, gw) = start("[routing]\nfollowers_senders = [\"@example.com\", \"cron@host.example\"]").await;
    let all = followers();
    let plain = plain();

    // A stranger, and a sender one letter off a listed address, and the null sender: refused
    // at RCPT; the plain id in the same mail, and the mail alongside, go out.
    for from in ["spam@evil.example", "root@host.example", "web@sub.example.com", ""] {
        let before = line.requests().len();
        let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, None, from, &["followers", &plain]));
        assert_refused_broadcast(&got.rcpts[0], "[routing] followers_senders");
        assert!(got.rcpts[0].contains(&format!("<{from}>")), "{}", got.rcpts[0]);
        assert!(got.rcpts[1].starts_with("250"), "{:?}", got.rcpts);
        assert!(got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", got.data);
        let sent = destinations(&messages_since(&line, before));
        assert_eq!(sent, vec![push_to(&plain), push_to(&plain)], "from <{from}>: only the two normal mails reach LINE");
    }
    assert!(gw.logs().contains("reason=broadcast_not_allowed"), "the refusal is logged with its reason");
    assert_eq!(broadcast_refusals(&gw).await, 4.0);

    // A listed domain and a listed address: one multicast to exactly the followers.
    for from in ["web@example.com", "CRON@host.example"] {
        let before = line.requests().len();
        let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, None, from, &["followers", &plain]));
        assert!(got.rcpts.iter().all(|r| r.starts_with("250")), "{:?}", got.rcpts);
        assert!(got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", got.data);
        let sent = destinations(&messages_since(&line, before));
        assert_eq!(sent, vec![multicast_to(&all, &plain), push_to(&plain)], "from <{from}>");
    }
    assert_eq!(broadcast_refusals(&gw).await, 4.0, "nothing more was refused");
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_is_open_to_listed_logins_only() {
    let (line, gw) = start("[routing]\nfollowers_users = [\"cms\"]").await;
    let plain = plain();

    // Logged in, but not listed: refused, whatever the MAIL FROM.
    let before = line.requests().len();
    let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, Some("printer"), "printer@example.com", &["followers", &plain]));
    assert_refused_broadcast(&got.rcpts[0], "followers_users");
    assert!(got.rcpts[1].starts_with("250") && got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?} {:?}", got.rcpts, got.data);
    assert_eq!(destinations(&messages_since(&line, before)), vec![push_to(&plain), push_to(&plain)]);

    // Not logged in, with any sender: no list of senders means no sender gets in.
    let before = line.requests().len();
    let got = transaction(&gw, None, "cms@example.com", &["followers"]);
    assert_refused_broadcast(&got.rcpts[0], "[routing] followers_senders");
    assert_eq!(got.data, None);
    assert!(messages_since(&line, before).is_empty());

    // The listed login, from an address nobody listed.
    let before = line.requests().len();
    let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, Some("cms"), "www-data@web01.internal", &["followers", &plain]));
    assert!(got.rcpts.iter().all(|r| r.starts_with("250")), "{:?}", got.rcpts);
    assert!(got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", got.data);
    assert_eq!(destinations(&messages_since(&line, before)), vec![multicast_to(&followers(), &plain), push_to(&plain)]);
    assert_eq!(broadcast_refusals(&gw).await, 2.0);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_tables_are_protected_and_plain_lists_stay_open() {
    let ops = [user(10), user(11)];
    let team = [user(20), user(21)];
    let routing = format!(
        "[aliases]\nops = {{ ids = [\"{}\", \"{}\"], senders = [\"@corp.example\"], users = [\"cms\"] }}\nteam = [\"{}\", \"{}\"]\n",
        ops[0], ops[1], team[0], team[1]
    );
    let (line, gw) = start(&routing).await;
    let plain = plain();

    // A stranger: the protected alias and followers@ (closed: nothing configured) are refused;
    // the plain-list alias and the plain id go out.
    let before = line.requests().len();
    let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, None, "spam@evil.example", &["ops", "followers", "team", &plain]));
    assert_refused_broadcast(&got.rcpts[0], "[aliases] ops.senders");
    assert_refused_broadcast(&got.rcpts[1], "[routing] followers_senders");
    assert!(got.rcpts[2].starts_with("250") && got.rcpts[3].starts_with("250"), "{:?}", got.rcpts);
    assert!(got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", got.data);
    assert_eq!(destinations(&messages_since(&line, before)), vec![multicast_to(&team, &plain), push_to(&plain)]);
    // The refusal names the alias, never its ids.
    assert!(ops.iter().all(|id| !got.rcpts[0].contains(id.as_str())), "{}", got.rcpts[0]);

    // A listed sender, and the listed login (which opens the alias, not followers@).
    for (login, from) in [(None, "dev@corp.example"), (Some("cms"), "www-data@web01.internal")] {
        let before = line.requests().len();
        let got = with_a_normal_mail_alongside(&gw, || transaction(&gw, login, from, &["ops", &plain]));
        assert!(got.rcpts.iter().all(|r| r.starts_with("250")), "{login:?} {from}: {:?}", got.rcpts);
        assert!(got.data.as_deref().is_some_and(|d| d.starts_with("250")), "{:?}", got.data);
        assert_eq!(destinations(&messages_since(&line, before)), vec![multicast_to(&ops, &plain), push_to(&plain)]);
    }
    let got = transaction(&gw, Some("cms"), "www-data@web01.internal", &["followers"]);
    assert_refused_broadcast(&got.rcpts[0], "followers_users");
    assert_eq!(broadcast_refusals(&gw).await, 3.0);
    line.assert_all_valid();
}
