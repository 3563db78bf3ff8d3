//! Answers from LINE (issue #20) end to end: a real mail over SMTP to the real binary, pushed to
//! the LINE stand-in (which answers with `sentMessages` ids and serves content by id, every
//! request checked against LINE's specs), a follower's answer posted to the webhook signed as
//! LINE signs it (every body checked against `webhook.yml`), and the mail the gateway sends for
//! it received by a real SMTP sink and parsed back with mail-parser.

mod support;

use std::time::Duration;

use mail_parser::MessageParser;
use serde_json::json;
use support::cli::{self, Run};
use support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use support::sink::{header, Sink, Transaction};
use support::standin::{Behaviour, Recorded, StandIn};
use support::webhook::{deliver, Message, Sender};
use tokio::task::block_in_place;

const PATIENCE: Duration = Duration::from_secs(20);
/// The relay's first retry comes 30 s after a failure.
const RETRY_PATIENCE: Duration = Duration::from_secs(75);
const FROM: &str = "line@example.com";
const GROUP: &str = "Ca56f94637c30000000000000000000a1";

struct Setup {
    line: StandIn,
    sink: Sink,
    gw: GatewayProcess,
}

/// The stand-in, a sink as the relay, and a gateway mailing answers through it. `replies`
/// adds keys to `[replies]`.
async fn setup(replies: &str) -> Setup {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let sink = Sink::start(10);
    let url = line.base_url();
    let line_extra = format!("api_data_base_url = \"{url}\"");
    let extra = format!(
        "[delivery]\ncoalesce_secs = 0\n\n[replies]\nrelay = \"smtp://{}\"\nfrom = \"{FROM}\"\n{replies}\n",
        sink.addr
    );
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, line_extra: &line_extra, extra: &extra, ..Default::default() }));
    Setup { line, sink, gw }
}

/// Sends a mail to `to` over SMTP and waits for its push; returns the push as recorded.
async fn mail(s: &Setup, to: &str, headers: &str, body: &str) -> Recorded {
    let before = pushes(&s.line).len();
    let data = format!("{headers}\r\n\r\n{body}\r\n");
    block_in_place(|| s.gw.send_raw("sender@example.com", &[to], data.as_bytes())).expect("the gateway takes the mail");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let all = pushes(&s.line);
        if all.len() > before {
            return all[before].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no push for the mail to {to}; log:\n{}", s.gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pushes(line: &StandIn) -> Vec<Recorded> {
    line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/push").collect()
}

/// Waits until the sink has `n` mails.
async fn mailed(s: &Setup, n: usize, patience: Duration) -> Vec<Transaction> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let got = s.sink.transactions();
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {n} answer mail(s) within {patience:?}; log:\n{}", got.len(), s.gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quoted_text_answer_reaches_the_quoted_mails_reply_to_threaded() {
    let s = setup("").await;
    let id = user(1);
    s.line.set_display_name(&id, "佐藤 Taro");
    let first = mail(&s, &addr(&id), "From: Zabbix <zabbix@example.com>\r\nReply-To: ops@example.com\r\nMessage-ID: <alert-1@zabbix.example.com>\r\nSubject: web-3 down", "Server web-3 down").await;
    let _second = mail(&s, &addr(&id), "From: Backup <backup@example.com>\r\nMessage-ID: <b-2@example.com>\r\nSubject: backup done", "ok").await;
    let quoted = first.sent_ids()[0].clone();
    let answer = Message::text(&Sender::User(id.clone()), "01HREPLYQUOTED0000000000001", "900000000000000001", "On it, restarting").quoting(&quoted);
    let (status, _) = deliver(&s.gw, &[answer]).await;
    assert_eq!(status, 200);
    let got = mailed(&s, 1, PATIENCE).await;
    let t = &got[0];
    assert_eq!(t.from, format!("<{FROM}>"));
    assert_eq!(t.rcpts, ["<ops@example.com>"], "the quoted mail's Reply-To, not the last mail's From");
    let raw = t.unstuffed();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Re: web-3 down"));
    assert_eq!(header(&raw, "In-Reply-To"), "<alert-1@zabbix.example.com>");
    assert!(header(&raw, "References").contains("<alert-1@zabbix.example.com>"));
    assert_eq!(header(&raw, "X-Mail2line-Chat"), id);
    let from = msg.from().and_then(|f| f.first()).unwrap();
    assert_eq!((from.name(), from.address()), (Some("佐藤 Taro via LINE"), Some(FROM)));
    assert_eq!(msg.body_text(0).unwrap().trim(), "On it, restarting");
    assert!(msg.content_type().is_some_and(|c| c.ctype() == "text" && c.attribute("charset").is_some_and(|cs| cs.eq_ignore_ascii_case("utf-8"))));
    // LINE was asked nothing it would refuse, and nothing was marked read (acknowledge off).
    assert!(s.line.requests_to("/v2/bot/chat/markAsRead").is_empty());
    s.line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unquoted_photo_reaches_the_chats_last_mail_with_the_jpeg_intact() {
    let s = setup("acknowledge = true").await;
    let id = user(2);
    mail(&s, &addr(&id), "From: Grafana <grafana@example.com>\r\nMessage-ID: <g-1@grafana.example.com>\r\nSubject: [FIRING] disk full", "disk /var 98%").await;
    let jpeg: Vec<u8> = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &(0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(), &[0xFF, 0xD9]].concat();
    s.line.put_content("900000000000000002", "image/jpeg", &jpeg);
    // The content API fails once: the answer waits and goes out when it works.
    s.line.push_content_behaviour(Behaviour::Status(500, json!({"message": "Internal server error"})));
    let photo = Message::image(&Sender::User(id.clone()), "01HREPLYPHOTO00000000000001", "900000000000000002");
    assert_eq!(deliver(&s.gw, &[photo]).await.0, 200);
    let got = mailed(&s, 1, RETRY_PATIENCE).await;
    assert_eq!(got[0].rcpts, ["<grafana@example.com>"], "no Reply-To: the From");
    let raw = got[0].unstuffed();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Re: [FIRING] disk full"));
    assert_eq!(header(&raw, "In-Reply-To"), "<g-1@grafana.example.com>");
    let attachment = msg.attachments().next().expect("the photo is attached");
    assert_eq!(attachment.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))), Some("image/jpeg".into()));
    assert!(attachment.attachment_name().is_some_and(|n| n.ends_with(".jpg")), "{:?}", attachment.attachment_name());
    assert!(attachment.decoded().as_ref() == jpeg.as_slice(), "the bytes are intact");
    assert_eq!(s.line.requests_to("/v2/bot/message/900000000000000002/content").len(), 2, "one failed fetch, one that worked");
    // acknowledge = true: the chat is marked read with the event's token, once mailed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while s.line.requests_to("/v2/bot/chat/markAsRead").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no markAsRead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = s.line.requests_to("/v2/bot/chat/markAsRead");
    assert_eq!(read[0].body, json!({"markAsReadToken": Message::mark_as_read_token_for("01HREPLYPHOTO00000000000001")}));
    s.line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_answer_carries_the_members_name_and_a_sticker_is_a_line_of_text() {
    let s = setup("").await;
    let member = user(3);
    s.line.set_display_name(&member, "Hanako");
    mail(&s, &addr(GROUP), "From: shop@example.com\r\nMessage-ID: <order-7@shop.example.com>\r\nSubject: Order #7", "new order").await;
    let sender = Sender::Group { group: GROUP.into(), user: member.clone() };
    let sticker = Message::sticker(&sender, "01HREPLYSTICKER000000000001", "900000000000000003", "11537", "52002734", &["OK"]);
    assert_eq!(deliver(&s.gw, &[sticker]).await.0, 200);
    let got = mailed(&s, 1, PATIENCE).await;
    let raw = got[0].unstuffed();
    let msg = MessageParser::default().parse(&raw).unwrap();
    let from = msg.from().and_then(|f| f.first()).unwrap();
    assert_eq!(from.name(), Some("Hanako via LINE"));
    assert_eq!(header(&raw, "X-Mail2line-Chat"), GROUP);
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("[sticker 11537/52002734]"), "{text}");
    assert_eq!(got[0].rcpts, ["<shop@example.com>"]);
    assert!(!s.line.requests_to(&format!("/v2/bot/group/{GROUP}/member/{member}")).is_empty());
    s.line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_mailed_once_and_text_cannot_choose_a_recipient() {
    let s = setup("").await;
    let id = user(4);
    mail(&s, &addr(&id), "From: cron@example.com\r\nSubject: backup failed", "exit 1").await;
    let sender = Sender::User(id.clone());
    let text = "Forward this to evil@attacker.example and Bcc: x@attacker.example\r\nTo: y@attacker.example";
    let answer = Message::text(&sender, "01HREPLYTWICE00000000000001", "900000000000000004", text);
    assert_eq!(deliver(&s.gw, std::slice::from_ref(&answer)).await.0, 200);
    mailed(&s, 1, PATIENCE).await;
    // LINE redelivers it (same webhookEventId), also together with a new event.
    assert_eq!(deliver(&s.gw, &[answer.clone().redelivered()]).await.0, 200);
    let next = Message::text(&sender, "01HREPLYTWICE00000000000002", "900000000000000005", "done");
    assert_eq!(deliver(&s.gw, &[answer.redelivered(), next]).await.0, 200);
    let got = mailed(&s, 2, PATIENCE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got_later = s.sink.transactions();
    assert_eq!(got_later.len(), 2, "each event mailed once: {got:?}");
    for t in &got_later {
        assert_eq!(t.rcpts, ["<cron@example.com>"]);
        assert!(!String::from_utf8_lossy(&t.data).lines().take_while(|l| !l.is_empty()).any(|l| l.contains("attacker")), "no header names the attacker");
    }
    // A message that is only the address keyword is a question to the bot (it answers it), not
    // news for the mail's sender: it is not mailed. It comes before the next event, which the
    // outbox handles in order, so a mail for it would be counted below.
    let ask = Message::text(&sender, "01HREPLYASK0000000000000001", "900000000000000009", "Address");
    assert_eq!(deliver(&s.gw, &[ask]).await.0, 200);
    // An answer in a chat the gateway never mailed goes nowhere (no [replies] to): only logged.
    let stranger = Message::text(&Sender::User(user(5)), "01HREPLYNOWHERE000000000001", "900000000000000006", "mail me at evil@attacker.example");
    assert_eq!(deliver(&s.gw, &[stranger]).await.0, 200);
    assert!(s.gw.wait_for_log("answer from LINE not mailed", PATIENCE), "{}", s.gw.logs());
    assert_eq!(s.sink.transactions().len(), 2);
    s.line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_no_mail_goes_to_replies_to_unthreaded() {
    let s = setup("to = \"helpdesk@example.com\"").await;
    let answer = Message::text(&Sender::User(user(6)), "01HREPLYFALLBACK00000000001", "900000000000000007", "hello?");
    assert_eq!(deliver(&s.gw, &[answer]).await.0, 200);
    let got = mailed(&s, 1, PATIENCE).await;
    assert_eq!(got[0].rcpts, ["<helpdesk@example.com>"]);
    let raw = got[0].unstuffed();
    assert_eq!(header(&raw, "In-Reply-To"), "");
    assert!(MessageParser::default().parse(&raw).unwrap().subject().is_some_and(|s| s.starts_with("Re:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_relay_down_the_answer_waits_survives_kill_9_and_goes_out_once_it_is_back() {
    let mut s = setup("").await;
    let id = user(7);
    mail(&s, &addr(&id), "From: nas@example.com\r\nSubject: disk failing", "SMART error").await;
    s.sink.stop();
    let answer = Message::text(&Sender::User(id.clone()), "01HREPLYDOWN000000000000001", "900000000000000008", "replacing it today");
    assert_eq!(deliver(&s.gw, &[answer]).await.0, 200, "stored before the 200, relay or not");
    assert!(s.gw.wait_for_log("the relay did not take the answer", PATIENCE), "{}", s.gw.logs());
    // A crash while it waits loses nothing: the answer is in the spool's database.
    block_in_place(|| s.gw.kill9());
    s.sink.start_again();
    block_in_place(|| s.gw.restart());
    let got = mailed(&s, 1, RETRY_PATIENCE).await;
    assert_eq!(got[0].rcpts, ["<nas@example.com>"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.sink.transactions().len(), 1, "mailed once");
    s.line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_the_200_loses_nothing() {
    let mut s = setup("").await;
    let id = user(8);
    mail(&s, &addr(&id), "From: printer@example.com\r\nSubject: toner low", "5% left").await;
    // Kill the gateway the moment LINE has its 200, before the outbox's next scan.
    let answers: Vec<Message> = (0..5)
        .map(|i| Message::text(&Sender::User(id.clone()), &format!("01HREPLYKILL0000000000000{i:02}"), &format!("90000000000000010{i}"), &format!("answer {i}")))
        .collect();
    assert_eq!(deliver(&s.gw, &answers).await.0, 200);
    block_in_place(|| s.gw.kill9());
    block_in_place(|| s.gw.restart());
    mailed(&s, 5, RETRY_PATIENCE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every answer arrives. One the relay took in the instant before the kill, before its
    // outcome was committed, is mailed again after the restart (SMTP has no retry key): the
    // copy carries the same Message-ID, which is what lets mail clients show it once.
    let mut by_id = std::collections::BTreeMap::<String, Vec<String>>::new();
    for t in s.sink.transactions() {
        let raw = t.unstuffed();
        let text = MessageParser::default().parse(&raw).unwrap().body_text(0).unwrap().trim().to_owned();
        by_id.entry(header(&raw, "Message-ID")).or_default().push(text);
    }
    let mut texts: Vec<String> = by_id.values().map(|copies| copies[0].clone()).collect();
    texts.sort();
    assert_eq!(texts, (0..5).map(|i| format!("answer {i}")).collect::<Vec<_>>(), "{by_id:?}");
    assert!(by_id.values().all(|copies| copies.iter().all(|c| *c == copies[0])), "{by_id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_over_max_per_hour_waits_and_a_refused_answer_is_listed_dead() {
    let s = setup("max_per_hour = 1").await;
    let id = user(9);
    mail(&s, &addr(&id), "From: shop@example.com\r\nSubject: order", "new order").await;
    let sender = Sender::User(id.clone());
    let first = Message::text(&sender, "01HREPLYRATE000000000000001", "900000000000000201", "first");
    let second = Message::text(&sender, "01HREPLYRATE000000000000002", "900000000000000202", "second");
    assert_eq!(deliver(&s.gw, &[first, second]).await.0, 200);
    mailed(&s, 1, PATIENCE).await;
    assert!(s.gw.wait_for_log("max_per_hour", PATIENCE), "{}", s.gw.logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.sink.transactions().len(), 1, "the second waits for the next hour");
    // The relay refuses the mail itself (5xx): final at once, kept dead and listed.
    s.sink.set_data_reply(Some("554 5.7.1 Message rejected by policy"));
    let other = Sender::User(user(10));
    mail(&s, &addr(other.chat()), "From: shop@example.com\r\nSubject: order 2", "another order").await;
    let refused = Message::text(&other, "01HREPLYDEAD000000000000001", "900000000000000203", "thanks");
    assert_eq!(deliver(&s.gw, &[refused]).await.0, 200);
    assert!(s.gw.wait_for_log("answer dead", PATIENCE), "{}", s.gw.logs());
    let out = Run::of(&mut cli::mail2line(["queue", "list", "--dead"], &s.gw.config_path));
    assert_eq!(out.code, 0, "{}", out.text());
    let stdout = out.stdout;
    assert!(stdout.contains("Answers from LINE to be mailed"), "{stdout}");
    assert!(stdout.contains(other.chat()) && stdout.contains("(554): 5.7.1") && stdout.contains("shop@example.com"), "{stdout}");
    assert!(stdout.contains("0 pending, 1 dead"), "{stdout}");
    let out = Run::of(&mut cli::mail2line(["queue", "list", "--dead", "--json"], &s.gw.config_path));
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let dead: Vec<_> = listed.as_array().unwrap().iter().filter(|o| o["kind"] == "answer").collect();
    assert_eq!(dead.len(), 1, "{listed:#}");
    assert_eq!((dead[0]["state"].as_str(), dead[0]["chat"].as_str(), dead[0]["to"].as_str()), (Some("dead"), Some(other.chat()), Some("shop@example.com")));
    assert!(dead[0]["last_error"].as_str().unwrap().contains("554"), "{listed:#}");
    // The waiting one is pending, not dead.
    let stdout = Run::of(&mut cli::mail2line(["queue", "list", "--pending"], &s.gw.config_path)).stdout;
    assert!(stdout.contains("max_per_hour") && stdout.contains("1 pending, 0 dead"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_line_cannot_give_within_max_age_is_named_in_the_text_instead() {
    // The shortest max_age there is: the first fetch fails, the retries 30 s and 90 s later find
    // it expired.
    let s = setup("max_age = \"1m\"").await;
    let id = user(11);
    mail(&s, &addr(&id), "From: scanner@example.com\r\nSubject: scan ready", "page 1").await;
    for _ in 0..10 {
        s.line.push_content_behaviour(Behaviour::Status(500, json!({"message": "Internal server error"})));
    }
    s.line.put_content("900000000000000301", "application/pdf", b"%PDF-1.4 never fetched");
    let file = Message::file(&Sender::User(id.clone()), "01HREPLYFILE000000000000001", "900000000000000301", "report.pdf", 22);
    assert_eq!(deliver(&s.gw, &[file]).await.0, 200);
    let got = mailed(&s, 1, Duration::from_secs(150)).await;
    let raw = got[0].unstuffed();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.attachments().count(), 0);
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("file not attached") && text.contains("max_age"), "{text}");
    assert!(s.line.requests_to("/v2/bot/message/900000000000000301/content").len() >= 2, "fetched, then retried");
}
