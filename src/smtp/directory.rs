//! What the session asks about followers at RCPT: the [`Directory`] trait, implemented by the
//! follower registry in the server (`followers::Registry`) and by small tables in tests, and
//! its error. A file of its own because both the session and the channel lanes
//! (`channels.rs`) hold one, and neither should reach into the other for it.

/// Who follows the bot, as far as RCPT decisions need it (the follower registry in the
/// server; a small table in unit tests).
pub trait Directory: Send + Sync {
    fn is_active_follower(&self, id: &str) -> Result<bool, DirectoryError>;
    fn active_follower_count(&self) -> Result<usize, DirectoryError>;
}

/// A [`Directory`] that could not answer. The session turns it into `451 4.3.0` (the sender
/// retries later) and never shows its text to the client; the text is for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the follower list: {0}; check that storage.dir is readable and has free space (`mail2line followers list` reads the same list)")]
pub struct DirectoryError(pub String);
