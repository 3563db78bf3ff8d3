//! The loader's unit tests: every message, with its file, line and key.

use super::*;
use crate::compose::quoting::{Quoted, Rules, Signature};
use crate::logging::LogFormat;
use crate::spool::settings::DeliveryMode;
use crate::submit::settings::ClientTls;

fn no_env(_: &str) -> Option<String> {
    None
}

const GOOD: &str = r#"
[smtp]
listen = "127.0.0.1:2525"
domain = "Text.Line.Example.com"

[line]
channel_access_token = "tok"
"#;

#[test]
fn a_good_file_with_defaults() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.smtp.domain, "text.line.example.com");
    assert_eq!(c.smtp.max_message_bytes, 10_485_760);
    assert_eq!(c.line.api_base_url, "https://api.line.me");
    assert_eq!(c.line.api_data_base_url, "https://api-data.line.me");
    assert_eq!(c.message.template, "{subject}\n\n{body}");
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.storage.dir, PathBuf::from("./data"));
    assert_eq!(c.line.channel_access_token.expose(), "tok");
    assert_eq!(c.delivery.mode, DeliveryMode::Spool);
    assert_eq!(c.delivery.max_age.parse(), Ok(Duration::from_secs(3 * 86400)));
    assert_eq!(c.delivery.max_requests_per_second, 2000);
    assert_eq!(c.delivery.max_multicast_per_second, 200);
}

#[test]
fn webhook_aliases_and_routing() {
    let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!((c.webhook.path.as_str(), c.webhook.welcome, c.routing.followers_address.as_str()), ("/webhook", true, "followers"));
    assert_eq!(c.webhook.address_keyword, vec!["address", "アドレス"]);
    assert!(!c.smtp.require_follower);
    let text = "[smtp]\ndomain = \"a.b\"\nrequire_follower = true\n\n[aliases]\nops = [\"U0123456789abcdef0123456789abcdef\", \"C0123456789abcdef0123456789abcdef\"]\n";
    let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert!(c.smtp.require_follower);
    assert_eq!(c.aliases["ops"].ids.len(), 2);
    let text = "[smtp]\ndomain = \"a.b\"\n\n[aliases]\nops = [\"bob\"]\nfollowers = [\"U0123456789abcdef0123456789abcdef\"]\n\n[webhook]\npath = \"hook\"\nwelcome_template = \"hi {name}\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:5: aliases.ops: alias \"ops\": \"bob\" is not a LINE id"), "{e}");
    assert!(e.contains("alias \"followers\" clashes with routing.followers_address"), "{e}");
    assert!(e.contains("c.toml:9: webhook.path:"), "{e}");
    assert!(e.contains("webhook.welcome_template: unknown placeholder {name}"), "{e}");
}

#[test]
fn followers_access_and_alias_tables() {
    let hash = crate::smtp::auth::hash_password("pw").unwrap();
    let head = format!("[smtp]\ndomain = \"a.b\"\nauth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n");
    const U: &str = "U0123456789abcdef0123456789abcdef";
    // Closed by default: both lists empty.
    let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert!(c.routing.followers_senders.is_empty() && c.routing.followers_users.is_empty());
    // Every form of alias: a plain list, an inline table, a table of its own; tables with
    // neither senders nor users are open like a list.
    let text = format!(
        "{head}[routing]\nfollowers_senders = [\"@example.com\", \"cron@host.example\"]\nfollowers_users = [\"cms\"]\n[aliases]\nteam = [\"{U}\"]\nops = {{ ids = [\"{U}\"], senders = [\"@corp.example\"], users = [\"cms\"] }}\nopen = {{ ids = [\"{U}\"] }}\n[aliases.deploy]\nids = [\"{U}\"]\nusers = [\"cms\"]\n"
    );
    let c = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.routing.followers_senders, vec!["@example.com", "cron@host.example"]);
    assert_eq!(c.routing.followers_users, vec!["cms"]);
    assert_eq!(c.aliases["team"], Alias { ids: vec![U.into()], ..Alias::default() });
    assert!(!c.aliases["team"].is_protected() && !c.aliases["open"].is_protected());
    assert_eq!(c.aliases["ops"], Alias { ids: vec![U.into()], senders: vec!["@corp.example".into()], users: vec!["cms".into()] });
    assert!(c.aliases["ops"].is_protected() && c.aliases["deploy"].is_protected());

    // Each mistake names its key and line. Types first (a field misspelt, a table without
    // ids, a value that is neither list nor table): values are checked once types are right.
    let bad_types = format!(
        "{head}[aliases]\nops = {{ ids = [\"{U}\"], sender = [\"@corp.example\"] }}\nnoids = {{ senders = [\"@corp.example\"] }}\nnum = 5\n"
    );
    let e = Config::parse(&bad_types, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:9: aliases.ops: unknown field `sender`, expected one of `ids`, `senders`, `users`"), "{e}");
    assert!(e.contains("c.toml:10: aliases.noids: missing field `ids`"), "{e}");
    assert!(e.contains("c.toml:11: aliases.num: invalid type: integer `5`, expected a list of LINE ids, or a table"), "{e}");
    // Then values: a bad id, a bad sender entry, an unknown login.
    let bad_values = format!(
        "{head}[routing]\nfollowers_senders = [\"example.com\"]\nfollowers_users = [\"nobody\"]\n[aliases]\nteam = {{ ids = [\"bob\"], senders = [\"@corp..example\"], users = [\"root\"] }}\n"
    );
    let e = Config::parse(&bad_values, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:12: aliases.team: alias \"team\": \"bob\" is not a LINE id"), "{e}");
    assert!(e.contains("c.toml:12: aliases.team: senders: \"@corp..example\" is not a domain pattern"), "{e}");
    assert!(e.contains("c.toml:12: aliases.team: users: \"root\" is not a login in [[smtp.users]]"), "{e}");
    assert!(e.contains("c.toml:9: routing.followers_senders: \"example.com\" is neither an address"), "{e}");
    assert!(e.contains("c.toml:10: routing.followers_users: \"nobody\" is not a login in [[smtp.users]]"), "{e}");
    // The table form of its own, `[aliases.team]`, is located too.
    let own_table = format!("{head}[aliases.team]\nids = [\"{U}\"]\nsenders = [\"nobody\"]\n");
    let e = Config::parse(&own_table, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:8: aliases.team: senders: \"nobody\" is neither"), "{e}");
    // A login that exists but can never log in.
    let off = format!("[smtp]\ndomain = \"a.b\"\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n[routing]\nfollowers_users = [\"cms\"]\n");
    let e = Config::parse(&off, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:7: routing.followers_users: \"cms\" can never log in while smtp.auth is \"off\""), "{e}");
}

#[test]
fn media_section() {
    let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.media.base_url(), None);
    assert_eq!(c.media.retention.parse(), Ok(Duration::from_secs(7 * 86400)));
    assert!(!c.media.serve_attachments);
    assert_eq!(c.media.max_attachment_bytes, 10 * 1024 * 1024);
    let text = "[smtp]\ndomain = \"a.b\"\n[media]\npublic_base_url = \"https://m.example.com/\"\nretention = \"2h\"\nserve_attachments = true\nmax_attachment_bytes = 5\n";
    let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.media.base_url(), Some("https://m.example.com"));
    assert_eq!(c.media.retention.parse(), Ok(Duration::from_secs(7200)));
    assert_eq!((c.media.serve_attachments, c.media.max_attachment_bytes), (true, 5));
    for bad in ["http://m.example.com", "https://", "m.example.com", "https://a b"] {
        let text = format!("[smtp]\ndomain = \"a.b\"\n[media]\n\npublic_base_url = {bad:?}\n");
        let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:5: media.public_base_url:"), "{e}");
        assert!(e.problems[0].contains("https"), "{e}");
    }
    let text = "[smtp]\ndomain = \"a.b\"\n[media]\nretention = \"a week\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:4: media.retention:"), "{e}");
}

#[test]
fn delivery_section() {
    let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmode = \"direct\"\nmax_age = \"72h\"\nworkers = 3\n";
    let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!((c.delivery.mode, c.delivery.worker_count()), (DeliveryMode::Direct, 3));
    assert_eq!(c.delivery.max_age.parse(), Ok(Duration::from_secs(72 * 3600)));
    let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmax_age = 7200\n";
    assert_eq!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().delivery.max_age.parse(), Ok(Duration::from_secs(7200)));
    let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmode = \"later\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:4: delivery.mode: unknown variant `later`"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\n\nmax_age = \"3 weeks\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:5: delivery.max_age: \"3 weeks\" has an unknown unit"), "{e}");
}

#[test]
fn environment_overrides_secrets() {
    let env = |k: &str| match k {
        "LINE_CHANNEL_ACCESS_TOKEN" => Some("from-env".to_owned()),
        "LINE_CHANNEL_SECRET" => Some("sec-env".to_owned()),
        _ => None,
    };
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &env).unwrap();
    assert_eq!(c.line.channel_access_token.expose(), "from-env");
    assert_eq!(c.line.channel_secret.expose(), "sec-env");
}

#[test]
fn secrets_from_files_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "file-token-value\n").unwrap();
    let sec = dir.path().join("secret");
    std::fs::write(&sec, "file-secret-value").unwrap();
    let text = format!(
        "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token_file = \"{}\"\nchannel_secret_file = \"{}\"\n",
        tok.display(),
        sec.display()
    );
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.line.channel_access_token.expose(), "file-token-value");
    assert_eq!(c.line.channel_secret.expose(), "file-secret-value");
    // The environment still wins.
    let env = |k: &str| (k == "LINE_CHANNEL_ACCESS_TOKEN").then(|| "env-token".to_owned());
    assert_eq!(Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap().line.channel_access_token.expose(), "env-token");
    // Both inline and file; a missing file; an empty file: each named by key and line.
    std::fs::write(&sec, "\n").unwrap();
    let text = format!(
        "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"inline-token\"\nchannel_access_token_file = \"{}\"\nchannel_secret_file = \"{}\"\n",
        tok.display(),
        sec.display()
    );
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:5: line.channel_access_token_file: set either the key itself or its _file, not both"), "{e}");
    assert!(e.contains("c.toml:6: line.channel_secret_file:") && e.contains("is empty"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token_file = \"/nonexistent/tok\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:4: line.channel_access_token_file: cannot read /nonexistent/tok: No such file or directory"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!e.contains("file-token-value") && !e.contains("inline-token"));
}

#[test]
fn every_wrong_key_is_reported_at_once() {
    let text = "[smtp]\ndomain = \"a.b\"\nmax_mesage_bytes = 5\nmax_recipients = \"ten\"\nallowed_clients = [\n  1,\n  2,\n]\n\n[line]\ntimeout_secs = -1\ntoken = \"v3\"\n\n[delivery]\nmode = \"later\"\n\n[[smtp.users]]\nname = \"a\"\n[[smtp.users]]\nname = [\"b\"]\n\n[smtpp]\nlisten = 1\n\n[webhook]\nwelcome = \"yes\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
    let all = e.to_string();
    for want in [
        "c.toml:3: smtp.max_mesage_bytes: unknown field",
        "c.toml:4: smtp.max_recipients: invalid type: string \"ten\"",
        "c.toml:6: smtp.allowed_clients: invalid type: integer `1`",
        "c.toml:11: line.timeout_secs: invalid value: integer `-1`",
        "c.toml:12: line.token: unknown variant `v3`",
        "c.toml:15: delivery.mode: unknown variant `later`",
        "c.toml:20: smtp.users[1].name: invalid type: sequence",
        "c.toml:22: smtpp: unknown field `smtpp`",
        "c.toml:26: webhook.welcome: invalid type: string",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert_eq!(e.problems.len(), 9, "{all}");
    // A syntax error stops the search: nothing after it can be read.
    let e = Config::parse("[smtp]\ndomain = \n[line]\ntimeout_secs = \"x\"\n", "c.toml", Purpose::Serve, &no_env).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn systemd_credentials_fill_what_nothing_else_sets() {
    let creds = tempfile::tempdir().unwrap();
    let put = |name: &str, value: &str| std::fs::write(creds.path().join(name), value).unwrap();
    put("line-channel-access-token", "cred-token\n");
    put("line-channel-secret", "cred-secret");
    put("smtp-user-cms-password-hash", &crate::smtp::auth::hash_password("pw").unwrap());
    let dir = creds.path().to_str().unwrap().to_owned();
    let env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| dir.clone());
    let text = "[smtp]\ndomain = \"a.b\"\n[[smtp.users]]\nname = \"cms\"\n";
    let c = Config::parse(text, "c.toml", Purpose::DryRun, &env).unwrap();
    assert_eq!(c.line.channel_access_token.expose(), "cred-token");
    assert_eq!(c.line.channel_secret.expose(), "cred-secret");
    assert!(c.smtp.users[0].password_hash.expose().starts_with("$argon2id$"));
    let source = |key: &str| c.secret_sources.iter().find(|(k, _)| k == key).map(|(_, s)| s.to_string());
    assert_eq!(source("line.channel_access_token"), Some(format!("systemd credential line-channel-access-token ({dir}/line-channel-access-token)")));
    assert!(source("smtp.users[0].password_hash").unwrap().starts_with("systemd credential smtp-user-cms-password-hash"));
    // A TLS certificate credential fills in smtp.tls_cert_file; alone, it lacks its key.
    put("smtp-tls-cert", "not read: the key is missing");
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &env).unwrap_err().to_string();
    assert!(e.contains("smtp.tls_cert_file: needs smtp.tls_key_file too"), "{e}");
    std::fs::remove_file(creds.path().join("smtp-tls-cert")).unwrap();
    // The file and the environment win over a credential, and say so.
    let env2 = |k: &str| match k {
        "CREDENTIALS_DIRECTORY" => Some(dir.clone()),
        "LINE_CHANNEL_SECRET" => Some("env-secret".to_owned()),
        _ => None,
    };
    let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"inline-token\"\n";
    let c = Config::parse(text, "c.toml", Purpose::Serve, &env2).unwrap();
    assert_eq!((c.line.channel_access_token.expose(), c.line.channel_secret.expose()), ("inline-token", "env-secret"));
    assert_eq!(c.secret_sources[0], ("line.channel_access_token".to_owned(), SecretSource::Inline));
    assert_eq!(c.secret_sources[1], ("line.channel_secret".to_owned(), SecretSource::Env("LINE_CHANNEL_SECRET".into())));
    // An empty credential is named by key, credential and path; the value never shows.
    put("line-channel-access-token", "\n");
    let e = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Serve, &env).unwrap_err().to_string();
    assert!(e.contains(&format!("c.toml: line.channel_access_token: systemd credential line-channel-access-token: {dir}/line-channel-access-token is empty")), "{e}");
    // Without $CREDENTIALS_DIRECTORY nothing is looked up, and the message says where a token may come from.
    let e = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("the systemd credential line-channel-access-token"), "{e}");
}

#[test]
fn risky_settings_are_warned_about() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("line.channel_secret is not set: the webhook will refuse every LINE event"), "{w:?}");
    let text = "[smtp]\ndomain = \"a.b\"\nlisten = \"0.0.0.0:25\"\n[line]\nchannel_secret = \"s\"\n";
    let w = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().warnings();
    assert_eq!(w, vec!["smtp.listen 0.0.0.0:25 is not loopback and neither smtp.auth nor smtp.allowed_clients is set: anyone who can reach this port can send LINE messages to your followers".to_owned()]);
    let text = "[smtp]\ndomain = \"a.b\"\nlisten = \"0.0.0.0:25\"\nallowed_clients = [\"10.0.0.0/8\"]\n[line]\nchannel_secret = \"s\"\n";
    assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().warnings().is_empty());
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = "[smtp]\ndomain = \"a.b\"\nmax_mesage_bytes = 5\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(e.problems[0].starts_with("c.toml:3: smtp.max_mesage_bytes: unknown field `max_mesage_bytes`"), "{e}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntimeout_secs = \"ten\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:5: line.timeout_secs: invalid type: string \"ten\""), "{e}");
    let text = "[smtp]\nlisten = \"nope\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:2: smtp.listen: invalid socket address"), "{e}");
}

#[test]
fn syntax_error_names_the_line() {
    let e = Config::parse("[smtp]\ndomain = \n", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:2:"), "{e}");
}

#[test]
fn validation_lists_every_problem_with_lines_and_no_secret() {
    let text = "[smtp]\ndomain = \"bad domain\"\nmax_recipients = 0\n\n[line]\napi_base_url = \"ftp://x\"\nchannel_secret = \"s3cret-value\"\napi_data_base_url = \"api-data.line.me\"\n\n[message]\ntemplate = \"{subjekt}\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
    let all = e.to_string();
    assert!(all.contains("c.toml:2: smtp.domain: \"bad domain\" is not a domain name"), "{all}");
    assert!(all.contains("c.toml:3: smtp.max_recipients: must be between 1 and 1000"), "{all}");
    assert!(all.contains("c.toml:6: line.api_base_url:"), "{all}");
    assert!(all.contains("c.toml:8: line.api_data_base_url: \"api-data.line.me\" is not an http(s) URL, e.g. \"https://api-data.line.me\""), "{all}");
    assert!(all.contains("c.toml:5: line.channel_access_token: is empty"), "{all}");
    assert!(all.contains("c.toml:11: message.template:"), "{all}");
    assert!(all.contains("subjekt"), "{all}");
    assert!(!all.contains("s3cret-value"));
    assert_eq!(e.problems.len(), 6, "{all}");
}

#[test]
fn message_quoted_and_signature() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!((c.message.quoted, c.message.signature), (Quoted::Collapse, Signature::Keep));
    let text = format!("{GOOD}\n[message]\nquoted = \"keep\"\nsignature = \"drop\"\n");
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.message.rules(), Rules { quoted: Quoted::Keep, signature: Signature::Drop });
    // A wrong word names the key and the words allowed.
    let text = format!("{GOOD}\n[message]\nquoted = \"hide\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("message.quoted: unknown variant `hide`, expected `keep` or `collapse`"), "{e}");
    let text = format!("{GOOD}\n[message]\nsignature = true\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("message.signature:"), "{e}");
}

#[test]
fn missing_domain_points_at_the_table_or_the_file() {
    let e = Config::parse("[smtp]\nlisten = \"127.0.0.1:25\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(e.problems[0].starts_with("c.toml:1: smtp.domain: is required"), "{e}");
    let e = Config::parse("", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml: smtp.domain: is required"), "{e}");
}

#[test]
fn dry_run_needs_no_token() {
    let text = "[smtp]\ndomain = \"a.b\"\n";
    assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_ok());
    assert!(Config::parse(text, "c.toml", Purpose::Serve, &no_env).is_err());
}

#[test]
fn config_path_precedence() {
    assert_eq!(resolve_path(Some(Path::new("/a")), Some("/b".into())), PathBuf::from("/a"));
    assert_eq!(resolve_path(None, Some("/b".into())), PathBuf::from("/b"));
    // Without either: ./config.toml when it is there, else the system path.
    assert_eq!(default_path(true), PathBuf::from("./config.toml"));
    assert_eq!(default_path(false), PathBuf::from("/etc/mail2line/config.toml"));
    let expected = default_path(Path::new(DEFAULT_PATH).exists());
    assert_eq!(resolve_path(None, None), expected);
    assert_eq!(resolve_path(None, Some(String::new())), expected);
}

#[test]
fn sendmail_section_and_client_purpose() {
    // The client reads no gateway secret file (www-data cannot read them) and needs no token.
    let text = "[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"/nonexistent/c.pem\"\ntls_key_file = \"/nonexistent/k.pem\"\n[line]\nchannel_access_token_file = \"/nonexistent/tok\"\n[sendmail]\nserver = \"[::1]:2525\"\ntls = \"starttls\"\n";
    let c = Config::parse(text, "c.toml", Purpose::Client, &no_env).unwrap();
    assert_eq!((c.sendmail.server.as_deref(), c.sendmail.tls, c.sendmail.timeout_secs), (Some("[::1]:2525"), ClientTls::Starttls, 60));
    assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_err());
    assert_eq!(Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Client, &no_env).unwrap().sendmail.tls, ClientTls::Off);
    // Password: environment, then file, then inline; only the client resolves it.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "file-pass\n").unwrap();
    let text = format!("[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\npassword_file = \"{}\"\n", pw.display());
    assert_eq!(Config::parse(&text, "c.toml", Purpose::Client, &no_env).unwrap().sendmail.password.expose(), "file-pass");
    let env = |k: &str| (k == "MAIL2LINE_SENDMAIL_PASSWORD").then(|| "env-pass".to_owned());
    assert_eq!(Config::parse(&text, "c.toml", Purpose::Client, &env).unwrap().sendmail.password.expose(), "env-pass");
    let gone = "[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\npassword_file = \"/nonexistent/pw\"\n";
    assert!(Config::parse(gone, "c.toml", Purpose::DryRun, &no_env).is_ok());
    let e = Config::parse(gone, "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:5: sendmail.password_file: cannot read /nonexistent/pw"), "{e}");
    // Every problem named by key and line, the password never shown.
    let text = "[smtp]\ndomain = \"a.b\"\n[sendmail]\nserver = \"gateway\"\npassword = \"s3cret-pw\"\ntls_ca_file = \"/ca.pem\"\ntimeout_secs = 0\n";
    let e = Config::parse(text, "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
    for want in [
        "c.toml:4: sendmail.server: \"gateway\" is not host:port",
        "c.toml:7: sendmail.timeout_secs: must be at least 1",
        "c.toml:6: sendmail.tls_ca_file: is used only with tls",
        "c.toml:3: sendmail.username: is required with a password",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert!(!e.contains("s3cret-pw"), "{e}");
    let e = Config::parse("[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\n", "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:3: sendmail.password: is required with sendmail.username"), "{e}");
    let e = Config::parse("[smtp]\ndomain = \"a.b\"\n[sendmail]\ntls = \"yes\"\n", "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:4: sendmail.tls: unknown variant `yes`, expected one of `off`, `starttls`, `tls`"), "{e}");
}

#[test]
fn token_kinds_and_what_each_needs() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.line.token, TokenKind::LongLived);
    // v2.1 with nothing: channel id, key and kid are each named with the [line] line.
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"v2.1\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
    let all = e.to_string();
    assert!(all.contains("c.toml:4: line.channel_id: is required with token = \"v2.1\""), "{all}");
    assert!(all.contains("c.toml:4: line.private_key_file: is required with token = \"v2.1\""), "{all}");
    assert!(all.contains("c.toml:4: line.kid: is required with token = \"v2.1\""), "{all}");
    assert!(!all.contains("channel_access_token"), "{all}");
    assert_eq!(e.problems.len(), 3, "{all}");
    // ...but `serve --dry-run` needs no credentials.
    assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_ok());
    // stateless: channel id and secret.
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = \"12ab\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
    let all = e.to_string();
    assert!(all.contains("c.toml:6: line.channel_id: \"12ab\" is not a channel id"), "{all}");
    assert!(all.contains("c.toml:4: line.channel_secret: is required with token = \"stateless\""), "{all}");
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = 1234567890\nchannel_secret = \"s\"\n";
    let c = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!((c.line.token, c.line.channel_id.as_str()), (TokenKind::Stateless, "1234567890"));
    let env = |k: &str| (k == "LINE_CHANNEL_SECRET").then(|| "env-secret".to_owned());
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = \"1\"\n";
    assert_eq!(Config::parse(text, "c.toml", Purpose::Serve, &env).unwrap().line.channel_secret.expose(), "env-secret");
    // An unknown kind lists the three.
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"short-lived\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:5: line.token: unknown variant `short-lived`, expected one of `long-lived`, `v2.1`, `stateless`"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\nchannel_id = [1]\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
    assert!(e.problems[0].starts_with("c.toml:5: line.channel_id: expected the channel id"), "{e}");
}

#[test]
fn v21_private_key_sources_kid_and_errors() {
    use crate::line::token::test_key::jwk;
    let dir = tempfile::tempdir().unwrap();
    let d = jwk()["d"].as_str().unwrap().to_owned();
    let key_file = dir.path().join("key.json");
    let mut with_kid = jwk();
    with_kid["kid"] = "kid-in-jwk".into();
    std::fs::write(&key_file, with_kid.to_string()).unwrap();
    let text = |file: &Path| {
        format!("[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"v2.1\"\nchannel_id = \"1234567890\"\nprivate_key_file = \"{}\"\n", file.display())
    };
    // kid from the JWK, then from the file, then from $LINE_KID.
    let c = Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!((c.line.token, c.line.kid.as_str()), (TokenKind::V21, "kid-in-jwk"));
    let creds = c.line.credentials().unwrap();
    assert_eq!(creds.describe(), "v2.1 channel access tokens for channel 1234567890, signed with key id kid-in-jwk");
    let c = Config::parse(&format!("{}kid = \"kid-in-file\"\n", text(&key_file)), "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.line.kid, "kid-in-file");
    let env = |k: &str| (k == "LINE_KID").then(|| "kid-in-env".to_owned());
    assert_eq!(Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &env).unwrap().line.kid, "kid-in-env");
    // No kid anywhere.
    std::fs::write(&key_file, jwk().to_string()).unwrap();
    let e = Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:4: line.kid: is required"), "{e}");
    // A key in $LINE_PRIVATE_KEY, no file at all.
    let env = |k: &str| match k {
        "LINE_PRIVATE_KEY" => Some(jwk().to_string()),
        "LINE_KID" => Some("k".to_owned()),
        _ => None,
    };
    let inline = "[smtp]\ndomain = \"a.b\"\n[line]\ntoken = \"v2.1\"\nchannel_id = \"1\"\n";
    assert!(Config::parse(inline, "c.toml", Purpose::Serve, &env).is_ok());
    // Unreadable and unparsable keys: named by key and line, content never shown.
    let e = Config::parse(&text(Path::new("/nonexistent/key.json")), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:7: line.private_key_file: cannot read /nonexistent/key.json"), "{e}");
    let mut public = jwk();
    public.as_object_mut().unwrap().remove("d");
    public["p"] = format!("{d}!").into();
    std::fs::write(&key_file, public.to_string()).unwrap();
    let e = Config::parse(&format!("{}kid = \"k\"\n", text(&key_file)), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains(&format!("c.toml:7: line.private_key_file: {}: has no \"d\": this is the public key", key_file.display())), "{e}");
    assert!(!e.contains(&d[..16]), "{e}");
    let bad_env = |k: &str| (k == "LINE_PRIVATE_KEY").then(|| format!("-----BEGIN RSA PRIVATE KEY-----\n{d}\n-----END RSA PRIVATE KEY-----"));
    let e = Config::parse(&format!("{inline}kid = \"k\"\n"), "c.toml", Purpose::Serve, &bad_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:3: line.private_key: $LINE_PRIVATE_KEY: is not a readable RSA private key"), "{e}");
    assert!(!e.contains(&d[..16]), "{e}");
    let e = Config::parse(&format!("{inline}private_key = \"{d}\"\nkid = \"k\"\n"), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:6: line.private_key: is neither a JWK"), "{e}");
    assert!(!e.contains(&d[..16]), "{e}");
    // A long-lived configuration does not look at the key.
    let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"t\"\nprivate_key = \"junk\"\n";
    assert!(Config::parse(text, "c.toml", Purpose::Serve, &no_env).is_ok());
}

#[test]
fn log_section() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!((c.log.format, c.log.level.as_str()), (LogFormat::Text, "info"));
    let json = format!("{GOOD}\n[log]\nformat = \"json\"\nlevel = \"warn,mail2line::spool=debug\"\n");
    let c = Config::parse(&json, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!((c.log.format, c.log.level.as_str()), (LogFormat::Json, "warn,mail2line::spool=debug"));
    let bad = format!("{GOOD}\n[log]\nformat = \"xml\"\n");
    let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:10: log.format: ") && e.contains("text") && e.contains("json"), "{e}");
    let bad = format!("{GOOD}\n[log]\nlevel = \"inof\"\n");
    let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:10: log.level: \"inof\" is not a level"), "{e}");
    let bad = format!("{GOOD}\n[webhook]\npath = \"/metrics\"\n");
    let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.starts_with("c.toml:10: webhook.path: \"/metrics\" is taken by monitoring"), "{e}");
}

#[test]
fn example_file_is_valid() {
    let text = include_str!("../../config.toml.example");
    let c = Config::parse(text, "config.toml.example", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.smtp.domain, "text.line.example.com");
}

#[test]
fn example_sendmail_keys_parse_when_uncommented() {
    // The [sendmail] keys are commented out in the example; their names and values must
    // still be right for whoever uncomments them.
    let text = include_str!("../../config.toml.example");
    let start = text.find("\n[sendmail]\n").expect("the example has a [sendmail] table");
    let mut uncommented = text[..start].to_owned();
    for line in text[start..].lines() {
        let key = line.strip_prefix("# ").filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')));
        uncommented.push_str(key.unwrap_or(line));
        uncommented.push('\n');
    }
    // password and password_file are exclusive; keep the file one commented.
    let uncommented = uncommented.replace("\npassword_file = ", "\n# password_file = ").replace("tls = \"off\"", "tls = \"starttls\"");
    let c = Config::parse(&uncommented, "config.toml.example", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.sendmail.server.as_deref(), Some("127.0.0.1:2525"));
    assert_eq!((c.sendmail.username.as_str(), c.sendmail.tls, c.sendmail.timeout_secs), ("cron", ClientTls::Starttls, 60));
    assert!(c.sendmail.tls_ca_file.is_some());
}

#[test]
fn max_image_pixels_has_a_default_and_named_errors() {
    let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!(c.media.max_image_pixels, 40_000_000);
    let text = "[smtp]\ndomain = \"a.b\"\n[media]\nmax_image_pixels = 12000000\n";
    assert_eq!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().media.max_image_pixels, 12_000_000);
    for bad in ["0", "2000000000"] {
        let text = format!("[smtp]\ndomain = \"a.b\"\n[media]\nmax_image_pixels = {bad}\n");
        let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:4: media.max_image_pixels: must be between 1 and 1000000000"), "{e}");
    }
}

#[test]
fn auth_check_bounds_have_defaults_and_named_errors() {
    let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!((c.smtp.max_auth_checks, c.smtp.max_auth_queue), (0, 64));
    let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_checks = 4\nmax_auth_queue = 0\n";
    let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
    assert_eq!((c.smtp.max_auth_checks, c.smtp.max_auth_queue), (4, 0));
    let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_checks = 1000\nmax_auth_queue = 1000000\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:3: smtp.max_auth_checks: must be at most 256"), "{e}");
    assert!(e.contains("c.toml:4: smtp.max_auth_queue: must be at most 100000"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_queue = -1\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:3: smtp.max_auth_queue:"), "{e}");
}

#[test]
fn smtp_security_keys_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["gw.example".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let hash = crate::smtp::auth::hash_password("pw").unwrap();
    let text = format!(
        "[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_listen = \"127.0.0.1:4650\"\nrequire_tls = true\nauth = \"optional\"\nallowed_clients = [\"10.0.0.0/8\"]\nallowed_senders = [\"@example.com\"]\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n[line]\nchannel_access_token = \"t\"\n",
        cert.display(),
        key.display()
    );
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.smtp.auth, AuthMode::Optional);
    assert_eq!(c.smtp.users[0].password_hash.expose(), hash);
    // The environment overrides a user's hash.
    let other = crate::smtp::auth::hash_password("pw2").unwrap();
    let env = |k: &str| (k == "MAIL2LINE_SMTP_USER_CMS_PASSWORD_HASH").then(|| other.clone());
    assert_eq!(Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap().smtp.users[0].password_hash.expose(), other);

    let text = "[smtp]\ndomain = \"a.b\"\ntls_listen = \"127.0.0.1:4650\"\nrequire_tls = true\nauth = \"required\"\nallowed_clients = [\"10.0.0.0/33\"]\nallowed_senders = [\"nobody\"]\nmax_failed_commands = 0\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"not-a-hash-s3cret\"\n[[smtp.users]]\nname = \"cms\"\n[line]\nchannel_access_token = \"t\"\n";
    let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    for want in [
        "c.toml:3: smtp.tls_listen: needs smtp.tls_cert_file and smtp.tls_key_file",
        "c.toml:4: smtp.require_tls: needs",
        "c.toml:5: smtp.auth: needs TLS",
        "c.toml:6: smtp.allowed_clients: \"10.0.0.0/33\"",
        "c.toml:7: smtp.allowed_senders: \"nobody\"",
        "c.toml:8: smtp.max_failed_commands: must be at least 1",
        "c.toml:11: smtp.users[0].password_hash: is not a password hash; make one with: echo -n PASSWORD | mail2line hash-password",
        "c.toml:13: smtp.users[1].name: \"cms\" appears twice",
        "c.toml:12: smtp.users[1].password_hash: is required",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert!(!e.contains("s3cret"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\nauth = \"sometimes\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:3: smtp.auth:") && e.contains("off"), "{e}");
    let text = "[smtp]\ndomain = \"a.b\"\nauth = \"optional\"\n";
    let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("no [[smtp.users]]"), "{e}");
    let text = format!("[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n", key.display(), key.display());
    let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:3: smtp.tls_cert_file:"), "{e}");
}

#[test]
fn replies_section_defaults_and_a_good_relay() {
    let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
    let r = &c.replies;
    assert!(!r.enabled() && r.relay_url.is_none());
    assert_eq!((r.window_hours, r.max_attachment_bytes, r.max_per_hour, r.acknowledge), (24, 10_485_760, 60, false));
    assert_eq!(r.max_age_parsed, Duration::from_secs(3 * 86400));
    let text = format!(
        "{GOOD}channel_secret = \"s3cret\"\n[replies]\nrelay = \"smtp+starttls://mail.example.com\"\nusername = \"gw\"\npassword = \"relay-pw-1\"\nfrom = \"line@example.com\"\nto = \"helpdesk@example.com\"\nwindow_hours = 48\nmax_age = \"12h\"\nacknowledge = true\n"
    );
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    let r = &c.replies;
    assert!(r.enabled() && r.acknowledge);
    let url = r.relay_url.as_ref().unwrap();
    assert_eq!((url.security, url.host.as_str(), url.port), (crate::replies::Security::StartTls, "mail.example.com", 587));
    assert_eq!((r.from_address(), r.to_address()), ("line@example.com", Some("helpdesk@example.com")));
    assert_eq!(r.max_age_parsed, Duration::from_secs(12 * 3600));
    assert_eq!(r.password.expose(), "relay-pw-1");
    assert!(c.secret_sources.contains(&("replies.password".to_owned(), SecretSource::Inline)));
    assert!(c.warnings().iter().all(|w| !w.contains("replies")), "{:?}", c.warnings());
}

#[test]
fn replies_mistakes_name_their_key_and_line() {
    // A bad scheme, a bad address, a zero window and a bad duration, all at once.
    let text = format!("{GOOD}\n[replies]\nrelay = \"http://mail.example.com\"\nfrom = \"line@example.com\"\nto = \"not an address\"\nwindow_hours = 0\nmax_per_hour = 0\nmax_age = \"soon\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    for want in [
        "c.toml:10: replies.relay: \"http://mail.example.com\" has an unknown scheme; write \"smtp://host:port\"",
        "c.toml:12: replies.to: \"not an address\" is not a mail address",
        "c.toml:13: replies.window_hours: must be between 1 and",
        "c.toml:14: replies.max_per_hour: must be at least 1",
        "c.toml:15: replies.max_age: \"soon\" is not a duration",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert_eq!(e.lines().count(), 5, "{e}");
    // A relay without from; a from with a display name.
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:9: replies.from: is required with replies.relay"), "{e}");
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\nfrom = \"LINE <line@example.com>\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:11: replies.from: \"LINE <line@example.com>\" is not a mail address"), "{e}");
    // A login in the URL is refused without repeating its password.
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtps://gw:url-pw-77@mail.example.com\"\nfrom = \"line@example.com\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:10: replies.relay:") && e.contains("replies.username") && !e.contains("url-pw-77"), "{e}");
    // A wrong type and an unknown key are found like everywhere else.
    let text = format!("{GOOD}\n[replies]\nwindow_hours = \"a day\"\nrelais = \"smtp://x\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:10: replies.window_hours: invalid type"), "{e}");
    assert!(e.contains("c.toml:11: replies.relais: unknown field"), "{e}");
}

#[test]
fn replies_password_sources_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay-password");
    std::fs::write(&file, "file-relay-pw\n").unwrap();
    let head = format!("{GOOD}\n[replies]\nrelay = \"smtps://mail.example.com\"\nfrom = \"line@example.com\"\nusername = \"gw\"\n");
    // From password_file; the environment wins over it.
    let text = format!("{head}password_file = \"{}\"\n", file.display());
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.replies.password.expose(), "file-relay-pw");
    assert!(c.secret_sources.contains(&("replies.password".to_owned(), SecretSource::File(file.clone()))));
    let env = |k: &str| (k == "MAIL2LINE_REPLIES_PASSWORD").then(|| "env-relay-pw".to_owned());
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap();
    assert_eq!(c.replies.password.expose(), "env-relay-pw");
    assert!(c.secret_sources.contains(&("replies.password".to_owned(), SecretSource::Env("MAIL2LINE_REPLIES_PASSWORD".into()))));
    // From a systemd credential when nothing else gives it.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("replies-password"), "cred-relay-pw").unwrap();
    let creds_dir = creds.path().to_str().unwrap().to_owned();
    let cred_env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| creds_dir.clone());
    let c = Config::parse(&head, "c.toml", Purpose::Serve, &cred_env).unwrap();
    assert_eq!(c.replies.password.expose(), "cred-relay-pw");
    // Both password and password_file; a username without any password; a password without a username.
    let text = format!("{head}password = \"inline-relay-pw\"\npassword_file = \"{}\"\n", file.display());
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:14: replies.password_file: set either the key itself or its _file, not both"), "{e}");
    assert!(!e.contains("inline-relay-pw") && !e.contains("file-relay-pw"), "{e}");
    let e = Config::parse(&head, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("replies.password: is required with replies.username"), "{e}");
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtps://mail.example.com\"\nfrom = \"line@example.com\"\npassword = \"lonely-pw\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:9: replies.username: is required with a password"), "{e}");
    assert!(!e.contains("lonely-pw"), "{e}");
    // An unreadable file is named, never read into a message.
    let text = format!("{head}password_file = \"/nonexistent/relay-pw\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:13: replies.password_file: cannot read /nonexistent/relay-pw"), "{e}");
    // The client commands never read it, and do not ask for it.
    assert!(Config::parse(&head, "c.toml", Purpose::Client, &no_env).is_ok());
}

#[test]
fn a_relay_password_in_clear_over_the_network_is_warned_about() {
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtp://mail.example.com:587\"\nfrom = \"line@example.com\"\nusername = \"gw\"\npassword = \"pw-in-clear\"\n");
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    let w = c.warnings().join("\n");
    assert!(w.contains("replies.relay smtp://mail.example.com:587 is smtp:// (no TLS) to another machine"), "{w}");
    assert!(!w.contains("pw-in-clear"));
    // On loopback it is fine.
    let c = Config::parse(&text.replace("mail.example.com", "127.0.0.1"), "c.toml", Purpose::Serve, &no_env).unwrap();
    assert!(c.warnings().iter().all(|w| !w.contains("is smtp:// (no TLS)")), "{:?}", c.warnings());
}

#[test]
fn replies_need_the_spool() {
    let text = format!("{GOOD}\n[delivery]\nmode = \"direct\"\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\nfrom = \"line@example.com\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:12: replies.relay: answers from LINE need the spool"), "{e}");
    // Without the channel secret no answer can arrive: said at start.
    let text = format!("{GOOD}\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\nfrom = \"line@example.com\"\n");
    let warned = |text: &str| {
        let c = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap();
        c.warnings().iter().any(|w| w.contains("replies.relay is set but line.channel_secret is not"))
    };
    assert!(warned(&text));
    assert!(!warned(&format!("{GOOD}channel_secret = \"s3cret\"\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\nfrom = \"line@example.com\"\n")));
    // Off (no relay), direct mode is fine.
    let text = format!("{GOOD}\n[delivery]\nmode = \"direct\"\n[replies]\nfrom = \"line@example.com\"\n");
    assert!(Config::parse(&text, "c.toml", Purpose::Serve, &no_env).is_ok());
}

/// `[[channels]]` (issue #21): two shops, `[line]` as defaults, each channel's secrets from its
/// own keys, variables and credentials.
#[test]
fn channels_inherit_line_defaults_but_never_credentials() {
    let hash = crate::smtp::auth::hash_password("pw").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop-b-line-channel-secret"), "b-secret-from-credential\n").unwrap();
    let creds = dir.path().to_str().unwrap().to_owned();
    let text = format!(
        r#"[smtp]
domain = "text.line.example"
auth = "optional"
allow_plaintext_auth_on_loopback = true
[[smtp.users]]
name = "shop-a"
password_hash = "{hash}"

[line]
api_base_url = "http://127.0.0.1:9"
timeout_secs = 3
channel_access_token = "not-inherited"

[delivery]
max_requests_per_second = 100

[quota]
reserve = 7

[[channels]]
name = "shop-a"
domain = "Text.Line.Shop-A.Example"
users = ["shop-a"]
channel_access_token = "tok-a"
channel_secret = "sec-a"
max_requests_per_second = 5
quota = {{ monthly_budget = 500, reserve = 20 }}
aliases = {{ ops = ["U0123456789abcdef0123456789abcdef"] }}

[[channels]]
name = "shop-b"
channel_id = 1234567890
token = "stateless"
"#
    );
    let env = |k: &str| match k {
        "CREDENTIALS_DIRECTORY" => Some(creds.clone()),
        "LINE_CHANNEL_ACCESS_TOKEN_SHOP_B" => Some("tok-b-from-env".into()),
        _ => None,
    };
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap();
    let [a, b] = &c.channels[..] else { panic!("two channels") };
    assert_eq!((a.name.as_str(), a.domain.as_str()), ("shop-a", "text.line.shop-a.example"));
    // No domain: [smtp] domain.
    assert_eq!(b.domain, "text.line.example");
    assert_eq!((a.line.api_base_url.as_str(), a.line.timeout_secs), ("http://127.0.0.1:9", 3));
    assert_eq!(a.line.channel_access_token.expose(), "tok-a");
    assert_eq!(b.line.token, TokenKind::Stateless);
    assert_eq!(b.line.channel_id, "1234567890");
    assert_eq!(b.line.channel_access_token.expose(), "tok-b-from-env", "[line]'s token is never inherited");
    assert_eq!(b.line.channel_secret.expose(), "b-secret-from-credential");
    assert_eq!((a.rates.0, b.rates.0), (5, 100));
    assert_eq!((a.quota_settings.monthly_budget, a.quota_settings.reserve, b.quota_settings.reserve), (500, 20, 7));
    assert_eq!(a.aliases["ops"].ids.len(), 1);
    assert!(c.secret_sources.iter().any(|(k, s)| k == "channels[1].channel_secret" && matches!(s, SecretSource::Credential { .. })));
    assert!(c.secret_sources.iter().any(|(k, s)| k == "channels[1].channel_access_token" && *s == SecretSource::Env("LINE_CHANNEL_ACCESS_TOKEN_SHOP_B".into())));
    // Without [line]'s token nothing is missing: with [[channels]] it only gives defaults.
    let no_line = text.replace("channel_access_token = \"not-inherited\"\n", "");
    assert!(Config::parse(&no_line, "c.toml", Purpose::Serve, &env).is_ok());
}

#[test]
fn ambiguous_channels_name_both_entries_with_their_lines() {
    let hash = crate::smtp::auth::hash_password("pw").unwrap();
    let head = format!(
        "[smtp]\ndomain = \"t.example\"\nauth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n[[smtp.users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n[[smtp.users]]\nname = \"b\"\npassword_hash = \"{hash}\"\n"
    );
    // Lines: head is 10 lines; the first [[channels]] starts on line 11.
    let text = format!(
        "{head}[[channels]]\nname = \"shop\"\nchannel_access_token = \"x\"\n[[channels]]\nname = \"shop\"\nchannel_access_token = \"y\"\n[[channels]]\nname = \"Bad_Name\"\nusers = [\"a\", \"nobody\"]\nchannel_access_token = \"z\"\n[[channels]]\nname = \"d\"\nusers = [\"a\"]\nchannel_access_token = \"w\"\n"
    );
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:12: channels[0].name: two channels are named \"shop\"; each needs its own name (also channels[1])"), "{e}");
    assert!(e.contains("c.toml:15: channels[1].name: two channels are named \"shop\""), "{e}");
    assert!(e.contains("c.toml:18: channels[2].name: \"Bad_Name\" is not a channel name"), "{e}");
    assert!(e.contains("c.toml:19: channels[2].users: \"nobody\" is not a login in [[smtp.users]]"), "{e}");
    // One domain, a channel without users: reported on both (the one with users at its key).
    assert!(e.contains("c.toml:11: channels[0].users: channels \"shop\" and \"shop\" share the domain \"t.example\""), "{e}");
    assert!(e.contains("c.toml:23: channels[3].users: login \"a\" is allowed on both \"Bad_Name\" and \"d\""), "{e}");
    assert!(e.contains("c.toml:19: channels[2].users: login \"a\" is allowed on both"), "{e}");

    // Told apart by login on one domain: fine. A channel without a token is refused at its entry.
    let text = format!(
        "{head}[[channels]]\nname = \"a\"\nusers = [\"a\"]\nchannel_access_token = \"x\"\n[[channels]]\nname = \"b\"\nusers = [\"b\"]\n"
    );
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("c.toml:15: channels[1].channel_access_token: is empty"), "{e}");
    assert!(Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).is_ok());

    // [aliases] beside [[channels]] and an unknown key in an entry.
    let text = format!("{head}[aliases]\nops = [\"U0123456789abcdef0123456789abcdef\"]\n[[channels]]\nname = \"a\"\nchanel_secret = \"s\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("channels[0].chanel_secret: unknown field"), "{e}");
    let text = format!("{head}[aliases]\nops = [\"U0123456789abcdef0123456789abcdef\"]\n[[channels]]\nname = \"a\"\naliases = {{ bad = [\"x\"] }}\n");
    let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:11: aliases: with [[channels]], aliases belong to a channel"), "{e}");
    assert!(e.contains("c.toml:15: channels[0].aliases.bad: alias \"bad\": \"x\" is not a LINE id"), "{e}");
}

/// `[replies]` with `[[channels]]`: one gateway-wide table, and each channel needs its own
/// secret, for the webhook its followers' answers arrive on.
#[test]
fn replies_with_channels_need_each_channels_secret() {
    let hash = crate::smtp::auth::hash_password("pw").unwrap();
    // Lines: the head is 13 lines; channel a is lines 14-18, channel b starts on line 19.
    let text = format!(
        "[smtp]\ndomain = \"t.example\"\nauth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n[[smtp.users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n\
         [[smtp.users]]\nname = \"b\"\npassword_hash = \"{hash}\"\n[replies]\nrelay = \"smtp://127.0.0.1:25\"\nfrom = \"line@example.com\"\n\
         [[channels]]\nname = \"a\"\nusers = [\"a\"]\nchannel_access_token = \"x\"\nchannel_secret = \"secret-a\"\n\
         [[channels]]\nname = \"shop-b\"\nusers = [\"b\"]\nchannel_access_token = \"y\"\n"
    );
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("c.toml:19: channels[1].channel_secret: is required with replies.relay"), "{e}");
    assert!(e.contains("/webhook/shop-b") && e.contains("$LINE_CHANNEL_SECRET_SHOP_B") && e.contains("shop-b-line-channel-secret"), "{e}");
    assert!(!e.contains("secret-a"), "{e}");
    // Its secret from its variable: accepted, the relay gateway-wide, no warning about [line]'s secret.
    let env = |k: &str| (k == "LINE_CHANNEL_SECRET_SHOP_B").then(|| "secret-b".to_owned());
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap();
    assert!(c.replies.enabled() && c.replies.relay_url.is_some());
    assert_eq!(c.channels[1].line.channel_secret.expose(), "secret-b");
    assert!(c.warnings().iter().all(|w| !w.contains("replies")), "{:?}", c.warnings());
    // A dry run stores no answers: the secret is not required there.
    assert!(Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).is_ok());
    // The other [replies] checks still apply, under replies.*.
    let e = Config::parse(&text.replace("from = \"line@example.com\"\n", ""), "c.toml", Purpose::Serve, &env).unwrap_err().to_string();
    assert!(e.contains("replies.from: is required with replies.relay"), "{e}");
    let e = Config::parse(&text.replace("[replies]\n", "[delivery]\nmode = \"direct\"\n[replies]\n"), "c.toml", Purpose::Serve, &env).unwrap_err().to_string();
    assert!(e.contains("replies.relay: answers from LINE need the spool"), "{e}");
}

#[test]
fn storage_url_and_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg-password");
    std::fs::write(&file, "file-pg-pw\n").unwrap();
    // GOOD ends at line 8; [storage] is line 9, url line 10.
    let head = format!("{GOOD}\n[storage]\nurl = \"postgres://gw@db.example:5432/mail?sslmode=require\"\n");
    let c = Config::parse(&head, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert!(c.storage.is_postgres() && c.storage_password.is_empty());
    assert_eq!(c.storage.lease_secs, 600);
    // From password_file; the environment wins over it; a credential is the last resort.
    let text = format!("{head}password_file = \"{}\"\n", file.display());
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
    assert_eq!(c.storage_password.expose(), "file-pg-pw");
    assert!(c.secret_sources.contains(&("storage.password".to_owned(), SecretSource::File(file.clone()))));
    let env = |k: &str| (k == "MAIL2LINE_STORAGE_PASSWORD").then(|| "env-pg-pw".to_owned());
    let c = Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap();
    assert_eq!(c.storage_password.expose(), "env-pg-pw");
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("storage-password"), "cred-pg-pw").unwrap();
    let creds_dir = creds.path().to_str().unwrap().to_owned();
    let cred_env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| creds_dir.clone());
    let c = Config::parse(&head, "c.toml", Purpose::Serve, &cred_env).unwrap();
    assert_eq!(c.storage_password.expose(), "cred-pg-pw");
    // A password in the URL and another one: refused, naming the key and line, never the value.
    let in_url = format!("{GOOD}\n[storage]\nurl = \"postgres://gw:url-pg-pw@db/mail\"\npassword_file = \"{}\"\n", file.display());
    let e = Config::parse(&in_url, "c.toml", Purpose::Serve, &env).unwrap_err().to_string();
    assert!(e.contains("c.toml:11: storage.password_file: storage.url has a password already"), "{e}");
    assert!(e.contains("c.toml:10: storage.url: has a password, and $MAIL2LINE_STORAGE_PASSWORD is set too"), "{e}");
    assert!(!e.contains("url-pg-pw") && !e.contains("file-pg-pw") && !e.contains("env-pg-pw"), "{e}");
    // A URL the driver cannot read, a lease too short, another scheme.
    let text = format!("{GOOD}\n[storage]\nurl = \"postgres://gw:url-pg-pw@db:port/mail\"\nlease_secs = 10\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:10: storage.url: the PostgreSQL URL cannot be read"), "{e}");
    assert!(e.contains("c.toml:11: storage.lease_secs: must be at least 60"), "{e}");
    assert!(!e.contains("url-pg-pw"), "{e}");
    let e = Config::parse(&format!("{GOOD}\n[storage]\nurl = \"mysql://gw@db/mail\"\n"), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:10: storage.url: must be a PostgreSQL URL"), "{e}");
    // The PostgreSQL keys without a URL do nothing, so they are refused.
    let text = format!("{GOOD}\n[storage]\nnode = \"mx1\"\n");
    let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
    assert!(e.contains("c.toml:10: storage.node: is used only with storage.url"), "{e}");
}

#[test]
fn a_database_across_the_network_without_tls_is_warned_about() {
    let warned = |url: &str| {
        let c = Config::parse(&format!("{GOOD}\n[storage]\nurl = \"{url}\"\n"), "c.toml", Purpose::Serve, &no_env).unwrap();
        c.warnings().iter().any(|w| w.starts_with("storage.url connects to") && !w.contains("pg-pw"))
    };
    assert!(warned("postgres://gw:pg-pw@db.example.com/mail"));
    assert!(warned("postgresql://gw@[2001:db8::1]:5432/mail"));
    assert!(!warned("postgres://gw@db.example.com/mail?sslmode=require"));
    assert!(!warned("postgres://gw@127.0.0.1:5432/mail"));
    assert!(!warned("postgres://gw@localhost/mail"));
}
