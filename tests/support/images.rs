//! Pictures for tests that need an image the gateway must really decode.

use std::io::Cursor;

/// A PNG of `width`×`height` pixels of noise from `seed`. Noise does not compress, so the file
/// is big (1200×1000 is about 3.6 MB), which is what makes the gateway decode it for a preview.
pub fn noise_png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("encode a PNG");
    out
}
