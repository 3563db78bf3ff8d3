//! A minimal raw SMTP client for what a polite client library never does: pipelining anything,
//! holding sessions open, sending bad commands, reading a refusal greeting.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    /// Connects; the greeting is left for the caller to read.
    pub fn connect(at: SocketAddr) -> Raw {
        Raw::try_connect(at, Duration::from_secs(30)).unwrap()
    }

    /// Connects with a read timeout of `wait`, for callers that count a refused connection
    /// rather than fail on it (the `try_` methods never panic).
    pub fn try_connect(at: SocketAddr, wait: Duration) -> std::io::Result<Raw> {
        let stream = TcpStream::connect(at)?;
        stream.set_read_timeout(Some(wait))?;
        Ok(Raw { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Writes `bytes`; false if the connection is gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// One reply's code (a multi-line reply's last line's), or 0 if the connection closed or
    /// failed first.
    pub fn try_code(&mut self) -> u16 {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return 0;
            }
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
        }
    }

    /// Connects and checks the 220 greeting.
    pub fn greeted(at: SocketAddr) -> Raw {
        let mut c = Raw::connect(at);
        assert_eq!(c.code(), 220);
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// One reply: all its lines (lossily decoded) joined, each ending in "\r\n".
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "connection closed; so far: {all:?}");
            let line = String::from_utf8_lossy(&line).into_owned();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    pub fn code(&mut self) -> u16 {
        self.reply()[..3].parse().unwrap()
    }

    /// Sends one command line (CRLF added) and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// The socket itself, e.g. to write from another thread or read with another timeout.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.writer
    }

    /// Whether the server has closed the connection (reads; use after the last reply).
    pub fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line), Ok(0))
    }
}
