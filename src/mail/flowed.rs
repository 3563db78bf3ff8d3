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

    #[test]
    fn soft_breaks_join_and_keep_the_space() {
        let text = "This is a long \nparagraph that was \nwrapped.\nNext line.";
        assert_eq!(
            unflow(text, false),
            "This is a long paragraph that was wrapped.\nNext line."
        );
    }

    #[test]
    fn delsp_removes_the_marking_space() {
        // Japanese has no spaces between words: DelSp=yes lets the sender wrap anywhere.
        let text = "こんにち \nは、世界 \nです。\n二行目";
        assert_eq!(unflow(text, true), "こんにちは、世界です。\n二行目");
    }

    #[test]
    fn without_delsp_the_space_stays() {
        assert_eq!(unflow("foo \nbar", false), "foo bar");
        assert_eq!(unflow("foo \nbar", true), "foobar");
    }

    #[test]
    fn space_stuffing_is_removed() {
        let text = " From the start\n >not a quote";
        assert_eq!(unflow(text, false), "From the start\n>not a quote");
    }

    #[test]
    fn quoted_lines_join_only_at_equal_depth() {
        let text = "> quoted and \n> continued\n>> deeper \nplain";
        assert_eq!(
            unflow(text, false),
            "> quoted and continued\n>> deeper \nplain"
        );
    }

    #[test]
    fn signature_separator_is_a_hard_break() {
        let text = "Bye\n-- \nAlice";
        assert_eq!(unflow(text, false), "Bye\n-- \nAlice");
    }

    #[test]
    fn empty_lines_and_empty_input_survive() {
        assert_eq!(unflow("", false), "");
        assert_eq!(unflow("a\n\nb", true), "a\n\nb");
        assert_eq!(unflow(">\n> x", false), ">\n> x");
    }
}
