//! The durable spool, end to end with the real binary: a 250 means the mail reaches the LINE
//! stand-in exactly once — through failures, `kill -9`, restarts, a full disk and a spent quota.
//! The stand-in answers 409 for a retry key it already accepted, like LINE.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::{addr, code, user, GatewayProcess, Options, TOKEN};
use support::numbered::{self, assert_exactly_once, pushes_accepted, seq_of, wait_accepted};
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

/// Fast retries so failure tests finish in seconds.
/// Coalescing off: these tests follow one request per mail through failures (coalescing has its
/// own tests in `tests/quota.rs`).
const FAST: &str = "[delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\nquota_probe_secs = 1\ncoalesce_secs = 0";

fn start(line: &StandIn, extra: &'static str) -> GatewayProcess {
    let url = line.base_url();
    block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }))
}

fn mail(seq: usize) -> Vec<u8> {
    numbered::mail(seq, "test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_250_is_stored_and_then_pushed_with_a_uuid_retry_key() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let gw = start(&line, "");
    let id = user(1);
    let resp = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&id)], &mail(1))).unwrap();
    assert!(resp.message().any(|m| m.contains("queued as")), "{resp:?}");
    let acc = wait_accepted(&line, 1, Duration::from_secs(10)).await;
    assert_eq!(acc[0].body, json!({"to": id, "messages": [{"type": "text", "text": "seq 1\n\nbody of 1"}]}));
    let key = acc[0].header("x-line-retry-key").unwrap();
    assert!(uuid_like(key), "{key}");
    assert!(gw.dir.path().join("data/spool.sqlite3").exists());
    line.assert_all_valid();
}

fn uuid_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_the_same_key_until_delivered_once() {
    let line = StandIn::start().await;
    // Scripted failures, consumed one per delivery attempt: 500s, 429s, a timeout (the test
    // config gives LINE 2 s), and accepted-then-dropped connections.
    let script = [
        Behaviour::Status(500, json!({"message": "Internal"})),
        Behaviour::AcceptThenDrop,
        Behaviour::Status(429, json!({"message": "Too Many Requests"})),
        Behaviour::Ok,
        Behaviour::Delay(Duration::from_secs(3)),
        Behaviour::Status(503, json!({"message": "Unavailable"})),
        Behaviour::AcceptThenDrop,
        Behaviour::Ok,
    ];
    for _ in 0..3 {
        for b in &script {
            line.push_behaviour(b.clone());
        }
    }
    let gw = start(&line, FAST);
    let sent: Vec<usize> = (0..20).collect();
    for s in &sent {
        let r = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(2))], &mail(*s))).unwrap();
        assert!(r.is_positive());
    }
    wait_accepted(&line, sent.len(), Duration::from_secs(60)).await;
    // Give stragglers a moment: nothing more may be accepted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&line, &sent);
    let statuses: Vec<u16> = line.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&409), "a dropped-after-accept push must be answered 409 on retry: {statuses:?}");
    assert!(statuses.contains(&500) && statuses.contains(&429));
    line.assert_all_valid();
    assert!(!gw.logs().contains(TOKEN));
}

/// Crash test: `kill -9` at random moments while mails are being accepted and pushed (also
/// while LINE has accepted a push whose answer was lost), restart, and in the end every mail
/// that was answered 250 reached LINE exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let line = StandIn::start().await;
    let mut seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed: {seed}");
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for i in 0..200 {
        line.push_behaviour(match i % 7 {
            0 => Behaviour::AcceptThenDrop,
            1 => Behaviour::Delay(Duration::from_millis(150)),
            2 => Behaviour::Status(500, json!({"message": "Internal"})),
            _ => Behaviour::Ok,
        });
    }
    let mut gw = start(&line, FAST);
    let mut answered_250 = Vec::new();
    let mut next_seq = 0;
    for _round in 0..12 {
        let batch: Vec<usize> = (next_seq..next_seq + 1 + rnd(6) as usize).collect();
        next_seq = batch.last().unwrap() + 1;
        let smtp = gw.smtp;
        let senders: Vec<_> = batch
            .iter()
            .map(|&s| {
                std::thread::spawn(move || {
                    let t = lettre::SmtpTransport::builder_dangerous(smtp.ip().to_string())
                        .port(smtp.port())
                        .timeout(Some(Duration::from_secs(10)))
                        .build();
                    let env = lettre::address::Envelope::new(Some("a@example.com".parse().unwrap()), vec![addr(&user(3)).parse().unwrap()]).unwrap();
                    use lettre::Transport;
                    (s, t.send_raw(&env, &mail(s)).map(|r| r.is_positive()).unwrap_or(false))
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rnd(120))).await;
        block_in_place(|| gw.kill9());
        for h in senders {
            let (s, ok) = h.join().unwrap();
            if ok {
                answered_250.push(s);
            }
        }
        block_in_place(|| gw.restart());
    }
    assert!(!answered_250.is_empty());
    eprintln!("{} of {next_seq} mails were answered 250 before a kill", answered_250.len());
    // Every 250'd mail arrives; mails cut off before their 250 may or may not (the sender
    // retries those), but nothing arrives twice.
    let start = Instant::now();
    loop {
        let got: std::collections::HashSet<usize> = pushes_accepted(&line).iter().map(seq_of).collect();
        if answered_250.iter().all(|s| got.contains(s)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "missing after 60 s: {:?}", answered_250.iter().filter(|s| !got.contains(s)).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&line, &answered_250);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_452_and_accepts_nothing_it_did_not_store() {
    let line = StandIn::start().await;
    // LINE is slow, so jobs pile up in the spool and the file grows.
    line.set_default(Behaviour::Delay(Duration::from_millis(300)));
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, extra: FAST, fsize_limit_kib: Some(1024), ..Default::default() })
    });
    let big = "x".repeat(30 * 1024);
    let mut stored = Vec::new();
    let mut refused = Vec::new();
    for s in 0..120 {
        let m = format!("Subject: seq {s}\r\n\r\n{big}\r\n");
        match block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(4))], m.as_bytes())) {
            Ok(r) if r.is_positive() => stored.push(s),
            Ok(r) => panic!("unexpected reply {r:?}"),
            Err(e) => {
                assert_eq!(code(&e), Some(452), "{e}");
                assert!(e.to_string().contains("4.3.1"), "{e}");
                refused.push(s);
            }
        }
        if refused.len() >= 3 {
            break;
        }
    }
    assert!(!stored.is_empty() && refused.len() >= 3, "stored {stored:?}, refused {refused:?}");
    line.set_default(Behaviour::Ok);
    let start = Instant::now();
    loop {
        let got: std::collections::HashSet<usize> = pushes_accepted(&line).iter().map(seq_of).collect();
        if stored.iter().all(|s| got.contains(s)) {
            for s in &refused {
                assert!(!got.contains(s), "mail {s} was refused with 452 but delivered");
            }
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "stored mails not delivered: {:?}", stored.iter().filter(|s| !got.contains(s)).count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.logs().contains("cannot store the mail"), "the refusal is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_monthly_quota_pauses_deliveries_and_new_mail_gets_452() {
    let line = StandIn::start().await;
    // The quota read at start finds room; LINE then refuses the push: the month ran out
    // meanwhile (another tool on the channel), and the probes find none.
    line.set_quota(Some(1000), 0);
    line.push_behaviour(Behaviour::Status(429, json!({"message": "You have reached your monthly limit."})));
    let gw = start(&line, FAST);
    line.wait_for_quota_reads(1, Duration::from_secs(30)).await;
    let r = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], &mail(1))).unwrap();
    assert!(r.is_positive(), "stored before anyone knew");
    line.set_quota(Some(1000), 1000);
    assert!(gw.wait_for_log("quota exhausted", Duration::from_secs(10)), "{}", gw.logs());
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], &mail(2))).unwrap_err();
    assert_eq!(code(&err), Some(452));
    assert!(err.to_string().contains("4.2.2"), "{err}");
    // Probes run (quota_probe_secs = 1) and find no room: nothing is pushed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!line.requests_to("/v2/bot/message/quota").is_empty(), "the quota is probed");
    assert_eq!(line.requests_to("/v2/bot/message/push").len(), 1);
    // The quota has room again: the paused mail goes out, new mail is accepted.
    line.set_quota(Some(1000), 10);
    let acc = wait_accepted(&line, 1, Duration::from_secs(10)).await;
    assert_eq!(seq_of(&acc[0]), 1);
    let r = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], &mail(3))).unwrap();
    assert!(r.is_positive());
    wait_accepted(&line, 2, Duration::from_secs(10)).await;
    assert_exactly_once(&line, &[1, 3]);
}

/// A sender that never saw our 250 (say the gateway was killed between storing the mail and
/// answering) sends the same mail again. Its requests get the same retry keys, derived from the
/// Message-ID and the content, so LINE answers 409 and the chat sees the mail once. A different
/// mail that reuses the Message-ID, and a mail without one, are delivered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_mail_sent_again_reaches_line_once() {
    let line = StandIn::start().await;
    let gw = start(&line, FAST);
    let to = addr(&user(7));
    let send = |raw: &[u8]| block_in_place(|| gw.send_raw("a@example.com", &[&to], raw)).unwrap();
    assert!(send(&mail(1)).is_positive());
    wait_accepted(&line, 1, Duration::from_secs(10)).await;
    assert!(send(&mail(1)).is_positive(), "the resend is answered 250 too: it is stored");
    let other = b"Subject: seq 2\r\nMessage-ID: <seq1@test>\r\n\r\nanother mail, same Message-ID\r\n";
    assert!(send(other).is_positive());
    let no_id = b"Subject: seq 3\r\n\r\nno Message-ID\r\n";
    assert!(send(no_id).is_positive());
    assert!(send(no_id).is_positive());
    wait_accepted(&line, 4, Duration::from_secs(10)).await;
    // The resend was sent and answered 409 (its key was already accepted), not delivered.
    let start = Instant::now();
    while !line.requests().iter().any(|r| r.status == 409) {
        assert!(start.elapsed() < Duration::from_secs(10), "no 409: {:?}", line.requests().iter().map(|r| (r.status, seq_of(r))).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seqs: Vec<usize> = pushes_accepted(&line).iter().map(seq_of).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 3]);
    let keys: Vec<String> = line.requests().iter().filter(|r| seq_of(r) == 1).filter_map(|r| r.header("x-line-retry-key").map(str::to_owned)).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    assert!(uuid_like(&keys[0]), "{}", keys[0]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_mail_survives_a_restart_and_keeps_its_key() {
    let line = StandIn::start().await;
    line.set_default(Behaviour::Status(500, json!({"message": "down"})));
    let mut gw = start(&line, "[delivery]\nretry_base_ms = 200\nretry_max_secs = 1\nscan_interval_ms = 50\ncoalesce_secs = 0");
    for s in 0..3 {
        assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(6))], &mail(s))).unwrap().is_positive());
    }
    line.wait_for(3, Duration::from_secs(10)).await;
    let status = block_in_place(|| gw.terminate());
    assert!(status.success(), "{status:?}");
    assert!(pushes_accepted(&line).is_empty());
    line.set_default(Behaviour::Ok);
    block_in_place(|| gw.restart());
    wait_accepted(&line, 3, Duration::from_secs(15)).await;
    assert_exactly_once(&line, &[0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_goes_to_the_dead_letters_with_lines_reason() {
    let line = StandIn::start().await;
    line.push_behaviour(Behaviour::Status(400, json!({"message": "The request body has 1 error(s)", "details": [{"message": "invalid", "property": "to"}]})));
    let gw = start(&line, FAST);
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(7))], &mail(1))).unwrap().is_positive());
    assert!(gw.wait_for_log("dead letter", Duration::from_secs(10)), "{}", gw.logs());
    assert!(gw.logs().contains("LINE rejected the request (400): The request body has 1 error(s); to: invalid"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(line.requests_to("/v2/bot/message/push").len(), 1, "a permanent failure is not retried");
}
