//! The gateway launcher: runs the real `mail2line` binary for a test, a benchmark or the fault
//! campaign. [`GatewayProcess::start`] writes the tests' config into a temporary directory;
//! [`GatewayProcess::launch`] takes a config of the caller's own (the e2e benchmark's). Either
//! way it starts `mail2line serve` on ephemeral ports, learns them from the log, collects the log
//! output so callers can assert on it (and grep it for secrets), and kills the process on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::response::Response;
use lettre::{SmtpTransport, Transport};

/// The recipient domain every test config uses.
pub const DOMAIN: &str = "text.line.example.com";

/// A token that must never appear in any log line.
pub const TOKEN: &str = "test-token-7f3a9c1e-SECRET";

/// The channel secret every test config uses (webhook signatures); never logged either.
pub const SECRET: &str = "test-secret";

pub struct GatewayProcess {
    child: Child,
    pub smtp: SocketAddr,
    /// The `[http] listen` address, from the "HTTP listening on" log line.
    pub http: Option<SocketAddr>,
    /// The `[smtp] tls_listen` address, when the config has one.
    pub smtps: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    logs: Arc<Mutex<String>>,
    bin: PathBuf,
    dry_run: bool,
    fsize_limit_kib: Option<u64>,
    env: Vec<(String, String)>,
}

/// Options for one gateway run; `extra` is TOML appended to the generated config.
pub struct Options<'a> {
    pub api_base_url: &'a str,
    pub dry_run: bool,
    pub token: Option<&'a str>,
    pub smtp_extra: &'a str,
    /// TOML added to the `[line]` table (e.g. `token = "v2.1"` and its keys).
    pub line_extra: &'a str,
    pub extra: &'a str,
    /// Run under `ulimit -f` (KiB) with SIGXFSZ ignored: writes past it fail like a full disk.
    pub fsize_limit_kib: Option<u64>,
    /// Environment variables for the process (e.g. `CREDENTIALS_DIRECTORY`, `NOTIFY_SOCKET`,
    /// or `RUST_LOG` instead of the default `debug`).
    pub env: &'a [(&'a str, &'a str)],
    /// The binary to run instead of the one cargo built with this crate.
    pub bin: Option<&'a Path>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options { api_base_url: "http://127.0.0.1:9", dry_run: false, token: Some(TOKEN), smtp_extra: "", line_extra: "", extra: "", fsize_limit_kib: None, env: &[], bin: None }
    }
}

impl GatewayProcess {
    pub fn start(opts: Options<'_>) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_line = match opts.token {
            Some(t) => format!("channel_access_token = \"{t}\"\n"),
            None => String::new(),
        };
        let config = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"{DOMAIN}\"\nshutdown_grace_secs = 10\n{}\n\n[line]\napi_base_url = \"{}\"\n{token_line}channel_secret = \"{SECRET}\"\ntimeout_secs = 2\n{}\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = \"{}\"\n{}\n",
            opts.smtp_extra,
            opts.api_base_url,
            opts.line_extra,
            dir.path().join("data").display(),
            opts.extra
        );
        GatewayProcess::launch(dir, &config, &opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes `config` to `dir/config.toml` and starts the binary on it with `opts`' binary,
    /// environment and limits (its config fields are not used). `dir` lives as long as the
    /// process. An error (the binary would not start, or logged no SMTP address) carries the log.
    pub fn launch(dir: tempfile::TempDir, config: &str, opts: &Options<'_>) -> Result<GatewayProcess, String> {
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
        let logs = Arc::new(Mutex::new(String::new()));
        let env: Vec<(String, String)> = opts.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let bin = opts.bin.map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mail2line")), Path::to_path_buf);
        let (child, smtp, http, smtps) = spawn(&bin, &config_path, opts.dry_run, opts.fsize_limit_kib, &env, &logs)?;
        Ok(GatewayProcess {
            child,
            smtp,
            http,
            smtps,
            dir,
            config_path,
            logs,
            bin,
            dry_run: opts.dry_run,
            fsize_limit_kib: opts.fsize_limit_kib,
            env,
        })
    }

    /// `kill -9`: no shutdown, no flush, exactly like a crash or the OOM killer.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the binary again on the same config and storage (after `kill9` or `terminate`).
    /// The SMTP and HTTP ports are new (the config asks for port 0).
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Self::restart`], with the error (and the log) returned instead of a panic.
    pub fn try_restart(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs.lock().unwrap().push_str("---- restart ----\n");
        let (child, smtp, http, smtps) = spawn(&self.bin, &self.config_path, self.dry_run, self.fsize_limit_kib, &self.env, &self.logs)?;
        self.child = child;
        self.smtp = smtp;
        self.http = http;
        self.smtps = smtps;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the logs contain `needle` (logs are written by another thread).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn transport(&self) -> SmtpTransport {
        SmtpTransport::builder_dangerous(self.smtp.ip().to_string())
            .port(self.smtp.port())
            .timeout(Some(Duration::from_secs(30)))
            .build()
    }

    /// Sends raw RFC 5322 bytes with a real SMTP client (lettre).
    pub fn send_raw(&self, from: &str, to: &[&str], data: &[u8]) -> Result<Response, lettre::transport::smtp::Error> {
        let envelope = Envelope::new(
            Some(from.parse().expect("from address")),
            to.iter().map(|t| t.parse().expect("to address")).collect(),
        )
        .expect("envelope");
        self.transport().send_raw(&envelope, data)
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.stop(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("gateway did not stop within 30 s of SIGTERM; logs:\n{}", self.logs()))
    }

    /// SIGTERM (a graceful stop, so a spool gets to close its files), then SIGKILL when the
    /// process has not exited within `grace`; the exit status, or None when it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if start.elapsed() > grace {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `mail2line serve` and waits for its "SMTP listening on" line; the "HTTP listening on"
/// and "SMTP implicit TLS listening on" lines, logged before it, give the other addresses.
fn spawn(
    bin: &Path,
    config_path: &Path,
    dry_run: bool,
    fsize_limit_kib: Option<u64>,
    env: &[(String, String)],
    logs: &Arc<Mutex<String>>,
) -> Result<(Child, SocketAddr, Option<SocketAddr>, Option<SocketAddr>), String> {
    let mut cmd = match fsize_limit_kib {
        Some(kib) => {
            // An ignored signal stays ignored across exec, so writes past the limit fail with
            // EFBIG instead of killing the process: a disk that is full for this process only.
            let mut c = Command::new("bash");
            c.arg("-c").arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"")).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("serve").arg("--config").arg(config_path);
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .env_remove("LINE_CHANNEL_SECRET")
        .env_remove("LINE_PRIVATE_KEY")
        .env_remove("LINE_KID")
        .env_remove("MAIL2LINE_CONFIG")
        // A test runner started by systemd must not lend the gateway its credentials or its
        // notification socket.
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "debug,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info")
        // After the default, so a test can set its own RUST_LOG.
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stdout.take().unwrap())] {
        let logs = logs.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                for (kind, marker) in
                    [("smtp", "SMTP listening on "), ("http", "HTTP listening on "), ("smtps", "SMTP implicit TLS listening on ")]
                {
                    if let Some(rest) = line.split(marker).nth(1) {
                        // The address ends at a space (text logs) or at the closing quote of
                        // the message (`[log] format = "json"`).
                        let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("").to_owned();
                        let _ = tx.send((kind, addr));
                    }
                }
                let mut l = logs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    // Only the log readers hold senders now: if the process exits early, `recv` ends at once.
    drop(tx);
    match listening(&rx) {
        Ok((smtp, http, smtps)) => Ok((child, smtp, http, smtps)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
            Err(format!("{e}; logs:\n{}", logs.lock().unwrap()))
        }
    }
}

/// The SMTP, HTTP and implicit-TLS addresses from the log readers, up to the SMTP one.
fn listening(rx: &std::sync::mpsc::Receiver<(&'static str, String)>) -> Result<(SocketAddr, Option<SocketAddr>, Option<SocketAddr>), String> {
    let (mut http, mut smtps) = (None, None);
    // Generous: on a loaded 2-core machine (parallel test binaries) start-up can be slow.
    let deadline = Instant::now() + Duration::from_secs(90);
    let addr = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(("smtp", a)) => break a,
            Ok(("smtps", a)) => smtps = Some(a.parse().map_err(|_| format!("bad TLS listen address {a:?}"))?),
            Ok((_, a)) => http = Some(a.parse().map_err(|_| format!("bad HTTP listen address {a:?}"))?),
            Err(_) => return Err("gateway did not start".into()),
        }
    };
    let smtp = addr.parse().map_err(|_| format!("bad listen address {addr:?}"))?;
    Ok((smtp, http, smtps))
}

/// `<id>@DOMAIN`.
pub fn addr(id: &str) -> String {
    format!("{id}@{DOMAIN}")
}

/// A user id made from a number, e.g. `user(1)` = `U000…001`.
pub fn user(n: u32) -> String {
    format!("U{n:032x}")
}

/// The code of a lettre error (e.g. 550), if the server answered.
pub fn code(err: &lettre::transport::smtp::Error) -> Option<u16> {
    err.status().map(|c| c.to_string().parse().unwrap_or(0))
}
