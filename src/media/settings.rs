//! `[media]`, as written in the configuration file and checked when it is loaded; [`super::Media`]
//! is what a running gateway makes of it.

use std::time::Duration;

use serde::Deserialize;

use crate::clock::DurationValue;

/// `[media]`: images (and optionally other attachments) stored under `storage.dir/media` and
/// served on the `[http]` listener at `/media/<id>.<ext>`, because LINE only shows images it can
/// fetch from a public HTTPS URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The public HTTPS address under which `/media/…` on the `[http]` listener is reachable
    /// (e.g. through a reverse proxy). Unset: images are only listed by name and size.
    pub public_base_url: Option<String>,
    /// How long stored files are served before they are deleted.
    pub retention: DurationValue,
    /// Also store non-image attachments and list them with a download link.
    pub serve_attachments: bool,
    /// Largest attachment stored for download (`serve_attachments`); larger ones are only listed.
    pub max_attachment_bytes: u64,
    /// How often expired files are swept, in seconds (hourly by default).
    pub sweep_interval_secs: u64,
    /// Images declaring more pixels than this are neither decoded nor sent as images (a
    /// decompression bomb costs 4 bytes a pixel); they are listed as attachments.
    pub max_image_pixels: u64,
    /// `retention` parsed; filled in by [`Settings::validate`], so it is not parsed again.
    #[serde(skip)]
    pub retention_parsed: Duration,
}

/// `media.max_image_pixels` above this lets one decode take 4 GB.
const MAX_IMAGE_PIXELS: u64 = 1_000_000_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_base_url: None,
            retention: DurationValue::Text("7d".into()),
            serve_attachments: false,
            max_attachment_bytes: 10 * 1024 * 1024,
            sweep_interval_secs: 3600,
            max_image_pixels: 40_000_000,
            retention_parsed: Duration::from_secs(7 * 86400),
        }
    }
}

impl Settings {
    /// The base URL without a trailing slash, when media hosting is on.
    pub fn base_url(&self) -> Option<&str> {
        self.public_base_url.as_deref().map(|u| u.trim_end_matches('/'))
    }

    /// Problems as `(key, message)`; keeps `retention` parsed.
    pub fn validate(&mut self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(url) = &self.public_base_url {
            let host = url.strip_prefix("https://").unwrap_or("");
            if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) || url.contains(['?', '#']) {
                p.push((
                    "media.public_base_url".to_owned(),
                    format!("{url:?} is not an https URL; LINE only fetches images over HTTPS, e.g. \"https://mail2line.example.com\""),
                ));
            }
        }
        match self.retention.parse() {
            Err(e) => p.push(("media.retention".to_owned(), e.to_string())),
            Ok(Duration::ZERO) => p.push(("media.retention".to_owned(), "must be at least 1s".into())),
            Ok(d) => self.retention_parsed = d,
        }
        if self.max_attachment_bytes == 0 {
            p.push(("media.max_attachment_bytes".to_owned(), "must be at least 1".into()));
        }
        if self.sweep_interval_secs == 0 {
            p.push(("media.sweep_interval_secs".to_owned(), "must be at least 1".into()));
        }
        if !(1..=MAX_IMAGE_PIXELS).contains(&self.max_image_pixels) {
            p.push((
                "media.max_image_pixels".to_owned(),
                format!("must be between 1 and {MAX_IMAGE_PIXELS} (each decode may hold 4 bytes a pixel)"),
            ));
        }
        p
    }
}
