//! The gateway's HTTP side (`[http] listen`): today only the LINE webhook at `[webhook] path`.
//!
//! Owns the router (routes and the 1 MiB body limit) and the server's life: it runs until the
//! shutdown signal, then stops accepting and lets requests in progress finish (graceful).

pub mod events;
pub mod signature;
pub mod webhook;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use webhook::Webhook;

/// Largest webhook body accepted (413 beyond). LINE's bodies are a few KiB; this is headroom,
/// not a promise.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The routes: `POST <path>` is the webhook; anything else is axum's 404/405.
pub fn router(hook: Arc<Webhook>, path: &str) -> Router {
    Router::new()
        .route(path, post(webhook::handle))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(hook)
}

/// Serves `app` on `listener` until `stop` turns true, then shuts down gracefully.
pub async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            // A dropped sender also means "stop".
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
