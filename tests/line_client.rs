//! The LINE client against the stand-in: what it keeps from LINE's accepting answers.
//!
//! A push answers the ids of the messages it sent (`sentMessages[].id`), and repeats them in the
//! 409 to the same retry key; a follower's answer that quotes one of ours names such an id. The
//! client hands them on in `Outcome::Delivered { sent, .. }`, the first piece of answers from
//! LINE reaching the mail's sender (issue #20). Multicast answers none.
//!
//! And what answers from LINE need of the client: the content a follower sent (from the
//! content host, `api_data_base_url`), a group or room member's name, and marking a chat read.

mod support;

use std::time::Duration;

use mail2line::line::{ContentError, Credentials, Error, LineClient, Outcome};
use mail2line::secret::Secret;
use serde_json::json;
use support::gateway::{user, TOKEN};
use support::standin::{Behaviour, StandIn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

const GROUP: &str = "Ca56f94637c30000000000000000000a1";
const ROOM: &str = "Ra8dbf4673c40000000000000000000b2";
const MB: u64 = 1024 * 1024;

/// A client whose API and content host are the same stand-in, as tests configure the gateway.
fn data_client(line: &StandIn) -> LineClient {
    client(line).with_data_base_url(&line.base_url())
}

/// Bytes that show any corruption: every byte value, in an order that does not repeat soon.
fn photo(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test]
async fn content_comes_from_the_data_host_with_its_bytes_and_type_intact() {
    // Two stand-ins: the API host knows nothing of the content, so only a request to the
    // data host can succeed.
    let api = StandIn::start().await;
    let data = StandIn::start().await;
    let bytes = photo(300_000);
    data.put_content("325708", "image/jpeg", &bytes);
    let client = client(&api).with_data_base_url(&format!("{}/", data.base_url()));

    let content = client.content("325708", 10 * MB).await.unwrap();
    assert_eq!(content.content_type, "image/jpeg");
    assert!(content.bytes == bytes, "bytes changed on the way ({} of {})", content.bytes.len(), bytes.len());
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    let asked = data.requests_to("/v2/bot/message/325708/content");
    assert_eq!((asked.len(), asked[0].method.as_str()), (1, "GET"));
    assert_eq!(asked[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    data.assert_all_valid();
}

#[tokio::test]
async fn content_past_the_limit_is_too_large() {
    let line = StandIn::start().await;
    line.put_content("1", "video/mp4", &photo(100_000));
    let client = data_client(&line);
    assert_eq!(client.content("1", 99_999).await, Err(ContentError::TooLarge { limit: 99_999 }));
    assert_eq!(client.content("1", 100_000).await.map(|c| c.bytes.len()), Ok(100_000));
}

/// A content host that streams without end and without a length: the client must stop once
/// the limit is passed instead of reading on (it would never finish) or holding it all.
#[tokio::test]
async fn an_endless_stream_is_cut_off_at_the_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: audio/m4a\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
        let chunk = [b'a'; 16 * 1024];
        let mut sent = 0u64;
        while socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_ok()
            && socket.write_all(&chunk).await.is_ok()
            && socket.write_all(b"\r\n").await.is_ok()
        {
            sent += chunk.len() as u64;
        }
        sent
    });
    let line = StandIn::start().await;
    let client = client(&line).with_data_base_url(&format!("http://{addr}"));
    let answer = tokio::time::timeout(Duration::from_secs(20), client.content("7", MB)).await.expect("stopped reading at the limit");
    assert_eq!(answer, Err(ContentError::TooLarge { limit: MB }));
    drop(client);
    let sent = tokio::time::timeout(Duration::from_secs(20), server).await.expect("the client hung up").unwrap();
    assert!(sent < 64 * MB, "the client read {sent} bytes before giving up");
}

#[tokio::test]
async fn content_that_is_gone_or_not_an_id_is_permanent() {
    let line = StandIn::start().await;
    let client = data_client(&line);
    match client.content("999", MB).await {
        Err(ContentError::Permanent(why)) => assert!(why.contains("404"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Not digits: refused before any request (it would go into the URL path).
    for bad in ["../info", "12a", "", "1/content?x=", "１"] {
        assert!(matches!(client.content(bad, MB).await, Err(ContentError::Permanent(_))), "{bad:?}");
    }
    assert_eq!(line.requests().len(), 1, "{:?}", line.requests());
}

#[tokio::test]
async fn content_is_retried_through_500_429_and_202_until_it_comes() {
    let line = StandIn::start().await;
    line.put_content("42", "audio/x-m4a", b"voice");
    line.push_content_behaviour(Behaviour::Status(500, json!({ "message": "Internal server error" })));
    line.push_content_behaviour(Behaviour::Status(429, json!({ "message": "The API rate limit has been exceeded. Try again later." })));
    line.push_content_behaviour(Behaviour::Status(202, json!({})));
    let client = data_client(&line);
    for expected in ["500", "429", "still preparing"] {
        match client.content("42", MB).await {
            Err(ContentError::Retry(why)) => assert!(why.contains(expected), "{expected}: {why}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
    let content = client.content("42", MB).await.unwrap();
    assert_eq!((content.bytes.as_slice(), content.content_type.as_str()), (&b"voice"[..], "audio/x-m4a"));

    // Nobody there at all: retry, and the error names no token.
    let gone = client.clone().with_data_base_url("http://127.0.0.1:9");
    match gone.content("42", MB).await {
        Err(e @ ContentError::Retry(_)) => assert!(!e.to_string().contains(TOKEN), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mark_as_read_sends_the_events_token() {
    let line = StandIn::start().await;
    let outcome = client(&line).mark_as_read("30yhdy232").await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let sent = line.requests_to("/v2/bot/chat/markAsRead");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, json!({ "markAsReadToken": "30yhdy232" }));
    assert_eq!(sent[0].header("x-line-retry-key"), None);
    line.assert_all_valid();
    assert_eq!(line.messages_counted(), 0, "marking read costs no quota");

    line.set_default(Behaviour::Status(400, json!({ "message": "Invalid markAsReadToken" })));
    assert!(matches!(client(&line).mark_as_read("stale").await, Outcome::Permanent { status: 400, .. }));
}

#[tokio::test]
async fn member_name_asks_the_group_the_room_or_the_profile() {
    let line = StandIn::start().await;
    let taro = user(7);
    line.set_display_name(&taro, "LINE taro");
    let client = client(&line);

    assert_eq!(client.member_name(GROUP, &taro).await.unwrap(), "LINE taro");
    assert_eq!(client.member_name(ROOM, &taro).await.unwrap(), "LINE taro");
    assert_eq!(client.member_name(&taro, &taro).await.unwrap(), "LINE taro");
    let paths: Vec<String> = line.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [format!("/v2/bot/group/{GROUP}/member/{taro}"), format!("/v2/bot/room/{ROOM}/member/{taro}"), format!("/v2/bot/profile/{taro}")]);
    line.assert_all_valid();

    // Not a member (LINE's 404), and ids that would change the path: no request for those.
    assert!(matches!(client.member_name(GROUP, &user(8)).await, Err(Error::Status { status: 404, .. })));
    let before = line.requests().len();
    assert!(matches!(client.member_name(GROUP, "U1/../x").await, Err(Error::NotAUserId(_))));
    assert!(matches!(client.member_name("C1/../info", &taro).await, Err(Error::NotAChatId(_))));
    assert!(matches!(client.member_name("X123", &taro).await, Err(Error::NotAChatId(_))));
    assert!(matches!(client.member_name("", &taro).await, Err(Error::NotAChatId(_))));
    assert_eq!(line.requests().len(), before);
}

