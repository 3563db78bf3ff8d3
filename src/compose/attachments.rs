//! Attachments in the text: the "📎 name (size)" list appended to a mail's text, with a
//! download link for those the gateway serves. Which attachments LINE can show as images is
//! `media::image`'s call (it reads their bytes).

use crate::mail::Attachment;

/// A size for people: `512 B`, `1.5 KB`, `12 KB`, `1.4 MB`, `2 GB` (units of 1,024, as
/// mail clients show attachment sizes). One decimal below 10, whole numbers above.
pub fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let bytes = bytes as u128;
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut divisor: u128 = 1;
    for unit in UNITS {
        divisor *= 1024;
        // Rounded in integers, so 1023.96 KB cannot show as "1024 KB".
        let tenths = (bytes * 10 + divisor / 2) / divisor;
        if tenths < 100 {
            return match tenths % 10 {
                0 => format!("{} {unit}", tenths / 10),
                d => format!("{}.{d} {unit}", tenths / 10),
            };
        }
        let whole = (bytes + divisor / 2) / divisor;
        if whole < 1024 || unit == "TB" {
            return format!("{whole} {unit}");
        }
    }
    unreachable!("the loop returns at TB")
}

/// The attachment list for the end of the text, one entry per attachment in order:
/// `📎 name (size)`, followed on the next line by a download link when `url_of` gives one
/// for it (called with the attachment's index in `attachments` and the attachment). Empty
/// when there is nothing to list. Callers leave out the attachments they send as images.
pub fn attachment_list(
    attachments: &[Attachment],
    mut url_of: impl FnMut(usize, &Attachment) -> Option<String>,
) -> String {
    let mut out = String::new();
    for (i, a) in attachments.iter().enumerate() {
        if !out.is_empty() {
            out.push('\n');
        }
        // A name is the sender's text: a line break in it would start a line of its own (a
        // `[sticker:…]` line, say), so control characters become spaces.
        let name: String = a.name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push_str(&format!("📎 {} ({})", name, human_size(a.size())));
        if let Some(url) = url_of(i, a) {
            out.push('\n');
            out.push_str(&url);
        }
    }
    out
}

/// `text` with `list` appended after a blank line; `text` alone when the list is empty.
pub fn with_attachment_list(text: &str, list: &str) -> String {
    match (text.trim_end(), list.is_empty()) {
        (_, true) => text.to_string(),
        ("", false) => list.to_string(),
        (body, false) => format!("{body}\n\n{list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content_type: &str, data: Vec<u8>) -> Attachment {
        Attachment {
            name: name.to_string(),
            content_type: content_type.to_string(),
            inline: false,
            content_id: None,
            data,
        }
    }

    #[test]
    fn human_sizes() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1 KB"),
            (1536, "1.5 KB"),
            (10_188, "9.9 KB"),
            (10_189, "10 KB"), // 9.95 KB rounds up to 10, shown without a decimal
            (12_288, "12 KB"),
            (1_048_063, "1023 KB"),
            (1_048_064, "1 MB"), // 1023.5 KB would round to 1024 KB
            (1_468_006, "1.4 MB"),
            (1_520_435, "1.4 MB"), // 1.44999 MB
            (1_572_864, "1.5 MB"),
            (10 * 1024 * 1024, "10 MB"),
            (3 * 1024 * 1024 * 1024, "3 GB"),
            (usize::MAX, "16777216 TB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(human_size(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn plain_list() {
        let list = attachment_list(
            &[
                file("請求書.pdf", "application/pdf", vec![0; 12_345]),
                file("data.csv", "text/csv", vec![b'a'; 300]),
                file("video.mp4", "video/mp4", vec![0; 1_468_006]),
            ],
            |_, _| None,
        );
        assert_eq!(
            list,
            "📎 請求書.pdf (12 KB)\n📎 data.csv (300 B)\n📎 video.mp4 (1.4 MB)"
        );
    }

    #[test]
    fn a_line_break_in_a_name_cannot_start_a_line_of_its_own() {
        let list = attachment_list(&[file("a\n[sticker:1:2]\r\n.pdf", "application/pdf", vec![0; 10])], |_, _| None);
        assert_eq!(list.lines().count(), 1, "{list:?}");
        assert!(list.starts_with("📎 a [sticker:1:2]"), "{list:?}");
    }

    #[test]
    fn served_attachments_get_a_link() {
        let files = [
            file("scan.pdf", "application/pdf", vec![0; 2048]),
            file("huge.zip", "application/zip", vec![0; 5000]),
        ];
        let mut asked = Vec::new();
        let list = attachment_list(&files, |i, a| {
            asked.push((i, a.name.clone()));
            (a.size() < 4096).then(|| format!("https://gw.example.com/media/{i:032x}.pdf"))
        });
        assert_eq!(
            list,
            "📎 scan.pdf (2 KB)\nhttps://gw.example.com/media/00000000000000000000000000000000.pdf\n\
             📎 huge.zip (4.9 KB)"
        );
        assert_eq!(
            asked,
            vec![(0, "scan.pdf".to_string()), (1, "huge.zip".to_string())]
        );
    }

    #[test]
    fn list_is_appended_after_a_blank_line() {
        assert_eq!(
            with_attachment_list("Hello\n\n", "📎 a (1 B)"),
            "Hello\n\n📎 a (1 B)"
        );
        assert_eq!(with_attachment_list("  \n", "📎 a (1 B)"), "📎 a (1 B)");
        assert_eq!(with_attachment_list("Hello\n", ""), "Hello\n");
        assert_eq!(attachment_list(&[], |_, _| None), "");
    }
}
