//! Mail data between DATA and the spool: a byte budget shared by every session, and the body of
//! one mail, held in memory while the budget lasts and written to a file under
//! `storage.dir/incoming` past it.
//!
//! Why: a gateway on port 25 that holds every mail in memory until it is spooled can be made to
//! hold `max_sessions × max_message_bytes` (2,000 × 10 MiB) by anyone who opens sessions and
//! sends big mails. Postfix holds a small buffer per session and writes the rest to its queue
//! file; this is the same idea. `[smtp] max_inflight_bytes` is split in two halves:
//!
//! - **receiving**: bytes sessions hold while the client is still sending. Taken without ever
//!   waiting: a session that cannot get more spills what it has to a file and goes on, so a
//!   slow client never makes another one wait.
//! - **parsing**: a mail being parsed and composed needs its bytes in one piece plus about as
//!   much again for the decoded parts. Delivery waits for this half (bounded, then `451`), and
//!   nothing that holds it waits for anything else, so the two halves cannot deadlock.
//!
//! Mails smaller than [`DRAIN_AT`] never touch the budget: their bytes stay in the session and
//! go straight to delivery, which is the path the throughput figures in BENCHMARKS.md measure.
//! Each session's own buffers (a read buffer, one command line, less than [`DRAIN_AT`] of data)
//! are the only memory outside the budget.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::reply::Reply;

/// Data a session may collect before the driver takes it into a [`Body`].
pub const DRAIN_AT: usize = 16 * 1024;

/// The budget is counted in KiB, so that tokio's u32 permit counts cover any budget.
const UNIT: usize = 1024;

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32
}

/// `[smtp] max_inflight_bytes`, split between receiving and parsing (see the module doc).
#[derive(Debug)]
pub struct Inflight {
    receiving: Arc<Semaphore>,
    parsing: Arc<Semaphore>,
    /// Units in each half.
    half: u32,
    /// Where bodies past the budget are written (`storage.dir/incoming`).
    spill_dir: PathBuf,
    /// How long a delivery waits for the parsing half before the client gets `451`.
    parse_wait: Duration,
}

impl Inflight {
    /// A budget of `max_bytes`, spilling into `spill_dir` (created 0700, emptied: files left
    /// there by a crash belong to mails that were never answered 250, so the sender retries).
    pub fn new(max_bytes: usize, spill_dir: &Path) -> io::Result<Inflight> {
        Self::create_spill_dir(spill_dir)?;
        let half = units(max_bytes / 2).max(1);
        Ok(Inflight {
            receiving: Arc::new(Semaphore::new(half as usize)),
            parsing: Arc::new(Semaphore::new(half as usize)),
            half,
            spill_dir: spill_dir.to_path_buf(),
            parse_wait: Duration::from_secs(60),
        })
    }

    fn create_spill_dir(dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".eml") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// How long a delivery waits for room to parse (tests shorten it).
    #[cfg(test)]
    pub fn with_parse_wait(mut self, wait: Duration) -> Inflight {
        self.parse_wait = wait;
        self
    }

    /// Bytes of the receiving half in use right now.
    #[cfg(test)]
    pub fn receiving_in_use(&self) -> usize {
        (self.half as usize - self.receiving.available_permits()) * UNIT
    }
}

/// The body of one mail being received, beyond what the session still holds.
pub struct Body {
    budget: Arc<Inflight>,
    held: Held,
    /// Bytes taken so far.
    len: usize,
}

enum Held {
    Memory { chunks: Vec<Vec<u8>>, permit: Option<OwnedSemaphorePermit> },
    File { file: tokio::fs::File, path: PathBuf },
    /// Spilling failed (disk full, or the folder is gone): the rest is dropped and the mail
    /// gets a 4xx at its end, so the sender retries and nothing is lost.
    Failed(String),
}

/// Why a body could not be handed to delivery; the reply tells the client to retry.
#[derive(Debug)]
pub struct NotReady {
    pub reply: Reply,
    /// For the log line only.
    pub detail: String,
}

impl Body {
    pub fn new(budget: Arc<Inflight>) -> Body {
        Body { budget, held: Held::Memory { chunks: Vec::new(), permit: None }, len: 0 }
    }

    /// Nothing was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && matches!(self.held, Held::Memory { .. })
    }

    /// Whether this body was written to a file.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        matches!(self.held, Held::File { .. })
    }

    /// Adds data the session collected: kept in memory if the receiving budget has room for
    /// it, else written (with everything held so far) to a spill file.
    pub async fn push(&mut self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        match &mut self.held {
            Held::Memory { chunks, permit } => {
                // Counted by capacity: that is what the allocator holds.
                match self.budget.receiving.clone().try_acquire_many_owned(units(chunk.capacity())) {
                    Ok(more) => {
                        match permit {
                            Some(p) => p.merge(more),
                            None => *permit = Some(more),
                        }
                        chunks.push(chunk);
                    }
                    Err(_) => {
                        let mut all = std::mem::take(chunks);
                        all.push(chunk);
                        // Written before the permit is dropped, so the bytes are never counted
                        // twice nor left uncounted.
                        self.held = match spill(&self.budget.spill_dir, &all).await {
                            Ok((file, path)) => Held::File { file, path },
                            Err(e) => Held::Failed(format!("cannot write mail data to {}: {e}", self.budget.spill_dir.display())),
                        };
                    }
                }
            }
            Held::File { file, path } => {
                if let Err(e) = file.write_all(&chunk).await {
                    let message = format!("cannot write mail data to {}: {e}", path.display());
                    self.held = Held::Failed(message);
                }
            }
            Held::Failed(_) => {}
        }
    }

    /// The whole mail in one piece (what was taken, then `tail`), with the permit for parsing
    /// it, which the caller holds until the mail is spooled. Small mails need no permit.
    pub async fn finish(mut self, tail: Vec<u8>) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), NotReady> {
        if self.is_empty() {
            return Ok((tail, None));
        }
        let total = self.len + tail.len();
        // One contiguous copy plus the parser's decoded parts, clamped so that one mail can
        // always get it (config validation keeps max_message_bytes within a half).
        let need = units(total.saturating_mul(2)).min(self.budget.half);
        let budget = self.budget.clone();
        let permit = match tokio::time::timeout(budget.parse_wait, budget.parsing.clone().acquire_many_owned(need)).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(NotReady {
                    reply: Reply::new(451, "4.3.2", "The gateway is busy with other large mails; try again later"),
                    detail: format!("no room to parse a {total}-byte mail within {} s (smtp.max_inflight_bytes)", budget.parse_wait.as_secs()),
                })
            }
        };
        let mut data = Vec::with_capacity(total);
        match std::mem::replace(&mut self.held, Held::Failed(String::new())) {
            Held::Memory { chunks, permit: receiving } => {
                for c in chunks {
                    data.extend_from_slice(&c);
                }
                drop(receiving);
            }
            Held::File { mut file, path } => {
                let read = async {
                    file.flush().await?;
                    drop(file);
                    let mut f = tokio::fs::File::open(&path).await?;
                    tokio::io::AsyncReadExt::read_to_end(&mut f, &mut data).await
                }
                .await;
                let _ = tokio::fs::remove_file(&path).await;
                if let Err(e) = read {
                    return Err(storage_trouble(format!("cannot read back mail data from {}: {e}", path.display())));
                }
            }
            Held::Failed(detail) => return Err(storage_trouble(detail)),
        }
        data.extend_from_slice(&tail);
        Ok((data, Some(permit)))
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A mail abandoned mid-DATA (client gone, timeout, 552) leaves no file behind.
        if let Held::File { path, .. } = &self.held {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn storage_trouble(detail: String) -> NotReady {
    NotReady { reply: Reply::new(452, "4.3.1", "Cannot store the mail right now (e.g. disk full); try again later"), detail }
}

/// Writes `chunks` to a new 0600 file in `dir`.
async fn spill(dir: &Path, chunks: &[Vec<u8>]) -> io::Result<(tokio::fs::File, PathBuf)> {
    let path = dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = options.open(&path).await?;
    for c in chunks {
        if let Err(e) = file.write_all(c).await {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    }
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: usize, dir: &Path) -> Arc<Inflight> {
        Arc::new(Inflight::new(bytes, dir).unwrap().with_parse_wait(Duration::from_millis(200)))
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn small_mails_bypass_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let b = budget(1 << 20, dir.path());
        let (data, permit) = Body::new(b.clone()).finish(b"hello".to_vec()).await.unwrap();
        assert_eq!((data.as_slice(), permit.is_none()), (&b"hello"[..], true));
    }

    #[tokio::test]
    async fn bodies_stay_in_memory_within_the_budget_and_spill_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = budget(256 * 1024, dir.path()); // 128 KiB to receive
        let mut first = Body::new(b.clone());
        for i in 0..3u8 {
            first.push(vec![b'a' + i; 32 * 1024]).await;
        }
        assert!(!first.spilled());
        assert_eq!(b.receiving_in_use(), 96 * 1024);
        // The second body finds 32 KiB left: its second chunk spills it, with what it held.
        let mut second = Body::new(b.clone());
        second.push(vec![b'x'; 32 * 1024]).await;
        second.push(vec![b'y'; 32 * 1024]).await;
        assert!(second.spilled());
        assert_eq!(b.receiving_in_use(), 96 * 1024, "a spilled body holds no budget");
        assert_eq!(files_in(dir.path()), 1);
        let (data, permit) = second.finish(b"tail".to_vec()).await.unwrap();
        drop(permit);
        assert_eq!(data.len(), 64 * 1024 + 4);
        assert!(data[..32 * 1024].iter().all(|&c| c == b'x') && data[32 * 1024..64 * 1024].iter().all(|&c| c == b'y'));
        assert_eq!(files_in(dir.path()), 0, "the spill file is gone once read back");
        let (data, permit) = first.finish(Vec::new()).await.unwrap();
        assert_eq!((data.len(), data[0], data[64 * 1024]), (96 * 1024, b'a', b'c'));
        assert_eq!(b.receiving_in_use(), 0, "receiving bytes are released once the mail is in one piece");
        drop(permit);
    }

    #[tokio::test]
    async fn parsing_waits_for_room_then_answers_451() {
        let dir = tempfile::tempdir().unwrap();
        let b = budget(512 * 1024, dir.path()); // 256 KiB to parse
        let mut one = Body::new(b.clone());
        one.push(vec![0; 100 * 1024]).await;
        let (_data, held) = one.finish(Vec::new()).await.unwrap(); // takes 200 KiB
        let mut two = Body::new(b.clone());
        two.push(vec![0; 100 * 1024]).await;
        let err = two.finish(Vec::new()).await.unwrap_err();
        assert_eq!((err.reply.code, err.reply.status), (451, "4.3.2"));
        drop(held);
        let mut three = Body::new(b.clone());
        three.push(vec![0; 100 * 1024]).await;
        assert!(three.finish(Vec::new()).await.is_ok(), "room again once the first mail is done");
    }

    #[tokio::test]
    async fn an_abandoned_or_failed_body_leaves_no_file_and_answers_452() {
        let dir = tempfile::tempdir().unwrap();
        let spill_dir = dir.path().join("incoming");
        let b = budget(64 * 1024, &spill_dir);
        let mut body = Body::new(b.clone());
        body.push(vec![0; 64 * 1024]).await;
        assert!(body.spilled());
        drop(body);
        assert_eq!(files_in(&spill_dir), 0);
        // The folder disappears: the mail is answered 452, not lost silently.
        std::fs::remove_dir(&spill_dir).unwrap();
        let mut body = Body::new(b.clone());
        body.push(vec![0; 64 * 1024]).await;
        let err = body.finish(Vec::new()).await.unwrap_err();
        assert_eq!((err.reply.code, err.reply.status), (452, "4.3.1"));
    }

    #[test]
    fn a_restart_empties_the_spill_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("left.eml"), b"x").unwrap();
        Inflight::new(1 << 20, dir.path()).unwrap();
        assert_eq!(files_in(dir.path()), 0);
    }
}
