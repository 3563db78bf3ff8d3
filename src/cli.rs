//! Command-line interface (clap): subcommands and their flags. Parsing only; `main.rs` hands
//! the result to `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use mail2line::commands::followers::Action as FollowersAction;
use mail2line::commands::queue::{Action, RetryWhich};
use mail2line::spool::store::{JobId, State};

#[derive(Debug, Parser)]
#[command(name = "mail2line", version, about = "SMTP gateway that delivers e-mail as LINE messages")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the SMTP server that pushes mail to LINE.
    Serve {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// Log the exact JSON that would be pushed and answer 250, without calling LINE
        /// (no channel access token needed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the configuration file and explain every problem found.
    CheckConfig {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// Also ask LINE who the bot is (GET /v2/bot/info) with the configured credentials.
        /// Exit status: 78 refused credentials, 69 LINE unreachable, 76 not LINE's API.
        #[arg(long)]
        online: bool,
    },
    /// Hash a password for `[[smtp.users]] password_hash`: reads it from stdin (no echo on a
    /// terminal; one trailing newline is dropped), prints the argon2id hash.
    HashPassword,
    /// See and act on the spool's pending and dead jobs (works while the server runs).
    Queue {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        /// With [[channels]]: the channel to work on (default: the only one; its name otherwise).
        #[arg(long, value_name = "NAME", global = true)]
        channel: Option<String>,
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// Where the month's LINE messages go: plan limit, used, remaining, mails against LINE
    /// messages, a forecast, and who costs most (works while the server runs).
    Quota {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// With [[channels]]: the channel to work on (default: the only one; its name otherwise).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// Print JSON (keys: limit, used, remaining, mails, messages, forecast, top_recipients, …).
        #[arg(long)]
        json: bool,
    },
    /// See who follows the bot, and export them as CSV (works while the server runs).
    Followers {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        /// With [[channels]]: the channel to work on (default: the only one; its name otherwise).
        #[arg(long, value_name = "NAME", global = true)]
        channel: Option<String>,
        #[command(subcommand)]
        action: FollowersCommand,
    },
    /// Submit a mail read on stdin to the gateway, like sendmail (PHP mail(), cron MAILTO,
    /// mail(1), git send-email). Accepts sendmail's options: -t, -i, -f FROM, -F NAME, -C CONFIG
    /// (or --config), -v and the MTA options callers pass (-oem, -odi, -B8BITMIME, ...); see
    /// `mail2line sendmail --help`. Also runs as `sendmail` through a symlink.
    #[command(disable_help_flag = true)]
    Sendmail {
        /// sendmail options and recipients.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<std::ffi::OsString>,
    },
    /// Send a text message to a LINE id or alias through the running gateway (tests SMTP, the
    /// spool and LINE together).
    Send {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml if it exists, else /etc/mail2line/config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// A LINE id (U, C or R + 32 hex), an alias from [aliases], or the followers address; repeat for several.
        #[arg(long, required = true, value_name = "ID|ALIAS")]
        to: Vec<String>,
        /// The mail's subject (the first line of the LINE message with the default template).
        #[arg(long, value_name = "S")]
        subject: Option<String>,
        /// The text; `-` reads it from stdin.
        #[arg(value_name = "TEXT|-")]
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FollowersCommand {
    /// List followers: id, kind, state, name, when they followed, and the address that mails them.
    List {
        /// Include inactive followers (unfollowed, blocked, or left).
        #[arg(long)]
        all: bool,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print every follower, active and inactive, as CSV (RFC 4180) on stdout.
    Export,
}

impl From<FollowersCommand> for FollowersAction {
    fn from(c: FollowersCommand) -> FollowersAction {
        match c {
            FollowersCommand::List { all, json } => FollowersAction::List { all, json },
            FollowersCommand::Export => FollowersAction::Export,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List jobs: ID, state, attempts, age, next attempt, endpoint, target, last error.
    List {
        #[command(flatten)]
        filter: ListFilter,
        /// Print a JSON array instead of a table (every field except the request body).
        #[arg(long)]
        json: bool,
    },
    /// Show every field of one job, including the JSON body it POSTs to LINE.
    Show {
        id: JobId,
        /// Print one JSON object (with the body) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a job pending and due now (a dead one too); the running server sends it shortly.
    Retry {
        /// The job to retry.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<JobId>,
        /// Retry every dead job.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete a job: it will not be delivered.
    Drop { id: JobId },
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ListFilter {
    /// Only dead jobs (delivery gave up).
    #[arg(long)]
    dead: bool,
    /// Only pending jobs (waiting for an attempt or a retry).
    #[arg(long)]
    pending: bool,
}

impl From<QueueCommand> for Action {
    fn from(c: QueueCommand) -> Action {
        match c {
            QueueCommand::List { filter, json } => {
                let state = match (filter.dead, filter.pending) {
                    (true, _) => Some(State::Dead),
                    (_, true) => Some(State::Pending),
                    _ => None,
                };
                Action::List { state, json }
            }
            QueueCommand::Show { id, json } => Action::Show { id, json },
            QueueCommand::Retry { id: Some(id), .. } => Action::Retry(RetryWhich::One(id)),
            QueueCommand::Retry { id: None, .. } => Action::Retry(RetryWhich::AllDead),
            QueueCommand::Drop { id } => Action::Drop { id },
        }
    }
}
