//! The gateway's HTTP side (`[http] listen`): the LINE webhook at `[webhook] path`, and
//! `/metrics`, `/healthz` and `/readyz` for monitoring (`monitor`).
//!
//! Owns the router (routes, the webhook's 1 MiB body limit and the request budgets) and the
//! server's life: it runs until the shutdown signal, then stops accepting and lets requests in
//! progress finish (graceful). The listener's limits (timeouts, connection cap) are `limits`.

pub mod limits;
pub mod media;
pub mod monitor;
mod settings;
pub mod signature;
pub mod webhook;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use monitor::Monitor;
pub use settings::Settings;
pub use webhook::Webhook;

/// Paths the monitoring endpoints take; `[webhook] path` may not be one of them.
pub const MONITOR_PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Largest webhook body accepted (413 beyond). LINE's bodies are a few KiB; this is headroom,
/// not a promise.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The routes: `POST <path>` is the webhook, `GET` [`MONITOR_PATHS`] are monitoring; anything
/// else is axum's 404/405. `path` must not be one of [`MONITOR_PATHS`] (the configuration
/// refuses that). With `media`, `GET /media/{file}` serves its files. The webhook may have
/// `max_concurrent_requests` requests in progress, and everything else as many again, separately
/// (see `limits`): a flood of downloads or scrapes cannot take LINE's share.
pub fn router(
    hook: Arc<Webhook>,
    path: &str,
    monitor: Arc<Monitor>,
    media: Option<Arc<crate::media::Media>>,
    max_concurrent_requests: usize,
) -> Router {
    router_for_channels(vec![(path.to_owned(), hook)], monitor, media, max_concurrent_requests)
}

/// [`router`] with one webhook per LINE channel (`[[channels]]`: `/webhook/<name>`, each with
/// its own secret and registry); the webhooks share one budget of requests in progress.
pub fn router_for_channels(
    hooks: Vec<(String, Arc<Webhook>)>,
    monitor: Arc<Monitor>,
    media: Option<Arc<crate::media::Media>>,
    max_concurrent_requests: usize,
) -> Router {
    use axum::middleware::from_fn_with_state;
    let webhook_budget = limits::Budget::new(max_concurrent_requests, "webhook");
    let other_budget = limits::Budget::new(max_concurrent_requests, "media and monitoring");
    let monitoring = Router::new()
        .route("/metrics", get(monitor::metrics))
        .route("/healthz", get(monitor::healthz))
        .route("/readyz", get(monitor::readyz))
        .with_state(monitor);
    let others = match media {
        Some(media) => monitoring.merge(Router::new().route("/media/{file}", get(media::serve)).with_state(media)),
        None => monitoring,
    };
    let mut webhooks = Router::new();
    for (path, hook) in hooks {
        webhooks = webhooks.route(&path, post(webhook::handle).with_state(hook));
    }
    webhooks
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(from_fn_with_state(webhook_budget, limits::within_budget))
        .merge(others.route_layer(from_fn_with_state(other_budget, limits::within_budget)))
}

/// Serves `app` on `listener` within `limits` until `stop` turns true, then shuts down gracefully.
pub async fn serve(listener: TcpListener, app: Router, limits: limits::Limits, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    limits::serve(listener, app, limits, stop).await
}
