//! No secret ever reaches a log line: one full run of the real binary with every kind of secret
//! configured (a v2.1 private key, the channel secret, SMTP users' password hashes from a file),
//! driven through everything that logs — mail over STARTTLS with AUTH, a wrong password, a
//! signed and a forged webhook, a 401 that forces a token renewal, SIGHUP, SIGTERM — and then the
//! logs and `check-config`'s output are searched for each secret and for pieces of each.

mod support;

use std::process::Command;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::Tls;
use lettre::{SmtpTransport, Transport};
use serde_json::json;
use support::gateway::{addr, code, user, GatewayProcess, Options, SECRET};
use support::keys::{TestKey, CHANNEL_ID, KID};
use support::standin::StandIn;
use support::tls::{client, hash_password, make_cert, tls_params};
use support::webhook::{post_to, sign, sign_with};
use tokio::task::block_in_place;

const PASSWORD: &str = "smtp-pw-91f3e0-horse";
const WRONG_PASSWORD: &str = "typo-pw-51aa07-staple";

/// A client over STARTTLS that logs in as "cms" with `password`.
fn smtp_client(gw: &GatewayProcess, cert_pem: &str, password: &str) -> SmtpTransport {
    client(gw.smtp, Tls::Required(tls_params(cert_pem)), Some(("cms", password)), Mechanism::Login)
}

fn send(t: &SmtpTransport, n: u32) -> u16 {
    let to = addr(&user(n));
    let env = Envelope::new(Some("cms@example.com".parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    let data = format!("Subject: mail {n}\r\n\r\nbody {n}\r\n");
    match t.send_raw(&env, data.as_bytes()) {
        Ok(r) => r.code().to_string().parse().unwrap(),
        Err(e) => code(&e).unwrap_or(0),
    }
}

/// Every string that must not appear, with a label for the failure message. Long secrets also
/// contribute fragments, so a secret cut or wrapped in a log line is still found.
fn secrets(line: &StandIn, hash: &str) -> Vec<(String, String)> {
    let mut out = vec![
        ("channel secret".to_owned(), SECRET.to_owned()),
        ("SMTP password".to_owned(), PASSWORD.to_owned()),
        ("wrong SMTP password".to_owned(), WRONG_PASSWORD.to_owned()),
        ("password hash".to_owned(), hash.to_owned()),
    ];
    // The hash's salt and digest, each enough to mount an offline attack.
    for (i, part) in hash.rsplit('$').take(2).enumerate() {
        out.push((format!("password hash part {i}"), part.to_owned()));
    }
    for t in line.issued_tokens() {
        out.push(("issued access token".to_owned(), t.token.clone()));
        out.push(("issued access token (prefix)".to_owned(), t.token[..t.token.len().min(16)].to_owned()));
    }
    for (i, f) in TestKey::shared().secret_fragments().into_iter().enumerate() {
        out.push((format!("private key fragment {i}"), f));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_logs_of_a_full_run_or_in_check_config() {
    let line = StandIn::start().await;
    line.set_channel(TestKey::shared().channel(SECRET));
    let files = tempfile::tempdir().unwrap();
    let key_file = TestKey::write(files.path(), "line-private-key.json", &TestKey::shared().jwk().to_string());
    let hash = block_in_place(|| hash_password(PASSWORD));
    let hash_file = files.path().join("cms.hash");
    std::fs::write(&hash_file, format!("{hash}\n")).unwrap();
    let cert = make_cert(files.path());

    let smtp_extra = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\nrequire_tls = true\nauth = \"required\"\nauth_failure_delay_ms = 10\n[[smtp.users]]\nname = \"cms\"\npassword_hash_file = \"{}\"\n",
        cert.cert_file.display(),
        cert.key_file.display(),
        hash_file.display()
    );
    let line_extra = format!(
        "token = \"v2.1\"\nchannel_id = \"{CHANNEL_ID}\"\nprivate_key_file = \"{}\"\nkid = \"{KID}\"\n",
        key_file.display()
    );
    let url = line.base_url();
    let mut gw = block_in_place(|| {
        GatewayProcess::start(Options {
            api_base_url: &url,
            token: None,
            smtp_extra: &smtp_extra,
            line_extra: &line_extra,
            extra: "[delivery]\nmode = \"direct\"\n[webhook]\nwelcome = true",
            ..Default::default()
        })
    });

    // Mail with the right and the wrong password.
    let good = smtp_client(&gw, &cert.pem, PASSWORD);
    assert_eq!(block_in_place(|| send(&good, 1)), 250, "{}", gw.logs());
    let bad = smtp_client(&gw, &cert.pem, WRONG_PASSWORD);
    assert_eq!(block_in_place(|| send(&bad, 2)), 535);

    // LINE revokes the token: the next push gets 401, the gateway renews once and delivers.
    line.revoke_tokens();
    assert_eq!(block_in_place(|| send(&good, 3)), 250, "{}", gw.logs());
    assert!(line.issued_tokens().len() >= 2, "the 401 renewed the token");

    // A signed follow (the welcome reply goes out with the token) and a forged one.
    let follower = user(9);
    // Recent: an event older than the gateway's two-day event-id memory is refused as a replay.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let body = serde_json::to_vec(&json!({
        "destination": "U0000000000000000000000000000bot0",
        "events": [{
            "type": "follow", "mode": "active", "timestamp": now,
            "source": {"type": "user", "userId": follower},
            "webhookEventId": "01HSECRETSTEST0000000000000", "deliveryContext": {"isRedelivery": false},
            "replyToken": "reply-token-secrets-test", "follow": {"isUnblocked": false}
        }]
    }))
    .unwrap();
    let signed = post_to(&gw, "/webhook", body.clone(), Some(sign(&body)), "application/json").await;
    assert_eq!(signed.0, 200);
    let forged = post_to(&gw, "/webhook", body.clone(), Some(sign_with("not-the-secret", &body)), "application/json").await;
    assert_eq!(forged.0, 401);
    line.wait_for(1, Duration::from_secs(30)).await;

    // Reload, then stop.
    Command::new("kill").arg("-HUP").arg(gw.pid().to_string()).status().unwrap();
    assert!(gw.wait_for_log("SIGHUP: TLS certificate reloaded", Duration::from_secs(30)));
    let status = block_in_place(|| gw.terminate());
    assert!(status.success(), "{status:?}");

    let check = Command::new(env!("CARGO_BIN_EXE_mail2line"))
        .arg("check-config")
        .arg("--config")
        .arg(&gw.config_path)
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("LINE_CHANNEL_SECRET")
        .output()
        .unwrap();
    let check_out = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{check_out}");

    let logs = gw.logs();
    // The run did log about each of these things, so the search below covered them.
    for needle in ["AUTH succeeded", "AUTH failed", "issued a v2.1 channel access token", "stopped"] {
        assert!(logs.contains(needle), "expected {needle:?} in the logs:\n{logs}");
    }
    for (what, secret) in secrets(&line, &hash) {
        assert!(!logs.contains(&secret), "{what} found in the gateway's logs");
        assert!(!check_out.contains(&secret), "{what} found in check-config's output");
    }
    line.assert_all_valid();
}
