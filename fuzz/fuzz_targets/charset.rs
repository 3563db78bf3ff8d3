//! `cargo fuzz run charset`: the Japanese charset fast path against encoding_rs; the invariants
//! are in `mail2line::fuzzing::check_charset`, shared with the corpus replay test
//! (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mail2line::fuzzing::check_charset(data));
