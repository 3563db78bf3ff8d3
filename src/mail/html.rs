//! HTML → readable plain text, for mail that has no text/plain part.
//!
//! mail-parser's own `html_to_text` only breaks lines at `<br>` and `</p>`, so a typical
//! notification laid out with `<div>`, tables and lists arrives as one long line. This module
//! owns a small tolerant converter: it never fails, drops what a reader does not see
//! (`<script>`, `<style>`, `<title>`, comments), breaks lines at block elements, bullets list
//! items, decodes entities and collapses whitespace the way a browser does.

/// What an element does to the text, by its lower-case name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Element {
    /// Content never shown; everything up to the end tag is skipped. `<title>` covers what
    /// a reader would otherwise see from `<head>`: the rest of a head (`<meta>`, `<link>`,
    /// `<style>`, `<script>`) carries no text.
    Hidden,
    /// Starts and ends a line.
    Block,
    /// Stands apart from its neighbours by one blank line.
    Paragraph,
    /// A paragraph whose whitespace is kept as written.
    Pre,
    LineBreak,
    ListItem,
    List { ordered: bool },
    /// A table cell: spaced from its neighbours.
    Cell,
    /// Everything else (`<a>`, `<b>`, `<span>`, unknown names): no effect on the text.
    Inline,
}

impl Element {
    /// One `match` on the name bytes: it runs for every tag of a mail.
    fn of(name: &[u8]) -> Element {
        match name {
            b"script" | b"style" | b"title" | b"template" | b"head" => Element::Hidden,
            b"div" | b"tr" | b"table" | b"dt" | b"dd" | b"dl" | b"hr" | b"section" | b"article"
            | b"header" | b"footer" | b"nav" | b"main" | b"aside" | b"center" | b"address"
            | b"form" | b"fieldset" | b"figure" | b"figcaption" | b"caption" | b"body" => {
                Element::Block
            }
            b"p" | b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6" | b"blockquote" => {
                Element::Paragraph
            }
            b"pre" => Element::Pre,
            b"br" => Element::LineBreak,
            b"li" => Element::ListItem,
            b"ul" => Element::List { ordered: false },
            b"ol" => Element::List { ordered: true },
            b"td" | b"th" => Element::Cell,
            _ => Element::Inline,
        }
    }
}

/// Converts an HTML document or fragment into plain text with `\n` line ends.
pub fn html_to_text(html: &str) -> String {
    let mut conv = Converter {
        html,
        out: Writer::default(),
        reference: String::new(),
        lists: Vec::new(),
    };
    conv.run();
    conv.out.finish()
}

/// Walks the input once, sending text to the writer and acting on tags.
struct Converter<'a> {
    html: &'a str,
    out: Writer,
    /// What the current character reference stands for (reused: a mail has many).
    reference: String,
    /// Open lists, innermost last: `None` for `<ul>`, `Some(next number)` for `<ol>`.
    lists: Vec<Option<usize>>,
}

/// The longest tag name this converter acts on ("blockquote", "figcaption"); longer names
/// are passed over like any unknown tag.
const MAX_NAME: usize = 10;

impl Converter<'_> {
    /// One pass over the text between tags: runs of visible characters are written at once,
    /// and the loop stops only at markup, character references and whitespace (what
    /// [`TEXT_STOP`] marks). Every stop is an ASCII byte or the C2 of U+00A0, so every
    /// position cut here is a character boundary.
    fn run(&mut self) {
        let html = self.html;
        let bytes = html.as_bytes();
        let mut pos = 0;
        let mut run_start = 0;
        while let Some(&b) = bytes.get(pos) {
            if !TEXT_STOP[usize::from(b)] || (b == 0xc2 && bytes.get(pos + 1) != Some(&0xa0)) {
                pos += 1;
                continue;
            }
            if run_start < pos {
                self.out.put_str(&html[run_start..pos]);
            }
            pos = match b {
                b'<' => self.markup(pos).unwrap_or_else(|| {
                    // A '<' that starts no tag ("a < b") is text.
                    self.out.put_str("<");
                    pos + 1
                }),
                b'&' => match reference_len(&html[pos..]) {
                    Some(len) => {
                        // What a reference stands for is text like any other: `&nbsp;` is
                        // whitespace, `&lt;` starts no tag.
                        self.reference.clear();
                        push_reference(&mut self.reference, &html[pos..pos + len]);
                        self.out.text(&self.reference);
                        pos + len
                    }
                    None => {
                        self.out.put_str("&");
                        pos + 1
                    }
                },
                0xc2 => {
                    self.out.whitespace('\u{A0}');
                    pos + 2
                }
                _ => {
                    self.out.whitespace(char::from(b));
                    pos + 1
                }
            };
            run_start = pos;
        }
        if run_start < bytes.len() {
            self.out.put_str(&html[run_start..]);
        }
    }

    /// Handles the markup starting at `pos` (a '<'); returns where text resumes, or `None`
    /// when the '<' does not start markup.
    fn markup(&mut self, pos: usize) -> Option<usize> {
        let bytes = self.html.as_bytes();
        let rest = &bytes[pos..];
        if rest.starts_with(b"<!--") {
            return Some(self.after(pos + 4, b"-->"));
        }
        if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            return Some(self.after(pos, b">"));
        }
        let closing = rest.starts_with(b"</");
        let name_start = pos + if closing { 2 } else { 1 };
        if !bytes.get(name_start)?.is_ascii_alphabetic() {
            return None;
        }
        // Tag names are ASCII-case-insensitive: compared in lower case, copied while they are
        // measured.
        let mut lower = [0u8; MAX_NAME];
        let mut name_len = 0;
        for &b in &bytes[name_start..] {
            if !b.is_ascii_alphanumeric() {
                break;
            }
            if let Some(slot) = lower.get_mut(name_len) {
                *slot = b.to_ascii_lowercase();
            }
            name_len += 1;
        }
        let end = tag_end(bytes, name_start + name_len);
        let Some(name) = lower.get(..name_len) else {
            return Some(end);
        };
        match Element::of(name) {
            Element::Hidden if !closing => Some(self.skip_hidden(end, name)),
            element => {
                self.tag(element, closing);
                Some(end)
            }
        }
    }

    /// Position just past the first `needle` at or after `from`, or the end of input.
    fn after(&self, from: usize, needle: &[u8]) -> usize {
        let bytes = self.html.as_bytes();
        bytes
            .get(from..)
            .and_then(|s| memchr::memmem::find(s, needle))
            .map_or(bytes.len(), |i| from + i + needle.len())
    }

    /// Skips the content of a hidden element and its end tag. An unclosed `<head>` ends
    /// where `<body>` starts, as browsers do, so a missing `</head>` hides no body text.
    fn skip_hidden(&self, from: usize, name: &[u8]) -> usize {
        let bytes = self.html.as_bytes();
        let rest = bytes.get(from..).unwrap_or_default();
        let close_at = find_tag(rest, name, true);
        if name == b"head" {
            if let Some(body) = find_tag(rest, b"body", false) {
                if close_at.is_none_or(|c| body < c) {
                    return from + body;
                }
            }
        }
        match close_at {
            Some(i) => tag_end(bytes, from + i + 2 + name.len()),
            None => bytes.len(),
        }
    }

    /// Acts on a start or end tag that is shown.
    fn tag(&mut self, element: Element, closing: bool) {
        match element {
            Element::LineBreak => self.out.line_break(),
            Element::ListItem if !closing => self.list_item(),
            Element::ListItem => self.out.block(),
            Element::List { ordered } => self.list(ordered, closing),
            Element::Cell => self.out.space(),
            Element::Paragraph => self.out.paragraph(),
            Element::Pre => {
                self.out.paragraph();
                self.out.set_pre(!closing);
            }
            Element::Block => self.out.block(),
            // A stray end tag of a hidden element (its start tag skipped everything up to
            // the first one) is ignored.
            Element::Hidden | Element::Inline => {}
        }
    }

    fn list(&mut self, ordered: bool, closing: bool) {
        self.out.block();
        if closing {
            self.lists.pop();
        } else {
            self.lists.push(ordered.then_some(1));
        }
    }

    /// Starts a list item on its own line: "• " for `<ul>`, "1. " for `<ol>`, indented
    /// by nesting so sub-lists stay readable.
    fn list_item(&mut self) {
        self.out.block();
        let indent = "  ".repeat(self.lists.len().saturating_sub(1));
        let marker = match self.lists.last_mut() {
            Some(Some(n)) => {
                *n += 1;
                format!("{}. ", *n - 1)
            }
            _ => "• ".to_string(),
        };
        self.out.marker(&format!("{indent}{marker}"));
    }
}

/// Where `<name` (or `</name` when `closing`) first starts in `bytes`, the name matched
/// without regard to ASCII case (`name` is lower case) and as a prefix, as a plain search
/// for it would.
fn find_tag(bytes: &[u8], name: &[u8], closing: bool) -> Option<usize> {
    let skip = if closing { 2 } else { 1 };
    memchr::memchr_iter(b'<', bytes).find(|&at| {
        (!closing || bytes.get(at + 1) == Some(&b'/'))
            && bytes
                .get(at + skip..at + skip + name.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// Position just past the '>' that ends a tag whose name ends at `from`, or the end of
/// input. A '>' inside a quoted attribute value does not end the tag; a quote only opens
/// a value right after '=', so a stray apostrophe cannot swallow the rest of the mail.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut after_eq = false;
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'>' => return i + 1,
            // A quoted value (long in HTML mail: `style`, `href`) is skipped in one search.
            // After it `after_eq` stays set, as it was when the value opened.
            b'"' | b'\'' if after_eq => match memchr::memchr(b, &bytes[i + 1..]) {
                Some(close) => {
                    i += close + 2;
                    continue;
                }
                None => return bytes.len(),
            },
            b'=' => after_eq = true,
            b if b.is_ascii_whitespace() => {}
            _ => after_eq = false,
        }
        i += 1;
    }
    bytes.len()
}

// Character references: `&#12354;`, `&#x3042;` and named ones (`&amp;`, `&nbsp;` and the
// rest of the HTML5 table, which mail-parser already carries). Anything that is not a
// complete, known reference stays as written ("AT&T", "&bogus;").

/// Length of `&name;` at the start of `s` if it has that shape (names are short).
fn reference_len(s: &str) -> Option<usize> {
    let body = s.as_bytes().get(1..)?;
    let len = body
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'#')
        .count();
    (len > 0 && body.get(len) == Some(&b';')).then_some(len + 2)
}

/// Appends the character a complete `&...;` reference stands for.
fn push_reference(out: &mut String, reference: &str) {
    let name = &reference[1..reference.len() - 1];
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => number.parse::<u32>(),
        };
        match code {
            // NUL, surrogates and numbers past U+10FFFF show as U+FFFD, as in browsers.
            Ok(c) if c != 0 => out.push(char::from_u32(c).unwrap_or('\u{FFFD}')),
            Ok(_) => out.push('\u{FFFD}'),
            Err(_) => out.push_str(reference),
        }
        return;
    }
    // mail-parser's table pushes the character, or the reference itself when unknown.
    mail_parser::decoders::html::add_html_token(out, reference.as_bytes(), false);
}

/// A table of the given bytes, for scans that run over every byte of a text.
const fn byte_table(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}

/// The bytes that may start a whitespace character for [`Writer::text`]: CR, LF, space, tab,
/// form feed, and 0xC2 (U+00A0 is C2 A0).
const WHITESPACE_LEAD: [bool; 256] = byte_table(b"\r\n \t\x0c\xc2");

/// Where [`Converter::run`] stops in text: markup, a character reference, or a byte of
/// [`WHITESPACE_LEAD`].
const TEXT_STOP: [bool; 256] = byte_table(b"<&\r\n \t\x0c\xc2");

/// Accumulates output, holding back spaces and line breaks until the next visible
/// character so that runs collapse and nothing dangles at a line end.
#[derive(Default)]
struct Writer {
    out: String,
    /// Line breaks owed before the next character (capped at 2: one blank line).
    newlines: usize,
    /// A space is owed before the next character.
    space: bool,
    /// Nothing but a list marker has been written on the current line.
    line_start: bool,
    /// Inside `<pre>`: whitespace is kept as written.
    pre: bool,
}

impl Writer {
    fn text(&mut self, text: &str) {
        // Runs of visible characters are written at once; only whitespace is looked at one
        // by one. Each whitespace character is ASCII or U+00A0 (bytes C2 A0), so every
        // position cut here is a character boundary.
        let bytes = text.as_bytes();
        let mut run_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !WHITESPACE_LEAD[usize::from(bytes[i])] {
                i += 1;
                continue;
            }
            let (c, len) = match bytes[i] {
                b @ (b'\r' | b'\n' | b' ' | b'\t' | 0x0c) => (char::from(b), 1),
                0xc2 if bytes.get(i + 1) == Some(&0xa0) => ('\u{A0}', 2),
                _ => {
                    i += 1;
                    continue;
                }
            };
            if run_start < i {
                self.put_str(&text[run_start..i]);
            }
            self.whitespace(c);
            i += len;
            run_start = i;
        }
        if run_start < bytes.len() {
            self.put_str(&text[run_start..]);
        }
    }

    fn whitespace(&mut self, c: char) {
        match c {
            '\r' => {}
            '\n' if self.pre => self.newlines += 1,
            // U+00A0 (&nbsp;) collapses too: mail uses it for spacing and empty lines.
            ' ' | '\t' | '\u{A0}' if self.pre => self.put(' '),
            _ => self.space = true,
        }
    }

    /// Writes visible text (no whitespace in it).
    fn put_str(&mut self, text: &str) {
        self.flush();
        self.out.push_str(text);
        self.line_start = false;
    }

    fn put(&mut self, c: char) {
        self.flush();
        self.out.push(c);
        self.line_start = false;
    }

    /// Pays the owed line breaks or space; none at the very start of the text.
    fn flush(&mut self) {
        if self.out.is_empty() {
            self.newlines = 0;
            self.space = false;
        }
        if self.newlines > 0 {
            let n = self.newlines.min(2);
            self.out.extend(std::iter::repeat_n('\n', n));
            self.line_start = true;
        } else if self.space && !self.line_start {
            self.out.push(' ');
        }
        self.newlines = 0;
        self.space = false;
    }

    fn line_break(&mut self) {
        self.newlines += 1;
    }

    fn block(&mut self) {
        self.newlines = self.newlines.max(1);
    }

    fn paragraph(&mut self) {
        self.newlines = self.newlines.max(2);
    }

    fn space(&mut self) {
        self.space = true;
    }

    fn set_pre(&mut self, on: bool) {
        self.pre = on;
    }

    fn marker(&mut self, marker: &str) {
        self.flush();
        self.out.push_str(marker);
        self.line_start = true;
    }

    fn finish(self) -> String {
        let mut out = self.out;
        out.truncate(out.trim_end().len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_style_and_head_are_dropped() {
        let html = "<html><head><title>Hidden title</title>\
                    <style>p { color: red; }</style></head>\
                    <body><script>alert('x < y');</script><p>Visible</p></body></html>";
        assert_eq!(html_to_text(html), "Visible");
    }

    #[test]
    fn tag_names_match_in_any_case() {
        let html = "<HTML><Head><TITLE>Hidden</TiTlE></HEAD><BODY><SCRIPT>x()</sCrIpT>\
                    <P>One</P><DIV>Two<BR>Three</DIV><Blockquote>Four</BLOCKQUOTE>\
                    <figcaptionx>same line</figcaptionx></BODY></HTML>";
        assert_eq!(html_to_text(html), "One\n\nTwo\nThree\n\nFour\n\nsame line");
        assert_eq!(html_to_text("<HEAD><META charset=utf-8><Body>Hello"), "Hello");
    }

    #[test]
    fn unclosed_head_ends_at_body() {
        let html = "<head><meta charset=utf-8><body>Hello";
        assert_eq!(html_to_text(html), "Hello");
    }

    #[test]
    fn br_breaks_lines_and_runs_of_br_give_one_blank_line() {
        assert_eq!(html_to_text("one<br>two<BR/>three"), "one\ntwo\nthree");
        assert_eq!(html_to_text("a<br><br><br><br>b"), "a\n\nb");
    }

    #[test]
    fn paragraphs_are_separated_by_one_blank_line() {
        let html = "<p>First\n  paragraph</p>\n\n<p>Second</p><h1>Title</h1>";
        assert_eq!(html_to_text(html), "First paragraph\n\nSecond\n\nTitle");
    }

    #[test]
    fn divs_and_table_rows_are_lines_and_cells_are_spaced() {
        let html = "<div>Order</div><div>Paid</div>\
                    <table><tr><td>Item</td><td>100円</td></tr>\
                    <tr><td>Tax</td><td>10円</td></tr></table>";
        assert_eq!(html_to_text(html), "Order\nPaid\nItem 100円\nTax 10円");
    }

    #[test]
    fn list_items_get_bullets_and_numbers() {
        let html = "<p>Steps:</p><ol><li>Open</li><li>Close</li></ol>\
                    <ul><li>a<ul><li>nested</li></ul></li><li> b </li></ul>";
        assert_eq!(
            html_to_text(html),
            "Steps:\n\n1. Open\n2. Close\n• a\n  • nested\n• b"
        );
    }

    #[test]
    fn entities_are_decoded() {
        let html = "Tom &amp; Jerry &lt;tag&gt; &quot;q&quot; &#12354;&#x3042;&#X3044; caf&eacute;";
        assert_eq!(html_to_text(html), "Tom & Jerry <tag> \"q\" ああい café");
    }

    #[test]
    fn nbsp_collapses_with_other_spaces() {
        assert_eq!(html_to_text("a&nbsp;&nbsp; b<p>&nbsp;</p>c"), "a b\n\nc");
    }

    #[test]
    fn malformed_references_stay_as_written() {
        assert_eq!(html_to_text("AT&T &bogus; & &#;"), "AT&T &bogus; & &#;");
        assert_eq!(
            html_to_text("&#0;&#xD800;&#99999999999;"),
            "\u{FFFD}\u{FFFD}&#99999999999;"
        );
    }

    #[test]
    fn whitespace_runs_collapse_and_lines_are_not_indented() {
        let html = "  <div>   lots\t\tof \n\n  space   </div>  ";
        assert_eq!(html_to_text(html), "lots of space");
    }

    #[test]
    fn comments_doctype_and_quoted_gt_are_not_text() {
        let html = "<!DOCTYPE html><!-- <p>old</p> --><a href=\"x>y\" title='a>b'>link</a>";
        assert_eq!(html_to_text(html), "link");
    }

    #[test]
    fn a_lone_less_than_is_text() {
        assert_eq!(html_to_text("1 < 2 and 3 <4"), "1 < 2 and 3 <4");
    }

    #[test]
    fn pre_keeps_its_layout() {
        let html = "<p>code:</p><pre>fn main() {\n    go();\n}</pre>";
        assert_eq!(html_to_text(html), "code:\n\nfn main() {\n    go();\n}");
    }

    /// `tag_end` jumps between quotes and '>'; this is the byte-by-byte state machine it
    /// replaced, which defines the answer.
    fn tag_end_reference(bytes: &[u8], from: usize) -> usize {
        let mut quote: Option<u8> = None;
        let mut after_eq = false;
        for (i, &b) in bytes.iter().enumerate().skip(from) {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'>' => return i + 1,
                    b'"' | b'\'' if after_eq => quote = Some(b),
                    b'=' => after_eq = true,
                    b if b.is_ascii_whitespace() => {}
                    _ => after_eq = false,
                },
            }
        }
        bytes.len()
    }

    #[test]
    fn tag_end_agrees_with_the_state_machine() {
        // Every string of up to 7 of these bytes, from every start.
        const ALPHABET: &[u8] = b"=\"' >a";
        let mut input = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                for from in 0..=input.len() {
                    assert_eq!(tag_end(&input, from), tag_end_reference(&input, from), "{:?} from {from}", String::from_utf8_lossy(&input));
                }
            }
        }
    }

    #[test]
    fn truncated_markup_does_not_panic() {
        for html in [
            "<",
            "<a",
            "</",
            "<!--",
            "<script>x",
            "&",
            "&#",
            "&#x",
            "<p",
            "<a href='",
        ] {
            let _ = html_to_text(html);
        }
        assert_eq!(html_to_text("text<script>never closed"), "text");
    }
}
