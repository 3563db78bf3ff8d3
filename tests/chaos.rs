//! The fault campaign, short: a few hundred mails through the real binary while it is
//! `kill -9`'d every second or so and the LINE stand-in fails 20% of the deliveries. Every mail
//! answered 250 reaches LINE exactly once. Same code as `bench/chaos.sh` (tests/support/chaos.rs);
//! set `MAIL2LINE_CHAOS_SEED` to replay a seed.

mod support;

use std::time::Duration;

use serde_json::json;
use support::chaos::{clock_seed, max_in_one_second, run, tally, Ending, Settings, Transaction};
use support::standin::{Fault, Recorded};

/// A short campaign (500 mails, 5 sessions, 100/s, a kill every 0.3–1.2 s), checked for what
/// every campaign must show; returns the report for the checks particular to a test.
async fn short_campaign(fault_rate: f64, coalesce: bool) -> (support::chaos::Report, String) {
    let seed = std::env::var("MAIL2LINE_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(clock_seed);
    let settings = Settings {
        mails: 500,
        sessions: 5,
        // Paced, so the load spans several kills (5 s of load, a kill every ≤ 1.2 s; the killer
        // goes on into the drain if a slow machine made fewer than `min_kills`).
        rate: Some(100.0),
        seed,
        fault_rate,
        kill_every: (Duration::from_millis(300), Duration::from_millis(1200)),
        min_kills: 3,
        drain_timeout: Duration::from_secs(60),
        rust_log: None,
        coalesce,
        nodes: 1,
        postgres: false,
        rate_limit: None,
    };
    let report = run(settings).await;
    let summary = report.summary();
    eprintln!("{summary}");
    assert!(report.kills >= 3, "the campaign must kill the gateway several times:\n{summary}");
    let t = &report.tally;
    assert_eq!(t.mails_answered_250, 500, "every mail is answered 250 in the end:\n{summary}");
    assert!(t.lost.is_empty() && t.duplicated.is_empty(), "0 lost, 0 duplicated:\n{summary}");
    assert!(t.spec_errors.is_empty(), "every request body is valid against LINE's spec:\n{summary}");
    assert!(report.passed(), "{summary}");
    (report, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fault_campaign_loses_and_duplicates_nothing() {
    // One request per mail: many requests, so faults of every kind are drawn.
    let (report, summary) = short_campaign(0.2, false).await;
    assert!(report.faults_injected.len() >= 3, "the stand-in must inject faults of several kinds:\n{summary}");
}

/// The same with coalescing on: nearly all mail is held and `kill -9`'d while held, and is
/// counted per mail in the shared requests. Fewer requests draw fewer faults, so the kinds of
/// faults are not asserted here (the campaign above covers them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fault_campaign_with_coalescing_loses_and_duplicates_nothing() {
    let (report, summary) = short_campaign(0.3, true).await;
    assert!(report.tally.coalesced_requests > 0, "mail was coalesced:\n{summary}");
}

/// A delivery request as the stand-in records it, for the accounting tests.
fn push(seq: u64, attempt: u32, key: &str, status: u16) -> Recorded {
    Recorded {
        method: "POST".into(),
        path: "/v2/bot/message/push".into(),
        headers: vec![("x-line-retry-key".into(), key.into())],
        body: json!({"to": "U1", "messages": [{"type": "text", "text": format!("chaos seq={seq} try={attempt}\n\nMail {seq}")}]}),
        raw: Vec::new(),
        spec_errors: Vec::new(),
        notes: Vec::new(),
        status,
        dropped: false,
        request_id: "r".into(),
        fault: None,
        answer: serde_json::Value::Null,
        received: std::time::Instant::now(),
    }
}

/// The accounting finds what the campaign is there to find.
#[test]
fn the_tally_counts_lost_duplicated_and_lost_answers_apart() {
    let tx = |seq, attempt, ending| Transaction { seq, attempt, ending };
    let transactions = [
        tx(0, 1, Ending::Answered(250)),  // accepted once, then a 409: fine
        tx(1, 1, Ending::Answered(250)),  // never accepted: lost
        tx(2, 1, Ending::Answered(250)),  // accepted twice: duplicate
        tx(3, 1, Ending::CutAfterEnd),    // answer lost, delivered anyway …
        tx(3, 2, Ending::Answered(250)),  // … and the resend too: the mail arrives twice
        tx(4, 1, Ending::CutBeforeEnd),   // cannot have been stored, yet delivered
        tx(5, 1, Ending::Answered(451)),
        tx(5, 2, Ending::CutAfterEnd),    // not stored: fine
        tx(5, 3, Ending::Answered(250)),
    ];
    let mut failed = push(0, 1, "k0", 500);
    failed.fault = Some(Fault::ServerError);
    let requests = [
        failed,
        push(0, 1, "k0", 200),
        push(0, 1, "k0", 409),
        push(1, 1, "k1", 429),
        push(2, 1, "k2", 200),
        push(2, 1, "k2b", 200),
        push(3, 1, "k3", 200),
        push(3, 2, "k32", 200),
        push(4, 1, "k4", 200),
        push(5, 3, "k5", 200),
        push(99, 1, "k99", 200),
    ];
    let t = tally(&transactions, &requests);
    assert_eq!(t.lost, vec![(1, 1)]);
    assert_eq!(t.duplicated, vec![((2, 1), 2)]);
    assert_eq!(t.key_changed, vec![(2, 1)]);
    assert_eq!(t.unexpected, vec![((4, 1), Ending::CutBeforeEnd)]);
    assert_eq!(t.unattributed, 1, "seq 99 was never sent");
    assert_eq!((t.answered_250, t.mails_answered_250, t.accepted_once), (5, 5, 3));
    assert_eq!((t.answer_lost_delivered, t.mails_delivered_twice), (1, 1));
    assert_eq!((t.cut_after_end, t.cut_before_end, t.refused_4xx), (2, 1, 1));
    assert_eq!((t.conflicts_409, t.requests), (1, 11));
    assert_eq!(t.faults.get(&Fault::ServerError), Some(&1));
}

/// The busiest second is a sliding window over arrival times, not calendar seconds, and counts
/// pushes only (token and quota requests do not count against the push limit).
#[test]
fn the_busiest_second_is_a_sliding_window_over_pushes() {
    let t0 = std::time::Instant::now();
    let at = |ms: u64, path: &str| {
        let mut r = push(ms, 1, "k", 200);
        r.path = path.into();
        r.received = t0 + Duration::from_millis(ms);
        r
    };
    let push_path = "/v2/bot/message/push";
    // Two at the end of one calendar second and three at the start of the next: 5 in 1 s.
    let requests = vec![
        at(0, push_path),
        at(800, push_path),
        at(900, push_path),
        at(1100, push_path),
        at(1200, push_path),
        at(1300, push_path),
        at(1350, "/v2/bot/message/quota/consumption"),
        at(2400, push_path),
    ];
    assert_eq!(max_in_one_second(&requests), 5);
    // Exactly one second apart is two windows.
    assert_eq!(max_in_one_second(&[at(0, push_path), at(1000, push_path)]), 1);
    assert_eq!(max_in_one_second(&[]), 0);
}
