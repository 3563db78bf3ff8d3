//! A real PostgreSQL for the tests: one throwaway cluster per test binary, one database per test.
//!
//! The first [`database`] call starts the cluster (Debian's PostgreSQL, the newest
//! `/usr/lib/postgresql/*/bin`, or `MAIL2LINE_POSTGRES_BIN`): `initdb` and `pg_ctl` run as the
//! `postgres` user (initdb refuses root) on a temporary directory, the server listens on
//! 127.0.0.1 on a free port with its socket in that directory, and TCP logins need the
//! superuser's random password (scram-sha-256), so a wrong password is refused as it would be
//! in production. `fsync` stays on: the tests are about durability. Each test then gets its own
//! `CREATE DATABASE t_<random>`.
//!
//! The cluster is stopped in every exit path: an `atexit` hook stops it when the test binary
//! ends (test panics are caught by the harness, so it ends normally), and a watchdog process,
//! in its own session so that Ctrl-C does not reach it, stops it and removes the directory once
//! the test binary is gone for any other reason (a kill, a crash).
//!
//! `MAIL2LINE_TEST_POSTGRES_URL=postgres://user:password@host:port/db` uses an existing server
//! instead (its user must be allowed to create databases; the test databases are left there).
//! Without PostgreSQL, or without root to start it, [`database`] prints why ("SKIPPED: …") and
//! returns None, unless `MAIL2LINE_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes that a failure.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use mail2line::secret::Secret;

/// A test's own database on the shared server.
pub struct TestDb {
    /// `postgres://user@host:port/t_…`, without the password.
    pub url: String,
    pub password: Secret,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl TestDb {
    /// A superuser connection to this database, to look behind the code under test.
    pub async fn admin(&self) -> tokio_postgres::Client {
        server().expect("a TestDb exists only with a server").connect(&self.name).await
    }
}

/// A fresh database on the shared server, or None (after a printed notice) when PostgreSQL
/// cannot run here and `MAIL2LINE_REQUIRE_POSTGRES` is not 1.
pub async fn database() -> Option<TestDb> {
    let server = server()?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = server.connect(&server.maintenance_db).await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    Some(TestDb {
        url: format!("postgres://{}@{}:{}/{name}", server.user, server.host, server.port),
        password: Secret::new(server.password.clone()),
        name,
        host: server.host.clone(),
        port: server.port,
        user: server.user.clone(),
    })
}

/// Whether a test should run; prints the notice once when it should not.
fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER.get_or_init(start).as_ref()
}

/// Where a test database lives and how to log in as its superuser.
struct Server {
    host: String,
    port: u16,
    user: String,
    password: String,
    /// The database to connect to for CREATE DATABASE.
    maintenance_db: String,
}

impl Server {
    async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config.host(&self.host).port(self.port).user(&self.user).password(&self.password).dbname(db);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("test admin connection to {db}: {e}"));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

fn start() -> Option<Server> {
    if let Ok(url) = std::env::var("MAIL2LINE_TEST_POSTGRES_URL") {
        return Some(existing(&url));
    }
    match why_not() {
        Some(reason) => {
            if std::env::var("MAIL2LINE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("MAIL2LINE_REQUIRE_POSTGRES=1, but {reason}");
            }
            // Straight to the process's stderr: the harness captures eprintln! of a passing
            // test, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the PostgreSQL tests did not run: {reason}. Set MAIL2LINE_REQUIRE_POSTGRES=1 to make this a failure."
            );
            None
        }
        None => Some(Cluster::start()),
    }
}

/// The server of `MAIL2LINE_TEST_POSTGRES_URL`.
fn existing(url: &str) -> Server {
    let config = tokio_postgres::Config::from_str(url).unwrap_or_else(|e| panic!("MAIL2LINE_TEST_POSTGRES_URL cannot be read: {e}"));
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => panic!("MAIL2LINE_TEST_POSTGRES_URL must name a TCP host"),
    };
    let user = config.get_user().expect("MAIL2LINE_TEST_POSTGRES_URL names a user").to_owned();
    Server {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
        maintenance_db: config.get_dbname().unwrap_or("postgres").to_owned(),
        user,
    }
}

/// Why a cluster cannot be started here, if it cannot.
fn why_not() -> Option<String> {
    let Some(bin) = bin_dir() else {
        return Some("PostgreSQL is not installed (Debian: apt-get install postgresql)".into());
    };
    if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
        return Some(format!("{} has no initdb or pg_ctl", bin.display()));
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("starting a throwaway cluster needs root (to run initdb as the postgres user)".into());
    }
    if postgres_user().is_none() {
        return Some("there is no `postgres` user to run initdb as".into());
    }
    None
}

/// `MAIL2LINE_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MAIL2LINE_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: a valid C string; the result is read at once, before any other getpw* call
    // (the tests' harness does not call getpwnam elsewhere).
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, from getpwnam.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// The running cluster, for the exit hook.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    uid: u32,
    gid: u32,
    watchdog: Option<u32>,
}

static RUNNING: Mutex<Option<Cluster>> = Mutex::new(None);

impl Cluster {
    fn start() -> Server {
        let bin = bin_dir().expect("checked by why_not");
        let (uid, gid) = postgres_user().expect("checked by why_not");
        let dir = tempfile::Builder::new().prefix("mail2line-pg-").tempdir().expect("temp dir").keep();
        // Every parent must be traversable by postgres (mktemp makes 0700), and postgres
        // writes the data directory, the socket and the log here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        let password = uuid::Uuid::new_v4().simple().to_string();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();

        // From here on the directory (and soon a server) exists: the exit hook cleans up.
        let watchdog = spawn_watchdog(&bin, &dir, uid, gid);
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cluster { bin: bin.clone(), dir: dir.clone(), uid, gid, watchdog });
        extern "C" fn at_exit() {
            stop();
        }
        // SAFETY: registers a plain function without arguments.
        unsafe { libc::atexit(at_exit) };

        let data = dir.join("data");
        run_as(
            uid,
            gid,
            &dir,
            Command::new(bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        let _ = std::fs::remove_file(&pwfile);
        let log = dir.join("log");
        for attempt in 1..=3 {
            let port = free_port();
            let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", dir.display());
            let status = Command::new(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .current_dir(&dir)
                .uid(uid)
                .gid(gid)
                .stdout(Stdio::null())
                .status()
                .expect("run pg_ctl start");
            if status.success() {
                return Server { host: "127.0.0.1".into(), port, user: "postgres".into(), password, maintenance_db: "postgres".into() };
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // Another process may have taken the free port between our check and the start.
            if attempt == 3 || !text.contains("could not bind") {
                panic!("pg_ctl start failed ({status}); its log {}:\n{text}", log.display());
            }
        }
        unreachable!()
    }
}

/// Stops the cluster and removes its directory; run at exit.
fn stop() {
    let Some(cluster) = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    let data = cluster.dir.join("data");
    // The postmaster's pid is the first line of postmaster.pid.
    let postmaster = std::fs::read_to_string(data.join("postmaster.pid")).ok().and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
    if postmaster.is_some() {
        let _ = Command::new(cluster.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .current_dir(&cluster.dir)
            .uid(cluster.uid)
            .gid(cluster.gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    // pg_ctl returns once the pid file is gone; wait (briefly) for the process itself too, so
    // that no postgres process outlives the test binary, not even a moment as a zombie.
    if let Some(pid) = postmaster {
        let gone = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < gone {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    if let Some(pid) = cluster.watchdog {
        // Our own child, by its id: its work is done.
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = std::fs::remove_dir_all(&cluster.dir);
}

/// A shell, in its own session and as postgres, that waits for this process to be gone and
/// then stops the cluster and removes its directory: the exit path `atexit` does not see
/// (SIGKILL, SIGINT, a crash).
fn spawn_watchdog(bin: &Path, dir: &Path, uid: u32, gid: u32) -> Option<u32> {
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; \
         if [ -f '{dir}/data/postmaster.pid' ]; then '{bin}/pg_ctl' -D '{dir}/data' -m fast -w stop; fi; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display(),
        bin = bin.display(),
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]).current_dir(dir).uid(uid).gid(gid).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    cmd.spawn().ok().map(|c| c.id())
}

fn run_as(uid: u32, gid: u32, dir: &Path, cmd: &mut Command) {
    let out = cmd.current_dir(dir).uid(uid).gid(gid).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
