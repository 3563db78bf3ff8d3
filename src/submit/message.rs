//! What `sendmail` makes of the bytes on stdin before they go to the gateway. Pure: input,
//! options and a [`Context`] (domain, local identity, date) in; the envelope and the exact bytes
//! to send out.
//!
//! - Without `-i`, a line holding only `.` ends the mail (traditional sendmail). Bare LF line ends
//!   become CRLF for the wire; everything else is sent as given (dot-stuffing is the SMTP
//!   client's job, and lettre does it).
//! - Input that does not start with a header block (`echo hi | sendmail U…`) is a body: it gets
//!   minimal `From`, `To`, `Date` and a UTF-8 text/plain type. A block counts as headers when
//!   its lines are `Name: value` fields (or their continuations) and at least one name is a
//!   mail header people write (From, To, Subject, Content-*, X-*, …), so a first line such as
//!   `Error: disk full` from a script stays text. As Postfix does, a non-header line right after
//!   real headers starts the body even without the blank line. A leading mbox `From ` line is
//!   dropped.
//! - `Bcc:` fields are always removed (with `-t` they were read for recipients first): a blind
//!   copy must not show who else got the mail.
//! - A mail with headers but no `From:` gets one (the envelope sender, with `-F`'s name).
//! - Recipients: the arguments (comma-separated lists allowed) and, with `-t`, To/Cc/Bcc; each
//!   without `@` is taken as `<name>@<smtp.domain>` (an alias, a LINE id, or `root` for the
//!   gateway to refuse). Duplicates are sent once.
//! - Envelope sender: `-f`/`-r`, else the `From:` address, else `<user>@<hostname>`, else `<>`;
//!   a sender without `@` gets `@<hostname>`.

use std::str::FromStr;

use base64::Engine;
use lettre::Address;
use mail_parser::{HeaderName, MessageParser};

use super::args::Invocation;

/// What the message is checked against: the gateway's domain and who is sending.
#[derive(Debug, Clone)]
pub struct Context {
    /// `smtp.domain`: bare recipient names are qualified with it.
    pub domain: String,
    /// This machine's name: bare sender names are qualified with it.
    pub hostname: String,
    /// `<user>@<hostname>` of the caller, when there is one.
    pub default_sender: Option<String>,
    /// An RFC 5322 date for a `Date:` header, when one must be written.
    pub date: String,
}

/// The mail, ready for SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `None`: the null sender `<>`.
    pub sender: Option<Address>,
    pub recipients: Vec<Address>,
    /// Recipients that are not addresses at all, as written; reported, not sent to.
    pub malformed: Vec<String>,
    /// CRLF line ends; dot-stuffing not applied.
    pub data: Vec<u8>,
}

/// Why the input cannot be sent; both are usage errors (EX_USAGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoRecipients { from_headers: bool },
    BadSender(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NoRecipients { from_headers: true } => {
                f.write_str("no recipients: the mail has no To, Cc or Bcc header and none were given as arguments")
            }
            Problem::NoRecipients { from_headers: false } => {
                f.write_str("no recipients: give them as arguments (e.g. sendmail U…@domain), or use -t to take them from the To, Cc and Bcc headers")
            }
            Problem::BadSender(s) => write!(f, "-f {s:?} is not a mail address"),
        }
    }
}

/// Turns stdin's bytes into the mail to send, following `inv`'s options.
pub fn prepare(input: &[u8], inv: &Invocation, ctx: &Context) -> Result<Prepared, Problem> {
    let input = if inv.ignore_dots { input } else { cut_at_dot_line(input) };
    let msg = to_crlf(input);
    // An mbox "From " separator line (as in `git format-patch --stdout`) is not part of the
    // mail; Postfix's sendmail drops it too.
    let msg = match msg.strip_prefix(b"From ") {
        Some(rest) => rest.iter().position(|&b| b == b'\n').map(|p| rest[p + 1..].to_vec()).unwrap_or_default(),
        None => msg,
    };
    let split = split(&msg);
    let header = split.as_ref().map(|s| s.header).unwrap_or_default();

    let mut written: Vec<String> = inv.recipients.iter().flat_map(|a| address_list(a)).collect();
    if inv.from_headers {
        written.extend(header_addresses(header, &[HeaderName::To, HeaderName::Cc, HeaderName::Bcc]));
    }
    let mut recipients: Vec<Address> = Vec::new();
    let mut malformed = Vec::new();
    for r in written {
        match Address::from_str(&qualify(&r, &ctx.domain)) {
            Ok(a) if !recipients.iter().any(|x: &Address| AsRef::<str>::as_ref(x).eq_ignore_ascii_case(a.as_ref())) => recipients.push(a),
            Ok(_) => {}
            Err(_) => malformed.push(r),
        }
    }
    if recipients.is_empty() && malformed.is_empty() {
        return Err(Problem::NoRecipients { from_headers: inv.from_headers });
    }

    let header_from = header_addresses(header, &[HeaderName::From]).into_iter().next();
    let sender = match &inv.sender {
        Some(s) if s.is_empty() => None,
        Some(s) => Some(Address::from_str(&qualify(s, &ctx.hostname)).map_err(|_| Problem::BadSender(s.clone()))?),
        None => header_from
            .and_then(|f| Address::from_str(&qualify(&f, &ctx.hostname)).ok())
            .or_else(|| ctx.default_sender.as_deref().and_then(|d| Address::from_str(d).ok())),
    };
    let from_field = sender.as_ref().map(|s| format!("From: {}\r\n", mailbox(inv.full_name.as_deref(), s.as_ref())));

    let data = match split {
        Some(Split { header, body }) => {
            let mut out = Vec::with_capacity(msg.len() + 64);
            if !has_field(header, "from") {
                out.extend_from_slice(from_field.unwrap_or_default().as_bytes());
            }
            out.extend_from_slice(&remove_fields(header, "bcc"));
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            out
        }
        None => {
            let to: Vec<String> = recipients.iter().map(Address::to_string).collect();
            wrap_body(&msg, from_field.as_deref(), &to, &ctx.date)
        }
    };
    Ok(Prepared { sender, recipients, malformed, data })
}

/// The input up to (not including) the first line that holds only `.`.
pub fn cut_at_dot_line(input: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < input.len() {
        let end = input[start..].iter().position(|&b| b == b'\n').map(|p| start + p + 1).unwrap_or(input.len());
        let line = &input[start..end];
        if matches!(line, b"." | b".\n" | b".\r\n") {
            return &input[..start];
        }
        start = end;
    }
    input
}

/// Bare LF becomes CRLF; CRLF and everything else stays.
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// A message split into its header block (field lines, each ending CRLF) and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub header: &'a [u8],
    pub body: &'a [u8],
}

/// Finds the header block of a CRLF message; `None` when the input is only a body.
pub fn split(msg: &[u8]) -> Option<Split<'_>> {
    let mut pos = 0;
    let mut known = false;
    let mut fields = 0;
    while pos < msg.len() {
        let end = find_crlf(msg, pos).map(|p| p + 2).unwrap_or(msg.len());
        let line = &msg[pos..end];
        let text = line.strip_suffix(b"\r\n").unwrap_or(line);
        if text.is_empty() {
            // The blank line that ends the header.
            return known.then(|| Split { header: &msg[..pos], body: &msg[end..] });
        }
        if text[0] == b' ' || text[0] == b'\t' {
            if fields == 0 {
                return None;
            }
        } else if let Some(name) = field_name(text) {
            fields += 1;
            known |= is_known_field(name);
        } else {
            // Not a header line: the body starts here (if what came before was a header).
            return known.then(|| Split { header: &msg[..pos], body: &msg[pos..] });
        }
        pos = end;
    }
    // Headers only, no body.
    known.then(|| Split { header: &msg[..pos], body: &msg[pos..] })
}

fn find_crlf(msg: &[u8], from: usize) -> Option<usize> {
    msg[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

/// `Name` of a `Name: value` line (RFC 5322 field name: printable ASCII but `:`).
fn field_name(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// Header names that mark a block as a mail header rather than text that happens to have a colon.
fn is_known_field(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "sender", "mime-version", "in-reply-to",
        "references", "return-path", "received", "comments", "keywords", "importance", "priority",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.contains(&lower.as_str()) || ["content-", "x-", "resent-", "list-", "auto-"].iter().any(|p| lower.starts_with(p))
}

/// Whether the header block has a field called `name` (lowercase).
fn has_field(header: &[u8], name: &str) -> bool {
    fields(header).any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// The header without the fields called `name` (lowercase), continuation lines included.
pub fn remove_fields(header: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    for (n, raw) in fields(header) {
        if !n.eq_ignore_ascii_case(name) {
            out.extend_from_slice(raw);
        }
    }
    out
}

/// Each field of a header block: its name and its raw lines.
fn fields(header: &[u8]) -> impl Iterator<Item = (&str, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= header.len() {
            return None;
        }
        let start = pos;
        loop {
            pos = find_crlf(header, pos).map(|p| p + 2).unwrap_or(header.len());
            if pos >= header.len() || !matches!(header[pos], b' ' | b'\t') {
                break;
            }
        }
        let raw = &header[start..pos];
        Some((field_name(raw).unwrap_or(""), raw))
    })
}

/// The addresses in the header fields called `names`, as written (RFC 2047 and groups handled
/// by mail-parser).
fn header_addresses(header: &[u8], names: &[HeaderName<'static>]) -> Vec<String> {
    if header.is_empty() {
        return Vec::new();
    }
    let mut block = header.to_vec();
    block.extend_from_slice(b"\r\n");
    let Some(msg) = MessageParser::new().parse_headers(&block) else { return Vec::new() };
    let mut out = Vec::new();
    for name in names {
        for header in msg.headers().all(name.clone()) {
            if let Some(list) = header.value().as_address() {
                // A bare word (`To: root`) comes back as a name without an address; it is the
                // local part. A name with spaces and no address is kept to be reported as malformed.
                // Group members count like any other mailbox.
                out.extend(
                    list.mailboxes()
                        .filter_map(|a| a.address().or(a.name()))
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty()),
                );
            }
        }
    }
    out
}

/// The addresses in one argument: `a@x`, `a@x, b@y`, `Name <a@x>` or a bare `root`.
pub fn address_list(arg: &str) -> Vec<String> {
    let flat: String = arg.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    let found = header_addresses(format!("To: {flat}\r\n").as_bytes(), &[HeaderName::To]);
    if found.is_empty() && !flat.trim().is_empty() {
        // Not parseable as an address list: keep it whole so it is reported as malformed.
        return vec![flat.trim().to_owned()];
    }
    found
}

/// `name` without `@` becomes `name@domain`.
pub fn qualify(addr: &str, domain: &str) -> String {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    if addr.contains('@') {
        addr.to_owned()
    } else {
        format!("{addr}@{domain}")
    }
}

/// A `From:` value: `addr`, or `"Name" <addr>` (RFC 2047 encoded when not ASCII).
pub fn mailbox(name: Option<&str>, addr: &str) -> String {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match name {
        None => addr.to_owned(),
        Some(n) if n.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) => {
            format!("\"{}\" <{addr}>", n.replace('\\', "\\\\").replace('"', "\\\""))
        }
        Some(n) => {
            let clean: String = n.chars().filter(|c| !c.is_control()).collect();
            format!("=?UTF-8?B?{}?= <{addr}>", base64::engine::general_purpose::STANDARD.encode(clean))
        }
    }
}

/// A mail around text that came without headers.
pub fn wrap_body(body: &[u8], from: Option<&str>, to: &[String], date: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len() + 256);
    if let Some(f) = from {
        out.push_str(f);
    }
    if !to.is_empty() {
        out.push_str(&format!("To: {}\r\n", to.join(", ")));
    }
    out.push_str(&format!("Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    out.push_str(if text.is_ascii() { "Content-Transfer-Encoding: 7bit\r\n" } else { "Content-Transfer-Encoding: 8bit\r\n" });
    out.push_str("\r\n");
    out.push_str(&text);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "U0123456789abcdef0123456789abcdef";
    const U2: &str = "U00000000000000000000000000000002";
    const DOMAIN: &str = "text.line.example.com";

    fn ctx() -> Context {
        Context {
            domain: DOMAIN.into(),
            hostname: "web01.example.net".into(),
            default_sender: Some("www-data@web01.example.net".into()),
            date: "Tue, 1 Jul 2025 09:00:00 +0000".into(),
        }
    }

    fn inv(t: bool, i: bool, rcpts: &[&str]) -> Invocation {
        Invocation { from_headers: t, ignore_dots: i, recipients: rcpts.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn text(p: &Prepared) -> &str {
        std::str::from_utf8(&p.data).unwrap()
    }

    fn rcpts(p: &Prepared) -> Vec<String> {
        p.recipients.iter().map(Address::to_string).collect()
    }

    #[test]
    fn dot_line_ends_input_without_i() {
        assert_eq!(cut_at_dot_line(b"a\n.\nb\n"), b"a\n");
        assert_eq!(cut_at_dot_line(b"a\r\n.\r\nb"), b"a\r\n");
        assert_eq!(cut_at_dot_line(b"a\n."), b"a\n");
        assert_eq!(cut_at_dot_line(b".\n"), b"");
        assert_eq!(cut_at_dot_line(b"a\n..\n.b\n. \n"), b"a\n..\n.b\n. \n");
        let input = format!("To: {U1}@{DOMAIN}\nSubject: s\n\nfirst\n.\nsecond\n");
        let p = prepare(input.as_bytes(), &inv(true, false, &[]), &ctx()).unwrap();
        assert!(text(&p).ends_with("\r\n\r\nfirst\r\n"), "{}", text(&p));
        let p = prepare(input.as_bytes(), &inv(true, true, &[]), &ctx()).unwrap();
        assert!(text(&p).ends_with("\r\n\r\nfirst\r\n.\r\nsecond\r\n"), "{}", text(&p));
    }

    #[test]
    fn crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd\n\n"), b"a\r\nb\r\nc\rd\r\n\r\n");
        assert_eq!(to_crlf(b"\n"), b"\r\n");
        assert_eq!(to_crlf(b""), b"");
    }

    #[test]
    fn header_block_or_body() {
        let s = split(b"Subject: x\r\nX-Long: a\r\n b\r\n\r\nbody\r\n").unwrap();
        assert_eq!((s.header, s.body), (&b"Subject: x\r\nX-Long: a\r\n b\r\n"[..], &b"body\r\n"[..]));
        // Text with a colon is not a header; neither is a block of unknown names.
        assert_eq!(split(b"Error: disk full\r\n"), None);
        assert_eq!(split(b"Error: disk full\r\nsee log\r\n"), None);
        assert_eq!(split(b"Status: ok\r\n\r\nall good\r\n"), None);
        assert_eq!(split(b"hello\r\nSubject: x\r\n"), None);
        assert_eq!(split(b" indented\r\n"), None);
        assert_eq!(split(b""), None);
        // Headers then text without the blank line: the text is the body.
        let s = split(b"Subject: x\r\nbody line\r\n").unwrap();
        assert_eq!((s.header, s.body), (&b"Subject: x\r\n"[..], &b"body line\r\n"[..]));
        // Headers only.
        let s = split(b"Subject: x\r\n").unwrap();
        assert_eq!((s.header, s.body), (&b"Subject: x\r\n"[..], &b""[..]));
    }

    #[test]
    fn t_takes_to_cc_bcc_and_removes_bcc() {
        let input = format!(
            "From: Web <www@example.com>\nTo: Ops <{U1}@{DOMAIN}>, ops\nCc: {U1}@{DOMAIN}\nBcc: {U2}@{DOMAIN},\n  other@{DOMAIN}\nSubject: =?UTF-8?B?5pel5pys6Kqe?=\n\nbody\n"
        );
        let p = prepare(input.as_bytes(), &inv(true, true, &["extra"]), &ctx()).unwrap();
        assert_eq!(
            rcpts(&p),
            vec![format!("extra@{DOMAIN}"), format!("{U1}@{DOMAIN}"), format!("ops@{DOMAIN}"), format!("{U2}@{DOMAIN}"), format!("other@{DOMAIN}")]
        );
        assert_eq!(p.sender.as_ref().unwrap().to_string(), "www@example.com");
        assert_eq!(
            text(&p),
            format!("From: Web <www@example.com>\r\nTo: Ops <{U1}@{DOMAIN}>, ops\r\nCc: {U1}@{DOMAIN}\r\nSubject: =?UTF-8?B?5pel5pys6Kqe?=\r\n\r\nbody\r\n")
        );
        // Without -t the headers are not read for recipients, but Bcc still goes.
        let p = prepare(input.as_bytes(), &inv(false, true, &[U2]), &ctx()).unwrap();
        assert_eq!(rcpts(&p), vec![format!("{U2}@{DOMAIN}")]);
        assert!(!text(&p).contains("Bcc") && !text(&p).contains("other@"), "{}", text(&p));
    }

    #[test]
    fn cron_mail() {
        let input = format!("From: root (Cron Daemon)\nTo: {U1}@{DOMAIN}\nX-Cron-Env: <SHELL=/bin/sh>\n\nbackup ok\n");
        let i = Invocation { full_name: Some("CronDaemon".into()), ..inv(false, true, &[&format!("{U1}@{DOMAIN}")]) };
        let p = prepare(input.as_bytes(), &i, &ctx()).unwrap();
        assert_eq!(p.sender.as_ref().unwrap().to_string(), "root@web01.example.net");
        assert_eq!(rcpts(&p), vec![format!("{U1}@{DOMAIN}")]);
        assert_eq!(text(&p), input.replace('\n', "\r\n"));
    }

    #[test]
    fn recipients_arguments_lists_and_qualifying() {
        let p = prepare(b"Subject: s\n\nb\n", &inv(false, true, &["root", &format!("a@x.example, Ops <{U1}@{DOMAIN}>"), "ROOT"]), &ctx()).unwrap();
        assert_eq!(rcpts(&p), vec![format!("root@{DOMAIN}"), "a@x.example".into(), format!("{U1}@{DOMAIN}")]);
        let p = prepare(b"Subject: s\n\nb\n", &inv(false, true, &["not an address@", "b@y.example"]), &ctx()).unwrap();
        assert_eq!(rcpts(&p), vec!["b@y.example".to_owned()]);
        assert_eq!(p.malformed.len(), 1, "{:?}", p.malformed);
        assert_eq!(
            prepare(b"Subject: s\n\nb\n", &inv(false, true, &[]), &ctx()),
            Err(Problem::NoRecipients { from_headers: false })
        );
        assert_eq!(prepare(b"Subject: s\n\nb\n", &inv(true, true, &[]), &ctx()), Err(Problem::NoRecipients { from_headers: true }));
        assert_eq!(prepare(b"To: undisclosed-recipients:;\n\nb\n", &inv(true, true, &[]), &ctx()), Err(Problem::NoRecipients { from_headers: true }));
        // cronie: `-t` and `To: root`; a name with no address is reported, not dropped.
        let p = prepare(b"From: root (Cron Daemon)\nTo: root\n\nb\n", &inv(true, true, &[]), &ctx()).unwrap();
        assert_eq!((rcpts(&p), p.malformed.len()), (vec![format!("root@{DOMAIN}")], 0));
        let p = prepare(b"To: John Smith, a@b.example\n\nb\n", &inv(true, true, &[]), &ctx()).unwrap();
        assert_eq!((rcpts(&p), p.malformed), (vec!["a@b.example".to_owned()], vec!["John Smith".to_owned()]));
    }

    #[test]
    fn sender_choice() {
        let to = [U1];
        // -f wins, bare names get the hostname, '' is <>.
        let i = Invocation { sender: Some("cron".into()), ..inv(false, true, &to) };
        assert_eq!(prepare(b"From: a@b.example\n\nx", &i, &ctx()).unwrap().sender.unwrap().to_string(), "cron@web01.example.net");
        let i = Invocation { sender: Some(String::new()), ..inv(false, true, &to) };
        assert_eq!(prepare(b"From: a@b.example\n\nx", &i, &ctx()).unwrap().sender, None);
        let i = Invocation { sender: Some("a b@".into()), ..inv(false, true, &to) };
        assert_eq!(prepare(b"x", &i, &ctx()), Err(Problem::BadSender("a b@".into())));
        // Then the From header, then the caller, then <>.
        assert_eq!(prepare(b"From: a@b.example\n\nx", &inv(false, true, &to), &ctx()).unwrap().sender.unwrap().to_string(), "a@b.example");
        assert_eq!(prepare(b"Subject: s\n\nx", &inv(false, true, &to), &ctx()).unwrap().sender.unwrap().to_string(), "www-data@web01.example.net");
        let nobody = Context { default_sender: None, ..ctx() };
        let p = prepare(b"Subject: s\n\nx", &inv(false, true, &to), &nobody).unwrap();
        assert_eq!(p.sender, None);
        assert_eq!(text(&p), "Subject: s\r\n\r\nx");
    }

    #[test]
    fn mbox_from_line_is_dropped() {
        let patch = format!("From 1a2b3c Mon Sep 17 00:00:00 2001\nFrom: Dev <dev@example.org>\nTo: {U1}@{DOMAIN}\nSubject: [PATCH] fix\n\n---\n");
        let p = prepare(patch.as_bytes(), &inv(true, true, &[]), &ctx()).unwrap();
        assert_eq!(rcpts(&p), vec![format!("{U1}@{DOMAIN}")]);
        assert_eq!(text(&p), format!("From: Dev <dev@example.org>\r\nTo: {U1}@{DOMAIN}\r\nSubject: [PATCH] fix\r\n\r\n---\r\n"));
        // "From:" is a header, not a separator.
        let p = prepare(b"From: a@b.example\n\nx", &inv(false, true, &[U1]), &ctx()).unwrap();
        assert!(text(&p).starts_with("From: a@b.example\r\n"));
    }

    #[test]
    fn missing_from_is_added_with_the_full_name() {
        let i = Invocation { full_name: Some("Backup Job".into()), ..inv(false, true, &[U1]) };
        let p = prepare(b"Subject: s\n\nx\n", &i, &ctx()).unwrap();
        assert_eq!(text(&p), "From: \"Backup Job\" <www-data@web01.example.net>\r\nSubject: s\r\n\r\nx\r\n");
        let i = Invocation { full_name: Some("監視".into()), ..inv(false, true, &[U1]) };
        let p = prepare(b"Subject: s\n\nx\n", &i, &ctx()).unwrap();
        assert!(text(&p).starts_with("From: =?UTF-8?B?55uj6KaW?= <www-data@web01.example.net>\r\n"), "{}", text(&p));
        assert_eq!(mailbox(Some("a \"b\""), "x@y"), "\"a \\\"b\\\"\" <x@y>");
    }

    #[test]
    fn body_only_input_gets_minimal_headers() {
        let p = prepare("disk 91% full\ncheck /var\n".as_bytes(), &inv(false, true, &[U1, U2]), &ctx()).unwrap();
        assert_eq!(
            text(&p),
            format!(
                "From: www-data@web01.example.net\r\nTo: {U1}@{DOMAIN}, {U2}@{DOMAIN}\r\nDate: Tue, 1 Jul 2025 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\ndisk 91% full\r\ncheck /var\r\n"
            )
        );
        // Not UTF-8: replacement characters rather than a mail that lies about its charset.
        let p = prepare(b"caf\xe9 \xe2\x9c\x93\n", &inv(false, true, &[U1]), &ctx()).unwrap();
        assert!(text(&p).ends_with("8bit\r\n\r\ncaf\u{fffd} ✓\r\n"), "{}", text(&p));
        // Empty input is an empty mail, not an error.
        let p = prepare(b"", &inv(false, false, &[U1]), &ctx()).unwrap();
        assert!(text(&p).ends_with("7bit\r\n\r\n"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [&b"\r"[..], b"\n\n\n", b":\n", b"To:\n", b"\xff\xfe: x\n\n", b"To: <<<@@@>>>\n\n", b"Bcc:\n\n", b"From: \n Subject\n"] {
            let _ = prepare(input, &inv(true, false, &["x"]), &ctx());
        }
    }
}
