//! `mail2line followers`: who the gateway can reach, as the webhook recorded it.
//!
//! `list` prints a table of active followers (all of them with `--all`) or, with `--json`, an
//! array for scripts; `export` prints every follower as CSV (RFC 4180) for spreadsheets and
//! other tools. Like `mail2line queue`, this command loads the configuration without needing a
//! token, opens the registry under `storage.dir` with a connection of its own (or, with
//! `[storage] url`, reads the PostgreSQL database the gateways share), and never talks to the
//! server: SQLite in WAL mode lets it read while `mail2line serve` writes.
//!
//! Exit codes (shared with `queue`, see `output.rs`): 0 done, 1 no registry / store error, 78
//! configuration errors.
//!
//! The JSON objects and the CSV columns carry the same fields under the same names, so the two
//! machine formats agree: `id, kind, active, display_name, followed_at, unfollowed_at, address`.
//! Times are RFC 3339 UTC with milliseconds; the address is `<id>@<smtp.domain>`, what to mail.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::output::{self, one_line, printable, rfc3339, table, truncate};
use super::Error;
use crate::config::{Config, Purpose};
use crate::followers::{Follower, Registry, FILE_NAME};

/// What to do, as parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Active followers (every one with `all`), as a table or JSON.
    List { all: bool, json: bool },
    /// Every follower as CSV.
    Export,
}

/// The CSV header; `csv` writes the columns in this order.
pub const CSV_HEADER: &str = "id,kind,active,display_name,followed_at,unfollowed_at,address";

/// The longest name the table shows; LINE caps user names at 20 characters, but group names run
/// longer and one of them should not push the ADDRESS column off the screen. JSON and CSV keep
/// names whole.
const NAME_COLUMN_MAX: usize = 40;

/// Entry point for `main.rs`: resolves the config path (`--config`, then `$MAIL2LINE_CONFIG`,
/// then `./config.toml`), runs `action`, prints the result, and returns the exit status.
pub fn main(config_flag: Option<PathBuf>, channel: Option<String>, action: Action) -> u8 {
    let (path, mut cfg) = match output::load_config(config_flag.as_deref(), Purpose::DryRun, "mail2line") {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    if let Err(e) = super::stores::select_channel(&mut cfg, channel.as_deref()) {
        eprintln!("mail2line followers: {e}");
        return e.exit_code();
    }
    match run(&cfg, &path, &action) {
        // `followers export | head`: a reader that has seen enough is not an error.
        Ok(out) => output::print("mail2line followers", &out),
        Err(e) => {
            eprintln!("mail2line followers: {e}");
            e.exit_code()
        }
    }
}

/// Runs `action` against the registry of `cfg` (loaded from `config_path`, named in errors) and
/// returns what to print.
pub fn run(cfg: &Config, config_path: &Path, action: &Action) -> Result<String, Error> {
    // Always read everyone: the table's footer counts the inactive even when it hides them.
    let read = |reason| Error::Store { what: "follower registry", done: "read", reason };
    let everyone = if cfg.storage.is_postgres() {
        // One runtime for the whole command: the pool's connections live on it.
        let runtime = super::stores::cli_runtime()?;
        runtime.block_on(async {
            let db = super::stores::cli_connect(cfg).await?.ok_or_else(|| Error::NoStore("storage.url is not set".into()))?;
            let registry = super::stores::cli_registry(&db, &cfg.cli_channel).await?;
            registry.list_async(true).await.map_err(read)
        })?
    } else {
        let registry = Registry::open_existing(&cfg.storage.dir).map_err(|e| {
            let mut message = e.to_string();
            if !cfg.storage.dir.join(FILE_NAME).exists() {
                // The likeliest cause is reading another configuration than the server's.
                message.push_str(&format!("; storage.dir comes from {}", config_path.display()));
            }
            Error::NoStore(message)
        })?;
        block_on(registry.list_async(true)).map_err(read)?
    };
    let domain = &cfg.smtp.domain;
    Ok(match action {
        Action::List { all, json: false } => list_table(&everyone, *all, domain),
        Action::List { all, json: true } => list_json(&everyone, *all, domain),
        Action::Export => csv(&everyone, domain),
    })
}

/// Runs one registry call to its end. The command is synchronous and short-lived, so a small
/// current-thread runtime of its own is enough for the async registry API (which the PostgreSQL
/// backend needs); on SQLite the call runs inline on it.
fn block_on<T>(call: impl std::future::Future<Output = Result<T, crate::followers::RegistryError>>) -> Result<T, crate::followers::RegistryError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::followers::RegistryError(format!("cannot start the command's async runtime: {e}")))?;
    runtime.block_on(call)
}

/// The address that mails this follower (a group's or room's id works the same way).
fn address(f: &Follower, domain: &str) -> String {
    format!("{}@{domain}", f.id)
}

fn state_str(active: bool) -> &'static str {
    if active {
        "active"
    } else {
        "inactive"
    }
}

// ---------------------------------------------------------------------------------------------
// list

fn list_table(everyone: &[Follower], all: bool, domain: &str) -> String {
    let active = everyone.iter().filter(|f| f.active).count();
    let inactive = everyone.len() - active;
    let shown: Vec<&Follower> = everyone.iter().filter(|f| all || f.active).collect();
    let mut out = String::new();
    if shown.is_empty() {
        out.push_str(if everyone.is_empty() {
            "No followers yet: they appear when someone follows the bot or adds it to a group.\n"
        } else {
            "No active followers (`--all` shows the inactive ones).\n"
        });
    } else {
        let header = ["ID", "KIND", "STATE", "NAME", "FOLLOWED", "ADDRESS"];
        let rows: Vec<[String; 6]> = shown
            .iter()
            .map(|f| {
                [
                    f.id.clone(),
                    f.kind.as_str().to_owned(),
                    state_str(f.active).to_owned(),
                    name_cell(&f.display_name),
                    rfc3339(f.followed_at),
                    address(f, domain),
                ]
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    out.push_str(&format!("{active} active, {inactive} inactive\n"));
    out
}

/// A display name made safe for one table cell. Names are chosen by whoever follows the bot:
/// line breaks would split the row, and control or bidi-override characters could restyle the
/// operator's terminal or reorder what it shows, so those become U+FFFD.
fn name_cell(name: &str) -> String {
    let cleaned = printable(&one_line(name));
    if cleaned.is_empty() {
        return "-".into(); // an empty cell would shift the eye to the next column
    }
    truncate(&cleaned, NAME_COLUMN_MAX)
}

/// One follower in `list --json`; a struct (not `json!`) so the keys keep the CSV's order.
#[derive(Serialize)]
struct FollowerJson<'a> {
    id: &'a str,
    kind: &'static str,
    active: bool,
    display_name: &'a str,
    followed_at: String,
    unfollowed_at: Option<String>,
    address: String,
}

fn list_json(everyone: &[Follower], all: bool, domain: &str) -> String {
    let shown: Vec<FollowerJson<'_>> = everyone
        .iter()
        .filter(|f| all || f.active)
        .map(|f| FollowerJson {
            id: &f.id,
            kind: f.kind.as_str(),
            active: f.active,
            display_name: &f.display_name,
            followed_at: rfc3339(f.followed_at),
            unfollowed_at: f.unfollowed_at.map(rfc3339),
            address: address(f, domain),
        })
        .collect();
    output::json(&shown)
}

// ---------------------------------------------------------------------------------------------
// export

/// Every follower as RFC 4180 CSV: a header, one record per follower, CRLF after each record
/// (the RFC's line break, which spreadsheets and CSV libraries expect), `active` as
/// `true`/`false`, an empty `unfollowed_at` for active followers.
fn csv(everyone: &[Follower], domain: &str) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for f in everyone {
        let fields = [
            f.id.clone(),
            f.kind.as_str().to_owned(),
            f.active.to_string(),
            f.display_name.clone(),
            rfc3339(f.followed_at),
            f.unfollowed_at.map(rfc3339).unwrap_or_default(),
            address(f, domain),
        ];
        let record: Vec<String> = fields.iter().map(|s| csv_field(s)).collect();
        out.push_str(&record.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field: as is, or — when it holds a comma, a double quote, CR or LF — inside double
/// quotes with each double quote doubled (RFC 4180 §2.6–2.7). Names are exported as LINE gave
/// them, with one exception: a field a spreadsheet would read as a formula (starting with `=`,
/// `+`, `-`, `@`, or a tab or CR that some strip first) gets a leading `'`, the usual defence
/// against CSV formula injection (`=cmd|' /C calc'!A0` as a display name). Only names can start
/// so; ids, kinds, dates and addresses never do.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::followers::Kind;

    fn follower(id: &str, active: bool, name: &str) -> Follower {
        Follower {
            id: id.into(),
            kind: Kind::User,
            active,
            display_name: name.into(),
            followed_at: 1_714_564_800_123,
            unfollowed_at: (!active).then_some(1_714_568_400_000),
        }
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain 名前"), "plain 名前");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn csv_fields_that_look_like_formulas_are_neutralised() {
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\t=1"), "'\t=1");
        assert_eq!(csv_field("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
        assert_eq!(csv_field("a=b"), "a=b", "only a leading sign matters");
        let out = csv(&[follower("U1", true, "=1+1")], "d.example");
        assert!(out.contains(",'=1+1,"), "{out}");
    }

    #[test]
    fn csv_has_header_and_crlf_records() {
        let out = csv(&[follower("U1", true, "A, \"B\""), follower("U2", false, "")], "d.example");
        assert_eq!(
            out,
            "id,kind,active,display_name,followed_at,unfollowed_at,address\r\n\
             U1,user,true,\"A, \"\"B\"\"\",2024-05-01T12:00:00.123Z,,U1@d.example\r\n\
             U2,user,false,,2024-05-01T12:00:00.123Z,2024-05-01T13:00:00.000Z,U2@d.example\r\n"
        );
    }

    #[test]
    fn name_cells_stay_on_one_line_and_harmless() {
        assert_eq!(name_cell("a\nb\tc"), "a b c");
        assert_eq!(name_cell("x\u{1b}[31my"), "x\u{FFFD}[31my");
        assert_eq!(name_cell("ab\u{202E}cd"), "ab\u{FFFD}cd");
        assert_eq!(name_cell("  "), "-");
        assert_eq!(name_cell(&"名".repeat(50)).chars().count(), NAME_COLUMN_MAX);
    }

    #[test]
    fn table_footer_counts_hidden_inactive() {
        let everyone = [follower("U1", true, "A"), follower("U2", false, "B")];
        let out = list_table(&everyone, false, "d");
        assert!(out.ends_with("\n1 active, 1 inactive\n"), "{out}");
        assert!(!out.contains("U2"), "{out}");
        assert_eq!(list_table(&everyone[1..], false, "d"), "No active followers (`--all` shows the inactive ones).\n0 active, 1 inactive\n");
        assert!(list_table(&[], true, "d").starts_with("No followers yet"));
    }
}
