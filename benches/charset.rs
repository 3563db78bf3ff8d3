//! Japanese charset decoding, measured with criterion: encoding_rs (what mail-parser 1.0.1
//! calls, `Encoding::decode`) against `mail::charset::decode`, the fast path for well-formed
//! text, on the bodies of the ISO-2022-JP and Shift_JIS sample mails of `benches/mime.rs`
//! (`benches/data/*.eml`; 7bit/8bit, so the body is the charset's bytes as sent). criterion's
//! `thrpt` is input bytes/s on one core.
//!
//! ```text
//! cargo bench --bench charset
//! cargo bench --bench charset -- sjis      # criterion's filter: one sample
//! ```
//!
//! `CHARSET_BENCH_LOOP=<iso2022jp|sjis>:<encoding_rs|fast>:<rounds>` runs no criterion, just
//! that many decodes, for `valgrind --tool=callgrind`, whose instruction counts do not move
//! with the machine's load the way times do; the difference between two round counts, divided,
//! is the cost of one decode. The first decode of each charset also builds its tables (see
//! `src/mail/charset.rs`); the time that takes is printed before measuring.
//!
//! Before measuring, each sample is checked to take the fast path and to come out equal to
//! encoding_rs's text, so a regression cannot show up as a fast `None`. Wall-clock timing
//! (criterion's default): compare runs from one machine and one moment.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use encoding_rs::Encoding;
use mail2line::mail::charset;

/// (name, charset label as the mail declares it, raw mail).
const SAMPLES: &[(&str, &str, &[u8])] = &[
    (
        "iso2022jp",
        "ISO-2022-JP",
        include_bytes!("data/iso2022jp.eml"),
    ),
    ("sjis", "Shift_JIS", include_bytes!("data/sjis.eml")),
];

fn body(raw: &[u8]) -> &[u8] {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a sample mail has a body");
    &raw[at + 4..]
}

/// What mail-parser 1.0.1 does for a Shift_JIS or ISO-2022-JP body (`Charset::decode`).
fn with_encoding_rs(label: &str, bytes: &[u8]) -> String {
    let encoding = Encoding::for_label(label.as_bytes()).expect("a known label");
    encoding.decode(bytes).0.into_owned()
}

/// Builds the tables (first use) and checks that every sample takes the fast path.
fn check_samples() {
    for (name, label, raw) in SAMPLES {
        let started = Instant::now();
        let fast = charset::decode(label, body(raw));
        let first = started.elapsed();
        let fast = fast.unwrap_or_else(|| panic!("{name}: the fast path refused the sample"));
        assert_eq!(
            fast,
            with_encoding_rs(label, body(raw)),
            "{name}: the fast path differs from encoding_rs"
        );
        eprintln!(
            "charset: {name:<9} {:>5} bytes → {:>4} chars; first decode (builds the {label} tables): {first:?}",
            body(raw).len(),
            fast.chars().count(),
        );
    }
}

fn decode_samples(c: &mut Criterion) {
    check_samples();
    let mut group = c.benchmark_group("charset");
    for (name, label, raw) in SAMPLES {
        let bytes = body(raw);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{name}/encoding_rs"), |b| {
            b.iter(|| with_encoding_rs(label, black_box(bytes)))
        });
        group.bench_function(format!("{name}/fast"), |b| {
            b.iter(|| charset::decode(label, black_box(bytes)))
        });
    }
    group.finish();
}

fn run_loop(spec: &str) {
    let usage = "CHARSET_BENCH_LOOP=<iso2022jp|sjis>:<encoding_rs|fast>:<rounds>";
    let mut parts = spec.split(':');
    let (name, which, rounds) = (
        parts.next(),
        parts.next(),
        parts.next().and_then(|n| n.parse::<usize>().ok()),
    );
    let (Some(name), Some(which), Some(rounds)) = (name, which, rounds) else {
        panic!("{usage}")
    };
    let (_, label, raw) = SAMPLES
        .iter()
        .find(|s| s.0 == name)
        .unwrap_or_else(|| panic!("{usage}"));
    let bytes = body(raw);
    for _ in 0..rounds {
        match which {
            "encoding_rs" => drop(black_box(with_encoding_rs(label, black_box(bytes)))),
            "fast" => drop(black_box(charset::decode(label, black_box(bytes)))),
            _ => panic!("{usage}"),
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("CHARSET_BENCH_LOOP") {
        run_loop(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    decode_samples(&mut c);
    c.final_summary();
}
