"""Regenerates the sample mails of benches/mime.rs: six kinds of mail a gateway sees every day,
each about 4 KiB on the wire, the way common senders build them. Run from this directory:

    python3 make_mails.py

iso2022jp.eml  text/plain; charset=ISO-2022-JP, 7bit, RFC 2047 ISO-2022-JP subject (Japanese
               mailers, monitoring systems in Japan)
sjis.eml       text/plain; charset=Shift_JIS, 8bit (Japanese business systems, older web apps)
html.eml       text/html only, UTF-8, quoted-printable (newsletters, SaaS notifications)
alternative.eml  multipart/alternative, text/plain + text/html, UTF-8 (desktop/web mail clients)
mixed.eml      multipart/mixed: text/plain + a small CSV and a small PDF in base64 (reports)
qp_emoji.eml   text/plain UTF-8 quoted-printable with Unicode emoji and [emoji:…] tokens
               (the gateway's own LINE-emoji syntax) and a [sticker:…] line

The text is written here, not copied from real mail. Output is deterministic (fixed dates,
boundaries and Message-IDs), so a rerun gives the same files."""
from email.message import EmailMessage
from email.policy import SMTP
from email.header import Header
import base64

DATE = "Mon, 24 Nov 2025 09:30:00 +0900"

JA_LINES = [
    "お世話になっております。システム監視センターです。",
    "本日午前九時三十分、東京第二データセンターのストレージ使用率が九十一パーセントに達しました。",
    "対象サーバー：db-tokyo-02（PostgreSQL 15、共有ストレージ）",
    "影響範囲：注文管理システム、在庫照会、帳票出力の一部機能",
    "現在の状況：自動拡張は完了していないため、手動での対応をお願いいたします。",
    "推奨される対応：古いアーカイブログの削除、または一時領域の見直し。",
    "なお、本メールは送信専用アドレスから自動で送信されています。ご返信いただいてもお答えできません。",
    "ご不明な点がございましたら、運用担当（内線 1234）までお問い合わせください。",
]


def ja_text(target_bytes, encoding):
    out = ["株式会社サンプル 情報システム部 各位", ""]
    n = 0
    while len("\n".join(out).encode(encoding)) < target_bytes:
        out.append(f"【{n + 1}】" + JA_LINES[n % len(JA_LINES)])
        n += 1
    out += ["", "以上、よろしくお願いいたします。", "-- ", "システム監視センター"]
    return "\n".join(out) + "\n"


def headers(subject_header, extra=()):
    h = [
        "Return-Path: <monitor@example.co.jp>",
        "Received: from mx1.example.co.jp (mx1.example.co.jp [192.0.2.10])\r\n\tby gateway.example.com with ESMTPS id 4Zx9k2; " + DATE,
        "From: =?ISO-2022-JP?B?GyRCNWEwQkUqGyhC?= <monitor@example.co.jp>",
        "To: U0123456789abcdef0123456789abcdef@text.line.example.com",
        "Subject: " + subject_header,
        "Date: " + DATE,
        "MIME-Version: 1.0",
    ]
    return "\r\n".join(list(h) + list(extra)) + "\r\n"


def crlf(s):
    return s.replace("\r\n", "\n").replace("\n", "\r\n")


def write(name, data):
    with open(name, "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


# 1. ISO-2022-JP, 7bit: what Japanese mailers have sent for decades.
subject = Header("【警告】ストレージ使用率が閾値を超えました", "iso-2022-jp").encode()
body = crlf(ja_text(3300, "iso-2022-jp")).encode("iso-2022-jp")
write("iso2022jp.eml", headers(subject, [
    "Message-ID: <iso2022jp-sample@example.co.jp>",
    "Content-Type: text/plain; charset=ISO-2022-JP",
    "Content-Transfer-Encoding: 7bit",
]).encode() + b"\r\n" + body)

# 2. Shift_JIS, 8bit.
subject = Header("【注文確定】ご注文ありがとうございます（注文番号 20251124-0042）", "shift_jis").encode()
body = crlf(ja_text(3300, "shift_jis")).encode("shift_jis")
write("sjis.eml", headers(subject, [
    "Message-ID: <sjis-sample@example.co.jp>",
    "Content-Type: text/plain; charset=Shift_JIS",
    "Content-Transfer-Encoding: 8bit",
]).encode() + b"\r\n" + body)

HTML_ROWS = "".join(
    f'<tr><td style="padding:4px;border:1px solid #ddd">web-{i:02d}</td>'
    f'<td style="padding:4px;border:1px solid #ddd">{50 + i * 3}%</td>'
    f'<td style="padding:4px;border:1px solid #ddd"><a href="https://status.example.com/hosts/web-{i:02d}?utm_source=mail&amp;utm_medium=alert">詳細 &rarr;</a></td></tr>\n'
    for i in range(9)
)
HTML = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Weekly status</title>
<style>body{{font-family:sans-serif}} .muted{{color:#888}}</style></head>
<body>
<h1>Weekly status &ndash; 24 Nov 2025</h1>
<p>Hello team,<br>here is the summary of last week&rsquo;s <b>production</b> hosts. Two of them need
attention before Friday&nbsp;&mdash; see the table below. 今週もよろしくお願いします。</p>
<table style="border-collapse:collapse">
<tr><th>host</th><th>disk</th><th>link</th></tr>
{HTML_ROWS}</table>
<ul><li>Backups: <i>all green</i></li><li>Certificates: renew <code>*.example.com</code> by 2025-12-01</li></ul>
<p class="muted">You get this mail because you are on the ops rota. <a href="https://example.com/unsubscribe">Unsubscribe</a></p>
</body></html>
"""

# 3. HTML only, quoted-printable.
msg = EmailMessage(policy=SMTP)
msg["From"] = "Status <status@example.com>"
msg["To"] = "U0123456789abcdef0123456789abcdef@text.line.example.com"
msg["Subject"] = "Weekly status – 2 hosts need attention"
msg["Date"] = DATE
msg["Message-ID"] = "<html-sample@example.com>"
msg.set_content(HTML, subtype="html", cte="quoted-printable")
write("html.eml", msg.as_bytes())

# 4. multipart/alternative: plain + HTML, as mail clients send.
PLAIN = ("Hello team,\n\nhere is the summary of last week's production hosts. Two of them need attention\n"
         "before Friday, see the table below.\n\n" +
         "".join(f"  web-{i:02d}  disk {50 + i * 3}%  https://status.example.com/hosts/web-{i:02d}\n" for i in range(14)) +
         "\nBackups: all green\nCertificates: renew *.example.com by 2025-12-01\n\n-- \nStatus bot\n")
msg = EmailMessage(policy=SMTP)
msg["From"] = "Status <status@example.com>"
msg["To"] = "U0123456789abcdef0123456789abcdef@text.line.example.com"
msg["Subject"] = "Weekly status – 2 hosts need attention"
msg["Date"] = DATE
msg["Message-ID"] = "<alternative-sample@example.com>"
msg.set_content(PLAIN)
msg.add_alternative(HTML[:1900] + "</table></body></html>\n", subtype="html")
msg.set_boundary("===============alt-sample==")
write("alternative.eml", msg.as_bytes())

# 5. multipart/mixed with a small CSV and PDF attachment.
msg = EmailMessage(policy=SMTP)
msg["From"] = "Reports <reports@example.com>"
msg["To"] = "U0123456789abcdef0123456789abcdef@text.line.example.com"
msg["Subject"] = "Daily sales report 2025-11-23"
msg["Date"] = DATE
msg["Message-ID"] = "<mixed-sample@example.com>"
msg.set_content("Good morning,\n\nattached are yesterday's sales (CSV) and the signed summary (PDF).\n"
                "Totals: 1,284 orders, 3,912,400 JPY, 2.1% returns.\n\nReports\n")
csv = "date,store,orders,revenue_jpy\n" + "".join(
    f"2025-11-23,store-{i:02d},{40 + i},{120000 + i * 3517}\n" for i in range(48))
msg.add_attachment(csv.encode(), maintype="text", subtype="csv", filename="sales-2025-11-23.csv")
pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n") * 4
msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="summary.pdf")
msg.set_boundary("===============mixed-sample==")
write("mixed.eml", msg.as_bytes())

# 6. quoted-printable UTF-8 with Unicode emoji and the gateway's [emoji:…]/[sticker:…] tokens.
lines = []
for i in range(40):
    lines.append(f"✅ job-{i:02d} finished in {i * 7 + 3}s 🚀 [emoji:5ac1bfd5040ab15980c9b435:{(i % 40) + 1:03d}] ok")
lines.insert(11, "[sticker:446:1988]")
text = "Nightly build report 🌙\n\n" + "\n".join(lines) + "\n\nAll green 🎉 see https://ci.example.com/nightly/2025-11-24\n"
msg = EmailMessage(policy=SMTP)
msg["From"] = "CI <ci@example.com>"
msg["To"] = "U0123456789abcdef0123456789abcdef@text.line.example.com"
msg["Subject"] = "🌙 Nightly build: 40 of 40 jobs passed"
msg["Date"] = DATE
msg["Message-ID"] = "<qp-emoji-sample@example.com>"
msg.set_content(text, cte="quoted-printable")
write("qp_emoji.eml", msg.as_bytes())
