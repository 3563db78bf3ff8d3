//! Channel access tokens end to end: the real `mail2line` binary with `token = "v2.1"` (keys as
//! LINE's console JWK and as PEM) and `token = "stateless"`, against the stand-in LINE server,
//! which issues tokens only for requests that pass `channel-access-token.yml` and LINE's own
//! checks, and accepts a push only with a currently valid issued token. Also: renewal before
//! expiry, exactly one renewal after a 401, the v2.1 token kept across a restart, token endpoint
//! failures, a burst of concurrent requests sharing one token (the library's `TokenSource`
//! against the stand-in), and that no token, secret or key ever reaches the logs.
//!
//! Nothing here asserts on timing: tests that need a token to expire wait until the stand-in
//! says it has.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::cli::{self, Run};
use support::gateway::{addr, code, user, GatewayProcess, Options, SECRET};
use support::keys::{TestKey, CHANNEL_ID, KID};
use support::standin::{Behaviour, Recorded, StandIn};
use tokio::task::block_in_place;

const DIRECT: &str = "[delivery]\nmode = \"direct\"";
/// Spool mode with quick retries.
const SPOOL_FAST: &str = "[delivery]\nretry_base_ms = 100\nretry_max_secs = 2\nscan_interval_ms = 50";
const STATELESS: &str = "token = \"stateless\"\nchannel_id = \"1234567890\"\n";

fn v21(key_file: &Path, kid: Option<&str>) -> String {
    let kid = kid.map(|k| format!("kid = \"{k}\"\n")).unwrap_or_default();
    format!("token = \"v2.1\"\nchannel_id = \"{CHANNEL_ID}\"\nprivate_key_file = \"{}\"\n{kid}", key_file.display())
}

/// A stand-in playing the test channel.
async fn channel_line() -> StandIn {
    let line = StandIn::start().await;
    line.set_channel(TestKey::shared().channel(SECRET));
    line
}

fn start(line: &StandIn, line_extra: &str, extra: &str) -> GatewayProcess {
    let url = line.base_url();
    block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, token: None, line_extra, extra, ..Default::default() }))
}

/// Sends one mail to `user(n)`; returns the SMTP reply code.
fn mail(gw: &GatewayProcess, n: u32) -> u16 {
    let body = format!("Subject: mail {n}\r\n\r\nbody {n}\r\n");
    match block_in_place(|| gw.send_raw("cron@example.com", &[&addr(&user(n))], body.as_bytes())) {
        Ok(r) => r.code().to_string().parse().unwrap(),
        Err(e) => code(&e).unwrap_or(0),
    }
}

fn bearer(r: &Recorded) -> String {
    r.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or_default().to_owned()
}

fn pushes(line: &StandIn) -> Vec<(u16, String)> {
    line.requests_to("/v2/bot/message/push").iter().map(|r| (r.status, bearer(r))).collect()
}

/// No access token, channel secret or private key material in the gateway's logs, nor in the
/// stand-in's record of what the gateway logged about it.
fn assert_no_secrets(gw: &GatewayProcess, line: &StandIn) {
    let logs = gw.logs();
    let mut secrets: Vec<String> = line.issued_tokens().into_iter().map(|t| t.token).collect();
    secrets.push(SECRET.to_owned());
    secrets.extend(TestKey::shared().secret_fragments());
    for s in secrets {
        assert!(!logs.contains(&s), "the logs contain a secret ({}…):\n{logs}", &s[..8]);
    }
}

/// Checks the client assertion in a v2.1 token request the way LINE does, independently of the
/// stand-in: RS256, our kid, a signature by the registered public key, and LINE's claims.
fn assert_assertion(request: &Recorded) {
    let jwt = request.body["client_assertion"].as_str().expect("client_assertion");
    assert_eq!(request.body["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_eq!(request.body["grant_type"], "client_credentials");
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!((header.alg, header.kid.as_deref(), header.typ.as_deref()), (jsonwebtoken::Algorithm::RS256, Some(KID), Some("JWT")));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://api.line.me/"]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &TestKey::shared().decoding_key(), &validation).expect("signature verifies").claims;
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some(CHANNEL_ID), Some(CHANNEL_ID)));
    assert_eq!(claims["aud"], "https://api.line.me/");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp - now <= 30 * 60, "exp {exp}, now {now}");
    let token_exp = claims["token_exp"].as_u64().unwrap();
    assert!(token_exp > 0 && token_exp <= 30 * 86400, "token_exp {token_exp}");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v21_with_the_consoles_jwk_delivers_with_an_issued_token() {
    let line = channel_line().await;
    let keys = tempfile::tempdir().unwrap();
    let jwk = TestKey::write(keys.path(), "line-private-key.json", &TestKey::shared().jwk().to_string());
    let gw = start(&line, &v21(&jwk, Some(KID)), DIRECT);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    assert_eq!(mail(&gw, 2), 250);

    let token_requests = line.token_requests();
    assert_eq!(token_requests.len(), 1, "one token serves both mails");
    assert_eq!(token_requests[0].path, "/oauth2/v2.1/token");
    assert_eq!(token_requests[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_assertion(&token_requests[0]);
    let issued = line.issued_tokens();
    assert_eq!(pushes(&line), vec![(200, issued[0].token.clone()), (200, issued[0].token.clone())]);
    line.assert_all_valid();

    // Kept for the next start, readable by the owner only; never logged.
    let stored = gw.dir.path().join("data").join("line-token.json");
    assert_eq!(mode(&stored), 0o600);
    assert!(std::fs::read_to_string(&stored).unwrap().contains(&issued[0].token));
    assert!(gw.logs().contains("issued a v2.1 channel access token"), "{}", gw.logs());
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v21_with_pem_keys_and_a_kid_inside_the_jwk() {
    let line = channel_line().await;
    let keys = tempfile::tempdir().unwrap();
    let key = TestKey::shared();
    let mut jwk_with_kid = key.jwk();
    jwk_with_kid["kid"] = json!(KID);
    let files = [
        (TestKey::write(keys.path(), "pkcs8.pem", &key.pkcs8_pem()), Some(KID)),
        (TestKey::write(keys.path(), "pkcs1.pem", &key.pkcs1_pem()), Some(KID)),
        (TestKey::write(keys.path(), "with-kid.json", &jwk_with_kid.to_string()), None),
    ];
    for (i, (file, kid)) in files.iter().enumerate() {
        let gw = start(&line, &v21(file, *kid), DIRECT);
        assert_eq!(mail(&gw, i as u32), 250, "{}: {}", file.display(), gw.logs());
        let requests = line.token_requests();
        assert_eq!(requests.len(), i + 1);
        assert_assertion(&requests[i]);
        let (status, token) = pushes(&line).pop().unwrap();
        assert_eq!((status, token), (200, line.issued_tokens()[i].token.clone()));
        assert_no_secrets(&gw, &line);
    }
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_tokens_from_channel_id_and_secret() {
    let line = channel_line().await;
    let gw = start(&line, STATELESS, DIRECT);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    let requests = line.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/oauth2/v3/token");
    assert_eq!(requests[0].body, json!({ "grant_type": "client_credentials", "client_id": CHANNEL_ID, "client_secret": SECRET }));
    let issued = line.issued_tokens();
    assert_eq!((issued[0].kind, issued[0].expires_in), ("stateless", 899));
    assert_eq!(pushes(&line), vec![(200, issued[0].token.clone())]);
    assert!(!gw.dir.path().join("data").join("line-token.json").exists(), "stateless tokens are not stored");
    line.assert_all_valid();
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_they_expire() {
    let line = channel_line().await;
    line.set_token_expires_in(2);
    let gw = start(&line, STATELESS, DIRECT);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    // The gateway counts a token's life from when it asked, so by the time the stand-in has let
    // the first token expire, the gateway is past its renewal point (90% of the life).
    while line.issued_tokens()[0].is_valid() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mail(&gw, 2), 250, "{}", gw.logs());
    let issued = line.issued_tokens();
    assert_eq!(issued.len(), 2);
    // Renewed before use: no push was refused.
    assert_eq!(pushes(&line), vec![(200, issued[0].token.clone()), (200, issued[1].token.clone())]);
    let order: Vec<String> = line.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(order, ["/oauth2/v3/token", "/v2/bot/message/push", "/oauth2/v3/token", "/v2/bot/message/push"]);
    line.assert_all_valid();
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_renews_the_token_once_and_the_mail_is_delivered() {
    let line = channel_line().await;
    let keys = tempfile::tempdir().unwrap();
    let jwk = TestKey::write(keys.path(), "key.json", &TestKey::shared().jwk().to_string());
    let gw = start(&line, &v21(&jwk, Some(KID)), SPOOL_FAST);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    line.wait_for(2, Duration::from_secs(30)).await;
    // The spool reads the quota at start with the same token; let that be over, or its 401
    // would renew the token before the push meets one.
    line.wait_for_quota_reads(1, Duration::from_secs(30)).await;
    // LINE revokes the token (as an admin might in the console): the next push gets 401.
    line.revoke_tokens();
    assert_eq!(mail(&gw, 2), 250);
    line.wait_for(5, Duration::from_secs(30)).await;
    assert!(gw.wait_for_log("mail delivered", Duration::from_secs(10)));
    let issued = line.issued_tokens();
    assert_eq!(issued.len(), 2, "exactly one renewal");
    let (t1, t2) = (issued[0].token.clone(), issued[1].token.clone());
    assert_eq!(pushes(&line), vec![(200, t1.clone()), (401, t1), (200, t2)]);
    let order: Vec<String> = line.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(order, ["/oauth2/v2.1/token", "/v2/bot/message/push", "/v2/bot/message/push", "/oauth2/v2.1/token", "/v2/bot/message/push"]);
    // The retry after the renewal is the same request: same retry key.
    let p = line.requests_to("/v2/bot/message/push");
    assert_eq!(p[1].header("x-line-retry-key"), p[2].header("x-line-retry-key"));
    assert_eq!(p[1].body, p[2].body);
    assert!(gw.logs().contains("LINE refused the v2.1 channel access token (401): issuing a new one"), "{}", gw.logs());
    assert!(!gw.logs().contains("dead letter"), "{}", gw.logs());
    line.assert_all_valid();
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v21_token_is_reused_after_a_restart() {
    let line = channel_line().await;
    let keys = tempfile::tempdir().unwrap();
    let jwk = TestKey::write(keys.path(), "key.json", &TestKey::shared().jwk().to_string());
    let mut gw = start(&line, &v21(&jwk, Some(KID)), DIRECT);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    assert!(gw.terminate().success());
    block_in_place(|| gw.restart());
    assert_eq!(mail(&gw, 2), 250, "{}", gw.logs());
    let token = line.issued_tokens()[0].token.clone();
    assert_eq!(line.token_requests().len(), 1, "no new token after the restart");
    assert_eq!(pushes(&line), vec![(200, token.clone()), (200, token)]);
    assert!(gw.logs().contains("using the v2.1 channel access token stored in"), "{}", gw.logs());
    line.assert_all_valid();
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_request_is_explained_and_the_mail_retried() {
    let line = channel_line().await;
    // LINE's answer when the console has no public key with that kid.
    line.push_token_behaviour(Behaviour::Status(400, json!({ "error": "invalid_client", "error_description": "Invalid kid" })));
    let keys = tempfile::tempdir().unwrap();
    let jwk = TestKey::write(keys.path(), "key.json", &TestKey::shared().jwk().to_string());
    let gw = start(&line, &v21(&jwk, Some(KID)), SPOOL_FAST);
    assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    // Kept and retried (after the gateway's short pause on token failures) until it goes out.
    line.wait_for(3, Duration::from_secs(60)).await;
    assert!(gw.wait_for_log("mail delivered", Duration::from_secs(10)), "{}", gw.logs());
    let logs = gw.logs();
    assert!(
        logs.contains("LINE did not issue a v2.1 channel access token (400 invalid_client: Invalid kid): check line.channel_id, line.kid"),
        "{logs}"
    );
    assert!(logs.contains("will retry"), "{logs}");
    assert!(!logs.contains("dead letter"), "{logs}");
    let statuses: Vec<u16> = line.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200, 200]);
    assert_eq!(pushes(&line), vec![(200, line.issued_tokens()[0].token.clone())]);
    assert_no_secrets(&gw, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_token_endpoint_is_a_temporary_failure() {
    // Nothing listens on the discard port: in direct mode the sender is told to try again.
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { token: None, line_extra: STATELESS, extra: DIRECT, ..Default::default() })
    });
    let err = block_in_place(|| gw.send_raw("cron@example.com", &[&addr(&user(1))], b"Subject: x\r\n\r\ny\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(451), "{err}");
    assert!(err.to_string().contains("4.4.1") && err.to_string().contains("token endpoint"), "{err}");
    assert!(!gw.logs().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_needs_no_credentials_for_any_kind() {
    for kind in ["v2.1", "stateless"] {
        let extra = format!("token = \"{kind}\"\n");
        let gw = block_in_place(|| {
            GatewayProcess::start(Options { token: None, dry_run: true, line_extra: &extra, ..Default::default() })
        });
        assert_eq!(mail(&gw, 1), 250, "{}", gw.logs());
    }
}

/// The library's `TokenSource` against the stand-in: a burst of concurrent requests issues one
/// token, and a burst of 401s for the same token renews it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_token_and_one_renewal() {
    use mail2line::line::token::{Credentials, SigningKey, TokenSource};
    let line = channel_line().await;
    let key = SigningKey::parse(&TestKey::shared().pkcs8_pem()).unwrap();
    let credentials = Credentials::V21 { channel_id: CHANNEL_ID.into(), kid: KID.into(), key };
    let store = tempfile::tempdir().unwrap();
    let tokens =
        Arc::new(TokenSource::new(credentials, reqwest::Client::new(), &line.base_url(), Some(store.path().join("t.json"))));

    let burst = |f: fn(Arc<TokenSource>, String) -> tokio::task::JoinHandle<String>, refused: String| {
        let handles: Vec<_> = (0..32).map(|_| f(tokens.clone(), refused.clone())).collect();
        async move {
            let mut got = Vec::new();
            for h in handles {
                got.push(h.await.unwrap());
            }
            got
        }
    };
    let got = burst(|t, _| tokio::spawn(async move { t.get().await.unwrap().expose().to_owned() }), String::new()).await;
    let first = line.issued_tokens()[0].token.clone();
    assert!(got.iter().all(|t| *t == first));
    assert_eq!(line.token_requests().len(), 1);

    line.revoke_tokens();
    let got = burst(
        |t, refused| {
            tokio::spawn(async move { t.renew_after_401(&mail2line::secret::Secret::new(refused)).await.unwrap().expose().to_owned() })
        },
        first.clone(),
    )
    .await;
    let issued = line.issued_tokens();
    assert_eq!(issued.len(), 2, "32 workers that saw a 401 for the same token renew it once");
    assert!(got.iter().all(|t| *t == issued[1].token));
    assert_eq!(tokens.get().await.unwrap().expose(), issued[1].token);
    line.assert_all_valid();
}

#[test]
fn check_config_reports_key_problems_by_key_and_line_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::shared();
    let mut public_only = key.jwk();
    public_only.as_object_mut().unwrap().remove("d");
    let key_file = TestKey::write(dir.path(), "key.json", &public_only.to_string());
    let config = dir.path().join("c.toml");
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = Run::of(&mut cli::mail2line(["check-config"], &config));
        (Some(out.code), out.text())
    };
    let base = "[smtp]\ndomain = \"text.line.example.com\"\n\n[line]\n";
    let (status, text) = run(&format!("{base}{}", v21(&key_file, None)));
    assert_eq!(status, Some(78), "{text}");
    assert!(text.contains(&format!("c.toml:7: line.private_key_file: {}: has no \"d\"", key_file.display())), "{text}");
    for fragment in key.secret_fragments().iter().chain([&public_only["n"].as_str().unwrap()[..24].to_owned()]) {
        assert!(!text.contains(fragment.as_str()), "{text}");
    }

    std::fs::write(&key_file, key.jwk().to_string()).unwrap();
    let (status, text) = run(&format!("{base}{}", v21(&key_file, Some(KID))));
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains(&format!("v2.1 channel access tokens for channel {CHANNEL_ID}, signed with key id {KID}")), "{text}");

    let (status, text) = run(&format!("{base}token = \"v3\"\n"));
    assert_eq!(status, Some(78), "{text}");
    assert!(text.contains("c.toml:5: line.token: unknown variant `v3`, expected one of `long-lived`, `v2.1`, `stateless`"), "{text}");
}
