//! MIME → LINE messages, the CPU work the gateway does for each mail, measured with criterion.
//!
//! Each iteration takes the raw bytes of one realistic ~4 KiB mail (`benches/data/*.eml`, made by
//! `benches/data/make_mails.py`) to the JSON bodies of its LINE requests: exactly what
//! `delivery::Gateway::compose` runs when no media host is configured
//! ([`compose_without_media`]: `mail::parse` → template → attachment list → `body_messages` →
//! batches → route plan), then `serde_json` on `line::client::Body` as the spool and the HTTP
//! client do. No I/O. One mail is one element, so criterion's `thrpt` is mails/s on one core.
//!
//! ```text
//! cargo bench --bench mime                 # every mail type and the mix
//! cargo bench --bench mime -- mix          # criterion's filter: only the mix
//! ```
//!
//! Before measuring, every sample is checked to come out as the mail it is (a phrase of its
//! text in the request JSON), so a decoding regression cannot turn into a fast fallback path
//! that looks like a speed-up. Nothing here judges the speed.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mail2line::compose::Template;
use mail2line::delivery::compose_without_media;
use mail2line::envelope::Recipient;
use mail2line::line::client::Body;

/// (name, raw mail, a phrase its decoded text must show in the request JSON).
const MAILS: &[(&str, &[u8], &str)] = &[
    ("iso2022jp", include_bytes!("data/iso2022jp.eml"), "ストレージ使用率が閾値を超えました"),
    ("sjis", include_bytes!("data/sjis.eml"), "ご注文ありがとうございます"),
    ("html", include_bytes!("data/html.eml"), "here is the summary of last week"),
    ("alternative", include_bytes!("data/alternative.eml"), "web-13  disk 89%"),
    ("mixed", include_bytes!("data/mixed.eml"), "sales-2025-11-23.csv"),
    ("qp_emoji", include_bytes!("data/qp_emoji.eml"), "job-39 finished"),
];

const USER: &str = "U0123456789abcdef0123456789abcdef";

/// The request bodies one mail becomes, as sent to LINE.
fn mail_to_bodies(template: &Template, raw: &[u8], rcpts: &[Recipient]) -> Vec<String> {
    let composed = compose_without_media(template, raw, rcpts);
    composed
        .requests
        .iter()
        .map(|req| serde_json::to_string(&Body::of(req)).expect("a LINE request body serializes"))
        .collect()
}

/// Fails the bench run (before any timing) if a sample does not decode as intended.
fn check_samples(template: &Template, rcpts: &[Recipient]) {
    for (name, raw, phrase) in MAILS {
        let bodies = mail_to_bodies(template, raw, rcpts);
        let json = bodies.join("\n");
        let texts: Vec<String> = bodies
            .iter()
            .flat_map(|b| {
                let v: serde_json::Value = serde_json::from_str(b).expect("bodies are JSON");
                v["messages"].as_array().cloned().unwrap_or_default()
            })
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        assert!(
            texts.iter().any(|t| t.contains(phrase)),
            "{name}.eml does not come out as expected (no {phrase:?} in its text); requests:\n{json}"
        );
        eprintln!(
            "mime: {name:<12} {:>5} bytes → {} request(s), {} message(s), {} bytes of JSON",
            raw.len(),
            bodies.len(),
            bodies
                .iter()
                .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["messages"].as_array().map_or(0, |a| a.len()))
                .sum::<usize>(),
            bodies.iter().map(String::len).sum::<usize>()
        );
    }
}

fn mime_to_line(c: &mut Criterion) {
    let template = Template::default();
    let rcpts = vec![Recipient::from_line_id(USER).expect("a valid user id")];
    check_samples(&template, &rcpts);

    let mut group = c.benchmark_group("mime_to_line");
    group.throughput(Throughput::Elements(1));
    for (name, raw, _) in MAILS {
        group.bench_function(*name, |b| b.iter(|| mail_to_bodies(&template, black_box(raw), &rcpts)));
    }
    // The six types one after the other: one element per mail, so thrpt is the mix's mails/s.
    group.throughput(Throughput::Elements(MAILS.len() as u64));
    group.bench_function("mix", |b| {
        b.iter(|| {
            for (_, raw, _) in MAILS {
                black_box(mail_to_bodies(&template, black_box(raw), &rcpts));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, mime_to_line);
criterion_main!(benches);
