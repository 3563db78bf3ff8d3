//! `GET /media/<id>.<ext>` on the `[http]` listener: the files `[media]` stored for LINE (and
//! for download links).
//!
//! Only names the store makes are looked up ([`Kind::of_name`]); anything else, a missing
//! file, or one past its retention not yet swept, is a plain 404 (no listing, no hint which).
//! Files never change once written, so they are cacheable for the retention and `immutable`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::media::Media;

pub async fn serve(State(media): State<Arc<Media>>, Path(name): Path<String>) -> Response {
    // Opened without following symlinks and checked to be a regular file (see `open_served`).
    let (store, retention) = (media.store.clone(), media.retention);
    let opened = tokio::task::spawn_blocking(move || {
        let (mut file, meta, kind) = store.open_served(&name)?;
        let fresh = meta.modified().ok().and_then(|t| SystemTime::now().duration_since(t).ok()).is_none_or(|age| age <= retention);
        if !fresh {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
        Some((bytes, kind))
    })
    .await;
    let Ok(Some((bytes, kind))) = opened else { return not_found() };
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

