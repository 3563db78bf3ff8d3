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
        let stream = TcpStream::connect(at).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
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
