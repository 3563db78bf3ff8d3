//! Types that cross module lines: who a mail is for, as decided at RCPT time.

use std::fmt;

/// A LINE destination an SMTP recipient resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    /// A user id (`U` + 32 hex): reachable by push and multicast.
    User(String),
    /// A group chat id (`C` + 32 hex): push only.
    Group(String),
    /// A multi-person chat id (`R` + 32 hex): push only.
    Room(String),
    /// `followers@<domain>`: every active follower, expanded when the mail is delivered (so a
    /// mail reaches whoever follows at that moment).
    Followers,
}

impl Recipient {
    /// The LINE id, as LINE's `to` field wants it.
    pub fn id(&self) -> &str {
        match self {
            Recipient::User(id) | Recipient::Group(id) | Recipient::Room(id) => id,
            Recipient::Followers => "followers",
        }
    }

    /// Parses a LINE id: `U`, `C` or `R` followed by exactly 32 lowercase hex digits.
    pub fn from_line_id(id: &str) -> Option<Recipient> {
        let bytes = id.as_bytes();
        if bytes.len() != 33 || !bytes[1..].iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        match bytes[0] {
            b'U' => Some(Recipient::User(id.to_owned())),
            b'C' => Some(Recipient::Group(id.to_owned())),
            b'R' => Some(Recipient::Room(id.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ids() {
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(Recipient::from_line_id(&format!("U{hex}")), Some(Recipient::User(format!("U{hex}"))));
        assert_eq!(Recipient::from_line_id(&format!("C{hex}")), Some(Recipient::Group(format!("C{hex}"))));
        assert_eq!(Recipient::from_line_id(&format!("R{hex}")), Some(Recipient::Room(format!("R{hex}"))));
        assert_eq!(Recipient::from_line_id(&format!("X{hex}")), None);
        assert_eq!(Recipient::from_line_id(&format!("U{}", hex.to_uppercase())), None);
        assert_eq!(Recipient::from_line_id(&format!("U{hex}0")), None);
        assert_eq!(Recipient::from_line_id("U"), None);
        assert_eq!(Recipient::from_line_id(""), None);
        assert_eq!(Recipient::from_line_id(&format!("U{}é", &hex[..31])), None);
    }
}
