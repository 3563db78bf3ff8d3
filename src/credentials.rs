//! systemd credentials: the well-known names under which the gateway finds its secrets in
//! `$CREDENTIALS_DIRECTORY` (what `LoadCredential=` and `LoadCredentialEncrypted=` fill).
//!
//! systemd decides where that directory is (`/run/credentials/<unit>/` today) and tells the
//! service through the environment, so a configuration that names the directory would break
//! when the unit is renamed or started as a template instance. Instead, a secret that the
//! configuration does not give in any other way is read from the credential of its well-known
//! name, when that file exists:
//!
//! | secret | credential name |
//! |---|---|
//! | `line.channel_access_token` | `line-channel-access-token` |
//! | `line.channel_secret` | `line-channel-secret` |
//! | `line.private_key` | `line-private-key` |
//! | `smtp.users[].password_hash` | `smtp-user-<name>-password-hash` |
//! | `smtp.tls_cert_file` / `smtp.tls_key_file` | `smtp-tls-cert` / `smtp-tls-key` |
//! | `replies.password` | `replies-password` |
//!
//! Precedence (see `config/secrets.rs`): the environment variable, then the key or its `*_file` in the
//! file, then the credential. A credential is a default, never an override: what the admin
//! wrote in the configuration or the environment is what runs. Only lookups happen here; the
//! reading (and its error messages, which never quote a secret) stays in `config/secrets.rs`.

use std::path::PathBuf;

/// The environment variable systemd sets to the service's credentials directory.
pub const DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";

pub const LINE_CHANNEL_ACCESS_TOKEN: &str = "line-channel-access-token";
pub const LINE_CHANNEL_SECRET: &str = "line-channel-secret";
pub const LINE_PRIVATE_KEY: &str = "line-private-key";
pub const SMTP_TLS_CERT: &str = "smtp-tls-cert";
pub const SMTP_TLS_KEY: &str = "smtp-tls-key";
/// `[replies]`' relay password (answers from LINE mailed back).
pub const REPLIES_PASSWORD: &str = "replies-password";
/// `[storage] url`'s PostgreSQL password, when the URL has none (issue #21).
pub const STORAGE_PASSWORD: &str = "storage-password";

/// The credential holding `[[smtp.users]]` `name`'s password hash: `smtp-user-<name>-password-hash`,
/// or `None` when the name cannot be a credential name (systemd's rule: a valid file name).
pub fn smtp_user_password_hash(name: &str) -> Option<String> {
    let id = format!("smtp-user-{name}-password-hash");
    valid_name(&id).then_some(id)
}

/// The file of credential `name` in the directory `dir` (the value of `$CREDENTIALS_DIRECTORY`),
/// if the directory is set and the credential is there.
pub fn find(dir: Option<&str>, name: &str) -> Option<PathBuf> {
    let dir = dir.filter(|d| !d.is_empty())?;
    if !valid_name(name) {
        return None;
    }
    let path = PathBuf::from(dir).join(name);
    path.is_file().then_some(path)
}

/// What systemd accepts as a credential name: a file name (no `/`, not `.` or `..`, no
/// control characters) of at most 255 bytes.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.chars().any(|c| c == '/' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lookup() {
        assert_eq!(smtp_user_password_hash("cms").as_deref(), Some("smtp-user-cms-password-hash"));
        assert_eq!(smtp_user_password_hash("a/b"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LINE_CHANNEL_SECRET), "s").unwrap();
        std::fs::create_dir(dir.path().join(LINE_PRIVATE_KEY)).unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(find(Some(d), LINE_CHANNEL_SECRET), Some(dir.path().join(LINE_CHANNEL_SECRET)));
        // Absent, a directory rather than a file, no $CREDENTIALS_DIRECTORY, or a bad name.
        assert_eq!(find(Some(d), LINE_CHANNEL_ACCESS_TOKEN), None);
        assert_eq!(find(Some(d), LINE_PRIVATE_KEY), None);
        assert_eq!(find(None, LINE_CHANNEL_SECRET), None);
        assert_eq!(find(Some(""), LINE_CHANNEL_SECRET), None);
        assert_eq!(find(Some(d), ".."), None);
    }
}
