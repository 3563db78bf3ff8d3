//! The async SMTP client that sends load: one connection with Nagle off, a buffered reader (so
//! multi-line replies and pipelined replies that arrive in one segment are read correctly), a
//! timeout on every reply, and the envelope pipelined in one write (the gateway advertises
//! PIPELINING). The end-to-end benchmark (`benches/e2e.rs`) and the fault campaign
//! ([`super::chaos`]) both send their mail with it, and so do tests that need many sessions at
//! once; `raw` is the blocking client for tests that talk to one session at a time.

use std::io::{Error, ErrorKind, Result};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct Smtp {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    /// The reply line being read, kept to reuse its buffer.
    line: String,
    /// How long connecting, or one reply, may take before the session counts as broken.
    timeout: Duration,
}

impl Smtp {
    /// Connects; the greeting is left for the caller to read.
    pub async fn connect(at: SocketAddr, timeout: Duration) -> Result<Smtp> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(at))
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, format!("no connection within {} s", timeout.as_secs())))??;
        // Without this, Nagle holds back the small pipelined command batches behind the ACK of
        // the previous segment and delayed ACK turns that into 40 ms of fake latency.
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Smtp { rd: BufReader::with_capacity(4096, r), wr: w, line: String::new(), timeout })
    }

    /// Connects, reads the 220 greeting and says `EHLO helo`.
    pub async fn open(at: SocketAddr, timeout: Duration, helo: &str) -> Result<Smtp> {
        let mut c = Smtp::connect(at, timeout).await?;
        let greeting = c.reply().await?;
        c.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let ehlo = c.reply().await?;
        if greeting != 220 || ehlo != 250 {
            return Err(Error::other(format!("greeting {greeting}, EHLO {ehlo}")));
        }
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply and returns its code.
    pub async fn reply(&mut self) -> Result<u16> {
        loop {
            self.line.clear();
            let n = tokio::time::timeout(self.timeout, self.rd.read_line(&mut self.line))
                .await
                .map_err(|_| Error::new(ErrorKind::TimedOut, format!("no SMTP reply within {} s", self.timeout.as_secs())))??;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            let b = self.line.as_bytes();
            let code = std::str::from_utf8(b.get(..3).unwrap_or(b"")).ok().and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(Error::new(ErrorKind::InvalidData, format!("bad reply line {:?}", self.line)));
            };
            // "250-…" continues, "250 …" (or a bare "250") ends the reply.
            if b.get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    /// The last line of the reply [`Self::reply`] read last (the one with the code and a space),
    /// without its line end.
    pub fn last_line(&self) -> &str {
        self.line.trim_end()
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.wr.write_all(bytes).await
    }

    /// PIPELINING: `MAIL FROM`, `RCPT TO` and `DATA` (in `envelope`) go out in one write; returns
    /// their three reply codes. Only a 354 as the third lets the message follow.
    pub async fn envelope(&mut self, envelope: &[u8]) -> Result<[u16; 3]> {
        self.send(envelope).await?;
        Ok([self.reply().await?, self.reply().await?, self.reply().await?])
    }
}
