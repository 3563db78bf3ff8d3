//! Text-level noise a phone should not show, removed from the finished body text.
//!
//! This module owns what is noise in *text*, whatever the part it came from (text/plain or
//! text made from HTML), so it runs once, where `Notice.text` is finished:
//!
//! - **Terminal colour codes.** Jenkins consoles and cron jobs (`ls --color`, `grep --color`)
//!   mail their terminal output as is. A real `ESC[1;31m` would show as a box and `[1;31m`;
//!   many senders have already dropped the ESC and left `[0m`, `[32m` behind. Real escape
//!   sequences always go; the ESC-less leftovers go only when the text has one that cannot be
//!   anything else (a reset such as `[0m`, or a `;` list such as `[01;34m`), so `[5m]` in an
//!   ordinary sentence stays. Text a terminal conceals (`[8m…`, Jenkins' `ha:////…` console
//!   notes) goes with its code.
//! - **`[cid:image001.png@01D…]` placeholders.** Outlook writes them into the text/plain
//!   alternative where the HTML had an inline image; the image itself is listed as an
//!   attachment, so the placeholder only says "a picture was here" in an unreadable way.
//! - **Invisible padding characters.** Newsletters pad their preheader with U+034F, U+200C,
//!   U+200B, U+00AD, U+FEFF, U+2060 and runs of U+2007 so that mail clients show no body text
//!   after it; on a phone they are empty-looking lines and stray spaces. A joiner (U+200C,
//!   U+200D) between two visible non-ASCII characters is kept: that is how emoji ZWJ
//!   sequences (👨‍👩‍👧) and Indic or Persian words are spelled.
//!
//! A line that held only noise is dropped rather than left empty, and a removal never leaves
//! two blank lines in a row or a double space behind. HTML structure noise (hidden preheader
//! elements, Outlook's double spacing, tracking pixels) is [`super::html`]'s, where the markup
//! still says what is hidden.

/// Removes terminal codes, cid placeholders and invisible padding from `text` (`\n` line
/// ends). Text without any of them is returned as it is, without a copy.
pub fn clean(text: String) -> String {
    if !has_candidate(text.as_bytes()) {
        return text;
    }
    let codes = ansi_leftovers_are_codes(&text);
    let mut out = String::with_capacity(text.len());
    // The last line written was blank (the start of the text counts as blank), and a line
    // has been dropped since: a blank line now would make a run the mail did not have.
    let mut prev_blank = true;
    let mut dropped = false;
    for line in text.split('\n') {
        let cleaned = if has_candidate(line.as_bytes()) { clean_line(line, codes) } else { None };
        let line = match &cleaned {
            Some(c) if c.trim().is_empty() && !line.trim().is_empty() => {
                dropped = true;
                continue;
            }
            Some(c) => c.as_str(),
            None => line,
        };
        let blank = line.trim().is_empty();
        if blank && prev_blank && dropped {
            continue;
        }
        if !blank {
            dropped = false;
        }
        out.push_str(line);
        out.push('\n');
        prev_blank = blank;
    }
    out.pop();
    out
}

/// Whether `bytes` may hold something [`clean`] removes: an ESC, a `[` that may start a
/// code or a placeholder (`[0m`, `[K`, `[cid:`), or an invisible character. `[FIRING:1]`
/// and `[Pipeline]` do not count, so most alert text takes the fast path.
fn has_candidate(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        0x1b => true,
        b'[' => matches!(bytes.get(i + 1), Some(b'0'..=b'9' | b';' | b'm' | b'K' | b'c' | b'C')),
        _ => invisible_at(bytes, i),
    })
}

/// Whether an invisible character starts at `i`: checked in full, so Japanese text with "…"
/// or "→", which share a first byte with them, is not taken for one.
fn invisible_at(bytes: &[u8], i: usize) -> bool {
    match bytes[i] {
        0xcd => bytes.get(i + 1) == Some(&0x8f),
        0xc2 => bytes.get(i + 1) == Some(&0xad),
        0xef => bytes.get(i + 1..i + 3) == Some(&[0xbb, 0xbf]),
        0xe2 => matches!(bytes.get(i + 1..i + 3), Some([0x80, 0x87 | 0x8b..=0x8d]) | Some([0x81, 0xa0])),
        _ => false,
    }
}

/// One line with its noise removed, or `None` when there was nothing to remove.
fn clean_line(line: &str, codes: bool) -> Option<String> {
    let a = strip_ansi(line, codes);
    let b = strip_cid(a.as_deref().unwrap_or(line));
    let current = b.as_deref().or(a.as_deref()).unwrap_or(line);
    let invisible = (0..current.len()).any(|i| invisible_at(current.as_bytes(), i));
    let c = if invisible { strip_invisible(current) } else { None };
    c.or(b).or(a)
}

// ---------------------------------------------------------------- terminal codes

/// One terminal code in a line: where it ends, and whether it turns concealed text on.
struct Code {
    end: usize,
    conceal: bool,
}

/// The escape sequence starting at `at` (an ESC): CSI (`ESC [ params final`), OSC
/// (`ESC ] … BEL` or `ESC ] … ESC \`, terminal hyperlinks and titles), a charset choice
/// (`ESC ( B`) or a two-byte sequence. A sequence cut short ends at the end of the line.
fn escape_sequence(b: &[u8], at: usize) -> Code {
    match b.get(at + 1) {
        Some(b'[') => csi(b, at + 2).unwrap_or(Code { end: at + 2, conceal: false }),
        Some(b']') => {
            let mut i = at + 2;
            while i < b.len() {
                match b[i] {
                    0x07 => return Code { end: i + 1, conceal: false },
                    0x1b if b.get(i + 1) == Some(&b'\\') => return Code { end: i + 2, conceal: false },
                    _ => i += 1,
                }
            }
            Code { end: b.len(), conceal: false }
        }
        Some(b'(' | b')') => Code { end: (at + 3).min(b.len()), conceal: false },
        Some(0x20..=0x7e) => Code { end: at + 2, conceal: false },
        _ => Code { end: at + 1, conceal: false },
    }
}

/// A CSI sequence's parameters, intermediates and final byte starting at `from` (just past
/// `ESC [`); `None` when no final byte follows.
fn csi(b: &[u8], from: usize) -> Option<Code> {
    let mut i = from;
    while matches!(b.get(i), Some(0x30..=0x3f)) {
        i += 1;
    }
    let params = &b[from..i];
    while matches!(b.get(i), Some(0x20..=0x2f)) {
        i += 1;
    }
    let last = *b.get(i)?;
    (0x40..=0x7e).contains(&last).then(|| Code { end: i + 1, conceal: last == b'm' && has_param(params, b"8") })
}

/// An ESC-less leftover at `at` (a `[`): `[` digits and `;` then `m` (colours), or `K`
/// (erase line, which `grep --color` sends after each colour).
fn leftover(b: &[u8], at: usize) -> Option<Code> {
    let mut i = at + 1;
    while i - at <= 16 && matches!(b.get(i), Some(b'0'..=b'9' | b';')) {
        i += 1;
    }
    let params = &b[at + 1..i];
    match b.get(i) {
        Some(b'm') => Some(Code { end: i + 1, conceal: has_param(params, b"8") }),
        Some(b'K') if params.iter().all(u8::is_ascii_digit) && params.len() <= 1 => Some(Code { end: i + 1, conceal: false }),
        _ => None,
    }
}

fn has_param(params: &[u8], want: &[u8]) -> bool {
    params.split(|&p| p == b';').any(|p| p == want)
}

/// Whether ESC-less `[…m` in this text are colour codes: the text has one that reads as
/// nothing but a code (a reset like `[0m`, `[m`, `[39m`, or a list like `[01;34m`).
fn ansi_leftovers_are_codes(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr_iter(b'[', b).any(|at| {
        let Some(code) = leftover(b, at) else { return false };
        let params = &b[at + 1..code.end - 1];
        b[code.end - 1] == b'm'
            && (params.contains(&b';')
                || params.iter().all(|&p| p == b'0')
                || matches!(params, b"22" | b"23" | b"24" | b"27" | b"39" | b"49"))
    })
}

/// Removes escape sequences, and ESC-less leftovers when `codes`; concealed text goes up to
/// the next code (or the line end).
fn strip_ansi(line: &str, codes: bool) -> Option<String> {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut concealed = false;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let code = match b[i] {
            0x1b => Some(escape_sequence(b, i)),
            b'[' if codes => leftover(b, i),
            _ => None,
        };
        let Some(code) = code else {
            i += 1;
            continue;
        };
        if !concealed {
            out.push_str(&line[copied..i]);
        }
        changed = true;
        concealed = code.conceal;
        // A malformed sequence may end inside a multi-byte character (its bytes taken for
        // parameters); resume at the next character, never in the middle of one.
        i = code.end.min(line.len());
        while !line.is_char_boundary(i) {
            i += 1;
        }
        copied = i;
    }
    if !changed {
        return None;
    }
    if !concealed {
        out.push_str(&line[copied..]);
    }
    // Codes before a line end (`…[0m`) would leave the spaces that came before them.
    out.truncate(out.trim_end().len());
    Some(out)
}

// ---------------------------------------------------------------- cid placeholders

/// Removes `[cid:…]` (any case, no whitespace inside, at most 256 bytes).
fn strip_cid(line: &str) -> Option<String> {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    for at in memchr::memchr_iter(b'[', b) {
        if at < copied || !b.get(at + 1..at + 5).is_some_and(|p| p.eq_ignore_ascii_case(b"cid:")) {
            continue;
        }
        let rest = &b[at + 5..];
        let Some(close) = rest.iter().take(256).position(|&c| c == b']' || c.is_ascii_whitespace()) else {
            continue;
        };
        if rest[close] != b']' {
            continue;
        }
        match copied {
            0 => out.push_str(&line[..at]),
            _ => push_after_removal(&mut out, &line[copied..at]),
        }
        copied = at + 5 + close + 1;
    }
    if copied == 0 {
        return None;
    }
    push_after_removal(&mut out, &line[copied..]);
    out.truncate(out.trim_end().len());
    Some(out)
}

/// Appends what follows a removed placeholder: where the placeholder stood between two
/// spaces, or at the line start, its spaces go with it, so no double space is left.
fn push_after_removal(out: &mut String, rest: &str) {
    if out.is_empty() || out.ends_with(' ') {
        out.push_str(rest.trim_start_matches(' '));
    } else {
        out.push_str(rest);
    }
}

// ---------------------------------------------------------------- invisible characters

/// Characters that are never visible and only pad or split text.
fn invisible(c: char) -> bool {
    matches!(c, '\u{034F}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{00AD}' | '\u{FEFF}' | '\u{2060}')
}

/// Space characters that padding runs are made of besides the invisible ones.
fn space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{A0}' | '\u{2007}')
}

/// A joiner between two visible non-ASCII characters joins them (emoji ZWJ sequences,
/// Indic and Persian spelling) and is kept.
fn joins(c: char, prev: Option<char>, next: Option<char>) -> bool {
    let visible = |x: Option<char>| x.is_some_and(|x| !x.is_ascii() && !invisible(x) && !space(x) && !x.is_whitespace());
    matches!(c, '\u{200C}' | '\u{200D}') && visible(prev) && visible(next)
}

/// Each run of spaces and invisible characters that has an invisible character in it (or two
/// U+2007 figure spaces, padding rather than a number's alignment) becomes one space between
/// visible text when it had a space in it, nothing at a line end or inside a word (a soft
/// hyphen or U+200B between letters). Runs without one are kept as written.
fn strip_invisible(line: &str) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    let padding_char = |i: usize| {
        let c = chars[i];
        invisible(c) && !joins(c, i.checked_sub(1).map(|p| chars[p]), chars.get(i + 1).copied())
    };
    let in_run = |i: usize| space(chars[i]) || padding_char(i);
    let mut out = String::with_capacity(line.len());
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        if !in_run(i) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && in_run(i) {
            i += 1;
        }
        let run = &chars[start..i];
        let padding = (start..i).any(padding_char) || run.iter().filter(|&&c| c == '\u{2007}').count() >= 2;
        if !padding {
            out.extend(run);
            continue;
        }
        changed = true;
        let spaced = run.iter().any(|&c| space(c));
        if spaced && !out.is_empty() && i < chars.len() {
            out.push(' ');
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &[u8]) -> String {
        crate::mail::parse(raw).text
    }

    #[test]
    fn clean_text_is_returned_as_is() {
        for text in ["", "plain line\n\nnext", "日本語の本文です…→※", "[FIRING:1] HighCPU [prod]", "depth [5m] and [1m]"] {
            assert_eq!(clean(text.to_string()), text);
        }
    }

    #[test]
    fn real_escape_sequences_are_removed() {
        let text = "\u{1b}[1mBuild\u{1b}[0m \u{1b}[32mSUCCESS\u{1b}[39m\n\u{1b}]8;;https://ci.example/\u{7}link\u{1b}]8;;\u{1b}\\ done\u{1b}(B";
        assert_eq!(clean(text.to_string()), "Build SUCCESS\nlink done");
    }

    #[test]
    fn jenkins_console_with_esc_stripped() {
        // What a Jenkins "console output" mail looks like once a relay dropped the ESC bytes;
        // the `[8mha:////…[0m` runs are console notes a terminal never shows.
        let raw = b"From: jenkins@ci.example.jp\r\nSubject: Build failed: api-server #1432\r\n\
                    Content-Type: text/plain; charset=utf-8\r\n\r\n\
                    Started by timer\r\n\
                    [8mha:////4HxQz9kPqR2mAAAAlh+LCAAAAAAAAP9b85aBtbiIQTGjNKU4P08vOT+vOD8nVc84PzexDiQiICwA[0m[Pipeline] Start of Pipeline\r\n\
                    [Pipeline] sh\r\n\
                    + make test\r\n\
                    [1;31mFAIL[0m tests/api_test.go:88 expected 200, got 503\r\n\
                    [32mok[0m   pkg/util 0.012s\r\n\
                    [0m\r\n\
                    Finished: FAILURE\r\n";
        let text = body(raw);
        assert_eq!(
            text,
            "Started by timer\n[Pipeline] Start of Pipeline\n[Pipeline] sh\n+ make test\n\
             FAIL tests/api_test.go:88 expected 200, got 503\nok   pkg/util 0.012s\nFinished: FAILURE"
        );
        for gone in ["[0m", "[1;31m", "[32m", "[8m", "ha:////", "\u{1b}"] {
            assert!(!text.contains(gone), "{gone:?} in {text:?}");
        }
    }

    #[test]
    fn ls_color_and_grep_color_from_cron() {
        let raw = b"Subject: Cron <backup@nas> ls -l --color /srv/backup\n\
                    Content-Type: text/plain; charset=us-ascii\n\n\
                    \x1b[0m\x1b[01;34m2024-05-01\x1b[0m\n\
                    \x1b[01;32mrun.sh\x1b[0m\n\
                    [01;31m[Kerror[m[K: disk almost full\n";
        assert_eq!(body(raw), "2024-05-01\nrun.sh\nerror: disk almost full");
    }

    #[test]
    fn bracket_numbers_without_a_reset_stay() {
        let text = "Crane height [5m] over limit; retry in [2m]";
        assert_eq!(clean(text.to_string()), text);
        // With a reset in the text they are codes.
        assert_eq!(clean("[1mBold[0m and [5m".to_string()), "Bold and");
    }

    #[test]
    fn cid_placeholders_are_removed() {
        let raw = "From: =?utf-8?B?5bGx55Sw?= <yamada@example.co.jp>\r\n\
                   Subject: =?utf-8?B?6KaL56mN5pu4?=\r\n\
                   Content-Type: text/plain; charset=utf-8\r\n\r\n\
                   お世話になっております。\r\n\
                   見積書を添付します。\r\n\
                   \r\n\
                   [cid:image001.png@01DA9F3C.5E2B7A10]\r\n\
                   \r\n\
                   株式会社サンプル [cid:image002.jpg@01DA9F3C.5E2B7A10] 営業部\r\n\
                   Logo:[CID:logo]\r\n";
        let text = body(raw.as_bytes());
        assert_eq!(text, "お世話になっております。\n見積書を添付します。\n\n株式会社サンプル 営業部\nLogo:");
        assert!(!text.to_ascii_lowercase().contains("cid:"));
        // Not a placeholder: whitespace inside, or no closing bracket.
        for kept in ["[cid: see below]", "[cid:unclosed"] {
            assert_eq!(clean(kept.to_string()), kept);
        }
    }

    #[test]
    fn preheader_padding_in_plain_text_is_removed() {
        let padding = "\u{034F}\u{200C} \u{034F}\u{200C} \u{034F}\u{200C}\u{A0}\u{00AD} \u{FEFF}\u{2007}\u{2007}";
        let text = format!("Spring sale starts today {padding}\n{padding}\n\nUp to 30% off\u{200B}\u{2060}");
        assert_eq!(clean(text), "Spring sale starts today\n\nUp to 30% off");
    }

    #[test]
    fn invisible_characters_inside_words_join_the_word() {
        assert_eq!(clean("Mail\u{AD}server and 東京\u{200B}都 \u{FEFF}start".to_string()), "Mailserver and 東京都 start");
    }

    #[test]
    fn emoji_zwj_sequences_are_kept() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let rainbow = "🏳\u{FE0F}\u{200D}🌈";
        let coder = "👩🏽\u{200D}💻";
        let text = format!("{family} {rainbow} {coder} ok\u{200D} \u{200D}x a\u{200D}b");
        assert_eq!(clean(text), format!("{family} {rainbow} {coder} ok x ab"));
    }

    #[test]
    fn a_single_figure_space_is_alignment_and_stays() {
        let text = "Total:\u{2007}\u{A0}9 items";
        assert_eq!(clean(text.to_string()), text);
    }

    #[test]
    fn removing_lines_never_makes_blank_runs() {
        let text = "Hello\n\n[cid:a@b]\n\nBye\n\u{200B}\n\u{034F}\n\nEnd";
        assert_eq!(clean(text.to_string()), "Hello\n\nBye\n\nEnd");
        assert_eq!(clean("[cid:a@b]\n\nFirst".to_string()), "First");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for text in [
            "\u{1b}", "\u{1b}[", "\u{1b}[12;", "\u{1b}]unterminated", "\u{1b}(", "[", "[0", "[0m", "[cid:", "[cid:]",
            "\u{200D}", "\u{200C}👨", "👨\u{200D}", "\u{AD}\u{AD}", "[;;;;;;;;;;;;;;;;;;;;;;m[0m", "\n\n\u{200B}\n\n",
            "a\u{1b}[8mhidden", "[8m[8m[8m",
        ] {
            let _ = clean(text.to_string());
        }
        let long = "[0m".repeat(10_000) + &"\u{034F} ".repeat(10_000) + &"[cid:x".repeat(1000);
        let _ = clean(long);
    }
}
