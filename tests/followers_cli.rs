//! `mail2line followers list|export` end to end: a registry seeded through the real module (the
//! way the webhook fills it), the real binary run as a separate process against it, and exact
//! output checked line by line. The seeding connection stays open while the CLI runs, as the
//! server's would, so these also show the command reading a registry that is in use.

mod support;

use std::path::{Path, PathBuf};

use mail2line::followers::{Kind, Registry};
use serde_json::{json, Value};
use support::cli::{self, Run};

const DOMAIN: &str = "text.line.example.com";

// Fixed instants, so times in the output are known: 2024-05-01 12:00:00.123 UTC and whole hours after.
const T12: i64 = 1_714_564_800_123;
const T13: i64 = 1_714_568_400_000;
const T14: i64 = 1_714_572_000_000;
const T15: i64 = 1_714_575_600_000;
const T16: i64 = 1_714_579_200_000;

fn id(prefix: char, digit: char) -> String {
    format!("{prefix}{}", digit.to_string().repeat(32))
}

/// The name that needs every kind of care: a comma and a quote (CSV quoting) and Japanese (UTF-8,
/// double-width in a terminal).
const TRICKY_NAME: &str = "山田 \"Taro\", Jr.";

/// A config in a tempdir whose `storage.dir` is `<tmp>/data`.
struct Setup {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, format!("[smtp]\ndomain = \"{DOMAIN}\"\n[storage]\ndir = \"{}\"\n", data.display())).unwrap();
    Setup { _tmp: tmp, config, data }
}

/// Two active users (one with the tricky name), an active group, and a user who unfollowed (whose
/// name has a line break). Returns the open registry, as a running server would hold it.
fn seed(data: &Path) -> Registry {
    let reg = Registry::open(data).unwrap();
    reg.follow(&id('U', 'a'), Kind::User, Some("Alice"), T12).unwrap();
    reg.follow(&id('U', 'b'), Kind::User, Some(TRICKY_NAME), T13).unwrap();
    reg.follow(&id('C', 'c'), Kind::Group, Some("運用チーム"), T14).unwrap();
    reg.follow(&id('U', 'd'), Kind::User, Some("Line\nBreak"), T15).unwrap();
    reg.unfollow(&id('U', 'd'), Kind::User, T16).unwrap();
    reg
}

/// Runs `mail2line followers <args>` with no config in the environment unless `env_config`.
fn run(args: &[&str], env_config: Option<&Path>) -> Run {
    let mut cmd = cli::bare(["followers"].iter().chain(args));
    if let Some(p) = env_config {
        cmd.env("MAIL2LINE_CONFIG", p);
    }
    Run::of(&mut cmd)
}

fn ok(args: &[&str], config: &Path) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let c = config.to_str().unwrap();
    all.extend(["--config", c]);
    let r = run(&all, None);
    assert_eq!(r.code, 0, "followers {args:?} failed: {}", r.stderr);
    assert_eq!(r.stderr, "", "nothing on stderr when it works");
    r.stdout
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn list_shows_active_followers_with_addresses() {
    let s = setup();
    let _reg = seed(&s.data);
    let out = ok(&["list"], &s.config);
    // NAME is 16 terminal columns wide: 山田 counts 4, so the padding after it is shorter.
    assert_eq!(
        lines(&out),
        [
            "ID                                 KIND   STATE   NAME              FOLLOWED                  ADDRESS",
            "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  user   active  Alice             2024-05-01T12:00:00.123Z  Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@text.line.example.com",
            "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  user   active  山田 \"Taro\", Jr.  2024-05-01T13:00:00.000Z  Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@text.line.example.com",
            "Ccccccccccccccccccccccccccccccccc  group  active  運用チーム        2024-05-01T14:00:00.000Z  Ccccccccccccccccccccccccccccccccc@text.line.example.com",
            "3 active, 1 inactive",
        ]
    );
}

#[test]
fn list_all_includes_inactive_on_one_line() {
    let s = setup();
    let _reg = seed(&s.data);
    let out = ok(&["list", "--all"], &s.config);
    assert_eq!(
        lines(&out),
        [
            "ID                                 KIND   STATE     NAME              FOLLOWED                  ADDRESS",
            "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  user   active    Alice             2024-05-01T12:00:00.123Z  Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@text.line.example.com",
            "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  user   active    山田 \"Taro\", Jr.  2024-05-01T13:00:00.000Z  Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@text.line.example.com",
            "Ccccccccccccccccccccccccccccccccc  group  active    運用チーム        2024-05-01T14:00:00.000Z  Ccccccccccccccccccccccccccccccccc@text.line.example.com",
            "Udddddddddddddddddddddddddddddddd  user   inactive  Line Break        2024-05-01T15:00:00.000Z  Udddddddddddddddddddddddddddddddd@text.line.example.com",
            "3 active, 1 inactive",
        ]
    );
}

#[test]
fn list_json_has_exact_fields() {
    let s = setup();
    let _reg = seed(&s.data);
    let active: Value = serde_json::from_str(&ok(&["list", "--json"], &s.config)).expect("list --json is JSON");
    let all: Value = serde_json::from_str(&ok(&["list", "--all", "--json"], &s.config)).expect("list --all --json is JSON");
    let entry = |id: &str, kind: &str, active: bool, name: &str, followed: &str, unfollowed: Option<&str>| {
        json!({
            "id": id, "kind": kind, "active": active, "display_name": name,
            "followed_at": followed, "unfollowed_at": unfollowed, "address": format!("{id}@{DOMAIN}"),
        })
    };
    let expected_active = vec![
        entry(&id('U', 'a'), "user", true, "Alice", "2024-05-01T12:00:00.123Z", None),
        entry(&id('U', 'b'), "user", true, TRICKY_NAME, "2024-05-01T13:00:00.000Z", None),
        entry(&id('C', 'c'), "group", true, "運用チーム", "2024-05-01T14:00:00.000Z", None),
    ];
    // Whole-value equality: no field missing, none extra, names unaltered (JSON escapes them).
    assert_eq!(active, Value::Array(expected_active.clone()));
    let mut expected_all = expected_active;
    expected_all.push(entry(
        &id('U', 'd'),
        "user",
        false,
        "Line\nBreak",
        "2024-05-01T15:00:00.000Z",
        Some("2024-05-01T16:00:00.000Z"),
    ));
    assert_eq!(all, Value::Array(expected_all));
}

#[test]
fn export_is_rfc4180_csv_of_everyone() {
    let s = setup();
    let _reg = seed(&s.data);
    let out = ok(&["export"], &s.config);
    let expected = concat!(
        "id,kind,active,display_name,followed_at,unfollowed_at,address\r\n",
        "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,user,true,Alice,2024-05-01T12:00:00.123Z,,Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@text.line.example.com\r\n",
        // The comma and the quote force quoting; the quotes inside are doubled.
        "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,user,true,\"山田 \"\"Taro\"\", Jr.\",2024-05-01T13:00:00.000Z,,Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@text.line.example.com\r\n",
        "Ccccccccccccccccccccccccccccccccc,group,true,運用チーム,2024-05-01T14:00:00.000Z,,Ccccccccccccccccccccccccccccccccc@text.line.example.com\r\n",
        // The line break stays in the field, inside quotes.
        "Udddddddddddddddddddddddddddddddd,user,false,\"Line\nBreak\",2024-05-01T15:00:00.000Z,2024-05-01T16:00:00.000Z,Udddddddddddddddddddddddddddddddd@text.line.example.com\r\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn sees_changes_made_while_the_registry_is_open() {
    let s = setup();
    let reg = seed(&s.data);
    assert!(ok(&["list"], &s.config).ends_with("\n3 active, 1 inactive\n"));
    // The "server" records a new follower and an unfollow; the next run sees both.
    reg.follow(&id('U', 'e'), Kind::User, None, T16).unwrap();
    reg.unfollow(&id('U', 'a'), Kind::User, T16).unwrap();
    let out = ok(&["list"], &s.config);
    let l = lines(&out);
    assert_eq!(l.len(), 5, "{out}");
    assert!(l[3].starts_with(&format!("{}  user   active  -  ", id('U', 'e'))), "an unnamed follower shows -: {out}");
    assert!(!out.contains(&id('U', 'a')), "{out}");
    assert_eq!(l[4], "3 active, 2 inactive");
}

#[test]
fn config_comes_from_the_environment_and_c_works_before_the_action() {
    let s = setup();
    let _reg = seed(&s.data);
    let by_env = run(&["list"], Some(&s.config));
    assert_eq!((by_env.code, by_env.stderr.as_str()), (0, ""));
    let short = run(&["-c", s.config.to_str().unwrap(), "list"], None);
    assert_eq!((short.code, short.stdout.as_str()), (0, by_env.stdout.as_str()));
}

#[test]
fn empty_registry_says_so() {
    let s = setup();
    let _reg = Registry::open(&s.data).unwrap();
    assert_eq!(
        ok(&["list", "--all"], &s.config),
        "No followers yet: they appear when someone follows the bot or adds it to a group.\n0 active, 0 inactive\n"
    );
    assert_eq!(ok(&["list", "--json"], &s.config), "[]\n");
    assert_eq!(ok(&["export"], &s.config), "id,kind,active,display_name,followed_at,unfollowed_at,address\r\n");
}

#[test]
fn missing_registry_exits_1_and_says_where_it_looked() {
    let s = setup();
    for args in [&["list"][..], &["list", "--json"], &["export"]] {
        let r = run(args, Some(&s.config));
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "nothing on stdout, so a redirected export does not look like an empty one");
        let file = s.data.join("followers.sqlite3");
        assert_eq!(
            r.stderr,
            format!(
                "mail2line followers: no follower registry at {} (it is created when `mail2line serve` starts with this storage.dir); storage.dir comes from {}\n",
                file.display(),
                s.config.display()
            )
        );
    }
}

#[test]
fn config_errors_exit_78() {
    let s = setup();
    std::fs::write(&s.config, "[smtp]\ndomain = \"a.b\"\n[storage]\ndirr = \"x\"\n").unwrap();
    let r = run(&["list"], Some(&s.config));
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.starts_with("mail2line: configuration errors:\n"), "{}", r.stderr);
    assert!(r.stderr.contains("storage.dirr"), "{}", r.stderr);
    let r = run(&["export", "--config", "/nonexistent/mail2line.toml"], None);
    assert_eq!((r.code, r.stdout.as_str()), (78, ""), "{}", r.stderr);
}

#[test]
fn export_neutralises_names_a_spreadsheet_would_run_as_formulas() {
    let s = setup();
    let reg = Registry::open(&s.data).unwrap();
    for (i, name) in ["=cmd|' /C calc'!A0", "+SUM(1)", "-1+2", "@A1", "a=b"].iter().enumerate() {
        reg.follow(&format!("U{:032x}", i), Kind::User, Some(name), T12).unwrap();
    }
    let out = ok(&["export"], &s.config);
    let names: Vec<&str> = out.lines().skip(1).map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(names, ["'=cmd|' /C calc'!A0", "'+SUM(1)", "'-1+2", "'@A1", "a=b"], "{out}");
    // The table gets the same names escaped for a terminal, not prefixed.
    assert!(ok(&["list"], &s.config).contains("=cmd|' /C calc'!A0"));
}
