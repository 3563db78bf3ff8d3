//! The LINE client against the stand-in: what it keeps from LINE's accepting answers.
//!
//! A push answers the ids of the messages it sent (`sentMessages[].id`), and repeats them in the
//! 409 to the same retry key; a follower's answer that quotes one of ours names such an id. The
//! client hands them on in `Outcome::Delivered { sent, .. }`, the first piece of answers from
//! LINE reaching the mail's sender (issue #20). Multicast answers none.

mod support;

use std::time::Duration;

use mail2line::line::{Credentials, LineClient, Outcome};
use mail2line::secret::Secret;
use serde_json::json;
use support::gateway::{user, TOKEN};
use support::standin::StandIn;

fn client(line: &StandIn) -> LineClient {
    LineClient::new(&line.base_url(), Credentials::LongLived(Secret::new(TOKEN)), Duration::from_secs(10), None).unwrap()
}

fn sent(outcome: Outcome) -> (bool, Vec<String>) {
    match outcome {
        Outcome::Delivered { duplicate, sent, .. } => (duplicate, sent),
        other => panic!("not delivered: {other:?}"),
    }
}

#[tokio::test]
async fn a_push_keeps_the_ids_of_its_messages_and_a_resend_gets_the_same_ones() {
    let line = StandIn::start().await;
    let client = client(&line);
    let body = json!({ "to": user(1), "messages": [{ "type": "text", "text": "Disk full" }, { "type": "text", "text": "web-3" }] }).to_string();
    let key = "0f8fad5b-d9cb-469f-a165-70867728950e";

    let (duplicate, first) = sent(client.send_raw("/v2/bot/message/push", body.clone(), Some(key)).await);
    assert!(!duplicate);
    assert_eq!(first.len(), 2, "one id per message: {first:?}");
    assert_ne!(first[0], first[1]);

    // Sent again with the same retry key (a restart after LINE took it): LINE answers 409 with
    // the ids of the first time, so the mail is remembered under the ids the follower sees.
    let (duplicate, again) = sent(client.send_raw("/v2/bot/message/push", body, Some(key)).await);
    assert!(duplicate);
    assert_eq!(again, first);

    // Another push gets other ids.
    let other = json!({ "to": user(2), "messages": [{ "type": "text", "text": "ok" }] }).to_string();
    let (_, next) = sent(client.send_raw("/v2/bot/message/push", other, None).await);
    assert_eq!(next.len(), 1);
    assert!(!first.contains(&next[0]), "{first:?} vs {next:?}");

    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 3);
    assert!(pushes.iter().all(|r| r.spec_errors.is_empty()), "{:?}", pushes.iter().map(|r| &r.spec_errors).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_multicast_is_delivered_without_ids() {
    let line = StandIn::start().await;
    let body = json!({ "to": [user(1), user(2)], "messages": [{ "type": "text", "text": "to both" }] }).to_string();
    let (duplicate, ids) = sent(client(&line).send_raw("/v2/bot/message/multicast", body, None).await);
    assert!(!duplicate);
    assert!(ids.is_empty(), "{ids:?}");
    assert_eq!(line.requests_to("/v2/bot/message/multicast").len(), 1);
}
