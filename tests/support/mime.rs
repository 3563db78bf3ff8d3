//! Mails with attachments, built the way a mail client does: a text part, then each file as a
//! base64 part in 76-character lines.

use base64::Engine;

/// A `multipart/mixed` mail: `head` (header lines, each ending in CRLF, without MIME-Version
/// and Content-Type), a text part, then `parts` as (file name, content type, bytes).
pub fn multipart(head: &str, text: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut m = format!(
        "{head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
    );
    for (name, ty, data) in parts {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        m.reserve(b64.len() / 76 * 78 + 200);
        m.push_str(&format!("--b\r\nContent-Type: {ty}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n"));
        for chunk in b64.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            m.push_str("\r\n");
        }
    }
    m.push_str("--b--\r\n");
    m.into_bytes()
}
