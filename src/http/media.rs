//! `GET /media/<id>.<ext>` on the `[http]` listener: the files `[media]` stored for LINE (and
//! for download links).
//!
//! Only names the store makes are looked up (`Kind::of_name`); anything else, a missing
//! file, or one past its retention not yet swept, is a plain 404 (no listing, no hint which).
//! Files never change once written, so they are cacheable for the retention and `immutable`.
//! With the files on PostgreSQL (several gateways behind one load balancer) any node serves what
//! any other stored; a database that cannot be read is a 503, so LINE's fetch is not told the
//! image does not exist.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::media::Media;

pub async fn serve(State(media): State<Arc<Media>>, Path(name): Path<String>) -> Response {
    let (bytes, kind) = match media.store.load(&name, media.retention).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!("cannot read media file {name}: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "media storage unavailable, try again later\n").into_response();
        }
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    if let Ok(v) = HeaderValue::from_str(&cache_control(&media)) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !kind.is_image() {
        // Downloads, never rendered by the browser in the gateway's origin.
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    response
}

fn cache_control(media: &Media) -> String {
    format!("public, max-age={}, immutable", media.retention.as_secs())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

