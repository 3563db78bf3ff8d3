//! HTML → readable plain text, for mail that has no text/plain part.
//!
//! mail-parser's own `html_to_text` only breaks lines at `<br>` and `</p>`, so a typical
//! notification laid out with `<div>`, tables and lists arrives as one long line. This module
//! owns a small tolerant converter: it never fails, drops what a reader does not see
//! (`<script>`, `<style>`, `<title>`, comments), breaks lines at block elements, bullets list
//! items, decodes entities and collapses whitespace the way a browser does.
//!
//! It also keeps what a reader would tap or would not see, since LINE shows text only:
//!
//! - **Links.** `<a href>` text is followed by its target, `text (URL)`, or by the URL on a
//!   line of its own when the link is a button (its own block, or a class, role or style that
//!   says button): "View alert / Silence / Go to dashboard" stay tappable. `mailto:` and
//!   `tel:` show the address and number; `javascript:`, relative and `cid:` targets only
//!   their text. A URL is never glued to other text (LINE links only a URL that stands
//!   apart) and is shown once in the mail: not again for a later link, nor on a line that
//!   already shows it as text.
//! - **Hidden elements** (`display:none`, `visibility:hidden`, `max-height:0` with
//!   `overflow:hidden`: newsletter preheaders) are skipped, and so are tracking pixels.
//! - **Outlook paragraphs** (`<p class=MsoNormal>`, margins of zero in Outlook) are lines,
//!   not paragraphs; Outlook's empty `<p class=MsoNormal>&nbsp;</p>` is the blank line.

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
    /// `<a>`: its target is shown after its text.
    Anchor,
    /// `<img>`: no text of its own, but its `alt` stands in for the text of a link.
    Image,
    /// Everything else (`<b>`, `<span>`, unknown names): no effect on the text.
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
            b"a" => Element::Anchor,
            b"img" => Element::Image,
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
        anchor: None,
        outlook_paragraph: None,
        scan_budget: 2 * html.len() + 65_536,
    };
    conv.run();
    conv.close_anchor();
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
    /// The open `<a>`; anchors do not nest (a new one closes the open one, as in browsers).
    anchor: Option<Anchor>,
    /// Inside an Outlook `<p class=MsoNormal>`: the output length when it opened, to tell
    /// an empty one (Outlook's blank line) from one with text.
    outlook_paragraph: Option<usize>,
    /// Bytes that searches for the end of a hidden element may still scan without finding it,
    /// so that many unclosed hidden elements cannot make the conversion quadratic. Found
    /// ends cost nothing here: the conversion resumes past them.
    scan_budget: usize,
}

/// An open `<a>`, as its start tag described it.
struct Anchor {
    /// What tapping it does, when that is something a reader can use.
    target: Option<Target>,
    /// Its class, role or style says button.
    button: bool,
    /// It starts a line: if its block ends with it, it is a button too.
    at_line_start: bool,
    /// The `alt` of an image inside it, the text of an image-only link.
    alt: Option<String>,
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
        let name_end = name_start + name_len;
        let end = tag_end(bytes, name_end);
        let Some(name) = lower.get(..name_len) else {
            return Some(end);
        };
        // Both ends are ASCII positions (after an alphanumeric, after '>') or the input's end.
        let attrs = &self.html[name_end..end];
        let element = Element::of(name);
        if !closing && element != Element::Hidden && hides(attrs) {
            if VOID.contains(&name) {
                return Some(end);
            }
            if let Some(after) = self.skip_element(end, name) {
                // A hidden block still keeps the words around it apart.
                if !matches!(element, Element::Inline | Element::Anchor | Element::Image) {
                    self.out.space();
                }
                return Some(after);
            }
        }
        match element {
            Element::Hidden if !closing => Some(self.skip_hidden(end, name)),
            element => {
                self.tag(element, closing, name, attrs);
                Some(end)
            }
        }
    }

    /// Skips a hidden element's content up to its matching end tag (same-name elements
    /// inside it counted), returning where text resumes; `None` when it has no end tag, so
    /// that a sloppy unclosed `<span style="display:none">` hides nothing rather than the
    /// rest of the mail.
    fn skip_element(&mut self, from: usize, name: &[u8]) -> Option<usize> {
        let bytes = self.html.as_bytes();
        let rest = bytes.get(from..)?;
        if rest.len() > self.scan_budget {
            return None;
        }
        let names_at = |at: usize| {
            bytes.get(at..at + name.len()).is_some_and(|n| n.eq_ignore_ascii_case(name))
                && !bytes.get(at + name.len()).is_some_and(u8::is_ascii_alphanumeric)
        };
        let mut depth = 1usize;
        for at in memchr::memchr_iter(b'<', rest).map(|i| from + i) {
            if bytes.get(at + 1) == Some(&b'/') {
                if names_at(at + 2) {
                    depth -= 1;
                    if depth == 0 {
                        return Some(tag_end(bytes, at + 2 + name.len()));
                    }
                }
            } else if names_at(at + 1) {
                let end = tag_end(bytes, at + 1 + name.len());
                if !bytes[..end].ends_with(b"/>") {
                    depth += 1;
                }
            }
        }
        self.scan_budget -= rest.len();
        None
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

    /// Acts on a start or end tag that is shown; `attrs` is what follows the name.
    fn tag(&mut self, element: Element, closing: bool, name: &[u8], attrs: &str) {
        match element {
            Element::Anchor if closing => self.close_anchor(),
            Element::Anchor => self.open_anchor(attrs),
            Element::Image if !closing => self.image(attrs),
            Element::Paragraph if name == b"p" => self.p(closing, attrs),
            Element::LineBreak => self.out.line_break(),
            Element::ListItem if !closing => self.list_item(),
            Element::ListItem => self.out.block(),
            Element::List { ordered } => self.list(ordered, closing),
            Element::Cell => self.out.cell(),
            Element::Paragraph => self.out.paragraph(),
            Element::Pre => {
                self.out.paragraph();
                self.out.set_pre(!closing);
            }
            Element::Block => self.out.block(),
            // A stray end tag of a hidden element (its start tag skipped everything up to
            // the first one) is ignored.
            Element::Hidden | Element::Inline | Element::Image => {}
        }
    }

    /// `<p>`, with Outlook's paragraphs as lines: Outlook gives `MsoNormal` (and its other
    /// `Mso…` paragraph classes) no margins and writes a blank line as an empty paragraph, so
    /// spacing them like `<p>` would double every line break of the mail.
    fn p(&mut self, closing: bool, attrs: &str) {
        if closing {
            match self.outlook_paragraph.take() {
                Some(len) if len == self.out.len() => self.out.paragraph(),
                Some(_) => self.out.block(),
                None => self.out.paragraph(),
            }
        } else if is_outlook_paragraph(attrs) {
            self.out.block();
            self.outlook_paragraph = Some(self.out.len());
        } else {
            self.outlook_paragraph = None;
            self.out.paragraph();
        }
    }

    fn open_anchor(&mut self, attrs: &str) {
        self.close_anchor();
        let href = attr(attrs, "href").map(decode_references);
        self.anchor = Some(Anchor {
            target: href.as_deref().and_then(Target::of),
            button: is_button(attrs),
            at_line_start: self.out.at_line_start(),
            alt: None,
        });
        self.out.start_mark();
    }

    /// An image inside a link lends it its `alt` text; a tracking pixel lends nothing.
    fn image(&mut self, attrs: &str) {
        let Some(anchor) = self.anchor.as_mut() else { return };
        if anchor.alt.is_some() || is_pixel(attrs) {
            return;
        }
        anchor.alt = attr(attrs, "alt").map(decode_references).filter(|a| !a.trim().is_empty());
    }

    /// Shows the target of the link that ends here (see the module doc for the forms).
    fn close_anchor(&mut self) {
        let Some(anchor) = self.anchor.take() else { return };
        let mut start = self.out.take_mark();
        let Some(target) = anchor.target else { return };
        if start.is_none() {
            // An image-only link: its alt is its text; without one there is nothing to tap.
            let Some(alt) = anchor.alt else { return };
            self.out.start_mark();
            self.out.text(&alt);
            start = self.out.take_mark();
        }
        let Some(start) = start else { return };
        let text = collapse_whitespace(&self.out.out[start..]);
        let shown = target.shown();
        if let Target::Url(url) = &target {
            if looks_like_url(&text) {
                // The text is a URL already (often the real destination of a tracking link).
                self.out.stand_apart(start);
                self.out.urls.insert(shown.to_owned());
                return;
            }
            if self.out.shown_in_line(shown) || self.out.urls.contains(shown) {
                return;
            }
            if text_is_url(&text, url) {
                self.out.replace_with_url(start, url);
                self.out.urls.insert(shown.to_owned());
                return;
            }
        } else if target.is_text(&text) {
            self.out.stand_apart(start);
            return;
        } else if self.out.shown_in_line(shown) || self.out.urls.contains(shown) {
            return;
        }
        // Shown once in the whole mail: a logo link at the top and "Sent by … (same URL)" at
        // the bottom need it only once.
        self.out.urls.insert(shown.to_owned());
        if anchor.button {
            self.out.button_link(shown);
        } else if anchor.at_line_start {
            self.out.pending_link(shown);
        } else {
            self.out.inline_link(shown);
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

// ---------------------------------------------------------------- attributes

/// Elements that have no content and no end tag: hiding one hides nothing else.
const VOID: &[&[u8]] = &[
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta", b"source", b"track", b"wbr",
];

/// The attributes of a start tag, from the text after its name: `(name, raw value)`, the value
/// empty for a bare name. Tolerant like a browser: unquoted values, a quote left open (the
/// value runs to the end), stray `=` and `/`.
struct Attributes<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // Every cut is at an ASCII byte or the end, so at a character boundary.
        let b = self.s.as_bytes();
        let skip_space = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            i
        };
        while b.get(self.i).is_some_and(|&c| c.is_ascii_whitespace() || c == b'/') {
            self.i += 1;
        }
        if self.i >= b.len() || b[self.i] == b'>' {
            return None;
        }
        let start = self.i;
        while b.get(self.i).is_some_and(|&c| !matches!(c, b'=' | b'>' | b'/') && !c.is_ascii_whitespace()) {
            self.i += 1;
        }
        if self.i == start {
            self.i += 1; // a stray '=': passed over
            return self.next();
        }
        let name = &self.s[start..self.i];
        let eq = skip_space(self.i);
        if b.get(eq) != Some(&b'=') {
            return Some((name, ""));
        }
        let v = skip_space(eq + 1);
        let value = match b.get(v) {
            Some(&q @ (b'"' | b'\'')) => {
                let close = memchr::memchr(q, &b[v + 1..]).map_or(b.len(), |c| v + 1 + c);
                self.i = (close + 1).min(b.len());
                &self.s[v + 1..close]
            }
            _ => {
                let mut e = v;
                while b.get(e).is_some_and(|&c| c != b'>' && !c.is_ascii_whitespace()) {
                    e += 1;
                }
                self.i = e;
                &self.s[v..e]
            }
        };
        Some((name, value))
    }
}

/// The raw value of the first attribute called `name` (ASCII case-insensitive).
fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    Attributes { s: attrs, i: 0 }.find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// An attribute value with its character references decoded (`&amp;` in URLs).
fn decode_references(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
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
    out
}

/// `(property, value)` pairs of a `style` attribute, lower case, `!important` dropped.
fn declarations(style: &str) -> impl Iterator<Item = (String, String)> + '_ {
    style.split(';').filter_map(|d| {
        let (p, v) = d.split_once(':')?;
        let v = v.trim().to_ascii_lowercase();
        let v = v.trim_end_matches("!important").trim().to_string();
        Some((p.trim().to_ascii_lowercase(), v))
    })
}

/// A CSS length or number that is zero (`0`, `0px`, `0.0em`).
fn is_zero(value: &str) -> bool {
    let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    number.parse::<f32>().is_ok_and(|n| n == 0.0)
}

/// The element is not shown: `hidden`, `display:none`, `visibility:hidden`, or a height of
/// zero that hides its overflow (the ways newsletters hide a preheader). `mso-hide:all` alone
/// does not count: it hides from Outlook only, and "bulletproof" buttons carry it on the link
/// every other client shows (Outlook gets a VML copy inside a comment).
fn hides(attrs: &str) -> bool {
    // Most tags say nothing about hiding: one cheap look before parsing attributes.
    let b = attrs.as_bytes();
    let mentions = |word: &[u8]| b.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word));
    if !mentions(b"none") && !mentions(b"hidden") && !mentions(b"mso-hide") {
        return false;
    }
    let mut style = None;
    for (name, value) in (Attributes { s: attrs, i: 0 }) {
        if name.eq_ignore_ascii_case("hidden") {
            return true;
        }
        if name.eq_ignore_ascii_case("style") && style.is_none() {
            style = Some(value);
        }
    }
    let (mut zero_height, mut overflow_hidden, mut mso_hide, mut invisible) = (false, false, false, false);
    for (p, v) in declarations(style.unwrap_or_default()) {
        match (p.as_str(), v.as_str()) {
            ("display", "none") | ("visibility", "hidden") => return true,
            ("max-height" | "height", v) if is_zero(v) => zero_height = true,
            ("overflow" | "overflow-y", "hidden") => overflow_hidden = true,
            ("mso-hide", "all") => mso_hide = true,
            ("opacity" | "font-size", v) if is_zero(v) => invisible = true,
            ("color", "transparent") => invisible = true,
            _ => {}
        }
    }
    (zero_height && overflow_hidden) || (mso_hide && invisible)
}

/// An image of one pixel or none, in its attributes or its style: a tracking pixel.
fn is_pixel(attrs: &str) -> bool {
    let tiny = |v: &str| v.trim().trim_end_matches("px").parse::<f32>().is_ok_and(|n| n <= 1.0);
    if attr(attrs, "width").is_some_and(tiny) || attr(attrs, "height").is_some_and(tiny) {
        return true;
    }
    declarations(attr(attrs, "style").unwrap_or_default())
        .any(|(p, v)| matches!(p.as_str(), "width" | "height" | "max-width" | "max-height") && tiny(&v))
}

/// A link that looks like a button: a class with "button" or "btn" in it, `role=button`, or
/// the style of one (a block, or padding on a background or border).
fn is_button(attrs: &str) -> bool {
    let class = attr(attrs, "class").unwrap_or_default().to_ascii_lowercase();
    if class.contains("button") || class.contains("btn") {
        return true;
    }
    if attr(attrs, "role").is_some_and(|r| r.eq_ignore_ascii_case("button")) {
        return true;
    }
    let (mut block, mut padding, mut filled) = (false, false, false);
    for (p, v) in declarations(attr(attrs, "style").unwrap_or_default()) {
        match p.as_str() {
            "display" if v == "block" || v == "inline-block" => block = true,
            "padding" | "padding-top" | "padding-left" if !is_zero(&v) => padding = true,
            "background" | "background-color" | "border" => filled = true,
            _ => {}
        }
    }
    block || (padding && filled)
}

/// `<p class=MsoNormal>` and Outlook's other paragraph classes (`MsoPlainText`,
/// `MsoListParagraph`, …), also as Outlook on the web prefixes them (`x_MsoNormal`).
fn is_outlook_paragraph(attrs: &str) -> bool {
    attr(attrs, "class").is_some_and(|class| {
        class.split_ascii_whitespace().any(|c| {
            let c = c.trim_start_matches("x_");
            c.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("mso"))
        })
    })
}

// ---------------------------------------------------------------- link targets

/// Where a link goes, in the form a reader can use.
enum Target {
    /// An absolute `http`, `https` or `ftp` URL.
    Url(String),
    /// The address of a `mailto:` link.
    Mail(String),
    /// The number of a `tel:` link.
    Phone(String),
}

impl Target {
    /// The target of an `href` (references decoded), or `None` for what a reader cannot use
    /// from a phone's text: `javascript:`, relative links, `#fragments`, `cid:`.
    fn of(href: &str) -> Option<Target> {
        // Browsers drop tabs and line breaks in URLs; a space would end the URL LINE links.
        let href: String = href.trim().chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
        let lower = href.get(..8).unwrap_or(&href).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("ftp://") {
            return Some(Target::Url(href.replace(' ', "%20")));
        }
        if let Some(rest) = href.strip_prefix("//") {
            return Some(Target::Url(format!("https://{}", rest.replace(' ', "%20"))));
        }
        let (scheme, rest) = href.split_once(':')?;
        let rest = percent_decode(rest.split('?').next().unwrap_or_default());
        let rest = rest.trim();
        if rest.is_empty() {
            return None;
        }
        if scheme.eq_ignore_ascii_case("mailto") {
            Some(Target::Mail(rest.to_string()))
        } else if scheme.eq_ignore_ascii_case("tel") {
            Some(Target::Phone(rest.split(';').next().unwrap_or(rest).to_string()))
        } else {
            None
        }
    }

    fn shown(&self) -> &str {
        match self {
            Target::Url(s) | Target::Mail(s) | Target::Phone(s) => s,
        }
    }

    /// The link text is this address or number already.
    fn is_text(&self, text: &str) -> bool {
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        match self {
            Target::Url(_) => false,
            Target::Mail(address) => {
                let text = text.strip_prefix("mailto:").unwrap_or(text);
                text.eq_ignore_ascii_case(address)
            }
            Target::Phone(number) => {
                let d = digits(number);
                !d.is_empty() && digits(text) == d && !text.chars().any(char::is_alphabetic)
            }
        }
    }
}

/// `%XX` escapes decoded (as UTF-8, invalid sequences shown as U+FFFD).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whitespace runs made one space, none at either end.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One word that a phone would link by itself: `http://…` or `https://…`.
fn looks_like_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")) && !text.contains(char::is_whitespace) && text.len() > 8
}

/// The link text is its URL written short: without the scheme, `www.` or the final `/`, or
/// cut off with an ellipsis ("github.com/acme/api/pull/12…").
fn text_is_url(text: &str, url: &str) -> bool {
    let bare = |s: &str| {
        let s = s.split_once("://").map_or(s, |(_, rest)| rest);
        let s = s.get(..4).filter(|w| w.eq_ignore_ascii_case("www.")).map_or(s, |_| &s[4..]);
        s.trim_end_matches('/').to_string()
    };
    let (t, u) = (bare(text), bare(url));
    if t.is_empty() {
        return false;
    }
    if t.eq_ignore_ascii_case(&u) {
        return true;
    }
    let cut = t.strip_suffix("...").or_else(|| t.strip_suffix('…'));
    cut.is_some_and(|c| c.len() >= 8 && u.get(..c.len()).is_some_and(|p| p.eq_ignore_ascii_case(c)))
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
    /// A table cell ended since the last character.
    cell_break: bool,
    /// The target of a link that started a line and ended: a button if its block ends here
    /// too (shown on the next line), `text (URL)` if more text follows on its line.
    pending: Option<String>,
    /// What the last thing written needs kept apart from the next character.
    guard: Guard,
    /// Where the text of the open link starts: `Waiting` until its first character.
    mark: Mark,
    /// Link targets already shown anywhere in the mail: each is shown once.
    urls: std::collections::HashSet<String>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Guard {
    #[default]
    None,
    /// A URL or address: a space before anything visible, so LINE links no more than it.
    Url,
    /// `(URL)`: a space before a letter or digit.
    Paren,
}

#[derive(Default, Clone, Copy)]
enum Mark {
    #[default]
    Off,
    Waiting,
    At(usize),
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
        self.flush(text.chars().next().unwrap_or(' '));
        self.out.push_str(text);
        self.line_start = false;
    }

    fn put(&mut self, c: char) {
        self.flush(c);
        self.out.push(c);
        self.line_start = false;
    }

    /// Pays the owed link, line breaks or space before `next`; none at the very start.
    fn flush(&mut self, next: char) {
        if let Some(url) = self.pending.take() {
            if self.newlines > 0 || self.cell_break {
                self.button_link(&url);
            } else {
                self.inline_link(&url);
            }
        }
        if self.out.is_empty() {
            self.newlines = 0;
            self.space = false;
        }
        let guarded = match self.guard {
            Guard::None => false,
            Guard::Url => !next.is_whitespace(),
            Guard::Paren => next.is_alphanumeric(),
        };
        if self.newlines > 0 {
            let n = self.newlines.min(2);
            self.out.extend(std::iter::repeat_n('\n', n));
            self.line_start = true;
        } else if (self.space && !self.line_start) || guarded {
            self.out.push(' ');
        }
        self.newlines = 0;
        self.space = false;
        self.cell_break = false;
        self.guard = Guard::None;
        if let Mark::Waiting = self.mark {
            self.mark = Mark::At(self.out.len());
        }
    }

    fn len(&self) -> usize {
        self.out.len()
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

    fn cell(&mut self) {
        self.space = true;
        self.cell_break = true;
    }

    fn set_pre(&mut self, on: bool) {
        self.pre = on;
    }

    fn marker(&mut self, marker: &str) {
        self.flush(' ');
        self.out.push_str(marker);
        self.line_start = true;
    }

    /// Nothing is on the current line yet (a list marker counts as something).
    fn at_line_start(&self) -> bool {
        self.newlines > 0 || (self.pending.is_some() && self.cell_break) || (self.out.is_empty() && self.pending.is_none())
    }

    /// Starts recording where the next visible character goes (the text of a link).
    fn start_mark(&mut self) {
        self.mark = Mark::Waiting;
    }

    /// Where the text recorded since [`Writer::start_mark`] starts, `None` if there was none.
    fn take_mark(&mut self) -> Option<usize> {
        match std::mem::take(&mut self.mark) {
            Mark::At(at) => Some(at),
            _ => None,
        }
    }

    /// Whether `target` is on the current line already (as text, a link's text, or a URL
    /// shown for an earlier link), as a whole word. Only the last 4 KiB are searched, so a
    /// huge one-line mail full of links stays linear.
    fn shown_in_line(&self, target: &str) -> bool {
        if self.pending.as_deref() == Some(target) {
            return true;
        }
        let mut from = self.out.len().saturating_sub(4096);
        while !self.out.is_char_boundary(from) {
            from += 1;
        }
        let window = &self.out.as_bytes()[from..];
        let line = memchr::memrchr(b'\n', window).map_or(window, |nl| &window[nl + 1..]);
        let t = target.as_bytes();
        memchr::memmem::find_iter(line, t).any(|at| {
            let before = at.checked_sub(1).map(|i| line[i]);
            let after = line.get(at + t.len()).copied();
            let after2 = line.get(at + t.len() + 1).copied();
            let starts = before.is_none_or(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/')));
            let ends = match after {
                None => true,
                Some(b) if b.is_ascii_whitespace() || matches!(b, b')' | b'>' | b'"' | b'\'') || !b.is_ascii() => true,
                Some(b'.' | b',' | b';' | b':' | b'!' | b'?') => after2.is_none_or(|b| b.is_ascii_whitespace()),
                _ => false,
            };
            starts && ends
        })
    }

    /// A link whose block may end with it: decided by what comes next (see `pending`).
    fn pending_link(&mut self, target: &str) {
        self.pending = Some(target.to_string());
    }

    /// `text (URL)`, the URL in parentheses straight after the link text.
    fn inline_link(&mut self, target: &str) {
        self.out.push_str(" (");
        self.out.push_str(target);
        self.out.push(')');
        self.line_start = false;
        self.guard = Guard::Paren;
    }

    /// The link text, then the URL on a line of its own; what follows starts a new line.
    fn button_link(&mut self, target: &str) {
        self.out.push('\n');
        self.out.push_str(target);
        self.line_start = false;
        self.space = false;
        self.guard = Guard::None;
        self.block();
    }

    /// Keeps the link text that starts at `start` (a URL, address or number) apart from
    /// the text before it and the text after it.
    fn stand_apart(&mut self, start: usize) {
        if self.out[..start].chars().next_back().is_some_and(|c| !c.is_whitespace()) {
            self.out.insert(start, ' ');
        }
        self.guard = Guard::Url;
    }

    /// Replaces the link text from `start` (the URL written short) with the URL itself.
    fn replace_with_url(&mut self, start: usize, url: &str) {
        self.out.truncate(start);
        self.out.push_str(url);
        self.line_start = false;
        self.stand_apart(start);
    }

    fn finish(mut self) -> String {
        if let Some(url) = self.pending.take() {
            self.button_link(&url);
        }
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

    // ------------------------------------------------------------ links, hidden, Outlook

    fn body(raw: &[u8]) -> String {
        crate::mail::parse(raw).text
    }

    fn assert_absent(text: &str, absent: &[&str]) {
        for a in absent {
            assert!(!text.contains(a), "{a:?} should not be in {text:?}");
        }
    }

    #[test]
    fn grafana_alert_buttons_keep_their_urls() {
        let raw = b"From: Grafana <alerts@grafana.example.net>\r\n\
            Subject: [FIRING:1] DiskFull prod-db-02\r\n\
            Content-Type: text/html; charset=utf-8\r\n\r\n\
            <html><body>\r\n\
            <table class=\"main\"><tr><td>\r\n\
            <h2><a href=\"https://grafana.example.net/alerting/grafana/aBc123/view\" style=\"color:#fff\">[FIRING:1] DiskFull prod-db-02</a></h2>\r\n\
            <p>Value: B=97.2</p>\r\n\
            <p>Labels:</p>\r\n\
            <ul><li>alertname = DiskFull</li><li>instance = prod-db-02:9100</li></ul>\r\n\
            <table><tr>\r\n\
            <td><a href=\"https://grafana.example.net/alerting/grafana/aBc123/view?orgId=1\" class=\"btn btn-primary\">View alert</a></td>\r\n\
            <td><a href=\"https://grafana.example.net/alerting/silence/new?alertmanager=grafana&amp;matcher=alertname%3DDiskFull\" class=\"btn\">Silence</a></td>\r\n\
            <td><a href=\"https://grafana.example.net/d/node01?orgId=1\" style=\"display:inline-block;padding:8px 16px;background:#3274d9\">Go to dashboard</a></td>\r\n\
            </tr></table>\r\n\
            </td></tr></table>\r\n\
            <img src=\"https://grafana.example.net/pixel.gif\" width=\"1\" height=\"1\">\r\n\
            </body></html>\r\n";
        let text = body(raw);
        assert_eq!(
            text,
            "[FIRING:1] DiskFull prod-db-02\n\
             https://grafana.example.net/alerting/grafana/aBc123/view\n\n\
             Value: B=97.2\n\n\
             Labels:\n\n\
             • alertname = DiskFull\n\
             • instance = prod-db-02:9100\n\
             View alert\n\
             https://grafana.example.net/alerting/grafana/aBc123/view?orgId=1\n\
             Silence\n\
             https://grafana.example.net/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DDiskFull\n\
             Go to dashboard\n\
             https://grafana.example.net/d/node01?orgId=1"
        );
        assert_absent(&text, &["&amp;", "pixel.gif", "View alert (", "Silence ("]);
    }

    #[test]
    fn alertmanager_links_inline_in_a_row_and_a_button_paragraph() {
        let html = "<table>\
            <tr><td>Summary</td><td>Disk almost full</td></tr>\
            <tr><td>Source</td><td><a href=\"http://prometheus.example.net:9090/graph?g0.expr=node_filesystem_avail_bytes%3C1e9\">node_filesystem_avail_bytes</a></td></tr>\
            </table>\
            <p><a href=\"http://alertmanager.example.net:9093/#/alerts?receiver=line\">View in Alertmanager</a></p>";
        assert_eq!(
            html_to_text(html),
            "Summary Disk almost full\n\
             Source node_filesystem_avail_bytes (http://prometheus.example.net:9090/graph?g0.expr=node_filesystem_avail_bytes%3C1e9)\n\n\
             View in Alertmanager\n\
             http://alertmanager.example.net:9093/#/alerts?receiver=line"
        );
    }

    #[test]
    fn github_footer_links_and_hidden_message_id() {
        let raw = "From: octo-dev <notifications@github.com>\r\n\
            Subject: Re: [acme/api] Retry uploads on 503 (PR #42)\r\n\
            Content-Type: text/html; charset=UTF-8\r\n\
            Content-Transfer-Encoding: 8bit\r\n\r\n\
            <p>@octo-dev approved this pull request.</p>\r\n\
            <p>LGTM, thanks!</p>\r\n\
            <hr>\r\n\
            <p style=\"font-size:small;color:#666\">&mdash;<br>Reply to this email directly, \
            <a href=\"https://github.com/acme/api/pull/42#pullrequestreview-1234\">view it on GitHub</a>, or \
            <a href=\"https://github.com/notifications/unsubscribe-auth/AAB7?token=x\">unsubscribe</a>.<br>\
            You are receiving this because you were mentioned.\
            <img src=\"https://github.com/notifications/beacon/AAB7.gif\" height=\"1\" width=\"1\" alt=\"\" />\
            <span style=\"color: transparent; font-size: 0; display: none; visibility: hidden; overflow: hidden; \
            opacity: 0; width: 0; height: 0; max-width: 0; max-height: 0; mso-hide: all\">\
            Message ID: &lt;acme/api/pull/42/review/1234@github.com&gt;</span></p>\r\n";
        let text = body(raw.as_bytes());
        assert_eq!(
            text,
            "@octo-dev approved this pull request.\n\n\
             LGTM, thanks!\n\n\
             —\n\
             Reply to this email directly, view it on GitHub (https://github.com/acme/api/pull/42#pullrequestreview-1234), \
             or unsubscribe (https://github.com/notifications/unsubscribe-auth/AAB7?token=x).\n\
             You are receiving this because you were mentioned."
        );
        assert_absent(&text, &["Message ID", "beacon", "review/1234@"]);
    }

    #[test]
    fn outlook_msonormal_paragraphs_are_single_lines() {
        let raw = "From: =?UTF-8?B?6Yi05pyo?= <suzuki@contoso.co.jp>\r\n\
            Subject: =?UTF-8?B?5Lya6K2w6LOH5paZ?=\r\n\
            Content-Type: text/html; charset=utf-8\r\n\r\n\
            <html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><head>\
            <style>p.MsoNormal{margin:0cm;font-size:11.0pt;}</style></head>\r\n\
            <body lang=JA link=\"#0563C1\"><div class=WordSection1>\r\n\
            <p class=MsoNormal>田中様<o:p></o:p></p>\r\n\
            <p class=MsoNormal><o:p>&nbsp;</o:p></p>\r\n\
            <p class=MsoNormal>お疲れ様です。<o:p></o:p></p>\r\n\
            <p class=MsoNormal>明日の会議資料を共有します。<o:p></o:p></p>\r\n\
            <p class=MsoNormal><a href=\"https://contoso.sharepoint.com/sites/team/Shared%20Documents/agenda.docx\">agenda.docx</a><o:p></o:p></p>\r\n\
            <p class=MsoNormal><o:p>&nbsp;</o:p></p>\r\n\
            <p class=MsoNormal>鈴木<o:p></o:p></p>\r\n\
            <p class=MsoNormal>TEL: <a href=\"tel:03-1234-5678\">03-1234-5678</a> / Mail: \
            <a href=\"mailto:suzuki@contoso.co.jp\">suzuki@contoso.co.jp</a><o:p></o:p></p>\r\n\
            </div></body></html>\r\n";
        let text = body(raw.as_bytes());
        assert_eq!(
            text,
            "田中様\n\n\
             お疲れ様です。\n\
             明日の会議資料を共有します。\n\
             agenda.docx\n\
             https://contoso.sharepoint.com/sites/team/Shared%20Documents/agenda.docx\n\n\
             鈴木\n\
             TEL: 03-1234-5678 / Mail: suzuki@contoso.co.jp"
        );
        assert_absent(&text, &["。\n\n明日", "\n\n\n", "mailto:", "tel:", "(03-1234-5678)", "MsoNormal"]);
    }

    #[test]
    fn outlook_web_classes_and_ordinary_paragraphs() {
        let html = "<p class=\"x_MsoNormal\">One</p><p class=\"x_MsoNormal\">Two</p>\
                    <p class=MsoPlainText>Three</p><p>Four</p><p>Five</p>";
        assert_eq!(html_to_text(html), "One\nTwo\nThree\n\nFour\n\nFive");
    }

    #[test]
    fn newsletter_preheader_pixels_and_bulletproof_button() {
        let raw = "From: Example Shop <news@shop.example.com>\r\n\
            Subject: Spring Sale\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: text/html; charset=utf-8\r\n\r\n\
            <body>\r\n\
            <div style=\"display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;max-width:0px;opacity:0;overflow:hidden;mso-hide:all;\">\
            Last chance: 30% off ends tonight &#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;</div>\r\n\
            <div style=\"max-height:0;overflow:hidden\">Hidden teaser <div>nested</div> still hidden</div>\r\n\
            <span hidden>attribute hidden</span>\r\n\
            <table width=\"100%\"><tr><td align=\"center\">\r\n\
            <a href=\"https://shop.example.com/?utm_source=nl\"><img src=\"https://cdn.example.com/logo.png\" alt=\"Example Shop\" width=\"120\"></a>\r\n\
            </td></tr>\r\n\
            <tr><td><h1>Spring Sale</h1><p>Everything in the garden range is 30% off until Sunday.</p></td></tr>\r\n\
            <tr><td><!--[if mso]><v:roundrect href=\"https://shop.example.com/sale\"><center>Shop now</center></v:roundrect><![endif]-->\
            <a href=\"https://shop.example.com/sale\" style=\"background-color:#2e7d32;color:#ffffff;padding:12px 24px;text-decoration:none;mso-hide:all;\">Shop now</a></td></tr>\r\n\
            <tr><td style=\"font-size:11px\">Don't want these? <a href=\"https://shop.example.com/unsub?u=42\">Unsubscribe</a> | \
            <a href=\"javascript:void(0)\">Print</a> | <a href=\"#top\">Top</a></td></tr>\r\n\
            </table>\r\n\
            <img src=\"https://track.example.com/open.gif?u=42\" width=\"1\" height=\"1\" style=\"display:block\" alt=\"\">\r\n\
            <a href=\"https://track.example.com/c?u=42\"><img src=\"https://track.example.com/px.gif\" width=\"1\" height=\"1\" alt=\"pixel\"></a>\r\n\
            </body>\r\n";
        let text = body(raw.as_bytes());
        assert_eq!(
            text,
            "Example Shop\n\
             https://shop.example.com/?utm_source=nl\n\n\
             Spring Sale\n\n\
             Everything in the garden range is 30% off until Sunday.\n\n\
             Shop now\n\
             https://shop.example.com/sale\n\
             Don't want these? Unsubscribe (https://shop.example.com/unsub?u=42) | Print | Top"
        );
        assert_absent(
            &text,
            &["Last chance", "teaser", "nested", "still hidden", "attribute hidden", "track.example.com", "pixel", "javascript", "#top", "\u{34F}", "\u{200C}"],
        );
    }

    #[test]
    fn ways_of_hiding() {
        let html = "<p>A<span style=\"visibility:hidden\">x</span>B<span style=\"DISPLAY : NONE !important\">y</span>C\
                    <span style=\"mso-hide:all;font-size:0\">z</span>D<span style=\"mso-hide:all\">E</span>\
                    <div style=\"height:0px;overflow:hidden\"><p>gone</p></div><br hidden>F</p>";
        assert_eq!(html_to_text(html), "ABCDE F");
        // An element of the same name inside a hidden one does not end it early.
        assert_eq!(html_to_text("<div hidden><div>in</div>still</div>shown"), "shown");
        // Without an end tag, nothing is hidden rather than the rest of the mail.
        assert_eq!(html_to_text("<p>Hello <span style=\"display:none\">never closed</p>"), "Hello never closed");
    }

    #[test]
    fn link_text_then_url_in_parentheses() {
        let html = "<p>See the <a href=\"https://docs.example.org/setup\">setup guide</a> first.</p>";
        assert_eq!(html_to_text(html), "See the setup guide (https://docs.example.org/setup) first.");
    }

    #[test]
    fn a_url_as_link_text_stands_apart() {
        let html = "<p>詳細は<a href=\"https://example.jp/news/1\">https://example.jp/news/1</a>をご覧ください。</p>";
        assert_eq!(html_to_text(html), "詳細は https://example.jp/news/1 をご覧ください。");
        // A tracking link whose text is the real destination: the text is the link.
        let html = "<p>Go to<a href=\"https://t.example.net/c/9f8e\">https://example.org/report</a>.</p>";
        assert_eq!(html_to_text(html), "Go to https://example.org/report .");
    }

    #[test]
    fn a_url_written_short_becomes_the_url() {
        let html = "<p>Repo: <a href=\"https://github.com/acme/api/\">github.com/acme/api</a></p>\
                    <p>PR: <a href=\"https://github.com/acme/api/pull/1234/files\">github.com/acme/api/pull/12…</a> merged</p>";
        assert_eq!(
            html_to_text(html),
            "Repo: https://github.com/acme/api/\n\nPR: https://github.com/acme/api/pull/1234/files merged"
        );
    }

    #[test]
    fn a_url_is_shown_once_in_the_mail() {
        let u = "https://status.example.com/i/77";
        let html = format!("<p>Open {u} or <a href=\"{u}\">click here</a>.</p>");
        assert_eq!(html_to_text(&html), format!("Open {u} or click here."));
        let html = format!("<p><a href=\"{u}\">Issue 77</a> was updated: <a href=\"{u}\">view</a></p><p><a href=\"{u}\">again</a> here</p>");
        assert_eq!(html_to_text(&html), format!("Issue 77 ({u}) was updated: view\n\nagain here"));
        // A longer URL on the line is another URL.
        let html = format!("<p>{u}/comments and <a href=\"{u}\">the issue</a></p>");
        assert_eq!(html_to_text(&html), format!("{u}/comments and the issue ({u})"));
    }

    #[test]
    fn mailto_and_tel_show_address_and_number() {
        let html = "<p>Questions? <a href=\"mailto:help%40example.com?subject=Order%20123\">Contact support</a></p>\
                    <p>受付: <a href=\"tel:0120-000-111\">お電話はこちら</a> (平日)</p>\
                    <p>Call <a href=\"tel:+81%203%201234%205678\">+81 3 1234 5678</a>now</p>\
                    <p><a href=\"MAILTO:info@example.jp\">mailto:info@example.jp</a></p>\
                    <p>Empty: <a href=\"mailto:\">nobody</a></p>";
        assert_eq!(
            html_to_text(html),
            "Questions? Contact support (help@example.com)\n\n\
             受付: お電話はこちら (0120-000-111) (平日)\n\n\
             Call +81 3 1234 5678 now\n\n\
             mailto:info@example.jp\n\n\
             Empty: nobody"
        );
    }

    #[test]
    fn unusable_targets_keep_only_their_text() {
        let html = "<p><a href=\"javascript:window.print()\">Print this page</a> now, \
                    <a href=\"/account\">account</a>, <a href=\"#top\">top</a>, <a href=\"cid:logo@x\">logo</a>, \
                    <a name=\"anchor\">named</a>, <a href=\"\">empty</a></p>";
        assert_eq!(html_to_text(html), "Print this page now, account, top, logo, named, empty");
    }

    #[test]
    fn buttons_by_block_and_by_role() {
        let html = "<div><a href=\"https://id.example.com/reset?t=abc\">Reset your password</a></div>\
                    <div>This link expires in 24 hours.</div>\
                    <p>Ready? <a role=\"button\" href=\"https://id.example.com/ok\">Confirm</a> or ignore this mail.</p>\
                    <p><a href=\"https://id.example.com/help\">Help</a><br>Support team</p>";
        assert_eq!(
            html_to_text(html),
            "Reset your password\nhttps://id.example.com/reset?t=abc\n\
             This link expires in 24 hours.\n\n\
             Ready? Confirm\nhttps://id.example.com/ok\nor ignore this mail.\n\n\
             Help\nhttps://id.example.com/help\nSupport team"
        );
    }

    #[test]
    fn links_side_by_side_and_in_lists_are_inline() {
        let html = "<table><tr><td><a href=\"https://a.example/docs\">Docs</a><a href=\"https://a.example/api\">API</a></td></tr></table>\
                    <ul><li><a href=\"https://a.example/changelog\">Changelog</a></li><li><a href=\"https://a.example/faq\">FAQ</a></li></ul>";
        assert_eq!(
            html_to_text(html),
            "Docs (https://a.example/docs) API (https://a.example/api)\n\
             • Changelog (https://a.example/changelog)\n\
             • FAQ (https://a.example/faq)"
        );
    }

    #[test]
    fn href_forms() {
        // Unquoted with a reference, protocol-relative, spaces and line breaks inside.
        let html = "<p>a <a href=https://example.com/?a=1&amp;b=2>one</a> \
                    <a href=\"//cdn.example.com/f.pdf\">two</a> \
                    <a HREF=' https://example.com/a b\n/c '>three</a></p>";
        assert_eq!(
            html_to_text(html),
            "a one (https://example.com/?a=1&b=2) two (https://cdn.example.com/f.pdf) three (https://example.com/a%20b/c)"
        );
    }

    #[test]
    fn nested_and_stray_anchors() {
        let html = "<a href=\"https://x.example/1\">outer <a href=\"https://x.example/2\">inner</a> tail</a></a>";
        assert_eq!(html_to_text(html), "outer (https://x.example/1) inner (https://x.example/2) tail");
        assert_eq!(html_to_text("<p>a<a href=\"https://x.example/\"> </a>b</p>"), "a b");
    }

    #[test]
    fn image_links_use_alt_and_pixels_give_nothing() {
        let html = "<p>Follow us: <a href=\"https://social.example/shop\"><img src=\"x.png\" alt=\"Social\"></a> \
                    <a href=\"https://social.example/none\"><img src=\"y.png\"></a>\
                    <a href=\"https://t.example/o\"><img src=\"p.gif\" style=\"width:1px;height:1px\" alt=\"open\"></a>\
                    <a href=\"https://t.example/h\"><img src=\"h.gif\" style=\"display:none\" alt=\"hidden\"></a></p>";
        assert_eq!(html_to_text(html), "Follow us: Social (https://social.example/shop)");
    }

    #[test]
    fn jenkins_html_console_loses_its_colour_codes() {
        let raw = b"Subject: Build #88 fixed\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
            <p>Build <a href=\"https://ci.example.jp/job/web/88/\">#88</a> fixed.</p>\
            <pre>\x1b[1m[INFO]\x1b[0m Tests run: 12, Failures: 0\n\x1b[32mBUILD SUCCESS\x1b[0m</pre>";
        assert_eq!(
            body(raw),
            "Build #88 (https://ci.example.jp/job/web/88/) fixed.\n\n[INFO] Tests run: 12, Failures: 0\nBUILD SUCCESS"
        );
    }

    #[test]
    fn odd_html_does_not_panic() {
        let huge = "x".repeat(100_000);
        let mut inputs: Vec<String> = [
            "<a href", "<a href=", "<a href='x", "<a href=\"javascript:", "<a href=mailto:>m</a>", "<a href=tel:>t</a>",
            "<a href=https://x>", "<a><a><a>", "</a></a>", "<div style=\"display:none\">", "<span hidden", "<p class=MsoNormal>",
            "<img alt=", "<a href=\"https://x\"><img alt='a", "<a href=\"%\">p</a>", "<a href='tel:%E3'>t</a>", "<a href=mailto:é>x</a>",
            "<a href=\"https://例え.jp/パス\">リンク</a>", "<a href=\"http://\">http://</a>", "<a = = href = = x>y</a>",
            "<p class=>a</p><p class>b</p>", "<a href=\"https://x\">…</a>", "<a href=\"https://x.example/abcdefgh\">x.example/abcdefgh...</a>",
            "<div hidden><div hidden><div hidden>", "<a href='https://a'><div>block</div></a>tail", "<td><a href=https://a>a</a></td><td>",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push(format!("<a href=\"{huge}\">t</a>"));
        inputs.push(format!("<a href=\"https://x\" title=\"{}\">t</a>", ">".repeat(1000)));
        inputs.push(format!("<p style=\"{huge}none\">t</p>"));
        for html in &inputs {
            let _ = html_to_text(html);
        }
        // Many unclosed hidden elements, and many links on one line, stay fast (linear).
        let _ = html_to_text(&"<span style=\"display:none\">x".repeat(20_000));
        let _ = html_to_text(&"<a href=\"https://x.example/same\">link</a> ".repeat(20_000));
    }
}
