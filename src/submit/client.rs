//! The SMTP edge of `sendmail` and `send`: one connection to the gateway, every recipient's
//! reply kept, and each failure mapped to sendmail's exit status (sysexits.h).
//!
//! Why lettre's low-level [`SmtpConnection`] rather than its `SmtpTransport`: the transport gives
//! up at the first refused `RCPT` and does not say which recipient it was. A sendmail must tell
//! the caller *which* address failed ("root@…: 550 5.1.1 …"), still deliver to the others (as
//! sendmail does in interactive delivery), and go on in a second transaction when the server
//! limits recipients per mail (`452 4.5.3`). The connection type still does the wire work: TLS,
//! AUTH, reply parsing, and dot-stuffing of the data. It is synchronous: one short-lived
//! connection needs no async runtime.
//!
//! Exit statuses: a 4xx anywhere, or a gateway that cannot be reached, is EX_TEMPFAIL (75);
//! a 5xx to `RCPT` is EX_NOUSER (67); a 5.7.x refusal elsewhere (client not allowed, login
//! required or wrong, sender not allowed) is EX_NOPERM (77); other 5xx (mail too big, content
//! refused) are EX_DATAERR (65); TLS or AUTH that cannot work as configured is EX_CONFIG (78).

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::Address;

use super::Error;
use super::settings::{split_host_port, ClientTls, Settings};
use crate::secret::Secret;

pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_IOERR: u8 = 74;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_NOPERM: u8 = 77;
/// A configuration problem: every command that cannot load or use its configuration exits
/// with it (`config::EX_CONFIG` is this).
pub const EX_CONFIG: u8 = 78;

/// Where and how to reach the gateway, from `[sendmail]` and `[smtp] listen`.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// True when taken from `smtp.listen` (the gateway on this machine), not `[sendmail] server`.
    pub local: bool,
    pub tls: ClientTls,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub login: Option<(String, Secret)>,
    pub timeout: Duration,
}

impl Server {
    /// `[sendmail] server`, else `listen` (the gateway's `smtp.listen`) with an unspecified
    /// address (0.0.0.0, `[::]`) read as loopback: the gateway listens on every address, this one
    /// always works.
    pub fn new(s: &Settings, listen: std::net::SocketAddr) -> Result<Server, Error> {
        let (host, port, local) = match &s.server {
            Some(server) => {
                let (h, p) = split_host_port(server).map_err(Error::ServerAddress)?;
                (h, p, false)
            }
            None => {
                if listen.port() == 0 {
                    return Err(Error::NoFixedPort(listen));
                }
                let ip = match listen.ip() {
                    std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
                    ip => ip,
                };
                (ip.to_string(), listen.port(), true)
            }
        };
        let login = (!s.username.is_empty()).then(|| (s.username.clone(), s.password.clone()));
        Ok(Server {
            host,
            port,
            local,
            tls: s.tls,
            tls_ca_file: s.tls_ca_file.clone(),
            login,
            timeout: Duration::from_secs(s.timeout_secs),
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where in the conversation something failed; decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Tls,
    Auth,
    Mail,
    Rcpt,
    Data,
}

/// One failure: for one recipient, or (recipient `None`) for the whole mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub recipient: Option<String>,
    pub stage: Stage,
    /// What to print: the gateway's reply (`550 5.1.1 …`) or what went wrong locally.
    pub text: String,
    pub exit: u8,
}

/// Everything that happened.
#[derive(Debug, Default)]
pub struct Report {
    /// Recipients the gateway accepted the mail for, with its final reply.
    pub delivered: Vec<(Vec<String>, String)>,
    pub failures: Vec<Failure>,
    /// Each command and reply, for `-v`.
    pub transcript: Vec<String>,
}

impl Report {
    /// 0 when everything was delivered; else EX_TEMPFAIL when any failure may pass by itself
    /// (worth a retry), else the first failure's status.
    pub fn exit_code(&self) -> u8 {
        if self.failures.iter().any(|f| f.exit == EX_TEMPFAIL) {
            return EX_TEMPFAIL;
        }
        self.failures.first().map(|f| f.exit).unwrap_or(0)
    }
}

/// The exit status for a refusal with SMTP `code` (and its text) at `stage`.
pub fn classify(stage: Stage, code: u16, text: &str) -> u8 {
    if (400..500).contains(&code) {
        return EX_TEMPFAIL;
    }
    match stage {
        Stage::Rcpt => EX_NOUSER,
        Stage::Connect | Stage::Tls | Stage::Auth | Stage::Mail if text.trim_start().starts_with("5.7.") || code == 530 => EX_NOPERM,
        _ => EX_DATAERR,
    }
}

/// Submits `data` (CRLF lines, not dot-stuffed) from `sender` to `recipients`.
pub fn submit(server: &Server, sender: Option<&Address>, recipients: &[Address], data: &[u8]) -> Report {
    let mut report = Report::default();
    let mut conn = match open(server, &mut report) {
        Ok(c) => c,
        Err(f) => {
            report.failures.push(f);
            return report;
        }
    };
    let mut params = Vec::new();
    if !data.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let non_ascii = sender.into_iter().chain(recipients).any(|a| !a.to_string().is_ascii());
    if non_ascii && conn.server_info().supports_feature(Extension::SmtpUtfEight) {
        params.push(MailParameter::SmtpUtfEight);
    }
    // lettre ends the data with CRLF . CRLF itself; a final CRLF of ours would add a blank line.
    let data = data.strip_suffix(b"\r\n").unwrap_or(data);
    let mut pending: Vec<&Address> = recipients.iter().collect();
    while !pending.is_empty() {
        match transaction(&mut conn, sender, &pending, &params, data, &mut report) {
            Ok(deferred) => pending = deferred,
            Err((failure, lost)) => {
                // The connection is gone: nobody still waiting gets the mail.
                for r in lost {
                    report.failures.push(Failure { recipient: Some(r.to_string()), ..failure.clone() });
                }
                return report;
            }
        }
    }
    let _ = conn.command(Quit);
    report
}

/// One MAIL…DATA exchange for `pending`. Returns the recipients deferred to the next
/// transaction (the server took as many as it allows per mail), or, when the connection broke,
/// what happened and the recipients that never got the mail.
fn transaction<'a>(
    conn: &mut SmtpConnection,
    sender: Option<&Address>,
    pending: &[&'a Address],
    params: &[MailParameter],
    data: &[u8],
    report: &mut Report,
) -> Result<Vec<&'a Address>, (Failure, Vec<&'a Address>)> {
    let from = sender.map(|s| format!("<{s}>")).unwrap_or_else(|| "<>".into());
    let whole = |report: &mut Report, stage, text: String, exit, who: &[&Address]| {
        for r in who {
            report.failures.push(Failure { recipient: Some(r.to_string()), stage, text: text.clone(), exit });
        }
    };
    match step(conn, Mail::new(sender.cloned(), params.to_vec()), &format!("MAIL FROM:{from}"), Stage::Mail, report) {
        Ok(_) => {}
        Err(f) if f.broken => return Err((f.failure, pending.to_vec())),
        Err(f) => {
            whole(report, Stage::Mail, f.failure.text, f.failure.exit, pending);
            return Ok(Vec::new());
        }
    }
    let mut accepted = Vec::new();
    let mut deferred = Vec::new();
    for (i, r) in pending.iter().enumerate() {
        match step(conn, Rcpt::new((*r).clone(), Vec::new()), &format!("RCPT TO:<{r}>"), Stage::Rcpt, report) {
            Ok(_) => accepted.push(*r),
            Err(f) if f.broken => {
                let mut lost = accepted;
                lost.extend_from_slice(&pending[i..]);
                return Err((f.failure, lost));
            }
            // "452 4.5.3 too many recipients": the rest go in the next mail (RFC 5321 4.5.3.1.10).
            Err(f) if f.code == Some(452) && !accepted.is_empty() => {
                deferred.extend_from_slice(&pending[i..]);
                break;
            }
            Err(f) => report.failures.push(Failure { recipient: Some(r.to_string()), ..f.failure }),
        }
    }
    if accepted.is_empty() {
        let _ = conn.command(lettre::transport::smtp::commands::Rset);
        return Ok(deferred);
    }
    let sent = step(conn, Data, "DATA", Stage::Data, report).and_then(|_| {
        let reply = conn.message(data).map_err(|e| failed(&e, Stage::Data));
        record(report, "(message)", &reply);
        reply
    });
    match sent {
        Ok(reply) => report.delivered.push((accepted.iter().map(|a| a.to_string()).collect(), reply_text(&reply))),
        Err(f) if f.broken => return Err((f.failure, accepted)),
        Err(f) => whole(report, Stage::Data, f.failure.text, f.failure.exit, &accepted),
    }
    Ok(deferred)
}

/// A command that did not get a positive reply.
struct Failed {
    failure: Failure,
    code: Option<u16>,
    /// No reply at all: the connection is unusable.
    broken: bool,
}

fn step<C: std::fmt::Display>(conn: &mut SmtpConnection, command: C, shown: &str, stage: Stage, report: &mut Report) -> Result<Response, Failed> {
    let reply = conn.command(command).map_err(|e| failed(&e, stage));
    record(report, shown, &reply);
    reply
}

fn record(report: &mut Report, shown: &str, reply: &Result<Response, Failed>) {
    let text = match reply {
        Ok(r) => reply_text(r),
        Err(f) => f.failure.text.clone(),
    };
    report.transcript.push(format!("{shown}: {text}"));
}

fn failed(e: &lettre::transport::smtp::Error, stage: Stage) -> Failed {
    match e.status() {
        Some(code) => {
            let code: u16 = code.to_string().parse().unwrap_or(0);
            let text = cause(e);
            let exit = classify(stage, code, &text);
            Failed { failure: Failure { recipient: None, stage, text: format!("{code} {text}"), exit }, code: Some(code), broken: false }
        }
        None => Failed {
            failure: Failure { recipient: None, stage, text: format!("the connection to the gateway failed: {}", cause(e)), exit: EX_TEMPFAIL },
            code: None,
            broken: true,
        },
    }
}

/// `250 2.0.0 queued`: the code and every line of the text.
fn reply_text(r: &Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" "))
}

/// The most specific text of a lettre error: the server's reply text or the I/O error.
fn cause(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// Connects (TLS as configured), says EHLO, and logs in when configured.
fn open(server: &Server, report: &mut Report) -> Result<SmtpConnection, Failure> {
    let hello = ClientId::default();
    let whole = |stage, text: String, exit| Failure { recipient: None, stage, text, exit };
    let tls = match server.tls {
        ClientTls::Off => None,
        ClientTls::Starttls | ClientTls::Tls => Some(tls_parameters(server).map_err(|e| whole(Stage::Tls, e.to_string(), EX_CONFIG))?),
    };
    let implicit = if server.tls == ClientTls::Tls { tls.as_ref() } else { None };
    let mut conn = SmtpConnection::connect((server.host.as_str(), server.port), Some(server.timeout), &hello, implicit, None).map_err(|e| {
        let stage = if e.is_tls() { Stage::Tls } else { Stage::Connect };
        match e.status() {
            Some(_) => failed(&e, stage).failure,
            None if e.is_tls() => whole(
                Stage::Tls,
                format!("TLS with the gateway at {} failed: {}; check [sendmail] server (the name in its certificate) and tls_ca_file", server.address(), cause(&e)),
                EX_CONFIG,
            ),
            None => whole(Stage::Connect, connect_failure(server, &cause(&e)), EX_TEMPFAIL),
        }
    })?;
    report.transcript.push(format!("connected to {}", server.address()));
    if let (ClientTls::Starttls, Some(params)) = (server.tls, &tls) {
        if !conn.can_starttls() {
            let _ = conn.command(Quit);
            return Err(whole(
                Stage::Tls,
                format!("the gateway at {} does not offer STARTTLS (it needs smtp.tls_cert_file); or set [sendmail] tls = \"off\"", server.address()),
                EX_CONFIG,
            ));
        }
        conn.starttls(params, &hello).map_err(|e| match e.status() {
            Some(_) => failed(&e, Stage::Tls).failure,
            None => whole(Stage::Tls, format!("STARTTLS with the gateway at {} failed: {}; check [sendmail] server and tls_ca_file", server.address(), cause(&e)), EX_CONFIG),
        })?;
        report.transcript.push("STARTTLS: encrypted".into());
    }
    if let Some((user, password)) = &server.login {
        let creds = Credentials::new(user.clone(), password.expose().to_owned());
        match conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds) {
            Ok(r) => report.transcript.push(format!("AUTH as {user}: {}", reply_text(&r))),
            Err(e) if e.is_client() => {
                let _ = conn.command(Quit);
                return Err(whole(
                    Stage::Auth,
                    format!(
                        "the gateway at {} does not offer AUTH on this connection: set [sendmail] tls = \"starttls\" (or \"tls\"), or on a loopback gateway smtp.allow_plaintext_auth_on_loopback = true",
                        server.address()
                    ),
                    EX_CONFIG,
                ));
            }
            Err(e) => {
                let mut f = failed(&e, Stage::Auth).failure;
                if f.exit != EX_TEMPFAIL {
                    f.text = format!("{} (login {user:?} from [sendmail] username and password)", f.text);
                }
                return Err(f);
            }
        }
    }
    Ok(conn)
}

fn connect_failure(server: &Server, cause: &str) -> String {
    if server.local {
        format!("is `mail2line serve` running? cannot connect to {} (smtp.listen): {cause}", server.address())
    } else {
        format!("cannot connect to the gateway at {} ([sendmail] server): {cause}", server.address())
    }
}

/// Trust `tls_ca_file` only when given (a self-signed gateway), else the public web roots.
fn tls_parameters(server: &Server) -> Result<TlsParameters, Error> {
    let mut b = TlsParameters::builder(server.host.clone());
    if let Some(file) = &server.tls_ca_file {
        let pem = std::fs::read(file).map_err(|e| Error::CaFileUnreadable { file: file.clone(), reason: e.to_string() })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| Error::CaFileInvalid { file: file.clone(), reason: cause(&e) })?;
        b = b.certificate_store(CertificateStore::None).add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| Error::Tls(cause(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_for_each_refusal() {
        assert_eq!(classify(Stage::Rcpt, 550, "5.1.1 <root@x>: no such alias"), EX_NOUSER);
        assert_eq!(classify(Stage::Rcpt, 550, "5.7.1 not a relay"), EX_NOUSER);
        assert_eq!(classify(Stage::Rcpt, 452, "4.5.3 too many"), EX_TEMPFAIL);
        assert_eq!(classify(Stage::Mail, 450, "4.7.1 too many mails"), EX_TEMPFAIL);
        assert_eq!(classify(Stage::Data, 452, "4.2.2 quota"), EX_TEMPFAIL);
        assert_eq!(classify(Stage::Connect, 421, "4.7.0 busy"), EX_TEMPFAIL);
        assert_eq!(classify(Stage::Data, 552, "5.3.4 too big"), EX_DATAERR);
        assert_eq!(classify(Stage::Data, 550, "5.6.0 LINE rejected"), EX_DATAERR);
        assert_eq!(classify(Stage::Mail, 552, "5.3.4 too big"), EX_DATAERR);
        assert_eq!(classify(Stage::Mail, 550, "5.7.1 Sender <a@b> is not allowed"), EX_NOPERM);
        assert_eq!(classify(Stage::Mail, 530, "Authentication required"), EX_NOPERM);
        assert_eq!(classify(Stage::Connect, 554, "5.7.1 not allowed"), EX_NOPERM);
        assert_eq!(classify(Stage::Auth, 535, "5.7.8 bad credentials"), EX_NOPERM);
    }

    #[test]
    fn tempfail_wins_then_the_first_failure() {
        let f = |exit| Failure { recipient: None, stage: Stage::Rcpt, text: String::new(), exit };
        assert_eq!(Report::default().exit_code(), 0);
        assert_eq!(Report { failures: vec![f(EX_NOUSER), f(EX_DATAERR)], ..Default::default() }.exit_code(), EX_NOUSER);
        assert_eq!(Report { failures: vec![f(EX_NOUSER), f(EX_TEMPFAIL)], ..Default::default() }.exit_code(), EX_TEMPFAIL);
    }

    #[test]
    fn server_from_listen_or_sendmail_server() {
        let none = Settings::default();
        let listen = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        let s = Server::new(&none, listen("0.0.0.0:25")).unwrap();
        assert_eq!((s.address(), s.local, s.login.is_none()), ("127.0.0.1:25".to_owned(), true, true));
        let s = Server::new(&none, listen("[::]:2525")).unwrap();
        assert_eq!(s.address(), "[::1]:2525");
        let s = Server::new(&none, listen("192.0.2.1:25")).unwrap();
        assert_eq!(s.address(), "192.0.2.1:25");
        let sendmail: Settings =
            toml::from_str("server = \"mx.example.com:587\"\nusername = \"cms\"\npassword = \"pw\"\ntls = \"starttls\"\n").unwrap();
        let s = Server::new(&sendmail, listen("127.0.0.1:0")).unwrap();
        assert_eq!((s.address(), s.local, s.tls), ("mx.example.com:587".to_owned(), false, ClientTls::Starttls));
        assert_eq!(s.login.as_ref().map(|(u, p)| (u.as_str(), p.expose())), Some(("cms", "pw")));
        let e = Server::new(&none, listen("127.0.0.1:0")).unwrap_err().to_string();
        assert!(e.contains("set [sendmail] server"), "{e}");
    }
}
