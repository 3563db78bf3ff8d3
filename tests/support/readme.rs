//! README.md as test input, so the commands and config lines it shows are the ones the tests run.
//!
//! A fenced block that a test uses is preceded by a marker line `<!-- test: NAME -->`;
//! [`block`] returns that block's text. Sections between `<!-- NAME:begin -->` and
//! `<!-- NAME:end -->` come from [`between`]. A missing marker is a test failure that names it,
//! so renaming or deleting a tested example in the README cannot go unnoticed.

use std::path::PathBuf;

pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

pub fn text() -> String {
    std::fs::read_to_string(path()).expect("read README.md")
}

/// The body of the fenced code block that follows `<!-- test: NAME -->` (without the fences).
pub fn block(name: &str) -> String {
    let readme = text();
    let marker = format!("<!-- test: {name} -->");
    let at = readme.find(&marker).unwrap_or_else(|| panic!("README.md has no {marker} before a code block"));
    let rest = &readme[at + marker.len()..];
    let mut lines = rest.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or("");
    assert!(fence.trim_start().starts_with("```"), "README.md: {marker} must be followed by a ``` block, found {fence:?}");
    // A block inside a list item is indented like its fence; the text itself is not.
    let indent = fence.len() - fence.trim_start().len();
    let mut body = String::new();
    for line in lines {
        if line.trim_start().starts_with("```") {
            return body;
        }
        let strip = line.len() - line.trim_start_matches(' ').len();
        body.push_str(&line[strip.min(indent)..]);
        body.push('\n');
    }
    panic!("README.md: the block after {marker} is not closed");
}

/// The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
pub fn between(name: &str) -> String {
    let readme = text();
    let (begin, end) = (format!("<!-- {name}:begin -->"), format!("<!-- {name}:end -->"));
    let start = readme.find(&begin).unwrap_or_else(|| panic!("README.md has no {begin}")) + begin.len();
    let stop = readme[start..].find(&end).unwrap_or_else(|| panic!("README.md has no {end} after {begin}"));
    readme[start..start + stop].to_owned()
}

/// Every fenced block whose info string is `lang` (e.g. "toml"), with its first line's number.
pub fn blocks_in(lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // The open block: its language, first line number and text so far.
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in text().lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match open.take() {
                Some((l, start, body)) if l == lang => out.push((start, body)),
                Some(_) => {}
                None => open = Some((info.trim().to_owned(), i + 2, String::new())),
            }
        } else if let Some((_, _, body)) = open.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}
