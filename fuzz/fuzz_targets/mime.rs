//! `cargo fuzz run mime`: the invariants are in `mail2line::fuzzing::check_mime`, shared with
//! the corpus replay test (tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // `mail::parse` catches a panic inside mail-parser and shows the mail's bytes as text
        // instead (by design; see src/mail/mod.rs and fuzz/regressions/mime/: mail-parser 0.11
        // had a `debug_assert!` that fuzz builds turn on). libFuzzer's hook would abort before
        // the catch: such panics are noted on stderr, any other panic still aborts. The crate's
        // files are under `mail-parser-<version>/` from the registry and `vendor/mail-parser/`
        // as vendored now.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = |file: &str| file.contains("/mail-parser-") || file.contains("/mail-parser/");
            if info.location().is_some_and(|l| in_mail_parser(l.file())) {
                eprintln!("mail-parser panicked (caught by mail::parse): {info}");
                return;
            }
            abort(info);
        }));
    },
    |data: &[u8]| mail2line::fuzzing::check_mime(data)
);
