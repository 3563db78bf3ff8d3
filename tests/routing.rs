//! Routing by name, end to end: `followers@` reaches every active follower in multicasts of at
//! most 500, `[aliases]` expand to their ids, and `smtp.require_follower` refuses strangers at
//! RCPT. The follower registry is the real SQLite file the running gateway uses.

mod support;

use mail2line::followers::{Kind, Registry};
use serde_json::json;
use support::gateway::{addr, code, user, GatewayProcess, Options, DOMAIN};
use support::standin::StandIn;
use tokio::task::block_in_place;

fn registry(gw: &GatewayProcess) -> Registry {
    Registry::open_existing(&gw.dir.path().join("data")).expect("the gateway created the registry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_address_reaches_1201_followers_in_three_multicasts() {
    let line = StandIn::start().await;
    let url = line.base_url();
    // followers@ is closed by default; cron@example.com is let in by name.
    let extra = "[delivery]\nmode = \"direct\"\n[routing]\nfollowers_senders = [\"cron@example.com\"]\n";
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    let reg = registry(&gw);
    for n in 0..1201 {
        reg.follow(&user(n), Kind::User, None, 1000 + n as i64).unwrap();
    }
    // Someone who left, and a group: neither is part of followers@.
    reg.follow(&user(5000), Kind::User, None, 1).unwrap();
    reg.unfollow(&user(5000), Kind::User, 2).unwrap();
    reg.follow(&format!("C{:032x}", 1), Kind::Group, None, 3).unwrap();

    let resp = block_in_place(|| gw.send_raw("cron@example.com", &[&format!("followers@{DOMAIN}")], b"Subject: all\r\n\r\nhands\r\n")).unwrap();
    assert!(resp.is_positive());
    let multi = line.requests_to("/v2/bot/message/multicast");
    let sizes: Vec<usize> = multi.iter().map(|r| r.body["to"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, vec![500, 500, 201]);
    let mut all: Vec<String> = multi.iter().flat_map(|r| r.body["to"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned())).collect();
    all.sort();
    let mut want: Vec<String> = (0..1201).map(user).collect();
    want.sort();
    assert_eq!(all, want, "every active follower exactly once, nobody else");
    assert_eq!(multi[0].body["messages"], json!([{"type": "text", "text": "all\n\nhands"}]));
    assert!(line.requests_to("/v2/bot/message/push").is_empty());
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_expand_and_unknown_aliases_are_refused() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let group = format!("C{:032x}", 9);
    let extra = format!("[delivery]\nmode = \"direct\"\n\n[aliases]\nops = [\"{}\", \"{}\", \"{group}\"]\n", user(1), user(2));
    let extra: &'static str = Box::leak(extra.into_boxed_str());
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    let resp = block_in_place(|| gw.send_raw("a@example.com", &[&format!("ops@{DOMAIN}")], b"Subject: disk\r\n\r\nfull\r\n")).unwrap();
    assert!(resp.is_positive());
    let multi = line.requests_to("/v2/bot/message/multicast");
    assert_eq!(multi.len(), 1);
    assert_eq!(multi[0].body["to"], json!([user(1), user(2)]));
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].body["to"], json!(group));
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&format!("nosuch@{DOMAIN}")], b"Subject: x\r\n\r\ny\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("5.1.1") && err.to_string().contains("no such alias"), "{err}");
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_follower_refuses_strangers_and_is_off_by_default() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let (friend, stranger) = (user(1), user(2));
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, smtp_extra: "require_follower = true", extra: "[delivery]\nmode = \"direct\"", ..Default::default() })
    });
    registry(&gw).follow(&friend, Kind::User, Some("Friend"), 1).unwrap();
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&friend)], b"Subject: hi\r\n\r\nx\r\n")).unwrap().is_positive());
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&stranger)], b"Subject: hi\r\n\r\nx\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("not a follower"), "{err}");
    // Unfollowing takes effect at once.
    registry(&gw).unfollow(&friend, Kind::User, 2).unwrap();
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&friend)], b"Subject: hi\r\n\r\nx\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert_eq!(line.requests_to("/v2/bot/message/push").len(), 1);

    // Off (the default): any well-formed id goes out.
    let extra = "[delivery]\nmode = \"direct\"\n[routing]\nfollowers_senders = [\"@example.com\"]\n";
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&stranger)], b"Subject: hi\r\n\r\nx\r\n")).unwrap().is_positive());
    // followers@ with nobody following is refused at RCPT.
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&format!("followers@{DOMAIN}")], b"Subject: hi\r\n\r\nx\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("no active followers"), "{err}");
}
