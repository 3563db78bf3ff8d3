//! A mail's attachments → files LINE can fetch: which attachments become image messages (read
//! and converted on the blocking pool), which are stored for download (`serve_attachments`),
//! and the `compose::Hosted` that `compose` turns into messages and links. Every file of a mail
//! is stored in one call, durable on return, before the mail is answered.
//!
//! Here rather than in `delivery`, which only calls it between `mail::parse` and
//! `compose::compose`: what becomes of an attachment is the media host's decision.

use tracing::warn;

use super::store::{Kind, MediaError};
use super::{image, Media};
use crate::compose::Hosted;
use crate::line::message::ImageMessage;
use crate::mail::Attachment;

/// Stores the images (original and, when over 1 MB, a preview) and, with `serve_attachments`,
/// the other attachments up to `max_attachment_bytes`: the images are read and converted on the
/// blocking pool (CPU), then every file of the mail is stored in one call, durable on return
/// (files fsync'd, or one PostgreSQL commit). An error means some file could not be made
/// durable, and none is kept. Returns what `compose` needs and every file stored, to delete
/// them if the mail is refused after all.
pub async fn host(m: &Media, attachments: Vec<Attachment>) -> Result<(Hosted, Vec<String>), MediaError> {
    let m2 = m.clone();
    let planned = tokio::task::spawn_blocking(move || plan(&m2, attachments))
        .await
        .map_err(|e| MediaError::Task(e.to_string()))?;
    // The mail's files in its order (as they were always stored), and where each goes.
    let mut files: Vec<(Vec<u8>, Kind)> = Vec::new();
    let mut slots = Vec::with_capacity(planned.len());
    for p in planned {
        match p {
            Planned::Image { original, preview } => {
                let at = files.len();
                files.push((original.bytes, original.kind));
                let preview = preview.map_or(at, |p| {
                    files.push((p.bytes, p.kind));
                    at + 1
                });
                slots.push(Slot::Image { original: at, preview });
            }
            Planned::Other { attachment, stored_as } => {
                // Copied: the attachment is also listed by name and size.
                let link = stored_as.map(|kind| {
                    files.push((attachment.data.clone(), kind));
                    files.len() - 1
                });
                slots.push(Slot::Other { attachment, link });
            }
        }
    }
    let stored = m.store.put_all(files).await?;
    let url = |i: usize| m.url(stored.get(i).map_or("", String::as_str));
    let mut hosted = Hosted::default();
    for slot in slots {
        match slot {
            Slot::Image { original, preview } => {
                hosted.images.push(ImageMessage { original_content_url: url(original), preview_image_url: url(preview) });
            }
            Slot::Other { attachment, link } => {
                hosted.listed.push(attachment);
                hosted.links.push(link.map(url));
            }
        }
    }
    Ok((hosted, stored))
}

/// What one attachment becomes, before anything is stored.
enum Planned {
    /// An image message: its original and, when over 1 MB, a preview.
    Image { original: image::Encoded, preview: Option<image::Encoded> },
    /// Listed by name and size; with a download link when stored (as this kind).
    Other { attachment: Attachment, stored_as: Option<Kind> },
}

/// An attachment's place in the mail, with the indexes of its stored files.
enum Slot {
    Image { original: usize, preview: usize },
    Other { attachment: Attachment, link: Option<usize> },
}

/// Reads and converts the images (CPU: on the blocking pool) and decides which other
/// attachments are stored for download.
fn plan(m: &Media, attachments: Vec<Attachment>) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(attachments.len());
    for a in attachments {
        let prepared = image::prepare(&a.data, &m.decoding);
        if let Err(why) = &prepared {
            if let Some(warning) = why.warning() {
                warn!(attachment = ?a.name, bytes = a.data.len(), "{warning}");
            }
        }
        if let Ok(prepared) = prepared {
            planned.push(Planned::Image { original: prepared.original, preview: prepared.preview });
            continue;
        }
        let stored_as = if m.serve_attachments && a.data.len() as u64 <= m.max_attachment_bytes {
            // Not an image we could read, whatever its header says: a download, not a picture.
            Some(match Kind::of_content_type(&a.content_type) {
                k if k.is_image() => Kind::Binary,
                k => k,
            })
        } else {
            None
        };
        planned.push(Planned::Other { attachment: a, stored_as });
    }
    planned
}
