//! HTML → readable plain text, for mail that has no text/plain part.
//!
//! mail-parser's own `html_to_text` only breaks lines at `<br>` and `</p>`, so a typical
//! notification laid out with `<div>`, tables and lists arrives as one long line. This module
//! owns a small tolerant converter: it never fails, drops what a reader does not see
//! (`<script>`, `<style>`, `<title>`, comments), breaks lines at block elements, bullets list
//! items, decodes entities and collapses whitespace the way a browser does.

use std::borrow::Cow;

/// Elements whose content is never shown; everything up to their end tag is skipped.
/// `<title>` covers what a reader would otherwise see from `<head>`: the rest of a head
/// (`<meta>`, `<link>`, `<style>`, `<script>`) carries no text.
const HIDDEN: &[&str] = &["script", "style", "title", "template", "head"];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "div",
    "tr",
    "table",
    "dt",
    "dd",
    "dl",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "main",
    "aside",
    "center",
    "address",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "caption",
    "body",
];

/// Elements that stand apart from their neighbours by one blank line.
const PARAGRAPHS: &[&str] = &["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"];

/// Converts an HTML document or fragment into plain text with `\n` line ends.
pub fn html_to_text(html: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so tag names and end tags can be searched
    // case-insensitively in `lower` and sliced out of `html` at the same positions.
    let lower = html.to_ascii_lowercase();
    let mut conv = Converter {
        html,
        lower: &lower,
        out: Writer::default(),
        lists: Vec::new(),
    };
    conv.run();
    conv.out.finish()
}

/// Walks the input once, sending text to the writer and acting on tags.
struct Converter<'a> {
    html: &'a str,
    lower: &'a str,
    out: Writer,
    /// Open lists, innermost last: `None` for `<ul>`, `Some(next number)` for `<ol>`.
    lists: Vec<Option<usize>>,
}

impl Converter<'_> {
    fn run(&mut self) {
        let mut pos = 0;
        while pos < self.html.len() {
            if self.html.as_bytes()[pos] == b'<' {
                match self.markup(pos) {
                    Some(next) => pos = next,
                    None => {
                        // A '<' that starts no tag ("a < b") is text.
                        self.out.text("<");
                        pos += 1;
                    }
                }
                continue;
            }
            let end = self.html[pos..]
                .find('<')
                .map_or(self.html.len(), |i| pos + i);
            self.out.text(&decode_entities(&self.html[pos..end]));
            pos = end;
        }
    }

    /// Handles the markup starting at `pos` (a '<'); returns where text resumes, or `None`
    /// when the '<' does not start markup.
    fn markup(&mut self, pos: usize) -> Option<usize> {
        let rest = &self.lower[pos..];
        if rest.starts_with("<!--") {
            return Some(self.after(pos + 4, "-->"));
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            return Some(self.after(pos, ">"));
        }
        let closing = rest.starts_with("</");
        let name_start = pos + if closing { 2 } else { 1 };
        let name_len = self.lower[name_start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let first = self.lower.as_bytes().get(name_start)?;
        if !first.is_ascii_alphabetic() {
            return None;
        }
        let name = &self.lower[name_start..name_start + name_len];
        let end = tag_end(self.lower.as_bytes(), name_start + name_len);
        if !closing && HIDDEN.contains(&name) {
            return Some(self.skip_hidden(end, name));
        }
        self.tag(name, closing);
        Some(end)
    }

    /// Position just past the first `needle` at or after `from`, or the end of input.
    fn after(&self, from: usize, needle: &str) -> usize {
        self.lower
            .get(from..)
            .and_then(|s| s.find(needle))
            .map_or(self.lower.len(), |i| from + i + needle.len())
    }

    /// Skips the content of a hidden element and its end tag. An unclosed `<head>` ends
    /// where `<body>` starts, as browsers do, so a missing `</head>` hides no body text.
    fn skip_hidden(&self, from: usize, name: &str) -> usize {
        let close = format!("</{name}");
        let rest = self.lower.get(from..).unwrap_or("");
        let close_at = rest.find(&close);
        if name == "head" {
            if let Some(body) = rest.find("<body") {
                if close_at.is_none_or(|c| body < c) {
                    return from + body;
                }
            }
        }
        match close_at {
            Some(i) => tag_end(self.lower.as_bytes(), from + i + close.len()),
            None => self.lower.len(),
        }
    }

    /// Acts on a start or end tag that is shown.
    fn tag(&mut self, name: &str, closing: bool) {
        match name {
            "br" => self.out.line_break(),
            "li" if !closing => self.list_item(),
            "li" => self.out.block(),
            "ul" | "ol" => self.list(name, closing),
            "td" | "th" => self.out.space(),
            _ if PARAGRAPHS.contains(&name) => {
                self.out.paragraph();
                if name == "pre" {
                    self.out.set_pre(!closing);
                }
            }
            _ if BLOCKS.contains(&name) => self.out.block(),
            _ => {}
        }
    }

    fn list(&mut self, name: &str, closing: bool) {
        self.out.block();
        if closing {
            self.lists.pop();
        } else {
            self.lists.push((name == "ol").then_some(1));
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

/// Position just past the '>' that ends a tag whose name ends at `from`, or the end of
/// input. A '>' inside a quoted attribute value does not end the tag; a quote only opens
/// a value right after '=', so a stray apostrophe cannot swallow the rest of the mail.
fn tag_end(bytes: &[u8], from: usize) -> usize {
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

/// Decodes character references: `&#12354;`, `&#x3042;` and named ones (`&amp;`, `&nbsp;`
/// and the rest of the HTML5 table, which mail-parser already carries). Anything that is
/// not a complete, known reference stays as written ("AT&T", "&bogus;").
pub fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match reference_len(rest) {
            Some(len) => {
                push_reference(&mut out, &rest[..len]);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

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
        for c in text.chars() {
            match c {
                '\r' => {}
                '\n' if self.pre => self.newlines += 1,
                // U+00A0 (&nbsp;) collapses too: mail uses it for spacing and empty lines.
                ' ' | '\t' | '\u{A0}' if self.pre => self.put(' '),
                ' ' | '\t' | '\n' | '\u{C}' | '\u{A0}' => self.space = true,
                _ => self.put(c),
            }
        }
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
        assert_eq!(decode_entities("AT&T &bogus; & &#;"), "AT&T &bogus; & &#;");
        assert_eq!(
            decode_entities("&#0;&#xD800;&#99999999999;"),
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
