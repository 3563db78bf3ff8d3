//! SMTP smuggling: a mail whose text holds a bare line end before or after a `.` line, then a
//! second transaction (`MAIL FROM:<ceo@bank.example>` to another id). A server in front of us
//! that ends data only at CRLF.CRLF sees one mail; if we ended it at the bare form, the second
//! would be delivered as a forgery. Every bare form, pipelined and sent a piece at a time: one
//! mail reaches LINE, to the first recipient, with the would-be commands as its text.

use std::time::Duration;

use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::raw::Raw;
use crate::support::standin::StandIn;
use tokio::task::block_in_place;

/// Every bare line end around a dot that some server has taken for the end of data.
const FORMS: &[&str] = &["\n.\r\n", "\n.\n", "\r.\n", "\r\n.\n", "\r.\r\n", "\n.\r", "\r.\r", "\n.\r\n\r\n"];

/// Sends one mail carrying `form` and a smuggled transaction to `victim`; returns every reply
/// code after DATA's 354 up to and including QUIT's 221.
fn attempt(gw: &GatewayProcess, form: &str, to: &str, victim: &str, pipelined: bool) -> Vec<u16> {
    let mut c = Raw::greeted(gw.smtp);
    let head = format!("Subject: hello\r\n\r\nfirst line{form}");
    let smuggled = format!("MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<{}>\r\nDATA\r\nSubject: wire the money\r\n\r\nforged\r\n.\r\n", addr(victim));
    // The smuggled mail's own CRLF.CRLF is where a server in front of us ends the one mail.
    let tail = "QUIT\r\n";
    let envelope = format!("EHLO attacker.example\r\nMAIL FROM:<a@attacker.example>\r\nRCPT TO:<{}>\r\nDATA\r\n", addr(to));
    let mut codes = Vec::new();
    if pipelined {
        c.send(format!("{envelope}{head}{smuggled}{tail}").as_bytes());
        for _ in 0..3 {
            assert_eq!(c.code() / 100, 2);
        }
        assert_eq!(c.code(), 354);
    } else {
        for line in envelope.split_inclusive("\r\n") {
            c.send(line.as_bytes());
            codes.push(c.code());
        }
        assert_eq!(codes, vec![250, 250, 250, 354]);
        codes.clear();
        // Each piece in its own write, with a pause, so the server sees the bare form alone.
        for piece in [head.as_str(), smuggled.as_str()] {
            c.send(piece.as_bytes());
            std::thread::sleep(Duration::from_millis(30));
        }
        c.send(tail.as_bytes());
    }
    loop {
        let code = c.code();
        codes.push(code);
        if code == 221 || codes.len() > 8 {
            return codes;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bare_line_end_ends_a_mail_so_nothing_is_smuggled() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    // Direct mode: a 250 comes after LINE's answer, so once the client has its replies every
    // push the mail caused has reached the stand-in.
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: "[delivery]\nmode = \"direct\"", ..Default::default() }));
    let victim = user(0xbad);
    let mut n = 0;
    for (i, form) in FORMS.iter().enumerate() {
        for pipelined in [true, false] {
            let to = user(1 + i as u32 * 2 + pipelined as u32);
            let codes = block_in_place(|| attempt(&gw, form, &to, &victim, pipelined));
            assert_eq!(codes, vec![250, 221], "form {form:?}, pipelined {pipelined}: one mail, then QUIT");
            n += 1;
            let pushes = line.requests_to("/v2/bot/message/push");
            assert_eq!(pushes.len(), n, "form {form:?}, pipelined {pipelined}: exactly one push");
            let last = &pushes[n - 1].body;
            assert_eq!(last["to"], to.as_str(), "form {form:?}: the push goes to the envelope's recipient");
            let text = last["messages"][0]["text"].as_str().unwrap_or_default();
            assert!(text.contains("MAIL FROM:<ceo@bank.example>") && text.contains("forged"), "form {form:?}: the would-be commands are text: {text:?}");
        }
    }
    // (The victim's address is in the texts above, as text; no request is addressed to it.)
    let reached_victim = line.requests().iter().filter(|r| r.body["to"] == victim.as_str() || r.body["to"].as_array().is_some_and(|to| to.iter().any(|t| t == victim.as_str()))).count();
    assert_eq!(reached_victim, 0, "the smuggled recipient never got a mail");
    line.assert_all_valid();
}
