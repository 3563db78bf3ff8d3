//! The media files: storing bytes durably under an unguessable name, finding a served file by
//! its name, and deleting files older than the retention. [`MediaStore`] is a handle over two
//! backends: files under `storage.dir/media` ([`MediaStore::open`], the default) or rows of
//! PostgreSQL's `media` table ([`MediaStore::open_postgres`], `store_pg.rs`), so that with
//! several gateways behind one load balancer any of them serves what another stored.
//!
//! Delivery and the HTTP handler use the async methods ([`MediaStore::put_all`],
//! [`MediaStore::load`], [`MediaStore::remove_all`], [`MediaStore::sweep_expired`]), which
//! dispatch: on files they run the blocking file code on the blocking pool, on PostgreSQL they
//! query. The synchronous methods (`put`, `locate`, `open_served`, `remove`, `sweep`) are the
//! file backend's own; on PostgreSQL they store, find and delete nothing.
//!
//! Names are `<32 lowercase hex>.<ext>`: 128 random bits, so a URL cannot be guessed or
//! enumerated, and a fixed list of extensions that decides the Content-Type. [`Kind::of_name`]
//! is the only way from a request path to a file, so a name with `/`, `..` or anything else
//! outside that shape never reaches the file system.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::time::{Duration, SystemTime};

use super::store_pg::PgMedia;
use crate::pg::{Database, PgError};

/// The directory under `storage.dir` (the storage layer owns that layout).
pub const DIR_NAME: &str = crate::storage::MEDIA_DIR;

/// What a stored file is: its extension and the Content-Type it is served with. Only these
/// are ever served; nothing is served as HTML or script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Pdf,
    Text,
    Zip,
    /// Anything else, served as `application/octet-stream` for download.
    Binary,
}

const KINDS: [Kind; 6] = [Kind::Jpeg, Kind::Png, Kind::Pdf, Kind::Text, Kind::Zip, Kind::Binary];

impl Kind {
    pub fn ext(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Pdf => "pdf",
            Kind::Text => "txt",
            Kind::Zip => "zip",
            Kind::Binary => "bin",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain; charset=utf-8",
            Kind::Zip => "application/zip",
            Kind::Binary => "application/octet-stream",
        }
    }

    /// Images are shown inline by LINE; everything else is offered as a download.
    pub fn is_image(self) -> bool {
        matches!(self, Kind::Jpeg | Kind::Png)
    }

    /// The kind to store a (non-image) attachment as, from its declared Content-Type.
    pub fn of_content_type(content_type: &str) -> Kind {
        let t = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match t.as_str() {
            "image/jpeg" | "image/jpg" => Kind::Jpeg,
            "image/png" => Kind::Png,
            "application/pdf" => Kind::Pdf,
            "text/plain" => Kind::Text,
            "application/zip" | "application/x-zip-compressed" => Kind::Zip,
            _ => Kind::Binary,
        }
    }

    /// The kind of a served file name, or `None` when the name is not one the store makes
    /// (`[0-9a-f]{32}.<ext>`): such requests are 404 without touching the disk.
    pub fn of_name(name: &str) -> Option<Kind> {
        let (id, ext) = name.split_once('.')?;
        let hex = id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return None;
        }
        KINDS.into_iter().find(|k| k.ext() == ext)
    }
}

/// Why media files could not be stored, read or swept. The text says where they are kept; the
/// caller says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0} (check storage.dir/media: its permissions and free space)")]
    Files(#[from] io::Error),
    #[error("{0}")]
    Database(#[from] PgError),
    /// The blocking task doing the file work failed (it panicked or the runtime is stopping).
    #[error("the file task failed: {0}")]
    Task(String),
}

/// Where one gateway keeps its media files; cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    /// The directory `storage.dir/media`.
    Files(PathBuf),
    Postgres(PgMedia),
}

/// A new random name of `kind`: 128 random bits, so a URL cannot be guessed or enumerated.
fn new_name(kind: Kind) -> String {
    format!("{}.{}", uuid::Uuid::new_v4().simple(), kind.ext())
}

impl MediaStore {
    /// Opens (creating when needed) `storage_dir/media`.
    pub fn open(storage_dir: &Path) -> io::Result<MediaStore> {
        let dir = storage_dir.join(DIR_NAME);
        // Owner-only whatever the umask: mail attachments are private until LINE fetches them.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(MediaStore { backend: Backend::Files(dir) })
    }

    /// The store on PostgreSQL's `media` table: applies the migrations first (once across the
    /// nodes starting at once; see `pg::migrate`), so it can be opened before or after the
    /// spool's store.
    pub async fn open_postgres(db: Database) -> Result<MediaStore, PgError> {
        db.migrate().await?;
        Ok(MediaStore { backend: Backend::Postgres(PgMedia { db }) })
    }

    /// The files' directory; empty on PostgreSQL (see [`MediaStore::location`]).
    pub fn dir(&self) -> &Path {
        match &self.backend {
            Backend::Files(dir) => dir,
            Backend::Postgres(_) => Path::new(""),
        }
    }

    /// Where the files are kept, for log lines: the directory, or the database.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Files(dir) => dir.display().to_string(),
            Backend::Postgres(p) => format!("PostgreSQL {}", p.db.target()),
        }
    }

    /// Stores each of `files` under a new random name and returns the names, in order, once
    /// all of them are durable (fsync'd files, or one committed transaction): a 250 for the
    /// mail promises LINE can fetch them. On an error nothing is kept (the files stored before
    /// it are deleted again; on PostgreSQL the transaction stored none).
    pub async fn put_all(&self, files: Vec<(Vec<u8>, Kind)>) -> Result<Vec<String>, MediaError> {
        match &self.backend {
            Backend::Files(_) => {
                let store = self.clone();
                blocking(move || {
                    let mut names = Vec::with_capacity(files.len());
                    for (bytes, kind) in &files {
                        match store.put(bytes, *kind) {
                            Ok(name) => names.push(name),
                            Err(e) => {
                                store.remove(&names);
                                return Err(MediaError::Files(e));
                            }
                        }
                    }
                    Ok(names)
                })
                .await
            }
            Backend::Postgres(p) => {
                let named: Vec<(String, Vec<u8>)> = files.into_iter().map(|(bytes, kind)| (new_name(kind), bytes)).collect();
                p.insert(&named, crate::clock::now_ms()).await?;
                Ok(named.into_iter().map(|(name, _)| name).collect())
            }
        }
    }

    /// The bytes and kind of a served file: `None` when `name` is not one the store makes,
    /// nothing is stored under it, or it is older than `retention` (expired, even if not swept
    /// yet). An error only when the database cannot be read (a file that cannot be opened or
    /// read is `None`, as it always was).
    pub async fn load(&self, name: &str, retention: Duration) -> Result<Option<(Vec<u8>, Kind)>, MediaError> {
        let Some(kind) = Kind::of_name(name) else { return Ok(None) };
        match &self.backend {
            Backend::Files(_) => {
                let (store, name) = (self.clone(), name.to_owned());
                // Opened without following symlinks and checked to be a regular file (see
                // `open_served`).
                blocking(move || {
                    let Some((mut file, meta, kind)) = store.open_served(&name) else { return Ok(None) };
                    let fresh =
                        meta.modified().ok().and_then(|t| SystemTime::now().duration_since(t).ok()).is_none_or(|age| age <= retention);
                    if !fresh {
                        return Ok(None);
                    }
                    let mut bytes = Vec::with_capacity(meta.len() as usize);
                    Ok(io::Read::read_to_end(&mut file, &mut bytes).ok().map(|_| (bytes, kind)))
                })
                .await
            }
            Backend::Postgres(p) => {
                let since = crate::clock::now_ms().saturating_sub(millis(retention));
                Ok(p.load(name, since).await?.map(|bytes| (bytes, kind)))
            }
        }
    }

    /// Deletes stored files by name (those of a mail that was refused after all, so no message
    /// will ever point at them). Best effort: what is left behind still expires.
    pub async fn remove_all(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        match &self.backend {
            // A few unlinks: not worth a blocking-pool hop.
            Backend::Files(_) => self.remove(&names),
            Backend::Postgres(p) => {
                if let Err(e) = p.remove(&names).await {
                    tracing::warn!(files = names.len(), "cannot delete the media files of a refused mail; they expire with the retention: {e}");
                }
            }
        }
    }

    /// Deletes what was stored more than `retention` ago; returns how many.
    pub async fn sweep_expired(&self, retention: Duration) -> Result<usize, MediaError> {
        match &self.backend {
            Backend::Files(_) => {
                let store = self.clone();
                blocking(move || store.sweep(retention).map_err(MediaError::Files)).await
            }
            Backend::Postgres(p) => Ok(p.sweep(crate::clock::now_ms().saturating_sub(millis(retention))).await?),
        }
    }

    /// The bytes stored now (what `storage.max_bytes` weighs): on files the regular files of the
    /// directory (as `storage::measure` counts them), on PostgreSQL the rows' bytes, shared by
    /// every node.
    pub async fn stored_bytes(&self) -> Result<u64, MediaError> {
        match &self.backend {
            Backend::Files(dir) => {
                let dir = dir.clone();
                blocking(move || {
                    let mut total = 0;
                    for entry in fs::read_dir(&dir)? {
                        // Not following symlinks, as the sweep does not.
                        if let Ok(m) = entry?.metadata() {
                            if m.is_file() {
                                total += m.len();
                            }
                        }
                    }
                    Ok(total)
                })
                .await
            }
            Backend::Postgres(p) => Ok(p.stored_bytes().await?),
        }
    }

    /// The directory, for the file backend's own methods; `None` on PostgreSQL.
    fn files(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Files(dir) => Some(dir),
            Backend::Postgres(_) => None,
        }
    }

    /// Stores `bytes` under a new random name and returns the name once the file and its
    /// directory entry are on disk (fsync'd): a 250 for the mail promises LINE can fetch it.
    /// The file backend's own (blocking); on PostgreSQL an error: use [`MediaStore::put_all`].
    pub fn put(&self, bytes: &[u8], kind: Kind) -> io::Result<String> {
        let Some(dir) = self.files() else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "media files are in PostgreSQL; use put_all"));
        };
        let name = new_name(kind);
        // Written under a temporary name and renamed, so a crash never leaves a short file
        // that is served as if complete.
        let tmp = dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut f = File::options().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(&name))?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| name)
    }

    /// The path of a served file and its kind, when `name` is a valid name; whether the file
    /// exists is the caller's open. `None` on PostgreSQL, where nothing is a file.
    pub fn locate(&self, name: &str) -> Option<(PathBuf, Kind)> {
        let dir = self.files()?;
        Kind::of_name(name).map(|k| (dir.join(name), k))
    }

    /// Opens a served file by name: `None` when the name is not one the store makes, or the
    /// entry is missing, a symlink (`O_NOFOLLOW`: a link planted in the folder must not expose
    /// what it points to) or anything but a regular file (`O_NONBLOCK`, so a planted FIFO cannot
    /// hang the request). The type is checked on the opened handle, so nothing can swap the
    /// entry between the check and the read.
    pub fn open_served(&self, name: &str) -> Option<(File, fs::Metadata, Kind)> {
        let (path, kind) = self.locate(name)?;
        let file = File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
        let meta = file.metadata().ok()?;
        meta.is_file().then_some((file, meta, kind))
    }

    /// Deletes stored files by name (those of a mail that was refused after all, so no message
    /// will ever point at them). Best effort: a file left behind still expires.
    pub fn remove(&self, names: &[String]) {
        for name in names {
            if let Some((path, _)) = self.locate(name) {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Deletes the files last modified more than `retention` ago (and temporary files left by
    /// a crash); returns how many were deleted. The file backend's own (blocking); on
    /// PostgreSQL it deletes nothing: use [`MediaStore::sweep_expired`].
    pub fn sweep(&self, retention: Duration) -> io::Result<usize> {
        let Some(dir) = self.files() else { return Ok(0) };
        let now = SystemTime::now();
        let mut deleted = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // `DirEntry::metadata` does not follow symlinks: a planted link is neither followed
            // (its target's age is never read) nor deleted through.
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or(Duration::ZERO);
            if age > retention && fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// `retention` in ms, for comparing with stored unix ms.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, MediaError> + Send + 'static) -> Result<T, MediaError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| MediaError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_store_made_names_are_served() {
        assert_eq!(Kind::of_name("0123456789abcdef0123456789abcdef.png"), Some(Kind::Png));
        assert_eq!(Kind::of_name("0123456789abcdef0123456789abcdef.jpg"), Some(Kind::Jpeg));
        assert_eq!(Kind::of_name("0123456789abcdef0123456789abcdef.pdf"), Some(Kind::Pdf));
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef.png",
            "0123456789abcdef0123456789abcde.png",
            "0123456789abcdef0123456789abcdef0.png",
            "0123456789abcdef0123456789abcdef.html",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef.png.png",
            "../0123456789abcdef0123456789abc.png",
            "..%2f..%2fetc%2fpasswd",
            ".0123456789abcdef0123456789abcdef.png.tmp",
        ] {
            assert_eq!(Kind::of_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_from_content_types() {
        assert_eq!(Kind::of_content_type("application/PDF; name=x.pdf"), Kind::Pdf);
        assert_eq!(Kind::of_content_type("text/html"), Kind::Binary);
        assert_eq!(Kind::of_content_type("image/svg+xml"), Kind::Binary);
    }

    #[test]
    fn put_locate_and_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let store = MediaStore::open(tmp.path()).unwrap();
        let a = store.put(b"hello", Kind::Pdf).unwrap();
        let b = store.put(b"hello", Kind::Pdf).unwrap();
        assert_ne!(a, b);
        assert_eq!(Kind::of_name(&a), Some(Kind::Pdf));
        let (path, kind) = store.locate(&a).unwrap();
        assert_eq!((fs::read(&path).unwrap(), kind), (b"hello".to_vec(), Kind::Pdf));
        assert_eq!(store.sweep(Duration::from_secs(3600)).unwrap(), 0);
        // Age one file by setting its mtime back two hours.
        let old = SystemTime::now() - Duration::from_secs(7200);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert_eq!(store.sweep(Duration::from_secs(3600)).unwrap(), 1);
        assert!(!path.exists());
        assert!(store.locate(&b).unwrap().0.exists());
    }

    #[test]
    fn files_are_owner_only_and_symlinks_are_neither_served_nor_swept_through() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let old = unsafe { libc::umask(0) };
        let store = MediaStore::open(tmp.path()).unwrap();
        let name = store.put(b"img", Kind::Png).unwrap();
        unsafe { libc::umask(old) };
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(store.dir()), mode(&store.dir().join(&name))), (0o700, 0o600));
        assert!(store.open_served(&name).is_some());
        let secret = tmp.path().join("secret");
        fs::write(&secret, "private").unwrap();
        let old_time = SystemTime::now() - Duration::from_secs(7200);
        File::options().write(true).open(&secret).unwrap().set_modified(old_time).unwrap();
        let link = "0123456789abcdef0123456789abcdef.png";
        std::os::unix::fs::symlink(&secret, store.dir().join(link)).unwrap();
        assert!(store.open_served(link).is_none(), "a symlink is not served");
        fs::create_dir(store.dir().join("fedcba9876543210fedcba9876543210.png")).unwrap();
        assert!(store.open_served("fedcba9876543210fedcba9876543210.png").is_none(), "nor a directory");
        store.sweep(Duration::from_secs(3600)).unwrap();
        assert!(secret.exists(), "the sweeper does not follow the link");
    }
}
