//! The `mail2line` binary: parses the command line (`cli.rs`) and hands it to the command's own
//! file in `commands/`, whose exit status it returns. Nothing else happens here.

use std::process::ExitCode;

use clap::Parser;

use mail2line::commands;
use mail2line::commands::send::SendArgs;

mod cli;

fn main() -> ExitCode {
    // Installed as /usr/sbin/sendmail (a symlink): sendmail's command line, not ours.
    let mut argv = std::env::args_os();
    if argv.next().is_some_and(|a| mail2line::submit::invoked_as_sendmail(&a)) {
        return ExitCode::from(commands::send::sendmail_main(argv.collect()));
    }
    let status = match cli::Cli::parse().command {
        cli::Command::Sendmail { args } => commands::send::sendmail_main(args),
        cli::Command::Send { config, to, subject, text } => commands::send::main(SendArgs { config, to, subject, text }),
        cli::Command::CheckConfig { config, online } => commands::check_config::main(config.as_deref(), online),
        cli::Command::HashPassword => commands::hash_password::main(),
        cli::Command::Quota { config, channel, json } => commands::quota::main(config, channel, json),
        cli::Command::Queue { config, channel, action } => commands::queue::main(config, channel, action.into()),
        cli::Command::Followers { config, channel, action } => commands::followers::main(config, channel, action.into()),
        cli::Command::Serve { config, dry_run } => commands::serve::main(config, dry_run),
    };
    ExitCode::from(status)
}
