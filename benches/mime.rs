//! MIME → LINE messages, the CPU work the gateway does for each mail, measured with criterion.
//!
//! Each iteration takes the raw bytes of one realistic ~4 KiB mail (`benches/data/*.eml`, made by
//! `benches/data/make_mails.py`) to the JSON bodies of its LINE requests: exactly what the
//! gateway runs when no media host is configured (`mail::parse`, then [`compose`]: template →
//! attachment list → `body_messages` → batches → route plan), then `serde_json` on
//! `line::request::Body` as the spool and the HTTP client do. No I/O. One mail is one element, so criterion's `thrpt` is mails/s on one core.
//!
//! ```text
//! cargo bench --bench mime                 # every mail type and the mix
//! cargo bench --bench mime -- mix          # criterion's filter: only the mix
//! ```
//!
//! The clock is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not the wall
//! clock: "mails/s per core" is CPU work, and on a machine shared with builds and other
//! benchmarks the wall clock also counts the time the thread waited for a core. Other load
//! still slows the code through shared caches (and in a VM perhaps through the host), so
//! compare runs from one machine and one moment. Set `MIME_BENCH_WALL=1` for criterion's usual
//! wall-clock timing.
//!
//! Before measuring, every sample is checked to come out as the mail it is (a phrase of its
//! text in the request JSON), so a decoding regression cannot turn into a fast fallback path
//! that looks like a speed-up. Nothing here judges the speed.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use mail2line::compose::{compose, Template};
use mail2line::envelope::Recipient;
use mail2line::line::request::Body;

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
    let composed = compose(template, mail2line::mail::parse(raw), rcpts, None);
    composed
        .requests
        .iter()
        .map(|req| Body::of(req).to_json())
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

/// CPU time of the calling thread; criterion reads it around each batch of iterations, on
/// the thread that runs them.
struct ThreadCpuTime {
    /// Only for its formatter: the values are durations like wall time's.
    wall: WallTime,
}

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed; run with MIME_BENCH_WALL=1");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn mime_to_line<M: Measurement>(c: &mut Criterion<M>) {
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

/// `MIME_BENCH_LOOP=<type|mix>:<n>`: no criterion, just `n` rounds of one mail type (or the
/// six), for `valgrind --tool=callgrind` (bench/mime-instructions.sh), whose instruction counts
/// do not move with the machine's load the way times do.
fn run_loop(spec: &str) {
    let (name, n) = spec.split_once(':').unwrap_or((spec, "1000"));
    let n: usize = n.parse().expect("MIME_BENCH_LOOP=<type|mix>:<rounds>");
    let template = Template::default();
    let rcpts = vec![Recipient::from_line_id(USER).expect("a valid user id")];
    let mails: Vec<&[u8]> =
        MAILS.iter().filter(|(m, _, _)| name == "mix" || *m == name).map(|(_, raw, _)| *raw).collect();
    assert!(!mails.is_empty(), "no mail type {name:?}; one of: mix, {}", MAILS.iter().map(|m| m.0).collect::<Vec<_>>().join(", "));
    for _ in 0..n {
        for raw in &mails {
            black_box(mail_to_bodies(&template, black_box(raw), &rcpts));
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("MIME_BENCH_LOOP") {
        run_loop(&spec);
        return;
    }
    if std::env::var_os("MIME_BENCH_WALL").is_some() {
        let mut c = Criterion::default().configure_from_args();
        mime_to_line(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().with_measurement(ThreadCpuTime { wall: WallTime }).configure_from_args();
        mime_to_line(&mut c);
        c.final_summary();
    }
}
