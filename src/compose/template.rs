//! The `[message] template`: `{subject}`, `{body}`, `{from}`, `{to}`.
