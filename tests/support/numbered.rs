//! Numbered test mails and what became of them at the LINE stand-in: a mail is "seq N" in its
//! subject, so the pushed text ("seq N\n\n…") names it. Used by the spool's tests on SQLite
//! (`tests/spool.rs`) and on PostgreSQL (`tests/serve_pg.rs`), which check the same promise:
//! every mail answered 250 is accepted by LINE exactly once, with one retry key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::standin::{Recorded, StandIn};

/// Mail number `seq`, with a Message-ID of its own under `domain`.
pub fn mail(seq: usize, domain: &str) -> Vec<u8> {
    format!("Subject: seq {seq}\r\nMessage-ID: <seq{seq}@{domain}>\r\n\r\nbody of {seq}\r\n").into_bytes()
}

/// The mail number in a pushed text ("seq N\n\n…"); `usize::MAX` for any other request.
pub fn seq_of(r: &Recorded) -> usize {
    let text = r.body["messages"][0]["text"].as_str().unwrap_or("");
    text.strip_prefix("seq ").and_then(|t| t.split('\n').next()).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
}

/// Pushes LINE accepted (2xx), leaving out quota probes and other GETs.
pub fn pushes_accepted(line: &StandIn) -> Vec<Recorded> {
    line.accepted().into_iter().filter(|r| r.path == "/v2/bot/message/push").collect()
}

/// Waits until LINE accepted `n` pushes (2xx), or panics with what arrived.
pub async fn wait_accepted(line: &StandIn, n: usize, timeout: Duration) -> Vec<Recorded> {
    let start = Instant::now();
    loop {
        let acc = pushes_accepted(line);
        if acc.len() >= n {
            return acc;
        }
        if start.elapsed() > timeout {
            panic!("only {} of {n} pushes accepted; requests: {:?}", acc.len(), line.requests().iter().map(|r| (r.status, seq_of(r))).collect::<Vec<_>>());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every mail of `sent` accepted exactly once, no mail accepted twice, and every request for
/// one mail with the same retry key over all its attempts (on whichever node). Other mails may
/// have been accepted once (a kill after the final "." leaves the client without its 250);
/// [`assert_only`] rules them out where nothing was cut.
pub fn assert_exactly_once(line: &StandIn, sent: &[usize]) {
    let accepted = accepted_by_seq(line);
    for s in sent {
        assert_eq!(accepted.get(s), Some(&1), "mail {s} accepted {:?} times", accepted.get(s));
    }
    let dupes: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    let mut keys: HashMap<usize, String> = HashMap::new();
    for r in line.requests_to("/v2/bot/message/push") {
        let key = r.header("x-line-retry-key").expect("every spooled push carries a retry key").to_owned();
        let prev = keys.entry(seq_of(&r)).or_insert_with(|| key.clone());
        assert_eq!(*prev, key, "mail {} changed its retry key between attempts", seq_of(&r));
    }
}

/// [`assert_exactly_once`], and no mail but those of `sent` accepted at all.
pub fn assert_only(line: &StandIn, sent: &[usize]) {
    assert_exactly_once(line, sent);
    let accepted = accepted_by_seq(line);
    assert_eq!(accepted.len(), sent.len(), "accepted: {accepted:?}");
}

/// How often LINE accepted each mail.
fn accepted_by_seq(line: &StandIn) -> HashMap<usize, usize> {
    let mut accepted: HashMap<usize, usize> = HashMap::new();
    for r in pushes_accepted(line) {
        *accepted.entry(seq_of(&r)).or_default() += 1;
    }
    accepted
}
