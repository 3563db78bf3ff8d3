//! `[routing]` and `[aliases]`, as written in the configuration file and checked when it is
//! loaded: the local parts the session knows besides LINE ids (`followers@`, each alias) and who
//! may send to them. Here rather than in `delivery` because the session (`Rules`) is what uses
//! them, and `smtp` may not import `delivery`; the checks need `[smtp]`'s users and AUTH mode,
//! which are this module's too. What the checks parse (the access lists) is kept.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::access::{AuthMode, RecipientAccess};
use super::Settings;
use crate::envelope::Recipient;

/// `[routing]`: the followers address and who may send to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// `<followers_address>@<domain>` reaches every active follower.
    pub followers_address: String,
    /// MAIL FROM patterns (`@example.com`, `cron@host.example`) that may send to the followers
    /// address. Both this and `followers_users` empty: nobody may (closed by default).
    pub followers_senders: Vec<String>,
    /// `[[smtp.users]]` logins that may send to the followers address, whatever their MAIL FROM.
    pub followers_users: Vec<String>,
    /// `followers_senders` and `followers_users` parsed; filled in by [`Routing::validate_access`].
    #[serde(skip)]
    pub followers_access: RecipientAccess,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            followers_address: "followers".into(),
            followers_senders: Vec::new(),
            followers_users: Vec::new(),
            followers_access: RecipientAccess::default(),
        }
    }
}

/// One `[aliases]` entry. Written as a list of ids (`ops = ["U…"]`: open to every sender the
/// gateway accepts, as before tables existed) or as a table
/// (`ops = { ids = ["U…"], senders = ["@example.com"], users = ["cms"] }`). A table with
/// `senders` or `users` is protected like `followers@`; a table with neither is open, exactly
/// as the list form, so that writing `ids =` around a list changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// The LINE ids the alias reaches.
    pub ids: Vec<String>,
    /// MAIL FROM patterns that may send to it (as `smtp.allowed_senders`).
    #[serde(default)]
    pub senders: Vec<String>,
    /// AUTH logins that may send to it.
    #[serde(default)]
    pub users: Vec<String>,
}

impl Alias {
    /// Whether only listed senders and users may send to the alias.
    pub fn is_protected(&self) -> bool {
        !self.senders.is_empty() || !self.users.is_empty()
    }
}

/// `[aliases]`, each entry a list or a table (for `#[serde(deserialize_with)]`). By hand rather
/// than `#[serde(untagged)]`: untagged reports any mistake in a table as "did not match any
/// variant", where the admin needs "unknown field `sender`".
pub fn aliases_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Alias>, D::Error> {
    struct ListOrTable(Alias);
    impl<'de> Deserialize<'de> for ListOrTable {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(AliasVisitor).map(ListOrTable)
        }
    }
    struct AliasVisitor;
    impl<'de> serde::de::Visitor<'de> for AliasVisitor {
        type Value = Alias;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of LINE ids, or a table { ids = [...], senders = [...], users = [...] }")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Alias, A::Error> {
            let ids = Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
            Ok(Alias { ids, ..Alias::default() })
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Alias, A::Error> {
            Alias::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    let entries = BTreeMap::<String, ListOrTable>::deserialize(d)?;
    Ok(entries.into_iter().map(|(name, ListOrTable(alias))| (name, alias)).collect())
}

/// `[aliases]` as the session's recipients (the ids were checked when the configuration was
/// loaded).
pub fn alias_recipients(aliases: &BTreeMap<String, Alias>) -> HashMap<String, Vec<Recipient>> {
    aliases.iter().map(|(name, alias)| (name.clone(), alias.ids.iter().filter_map(|id| Recipient::from_line_id(id)).collect())).collect()
}

impl Routing {
    /// Who may send to `followers@` and to protected aliases: sender patterns as
    /// `allowed_senders`, logins that exist in `smtp` and can log in. Keeps the followers' lists
    /// parsed and returns each protected alias's; `(key, message)` problems.
    pub fn validate_access(&mut self, aliases: &BTreeMap<String, Alias>, smtp: &Settings) -> (Vec<(String, String)>, HashMap<String, RecipientAccess>) {
        let mut p = Vec::new();
        let followers =
            check_access_lists(smtp, &mut p, ("routing.followers_senders", ""), &self.followers_senders, ("routing.followers_users", ""), &self.followers_users);
        let mut access = HashMap::new();
        for (name, alias) in aliases.iter().filter(|(_, alias)| alias.is_protected()) {
            // An inline table has no line per field: the key is the alias, the field leads the message.
            let key = format!("aliases.{name}");
            access.extend(check_access_lists(smtp, &mut p, (&key, "senders: "), &alias.senders, (&key, "users: "), &alias.users).map(|a| (name.clone(), a)));
        }
        self.followers_access = followers.unwrap_or_default();
        (p, access)
    }

    /// The followers address and the aliases' names and ids; `(key, message)` problems.
    pub fn validate(&self, aliases: &BTreeMap<String, Alias>) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !is_local_part(&self.followers_address) {
            p.push(("routing.followers_address".to_owned(), format!("{:?} is not a usable local part (lowercase letters, digits, '.', '-', '_')", self.followers_address)));
        }
        for (name, Alias { ids, .. }) in aliases {
            if !is_local_part(name) || Recipient::from_line_id(name).is_some() {
                p.push((format!("aliases.{name}"), format!("alias {name:?} is not a usable local part (lowercase letters, digits, '.', '-', '_'; not a LINE id)")));
            } else if *name == self.followers_address {
                p.push((format!("aliases.{name}"), format!("alias {name:?} clashes with routing.followers_address")));
            }
            if ids.is_empty() {
                p.push((format!("aliases.{name}"), format!("alias {name:?} has no ids")));
            }
            for id in ids {
                if Recipient::from_line_id(id).is_none() {
                    p.push((format!("aliases.{name}"), format!("alias {name:?}: {id:?} is not a LINE id (U, C or R + 32 lowercase hex)")));
                }
            }
        }
        p
    }
}

/// Problems with one pair of access lists; each key comes with a prefix for its messages.
fn check_access_lists(
    smtp: &Settings,
    p: &mut Vec<(String, String)>,
    senders_key: (&str, &str),
    senders: &[String],
    users_key: (&str, &str),
    users: &[String],
) -> Option<RecipientAccess> {
    let access = RecipientAccess::parse(senders, users).map_err(|e| p.push((senders_key.0.to_owned(), format!("{}{e}", senders_key.1)))).ok();
    let (key, field) = users_key;
    for user in users {
        if !smtp.users.iter().any(|u| u.name == *user) {
            p.push((key.to_owned(), format!("{field}{user:?} is not a login in [[smtp.users]]")));
        } else if smtp.auth == AuthMode::Off {
            p.push((key.to_owned(), format!("{field}{user:?} can never log in while smtp.auth is \"off\"; set it to \"optional\" or \"required\"")));
        }
    }
    access
}

fn is_local_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}
