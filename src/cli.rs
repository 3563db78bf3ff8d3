//! Command-line interface (clap): subcommands and their flags. Parsing only; `main.rs` acts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// Log the exact JSON that would be pushed and answer 250, without calling LINE
        /// (no channel access token needed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the configuration file and explain every problem found.
    CheckConfig {
        /// Configuration file (default: $MAIL2LINE_CONFIG, else ./config.toml).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
}
