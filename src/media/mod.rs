//! Media hosting (`[media]`): LINE shows images only from public HTTPS URLs, so the gateway
//! stores a mail's images (and, optionally, its other attachments) under `storage.dir/media`
//! and serves them on the `[http]` listener at `/media/<id>.<ext>` until they expire.
//!
//! `store` owns the files, `image` the pure conversions (GIF/WebP → PNG/JPEG, previews).

pub mod image;
pub mod store;

pub use store::{Kind, MediaStore};
