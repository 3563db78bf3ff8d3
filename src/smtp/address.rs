//! Envelope addresses: parsing `MAIL FROM:` / `RCPT TO:` arguments and deciding whether a
//! recipient is one of ours.
//!
//! This is the open-relay guard, so it is deliberately strict: a recipient is accepted only when
//! its domain is exactly `smtp.domain` (ASCII case-insensitive) and its local part is exactly a
//! LINE id (or a plain name the session looks up as an alias or `followers`). Anything clever —
//! quoted local parts, `%` or `!` routing, IP literals, trailing dots — simply fails one of those
//! two exact comparisons.
//!
//! The one suffix understood is `+urgent` (issue #17): `<id>+urgent@domain`,
//! `<alias>+urgent@domain` and `followers+urgent@domain` reach the same recipients as without it
//! and mark the mail urgent. It is cut off before the comparisons above, so what is left must
//! still be exactly an id or a plain name; any other `+tag` is not subaddressing but a refused
//! local part, as before.

use crate::envelope::Recipient;

use super::reply::Reply;

/// `<path> PARAM=VALUE ...` split into the path (without brackets) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    pub path: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Parses the argument after `FROM:` or `TO:`. Accepts the RFC form `<path> params` and, because
/// old senders (cron scripts, printers) still send it, a bare `path` without brackets.
pub fn parse_path_arg(arg: &str) -> Result<PathArg, Reply> {
    let arg = arg.trim_start();
    let (path, rest) = if let Some(inner) = arg.strip_prefix('<') {
        // A quoted local part may contain '>', so find the closing bracket outside quotes.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '>' if !in_quotes => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| Reply::new(501, "5.1.7", "Syntax error: missing '>' in address"))?;
        (&inner[..end], &inner[end + 1..])
    } else {
        match arg.find(' ') {
            Some(i) => (&arg[..i], &arg[i..]),
            None => (arg, ""),
        }
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(Reply::new(501, "5.5.4", "Syntax error: expected a space after the address"));
    }
    // RFC 5321 4.1.1.3: a source route (`@a,@b:user@dom`) must be accepted and ignored.
    let path = match path.strip_prefix('@') {
        Some(_) => match path.find(':') {
            Some(i) => &path[i + 1..],
            None => return Err(Reply::new(501, "5.1.3", "Syntax error: malformed source route")),
        },
        None => path,
    };
    let mut params = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        match word.split_once('=') {
            Some((k, v)) => params.push((k.to_ascii_uppercase(), Some(v.to_owned()))),
            None => params.push((word.to_ascii_uppercase(), None)),
        }
    }
    Ok(PathArg { path: path.to_owned(), params })
}

/// Why a recipient was refused; the reply is chosen by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptError {
    /// The domain is not ours: we are not a relay.
    NotOurDomain,
    /// Our domain, but the local part is not a LINE id.
    BadId,
    /// No address at all, e.g. `RCPT TO:<>`.
    Empty,
}

impl RcptError {
    pub fn reply(&self, addr: &str) -> Reply {
        match self {
            RcptError::NotOurDomain => Reply::new(
                550,
                "5.7.1",
                format!("<{addr}>: relay access denied; this gateway only accepts mail for its LINE domain"),
            ),
            RcptError::BadId => Reply::new(
                550,
                "5.1.1",
                format!("<{addr}>: not a LINE id; use <U|C|R + 32 lowercase hex>@domain"),
            ),
            RcptError::Empty => Reply::new(501, "5.1.3", "Syntax error: empty recipient address"),
        }
    }
}

/// What the local part of one of our addresses names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// A LINE id.
    Id(Recipient),
    /// Anything else that could be an alias or `followers`, lower-cased.
    Name(String),
}

/// One of our addresses, resolved: what its local part names, and whether it asked for urgency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The local part without any `+urgent`.
    pub local: Local,
    /// The local part ended in `+urgent` (any ASCII case): the sender wants the mail treated as
    /// urgent whatever its headers say.
    pub urgent: bool,
}

/// The suffix that marks a recipient address urgent.
const URGENT_SUFFIX: &str = "+urgent";

/// Splits `addr` into our local part, refusing foreign domains. `domain` must be lower case.
pub fn resolve_local(addr: &str, domain: &str) -> Result<Resolved, RcptError> {
    if addr.is_empty() {
        return Err(RcptError::Empty);
    }
    let (local, dom) = addr.rsplit_once('@').ok_or(RcptError::NotOurDomain)?;
    if !dom.eq_ignore_ascii_case(domain) {
        return Err(RcptError::NotOurDomain);
    }
    let (local, urgent) = strip_urgent(local);
    Ok(Resolved { local: classify_local(local)?, urgent })
}

/// Cuts a trailing `+urgent` (ASCII case-insensitive) off `local`, saying whether it was there.
/// Only once, and only this word: `a+urgent+urgent` keeps a `+` and is then refused like any
/// other `+tag`; a bare `+urgent` leaves nothing, which is no id and no name.
fn strip_urgent(local: &str) -> (&str, bool) {
    let Some(cut) = local.len().checked_sub(URGENT_SUFFIX.len()) else {
        return (local, false);
    };
    // `get` rather than indexing: `cut` may fall inside a multi-byte character.
    match (local.get(..cut), local.get(cut..)) {
        (Some(rest), Some(suffix)) if suffix.eq_ignore_ascii_case(URGENT_SUFFIX) => (rest, true),
        _ => (local, false),
    }
}

/// What a local part (without `+urgent`) names: exactly a LINE id, or a plain name.
fn classify_local(local: &str) -> Result<Local, RcptError> {
    if let Some(r) = Recipient::from_line_id(local) {
        return Ok(Local::Id(r));
    }
    // Names are plain: quoting, routing characters and the like are never an alias.
    if !local.is_empty() && local.len() <= 64 && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Ok(Local::Name(local.to_ascii_lowercase()));
    }
    Err(RcptError::BadId)
}

/// Decides whether `addr` is exactly `<LINE id>@<domain>` (no `+urgent`: the session resolves
/// recipients with [`resolve_local`]). `domain` must already be lower case.
pub fn resolve_recipient(addr: &str, domain: &str) -> Result<Recipient, RcptError> {
    if addr.is_empty() {
        return Err(RcptError::Empty);
    }
    // The last '@' separates the domain: a local part with '@' inside would need quoting,
    // and then it is not a LINE id anyway.
    let (local, dom) = match addr.rsplit_once('@') {
        Some(parts) => parts,
        None => return Err(RcptError::NotOurDomain),
    };
    if !dom.eq_ignore_ascii_case(domain) {
        return Err(RcptError::NotOurDomain);
    }
    Recipient::from_line_id(local).ok_or(RcptError::BadId)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "text.line.example.com";
    const ID: &str = "U0123456789abcdef0123456789abcdef";

    #[test]
    fn path_with_params() {
        let p = parse_path_arg("<a@b.c> SIZE=123 BODY=8BITMIME smtputf8").unwrap();
        assert_eq!(p.path, "a@b.c");
        assert_eq!(
            p.params,
            vec![
                ("SIZE".into(), Some("123".into())),
                ("BODY".into(), Some("8BITMIME".into())),
                ("SMTPUTF8".into(), None)
            ]
        );
    }

    #[test]
    fn null_path_bare_path_and_source_route() {
        assert_eq!(parse_path_arg("<>").unwrap().path, "");
        assert_eq!(parse_path_arg(" a@b.c").unwrap().path, "a@b.c");
        assert_eq!(parse_path_arg("<@relay.example,@x.example:u@d.example>").unwrap().path, "u@d.example");
        assert_eq!(parse_path_arg("<\"a>b\"@c.d>").unwrap().path, "\"a>b\"@c.d");
        assert!(parse_path_arg("<a@b.c").is_err());
        assert!(parse_path_arg("<a@b.c>SIZE=1").is_err());
        assert!(parse_path_arg("<@relay.example>").is_err());
    }

    #[test]
    fn our_recipients_resolve() {
        assert_eq!(resolve_recipient(&format!("{ID}@{DOMAIN}"), DOMAIN), Ok(Recipient::User(ID.into())));
        assert_eq!(
            resolve_recipient(&format!("{ID}@TEXT.Line.Example.COM"), DOMAIN),
            Ok(Recipient::User(ID.into()))
        );
        let group = format!("C{}", &ID[1..]);
        assert_eq!(resolve_recipient(&format!("{group}@{DOMAIN}"), DOMAIN), Ok(Recipient::Group(group)));
    }

    #[test]
    fn relay_tricks_are_refused() {
        use RcptError::*;
        let cases: &[(&str, RcptError)] = &[
            ("someone@gmail.com", NotOurDomain),
            ("user%gmail.com@text.line.example.com", BadId),
            ("gmail.com!user@text.line.example.com", BadId),
            ("\"U0123456789abcdef0123456789abcdef\"@text.line.example.com", BadId),
            ("U0123456789abcdef0123456789abcdef@text.line.example.com.", NotOurDomain),
            ("U0123456789abcdef0123456789abcdef@[127.0.0.1]", NotOurDomain),
            ("U0123456789abcdef0123456789abcdef@gmail.com@text.line.example.com", BadId),
            ("U0123456789abcdef0123456789abcdef@sub.text.line.example.com", NotOurDomain),
            ("U0123456789abcdef0123456789abcdef@line.example.com", NotOurDomain),
            ("U0123456789ABCDEF0123456789ABCDEF@text.line.example.com", BadId),
            ("u0123456789abcdef0123456789abcdef@text.line.example.com", BadId),
            ("postmaster", NotOurDomain),
            ("", Empty),
        ];
        for (addr, want) in cases {
            assert_eq!(resolve_recipient(addr, DOMAIN).as_ref(), Err(want), "{addr}");
        }
    }

    /// What `resolve_local` answers for an address without `+urgent`.
    fn routine(local: Local) -> Result<Resolved, RcptError> {
        Ok(Resolved { local, urgent: false })
    }

    /// What `resolve_local` answers for an address with `+urgent`.
    fn urgent(local: Local) -> Result<Resolved, RcptError> {
        Ok(Resolved { local, urgent: true })
    }

    #[test]
    fn names_are_plain_lowercased_local_parts() {
        assert_eq!(resolve_local(&format!("Ops@{DOMAIN}"), DOMAIN), routine(Local::Name("ops".into())));
        assert_eq!(resolve_local(&format!("{ID}@{DOMAIN}"), DOMAIN), routine(Local::Id(Recipient::User(ID.into()))));
        assert_eq!(resolve_local("ops@gmail.com", DOMAIN), Err(RcptError::NotOurDomain));
        assert_eq!(resolve_local(&format!("\"ops\"@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
        assert_eq!(resolve_local(&format!("a%b@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
        assert_eq!(resolve_local(&format!("@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
    }

    #[test]
    fn urgent_suffix_is_cut_off_ids_aliases_and_followers() {
        let group = format!("C{}", &ID[1..]);
        let cases: &[(String, Local)] = &[
            (format!("{ID}+urgent"), Local::Id(Recipient::User(ID.into()))),
            (format!("{group}+urgent"), Local::Id(Recipient::Group(group.clone()))),
            (format!("{ID}+URGENT"), Local::Id(Recipient::User(ID.into()))),
            (format!("{ID}+Urgent"), Local::Id(Recipient::User(ID.into()))),
            ("ops+urgent".into(), Local::Name("ops".into())),
            ("OPS+URGENT".into(), Local::Name("ops".into())),
            ("on-call.team+uRgEnT".into(), Local::Name("on-call.team".into())),
            ("followers+urgent".into(), Local::Name("followers".into())),
        ];
        for (local, want) in cases {
            assert_eq!(resolve_local(&format!("{local}@{DOMAIN}"), DOMAIN), urgent(want.clone()), "{local}");
            assert_eq!(resolve_local(&format!("{local}@TEXT.LINE.example.com"), DOMAIN), urgent(want.clone()), "{local}");
        }
    }

    #[test]
    fn other_tags_and_broken_urgent_forms_are_refused() {
        let hex = &ID[1..];
        for local in [
            "+urgent".to_owned(),
            "+URGENT".to_owned(),
            "ops+other".to_owned(),
            "ops+".to_owned(),
            "ops+urgent+urgent".to_owned(),
            "ops+other+urgent".to_owned(),
            "ops+urgentx".to_owned(),
            "ops+urgen".to_owned(),
            "ops-urgent+".to_owned(),
            "urgent+ops".to_owned(),
            "ops +urgent".to_owned(),
            "\"ops\"+urgent".to_owned(),
            "\"ops+urgent\"".to_owned(),
            "ops%gmail.com+urgent".to_owned(),
            "ops+urgent\0".to_owned(),
            "ops\0+urgent".to_owned(),
            // Lookalikes of the suffix: fullwidth plus, Cyrillic 'у', subscript 'ᵤ'.
            "ops\u{ff0b}urgent".to_owned(),
            "ops+\u{0443}rgent".to_owned(),
            "ops+\u{1d64}rgent".to_owned(),
            format!("{ID}+tag"),
            format!("{ID}+"),
            format!("{}+urgent", "x".repeat(65)),
        ] {
            assert_eq!(resolve_local(&format!("{local}@{DOMAIN}"), DOMAIN), Err(RcptError::BadId), "{local:?}");
        }
        // What is left must be exactly an id: a near miss is at most a name (which the session
        // then looks up as an alias and refuses).
        for local in [format!("u{hex}+urgent"), format!("U{}+urgent", hex.to_ascii_uppercase()), format!("{ID}0+urgent")] {
            let got = resolve_local(&format!("{local}@{DOMAIN}"), DOMAIN);
            assert!(matches!(got, Ok(Resolved { local: Local::Name(_), .. })), "{local:?}: {got:?}");
        }
        // The longest name still fits once the suffix is off: the limit is on the name.
        let longest = "x".repeat(64);
        assert_eq!(resolve_local(&format!("{longest}+urgent@{DOMAIN}"), DOMAIN), urgent(Local::Name(longest)));
        // A multi-byte character where the suffix would start is no panic.
        assert_eq!(resolve_local(&format!("\u{3042}urgent@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
        assert_eq!(resolve_local(&format!("\u{3042}\u{3042}\u{3042}@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
    }

    #[test]
    fn urgent_at_a_foreign_domain_is_still_relaying() {
        for addr in [
            format!("{ID}+urgent@gmail.com"),
            "ops+urgent@gmail.com".to_owned(),
            "followers+urgent@line.example.com".to_owned(),
            format!("{ID}+urgent@{DOMAIN}.evil.org"),
            format!("{ID}+urgent@{DOMAIN}."),
            "ops+urgent@[127.0.0.1]".to_owned(),
            format!("ops+urgent@gmail.com@{DOMAIN}x"),
        ] {
            assert_eq!(resolve_local(&addr, DOMAIN), Err(RcptError::NotOurDomain), "{addr}");
        }
        // The bare form alone, without a domain, is not ours either.
        assert_eq!(resolve_local("ops+urgent", DOMAIN), Err(RcptError::NotOurDomain));
    }

    #[test]
    fn strip_urgent_cuts_once_and_only_the_suffix() {
        assert_eq!(strip_urgent("a+urgent"), ("a", true));
        assert_eq!(strip_urgent("a+URGENT"), ("a", true));
        assert_eq!(strip_urgent("+urgent"), ("", true));
        assert_eq!(strip_urgent("a+urgent+urgent"), ("a+urgent", true));
        assert_eq!(strip_urgent("urgent"), ("urgent", false));
        assert_eq!(strip_urgent(""), ("", false));
        assert_eq!(strip_urgent("\u{3042}\u{3042}\u{3042}"), ("\u{3042}\u{3042}\u{3042}", false));
    }

    #[test]
    fn exact_recipients_still_refuse_the_suffix() {
        assert_eq!(resolve_recipient(&format!("{ID}+urgent@{DOMAIN}"), DOMAIN), Err(RcptError::BadId));
    }

    #[test]
    fn lookalike_escaped_and_literal_domains_are_not_ours() {
        // The comparison must stay ASCII-only: Unicode case folding would turn the dotless 'ı'
        // of "lıne" into 'I', and IDNA would read the fullwidth or ideographic full stop as '.'.
        for dom in [
            "t\u{0435}xt.line.example.com",
            "text.l\u{0131}ne.example.com",
            "text\u{ff0e}line\u{ff0e}example\u{ff0e}com",
            "text\u{3002}line\u{3002}example\u{3002}com",
            "text.line.example.com\u{200b}",
            "text.line.example.com\0",
            "text.line.example.com\r",
            "text%2eline.example.com",
            "TEXT.LINE.EXAMPLE.COM.",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "[text.line.example.com]",
        ] {
            for local in [ID, "ops", "followers"] {
                assert_eq!(resolve_local(&format!("{local}@{dom}"), DOMAIN), Err(RcptError::NotOurDomain), "{local}@{dom:?}");
            }
        }
    }

    #[test]
    fn control_bytes_and_lookalikes_in_the_local_part_are_neither_ids_nor_names() {
        let hex = &ID[1..];
        for local in [
            format!("{ID}\0"),
            format!("{ID}\r"),
            format!("\0{ID}"),
            format!("\u{ff35}{hex}"),
            format!("U{}", hex.replace('a', "\u{0430}")),
            "ops\0".to_owned(),
            "op\u{200b}s".to_owned(),
            "\u{ff4f}ps".to_owned(),
            "ops\r".to_owned(),
            "ops\\".to_owned(),
        ] {
            assert_eq!(resolve_local(&format!("{local}@{DOMAIN}"), DOMAIN), Err(RcptError::BadId), "{local:?}");
        }
    }

    #[test]
    fn refusal_codes() {
        assert_eq!(RcptError::NotOurDomain.reply("x@y").code, 550);
        assert_eq!(RcptError::NotOurDomain.reply("x@y").status, "5.7.1");
        assert_eq!(RcptError::BadId.reply("x@y").status, "5.1.1");
    }
}
