//! What an image attachment becomes for LINE (pure; no I/O): the original LINE fetches
//! (`originalContentUrl`, JPEG or PNG, ≤ 10 MB) and the preview shown in the chat
//! (`previewImageUrl`, ≤ 1 MB).
//!
//! JPEG and PNG are sent as they came, byte for byte. GIF and WebP are decoded and re-encoded
//! (PNG when the picture has transparency or is a GIF, whose flat colours JPEG smears; JPEG
//! otherwise); an animated GIF becomes its first frame. A preview is made only when the
//! original is over 1 MB: downscaled to fit 1024×1024 and encoded as JPEG.
//!
//! Decoding is where an image costs memory: 4 bytes a pixel whatever the file's size, and a
//! 1 MB PNG of zeros can declare 16384×8000 (500 MiB decoded). So every image's dimensions are
//! read from its header first, before anything is allocated, and one over
//! `[media] max_image_pixels` is neither decoded nor handed to LINE (whose app would have to
//! decode it, passed through as it came): it stays a listed attachment. Decodes then run at most
//! [`DecodeBudget`]'s number at once (one per core), each with `max_alloc` set to the pixel cap
//! × 4 bytes so a header that lies about the data cannot allocate past it either.

use std::io::Cursor;
use std::sync::{Condvar, Mutex};

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

/// Why an attachment did not become an image message (it is listed by name and size instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Not JPEG, PNG, GIF or WebP.
    NotAnImage,
    /// The header could not be read, or the picture could not be decoded or re-encoded.
    Unreadable,
    /// The header declares more than `[media] max_image_pixels`: never decoded.
    TooManyPixels { width: u32, height: u32, max: u64 },
    /// Decoding would allocate more than the budget (a deep 16-bit picture, or a lying header).
    OverBudget { max_bytes: u64 },
    /// Still over LINE's 10 MB after conversion.
    TooLargeForLine,
}

impl Skipped {
    /// The reason worth a warning in the log (an attack, or a picture the admin may want to
    /// allow), or `None` for the ordinary cases.
    pub fn warning(&self) -> Option<String> {
        match self {
            Skipped::TooManyPixels { width, height, max } => Some(format!(
                "image of {width}×{height} pixels is over media.max_image_pixels ({max}); not decoded, listed as an attachment"
            )),
            Skipped::OverBudget { max_bytes } => Some(format!(
                "image would need more than {max_bytes} bytes to decode (4 × media.max_image_pixels); listed as an attachment"
            )),
            _ => None,
        }
    }
}

/// The limits on decoding, shared by every mail: the pixel cap and how many decodes at once.
#[derive(Debug)]
pub struct DecodeBudget {
    max_pixels: u64,
    /// Decodes that may still start; a counting semaphore for the blocking threads that
    /// prepare images (`std`, not tokio: the callers are blocking-pool threads).
    free: Mutex<usize>,
    freed: Condvar,
}

/// One decode's turn; given back on drop.
struct Turn<'a>(&'a DecodeBudget);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.freed.notify_one();
    }
}

impl DecodeBudget {
    /// Pictures up to `max_pixels`, `at_once` decodes at a time (0: one per core).
    pub fn new(max_pixels: u64, at_once: usize) -> DecodeBudget {
        let at_once = if at_once == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { at_once };
        DecodeBudget { max_pixels, free: Mutex::new(at_once), freed: Condvar::new() }
    }

    /// The most one decode may allocate: 4 bytes (RGBA) a pixel at the cap.
    pub fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(4)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn to decode.
    fn turn(&self) -> Turn<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Turn(self)
    }
}

/// The original and preview for an attachment's bytes, or why it cannot be given to LINE as an
/// image (not an image, too many pixels, undecodable, or still over 10 MB): such attachments
/// are listed by name and size instead. Blocks while [`DecodeBudget`] has no turn free.
pub fn prepare(data: &[u8], budget: &DecodeBudget) -> Result<Prepared, Skipped> {
    let format = sniff(data).ok_or(Skipped::NotAnImage)?;
    // The header first, also for images passed through undecoded: LINE's app would decode them.
    let (width, height) = dimensions(data, budget)?;
    if u64::from(width) * u64::from(height) > budget.max_pixels {
        return Err(Skipped::TooManyPixels { width, height, max: budget.max_pixels });
    }
    let passed_through = matches!(format, ImageFormat::Png | ImageFormat::Jpeg);
    if passed_through && data.len() > ORIGINAL_MAX_BYTES {
        return Err(Skipped::TooLargeForLine);
    }
    if passed_through && data.len() <= PREVIEW_MAX_BYTES {
        let kind = if format == ImageFormat::Png { Kind::Png } else { Kind::Jpeg };
        return Ok(Prepared { original: Encoded { bytes: data.to_vec(), kind }, preview: None });
    }
    // From here a picture is held decoded, until the end of this function.
    let _turn = budget.turn();
    let img = decode(data, budget)?;
    let original = match format {
        ImageFormat::Png => Encoded { bytes: data.to_vec(), kind: Kind::Png },
        ImageFormat::Jpeg => Encoded { bytes: data.to_vec(), kind: Kind::Jpeg },
        format => convert(&img, format).ok_or(Skipped::Unreadable)?,
    };
    if original.bytes.len() > ORIGINAL_MAX_BYTES {
        return Err(Skipped::TooLargeForLine);
    }
    if original.bytes.len() <= PREVIEW_MAX_BYTES {
        return Ok(Prepared { original, preview: None });
    }
    let preview = preview(&img).ok_or(Skipped::Unreadable)?;
    Ok(Prepared { original, preview: Some(preview) })
}

/// The format of an image from its first bytes; `None` for anything not JPEG, PNG, GIF or WebP.
fn sniff(data: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(data).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => Some(f),
        _ => None,
    }
}

fn reader<'a>(data: &'a [u8], budget: &DecodeBudget) -> Result<ImageReader<Cursor<&'a [u8]>>, Skipped> {
    let mut reader = ImageReader::new(Cursor::new(data)).with_guessed_format().map_err(|_| Skipped::Unreadable)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(budget.max_alloc());
    reader.limits(limits);
    Ok(reader)
}

/// The width and height the header declares, read without decoding any pixel.
fn dimensions(data: &[u8], budget: &DecodeBudget) -> Result<(u32, u32), Skipped> {
    reader(data, budget)?.into_dimensions().map_err(|_| Skipped::Unreadable)
}

/// Decodes within the budget's `max_alloc`, so even a header that lies cannot allocate more.
fn decode(data: &[u8], budget: &DecodeBudget) -> Result<DynamicImage, Skipped> {
    reader(data, budget)?.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Skipped::OverBudget { max_bytes: budget.max_alloc() },
        _ => Skipped::Unreadable,
    })
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
    // An RGB picture is encoded where it is: a copy would double the memory a big one holds.
    if let DynamicImage::ImageRgb8(rgb) = img {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(rgb).ok()?;
        return Some(bytes);
    }
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

    fn budget() -> DecodeBudget {
        DecodeBudget::new(40_000_000, 0)
    }

    fn prepare_(data: &[u8]) -> Result<Prepared, Skipped> {
        prepare(data, &budget())
    }


    /// `png` with its IHDR rewritten to declare `width`×`height` (CRC fixed): the header of a
    /// decompression bomb, whatever its pixel data.
    fn declaring(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
        assert_eq!(&png[12..16], b"IHDR");
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    /// `jpeg` with its SOF0 frame header rewritten to declare `width`×`height`.
    fn jpeg_declaring(mut jpeg: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        jpeg
    }

    #[test]
    fn the_crafted_header_is_read_as_declared() {
        let png = declaring(encode(&noise(4, 4), ImageFormat::Png), 16384, 8000);
        assert_eq!(dimensions(&png, &budget()), Ok((16384, 8000)));
        let jpeg = jpeg_declaring(encode(&noise(8, 8), ImageFormat::Jpeg), 60000, 60000);
        assert_eq!(dimensions(&jpeg, &budget()), Ok((60000, 60000)));
    }

    #[test]
    fn a_picture_over_the_pixel_cap_is_not_decoded_nor_passed_through() {
        // Small files, so they used to be passed to LINE untouched.
        let png = encode(&noise(4, 4), ImageFormat::Png);
        for (w, h) in [(16384, 8000), (60000, 60000), (6001, 6666)] {
            let bomb = declaring(png.clone(), w, h);
            assert!(bomb.len() < 1000);
            let skipped = prepare(&bomb, &budget()).unwrap_err();
            assert_eq!(skipped, Skipped::TooManyPixels { width: w, height: h, max: 40_000_000 });
            assert!(skipped.warning().unwrap().contains("media.max_image_pixels"), "{skipped:?}");
        }
        let jpeg = jpeg_declaring(encode(&noise(8, 8), ImageFormat::Jpeg), 60000, 60000);
        assert!(matches!(prepare(&jpeg, &budget()), Err(Skipped::TooManyPixels { width: 60000, height: 60000, .. })));
        // At the cap exactly: allowed.
        assert!(prepare(&declaring(png.clone(), 8000, 5000), &budget()).is_ok());
        // The cap is the admin's.
        let small = DecodeBudget::new(100, 1);
        assert!(matches!(prepare(&png, &small), Ok(_)));
        assert!(matches!(prepare(&encode(&noise(11, 10), ImageFormat::Png), &small), Err(Skipped::TooManyPixels { .. })));
    }

    #[test]
    fn a_lying_header_cannot_allocate_past_the_budget() {
        // A GIF is always decoded; 100×100 RGBA is 40,000 bytes, over a budget of 4 × 5,000.
        let gif = encode(&noise(100, 100), ImageFormat::Gif);
        let budget = DecodeBudget { max_pixels: 5_000, ..DecodeBudget::new(0, 1) };
        // The header check would stop it first; decode directly to see max_alloc at work.
        assert_eq!(decode(&gif, &budget).unwrap_err(), Skipped::OverBudget { max_bytes: 20_000 });
        assert!(Skipped::OverBudget { max_bytes: 20_000 }.warning().is_some());
        assert!(Skipped::Unreadable.warning().is_none() && Skipped::NotAnImage.warning().is_none());
    }

    #[test]
    fn decodes_take_turns() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let budget = DecodeBudget::new(40_000_000, 2);
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let _turn = budget.turn();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(*budget.lock(), 2, "every turn was given back");
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
            let p = prepare(&data, &budget()).unwrap();
            assert_eq!(p.original, Encoded { bytes: data, kind });
            assert_eq!(p.preview, None);
        }
    }

    #[test]
    fn large_original_gets_a_downscaled_jpeg_preview() {
        let data = encode(&noise(1200, 1000), ImageFormat::Png);
        assert!(data.len() > PREVIEW_MAX_BYTES, "test image too small: {}", data.len());
        let p = prepare(&data, &budget()).unwrap();
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
        let p = prepare_(&encode(&img, ImageFormat::Gif)).unwrap();
        assert_eq!(p.original.kind, Kind::Png);
        let back = image::load_from_memory_with_format(&p.original.bytes, ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));

        let p = prepare_(&encode(&img, ImageFormat::WebP)).unwrap();
        assert_eq!(p.original.kind, Kind::Jpeg);
        let back = image::load_from_memory_with_format(&p.original.bytes, ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));
    }

    #[test]
    fn transparent_webp_becomes_png() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 128])));
        let p = prepare_(&encode(&img, ImageFormat::WebP)).unwrap();
        assert_eq!(p.original.kind, Kind::Png);
        let back = image::load_from_memory(&p.original.bytes).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(3, 3)[3], 128);
    }

    #[test]
    fn non_images_and_broken_images_are_not_prepared() {
        assert_eq!(prepare(b"%PDF-1.4 hello", &budget()), Err(Skipped::NotAnImage));
        assert_eq!(prepare(b"", &budget()), Err(Skipped::NotAnImage));
        assert_eq!(prepare(b"GIF89a broken", &budget()), Err(Skipped::Unreadable));
        // A PNG that is cut off is still sent as is when small (LINE gets the sender's bytes)…
        let png = encode(&noise(10, 10), ImageFormat::Png);
        assert!(prepare(&png[..png.len() / 2], &budget()).is_ok());
        // …but not when even its header is cut: its size cannot be checked.
        assert_eq!(prepare(&png[..20], &budget()), Err(Skipped::Unreadable));
    }

    #[test]
    fn transparency_is_flattened_onto_white_in_jpeg() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([0, 0, 0, 0])));
        let bytes = jpeg(&img, 90).unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert!(back.get_pixel(1, 1)[0] > 240);
    }
}
