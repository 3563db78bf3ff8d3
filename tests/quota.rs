//! LINE's monthly quota, end to end with the real binary and a stand-in that counts like LINE
//! (one message per recipient per accepted request, a group by its members): a burst of mail
//! costs one request, a lone mail never waits, urgent mail is never held, the month's reserve
//! is kept for urgent mail, `mail2line quota` and `/metrics` agree with LINE's count, and a
//! `kill -9` while mail is held loses and doubles nothing.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lettre::Transport;
use serde_json::Value;
use support::cli::{self, Run};
use support::gateway::{addr, code, user, GatewayProcess, Options};
use support::standin::{Recorded, StandIn};
use tokio::task::block_in_place;

/// Generous: the machine may be busy with other test binaries. Never an assertion on speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn start(line: &StandIn, extra: &str) -> GatewayProcess {
    let url = line.base_url();
    let extra = format!("[delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\n{extra}");
    block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &extra, ..Default::default() }))
}

fn mail(seq: usize, headers: &str) -> Vec<u8> {
    format!("Subject: seq {seq}\r\nMessage-ID: <quota{seq}@test>\r\n{headers}\r\nbody of mail {seq}\r\n").into_bytes()
}

/// Sends mails `seqs` to `to` over one SMTP connection (a burst), all answered 250.
fn burst(gw: &GatewayProcess, to: &str, seqs: impl IntoIterator<Item = usize>) {
    block_in_place(|| {
        let t = gw.transport();
        for s in seqs {
            let env = lettre::address::Envelope::new(Some("cron@example.com".parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
            let r = t.send_raw(&env, &mail(s, "")).unwrap_or_else(|e| panic!("mail {s}: {e}"));
            assert!(r.is_positive(), "mail {s}: {r:?}");
        }
    })
}

/// Every "seq N" in the texts of the message requests LINE accepted, in order.
fn seqs_delivered(line: &StandIn) -> Vec<usize> {
    let mut out = Vec::new();
    for r in accepted_messages(line) {
        for m in r.body["messages"].as_array().into_iter().flatten() {
            let text = m["text"].as_str().unwrap_or("");
            for (i, _) in text.match_indices("seq ") {
                let n: String = text[i + 4..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = n.parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Push and multicast requests LINE accepted (2xx), in order.
fn accepted_messages(line: &StandIn) -> Vec<Recorded> {
    line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/push" || r.path == "/v2/bot/message/multicast").collect()
}

/// Waits until `ok` holds for the requests LINE accepted.
async fn wait_until(line: &StandIn, what: &str, ok: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
    let start = Instant::now();
    loop {
        let acc = accepted_messages(line);
        if ok(&acc) {
            return acc;
        }
        assert!(start.elapsed() < PATIENCE, "waited for {what}; accepted: {:#?}", acc.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `mail2line quota [args]` against the gateway's config: its standard output.
fn quota_cmd(config: &Path, args: &[&str]) -> String {
    let run = Run::of(&mut cli::mail2line(["quota"].iter().chain(args), config));
    assert_eq!(run.code, 0, "quota {args:?} failed: {}", run.stderr);
    run.stdout
}

/// `mail2line quota --json`, parsed.
fn quota_json(config: &Path) -> Value {
    let out = quota_cmd(config, &["--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("quota --json is not JSON ({e}): {out}"))
}

/// One sample of `/metrics` (no labels).
async fn metric(gw: &GatewayProcess, name: &str) -> f64 {
    let url = format!("http://{}/metrics", gw.http.expect("the gateway logs its HTTP address"));
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_mail_is_pushed_at_once_even_with_a_long_window() {
    let line = StandIn::start().await;
    // Ten minutes: a lone mail that waited for the window would not arrive within PATIENCE.
    let gw = start(&line, "coalesce_secs = 600\n");
    burst(&gw, &addr(&user(1)), [1]);
    let acc = wait_until(&line, "the lone mail", |a| !a.is_empty()).await;
    assert_eq!(acc.len(), 1);
    assert_eq!(seqs_delivered(&line), [1]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20_mails_costs_at_most_2_messages_each_mail_once_in_order() {
    let line = StandIn::start().await;
    let gw = start(&line, "coalesce_secs = 3\n");
    burst(&gw, &addr(&user(1)), 1..=20);
    wait_until(&line, "all 20 mails", |_| seqs_delivered(&line).len() >= 20).await;
    // Give a stray third request the chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(seqs_delivered(&line), (1..=20).collect::<Vec<_>>(), "each mail once, in order");
    let requests = accepted_messages(&line);
    assert!(requests.len() <= 2, "{} requests for one burst", requests.len());
    assert!(line.messages_counted() <= 2, "LINE counted {}", line.messages_counted());
    // The 19 held mails share text bubbles, each with its own subject line.
    let last = &requests[requests.len() - 1].body;
    let bubbles = last["messages"].as_array().unwrap();
    assert!(bubbles.len() < 19, "held mails share bubbles: {}", bubbles.len());
    for b in bubbles {
        assert!(b["text"].as_str().unwrap().encode_utf16().count() <= 5000);
    }
    line.assert_all_valid();
    assert!(gw.logs().contains("held mail sealed and sent together"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_mail_is_never_held_and_takes_held_mail_along() {
    let line = StandIn::start().await;
    let gw = start(&line, "coalesce_secs = 600\n");
    let to = addr(&user(1));
    burst(&gw, &to, [1, 2]);
    wait_until(&line, "the first mail", |a| !a.is_empty()).await;
    // Mail 2 is held for ten minutes; an urgent mail (by its header) goes at once, with it.
    block_in_place(|| gw.send_raw("nagios@example.com", &[&to], &mail(3, "X-Priority: 1 (Highest)\r\n"))).unwrap();
    wait_until(&line, "the urgent mail", |a| a.len() >= 2).await;
    assert_eq!(seqs_delivered(&line), [1, 2, 3]);
    // And by its address, to a chat with nothing held.
    let plus = addr(&user(2)).replacen('@', "+urgent@", 1);
    burst(&gw, &addr(&user(2)), [4]);
    wait_until(&line, "mail 4", |a| a.len() >= 3).await;
    block_in_place(|| gw.send_raw("nagios@example.com", &[&plus], &mail(5, ""))).unwrap();
    wait_until(&line, "the +urgent mail", |a| a.len() >= 4).await;
    assert_eq!(seqs_delivered(&line), [1, 2, 3, 4, 5]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_json_and_metrics_equal_the_count_of_line() {
    let line = StandIn::start().await;
    line.set_quota(Some(5000), 100);
    let group = format!("C{}", "7".repeat(32));
    line.set_member_count(&group, 4);
    let gw = start(&line, "coalesce_secs = 2\nquota_probe_secs = 3600\n");
    burst(&gw, &addr(&user(1)), 1..=6);
    burst(&gw, &addr(&group), [7]);
    block_in_place(|| gw.send_raw("ops@example.com", &[&addr(&user(2)), &addr(&user(3))], &mail(8, ""))).unwrap();
    wait_until(&line, "all mails", |_| seqs_delivered(&line).len() >= 8).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counted = line.messages_counted() as u64;
    // 1 + 1 (user 1: the first at once, 5 held), 4 (the group's members), 2 (a multicast of 2).
    assert_eq!(counted, 8, "the stand-in counts like LINE");
    let q = quota_json(&gw.config_path);
    assert_eq!(q["limit"], 5000);
    assert_eq!(q["used"].as_u64(), Some(100 + counted), "{q:#}");
    assert_eq!(q["remaining"].as_u64(), Some(5000 - 100 - counted), "{q:#}");
    assert_eq!(q["mails"], 8, "{q:#}");
    assert_eq!(q["messages"].as_u64(), Some(counted), "{q:#}");
    assert_eq!(q["top_recipients"][0]["id"], group, "the group costs most: {q:#}");
    // Without coalescing, user 1's six mails would have cost six.
    assert_eq!(q["messages_without_coalescing"].as_u64(), Some(counted + 4), "{q:#}");
    let text = quota_cmd(&gw.config_path, &[]);
    let remaining = text.lines().find(|l| l.trim_start().starts_with("remaining")).unwrap_or_default();
    assert!(remaining.trim_end().ends_with(&(5000 - 100 - counted).to_string()), "{text}");
    for needle in ["plan limit", "5000", "cron@example.com", &group] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert_eq!(metric(&gw, "mail2line_line_messages_total").await as u64, counted);
    assert_eq!(metric(&gw, "mail2line_quota_used").await as u64, 100 + counted);
    assert_eq!(metric(&gw, "mail2line_quota_limit").await, 5000.0);
    assert_eq!(metric(&gw, "mail2line_mails_coalesced_total").await, 5.0);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_routine_mail_gets_452_and_urgent_mail_passes() {
    let line = StandIn::start().await;
    // 100 left of LINE's limit, but a budget of 50 with 40 used: 10 left, all of it reserve.
    line.set_quota(Some(1000), 40);
    let gw = start(&line, "coalesce_secs = 0\n\n[quota]\nmonthly_budget = 50\nreserve = 10\n");
    line.wait_for_quota_reads(1, PATIENCE).await;
    // The reading is taken in just after the answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let to = addr(&user(1));
    let err = block_in_place(|| gw.send_raw("cron@example.com", &[&to], &mail(1, ""))).unwrap_err();
    assert_eq!(code(&err), Some(452), "{err}");
    let text = err.to_string();
    assert!(text.contains("4.2.2") && text.contains("JST"), "says when the quota comes back: {text}");
    block_in_place(|| gw.send_raw("nagios@example.com", &[&to], &mail(2, "Importance: High\r\n"))).unwrap();
    wait_until(&line, "the urgent mail", |a| !a.is_empty()).await;
    assert_eq!(seqs_delivered(&line), [2]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_mail_is_held_loses_and_doubles_nothing() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let extra = "[delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\ncoalesce_secs = 5\n";
    let mut gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    let to = addr(&user(1));
    burst(&gw, &to, 1..=10);
    wait_until(&line, "the first mail", |a| !a.is_empty()).await;
    // Mails 2..10 are held (the window is 5 s): kill the gateway with them on disk.
    block_in_place(|| gw.kill9());
    assert_eq!(seqs_delivered(&line), [1], "nothing else went before the kill");
    block_in_place(|| gw.restart());
    // The window survives the restart: the held mail goes when it ends, together.
    wait_until(&line, "the held mails", |_| seqs_delivered(&line).len() >= 10).await;
    burst(&gw, &to, 11..=12);
    wait_until(&line, "the later mails", |_| seqs_delivered(&line).len() >= 12).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let got = seqs_delivered(&line);
    let mut times: HashMap<usize, usize> = HashMap::new();
    for s in &got {
        *times.entry(*s).or_default() += 1;
    }
    for s in 1..=12 {
        assert_eq!(times.get(&s), Some(&1), "mail {s} delivered {:?} times: {got:?}", times.get(&s));
    }
    assert_eq!(got.len(), 12, "{got:?}");
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_multicast_sets_coalesce_too() {
    let line = StandIn::start().await;
    let group = format!("C{}", "5".repeat(32));
    let extra = format!("coalesce_secs = 2\n\n[aliases]\nops = [\"{}\", \"{}\"]\n", user(2), user(3));
    let gw = start(&line, &extra);
    let ops = format!("ops@{}", addr(&user(1)).split('@').nth(1).unwrap());
    burst(&gw, &ops, 1..=5);
    burst(&gw, &addr(&group), 6..=10);
    wait_until(&line, "all 10 mails", |_| seqs_delivered(&line).len() >= 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = seqs_delivered(&line);
    got.sort_unstable();
    assert_eq!(got, (1..=10).collect::<Vec<_>>(), "each mail once");
    let multicasts = line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/multicast").count();
    let group_pushes = line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/push" && r.body["to"] == group.as_str()).count();
    assert_eq!((multicasts, group_pushes), (2, 2), "the first at once, the other four together, for each");
    // LINE counted 2 × 2 for the alias and 2 × 3 (the default member count) for the group.
    assert_eq!(line.messages_counted(), 10);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_pace_the_month_gives_each_day_its_share() {
    let line = StandIn::start().await;
    // 250 of 300 used already, whatever the day of the month: far over pace. What is left less
    // the reserve (40) over the days left (at least 1) is today's share; the first mail takes
    // what is left of a share of 40 at most, so send until refused.
    line.set_quota(Some(300), 250);
    let gw = start(&line, "coalesce_secs = 0\n");
    line.wait_for_quota_reads(1, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = None;
    for n in 1..=41u32 {
        match block_in_place(|| gw.send_raw("cron@example.com", &[&addr(&user(n))], &mail(n as usize, ""))) {
            Ok(_) => {}
            Err(e) => {
                refused = Some((n, e));
                break;
            }
        }
    }
    let (n, err) = refused.expect("routine mail past today's share is refused");
    assert_eq!(code(&err), Some(452), "{err}");
    assert!(err.to_string().contains("today's share") && err.to_string().contains("00:00 JST"), "{err}");
    assert!(n >= 2, "the day's share lets the first mail through");
    // Urgent mail ignores the share.
    block_in_place(|| gw.send_raw("nagios@example.com", &[&addr(&user(99))], &mail(99, "Priority: urgent\r\n"))).unwrap();
    wait_until(&line, "the urgent mail", |_| seqs_delivered(&line).contains(&99)).await;
    line.assert_all_valid();
}
