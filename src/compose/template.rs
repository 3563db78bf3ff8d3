//! The `[message] template`: parses the configured template once (so a bad template is a
//! config error at startup, not a surprise per mail) and renders a notice's
//! `{subject}`, `{body}`, `{from}`, `{to}` into the text that becomes LINE messages.
//!
//! Syntax: `{subject}`, `{body}`, `{from}`, `{to}` are replaced; `{{` and `}}` are literal
//! braces; anything else inside braces, or a lone brace, is a [`TemplateError`].
//!
//! Rule "an empty subject drops its line": when the subject is empty after trimming, every
//! template line that holds `{subject}` is left out, and then leading blank lines of the
//! result are removed, so the default `"{subject}\n\n{body}"` renders just the body instead
//! of a message that opens with two empty lines. Trailing whitespace of the result is always
//! trimmed (LINE shows it as dead space, and a body often ends with blank lines).
//!
//! The body goes through `[message] quoted` and `signature` ([`quoting::tidy_body`]) before it
//! is inserted, and a run of blank lines in the result is always one blank line
//! ([`quoting::squeeze_blank_lines`]).

use std::fmt;
use std::str::FromStr;

use super::quoting::{self, Rules};

/// The template used when the configuration does not set one.
pub const DEFAULT_TEMPLATE: &str = "{subject}\n\n{body}";

/// What the error messages list as allowed, kept in one place so they cannot drift.
const ALLOWED: &str = "{subject}, {body}, {from}, {to}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Subject,
    Body,
    From,
    To,
}

impl Field {
    fn from_name(name: &str) -> Option<Field> {
        match name {
            "subject" => Some(Field::Subject),
            "body" => Some(Field::Body),
            "from" => Some(Field::From),
            "to" => Some(Field::To),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field(Field),
}

/// One line of the template source. Lines are kept apart because the empty-subject rule
/// removes whole template lines, which is only well defined on the template's own lines
/// (a body with newlines must not change which lines get dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    segments: Vec<Segment>,
    has_subject: bool,
}

/// A parsed message template; see the module docs for the syntax and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    lines: Vec<Line>,
    /// What happens to the body's quoted chains and signature.
    rules: Rules,
}

/// Why a template was rejected. `line` and `column` are 1-based, column counted in chars,
/// pointing at the offending brace, so the config error can say where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{name}` where `name` is not one of the allowed placeholders.
    UnknownPlaceholder {
        name: String,
        line: usize,
        column: usize,
    },
    /// A `{` with no `}` before the end of its line; `text` is what followed it.
    UnclosedBrace {
        text: String,
        line: usize,
        column: usize,
    },
    /// A `}` that closes nothing and is not doubled.
    UnmatchedClosingBrace { line: usize, column: usize },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnknownPlaceholder { name, line, column } => write!(
                f,
                "unknown placeholder `{{{name}}}` at line {line}, column {column}; \
                 allowed placeholders are {ALLOWED} (write `{{{{` and `}}}}` for literal braces)"
            ),
            TemplateError::UnclosedBrace { text, line, column } => write!(
                f,
                "unclosed placeholder `{{{text}` at line {line}, column {column}; \
                 allowed placeholders are {ALLOWED} (write `{{{{` for a literal `{{`)"
            ),
            TemplateError::UnmatchedClosingBrace { line, column } => write!(
                f,
                "unmatched `}}` at line {line}, column {column}; \
                 allowed placeholders are {ALLOWED} (write `}}}}` for a literal `}}`)"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `s`; fails on an unknown placeholder or an unbalanced brace.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let lines = s
            .split('\n')
            .enumerate()
            .map(|(i, src)| parse_line(src, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Template { lines, rules: Rules::default() })
    }

    /// The same template with `[message] quoted` and `signature` set to `rules`.
    pub fn with_rules(mut self, rules: Rules) -> Template {
        self.rules = rules;
        self
    }

    /// Renders the template with the given values (inserted verbatim, never re-parsed, so a
    /// `{body}` inside a mail stays text).
    pub fn render(&self, subject: &str, body: &str, from: &str, to: &str) -> String {
        let body = quoting::tidy_body(body, self.rules);
        let body = body.as_str();
        let drop_subject = subject.trim().is_empty();
        let mut out = String::new();
        let mut first = true;
        for line in &self.lines {
            if drop_subject && line.has_subject {
                continue;
            }
            if !first {
                out.push('\n');
            }
            first = false;
            for seg in &line.segments {
                match seg {
                    Segment::Literal(s) => out.push_str(s),
                    Segment::Field(Field::Subject) => out.push_str(subject),
                    Segment::Field(Field::Body) => out.push_str(body),
                    Segment::Field(Field::From) => out.push_str(from),
                    Segment::Field(Field::To) => out.push_str(to),
                }
            }
        }
        if drop_subject {
            // The blank line that separated the subject from the body is now at the top.
            let mut start = 0;
            while let Some(i) = out[start..].find('\n') {
                if !out[start..start + i].trim().is_empty() {
                    break;
                }
                start += i + 1;
            }
            out.drain(..start);
        }
        let mut out = quoting::squeeze_blank_lines(&out);
        out.truncate(out.trim_end().len());
        out
    }
}

impl Default for Template {
    fn default() -> Template {
        // DEFAULT_TEMPLATE is valid (a test says so); the fallback only avoids a panic path.
        Template::parse(DEFAULT_TEMPLATE).unwrap_or(Template { lines: Vec::new(), rules: Rules::default() })
    }
}

impl FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Template, TemplateError> {
        Template::parse(s)
    }
}

fn parse_line(src: &str, line_no: usize) -> Result<Line, TemplateError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut has_subject = false;
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                literal.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                literal.push('}');
                i += 2;
            }
            '}' => {
                return Err(TemplateError::UnmatchedClosingBrace {
                    line: line_no,
                    column: i + 1,
                })
            }
            '{' => {
                // A placeholder runs to the next `}`; a `{` before it means this one is unclosed.
                let rest = &chars[i + 1..];
                let close = rest.iter().position(|&c| c == '}' || c == '{');
                let name: String = match close {
                    Some(n) if rest[n] == '}' => rest[..n].iter().collect(),
                    _ => {
                        let text: String = rest[..close.unwrap_or(rest.len())].iter().collect();
                        return Err(TemplateError::UnclosedBrace {
                            text,
                            line: line_no,
                            column: i + 1,
                        });
                    }
                };
                let Some(field) = Field::from_name(&name) else {
                    return Err(TemplateError::UnknownPlaceholder {
                        name,
                        line: line_no,
                        column: i + 1,
                    });
                };
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                has_subject |= field == Field::Subject;
                segments.push(Segment::Field(field));
                i += name.chars().count() + 2;
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(Line {
        segments,
        has_subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, subject: &str, body: &str) -> String {
        Template::parse(t)
            .unwrap()
            .render(subject, body, "alice@example.com", "line@example.org")
    }

    #[test]
    fn all_placeholders() {
        let t = "From: {from}\nTo: {to}\n{subject}\n\n{body}";
        assert_eq!(
            render(t, "Hello", "Body text"),
            "From: alice@example.com\nTo: line@example.org\nHello\n\nBody text"
        );
    }

    #[test]
    fn default_template_with_subject() {
        assert_eq!(render(DEFAULT_TEMPLATE, "Hello", "Body"), "Hello\n\nBody");
        assert_eq!(
            Template::default().render("Hello", "Body", "", ""),
            "Hello\n\nBody"
        );
    }

    #[test]
    fn escaped_braces_are_literal() {
        assert_eq!(render("{{literal}} {subject}}}", "Hi", ""), "{literal} Hi}");
        assert_eq!(render("{{{body}}}", "", "x"), "{x}");
    }

    #[test]
    fn values_are_not_reparsed() {
        assert_eq!(render("{subject}: {body}", "{to}", "{{x}"), "{to}: {{x}");
    }

    #[test]
    fn empty_subject_drops_its_line_default() {
        assert_eq!(render(DEFAULT_TEMPLATE, "", "Body"), "Body");
        // Whitespace-only counts as empty.
        assert_eq!(render(DEFAULT_TEMPLATE, "  \t", "Body"), "Body");
    }

    #[test]
    fn empty_subject_drops_its_line_in_the_middle() {
        let t = "From: {from}\nSubject: {subject}\n{body}";
        assert_eq!(render(t, "", "Body"), "From: alice@example.com\nBody");
        assert_eq!(
            render(t, "S", "Body"),
            "From: alice@example.com\nSubject: S\nBody"
        );
    }

    #[test]
    fn non_empty_subject_keeps_leading_blank_lines_of_the_template() {
        // The leading-blank-line cleanup belongs to the empty-subject rule only.
        assert_eq!(render("\n{subject}", "S", ""), "\nS");
    }

    #[test]
    fn trailing_whitespace_trimmed() {
        assert_eq!(render(DEFAULT_TEMPLATE, "Hi", "Body\n\n  \n"), "Hi\n\nBody");
        assert_eq!(render(DEFAULT_TEMPLATE, "", "  \n"), "");
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let err = Template::parse("Hi {subjet}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownPlaceholder {
                name: "subjet".into(),
                line: 1,
                column: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown placeholder `{subjet}` at line 1, column 4; allowed placeholders are \
             {subject}, {body}, {from}, {to} (write `{{` and `}}` for literal braces)"
        );
        assert_eq!(
            Template::parse("a\n{}").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                name: String::new(),
                line: 2,
                column: 1
            }
        );
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let err = Template::parse("{subject").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnclosedBrace {
                text: "subject".into(),
                line: 1,
                column: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "unclosed placeholder `{subject` at line 1, column 1; allowed placeholders are \
             {subject}, {body}, {from}, {to} (write `{{` for a literal `{`)"
        );
        assert_eq!(
            Template::parse("{a{body}").unwrap_err(),
            TemplateError::UnclosedBrace {
                text: "a".into(),
                line: 1,
                column: 1
            }
        );
        // A placeholder cannot span lines.
        assert_eq!(
            Template::parse("{sub\nject}").unwrap_err(),
            TemplateError::UnclosedBrace {
                text: "sub".into(),
                line: 1,
                column: 1
            }
        );
        let err = Template::parse("x }").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnmatchedClosingBrace { line: 1, column: 3 }
        );
        assert_eq!(
            err.to_string(),
            "unmatched `}` at line 1, column 3; allowed placeholders are \
             {subject}, {body}, {from}, {to} (write `}}` for a literal `}`)"
        );
    }

    #[test]
    fn body_rules_and_blank_runs() {
        use super::quoting::{Quoted, Signature};
        let body = "Done.\n\n\n\nOn Mon, Alice wrote:\n> a\n> b\n> c\n> d\n\n-- \nBob";
        // Defaults: quotes collapse, the signature stays, blank runs become one.
        assert_eq!(
            render(DEFAULT_TEMPLATE, "Re: x", body),
            "Re: x\n\nDone.\n\nOn Mon, Alice wrote:\n(4 quoted lines)\n\n-- \nBob"
        );
        let t = Template::parse("{subject}\n\n\n{body}\n\n\n{from}").unwrap();
        let keep = t.clone().with_rules(Rules { quoted: Quoted::Keep, signature: Signature::Drop });
        assert_eq!(
            keep.render("S", body, "a@example.com", ""),
            "S\n\nDone.\n\nOn Mon, Alice wrote:\n> a\n> b\n> c\n> d\n\na@example.com"
        );
        // The signature rule applies to the body only, never to the template's own lines.
        let t = Template::parse("{body}\n-- \n{from}").unwrap().with_rules(Rules { quoted: Quoted::Keep, signature: Signature::Drop });
        assert_eq!(t.render("", "hi", "a@example.com", ""), "hi\n-- \na@example.com");
    }

    #[test]
    fn non_ascii_template() {
        assert_eq!(
            render("件名: {subject}\n{body} 🍎", "こんにちは", "本文"),
            "件名: こんにちは\n本文 🍎"
        );
        assert_eq!(
            Template::parse("件名 {件名}").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                name: "件名".into(),
                line: 1,
                column: 4
            }
        );
    }
}
