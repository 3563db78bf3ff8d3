//! Media files on both backends (issue #21): every scenario runs once on files
//! (`MediaStore::open`, two stores on one `storage.dir`) and once on PostgreSQL
//! (`MediaStore::open_postgres`, two nodes on one database of the throwaway cluster of
//! `tests/support/postgres.rs`). Node A stores through its `MediaStore`; node B serves with the
//! real `/media/{file}` handler (`mail2line::http::media::serve`) on a real listener, fetched
//! with a real HTTP client, as LINE fetches an image through a load balancer that may pick any
//! node.
//!
//! The scenarios: what A stored B serves byte for byte with its type; an unknown or malformed
//! name is 404; a file past the retention is 404 at once and the sweep deletes it (and only it);
//! a refused mail's files are removed and the bytes stored are counted. On PostgreSQL only: a
//! database that cannot be read is a 503, not a 404; and through the gateway's delivery
//! (`delivery::Gateway` with its media on the database), a mail's image pushed by gateway A is
//! served by node B, and a mail whose images cannot reach the database gets 451 4.3.0 and
//! nothing is pushed.
//!
//! Without PostgreSQL the PostgreSQL runs print "SKIPPED: …" and pass (the file runs still
//! run), unless `MAIL2LINE_REQUIRE_POSTGRES=1`.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mail2line::media::{image::DecodeBudget, Kind, Media, MediaStore};
use mail2line::pg::Database;
use support::postgres::{database, TestDb};

const RETENTION: Duration = Duration::from_secs(3600);

/// Where the stored files are, reached without the store, to age them.
enum Raw {
    Files(PathBuf),
    Pg(tokio_postgres::Client),
}

impl Raw {
    /// Makes the stored `name` two retentions old.
    async fn age(&self, name: &str) {
        match self {
            Raw::Files(dir) => {
                let old = SystemTime::now() - 2 * RETENTION;
                std::fs::File::options().write(true).open(dir.join(name)).unwrap().set_modified(old).unwrap();
            }
            Raw::Pg(client) => {
                let by = 2 * RETENTION.as_millis() as i64;
                let n = client.execute("UPDATE media SET created_at = created_at - $2 WHERE name = $1", &[&name, &by]).await.unwrap();
                assert_eq!(n, 1, "{name} is a row");
            }
        }
    }

    /// The names stored, sorted.
    async fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            Raw::Files(dir) => std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
            Raw::Pg(client) => client.query("SELECT name FROM media", &[]).await.unwrap().iter().map(|r| r.get(0)).collect(),
        };
        names.sort();
        names
    }
}

fn media(store: MediaStore) -> Media {
    Media {
        store,
        base_url: "https://media.example.test".into(),
        retention: RETENTION,
        serve_attachments: true,
        max_attachment_bytes: 10 << 20,
        sweep_interval: Duration::from_secs(3600),
        decoding: Arc::new(DecodeBudget::new(50_000_000, 0)),
    }
}

/// Serves `media` with the gateway's own handler on a free port; returns its address.
async fn serve(media: Media) -> SocketAddr {
    let app = axum::Router::new().route("/media/{file}", axum::routing::get(mail2line::http::media::serve)).with_state(Arc::new(media));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn get(node: SocketAddr, name: &str) -> reqwest::Response {
    let url = format!("http://{node}/media/{name}");
    reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn connect(t: &TestDb, app: &str) -> Database {
    Database::connect(&t.url, Some(t.password.clone()), app).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Runs `scenario` with node A's store, node B's address and the raw view: on files (both
/// nodes on one directory), then on PostgreSQL (both on one database) when there is one.
async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(MediaStore, SocketAddr, Raw) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (MediaStore::open(dir.path()).unwrap(), MediaStore::open(dir.path()).unwrap());
    let raw = Raw::Files(a.dir().to_owned());
    scenario(a, serve(media(b)).await, raw).await;
    let Some(t) = database().await else { return };
    let a = MediaStore::open_postgres(connect(&t, "node-a").await).await.unwrap();
    let b = MediaStore::open_postgres(connect(&t, "node-b").await).await.unwrap();
    assert_eq!(a.dir(), std::path::Path::new(""), "no directory on PostgreSQL");
    assert!(a.location().contains(&t.name), "{}", a.location());
    scenario(a, serve(media(b)).await, Raw::Pg(t.admin().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_stores_another_serves_byte_for_byte() {
    on_both(|a, b, raw| async move {
        let png = support::images::noise_png(64, 48, 7);
        let pdf = b"%PDF-1.4 not really".to_vec();
        let names = a.put_all(vec![(png.clone(), Kind::Png), (pdf.clone(), Kind::Pdf)]).await.unwrap();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with(".png") && names[1].ends_with(".pdf"), "{names:?}");
        assert_eq!(Kind::of_name(&names[0]), Some(Kind::Png));
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(raw.names().await, expected);

        let r = get(b, &names[0]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.headers()["cache-control"], format!("public, max-age={}, immutable", RETENTION.as_secs()));
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.headers().get("content-disposition").is_none(), "an image is shown inline");
        assert_eq!(r.bytes().await.unwrap().to_vec(), png);

        let r = get(b, &names[1]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        assert_eq!(r.headers()["content-disposition"], "attachment");
        assert_eq!(r.bytes().await.unwrap().to_vec(), pdf);

        // Nothing stored: no name at all.
        assert!(a.put_all(Vec::new()).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_names_are_404() {
    on_both(|a, b, _raw| async move {
        let name = a.put_all(vec![(b"x".to_vec(), Kind::Text)]).await.unwrap().remove(0);
        let (stem, _) = name.split_once('.').unwrap();
        for bad in [
            "0123456789abcdef0123456789abcdef.png".to_owned(),
            // The stored name with another extension, or in upper case: not what was stored.
            format!("{stem}.png"),
            name.to_uppercase(),
            format!("{name}.png"),
            "..%2f..%2fetc%2fpasswd".to_owned(),
            "x".to_owned(),
        ] {
            let r = get(b, &bad).await;
            assert_eq!(r.status(), 404, "{bad}");
            assert_eq!(r.text().await.unwrap(), "not found\n", "{bad}");
        }
        assert_eq!(get(b, &name).await.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_are_not_served_and_the_sweep_deletes_only_them() {
    on_both(|a, b, raw| async move {
        let names = a.put_all(vec![(b"old".to_vec(), Kind::Text), (b"new".to_vec(), Kind::Text)]).await.unwrap();
        let (old, new) = (&names[0], &names[1]);
        assert_eq!(a.sweep_expired(RETENTION).await.unwrap(), 0, "nothing is old yet");
        raw.age(old).await;
        // Past the retention it is 404 at once, before any sweep.
        assert_eq!(get(b, old).await.status(), 404);
        assert_eq!(get(b, new).await.status(), 200);
        assert_eq!(raw.names().await.len(), 2, "still there until the sweep");
        assert_eq!(a.sweep_expired(RETENTION).await.unwrap(), 1);
        assert_eq!(raw.names().await, vec![new.clone()]);
        assert_eq!(get(b, new).await.text().await.unwrap(), "new");
        // The periodic sweep (as `serve` runs it) on the other node finds nothing more.
        assert_eq!(a.sweep_expired(RETENTION).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mails_files_are_removed() {
    on_both(|a, b, raw| async move {
        assert_eq!(a.stored_bytes().await.unwrap(), 0);
        let kept = a.put_all(vec![(b"kept".to_vec(), Kind::Text)]).await.unwrap();
        let refused = a.put_all(vec![(b"one".to_vec(), Kind::Text), (b"three".to_vec(), Kind::Zip)]).await.unwrap();
        assert_eq!(raw.names().await.len(), 3);
        assert_eq!(a.stored_bytes().await.unwrap(), (b"kept".len() + b"one".len() + b"three".len()) as u64);
        a.remove_all(refused.clone()).await;
        assert_eq!(raw.names().await, kept);
        assert_eq!(a.stored_bytes().await.unwrap(), b"kept".len() as u64, "what is left is counted");
        for name in &refused {
            assert_eq!(get(b, name).await.status(), 404, "{name}");
        }
        assert_eq!(get(b, &kept[0]).await.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_task_deletes_rows_on_postgres() {
    let Some(t) = database().await else { return };
    let store = MediaStore::open_postgres(connect(&t, "node-a").await).await.unwrap();
    let raw = Raw::Pg(t.admin().await);
    let names = store.put_all(vec![(b"a".to_vec(), Kind::Text), (b"b".to_vec(), Kind::Text)]).await.unwrap();
    raw.age(&names[0]).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(media(store).sweep_periodically(stop_rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while raw.names().await.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the first sweep runs at once: {:?}", raw.names().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raw.names().await, vec![names[1].clone()]);
    stop.send_replace(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_read_is_503_not_404() {
    let Some(t) = database().await else { return };
    let a = MediaStore::open_postgres(connect(&t, "node-a").await).await.unwrap();
    let b = MediaStore::open_postgres(connect(&t, "node-b").await).await.unwrap();
    let node_b = serve(media(b)).await;
    let name = a.put_all(vec![(b"img".to_vec(), Kind::Png)]).await.unwrap().remove(0);
    assert_eq!(get(node_b, &name).await.status(), 200);
    // The database goes away under both nodes (its connections are ended, and new ones refused).
    let admin = support::postgres::database().await.unwrap().admin().await;
    admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", t.name)).await.unwrap();
    let r = get(node_b, &name).await;
    assert_eq!(r.status(), 503, "LINE is told to come back, not that the image is gone");
    let body = r.text().await.unwrap();
    assert!(!body.contains(&t.password.expose().to_string()), "{body}");
    // A malformed name is still a 404, without asking the database.
    assert_eq!(get(node_b, "nonsense").await.status(), 404);
    // Storing fails with the database's error (the mail gets a 4xx).
    let e = a.put_all(vec![(b"img".to_vec(), Kind::Png)]).await.unwrap_err();
    assert!(matches!(e, mail2line::media::MediaError::Database(_)), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Through the gateway's delivery: a mail's image, stored by one gateway, fetched from another.

/// Gateway A (direct mode, to the stand-in) with its media host on the database of `t`.
async fn gateway(t: &TestDb, line: &support::standin::StandIn) -> mail2line::delivery::Gateway {
    use mail2line::delivery::{Gateway, Mode};
    use mail2line::line::{Credentials, LineClient};
    let client = LineClient::new(
        &line.base_url(),
        Credentials::LongLived(mail2line::secret::Secret::new(support::gateway::TOKEN)),
        Duration::from_secs(10),
        None,
    )
    .unwrap();
    let store = MediaStore::open_postgres(connect(t, "node-a").await).await.unwrap();
    Gateway::new(mail2line::compose::Template::default(), Mode::Direct(client), None, Arc::new(mail2line::metrics::Metrics::new()))
        .with_media(Some(media(store)))
}

fn mail_with_image(to: u32, png: &[u8]) -> mail2line::smtp::Mail {
    let head = "From: cam@example.com\r\nTo: x@example.com\r\nSubject: Pictures\r\nMessage-ID: <m1@example.com>\r\n";
    mail2line::smtp::Mail {
        from: "cam@example.com".into(),
        rcpts: vec![mail2line::envelope::Recipient::User(support::gateway::user(to))],
        channels: Vec::new(),
        urgent: false,
        helo: "test".into(),
        user: None,
        data: support::mime::multipart(head, "See attached.", &[("cam.png", "image/png", png)]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mails_image_stored_by_one_gateway_is_served_by_another() {
    use mail2line::smtp::Deliver;
    let Some(t) = database().await else { return };
    let line = support::standin::StandIn::start().await;
    line.expected_token(support::gateway::TOKEN);
    let a = gateway(&t, &line).await;
    let node_b = serve(media(MediaStore::open_postgres(connect(&t, "node-b").await).await.unwrap())).await;
    let png = support::images::noise_png(80, 60, 3);
    let reply = a.deliver(mail_with_image(1, &png), "127.0.0.1:2525".parse().unwrap()).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    line.assert_all_valid();
    let pushes = line.requests_to("/v2/bot/message/push");
    let image = pushes.iter().flat_map(|r| r.body["messages"].as_array().unwrap().clone()).find(|m| m["type"] == "image").expect("an image message");
    let url = image["originalContentUrl"].as_str().unwrap();
    let name = url.strip_prefix("https://media.example.test/media/").unwrap_or_else(|| panic!("{url}"));
    let r = get(node_b, name).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), png, "node B serves what node A stored, byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_whose_images_cannot_reach_the_database_gets_451_and_nothing_is_pushed() {
    use mail2line::smtp::Deliver;
    let Some(t) = database().await else { return };
    let line = support::standin::StandIn::start().await;
    let a = gateway(&t, &line).await;
    let admin = database().await.unwrap().admin().await;
    admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", t.name)).await.unwrap();
    let reply = a.deliver(mail_with_image(2, &support::images::noise_png(40, 30, 4)), "127.0.0.1:2525".parse().unwrap()).await;
    assert_eq!((reply.code, reply.status), (451, "4.3.0"), "{reply:?}");
    assert!(reply.lines.join(" ").contains("database"), "{reply:?}");
    assert!(line.requests_to("/v2/bot/message/push").is_empty(), "nothing pushed for a mail that got a 4xx");
}
