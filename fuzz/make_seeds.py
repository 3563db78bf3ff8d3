"""Writes the seed corpora in fuzz/corpus/{mime,smtp,webhook}/ (checked in; rerun after changing
this file: python3 fuzz/make_seeds.py from the repository root).

Every seed starts with the selector bytes `src/fuzzing.rs` documents: one for mime (template,
recipients, media host), two for smtp (rules, driver) and two for webhook (signature mode,
content type). The mails are written the way mail clients and tools send them (Japanese
charsets, HTML, multipart with attachments, flowed text); the webhook bodies follow LINE's
webhook spec (CallbackRequest with follow/unfollow/join/leave/message events) but are our own.
"""
import base64
import json
import os
import quopri
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "mail", "testdata")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(s):
    return s.replace("\r\n", "\n").replace("\n", "\r\n")


def b64(data):
    e = base64.b64encode(data).decode()
    return "\r\n".join(e[i:i + 76] for i in range(0, len(e), 76))


def testdata(name):
    with open(os.path.join(TESTDATA, name), "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------ mime
# Selector: bits 0-1 template, 2-3 recipients (2: users and a room, 503 users with bits 6-7),
# 4 media host, 5 download links.
MEDIA = 0x10
LINKS = 0x20
MANY = 0xc8  # 503 users and a room
GROUPS = 0x04


def mime(name, sel, raw):
    if isinstance(raw, str):
        raw = raw.encode()
    write("mime", name, bytes([sel]) + raw)


P = "5ac1bfd5040ab6b5d9a3b0fc"

mime("plain.eml", 0, crlf("From: Cron <cron@host.example>\nTo: U0123456789abcdef0123456789abcdef@text.line.example.com\n"
                          "Subject: backup done\nDate: Tue, 24 Nov 2026 03:00:00 +0900\nMessage-ID: <1@host.example>\n\n"
                          "Backup finished in 42 s.\n12 files, 3.4 GB.\n"))
jp = "サーバーの再起動が完了しました。\n稼働時間: 3日\n".encode("iso2022_jp")
mime("iso2022jp.eml", 1, b"From: =?ISO-2022-JP?B?GyRCJTUhPCVQITwbKEI=?= <srv@example.jp>\r\nTo: team@example.jp\r\n"
     b"Subject: =?ISO-2022-JP?B?GyRCOkZAXkYwGyhC?=\r\nMIME-Version: 1.0\r\n"
     b"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + jp.replace(b"\n", b"\r\n"))
mime("shift_jis.eml", 2, b"From: printer@example.jp\r\nSubject: =?Shift_JIS?B?g4GBW4OL?=\r\nMIME-Version: 1.0\r\n"
     b"Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
     + "トナーの残量が少なくなっています。\r\n交換してください。\r\n".encode("shift_jis"))
mime("euc_jp.eml", 0, b"From: nas@example.jp\r\nSubject: disk\r\nContent-Type: text/plain; charset=EUC-JP\r\n\r\n"
     + "ディスク使用率 91%\r\n".encode("euc_jp"))
mime("qp_utf8.eml", 3, crlf("From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\nTo: a@b.c, =?UTF-8?B?5bGx55Sw?= <y@example.jp>\n"
                            "Subject: =?UTF-8?B?8J+UpSBhbGVydCDwn5Sl?=\nMIME-Version: 1.0\n"
                            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
     + quopri.encodestring("Grüße! Temperatur 42 °C ☀️ — 🔥 alles gut\n".encode()).decode().replace("\n", "\r\n"))
mime("html_only.eml", 0, crlf("From: app@example.com\nSubject: Weekly report\nMIME-Version: 1.0\n"
                              "Content-Type: text/html; charset=utf-8\n\n"
                              "<html><head><style>p{color:red}</style><script>x()</script></head><body>"
                              "<h1>Report</h1><p>Sales &amp; returns:</p><ul><li>A: 10</li><li>B: &#x1F600;</li></ul>"
                              "<table><tr><td>x</td><td>y</td></tr></table><a href=\"https://example.com\">link</a><br>"
                              "<pre>  keep   spaces</pre><img src=\"cid:x@y\" alt=\"chart\"></body></html>\n"))
mime("alternative.eml", 1, crlf("From: a@example.com\nSubject: alt\nMIME-Version: 1.0\n"
                                "Content-Type: multipart/alternative; boundary=b1\n\n--b1\n"
                                "Content-Type: text/plain; charset=utf-8\n\nplain part\n--b1\n"
                                "Content-Type: text/html; charset=utf-8\n\n<p>html part</p>\n--b1--\n"))
mime("rich.eml", 0, testdata("rich.eml"))
mime("rich_media.eml", MEDIA | LINKS, testdata("rich.eml"))
mime("rich_media_many.eml", MEDIA | MANY, testdata("rich.eml"))
mime("flowed.eml", 2, crlf("From: t@example.com\nSubject: flowed\nContent-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n\n"
                           "This is a long line that was wrapped by the mail client \nat seventy-two columns and must be \njoined again.\n"
                           "> quoted text that \n> continues\n-- \nsig\n"))
emoji = "".join(f"[emoji:{P}:{i:03d}]" for i in range(1, 26))
mime("emoji_25.eml", 0, crlf(f"Subject: $ price $5\n\ncost: $10 {emoji} $ end\n[emoji:{P}:1] [emoji:{P.upper()}:001] [emoji:{P}:0012]\n"))
mime("emoji_boundary.eml", 2, crlf("Subject: x\n\n" + "a" * 4998 + f"[emoji:{P}:001][emoji:{P}:002]$\n" + "😀" * 3000 + "\n"))
mime("stickers.eml", GROUPS, crlf("Subject: deploy\n\nServer is back.\n\n[sticker:446:1988]\n\nUptime: 3 days\n[sticker:789:10855]\n"
                                  "ok [sticker:1:2] inline\n[sticker:446:]\n[sticker:x:1]\n"))
mime("six_stickers.eml", 0, crlf("Subject: s\n\n" + "".join(f"[sticker:446:{i}]\n" for i in range(1, 7))))
mime("long_japanese.eml", 1, ("Subject: =?UTF-8?B?" + base64.b64encode("ログ".encode()).decode() + "?=\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
     + ("エラーが発生しました。詳細はログを確認してください。" * 40 + "\r\n").encode() * 30)
mime("surrogates.eml", 0, crlf("Subject: 🎉\n\n" + ("🎉" * 2499 + "x\n") * 3))
mime("no_headers.eml", 0, b"just some text piped into sendmail\nsecond line\n")
mime("empty.eml", 0, b"")
mime("headers_only.eml", 3, b"Subject: only a subject\r\nFrom: a@b.c\r\n")
mime("blank_body.eml", 0, b"Subject:   \r\n\r\n   \r\n\t\r\n\r\n")
mime("rfc822.eml", 1, crlf("From: fwd@example.com\nSubject: Fwd: original\nMIME-Version: 1.0\n"
                           "Content-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: text/plain\n\nsee below\n"
                           "--outer\nContent-Type: message/rfc822\n\nFrom: orig@example.com\nSubject: original\n\n"
                           "original body\n--outer--\n"))
mime("rfc2231.eml", MEDIA | LINKS, crlf("Subject: files\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n"
                                        "--zz\nContent-Type: text/plain\n\nattached\n--zz\n"
                                        "Content-Type: application/pdf\n"
                                        "Content-Disposition: attachment; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf\n"
                                        "Content-Transfer-Encoding: base64\n\n" + b64(testdata("scan.pdf")) + "\n"
                                        "--zz\nContent-Type: text/plain; name=\"evil\n[sticker:1:1].txt\"\n"
                                        "Content-Disposition: attachment; filename=\"a\r\n[sticker:1:1]\"\n\nnot a sticker\n--zz--\n"))
parts = "".join(f"--m\nContent-Type: image/png\nContent-Disposition: attachment; filename=\"p{i}.png\"\n"
                f"Content-Transfer-Encoding: base64\n\n{b64(testdata('logo.png' if i % 2 else 'chart.png'))}\n"
                for i in range(8))
many_images = crlf("Subject: eight images\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n"
                   "--m\nContent-Type: text/plain\n\nsee pictures\n" + parts + "--m--\n")
mime("eight_images.eml", MEDIA, many_images)
mime("eight_images_listed.eml", 0, many_images)
gif = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
mime("gif.eml", MEDIA | MANY, crlf("Subject: gif\nContent-Type: multipart/mixed; boundary=g\n\n--g\nContent-Type: text/plain\n\n"
                                   "[sticker:1:2]\n--g\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n"
                                   + b64(gif) + "\n--g\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n"
                                   + b64(testdata("snapshot.jpg")) + "\n--g--\n"))
mime("bare_lf.eml", 0, b"From: a@b.c\nSubject: lf\n\nline one\nline two\r\nmixed\rcr\n")
mime("bad_base64.eml", 2, crlf("Subject: b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                               "5pel5pys6Kqe!!!@@@===\nnot base64 at all\n"))
mime("unterminated_multipart.eml", 0, crlf("Subject: u\nContent-Type: multipart/mixed; boundary=\"q\"\n\n--q\n"
                                           "Content-Type: text/plain\n\nno end boundary\n--q\nContent-Type: application/octet-stream\n\n\x00\x01\x02"))
mime("unknown_charset.eml", 1, b"Subject: =?x-unknown?Q?abc?=\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe bytes \x80\r\n")
mime("control_chars.eml", 0, b"Subject: a\x07b\x1bc\r\nFrom: \x00x@y\r\n\r\nbell\x07 esc\x1b[31m red\x00 nul\x0c ff\r\n")
mime("whitespace_runs.eml", 2, crlf("Subject: w\n\n" + ("word " * 900 + "\n") + (" " * 6000) + "\n" + ("\n" * 300) + "end\n"))
mime("mixed_limits.eml", MEDIA | GROUPS, crlf("Subject: mix\n\n" + "x" * 6000 + "\n[sticker:446:1988]\n" + emoji + "\n"
                                               + "y" * 9000 + "\n[sticker:1:1]\ntail\n"))
mime("utf16_subject.eml", 3, b"Subject: =?UTF-16?B?/v8wwjDrMMgwuQ==?=\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n"
     + "テスト\r\n".encode("utf-16"))

# ------------------------------------------------------------------------------ smtp
# Rules byte: 0x01 aliases, 0x02 require_follower, 0x04/0x08 auth, 0x10 certificate,
# 0x20 require_tls, 0x40 small limits, 0x80 chunked input. Driver byte: 0x01 deliveries 250,
# 0x02 STARTTLS succeeds.
ID = "U0123456789abcdef0123456789abcdef"
FOLLOWER = "U00000000000000000000000000000f01"
STRANGER = "U00000000000000000000000000000bad"
D = "text.line.example.com"


def smtp(name, rules, driver, text):
    if isinstance(text, str):
        text = text.encode()
    write("smtp", name, bytes([rules, driver]) + text)


transaction = crlf(f"EHLO client.example\nMAIL FROM:<cron@host.example> SIZE=100\nRCPT TO:<{ID}@{D}>\n"
                   f"RCPT TO:<C{ID[1:]}@{D}>\nDATA\nSubject: hi\n\n..dot-stuffed\nbody\n.\nQUIT\n")
smtp("transaction.txt", 0x00, 0x01, transaction)
smtp("transaction_chunked.txt", 0x80, 0x05, transaction)
smtp("transaction_refused.txt", 0x00, 0x00, transaction)
smtp("helo_lf.txt", 0x00, 0x01, f"HELO old.example\nMAIL FROM:<>\nRCPT TO:{ID}@{D}\nDATA\nbody\n.\n")
smtp("relay_attempts.txt", 0x00, 0x01, crlf(
    "EHLO x\nMAIL FROM:<a@b.c>\n"
    "RCPT TO:<someone@gmail.com>\n"
    f"RCPT TO:<{ID}@gmail.com>\n"
    f"RCPT TO:<{ID}@{D}.>\n"
    f"RCPT TO:<{ID}@{D}@gmail.com>\n"
    f"RCPT TO:<user%gmail.com@{D}>\n"
    f"RCPT TO:<gmail.com!user@{D}>\n"
    f"RCPT TO:<\"{ID}\"@{D}>\n"
    f"RCPT TO:<@{D}:victim@gmail.com>\n"
    f"RCPT TO:<@relay.example,@x.example:{ID}@{D}>\n"
    f"RCPT TO:<{ID}@[127.0.0.1]>\n"
    f"RCPT TO:<{ID.upper()}@{D}>\n"
    f"RCPT TO:<{ID}@{D.upper()}>\n"
    f"RCPT TO:{ID}@{D} NOTIFY=NEVER\n"
    "RCPT TO:<>\nRCPT TO:<postmaster>\nQUIT\n"))
smtp("aliases_followers.txt", 0x03, 0x01, crlf(
    f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<ops@{D}>\nRCPT TO:<OPS@{D}>\nRCPT TO:<nobody@{D}>\nRCPT TO:<followers@{D}>\n"
    f"RCPT TO:<{FOLLOWER}@{D}>\nRCPT TO:<{STRANGER}@{D}>\nRCPT TO:<ghost@{D}>\nDATA\nSubject: a\n\nb\n.\n"))
smtp("followers_none.txt", 0x00, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<followers@{D}>\nRCPT TO:<ops@{D}>\nDATA\n"))
smtp("require_follower.txt", 0x02, 0x01, crlf(
    f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<{STRANGER}@{D}>\nRCPT TO:<{FOLLOWER}@{D}>\nRCPT TO:<C{ID[1:]}@{D}>\nDATA\nx\n.\n"))
plain = base64.b64encode(b"\0alice\0wonderland").decode()
smtp("auth_plain.txt", 0x0c, 0x01, crlf(f"EHLO x\nAUTH PLAIN {plain}\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\nx\n.\n"))
wrong = base64.b64encode(b"\0alice\0nope").decode()
smtp("auth_plain_wrong.txt", 0x0c, 0x01, crlf(
    f"EHLO x\nMAIL FROM:<a@b.c>\nAUTH PLAIN {wrong}\nAUTH PLAIN\n{plain}\n"
    f"AUTH PLAIN\n*\nAUTH PLAIN !!!\nRCPT TO:<{ID}@{D}>\n"))
smtp("auth_login.txt", 0x0c, 0x01, crlf(
    f"EHLO x\nAUTH LOGIN\n{base64.b64encode(b'alice').decode()}\n{base64.b64encode(b'wonderland').decode()}\n"
    f"AUTH LOGIN\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\n"))
smtp("auth_login_rcpt_as_answer.txt", 0x0c, 0x01, crlf(
    f"EHLO x\nAUTH LOGIN\nRCPT TO:<victim@gmail.com>\nRCPT TO:<victim@gmail.com>\n"))
smtp("auth_plaintext_refused.txt", 0x04, 0x01, crlf(f"EHLO x\nAUTH PLAIN {plain}\nMAIL FROM:<a@b.c>\nAUTH FOO\n"))
smtp("starttls.txt", 0x14, 0x03, crlf(
    f"EHLO x\nSTARTTLS\nMAIL FROM:<injected@evil>\nRCPT TO:<{ID}@{D}>\nEHLO x\nAUTH PLAIN {plain}\nSTARTTLS\n"
    f"MAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\nx\n.\n"))
smtp("starttls_fails.txt", 0x30, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c>\nSTARTTLS now\nSTARTTLS\nMAIL FROM:<a@b.c>\n"))
smtp("require_tls.txt", 0x20, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\n"))
smtp("bdat_and_unknown.txt", 0x00, 0x01, crlf(
    f"EHLO x\nMAIL FROM:<a@b.c> BODY=BINARYMIME\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nBDAT 5 LAST\nhello\n"
    "ETRN x\nTURN\nXCLIENT ADDR=1.2.3.4\n\n"))
smtp("long_line.txt", 0x00, 0x01, b"EHLO " + b"a" * 5000 + b"\r\nRCPT TO:<" + b"b" * 20000 + b"@" + D.encode() + b">\r\nNOOP\r\n")
smtp("long_line_chunked.txt", 0x80, 0x21, b"EHLO x\r\nMAIL FROM:<" + b"c" * 9000 + b">\r\nNOOP\r\n")
smtp("oversize.txt", 0x40, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c> SIZE=999999\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\n")
     + ("x" * 100 + "\r\n") * 12 + "\r\n.\r\nQUIT\r\n")
smtp("too_many_rcpts.txt", 0x41, 0x01, crlf(
    "EHLO x\nMAIL FROM:<a@b.c>\n" + "".join(f"RCPT TO:<U{i:032x}@{D}>\n" for i in range(6)) + f"RCPT TO:<ops@{D}>\nDATA\nx\n.\n"))
smtp("smuggling.txt", 0x00, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\n").encode()
     + b"body\n.\nMAIL FROM:<smuggled@evil>\r\nRCPT TO:<victim@gmail.com>\r\n.\r\nQUIT\r\n")
smtp("bare_lf_client.txt", 0x00, 0x01, f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\nbody\n.\nRCPT TO:<v@gmail.com>\n")
smtp("misc_commands.txt", 0x00, 0x01, crlf("NOOP\nHELP\nVRFY x\nEXPN list\nRSET\nMAIL FROM:<a@b.c>\nRCPT TO:<x>\nDATA\n"
                                           "EHLO\nEHLO x\nDATA\nRCPT TO:<a>\nMAIL FROM:a@b.c SMTPUTF8 AUTH=<> BODY=8BITMIME\n"
                                           "MAIL FROM:<a@b.c>\nMAIL TO:<a@b.c>\nRSET\nQUIT\nNOOP\n"))
smtp("errors_close.txt", 0x40, 0x01, crlf("x\n" * 8))
smtp("utf8_addresses.txt", 0x00, 0x01, crlf(f"EHLO x\nMAIL FROM:<ユーザー@例え.jp> SMTPUTF8\nRCPT TO:<ユーザー@{D}>\n"
                                            f"RCPT TO:<{ID}@テキスト.{D}>\n").encode() + b"RCPT TO:<\xff\xfe@" + D.encode() + b">\r\n")
smtp("pipelined_two_mails.txt", 0x81, 0x01, crlf(
    f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<ops@{D}>\nDATA\nm1\n.\nMAIL FROM:<b@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\n.hidden\n..\n.\n"
    "RSET\nQUIT\n"))
smtp("dot_edge.txt", 0x80, 0x01, crlf(f"EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<{ID}@{D}>\nDATA\n").encode() + b".\r")
smtp("quoted_path.txt", 0x00, 0x01, crlf(f"EHLO x\nMAIL FROM:<\"a>b\"@c.d>\nRCPT TO:<\"x>y\"@{D}>\n"
                                         f"RCPT TO:<\"a\\\"b\"@{D}>\nRCPT TO:<{ID}@{D}>x\nRCPT TO: <{ID}@{D}>\n"))

# ------------------------------------------------------------------------------ webhook
# Signature byte (mod 7): 0 valid, 1 valid with blanks, 2 none, 3 empty, 4 first line, 5 other
# secret, 6 signature of another body. Content-type byte (mod 4): json, json+charset, text, none.
U1 = "U4af4980629000000000000000000000a"
C1 = "C4af4980629000000000000000000000c"
R1 = "R4af4980629000000000000000000000d"
BOT = "Ub0000000000000000000000000000001"


def event(kind, source, eid, **extra):
    e = {"type": kind, "mode": "active", "timestamp": 1732400000000, "source": source,
         "webhookEventId": eid, "deliveryContext": {"isRedelivery": False}}
    e.update(extra)
    return e


user = {"type": "user", "userId": U1}
group = {"type": "group", "groupId": C1, "userId": U1}
room = {"type": "room", "roomId": R1}


def body(*events):
    return json.dumps({"destination": BOT, "events": list(events)}, ensure_ascii=False).encode()


def webhook(name, sig, ctype, data):
    write("webhook", name, bytes([sig, ctype]) + data)


follow = body(event("follow", user, "01JD0000000000000000000001", replyToken="r1"))
webhook("connectivity_check.json", 0, 0, body())
webhook("follow.json", 0, 0, follow)
webhook("follow_unsigned.json", 2, 0, follow)
webhook("follow_empty_signature.json", 3, 0, follow)
webhook("follow_other_secret.json", 5, 1, follow)
webhook("follow_other_body.json", 6, 0, follow)
webhook("follow_blank_signature.json", 1, 1, follow)
webhook("follow_forged.json", 4, 0, b"bm90IGEgc2lnbmF0dXJl\n" + follow)
webhook("follow_text_plain.json", 0, 2, follow)
webhook("follow_no_content_type.json", 0, 3, follow)
webhook("unblock_redelivery.json", 0, 0, body(event("follow", user, "01JD0000000000000000000002", replyToken="r2",
                                                    follow={"isUnblocked": True}, deliveryContext={"isRedelivery": True})))
webhook("unfollow.json", 0, 0, body(event("unfollow", {"type": "user", "userId": FOLLOWER}, "01JD0000000000000000000003")))
webhook("unfollow_forged.json", 2, 0, body(event("unfollow", {"type": "user", "userId": FOLLOWER}, "01JD0000000000000000000004")))
webhook("join_leave.json", 0, 0, body(event("join", group, "01JD0000000000000000000005", replyToken="r3"),
                                      event("leave", room, "01JD0000000000000000000006"),
                                      event("join", room, "01JD0000000000000000000007", replyToken="r4")))
webhook("message_address.json", 0, 1, body(event("message", user, "01JD0000000000000000000008", replyToken="r5",
                                                 message={"id": "1", "type": "text", "text": "What is my ADDRESS? アドレス"}),
                                           event("message", group, "01JD0000000000000000000009", replyToken="r6",
                                                 message={"id": "2", "type": "image", "contentProvider": {"type": "line"}}),
                                           event("message", user, "01JD000000000000000000000A",
                                                 message={"id": "3", "type": "sticker", "packageId": "1", "stickerId": "2"})))
webhook("mixed_unknown.json", 0, 0, body(event("postback", user, "01JD000000000000000000000B", replyToken="r7",
                                               postback={"data": "a=b"}),
                                         event("memberJoined", group, "01JD000000000000000000000C", replyToken="r8",
                                               joined={"members": [user]}),
                                         event("follow", group, "01JD000000000000000000000D", replyToken="r9"),
                                         event("leave", user, "01JD000000000000000000000E"),
                                         {"type": "activated", "timestamp": 1, "webhookEventId": "01JD000000000000000000000F",
                                          "mode": "active", "deliveryContext": {"isRedelivery": False}}))
webhook("malformed_events.json", 0, 0, body({"type": "follow"}, {"type": "unfollow", "timestamp": "soon", "webhookEventId": 5},
                                            event("follow", {"type": "user"}, "01JD000000000000000000000G", replyToken="r"),
                                            event("unfollow", {"type": "satellite"}, "01JD000000000000000000000H"),
                                            event("join", {"type": "group"}, "01JD000000000000000000000J", replyToken="r"),
                                            event("message", user, "01JD000000000000000000000K", replyToken="r",
                                                  message={"type": "text"}),
                                            3, None, "follow", []))
webhook("duplicate_ids.json", 0, 0, body(event("follow", user, "01JD000000000000000000000M", replyToken="a"),
                                         event("unfollow", user, "01JD000000000000000000000M"),
                                         event("unfollow", user, "01HANDLEDALREADY0000000000")))
webhook("not_json.json", 0, 0, b"{\"destination\": \"U1\", \"events\": [")
webhook("not_json_unsigned.json", 2, 0, b"\xff\xfe not json")
webhook("wrong_shape.json", 0, 0, b"{\"destination\": 5, \"events\": {}}")
webhook("empty_body.json", 0, 0, b"")
webhook("empty_body_unsigned.json", 2, 3, b"")
webhook("big_text.json", 0, 0, body(event("message", user, "01JD000000000000000000000N", replyToken="r",
                                          message={"id": "9", "type": "text", "text": "address " + "あ" * 6000})))
