//! `mail2line queue`: see and act on the spool's pending and dead jobs.
//!
//! Owns the command's behaviour: loading the configuration (no token needed), opening the spool
//! under `storage.dir` with a connection of its own (or, with `[storage] url`, the PostgreSQL
//! database the gateways share, through `stores.rs`), and formatting jobs for people (tables,
//! RFC 3339 times, relative ages) and for scripts (`--json`). It never talks to the server
//! process: SQLite in WAL mode lets this command read and write the file while `mail2line serve`
//! runs, and the server's scanner picks up a job made due here within `scan_interval_ms`.
//!
//! Exit codes: 0 done, 1 no such job / no spool / store error, 78 configuration errors (like
//! `check-config`). Tables, JSON and RFC 3339 times come from `output.rs`, shared with `quota`
//! and `followers`.
//!
//! `list` also shows followers' answers from LINE waiting to be mailed or dead (`[replies]`),
//! after the jobs; in `--json` each object has `"kind": "job"` or `"kind": "answer"`.
//!
//! `list --json` prints every field except the request body (it holds the mail's text, and can be
//! large); `show ID --json` includes it, parsed. Times in JSON are RFC 3339 UTC strings with
//! milliseconds. The channel access token is never stored in the spool, so it cannot be printed.

use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::output::{self, one_line, printable, rfc3339, table, truncate};
use super::{stores, Error};
use crate::config::{Config, Purpose};
use crate::spool::settings::DeliveryMode;
use crate::spool::answers::{self, Answer, AnswerState};
use crate::spool::store::{self, Job, JobId, State, Store};

/// What to do, as parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Every job, or only those in one state.
    List { state: Option<State>, json: bool },
    Show { id: JobId, json: bool },
    Retry(RetryWhich),
    Drop { id: JobId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryWhich {
    One(JobId),
    AllDead,
}

/// Entry point for `main.rs`: resolves the config path (`--config`, then `$MAIL2LINE_CONFIG`),
/// runs `action`, prints the result, and returns the exit status.
pub fn main(config_flag: Option<PathBuf>, channel: Option<String>, action: Action) -> u8 {
    let mut cfg = match output::load_config(config_flag.as_deref(), Purpose::DryRun, "mail2line") {
        Ok((_path, cfg)) => cfg,
        Err(status) => return status,
    };
    if let Err(e) = super::stores::select_channel(&mut cfg, channel.as_deref()) {
        eprintln!("mail2line queue: {e}");
        return e.exit_code();
    }
    match run(&cfg, &action, store::now_ms()) {
        Ok(out) => output::print("mail2line queue", &out),
        Err(e) => {
            eprintln!("mail2line queue: {e}");
            e.exit_code()
        }
    }
}

/// Runs `action` against the spool of `cfg` and returns what to print; `now` is unix ms (a
/// parameter so that relative times can be tested).
pub fn run(cfg: &Config, action: &Action, now: i64) -> Result<String, Error> {
    let write = matches!(action, Action::Retry(_) | Action::Drop { .. });
    let conn = if cfg.storage.is_postgres() { Spool::postgres(cfg)? } else { Spool::Sqlite { conn: open(cfg, write)?, file: cfg.storage.dir.join(store::FILE_NAME) } };
    match action {
        Action::List { state, json } => list(&conn, *state, *json, now),
        Action::Show { id, json } => show(&conn, *id, *json, now),
        Action::Retry(RetryWhich::One(id)) => retry_one(&conn, cfg, *id),
        Action::Retry(RetryWhich::AllDead) => retry_all_dead(&conn, cfg),
        Action::Drop { id } => drop_one(&conn, *id),
    }
}

/// The spool the command works on: the SQLite file under `storage.dir`, with a connection of
/// the command's own, or the PostgreSQL database of `[storage] url` (issue #21), on a runtime
/// that lives as long as the command (its pooled connections run on it).
enum Spool {
    Sqlite { conn: Connection, file: PathBuf },
    Postgres { store: Store, runtime: tokio::runtime::Runtime, target: String },
}

impl Spool {
    fn postgres(cfg: &Config) -> Result<Spool, Error> {
        let runtime = stores::cli_runtime()?;
        let (store, target) = runtime.block_on(async {
            let db = stores::cli_connect(cfg).await?.ok_or_else(|| Error::NoStore("storage.url is not set".into()))?;
            let store = stores::cli_spool_store(cfg, &db).await?;
            Ok::<_, Error>((store, db.target().to_owned()))
        })?;
        Ok(Spool::Postgres { store, runtime, target })
    }

    /// Where the spool is, for messages.
    fn place(&self) -> String {
        match self {
            Spool::Sqlite { file, .. } => file.display().to_string(),
            Spool::Postgres { target, .. } => format!("PostgreSQL at {target}"),
        }
    }

    fn jobs(&self, state: Option<State>) -> Result<Vec<Job>, store::StoreError> {
        match self {
            Spool::Sqlite { conn, .. } => store::list(conn, state),
            Spool::Postgres { store, runtime, .. } => runtime.block_on(store.jobs(state)),
        }
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, store::StoreError> {
        match self {
            Spool::Sqlite { conn, .. } => store::get(conn, id),
            Spool::Postgres { store, runtime, .. } => runtime.block_on(store.job(id)),
        }
    }

    fn answers(&self, state: Option<AnswerState>) -> Result<Vec<Answer>, store::StoreError> {
        match self {
            Spool::Sqlite { conn, .. } => answers::list(conn, state),
            Spool::Postgres { store, runtime, .. } => runtime.block_on(store.answers(state)),
        }
    }

    fn retry_now(&self, id: JobId, new_key: &str) -> Result<bool, store::StoreError> {
        match self {
            Spool::Sqlite { conn, .. } => store::retry_now(conn, id, new_key),
            Spool::Postgres { store, runtime, .. } => runtime.block_on(store.retry_now(id, new_key)),
        }
    }

    fn drop_job(&self, id: JobId) -> Result<bool, store::StoreError> {
        match self {
            Spool::Sqlite { conn, .. } => store::drop_job(conn, id),
            Spool::Postgres { store, runtime, .. } => runtime.block_on(store.drop_job(id)),
        }
    }
}

fn open(cfg: &Config, write: bool) -> Result<Connection, Error> {
    store::open_existing(&cfg.storage.dir, write).map_err(|e| {
        let file = cfg.storage.dir.join(store::FILE_NAME);
        if file.exists() {
            // The file is there but SQLite refused it: most often permissions (WAL needs the
            // directory writable for its -shm/-wal files, retry/drop need the file writable).
            let need = if write { "read and write" } else { "read" };
            return Error::NoStore(format!(
                "cannot open the spool {}: {e}; check that it is mail2line's spool, that this user can {need} it, and that {} is writable",
                file.display(),
                cfg.storage.dir.display()
            ));
        }
        let mut msg = e.to_string();
        if cfg.delivery.mode == DeliveryMode::Direct {
            // The likeliest reason for a missing spool: this configuration never uses one.
            msg.push_str("; note: delivery.mode is \"direct\", which sends while the SMTP client waits and spools nothing");
        }
        Error::NoStore(msg)
    })
}

fn store_err(reason: store::StoreError) -> Error {
    Error::Store { what: "spool", done: "read or changed", reason }
}

fn not_found(spool: &Spool, id: JobId) -> Error {
    Error::NoSuchJob { id, place: spool.place() }
}

fn get(conn: &Spool, id: JobId) -> Result<Job, Error> {
    conn.job(id).map_err(store_err)?.ok_or_else(|| not_found(conn, id))
}

// ---------------------------------------------------------------------------------------------
// list

fn list(conn: &Spool, state: Option<State>, as_json: bool, now: i64) -> Result<String, Error> {
    // Read everything once: the footer counts the whole spool even when a filter hides part of it.
    let all = conn.jobs(None).map_err(store_err)?;
    let shown: Vec<&Job> = all.iter().filter(|j| state.is_none_or(|s| j.state == s)).collect();
    if as_json {
        let mut arr: Vec<Value> = shown.iter().map(|j| job_json(j, false)).collect();
        arr.extend(listed_answers(conn, state)?.iter().map(answer_json));
        return Ok(output::json(&arr));
    }
    let pending = all.iter().filter(|j| j.state != State::Dead).count();
    let dead = all.len() - pending;
    let mut out = String::new();
    if shown.is_empty() {
        out.push_str(match state {
            None => "The spool is empty.\n",
            Some(State::Pending) => "No pending jobs.\n",
            Some(State::Held) => "No held jobs.\n",
            Some(State::Dead) => "No dead jobs.\n",
        });
    } else {
        let header = ["ID", "STATE", "ATTEMPTS", "AGE", "NEXT", "ENDPOINT", "TARGET", "LAST ERROR"];
        let rows: Vec<[String; 8]> = shown
            .iter()
            .map(|j| {
                [
                    j.id.to_string(),
                    state_str(j.state).to_owned(),
                    j.attempts.to_string(),
                    compact_duration(now - j.created_at),
                    next_str(j, now),
                    endpoint(&j.path).to_owned(),
                    target_str(j),
                    truncate(&one_line(&j.last_error), 60),
                ]
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    out.push_str(&format!("{pending} pending, {dead} dead\n"));
    out.push_str(&answers_section(conn, state, now)?);
    Ok(out)
}

/// The answers `list` shows for the `--dead`/`--pending` filter: those waiting to be mailed and
/// those given up on (sent and dropped ones are history, not queue).
fn listed_answers(conn: &Spool, state: Option<State>) -> Result<Vec<Answer>, Error> {
    let wanted = match state {
        None => None,
        Some(State::Pending) => Some(AnswerState::Pending),
        Some(State::Dead) => Some(AnswerState::Dead),
        Some(State::Held) => return Ok(Vec::new()),
    };
    Ok(conn.answers(wanted)
        .map_err(store_err)?
        .into_iter()
        .filter(|a| matches!(a.state, AnswerState::Pending | AnswerState::Dead))
        .collect())
}

/// An answer in `list --json`: `"kind": "answer"` tells it from a job (ids are counted apart).
fn answer_json(a: &Answer) -> Value {
    json!({
        "kind": "answer",
        "id": a.id,
        "state": a.state.as_str(),
        "chat": a.chat,
        "event_id": a.event_id,
        "attempts": a.attempts,
        "created_at": rfc3339(a.created_at),
        "next_at": (a.state == AnswerState::Pending).then(|| rfc3339(a.next_at)),
        "to": (!a.sent_to.is_empty()).then(|| a.sent_to.clone()),
        "last_error": a.last_error,
    })
}

/// Followers' answers waiting to be mailed or given up on (`[replies]`), after the jobs; nothing
/// when there are none (or the filter is `--held`, which answers never are).
fn answers_section(conn: &Spool, state: Option<State>, now: i64) -> Result<String, Error> {
    let shown = listed_answers(conn, state)?;
    if shown.is_empty() {
        return Ok(String::new());
    }
    let header = ["ID", "STATE", "ATTEMPTS", "AGE", "NEXT", "CHAT", "TO", "LAST ERROR"];
    let rows: Vec<[String; 8]> = shown
        .iter()
        .map(|a| {
            [
                a.id.to_string(),
                a.state.as_str().to_owned(),
                a.attempts.to_string(),
                compact_duration(now - a.created_at),
                if a.state == AnswerState::Dead { "-".into() } else { relative(a.next_at, now) },
                a.chat.clone(),
                if a.sent_to.is_empty() { "-".into() } else { printable(&a.sent_to) },
                truncate(&one_line(&a.last_error), 60),
            ]
        })
        .collect();
    let dead = shown.iter().filter(|a| a.state == AnswerState::Dead).count();
    Ok(format!(
        "\nAnswers from LINE to be mailed ([replies]):\n{}{} pending, {dead} dead\n",
        table(&header, &rows),
        shown.len() - dead
    ))
}

fn state_str(s: State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Held => "held",
        State::Dead => "dead",
    }
}

/// When the next attempt happens, relative to `now`.
fn next_str(j: &Job, now: i64) -> String {
    match j.state {
        State::Dead => "-".into(),
        // Held for coalescing: sealed with the chat's other held mail when its window ends.
        State::Held if j.next_at <= now => "now".into(),
        State::Held => format!("in {}", compact_duration(j.next_at - now)),
        // A job never attempted wears a lease (`store::LEASE_MS`) while it waits for a worker
        // or a rate slot; "in 10m" would be wrong, it goes as soon as a worker is free (or when
        // the server starts, which clears the lease).
        State::Pending if j.attempts == 0 && j.next_at > now => "queued".into(),
        State::Pending if j.next_at <= now => "now".into(),
        State::Pending => format!("in {}", compact_duration(j.next_at - now)),
    }
}

/// `push`, `multicast`, … from `/v2/bot/message/push`.
fn endpoint(path: &str) -> &str {
    path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(path)
}

/// The first recipient, plus how many more a multicast carries (read from the body's `to`).
fn target_str(j: &Job) -> String {
    let more = serde_json::from_str::<Value>(&j.body)
        .ok()
        .and_then(|b| b.get("to").and_then(Value::as_array).map(|a| a.len()))
        .unwrap_or(1);
    if more > 1 {
        format!("{} (+{} more)", j.target, more - 1)
    } else {
        j.target.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// show

fn show(conn: &Spool, id: JobId, as_json: bool, now: i64) -> Result<String, Error> {
    let j = get(conn, id)?;
    if as_json {
        return Ok(output::json(&job_json(&j, true)));
    }
    let when = |ms: i64| format!("{} ({})", rfc3339(ms), relative(ms, now));
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{:<15} {}\n", format!("{name}:"), printable(&value)));
    field("job", j.id.to_string());
    field("state", state_str(j.state).into());
    field("mail id", j.mail_id.clone());
    field("endpoint", format!("{} (POST {})", endpoint(&j.path), j.path));
    field("target", target_str(&j));
    field("sender", j.sender.clone());
    field("attempts", j.attempts.to_string());
    field("created", when(j.created_at));
    field("first attempt", j.first_attempt_at.map_or_else(|| "none yet".into(), when));
    field(
        "next attempt",
        match j.state {
            State::Dead => "none (dead: `mail2line queue retry ID` makes it pending again)".into(),
            State::Pending if j.attempts == 0 && j.next_at > now => "queued for a worker (not attempted yet)".into(),
            State::Pending => when(j.next_at),
            State::Held => format!("held for coalescing until {}, then sent with the chat's other held mail", when(j.next_at)),
        },
    );
    field("retry key", j.retry_key.clone());
    field(
        "ambiguous",
        if j.ambiguous {
            "yes: an earlier attempt may have reached LINE; the retry key keeps a resend from duplicating it".into()
        } else {
            "no".into()
        },
    );
    field("last error", if j.last_error.is_empty() { "none".into() } else { j.last_error.clone() });
    out.push_str("body:\n");
    let body = if serde_json::from_str::<Value>(&j.body).is_ok() { pretty_json(&j.body) } else { j.body.clone() };
    for l in body.lines() {
        out.push_str("  ");
        // JSON escapes C0 controls but not C1 ones or bidi overrides; a non-JSON body, nothing.
        out.push_str(&printable(l));
        out.push('\n');
    }
    Ok(out)
}

/// Indents valid JSON text without reparsing it, so the keys keep the order of the request that
/// is POSTed (serde_json's `Value` would sort them).
fn pretty_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or(' ')); // `{}` and `[]` stay on one line
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// A job for `--json`; `with_body` adds the request body (parsed, or as a string if it is not
/// JSON).
fn job_json(j: &Job, with_body: bool) -> Value {
    let mut v = json!({
        "kind": "job",
        "id": j.id,
        "state": state_str(j.state),
        "mail_id": j.mail_id,
        "endpoint": endpoint(&j.path),
        "path": j.path,
        "target": j.target,
        "sender": j.sender,
        "attempts": j.attempts,
        "created_at": rfc3339(j.created_at),
        "first_attempt_at": j.first_attempt_at.map(rfc3339),
        "next_at": match j.state { State::Dead => None, State::Pending | State::Held => Some(rfc3339(j.next_at)) },
        "retry_key": j.retry_key,
        "ambiguous": j.ambiguous,
        "last_error": j.last_error,
    });
    if with_body {
        v["body"] = serde_json::from_str(&j.body).unwrap_or_else(|_| Value::String(j.body.clone()));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// retry / drop

fn retry_one(conn: &Spool, cfg: &Config, id: JobId) -> Result<String, Error> {
    let before = get(conn, id)?;
    let mut out = retry_job(conn, &before)?;
    out.push_str(&pickup_note(cfg));
    Ok(out)
}

fn retry_all_dead(conn: &Spool, cfg: &Config) -> Result<String, Error> {
    let dead = conn.jobs(Some(State::Dead)).map_err(store_err)?;
    if dead.is_empty() {
        return Ok("No dead jobs to retry.\n".into());
    }
    let mut out = String::new();
    for j in &dead {
        out.push_str(&retry_job(conn, j)?);
    }
    out.push_str(&format!("{} dead job(s) made pending.\n", dead.len()));
    out.push_str(&pickup_note(cfg));
    Ok(out)
}

/// Makes one job pending and due now, and says what changed.
fn retry_job(conn: &Spool, before: &Job) -> Result<String, Error> {
    let new_key = uuid::Uuid::new_v4().to_string();
    if !conn.retry_now(before.id, &new_key).map_err(store_err)? {
        // Delivered or dropped between our read and the update.
        return Err(not_found(conn, before.id));
    }
    let mut out = format!(
        "job {}: {} → pending, due now ({} to {}, {} attempt(s) so far",
        before.id,
        state_str(before.state),
        endpoint(&before.path),
        printable(&target_str(before)),
        before.attempts
    );
    if !before.last_error.is_empty() {
        out.push_str(&format!("; last error: {}", printable(&truncate(&one_line(&before.last_error), 120))));
    }
    out.push_str(")\n");
    if let Ok(Some(after)) = conn.job(before.id) {
        if after.retry_key != before.retry_key {
            out.push_str(&format!(
                "  new retry key {} (the first attempt was over 24 h ago, so LINE may have forgotten the old one)\n",
                after.retry_key
            ));
        }
    }
    Ok(out)
}

fn pickup_note(cfg: &Config) -> String {
    format!(
        "A running `mail2line serve` picks it up within {} ms (delivery.scan_interval_ms); otherwise it is sent when the server starts.\n",
        cfg.delivery.scan_interval_ms
    )
}

fn drop_one(conn: &Spool, id: JobId) -> Result<String, Error> {
    let j = get(conn, id)?;
    if !conn.drop_job(id).map_err(store_err)? {
        return Err(not_found(conn, id));
    }
    let mut out = format!(
        "job {id} dropped ({}, {} to {}, mail {} from {}); it will not be delivered\n",
        state_str(j.state),
        endpoint(&j.path),
        printable(&target_str(&j)),
        printable(&j.mail_id),
        printable(&j.sender)
    );
    if j.state == State::Pending {
        // A worker may hold it right now; dropping cannot recall a request already on the wire.
        out.push_str("  note: if an attempt was in flight at this moment, that one attempt may still reach LINE\n");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// relative times

/// A duration in ms as its largest whole unit: `45s`, `3m`, `2h`, `4d`.
pub fn compact_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `3m ago`, `in 3m`, or `now`.
fn relative(ms: i64, now: i64) -> String {
    let d = ms - now;
    if d.abs() < 1000 {
        "now".into()
    } else if d < 0 {
        format!("{} ago", compact_duration(-d))
    } else {
        format!("in {}", compact_duration(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_relative_times() {
        assert_eq!(compact_duration(59_999), "59s");
        assert_eq!(compact_duration(180_000), "3m");
        assert_eq!(compact_duration(7_200_000), "2h");
        assert_eq!(compact_duration(4 * 86_400_000), "4d");
        assert_eq!(compact_duration(-5), "0s");
        assert_eq!(relative(1_000, 181_000), "3m ago");
        assert_eq!(relative(181_000, 1_000), "in 3m");
        assert_eq!(relative(500, 0), "now");
    }

    fn job(state: State, attempts: u32, next_at: i64) -> Job {
        Job {
            id: 1,
            mail_id: "<m@x>".into(),
            path: "/v2/bot/message/multicast".into(),
            body: r#"{"to":["U1","U2","U3"],"messages":[]}"#.into(),
            retry_key: "k".into(),
            target: "U1".into(),
            sender: "a@b".into(),
            state,
            attempts,
            created_at: 0,
            first_attempt_at: None,
            next_at,
            ambiguous: false,
            last_error: String::new(),
            chat: String::new(),
            recipients: 1,
            mails: 1,
        }
    }

    #[test]
    fn next_column_and_target() {
        assert_eq!(next_str(&job(State::Dead, 1, 0), 10), "-");
        assert_eq!(next_str(&job(State::Pending, 0, 600_000), 0), "queued");
        assert_eq!(next_str(&job(State::Pending, 1, 0), 10), "now");
        assert_eq!(next_str(&job(State::Pending, 2, 180_000), 0), "in 3m");
        assert_eq!(target_str(&job(State::Dead, 1, 0)), "U1 (+2 more)");
        assert_eq!(endpoint("/v2/bot/message/multicast"), "multicast");
    }

    #[test]
    fn pretty_json_keeps_key_order_and_strings() {
        let body = r#"{"to":"U1","messages":[{"type":"text","text":"a, b: {c} [d] \"e\" \\"}],"x":{},"y":[]}"#;
        let pretty = pretty_json(body);
        assert_eq!(
            pretty,
            "{\n  \"to\": \"U1\",\n  \"messages\": [\n    {\n      \"type\": \"text\",\n      \"text\": \"a, b: {c} [d] \\\"e\\\" \\\\\"\n    }\n  ],\n  \"x\": {},\n  \"y\": []\n}"
        );
        let a: Value = serde_json::from_str(body).unwrap();
        let b: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(a, b);
    }
}
