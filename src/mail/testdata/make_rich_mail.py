"""Regenerates rich.eml, the unit-test sample of a mail with images and a PDF, the way a
desktop mail client builds it: multipart/mixed [ multipart/alternative [ text/plain,
multipart/related [ text/html, inline PNG by Content-ID ] ], PNG, JPEG, PDF ].
chart.png and snapshot.jpg are CPython's email test images (PSF licence); logo.png and
scan.pdf were written by hand. Run: python3 make_rich_mail.py > rich.eml"""
import sys
from email.message import EmailMessage
from email.policy import SMTP

msg = EmailMessage(policy=SMTP)
msg["From"] = "Monitor <monitor@example.com>"
msg["To"] = "ops@example.com"
msg["Subject"] = "Disk usage report"
msg["Message-ID"] = "<rich-sample@example.com>"
msg.set_content("Disk usage is at 91%.\nSee the attached chart.\n")
msg.add_alternative(
    '<p>Disk usage is at <b>91%</b>.</p><img src="cid:logo@example.com" alt="logo">\n',
    subtype="html",
)
html = msg.get_payload()[1]
with open("logo.png", "rb") as f:
    html.add_related(f.read(), "image", "png", cid="<logo@example.com>",
                     filename="logo.png", disposition="inline")
for name, maintype, subtype in [("chart.png", "image", "png"),
                                ("snapshot.jpg", "image", "jpeg"),
                                ("scan.pdf", "application", "pdf")]:
    with open(name, "rb") as f:
        msg.add_attachment(f.read(), maintype=maintype, subtype=subtype, filename=name)
sys.stdout.buffer.write(msg.as_bytes())
