//! Replays the fuzz targets' checked-in inputs on stable, without a fuzzer: every file in
//! `fuzz/corpus/<target>/` (the seeds) and `fuzz/regressions/<target>/` (inputs that once broke
//! an invariant) goes through the same check as `cargo fuzz run <target>`, from
//! `mail2line::fuzzing`. A check panics on a violated invariant, which fails the test and names
//! the file.

use std::path::{Path, PathBuf};

use mail2line::fuzzing::{check_mime, check_smtp, WebhookTarget};

/// The files of `fuzz/<kind>/<target>/`, sorted; `required` makes an empty or missing
/// directory a failure (the seeds must not silently disappear).
fn inputs(kind: &str, target: &str, required: bool) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    assert!(!required || files.len() >= 10, "expected the seed corpus in {}, found {} files", dir.display(), files.len());
    files
}

/// Runs `check` on every seed and regression of `target`, naming the file that fails.
fn replay(target: &str, mut check: impl FnMut(&[u8])) -> usize {
    let files: Vec<PathBuf> = inputs("corpus", target, true).into_iter().chain(inputs("regressions", target, false)).collect();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(result.is_ok(), "{} violates an invariant of the {target} target (see the panic above)", file.display());
    }
    files.len()
}

#[test]
fn mime_seeds_and_regressions_hold() {
    replay("mime", check_mime);
}

#[test]
fn smtp_seeds_and_regressions_hold() {
    replay("smtp", check_smtp);
}

#[test]
fn webhook_seeds_and_regressions_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = WebhookTarget::new(dir.path());
    replay("webhook", |data| target.check(data));
}
