//! A recording SMTP server for testing mail2line's SMTP *client* side (`sendmail`, `send`): it
//! keeps every transaction exactly as it came over the wire (the data still dot-stuffed), which
//! the real gateway never shows, and it can refuse recipients past a per-mail limit (452 4.5.3)
//! like a real MTA. Tests of what reaches LINE use the real gateway instead.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One MAIL…DATA exchange as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub from: String,
    pub rcpts: Vec<String>,
    /// The bytes between the 354 and the terminating `CRLF . CRLF`, as sent (dot-stuffed).
    pub data: Vec<u8>,
}

pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Transaction>>>,
}

impl Sink {
    /// Listens on an ephemeral loopback port; accepts at most `max_rcpts` recipients a mail.
    pub fn start(max_rcpts: usize) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, max_rcpts, &store);
                });
            }
        });
        Sink { addr, received }
    }

    pub fn transactions(&self) -> Vec<Transaction> {
        self.received.lock().unwrap().clone()
    }
}

fn session(stream: TcpStream, max_rcpts: usize, store: &Mutex<Vec<Transaction>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    w.write_all(b"220 sink ESMTP\r\n")?;
    let mut current = Transaction::default();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            current = Transaction { from: cmd[10..].to_owned(), ..Default::default() };
            w.write_all(b"250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            if current.rcpts.len() >= max_rcpts {
                w.write_all(b"452 4.5.3 Too many recipients\r\n")?;
            } else {
                current.rcpts.push(cmd[8..].to_owned());
                w.write_all(b"250 2.1.5 ok\r\n")?;
            }
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if reader.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&l);
            }
            current.data = data;
            store.lock().unwrap().push(std::mem::take(&mut current));
            w.write_all(b"250 2.0.0 stored\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            w.write_all(b"250 2.0.0 ok\r\n")?;
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 not here\r\n")?;
        }
    }
}
