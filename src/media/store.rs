//! The media files under `storage.dir/media`: storing bytes durably under an unguessable name,
//! finding a served file by its name, and deleting files older than the retention.
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

/// The media directory of one gateway.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

impl MediaStore {
    /// Opens (creating when needed) `storage_dir/media`.
    pub fn open(storage_dir: &Path) -> io::Result<MediaStore> {
        let dir = storage_dir.join(DIR_NAME);
        // Owner-only whatever the umask: mail attachments are private until LINE fetches them.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(MediaStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` under a new random name and returns the name once the file and its
    /// directory entry are on disk (fsync'd): a 250 for the mail promises LINE can fetch it.
    pub fn put(&self, bytes: &[u8], kind: Kind) -> io::Result<String> {
        let name = format!("{}.{}", uuid::Uuid::new_v4().simple(), kind.ext());
        // Written under a temporary name and renamed, so a crash never leaves a short file
        // that is served as if complete.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut f = File::options().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, self.dir.join(&name))?;
            File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| name)
    }

    /// The path of a served file and its kind, when `name` is a valid name; whether the file
    /// exists is the caller's open.
    pub fn locate(&self, name: &str) -> Option<(PathBuf, Kind)> {
        Kind::of_name(name).map(|k| (self.dir.join(name), k))
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
    /// a crash); returns how many were deleted.
    pub fn sweep(&self, retention: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut deleted = 0;
        for entry in fs::read_dir(&self.dir)? {
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
