//! Media hosting (`[media]`): LINE shows images only from public HTTPS URLs, so the gateway
//! stores a mail's images (and, optionally, its other attachments) under `storage.dir/media`
//! and serves them on the `[http]` listener at `/media/<id>.<ext>` until they expire.
//!
//! `store` owns the files (in `storage.dir/media`, or on PostgreSQL: `store_pg`), `image` the pure conversions (GIF/WebP → PNG/JPEG, previews); this
//! file holds the media host shared by delivery (which stores) and HTTP (which serves),
//! `hosting` what becomes of a mail's attachments (image messages, download links), and
//! `settings` the `[media]` table it is made from.

mod hosting;
pub mod image;
mod settings;
pub mod store;
mod store_pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use hosting::host;
pub use settings::Settings;
pub use store::{Kind, MediaError, MediaStore};

/// The URL path files are served under.
pub const URL_PREFIX: &str = "/media/";

/// Why the media host cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create {} ({source}); check storage.dir and its permissions", dir.display())]
    Store { dir: PathBuf, source: std::io::Error },
}

/// The media host of a running gateway, from `[media]` when `public_base_url` is set.
#[derive(Debug, Clone)]
pub struct Media {
    pub store: MediaStore,
    /// Without a trailing slash.
    pub base_url: String,
    pub retention: Duration,
    pub serve_attachments: bool,
    pub max_attachment_bytes: u64,
    pub sweep_interval: Duration,
    /// `max_image_pixels` and the decodes at once (one per core), shared by every mail.
    pub decoding: Arc<image::DecodeBudget>,
}

impl Media {
    /// `None` when `[media] public_base_url` is unset: images are then only listed.
    pub fn from_config(cfg: &Settings, storage_dir: &Path) -> Result<Option<Media>, Error> {
        let Some(base_url) = cfg.base_url() else { return Ok(None) };
        let store = MediaStore::open(storage_dir).map_err(|source| Error::Store { dir: storage_dir.join(store::DIR_NAME), source })?;
        Ok(Some(Media {
            store,
            base_url: base_url.to_owned(),
            retention: cfg.retention_parsed,
            serve_attachments: cfg.serve_attachments,
            max_attachment_bytes: cfg.max_attachment_bytes,
            sweep_interval: Duration::from_secs(cfg.sweep_interval_secs),
            decoding: Arc::new(image::DecodeBudget::new(cfg.max_image_pixels, 0)),
        }))
    }

    /// Deletes expired files now and then every `sweep_interval`, until `stop` turns true;
    /// the first sweep runs at once, so a restart cleans up what expired while it was down.
    pub async fn sweep_periodically(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.sweep_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match self.store.sweep_expired(self.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired media files deleted"),
                Err(MediaError::Task(e)) => tracing::warn!("media sweep failed: {e}"),
                Err(e) => tracing::warn!("cannot sweep {}: {e}", self.store.location()),
            }
        }
    }

    /// The same media host with its files on PostgreSQL (`MediaStore::open_postgres`), so
    /// that every gateway sharing the database serves what any of them stored.
    pub fn with_store(self, store: MediaStore) -> Media {
        Media { store, ..self }
    }

    /// The public URL of a stored file.
    pub fn url(&self, name: &str) -> String {
        format!("{}{URL_PREFIX}{name}", self.base_url)
    }
}
