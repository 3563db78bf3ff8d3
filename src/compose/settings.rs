//! `[message]`, as written in the configuration file and checked when it is loaded: the
//! template a mail becomes and the body rules. The check parses the template and keeps it, so
//! `serve` does not parse it again.

use serde::Deserialize;

use super::quoting::{Quoted, Rules, Signature};
use super::template::{Template, DEFAULT_TEMPLATE};

/// `[message]`: how a mail is written for LINE.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub template: String,
    /// `"collapse"` (default): a run of more than 3 quoted (`>`) lines becomes `(N quoted lines)`.
    pub quoted: Quoted,
    /// `"drop"`: the body ends at its `-- ` signature separator (default `"keep"`).
    pub signature: Signature,
    /// `template` parsed, with `quoted` and `signature` as its body rules: filled in by
    /// [`Settings::validate`], so that `serve` does not parse it again.
    #[serde(skip)]
    pub compiled: Template,
}

impl Settings {
    /// The body rules for [`Template::with_rules`].
    pub fn rules(&self) -> Rules {
        Rules { quoted: self.quoted, signature: self.signature }
    }

    /// Problems as `(key, message)`; keeps the template parsed.
    pub fn validate(&mut self) -> Vec<(String, String)> {
        match Template::parse(&self.template) {
            Ok(template) => {
                self.compiled = template.with_rules(self.rules());
                Vec::new()
            }
            Err(e) => vec![("message.template".to_owned(), e.to_string())],
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings { template: DEFAULT_TEMPLATE.into(), quoted: Quoted::default(), signature: Signature::default(), compiled: Template::default() }
    }
}
