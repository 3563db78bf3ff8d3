//! The real-mail corpus (issue #18), end to end: every mail of `tests/data/realmail/` (made by
//! its `make.py`, one per kind of sender) goes through the real `mail2line` binary over SMTP in
//! direct mode, and the text LINE receives is held against [`CORPUS`]: what it must show, what
//! it must not show. Every mail is also held against [`NEVER`] (mojibake, terminal codes,
//! placeholders, invisible padding, undecoded words), its URLs must not be glued to other text,
//! and each request must pass the LINE stand-in's spec check.
//!
//! The test reports every mail, passing or not, with the expectations it misses and the text it
//! got, and fails at the end if any mail missed one: whoever works on a class of #18 sees at once
//! what is left. The `classes` column names the classes of #18 a mail exercises.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::gateway::{addr, user, GatewayProcess, Options};
use support::standin::StandIn;
use tokio::task::block_in_place;

/// One expectation on the text LINE receives.
#[derive(Debug)]
enum Show {
    /// This text, anywhere (line breaks included as written).
    T(&'static str),
    /// The text opens with this: the subject line, the blank line, the start of the body.
    Start(&'static str),
    /// A link: `text (URL)`, or `text` with the URL alone on the next line (a button); the URL
    /// exactly once in the whole text.
    L(&'static str, &'static str),
    /// This URL exactly once (a link whose text is its URL, a target linked twice).
    Once(&'static str),
}
use Show::{Once, Start, L, T};

struct Case {
    file: &'static str,
    /// The classes of issue #18 this mail exercises ("ok" = well-formed, should always pass).
    classes: &'static str,
    show: &'static [Show],
    hide: &'static [&'static str],
}

/// Never in any mail: mojibake (UTF-8 read as Latin-1, replacement characters), terminal colour
/// codes, Outlook's `[cid:…]` placeholders, `javascript:` links, undecoded RFC 2047 words and
/// invisible preheader padding.
const NEVER: &[&str] = &[
    "\u{FFFD}", "Ã", "ã", "Â", "â€", "\u{1b}", "[0m", "[1m", "[31m", "[cid:", "javascript:", "=?", "\u{34F}", "\u{200C}",
];

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    Case { file: "grafana.eml", classes: "1 links, 6 pixel", show: &[
        Start("[FIRING:1] HighCPU (web-1 production)\n\n"),
        T("CPU usage on web-1 has been above 90% for 5 minutes."),
        L("View alert", "https://grafana.example.com/alerting/grafana/ad7fk2/view?orgId=1"),
        L("Silence", "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighCPU"),
        L("Go to dashboard", "https://grafana.example.com/d/node-exporter/nodes?orgId=1&var-instance=web-1"),
        Once("https://wiki.example.com/runbooks/high-cpu"),
        Once("https://grafana.example.com/"),
        T("oncall@example.com"),
      ], hide: &["open.gif", "grafana_logo.png"] },
    Case { file: "zabbix.eml", classes: "ok", show: &[
        Start("Problem: ディスク容量不足 /var on db-tokyo-02\n\nProblem started at 09:12:03 on 2025.11.24\n"),
        T("Severity: High\nOperational data: 93.4 %\nOriginal problem ID: 4815162342"),
      ], hide: &[] },
    Case { file: "github.eml", classes: "8 quoted", show: &[
        Start("Re: [example/mail2line] Back off on 429 (PR #311)\n\n@alice commented on this pull request.\n\n(6 quoted lines)\n\nAgreed, done in 3f2c9e1"),
        Once("https://github.com/example/mail2line/pull/311#discussion_r1849001"),
      ], hide: &["hammers the API", "Retry-After header?"] },
    Case { file: "jenkins.eml", classes: "6 colour codes", show: &[
        Start("Build failed in Jenkins: app-backend #128\n\nBuild #128 of app-backend failed."),
        // Indented "> " lines are a log, not a quote: never collapsed.
        T("\n > git fetch --tags --force --progress -- https://git.example.com/app-backend.git\n > git checkout -f 9c1d2e7a\n"),
        T("\n[INFO] --- maven-surefire-plugin:3.2.5:test (default-test) @ app-backend ---\n"),
        T("\n[ERROR] Tests run: 14, Failures: 1, Errors: 0, Skipped: 0\n"),
        T("\n[INFO] BUILD FAILURE\n[ERROR] RetryTest.backsOffOn429:88 expected:<60> but was:<1>\nFinished: FAILURE"),
        Once("https://ci.example.com/job/app-backend/128/console"),
      ], hide: &["quoted lines"] },
    Case { file: "outlook.eml", classes: "2 forward, 6 cid + MsoNormal", show: &[
        Start("FW: Quote 2025-118 for the server replacement\n\nHello Taro,\n\nPlease see the vendor's quote below (attached as the original mail).\nCan you approve it by Friday?"),
        T("Hanako Suzuki | IT Operations"),
        T("From: Vendor Support <support@vendor.example>"), T("Subject: Quote 2025-118 for the server replacement"),
        T("Dear customer,"),
        T("The total for the replacement is 1,280,000 JPY (tax included).\nDelivery: two weeks after your order."),
      ], hide: &["📎 attachment ("] },
    Case { file: "calendar.eml", classes: "6 text/calendar", show: &[
        Start("Invitation: Quarterly review @ Wed Dec 3, 2025 2pm - 3pm (JST) (taro@example.co.jp)\n\n"),
        T("Quarterly review"),
        T("Room 4B, Shinagawa office"),
      ], hide: &["📎 attachment (", "BEGIN:VCALENDAR", "Room 4B\\,"] },
    Case { file: "synology.eml", classes: "ok", show: &[
        Start("[DiskStation-Tokyo] ボリューム 1 の空き容量が不足しています\n\nDiskStation-Tokyo のボリューム 1 の空き容量が 5% を下回りました。\n"),
        T("使用済み: 10.4 TB / 10.9 TB\n不要なファイルを削除するか、ボリュームを拡張してください。"),
        Once("https://nas.example.jp:5001/"),
      ], hide: &[] },
    Case { file: "scanner.eml", classes: "7 folded names", show: &[
        Start("Scanned document from MFP-4F\n\nScanned from MFP-4F (3F copy room).\nPages: 3  Resolution: 300 dpi"),
        T("📎 スキャン_見積書.pdf ("),
        T("📎 ページ2_請求書.pdf ("),
        T("📎 Raport_Solidarność.pdf ("),
      ], hide: &[] },
    Case { file: "php-cms.eml", classes: "4 cp932", show: &[
        Start("【お問い合わせ】製品Ⅱの納期について\n\nウェブサイトのお問い合わせフォームから送信がありました。"),
        T("会社名：㈱サンプル商事\nお名前：山田 太郎 様\nご用件：① 見積依頼　② 製品Ⅱの納期確認"),
      ], hide: &[] },
    Case { file: "script-no-blank.eml", classes: "5 no blank line", show: &[
        Start("nightly backup done\n\nbackup finished at 03:14 on backup.example.com\n3 volumes, 412 GB, 0 errors"),
      ], hide: &[] },
    Case { file: "script-spaces.eml", classes: "5 spaces separator", show: &[
        Start("certbot renew\n\ncertificate for www.example.com renewed, expires 2026-02-22\nnginx reloaded"),
      ], hide: &[] },
    Case { file: "script-mbox.eml", classes: "5 mbox From", show: &[
        Start("pg_dump finished\n\npg_dump of orders: 1.8 GB in 94 s"),
      ], hide: &["From root@db-1.example.com", "Mon Nov 24 03:00:01 2025"] },
    Case { file: "script-8bit.eml", classes: "4 raw 8-bit headers", show: &[
        Start("バックアップ完了 ✅ app-3\n\nバックアップが正常に完了しました。\n所要時間: 4分12秒"),
      ], hide: &[] },
    Case { file: "iphone.eml", classes: "ok flowed, 8 quoted", show: &[
        Start("Re: 明日の会議\n\n了解です。明日の会議は10時からに変更になりました。資料は前日までに共有します。\n\n"),
        // [message] signature is "keep" by default.
        T("\n山田太郎\n\n2025/11/24 9:30、鈴木花子 <hanako@example.co.jp>のメール:\n\n(6 quoted lines)"),
      ], hide: &["資料は前日までに共有をお願いできますか", "共有しま す"] },
    Case { file: "carrier.eml", classes: "ok ISO-2022-JP", show: &[
        Start("到着しました\n\nお疲れさまです。\n駅に着きました。改札前で待っています。\n遅れる場合は連絡ください。"),
      ], hide: &[] },
    Case { file: "digest.eml", classes: "2 digest", show: &[
        Start("ops Digest, Vol 12, Issue 7\n\n"),
        T("From: Kenji Ito <kenji@example.org>"), T("Subject: Printer on 3F jammed again"),
        T("The printer on 3F shows paper jam in tray 2 again.\nHas anyone called the service company?"),
        T("From: Mika Mori <mika@example.org>"), T("Subject: Re: Printer on 3F jammed again"),
        T("Called them: a technician comes Tuesday at 10:00."),
        T("ops mailing list: https://lists.example.org/mailman/listinfo/ops"),
      ], hide: &["📎 attachment ("] },
    Case { file: "bounce.eml", classes: "2 message/rfc822", show: &[
        Start("Undelivered Mail Returned to Sender\n\nThis is the mail system at host mx1.example.com."),
        T("Recipient address rejected: User unknown"),
        T("From: Billing <billing@example.com>"), T("Subject: Invoice 2025-11 is ready"),
        T("Your invoice for November 2025 is ready: 12,400 JPY, due 2025-12-10."),
      ], hide: &[] },
    Case { file: "newsletter.eml", classes: "1 links, 3 stub, 6 preheader + pixel + nameless inline", show: &[
        Start("Example Weekly #47: three releases\n\n"),
        T("Three releases shipped this week: faster search, dark mode and CSV export."),
        L("Read the release notes", "https://news.example.com/r/af31?u=8842"),
        L("Register for the webinar", "https://news.example.com/webinar/2025-11-27"),
        L("Unsubscribe", "https://news.example.com/unsubscribe?u=8842"),
      ], hide: &["cannot display", "Hidden preheader", "t.news.example.com", "📎 attachment ("] },
    Case { file: "sjis-nolabel.eml", classes: "4 Shift_JIS unlabelled", show: &[
        Start("請求書発行のお知らせ\n\n経理システムからのお知らせです。\n11月分の請求書を発行しました。\n支払期限：2025年12月10日"),
      ], hide: &[] },
    Case { file: "utf8-as-latin1.eml", classes: "4 UTF-8 labelled iso-8859-1", show: &[
        Start("Wetterbericht\n\nGrüße aus München!\nHöchstwert heute: 12 °C, morgen Schneeregen – Straßen glatt."),
      ], hide: &[] },
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/realmail")
}

/// Every `http(s)://` URL in `text`: up to whitespace, or a `)` that closes a `(` before it.
fn urls(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = ["https://", "http://"].iter().filter_map(|s| rest.find(s)).min() {
        let tail = &rest[at..];
        let mut end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        if rest[..at].ends_with('(') && tail[..end].ends_with(')') {
            end -= 1;
        }
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// What `text` misses of `case` and of the rules for every mail; empty when it reads right.
fn problems(case: &Case, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let found = urls(text);
    let once = |url: &str, out: &mut Vec<String>| {
        let n = found.iter().filter(|u| **u == url).count();
        if n != 1 {
            out.push(format!("URL {url} shown {n} times, wanted once"));
        }
    };
    for show in case.show {
        match show {
            T(s) if !text.contains(s) => out.push(format!("missing {s:?}")),
            Start(s) if !text.starts_with(s) => out.push(format!("does not start with {s:?}")),
            L(label, url) => {
                if !text.contains(&format!("{label} ({url})")) && !text.contains(&format!("{label}\n{url}")) {
                    out.push(format!("missing link {label:?} → {url} (as `{label} ({url})`, or `{label}` and the URL on the next line)"));
                }
                once(url, &mut out);
            }
            Once(url) => once(url, &mut out),
            _ => {}
        }
    }
    for s in case.hide.iter().chain(NEVER) {
        if text.contains(s) {
            out.push(format!("shows {s:?}"));
        }
    }
    // LINE makes links of URLs only where they stand apart from other text.
    for (at, _) in text.match_indices("http").filter(|(at, _)| text[*at..].starts_with("https://") || text[*at..].starts_with("http://")) {
        match text[..at].chars().next_back() {
            None | Some('(') => {}
            Some(c) if c.is_whitespace() => {}
            Some(c) => out.push(format!("URL glued to the text before it ({c:?}): {:?}", &text[at..(at + 40).min(text.len())])),
        }
    }
    out
}

/// The texts of every message pushed to `to`, in order, one per line.
fn pushed_text(line: &StandIn, to: &str) -> (String, Vec<String>) {
    let mut texts = Vec::new();
    let mut invalid = Vec::new();
    for r in line.requests_to("/v2/bot/message/push").iter().filter(|r| r.body["to"] == to) {
        invalid.extend(r.spec_errors.iter().cloned());
        for m in r.body["messages"].as_array().into_iter().flatten() {
            texts.push(m["text"].as_str().unwrap_or_default().to_owned());
        }
    }
    (texts.join("\n"), invalid)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      | {l}\n")).collect()
}

#[test]
fn the_table_covers_every_mail_of_the_corpus() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .expect("tests/data/realmail exists (run make.py there)")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    let in_table: BTreeSet<String> = CORPUS.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(in_table.len(), CORPUS.len(), "a mail is listed twice in CORPUS");
    assert_eq!(on_disk, in_table, "tests/data/realmail/*.eml and CORPUS differ: add a row per mail, or rerun make.py");
    // The checks themselves: a link glued to text, a URL twice, a link shown another way.
    let case = Case { file: "x", classes: "", show: &[L("Open", "https://a.example/x"), Once("https://b.example/")], hide: &[] };
    assert!(problems(&case, "Open (https://a.example/x)\nhttps://b.example/").is_empty());
    assert!(problems(&case, "Open\nhttps://a.example/x\nsee https://b.example/").is_empty());
    assert_eq!(problems(&case, "Open https://a.example/x\nhttps://b.example/ https://b.example/").len(), 2);
    assert_eq!(problems(&case, "Open (https://a.example/x)\nlink:https://b.example/").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_mail_reads_right_on_the_phone() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, extra: "[delivery]\nmode = \"direct\"\n", ..Default::default() })
    });
    let mut report = String::new();
    let mut failed = Vec::new();
    for (i, case) in CORPUS.iter().enumerate() {
        let raw = std::fs::read(corpus_dir().join(case.file)).unwrap_or_else(|e| panic!("{}: {e} (run make.py)", case.file));
        let to = user(1800 + i as u32);
        let reply = block_in_place(|| gw.send_raw("sender@example.com", &[&addr(&to)], &raw));
        let (text, invalid) = pushed_text(&line, &to);
        let mut missed = match &reply {
            Ok(r) if r.code().to_string() == "250" => Vec::new(),
            Ok(r) => vec![format!("SMTP reply {} {:?}, wanted 250", r.code(), r.message().collect::<Vec<_>>())],
            Err(e) => vec![format!("SMTP error, wanted 250: {e}")],
        };
        missed.extend(invalid.into_iter().map(|e| format!("LINE would refuse the request: {e}")));
        missed.extend(problems(case, &text));
        if missed.is_empty() {
            report.push_str(&format!("ok    {:<20} [{}]\n", case.file, case.classes));
        } else {
            report.push_str(&format!("FAIL  {:<20} [{}]\n", case.file, case.classes));
            for m in &missed {
                report.push_str(&format!("      - {m}\n"));
            }
            report.push_str("      text LINE got:\n");
            report.push_str(&indent(&text));
            failed.push(format!("{} [{}]", case.file, case.classes));
        }
    }
    println!("\nreal-mail corpus, {} mails:\n{report}", CORPUS.len());
    assert!(failed.is_empty(), "{} of {} corpus mails do not read right (report above):\n  {}", failed.len(), CORPUS.len(), failed.join("\n  "));
}

/// `[message] signature = "drop"`: the iPhone reply ends before its `-- ` line, and the quoted
/// chain under the signature goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_drop_ends_the_body_at_the_separator() {
    let line = StandIn::start().await;
    let url = line.base_url();
    let extra = "[delivery]\nmode = \"direct\"\n\n[message]\nsignature = \"drop\"\nquoted = \"keep\"\n";
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    let raw = std::fs::read(corpus_dir().join("iphone.eml")).unwrap();
    let to = user(1899);
    let reply = block_in_place(|| gw.send_raw("taro@example.co.jp", &[&addr(&to)], &raw)).unwrap();
    assert_eq!(reply.code().to_string(), "250");
    let (text, invalid) = pushed_text(&line, &to);
    assert!(invalid.is_empty(), "{invalid:?}");
    assert_eq!(text, "Re: 明日の会議\n\n了解です。明日の会議は10時からに変更になりました。資料は前日までに共有します。");
}
