//! Long quoted chains, signatures and blank runs: what a reply or a forwarded thread carries
//! that a phone screen should not scroll through. A pure text step on the notice's body,
//! applied by [`Template::render`](crate::compose::Template::render) before the body becomes
//! LINE messages (so the spool and direct paths, the benches and the fuzz target all get it).
//!
//! Rules, in this order:
//!
//! 1. `[message] signature = "drop"` (default `"keep"`): the first line that is exactly `-- `
//!    (RFC 3676's signature separator) or `--` (the same line after a mailer, editor or
//!    relay stripped its trailing space, which is common) ends the body: it and everything
//!    after it are removed. Quoted separators (`> -- `) and lines such as `---` or `-- x` are
//!    not separators. "Everything" includes a quoted chain under the signature (a top-posted
//!    reply), as a mail client that hides signatures would show it.
//! 2. `[message] quoted = "collapse"` (the default; `"keep"` leaves quotes alone): a run of
//!    more than 3 quoted lines becomes one line `(N quoted lines)`; a run of 3 or fewer stays.
//!    A quoted line starts with `>` in its first column (any depth: `>`, `>>`, `> >`); an
//!    indented ` > git fetch` (Jenkins, shells) is not a quote. Blank lines between quoted
//!    lines belong to the run (a chain often has them between its paragraphs) but are not
//!    counted; the attribution line ("On Mon, … wrote:") is not quoted and stays.
//! 3. Always: a run of blank (empty or whitespace-only) lines becomes one empty line. The
//!    template applies this to the whole rendered text, see [`squeeze_blank_lines`].

use serde::Deserialize;

/// `[message] quoted`: what happens to quoted (`>`) lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quoted {
    /// Shown as they are.
    Keep,
    /// A run of more than [`MAX_KEPT_QUOTED`] becomes `(N quoted lines)` (default).
    #[default]
    Collapse,
}

/// `[message] signature`: what happens to the text after a `-- ` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// Shown (default).
    #[default]
    Keep,
    /// Removed, the separator line with it.
    Drop,
}

/// The body rules of `[message]`, defaults as an empty configuration gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    pub quoted: Quoted,
    pub signature: Signature,
}

/// A run of this many quoted lines or fewer is kept as it is.
pub const MAX_KEPT_QUOTED: usize = 3;

/// Applies the signature and quote rules to a body (`\n` line ends); blank runs are left to
/// [`squeeze_blank_lines`], which the template runs on the whole text.
pub fn tidy_body(body: &str, rules: Rules) -> String {
    let mut lines: Vec<&str> = body.split('\n').collect();
    if rules.signature == Signature::Drop {
        if let Some(at) = lines.iter().position(|l| is_signature_separator(l)) {
            lines.truncate(at);
        }
    }
    if rules.quoted == Quoted::Keep {
        return lines.join("\n");
    }
    let mut out: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if !is_quoted(lines[i]) {
            out.push(lines[i].into());
            i += 1;
            continue;
        }
        // The run: quoted lines, and blank lines that have a quoted line after them.
        let (start, mut end, mut quoted) = (i, i, 0);
        let mut j = i;
        while j < lines.len() {
            if is_quoted(lines[j]) {
                quoted += 1;
                j += 1;
                end = j;
            } else if is_blank(lines[j]) {
                j += 1;
            } else {
                break;
            }
        }
        if quoted > MAX_KEPT_QUOTED {
            out.push(format!("({quoted} quoted lines)").into());
        } else {
            out.extend(lines[start..end].iter().map(|&l| l.into()));
        }
        i = end;
    }
    out.join("\n")
}

/// Makes every run of blank (empty or whitespace-only) lines one empty line.
pub fn squeeze_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_before = false;
    for (n, line) in text.split('\n').enumerate() {
        let blank = is_blank(line);
        if blank && blank_before {
            continue;
        }
        if n > 0 {
            out.push('\n');
        }
        if !blank {
            out.push_str(line);
        }
        blank_before = blank;
    }
    out
}

/// `-- ` (RFC 3676 §4.3), or `--` with its space lost on the way.
fn is_signature_separator(line: &str) -> bool {
    line == "-- " || line == "--"
}

fn is_quoted(line: &str) -> bool {
    line.starts_with('>')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLLAPSE: Rules = Rules { quoted: Quoted::Collapse, signature: Signature::Keep };
    const KEEP_ALL: Rules = Rules { quoted: Quoted::Keep, signature: Signature::Keep };
    const DROP_SIG: Rules = Rules { quoted: Quoted::Keep, signature: Signature::Drop };

    #[test]
    fn defaults_collapse_quotes_and_keep_signatures() {
        assert_eq!(Rules::default(), COLLAPSE);
    }

    #[test]
    fn more_than_three_quoted_lines_collapse() {
        let body = "Sounds good.\n\nOn Mon, 1 Dec 2025, Alice wrote:\n> one\n> two\n>> three\n> > four\n\nBob";
        assert_eq!(
            tidy_body(body, COLLAPSE),
            "Sounds good.\n\nOn Mon, 1 Dec 2025, Alice wrote:\n(4 quoted lines)\n\nBob"
        );
        assert_eq!(tidy_body(body, KEEP_ALL), body);
    }

    #[test]
    fn three_quoted_lines_or_fewer_stay() {
        let body = "> one\n> two\n> three\nreply";
        assert_eq!(tidy_body(body, COLLAPSE), body);
        assert_eq!(tidy_body("> just one", COLLAPSE), "> just one");
    }

    #[test]
    fn blank_lines_inside_a_chain_join_the_run_but_do_not_count() {
        let body = "top\n> a\n> b\n\n> c\n>\n> d\n\n\nafter";
        // a, b, c, ">" and d are quoted; the blank lines after d are not part of the run.
        assert_eq!(tidy_body(body, COLLAPSE), "top\n(5 quoted lines)\n\n\nafter");
        // Two runs of two, apart: each short, both kept.
        let body = "> a\n> b\ntext\n> c\n> d";
        assert_eq!(tidy_body(body, COLLAPSE), body);
    }

    #[test]
    fn indented_angle_brackets_are_not_quotes() {
        let body = " > git fetch\n > git checkout\n > git rev-parse\n > git log\n";
        assert_eq!(tidy_body(body, COLLAPSE), body);
    }

    #[test]
    fn signature_dropped_from_the_first_separator() {
        let body = "See you.\n-- \nAlice\nExample Corp\n-- \nmore";
        assert_eq!(tidy_body(body, DROP_SIG), "See you.");
        assert_eq!(tidy_body(body, KEEP_ALL), body);
        // The separator with its trailing space lost counts too.
        assert_eq!(tidy_body("hi\n--\nAlice", DROP_SIG), "hi");
        // Not separators: a quoted one, a rule, text after the dashes.
        let body = "a\n> -- \n> quoted sig\n---\n-- x\n--  \nend";
        assert_eq!(tidy_body(body, DROP_SIG), body);
    }

    #[test]
    fn a_top_posted_reply_loses_its_signature_and_the_chain_under_it() {
        let body = "OK, merged.\n\n-- \nBob\n\nOn Tue, Alice wrote:\n> 1\n> 2\n> 3\n> 4";
        let both = Rules { quoted: Quoted::Collapse, signature: Signature::Drop };
        assert_eq!(tidy_body(body, both), "OK, merged.\n");
        assert_eq!(
            tidy_body(body, COLLAPSE),
            "OK, merged.\n\n-- \nBob\n\nOn Tue, Alice wrote:\n(4 quoted lines)"
        );
    }

    #[test]
    fn blank_runs_become_one_empty_line() {
        assert_eq!(squeeze_blank_lines("a\n\n\n\nb\n \t\n\nc\n  \nd"), "a\n\nb\n\nc\n\nd");
        assert_eq!(squeeze_blank_lines("\n\n\na"), "\na");
        assert_eq!(squeeze_blank_lines("a\n\n\n"), "a\n");
        assert_eq!(squeeze_blank_lines(""), "");
        assert_eq!(squeeze_blank_lines("  keep  indented\n"), "  keep  indented\n");
    }

    #[test]
    fn config_words() {
        #[derive(Deserialize)]
        struct T {
            q: Quoted,
            s: Signature,
        }
        let t: T = toml::from_str("q = \"keep\"\ns = \"drop\"").unwrap();
        assert_eq!((t.q, t.s), (Quoted::Keep, Signature::Drop));
        assert!(toml::from_str::<T>("q = \"hide\"\ns = \"drop\"").is_err());
    }
}
