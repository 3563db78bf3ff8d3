//! Filling the gateway's disk (issue 16, "Disk"): below `[storage] min_free_bytes`, or past
//! `[storage] max_bytes`, new mail is answered `452 4.3.1` at MAIL FROM, before any data; a disk
//! that really fills up (`ulimit -f`) leaves no half-written file in `storage.dir`; dead letters
//! are deleted after `[delivery] dead_retention`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::task::block_in_place;

use crate::support::cli::{self, Run};
use crate::support::gateway::{addr, code, user, GatewayProcess, Options, TOKEN};
use crate::support::raw::Raw;
use crate::support::standin::{Behaviour, StandIn};

const PATIENCE: Duration = Duration::from_secs(60);

async fn start(extra: &str, fsize_limit_kib: Option<u64>) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, fsize_limit_kib, ..Default::default() }));
    (line, gw)
}

/// MAIL FROM on a raw session: the whole reply.
fn mail_from(gw: &GatewayProcess) -> String {
    let mut c = Raw::greeted(gw.smtp);
    assert!(c.cmd("EHLO attacker.example").starts_with("250"));
    c.cmd("MAIL FROM:<a@example.com>")
}

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_floor_mail_gets_452_at_mail_from_and_nothing_is_lost() {
    // More than any disk has free: the floor is always hit.
    let (line, gw) = start("min_free_bytes = 9223372036854775807\n", None).await;
    let reply = block_in_place(|| mail_from(&gw));
    assert!(reply.starts_with("452 4.3.1 ") && reply.contains("free disk space"), "{reply}");
    // A normal client is told to retry (4xx), never refused for good.
    let err = block_in_place(|| gw.send_raw("normal@example.com", &[&addr(&user(1))], b"Subject: hi\r\n\r\nhello\r\n")).unwrap_err();
    assert_eq!(code(&err), Some(452), "{err}");
    assert!(block_in_place(|| gw.wait_for_log("new mail refused with 452 4.3.1", Duration::from_secs(10))), "{}", gw.logs());
    assert!(line.requests_to("/v2/bot/message/push").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_bytes_mail_waits_and_is_taken_again_once_there_is_room() {
    let (line, gw) = start("max_bytes = 1048576\n", None).await;
    // An attacker's earlier mail (stand-in: a 2 MiB file among the gateway's own).
    let filler = gw.dir.path().join("data/media");
    std::fs::create_dir_all(&filler).unwrap();
    std::fs::write(filler.join("filler.bin"), vec![0u8; 2 << 20]).unwrap();
    let start = Instant::now();
    loop {
        let reply = block_in_place(|| mail_from(&gw));
        if reply.starts_with("452 4.3.1 ") {
            break;
        }
        // The first reading may be from before the file (cached for a second).
        assert!(start.elapsed() < PATIENCE, "max_bytes never refused: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_file(filler.join("filler.bin")).unwrap();
    // The sender retries: once the reading is fresh again the mail goes through and reaches LINE.
    let start = Instant::now();
    loop {
        match block_in_place(|| gw.send_raw("normal@example.com", &[&addr(&user(2))], b"Subject: retried\r\n\r\nhello\r\n")) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(code(&e), Some(452), "{e}");
                assert!(start.elapsed() < PATIENCE, "never taken again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let pushed = line.wait_for(1, PATIENCE).await;
    assert!(pushed.iter().any(|r| r.body.to_string().contains("retried")), "{pushed:?}");
}


fn with_image(png: &[u8], n: usize) -> Vec<u8> {
    let head = format!("From: cam@example.com\r\nSubject: picture {n}\r\n");
    crate::support::mime::multipart(&head, "See attached.", &[("p.png", "image/png", png)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_no_half_written_file_and_loses_no_accepted_mail() {
    // Every write past 1 MiB fails (EFBIG) like a full disk. LINE is slow (one worker, 1.5 s a
    // push, within the gateway's 2 s timeout) and each mail is five pushes of ~25 KB, so the
    // spool fills in a few mails however slowly a loaded machine runs this test.
    // Coalescing off: each mail must fill the spool with its own five requests.
    let extra = "\n[delivery]\nscan_interval_ms = 100\nworkers = 1\ncoalesce_secs = 0\n\n[media]\npublic_base_url = \"https://media.example.test\"\n";
    let (line, gw) = start(extra, Some(1024)).await;
    line.set_default(Behaviour::Delay(Duration::from_millis(1500)));
    let rcpts: Vec<String> = (4..9).map(|n| addr(&user(n))).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    // About 3.6 MB: over the 1 MiB file limit, so the gateway converts it.
    let big = with_image(&crate::support::images::noise_png(1200, 1000, 7), 0);
    let filler = "x".repeat(30 * 1024);
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for n in 0..200 {
        // Each image is too big to store: its media write fails part-way.
        if n % 10 == 0 {
            let err = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&user(3))], &big)).unwrap_err();
            assert_eq!(code(&err), Some(452), "{err}");
        }
        let m = format!("Subject: seq {n}\r\n\r\n{filler}\r\n");
        match block_in_place(|| gw.send_raw("normal@example.com", &rcpts, m.as_bytes())) {
            Ok(_) => accepted.push(format!("seq {n}")),
            Err(e) => {
                assert_eq!(code(&e).map(|c| c / 100), Some(4), "a full disk is never a 5xx: {e}");
                refused += 1;
                break;
            }
        }
    }
    assert_eq!(refused, 1, "the spool never filled up");
    let data = gw.dir.path().join("data");
    let files = files_under(&data);
    let temp: Vec<_> = files.iter().filter(|f| f.to_string_lossy().contains(".tmp")).collect();
    assert!(temp.is_empty(), "half-written files left behind: {temp:?}");
    for f in files.iter().filter(|f| f.starts_with("media")) {
        let bytes = std::fs::read(data.join(f)).unwrap();
        assert!(image::load_from_memory(&bytes).is_ok(), "{} is not a complete image", f.display());
    }
    // Every mail answered 250 reaches LINE, once the slow stand-in catches up.
    line.set_default(Behaviour::Ok);
    let start = Instant::now();
    loop {
        let pushed: String = line.accepted().iter().map(|r| r.body.to_string()).collect();
        let missing: Vec<_> = accepted.iter().filter(|s| !pushed.contains(&format!("\"text\":\"{s}\""))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(start.elapsed() < PATIENCE * 2, "accepted mail never reached LINE: {missing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_deleted_after_dead_retention() {
    let (line, gw) = start("\n[delivery]\nscan_interval_ms = 100\ndead_retention = \"1s\"\n", None).await;
    // LINE refuses the message for good: a dead letter.
    line.push_behaviour(Behaviour::Status(400, serde_json::json!({"message": "The request body has 1 error(s)"})));
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], b"Subject: doomed\r\n\r\nx\r\n")).unwrap();
    assert!(block_in_place(|| gw.wait_for_log("mail dead", PATIENCE)), "{}", gw.logs());
    assert!(
        block_in_place(|| gw.wait_for_log("dead letters older than delivery.dead_retention deleted", PATIENCE)),
        "{}",
        gw.logs()
    );
    assert!(gw.logs().contains("purged=1"), "the count is logged: {}", gw.logs());
    let out = Run::of(&mut cli::mail2line(["queue", "list"], &gw.config_path)).stdout;
    assert!(out.contains("0 pending, 0 dead"), "{out}");
}
