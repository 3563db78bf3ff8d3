//! SMTP replies: a code, an enhanced status code (RFC 3463) and human text.
//!
//! Every reply the gateway sends is built here, so that the wording a sender's log shows stays
//! consistent and every reply carries an enhanced code (we advertise ENHANCEDSTATUSCODES).

use std::fmt;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.1.1`; empty for replies that must not carry one
    /// (the greeting, EHLO's lines).
    pub status: &'static str,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply { code, status, lines: vec![text.into()] }
    }

    /// A reply without an enhanced status code.
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, status: "", lines: vec![text.into()] }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, status: "", lines }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply as it goes on the wire, CRLF-terminated lines.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 < n { '-' } else { ' ' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            // A CR or LF inside the text would end the reply early and desynchronise the
            // client; texts can carry LINE's error message, so they are sanitised here.
            for c in text.chars() {
                let c = if c.is_control() { ' ' } else { c };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.lines.join(" / ");
        if self.status.is_empty() {
            write!(f, "{} {}", self.code, text)
        } else {
            write!(f, "{} {} {}", self.code, self.status, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_wire_format() {
        assert_eq!(Reply::new(250, "2.0.0", "Ok").to_wire(), b"250 2.0.0 Ok\r\n");
        assert_eq!(Reply::plain(220, "host ESMTP").to_wire(), b"220 host ESMTP\r\n");
        assert_eq!(
            Reply::multi(250, vec!["host".into(), "SIZE 10".into()]).to_wire(),
            b"250-host\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn control_characters_cannot_break_the_reply() {
        let r = Reply::new(550, "5.6.0", "bad\r\n250 ok");
        assert_eq!(r.to_wire(), b"550 5.6.0 bad  250 ok\r\n");
    }
}
