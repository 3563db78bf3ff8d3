//! The gateway's files (issue 16, "Files"): `storage.dir` and everything in it are owner-only
//! (0700 directories, 0600 files) even when the gateway starts with umask 000, a loose
//! `storage.dir` is tightened (and logged) at start, and a symlink planted in the media folder
//! is not served.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::task::block_in_place;

use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::standin::StandIn;

const BASE: &str = "https://media.example.test";
const PNG: &[u8] = include_bytes!("../../src/mail/testdata/logo.png");

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every entry under `dir` (itself included) with its mode; symlinks are left out.
fn modes_under(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut out = vec![(dir.display().to_string(), true, mode(dir))];
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(modes_under(&e.path()));
        } else if !t.is_symlink() {
            out.push((e.path().display().to_string(), false, mode(&e.path())));
        }
    }
    out
}

fn mail_with_png() -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
    format!(
        "From: cam@example.com\r\nSubject: picture\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"p.png\"\r\n\r\n{b64}\r\n--b--\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_is_owner_only_under_umask_000_and_planted_symlinks_are_not_served() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let extra = format!("\n[media]\npublic_base_url = \"{BASE}\"\n");
    // The child inherits the umask; it is this test binary's only while the gateway starts.
    let old = unsafe { libc::umask(0) };
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &extra, ..Default::default() }));
    unsafe { libc::umask(old) };
    block_in_place(|| gw.send_raw("cam@example.com", &[&addr(&user(1))], &mail_with_png())).unwrap();
    let pushed = line.wait_for(1, Duration::from_secs(60)).await;
    let image_url = pushed[0].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| m["originalContentUrl"].as_str())
        .unwrap_or_else(|| panic!("no image in {:?}", pushed[0].body))
        .to_owned();
    let data = gw.dir.path().join("data");
    let entries = modes_under(&data);
    assert!(entries.iter().any(|(p, _, _)| p.ends_with(".png")), "a media file was stored: {entries:?}");
    assert!(entries.iter().any(|(p, _, _)| p.ends_with("-wal")), "SQLite's own files are checked too: {entries:?}");
    let loose: Vec<_> =
        entries.iter().filter(|(_, dir, m)| *m != if *dir { 0o700 } else { 0o600 }).collect();
    assert!(loose.is_empty(), "not owner-only under umask 000: {loose:?}");

    // A symlink planted in the media folder, named like a stored file, pointing at a secret.
    let http = gw.http.expect("http listener");
    let served = image_url.strip_prefix(BASE).unwrap().to_owned();
    let link = "0123456789abcdef0123456789abcdef.png";
    std::os::unix::fs::symlink(&gw.config_path, data.join("media").join(link)).unwrap();
    let real = reqwest::get(format!("http://{http}{served}")).await.unwrap();
    assert_eq!(real.status(), 200, "the stored image is served");
    let planted = reqwest::get(format!("http://{http}/media/{link}")).await.unwrap();
    assert_eq!(planted.status(), 404);
    assert!(!planted.text().await.unwrap().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loose_storage_dir_is_tightened_at_start_and_logged() {
    let mut gw = block_in_place(|| GatewayProcess::start(Options { dry_run: true, ..Default::default() }));
    let data = gw.dir.path().join("data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spool = data.join("followers.sqlite3");
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o644)).unwrap();
    block_in_place(|| gw.restart());
    assert_eq!((mode(&data), mode(&spool)), (0o700, 0o600));
    assert!(gw.logs().contains("was accessible to others (mode 755); now 700"), "{}", gw.logs());
}
