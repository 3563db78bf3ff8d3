//! `replies::Relay` against a real SMTP server (the recording sink): a reply mail arrives byte
//! for byte; AUTH with the right and a wrong password; 4xx is temporary and 5xx permanent; a
//! relay that is down makes the mail wait, and it goes out once the relay is back; STARTTLS and
//! implicit TLS with a certificate the relay is told to trust. No message ever shows the
//! password.

mod support;

use mail2line::replies::letter::{self, Letter};
use mail2line::replies::{Relay, RelayError, RelayUrl, SendError};
use mail2line::secret::Secret;
use support::sink::{Options, Sink, SinkTls};

const USER: &str = "gw-relay";
const PASSWORD: &str = "relay-pw-5c1e07";

fn letter() -> Letter {
    Letter {
        display_name: "山田 花子".into(),
        from: "line@gw.example.com".into(),
        to: "ops@example.org".into(),
        subject: "Server web-3 down".into(),
        in_reply_to: Some("<20261206.abc@mail.example.org>".into()),
        chat: "U0123456789abcdef0123456789abcdef".into(),
        event_id: "01FZ74A0TDDPYRVKNK77XKC3ZR".into(),
        at_ms: 1_700_000_000_000,
        // A line starting with a dot must survive SMTP's dot-stuffing.
        text: "On it, restarting.\n.htaccess was wrong\n".into(),
        attachments: Vec::new(),
    }
}

fn url(s: &str) -> RelayUrl {
    s.parse().unwrap()
}

fn plain_relay(sink: &Sink, login: Option<(&str, &str)>) -> Relay {
    let (user, password) = login.map_or(("", None), |(u, p)| (u, Some(Secret::new(p))));
    Relay::new(&url(&format!("smtp://127.0.0.1:{}", sink.addr.port())), user, password, "gw.example.com").unwrap()
}

/// The data as the sink got it, with SMTP's dot-stuffing undone.
fn unstuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").filter(|_| line.starts_with(b"..")).unwrap_or(line));
    }
    out
}

fn assert_arrived_intact(sink: &Sink, bytes: &[u8]) -> support::sink::Transaction {
    let got = sink.transactions();
    assert_eq!(got.len(), 1, "{got:?}");
    let t = got.into_iter().next().unwrap();
    assert_eq!(t.from, "<line@gw.example.com>");
    assert_eq!(t.rcpts, ["<ops@example.org>"]);
    // lettre ends the data with CRLF . CRLF after the mail's own last line end, so the sink
    // (which keeps everything before the ".") sees one empty line more: an empty line at the
    // end of the body, which changes nothing.
    let expected = [bytes, b"\r\n"].concat();
    assert_eq!(String::from_utf8_lossy(&unstuffed(&t.data)), String::from_utf8_lossy(&expected), "the mail arrived changed");
    t
}

#[tokio::test]
async fn a_reply_arrives_with_the_exact_bytes() {
    let sink = Sink::start(10);
    let (envelope, bytes) = letter::build(&letter()).unwrap();
    assert!(bytes.windows(3).any(|w| w == b"\n.h"), "the test needs a line that starts with a dot");
    plain_relay(&sink, None).send(envelope, bytes.clone()).await.unwrap();
    let t = assert_arrived_intact(&sink, &bytes);
    assert!(t.data.windows(4).any(|w| w == b"\n..h"), "dot-stuffed on the wire");
    assert_eq!((t.login, t.tls), (None, false));
    // The mail parses back as the reply it is.
    let data = unstuffed(&t.data);
    let parsed = mail_parser::MessageParser::default().parse(&data).unwrap();
    assert_eq!(parsed.subject(), Some("Re: Server web-3 down"));
    assert_eq!(parsed.from().unwrap().first().unwrap().name(), Some("山田 花子 via LINE"));
}

#[tokio::test]
async fn probe_says_what_it_saw() {
    let sink = Sink::start(10);
    let saw = plain_relay(&sink, None).probe().await.unwrap();
    assert_eq!(saw, format!("smtp://127.0.0.1:{} answered EHLO as sink (offering 8BITMIME, SMTPUTF8), without TLS", sink.addr.port()));
    assert!(sink.transactions().is_empty());
}

#[tokio::test]
async fn auth_with_the_right_password_sends_and_a_wrong_one_is_refused_without_showing_it() {
    let sink = Sink::start_with(Options { login: Some((USER.into(), PASSWORD.into())), ..Options::default() });
    let (envelope, bytes) = letter::build(&letter()).unwrap();

    let good = plain_relay(&sink, Some((USER, PASSWORD)));
    let saw = good.probe().await.unwrap();
    assert!(saw.contains("AUTH PLAIN, AUTH LOGIN") && saw.ends_with(&format!("logged in as {USER:?}")), "{saw}");
    good.send(envelope.clone(), bytes.clone()).await.unwrap();
    let t = assert_arrived_intact(&sink, &bytes);
    assert_eq!(t.login.as_deref(), Some(USER));
    assert_eq!(sink.logins(), [(USER.to_owned(), true), (USER.to_owned(), true)]);

    // A wrong password: the probe names the login and what to check; the send is temporary
    // (it refuses every mail alike, and the admin can fix it); nothing arrives.
    let wrong = "wrong-pw-8d2f41";
    let bad = plain_relay(&sink, Some((USER, wrong)));
    let e = bad.probe().await.unwrap_err();
    assert!(matches!(e, RelayError::AuthRefused { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("refused the login {USER:?}")) && text.contains("535") && text.contains("check replies.username"), "{text}");
    match bad.send(envelope.clone(), bytes.clone()).await {
        Err(SendError::Temporary(text)) => assert!(text.contains("refused the login") && !text.contains(wrong), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.transactions().len(), 1);
    assert_eq!(sink.logins().iter().filter(|(_, ok)| !ok).count(), 2);
    for shown in [text, format!("{e:?}"), format!("{bad:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(PASSWORD), "{shown}");
    }

    // No login at a relay that wants one: 530 at MAIL FROM, also temporary.
    match plain_relay(&sink, None).send(envelope, bytes).await {
        Err(SendError::Temporary(text)) => assert!(text.contains("530"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_4xx_is_temporary_a_5xx_permanent() {
    let sink = Sink::start(10);
    let relay = plain_relay(&sink, None);
    let (envelope, bytes) = letter::build(&letter()).unwrap();

    sink.set_data_reply(Some("451 4.3.0 Queue full, try later"));
    match relay.send(envelope.clone(), bytes.clone()).await {
        Err(SendError::Temporary(text)) => assert!(text.contains("451") && text.contains("Queue full"), "{text}"),
        other => panic!("{other:?}"),
    }
    sink.set_data_reply(Some("554 5.6.0 Content refused"));
    match relay.send(envelope.clone(), bytes.clone()).await {
        Err(SendError::Permanent(text)) => assert!(text.contains("554") && text.contains("Content refused"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(sink.transactions().is_empty());
    sink.set_data_reply(None);
    relay.send(envelope, bytes.clone()).await.unwrap();
    assert_arrived_intact(&sink, &bytes);

    // A recipient refused for now (452 past the sink's limit of one a mail) is temporary too.
    let full = Sink::start(1);
    let envelope = lettre::address::Envelope::new(
        Some("line@gw.example.com".parse().unwrap()),
        vec!["a@example.org".parse().unwrap(), "b@example.org".parse().unwrap()],
    )
    .unwrap();
    match plain_relay(&full, None).send(envelope, bytes).await {
        Err(SendError::Temporary(text)) => assert!(text.contains("452"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_relay_that_is_down_is_temporary_and_the_mail_goes_once_it_is_back() {
    // Nothing listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = Relay::new(&url(&format!("smtp://127.0.0.1:{port}")), "", None, "gw").unwrap();
    let (envelope, bytes) = letter::build(&letter()).unwrap();
    match nowhere.send(envelope.clone(), bytes.clone()).await {
        Err(SendError::Temporary(text)) => assert!(text.contains("cannot connect") && text.contains("check replies.relay"), "{text}"),
        other => panic!("{other:?}"),
    }
    let e = nowhere.probe().await.unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");

    // Down, then up again on the same port.
    let sink = Sink::start(10);
    let relay = plain_relay(&sink, None);
    sink.stop();
    assert!(matches!(relay.send(envelope.clone(), bytes.clone()).await, Err(SendError::Temporary(_))));
    assert!(sink.transactions().is_empty());
    sink.start_again();
    relay.send(envelope, bytes.clone()).await.unwrap();
    assert_arrived_intact(&sink, &bytes);
}

fn tls_sink(tls: SinkTls, dir: &std::path::Path) -> (Sink, String) {
    let cert = support::tls::make_cert(dir);
    let key_pem = std::fs::read_to_string(&cert.key_file).unwrap();
    let options = Options { login: Some((USER.into(), PASSWORD.into())), tls, cert_pem: cert.pem.clone(), key_pem, ..Options::default() };
    (Sink::start_with(options), cert.pem)
}

#[tokio::test]
async fn starttls_is_required_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, pem) = tls_sink(SinkTls::StartTls, dir.path());
    let at = url(&format!("smtp+starttls://localhost:{}", sink.addr.port()));
    let relay = Relay::new(&at, USER, Some(Secret::new(PASSWORD)), "gw").unwrap().with_root_certificate(pem.as_bytes()).unwrap();
    let saw = relay.probe().await.unwrap();
    assert!(saw.contains("over TLS") && saw.contains("logged in as"), "{saw}");
    let (envelope, bytes) = letter::build(&letter()).unwrap();
    relay.send(envelope.clone(), bytes.clone()).await.unwrap();
    let t = assert_arrived_intact(&sink, &bytes);
    assert_eq!((t.tls, t.login.as_deref()), (true, Some(USER)));

    // A certificate nobody vouches for: TLS fails, temporarily, before any password is sent.
    let untrusting = Relay::new(&at, USER, Some(Secret::new(PASSWORD)), "gw").unwrap();
    let e = untrusting.probe().await.unwrap_err();
    assert!(matches!(e, RelayError::Tls { .. }), "{e:?}");
    assert!(matches!(untrusting.send(envelope.clone(), bytes.clone()).await, Err(SendError::Temporary(_))));

    // A relay without STARTTLS is not sent the password in clear.
    let plain = Sink::start_with(Options { login: Some((USER.into(), PASSWORD.into())), ..Options::default() });
    let at = url(&format!("smtp+starttls://localhost:{}", plain.addr.port()));
    let e = Relay::new(&at, USER, Some(Secret::new(PASSWORD)), "gw").unwrap().probe().await.unwrap_err();
    assert!(matches!(e, RelayError::NoStartTls { .. }) && e.to_string().contains("does not offer STARTTLS"), "{e}");
    assert!(plain.logins().is_empty());
    assert_eq!(sink.logins().len(), 2, "two logins over TLS, none without");
}

#[tokio::test]
async fn smtps_speaks_tls_from_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, pem) = tls_sink(SinkTls::Implicit, dir.path());
    let at = url(&format!("smtps://localhost:{}", sink.addr.port()));
    let relay = Relay::new(&at, USER, Some(Secret::new(PASSWORD)), "gw").unwrap().with_root_certificate(pem.as_bytes()).unwrap();
    let (envelope, bytes) = letter::build(&letter()).unwrap();
    relay.send(envelope, bytes.clone()).await.unwrap();
    let t = assert_arrived_intact(&sink, &bytes);
    assert_eq!((t.tls, t.login.as_deref()), (true, Some(USER)));
}
