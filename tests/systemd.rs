//! Running under systemd: the unit file passes `systemd-analyze verify` and is hardened to an
//! exposure of 2.0 or lower (`systemd-analyze security --offline=true`); the real gateway speaks
//! sd_notify (READY=1 once listening, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on
//! SIGTERM); and it takes its secrets from `$CREDENTIALS_DIRECTORY`, as `LoadCredential=`
//! provides them, under their well-known names.
//!
//! systemd-analyze is a host tool: `.ci/run` installs it and sets `MAIL2LINE_REQUIRE_SYSTEMD=1`,
//! which turns its absence into a failure. Elsewhere the two unit-file tests skip with a loud
//! notice when it is missing; the others need no systemd at all.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::gateway::{addr, user, GatewayProcess, Options, SECRET};
use support::standin::StandIn;
use tokio::task::block_in_place;

/// The unit as shipped.
const UNIT: &str = include_str!("../systemd/mail2line.service");
/// The template unit for several gateways (issue #21): one instance per configuration.
const TEMPLATE: &str = include_str!("../systemd/mail2line@.service");
/// The documented ExecStart; the tests swap in the binary under test.
const EXEC_START: &str = "ExecStart=/usr/local/bin/mail2line serve --config /etc/mail2line/config.toml";

/// Whether systemd-analyze can be run; panics when CI requires it.
fn systemd_analyze_available() -> bool {
    let works = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("MAIL2LINE_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1") {
            panic!("systemd-analyze is missing but MAIL2LINE_REQUIRE_SYSTEMD=1: install the `systemd` package (.ci/run does)");
        }
        eprintln!(
            "\n*** SKIPPED: systemd-analyze is not installed, so systemd/mail2line.service was NOT checked. ***\n\
             *** Install the `systemd` package (CI does, and sets MAIL2LINE_REQUIRE_SYSTEMD=1). ***\n"
        );
    }
    works
}

/// The unit with ExecStart pointing at the binary under test, written as `dir/<name>`.
fn install_unit(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text.replace("/usr/local/bin/mail2line", env!("CARGO_BIN_EXE_mail2line"))).unwrap();
    path
}

/// `systemd-analyze verify`'s exit status and the lines that concern the unit. systemd-analyze
/// also reports on the host it runs on (a container has no running systemd, no D-Bus, odd
/// units of its own), so only lines naming our unit file count as findings about it: every
/// message about a unit file starts with its name or path. The exit status must be 0 as well.
fn verify(unit: &Path) -> (bool, Vec<String>, String) {
    let out = Command::new("systemd-analyze").arg("verify").arg(unit).output().expect("run systemd-analyze verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let name = unit.file_name().unwrap().to_str().unwrap();
    let findings = text.lines().filter(|l| l.contains(name)).map(str::to_owned).collect();
    (out.status.success(), findings, text)
}

/// The "Overall exposure level" `systemd-analyze security --offline=true` gives the unit.
fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(unit).output().expect("run systemd-analyze security");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "systemd-analyze security failed:\n{text}");
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let number = line.rsplit(':').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
    number.parse().unwrap_or_else(|_| panic!("cannot read the exposure level in {line:?}"))
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if !systemd_analyze_available() {
        return;
    }
    assert!(UNIT.contains(EXEC_START), "the unit must start the gateway with {EXEC_START:?}");
    let dir = tempfile::tempdir().unwrap();
    let unit = install_unit(dir.path(), "mail2line.service", UNIT);
    let (ok, findings, text) = verify(&unit);
    assert!(ok && findings.is_empty(), "systemd-analyze verify objects to the unit:\n{text}");

    // The filter above sees real problems: an unknown key and a bad value are reported (with
    // exit status 0, which is why the lines are checked at all).
    let broken = UNIT.replace("UMask=0077", "UMask=0077\nProtectSystm=strict\nRestart=sometimes");
    let (_, findings, text) = verify(&install_unit(dir.path(), "broken.service", &broken));
    assert_eq!(findings.len(), 2, "expected two findings in:\n{text}");
}

#[test]
fn unit_exposure_is_2_or_lower() {
    if !systemd_analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let level = exposure(&install_unit(dir.path(), "mail2line.service", UNIT));
    assert!(level <= 2.0, "systemd-analyze security rates the unit {level}; it must be 2.0 or lower");
    // The number is read right: a unit with no hardening at all is rated far worse.
    let bare = format!("[Service]\n{EXEC_START}\n");
    let bare_level = exposure(&install_unit(dir.path(), "bare.service", &bare));
    assert!(bare_level > 9.0, "an unhardened unit rated {bare_level}");
}

/// The unit agrees with the gateway: its credentials are names the gateway looks up, it gives a
/// stop the time the gateway's default shutdown grace needs, and it keeps the state directory
/// the README's `storage.dir` names.
#[test]
fn unit_matches_what_the_gateway_expects() {
    use mail2line::credentials;
    let known = [
        credentials::LINE_CHANNEL_ACCESS_TOKEN,
        credentials::LINE_CHANNEL_SECRET,
        credentials::LINE_PRIVATE_KEY,
        credentials::SMTP_TLS_CERT,
        credentials::SMTP_TLS_KEY,
    ];
    fn directive(key: &str) -> impl Iterator<Item = &'static str> + '_ {
        UNIT.lines().filter_map(move |l| l.strip_prefix(key)?.strip_prefix('='))
    }
    let loaded: Vec<&str> = directive("LoadCredential").map(|v| v.split(':').next().unwrap()).collect();
    assert!(!loaded.is_empty());
    for id in loaded {
        assert!(known.contains(&id), "LoadCredential={id} is not a name the gateway reads ({known:?})");
    }
    let stop: u64 = directive("TimeoutStopSec").next().expect("TimeoutStopSec=").trim_end_matches('s').parse().unwrap();
    let grace = mail2line::smtp::Settings::default().shutdown_grace_secs;
    assert!(stop >= 3 * grace, "TimeoutStopSec={stop}s is shorter than three shutdown phases of {grace} s");
    assert_eq!(directive("StateDirectory").next(), Some("mail2line"));
    assert_eq!(directive("Type").next(), Some("notify"));
    assert_eq!(directive("ExecReload").next(), Some("/bin/kill -HUP $MAINPID"));
}

/// Waits for the next notification (the socket's read timeout bounds the wait).
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification from the gateway");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `CLOCK_MONOTONIC` in µs, the clock of `MONOTONIC_USEC=`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write into.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[test]
fn gateway_tells_systemd_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let sock = path.to_str().unwrap();
    let mut gw = GatewayProcess::start(Options { dry_run: true, token: None, env: &[("NOTIFY_SOCKET", sock)], ..Default::default() });

    let ready = next_notification(&socket);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    // Sent once the SMTP port is bound: the status names the address the log announced.
    assert!(field(&ready, "STATUS").unwrap_or("").contains(&format!("SMTP listening on {}", gw.smtp)), "{ready:?}");

    let before = monotonic_usec();
    Command::new("kill").arg("-HUP").arg(gw.pid().to_string()).status().unwrap();
    let reloading = next_notification(&socket);
    let after = monotonic_usec();
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let stamp: u64 = field(&reloading, "MONOTONIC_USEC").expect("MONOTONIC_USEC").parse().unwrap();
    assert!((before..=after).contains(&stamp), "MONOTONIC_USEC={stamp} is not the time of the reload ({before}..{after})");
    let ready = next_notification(&socket);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    assert!(field(&ready, "STATUS").unwrap_or("").contains("last reload: nothing to reload"), "{ready:?}");

    let status = gw.terminate();
    assert!(status.success(), "{status:?}\n{}", gw.logs());
    let stopping = next_notification(&socket);
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    // The test config's shutdown_grace_secs = 10 is asked for three times over.
    let extend: u64 = field(&stopping, "EXTEND_TIMEOUT_USEC").expect("EXTEND_TIMEOUT_USEC").parse().unwrap();
    assert!(extend >= 30_000_000, "{stopping:?}");
    assert!(gw.logs().contains("stopped"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_the_credentials_directory() {
    const CREDENTIAL_TOKEN: &str = "token-from-credential-5e1c0a77";
    let line = StandIn::start().await;
    line.expected_token(CREDENTIAL_TOKEN);
    let creds = tempfile::tempdir().unwrap();
    // As systemd leaves it: one file per credential, named by its id, readable by the service.
    std::fs::write(creds.path().join("line-channel-access-token"), format!("{CREDENTIAL_TOKEN}\n")).unwrap();
    let dir = creds.path().to_str().unwrap();
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options {
            api_base_url: &url,
            token: None,
            extra: "[delivery]\nmode = \"direct\"",
            env: &[("CREDENTIALS_DIRECTORY", dir)],
            ..Default::default()
        })
    });
    let to = addr(&user(1));
    let resp = block_in_place(|| gw.send_raw("cron@example.com", &[&to], b"Subject: via credential\r\n\r\nhello\r\n")).unwrap();
    assert_eq!(resp.code().to_string(), "250");
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].header("authorization"), Some(format!("Bearer {CREDENTIAL_TOKEN}").as_str()));
    line.assert_all_valid();

    // check-config says where the token came from, and never what it is.
    let out = Command::new(env!("CARGO_BIN_EXE_mail2line"))
        .args(["check-config", "--config"])
        .arg(&gw.config_path)
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env("CREDENTIALS_DIRECTORY", dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let source = format!("line.channel_access_token: systemd credential line-channel-access-token ({dir}/line-channel-access-token)");
    assert!(text.contains(&source), "{text}");
    // The test config writes the channel secret inline; the other source is named too.
    assert!(text.contains("line.channel_secret: inline in the configuration file"), "{text}");
    for output in [&text, &gw.logs()] {
        assert!(!output.contains(CREDENTIAL_TOKEN) && !output.contains(SECRET), "{output}");
    }
}

/// The template unit verifies and is hardened like the service unit, as an instance
/// (`mail2line@node1.service`, so that `%i` means something).
#[test]
fn template_unit_passes_verify_and_is_hardened() {
    if !systemd_analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = install_unit(dir.path(), "mail2line@node1.service", TEMPLATE);
    let (ok, findings, text) = verify(&unit);
    assert!(ok && findings.is_empty(), "systemd-analyze verify objects to the template unit:\n{text}");
    let level = exposure(&unit);
    assert!(level <= 2.0, "systemd-analyze security rates the template unit {level}; it must be 2.0 or lower");
}

/// The template is the service unit line for line, but for the lines that name the instance's
/// own files: a hardening line added to one and not the other fails here.
#[test]
fn template_unit_is_the_service_unit_with_per_instance_files() {
    let directives = |unit: &'static str| -> Vec<&'static str> {
        unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    };
    let per_instance = ["Description=", "ExecStart=", "StateDirectory=", "WorkingDirectory=", "LoadCredential="];
    let (service, template) = (directives(UNIT), directives(TEMPLATE));
    for line in &service {
        if per_instance.iter().any(|k| line.starts_with(k)) {
            continue;
        }
        assert!(template.contains(line), "mail2line@.service lacks {line:?} of mail2line.service");
    }
    for line in &template {
        if per_instance.iter().any(|k| line.starts_with(k)) {
            assert!(line.contains("%i"), "{line:?} in mail2line@.service must be the instance's own (%i)");
        } else {
            assert!(service.contains(line), "mail2line@.service has {line:?}, which mail2line.service has not");
        }
    }
    let exec = template.iter().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert_eq!(*exec, "ExecStart=/usr/local/bin/mail2line serve --config /etc/mail2line/%i.toml");
    // Its credentials are names the gateway reads, the database password among them.
    let known = [mail2line::credentials::LINE_CHANNEL_ACCESS_TOKEN, mail2line::credentials::LINE_CHANNEL_SECRET, mail2line::credentials::STORAGE_PASSWORD];
    let loaded: Vec<&str> = template.iter().filter_map(|l| l.strip_prefix("LoadCredential=")).map(|v| v.split(':').next().unwrap()).collect();
    assert_eq!(loaded, known, "the template's credentials");
}
