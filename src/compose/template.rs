//! The `[message] template`: `{subject}`, `{body}`, `{from}`, `{to}`. (placeholder until merged)
pub const DEFAULT_TEMPLATE: &str = "{subject}\n\n{body}";
#[derive(Debug, Clone)]
pub struct Template(String);
#[derive(Debug, Clone)]
pub struct TemplateError(String);
impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
}
impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        if s.contains("{subjekt}") { return Err(TemplateError("unknown placeholder {subjekt}".into())); }
        Ok(Template(s.to_owned()))
    }
    pub fn render(&self, subject: &str, body: &str, from: &str, to: &str) -> String {
        self.0.replace("{subject}", subject).replace("{body}", body).replace("{from}", from).replace("{to}", to).trim().to_owned()
    }
}
