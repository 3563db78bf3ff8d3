//! `mail2line sendmail` and `mail2line send` with the real binary against the real gateway
//! (direct mode, so a finished command means LINE's stand-in has the request): a message file
//! piped to `sendmail -t`, cron's exact command line and output, the `sendmail` symlink, a
//! body-only mail, refused and unreachable cases with their exit statuses, STARTTLS/TLS with
//! AUTH from `[sendmail]`, and `send` to an id, an alias and from stdin. What goes over the wire
//! (Bcc removed, CRLF, dot-stuffing, a second transaction after 452 4.5.3) is checked against a
//! recording SMTP server, since the gateway never shows the raw mail.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::gateway::{addr, user, GatewayProcess, Options, DOMAIN, TOKEN};
use support::sink::Sink;
use support::standin::StandIn;
use support::tls::{hash_password, make_cert};
use tokio::task::block_in_place;

const BIN: &str = env!("CARGO_BIN_EXE_mail2line");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

enum Input<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Runs `program args` with `input` on stdin and `$MAIL2LINE_CONFIG` = `config` (if any).
fn run(program: &Path, args: &[&str], config: Option<&Path>, input: Input<'_>) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("MAIL2LINE_CONFIG")
        .env_remove("MAIL2LINE_SENDMAIL_PASSWORD")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("LINE_CHANNEL_SECRET")
        .env("LOGNAME", "tester")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.env("MAIL2LINE_CONFIG", c);
    }
    let child = match input {
        Input::File(path) => cmd.stdin(std::fs::File::open(path).unwrap()).spawn().unwrap(),
        Input::Bytes(bytes) => {
            let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            // A refusal may come before all input is read; a broken pipe is then expected.
            let _ = stdin.write_all(bytes);
            drop(stdin);
            child
        }
    };
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sendmail(config: &Path, args: &[&str], input: &[u8]) -> Out {
    let mut all = vec!["sendmail"];
    all.extend_from_slice(args);
    block_in_place(|| run(Path::new(BIN), &all, Some(config), Input::Bytes(input)))
}

/// A gateway in direct mode with `extra` config, and its config file with
/// `[sendmail] server` pointing at it: the file the client commands read.
async fn setup(extra: &str, smtp_extra: &str) -> (StandIn, GatewayProcess, PathBuf) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let extra = format!("[delivery]\nmode = \"direct\"\n{extra}");
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &extra, smtp_extra, ..Default::default() }));
    let config = gw.config_path.clone();
    append(&config, &format!("\n[sendmail]\nserver = \"{}\"\n", gw.smtp));
    (line, gw, config)
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The texts of every message in every push and multicast, with their `to`.
fn deliveries(line: &StandIn) -> Vec<(Value, Vec<String>)> {
    line.requests()
        .into_iter()
        .filter(|r| r.path == "/v2/bot/message/push" || r.path == "/v2/bot/message/multicast")
        .map(|r| {
            let texts = r.body["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
            (r.body["to"].clone(), texts)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_t_piped_a_message_file_in_iso_2022_jp_with_bcc() {
    let (line, _gw, config) = setup("", "").await;
    let (u1, u2) = (user(1), user(2));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.txt");
    // As a file on disk: LF line ends.
    let mut mail = format!(
        "From: monitor@example.jp\nTo: {}\nBcc: {}\nSubject: =?ISO-2022-JP?B?GyRCJUYlOSVIN29MPhsoQg==?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n\n",
        addr(&u1),
        addr(&u2)
    )
    .into_bytes();
    mail.extend_from_slice(b"\x1b$B$3$s$K$A$O!\"@$3&!#\x1b(B\n\x1b$B4F;k%5!<%P!<$h$j\x1b(B\n");
    std::fs::write(&file, &mail).unwrap();
    let out = block_in_place(|| run(Path::new(BIN), &["sendmail", "-t"], Some(&config), Input::File(&file)));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""), "sendmail is silent when all went well");
    // To and Bcc both reached: one multicast for the two users.
    assert_eq!(deliveries(&line), vec![(json!([u1, u2]), vec!["テスト件名\n\nこんにちは、世界。\n監視サーバーより".to_owned()])]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_output_without_subject_with_crons_exact_command_line() {
    let (line, _gw, config) = setup("", "").await;
    let u = user(3);
    // Cron-style output: From/To and cron's own headers, no Subject, the job's output as body.
    let output = format!(
        "From: root (Cron Daemon)\nTo: {}\nContent-Type: text/plain; charset=UTF-8\nX-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\n\n/etc/cron.daily/backup:\nrsync: 3 files, 12 MB\n.\nstill part of the output (-i)\n",
        addr(&u)
    );
    let out = sendmail(&config, &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", &addr(&u)], output.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        deliveries(&line),
        vec![(json!(u), vec!["/etc/cron.daily/backup:\nrsync: 3 files, 12 MB\n.\nstill part of the output (-i)".to_owned()])]
    );
    // cronie: -t with To from the header and -f root.
    let out = sendmail(&config, &["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"], output.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(deliveries(&line).len(), 2);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_symlink_named_sendmail_with_env_or_dash_c() {
    let (line, _gw, config) = setup("", "").await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let u = user(4);
    let mail = format!("To: {}\nSubject: via symlink\n\nhello\n", addr(&u));
    let out = block_in_place(|| run(&link, &["-t", "-i"], Some(&config), Input::Bytes(mail.as_bytes())));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let c = config.to_str().unwrap();
    let out = block_in_place(|| run(&link, &["-C", c, "-i", &addr(&u)], None, Input::Bytes(b"Subject: with -C\n\nhello again\n")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        deliveries(&line),
        vec![(json!(u), vec!["via symlink\n\nhello".to_owned()]), (json!(u), vec!["with -C\n\nhello again".to_owned()])]
    );
    // The symlink speaks sendmail, not mail2line: a bad option is EX_USAGE with sendmail's help.
    let out = block_in_place(|| run(&link, &["-bp"], Some(&config), Input::Bytes(b"")));
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("-bp is not supported"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_only_input_gets_from_to_and_date() {
    let template = "[message]\ntemplate = \"from={from} to={to}\\n{subject}\\n\\n{body}\"\n";
    let (line, _gw, config) = setup(template, "").await;
    let u = user(5);
    let out = sendmail(&config, &[&addr(&u)], "Error: disk 91% full\nsee /var/log/syslog ✓\n".as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = deliveries(&line);
    assert_eq!(d.len(), 1);
    let text = &d[0].1[0];
    // `Error:` is text, not a header; the sender is $LOGNAME at this host.
    assert!(text.starts_with("from=tester@") && text.contains(&format!(" to={}\n", addr(&u))), "{text}");
    assert!(text.ends_with("\n\nError: disk 91% full\nsee /var/log/syslog ✓"), "{text}");
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recipient_is_ex_nouser_with_the_gateways_reply() {
    let (line, _gw, config) = setup("", "").await;
    let out = sendmail(&config, &["-i", "root"], b"Subject: for root\n\nhello\n");
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("mail2line sendmail: root@{DOMAIN}: 550 5.1.1 <root@{DOMAIN}>: no such alias")),
        "{}",
        out.stderr
    );
    assert!(deliveries(&line).is_empty());
    // With a good recipient too: that one gets the mail, the status still says one failed.
    let u = user(6);
    let out = sendmail(&config, &["-i", "root", &addr(&u)], b"Subject: partly\n\nhello\n");
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert_eq!(deliveries(&line), vec![(json!(u), vec!["partly\n\nhello".to_owned()])]);
    // A malformed address is refused locally, the same way.
    let out = sendmail(&config, &["-i", "a b@"], b"x\n");
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(out.stderr.contains("a b@: not a mail address"), "{}", out.stderr);
    // No recipients at all is a usage error.
    let out = sendmail(&config, &["-t", "-i"], b"Subject: to nobody\n\nx\n");
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("no recipients"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_down_is_ex_tempfail() {
    // A port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[smtp]\nlisten = \"0.0.0.0:{port}\"\ndomain = \"{DOMAIN}\"\n")).unwrap();
    let out = sendmail(&config, &["-i", &addr(&user(7))], b"Subject: s\n\nx\n");
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("is `mail2line serve` running? cannot connect to 127.0.0.1:{port} (smtp.listen): Connection refused")),
        "{}",
        out.stderr
    );
    let out = block_in_place(|| {
        run(Path::new(BIN), &["send", "--config", config.to_str().unwrap(), "--to", &user(7), "hi"], None, Input::Bytes(b""))
    });
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("is `mail2line serve` running?"), "{}", out.stderr);
    // A configuration problem is EX_CONFIG, naming the file.
    let out = sendmail(&dir.path().join("missing.toml"), &["-i", &addr(&user(7))], b"x\n");
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("missing.toml: cannot read the configuration"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_from_the_gateway_is_ex_tempfail() {
    let (line, _gw, config) = setup("", "max_mails_per_minute_per_ip = 1").await;
    let u = user(8);
    assert_eq!(sendmail(&config, &["-i", &addr(&u)], b"Subject: first\n\nx\n").code, 0);
    let out = sendmail(&config, &["-i", &addr(&u)], b"Subject: second\n\nx\n");
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("{}: 450 4.7.1 Too many mails", addr(&u))), "{}", out.stderr);
    assert_eq!(deliveries(&line).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_id_an_alias_and_from_stdin() {
    let (u, g) = (user(9), format!("C{:032x}", 10));
    let (line, _gw, config) = setup(&format!("[aliases]\nops = [\"{u}\", \"{g}\"]\n"), "").await;
    let send = |args: &[&str], input: &[u8]| {
        let mut all = vec!["send"];
        all.extend_from_slice(args);
        block_in_place(|| run(Path::new(BIN), &all, Some(&config), Input::Bytes(input)))
    };
    let out = send(&["--to", &u, "--subject", "バックアップ", "完了しました"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with(&format!("sent to {}: 250 2.0.0", addr(&u))), "{}", out.stdout);
    let out = send(&["--to", "ops", "to the alias"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with(&format!("sent to ops@{DOMAIN}: 250 "), ), "{}", out.stdout);
    let out = send(&["--to", &u, "--to", &g, "--subject", "from stdin", "-"], "line 1\nline 2 😀\n".as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = deliveries(&line);
    assert_eq!(
        got,
        vec![
            (json!(u), vec!["バックアップ\n\n完了しました".to_owned()]),
            (json!(u), vec!["to the alias".to_owned()]),
            (json!(g), vec!["to the alias".to_owned()]),
            (json!(u), vec!["from stdin\n\nline 1\nline 2 😀".to_owned()]),
            (json!(g), vec!["from stdin\n\nline 1\nline 2 😀".to_owned()]),
        ]
    );
    // Anything else for --to is a usage error that lists the aliases.
    let out = send(&["--to", "root", "x"], b"");
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("an alias from [aliases] (ops)"), "{}", out.stderr);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_with_auth_from_the_sendmail_section() {
    const PASSWORD: &str = "sendmail-pw-5d1e";
    let certdir = tempfile::tempdir().unwrap();
    let cert = make_cert(certdir.path());
    let hash = block_in_place(|| hash_password(PASSWORD));
    let smtp = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_listen = \"127.0.0.1:0\"\nauth = \"required\"\n[[smtp.users]]\nname = \"cron\"\npassword_hash = \"{hash}\"\n",
        cert.cert_file.display(),
        cert.key_file.display()
    );
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, smtp_extra: &smtp, extra: "[delivery]\nmode = \"direct\"", ..Default::default() }));
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    // A client-only configuration: the domain and [sendmail]; the password from a file.
    let client = |name: &str, server: String, tls: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[smtp]\ndomain = \"{DOMAIN}\"\n[sendmail]\nserver = \"{server}\"\ntls = \"{tls}\"\ntls_ca_file = \"{}\"\nusername = \"cron\"\npassword_file = \"{}\"\n",
                cert.cert_file.display(),
                pwfile.display()
            ),
        )
        .unwrap();
        path
    };
    let u = user(11);
    let starttls = client("starttls.toml", format!("localhost:{}", gw.smtp.port()), "starttls");
    let out = sendmail(&starttls, &["-i", &addr(&u)], b"Subject: over STARTTLS\n\nx\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let implicit = client("tls.toml", format!("localhost:{}", gw.smtps.unwrap().port()), "tls");
    let out = sendmail(&implicit, &["-i", &addr(&u)], b"Subject: over TLS\n\nx\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(deliveries(&line).len(), 2);
    // A wrong password: EX_NOPERM with the gateway's 535, and the password never printed.
    std::fs::write(&pwfile, "wrong-password-value\n").unwrap();
    let out = sendmail(&starttls, &["-i", &addr(&u)], b"Subject: s\n\nx\n");
    assert_eq!(out.code, 77, "{}", out.stderr);
    assert!(out.stderr.contains("535 5.7.8") && out.stderr.contains("login \"cron\""), "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-password-value"), "{}", out.stderr);
    // Without TLS the gateway offers no AUTH: a configuration problem, said as such.
    let plain = client("plain.toml", format!("localhost:{}", gw.smtp.port()), "off");
    std::fs::write(&plain, std::fs::read_to_string(&plain).unwrap().replace("tls_ca_file", "# tls_ca_file")).unwrap();
    let out = sendmail(&plain, &["-i", &addr(&u)], b"Subject: s\n\nx\n");
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("does not offer AUTH"), "{}", out.stderr);
    // A certificate the client does not trust: TLS fails, EX_CONFIG.
    let other = make_cert(dir.path());
    let untrusted = client("untrusted.toml", format!("localhost:{}", gw.smtp.port()), "starttls");
    std::fs::write(&untrusted, std::fs::read_to_string(&untrusted).unwrap().replace(&cert.cert_file.display().to_string(), &other.cert_file.display().to_string())).unwrap();
    let out = sendmail(&untrusted, &["-i", &addr(&u)], b"Subject: s\n\nx\n");
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("STARTTLS with the gateway at"), "{}", out.stderr);
    assert_eq!(deliveries(&line).len(), 2);
    assert!(!gw.logs().contains(PASSWORD));
}

/// What goes over the wire, seen by a recording SMTP server.
#[test]
fn wire_bytes_bcc_removed_crlf_dot_stuffing_and_lone_dot() {
    let sink = Sink::start(100);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    std::fs::write(&config, format!("[smtp]\ndomain = \"{DOMAIN}\"\n[sendmail]\nserver = \"{}\"\n", sink.addr)).unwrap();
    let mail = b"From: me@example.net\nTo: a@example.org\nBcc: b@example.org,\n  c@example.org\nSubject: s\n\n.leading dot\n..two\n.\nafter the lone dot\n";
    let out = run(Path::new(BIN), &["sendmail", "-t"], Some(&config), Input::Bytes(mail));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(Path::new(BIN), &["sendmail", "-t", "-i"], Some(&config), Input::Bytes(mail));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = sink.transactions();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].from, "<me@example.net>");
    assert_eq!(t[0].rcpts, vec!["<a@example.org>", "<b@example.org>", "<c@example.org>"]);
    let head = "From: me@example.net\r\nTo: a@example.org\r\nSubject: s\r\n\r\n..leading dot\r\n...two\r\n";
    // Without -i the lone dot ended the mail; with -i it is data (stuffed on the wire).
    assert_eq!(String::from_utf8(t[0].data.clone()).unwrap(), head);
    assert_eq!(String::from_utf8(t[1].data.clone()).unwrap(), format!("{head}..\r\nafter the lone dot\r\n"));
}

#[test]
fn recipients_past_the_servers_limit_go_in_a_second_mail() {
    let sink = Sink::start(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    std::fs::write(&config, format!("[smtp]\ndomain = \"{DOMAIN}\"\n[sendmail]\nserver = \"{}\"\n", sink.addr)).unwrap();
    let out = run(Path::new(BIN), &["sendmail", "-i", "-f", "", "a@x.org", "b@x.org,c@x.org", "d@x.org", "e@x.org"], Some(&config), Input::Bytes(b"Subject: s\n\nx\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = sink.transactions();
    let rcpts: Vec<Vec<String>> = t.iter().map(|t| t.rcpts.clone()).collect();
    assert_eq!(rcpts, vec![vec!["<a@x.org>", "<b@x.org>"], vec!["<c@x.org>", "<d@x.org>"], vec!["<e@x.org>"]]);
    assert!(t.iter().all(|t| t.from == "<>" && t.data == b"Subject: s\r\n\r\nx\r\n"));
}
