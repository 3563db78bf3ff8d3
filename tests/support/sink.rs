//! A recording SMTP server for testing mail2line's SMTP *client* side (`sendmail`, `send`, and
//! the relay that answers from LINE are mailed through): it keeps every transaction exactly as
//! it came over the wire (the data still dot-stuffed), which the real gateway never shows, and
//! it can refuse recipients past a per-mail limit (452 4.5.3) like a real MTA. Tests of what
//! reaches LINE use the real gateway instead.
//!
//! For the relay it can also behave like a submission server ([`Options`]): require AUTH PLAIN
//! or LOGIN with one user and password (535 for any other), speak STARTTLS or TLS from the
//! first byte with a test certificate, answer the end of DATA with a chosen 4xx/5xx
//! ([`Sink::set_data_reply`]), and go down and come back on the same port ([`Sink::stop`],
//! [`Sink::start_again`]) for "the relay is down, then up".

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use tokio_rustls::rustls;

/// One MAIL…DATA exchange as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub from: String,
    pub rcpts: Vec<String>,
    /// The bytes between the 354 and the terminating `CRLF . CRLF`, as sent (dot-stuffed).
    pub data: Vec<u8>,
    /// The user logged in when the mail was sent, if any.
    pub login: Option<String>,
    /// Whether the session was encrypted (STARTTLS or implicit TLS) when the mail was sent.
    pub tls: bool,
}

impl Transaction {
    /// The data as the mail it is (dot-stuffing undone).
    pub fn unstuffed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len());
        for line in self.data.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }
}

/// A top-level header's value in the mail `raw`, unfolded, read from the bytes (what a mail
/// client reads); `""` when there is none.
pub fn header(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_owned())
        .unwrap_or_default()
}

/// How the sink behaves beyond plain recording.
#[derive(Clone, Default)]
pub struct Options {
    /// Recipients a mail may have; past it, 452 4.5.3. 0 means 100.
    pub max_rcpts: usize,
    /// Offer AUTH PLAIN and LOGIN and require this `(user, password)` before MAIL FROM.
    pub login: Option<(String, String)>,
    /// How TLS is offered; needs `cert_pem` and `key_pem`.
    pub tls: SinkTls,
    pub cert_pem: String,
    pub key_pem: String,
}

/// `Options::tls`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub enum SinkTls {
    #[default]
    None,
    /// Offer STARTTLS after EHLO.
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

/// What every connection of a sink shares.
struct Shared {
    options: Options,
    received: Mutex<Vec<Transaction>>,
    /// `(user, accepted)` of every AUTH attempt; the password is never kept.
    logins: Mutex<Vec<(String, bool)>>,
    /// The answer to the end of DATA instead of 250 (the mail is then not recorded).
    data_reply: Mutex<Option<String>>,
    /// Open sessions, so that [`Sink::stop`] can cut them like a crashing server.
    open: Mutex<Vec<TcpStream>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The accept loop currently running.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

pub struct Sink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl Sink {
    /// Listens on an ephemeral loopback port; accepts at most `max_rcpts` recipients a mail.
    pub fn start(max_rcpts: usize) -> Sink {
        Sink::start_with(Options { max_rcpts, ..Options::default() })
    }

    /// Listens on an ephemeral loopback port, behaving as `options` say.
    pub fn start_with(options: Options) -> Sink {
        let tls = (options.tls != SinkTls::None).then(|| Arc::new(server_config(&options.cert_pem, &options.key_pem)));
        let shared = Arc::new(Shared {
            options,
            received: Mutex::new(Vec::new()),
            logins: Mutex::new(Vec::new()),
            data_reply: Mutex::new(None),
            open: Mutex::new(Vec::new()),
            tls,
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink { addr, shared, running: Mutex::new(None) };
        sink.serve(listener);
        sink
    }

    pub fn transactions(&self) -> Vec<Transaction> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Every AUTH attempt: the user name and whether it was accepted.
    pub fn logins(&self) -> Vec<(String, bool)> {
        self.shared.logins.lock().unwrap().clone()
    }

    /// From now on, answer the end of DATA with `reply` (e.g. `"451 4.3.0 try later"` or
    /// `"554 5.6.0 refused"`) and record nothing; `None`: 250 again.
    pub fn set_data_reply(&self, reply: Option<&str>) {
        *self.shared.data_reply.lock().unwrap() = reply.map(str::to_owned);
    }

    /// Goes down: the port is closed (connecting is refused) and open sessions are cut.
    pub fn stop(&self) {
        let Some(running) = self.running.lock().unwrap().take() else { return };
        running.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that the loop sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        running.thread.join().unwrap();
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Comes back on the same port after [`Sink::stop`].
    pub fn start_again(&self) {
        if self.running.lock().unwrap().is_some() {
            return;
        }
        // The port was ours a moment ago; std sets SO_REUSEADDR, so only a race with another
        // test binding it could fail, which a few tries ride out.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("sink: rebinding {}: {e}", self.addr);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("sink: cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let closer = stream.try_clone().ok();
                if let Some(clone) = closer.as_ref().and_then(|c| c.try_clone().ok()) {
                    shared.open.lock().unwrap().push(clone);
                }
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &shared);
                    // The clone kept for stop() holds the socket open: close it for real, so
                    // that a client waiting for an answer sees the end at once.
                    if let Some(closer) = closer {
                        let _ = closer.shutdown(Shutdown::Both);
                    }
                });
            }
        });
        *self.running.lock().unwrap() = Some(Running { stop, thread });
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn server_config(cert_pem: &str, key_pem: &str) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

/// The connection, before or after TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tls(stream: TcpStream, config: &Arc<rustls::ServerConfig>) -> std::io::Result<Conn> {
        let server = rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(server, stream))))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// One line, without its line end; `None` at the end of the connection.
fn read_line(reader: &mut BufReader<Conn>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end().to_owned()))
}

fn send(reader: &mut BufReader<Conn>, reply: &str) -> std::io::Result<()> {
    let w = reader.get_mut();
    w.write_all(reply.as_bytes())?;
    w.flush()
}

fn b64(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let options = &shared.options;
    let max_rcpts = if options.max_rcpts == 0 { 100 } else { options.max_rcpts };
    let conn = match (&shared.tls, options.tls) {
        (Some(config), SinkTls::Implicit) => Conn::tls(stream, config)?,
        _ => Conn::Plain(stream),
    };
    let mut reader = BufReader::new(conn);
    send(&mut reader, "220 sink ESMTP\r\n")?;
    let mut current = Transaction::default();
    let mut login: Option<String> = None;
    let mut encrypted = options.tls == SinkTls::Implicit;
    loop {
        let Some(cmd) = read_line(&mut reader)? else { return Ok(()) };
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let mut lines = vec!["sink", "8BITMIME", "SMTPUTF8"];
            if options.tls == SinkTls::StartTls && !encrypted {
                lines.push("STARTTLS");
            }
            if options.login.is_some() {
                lines.push("AUTH PLAIN LOGIN");
            }
            let last = lines.len() - 1;
            let reply: String = lines.iter().enumerate().map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' })).collect();
            send(&mut reader, &reply)?;
        } else if upper == "STARTTLS" && options.tls == SinkTls::StartTls && !encrypted {
            send(&mut reader, "220 2.0.0 go ahead\r\n")?;
            let Conn::Plain(stream) = reader.into_inner() else { unreachable!("not encrypted yet") };
            reader = BufReader::new(Conn::tls(stream, shared.tls.as_ref().unwrap())?);
            encrypted = true;
            login = None;
        } else if upper.starts_with("AUTH ") && options.login.is_some() {
            let (user, password) = match auth_exchange(&mut reader, &cmd)? {
                Some(pair) => pair,
                None => {
                    send(&mut reader, "501 5.5.2 cannot decode that\r\n")?;
                    continue;
                }
            };
            let ok = options.login.as_ref().is_some_and(|(u, p)| *u == user && *p == password);
            shared.logins.lock().unwrap().push((user.clone(), ok));
            if ok {
                login = Some(user);
                send(&mut reader, "235 2.7.0 Authentication successful\r\n")?;
            } else {
                send(&mut reader, "535 5.7.8 Authentication credentials invalid\r\n")?;
            }
        } else if upper.starts_with("MAIL FROM:") {
            if options.login.is_some() && login.is_none() {
                send(&mut reader, "530 5.7.0 Authentication required\r\n")?;
                continue;
            }
            current = Transaction { from: cmd[10..].to_owned(), login: login.clone(), tls: encrypted, ..Default::default() };
            send(&mut reader, "250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            if current.rcpts.len() >= max_rcpts {
                send(&mut reader, "452 4.5.3 Too many recipients\r\n")?;
            } else {
                current.rcpts.push(cmd[8..].to_owned());
                send(&mut reader, "250 2.1.5 ok\r\n")?;
            }
        } else if upper == "DATA" {
            send(&mut reader, "354 go ahead\r\n")?;
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
            let refusal = shared.data_reply.lock().unwrap().clone();
            if let Some(reply) = refusal {
                current = Transaction::default();
                send(&mut reader, &format!("{reply}\r\n"))?;
                continue;
            }
            current.data = data;
            shared.received.lock().unwrap().push(std::mem::take(&mut current));
            send(&mut reader, "250 2.0.0 stored\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            send(&mut reader, "250 2.0.0 ok\r\n")?;
        } else if upper == "QUIT" {
            send(&mut reader, "221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            send(&mut reader, "502 5.5.2 not here\r\n")?;
        }
    }
}

/// Reads an AUTH PLAIN or LOGIN exchange that began with `cmd`; the user and password, or
/// `None` when it cannot be decoded.
fn auth_exchange(reader: &mut BufReader<Conn>, cmd: &str) -> std::io::Result<Option<(String, String)>> {
    let mut words = cmd.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => {
                    send(reader, "334 \r\n")?;
                    read_line(reader)?.unwrap_or_default()
                }
            };
            // authzid \0 authcid \0 password
            Ok(b64(&response).and_then(|plain| {
                let mut fields = plain.split('\0');
                let (_, user, password) = (fields.next()?, fields.next()?, fields.next()?);
                Some((user.to_owned(), password.to_owned()))
            }))
        }
        "LOGIN" => {
            let user = match initial {
                Some(u) => u,
                None => {
                    send(reader, "334 VXNlcm5hbWU6\r\n")?;
                    read_line(reader)?.unwrap_or_default()
                }
            };
            send(reader, "334 UGFzc3dvcmQ6\r\n")?;
            let password = read_line(reader)?.unwrap_or_default();
            Ok(b64(&user).zip(b64(&password)))
        }
        _ => Ok(None),
    }
}
