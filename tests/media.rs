//! Images and attachments end to end: a mail made by Python's `email` package
//! (`src/mail/testdata/rich.eml`, from `make_rich_mail.py`: a PNG, a JPEG, an inline `cid:`
//! PNG and a PDF) and mails with a large PNG and a GIF go through the real binary with
//! `[media] public_base_url`; the pushes are checked against LINE's spec by the stand-in, and
//! every URL in them is fetched from the gateway's `[http]` listener, with the public base URL's
//! path mapped onto it (what the operator's reverse proxy does).

mod support;

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

const BASE: &str = "https://media.example.test";
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/mail/testdata");

fn config(extra: &str) -> String {
    format!("[delivery]\nmode = \"direct\"\n\n[media]\npublic_base_url = \"{BASE}\"\n{extra}\n")
}

async fn setup(extra: &str) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let cfg = config(extra);
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &cfg, ..Default::default() }));
    (line, gw)
}

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(TESTDATA).join(name)).unwrap()
}

/// The listener URL for a public media URL; panics if it is not under the base URL.
fn local(http: SocketAddr, url: &str) -> String {
    let path = url.strip_prefix(BASE).unwrap_or_else(|| panic!("{url} is not under {BASE}"));
    assert!(path.starts_with("/media/"), "{url}");
    format!("http://{http}{path}")
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Every message of every push, in order.
fn messages(line: &StandIn) -> Vec<Value> {
    line.requests_to("/v2/bot/message/push").iter().flat_map(|r| r.body["messages"].as_array().unwrap().clone()).collect()
}

/// A mail with the given attachments, as base64 parts.
fn mail_with(to: &str, message_id: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let head = format!("From: cam@example.com\r\nTo: {to}\r\nSubject: Pictures\r\nMessage-ID: <{message_id}>\r\n");
    support::mime::multipart(&head, "See attached.", parts)
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_mail_images_become_image_messages_served_byte_for_byte() {
    let (line, gw) = setup("serve_attachments = true").await;
    let http = gw.http.expect("http listener");
    let id = user(1);
    let raw = testdata("rich.eml");
    let resp = block_in_place(|| gw.send_raw("monitor@example.com", &[&addr(&id)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());
    line.assert_all_valid();
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 1, "text and three images fit one request");
    let msgs = messages(&line);
    let types: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text", "image", "image", "image"]);

    // The PDF is listed with a download link; the images are not listed.
    let text = msgs[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Disk usage report\n\nDisk usage is at 91%."), "{text}");
    assert!(!text.contains(".png") && !text.contains("snapshot"), "images are not listed: {text}");
    let pdf_url = text.lines().skip_while(|l| !l.starts_with("📎 scan.pdf (")).nth(1).expect("a link under the PDF").to_owned();
    assert!(pdf_url.starts_with(&format!("{BASE}/media/")) && pdf_url.ends_with(".pdf"), "{pdf_url}");
    let r = get(&local(http, &pdf_url)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.headers()["content-disposition"], "attachment");
    assert_eq!(r.bytes().await.unwrap().to_vec(), testdata("scan.pdf"));

    // Inline logo first (it comes first in the MIME tree), then chart and snapshot.
    let expected = [("logo.png", "image/png"), ("chart.png", "image/png"), ("snapshot.jpg", "image/jpeg")];
    for (m, (file, content_type)) in msgs[1..].iter().zip(expected) {
        let original = m["originalContentUrl"].as_str().unwrap();
        let preview = m["previewImageUrl"].as_str().unwrap();
        // Small originals are their own preview.
        assert_eq!(original, preview);
        let name = original.rsplit('/').next().unwrap();
        assert_eq!(name.len(), 32 + 4, "{name}");
        let r = get(&local(http, original)).await;
        assert_eq!(r.status(), 200, "{original}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], content_type);
        assert_eq!(h["cache-control"], format!("public, max-age={}, immutable", 7 * 86400));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().to_vec(), testdata(file), "{file}");
        // Stored on disk under storage.dir/media.
        assert!(gw.dir.path().join("data/media").join(name).is_file());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_images_get_a_small_preview_and_gifs_are_converted() {
    let (line, gw) = setup("").await;
    let http = gw.http.expect("http listener");
    let id = user(2);
    let png = support::images::noise_png(1200, 1000, 99);
    assert!(png.len() > 1024 * 1024, "{}", png.len());
    let gif = {
        let img = image::RgbaImage::from_fn(30, 20, |x, _| image::Rgba([(x * 8) as u8, 0, 0, 255]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Gif).unwrap();
        out
    };
    let raw = mail_with(&addr(&id), "big@example.com", &[("big.png", "image/png", &png), ("anim.gif", "image/gif", &gif)]);
    let resp = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());
    line.assert_all_valid();
    let msgs = messages(&line);
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(msgs[0]["text"], "Pictures\n\nSee attached.");

    let big = &msgs[1];
    let (original, preview) = (big["originalContentUrl"].as_str().unwrap(), big["previewImageUrl"].as_str().unwrap());
    assert_ne!(original, preview);
    assert_eq!(get(&local(http, original)).await.bytes().await.unwrap().to_vec(), png);
    let r = get(&local(http, preview)).await;
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.len() <= 1024 * 1024, "preview is {} bytes", bytes.len());
    let small = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("preview is a JPEG");
    assert!(small.width() <= 1024 && small.height() <= 1024);

    let converted = msgs[2]["originalContentUrl"].as_str().unwrap();
    assert!(converted.ends_with(".png"), "{converted}");
    let r = get(&local(http, converted)).await;
    assert_eq!(r.headers()["content-type"], "image/png");
    let back = image::load_from_memory_with_format(&r.bytes().await.unwrap(), image::ImageFormat::Png).unwrap();
    assert_eq!((back.width(), back.height()), (30, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_images_go_in_two_requests_with_their_own_retry_keys() {
    let (line, gw) = setup("").await;
    let id = user(3);
    let logo = testdata("logo.png");
    let parts: Vec<(&str, &str, &[u8])> = (0..6).map(|_| ("logo.png", "image/png", logo.as_slice())).collect();
    let raw = mail_with(&addr(&id), "six@example.com", &parts);
    let resp = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());
    line.assert_all_valid();
    let pushes = line.requests_to("/v2/bot/message/push");
    let sizes: Vec<usize> = pushes.iter().map(|r| r.body["messages"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [5, 2], "text + 4 images, then 2 images");
    assert_eq!(pushes[0].body["messages"][0]["type"], "text");
    let keys: Vec<&str> = pushes.iter().map(|r| r.header("x-line-retry-key").expect("retry key")).collect();
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_traversal_are_404_and_expired_files_are_removed() {
    let (line, mut gw) = setup("retention = \"1h\"").await;
    let http = gw.http.expect("http listener");
    let id = user(4);
    let raw = testdata("rich.eml");
    let resp = block_in_place(|| gw.send_raw("monitor@example.com", &[&addr(&id)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}");
    let url = messages(&line)[1]["originalContentUrl"].as_str().unwrap().to_owned();
    assert_eq!(get(&local(http, &url)).await.status(), 200);

    // Not stored, malformed, or trying to leave the directory: all 404, nothing listed.
    std::fs::write(gw.dir.path().join("data/secret.txt"), "TOPSECRET").unwrap();
    for path in [
        "/media/0123456789abcdef0123456789abcdef.png",
        "/media/",
        "/media",
        "/media/..%2fsecret.txt",
        "/media/..%2f..%2fconfig.toml",
        "/media/%2e%2e/secret.txt",
        "/media/../config.toml",
        "/media/0123456789abcdef0123456789abcdef.png%00.png",
    ] {
        let r = get(&format!("http://{http}{path}")).await;
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("TOPSECRET") && !body.contains("[smtp]") && !body.contains(".png"), "{path}: {body}");
    }

    // Files older than the retention are no longer served, and the sweep (at startup, then
    // every sweep_interval_secs) deletes them.
    let media = gw.dir.path().join("data/media");
    let files: Vec<_> = std::fs::read_dir(&media).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    for f in &files {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
    }
    assert_eq!(get(&local(http, &url)).await.status(), 404);
    block_in_place(|| gw.restart());
    assert!(block_in_place(|| gw.wait_for_log("expired media files deleted", Duration::from_secs(30))), "{}", gw.logs());
    assert_eq!(std::fs::read_dir(&media).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_that_cannot_be_stored_get_a_transient_reply_and_nothing_is_pushed() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let cfg = config("");
    // Writes past 1 MiB fail like a full disk: the multi-MB PNG cannot be stored.
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, extra: &cfg, fsize_limit_kib: Some(1024), ..Default::default() })
    });
    let id = user(5);
    // The small logo is stored first; the big PNG then fails.
    let raw = mail_with(&addr(&id), "full@example.com", &[("logo.png", "image/png", &testdata("logo.png")), ("big.png", "image/png", &support::images::noise_png(1200, 1000, 99))]);
    let err = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &raw)).unwrap_err();
    assert_eq!(support::gateway::code(&err), Some(452), "{err}");
    assert!(err.to_string().contains("try again later"), "{err}");
    assert!(line.requests_to("/v2/bot/message/push").is_empty());
    // The log is read by another thread: the reply can arrive before its line is captured.
    assert!(block_in_place(|| gw.wait_for_log("cannot store media files", Duration::from_secs(10))), "{}", gw.logs());
    assert_eq!(media_files(&gw), Vec::<String>::new(), "the logo stored before the failure is removed");
}

/// Files in the gateway's media directory.
fn media_files(gw: &GatewayProcess) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(gw.dir.path().join("data/media"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A mail refused after its images were stored leaves no files behind, unless LINE may have
/// sent it after all (a 500 leaves that open): then its messages may point at them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mail_leaves_no_media_unless_line_may_have_sent_it() {
    let (line, gw) = setup("").await;
    let id = user(8);
    let raw = mail_with(&addr(&id), "refused@example.com", &[("logo.png", "image/png", &testdata("logo.png"))]);
    line.push_behaviour(Behaviour::Status(400, serde_json::json!({"message": "The request body has 1 error(s)"})));
    let err = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &raw)).unwrap_err();
    assert_eq!(support::gateway::code(&err).map(|c| c / 100), Some(5), "{err}");
    let pushed = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].body["messages"][1]["originalContentUrl"].is_string(), "the image was in the refused request");
    assert_eq!(media_files(&gw), Vec::<String>::new());

    line.push_behaviour(Behaviour::Status(500, serde_json::json!({"message": "Internal Server Error"})));
    let err = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &raw)).unwrap_err();
    assert_eq!(support::gateway::code(&err).map(|c| c / 100), Some(4), "{err}");
    assert_eq!(media_files(&gw).len(), 1, "kept: LINE may have acted on the 500'd request");
}

/// In spool mode a mail's requests to the same recipients are separate jobs that parallel workers
/// could send at once; the chat must still show the text first and the image batches in order,
/// also when the first request fails and is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_follow_up_requests_wait_for_the_earlier_ones_through_a_retry() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    // Every push takes a while, so requests sent in parallel would overlap; the first one
    // (a text batch) fails once and goes back to the spool for a retry.
    line.set_default(Behaviour::Delay(Duration::from_millis(100)));
    line.push_behaviour(Behaviour::Status(500, serde_json::json!({"message": "Internal Server Error"})));
    let url = line.base_url();
    let cfg = format!(
        "[delivery]\nmode = \"spool\"\nworkers = 8\nretry_base_ms = 200\nretry_max_secs = 1\nscan_interval_ms = 50\n\n[media]\npublic_base_url = \"{BASE}\"\n"
    );
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &cfg, ..Default::default() }));
    let (a, b) = (user(6), user(7));
    let logo = testdata("logo.png");
    let parts: Vec<(&str, &str, &[u8])> = (0..11).map(|_| ("logo.png", "image/png", logo.as_slice())).collect();
    let raw = mail_with(&addr(&a), "eleven@example.com", &parts);
    let resp = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&a), &addr(&b)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());

    // Two recipients: one multicast chain of (text + 4 images, 5 images, 2 images), plus the
    // failed attempt.
    line.wait_for(4, Duration::from_secs(30)).await;
    line.assert_all_valid();
    let requests = line.requests_to("/v2/bot/message/multicast");
    assert_eq!(requests.iter().filter(|r| !r.is_accepted()).count(), 1, "exactly the scripted failure");
    let accepted: Vec<_> = requests.iter().filter(|r| r.is_accepted()).collect();
    let sizes: Vec<usize> = accepted.iter().map(|r| r.body["messages"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [5, 5, 2], "batches in order, each once");
    assert_eq!(accepted[0].body["messages"][0]["type"], "text", "the text comes first");
    for r in &accepted {
        assert_eq!(r.body["to"], serde_json::json!([a, b]));
    }
    let keys: std::collections::HashSet<&str> = accepted.iter().map(|r| r.header("x-line-retry-key").unwrap()).collect();
    assert_eq!(keys.len(), 3, "each request has its own retry key");
    assert!(line.requests_to("/v2/bot/message/push").is_empty());
}

/// `max_attachment_bytes` caps what is stored for download: a bigger file is only listed,
/// and nothing of it lands in the media directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_over_the_size_cap_are_listed_without_a_link() {
    let pdf = testdata("scan.pdf");
    let cap = pdf.len() - 1;
    let (line, gw) = setup(&format!("serve_attachments = true\nmax_attachment_bytes = {cap}")).await;
    let id = user(9);
    let small = b"%PDF-1.4 tiny".to_vec();
    let raw = mail_with(&addr(&id), "cap@example.com", &[("scan.pdf", "application/pdf", &pdf), ("note.pdf", "application/pdf", &small)]);
    let resp = block_in_place(|| gw.send_raw("scanner@example.com", &[&addr(&id)], &raw)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());
    line.assert_all_valid();
    let text = messages(&line)[0]["text"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let at = |name: &str| lines.iter().position(|l| l.starts_with(&format!("📎 {name} ("))).unwrap_or_else(|| panic!("{name} listed: {text}"));
    let (big, note) = (at("scan.pdf"), at("note.pdf"));
    assert_eq!(note, big + 1, "no link line under the file over the cap: {text}");
    assert!(lines.get(note + 1).is_some_and(|l| l.starts_with(&format!("{BASE}/media/"))), "the small one has a link: {text}");
    assert_eq!(media_files(&gw).len(), 1, "only the small file is stored");
}

/// In spool mode a mail the spool refuses (here: the monthly quota is spent, so it answers
/// 452 4.2.2) leaves no files behind; the mail stored before the pause keeps its own, which its
/// pending request points at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_the_spool_refuses_leaves_no_media() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    line.set_quota(Some(1000), 0);
    line.push_behaviour(Behaviour::Status(429, serde_json::json!({"message": "You have reached your monthly limit."})));
    let url = line.base_url();
    let cfg = format!("[delivery]\nmode = \"spool\"\nquota_probe_secs = 60\n\n[media]\npublic_base_url = \"{BASE}\"\n");
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &cfg, ..Default::default() }));
    let id = user(10);
    let logo = testdata("logo.png");
    let first = mail_with(&addr(&id), "paused-1@example.com", &[("logo.png", "image/png", &logo)]);
    line.wait_for_quota_reads(1, Duration::from_secs(30)).await;
    let resp = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &first)).unwrap();
    assert!(resp.is_positive(), "{resp:?}\n{}", gw.logs());
    // LINE refused the push (scripted 429): the month ran out meanwhile; probes find no room.
    line.set_quota(Some(1000), 1000);
    assert!(block_in_place(|| gw.wait_for_log("quota exhausted", Duration::from_secs(10))), "{}", gw.logs());
    let kept = media_files(&gw);
    assert_eq!(kept.len(), 1, "the stored mail's image stays");

    let second = mail_with(&addr(&id), "paused-2@example.com", &[("logo.png", "image/png", &logo)]);
    let err = block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&id)], &second)).unwrap_err();
    assert_eq!(support::gateway::code(&err), Some(452), "{err}");
    assert!(err.to_string().contains("4.2.2"), "{err}");
    assert_eq!(media_files(&gw), kept, "the refused mail's image is gone, the other one stays");
}
