//! The open-relay guard under attack (issue #6): no combination of source routes, `%` hacks,
//! `!` paths, quoted local parts, upper case, trailing dots, IP-literal or lookalike domains,
//! control bytes or over-long addresses gets a foreign recipient accepted.
//!
//! One generator ([`cases`]) builds the cross product of tricks × targets × wrappers, each case
//! labelled by construction: refused, or exactly which LINE destinations it reaches. Two tests use
//! it: a sans-IO run of every case through the real [`Session`] (the RCPT decision is spread over
//! `address::parse_path_arg`, `address::resolve_local` and the session's alias/followers lookup, so
//! the session is the unit that decides), and a run of a sample of a few hundred against the real
//! binary with the stand-in LINE server, from tricky senders, which must receive nothing until a
//! control mail to legit addresses shows that it would have noticed. A third test checks that
//! VRFY and EXPN tell nothing about ids, aliases or followers.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use mail2line::envelope::Recipient;
use mail2line::followers::{Kind, Registry};
use mail2line::smtp::access::RecipientAccess;
use mail2line::smtp::{Conn, Directory, Mail, Reply, Rules, Session, Step};
use support::raw::Raw;
use support::gateway::{GatewayProcess, Options, DOMAIN, TOKEN};
use support::standin::StandIn;
use tokio::task::block_in_place;

/// The legit user id the control mail goes to.
const ID: &str = "U0123456789abcdef0123456789abcdef";
const GROUP: &str = "C0123456789abcdef0123456789abcdef";
const ROOM: &str = "R0123456789abcdef0123456789abcdef";
/// A well-formed id that the tricks try to reach; no case may ever deliver to it.
const OTHER: &str = "Ufedcba9876543210fedcba9876543210";
/// `[aliases] ops = [ALIAS_MEMBER]`.
const ALIAS: &str = "ops";
const ALIAS_MEMBER: &str = "U77777777777777777777777777777777";
/// `[routing] followers_address`, deliberately not the default `followers` (which must then be
/// an unknown name like any other).
const FOLLOWERS: &str = "everyone";
const FOLLOWER: &str = "U88888888888888888888888888888888";

/// What a `RCPT TO:` argument must lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// A 5xx reply, and nothing to deliver.
    Refused,
    /// 250, and the mail reaches exactly these destinations.
    Reaches(Vec<Recipient>),
}

struct Case {
    /// Everything after `RCPT TO:` on the command line.
    arg: String,
    want: Want,
}

/// Alternating case, e.g. `TeXt.LiNe`; ASCII only, so lookalikes stay lookalikes.
fn mixed(s: &str) -> String {
    s.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
}

/// Our domain in every ASCII case a sender might use.
fn our_domains() -> Vec<String> {
    let title: String = DOMAIN.split('.').map(|l| l[..1].to_ascii_uppercase() + &l[1..]).collect::<Vec<_>>().join(".");
    vec![DOMAIN.to_owned(), DOMAIN.to_ascii_uppercase(), mixed(DOMAIN), title]
}

/// Domains that are not ours but look like, contain, or route to something: other domains,
/// the parent, subdomains, suffix tricks, our name with dots and escapes added, Unicode
/// lookalikes, IP literals (including the gateway's own address).
fn foreign_domains(own_ip: &str) -> Vec<String> {
    let base = [
        "gmail.com".to_owned(),
        "example.org".to_owned(),
        "line.example.com".to_owned(), // the parent
        "example.com".to_owned(),
        format!("sub.{DOMAIN}"),
        format!("a.b.{DOMAIN}"),
        format!("{DOMAIN}.evil.org"),
        format!("evil-{DOMAIN}"),
        format!("evil{DOMAIN}"),
        "text.line.example.co".to_owned(),
        format!("{DOMAIN}."),
        format!("{DOMAIN}.."),
        format!(".{DOMAIN}"),
        "text..line.example.com".to_owned(),
        "text%2eline.example.com".to_owned(),
        format!("{DOMAIN}%00"),
        format!("{DOMAIN}%2E"),
        "text.line.example\\.com".to_owned(),
        "t\u{0435}xt.line.example.com".to_owned(), // Cyrillic е
        "text.l\u{0456}ne.example.com".to_owned(), // Ukrainian і
        "text.l\u{0131}ne.example.com".to_owned(), // dotless ı (Unicode-uppercases to I)
        "text\u{ff0e}line\u{ff0e}example\u{ff0e}com".to_owned(), // fullwidth full stop
        "text\u{3002}line\u{3002}example\u{3002}com".to_owned(), // ideographic full stop (IDNA maps it to '.')
        "\u{ff54}\u{ff45}\u{ff58}\u{ff54}.line.example.com".to_owned(), // fullwidth "text"
        format!("{DOMAIN}\u{200b}"),                               // zero-width space
        format!("\u{feff}{DOMAIN}"),
        "xn--text-line-example-com".to_owned(),
        "localhost".to_owned(),
        "[127.0.0.1]".to_owned(),
        "127.0.0.1".to_owned(),
        format!("[{own_ip}]"),
        "[0.0.0.0]".to_owned(),
        "[2130706433]".to_owned(),
        "[IPv6:::1]".to_owned(),
        "[::1]".to_owned(),
        "[IPv6:0:0:0:0:0:0:0:1]".to_owned(),
        format!("[IPv6:::ffff:{own_ip}]"),
        format!("[{DOMAIN}]"),
    ];
    let mut all = Vec::new();
    for d in base {
        let upper = d.to_ascii_uppercase();
        if upper != d {
            all.push(upper);
        }
        all.push(d);
    }
    all
}

/// Local parts that are legit at our domain, and where each leads.
fn legit_locals() -> Vec<(String, Vec<Recipient>)> {
    let alias = vec![Recipient::User(ALIAS_MEMBER.into())];
    vec![
        (ID.into(), vec![Recipient::User(ID.into())]),
        (GROUP.into(), vec![Recipient::Group(GROUP.into())]),
        (ROOM.into(), vec![Recipient::Room(ROOM.into())]),
        // Names are case-insensitive by design; LINE ids are not.
        (ALIAS.into(), alias.clone()),
        (ALIAS.to_ascii_uppercase(), alias.clone()),
        (mixed(ALIAS), alias.clone()),
        (FOLLOWERS.into(), vec![Recipient::Followers]),
        (FOLLOWERS.to_ascii_uppercase(), vec![Recipient::Followers]),
        // `+urgent` (issue #17, any case) reaches the same; every trick is tried on it too.
        (format!("{ID}+urgent"), vec![Recipient::User(ID.into())]),
        (format!("{GROUP}+URGENT"), vec![Recipient::Group(GROUP.into())]),
        (format!("{ALIAS}+urgent"), alias.clone()),
        (format!("{}+Urgent", ALIAS.to_ascii_uppercase()), alias),
        (format!("{FOLLOWERS}+urgent"), vec![Recipient::Followers]),
    ]
}

/// Local parts a relay attempt wants to reach elsewhere: a mailbox, a LINE id, our own names.
fn victims() -> Vec<String> {
    ["victim", "Victim.Name", "VICTIM", OTHER, ALIAS, "OPS", FOLLOWERS, "followers", "postmaster"].map(String::from).to_vec()
}

/// Local parts that are almost a LINE id.
fn near_ids() -> Vec<String> {
    let hex = &ID[1..];
    vec![
        format!("u{hex}"),
        format!("U{}", hex.to_ascii_uppercase()),
        format!("U{}", mixed(hex)),
        format!("U{hex}0"),
        format!("U{}", &hex[..31]),
        hex.to_owned(),
        format!("X{hex}"),
        format!("\u{ff35}{hex}"),                // fullwidth U
        format!("U{}", hex.replace('a', "\u{0430}")), // Cyrillic а
        format!("U{}", hex.replace('e', "\u{0435}")), // Cyrillic е
        format!("U{hex}\u{200b}"),
        format!("{ID}\t"),
    ]
}

/// Every `RCPT TO:` argument the suite tries, labelled. Panics if one argument is generated
/// with two different labels (a generator bug that would hide a failure).
fn cases(own_ip: &str) -> Vec<Case> {
    let ours = our_domains();
    let foreign = foreign_domains(own_ip);
    let mut inner: Vec<(String, Want)> = Vec::new();
    let refuse = |inner: &mut Vec<(String, Want)>, a: String| inner.push((a, Want::Refused));

    // The exact legit forms.
    for (l, reach) in legit_locals() {
        for o in &ours {
            inner.push((format!("{l}@{o}"), Want::Reaches(reach.clone())));
        }
    }

    // A victim at a foreign domain, through us in every way a relay ever understood.
    for v in victims() {
        for f in &foreign {
            for a in [
                format!("{v}@{f}"),
                format!("\"{v}\"@{f}"),
                format!("\"{v}@{f}\""),
                format!("{v}%{f}"),
                format!("{f}!{v}"),
                format!("@{f}:{v}@{f}"),
            ] {
                refuse(&mut inner, a);
            }
            for o in &ours {
                for a in [
                    format!("@{o}:{v}@{f}"), format!("@{o},@{o}:{v}@{f}"),
                    format!("{v}%{f}@{o}"), format!("{v}%{f}%{o}@{o}"), format!("{f}!{v}@{o}"), format!("{o}!{f}!{v}@{o}"),
                    format!("\"{v}@{f}\"@{o}"), format!("\"{v}%{f}\"@{o}"),
                    format!("{v}@{f}@{o}"), format!("{v}@{o}@{f}"), format!("{v}\\@{f}@{o}"),
                    format!("{v}@{o}.{f}"), format!("{v}@{f}.{o}"), format!("{v}@{f}(@{o})"),
                    format!("{v}@{f}\0@{o}"), format!("{v}@{f}\r@{o}"),
                    format!("{v}@{f},{v}@{o}"), format!("{v}@{o},{v}@{f}"),
                ] {
                    refuse(&mut inner, a);
                }
            }
        }
    }

    // Our own legit local parts made ambiguous: quoted, routed, commented, doubled, cut, padded.
    for (l, _) in legit_locals() {
        for o in &ours {
            for a in [
                format!("\"{l}\"@{o}"), format!("\"{l}@{o}\""), format!("\"{l}@{o}\"@gmail.com"),
                format!("{l}@{o}."), format!("{l}@{o}.."), format!("{l}.@{o}"), format!(".{l}@{o}"),
                format!("{l} @{o}"), format!("{l}@ {o}"),
                format!("{l}@{o}(comment)"), format!("{l}(comment)@{o}"), format!("(comment){l}@{o}"), format!("{l}@(comment){o}"),
                format!("<{l}@{o}"), format!("{l}@{o}>"),
                format!("{l}@{o}\0"), format!("{l}\0@{o}"), format!("{l}\r@{o}"), format!("{l}@\r{o}"),
                format!("{l}@@{o}"), format!("{l}@{o}@{o}"), format!("{l}\\@{o}"), format!("\\{l}@{o}"),
                format!("{l}%{o}@{o}"), format!("{l}%40{o}"), format!("{l}%40{o}@{o}"), format!("{o}!{l}@{o}"),
                format!("{l}+tag@{o}"), format!("{l}@{o}:25"), format!("{l}@{o}/"), format!("{l}@{o};gmail.com"),
                format!("{l}@{o}\u{200b}"), format!("{l}\u{200b}@{o}"), format!("{l}@{o}%00"),
                format!("{l}@{}{o}", "a.".repeat(150)), format!("{l}{}@{o}", "x".repeat(64)),
            ] {
                refuse(&mut inner, a);
            }
            for f in &foreign {
                refuse(&mut inner, format!("{l}@{f}"));
            }
        }
        refuse(&mut inner, l.clone());
    }

    // Not quite a LINE id, at our domain.
    for n in near_ids() {
        for o in &ours {
            refuse(&mut inner, format!("{n}@{o}"));
        }
    }

    // Over-long: past the command line limit, and a long local part just under it.
    refuse(&mut inner, format!("{}@{DOMAIN}", "a".repeat(5000)));
    refuse(&mut inner, format!("{ID}{}@{DOMAIN}", "0".repeat(3000)));
    refuse(&mut inner, format!("{}@{DOMAIN}", "v%gmail.com".repeat(300)));

    // Wrappers: the RFC form, a bare path (old senders), a leading space, and source routes,
    // which RFC 5321 4.1.1.3 says to accept and ignore. Ignoring them is safe because the
    // mailbox after the route still has to be ours: we deliver to LINE, never to a route host.
    let wrappers: [fn(&str) -> String; 5] = [
        |a| format!("<{a}>"),
        |a| a.to_owned(),
        |a| format!(" <{a}>"),
        |a| format!("<@relay.gmail.com:{a}>"),
        |a| format!("<@{DOMAIN},@[127.0.0.1]:{a}>"),
    ];
    let mut seen: HashMap<String, Want> = HashMap::new();
    let mut out = Vec::new();
    for (a, want) in &inner {
        for wrap in &wrappers {
            let arg = wrap(a);
            match seen.get(&arg) {
                Some(w) if w == want => continue,
                Some(w) => panic!("generator bug: {arg:?} labelled both {w:?} and {want:?}"),
                None => {}
            }
            seen.insert(arg.clone(), want.clone());
            out.push(Case { arg, want: want.clone() });
        }
    }
    // Extra brackets around the whole path (not an inner form: bare-wrapped it would be legit).
    for (l, _) in legit_locals() {
        for o in &ours {
            for arg in [format!("<<{l}@{o}>>"), format!("<<{l}@{o}>"), format!("<{l}@{o}>>"), format!("<>{l}@{o}"), format!("<{l}@{o}><{OTHER}@gmail.com>")] {
                out.push(Case { arg, want: Want::Refused });
            }
        }
    }
    out
}

/// Feeds `input` and runs the session until it needs input; deliveries are answered 250.
fn drive(s: &mut Session, input: &[u8]) -> (Vec<Reply>, Vec<Mail>) {
    s.push_input(input);
    let (mut replies, mut mails) = (Vec::new(), Vec::new());
    loop {
        match s.step() {
            Step::NeedInput => return (replies, mails),
            Step::Reply(r) => replies.push(r),
            Step::Close(r) => {
                replies.push(r);
                return (replies, mails);
            }
            Step::Deliver(m) => {
                mails.push(m);
                replies.push(s.data_done(Reply::new(250, "2.0.0", "Ok")));
            }
            // No TLS or AUTH is configured here, so neither may ever be asked for.
            other @ (Step::StartTls(_) | Step::Authenticate(_)) => panic!("unexpected {other:?}"),
        }
    }
}

/// The rules the real binary builds from the same configuration (see `src/commands/serve.rs`), with the real
/// follower registry holding one active follower.
fn rules(registry: Arc<Registry>) -> Arc<Rules> {
    let mut aliases = HashMap::new();
    aliases.insert(ALIAS.to_owned(), vec![Recipient::User(ALIAS_MEMBER.into())]);
    Arc::new(Rules {
        hostname: DOMAIN.into(),
        domain: DOMAIN.into(),
        max_message_bytes: 10_000,
        max_recipients: 100,
        aliases,
        followers_address: FOLLOWERS.into(),
        // `[routing] followers_senders` of [`start`]: the legit sender may reach the followers.
        followers_access: RecipientAccess::parse(&["@example.net".into()], &[]).unwrap(),
        require_follower: false,
        directory: Some(registry as Arc<dyn Directory>),
        ..Rules::basic(DOMAIN, DOMAIN)
    })
}

#[test]
fn every_generated_relay_trick_is_refused_in_the_session_and_only_exact_forms_reach_line() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    registry.follow(FOLLOWER, Kind::User, None, 1).unwrap();
    let rules = rules(registry);
    let all = cases("127.0.0.1");
    let (mut refused, mut accepted) = (0, 0);
    let mut failures = Vec::new();
    for case in &all {
        let mut s = Session::new(rules.clone(), Conn::default());
        let (replies, _) = drive(&mut s, format!("EHLO client.example\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:{}\r\nDATA\r\n", case.arg).as_bytes());
        let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
        // EHLO and MAIL must succeed, or a refused RCPT would prove nothing (503 "send MAIL first").
        assert_eq!(codes[..2], [250, 250], "{:?}", case.arg);
        match &case.want {
            Want::Refused => {
                refused += 1;
                let ok = codes.len() == 4 && (500..600).contains(&codes[2]) && codes[2] != 503 && codes[3] == 554;
                if !ok {
                    failures.push(format!("{:?}: want a 5xx refusal and 554 at DATA, got {replies:?}", case.arg));
                }
            }
            Want::Reaches(want) => {
                accepted += 1;
                if codes != [250, 250, 250, 354] {
                    failures.push(format!("{:?}: want 250 and 354, got {replies:?}", case.arg));
                    continue;
                }
                let (replies, mails) = drive(&mut s, b"Subject: t\r\n\r\nx\r\n.\r\n");
                let got: Vec<Recipient> = mails.iter().flat_map(|m| m.rcpts.clone()).collect();
                if replies.len() != 1 || replies[0].code != 250 || &got != want {
                    failures.push(format!("{:?}: want delivery to {want:?}, got {got:?} and {replies:?}", case.arg));
                }
                let urgent = case.arg.to_ascii_lowercase().contains("+urgent@");
                if mails.iter().any(|m| m.urgent != urgent) {
                    failures.push(format!("{:?}: want urgent = {urgent}, got {mails:?}", case.arg));
                }
            }
        }
    }
    println!("open relay (sans-IO): {} combinations checked: {refused} refused, {accepted} accepted", all.len());
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), all.len(), failures.join("\n"));
    // Guard the generator itself: it must keep producing both kinds, in bulk.
    assert!(refused > 100_000 && accepted >= 100, "{refused} refused, {accepted} accepted");
}

fn code(reply: &str) -> u16 {
    reply[..3].parse().unwrap()
}

/// Senders that try to look like us or like a route; the sender is never a destination, so
/// each must be accepted (the transaction goes on to RCPT) and change nothing.
fn tricky_senders() -> Vec<String> {
    vec![
        "<>".into(),
        format!("<{ID}@{DOMAIN}>"),
        format!("<{OTHER}@{DOMAIN}>"),
        format!("<{ALIAS}@{DOMAIN}>"),
        format!("<{FOLLOWERS}@{}>", DOMAIN.to_ascii_uppercase()),
        format!("<@{DOMAIN}:victim@gmail.com>"),
        format!("<victim%gmail.com@{DOMAIN}>"),
        format!("<\"{OTHER}@{DOMAIN}\"@gmail.com>"),
        "<postmaster@[127.0.0.1]>".into(),
        format!("<gmail.com!victim@{DOMAIN}>"),
    ]
}

/// Deterministic pseudo-random pick of `n` distinct indices below `len`.
fn sample(len: usize, n: usize, mut seed: u64) -> BTreeSet<usize> {
    let mut picked = BTreeSet::new();
    while picked.len() < n.min(len) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        picked.insert((seed % len as u64) as usize);
    }
    picked
}

/// Every LINE id a recorded push or multicast was addressed to, with how often.
fn destinations(line: &StandIn) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in line.requests() {
        match &r.body["to"] {
            serde_json::Value::String(id) => *out.entry(id.clone()).or_default() += 1,
            serde_json::Value::Array(ids) => {
                for id in ids {
                    *out.entry(id.as_str().unwrap_or_default().to_owned()).or_default() += 1;
                }
            }
            other => panic!("request to {} without a recipient: {other}", r.path),
        }
    }
    out
}

async fn start() -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    // Direct mode: the reply to DATA comes after the LINE request, so "no request" is final.
    let extra = format!(
        "[delivery]\nmode = \"direct\"\n\n[routing]\nfollowers_address = \"{FOLLOWERS}\"\nfollowers_senders = [\"@example.net\", \"@{DOMAIN}\"]\n\n[aliases]\n{ALIAS} = [\"{ALIAS_MEMBER}\"]\n"
    );
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra: &extra, ..Default::default() }));
    Registry::open_existing(&gw.dir.path().join("data"))
        .expect("the gateway created the registry")
        .follow(FOLLOWER, Kind::User, None, 1)
        .unwrap();
    (line, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_gateway_refuses_a_sample_of_relay_tricks_and_sends_nothing_for_them() {
    let (line, gw) = start().await;
    let own_ip = gw.smtp.ip().to_string();
    let all = cases(&own_ip);
    let refused: Vec<&Case> = all.iter().filter(|c| c.want == Want::Refused).collect();
    let legit: Vec<&Case> = all.iter().filter(|c| c.want != Want::Refused).collect();
    // A few hundred at random, plus some more aimed at the gateway's own address.
    let mut picked: Vec<&Case> = sample(refused.len(), 300, 0x5EED).into_iter().map(|i| refused[i]).collect();
    let own: Vec<&&Case> = refused.iter().filter(|c| c.arg.contains(&format!("[{own_ip}]"))).collect();
    picked.extend(sample(own.len(), 50, 0x0A11).into_iter().map(|i| *own[i]));
    let senders = tricky_senders();
    block_in_place(|| {
        // Ten RCPTs a connection: a syntax error counts towards the session's error limit.
        for (n, batch) in picked.chunks(10).enumerate() {
            let mut c = Raw::greeted(gw.smtp);
            c.reply_to_ehlo();
            let sender = &senders[n % senders.len()];
            let mail = c.cmd(&format!("MAIL FROM:{sender}"));
            assert_eq!(code(&mail), 250, "MAIL FROM:{sender} → {mail}");
            for case in batch {
                let r = c.cmd(&format!("RCPT TO:{}", case.arg));
                assert!((500..600).contains(&code(&r)) && code(&r) != 503, "RCPT TO:{:?} → {r}", case.arg);
            }
            // A mail whose every recipient was refused goes nowhere.
            let data = c.cmd("DATA");
            assert!(data.starts_with("554 5.5.1"), "{data}");
            assert_eq!(code(&c.cmd("QUIT")), 221);
        }
        assert!(line.requests().is_empty(), "LINE was called for a refused recipient: {:?}", line.requests());

        // The same client does get legit forms accepted (RSET: nothing is sent).
        let mut c = Raw::greeted(gw.smtp);
        c.reply_to_ehlo();
        for case in sample(legit.len(), 40, 0xC0FFEE).into_iter().map(|i| legit[i]) {
            assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net>")), 250);
            let r = c.cmd(&format!("RCPT TO:{}", case.arg));
            assert_eq!(code(&r), 250, "RCPT TO:{:?} → {r}", case.arg);
            assert_eq!(code(&c.cmd("RSET")), 250);
        }
        assert!(line.requests().is_empty(), "{:?}", line.requests());

        // Control: tricks aimed at OTHER in the same transaction as legit recipients, from a
        // sender that is OTHER's own address. Only the legit recipients may be reached.
        assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{OTHER}@{DOMAIN}>"))), 250);
        for trick in [
            format!("<{OTHER}@{DOMAIN}.>"),
            format!("<\"{OTHER}\"@{DOMAIN}>"),
            format!("<{OTHER}%gmail.com@{DOMAIN}>"),
            format!("<@{DOMAIN}:{OTHER}@gmail.com>"),
            format!("<{OTHER}@[{own_ip}]>"),
            format!("<{OTHER}@sub.{DOMAIN}>"),
            format!("<{}@{DOMAIN}>", OTHER.to_ascii_uppercase()),
            format!("<{ALIAS}@{DOMAIN}.evil.org>"),
            format!("<followers@{DOMAIN}>"),
        ] {
            let r = c.cmd(&format!("RCPT TO:{trick}"));
            assert!((500..600).contains(&code(&r)), "RCPT TO:{trick} → {r}");
        }
        for legit in [format!("<{ID}@{}>", DOMAIN.to_ascii_uppercase()), format!("<{}@{DOMAIN}>", ALIAS.to_ascii_uppercase()), format!("<{FOLLOWERS}@{DOMAIN}>")] {
            let r = c.cmd(&format!("RCPT TO:{legit}"));
            assert_eq!(code(&r), 250, "RCPT TO:{legit} → {r}");
        }
        assert_eq!(code(&c.cmd("DATA")), 354);
        c.send(b"Subject: control\r\n\r\nthe only mail that may arrive\r\n.\r\n");
        assert_eq!(c.code(), 250);
    });
    let got = destinations(&line);
    let want: BTreeMap<String, usize> = [ID, ALIAS_MEMBER, FOLLOWER].iter().map(|id| (id.to_string(), 1)).collect();
    assert_eq!(got, want, "the control mail reaches exactly its legit recipients");
    assert!(line.requests().iter().all(|r| !String::from_utf8_lossy(&r.raw).contains(OTHER)));
    line.assert_all_valid();
    println!("open relay (wire): {} refused and 40 accepted RCPTs against the real binary", picked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrfy_and_expn_reveal_nothing_and_send_nothing() {
    let (line, gw) = start().await;
    block_in_place(|| {
        let mut c = Raw::greeted(gw.smtp);
        c.reply_to_ehlo();
        let probes = [
            format!("{ID}@{DOMAIN}"),
            format!("<{ID}@{DOMAIN}>"),
            format!("{ALIAS}@{DOMAIN}"),
            ALIAS.to_owned(),
            format!("{FOLLOWERS}@{DOMAIN}"),
            FOLLOWERS.to_owned(),
            format!("nosuch@{DOMAIN}"),
            format!("{OTHER}@gmail.com"),
            format!("victim%gmail.com@{DOMAIN}"),
        ];
        // VRFY: the same answer whatever is asked, so it cannot tell an alias from nothing.
        let vrfy: BTreeSet<String> = probes.iter().map(|p| c.cmd(&format!("VRFY {p}"))).collect();
        assert_eq!(vrfy.len(), 1, "{vrfy:?}");
        let vrfy = vrfy.into_iter().next().unwrap();
        assert!(vrfy.starts_with("252 "), "{vrfy}");
        // EXPN: refused, and never lists an alias's or the followers' ids.
        let expn: BTreeSet<String> = probes.iter().map(|p| c.cmd(&format!("EXPN {p}"))).collect();
        assert_eq!(expn.len(), 1, "{expn:?}");
        let expn = expn.into_iter().next().unwrap();
        assert!(expn.starts_with("502 "), "{expn}");
        for reply in [&vrfy, &expn] {
            for secret in [ALIAS_MEMBER, FOLLOWER, ALIAS, FOLLOWERS] {
                assert!(!reply.contains(secret), "{reply} reveals {secret}");
            }
        }
        // The session still works afterwards: VRFY/EXPN did not close or confuse it.
        assert_eq!(code(&c.cmd("NOOP")), 250);
        assert_eq!(code(&c.cmd("QUIT")), 221);
    });
    assert!(line.requests().is_empty(), "{:?}", line.requests());
}

impl Raw {
    /// EHLO and its multi-line reply.
    fn reply_to_ehlo(&mut self) {
        let r = self.cmd("EHLO client.example");
        assert!(r.starts_with("250"), "{r}");
    }
}
