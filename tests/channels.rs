//! Several LINE channels in one gateway (`[[channels]]`, issue #21), end to end: the real
//! binary, one LINE stand-in per channel (each expects its channel's own token and records the
//! Authorization header of every request), real SMTP clients (lettre, with AUTH where the
//! channel is chosen by login), signed webhook requests, and the CLI reading a channel's store.
//!
//! The four promises of the issue: channels chosen by domain; channels chosen by AUTH login on
//! one shared domain (a login allowed on none gets 550 5.7.1); each webhook checked with its own
//! secret (the other channel's secret is refused and changes nothing); one channel's monthly
//! quota spent while the other still delivers. And `[replies]` on every channel: a follower's
//! answer on a channel's webhook is mailed (to a real SMTP sink as the relay) to the sender of
//! the mail sent through that channel, threaded under it. On SQLite (each channel under
//! `storage.dir/channels/<name>`) and, for the stores and the answers, on PostgreSQL;
//! `tests/store_pg.rs` and `tests/registry_pg.rs` show the channels apart there too.

mod support;

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::{SmtpTransport, Transport};
use serde_json::json;
use support::cli::{self, Run};
use support::gateway::{code, user, GatewayProcess, Options, DOMAIN};
use support::sink::{header, Sink};
use support::standin::{Behaviour, Recorded, StandIn};
use support::webhook::{callback, post_to, sign_with, Message, Sender};
use tokio::task::block_in_place;

const PASSWORD: &str = "channel-test-password";
const SHOP_A: &str = "text.line.shop-a.example";
const SHOP_B: &str = "text.line.shop-b.example";

/// The four channels' stand-ins: shop-a and shop-b on their own domains, site-1 and site-2
/// sharing [`DOMAIN`] and told apart by the AUTH login.
struct Lines {
    shop_a: StandIn,
    shop_b: StandIn,
    site_1: StandIn,
    site_2: StandIn,
}

impl Lines {
    async fn start() -> Lines {
        let lines = Lines { shop_a: StandIn::start().await, shop_b: StandIn::start().await, site_1: StandIn::start().await, site_2: StandIn::start().await };
        for (line, name) in lines.each() {
            line.expected_token(&token(name));
        }
        lines
    }

    fn each(&self) -> [(&StandIn, &'static str); 4] {
        [(&self.shop_a, "shop-a"), (&self.shop_b, "shop-b"), (&self.site_1, "site-1"), (&self.site_2, "site-2")]
    }
}

fn token(channel: &str) -> String {
    format!("token-of-{channel}")
}

fn secret(channel: &str) -> String {
    format!("secret-of-{channel}")
}

/// The gateway with the four channels; `[line]` gives their shared timeout only.
fn start(lines: &Lines) -> GatewayProcess {
    start_with(lines, "", "", &[])
}

/// [`start`] with `storage` appended to `[storage]` (e.g. a PostgreSQL URL), `extra` tables
/// (e.g. `[replies]`) before the channels, and `env`.
fn start_with(lines: &Lines, storage: &str, extra: &str, env: &[(&str, &str)]) -> GatewayProcess {
    let hash = support::tls::hash_password(PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"{DOMAIN}\"\nshutdown_grace_secs = 10\nauth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n\
         [[smtp.users]]\nname = \"site-1\"\npassword_hash = \"{hash}\"\n[[smtp.users]]\nname = \"site-2\"\npassword_hash = \"{hash}\"\n\
         [[smtp.users]]\nname = \"intruder\"\npassword_hash = \"{hash}\"\n\n\
         [line]\ntimeout_secs = 2\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = \"{}\"\n{storage}\n\
         [delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\nquota_probe_secs = 1\ncoalesce_secs = 0\n{extra}",
        dir.path().join("data").display()
    );
    for (line, name) in lines.each() {
        let (domain, users) = match name {
            "shop-a" => (SHOP_A, ""),
            "shop-b" => (SHOP_B, ""),
            _ => (DOMAIN, name),
        };
        config.push_str(&format!(
            "\n[[channels]]\nname = \"{name}\"\ndomain = \"{domain}\"\n{}api_base_url = \"{}\"\napi_data_base_url = \"{}\"\nchannel_access_token = \"{}\"\nchannel_secret = \"{}\"\n",
            if users.is_empty() { String::new() } else { format!("users = [\"{users}\"]\n") },
            line.base_url(),
            line.base_url(),
            token(name),
            secret(name),
        ));
    }
    block_in_place(|| GatewayProcess::launch(dir, &config, &Options { env, ..Options::default() })).unwrap_or_else(|e| panic!("{e}"))
}

fn mail(seq: u32) -> Vec<u8> {
    format!("Subject: seq {seq}\r\nMessage-ID: <channels{seq}@test>\r\n\r\nbody of mail {seq}\r\n").into_bytes()
}

/// Sends `data` to `to`, logged in as `login` when given (AUTH PLAIN on loopback).
fn send(gw: &GatewayProcess, login: Option<&str>, to: &[&str], data: &[u8]) -> Result<(), lettre::transport::smtp::Error> {
    let mut builder = SmtpTransport::builder_dangerous(gw.smtp.ip().to_string()).port(gw.smtp.port()).timeout(Some(Duration::from_secs(30)));
    if let Some(login) = login {
        builder = builder.credentials(Credentials::new(login.to_owned(), PASSWORD.to_owned())).authentication(vec![Mechanism::Plain]);
    }
    let envelope = Envelope::new(Some("cms@example.com".parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap();
    block_in_place(|| builder.build().send_raw(&envelope, data)).map(|_| ())
}

/// The pushes a stand-in accepted, as (recipient, Authorization header).
fn pushes(line: &StandIn) -> Vec<(String, String)> {
    line.accepted()
        .iter()
        .filter(|r| r.path == "/v2/bot/message/push")
        .map(|r| (r.body["to"].as_str().unwrap_or("").to_owned(), r.header("authorization").unwrap_or("").to_owned()))
        .collect()
}

/// Every request a stand-in saw carried its own channel's token.
fn only_own_token(line: &StandIn, channel: &str) {
    let want = format!("Bearer {}", token(channel));
    for r in line.requests() {
        assert_eq!(r.header("authorization"), Some(want.as_str()), "{channel}'s stand-in got {} with another token", r.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_chosen_by_domain_and_a_mail_to_both_reaches_each_once() {
    let lines = Lines::start().await;
    let gw = start(&lines);
    let (a, b) = (user(1), user(2));
    send(&gw, None, &[&format!("{a}@{SHOP_A}")], &mail(1)).unwrap();
    // One mail to both shops: each part goes to its own channel.
    send(&gw, None, &[&format!("{b}@{SHOP_B}"), &format!("{a}@{SHOP_A}")], &mail(2)).unwrap();
    lines.shop_a.wait_for(2, Duration::from_secs(20)).await;
    lines.shop_b.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bearer = |c: &str| format!("Bearer {}", token(c));
    assert_eq!(pushes(&lines.shop_a), vec![(a.clone(), bearer("shop-a")), (a.clone(), bearer("shop-a"))]);
    assert_eq!(pushes(&lines.shop_b), vec![(b.clone(), bearer("shop-b"))]);
    assert!(lines.site_1.requests().iter().all(|r| r.path != "/v2/bot/message/push"));
    for (line, name) in lines.each() {
        only_own_token(line, name);
        line.assert_all_valid();
    }
    // A domain no channel serves is a relay attempt.
    let err = send(&gw, None, &[&format!("{a}@text.line.shop-c.example")], &mail(3)).unwrap_err();
    assert_eq!(code(&err), Some(550), "{err}");
    // Each channel's series carry its name; the gateway's own SMTP series stay unlabelled.
    let metrics = reqwest::get(format!("http://{}/metrics", gw.http.unwrap())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mail2line_line_pushes_total{endpoint=\"push\",status=\"200\",channel=\"shop-a\"} 2"), "{metrics}");
    assert!(metrics.contains("mail2line_line_pushes_total{endpoint=\"push\",status=\"200\",channel=\"shop-b\"} 1"), "{metrics}");
    assert!(metrics.contains("\nmail2line_smtp_sessions_total 3\n"), "{metrics}");
    assert!(metrics.contains("mail2line_mails_accepted_total{channel=\"shop-a\"} 2"), "{metrics}");
    // Each channel's SQLite files are its own.
    for name in ["shop-a", "shop-b", "site-1", "site-2"] {
        assert!(gw.dir.path().join("data/channels").join(name).join("spool.sqlite3").exists(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_domain_the_login_chooses_and_a_login_of_no_channel_gets_550_5_7_1() {
    let lines = Lines::start().await;
    let gw = start(&lines);
    let to = format!("{}@{DOMAIN}", user(7));
    send(&gw, Some("site-1"), &[&to], &mail(1)).unwrap();
    send(&gw, Some("site-2"), &[&to], &mail(2)).unwrap();
    send(&gw, Some("site-2"), &[&to], &mail(3)).unwrap();
    lines.site_1.wait_for(1, Duration::from_secs(20)).await;
    lines.site_2.wait_for(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushes(&lines.site_1).len(), 1);
    assert_eq!(pushes(&lines.site_2).len(), 2);
    for login in [Some("intruder"), None] {
        let err = send(&gw, login, &[&to], &mail(4)).unwrap_err();
        assert_eq!(code(&err), Some(550), "{login:?}: {err}");
        assert!(err.to_string().contains("5.7.1"), "{err}");
    }
    // A login of the shared domain may still write to a shop with no users listed.
    send(&gw, Some("site-1"), &[&format!("{}@{SHOP_B}", user(8))], &mail(5)).unwrap();
    lines.shop_b.wait_for(1, Duration::from_secs(20)).await;
    for (line, name) in lines.each() {
        only_own_token(line, name);
    }
    assert!(gw.logs().contains("channel_not_allowed"), "the refusal's reason is logged");
}

/// A follow event as LINE sends it.
fn follow(user_id: &str, event_id: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let body = json!({"destination": support::webhook::BOT, "events": [{
        "type": "follow", "mode": "active", "timestamp": now, "source": {"type": "user", "userId": user_id},
        "webhookEventId": event_id, "deliveryContext": {"isRedelivery": false},
        "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", "follow": {"isUnblocked": false}
    }]});
    if let Err(e) = support::webhook::validate(&body) {
        panic!("not a LINE webhook body: {e:?}");
    }
    serde_json::to_vec(&body).unwrap()
}

async fn post(gw: &GatewayProcess, path: &str, body: Vec<u8>, secret: &str) -> u16 {
    let signature = sign_with(secret, &body);
    post_to(gw, path, body, Some(signature), "application/json; charset=utf-8").await.0
}

/// `mail2line followers list --channel NAME` against the running gateway's configuration.
fn followers(gw: &GatewayProcess, channel: &str) -> (Option<i32>, String, String) {
    let run = Run::of(&mut cli::mail2line(["followers", "list", "--channel", channel], &gw.config_path));
    (Some(run.code), run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_webhook_is_checked_with_its_own_secret_and_updates_its_own_followers() {
    let lines = Lines::start().await;
    let gw = start(&lines);
    let (alice, bob) = (user(21), user(22));
    // shop-b's secret on shop-a's webhook: refused, nothing learned, nothing sent.
    let status = post(&gw, "/webhook/shop-a", follow(&alice, "01HX0000000000000000000001"), &secret("shop-b")).await;
    assert!(status == 401 || status == 403, "{status}");
    let (status_code, out, err) = block_in_place(|| followers(&gw, "shop-a"));
    assert_eq!(status_code, Some(0), "{err}");
    assert!(!out.contains(&alice), "{out}");
    assert!(lines.shop_a.requests().is_empty() && lines.shop_b.requests().is_empty());
    // Each with its own secret: learned by its own channel only, welcomed with its own token.
    assert_eq!(post(&gw, "/webhook/shop-a", follow(&alice, "01HX0000000000000000000002"), &secret("shop-a")).await, 200);
    assert_eq!(post(&gw, "/webhook/shop-b", follow(&bob, "01HX0000000000000000000003"), &secret("shop-b")).await, 200);
    let (_, a_list, _) = block_in_place(|| followers(&gw, "shop-a"));
    let (_, b_list, _) = block_in_place(|| followers(&gw, "shop-b"));
    assert!(a_list.contains(&alice) && !a_list.contains(&bob), "{a_list}");
    assert!(b_list.contains(&bob) && !b_list.contains(&alice), "{b_list}");
    lines.shop_a.wait_for(1, Duration::from_secs(10)).await;
    only_own_token(&lines.shop_a, "shop-a");
    only_own_token(&lines.shop_b, "shop-b");
    // The unnamed channel's path is not served with [[channels]]; an unknown --channel is a
    // usage error naming the channels.
    assert_eq!(post(&gw, "/webhook", follow(&alice, "01HX0000000000000000000004"), &secret("shop-a")).await, 404);
    let (status_code, _, err) = block_in_place(|| followers(&gw, "shop-c"));
    assert_eq!(status_code, Some(64), "{err}");
    assert!(err.contains("shop-a, shop-b, site-1, site-2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_channels_quota_spent_while_the_other_still_delivers() {
    let lines = Lines::start().await;
    // shop-a's month runs out at its first push; shop-b has room.
    lines.shop_a.set_quota(Some(1000), 0);
    lines.shop_a.push_behaviour(Behaviour::Status(429, json!({"message": "You have reached your monthly limit."})));
    let gw = start(&lines);
    lines.shop_a.wait_for_quota_reads(1, Duration::from_secs(30)).await;
    let (a, b) = (user(31), user(32));
    send(&gw, None, &[&format!("{a}@{SHOP_A}")], &mail(1)).unwrap();
    lines.shop_a.set_quota(Some(1000), 1000);
    assert!(gw.wait_for_log("quota exhausted", Duration::from_secs(20)), "{}", gw.logs());
    let err = send(&gw, None, &[&format!("{a}@{SHOP_A}")], &mail(2)).unwrap_err();
    assert_eq!(code(&err), Some(452), "{err}");
    assert!(err.to_string().contains("4.2.2"), "{err}");
    // shop-b is another channel with its own quota: it takes mail and delivers it.
    send(&gw, None, &[&format!("{b}@{SHOP_B}")], &mail(3)).unwrap();
    send(&gw, None, &[&format!("{b}@{SHOP_B}")], &mail(4)).unwrap();
    lines.shop_b.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(pushes(&lines.shop_b).len(), 2);
    assert!(pushes(&lines.shop_a).is_empty(), "shop-a's month is spent");
    // /readyz names the channel whose quota is spent; the metric carries its label.
    let ready = reqwest::get(format!("http://{}/readyz", gw.http.unwrap())).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let text = ready.text().await.unwrap();
    assert!(text.contains("quota: channel shop-a: LINE's monthly message quota is used up"), "{text}");
    assert!(!text.contains("channel shop-b"), "{text}");
    let metrics = reqwest::get(format!("http://{}/metrics", gw.http.unwrap())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mail2line_quota_paused{channel=\"shop-a\"} 1"), "{metrics}");
    assert!(metrics.contains("mail2line_quota_paused{channel=\"shop-b\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_lists_the_channels_and_probes_each_online_without_showing_a_secret() {
    let lines = Lines::start().await;
    let gw = start(&lines);
    let out = Run::of(&mut cli::mail2line(["check-config", "--online"], &gw.config_path));
    let text = out.text();
    assert_eq!(out.code, 0, "{text}");
    for (line, name) in lines.each() {
        assert!(text.contains(&format!("channel {name}: <LINE id>@")), "{text}");
        assert!(text.contains(&format!("webhook POST /webhook/{name}")), "{text}");
        assert!(!text.contains(&token(name)) && !text.contains(&secret(name)), "a secret was printed: {text}");
        assert!(line.requests_to("/v2/bot/info").len() == 1, "{name} was not probed with its own token");
        only_own_token(line, name);
    }
    assert!(text.contains("login") && text.contains("site-1"), "{text}");
}

/// The same lanes on PostgreSQL: one database, each channel's rows under its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_each_channel_keeps_its_own_rows_in_one_database() {
    let Some(db) = support::postgres::database().await else { return };
    let lines = Lines::start().await;
    lines.shop_a.set_quota(Some(1000), 0);
    let storage = format!("url = \"{}\"\nnode = \"gw-1\"\n", db.url);
    let gw = start_with(&lines, &storage, "", &[("MAIL2LINE_STORAGE_PASSWORD", db.password.expose())]);
    let (a, b) = (user(41), user(42));
    // Followers, each through its own webhook and secret.
    assert_eq!(post(&gw, "/webhook/shop-a", follow(&a, "01HX0000000000000000000011"), &secret("shop-a")).await, 200);
    assert_eq!(post(&gw, "/webhook/shop-b", follow(&b, "01HX0000000000000000000012"), &secret("shop-b")).await, 200);
    assert_eq!(post(&gw, "/webhook/shop-b", follow(&a, "01HX0000000000000000000013"), &secret("shop-a")).await, 401);
    // shop-a's month runs out at its first push (after its welcome reply); shop-b delivers.
    let replied = |line: &StandIn| line.requests().iter().any(|r| r.path == "/v2/bot/message/reply");
    let start = std::time::Instant::now();
    while !replied(&lines.shop_a) {
        assert!(start.elapsed() < Duration::from_secs(20), "shop-a never welcomed its follower");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lines.shop_a.push_behaviour(Behaviour::Status(429, json!({"message": "You have reached your monthly limit."})));
    lines.shop_a.wait_for_quota_reads(1, Duration::from_secs(30)).await;
    send(&gw, None, &[&format!("{a}@{SHOP_A}"), &format!("{b}@{SHOP_B}")], &mail(1)).unwrap();
    lines.shop_a.set_quota(Some(1000), 1000);
    assert!(gw.wait_for_log("quota exhausted", Duration::from_secs(20)), "{}", gw.logs());
    let err = send(&gw, None, &[&format!("{a}@{SHOP_A}")], &mail(2)).unwrap_err();
    assert_eq!(code(&err), Some(452), "{err}");
    send(&gw, None, &[&format!("{b}@{SHOP_B}")], &mail(3)).unwrap();
    // Its welcome reply is a request too: wait for the two pushes.
    let start = std::time::Instant::now();
    while pushes(&lines.shop_b).len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "shop-b delivered {:?}", pushes(&lines.shop_b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = db.admin().await;
    let rows = |sql: &'static str| {
        let admin = &admin;
        async move { admin.query(sql, &[]).await.unwrap().iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>() }
    };
    assert_eq!(
        rows("SELECT channel, id FROM followers ORDER BY channel").await,
        vec![("shop-a".to_owned(), a.clone()), ("shop-b".to_owned(), b.clone())]
    );
    // shop-a's mail waits in shop-a's rows; shop-b's were delivered.
    assert_eq!(rows("SELECT channel, target FROM jobs ORDER BY id").await, vec![("shop-a".to_owned(), a.clone())]);
    // The counts are written within a quarter second of the push (spool/counts_pg.rs).
    let counted = |quota: &[(String, String)]| quota.iter().any(|(c, _)| c == "shop-a") && quota.iter().any(|(c, used)| c == "shop-b" && used == "2");
    let start = std::time::Instant::now();
    let mut quota = rows("SELECT channel, used::text FROM quota ORDER BY channel").await;
    while !counted(&quota) && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        quota = rows("SELECT channel, used::text FROM quota ORDER BY channel").await;
    }
    assert!(counted(&quota), "{quota:?}");
    for (line, name) in lines.each() {
        only_own_token(line, name);
    }
    // The CLI reads a channel's rows: shop-a's queue holds its one job, shop-b's none.
    let queue = |channel: &str| {
        let out = Run::of(cli::mail2line(["queue", "list", "--json", "--channel", channel], &gw.config_path).env("MAIL2LINE_STORAGE_PASSWORD", db.password.expose()));
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let (qa, qb) = block_in_place(|| (queue("shop-a"), queue("shop-b")));
    assert!(qa.contains(&a), "{qa}");
    assert!(!qb.contains(&a) && !qb.contains(&b), "{qb}");
}

/// Where the channels' answers are mailed from.
const REPLIES_FROM: &str = "line@cms.example";

/// The push a stand-in accepted for the mail just sent to it (its `n`-th), waited for.
async fn push(line: &StandIn, n: usize) -> Recorded {
    let start = std::time::Instant::now();
    loop {
        let all: Vec<Recorded> = line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/push").collect();
        if let Some(p) = all.into_iter().nth(n) {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no push {n} at the stand-in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `[replies]` on two channels: one follower (the same LINE id on both, as in channels of one
/// provider) got a mail through shop-a, then one through shop-b. Each channel's answer goes to
/// its own mail's sender, threaded under it: shop-a's unquoted photo to the chat's last mail *in
/// shop-a* (shop-b's mail came later), fetched and named with shop-a's token; shop-b's quoted
/// text to shop-b's mail. An answer signed with the other channel's secret changes nothing.
/// `storage` and `env` as [`start_with`]; returns the gateway for the store's own checks.
async fn answers_go_back_through_their_own_channel(storage: &str, env: &[(&str, &str)]) -> GatewayProcess {
    let lines = Lines::start().await;
    let sink = Sink::start(10);
    let replies = format!("\n[replies]\nrelay = \"smtp://{}\"\nfrom = \"{REPLIES_FROM}\"\n", sink.addr);
    let gw = start_with(&lines, storage, &replies, env);
    let u = user(51);
    lines.shop_a.set_display_name(&u, "Aiko at shop A");
    lines.shop_b.set_display_name(&u, "Aiko at shop B");
    let mail = |from: &str, id: &str, subject: &str| format!("From: {from}\r\nMessage-ID: <{id}>\r\nSubject: {subject}\r\n\r\n{subject}\r\n").into_bytes();
    send(&gw, None, &[&format!("{u}@{SHOP_A}")], &mail("Shop A <orders@shop-a.example>", "order-1@shop-a.example", "order 1 shipped")).unwrap();
    push(&lines.shop_a, 0).await;
    send(&gw, None, &[&format!("{u}@{SHOP_B}")], &mail("Shop B <desk@shop-b.example>", "ticket-2@shop-b.example", "ticket 2")).unwrap();
    let b_push = push(&lines.shop_b, 0).await;
    // The other channel's secret: refused before anything is stored.
    let forged = callback(&[Message::text(&Sender::User(u.clone()), "01HXREPLYFORGED00000000001", "910000000000000001", "forged")]);
    assert_eq!(post(&gw, "/webhook/shop-a", forged, &secret("shop-b")).await, 401);
    // shop-a: an unquoted photo, held by shop-a's LINE.
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"shop-a photo", &[0xFF, 0xD9]].concat();
    lines.shop_a.put_content("910000000000000002", "image/jpeg", &jpeg);
    let photo = callback(&[Message::image(&Sender::User(u.clone()), "01HXREPLYSHOPA000000000002", "910000000000000002")]);
    assert_eq!(post(&gw, "/webhook/shop-a", photo, &secret("shop-a")).await, 200);
    // shop-b: a text quoting shop-b's message.
    let quoted = b_push.sent_ids()[0].clone();
    let text = Message::text(&Sender::User(u.clone()), "01HXREPLYSHOPB000000000003", "910000000000000003", "thanks, solved").quoting(&quoted);
    assert_eq!(post(&gw, "/webhook/shop-b", callback(&[text]), &secret("shop-b")).await, 200);
    let start = std::time::Instant::now();
    while sink.transactions().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{} answer mail(s); log:\n{}", sink.transactions().len(), gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two outbox scans more: nothing else comes (the forged answer was never stored).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = sink.transactions();
    assert_eq!(got.len(), 2, "{got:#?}");
    let to = |addr: &str| got.iter().find(|t| t.rcpts == [format!("<{addr}>")]).unwrap_or_else(|| panic!("no answer mailed to {addr}: {got:#?}"));
    let (to_a, to_b) = (to("orders@shop-a.example"), to("desk@shop-b.example"));
    for (t, to, thread, name, subject) in [
        (to_a, "orders@shop-a.example", "<order-1@shop-a.example>", "Aiko at shop A", "Re: order 1 shipped"),
        (to_b, "desk@shop-b.example", "<ticket-2@shop-b.example>", "Aiko at shop B", "Re: ticket 2"),
    ] {
        assert_eq!((t.from.as_str(), t.rcpts.as_slice()), (format!("<{REPLIES_FROM}>").as_str(), [format!("<{to}>")].as_slice()));
        let raw = t.unstuffed();
        assert_eq!(header(&raw, "In-Reply-To"), thread, "{}", String::from_utf8_lossy(&raw));
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some(subject));
        let from = msg.from().and_then(|f| f.first()).unwrap();
        assert_eq!((from.name(), from.address()), (Some(format!("{name} via LINE").as_str()), Some(REPLIES_FROM)));
    }
    let (raw_a, raw_b) = (to_a.unstuffed(), to_b.unstuffed());
    let photo = mail_parser::MessageParser::default().parse(&raw_a).unwrap();
    assert_eq!(photo.attachments().next().map(|a| a.decoded().to_vec()), Some(jpeg), "shop-a's photo, from shop-a's LINE");
    let text = mail_parser::MessageParser::default().parse(&raw_b).unwrap();
    assert_eq!(text.body_text(0).unwrap().trim(), "thanks, solved");
    // The photo and the names were asked of each channel's own LINE, with its own token.
    assert_eq!(lines.shop_a.requests_to("/v2/bot/message/910000000000000002/content").len(), 1);
    for (line, name) in lines.each() {
        only_own_token(line, name);
        line.assert_all_valid();
    }
    let metrics = reqwest::get(format!("http://{}/metrics", gw.http.unwrap())).await.unwrap().text().await.unwrap();
    for channel in ["shop-a", "shop-b"] {
        assert!(metrics.contains(&format!("mail2line_answers_total{{outcome=\"sent\",channel=\"{channel}\"}} 1")), "{metrics}");
    }
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channels_answers_are_mailed_to_its_own_mails_sender_threaded() {
    let gw = answers_go_back_through_their_own_channel("", &[]).await;
    // Each channel's answers and what it sent are in its own spool file.
    for name in ["shop-a", "shop-b"] {
        let db = rusqlite::Connection::open(gw.dir.path().join("data/channels").join(name).join("spool.sqlite3")).unwrap();
        let sent: Vec<String> = db.prepare("SELECT sent_to FROM answers WHERE state = 'sent'").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        let want = if name == "shop-a" { "orders@shop-a.example" } else { "desk@shop-b.example" };
        assert_eq!(sent, [want], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_each_channels_answers_are_its_own_rows() {
    let Some(db) = support::postgres::database().await else { return };
    let storage = format!("url = \"{}\"\nnode = \"gw-1\"\n", db.url);
    answers_go_back_through_their_own_channel(&storage, &[("MAIL2LINE_STORAGE_PASSWORD", db.password.expose())]).await;
    let admin = db.admin().await;
    let rows = admin.query("SELECT channel, state, sent_to FROM answers ORDER BY channel", &[]).await.unwrap();
    let rows: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let row = |c: &str, to: &str| (c.to_owned(), "sent".to_owned(), to.to_owned());
    assert_eq!(rows, vec![row("shop-a", "orders@shop-a.example"), row("shop-b", "desk@shop-b.example")]);
}
