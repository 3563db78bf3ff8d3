//! The README is tested like code.
//!
//! * The configuration reference against `config.toml.example` (every key, also the commented-out
//!   examples, has a row; every row is a key of the example) and against the loader (the example
//!   with everything uncommented is accepted; each default in the table is what an empty file
//!   gives).
//! * The troubleshooting table against the source: every 4xx/5xx reply the gateway can send has
//!   a row.
//! * Every ```toml block is a valid (partial) configuration, every `](#anchor)` link has a heading.
//! * The quick start's swaks, curl and Python commands and the swaks recipes are run as written
//!   (host and port changed) against the real gateway and the LINE stand-in.
//!
//! Checks are generic over the files, so keys and replies added later are picked up by
//! themselves. swaks and curl examples are skipped with a notice when the tool is missing, unless
//! `MAIL2LINE_REQUIRE_DOC_TOOLS=1` (set by `.ci/run`).

mod support;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mail2line::config::{Config, Purpose};
use serde_json::{json, Value};
use support::gateway::{GatewayProcess, Options, TOKEN};
use support::readme;
use support::standin::StandIn;
use tokio::task::block_in_place;

// ------------------------------------------------------------------ configuration reference

/// `config.toml.example` with its commented-out example keys and tables uncommented. A comment
/// line counts as an example when, without its `# `, it is TOML on its own (`key = value`,
/// `[table]`, `[[array]]`); prose and indented explanations are not. A commented key that repeats
/// an active one in the same table (an alternative value) is left out.
fn uncommented_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
    let example = std::fs::read_to_string(path).expect("read config.toml.example");
    let mut out = String::new();
    let mut table = String::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (n, line) in example.lines().enumerate() {
        let uncommented = line
            .strip_prefix("# ")
            .filter(|rest| !rest.starts_with([' ', '#']) && rest.parse::<toml_edit::DocumentMut>().is_ok_and(|d| !d.is_empty()));
        let text = uncommented.unwrap_or(line);
        let t = text.trim();
        if t.starts_with('[') {
            // Each [[array]] element is a table of its own: its keys may repeat the last one's.
            table = format!("{t}#{n}");
        } else if let Some((key, _)) = t.split_once('=').filter(|_| !t.starts_with('#')) {
            if !seen.insert((table.clone(), key.trim().to_owned())) {
                assert!(uncommented.is_some(), "config.toml.example:{}: {} appears twice", n + 1, key.trim());
                continue;
            }
        }
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// Every key path in a TOML document: `smtp.listen`, `smtp.users[].name`, `aliases.ops`.
fn key_paths(doc: &toml_edit::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, item) in doc.iter() {
        let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        match item {
            toml_edit::Item::Table(t) => key_paths(t, &path, out),
            toml_edit::Item::ArrayOfTables(a) => a.iter().for_each(|t| key_paths(t, &format!("{path}[]"), out)),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// One row of the README's reference table.
struct Row {
    key: String,
    default: String,
}

fn reference_rows() -> Vec<Row> {
    let table = readme::between("config-reference");
    let rows: Vec<Row> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert!(cells.len() >= 4, "README reference row needs | key | type | default | meaning |: {l}");
            Row { key: cells[0].trim_matches('`').to_owned(), default: cells[2].to_owned() }
        })
        .collect();
    assert!(rows.len() > 10, "README's configuration reference table not found or nearly empty");
    rows
}

/// Whether a reference key (`aliases.<name>` stands for any alias) names a key path.
fn row_matches(row: &str, path: &str) -> bool {
    let (r, p): (Vec<&str>, Vec<&str>) = (row.split('.').collect(), path.split('.').collect());
    r.len() == p.len() && r.iter().zip(&p).all(|(r, p)| r == p || (r.starts_with('<') && r.ends_with('>')))
}

/// The configuration with only `path = value` set (no validation: defaults are about parsing).
fn config_with(path: &str, value: &str) -> Result<Config, toml::de::Error> {
    let (table, key) = path.rsplit_once('.').expect("reference keys are table.key");
    toml::from_str(&format!("[{table}]\n{key} = {value}\n"))
}

#[test]
fn config_reference_lists_every_key_of_the_example_and_only_those() {
    let text = uncommented_example();
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_else(|e| panic!("uncommented config.toml.example: {e}\n{text}"));
    let mut keys = BTreeSet::new();
    key_paths(doc.as_table(), "", &mut keys);
    assert!(keys.contains("smtp.listen") && keys.contains("smtp.users[].name"), "key collection is broken: {keys:?}");
    let rows = reference_rows();
    let missing: Vec<&String> = keys.iter().filter(|k| !rows.iter().any(|r| row_matches(&r.key, k))).collect();
    let unknown: Vec<&str> = rows.iter().filter(|r| !keys.iter().any(|k| row_matches(&r.key, k))).map(|r| r.key.as_str()).collect();
    let mut seen = HashSet::new();
    let twice: Vec<&str> = rows.iter().filter(|r| !seen.insert(&r.key)).map(|r| r.key.as_str()).collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && twice.is_empty(),
        "README's configuration reference and config.toml.example disagree.\n\
         Keys of config.toml.example with no row in README (add `| key | type | default | meaning |` rows): {missing:?}\n\
         Rows whose key is not in config.toml.example (add it there, commented if optional, or drop the row): {unknown:?}\n\
         Rows listed twice: {twice:?}"
    );
}

#[test]
fn every_key_of_the_example_is_accepted_by_the_loader() {
    // Everything at once, commented-out examples included: an unknown key or a value of the
    // wrong type in the example fails here, naming it.
    let text = uncommented_example();
    if let Err(e) = toml::from_str::<Config>(&text) {
        panic!("config.toml.example with its examples uncommented is not accepted: {e}\n---\n{text}");
    }
    // And the file as shipped passes full validation (given a token).
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example")).unwrap();
    let token = |k: &str| (k == "LINE_CHANNEL_ACCESS_TOKEN").then(|| "t".to_owned());
    if let Err(e) = Config::parse(&example, "config.toml.example", Purpose::Serve, &token) {
        panic!("config.toml.example as shipped: {e}");
    }
}

#[test]
fn reference_defaults_are_what_the_loader_uses() {
    let empty = format!("{:?}", toml::from_str::<Config>("").expect("an empty file is a valid start"));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in reference_rows() {
        // Only a default written as one TOML literal is checked; "none" and prose are not.
        let d = &row.default;
        let literal = d.len() > 2 && d.starts_with('`') && d.ends_with('`') && d.matches('`').count() == 2;
        if !literal || row.key.contains("[]") || row.key.contains('<') {
            continue;
        }
        let value = &d[1..d.len() - 1];
        match config_with(&row.key, value) {
            // Setting a key to its default must change nothing.
            Ok(c) if format!("{c:?}") == empty => checked += 1,
            Ok(_) => wrong.push(format!("{} = {value} is not the default", row.key)),
            Err(e) => wrong.push(format!("{} = {value} is not accepted: {e}", row.key)),
        }
    }
    assert!(wrong.is_empty(), "README's configuration reference has wrong defaults:\n  {}", wrong.join("\n  "));
    assert!(checked > 30, "only {checked} defaults were checked");
}

#[test]
fn the_limits_table_matches_the_reference() {
    // "Facing the internet" restates limits for admins sizing a machine: each row that names
    // one key must name a real one, and give the reference's default first.
    let reference = reference_rows();
    let table = readme::between("limits");
    let mut checked = 0;
    for l in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
        assert!(cells.len() >= 4, "limits row needs | limit | default | what a sender sees | sizing |: {l}");
        let key = cells[0];
        if key.matches('`').count() != 2 || !key.ends_with('`') {
            continue; // a row about several keys, or a behaviour
        }
        let key = key.trim_matches('`');
        let row = reference.iter().find(|r| r.key == key).unwrap_or_else(|| panic!("limits row {key:?} is not in the configuration reference"));
        let default = cells[1].split(' ').next().unwrap_or_default().trim_end_matches(',');
        assert_eq!(default, row.default, "the limits table gives {key} another default than the reference");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} limits rows were checked");
}

#[test]
fn a_wrong_default_in_the_reference_would_be_caught() {
    // The check above compares whole configurations; make sure a changed value shows.
    let empty = format!("{:?}", toml::from_str::<Config>("").unwrap());
    assert_ne!(format!("{:?}", config_with("smtp.max_recipients", "99").unwrap()), empty);
    assert_ne!(format!("{:?}", config_with("delivery.max_age", "\"2d\"").unwrap()), empty);
    assert!(row_matches("aliases.<name>", "aliases.ops") && !row_matches("aliases.<name>", "aliases.a.b"));
}

// ------------------------------------------------------------------ other README checks

#[test]
fn every_toml_block_in_the_readme_is_valid_configuration() {
    let blocks = readme::blocks_in("toml");
    assert!(blocks.len() >= 2, "expected the quick start's and the recipes' toml blocks");
    for (line, block) in &blocks {
        if let Err(e) = toml::from_str::<Config>(block) {
            panic!("README.md:{line}: this toml block is not a valid configuration: {e}\n{block}");
        }
    }
    // The quick start's minimal file is complete: with a token in the environment it validates.
    let minimal = readme::block("quickstart-config");
    let env = |k: &str| (k == "LINE_CHANNEL_ACCESS_TOKEN").then(|| "t".to_owned());
    if let Err(e) = Config::parse(&minimal, "README quick start", Purpose::Serve, &env) {
        panic!("the quick start's configuration does not validate: {e}");
    }
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn links_to_readme_sections_resolve() {
    let text = readme::text();
    let anchors: HashSet<String> = text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect();
    let mut broken = Vec::new();
    for (i, _) in text.match_indices("](#") {
        let rest = &text[i + 3..];
        let target = &rest[..rest.find(')').unwrap_or(rest.len())];
        if !anchors.contains(target) {
            broken.push(target.to_owned());
        }
    }
    assert!(broken.is_empty(), "README links to sections that do not exist: {broken:?}");
    assert!(anchors.contains("troubleshooting-by-smtp-reply-code"), "{anchors:?}");
}

/// `(code, enhanced status)` of every 4xx/5xx reply in the source: `Reply::new(550, "5.1.1", …)`
/// and the `(451, "4.4.1")` pairs of the LINE outcome table, however the lines are broken.
fn replies_in_source() -> BTreeSet<(u16, String)> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut sources = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut sources);
    let mut found = BTreeSet::new();
    for src in &sources {
        let b = src.as_bytes();
        // A status literal "d.d.d" whose preceding token (before a comma) is a 3-digit code.
        for (i, _) in src.match_indices('"') {
            let Some(end) = src[i + 1..].find('"').map(|e| i + 1 + e) else { continue };
            let status = &src[i + 1..end];
            let parts: Vec<&str> = status.split('.').collect();
            if parts.len() != 3 || !parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit())) {
                continue;
            }
            let before = src[..i].trim_end();
            let Some(before) = before.strip_suffix(',') else { continue };
            let before = before.trim_end();
            if before.len() < 3 || !b[before.len() - 3..before.len()].iter().all(u8::is_ascii_digit) {
                continue;
            }
            let code: u16 = before[before.len() - 3..].parse().unwrap();
            if code >= 400 && status.starts_with(&code.to_string()[..1]) {
                found.insert((code, status.to_owned()));
            }
        }
    }
    found
}

#[test]
fn troubleshooting_covers_every_reply_the_gateway_sends() {
    let replies = replies_in_source();
    assert!(replies.len() > 20 && replies.contains(&(550, "5.1.1".into())) && replies.contains(&(452, "4.2.2".into())), "{replies:?}");
    let table = readme::between("smtp-replies");
    let missing: Vec<String> =
        replies.iter().map(|(c, s)| format!("{c} {s}")).filter(|r| !table.contains(&format!("`{r}`"))).collect();
    assert!(
        missing.is_empty(),
        "the gateway can answer these, but README's 'Troubleshooting by SMTP reply code' table has no row for them: {missing:?}"
    );
}

// ------------------------------------------------------------------ README commands, run

/// Whether `tool` is on PATH; when not, says so (or fails under MAIL2LINE_REQUIRE_DOC_TOOLS=1).
fn have(tool: &str) -> bool {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("MAIL2LINE_REQUIRE_DOC_TOOLS").as_deref() == Ok("1") {
            panic!("MAIL2LINE_REQUIRE_DOC_TOOLS=1, but {tool} is not installed");
        }
        eprintln!("SKIPPED: README's {tool} examples did not run: {tool} is not installed (Debian: apt-get install {tool}).");
    }
    found
}

/// Runs a README block with bash in `cwd`, after replacing each `(from, to)`; every `from` must
/// occur (otherwise the example changed and the test would silently run something else).
/// Returns (success, stdout + stderr).
fn run_block(name: &str, cwd: &Path, replace: &[(&str, String)]) -> (bool, String) {
    let mut script = readme::block(name);
    for (from, to) in replace {
        assert!(script.contains(from), "README block {name} no longer contains {from:?}:\n{script}");
        script = script.replace(from, to);
    }
    let out = Command::new("bash").arg("-eo").arg("pipefail").arg("-c").arg(&script).current_dir(cwd).output().expect("run bash");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn run_ok(name: &str, cwd: &Path, replace: &[(&str, String)]) {
    let (ok, output) = run_block(name, cwd, replace);
    assert!(ok, "README block {name} failed:\n{output}");
}

async fn gateway(smtp_extra: &str) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, smtp_extra, ..Default::default() }));
    (line, gw)
}

/// The README's example recipient.
const EXAMPLE_ID: &str = "U0123456789abcdef0123456789abcdef";

/// Waits for the `n`-th push and returns its body.
async fn nth_push(line: &StandIn, n: usize) -> Value {
    line.wait_for(n, Duration::from_secs(60)).await;
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), n, "{:?}", line.requests().iter().map(|r| &r.path).collect::<Vec<_>>());
    pushes[n - 1].body.clone()
}

fn text_push(text: &str) -> Value {
    json!({"to": EXAMPLE_ID, "messages": [{"type": "text", "text": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_python_example_delivers() {
    let (line, gw) = gateway("").await;
    let cwd = tempfile::tempdir().unwrap();
    let port = gw.smtp.port().to_string();
    block_in_place(|| run_ok("quickstart-python", cwd.path(), &[("\"127.0.0.1\", 2525", format!("\"127.0.0.1\", {port}"))]));
    assert_eq!(nth_push(&line, 1).await, text_push("disk check\n\n/var is 91% full"));
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_curl_example_delivers() {
    if !have("curl") {
        return;
    }
    let (line, gw) = gateway("").await;
    let cwd = tempfile::tempdir().unwrap();
    block_in_place(|| run_ok("quickstart-curl", cwd.path(), &[("127.0.0.1:2525", gw.smtp.to_string())]));
    assert_eq!(nth_push(&line, 1).await, text_push("hello\n\nfrom curl"));
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_and_plain_swaks_examples_deliver() {
    if !have("swaks") {
        return;
    }
    let (line, gw) = gateway("").await;
    let cwd = tempfile::tempdir().unwrap();
    let server = [("127.0.0.1:2525", gw.smtp.to_string())];
    block_in_place(|| run_ok("quickstart-swaks", cwd.path(), &server));
    assert_eq!(
        nth_push(&line, 1).await,
        json!({"to": EXAMPLE_ID, "messages": [{"type": "text", "text": "backup done\n\n$ all good",
            "emojis": [{"index": 13, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"}]}]})
    );
    block_in_place(|| run_ok("swaks-plain", cwd.path(), &server));
    assert_eq!(nth_push(&line, 2).await, text_push("nightly job\n\nfinished in 42 s"));
    // The attachment example needs its file (23 bytes, as README says); LINE gets the text
    // with the attachment listed.
    std::fs::write(cwd.path().join("backup.log"), "03:00 start\n03:42 done\n").unwrap();
    block_in_place(|| run_ok("swaks-attachment", cwd.path(), &server));
    assert_eq!(nth_push(&line, 3).await, text_push("backup report\n\nthe log is attached\n\n📎 backup.log (23 B)"));
    // Checking a recipient: refused with the reason the README shows, nothing sent.
    let (ok, output) = block_in_place(|| run_block("swaks-check-recipient", cwd.path(), &server));
    assert!(!ok, "swaks reports the refusal with its exit status:\n{output}");
    assert!(output.contains("<** 550 5.1.1 <bob@text.line.example.com>: no such alias;"), "{output}");
    assert!(readme::text().contains("`<** 550 5.1.1 <bob@text.line.example.com>: no such alias; …`"), "README shows that reply");
    // (A refused RCPT leaves nothing to deliver, so there is nothing to wait for.)
    assert_eq!(line.requests_to("/v2/bot/message/push").len(), 3, "the recipient check sent nothing");
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_tls_and_login_examples_deliver() {
    if !have("swaks") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let cert = support::tls::make_cert(certs.path());
    // The README's user and password, with TLS and a login required: delivery proves both.
    let hash = support::tls::hash_password("the password");
    let smtp_extra = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_listen = \"127.0.0.1:0\"\nrequire_tls = true\nauth = \"required\"\n\
         [[smtp.users]]\nname = \"nas\"\npassword_hash = \"{hash}\"\n",
        cert.cert_file.display(),
        cert.key_file.display()
    );
    let (line, gw) = gateway(&smtp_extra).await;
    let cwd = tempfile::tempdir().unwrap();
    block_in_place(|| run_ok("swaks-starttls-auth", cwd.path(), &[("mail2line.example.com:587", gw.smtp.to_string())]));
    assert_eq!(nth_push(&line, 1).await, text_push("RAID check\n\nall disks healthy"));
    let smtps = gw.smtps.expect("tls_listen address").to_string();
    block_in_place(|| run_ok("swaks-implicit-tls", cwd.path(), &[("mail2line.example.com:465", smtps)]));
    assert_eq!(nth_push(&line, 2).await, text_push("camera 2\n\nmotion at the back door"));
    line.assert_all_valid();
}
