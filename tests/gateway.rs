//! End to end in direct mode: a real SMTP client (lettre) → the real `mail2line` binary → a
//! stand-in LINE server that records every request and checks it against LINE's OpenAPI spec.
//! Direct mode answers the SMTP client with LINE's verdict, so these tests see both at once;
//! the spool's own behaviour is tested in `spool.rs`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::gateway::{addr, code, user, GatewayProcess, Options, DOMAIN, TOKEN};
use support::raw::Raw;
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

const DIRECT: &str = "[delivery]\nmode = \"direct\"";

async fn setup() -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: DIRECT, ..Default::default() }));
    (line, gw)
}

fn header<'a>(req: &'a support::standin::Recorded, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn texts(body: &Value) -> Vec<String> {
    body["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mail_becomes_one_push_with_exact_json() {
    let (line, gw) = setup().await;
    let id = user(1);
    let mail = format!(
        "From: Cron Daemon <cron@host.example>\r\nTo: {}\r\nSubject: Backup finished\r\nMessage-ID: <b1@host.example>\r\n\r\nAll 3 volumes OK.\r\n",
        addr(&id)
    );
    let resp = block_in_place(|| gw.send_raw("cron@host.example", &[&addr(&id)], mail.as_bytes())).unwrap();
    assert!(resp.is_positive(), "{resp:?}");
    assert_eq!(resp.code().to_string(), "250");
    let reqs = line.requests_to("/v2/bot/message/push");
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].body,
        json!({"to": id, "messages": [{"type": "text", "text": "Backup finished\n\nAll 3 volumes OK."}]})
    );
    assert_eq!(header(&reqs[0], "authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    let key = header(&reqs[0], "x-line-retry-key").expect("a mail with a Message-ID carries a retry key");
    assert_eq!(key.len(), 36);
    line.assert_all_valid();
    assert!(!gw.logs().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn japanese_iso_2022_jp_and_shift_jis_mail() {
    let (line, gw) = setup().await;
    let id = user(2);
    let mut jis = Vec::new();
    jis.extend_from_slice(b"From: monitor@example.jp\r\nSubject: =?ISO-2022-JP?B?GyRCJUYlOSVIN29MPhsoQg==?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
    jis.extend_from_slice(b"\x1b$B$3$s$K$A$O!\"@$3&!#\x1b(B\r\n\x1b$B4F;k%5!<%P!<$h$j\x1b(B\r\n");
    block_in_place(|| gw.send_raw("monitor@example.jp", &[&addr(&id)], &jis)).unwrap();
    let sjis = b"From: nas@example.jp\r\nSubject: =?Shift_JIS?B?g2aDQoNYg06MeI2Q?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: base64\r\n\r\nl2WXyoKqlXORq4K1gsSCooLcgrcNCo5jgug1JQ==\r\n";
    block_in_place(|| gw.send_raw("nas@example.jp", &[&addr(&id)], sjis)).unwrap();
    let reqs = line.requests_to("/v2/bot/message/push");
    assert_eq!(reqs.len(), 2);
    assert_eq!(texts(&reqs[0].body), vec!["テスト件名\n\nこんにちは、世界。\n監視サーバーより"]);
    assert_eq!(texts(&reqs[1].body), vec!["ディスク警告\n\n容量が不足しています\n残り5%"]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_only_mail_and_emoji_after_astral_characters() {
    let (line, gw) = setup().await;
    let id = user(3);
    let mail = "From: cms@example.com\r\nSubject: =?UTF-8?B?8J+NjiBOZXcgb3JkZXI=?=\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<html><head><style>p{color:red}</style></head><body><p>Order <b>#42</b> &amp; paid</p><p>[emoji:5ac1bfd5040ab15980c9b435:001] thanks</p></body></html>\r\n";
    block_in_place(|| gw.send_raw("cms@example.com", &[&addr(&id)], mail.as_bytes())).unwrap();
    let reqs = line.requests_to("/v2/bot/message/push");
    assert_eq!(reqs.len(), 1);
    let msg = &reqs[0].body["messages"][0];
    // Style dropped, tags gone, entity decoded, paragraphs separated by a blank line.
    assert_eq!(msg["text"], "🍎 New order\n\nOrder #42 & paid\n\n$ thanks");
    // The emoji's index counts UTF-16 units: the 🍎 in front counts 2, so the `$` is at 32.
    assert_eq!(msg["emojis"], json!([{"index": 32, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"}]));
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_users_share_a_multicast_and_groups_get_pushes() {
    let (line, gw) = setup().await;
    let (u1, u2, group, room) = (user(10), user(11), format!("C{:032x}", 12), format!("R{:032x}", 13));
    let rcpts = [addr(&u1), addr(&group), addr(&u2), addr(&room)];
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    block_in_place(|| gw.send_raw("a@example.com", &rcpts, b"Subject: hi\r\n\r\nto all\r\n")).unwrap();
    let multi = line.requests_to("/v2/bot/message/multicast");
    assert_eq!(multi.len(), 1);
    assert_eq!(multi[0].body, json!({"to": [u1, u2], "messages": [{"type": "text", "text": "hi\n\nto all"}]}));
    let pushes: Vec<String> = line.requests_to("/v2/bot/message/push").iter().map(|r| r.body["to"].as_str().unwrap().to_owned()).collect();
    assert_eq!(pushes, vec![group, room]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_text_is_split_within_limits_in_one_request() {
    let (line, gw) = setup().await;
    let id = user(4);
    let paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(20);
    let body: String = (0..12).map(|i| format!("{i}: {paragraph}\r\n")).collect();
    let mail = format!("Subject: log\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}");
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&id)], mail.as_bytes())).unwrap();
    let reqs = line.requests_to("/v2/bot/message/push");
    assert_eq!(reqs.len(), 1);
    let parts = texts(&reqs[0].body);
    assert_eq!(parts.len(), 3, "~13,900 characters need 3 messages of ≤ 5,000");
    for p in &parts {
        assert!(p.encode_utf16().count() <= 5000);
    }
    // Split at line boundaries: every message but the first starts with a line number.
    assert!(parts[1].starts_with(char::is_numeric) && parts[2].starts_with(char::is_numeric), "{:?}", &parts[1][..20]);
    assert_eq!(parts.concat().matches("Lorem").count(), 240);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_domains_bad_ids_and_oversized_mail_are_refused() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, smtp_extra: "max_message_bytes = 2048", ..Default::default() })
    });
    let err = block_in_place(|| gw.send_raw("a@example.com", &["someone@gmail.com"], b"Subject: x\r\n\r\ny\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("5.7.1"), "{err}");
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&format!("bob@{DOMAIN}")], b"Subject: x\r\n\r\ny\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("5.1.1"), "{err}");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(4000));
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(1))], big.as_bytes())).unwrap_err();
    assert_eq!(code(&err), Some(552));
    assert!(line.requests().is_empty(), "nothing may reach LINE");
}

/// LINE's answers → SMTP replies, per ARCHITECTURE.md's error table; the token never reaches a log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_errors_become_the_right_smtp_codes() {
    let (line, gw) = setup().await;
    let id = user(5);
    let send = |subject: &str| {
        let mail = format!("Subject: {subject}\r\n\r\nbody\r\n");
        block_in_place(|| gw.send_raw("a@example.com", &[&addr(&id)], mail.as_bytes()))
    };
    line.push_behaviour(Behaviour::Status(
        400,
        json!({"message": "The request body has 1 error(s)", "details": [{"message": "Invalid user", "property": "to"}]}),
    ));
    let err = send("rejected").unwrap_err();
    assert_eq!(code(&err), Some(550));
    let text = err.to_string();
    assert!(text.contains("5.6.0") && text.contains("Invalid user"), "{text}");

    line.push_behaviour(Behaviour::Status(429, json!({"message": "Too Many Requests"})));
    assert_eq!(code(&send("rate").unwrap_err()), Some(451));

    line.push_behaviour(Behaviour::Status(429, json!({"message": "You have reached your monthly limit."})));
    let err = send("quota").unwrap_err();
    assert_eq!(code(&err), Some(452));
    assert!(err.to_string().contains("4.2.2"), "{err}");

    line.push_behaviour(Behaviour::Status(500, json!({"message": "Internal error"})));
    assert_eq!(code(&send("server").unwrap_err()), Some(451));

    line.push_behaviour(Behaviour::Status(401, json!({"message": "Authentication failed"})));
    let err = send("auth").unwrap_err();
    assert_eq!(code(&err), Some(451));
    assert!(err.to_string().contains("4.3.5"), "{err}");

    // timeout_secs = 2 in the test config.
    line.push_behaviour(Behaviour::Delay(Duration::from_secs(4)));
    let err = send("slow").unwrap_err();
    assert_eq!(code(&err), Some(451));
    assert!(err.to_string().contains("4.4.2"), "{err}");

    // After all that, a normal mail goes through.
    assert!(send("fine").unwrap().is_positive());
    line.assert_all_valid();
    let logs = gw.logs();
    assert!(logs.contains("mail rejected") && logs.contains("reason=line_rejected"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_line_is_a_temporary_failure() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let gw = block_in_place(|| GatewayProcess::start(Options { extra: DIRECT, ..Default::default() }));
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(6))], b"Subject: x\r\n\r\ny\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(451));
    assert!(err.to_string().contains("4.4.1"), "{err}");
    assert!(!gw.logs().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_logs_the_json_and_sends_nothing() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, dry_run: true, token: None, ..Default::default() }));
    let id = user(7);
    let resp = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&id)], b"Subject: try\r\n\r\nme\r\n")).unwrap();
    assert!(resp.is_positive());
    assert!(gw.wait_for_log("dry run, not sent", Duration::from_secs(5)));
    let logs = gw.logs();
    let json_line = logs.lines().find(|l| l.contains("dry run, not sent")).unwrap();
    let json_text = &json_line[json_line.find("body=").unwrap() + 5..];
    let body: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(body, json!({"to": id, "messages": [{"type": "text", "text": "try\n\nme"}]}));
    if let Some(spec) = support::spec::Spec::load("messaging-api.yml") {
        spec.validate_request("POST", "/v2/bot/message/push", &body).unwrap();
    }
    assert!(line.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_mail_in_progress_finish() {
    let (line, mut gw) = setup().await;
    let id = user(8);
    let mut c = Raw::connect(gw.smtp);
    assert!(c.reply().starts_with("220"));
    c.send(format!("EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<{}>\r\nDATA\r\n", addr(&id)).as_bytes());
    for _ in 0..3 {
        assert!(c.reply().starts_with("250"));
    }
    assert!(c.reply().starts_with("354"));
    c.send(b"Subject: in flight\r\n\r\nhalf");
    // SIGTERM in the middle of DATA: the listener closes, this session finishes.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(gw_pid(&gw)).status();
    assert!(gw.wait_for_log("shutting down", Duration::from_secs(5)));
    assert!(std::net::TcpStream::connect(gw.smtp).is_err() || gw.wait_for_log("listener closed", Duration::from_secs(5)));
    c.send(b" done\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(texts(&line.requests_to("/v2/bot/message/push")[0].body), vec!["in flight\n\nhalf done"]);
}

fn gw_pid(gw: &GatewayProcess) -> String {
    gw.pid().to_string()
}

/// Issue 8's first slice: a `[sticker:…]` line becomes a sticker message in its place, and an
/// attachment is listed by name and size at the end of the text (no media host configured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticker_line_and_attachment_list() {
    let (line, gw) = setup().await;
    let id = user(9);
    let pdf = "JVBERi0xLjQK".repeat(250); // base64 of "%PDF-1.4\n", 2,250 bytes decoded
    let mail = format!(
        "From: nas@example.com\r\nTo: {}\r\nSubject: Scan done\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Your scan is ready.\r\n[sticker:446:1988]\r\nBye.\r\n--b\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b--\r\n",
        addr(&id)
    );
    let resp = block_in_place(|| gw.send_raw("nas@example.com", &[&addr(&id)], mail.as_bytes())).unwrap();
    assert!(resp.is_positive(), "{resp:?}");
    let reqs = line.requests_to("/v2/bot/message/push");
    assert_eq!(reqs.len(), 1);
    let msgs = reqs[0].body["messages"].as_array().unwrap();
    let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "sticker", "text"], "{msgs:?}");
    assert_eq!(msgs[0]["text"], "Scan done\n\nYour scan is ready.");
    assert_eq!(msgs[1]["packageId"], "446");
    assert_eq!(msgs[1]["stickerId"], "1988");
    let last = msgs[2]["text"].as_str().unwrap();
    assert!(last.starts_with("Bye.\n\n📎 scan.pdf ("), "{last:?}");
    assert!(last.ends_with(" KB)"), "{last:?}");
    line.assert_all_valid();
}
