//! `mail2line check-config`: every problem of a file at once, warnings about risky settings, and
//! with `--online` a real `GET /v2/bot/info` against the stand-in LINE API — a good token, a
//! wrong one, stateless credentials, and nothing listening — each with its exit status and a
//! message that says what to do and holds no secret.

mod support;

use std::path::Path;

use support::cli::{self, Run};
use support::gateway::{DOMAIN, TOKEN};
use support::keys::{TestKey, CHANNEL_ID, KID};
use support::sink::{Options, Sink};
use support::standin::{StandIn, BOT_BASIC_ID, BOT_DISPLAY_NAME};
use tokio::task::block_in_place;

const WRONG_TOKEN: &str = "wrong-token-0d9c2b71-SECRET";
const CHANNEL_SECRET: &str = "channel-secret-77aa31";

/// Runs `check-config` on `text` (written to `dir/config.toml`); returns exit code and stdout+stderr.
fn check(dir: &Path, text: &str, online: bool) -> (Option<i32>, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = cli::mail2line(["check-config"], &path);
    if online {
        cmd.arg("--online");
    }
    let out = Run::of(&mut cmd);
    (Some(out.code), out.text())
}

fn config(api_base_url: &str, line: &str) -> String {
    format!("[smtp]\ndomain = \"{DOMAIN}\"\n\n[line]\napi_base_url = \"{api_base_url}\"\ntimeout_secs = 5\n{line}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_names_the_bot() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let text = config(&line.base_url(), &format!("channel_access_token = \"{TOKEN}\"\nchannel_secret = \"{CHANNEL_SECRET}\""));
    let (code, out) = block_in_place(|| check(dir.path(), &text, true));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("LINE: ok, bot {BOT_DISPLAY_NAME} ({BOT_BASIC_ID})")), "{out}");
    let asked = line.requests_to("/v2/bot/info");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    line.assert_all_valid();
    assert!(!out.contains(TOKEN) && !out.contains(CHANNEL_SECRET), "{out}");

    // Without --online, LINE is not asked.
    let (code, out) = block_in_place(|| check(dir.path(), &text, false));
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("LINE: ok"), "{out}");
    assert_eq!(line.requests_to("/v2/bot/info").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_explained_without_showing_it() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let text = config(&line.base_url(), &format!("channel_access_token = \"{WRONG_TOKEN}\""));
    let (code, out) = block_in_place(|| check(dir.path(), &text, true));
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains("LINE: the long-lived channel access token (inline in the configuration file) was refused (401"), "{out}");
    assert!(out.contains("Issue a new one in the LINE Developers console"), "{out}");
    assert!(!out.contains(WRONG_TOKEN) && !out.contains(&WRONG_TOKEN[..12]), "{out}");
    assert_eq!(line.requests_to("/v2/bot/info")[0].status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_credentials_issue_a_token_and_a_wrong_secret_is_refused() {
    let line = StandIn::start().await;
    line.set_channel(TestKey::shared().channel(CHANNEL_SECRET));
    let dir = tempfile::tempdir().unwrap();
    let stateless = |secret: &str| config(&line.base_url(), &format!("token = \"stateless\"\nchannel_id = \"{CHANNEL_ID}\"\nchannel_secret = \"{secret}\""));
    let (code, out) = block_in_place(|| check(dir.path(), &stateless(CHANNEL_SECRET), true));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("LINE: ok, bot {BOT_DISPLAY_NAME}")), "{out}");
    // The bot info was asked with the token the stand-in had just issued.
    let issued = line.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(line.requests_to("/v2/bot/info")[0].header("authorization"), Some(format!("Bearer {}", issued[0].token).as_str()));

    let (code, out) = block_in_place(|| check(dir.path(), &stateless("not-the-secret-4411"), true));
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains("LINE: credentials refused: LINE did not issue a stateless channel access token (400 invalid_client"), "{out}");
    assert!(out.contains("check line.channel_id and line.channel_secret"), "{out}");
    for secret in [CHANNEL_SECRET, "not-the-secret-4411", issued[0].token.as_str()] {
        assert!(!out.contains(secret), "{out}");
    }
}

/// A v2.1 token issued by a check is kept where `serve` finds it, so checking again (or starting
/// the gateway) spends none of the channel's 30 valid v2.1 tokens; and when root checks the
/// configuration of a service running as another user, that user gets the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v21_check_keeps_its_token_for_the_service() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let line = StandIn::start().await;
    line.set_channel(TestKey::shared().channel(CHANNEL_SECRET));
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::write(dir.path(), "key.json", &TestKey::shared().jwk().to_string());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    const SERVICE_UID: u32 = 65534;
    if root {
        std::os::unix::fs::chown(&data, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    }
    let text = format!(
        "{}
[storage]
dir = \"{}\"\n",
        config(&line.base_url(), &format!("token = \"v2.1\"\nchannel_id = \"{CHANNEL_ID}\"\nprivate_key_file = \"{}\"\nkid = \"{KID}\"", key.display())),
        data.display()
    );
    for _ in 0..2 {
        let (code, out) = block_in_place(|| check(dir.path(), &text, true));
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("LINE: ok, bot {BOT_DISPLAY_NAME}")), "{out}");
    }
    assert_eq!(line.issued_tokens().len(), 1, "the second check reused the stored token");
    let stored = std::fs::metadata(data.join("line-token.json")).unwrap();
    assert_eq!(stored.permissions().mode() & 0o777, 0o600);
    if root {
        assert_eq!((stored.uid(), stored.gid()), (SERVICE_UID, SERVICE_UID));
    } else {
        eprintln!("(not root: the hand-over of the token file to the service's user was not tested)");
    }
    line.assert_all_valid();
}

#[test]
fn nothing_listening_is_unavailable() {
    // A port that was free a moment ago: connecting to it is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = config(&format!("http://127.0.0.1:{port}"), &format!("channel_access_token = \"{TOKEN}\""));
    let (code, out) = check(dir.path(), &text, true);
    assert_eq!(code, Some(69), "{out}");
    assert!(out.contains(&format!("LINE: unreachable: GET http://127.0.0.1:{port}/v2/bot/info: cannot connect")), "{out}");
    assert!(out.contains("line.api_base_url is"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
}

#[test]
fn every_problem_at_once_and_warnings_for_risky_settings() {
    let dir = tempfile::tempdir().unwrap();
    // Two wrong types in different tables, and a value problem: types are all reported first.
    let text = format!("[smtp]\ndomain = \"{DOMAIN}\"\nmax_recipients = \"ten\"\n\n[line]\ntimeout_secs = \"5\"\nchannel_access_token = \"{TOKEN}\"\n");
    let (code, out) = check(dir.path(), &text, true);
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains("config.toml:3: smtp.max_recipients: invalid type"), "{out}");
    assert!(out.contains("config.toml:6: line.timeout_secs: invalid type"), "{out}");
    assert!(out.contains("LINE: not checked: fix the configuration first"), "{out}");

    // Valid but risky: an open public listener, no channel secret, a token in a file all can read.
    let text = format!("[smtp]\ndomain = \"{DOMAIN}\"\nlisten = \"0.0.0.0:2525\"\n\n[line]\nchannel_access_token = \"{TOKEN}\"\n");
    let (code, out) = check(dir.path(), &text, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("warning: smtp.listen 0.0.0.0:2525 is not loopback and neither smtp.auth nor smtp.allowed_clients is set"), "{out}");
    assert!(out.contains("warning: line.channel_secret is not set"), "{out}");
    assert!(out.contains("is readable by every user of this machine and holds secrets (line.channel_access_token)"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("config.toml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Run::of(&mut cli::mail2line(["check-config"], &dir.path().join("config.toml"))).stdout;
    assert!(!out.contains("readable by every user"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_probes_the_relay_for_answers() {
    const USER: &str = "gw-relay";
    const PASSWORD: &str = "relay-pw-3e9a51";
    const WRONG: &str = "wrong-relay-pw-7b02";
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let sink = Sink::start_with(Options { login: Some((USER.into(), PASSWORD.into())), ..Options::default() });
    let dir = tempfile::tempdir().unwrap();
    // Every run's output, checked for secrets at the end.
    let mut seen = String::new();
    let mut run = |text: &str, online: bool| {
        let (code, out) = block_in_place(|| check(dir.path(), text, online));
        seen.push_str(&out);
        (code, out)
    };
    let with_relay = |port: u16, password: &str| {
        format!(
            "{}\n[replies]\nrelay = \"smtp://127.0.0.1:{port}\"\nfrom = \"line@example.com\"\nusername = \"{USER}\"\npassword = \"{password}\"\n",
            config(&line.base_url(), &format!("channel_access_token = \"{TOKEN}\"\nchannel_secret = \"{CHANNEL_SECRET}\""))
        )
    };

    // The relay answers EHLO and takes the login.
    let (code, out) = run(&with_relay(sink.addr.port(), PASSWORD), true);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("answers from LINE mailed through smtp://127.0.0.1:{} from line@example.com, logging in as \"{USER}\"", sink.addr.port())), "{out}");
    assert!(out.contains("LINE: ok"), "{out}");
    assert!(out.contains(&format!("relay: ok, smtp://127.0.0.1:{} answered EHLO as sink", sink.addr.port())) && out.contains(&format!("logged in as \"{USER}\"")), "{out}");
    assert_eq!(sink.logins(), [(USER.to_owned(), true)]);
    assert!(sink.transactions().is_empty(), "a probe sends no mail");
    // Without --online the relay is not asked either.
    let (code, out) = run(&with_relay(sink.addr.port(), PASSWORD), false);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("relay: "), "{out}");
    assert_eq!(sink.logins().len(), 1);

    // A wrong password: a configuration problem, explained, and the password never shown.
    let (code, out) = run(&with_relay(sink.addr.port(), WRONG), true);
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains(&format!("relay: smtp://127.0.0.1:{} refused the login \"{USER}\": ", sink.addr.port())) && out.contains("535"), "{out}");
    assert!(out.contains("check replies.username and the password"), "{out}");
    assert!(out.contains("LINE: ok"), "LINE is still checked and reported: {out}");
    assert_eq!(sink.logins().last(), Some(&(USER.to_owned(), false)));

    // Nothing listening: unavailable.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out) = run(&with_relay(port, PASSWORD), true);
    assert_eq!(code, Some(69), "{out}");
    assert!(out.contains(&format!("relay: smtp://127.0.0.1:{port}: cannot connect")) && out.contains("check replies.relay's host and port"), "{out}");
    line.assert_all_valid();
    for secret in [PASSWORD, WRONG, TOKEN, CHANNEL_SECRET] {
        assert!(!seen.contains(secret), "{seen}");
    }
}
