//! Which LINE channel a recipient belongs to, with `[[channels]]` (issue #21): a pure decision
//! from the recipient's domain and the AUTH login, which the session asks at RCPT.
//!
//! Each channel is a [`Lane`]: its name, its domain, the logins that may use it (none listed:
//! every sender the gateway accepts), and the facts the session needs about its recipients
//! (its aliases and its follower directory). Several lanes may share a domain only when each
//! lists its logins (the Kuroco model: one domain, one login per customer site); the
//! configuration refuses anything else, so [`select`] never has two candidates to choose from.

use std::collections::HashMap;
use std::sync::Arc;

use super::access::RecipientAccess;
use super::directory::Directory;
use crate::envelope::Recipient;

/// One `[[channels]]` entry as the session sees it.
#[derive(Clone)]
pub struct Lane {
    pub name: String,
    /// Lower case.
    pub domain: String,
    /// AUTH logins allowed to send through this channel; empty: every sender the gateway accepts.
    pub users: Vec<String>,
    /// The channel's aliases: lower-case name → the ids it reaches.
    pub aliases: HashMap<String, Vec<Recipient>>,
    /// Who may send to each protected alias of the channel.
    pub alias_access: HashMap<String, RecipientAccess>,
    /// The channel's followers (its own registry).
    pub directory: Option<Arc<dyn Directory>>,
}

impl Lane {
    /// A lane with no aliases and no directory: what tests and [`select`]'s callers start from.
    pub fn new(name: &str, domain: &str, users: &[&str]) -> Lane {
        Lane {
            name: name.to_owned(),
            domain: domain.to_ascii_lowercase(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            aliases: HashMap::new(),
            alias_access: HashMap::new(),
            directory: None,
        }
    }
}

/// Why no lane takes a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoLane {
    /// No channel serves the domain: a relay attempt.
    NotOurDomain,
    /// Channels serve the domain, but not to this login (or to a client without AUTH); the
    /// names of those channels, for the operator's log and the sender's bounce.
    NotAllowed { channels: Vec<String> },
}

/// The lane (its index in `lanes`) whose domain is `domain` and whose logins admit `user`.
pub fn select(lanes: &[Lane], domain: &str, user: Option<&str>) -> Result<usize, NoLane> {
    let mut serving = Vec::new();
    for (i, lane) in lanes.iter().enumerate() {
        if !lane.domain.eq_ignore_ascii_case(domain) {
            continue;
        }
        if lane.users.is_empty() || user.is_some_and(|u| lane.users.iter().any(|l| l == u)) {
            return Ok(i);
        }
        serving.push(lane.name.clone());
    }
    if serving.is_empty() {
        Err(NoLane::NotOurDomain)
    } else {
        Err(NoLane::NotAllowed { channels: serving })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_picks_the_channel_and_on_a_shared_domain_the_login_does() {
        let lanes = [
            Lane::new("shop-a", "text.line.shop-a.example", &[]),
            Lane::new("site-1", "text.line.r-cms.example", &["site-1"]),
            Lane::new("site-2", "text.line.r-cms.example", &["site-2", "admin-2"]),
            Lane::new("only-ops", "ops.example", &["ops"]),
        ];
        assert_eq!(select(&lanes, "TEXT.line.shop-a.example", None), Ok(0));
        assert_eq!(select(&lanes, "text.line.shop-a.example", Some("site-1")), Ok(0), "no users: open to every sender");
        assert_eq!(select(&lanes, "text.line.r-cms.example", Some("site-1")), Ok(1));
        assert_eq!(select(&lanes, "text.line.r-cms.example", Some("admin-2")), Ok(2));
        let both = NoLane::NotAllowed { channels: vec!["site-1".into(), "site-2".into()] };
        assert_eq!(select(&lanes, "text.line.r-cms.example", Some("stranger")), Err(both.clone()));
        assert_eq!(select(&lanes, "text.line.r-cms.example", None), Err(both));
        assert_eq!(select(&lanes, "ops.example", Some("site-1")), Err(NoLane::NotAllowed { channels: vec!["only-ops".into()] }));
        assert_eq!(select(&lanes, "elsewhere.example", Some("ops")), Err(NoLane::NotOurDomain));
        assert_eq!(select(&[], "text.line.shop-a.example", None), Err(NoLane::NotOurDomain));
    }
}
