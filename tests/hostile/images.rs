//! Images as memory bombs (issue 16, hole 4): with `[media] public_base_url` set, a PNG of
//! zeros a few MB long can declare 16384×8000 pixels (375 MiB decoded), and a small one
//! declaring 60000×60000 used to be handed to LINE as it came. A mail carrying ten of the first
//! and one of the second must cost no more than a stated budget, none of them may reach LINE as
//! an image (they are listed as attachments), and the mail's text, as well as a normal image
//! mail sent at the same time, must still reach LINE.

use std::io::Cursor;

use serde_json::Value;
use tokio::task::block_in_place;

use crate::common::peak_rss;
use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::standin::StandIn;

/// The stated budget for the attack; decoding one bomb alone would take 375 MiB.
const BUDGET: u64 = 256 * 1024 * 1024;


/// A little-endian bit writer for deflate.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, written most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block, a literal 0 and then copies of
/// 258 bytes at distance 1 (13 bits each), so ~1/160 of the data: what a real encoder does
/// with a picture of nothing.
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // last block
    bits.put(1, 2); // fixed Huffman codes
    let literal_zero = |bits: &mut Bits| bits.code(0x30, 8);
    let mut left = n;
    if left > 0 {
        literal_zero(&mut bits);
        left -= 1;
    }
    while left >= 258 {
        bits.code(0xC0 + (285 - 280), 8); // length 258
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal_zero(&mut bits);
    }
    bits.code(0, 7); // end of block
    let mut z = vec![0x78, 0x01];
    z.extend(bits.finish());
    // Adler-32 of zeros: a stays 1, b grows by 1 a byte.
    let adler = (((n % 65521) as u32) << 16) | 1;
    z.extend(adler.to_be_bytes());
    z
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend(kind);
    png.extend(data);
    let crc = crc32fast::hash(&png[start..]);
    png.extend(crc.to_be_bytes());
}

/// A valid 8-bit RGB PNG of `width`×`height` black pixels; `rows` limits the pixel data to the
/// first rows (a header that lies about how much data follows).
fn black_png(width: u32, height: u32, rows: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // Each row: filter byte 0 and 3 bytes a pixel, all zero.
    chunk(&mut png, b"IDAT", &zlib_zeros(u64::from(rows) * (1 + 3 * u64::from(width))));
    chunk(&mut png, b"IEND", &[]);
    png
}


fn mail_with(to: &str, subject: &str, parts: &[(String, &[u8])]) -> Vec<u8> {
    let parts: Vec<(&str, &str, &[u8])> = parts.iter().map(|(name, data)| (name.as_str(), "image/png", *data)).collect();
    let head = format!("From: cam@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n");
    crate::support::mime::multipart(&head, &format!("Text of {subject}."), &parts)
}

/// Every message pushed to `to`, in order.
fn messages_to(line: &StandIn, to: &str) -> Vec<Value> {
    line.requests_to("/v2/bot/message/push")
        .iter()
        .filter(|r| r.body["to"] == to)
        .flat_map(|r| r.body["messages"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn the_crafted_png_is_a_real_one() {
    // The generator is checked against a real decoder, small enough to decode.
    let png = black_png(300, 200, 200);
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png).expect("decodes");
    assert_eq!((img.width(), img.height()), (300, 200));
    assert!(img.to_rgb8().pixels().all(|p| p.0 == [0, 0, 0]));
    let bomb = black_png(16384, 8000, 8000);
    assert!(bomb.len() < 3_000_000, "{}", bomb.len());
    let dims = image::ImageReader::new(Cursor::new(&bomb)).with_guessed_format().unwrap().into_dimensions().unwrap();
    assert_eq!(dims, (16384, 8000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_bombs_are_listed_not_decoded_and_mail_still_flows() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    // Ten bombs of ~2.5 MB are a 33 MB mail once in base64.
    let gw = block_in_place(|| {
        GatewayProcess::start(Options {
            api_base_url: &url,
            smtp_extra: "max_message_bytes = 67108864\nmax_sessions_per_ip = 0\nmax_mails_per_minute_per_ip = 0",
            extra: "[delivery]\nmode = \"direct\"\n\n[media]\npublic_base_url = \"https://media.example.test\"\n",
            ..Default::default()
        })
    });
    let idle = peak_rss(gw.pid());

    let bomb = black_png(16384, 8000, 8000);
    let mut parts: Vec<(String, &[u8])> = (0..10).map(|i| (format!("bomb-{i}.png"), bomb.as_slice())).collect();
    // Passed through untouched before: under 1 MB, so never decoded, whatever it declared.
    let huge = black_png(60000, 60000, 2);
    assert!(huge.len() < 1024 * 1024);
    parts.push(("huge.png".to_owned(), huge.as_slice()));
    let (bomber, normal) = (user(0xb0b), user(0x900d));
    let bomb_mail = mail_with(&addr(&bomber), "bombs", &parts);
    let picture = crate::support::images::noise_png(1000, 800, 4242);
    assert!(picture.len() > 1024 * 1024, "the normal picture gets a preview: it is decoded");
    let normal_mail = mail_with(&addr(&normal), "holiday", &[("beach.png".to_owned(), picture.as_slice())]);

    // Both at once, each on its own connection.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| gw.send_raw("cam@example.com", &[&addr(&bomber)], &bomb_mail));
        let b = s.spawn(|| {
            let started = std::time::Instant::now();
            (gw.send_raw("cam@example.com", &[&addr(&normal)], &normal_mail), started.elapsed())
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let (b, normal_latency) = b;
    let logs = gw.logs();
    let a = a.unwrap_or_else(|e| panic!("the bomb mail: {e}\n{logs}"));
    let b = b.unwrap_or_else(|e| panic!("the normal mail: {e}\n{logs}"));
    assert_eq!(a.code().to_string(), "250", "{a:?}");
    assert_eq!(b.code().to_string(), "250", "{b:?}");
    line.assert_all_valid();

    // The bombs: no image message; the text arrived and lists every one as an attachment.
    let msgs = messages_to(&line, &bomber);
    let types: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text"], "{msgs:?}");
    let text = msgs[0]["text"].as_str().unwrap();
    assert!(text.contains("Text of bombs."), "{text}");
    for i in 0..10 {
        assert!(text.contains(&format!("bomb-{i}.png")), "bomb-{i}.png is listed: {text}");
    }
    assert!(text.contains("huge.png"), "{text}");
    assert_eq!(logs.matches("16384×8000 pixels is over media.max_image_pixels").count(), 10, "{logs}");
    assert!(logs.contains("60000×60000 pixels is over media.max_image_pixels"), "{logs}");

    // The normal mail: its picture was decoded for a preview and sent as an image.
    let msgs = messages_to(&line, &normal);
    let types: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text", "image"], "{msgs:?}");
    assert_ne!(msgs[1]["originalContentUrl"], msgs[1]["previewImageUrl"], "a preview was made");

    let peak = peak_rss(gw.pid());
    crate::common::report("image-bomb", "peak_rss_mib", format!("{:.1}", peak as f64 / (1024.0 * 1024.0)));
    crate::common::report("image-bomb", "mail_mb", format!("{:.1}", bomb_mail.len() as f64 / 1e6));
    // Direct mode: the 250 comes after LINE's answer, so this is the latency to LINE.
    crate::common::report("image-bomb", "normal_image_mail_latency_ms", normal_latency.as_millis());
    eprintln!(
        "image bomb: 10 × 16384×8000 + 1 × 60000×60000 PNGs ({:.1} MB each, {:.1} MB mail) with a normal image mail; gateway peak RSS (VmHWM) {:.1} MiB (budget {} MiB; {:.1} MiB before)",
        bomb.len() as f64 / 1e6,
        bomb_mail.len() as f64 / 1e6,
        peak as f64 / (1024.0 * 1024.0),
        BUDGET / (1024 * 1024),
        idle as f64 / (1024.0 * 1024.0)
    );
    assert!(peak < BUDGET, "peak RSS {peak} bytes is over the {BUDGET}-byte budget");
}
