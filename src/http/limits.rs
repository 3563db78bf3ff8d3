//! Limits of the `[http]` listener, which faces the internet (LINE must reach the webhook):
//! a header read timeout, an idle timeout, a connection cap and per-route request budgets.
//!
//! Why our own accept loop instead of `axum::serve`: axum's loop has no connection cap and no
//! hook for hyper's timeouts. Here each connection is a hyper HTTP/1 connection with
//! `header_read_timeout` (a client trickling its headers is cut after `header_timeout_secs`),
//! watched for idleness (no request in flight and no byte read or written for
//! `idle_timeout_secs`), and registered in a table the cap consults.
//!
//! The cap is `max_connections`. Past it, the new connection is accepted and the connection that
//! has gone longest without completing a request, among those with no request in flight, is
//! closed to make room; only when every connection is busy with a request is the new one
//! refused. Why evict rather than refuse: a flood of slow or idle connections would otherwise
//! hold every slot and LINE's webhook calls (which complete requests, so are never the "oldest
//! without progress") would be refused until the flood stops. A slowloris connection never
//! completes a request, so it is always the first to go.
//!
//! Request budgets: the webhook has its own `max_concurrent_requests`, separate from the one
//! shared by `/media`, `/metrics`, `/healthz`, `/readyz` and unknown paths, so a flood of slow
//! downloads or scrapes cannot starve LINE. Past a budget the answer is `503` with
//! `Retry-After: 1` at once: queueing would only hold more connections.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, warn};

/// The listener's limits, from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
}

// ---------------------------------------------------------------------------------------------
// request budgets

/// A number of requests one group of routes may have in progress.
#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    name: &'static str,
}

impl Budget {
    pub fn new(n: usize, name: &'static str) -> Budget {
        Budget { permits: Arc::new(Semaphore::new(n.max(1))), name }
    }
}

/// Middleware: runs the request within the budget, or answers 503 at once.
pub async fn within_budget(State(budget): State<Budget>, request: Request, next: Next) -> Response {
    let Ok(_permit) = budget.permits.clone().try_acquire_owned() else {
        debug!("http: {} budget spent; 503 for {}", budget.name, request.uri().path());
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "busy, try again\n").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(request).await
}

// ---------------------------------------------------------------------------------------------
// the connection table

/// What the cap knows of one connection.
struct Entry {
    /// When it last completed a request (or connected).
    progress: Instant,
    in_flight: usize,
    close: Arc<Notify>,
}

/// Open connections; the cap's decisions are the pure [`victim`].
#[derive(Default)]
struct Table {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connection to close to make room, given `(id, in_flight, progress)` of each open one:
/// the one with the oldest progress among those without a request in flight.
pub fn victim(open: impl Iterator<Item = (u64, usize, Instant)>) -> Option<u64> {
    open.filter(|(_, in_flight, _)| *in_flight == 0).min_by_key(|(_, _, progress)| *progress).map(|(id, _, _)| id)
}

/// Removes its connection from the table when the connection task ends.
struct Registered {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

/// Marks a request of connection `id` in flight until dropped, then records progress.
struct InFlight {
    table: Arc<Table>,
    id: u64,
}

impl InFlight {
    fn start(table: &Arc<Table>, id: u64) -> InFlight {
        if let Some(e) = table.lock().get_mut(&id) {
            e.in_flight += 1;
        }
        InFlight { table: table.clone(), id }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(e) = self.table.lock().get_mut(&self.id) {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.progress = Instant::now();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// I/O that remembers when it last moved

/// Milliseconds since `epoch` of the last read or write.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// the accept loop

/// Serves `app` on `listener` within `limits` until `stop` turns true; then stops accepting,
/// lets requests in progress finish and closes idle connections (graceful).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let table = Arc::new(Table::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut accept_errors = ErrorLog::default();
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // log at most once a second.
                    accept_errors.log(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        while tasks.try_join_next().is_some() {}
        let close = Arc::new(Notify::new());
        let id = table.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = table.lock();
            if open.len() >= limits.max_connections {
                match victim(open.iter().map(|(id, e)| (*id, e.in_flight, e.progress))) {
                    Some(old) => {
                        debug!("http: {} connections open; closing the one longest without a request to admit {peer}", open.len());
                        if let Some(e) = open.remove(&old) {
                            e.close.notify_one();
                        }
                    }
                    None => {
                        debug!("http: {} connections open, all busy; refusing {peer}", open.len());
                        drop(socket);
                        continue;
                    }
                }
            }
            open.insert(id, Entry { progress: Instant::now(), in_flight: 0, close: close.clone() });
        }
        let registered = Registered { table: table.clone(), id };
        let (app, stop) = (app.clone(), stop.clone());
        tasks.spawn(connection(socket, app, limits, registered, close, stop));
    }
    // Graceful: each connection task saw `stop` too and finishes its request in progress.
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    socket: tokio::net::TcpStream,
    app: Router,
    limits: Limits,
    registered: Registered,
    close: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0) });
    let io = hyper_util::rt::TokioIo::new(Watched { inner: socket, activity: activity.clone() });
    let (table, id) = (registered.table.clone(), registered.id);
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::start(&table, id);
        let app = app.clone();
        async move {
            let response = tower::ServiceExt::oneshot(app, request.map(axum::body::Body::new)).await;
            drop(in_flight);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let idle = async {
        // Checked a few times per timeout: a connection lives at most ~1.25 × idle_timeout idle.
        let tick = (limits.idle_timeout / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(tick).await;
            let busy = registered.table.lock().get(&registered.id).is_some_and(|e| e.in_flight > 0);
            if !busy && activity.idle_for() >= limits.idle_timeout {
                return;
            }
        }
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!("http: connection ended: {e}");
            }
            return;
        }
        _ = close.notified() => return,
        _ = idle => {
            debug!("http: closing a connection idle for {:?}", limits.idle_timeout);
            return;
        }
        _ = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Resolves once `stop` is true (or its sender is gone); holds no borrow of the value after.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// At most one log line a second for accept errors, with the count of those not logged.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn log(&mut self, e: &std::io::Error) {
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        warn!("http: cannot accept a connection: {e} ({} more since the last such line)", self.suppressed);
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_longest_without_a_request_goes_first_and_busy_ones_never() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // 1: a slowloris since t0; 2: a keep-alive client that just completed a request;
        // 3: older than both, but with a request in flight.
        let open = [(1, 0, t0 + s(5)), (2, 0, t0 + s(60)), (3, 1, t0)];
        assert_eq!(victim(open.into_iter()), Some(1));
        assert_eq!(victim([(3, 1, t0), (4, 2, t0)].into_iter()), None, "all busy: refuse the newcomer");
        assert_eq!(victim(std::iter::empty()), None);
    }

    #[tokio::test]
    async fn a_spent_budget_answers_503_at_once() {
        use axum::routing::get;
        let budget = Budget::new(1, "test");
        let held = budget.permits.clone().try_acquire_owned().unwrap();
        let app: Router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(budget.clone(), within_budget));
        let call = |app: Router| async move {
            tower::ServiceExt::oneshot(app, Request::builder().uri("/").body(axum::body::Body::empty()).unwrap()).await.unwrap()
        };
        let r = call(app.clone()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        drop(held);
        assert_eq!(call(app).await.status(), StatusCode::OK);
    }
}
