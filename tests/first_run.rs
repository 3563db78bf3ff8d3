//! A newcomer's first command, as README's "The two commands" shows it: in a fresh clone, with no
//! configuration file anywhere, `mail2line serve --dry-run` runs on built-in defaults
//! (127.0.0.1:2525, domain `text.line.localhost`, `./data`), says so in its first log line, and
//! takes mail. A configuration file, when there is one, still wins; and without `--dry-run` a
//! missing file is still the clear error it always was (exit 78).
//!
//! The real binary runs in an empty directory with no `$MAIL2LINE_CONFIG` and `$HOME` pointing
//! there too, so nothing of the machine's can lend it a configuration.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::raw::Raw;

const FIRST_LINE: &str = "no config file found: running on built-in defaults (127.0.0.1:2525, domain text.line.localhost, ./data) in dry-run";

/// `mail2line ARGS` in `dir`, with nothing from the environment that could name a configuration
/// or a secret.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mail2line"));
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("MAIL2LINE_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("LINE_CHANNEL_SECRET")
        .env_remove("LINE_PRIVATE_KEY")
        .env_remove("LINE_KID")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    cmd
}

/// A running `serve`, killed when dropped, with its stderr (the log) line by line.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(dir: &Path) -> Served {
        let mut child = command(dir, &["serve", "--dry-run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn mail2line");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Served { child, lines, seen: Vec::new() }
    }

    /// Reads the log until a line contains `marker`; panics with the log after 90 s or an exit.
    fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(marker) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {marker:?}; log:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until nothing listens on `addr` (another test run may hold the defaults' ports for a
/// moment); panics with the reason after a minute.
fn wait_until_free(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = TcpListener::bind(addr) {
        assert!(Instant::now() < deadline, "{addr}, a built-in default, stays taken ({e}); free it and run again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serve_dry_run_without_a_config_file_runs_on_built_in_defaults() {
    if Path::new("/etc/mail2line/config.toml").exists() {
        eprintln!("SKIPPED: /etc/mail2line/config.toml exists on this machine, so `serve --dry-run` rightly uses it");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    wait_until_free("127.0.0.1:2525");
    wait_until_free("127.0.0.1:8080");
    let mut served = Served::start(dir.path());
    let ready = served.wait_for("SMTP listening on ");
    assert!(ready.contains("SMTP listening on 127.0.0.1:2525 for <LINE id>@text.line.localhost (dry run"), "{ready}");
    assert!(served.seen[0].contains(FIRST_LINE), "the first log line should say where the settings come from; log:\n{}", served.seen.join("\n"));

    let at: SocketAddr = "127.0.0.1:2525".parse().unwrap();
    let mut smtp = Raw::greeted(at);
    assert!(smtp.cmd("EHLO newcomer.example").starts_with("250"));
    assert!(smtp.cmd("MAIL FROM:<me@newcomer.example>").starts_with("250"));
    let to = format!("U{}@text.line.localhost", "0123456789abcdef".repeat(2));
    let rcpt = smtp.cmd(&format!("RCPT TO:<{to}>"));
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(smtp.cmd("DATA").starts_with("354"));
    smtp.send(format!("From: me@newcomer.example\r\nTo: {to}\r\nSubject: hello\r\n\r\nMy first mail through mail2line.\r\n.\r\n").as_bytes());
    let reply = smtp.reply();
    assert!(reply.starts_with("250"), "{reply}");
    // The dry run logs what it would have pushed to LINE.
    served.wait_for("My first mail through mail2line.");
    assert!(dir.path().join("data").is_dir(), "storage.dir is ./data of the working directory");
}

#[test]
fn a_config_file_in_the_working_directory_still_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spool");
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"first.example\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\ndir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    let mut served = Served::start(dir.path());
    let ready = served.wait_for("SMTP listening on ");
    assert!(ready.contains("for <LINE id>@first.example (dry run"), "{ready}");
    assert!(!served.seen.iter().any(|l| l.contains("built-in defaults")), "log:\n{}", served.seen.join("\n"));
}

#[test]
fn serve_without_dry_run_still_needs_a_config_file() {
    if Path::new("/etc/mail2line/config.toml").exists() {
        eprintln!("SKIPPED: /etc/mail2line/config.toml exists on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &["serve"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.starts_with("mail2line: configuration errors (nothing started):\n"), "{stderr}");
    assert!(stderr.contains("/etc/mail2line/config.toml: cannot read the configuration"), "{stderr}");
    assert!(!stderr.contains("built-in defaults"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing started, nothing created");
}
