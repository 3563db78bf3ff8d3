//! Who may use the gateway: the client allowlist (`smtp.allowed_clients`), the sender allowlist
//! (`smtp.allowed_senders`) and the authentication mode (`smtp.auth`), decided as pure functions
//! of an address and the configuration.
//!
//! The rules, in one place because they interact:
//! - `allowed_clients` empty means every address may connect.
//! - A client outside a non-empty `allowed_clients` is refused at connect (554 5.7.1), except
//!   when `auth = "optional"`: then it is let in but must authenticate before MAIL. That is what
//!   lets a LAN printer send without a password while a CMS elsewhere logs in.
//! - `auth = "required"`: everyone authenticates before MAIL, listed or not.
//! - `allowed_senders` (if not empty) applies to every MAIL FROM, authenticated or not.
//! - A protected recipient (`followers@`, an alias table with `senders`/`users`) is decided at
//!   RCPT by [`RecipientAccess`]: a matching MAIL FROM or a listed AUTH login. Unlike the
//!   allowlists above, empty lists there admit nobody: a broadcast is closed until opened.

use std::net::IpAddr;

use ipnet::IpNet;

/// `smtp.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No AUTH offered; access is by `allowed_clients` alone.
    #[default]
    Off,
    /// AUTH offered; clients on `allowed_clients` may skip it, others must authenticate.
    Optional,
    /// Every client must authenticate before MAIL.
    Required,
}

/// The client allowlist, parsed.
#[derive(Debug, Clone, Default)]
pub struct ClientList(Vec<IpNet>);

impl ClientList {
    /// Parses CIDRs (`192.168.0.0/16`) and bare addresses (`10.0.0.7`, a /32 or /128).
    /// The error names the entry that is wrong.
    pub fn parse(entries: &[String]) -> Result<ClientList, ListError> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(a) => IpNet::from(a),
                    Err(_) => return Err(ListError::NotAClient(e.to_owned())),
                },
            };
            nets.push(net);
        }
        Ok(ClientList(nets))
    }

    /// Whether `ip` is listed; an empty list lists everyone. IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`, what a dual-stack listener reports) match their IPv4 entries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What happens to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Let in; `must_auth` says whether MAIL needs a successful AUTH first.
    Admit { must_auth: bool },
    /// Refuse with 554 5.7.1 and close.
    Refuse,
}

/// Decides a new connection from `ip`.
pub fn admit(clients: &ClientList, auth: AuthMode, ip: IpAddr) -> Admission {
    let listed = clients.contains(ip);
    match (auth, listed) {
        (AuthMode::Off, true) => Admission::Admit { must_auth: false },
        (AuthMode::Off, false) => Admission::Refuse,
        (AuthMode::Optional, listed) => Admission::Admit { must_auth: !listed },
        (AuthMode::Required, true) => Admission::Admit { must_auth: true },
        (AuthMode::Required, false) => Admission::Refuse,
    }
}

/// One `allowed_senders` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SenderPattern {
    /// `@example.com`: any local part at exactly this domain (lower case).
    Domain(String),
    /// `cron@host.example`: this address (domain compared without case; local part exactly,
    /// as RFC 5321 says local parts are case-sensitive, except that we also accept it in any
    /// ASCII case because senders rarely rely on that).
    Address(String),
}

/// The entry of a client or sender list that cannot be read, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("{0:?} is not an address or CIDR block, e.g. \"192.168.0.0/16\" or \"10.0.0.7\"")]
    NotAClient(String),
    #[error("{0:?} is not a domain pattern; write \"@example.com\"")]
    NotADomainPattern(String),
    #[error("{0:?} is neither an address (\"cron@host.example\") nor a domain pattern (\"@example.com\")")]
    NotASender(String),
}

/// The sender allowlist, parsed.
#[derive(Debug, Clone, Default)]
pub struct SenderList(Vec<SenderPattern>);

impl SenderList {
    pub fn parse(entries: &[String]) -> Result<SenderList, ListError> {
        let mut patterns = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.trim();
            let pattern = match e.strip_prefix('@') {
                Some(domain) if is_plain_domain(domain) => SenderPattern::Domain(domain.to_ascii_lowercase()),
                Some(_) => return Err(ListError::NotADomainPattern(e.to_owned())),
                None => match e.rsplit_once('@') {
                    Some((local, domain)) if !local.is_empty() && is_plain_domain(domain) => {
                        SenderPattern::Address(e.to_ascii_lowercase())
                    }
                    _ => return Err(ListError::NotASender(e.to_owned())),
                },
            };
            patterns.push(pattern);
        }
        Ok(SenderList(patterns))
    }

    /// Whether the list has no entry (and so, as `allowed_senders`, allows everyone).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the reverse path may send. An empty list allows everyone; a non-empty list
    /// never allows the null sender `<>` (bounces have no business here).
    pub fn allows(&self, from: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some((_, domain)) = from.rsplit_once('@') else { return false };
        let from_lower = from.to_ascii_lowercase();
        self.0.iter().any(|p| match p {
            SenderPattern::Domain(d) => domain.eq_ignore_ascii_case(d),
            SenderPattern::Address(a) => from_lower == *a,
        })
    }
}

/// Who may send to a protected recipient: `followers@` (`[routing] followers_senders` and
/// `followers_users`) or an alias table with `senders`/`users`. A sender matching `senders`
/// (the patterns of `allowed_senders`) or a session logged in as one of `users` may.
///
/// Closed by default: with both lists empty nobody may, because one mail to `followers@`
/// multicasts to every follower and can spend a month's LINE quota. The null sender `<>` never
/// may, even when logged in: a bounce must not become a broadcast.
#[derive(Debug, Clone, Default)]
pub struct RecipientAccess {
    senders: SenderList,
    users: Vec<String>,
}

impl RecipientAccess {
    /// The error names the sender entry that is wrong; logins are taken as written (they are
    /// compared exactly, as AUTH compares them).
    pub fn parse(senders: &[String], users: &[String]) -> Result<RecipientAccess, ListError> {
        Ok(RecipientAccess { senders: SenderList::parse(senders)?, users: users.to_vec() })
    }

    /// Whether the transaction from `from` (empty for `<>`), logged in as `user` if at all,
    /// may send to the protected recipient.
    pub fn allows(&self, from: &str, user: Option<&str>) -> bool {
        if from.is_empty() {
            return false;
        }
        let by_sender = !self.senders.is_empty() && self.senders.allows(from);
        let by_login = user.is_some_and(|u| self.users.iter().any(|listed| listed == u));
        by_sender || by_login
    }
}

fn is_plain_domain(d: &str) -> bool {
    !d.is_empty()
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains("..")
        && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(e: &[&str]) -> ClientList {
        ClientList::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn senders(e: &[&str]) -> SenderList {
        SenderList::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn client_list_matches_cidrs_addresses_and_mapped_v4() {
        let l = list(&["127.0.0.0/8", "192.168.0.0/16", "10.0.0.7", "2001:db8::/32"]);
        assert!(l.contains("127.1.2.3".parse().unwrap()));
        assert!(l.contains("192.168.44.1".parse().unwrap()));
        assert!(l.contains("10.0.0.7".parse().unwrap()));
        assert!(!l.contains("10.0.0.8".parse().unwrap()));
        assert!(l.contains("2001:db8::1".parse().unwrap()));
        assert!(l.contains("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!l.contains("::ffff:8.8.8.8".parse().unwrap()));
        assert!(!l.contains("8.8.8.8".parse().unwrap()));
        assert!(ClientList::default().contains("8.8.8.8".parse().unwrap()));
        let err = ClientList::parse(&["192.168.0.0/33".into()]).unwrap_err().to_string();
        assert!(err.contains("192.168.0.0/33"), "{err}");
        assert!(ClientList::parse(&["example.com".into()]).is_err());
    }

    #[test]
    fn admission_table() {
        let l = list(&["192.168.0.0/16"]);
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let wan: IpAddr = "203.0.113.9".parse().unwrap();
        use Admission::*;
        assert_eq!(admit(&l, AuthMode::Off, lan), Admit { must_auth: false });
        assert_eq!(admit(&l, AuthMode::Off, wan), Refuse);
        assert_eq!(admit(&l, AuthMode::Optional, lan), Admit { must_auth: false });
        assert_eq!(admit(&l, AuthMode::Optional, wan), Admit { must_auth: true });
        assert_eq!(admit(&l, AuthMode::Required, lan), Admit { must_auth: true });
        assert_eq!(admit(&l, AuthMode::Required, wan), Refuse);
        let open = ClientList::default();
        assert_eq!(admit(&open, AuthMode::Optional, wan), Admit { must_auth: false });
        assert_eq!(admit(&open, AuthMode::Required, wan), Admit { must_auth: true });
    }

    #[test]
    fn sender_patterns() {
        let s = senders(&["@example.com", "cron@host.example"]);
        assert!(s.allows("web@example.com"));
        assert!(s.allows("Web@EXAMPLE.com"));
        assert!(!s.allows("web@sub.example.com"));
        assert!(!s.allows("web@example.com.evil.org"));
        assert!(!s.allows("web@evilexample.com"));
        assert!(s.allows("cron@host.example"));
        assert!(s.allows("CRON@Host.Example"));
        assert!(!s.allows("root@host.example"));
        assert!(!s.allows(""));
        assert!(!s.allows("example.com"));
        assert!(SenderList::default().allows(""));
        for bad in ["@", "@-x..y", "cron@", "@exa mple.com", "nobody"] {
            assert!(SenderList::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn recipient_access_is_closed_unless_listed() {
        let strings = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let closed = RecipientAccess::default();
        assert!(!closed.allows("web@example.com", None));
        assert!(!closed.allows("web@example.com", Some("cms")));
        let a = RecipientAccess::parse(&strings(&["@example.com", "cron@host.example"]), &strings(&["cms"])).unwrap();
        assert!(a.allows("Web@Example.com", None));
        assert!(a.allows("cron@host.example", None));
        assert!(!a.allows("root@host.example", None));
        assert!(!a.allows("web@sub.example.com", None));
        // A login is matched exactly, and only a listed one opens the door.
        assert!(a.allows("anyone@elsewhere.example", Some("cms")));
        assert!(!a.allows("anyone@elsewhere.example", Some("CMS")));
        assert!(!a.allows("anyone@elsewhere.example", Some("printer")));
        // The null sender never, logged in or not.
        assert!(!a.allows("", None));
        assert!(!a.allows("", Some("cms")));
        let users_only = RecipientAccess::parse(&[], &strings(&["cms"])).unwrap();
        assert!(!users_only.allows("web@example.com", None), "an empty sender list admits nobody here");
        let err = RecipientAccess::parse(&strings(&["example.com"]), &[]).unwrap_err().to_string();
        assert!(err.contains("\"example.com\""), "{err}");
    }
}
