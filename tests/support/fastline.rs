//! The fast LINE stand-in, for throughput: answers push and multicast 200 (one `sentMessages`
//! entry per message) and notes when the first request naming each mail's `seq=<n>` arrived,
//! counting duplicates, requests without a seq and requests it did not expect. It checks
//! nothing against LINE's specification, so its cost stays far below the gateway's; that is
//! what `benches/e2e.rs` measures with. Tests use [`super::standin`], which polices every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

/// What the sink saw. One lock per request is cheap next to an HTTP round trip, and keeping the
/// first receipt per seq here (rather than a raw log) makes duplicates a by-product.
#[derive(Default)]
pub struct SinkLog {
    /// seq → when its first request arrived.
    pub first: HashMap<u64, Instant>,
    pub requests: u64,
    pub duplicates: u64,
    /// Requests whose text had no `seq=` (should be 0; counted so a template change is visible).
    pub unparsed: u64,
    /// Requests to paths other than push/multicast, or with the wrong token.
    pub unexpected: u64,
}

pub type Sink = Arc<Mutex<SinkLog>>;

/// The handlers' state: the log and the `Authorization` header every request must carry.
#[derive(Clone)]
struct Shared {
    log: Sink,
    authorization: Arc<str>,
}

/// Every `seq=<n>` in the request's message texts (a multicast or a split text still names one
/// mail; we take each distinct seq in the request once).
fn seqs_in(body: &[u8]) -> Vec<u64> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let mut out = Vec::new();
    for m in v["messages"].as_array().into_iter().flatten() {
        let Some(text) = m["text"].as_str() else { continue };
        // A coalesced request carries several mails, each with its own subject line.
        for (pos, _) in text.match_indices("seq=") {
            let digits: String = text[pos + 4..].chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(n) = digits.parse() {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

fn record(shared: &Shared, headers: &axum::http::HeaderMap, body: &[u8]) -> usize {
    // Take the time first: the lock and the JSON parse are the sink's cost, not the gateway's.
    let now = Instant::now();
    let seqs = seqs_in(body);
    let messages = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["messages"].as_array().map(|a| a.len()))
        .unwrap_or(1);
    let authorized = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&*shared.authorization);
    let mut log = shared.log.lock().unwrap();
    log.requests += 1;
    if !authorized {
        log.unexpected += 1;
    }
    if seqs.is_empty() {
        log.unparsed += 1;
    }
    for s in seqs {
        match log.first.entry(s) {
            std::collections::hash_map::Entry::Occupied(_) => log.duplicates += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(now);
            }
        }
    }
    messages
}

async fn push(State(shared): State<Shared>, headers: axum::http::HeaderMap, body: Bytes) -> impl IntoResponse {
    let n = record(&shared, &headers, &body);
    // LINE answers one sentMessages entry per message sent.
    let ids: Vec<String> = (1..=n).map(|i| format!("{{\"id\":\"{i}\",\"quoteToken\":\"q\"}}")).collect();
    (
        [(header::CONTENT_TYPE, "application/json"), (header::HeaderName::from_static("x-line-request-id"), "bench")],
        format!("{{\"sentMessages\":[{}]}}", ids.join(",")),
    )
}

async fn multicast(State(shared): State<Shared>, headers: axum::http::HeaderMap, body: Bytes) -> impl IntoResponse {
    record(&shared, &headers, &body);
    (
        [(header::CONTENT_TYPE, "application/json"), (header::HeaderName::from_static("x-line-request-id"), "bench")],
        "{}",
    )
}

async fn unexpected(State(shared): State<Shared>) -> impl IntoResponse {
    shared.log.lock().unwrap().unexpected += 1;
    (StatusCode::NOT_FOUND, "{\"message\":\"Not found\"}")
}

/// Starts the sink, expecting `Bearer <token>` on every request; returns its log, its port and
/// its runtime (the sink stops when that is dropped). The sink runs on its own runtime thread so
/// its timestamps are not delayed behind the load generator's tasks (on a 2-core machine the OS
/// still shares the cores, but a busy tokio worker of the load generator cannot hold a sink
/// request in its queue).
pub fn start(token: &str) -> Result<(Sink, u16, tokio::runtime::Runtime), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("line-sink")
        .enable_all()
        .build()
        .map_err(|e| format!("sink runtime: {e}"))?;
    let sink: Sink = Arc::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| format!("sink bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let app = Router::new()
        .route("/v2/bot/message/push", post(push))
        .route("/v2/bot/message/multicast", post(multicast))
        .fallback(unexpected)
        .with_state(Shared { log: sink.clone(), authorization: format!("Bearer {token}").into() });
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fastline: LINE sink stopped: {e}");
        }
    });
    Ok((sink, port, rt))
}
