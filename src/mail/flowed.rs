//! RFC 3676 `format=flowed` decoding for text/plain bodies.
//!
//! mail-parser hands us the decoded text but leaves flowed line breaks alone, so a flowed
//! paragraph would reach LINE cut into the sender's 72-column pieces. This module owns
//! joining soft breaks back into paragraphs, undoing space-stuffing and honouring `DelSp`.

/// One physical line of a flowed body, taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    /// Number of leading `>` (quote depth); lines of different depth never join.
    depth: usize,
    /// The text after the quote marks and the stuffing space.
    content: &'a str,
    /// Ends in a space: the line continues on the next one.
    soft: bool,
}

/// Takes one physical line apart (RFC 3676 §4.2–4.5).
fn classify(raw: &str) -> Line<'_> {
    let depth = raw.bytes().take_while(|&b| b == b'>').count();
    let after_quotes = &raw[depth..];
    // A leading space was added by the sender ("space-stuffing") and is not content.
    let content = after_quotes.strip_prefix(' ').unwrap_or(after_quotes);
    // The signature separator "-- " ends in a space but is always a hard break (§4.3).
    let soft = content.ends_with(' ') && content != "-- ";
    Line {
        depth,
        content,
        soft,
    }
}

/// Writes one logical line, restoring its quote marks so quoted text still reads as quoted.
fn push_logical(out: &mut String, depth: usize, content: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    if depth > 0 {
        out.push_str(&">".repeat(depth));
        if !content.is_empty() {
            out.push(' ');
        }
    }
    out.push_str(content);
}

/// Decodes a `format=flowed` body whose line ends are already `\n`.
///
/// With `delsp` (the `DelSp=yes` parameter) the space that marks a soft break was added by
/// the sender and is removed; this is how languages without spaces between words (Japanese)
/// are flowed.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The logical line being assembled: its depth, text, and whether it still continues.
    let mut current: Option<(usize, String, bool)> = None;
    for raw in text.split('\n') {
        let line = classify(raw);
        let content = if line.soft && delsp {
            &line.content[..line.content.len() - 1]
        } else {
            line.content
        };
        match current.as_mut() {
            Some((depth, buf, soft)) if *soft && *depth == line.depth => {
                buf.push_str(content);
                *soft = line.soft;
            }
            _ => {
                if let Some((depth, buf, _)) = current.take() {
                    push_logical(&mut out, depth, &buf);
                }
                current = Some((line.depth, content.to_string(), line.soft));
            }
        }
    }
    if let Some((depth, buf, _)) = current {
        push_logical(&mut out, depth, &buf);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test per name: `unflow(text, delsp)` must give `expected`, for each case.
    macro_rules! unflows {
        ($($name:ident: [$(($text:expr, $delsp:expr) => $expected:expr),+ $(,)?],)+) => {$(
            #[test]
            fn $name() {
                $(assert_eq!(unflow($text, $delsp), $expected, "{:?} delsp={}", $text, $delsp);)+
            }
        )+};
    }

    unflows! {
        soft_breaks_join_and_keep_the_space: [("This is a long \nparagraph that was \nwrapped.\nNext line.", false) => "This is a long paragraph that was wrapped.\nNext line."],
        // Japanese has no spaces between words: DelSp=yes lets the sender wrap anywhere.
        delsp_removes_the_marking_space: [("こんにち \nは、世界 \nです。\n二行目", true) => "こんにちは、世界です。\n二行目"],
        without_delsp_the_space_stays: [("foo \nbar", false) => "foo bar", ("foo \nbar", true) => "foobar"],
        space_stuffing_is_removed: [(" From the start\n >not a quote", false) => "From the start\n>not a quote"],
        quoted_lines_join_only_at_equal_depth: [("> quoted and \n> continued\n>> deeper \nplain", false) => "> quoted and continued\n>> deeper \nplain"],
        signature_separator_is_a_hard_break: [("Bye\n-- \nAlice", false) => "Bye\n-- \nAlice"],
        empty_lines_and_empty_input_survive: [("", false) => "", ("a\n\nb", true) => "a\n\nb", (">\n> x", false) => ">\n> x"],
    }
}
