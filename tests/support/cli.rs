//! The gateway's own commands (`queue`, `quota`, `followers`, `check-config`, `serve`, …) run as
//! an admin runs them: the real binary, the configuration named with `--config`, and nothing
//! from the developer's environment that could choose another configuration or fill in a
//! secret behind the test's back. A test that wants a variable sets it on the returned
//! [`Command`] (`.env(…)` after the removal wins).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mail2line");

/// Variables the gateway reads in place of (or beside) its configuration file: the file itself,
/// secrets, and systemd credentials.
pub const ENVIRONMENT: &[&str] = &[
    "MAIL2LINE_CONFIG",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "LINE_CHANNEL_SECRET",
    "LINE_PRIVATE_KEY",
    "LINE_KID",
    "MAIL2LINE_REPLIES_PASSWORD",
    "MAIL2LINE_STORAGE_PASSWORD",
    "MAIL2LINE_SENDMAIL_PASSWORD",
    "CREDENTIALS_DIRECTORY",
];

/// `mail2line <args> --config <config>`, with none of [`ENVIRONMENT`].
pub fn mail2line<I, S>(args: I, config: &Path) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = bare(args);
    command.arg("--config").arg(config);
    command
}

/// `mail2line <args>` as given (for the ways of finding the configuration other than
/// `--config`), with none of [`ENVIRONMENT`].
pub fn bare<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(BIN);
    command.args(args);
    for var in ENVIRONMENT {
        command.env_remove(var);
    }
    command
}

/// How a command ended and what it printed.
#[derive(Debug)]
pub struct Run {
    /// The exit status; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` to its end.
    pub fn of(command: &mut Command) -> Run {
        let Output { status, stdout, stderr } = command.output().expect("run mail2line");
        // Strict: a command of ours prints UTF-8 only, whatever bytes came in.
        let text = |bytes: Vec<u8>, which: &str| String::from_utf8(bytes).unwrap_or_else(|e| panic!("mail2line's {which} is not UTF-8: {e}"));
        Run { code: status.code().unwrap_or(-1), stdout: text(stdout, "stdout"), stderr: text(stderr, "stderr") }
    }

    /// Standard output and error together, for messages that may go to either.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}
