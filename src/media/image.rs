//! What an image attachment becomes for LINE (pure; no I/O): the original LINE fetches
//! (`originalContentUrl`, JPEG or PNG, ≤ 10 MB) and the preview shown in the chat
//! (`previewImageUrl`, ≤ 1 MB).
//!
//! JPEG and PNG are sent as they came, byte for byte. GIF and WebP are decoded and re-encoded
//! (PNG when the picture has transparency or is a GIF, whose flat colours JPEG smears; JPEG
//! otherwise); an animated GIF becomes its first frame. A preview is made only when the
//! original is over 1 MB: downscaled to fit 1024×1024 and encoded as JPEG.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::store::Kind;

/// LINE's limit for `originalContentUrl`.
pub const ORIGINAL_MAX_BYTES: usize = 10 * 1024 * 1024;
/// LINE's limit for `previewImageUrl`.
pub const PREVIEW_MAX_BYTES: usize = 1024 * 1024;
/// The box a preview is scaled to fit.
pub const PREVIEW_EDGE: u32 = 1024;

/// An encoded image and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub kind: Kind,
}

/// An attachment ready to become a LINE image message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub original: Encoded,
    /// `None`: the original is small enough to be its own preview.
    pub preview: Option<Encoded>,
}

/// The original and preview for an attachment's bytes, or `None` when they are not an image
/// LINE can be given (not an image, undecodable, or still over 10 MB): such attachments are
/// listed by name and size instead.
pub fn prepare(data: &[u8]) -> Option<Prepared> {
    let original = match sniff(data)? {
        ImageFormat::Png => Encoded { bytes: data.to_vec(), kind: Kind::Png },
        ImageFormat::Jpeg => Encoded { bytes: data.to_vec(), kind: Kind::Jpeg },
        format => convert(&decode(data)?, format)?,
    };
    if original.bytes.len() > ORIGINAL_MAX_BYTES {
        return None;
    }
    if original.bytes.len() <= PREVIEW_MAX_BYTES {
        return Some(Prepared { original, preview: None });
    }
    let preview = preview(&decode(&original.bytes)?)?;
    Some(Prepared { original, preview: Some(preview) })
}

/// The format of an image from its first bytes; `None` for anything not JPEG, PNG, GIF or WebP.
fn sniff(data: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(data).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => Some(f),
        _ => None,
    }
}

/// Decodes with limits, so a small file claiming a huge picture (a decompression bomb) is
/// refused instead of exhausting memory.
fn decode(data: &[u8]) -> Option<DynamicImage> {
    let mut reader = ImageReader::new(Cursor::new(data)).with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    reader.decode().ok()
}

/// A GIF or WebP picture re-encoded as PNG or JPEG.
fn convert(img: &DynamicImage, from: ImageFormat) -> Option<Encoded> {
    if from == ImageFormat::Gif || img.color().has_alpha() {
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).ok()?;
        Some(Encoded { bytes, kind: Kind::Png })
    } else {
        jpeg(img, 90).map(|bytes| Encoded { bytes, kind: Kind::Jpeg })
    }
}

/// A JPEG of at most [`PREVIEW_MAX_BYTES`] that fits [`PREVIEW_EDGE`]², smaller and at lower
/// quality if needed.
fn preview(img: &DynamicImage) -> Option<Encoded> {
    let mut edge = PREVIEW_EDGE;
    while edge >= 64 {
        let small = if img.width() > edge || img.height() > edge { img.thumbnail(edge, edge) } else { img.clone() };
        let bytes = jpeg(&small, 80)?;
        if bytes.len() <= PREVIEW_MAX_BYTES {
            return Some(Encoded { bytes, kind: Kind::Jpeg });
        }
        edge /= 2;
    }
    None
}

/// JPEG has no alpha channel: transparent parts are flattened onto white, as a chat shows them.
fn jpeg(img: &DynamicImage, quality: u8) -> Option<Vec<u8>> {
    let rgb = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
        for (p, q) in rgba.pixels().zip(rgb.pixels_mut()) {
            let a = u16::from(p[3]);
            for c in 0..3 {
                q[c] = ((u16::from(p[c]) * a + 255 * (255 - a)) / 255) as u8;
            }
        }
        rgb
    } else {
        img.to_rgb8()
    };
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(&rgb).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    /// A picture of `w`×`h` with pseudo-random pixels: noise compresses badly, so a modest
    /// size gives a file over LINE's preview limit.
    fn noise(w: u32, h: u32) -> DynamicImage {
        let mut x: u32 = 12345;
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |_, _| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
        }))
    }

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn small_png_and_jpeg_are_sent_as_they_are() {
        let img = noise(40, 30);
        for (format, kind) in [(ImageFormat::Png, Kind::Png), (ImageFormat::Jpeg, Kind::Jpeg)] {
            let data = encode(&img, format);
            let p = prepare(&data).unwrap();
            assert_eq!(p.original, Encoded { bytes: data, kind });
            assert_eq!(p.preview, None);
        }
    }

    #[test]
    fn large_original_gets_a_downscaled_jpeg_preview() {
        let data = encode(&noise(1200, 1000), ImageFormat::Png);
        assert!(data.len() > PREVIEW_MAX_BYTES, "test image too small: {}", data.len());
        let p = prepare(&data).unwrap();
        assert_eq!(p.original.bytes, data);
        let preview = p.preview.unwrap();
        assert_eq!(preview.kind, Kind::Jpeg);
        assert!(preview.bytes.len() <= PREVIEW_MAX_BYTES);
        let decoded = image::load_from_memory_with_format(&preview.bytes, ImageFormat::Jpeg).unwrap();
        assert!(decoded.width() <= PREVIEW_EDGE && decoded.height() <= PREVIEW_EDGE);
        // Downscaled (noise is too big at 1024 px, so it went on halving), aspect ratio kept.
        assert!(decoded.width() < 1200);
        let ratio = decoded.width() as f64 / decoded.height() as f64;
        assert!((ratio - 1.2).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn gif_becomes_png_and_opaque_webp_becomes_jpeg() {
        let img = noise(20, 10);
        let p = prepare(&encode(&img, ImageFormat::Gif)).unwrap();
        assert_eq!(p.original.kind, Kind::Png);
        let back = image::load_from_memory_with_format(&p.original.bytes, ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));

        let p = prepare(&encode(&img, ImageFormat::WebP)).unwrap();
        assert_eq!(p.original.kind, Kind::Jpeg);
        let back = image::load_from_memory_with_format(&p.original.bytes, ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));
    }

    #[test]
    fn transparent_webp_becomes_png() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 128])));
        let p = prepare(&encode(&img, ImageFormat::WebP)).unwrap();
        assert_eq!(p.original.kind, Kind::Png);
        let back = image::load_from_memory(&p.original.bytes).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(3, 3)[3], 128);
    }

    #[test]
    fn non_images_and_broken_images_are_not_prepared() {
        assert_eq!(prepare(b"%PDF-1.4 hello"), None);
        assert_eq!(prepare(b""), None);
        assert_eq!(prepare(b"GIF89a broken"), None);
        // A PNG that is cut off is still sent as is when small (LINE gets the sender's bytes)…
        let png = encode(&noise(10, 10), ImageFormat::Png);
        assert!(prepare(&png[..png.len() / 2]).is_some());
    }

    #[test]
    fn transparency_is_flattened_onto_white_in_jpeg() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([0, 0, 0, 0])));
        let bytes = jpeg(&img, 90).unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert!(back.get_pixel(1, 1)[0] > 240);
    }
}
