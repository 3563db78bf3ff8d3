//! Whether a mail's headers mark it urgent (issue #17).
//!
//! Urgent mail is never held for coalescing and may use the month's reserve of LINE messages,
//! so this is the one place that decides what a sender's priority headers mean. Mail clients
//! and scripts say "urgent" in several dialects, and all of them are honoured:
//!
//! - `X-Priority: 1` or `2` (the de-facto header, often with a comment: `1 (Highest)`,
//!   `2 (High)`); 3 is normal, 4 and 5 are low;
//! - `Importance: high` (RFC 2156; `low`, `normal`, `high`);
//! - `Priority: urgent` (RFC 2156; `normal`, `non-urgent`, `urgent`);
//! - `X-MSMail-Priority: High`, which Outlook writes next to `X-Priority`; a mail sent by a
//!   tool that copied only this one of Outlook's headers is urgent too.
//!
//! Anything else — other values, garbage, encoded words, non-UTF-8 bytes — is routine: a wrong
//! "urgent" costs messages from a monthly budget, a wrong "routine" only a short delay. Names
//! and words compare ASCII case-insensitively. Any one field saying urgent is enough, whatever
//! the others say (Outlook writes three that agree; a mail whose fields disagree is rare and
//! its sender meant at least one of them). The rule reads raw field values (folding included)
//! so that it needs no header form from the parser, and stays a pure function of bytes.

/// Whether any of these header fields, as `(name, raw value)` pairs, marks the mail urgent.
/// The raw value is what follows the colon, folds and final line break included.
pub fn is_urgent<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> bool {
    fields.into_iter().any(|(name, value)| field_is_urgent(name, value))
}

/// Whether one header field marks the mail urgent.
fn field_is_urgent(name: &str, value: &[u8]) -> bool {
    let word = first_word(value);
    if name.eq_ignore_ascii_case("X-Priority") {
        word == b"1" || word == b"2"
    } else if name.eq_ignore_ascii_case("Importance") || name.eq_ignore_ascii_case("X-MSMail-Priority") {
        word.eq_ignore_ascii_case(b"high")
    } else if name.eq_ignore_ascii_case("Priority") {
        word.eq_ignore_ascii_case(b"urgent")
    } else {
        false
    }
}

/// The value's first word: leading whitespace (folding CRLFs included) skipped, then up to the
/// next whitespace or the `(` of a comment, so `1 (Highest)` and `1(Highest)` both give `1`.
/// `non-urgent` stays one word and never matches `urgent`.
fn first_word(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let rest = &value[start..];
    let end = rest.iter().position(|b| blank(b) || *b == b'(').unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> bool {
        is_urgent([(name, value.as_bytes())])
    }

    #[test]
    fn x_priority_one_and_two_are_urgent() {
        for value in [" 1", " 2", "1", " 1 (Highest)\r\n", " 2 (High)\r\n", " 1(Highest)\r\n", "\t1\r\n", " 1 \r\n"] {
            assert!(one("X-Priority", value), "{value:?}");
        }
        for name in ["x-priority", "X-PRIORITY", "x-PrIoRiTy"] {
            assert!(one(name, " 1\r\n"), "{name}");
        }
    }

    #[test]
    fn other_x_priorities_are_routine() {
        for value in [
            " 3\r\n", " 3 (Normal)\r\n", " 4 (Low)\r\n", " 5 (Lowest)\r\n", " 0\r\n", " 12\r\n", " 21\r\n", " 1.0\r\n", " 01\r\n",
            " -1\r\n", " high\r\n", " urgent\r\n", "\r\n", "", " (1)\r\n", " \"1\"\r\n", " =?utf-8?q?1?=\r\n", " \u{ff11}\r\n",
        ] {
            assert!(!one("X-Priority", value), "{value:?}");
        }
    }

    #[test]
    fn importance_high_is_urgent_in_any_case() {
        for value in [" high\r\n", " High\r\n", " HIGH\r\n", " hIgH (ignored comment)\r\n", "high"] {
            assert!(one("Importance", value), "{value:?}");
            assert!(one("importance", value), "{value:?}");
        }
        for value in [" normal\r\n", " low\r\n", " Low\r\n", " higher\r\n", " very high\r\n", " \"high\"\r\n", " 1\r\n", "\r\n"] {
            assert!(!one("Importance", value), "{value:?}");
        }
    }

    #[test]
    fn priority_urgent_is_urgent_in_any_case() {
        for value in [" urgent\r\n", " Urgent\r\n", " URGENT\r\n", "urgent"] {
            assert!(one("Priority", value), "{value:?}");
            assert!(one("PRIORITY", value), "{value:?}");
        }
        for value in [" normal\r\n", " non-urgent\r\n", " Non-Urgent\r\n", " urgently\r\n", " 1\r\n", " high\r\n", "\r\n"] {
            assert!(!one("Priority", value), "{value:?}");
        }
    }

    #[test]
    fn outlooks_msmail_priority_high_is_urgent() {
        for value in [" High\r\n", " high\r\n", " HIGH\r\n"] {
            assert!(one("X-MSMail-Priority", value), "{value:?}");
            assert!(one("x-msmail-priority", value), "{value:?}");
        }
        for value in [" Normal\r\n", " Low\r\n", " 1\r\n", " urgent\r\n"] {
            assert!(!one("X-MSMail-Priority", value), "{value:?}");
        }
    }

    #[test]
    fn folded_values_are_read_past_the_fold() {
        assert!(one("X-Priority", "\r\n 1 (Highest)\r\n"));
        assert!(one("X-Priority", "\r\n\t2\r\n"));
        assert!(one("Importance", " \r\n  high\r\n"));
        assert!(one("Priority", "\r\n urgent\r\n"));
        assert!(one("X-Priority", " 1\r\n (Highest)\r\n"), "the comment folded onto the next line");
        assert!(!one("X-Priority", " 3\r\n 1\r\n"), "only the first word counts");
        // Bare LF folds, as a mail piped in with Unix line ends has them.
        assert!(one("Importance", "\n high\n"));
    }

    #[test]
    fn headers_that_merely_look_alike_are_not_read() {
        for name in ["X-Priority-Hint", "XPriority", "X-Importance", "Priority-Level", "Urgent", "X-Urgent", "MT-Priority", "Precedence"] {
            for value in [" 1\r\n", " high\r\n", " urgent\r\n"] {
                assert!(!one(name, value), "{name}:{value:?}");
            }
        }
    }

    #[test]
    fn any_urgent_field_is_enough() {
        let fields: [(&str, &[u8]); 3] = [("X-Priority", b" 3\r\n"), ("Importance", b" high\r\n"), ("Priority", b" non-urgent\r\n")];
        assert!(is_urgent(fields));
        let fields: [(&str, &[u8]); 2] = [("Subject", b" URGENT: disk full\r\n"), ("X-Priority", b" 3\r\n")];
        assert!(!is_urgent(fields), "a subject saying urgent is not a priority header");
        assert!(!is_urgent(std::iter::empty()));
    }

    #[test]
    fn odd_bytes_never_panic_and_are_routine() {
        let odd: [&[u8]; 8] = [b"", b" ", b"\r\n", b"\xff\xfe", b" \xff1\r\n", b"(", b" 1\xff", b"\0 1"];
        for value in odd {
            for name in ["X-Priority", "Importance", "Priority", "X-MSMail-Priority", "", "\u{3042}"] {
                assert!(!is_urgent([(name, value)]), "{name}:{value:?}");
            }
        }
    }
}
