//! Whole mails, as bytes, from the senders of issue #18's classes 4 (charset labels, unlabelled
//! and mislabelled 8-bit text) and 5 (sloppy header/body splits), through [`super::parse`];
//! and a check that the sample mails in the repository are left exactly as they were.

use std::borrow::Cow;

use base64::Engine;
use encoding_rs::{Encoding, EUC_JP, ISO_2022_JP, SHIFT_JIS};
use mail_parser::{Charset, HeaderName, MessageParser};

use super::tests::{assert_parsed, assert_subject_and_text};
use super::{lenient, parse, parse_message, sloppy, Notice};

/// `text` in `encoding`, as bytes.
fn enc(encoding: &'static Encoding, text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "{text} in {}", encoding.name());
    bytes.into_owned()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Lines joined with CRLF, as SMTP hands them over.
fn mail(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ------------------------------------------------------------------ class 4: labels

#[test]
fn php_mail_with_cp932_labels() {
    // PHP's mb_send_mail / mail() on a Windows-minded setup: cp932 everywhere, with NEC
    // special characters (①, ㈱) that only the Microsoft variant has.
    let subject = format!("=?CP932?B?{}?=", b64(&enc(SHIFT_JIS, "【受注】①番 ㈱サンプル様")));
    let from = format!("=?cp932?B?{}?= <shop@example.jp>", b64(&enc(SHIFT_JIS, "通販ショップ")));
    let body = enc(SHIFT_JIS, "ご注文ありがとうございます。\r\n合計：１，２８０円");
    let raw = mail(&[
        format!("Subject: {subject}").as_bytes(),
        format!("From: {from}").as_bytes(),
        b"To: buyer@example.com",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=\"cp932\"",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        &body,
    ]);
    assert_parsed(&raw, "【受注】①番 ㈱サンプル様", "通販ショップ <shop@example.jp>", "ご注文ありがとうございます。\n合計：１，２８０円");
}

#[test]
fn vendor_labels_of_iso_2022_jp_and_euc_jp_and_utf8() {
    for (label, encoding) in [
        ("CP50220", ISO_2022_JP),
        ("cp50221", ISO_2022_JP),
        ("ISO-2022-JP-MS", ISO_2022_JP),
        ("cp51932", EUC_JP),
        ("eucJP-ms", EUC_JP),
        ("x-euc-jp", EUC_JP),
        (" \"Shift_JIS\" ", SHIFT_JIS),
        ("UTF8", encoding_rs::UTF_8),
        ("Utf-8", encoding_rs::UTF_8),
    ] {
        let text = "定期メンテナンスのお知らせ";
        let subject = format!("=?{}?B?{}?=", label.trim().trim_matches('"'), b64(&enc(encoding, text)));
        let raw = mail(&[
            format!("Subject: {subject}").as_bytes(),
            format!("Content-Type: text/plain; charset={label}").as_bytes(),
            b"Content-Transfer-Encoding: base64",
            b"",
            b64(&enc(encoding, text)).as_bytes(),
        ]);
        let notice = parse(&raw);
        assert_eq!((notice.subject.as_str(), notice.text.as_str()), (text, text), "{label}");
    }
}

#[test]
fn long_cp50220_subject_folded_into_words() {
    // Each word its own ISO-2022-JP run, as RFC 1468 senders fold: relabelled, then kept apart.
    let words: Vec<String> = ["サーバー監視", "ディスク残量"]
        .iter()
        .map(|t| format!("=?cp50220?B?{}?=", b64(&enc(ISO_2022_JP, t))))
        .collect();
    let raw = mail(&[format!("Subject: {}\r\n {}", words[0], words[1]).as_bytes(), b"", b"x"]);
    assert_eq!(parse(&raw).subject, "サーバー監視ディスク残量");
}

// ------------------------------------------------------------------ class 4: no label

#[test]
fn cron_mail_with_a_raw_utf8_subject_and_no_mime_headers() {
    let raw = mail(&[
        b"From: root@backup.example.com (Cron Daemon)",
        b"To: root@backup.example.com",
        "Subject: Cron <root@backup> /usr/local/bin/バックアップ.sh — 完了".as_bytes(),
        b"Date: Mon,  1 Jan 2024 03:00:01 +0900",
        b"",
        "バックアップ完了: 12 GB (所要 3 分)".as_bytes(),
        "Température: 42 °C".as_bytes(),
    ]);
    let notice = parse(&raw);
    assert_eq!(notice.subject, "Cron <root@backup> /usr/local/bin/バックアップ.sh — 完了");
    assert_eq!(notice.text, "バックアップ完了: 12 GB (所要 3 分)\nTempérature: 42 °C");
}

#[test]
fn old_japanese_system_sending_unlabelled_shift_jis() {
    // No MIME headers at all: raw Shift_JIS in the Subject, the From name and the body.
    let raw = mail(&[
        &[b"Subject: ".as_slice(), &enc(SHIFT_JIS, "【障害通知】ジョブ異常終了")].concat(),
        &[b"From: ".as_slice(), &enc(SHIFT_JIS, "基幹システム"), b" <batch@legacy.example.co.jp>"].concat(),
        b"To: ops@example.co.jp",
        b"",
        &enc(SHIFT_JIS, "夜間バッチ「売上集計」が異常終了しました。"),
        &enc(SHIFT_JIS, "終了コード：８　担当者は確認してください。"),
    ]);
    let notice = parse(&raw);
    assert_eq!(notice.subject, "【障害通知】ジョブ異常終了");
    assert_eq!(notice.from, "基幹システム <batch@legacy.example.co.jp>");
    assert_eq!(
        notice.text,
        "夜間バッチ「売上集計」が異常終了しました。\n終了コード：８　担当者は確認してください。"
    );
}

#[test]
fn raw_shift_jis_subject_is_read_in_the_body_charset() {
    // A short subject is little to detect from; the labelled body says what the mail is in.
    let raw = mail(&[
        &[b"Subject: ".as_slice(), &enc(SHIFT_JIS, "障害")].concat(),
        b"Content-Type: text/plain; charset=Shift_JIS",
        b"",
        &enc(SHIFT_JIS, "本文"),
    ]);
    let notice = parse(&raw);
    assert_eq!((notice.subject.as_str(), notice.text.as_str()), ("障害", "本文"));
}

#[test]
fn unlabelled_euc_jp_and_iso_2022_jp_bodies() {
    let text = "お世話になっております。月次レポートを送付いたします。";
    let raw = mail(&[b"Subject: report", b"", &enc(EUC_JP, text)]);
    assert_eq!(parse(&raw).text, text);
    // ISO-2022-JP is 7-bit: its escapes say what it is.
    let raw = mail(&[b"Subject: report", b"", &enc(ISO_2022_JP, text)]);
    assert_eq!(parse(&raw).text, text);
}

#[test]
fn unlabelled_latin1_body_and_subject() {
    let raw = mail(&[b"Subject: Caf\xe9 ferm\xe9", b"", b"Le caf\xe9 est ferm\xe9 jusqu'\xe0 lundi."]);
    let notice = parse(&raw);
    assert_eq!(notice.subject, "Café fermé");
    assert_eq!(notice.text, "Le café est fermé jusqu'à lundi.");
}

// ------------------------------------------------------------------ class 4: wrong label

#[test]
fn windows_tool_labelling_utf8_as_iso_8859_1() {
    for (cte, body) in [
        ("8bit", "Température: 42 °C — seuil dépassé".as_bytes().to_vec()),
        ("quoted-printable", b"Temp=C3=A9rature: 42 =C2=B0C =E2=80=94 seuil d=C3=A9pass=C3=A9".to_vec()),
    ] {
        for label in ["iso-8859-1", "ISO-8859-1", "us-ascii", "\"windows-1252\""] {
            let raw = mail(&[
                b"Subject: NAS alert",
                format!("Content-Type: text/plain; charset={label}").as_bytes(),
                format!("Content-Transfer-Encoding: {cte}").as_bytes(),
                b"",
                &body,
            ]);
            assert_eq!(parse(&raw).text, "Température: 42 °C — seuil dépassé", "{label} {cte}");
        }
    }
}

#[test]
fn real_latin1_under_its_label_stays_latin1() {
    let raw = mail(&[
        b"Subject: =?iso-8859-1?q?Temp=E9rature?=",
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Temp\xe9rature: 42 \xb0C, seuil d\xe9pass\xe9 \xe0 3h",
    ]);
    let notice = parse(&raw);
    assert_eq!(notice.subject, "Température");
    assert_eq!(notice.text, "Température: 42 °C, seuil dépassé à 3h");
}

// ------------------------------------------------------------------ class 5: sloppy senders

#[test]
fn shell_script_without_the_blank_line() {
    // printf "Subject: x\nbody" | sendmail
    let notice = parse(b"Subject: x\nbody");
    assert_eq!((notice.subject.as_str(), notice.text.as_str()), ("x", "body"));
    // A status line that looks a little like a header ("Disk usage" has a space) is body.
    let notice = parse(b"To: ops@example.com\nSubject: backup failed\nDisk usage: 97%\nrsync exited with 23\n");
    assert_eq!(notice.subject, "backup failed");
    assert_eq!(notice.text, "Disk usage: 97%\nrsync exited with 23");
}

#[test]
fn whitespace_only_separator() {
    let raw = b"Subject: nightly\r\nFrom: cron@example.com\r\n \t \r\nAll jobs done.\r\nStatus: ok\r\n";
    assert_parsed(raw, "nightly", "cron@example.com", "All jobs done.\nStatus: ok");
}

#[test]
fn leading_mbox_from_line() {
    let raw = b"From root@host.example.com Mon Jan  1 00:00:00 2024\nSubject: from an mbox\nFrom: root@host.example.com\n\nhello\n";
    assert_parsed(raw, "from an mbox", "root@host.example.com", "hello");
    // Plain text that happens to start with "From " is still plain text.
    assert_eq!(parse(b"From now on, backups run at 3.\n").text, "From now on, backups run at 3.");
}

#[test]
fn sloppy_and_unlabelled_together() {
    // An old script: mbox line, raw Shift_JIS subject, no blank line.
    let raw = [
        b"From batch@legacy Mon Jan  1 00:00:00 2024\nSubject: ".as_slice(),
        &enc(SHIFT_JIS, "夜間処理完了のお知らせ"),
        b"\n",
        &enc(SHIFT_JIS, "全ジョブが正常に終了しました。本日の処理件数は千二百件です。"),
        b"\n",
    ]
    .concat();
    assert_subject_and_text(&raw, "夜間処理完了のお知らせ", "全ジョブが正常に終了しました。本日の処理件数は千二百件です。");
}

// ------------------------------------------------------------------ never panics

#[test]
fn odd_bytes_in_charset_paths_do_not_panic() {
    let samples: &[&[u8]] = &[
        b"Subject: \xff\xfe\x00\r\n\r\n\xff",
        b"Subject: =?cp932?B?\xff?= =?cp50220?Q?\x1b$B?=\r\n\r\n",
        b"Subject: =?\r\n\r\n",
        b"Subject: =?utf8*?Q?a?= =?*?Q?a?= =??Q?a?=\r\n\r\n",
        b"Content-Type: text/plain; charset=\"\"\r\n\r\n\x82",
        b"Content-Type: text/plain; charset=cp932\r\n\r\n\x82",
        b"Content-Type: text/plain; charset=utf-16\r\n\r\n\x82",
        b"From \nSubject: x\n",
        b"From a 1\n",
        b"From a 1\nS: x",
        b"S: x\n \t",
        b"S: x\n \t\n",
        b"S: x\r\n\r",
        b"S:\xff\n\xff",
        b"\x1b$B\n",
    ];
    for sample in samples {
        let _ = parse_message(sample);
    }
    // Random bytes that mean something to these paths.
    for bytes in crate::mail::tests::noise(b"\r\n:=?- \tFrom BQcp932\x1b$(\x82\xa0\xe3\xff", 0x9e37_79b9, 400) {
        let _ = parse_message(&bytes);
    }
}

// ------------------------------------------------------------------ well-formed mail

/// The repository's sample mails are well formed: on them, the lenient paths must change
/// nothing. Shown part by part, so a failure says which rule would have fired.
#[test]
fn sample_mails_take_none_of_the_lenient_paths() {
    let samples: &[(&str, &[u8])] = &[
        ("rich.eml", include_bytes!("testdata/rich.eml")),
        ("alternative.eml", include_bytes!("../../benches/data/alternative.eml")),
        ("html.eml", include_bytes!("../../benches/data/html.eml")),
        ("iso2022jp.eml", include_bytes!("../../benches/data/iso2022jp.eml")),
        ("mixed.eml", include_bytes!("../../benches/data/mixed.eml")),
        ("qp_emoji.eml", include_bytes!("../../benches/data/qp_emoji.eml")),
        ("sjis.eml", include_bytes!("../../benches/data/sjis.eml")),
    ];
    for &(name, raw) in samples {
        assert!(matches!(sloppy::repair(raw), Cow::Borrowed(b) if b.len() == raw.len()), "{name}");
        let message = MessageParser::new().parse(raw).expect(name);
        for part in message.root().parts().filter(|p| p.is_text()) {
            let label = super::charset_label(&part);
            let as_labelled = label.and_then(|l| Charset::from_label(l.as_bytes())).unwrap_or_default();
            assert_eq!(lenient::body_charset(label, &part.decoded()), as_labelled, "{name}");
        }
        for header in [HeaderName::Subject, HeaderName::From, HeaderName::To] {
            if let Some(h) = message.headers().get(header.clone()) {
                assert_eq!(lenient::header_value(h.raw_value(), Charset::default), None, "{name} {header:?}");
            }
        }
        assert_ne!(parse(raw), Notice::default(), "{name}");
    }
}
