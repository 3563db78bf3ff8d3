//! Disk space of `storage.dir`: whether new mail may come in (`[storage] min_free_bytes`,
//! `[storage] max_bytes`), and the file-system hygiene of the directory (owner-only modes).
//!
//! The SMTP session asks a [`SpaceGate`] at MAIL FROM, before any data is read, so a full disk
//! turns into a `452 4.3.1` the sending MTA retries instead of a mail half-received and then
//! refused. The decision ([`decide`]) is pure; [`DiskSpace`] does the I/O (statvfs, file sizes)
//! and caches one reading for [`CACHE_FOR`], so a burst of MAILs costs one syscall a second.
//! `[storage]` itself ([`Settings`]) is defined and checked here too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds a struct from a row whose columns are its fields, in order: `from_columns!(row, Job {
/// id, mail_id, state => State::parse, … })` reads column 0 into `id`, 1 into `mail_id`, and
/// passes column 2 through `State::parse`. `from_columns!(row?, …)` is for rusqlite, whose
/// `get` returns a `Result` (the expression then returns early on its error, like `?`).
///
/// Why a macro: the spool's rows (jobs, answers) are read from SQLite and from PostgreSQL, with
/// the fields in the order of a `COLUMNS` list. Counting the column here means a field added to
/// the list and the struct cannot be read from its neighbour's column, and the four readers say
/// only what differs between them: the conversions.
macro_rules! from_columns {
    ($row:ident ?, $ty:ident { $($field:ident $(=> $conv:expr)?),* $(,)? }) => {{
        let mut column = 0usize;
        // The counter's last step is never read.
        #[allow(unused_assignments)]
        let built = $ty { $($field: {
            let value = $row.get(column)?;
            column += 1;
            $crate::storage::from_columns!(@convert value $(, $conv)?)
        }),* };
        built
    }};
    ($row:ident, $ty:ident { $($field:ident $(=> $conv:expr)?),* $(,)? }) => {{
        let mut column = 0usize;
        // The counter's last step is never read.
        #[allow(unused_assignments)]
        let built = $ty { $($field: {
            let value = $row.get(column);
            column += 1;
            $crate::storage::from_columns!(@convert value $(, $conv)?)
        }),* };
        built
    }};
    (@convert $value:ident) => { $value };
    (@convert $value:ident, $conv:expr) => { ($conv)($value) };
}
pub(crate) use from_columns;

/// Why one of the SQLite files in `storage.dir` (the spool, the follower registry) could not do
/// what was asked. Both stores share it (as `spool::store::StoreError` and
/// `followers::RegistryError`), since they fail the same way. The text is for logs; it never
/// holds mail content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

/// `[storage]`: where the gateway keeps its files, how full it may get, and, with `url`, the
/// PostgreSQL database several gateways share (issue #21). The database's password is not
/// here: `config` resolves it (URL, `$MAIL2LINE_STORAGE_PASSWORD`, `password_file`, the
/// credential) and keeps it as a `Secret`, a type of this same layer.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub dir: PathBuf,
    /// New mail is refused (452 4.3.1, at MAIL) while the file system of `dir` has less free.
    pub min_free_bytes: u64,
    /// Cap on the spool, registry and media together; 0 = only the `min_free_bytes` floor.
    pub max_bytes: u64,
    /// `postgres://user@host:port/db?sslmode=require`: the spool, the follower registry, the
    /// quota counts and the answers live there instead of in `dir`. Empty: SQLite in `dir`.
    pub url: String,
    /// A file holding the database password (when the URL has none).
    pub password_file: Option<PathBuf>,
    /// This gateway's name among those sharing the database; empty: the host name.
    pub node: String,
    /// How long a claimed job stays this node's before another node may take it over.
    pub lease_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dir: PathBuf::from("./data"),
            min_free_bytes: 1024 * 1024 * 1024,
            max_bytes: 0,
            url: String::new(),
            password_file: None,
            node: String::new(),
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }
}

/// `[storage] lease_secs` unless set: as long as the spool's own claim on a job it handed to a
/// worker (`spool::store::LEASE_MS`), far longer than any one attempt takes.
pub const DEFAULT_LEASE_SECS: u64 = 600;

/// The shortest `lease_secs`: a lease must outlast one attempt at LINE (its timeout, a wait for
/// a rate slot) by far, or a live node's job is taken over and sent twice (LINE's 409 would
/// absorb it, but at the cost of a request).
pub const MIN_LEASE_SECS: u64 = 60;

/// The longest node name: it goes into PostgreSQL's `application_name` (63 bytes) after
/// `mail2line@`.
pub const MAX_NODE_LEN: usize = 50;

impl Settings {
    /// Problems as `(key, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.max_bytes != 0 && self.max_bytes < 1024 * 1024 {
            p.push(("storage.max_bytes".to_owned(), "must be 0 (no cap) or at least 1048576 (1 MiB)".into()));
        }
        let url = self.url.trim();
        if !url.is_empty() && !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.push((
                "storage.url".to_owned(),
                "must be a PostgreSQL URL, postgres://user@host:port/dbname (add ?sslmode=require across a network), \
                 or empty for SQLite in storage.dir"
                    .into(),
            ));
        }
        if url.is_empty() {
            for (key, set) in [
                ("storage.password_file", self.password_file.is_some()),
                ("storage.node", !self.node.is_empty()),
                ("storage.lease_secs", self.lease_secs != DEFAULT_LEASE_SECS),
            ] {
                if set {
                    p.push((key.to_owned(), "is used only with storage.url (PostgreSQL); without it the store is SQLite in storage.dir".into()));
                }
            }
        }
        if self.lease_secs < MIN_LEASE_SECS {
            p.push((
                "storage.lease_secs".to_owned(),
                format!("must be at least {MIN_LEASE_SECS}: a shorter lease lets another gateway take a job this one is still sending"),
            ));
        }
        if !self.node.is_empty() {
            if let Err(why) = check_node(&self.node) {
                p.push(("storage.node".to_owned(), why.to_string()));
            }
        }
        p
    }

    /// Whether the stores live in PostgreSQL (`url` set) rather than in SQLite files in `dir`.
    pub fn is_postgres(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// This gateway's node id: `node`, or else the host name (up to its first dot, cut to
    /// [`MAX_NODE_LEN`]); `"mail2line"` if the system has none.
    pub fn node_id(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let host = hostname().unwrap_or_default();
        let short: String = host.split('.').next().unwrap_or("").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(MAX_NODE_LEN).collect();
        if short.is_empty() {
            "mail2line".to_owned()
        } else {
            short
        }
    }

    /// `lease_secs` as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// The limits as [`DiskSpace`] takes them.
    pub fn limits(&self) -> Limits {
        Limits { min_free_bytes: self.min_free_bytes, max_bytes: self.max_bytes }
    }
}

/// Why a `[storage] node` cannot name a gateway (said after the key's name).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    #[error("is {0} bytes long; at most {MAX_NODE_LEN}")]
    TooLong(usize),
    #[error("may hold only letters, digits, '-', '_' and '.' (e.g. \"mx1\")")]
    BadCharacter,
}

/// Whether `node` can name a gateway in the `nodes` table and in claims.
fn check_node(node: &str) -> Result<(), NodeNameError> {
    if node.len() > MAX_NODE_LEN {
        return Err(NodeNameError::TooLong(node.len()));
    }
    if !node.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(NodeNameError::BadCharacter);
    }
    Ok(())
}

/// The system's host name.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates within it or fails.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// `storage.dir` could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create storage.dir {}: {error}", dir.display())]
pub struct DirError {
    pub dir: PathBuf,
    pub error: std::io::Error,
}

impl From<DirError> for DbError {
    fn from(e: DirError) -> Self {
        DbError(e.to_string())
    }
}

/// How long one reading of free and used space is trusted.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The limits, from `[storage]`; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min_free_bytes: u64,
    pub max_bytes: u64,
}

/// One reading: free bytes for an unprivileged writer, and what the gateway's own files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub free: u64,
    pub used: u64,
}

/// Why mail is refused for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortage {
    /// Less than `min_free_bytes` free on the file system.
    Floor { free: u64, min: u64 },
    /// The gateway's files reached `max_bytes`.
    Cap { used: u64, max: u64 },
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortage::Floor { free, min } => write!(f, "{free} bytes free in storage.dir, below storage.min_free_bytes = {min}"),
            Shortage::Cap { used, max } => write!(f, "storage.dir uses {used} bytes, storage.max_bytes = {max}"),
        }
    }
}

/// Whether a new mail may be taken given `reading`.
pub fn decide(limits: Limits, reading: Reading) -> Result<(), Shortage> {
    if reading.free < limits.min_free_bytes {
        return Err(Shortage::Floor { free: reading.free, min: limits.min_free_bytes });
    }
    if limits.max_bytes > 0 && reading.used >= limits.max_bytes {
        return Err(Shortage::Cap { used: reading.used, max: limits.max_bytes });
    }
    Ok(())
}

/// The session asks this before accepting MAIL (a trait so the sans-IO session does no I/O and
/// unit tests can stand in a full disk).
pub trait SpaceGate: Send + Sync {
    fn check(&self) -> Result<(), Shortage>;
}

/// The real gate: statvfs on `storage.dir`, sizes of its files, cached.
pub struct DiskSpace {
    dir: PathBuf,
    limits: Limits,
    cached: Mutex<Option<(Instant, Result<Reading, Error>)>>,
    /// The last state logged, so a full disk is logged once when it starts and once when it ends,
    /// not once per refused MAIL.
    refusing: Mutex<bool>,
}

impl DiskSpace {
    pub fn new(dir: &Path, limits: Limits) -> DiskSpace {
        DiskSpace { dir: dir.to_path_buf(), limits, cached: Mutex::new(None), refusing: Mutex::new(false) }
    }

    /// The reading at `now`, from the cache when it is younger than [`CACHE_FOR`].
    fn reading_at(&self, now: Instant) -> Result<Reading, Error> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, r)) = cached.as_ref() {
            if now.duration_since(*at) < CACHE_FOR {
                return r.clone();
            }
        }
        let r = measure(&self.dir, self.limits.max_bytes > 0);
        *cached = Some((now, r.clone()));
        r
    }
}

impl SpaceGate for DiskSpace {
    fn check(&self) -> Result<(), Shortage> {
        let verdict = match self.reading_at(Instant::now()) {
            Ok(r) => decide(self.limits, r),
            Err(e) => {
                // Not knowing is no reason to refuse mail: the spool's own write still fails
                // cleanly (452 4.3.1) if the disk really is full.
                tracing::debug!("cannot measure storage.dir: {e}");
                Ok(())
            }
        };
        let mut refusing = self.refusing.lock().unwrap_or_else(|e| e.into_inner());
        match (&verdict, *refusing) {
            (Err(s), false) => tracing::warn!("new mail refused with 452 4.3.1 until there is room: {s}"),
            (Ok(()), true) => tracing::info!("storage.dir has room again: taking new mail"),
            _ => {}
        }
        *refusing = verdict.is_err();
        verdict
    }
}

/// The folder of `storage.dir` where mail data past `smtp.max_inflight_bytes` is written while
/// it is received (`smtp/inflight.rs`).
pub const INCOMING_DIR: &str = "incoming";

/// The folder of `storage.dir` where `[media]` keeps the files it serves (`media/store.rs`).
pub const MEDIA_DIR: &str = "media";

/// Why the free space of `storage.dir` cannot be measured. New mail is then taken anyway (the
/// spool's own write still fails cleanly when the disk is full); check the path and its mount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("storage.dir contains a NUL byte")]
    NulInPath,
    #[error("statvfs {}: {detail}", dir.display())]
    Statvfs { dir: PathBuf, detail: String },
}

/// Free bytes on the file system of `dir` (for an unprivileged writer: `f_bavail`) and, when
/// `with_used`, the bytes of the gateway's files: every regular file directly in `dir` (the
/// SQLite databases with their -wal and -shm) plus the files of `dir/media` and of mail being
/// received in `dir/incoming`.
pub fn measure(dir: &Path, with_used: bool) -> Result<Reading, Error> {
    let free = free_bytes(dir)?;
    let used = if with_used {
        dir_bytes(dir) + dir_bytes(&dir.join(MEDIA_DIR)) + dir_bytes(&dir.join(INCOMING_DIR))
    } else {
        0
    };
    Ok(Reading { free, used })
}

fn free_bytes(dir: &Path) -> Result<u64, Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::NulInPath)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::Statvfs { dir: dir.to_owned(), detail: std::io::Error::last_os_error().to_string() });
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Sum of the sizes of the regular files directly in `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        // `DirEntry::metadata` does not follow symlinks: a link to a big file is not counted.
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Makes everything the process creates from now on owner-only (umask 077). SQLite creates
/// its own -wal and -shm files with the process umask, so this is the one reliable way to
/// keep those 0600 whatever umask the gateway was started with; our own files and
/// directories are created with explicit modes on top of it.
pub fn restrict_umask() {
    // SAFETY: umask only swaps a process attribute; it cannot fail.
    unsafe { libc::umask(0o077) };
}

/// Creates `dir` (0700) if needed and takes group and world access away from it, and from the
/// files and directories directly in it and in its `media` folder, should an earlier version
/// or an admin have made them accessible; logs each one it changes. Symlinks are left alone.
pub fn secure_dir(dir: &Path) -> Result<(), DirError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| DirError { dir: dir.to_owned(), error })?;
    let mut paths = vec![dir.to_path_buf()];
    for d in [dir.to_path_buf(), dir.join(MEDIA_DIR)] {
        if let Ok(entries) = std::fs::read_dir(&d) {
            paths.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    for path in paths {
        // storage.dir itself may be a symlink the admin made (followed); entries inside are not.
        let meta = if path == dir { std::fs::metadata(&path) } else { std::fs::symlink_metadata(&path) };
        let Ok(meta) = meta else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() || mode & 0o077 == 0 {
            continue;
        }
        // Only group and world bits go; the owner keeps what it had (a directory needs rwx).
        let tight = (mode & 0o700) | if meta.is_dir() { 0o700 } else { 0 };
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(tight)) {
            Ok(()) => tracing::warn!("{} was accessible to others (mode {mode:o}); now {tight:o}", path.display()),
            Err(e) => tracing::warn!("{} is accessible to others (mode {mode:o}) and cannot be changed: {e}", path.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_keys_are_checked() {
        let ok = Settings { url: "postgres://gw@db:5432/mail".into(), node: "mx1".into(), ..Settings::default() };
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
        assert!(ok.is_postgres() && !Settings::default().is_postgres());
        assert_eq!(ok.node_id(), "mx1");
        let keys = |s: Settings| s.validate().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(Settings { url: "mysql://gw@db/mail".into(), ..Settings::default() }), ["storage.url"]);
        assert_eq!(keys(Settings { url: "postgres://gw@db/mail".into(), lease_secs: 59, ..Settings::default() }), ["storage.lease_secs"]);
        assert_eq!(keys(Settings { url: "postgres://gw@db/mail".into(), node: "mx 1".into(), ..Settings::default() }), ["storage.node"]);
        assert_eq!(keys(Settings { url: "postgres://gw@db/mail".into(), node: "x".repeat(51), ..Settings::default() }), ["storage.node"]);
        // Without a URL, the PostgreSQL keys would silently do nothing: said instead.
        assert_eq!(
            keys(Settings { password_file: Some("/p".into()), node: "mx1".into(), lease_secs: 120, ..Settings::default() }),
            ["storage.password_file", "storage.node", "storage.lease_secs"]
        );
        let default_node = Settings::default().node_id();
        assert!(!default_node.is_empty() && check_node(&default_node).is_ok(), "{default_node}");
    }

    #[test]
    fn floor_and_cap() {
        let limits = Limits { min_free_bytes: 100, max_bytes: 1000 };
        assert_eq!(decide(limits, Reading { free: 100, used: 999 }), Ok(()));
        assert_eq!(decide(limits, Reading { free: 99, used: 0 }), Err(Shortage::Floor { free: 99, min: 100 }));
        assert_eq!(decide(limits, Reading { free: 1 << 40, used: 1000 }), Err(Shortage::Cap { used: 1000, max: 1000 }));
        // max_bytes = 0: no cap, only the floor.
        let floor_only = Limits { min_free_bytes: 0, max_bytes: 0 };
        assert_eq!(decide(floor_only, Reading { free: 0, used: u64::MAX }), Ok(()));
    }

    #[test]
    fn measures_a_real_directory_and_caches() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("spool.sqlite3"), vec![0u8; 3000]).unwrap();
        std::fs::create_dir(tmp.path().join("media")).unwrap();
        std::fs::write(tmp.path().join("media").join("a.png"), vec![0u8; 500]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("media").join("b.png")).unwrap();
        std::fs::create_dir(tmp.path().join(INCOMING_DIR)).unwrap();
        std::fs::write(tmp.path().join(INCOMING_DIR).join("x.eml"), vec![0u8; 200]).unwrap();
        let r = measure(tmp.path(), true).unwrap();
        assert_eq!(r.used, 3700, "the database, media and mail being received; not the link");
        assert!(r.free > 0);
        std::fs::remove_file(tmp.path().join(INCOMING_DIR).join("x.eml")).unwrap();
        let gate = DiskSpace::new(tmp.path(), Limits { min_free_bytes: 0, max_bytes: 4000 });
        assert_eq!(gate.check(), Ok(()));
        std::fs::write(tmp.path().join("big"), vec![0u8; 1000]).unwrap();
        // Within CACHE_FOR the old reading holds; after it, the new file counts.
        let t0 = Instant::now();
        assert_eq!(gate.reading_at(t0).unwrap().used, 3500);
        assert_eq!(gate.reading_at(t0 + CACHE_FOR).unwrap().used, 4500);
        let full = DiskSpace::new(tmp.path(), Limits { min_free_bytes: u64::MAX, max_bytes: 0 });
        assert!(matches!(full.check(), Err(Shortage::Floor { .. })));
    }

    #[test]
    fn secure_dir_creates_0700_and_tightens_what_is_there() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/data");
        secure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(dir.join("media")).unwrap();
        std::fs::set_permissions(dir.join("media"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("spool.sqlite3"), "x").unwrap();
        std::fs::set_permissions(dir.join("spool.sqlite3"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(dir.join("media/a.png"), "x").unwrap();
        std::fs::set_permissions(dir.join("media/a.png"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("media/b.png")).unwrap();
        secure_dir(&dir).unwrap();
        assert_eq!(
            [mode(&dir), mode(&dir.join("media")), mode(&dir.join("spool.sqlite3")), mode(&dir.join("media/a.png"))],
            [0o700, 0o700, 0o600, 0o600]
        );
        assert_eq!(mode(&outside), 0o644, "a symlink's target is not touched");
    }
}
