//! iCalendar (RFC 5545) invitations read for a phone: what, when and where.
//!
//! Calendar software (Google Calendar, Outlook, Zoom, booking sites) sends an invitation as a
//! `text/calendar` alternative of the mail and often also as an `invite.ics` file. Listed as
//! an attachment it says nothing on LINE ("📎 attachment (2 KB)"); what a reader needs is
//! the event's title, start, end and place, so `parts` puts this summary in the text instead.
//!
//! This is deliberately a small, tolerant reader, not a calendar library: it unfolds the
//! content lines, keeps the properties of each VEVENT (not those of its VALARMs, nor of
//! VTIMEZONE, which has a DTSTART of its own), and shows times as written, with their TZID
//! or `Z`, without converting zones (that would need the tz database, and the sender's zone
//! is what the invitation's own text shows too). Broken or truncated input gives what could
//! be read, or `None` when no event was found; it never panics.

/// Events summarised at most: a calendar export with hundreds of events is a file, not a
/// notice; the rest are counted.
const MAX_EVENTS: usize = 5;

/// The summary of the events in an iCalendar object, one block per VEVENT:
///
/// ```text
/// 📅 Team sync
/// Start: 2025-03-10 10:00 (Asia/Tokyo)
/// End: 2025-03-10 10:30 (Asia/Tokyo)
/// Where: Room 4B
/// ```
///
/// A line is left out when its property is absent. A cancelled invitation (`METHOD:CANCEL`
/// or `STATUS:CANCELLED`) says so on its first line. `None` when there is no VEVENT.
pub(super) fn summary(ics: &str) -> Option<String> {
    let calendar = read(ics);
    if calendar.events.is_empty() {
        return None;
    }
    let cancelled_all = calendar.method.eq_ignore_ascii_case("CANCEL");
    let mut out = String::new();
    for event in calendar.events.iter().take(MAX_EVENTS) {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str("📅 ");
        if cancelled_all || event.status.eq_ignore_ascii_case("CANCELLED") {
            out.push_str("Cancelled: ");
        }
        out.push_str(if event.summary.is_empty() { "Event" } else { &event.summary });
        for (label, value) in [("Start", &event.start), ("End", &event.end), ("Where", &event.location)] {
            if !value.is_empty() {
                out.push('\n');
                out.push_str(label);
                out.push_str(": ");
                out.push_str(value);
            }
        }
    }
    let more = calendar.events.len().saturating_sub(MAX_EVENTS);
    if more > 0 {
        out.push_str(&format!("\n\n(and {more} more events)"));
    }
    Some(out)
}

#[derive(Default)]
struct Calendar {
    /// The VCALENDAR's METHOD (`REQUEST`, `CANCEL`, ...), empty if absent.
    method: String,
    events: Vec<Event>,
}

/// One VEVENT, its values already in display form (empty when absent).
#[derive(Default)]
struct Event {
    summary: String,
    start: String,
    end: String,
    location: String,
    status: String,
}

fn read(ics: &str) -> Calendar {
    let mut calendar = Calendar::default();
    // The components we are inside, innermost last: properties count only directly in a
    // VEVENT (a VALARM's DESCRIPTION or a VTIMEZONE's DTSTART are not the event's).
    let mut stack: Vec<String> = Vec::new();
    let mut event: Option<Event> = None;
    for line in unfold(ics) {
        let Some((name, params, value)) = content_line(&line) else {
            continue;
        };
        match name.as_str() {
            "BEGIN" => {
                let component = value.trim().to_ascii_uppercase();
                if component == "VEVENT" && event.is_none() {
                    event = Some(Event::default());
                }
                stack.push(component);
                // A runaway nesting (broken input) must not grow without end.
                if stack.len() > 64 {
                    stack.remove(0);
                }
            }
            "END" => {
                let component = value.trim().to_ascii_uppercase();
                // Pop up to the matching BEGIN; an END without one is ignored.
                if let Some(at) = stack.iter().rposition(|c| *c == component) {
                    stack.truncate(at);
                }
                if component == "VEVENT" {
                    calendar.events.extend(event.take());
                }
            }
            _ => {
                let innermost = stack.last().map(String::as_str);
                if innermost == Some("VCALENDAR") && name == "METHOD" {
                    calendar.method = value.trim().to_string();
                }
                let Some(event) = event.as_mut().filter(|_| innermost == Some("VEVENT")) else {
                    continue;
                };
                match name.as_str() {
                    "SUMMARY" => event.summary = one_line(&unescape(&value)),
                    "LOCATION" => event.location = one_line(&unescape(&value)),
                    "STATUS" => event.status = value.trim().to_string(),
                    "DTSTART" => event.start = date_time(&params, &value),
                    "DTEND" => event.end = date_time(&params, &value),
                    _ => {}
                }
            }
        }
    }
    // A truncated calendar (no END:VEVENT) still shows what it had.
    calendar.events.extend(event);
    calendar
}

/// Content lines with their folds undone (RFC 5545 §3.1: a line break followed by one space
/// or tab continues the line). CRLF, bare LF and bare CR all end lines.
fn unfold(ics: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in ics.split('\n').flat_map(|l| l.split('\r')) {
        match raw.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => lines.last_mut().expect("not empty").push_str(rest),
            _ if raw.is_empty() => {}
            _ => lines.push(raw.to_string()),
        }
    }
    lines
}

/// `NAME;PARAM=VALUE;...:value` → (upper-case name, params, value). The value starts at the
/// first colon outside a quoted parameter value (`TZID="a:b"` is allowed by §3.2).
fn content_line(line: &str) -> Option<(String, Vec<(String, String)>, String)> {
    let mut quoted = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut fields = head.split(';');
    let name = fields.next()?.trim().to_ascii_uppercase();
    if name.is_empty() {
        return None;
    }
    let params = fields
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_uppercase(), v.trim().trim_matches('"').to_string()))
        })
        .collect();
    Some((name, params, value.to_string()))
}

/// A TEXT value without its escapes (§3.3.11): `\,` `\;` `\\`, and `\n` for a line break.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A value for one line of the summary: line breaks (an address over several lines) and
/// runs of whitespace become one space, control characters go.
fn one_line(text: &str) -> String {
    text.split(char::is_whitespace)
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A DATE or DATE-TIME for people: `2025-03-10` (all-day), `2025-03-10 10:00 (Asia/Tokyo)`,
/// `2025-03-10 01:00 (UTC)` for a `Z` time, `2025-03-10 10:00` for a floating one; seconds
/// only when they are not zero. A value that is neither is shown as written.
fn date_time(params: &[(String, String)], value: &str) -> String {
    let value = value.trim();
    let tzid = params.iter().find(|(k, _)| k == "TZID").map(|(_, v)| one_line(v)).filter(|v| !v.is_empty());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (date, time) = match value.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (value, None),
    };
    if date.len() != 8 || !digits(date) {
        return one_line(value);
    }
    let day = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]);
    let Some(time) = time else {
        return day;
    };
    let (clock, utc) = match time.strip_suffix(['Z', 'z']) {
        Some(clock) => (clock, true),
        None => (time, false),
    };
    if clock.len() != 6 || !digits(clock) {
        return one_line(value);
    }
    let mut out = format!("{day} {}:{}", &clock[..2], &clock[2..4]);
    if &clock[4..] != "00" {
        out.push(':');
        out.push_str(&clock[4..]);
    }
    match (utc, tzid) {
        (true, _) => out.push_str(" (UTC)"),
        (false, Some(tzid)) => out.push_str(&format!(" ({tzid})")),
        (false, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An invitation as Google Calendar writes one: a VTIMEZONE (with a DTSTART of its own
    /// that must not be taken for the event's), folded lines, escaped commas, and a VALARM
    /// with a DESCRIPTION and its own SUMMARY-less trigger.
    const INVITE: &str = "BEGIN:VCALENDAR\r\n\
        PRODID:-//Example Corp//Calendar 70.9054//EN\r\n\
        VERSION:2.0\r\n\
        CALSCALE:GREGORIAN\r\n\
        METHOD:REQUEST\r\n\
        BEGIN:VTIMEZONE\r\n\
        TZID:Asia/Tokyo\r\n\
        BEGIN:STANDARD\r\n\
        TZOFFSETFROM:+0900\r\n\
        TZOFFSETTO:+0900\r\n\
        TZNAME:JST\r\n\
        DTSTART:19700101T000000\r\n\
        END:STANDARD\r\n\
        END:VTIMEZONE\r\n\
        BEGIN:VEVENT\r\n\
        DTSTART;TZID=Asia/Tokyo:20250310T100000\r\n\
        DTEND;TZID=Asia/Tokyo:20250310T103000\r\n\
        DTSTAMP:20250301T020304Z\r\n\
        ORGANIZER;CN=Sato Hanako:mailto:hanako@example.jp\r\n\
        UID:4kq1v0c2m3example@example.com\r\n\
        ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=\r\n \
        TRUE;CN=you@example.com;X-NUM-GUESTS=0:mailto:you@example.com\r\n\
        DESCRIPTION:Agenda:\\n1. Release plan\\n2. On-call rota\r\n\
        LOCATION:Room 4B\\, Tokyo office\\; 5F\r\n\
        SEQUENCE:0\r\n\
        STATUS:CONFIRMED\r\n\
        SUMMARY:Weekly sync \u{2013} release pla\r\n n\r\n\
        BEGIN:VALARM\r\n\
        ACTION:DISPLAY\r\n\
        DESCRIPTION:This is an event reminder\r\n\
        SUMMARY:Reminder\r\n\
        TRIGGER:-P0DT0H10M0S\r\n\
        END:VALARM\r\n\
        END:VEVENT\r\n\
        END:VCALENDAR\r\n";

    #[test]
    fn an_invitation_reads_as_what_when_where() {
        assert_eq!(
            summary(INVITE).as_deref(),
            Some(
                "📅 Weekly sync \u{2013} release plan\n\
                 Start: 2025-03-10 10:00 (Asia/Tokyo)\n\
                 End: 2025-03-10 10:30 (Asia/Tokyo)\n\
                 Where: Room 4B, Tokyo office; 5F"
            )
        );
    }

    #[test]
    fn utc_all_day_floating_and_odd_values() {
        let ics = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Deploy\nDTSTART:20250310T013015Z\n\
                   DTEND:20250310T020000\nEND:VEVENT\nBEGIN:VEVENT\nSUMMARY:Holiday\n\
                   DTSTART;VALUE=DATE:20250320\nDTEND;VALUE=DATE:20250321\nEND:VEVENT\n\
                   BEGIN:VEVENT\nDTSTART;TZID=\"Tokyo Standard Time\":tomorrow\nLOCATION:\n\
                   END:VEVENT\nEND:VCALENDAR\n";
        assert_eq!(
            summary(ics).as_deref(),
            Some(
                "📅 Deploy\nStart: 2025-03-10 01:30:15 (UTC)\nEnd: 2025-03-10 02:00\n\n\
                 📅 Holiday\nStart: 2025-03-20\nEnd: 2025-03-21\n\n\
                 📅 Event\nStart: tomorrow"
            )
        );
    }

    #[test]
    fn quoted_tzid_with_a_colon_and_outlook_zone_names() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Call\r\n\
                   DTSTART;TZID=\"/example.org/tz:Europe/Warsaw\":20250402T090000\r\n\
                   DTEND;TZID=Tokyo Standard Time:20250402T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(
            summary(ics).as_deref(),
            Some(
                "📅 Call\nStart: 2025-04-02 09:00 (/example.org/tz:Europe/Warsaw)\n\
                 End: 2025-04-02 10:00 (Tokyo Standard Time)"
            )
        );
    }

    #[test]
    fn a_cancellation_says_so() {
        let ics = INVITE.replace("METHOD:REQUEST", "METHOD:CANCEL");
        assert!(summary(&ics).unwrap().starts_with("📅 Cancelled: Weekly sync"));
        let ics = INVITE.replace("STATUS:CONFIRMED", "STATUS:CANCELLED").replace("METHOD:REQUEST\r\n", "");
        assert!(summary(&ics).unwrap().starts_with("📅 Cancelled: Weekly sync"));
    }

    #[test]
    fn a_truncated_calendar_shows_what_it_had() {
        let cut = &INVITE[..INVITE.find("LOCATION").unwrap()];
        assert_eq!(
            summary(cut).as_deref(),
            Some("📅 Event\nStart: 2025-03-10 10:00 (Asia/Tokyo)\nEnd: 2025-03-10 10:30 (Asia/Tokyo)")
        );
        // Cut before any event: nothing to summarise.
        assert_eq!(summary(&INVITE[..INVITE.find("BEGIN:VEVENT").unwrap()]), None);
    }

    #[test]
    fn many_events_are_counted_not_listed() {
        let mut ics = String::from("BEGIN:VCALENDAR\n");
        for i in 0..8 {
            ics.push_str(&format!("BEGIN:VEVENT\nSUMMARY:Shift {i}\nEND:VEVENT\n"));
        }
        let text = summary(&ics).unwrap();
        assert!(text.contains("📅 Shift 4") && !text.contains("Shift 5"), "{text}");
        assert!(text.ends_with("\n\n(and 3 more events)"), "{text}");
    }

    #[test]
    fn garbage_does_not_panic() {
        for ics in [
            "",
            ":",
            "BEGIN:VEVENT",
            "BEGIN:VEVENT\nDTSTART:2025\u{3042}0310T1\nDTEND:\u{3042}\u{3042}\u{3042}\u{3042}\u{3042}\u{3042}\u{3042}\u{3042}T\u{3042}\u{3042}\n",
            "END:VEVENT\nEND:VCALENDAR\n",
            " folded first\n\tline\nBEGIN:VEVENT\nSUMMARY:\\",
            "BEGIN:VEVENT\nDTSTART;TZID=\"unterminated:20250101T000000\nSUMMARY;X=\"a;b\":x",
        ] {
            let _ = summary(ics);
        }
        let deep = "BEGIN:X\n".repeat(10_000) + "BEGIN:VEVENT\nSUMMARY:deep\nEND:VEVENT\n";
        assert_eq!(summary(&deep).as_deref(), Some("📅 deep"));
    }
}
