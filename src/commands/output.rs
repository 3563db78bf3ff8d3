//! What every command shares on its way out: the exit statuses, "load the configuration or exit
//! 78", writing the result to stdout, JSON for scripts, and, for people, tables and times.
//!
//! Tables and times are for an operator's terminal: every cell goes through [`printable`], so
//! text from senders and LINE (subjects, error texts, display names) cannot drive the terminal,
//! and widths are terminal columns ([`display_width`]), so Japanese names keep columns aligned.
//! Times are RFC 3339 UTC with milliseconds ([`rfc3339`]) in text and JSON alike.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, Purpose};

/// Configuration errors (sysexits' EX_CONFIG), for every command.
pub use crate::config::EX_CONFIG;
/// The job, the spool or the registry does not exist, the store fails, or `serve` stopped on an
/// error.
pub const EX_FAILURE: u8 = 1;
/// sysexits' statuses as `sendmail` uses them (defined where its client maps the gateway's
/// replies to them): unusable input, unreadable stdin.
pub use crate::submit::client::{EX_DATAERR, EX_IOERR};
/// LINE could not be reached, or is rate-limiting or in trouble (sysexits' EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;
/// The command line names what does not exist, e.g. an unknown `--channel` (sysexits' EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// Something answered that is not the LINE Messaging API (sysexits' EX_PROTOCOL).
pub const EX_PROTOCOL: u8 = 76;

/// Loads the configuration for a command that cannot go on without it (`--config`, then
/// `$MAIL2LINE_CONFIG`, then `./config.toml`, then `/etc/mail2line/config.toml`). On failure it
/// prints `{prog}: configuration errors:` and the problems to stderr and returns `Err(EX_CONFIG)`,
/// the status to exit with. Returns the path it used as well, for messages.
pub fn load_config(flag: Option<&Path>, purpose: Purpose, prog: &str) -> Result<(PathBuf, Config), u8> {
    let (path, loaded) = config::load_for_command(flag, purpose);
    match loaded {
        Ok(cfg) => Ok((path, cfg)),
        Err(e) => {
            eprintln!("{prog}: configuration errors:\n{e}");
            Err(EX_CONFIG)
        }
    }
}

/// Writes a command's result to stdout and returns the exit status: 0, also when the reader
/// closed the pipe early (`followers export | head`: a reader that has seen enough is not an
/// error; `print!` would panic there), else [`EX_FAILURE`] with the reason on stderr.
pub fn print(prog: &str, out: &str) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("{prog}: cannot write the output: {e}");
            EX_FAILURE
        }
    }
}

/// `value` as pretty JSON on its own line, for `--json`.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).unwrap_or_default())
}

/// Left-aligned columns two spaces apart, header first; no padding after the last column, so
/// lines carry no trailing spaces. Names are often Japanese: widths are terminal columns
/// ([`display_width`]), not chars, so wide text keeps columns aligned.
pub fn table<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    // Cells come from senders and LINE: each is made printable here, once for every table.
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.as_ref().iter().map(|c| printable(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(display_width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(&widths) {
            l.push_str(cell);
            l.push_str(&" ".repeat(w - display_width(cell) + 2));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// Terminal columns `s` takes: 2 for East Asian wide and fullwidth characters (CJK, kana, Hangul,
/// fullwidth forms, most emoji), 1 otherwise. An approximation of UAX #11 without a dependency;
/// it only has to keep a table readable.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// Text from outside (senders, subjects, LINE's error texts, display names) made safe for an
/// operator's terminal: control characters (C0 such as ESC, DEL, C1 such as CSI, and line
/// breaks) and bidi overrides become U+FFFD, so an ANSI sequence cannot clear the screen or
/// restyle it, and a line break cannot forge an output line. Every human-readable output of
/// `queue`, `quota` and `followers` goes through this one function.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => '\u{FFFD}',
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `s` with every run of whitespace (line breaks too) made one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` cut to `max` chars, the last one `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

// ---------------------------------------------------------------------------------------------
// time formatting (no chrono: two small functions are all this needs)

/// Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn printable_removes_what_could_drive_a_terminal() {
        let attack = "x\x1b[2J\x1b[H\rALL JOBS DELIVERED OK\n\u{9b}31m\u{202e}txt.exe\x07\x7f";
        let clean = printable(attack);
        assert!(!clean.chars().any(|c| c.is_control() || c == '\u{202e}'), "{clean:?}");
        assert_eq!(clean, "x\u{FFFD}[2J\u{FFFD}[H\u{FFFD}ALL JOBS DELIVERED OK\u{FFFD}\u{FFFD}31m\u{FFFD}txt.exe\u{FFFD}\u{FFFD}");
        assert_eq!(printable("山田 太郎 ok"), "山田 太郎 ok");
        let rows = vec![vec!["a\x1b[2Jb".to_owned()]];
        assert_eq!(table(&["X"], &rows), "X\na\u{FFFD}[2Jb\n", "tables are escaped cell by cell");
    }

    #[test]
    fn table_aligns_wide_text() {
        assert_eq!((display_width("abc"), display_width("山田 太郎"), display_width("ｱ"), display_width("ＡＢ")), (3, 9, 1, 4));
        let rows = vec![vec!["山田".to_owned(), "x".to_owned()], vec!["ab".to_owned(), "".to_owned()]];
        assert_eq!(table(&["NAME", "X"], &rows), "NAME  X\n山田  x\nab\n");
    }

    #[test]
    fn text_cut_to_one_short_line() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(one_line("a\n  b"), "a b");
    }
}
